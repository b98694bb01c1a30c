//! Polkadot adapter for softstake: nominated staking on Asset Hub's
//! pallet-staking-async (Polkadot, Kusama, Westend and Paseo Asset Hubs),
//! and on a relay chain that still carries pallet-staking (Paseo's
//! genesis, for the older tests), driven through the node's JSON-RPC.
//!
//! - [`tx`]: the staking calls (bond, bond_extra, nominate, unbond,
//!   withdraw_unbonded, rebond, chill, set_payee, payout_stakers, batch_all,
//!   proxy) built with subxt's dynamic API against the runtime's metadata,
//!   and their signer payloads; equal to @polkadot/types' (tests/vectors/dot).
//! - [`state`]: storage keys, values and events read through the metadata.
//! - [`flows`]: the transfers and fees of the stash in a block's events.
//! - [`rpc`]: JSON-RPC with endpoint fallback and the genesis check.
//! - [`adapter`]: the [`softstake_core::adapter::ChainAdapter`].
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   dot`), documented in docs/tx-requests.md.
//! - [`testnode`]: starts chopsticks (npm) running the real Westend Asset
//!   Hub runtime (or Paseo's) for the tests and the devnet, and drives eras
//!   through its dev RPCs.

pub mod adapter;
#[cfg(feature = "testnode")]
pub mod devnet;
pub mod flows;
pub mod plugin;
pub mod request;
pub mod rpc;
pub mod state;
#[cfg(feature = "testnode")]
pub mod testnode;
pub mod tx;

pub use adapter::{DotAdapter, DotSettings};
