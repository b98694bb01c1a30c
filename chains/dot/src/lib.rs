//! Polkadot adapter for softstake: **in progress** (issue 6). What exists:
//!
//! - [`tx`]: the staking calls (bond, bond_extra, nominate, unbond,
//!   withdraw_unbonded, rebond, chill, payout_stakers, batch_all) built with
//!   subxt's dynamic API against the runtime's metadata, and their signer
//!   payloads; equal to @polkadot/types' for Paseo (tests/vectors/dot).
//! - [`request`]: the offline signing request (`softstake tx sign --chain
//!   dot`), documented in docs/tx-requests.md.
//!
//! Not yet: the `ChainAdapter` (pool state, rewards, submission), the
//! chopsticks-backed tests and the `build_adapter` arm. A config that enables
//! Polkadot still stops at start-up with a clear error.

pub mod request;
pub mod tx;
