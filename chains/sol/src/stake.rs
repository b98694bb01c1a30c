//! Stake accounts as the chain stores them, and their activation state at
//! an epoch, computed from the account data and the StakeHistory sysvar
//! (`getStakeActivation` was removed from the RPC). The computation is the
//! stake interface's own (`stake_activating_and_deactivating_v2`, the
//! integer version the on-chain stake program uses) with the 9% warm-up
//! and cool-down rate that applies on every cluster today.

use serde::{Deserialize, Serialize};
use solana_sdk::pubkey::Pubkey;
use solana_stake_interface::stake_history::StakeHistory;
use solana_stake_interface::state::StakeStateV2;

/// Epoch from which the 9% warm-up/cool-down rate applies (all epochs: the
/// feature is active on mainnet, testnet and devnet).
pub const NEW_RATE_ACTIVATION_EPOCH: Option<u64> = Some(0);

/// Where a stake account is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Initialized, never delegated: all lamports withdrawable.
    Initialized,
    /// Delegated, part or all of it still warming up.
    Activating,
    /// Delegated and fully effective.
    Active,
    /// Deactivated, cooling down.
    Deactivating,
    /// Deactivated and cooled down: all lamports withdrawable.
    Inactive,
}

/// One stake account at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeView {
    /// Address.
    pub address: String,
    /// Lamports in the account.
    pub lamports: u64,
    /// Staker authority.
    pub staker: String,
    /// Withdraw authority.
    pub withdrawer: String,
    /// Vote account it is (or was) delegated to.
    pub voter: Option<String>,
    /// Delegated stake.
    pub stake: u64,
    /// Epoch the delegation was made (u64::MAX: bootstrap).
    pub activation_epoch: Option<u64>,
    /// Epoch it was deactivated (None: not deactivated).
    pub deactivation_epoch: Option<u64>,
    /// Effective stake now.
    pub effective: u64,
    /// Stake still warming up.
    pub activating: u64,
    /// Stake still cooling down.
    pub deactivating: u64,
    /// Life phase.
    pub phase: Phase,
}

impl StakeView {
    /// Whether the withdraw instruction can take every lamport now.
    pub fn fully_withdrawable(&self) -> bool {
        matches!(self.phase, Phase::Initialized | Phase::Inactive)
    }
}

/// Why account data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakeError {
    /// Not a stake account.
    #[error("account {0} is not a stake account we can read: {1}")]
    Decode(String, String),
}

/// Decodes the StakeHistory sysvar's data.
pub fn decode_history(data: &[u8]) -> Result<StakeHistory, StakeError> {
    bincode::deserialize(data)
        .map_err(|e| StakeError::Decode("SysvarStakeHistory".into(), e.to_string()))
}

/// Reads stake account `address` (data and lamports) at `epoch`. `None`
/// for an uninitialized account.
pub fn view(
    address: &Pubkey,
    lamports: u64,
    data: &[u8],
    epoch: u64,
    history: &StakeHistory,
) -> Result<Option<StakeView>, StakeError> {
    let state: StakeStateV2 = bincode::deserialize(data)
        .map_err(|e| StakeError::Decode(address.to_string(), e.to_string()))?;
    let meta = match state.meta() {
        Some(m) => m,
        None => return Ok(None),
    };
    let mut v = StakeView {
        address: address.to_string(),
        lamports,
        staker: meta.authorized.staker.to_string(),
        withdrawer: meta.authorized.withdrawer.to_string(),
        voter: None,
        stake: 0,
        activation_epoch: None,
        deactivation_epoch: None,
        effective: 0,
        activating: 0,
        deactivating: 0,
        phase: Phase::Initialized,
    };
    if let Some(d) = state.delegation() {
        let status =
            d.stake_activating_and_deactivating_v2(epoch, history, NEW_RATE_ACTIVATION_EPOCH);
        v.voter = Some(d.voter_pubkey.to_string());
        v.stake = d.stake;
        v.activation_epoch = Some(d.activation_epoch);
        v.deactivation_epoch = (d.deactivation_epoch != u64::MAX).then_some(d.deactivation_epoch);
        v.effective = status.effective;
        v.activating = status.activating;
        v.deactivating = status.deactivating;
        v.phase = if v.deactivation_epoch.is_some() {
            if status.effective == 0 && status.deactivating == 0 {
                Phase::Inactive
            } else {
                Phase::Deactivating
            }
        } else if status.activating > 0 {
            Phase::Activating
        } else {
            Phase::Active
        };
    }
    Ok(Some(v))
}

