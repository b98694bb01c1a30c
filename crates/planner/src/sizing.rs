//! The buffer's size from the exchange's own withdrawals.
//!
//! A fixed `buffer.target` is a guess. With `buffer.sizing` configured the
//! target is derived each cycle from what users actually withdrew: every
//! window as long as the chain's unbonding delay (the time it takes staked
//! coins to come back), ending now and once a day before (once a window,
//! for windows shorter than a day) back over the confidence horizon, sums
//! the withdrawals requested in it; the buffer must cover the `quantile` of
//! those sums (nearest rank, rounded up: p99.9 of fewer than 1,000
//! windows is the worst of them), as a share of today's
//! liabilities, kept within the configured floor and ceiling. With no
//! history (or no liabilities) the floor holds. The derivation is returned
//! in words for `softstake plan`.

use rust_decimal::Decimal;
use serde::Serialize;
use softstake_core::{Amount, Rate, Timestamp};

/// `buffer.sizing`, validated (softstake_core's config type).
pub use softstake_core::config::BufferSizing as OutflowSizing;

/// The derived target and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizedTarget {
    /// The target share of liabilities the planner uses.
    pub target: Rate,
    /// The outflow the buffer must cover (base units).
    pub outflow: Amount,
    /// How many windows the history had.
    pub windows: usize,
    /// The derivation in words.
    pub explanation: String,
}

const DAY: i64 = 86_400;
/// Decimal places a derived target keeps (rounded up: a larger buffer).
const PLACES: u32 = 6;

