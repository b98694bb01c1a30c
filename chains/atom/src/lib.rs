//! Cosmos Hub adapter for softstake.
//!
//! - [`keys`]: the custody key (secp256k1 from a hex file or a BIP-39
//!   mnemonic at m/44'/118'/0'/0/0), behind the [`keys::Signer`] interface.
//! - [`tx`]: messages and SIGN_MODE_DIRECT transactions built with cosmrs;
//!   byte-for-byte equal to cosmjs's (tests/vectors/atom).
//! - [`adapter`]: [`AtomAdapter`], the `ChainAdapter` over CometBFT
//!   JSON-RPC (broadcast, tx lookup, tx_search, ABCI queries with the SDK's
//!   protobuf types), with endpoint fallback.
//! - [`testnode`]: a protocol-faithful test node (no gaiad installs here).
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   atom`), documented in docs/tx-requests.md.
//!
//! No cosmrs type crosses the crate boundary: the daemon sees only
//! `softstake_core::adapter` types.

pub mod adapter;
#[cfg(feature = "testnode")]
pub mod devnet;
pub mod flows;
pub mod keys;
pub mod plugin;
pub mod proto;
pub mod request;
#[cfg(feature = "testnode")]
pub mod testnode;
pub mod tx;

pub use adapter::{AtomAdapter, AtomSettings};

/// The staking denomination on the Hub.
pub const DENOM: &str = "uatom";
/// Bech32 prefix of accounts.
pub const ACCOUNT_PREFIX: &str = "cosmos";
/// Bech32 prefix of validator operators.
pub const VALOPER_PREFIX: &str = "cosmosvaloper";
