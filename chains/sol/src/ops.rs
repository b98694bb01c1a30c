//! Which [`Action`] each softstake operation becomes, decided from the
//! chain's state and checked before anything is signed:
//!
//! - `delegate`: a new seed-derived stake account, created, initialized and
//!   delegated in one transaction. Refused for a vote account that does not
//!   exist or is delinquent, under the minimum delegation, or beyond the
//!   custody balance (stake + rent-exempt reserve + fee reserve). Top-ups
//!   are new accounts; [`maintenance`] merges them once both are active.
//! - `undelegate`: deactivates stake on that vote account. Accounts still
//!   warming up go first (their stake comes back at once), then an account
//!   holding exactly the amount, then the smallest that can be split
//!   (split + deactivate the split-off part; both parts must keep the
//!   minimum delegation), else the largest account whole.
//! - `withdraw_unbonded`: withdraws every lamport of up to 8 inactive (or
//!   never delegated) accounts, closing them. Active stake is never
//!   withdrawn: such a request is refused.
//! - `redelegate`: if an inactive account can carry the stake it is
//!   delegated to the new vote account; otherwise the stake on the old one
//!   is deactivated first (the same choice as `undelegate`) and the next
//!   `redelegate` delegates it once it has cooled down.
//! - `claim_rewards`: refused; inflation rewards are paid into the stake
//!   accounts at each epoch boundary.
//! - `setup` step `merge`: merges two fully active accounts on the same vote
//!   account.

use crate::stake::{Phase, StakeView};
use crate::tx::{Action, MAX_WITHDRAWS_PER_TX, WithdrawEntry};
use serde::{Deserialize, Serialize};
use softstake_core::adapter::OperationKind;
use std::collections::BTreeMap;

/// A vote account as `getVoteAccounts` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteInfo {
    /// Listed as delinquent (not voting).
    pub delinquent: bool,
    /// Commission, percent.
    pub commission: u8,
}

/// What the adapter knows about the chain when it chooses an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainView {
    /// Custody balance, lamports.
    pub liquid: u64,
    /// Our stake accounts.
    pub accounts: Vec<StakeView>,
    /// Rent-exempt reserve of a stake account.
    pub rent_exempt_reserve: u64,
    /// The chain's minimum delegation.
    pub min_delegation: u64,
    /// Vote accounts the cluster knows.
    pub votes: BTreeMap<String, VoteInfo>,
    /// First seed index whose derived address holds no account.
    pub free_seed_index: u32,
    /// Lamports the custody account keeps for fees.
    pub fee_reserve: u64,
}

/// Why an operation was refused. Nothing was signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    /// The request cannot succeed on this chain as asked.
    #[error("{0}")]
    Refused(String),
}

fn refuse<T>(msg: impl Into<String>) -> Result<T, OpsError> {
    Err(OpsError::Refused(msg.into()))
}

fn check_vote(v: &ChainView, vote: &str) -> Result<(), OpsError> {
    match v.votes.get(vote) {
        None => refuse(format!(
            "vote account {vote} does not exist in the cluster's vote accounts"
        )),
        Some(i) if i.delinquent => refuse(format!(
            "vote account {vote} is delinquent (not voting); delegating to it would earn nothing"
        )),
        Some(_) => Ok(()),
    }
}

/// The action for `op`.
pub fn choose(op: &OperationKind, v: &ChainView) -> Result<Action, OpsError> {
    match op {
        OperationKind::Delegate { validator, amount } => {
            check_vote(v, validator)?;
            let amount = amount_u64(amount)?;
            if amount < v.min_delegation {
                return refuse(format!(
                    "{amount} lamports is under the minimum delegation {} (plus the {} rent-exempt reserve)",
                    v.min_delegation, v.rent_exempt_reserve
                ));
            }
            let needed = amount
                .checked_add(v.rent_exempt_reserve)
                .and_then(|n| n.checked_add(v.fee_reserve))
                .ok_or_else(|| OpsError::Refused("amount overflows".into()))?;
            if v.liquid < needed {
                return refuse(format!(
                    "delegating {amount} needs {needed} lamports (stake + rent-exempt reserve {} + fee reserve {}); the custody account holds {}",
                    v.rent_exempt_reserve, v.fee_reserve, v.liquid
                ));
            }
            Ok(Action::CreateAndDelegate {
                seed_index: v.free_seed_index,
                vote: validator.clone(),
                stake_lamports: amount,
            })
        }
        OperationKind::Undelegate { validator, amount } => {
            deactivate_on(v, validator, amount_u64(amount)?)
        }
        OperationKind::WithdrawUnbonded { .. } => {
            let ready: Vec<WithdrawEntry> = v
                .accounts
                .iter()
                .filter(|a| a.fully_withdrawable() && a.lamports > 0)
                .take(MAX_WITHDRAWS_PER_TX)
                .map(|a| WithdrawEntry {
                    account: a.address.clone(),
                    lamports: a.lamports,
                })
                .collect();
            if ready.is_empty() {
                let cooling = v
                    .accounts
                    .iter()
                    .filter(|a| a.phase == Phase::Deactivating)
                    .count();
                return refuse(format!(
                    "no stake account is inactive yet ({cooling} still cooling down); active stake cannot be withdrawn"
                ));
            }
            Ok(Action::Withdraw { accounts: ready })
        }
        OperationKind::Redelegate { from, to, amount } => {
            check_vote(v, to)?;
            let amount = amount_u64(amount)?;
            let inactive = v
                .accounts
                .iter()
                .filter(|a| {
                    a.fully_withdrawable()
                        && a.lamports.saturating_sub(v.rent_exempt_reserve) >= v.min_delegation
                })
                .min_by_key(|a| (a.lamports.abs_diff(amount), a.address.clone()));
            match inactive {
                Some(a) => Ok(Action::Delegate {
                    account: a.address.clone(),
                    vote: to.clone(),
                }),
                None => deactivate_on(v, from, amount),
            }
        }
        OperationKind::ClaimRewards { .. } => refuse(
            "Solana pays inflation rewards into the stake accounts at each epoch boundary; there is nothing to claim",
        ),
        OperationKind::Setup { step } if step == "merge" => maintenance(v).ok_or_else(|| {
            OpsError::Refused(
                "no two active stake accounts on the same vote account to merge".into(),
            )
        }),
        OperationKind::Setup { step } => {
            refuse(format!("unknown Solana setup step {step:?} (known: merge)"))
        }
    }
}

