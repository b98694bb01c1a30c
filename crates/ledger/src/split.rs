//! Splitting one reward exactly.
//!
//! All bookkeeping below is in *micro-units*: 1/[`CARRY_SCALE`] of a base
//! unit. With `D = CARRY_SCALE`, gross `G`, commission `C = floor(G x rate)`
//! (rounded down, so users never get less than their exact share), users'
//! pool `P = G - C`, pool dust carried in from earlier rewards `d`, user
//! weights `w_i` summing to `W`, and each user's carried remainder `f_i < D`:
//!
//! ```text
//! a_i      = floor((P*D + d) * w_i / W)          exact share, micro-units
//! credit_i = floor((f_i + a_i) / D)              whole base units
//! f_i'     = (f_i + a_i) mod D                   carried forward, < D
//! d'       = P*D + d - sum(a_i)                  pool dust, < number of users
//! ```
//!
//! hence `G*D + sum(f_i) + d == (sum(credit_i) + C)*D + sum(f_i') + d'`: every
//! reward ends as credits + commission + change in carried remainders, to the
//! micro-unit. If no one has weight, the whole pool becomes dust and joins
//! the next reward.

use crate::{U256, U512};
use sha2::{Digest, Sha256};
use softstake_core::{Amount, Rate};

/// Micro-units per base unit for carried remainders (10^18).
pub const CARRY_SCALE: u128 = 1_000_000_000_000_000_000;

/// One user's input to a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// User id.
    pub user_id: String,
    /// Time-weighted balance over the period.
    pub weight: U256,
    /// Remainder carried from earlier credits, micro-units (< CARRY_SCALE).
    pub carry_before: u128,
}

/// Inputs of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitInput {
    /// Gross reward.
    pub gross: Amount,
    /// Commission rate.
    pub commission_rate: Rate,
    /// Pool dust carried in, micro-units.
    pub dust_before: U256,
    /// Users (any order; duplicates refused).
    pub shares: Vec<Share>,
}

/// One user's result. Produced for every user with weight > 0 (amount may be 0
/// when only the carried remainder grew).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditLine {
    /// User id.
    pub user_id: String,
    /// Weight used.
    pub weight: U256,
    /// Whole base units credited.
    pub amount: Amount,
    /// Remainder before, micro-units.
    pub carry_before: u128,
    /// Remainder after, micro-units (< CARRY_SCALE).
    pub carry_after: u128,
}

/// The result of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Gross reward.
    pub gross: Amount,
    /// Commission.
    pub commission: Amount,
    /// Users' pool (gross - commission).
    pub users_pool: Amount,
    /// Sum of weights.
    pub total_weight: U256,
    /// Sum of credits.
    pub credited: Amount,
    /// Pool dust in, micro-units.
    pub dust_before: U256,
    /// Pool dust out, micro-units.
    pub dust_after: U256,
    /// Lines, sorted by user id (bytewise).
    pub lines: Vec<CreditLine>,
}

/// Why a split cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The same user twice.
    #[error("user {0:?} appears twice in the split")]
    DuplicateUser(String),
    /// A carried remainder of a whole unit or more: the store is inconsistent.
    #[error("user {0:?} has a carried remainder of a whole unit or more")]
    CarryTooLarge(String),
    /// Weights too large to add up.
    #[error("total weight overflows 256 bits")]
    WeightOverflow,
    /// The pool is so close to `u128::MAX` that carried remainders could
    /// round the credits above it. Never happens with real amounts (all ETH
    /// in existence is about 2^87 wei); refused rather than wrapped.
    #[error(
        "reward of {gross} base units is too close to the amount limit to split among {users} users exactly"
    )]
    TooLarge {
        /// Gross.
        gross: Amount,
        /// Users with weight.
        users: usize,
    },
    /// Conservation failed (a bug); nothing may be committed.
    #[error("conservation violated: {0}")]
    Conservation(String),
}

/// Splits one reward. Deterministic: the same inputs in any order give the
/// same lines in the same (user id) order.
pub fn split(input: SplitInput) -> Result<Split, SplitError> {
    let mut shares = input.shares;
    shares.sort_unstable_by(|a, b| a.user_id.as_bytes().cmp(b.user_id.as_bytes()));
    for w in shares.windows(2) {
        if w[0].user_id == w[1].user_id {
            return Err(SplitError::DuplicateUser(w[0].user_id.clone()));
        }
    }
    shares.retain(|s| !s.weight.is_zero());
    let total_weight = shares
        .iter()
        .try_fold(U256::ZERO, |acc, s| acc.checked_add(s.weight))
        .ok_or(SplitError::WeightOverflow)?;
    let mut splitter = Splitter::new(
        input.gross,
        input.commission_rate,
        input.dust_before,
        total_weight,
        shares.len(),
    )?;
    let lines = shares
        .into_iter()
        .map(|s| splitter.line(s))
        .collect::<Result<Vec<_>, _>>()?;
    splitter.finish(lines)
}

