//! Cardano adapter for softstake.
//!
//! - [`keys`]: payment and stake keys (cardano-cli `.skey`).
//! - [`cbor`] and [`tx`]: Conway-era transactions (stake registration +
//!   pool delegation, DRep vote delegation, re-delegation, reward
//!   withdrawal, deregistration) built as CBOR and signed here; equal byte
//!   for byte to cardano-serialization-lib's (tests/vectors/ada).
//!
//! - [`adapter`]: [`AdaAdapter`], the `ChainAdapter` over a Blockfrost-compatible
//!   API (behind the [`adapter::ChainApi`] interface).
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   ada`), documented in docs/tx-requests.md.
//! - [`testnode`]: a protocol-faithful test node behind the Blockfrost-shaped
//!   API (no cardano-node installs here); [`emulator`] replays what it was
//!   sent on an independent ledger (`@blaze-cardano/emulator`).
//!
//! No SDK type crosses the crate boundary.

pub mod adapter;
pub mod cbor;
#[cfg(feature = "testnode")]
pub mod devnet;
#[cfg(feature = "testnode")]
pub mod emulator;
pub mod flows;
pub mod keys;
pub mod plugin;
pub mod request;
#[cfg(feature = "testnode")]
pub mod testnode;
pub mod tx;

pub use adapter::{AdaAdapter, AdaSettings};
