//! Ethereum adapter for softstake.
//!
//! - [`keys`]: the custody key (the withdrawal-credential address).
//! - [`ssz`] and [`deposit`]: deposit data from staking-deposit-cli,
//!   verified (roots, credentials, amount, BLS signature) before any ether
//!   moves.
//! - [`tx`]: EIP-1559 deposit and EIP-7002 withdrawal-request transactions,
//!   signed with alloy; equal byte for byte to viem's (tests/vectors/eth).
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   eth`), documented in docs/tx-requests.md.
//! - [`flows`]: what moved ether into or out of the custody account, from
//!   call traces and receipts, for the pool's books.
//! - [`testnode`]: starts anvil (npm @foundry-rs/anvil) for tests.
//!
//! - [`adapter`]: [`EthAdapter`], the `ChainAdapter` (execution JSON-RPC
//!   with alloy, consensus over the Beacon API).
//!
//! No SDK type crosses the crate boundary.

pub mod adapter;
pub mod deposit;
#[cfg(feature = "testnode")]
pub mod devnet;
pub mod flows;
pub mod keys;
pub mod plugin;
pub mod queue;
pub mod request;
pub mod ssz;
#[cfg(feature = "testnode")]
pub mod testnode;
pub mod tx;

pub use adapter::{EthAdapter, EthSettings};
