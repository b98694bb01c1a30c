//! Ethereum adapter for softstake.
//!
//! - [`keys`]: the custody key (the withdrawal-credential address).
//! - [`ssz`] and [`deposit`]: deposit data from staking-deposit-cli,
//!   verified (roots, credentials, amount, BLS signature) before any ether
//!   moves.
//! - [`tx`]: EIP-1559 deposit and EIP-7002 withdrawal-request transactions,
//!   signed with alloy; equal byte for byte to viem's (tests/vectors/eth).
//! - [`testnode`]: starts anvil (npm @foundry-rs/anvil) for tests.
//!
//! No SDK type crosses the crate boundary.

pub mod deposit;
pub mod keys;
pub mod ssz;
pub mod tx;
