//! Cardano adapter for softstake.
//!
//! - [`keys`]: payment and stake keys (cardano-cli `.skey`).
//! - [`cbor`] and [`tx`]: Conway-era transactions (stake registration +
//!   pool delegation, DRep vote delegation, re-delegation, reward
//!   withdrawal, deregistration) built as CBOR and signed here; equal byte
//!   for byte to cardano-serialization-lib's (tests/vectors/ada).
//!
//! No SDK type crosses the crate boundary.

pub mod cbor;
pub mod keys;
pub mod tx;
