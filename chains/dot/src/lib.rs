//! Polkadot adapter for softstake: nominated staking on a Polkadot-SDK
//! relay chain carrying the Staking pallet (Paseo, and Polkadot/Kusama
//! runtimes of that generation), driven through the node's JSON-RPC.
//!
//! - [`tx`]: the staking calls (bond, bond_extra, nominate, unbond,
//!   withdraw_unbonded, rebond, chill, set_payee, payout_stakers, batch_all,
//!   proxy) built with subxt's dynamic API against the runtime's metadata,
//!   and their signer payloads; equal to @polkadot/types' (tests/vectors/dot).
//! - [`state`]: storage keys, values and events read through the metadata.
//! - [`rpc`]: JSON-RPC with endpoint fallback and the genesis check.
//! - [`adapter`]: the [`softstake_core::adapter::ChainAdapter`].
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   dot`), documented in docs/tx-requests.md.
//! - [`testnode`]: starts chopsticks (npm) running the real Paseo runtime
//!   for the tests and the devnet, and drives eras through its dev RPCs.

pub mod adapter;
#[cfg(feature = "testnode")]
pub mod devnet;
pub mod plugin;
pub mod request;
pub mod rpc;
pub mod state;
#[cfg(feature = "testnode")]
pub mod testnode;
pub mod tx;

pub use adapter::{DotAdapter, DotSettings};