fn amount_u64(a: &softstake_core::Amount) -> Result<u64, OpsError> {
    u64::try_from(a.base())
        .map_err(|_| OpsError::Refused(format!("{a} lamports is more than any Solana balance")))
}

fn deactivate_on(v: &ChainView, vote: &str, amount: u64) -> Result<Action, OpsError> {
    if amount == 0 {
        return refuse("nothing to undelegate (amount 0)");
    }
    let mut on: Vec<&StakeView> = v
        .accounts
        .iter()
        .filter(|a| {
            a.voter.as_deref() == Some(vote) && matches!(a.phase, Phase::Active | Phase::Activating)
        })
        .collect();
    if on.is_empty() {
        return refuse(format!("no active stake on vote account {vote}"));
    }
    on.sort_by(|a, b| a.stake.cmp(&b.stake).then(a.address.cmp(&b.address)));
    let deactivate = |a: &StakeView| Action::Deactivate {
        account: a.address.clone(),
    };
    // Stake that has not started earning comes back at once.
    if let Some(a) = on.iter().find(|a| a.effective == 0 && a.stake <= amount) {
        return Ok(deactivate(a));
    }
    if let Some(a) = on.iter().find(|a| a.stake == amount) {
        return Ok(deactivate(a));
    }
    if let Some(a) = on.iter().find(|a| {
        a.stake > amount && amount >= v.min_delegation && a.stake - amount >= v.min_delegation
    }) {
        return Ok(Action::SplitAndDeactivate {
            source: a.address.clone(),
            seed_index: v.free_seed_index,
            lamports: amount,
        });
    }
    // Cannot split exactly: the smallest account that covers the amount,
    // else the largest there is (the rest follows in the next plan).
    let pick = on
        .iter()
        .find(|a| a.stake >= amount)
        .or_else(|| on.last())
        .copied();
    match pick {
        Some(a) => Ok(deactivate(a)),
        None => refuse(format!("no active stake on vote account {vote}")),
    }
}

