//! A loss borne by users (the books' `users` rule): the exact allocation.
//!
//! A loss `L` is first taken from the commission owed to the platform, up
//! to what is available (`platform_first`, where configured); the rest `U`
//! is allocated over the users who held during the loss's period in
//! proportion to their time-weighted balance, each share rounded down to a
//! whole base unit: `a_i = floor(U x w_i / W)`. What rounding leaves
//! (`U - sum(a_i)`, less than one unit per user) is the platform's, like
//! the commission-first part: a user never bears more than their exact
//! share. With no weight at all (nobody held), the whole loss is the
//! platform's. So, exactly: `sum(a_i) + platform = L`.

use crate::{U256, U512};
use softstake_core::Amount;

/// One user's share of a loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossShare {
    /// User id.
    pub user_id: String,
    /// Time-weighted balance over the loss's period.
    pub weight: U256,
    /// Whole base units the user bears (may be zero for a tiny weight).
    pub amount: Amount,
}

/// A loss split between the users and the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossAllocation {
    /// The loss.
    pub loss: Amount,
    /// What the platform bears: the commission-first part, plus what
    /// rounding left, plus everything when nobody held.
    pub platform: Amount,
    /// What users bear (`sum` of the shares).
    pub users: Amount,
    /// Sum of weights.
    pub total_weight: U256,
    /// Users with weight, in the order given.
    pub shares: Vec<LossShare>,
}

/// Errors of an allocation (all mean a bug or corrupt input: nothing is
/// stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LossError {
    /// The sum of weights overflowed 256 bits.
    #[error("total weight overflows")]
    WeightOverflow,
    /// The shares and the platform's part do not add up to the loss.
    #[error("loss allocation does not conserve: {users} + {platform} != {loss}")]
    NotConserved {
        /// Users' total.
        users: Amount,
        /// Platform's part.
        platform: Amount,
        /// The loss.
        loss: Amount,
    },
}

/// Allocates `loss` (module docs). `platform_first` is capped at `loss`;
/// users with zero weight are left out.
pub fn allocate(
    loss: Amount,
    platform_first: Amount,
    weights: Vec<(String, U256)>,
) -> Result<LossAllocation, LossError> {
    let first = platform_first.min(loss);
    let rest = loss.checked_sub(first).unwrap_or(Amount::ZERO);
    let mut total = U256::ZERO;
    for (_, w) in &weights {
        total = total.checked_add(*w).ok_or(LossError::WeightOverflow)?;
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut users = Amount::ZERO;
    if !total.is_zero() && !rest.is_zero() {
        let pool = U512::from(rest.base());
        let den = U512::from(total);
        for (user_id, weight) in weights {
            if weight.is_zero() {
                continue;
            }
            // rest x w / W <= rest: fits u128.
            let a = (pool * U512::from(weight)) / den;
            let amount = Amount::from_base(u128::try_from(a).unwrap_or(u128::MAX));
            users = users.checked_add(amount).ok_or(LossError::WeightOverflow)?;
            shares.push(LossShare {
                user_id,
                weight,
                amount,
            });
        }
    }
    let platform = loss.checked_sub(users).ok_or(LossError::NotConserved {
        users,
        platform: Amount::ZERO,
        loss,
    })?;
    if platform < first || users.checked_add(platform) != Some(loss) {
        return Err(LossError::NotConserved {
            users,
            platform,
            loss,
        });
    }
    Ok(LossAllocation {
        loss,
        platform,
        users,
        total_weight: total,
        shares,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(user: &str, weight: u64) -> (String, U256) {
        (user.to_owned(), U256::from(weight))
    }

    #[test]
    fn a_worked_example_by_hand() {
        // Loss 100 units; 30 from commission first; 70 over weights
        // 1:2:4 (a: 10, b: 20, c: 40 exactly).
        let a = allocate(
            Amount::from_base(100),
            Amount::from_base(30),
            vec![w("a", 100), w("b", 200), w("c", 400)],
        )
        .unwrap();
        let got: Vec<u128> = a.shares.iter().map(|s| s.amount.base()).collect();
        assert_eq!(got, vec![10, 20, 40]);
        assert_eq!(a.platform, Amount::from_base(30));
        assert_eq!(a.users, Amount::from_base(70));
        // 10 over three equal weights: 3 each, the unit rounding leaves is
        // the platform's.
        let a = allocate(
            Amount::from_base(10),
            Amount::ZERO,
            vec![w("a", 5), w("b", 5), w("c", 5), w("zero", 0)],
        )
        .unwrap();
        assert_eq!(a.shares.len(), 3, "zero weight bears nothing");
        assert!(a.shares.iter().all(|s| s.amount == Amount::from_base(3)));
        assert_eq!(a.platform, Amount::from_base(1));
    }

    #[test]
    fn nobody_held_or_commission_covers_it_all() {
        let a = allocate(Amount::from_base(7), Amount::ZERO, vec![w("a", 0)]).unwrap();
        assert_eq!((a.platform, a.users), (Amount::from_base(7), Amount::ZERO));
        assert!(a.shares.is_empty());
        let a = allocate(Amount::from_base(7), Amount::from_base(9), vec![w("a", 3)]).unwrap();
        assert_eq!((a.platform, a.users), (Amount::from_base(7), Amount::ZERO));
        assert!(a.shares.is_empty());
    }

    proptest! {
        #[test]
        fn conserves_exactly_and_never_charges_a_user_above_the_exact_share(
            loss in 0u128..u128::MAX / 4,
            first in 0u128..u128::MAX / 4,
            weights in proptest::collection::vec(0u128..u128::MAX, 0..40),
        ) {
            let ws: Vec<(String, U256)> = weights
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("u{i}"), U256::from(*w)))
                .collect();
            let a = allocate(Amount::from_base(loss), Amount::from_base(first), ws).unwrap();
            prop_assert_eq!(a.users.checked_add(a.platform), Some(Amount::from_base(loss)));
            prop_assert!(a.platform >= Amount::from_base(first.min(loss)));
            let rest = U512::from(loss - first.min(loss));
            let total: U512 = weights.iter().map(|w| U512::from(*w)).fold(U512::ZERO, |s, w| s + w);
            let n = a.shares.len() as u128;
            for s in &a.shares {
                // a_i x W <= rest x w_i < (a_i + 1) x W
                let lhs = U512::from(s.amount.base()) * total;
                let exact = rest * U512::from(s.weight);
                prop_assert!(lhs <= exact);
                prop_assert!(exact < lhs + total);
            }
            // Rounding leaves less than one unit per user.
            if n > 0 {
                prop_assert!(a.platform.base() - first.min(loss) < n);
            }
        }
    }
}
