#![no_std]
pub use wasm_project::*;