/// A split made one line at a time, in user-id order, so a caller can write
/// each line as it is made; [`split`] is this over a whole list. The totals
/// (weight and users) are declared up front, as every share depends on them,
/// and [`Splitter::finish`] checks the lines against them and conservation.
#[derive(Debug)]
pub struct Splitter {
    gross: Amount,
    commission: Amount,
    users_pool: Amount,
    total_weight: U256,
    users: usize,
    dust_before: U256,
    pool_micro: U256,
    allocated: U256,
    weight_seen: U256,
    credited: Amount,
    last_user: Option<String>,
}

impl Splitter {
    /// Starts a split of `gross` among `users` users with weight, whose
    /// weights sum to `total_weight`.
    pub fn new(
        gross: Amount,
        commission_rate: Rate,
        dust_before: U256,
        total_weight: U256,
        users: usize,
    ) -> Result<Self, SplitError> {
        let commission = commission_rate.apply_floor(gross);
        let users_pool = gross
            .checked_sub(commission)
            .ok_or_else(|| SplitError::Conservation("commission above gross".into()))?;
        // Credits can exceed the pool by at most one unit per user (carried
        // remainders) plus the carried pool dust; all of it must fit in u128.
        let dust_units = dust_before / U256::from(CARRY_SCALE);
        let headroom = U256::from(u128::MAX - users_pool.base());
        if headroom < U256::from(users) + dust_units + U256::from(1u8) {
            return Err(SplitError::TooLarge { gross, users });
        }
        // P*D + d: < 2^128 * 2^60 + dust, fits easily in U256.
        let pool_micro = U256::from(users_pool.base())
            .checked_mul(U256::from(CARRY_SCALE))
            .and_then(|v| v.checked_add(dust_before))
            .ok_or_else(|| SplitError::Conservation("pool overflows 256 bits".into()))?;
        Ok(Self {
            gross,
            commission,
            users_pool,
            total_weight,
            users,
            dust_before,
            pool_micro,
            allocated: U256::ZERO,
            weight_seen: U256::ZERO,
            credited: Amount::ZERO,
            last_user: None,
        })
    }

    /// The commission (known before any line).
    pub fn commission(&self) -> Amount {
        self.commission
    }

    /// The users' pool (gross - commission).
    pub fn users_pool(&self) -> Amount {
        self.users_pool
    }

    /// The declared total weight.
    pub fn total_weight(&self) -> U256 {
        self.total_weight
    }

    /// The pool dust carried in, micro-units.
    pub fn dust_before(&self) -> U256 {
        self.dust_before
    }