/// Housekeeping: a merge of two fully active accounts on the same vote
/// account (the oldest delegation stays), if there is one.
pub fn maintenance(v: &ChainView) -> Option<Action> {
    let mut by_vote: BTreeMap<&str, Vec<&StakeView>> = BTreeMap::new();
    for a in &v.accounts {
        if let Some(voter) = a.voter.as_deref().filter(|_| a.phase == Phase::Active) {
            by_vote.entry(voter).or_default().push(a);
        }
    }
    by_vote.into_values().find(|l| l.len() >= 2).map(|mut l| {
        l.sort_by(|a, b| {
            a.activation_epoch
                .cmp(&b.activation_epoch)
                .then(a.address.cmp(&b.address))
        });
        Action::Merge {
            destination: l[0].address.clone(),
            source: l[1].address.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use softstake_core::Amount;

    fn acct(addr: &str, voter: &str, stake: u64, effective: u64, phase: Phase) -> StakeView {
        StakeView {
            address: addr.into(),
            lamports: stake + 2_282_880,
            staker: "me".into(),
            withdrawer: "me".into(),
            voter: Some(voter.into()),
            stake,
            activation_epoch: Some(1),
            deactivation_epoch: None,
            effective,
            activating: stake - effective,
            deactivating: 0,
            phase,
        }
    }

    fn view(accounts: Vec<StakeView>) -> ChainView {
        let mut votes = BTreeMap::new();
        votes.insert(
            "V1".into(),
            VoteInfo {
                delinquent: false,
                commission: 5,
            },
        );
        votes.insert(
            "V2".into(),
            VoteInfo {
                delinquent: false,
                commission: 5,
            },
        );
        votes.insert(
            "DEL".into(),
            VoteInfo {
                delinquent: true,
                commission: 5,
            },
        );
        ChainView {
            liquid: 100_000_000_000,
            accounts,
            rent_exempt_reserve: 2_282_880,
            min_delegation: 1_000_000_000,
            votes,
            free_seed_index: 7,
            fee_reserve: 10_000_000,
        }
    }

    fn delegate(v: &str, a: u128) -> OperationKind {
        OperationKind::Delegate {
            validator: v.into(),
            amount: Amount::from_base(a),
        }
    }

    #[test]
    fn delegation_is_refused_for_unknown_or_delinquent_votes_small_amounts_and_missing_funds() {
        let v = view(vec![]);
        let e = choose(&delegate("NOPE", 2_000_000_000), &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = choose(&delegate("DEL", 2_000_000_000), &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("delinquent"), "{e}");
        let e = choose(&delegate("V1", 999_999_999), &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("minimum delegation"), "{e}");
        let e = choose(&delegate("V1", 99_990_000_000), &v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("custody account holds"), "{e}");
        assert_eq!(
            choose(&delegate("V1", 5_000_000_000), &v).unwrap(),
            Action::CreateAndDelegate {
                seed_index: 7,
                vote: "V1".into(),
                stake_lamports: 5_000_000_000
            }
        );
    }

    #[test]
    fn undelegation_prefers_warming_stake_then_exact_then_split_then_whole() {
        let und = |a: u64| OperationKind::Undelegate {
            validator: "V1".into(),
            amount: Amount::from_base(u128::from(a)),
        };
        let v = view(vec![
            acct("A", "V1", 10_000_000_000, 10_000_000_000, Phase::Active),
            acct("B", "V1", 3_000_000_000, 3_000_000_000, Phase::Active),
            acct("W", "V1", 2_000_000_000, 0, Phase::Activating),
            acct("X", "V2", 3_000_000_000, 3_000_000_000, Phase::Active),
        ]);
        assert_eq!(
            choose(&und(2_500_000_000), &v).unwrap(),
            Action::Deactivate {
                account: "W".into()
            }
        );
        let no_warm = view(
            v.accounts
                .iter()
                .filter(|a| a.address != "W")
                .cloned()
                .collect(),
        );
        assert_eq!(
            choose(&und(3_000_000_000), &no_warm).unwrap(),
            Action::Deactivate {
                account: "B".into()
            }
        );
        assert_eq!(
            choose(&und(4_000_000_000), &no_warm).unwrap(),
            Action::SplitAndDeactivate {
                source: "A".into(),
                seed_index: 7,
                lamports: 4_000_000_000
            }
        );
        // Leaving less than the minimum in A: A whole.
        assert_eq!(
            choose(&und(9_500_000_000), &no_warm).unwrap(),
            Action::Deactivate {
                account: "A".into()
            }
        );
        // More than any account: the largest.
        assert_eq!(
            choose(&und(50_000_000_000), &no_warm).unwrap(),
            Action::Deactivate {
                account: "A".into()
            }
        );
        let e = choose(
            &OperationKind::Undelegate {
                validator: "V9".into(),
                amount: Amount::from_base(1),
            },
            &v,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no active stake"));
    }

    #[test]
    fn withdrawals_take_inactive_accounts_only_and_merges_pair_active_ones() {
        let mut inactive = acct("I", "V1", 3_000_000_000, 0, Phase::Inactive);
        inactive.activating = 0;
        let v = view(vec![
            acct("A", "V1", 10_000_000_000, 10_000_000_000, Phase::Active),
            inactive.clone(),
        ]);
        let w = OperationKind::WithdrawUnbonded {
            amount: Amount::from_base(1),
        };
        assert_eq!(
            choose(&w, &v).unwrap(),
            Action::Withdraw {
                accounts: vec![WithdrawEntry {
                    account: "I".into(),
                    lamports: inactive.lamports
                }]
            }
        );
        let active_only = view(vec![acct(
            "A",
            "V1",
            10_000_000_000,
            10_000_000_000,
            Phase::Active,
        )]);
        assert!(
            choose(&w, &active_only)
                .unwrap_err()
                .to_string()
                .contains("active stake cannot be withdrawn")
        );
        assert!(maintenance(&active_only).is_none());
        let mut b = acct("B", "V1", 2_000_000_000, 2_000_000_000, Phase::Active);
        b.activation_epoch = Some(0);
        let two = view(vec![
            acct("A", "V1", 10_000_000_000, 10_000_000_000, Phase::Active),
            b,
        ]);
        assert_eq!(
            maintenance(&two),
            Some(Action::Merge {
                destination: "B".into(),
                source: "A".into()
            })
        );
        // Redelegation re-uses the inactive account.
        let r = OperationKind::Redelegate {
            from: "V1".into(),
            to: "V2".into(),
            amount: Amount::from_base(3_000_000_000),
        };
        assert_eq!(
            choose(&r, &v).unwrap(),
            Action::Delegate {
                account: "I".into(),
                vote: "V2".into()
            }
        );
        assert!(choose(&OperationKind::ClaimRewards { validators: vec![] }, &v).is_err());
    }
}
