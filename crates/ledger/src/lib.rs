//! The reward arithmetic of soft staking, free of I/O.
//!
//! - [`weights`]: a user's weight for a period `[t0, t1)` is the integral of
//!   their liquid balance over it (base units x seconds), from the stored
//!   balance updates.
//! - [`split`]: one reward -> commission (rounded down) + one credit per user
//!   in proportion to weight, whole base units, each user's fractional
//!   remainder carried forward exactly in units of 1/[`split::CARRY_SCALE`]
//!   of a base unit, and the sub-1e-18 rounding of the split itself kept as
//!   pool dust that joins the next reward. Conservation is checked on the
//!   result ([`split::Split::check_conservation`]).
//! - [`import`]: CSV/JSONL balance files into validated updates, with the
//!   row number of the first bad row.
//!
//! Big numbers: weights are `U256`; the split's products use `U512`, so no
//! input an `Amount` can hold overflows.

pub mod import;
pub mod loss;
pub mod split;
pub mod weights;

pub use ruint::aliases::{U256, U512};
