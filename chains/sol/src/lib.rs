//! Solana adapter for softstake.
//!
//! - [`keys`]: the custody keypair (solana-keygen JSON), fee payer, staker
//!   and (by default) withdraw authority.
//! - [`tx`]: the transactions for each stake [`tx::Action`], built with the
//!   stake and system interface crates and signed here; byte for byte
//!   equal to @solana/web3.js's (tests/vectors/sol).
//! - [`stake`]: stake account data and its activation state per epoch from
//!   the StakeHistory sysvar.
//! - [`flows`]: what a transaction moved into or out of the pool, for the
//!   pool's books.
//! - [`ops`]: which action each softstake operation becomes, checked
//!   against the chain's state before anything is signed.
//! - [`adapter`]: [`SolAdapter`], the `ChainAdapter` over JSON-RPC with
//!   solana-rpc-client.
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   sol`), documented in docs/tx-requests.md.
//! - [`testnode`] (feature `testnode`): starts the test node
//!   (chains/sol/testnode/svm_node.py: the real
//!   system, vote and stake programs executing in LiteSVM behind the
//!   JSON-RPC methods the adapter calls).
//!
//! No SDK type crosses the crate boundary.

pub mod adapter;
#[cfg(feature = "testnode")]
pub mod devnet;
pub mod flows;
pub mod found;
pub mod keys;
pub mod ops;
pub mod plugin;
pub mod request;
pub mod shape;
pub mod stake;
#[cfg(feature = "testnode")]
pub mod testnode;
pub mod tx;

pub use adapter::{SolAdapter, SolSettings};
