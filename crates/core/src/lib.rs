//! Domain types shared by every softstake crate.
//!
//! This crate is the bottom of the dependency graph: it knows the six chains,
//! exact amounts in base units, time, secrets, and the [`adapter::ChainAdapter`]
//! trait the per-chain crates under `chains/` implement. It depends on no
//! chain SDK and no database driver; adapters depend on it, never the reverse.
//!
//! Money rules enforced here:
//! - every amount is an integer number of the chain's base unit ([`Amount`],
//!   a `u128` newtype) and all arithmetic on it is checked;
//! - decimal strings are parsed and printed exactly ([`Amount::parse_units`],
//!   [`Amount::format_units`]); floats never touch money;
//! - secrets are wrapped in [`Secret`], whose `Debug`/`Display` never show them.

pub mod adapter;
pub mod amount;
pub mod chain;
pub mod config;
pub mod plugin;
pub mod rng;
pub mod secret;
mod secret_ref;
pub mod time;

pub use amount::{Amount, AmountError, Rate, RateError};
pub use chain::{ChainId, UnknownChain};
pub use secret::Secret;
pub use secret_ref::{SecretRef, SecretRefError};
pub use time::{Clock, ManualClock, Period, PeriodError, SystemClock, Timestamp};
