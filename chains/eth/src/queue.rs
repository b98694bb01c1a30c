//! When an exit requested now would leave the validator set, from what the
//! Beacon API shows of the exit queue.
//!
//! Since Electra the queue is counted in ether, not validators: the state
//! keeps `earliest_exit_epoch` and `exit_balance_to_consume`, and each exit
//! (full exits and partial withdrawals alike) takes its balance from the
//! per-epoch churn (`compute_exit_epoch_and_update_churn`). The Beacon API
//! does not serve those two fields, but it serves what they summarise: the
//! exit epoch of every validator already exiting and the exit epoch each
//! queued partial withdrawal was given (its withdrawable epoch less
//! MIN_VALIDATOR_WITHDRAWABILITY_DELAY). The newest of those epochs is the
//! queue's tail; the balance scheduled there is what that epoch's churn has
//! used. The churn itself is the spec's
//! `min(MAX_PER_EPOCH_ACTIVATION_EXIT_CHURN_LIMIT, max(MIN_PER_EPOCH_CHURN_
//! LIMIT_ELECTRA, total active balance / CHURN_LIMIT_QUOTIENT))`; the total
//! active balance is not served either, so it is taken as the most balance
//! any one scheduled epoch holds, within those bounds: exact when the queue
//! is long enough to matter (every epoch in it is full), and the lower
//! bound otherwise, which can only make a promise later, never earlier.

/// Balance scheduled to exit at an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduled {
    /// The exit epoch the state gave it.
    pub exit_epoch: u64,
    /// Gwei (a full exit: the effective balance; a partial withdrawal: its
    /// amount).
    pub gwei: u64,
}

/// The chain's constants the queue depends on (`/eth/v1/config/spec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// MAX_SEED_LOOKAHEAD (epochs).
    pub max_seed_lookahead: u64,
    /// MIN_VALIDATOR_WITHDRAWABILITY_DELAY (epochs).
    pub withdrawability_delay: u64,
    /// MIN_PER_EPOCH_CHURN_LIMIT_ELECTRA (gwei).
    pub min_churn: u64,
    /// MAX_PER_EPOCH_ACTIVATION_EXIT_CHURN_LIMIT (gwei).
    pub max_churn: u64,
    /// EFFECTIVE_BALANCE_INCREMENT (gwei).
    pub increment: u64,
    /// SHARD_COMMITTEE_PERIOD (epochs a validator must be active before
    /// the chain takes an exit or withdrawal request for it).
    pub shard_committee_period: u64,
}

impl QueueConfig {
    /// Mainnet's values, for a node that does not report them.
    pub const MAINNET: QueueConfig = QueueConfig {
        max_seed_lookahead: 4,
        withdrawability_delay: 256,
        min_churn: 128_000_000_000,
        max_churn: 256_000_000_000,
        increment: 1_000_000_000,
        shard_committee_period: 256,
    };
}

/// The per-epoch churn the queue shows (see the module notes).
pub fn churn(cfg: &QueueConfig, scheduled: &[Scheduled]) -> u64 {
    let mut per_epoch: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for s in scheduled {
        let e = per_epoch.entry(s.exit_epoch).or_default();
        *e = e.saturating_add(s.gwei);
    }
    let seen = per_epoch.values().copied().max().unwrap_or(0);
    let c = seen.clamp(cfg.min_churn, cfg.max_churn.max(cfg.min_churn));
    (c - c % cfg.increment.max(1)).max(1)
}

/// The exit epoch the spec's `compute_exit_epoch_and_update_churn` gives an
/// exit of `gwei` requested in epoch `current`, behind `scheduled`.
pub fn exit_epoch(cfg: &QueueConfig, current: u64, scheduled: &[Scheduled], gwei: u64) -> u64 {
    let per_epoch = churn(cfg, scheduled);
    let floor = current
        .saturating_add(1)
        .saturating_add(cfg.max_seed_lookahead);
    let tail = scheduled.iter().map(|s| s.exit_epoch).max().unwrap_or(0);
    let (mut epoch, left) = if tail < floor {
        (floor, per_epoch)
    } else {
        let used: u64 = scheduled
            .iter()
            .filter(|s| s.exit_epoch == tail)
            .map(|s| s.gwei)
            .fold(0u64, u64::saturating_add);
        (tail, per_epoch.saturating_sub(used))
    };
    if gwei > left {
        epoch = epoch.saturating_add((gwei - left - 1) / per_epoch + 1);
    }
    epoch
}

/// Epochs from `current` until an exit of `gwei` requested now is
/// withdrawable (the sweep then pays it).
pub fn epochs_to_withdrawable(
    cfg: &QueueConfig,
    current: u64,
    scheduled: &[Scheduled],
    gwei: u64,
) -> u64 {
    exit_epoch(cfg, current, scheduled, gwei)
        .saturating_add(cfg.withdrawability_delay)
        .saturating_sub(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: u64 = 1_000_000_000;
    const CFG: QueueConfig = QueueConfig::MAINNET;

    #[test]
    fn an_empty_queue_exits_after_the_seed_lookahead() {
        assert_eq!(exit_epoch(&CFG, 100, &[], 32 * E), 105);
        assert_eq!(epochs_to_withdrawable(&CFG, 100, &[], 32 * E), 5 + 256);
        // A consolidated validator larger than the churn spills over.
        assert_eq!(exit_epoch(&CFG, 100, &[], 2048 * E), 105 + 15);
    }

    #[test]
    fn a_long_queue_is_joined_at_its_tail_with_the_churn_it_shows() {
        // Forty days of full epochs at 256 ETH each: the tail epoch has
        // 224 ETH used, so 32 ETH still fits there, 64 ETH does not.
        let mut q: Vec<Scheduled> = (105..9105)
            .map(|e| Scheduled {
                exit_epoch: e,
                gwei: 256 * E,
            })
            .collect();
        q.push(Scheduled {
            exit_epoch: 9105,
            gwei: 224 * E,
        });
        assert_eq!(churn(&CFG, &q), 256 * E);
        assert_eq!(exit_epoch(&CFG, 100, &q, 32 * E), 9105);
        assert_eq!(exit_epoch(&CFG, 100, &q, 64 * E), 9106);
        assert_eq!(exit_epoch(&CFG, 100, &q, 544 * E), 9107);
    }

    #[test]
    fn a_short_queue_uses_the_lower_churn_bound_so_a_promise_is_never_early() {
        // One 32 ETH exit at the floor: the churn could be anything from
        // 128 to 256 ETH; with 128, 100 ETH more still fits, 128 does not.
        let q = [Scheduled {
            exit_epoch: 105,
            gwei: 32 * E,
        }];
        assert_eq!(churn(&CFG, &q), 128 * E);
        assert_eq!(exit_epoch(&CFG, 100, &q, 96 * E), 105);
        assert_eq!(exit_epoch(&CFG, 100, &q, 128 * E), 106);
        // An old tail below the floor is a fresh epoch.
        let old = [Scheduled {
            exit_epoch: 90,
            gwei: 128 * E,
        }];
        assert_eq!(exit_epoch(&CFG, 100, &old, 32 * E), 105);
    }
}