    /// The next user's line. Users must come in strictly increasing byte
    /// order of their ids, each with weight > 0.
    pub fn line(&mut self, s: Share) -> Result<CreditLine, SplitError> {
        if let Some(last) = &self.last_user {
            match last.as_bytes().cmp(s.user_id.as_bytes()) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Err(SplitError::DuplicateUser(s.user_id)),
                std::cmp::Ordering::Greater => {
                    return Err(SplitError::Conservation(format!(
                        "user {:?} out of order",
                        s.user_id
                    )));
                }
            }
        }
        if s.carry_before >= CARRY_SCALE {
            return Err(SplitError::CarryTooLarge(s.user_id));
        }
        if s.weight.is_zero() {
            return Err(SplitError::Conservation(format!(
                "user {:?} has no weight",
                s.user_id
            )));
        }
        self.weight_seen = self
            .weight_seen
            .checked_add(s.weight)
            .filter(|w| *w <= self.total_weight)
            .ok_or_else(|| SplitError::Conservation("weights above the declared total".into()))?;
        // floor(P*D*w_i / W). The product fits 256 bits for any real amount
        // and weight, and a 256-bit division is several times cheaper than
        // the 512-bit one kept for the rest; both are exact, so the result
        // is the same. a_i <= pool_micro, so the narrowing cannot fail.
        let a: U256 = match self.pool_micro.checked_mul(s.weight) {
            Some(p) => p / self.total_weight,
            None => U256::from(
                (U512::from(self.pool_micro) * U512::from(s.weight))
                    / U512::from(self.total_weight),
            ),
        };
        self.allocated += a;
        let total = a + U256::from(s.carry_before);
        let (amount, carry_after) = total.div_rem(U256::from(CARRY_SCALE));
        let amount = u128::try_from(amount)
            .map_err(|_| SplitError::Conservation("credit exceeds u128".into()))?;
        let carry_after = u128::try_from(carry_after).unwrap_or(u128::MAX);
        let amount = Amount::from_base(amount);
        self.credited = self
            .credited
            .checked_add(amount)
            .ok_or_else(|| SplitError::Conservation("credits overflow".into()))?;
        self.last_user = Some(s.user_id.clone());
        Ok(CreditLine {
            user_id: s.user_id,
            weight: s.weight,
            amount,
            carry_before: s.carry_before,
            carry_after,
        })
    }

    /// Finishes with every line made (in order): checks they are the
    /// declared users and weights, and conservation.
    pub fn finish(self, lines: Vec<CreditLine>) -> Result<Split, SplitError> {
        if lines.len() != self.users || self.weight_seen != self.total_weight {
            return Err(SplitError::Conservation(format!(
                "{} lines with weight {} for {} users with weight {}",
                lines.len(),
                self.weight_seen,
                self.users,
                self.total_weight
            )));
        }
        let dust_after = self
            .pool_micro
            .checked_sub(self.allocated)
            .ok_or_else(|| SplitError::Conservation("allocated more than the pool".into()))?;
        let out = Split {
            gross: self.gross,
            commission: self.commission,
            users_pool: self.users_pool,
            total_weight: self.total_weight,
            credited: self.credited,
            dust_before: self.dust_before,
            dust_after,
            lines,
        };
        out.check_conservation()?;
        Ok(out)
    }
}

impl Split {
    /// Sum of carried remainders before, over the lines.
    pub fn carry_before_sum(&self) -> U256 {
        self.lines
            .iter()
            .fold(U256::ZERO, |a, l| a + U256::from(l.carry_before))
    }

    /// Sum of carried remainders after, over the lines.
    pub fn carry_after_sum(&self) -> U256 {
        self.lines
            .iter()
            .fold(U256::ZERO, |a, l| a + U256::from(l.carry_after))
    }

    /// Re-checks conservation from the lines alone:
    /// `G*D + sum(f) + d == (sum(credits) + C)*D + sum(f') + d'`, every
    /// carry below one unit, credits summing to `credited`.
    pub fn check_conservation(&self) -> Result<(), SplitError> {
        let d = U256::from(CARRY_SCALE);
        let bad = |m: String| Err(SplitError::Conservation(m));
        if let Some(l) = self.lines.iter().find(|l| l.carry_after >= CARRY_SCALE) {
            return bad(format!("carry of {} is a whole unit or more", l.user_id));
        }
        let sum = Amount::checked_sum(self.lines.iter().map(|l| l.amount));
        if sum != Some(self.credited) {
            return bad("credit lines do not add up to the credited total".into());
        }
        if self.commission.checked_add(self.users_pool) != Some(self.gross) {
            return bad("commission + users' pool != gross".into());
        }
        let lhs = U256::from(self.gross.base()) * d + self.carry_before_sum() + self.dust_before;
        let rhs = (U256::from(self.credited.base()) + U256::from(self.commission.base())) * d
            + self.carry_after_sum()
            + self.dust_after;
        if lhs != rhs {
            return bad(format!(
                "gross*D + carries + dust in = {lhs}, credits + commission + carries + dust out = {rhs}"
            ));
        }
        Ok(())
    }

    /// SHA-256 over the lines (`user\tamount\tweight\tcarry_after\n`, in
    /// order), hex. Stored with the distribution so an auditor can recompute.
    pub fn digest(&self) -> String {
        digest_lines(
            self.lines
                .iter()
                .map(|l| (l.user_id.as_str(), l.amount, l.weight, l.carry_after)),
        )
    }
}

/// The digest of credit lines given in user-id order.
pub fn digest_lines<'a>(lines: impl Iterator<Item = (&'a str, Amount, U256, u128)>) -> String {
    let mut h = Sha256::new();
    for (user, amount, weight, carry) in lines {
        h.update(format!("{user}\t{amount}\t{weight}\t{carry}\n").as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests;