/// Epochs a deactivation starting now will take to cool down, given the
/// cluster's last history entry (9% of effective stake cools per epoch,
/// shared among everything deactivating). At least 1.
pub fn cooldown_epochs(history: &StakeHistory, extra_deactivating: u64) -> u64 {
    let Some((_, last)) = history.iter().next() else {
        return 1;
    };
    let allowance = u128::from(last.effective) * 900 / 10_000;
    if allowance == 0 {
        return 1;
    }
    let total = u128::from(last.deactivating) + u128::from(extra_deactivating);
    let epochs = total.div_ceil(allowance).max(1);
    u64::try_from(epochs).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_stake_interface::stake_flags::StakeFlags;
    use solana_stake_interface::stake_history::StakeHistoryEntry;
    use solana_stake_interface::state::{Authorized, Delegation, Meta, Stake};

    fn data(activation: u64, deactivation: u64, stake: u64) -> Vec<u8> {
        let who = Pubkey::new_from_array([1; 32]);
        let meta = Meta {
            authorized: Authorized {
                staker: who,
                withdrawer: who,
            },
            ..Meta::default()
        };
        let st = Stake {
            delegation: Delegation {
                voter_pubkey: Pubkey::new_from_array([2; 32]),
                stake,
                activation_epoch: activation,
                deactivation_epoch: deactivation,
                ..Delegation::default()
            },
            credits_observed: 0,
        };
        let mut d =
            bincode::serialize(&StakeStateV2::Stake(meta, st, StakeFlags::empty())).unwrap();
        d.resize(200, 0);
        d
    }

    #[test]
    fn warm_up_is_rate_limited_by_the_cluster_history_and_cool_down_ends_inactive() {
        let a = Pubkey::new_from_array([3; 32]);
        // Cluster: 1,000 effective; our 500 activating from epoch 10 is the
        // only activating stake, so 9% of 1,000 = 90 activates per epoch.
        let mut h = StakeHistory::default();
        h.add(
            10,
            StakeHistoryEntry::with_effective_and_activating(1_000, 500),
        );
        h.add(
            11,
            StakeHistoryEntry::with_effective_and_activating(1_090, 410),
        );
        let d = data(10, u64::MAX, 500);
        let at10 = view(&a, 600, &d, 10, &h).unwrap().unwrap();
        assert_eq!(
            (at10.effective, at10.activating, at10.phase),
            (0, 500, Phase::Activating)
        );
        let at11 = view(&a, 600, &d, 11, &h).unwrap().unwrap();
        assert_eq!((at11.effective, at11.activating), (90, 410));
        let at12 = view(&a, 600, &d, 12, &h).unwrap().unwrap();
        assert!(at12.effective > 90 && at12.effective < 500, "{at12:?}");
        // Without an activating total in history it is fully effective.
        let empty = StakeHistory::default();
        let full = view(&a, 600, &d, 12, &empty).unwrap().unwrap();
        assert_eq!((full.effective, full.phase), (500, Phase::Active));
        // Deactivated at 12: deactivating during 12, inactive after.
        let dd = data(5, 12, 500);
        let mut h2 = StakeHistory::default();
        h2.add(12, StakeHistoryEntry::with_deactivating(500));
        let at12 = view(&a, 600, &dd, 12, &empty).unwrap().unwrap();
        assert_eq!((at12.deactivating, at12.phase), (500, Phase::Deactivating));
        let at13 = view(&a, 600, &dd, 13, &empty).unwrap().unwrap();
        assert_eq!(at13.phase, Phase::Inactive);
        assert!(at13.fully_withdrawable());
        // Garbage data is an error naming the account.
        let err = view(&a, 1, &[9, 9], 1, &empty).unwrap_err();
        assert!(err.to_string().contains(&a.to_string()));
    }

    #[test]
    fn cooldown_estimate_grows_with_the_cluster_queue() {
        let mut h = StakeHistory::default();
        assert_eq!(cooldown_epochs(&h, 5), 1);
        h.add(
            3,
            StakeHistoryEntry {
                effective: 10_000,
                activating: 0,
                deactivating: 1_000,
            },
        );
        // 900 per epoch: 1,000 + 800 takes 2 epochs.
        assert_eq!(cooldown_epochs(&h, 800), 2);
        assert_eq!(cooldown_epochs(&h, 0), 2);
    }
}
