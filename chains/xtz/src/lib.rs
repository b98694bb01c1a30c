//! Tezos adapter for softstake.
//!
//! - [`forge`]: the Tezos binary encoding of reveal, delegation and staking
//!   calls (stake, unstake, finalize_unstake), written here; byte for byte
//!   equal to Taquito's local forger (tests/vectors/xtz).
//! - [`keys`]: the edsk key behind the [`keys::Signer`] interface
//!   (ed25519 over blake2b-256 of 0x03 || forged bytes).
//! - [`ops`]: which manager operations each softstake operation becomes.
//! - [`adapter`]: [`XtzAdapter`], the `ChainAdapter` over the Octez RPC.
//! - [`rpc`]: what the adapter reads out of Octez answers, as pure
//!   functions checked against outputs recorded from octez and Taquito
//!   (tests/fixtures/xtz).
//! - [`testnode`]: a test node in octez's shapes (no octez installs here).
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   xtz`), documented in docs/tx-requests.md.
//!
//! No SDK type crosses the crate boundary.

pub mod adapter;
#[cfg(feature = "testnode")]
pub mod devnet;
pub mod forge;
pub mod keys;
pub mod ops;
pub mod plugin;
pub mod request;
pub mod rpc;
#[cfg(feature = "testnode")]
pub mod testnode;

pub use adapter::{XtzAdapter, XtzSettings};
