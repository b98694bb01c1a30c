//! Time-weighted balances.

use crate::U256;
use softstake_core::{Amount, Period, Timestamp};

/// One balance change: from `at` on, the balance is `balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// When it takes effect.
    pub at: Timestamp,
    /// The new absolute balance.
    pub balance: Amount,
}

/// The integral of the balance over `period` in base units x seconds.
///
/// `history` must be sorted by `at` (ties: later entries win). The balance
/// before the first point is zero. Time during which the balance is below
/// `min_balance` counts zero (the per-asset eligibility minimum), so a
/// deposit just before a snapshot earns only for the time it was held.
pub fn weight(history: &[Point], period: Period, min_balance: Amount) -> U256 {
    let (t0, t1) = (period.start().unix(), period.end().unix());
    let counted = |b: Amount| if b >= min_balance { b.base() } else { 0 };
    let mut current = 0u128;
    let mut cursor = t0;
    let mut total = U256::ZERO;
    for p in history {
        let at = p.at.unix();
        if at >= t1 {
            break;
        }
        if at > cursor {
            total += U256::from(current) * U256::from(at.abs_diff(cursor));
            cursor = at;
        }
        current = counted(p.balance);
    }
    total + U256::from(current) * U256::from(t1.abs_diff(cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(at: i64, b: u128) -> Point {
        Point {
            at: Timestamp::from_unix(at),
            balance: Amount::from_base(b),
        }
    }
    fn period(a: i64, b: i64) -> Period {
        Period::new(Timestamp::from_unix(a), Timestamp::from_unix(b)).unwrap()
    }

    #[test]
    fn integrates_balance_over_time() {
        // 100 from before the period, 300 from halfway.
        let h = [p(0, 100), p(50, 300)];
        assert_eq!(
            weight(&h, period(0, 100), Amount::ZERO),
            U256::from(100 * 50 + 300 * 50)
        );
        // Starts with the last balance before t0, ignores changes after t1.
        let h = [p(-10, 7), p(5, 9), p(200, 1_000)];
        assert_eq!(
            weight(&h, period(0, 10), Amount::ZERO),
            U256::from(7 * 5 + 9 * 5)
        );
        // Nothing before the first update.
        assert_eq!(
            weight(&[p(5, 10)], period(0, 10), Amount::ZERO),
            U256::from(50)
        );
        assert_eq!(weight(&[], period(0, 10), Amount::ZERO), U256::ZERO);
        // Same instant: the later entry wins.
        assert_eq!(
            weight(&[p(0, 1), p(0, 2)], period(0, 10), Amount::ZERO),
            U256::from(20)
        );
    }

    #[test]
    fn time_below_the_minimum_counts_zero() {
        let h = [p(0, 5), p(50, 20)];
        assert_eq!(
            weight(&h, period(0, 100), Amount::from_base(10)),
            U256::from(20 * 50)
        );
    }

    #[test]
    fn the_largest_balance_over_a_century_does_not_overflow() {
        let h = [p(0, u128::MAX)];
        let secs = 100 * 365 * 86_400;
        assert_eq!(
            weight(&h, period(0, secs), Amount::ZERO),
            U256::from(u128::MAX) * U256::from(secs)
        );
    }
}