/// Sizes the buffer from `outflows` (request time, amount) for a chain
/// whose unbonding takes `window_secs`, given today's `liabilities`.
pub fn size_buffer(
    outflows: &[(Timestamp, Amount)],
    window_secs: u64,
    s: &OutflowSizing,
    liabilities: Amount,
    now: Timestamp,
) -> SizedTarget {
    let window = i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX);
    let horizon = i64::try_from(s.horizon_secs).unwrap_or(i64::MAX);
    let start = now.unix().saturating_sub(horizon);
    // Windows end now and every `step` before, as far as the horizon
    // holds a whole window: the most recent withdrawals always count.
    let step = window.min(DAY);
    // Sorted by time with running totals: each window's sum is two binary
    // searches, whatever the history's length.
    let mut sorted: Vec<(i64, u128)> = outflows.iter().map(|(t, a)| (t.unix(), a.base())).collect();
    sorted.sort_unstable();
    let mut running = Vec::with_capacity(sorted.len() + 1);
    running.push(0u128);
    for (_, a) in &sorted {
        let last = running.last().copied().unwrap_or(0);
        running.push(last.saturating_add(*a));
    }
    let before = |t: i64| sorted.partition_point(|(x, _)| *x < t);
    let mut sums = Vec::new();
    let mut to = now.unix();
    while to.saturating_sub(window) >= start {
        let from = to - window;
        let sum = running[before(to)] - running[before(from)];
        sums.push(Amount::from_base(sum));
        to -= step;
    }
    let clamp = |r: Decimal| r.max(s.floor.value()).min(s.ceiling.value());
    let pct = (s.quantile.value() * Decimal::ONE_HUNDRED).normalize();
    if sums.is_empty() || liabilities.is_zero() {
        let why = if sums.is_empty() {
            format!(
                "no {}-day window of withdrawal history yet",
                window_secs / 86_400
            )
        } else {
            "no liabilities".to_owned()
        };
        return SizedTarget {
            target: s.floor,
            outflow: Amount::ZERO,
            windows: sums.len(),
            explanation: format!("{why}: the floor {}", s.floor.value().normalize()),
        };
    }
    sums.sort_unstable();
    // Nearest rank, rounded up: the smallest sum at least q of windows do
    // not exceed.
    let n = Decimal::from(sums.len());
    let rank = (s.quantile.value() * n).ceil();
    let idx = usize::try_from(rank.mantissa())
        .unwrap_or(usize::MAX)
        .max(1)
        - 1;
    let outflow = sums[idx.min(sums.len() - 1)];
    let share =
        Decimal::from_i128_with_scale(i128::try_from(outflow.base()).unwrap_or(i128::MAX), 0)
            .checked_div(Decimal::from_i128_with_scale(
                i128::try_from(liabilities.base()).unwrap_or(i128::MAX),
                0,
            ))
            .unwrap_or(Decimal::MAX)
            .round_dp_with_strategy(PLACES, rust_decimal::RoundingStrategy::AwayFromZero);
    let target = clamp(share);
    let bound = if share < s.floor.value() {
        " (below the floor)"
    } else if share > s.ceiling.value() {
        " (above the ceiling)"
    } else {
        ""
    };
    SizedTarget {
        target: Rate::new(target).unwrap_or(s.ceiling),
        outflow,
        windows: sums.len(),
        explanation: format!(
            "p{pct} of {} daily {}-day windows of withdrawals over {} days is {outflow}, {} of liabilities {liabilities}{bound}: target {}",
            sums.len(),
            window_secs / 86_400,
            s.horizon_secs / 86_400,
            share.normalize(),
            target.normalize()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rate(s: &str) -> Rate {
        Rate::new(s.parse().unwrap()).unwrap()
    }

    fn sizing(q: &str) -> OutflowSizing {
        OutflowSizing {
            quantile: rate(q),
            horizon_secs: 30 * 86_400,
            floor: rate("0.05"),
            ceiling: rate("0.5"),
        }
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_worst_window_sets_the_buffer_within_floor_and_ceiling() {
        // 30 days of history, 7-day windows ending now and each day
        // before: 24 windows. One day had a
        // 300-coin run; every other day 10.
        let mut out: Vec<(Timestamp, Amount)> = (0..30)
            .map(|d| {
                (
                    Timestamp::from_unix(NOW - d * 86_400 - 1),
                    Amount::from_base(10),
                )
            })
            .collect();
        out.push((
            Timestamp::from_unix(NOW - 10 * 86_400),
            Amount::from_base(300),
        ));
        let s = size_buffer(
            &out,
            7 * 86_400,
            &sizing("1"),
            Amount::from_base(2_000),
            Timestamp::from_unix(NOW),
        );
        assert_eq!(s.windows, 24);
        assert_eq!(s.outflow, Amount::from_base(370));
        assert_eq!(s.target, rate("0.185"));
        assert!(
            s.explanation.contains("p100 of 24 daily 7-day windows"),
            "{}",
            s.explanation
        );
        // The median window has no run in it: 70 of 2,000 is below the floor.
        let m = size_buffer(
            &out,
            7 * 86_400,
            &sizing("0.5"),
            Amount::from_base(2_000),
            Timestamp::from_unix(NOW),
        );
        assert_eq!(m.outflow, Amount::from_base(70));
        assert_eq!(m.target, rate("0.05"));
        assert!(
            m.explanation.contains("below the floor"),
            "{}",
            m.explanation
        );
        // Small liabilities: the ceiling.
        let c = size_buffer(
            &out,
            7 * 86_400,
            &sizing("1"),
            Amount::from_base(100),
            Timestamp::from_unix(NOW),
        );
        assert_eq!(c.target, rate("0.5"));
        // No history window yet, or no liabilities: the floor.
        let e = size_buffer(
            &[],
            40 * 86_400,
            &sizing("1"),
            Amount::from_base(100),
            Timestamp::from_unix(NOW),
        );
        assert_eq!((e.target, e.windows), (rate("0.05"), 0));
        let z = size_buffer(
            &out,
            7 * 86_400,
            &sizing("1"),
            Amount::ZERO,
            Timestamp::from_unix(NOW),
        );
        assert_eq!(z.target, rate("0.05"));
    }

    #[test]
    fn a_share_that_does_not_divide_exactly_rounds_the_buffer_up() {
        let out = vec![(Timestamp::from_unix(NOW - 100), Amount::from_base(1))];
        let s = size_buffer(
            &out,
            86_400,
            &OutflowSizing {
                floor: rate("0"),
                ..sizing("1")
            },
            Amount::from_base(3),
            Timestamp::from_unix(NOW),
        );
        assert_eq!(s.target, rate("0.333334"));
    }

    proptest! {
        /// Against any history: the target is within floor and ceiling;
        /// when the quantile's outflow share lies between them the target
        /// covers it (never below); a higher quantile never sizes a smaller
        /// buffer; and at q = 1 no window of the history needed more.
        #[test]
        fn the_buffer_covers_the_quantile_of_any_history(
            events in proptest::collection::vec((0i64..60 * 86_400, 1u128..10_000), 0..80),
            window_days in 1u64..15,
            liabilities in 1u128..1_000_000,
            q_lo in 1u32..=1000,
            q_hi in 1u32..=1000,
        ) {
            let now = Timestamp::from_unix(NOW);
            let out: Vec<(Timestamp, Amount)> = events.iter()
                .map(|(ago, a)| (Timestamp::from_unix(NOW - ago), Amount::from_base(*a)))
                .collect();
            let (lo, hi) = (q_lo.min(q_hi), q_lo.max(q_hi));
            let qs = |q: u32| Rate::new(Decimal::new(i64::from(q), 3)).unwrap();
            let mk = |q: u32| OutflowSizing { quantile: qs(q), horizon_secs: 45 * 86_400, floor: rate("0.01"), ceiling: rate("0.9") };
            let w = window_days * 86_400;
            let a = size_buffer(&out, w, &mk(lo), Amount::from_base(liabilities), now);
            let b = size_buffer(&out, w, &mk(hi), Amount::from_base(liabilities), now);
            for s in [&a, &b] {
                prop_assert!(s.target.value() >= rate("0.01").value() && s.target.value() <= rate("0.9").value());
                let need = Decimal::from(u64::try_from(s.outflow.base()).unwrap()) / Decimal::from(u64::try_from(liabilities).unwrap());
                if need <= rate("0.9").value() {
                    prop_assert!(s.target.value() >= need, "{} < {}", s.target.value(), need);
                }
            }
            prop_assert!(b.outflow >= a.outflow);
            prop_assert!(b.target.value() >= a.target.value());
            let top = size_buffer(&out, w, &mk(1000), Amount::from_base(liabilities), now);
            // Every whole day-aligned-to-now window's sum, recomputed here.
            let wi = i64::try_from(w).unwrap();
            let mut to = NOW;
            while to - wi >= NOW - 45 * 86_400 {
                let sum: u128 = out.iter().filter(|(t, _)| t.unix() >= to - wi && t.unix() < to).map(|(_, a)| a.base()).sum();
                prop_assert!(sum <= top.outflow.base());
                to -= 86_400;
            }
        }
    }
}
