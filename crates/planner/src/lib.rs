//! The liquidity planner: a pure function, no I/O.
//!
//! [`plan`] takes the pool as the chain reports it, the users' liabilities
//! (sum of liquid balances), the withdrawals queued for liquidity, the
//! chain's policy and the time, and returns the operations to send, each
//! with the reason for it. It sends nothing; the executor journals and
//! sends what it returns.
//!
//! Rules, for bonded chains (funds locked while staked):
//! - matured unbonding is withdrawn first, then claimable rewards worth at
//!   least `min_operation` are claimed;
//! - *stake* only the excess over `queued + target x liabilities`, and only
//!   when the liquid share is above `target + band`: what queued
//!   withdrawals and the buffer need is never staked;
//! - *unstake* when liquid plus unbonding-in-flight cannot cover
//!   `queued + (target - band) x liabilities`, back up to
//!   `queued + target x liabilities`; withdrawals in the queue are served even
//!   below `min_operation`;
//! - moves respect the chain's minimum delegation, its stake chunk (Ethereum:
//!   32 ETH validators), its unbonding-entry limit per validator (Cosmos: 7),
//!   the per-operation cap and what is left of the daily cap; stake is
//!   spread over validators by weight within their caps.
//!
//! For liquid-delegation chains (Cardano; Tezos delegation) delegation keeps
//! the funds spendable, so the whole balance is delegated and no buffer is
//! kept: the only operation is delegating when the pool is not delegated to
//! a configured validator.

pub mod sizing;

use rust_decimal::Decimal;
use serde::Serialize;
use softstake_core::adapter::{Delegation, OperationKind, PoolStateResponse, ValidatorId};
use softstake_core::{Amount, Rate, Timestamp};
use std::collections::BTreeMap;

/// One configured validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorTarget {
    /// Address.
    pub address: ValidatorId,
    /// Relative weight (> 0).
    pub weight: u32,
    /// Most of the staked pool this validator may hold.
    pub cap: Rate,
}

/// A chain's policy, from config and today's moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Target liquid share of liabilities.
    pub target: Rate,
    /// Band either side of the target.
    pub band: Rate,
    /// Smallest operation worth sending (rebalancing only).
    pub min_operation: Amount,
    /// Validators (at least one).
    pub validators: Vec<ValidatorTarget>,
    /// Most one operation may move.
    pub max_per_operation: Amount,
    /// What the daily cap still allows today.
    pub remaining_today: Amount,
    /// Validators the pool lost stake with (the store's loss marks): no
    /// new stake goes to them, like validators the chain shows impaired,
    /// until an operator clears the mark.
    pub marked: std::collections::BTreeSet<String>,
    /// The most commission a validator may charge: one the chain shows
    /// above it is treated like an impaired one (no new stake; its stake
    /// is moved where the chain redelegates). None: any.
    pub max_commission: Option<Rate>,
}

/// Why a delegation's validator charges more than the policy allows, or
/// `None` (no limit, or a commission the chain does not report or that is
/// within it).
fn over_commission(d: &Delegation, policy: &Policy) -> Option<String> {
    let max = policy.max_commission?;
    let c = d.commission.as_deref()?.parse::<Decimal>().ok()?;
    (c > max.value()).then(|| {
        format!(
            "charging commission {} above max_validator_commission {}",
            c.normalize(),
            max.value().normalize()
        )
    })
}

/// What the planner saw and aimed for, for `softstake plan` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Liquid now, counting matured unbonding.
    pub liquid: Amount,
    /// Staked (active + activating).
    pub staked: Amount,
    /// Unbonding in flight (not yet matured).
    pub unbonding: Amount,
    /// Liabilities.
    pub liabilities: Amount,
    /// Queued withdrawals.
    pub queued: Amount,
    /// Lowest acceptable liquid: queued + (target - band) x liabilities.
    pub floor: Amount,
    /// Aim: queued + target x liabilities.
    pub aim: Amount,
    /// Highest acceptable liquid: queued + (target + band) x liabilities.
    pub ceiling: Amount,
}

/// One operation and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedOp {
    /// What to do.
    pub kind: OperationKind,
    /// Why, in words for the operator.
    pub reason: String,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What the planner saw.
    pub summary: PlanSummary,
    /// Operations, in the order to send them.
    pub ops: Vec<PlannedOp>,
    /// Things the planner wanted but could not do (caps, limits).
    pub blocked: Vec<String>,
    /// How the buffer target was derived from observed withdrawals, when
    /// `buffer.sizing` is configured (set by the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizing: Option<sizing::SizedTarget>,
}

/// Inputs the planner refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No validators configured.
    #[error("no validators configured")]
    NoValidators,
    /// Amounts too large to add up.
    #[error("pool amounts overflow")]
    Overflow,
}

fn sum(items: impl IntoIterator<Item = Amount>) -> Result<Amount, PlanError> {
    Amount::checked_sum(items).ok_or(PlanError::Overflow)
}

/// Rounds down to a multiple of `chunk` (if any).
fn round_down(a: Amount, chunk: Option<Amount>) -> Amount {
    match chunk {
        Some(c) if !c.is_zero() => Amount::from_base(a.base() - a.base() % c.base()),
        _ => a,
    }
}

/// Rounds up to a multiple of `chunk`, but never above `max`.
fn round_up_within(a: Amount, chunk: Option<Amount>, max: Amount) -> Amount {
    let up = match chunk {
        Some(c) if !c.is_zero() && !a.base().is_multiple_of(c.base()) => a
            .base()
            .checked_add(c.base() - a.base() % c.base())
            .map_or(a, Amount::from_base),
        _ => a,
    };
    if up > max { round_down(max, chunk) } else { up }
}

/// Plans operations for one chain at `now`. Pure: same inputs, same plan.
pub fn plan(
    state: &PoolStateResponse,
    liabilities: Amount,
    queued: Amount,
    policy: &Policy,
    _now: Timestamp,
) -> Result<Plan, PlanError> {
    if policy.validators.is_empty() {
        return Err(PlanError::NoValidators);
    }
    let limits = &state.limits;
    let staked_by: BTreeMap<&str, Amount> = state
        .delegations
        .iter()
        .map(|d| {
            d.active
                .checked_add(d.activating)
                .map(|v| (d.validator.as_str(), v))
                .ok_or(PlanError::Overflow)
        })
        .collect::<Result<_, _>>()?;
    let staked = sum(staked_by.values().copied())?;
    let unbonding = sum(state.unbonding.iter().map(|u| u.amount))?;
    let liquid = state
        .liquid
        .checked_add(state.withdrawable)
        .ok_or(PlanError::Overflow)?;
    let share = |r: Rate| -> Result<Amount, PlanError> {
        queued
            .checked_add(r.apply_floor(liabilities))
            .ok_or(PlanError::Overflow)
    };
    let (t, b) = (policy.target.value(), policy.band.value());
    let low = Rate::new((t - b).max(Decimal::ZERO)).unwrap_or(Rate::ZERO);
    let high = Rate::new((t + b).min(Decimal::ONE)).unwrap_or(Rate::ONE);
    let floor = share(low)?;
    let aim = share(policy.target)?;
    let ceiling = share(high)?;
    let summary = PlanSummary {
        liquid,
        staked,
        unbonding,
        liabilities,
        queued,
        floor,
        aim,
        ceiling,
    };
    let mut ops = Vec::new();
    let mut blocked = Vec::new();
    // A plan moves in one direction only, so one operation set shares the
    // day's remaining budget.
    let budget = policy.remaining_today;

    if limits.delegation_keeps_funds_liquid {
        let on_configured = state
            .delegations
            .iter()
            .any(|d| policy.validators.iter().any(|v| v.address == d.validator));
        let balance = liquid.checked_add(staked).ok_or(PlanError::Overflow)?;
        let unmarked: Vec<ValidatorTarget> = policy
            .validators
            .iter()
            .filter(|v| !policy.marked.contains(&v.address))
            .cloned()
            .collect();
        if !on_configured && !balance.is_zero() && unmarked.is_empty() {
            blocked.push(format!(
                "would delegate the whole balance {balance} but every configured validator is marked by a loss (softstake books marks)"
            ));
        } else if !on_configured && !balance.is_zero() {
            let best = best_validator(&unmarked);
            ops.push(PlannedOp {
                kind: OperationKind::Delegate {
                    validator: best.address.clone(),
                    amount: balance,
                },
                reason: format!(
                    "delegation keeps funds spendable on this chain: delegate the whole balance {balance} to {} (highest weight)",
                    best.address
                ),
            });
        }
        return Ok(Plan {
            summary,
            ops,
            blocked,
            sizing: None,
        });
    }

    if !state.withdrawable.is_zero() {
        ops.push(PlannedOp {
            kind: OperationKind::WithdrawUnbonded {
                amount: state.withdrawable,
            },
            reason: format!("{} of unbonding has matured", state.withdrawable),
        });
    }
    if !state.claimable_rewards.is_zero() && state.claimable_rewards >= policy.min_operation {
        ops.push(PlannedOp {
            kind: OperationKind::ClaimRewards {
                validators: Vec::new(),
            },
            reason: format!("{} of rewards are claimable", state.claimable_rewards),
        });
    }

    let min_move = policy.min_operation.max(limits.min_delegation);
    // New stake never goes to a validator the chain shows impaired
    // (slashed, jailed, delinquent) or a loss marked: the rest share it by
    // weight.
    let impaired: std::collections::BTreeSet<&str> = state
        .delegations
        .iter()
        .filter(|d| d.impaired || over_commission(d, policy).is_some())
        .map(|d| d.validator.as_str())
        .chain(policy.marked.iter().map(String::as_str))
        .collect();
    let eligible: Vec<ValidatorTarget> = policy
        .validators
        .iter()
        .filter(|v| !impaired.contains(v.address.as_str()))
        .cloned()
        .collect();
    let cap = |a: Amount, budget: Amount| a.min(policy.max_per_operation).min(budget);

    if liquid > ceiling {
        // Stake the excess over the aim, never what the aim needs.
        let excess = liquid.saturating_sub(aim);
        let amount = round_down(cap(excess, budget), limits.stake_chunk);
        if amount < min_move || amount.is_zero() {
            if excess >= min_move {
                blocked.push(format!(
                    "would stake {excess} but the per-operation or daily cap leaves {amount}"
                ));
            }
        } else if eligible.is_empty() {
            blocked.push(format!(
                "would stake {amount} but every configured validator is impaired (slashed, jailed or delinquent)"
            ));
        } else {
            // Caps are shares of the stake after the plan, so what cannot
            // be placed shrinks that total and the room under every cap:
            // place less until everything placed fits (it only shrinks).
            // On chunked chains a plan sends at most MAX_CHUNK_OPS chunks:
            // spread only those, so the caps hold for what is sent.
            let amount = match limits.stake_chunk {
                Some(c) if !c.is_zero() => {
                    let most = c.checked_mul(MAX_CHUNK_OPS as u128).unwrap_or(amount);
                    if amount > most {
                        blocked.push(format!(
                            "{} more of the stake must wait for the next plan (at most {MAX_CHUNK_OPS} operations of {c} per plan)",
                            amount.saturating_sub(most)
                        ));
                    }
                    amount.min(most)
                }
                _ => amount,
            };
            let mut placing = amount;
            let mut pieces = Vec::new();
            for _ in 0..64 {
                let total_after = staked.checked_add(placing).ok_or(PlanError::Overflow)?;
                let (p, unplaced) = spread(
                    placing,
                    total_after,
                    &staked_by,
                    &eligible,
                    limits.stake_chunk,
                    limits.min_delegation,
                );
                pieces = p;
                if unplaced.is_zero() {
                    break;
                }
                placing = round_down(placing.saturating_sub(unplaced), limits.stake_chunk);
                pieces.clear();
            }
            let unplaced = amount.saturating_sub(sum(pieces.iter().map(|p| p.1))?);
            if !unplaced.is_zero() {
                blocked.push(format!(
                    "{unplaced} of the stake was not placed: no validator has room for it under its cap (or it is below the chain's minimum delegation)"
                ));
            }
            for (validator, a) in pieces {
                ops.push(PlannedOp {
                    reason: format!(
                        "liquid {liquid} is above the band's ceiling {ceiling}; staking the excess over the aim {aim}"
                    ),
                    kind: OperationKind::Delegate { validator, amount: a },
                });
            }
        }
    } else {
        let covered = liquid.checked_add(unbonding).ok_or(PlanError::Overflow)?;
        if covered < floor {
            let missing = aim.saturating_sub(covered);
            // Users are waiting: unstake for them however small the amount.
            let serving_queue = !queued.is_zero();
            let wanted = round_up_within(missing, limits.stake_chunk, staked);
            let amount = cap(wanted, budget);
            let amount = if wanted > amount {
                blocked.push(format!(
                    "need to unstake {wanted} but the per-operation or daily cap allows {amount}"
                ));
                round_down(amount, limits.stake_chunk)
            } else {
                amount
            };
            if amount.is_zero() || (amount < policy.min_operation && !serving_queue) {
                if !amount.is_zero() {
                    blocked.push(format!("unstaking {amount} is below min_operation"));
                }
            } else {
                let mut left = amount;
                let mut entries: BTreeMap<&str, u32> = BTreeMap::new();
                for u in &state.unbonding {
                    *entries.entry(u.validator.as_str()).or_default() += 1;
                }
                // Take from the validators most over their target share.
                let mut order: Vec<(&str, Amount)> =
                    staked_by.iter().map(|(v, a)| (*v, *a)).collect();
                order.sort_by(|a, b| {
                    over_target(b, staked, policy)
                        .cmp(&over_target(a, staked, policy))
                        .then(a.0.cmp(b.0))
                });
                for (v, have) in order {
                    if left.is_zero() {
                        break;
                    }
                    if limits
                        .max_unbonding_entries
                        .is_some_and(|m| entries.get(v).copied().unwrap_or(0) >= m)
                    {
                        blocked.push(format!("{v} is at the chain's unbonding-entry limit"));
                        continue;
                    }
                    let take = round_down(left.min(have), limits.stake_chunk);
                    if take.is_zero() {
                        continue;
                    }
                    ops.push(PlannedOp {
                        kind: OperationKind::Undelegate {
                            validator: v.to_owned(),
                            amount: take,
                        },
                        reason: format!(
                            "liquid {liquid} plus unbonding {unbonding} is below the floor {floor} (queued withdrawals {queued}); unstaking back to the aim {aim}"
                        ),
                    });
                    left = left.saturating_sub(take);
                }
                if !left.is_zero() {
                    blocked.push(format!(
                        "{left} could not be unstaked (entry limits or chunk size)"
                    ));
                }
            }
        }
    }
    // Stake on a validator the chain shows impaired, or a loss marked, is
    // moved to the healthy ones where the chain moves stake without
    // unbonding (redelegation keeps it earning), within their caps. Only
    // in a plan that neither stakes nor unstakes: serving the buffer and
    // the withdrawal queue comes first, and two moves never compete for
    // one delegation.
    let rebalancing = ops.iter().any(|o| {
        matches!(
            o.kind,
            OperationKind::Delegate { .. } | OperationKind::Undelegate { .. }
        )
    });
    if !rebalancing {
        let mut budget = budget;
        let mut after_by = staked_by.clone();
        for d in &state.delegations {
            let v = d.validator.as_str();
            let have = staked_by.get(v).copied().unwrap_or(Amount::ZERO);
            if !impaired.contains(v) || have.is_zero() {
                continue;
            }
            let why = if d.impaired {
                "shown impaired by the chain (jailed, tombstoned or not earning)".to_owned()
            } else if let Some(c) = over_commission(d, policy) {
                c
            } else {
                "marked by a loss (softstake books marks)".to_owned()
            };
            if !limits.redelegation {
                blocked.push(format!(
                    "{v} is {why} and holds {have}: on this chain stake leaves it only by unstaking, which is not planned for it"
                ));
                continue;
            }
            if limits.redelegation_locked.iter().any(|l| l == v) {
                blocked.push(format!(
                    "{v} is {why} and holds {have}, but stake redelegated to it is still maturing: it is moved once that matures"
                ));
                continue;
            }
            if eligible.is_empty() {
                blocked.push(format!(
                    "{v} is {why} and holds {have}, but no configured validator is healthy to take it"
                ));
                continue;
            }
            let amount = cap(have, budget);
            if amount < have {
                blocked.push(format!(
                    "moving {have} off {v}: the per-operation or daily cap allows {amount} in this plan"
                ));
            }
            if amount.is_zero() {
                continue;
            }
            let (pieces, unplaced) = spread(
                amount,
                staked,
                &after_by,
                &eligible,
                limits.stake_chunk,
                limits.min_delegation,
            );
            if !unplaced.is_zero() {
                blocked.push(format!(
                    "{unplaced} of {v}'s stake found no room under the healthy validators' caps"
                ));
            }
            for (to, a) in pieces {
                budget = budget.saturating_sub(a);
                if let Some(h) = after_by.get_mut(v) {
                    *h = h.saturating_sub(a);
                }
                let target = policy
                    .validators
                    .iter()
                    .find(|t| t.address == to)
                    .map(|t| t.address.as_str());
                if let Some(t) = target {
                    let e = after_by.entry(t).or_insert(Amount::ZERO);
                    *e = e.checked_add(a).ok_or(PlanError::Overflow)?;
                }
                ops.push(PlannedOp {
                    reason: format!(
                        "{v} is {why}: moving {a} of its stake to {to} by redelegation (it keeps earning; no unbonding)"
                    ),
                    kind: OperationKind::Redelegate {
                        from: v.to_owned(),
                        to,
                        amount: a,
                    },
                });
            }
        }
    }
    if let Some(chunk) = limits.stake_chunk.filter(|c| !c.is_zero()) {
        ops = one_chunk_per_operation(ops, chunk, &mut blocked);
    }
    Ok(Plan {
        summary,
        ops,
        blocked,
        sizing: None,
    })
}

/// Most chunk-sized operations one plan sends (Ethereum: 16 validators).
pub const MAX_CHUNK_OPS: usize = 16;

/// On chunked chains every chunk is its own on-chain operation (Ethereum:
/// one deposit or one exit request per validator), so a move of k chunks
/// becomes k operations of one chunk, at most [`MAX_CHUNK_OPS`] per plan.
fn one_chunk_per_operation(
    ops: Vec<PlannedOp>,
    chunk: Amount,
    blocked: &mut Vec<String>,
) -> Vec<PlannedOp> {
    let mut out = Vec::new();
    for op in ops {
        let (amount, rebuild): (Amount, Box<dyn Fn(Amount) -> OperationKind>) = match &op.kind {
            OperationKind::Delegate { validator, amount } => {
                let v = validator.clone();
                (
                    *amount,
                    Box::new(move |a| OperationKind::Delegate {
                        validator: v.clone(),
                        amount: a,
                    }),
                )
            }
            OperationKind::Undelegate { validator, amount } => {
                let v = validator.clone();
                (
                    *amount,
                    Box::new(move |a| OperationKind::Undelegate {
                        validator: v.clone(),
                        amount: a,
                    }),
                )
            }
            _ => {
                out.push(op);
                continue;
            }
        };
        let n = amount.base() / chunk.base();
        if n <= 1 || amount.base() % chunk.base() != 0 {
            out.push(op);
            continue;
        }
        for i in 0..n {
            if out.len() >= MAX_CHUNK_OPS {
                blocked.push(format!(
                    "{} more chunk(s) of {chunk} wait for the next plan (at most {MAX_CHUNK_OPS} operations per plan)",
                    n - i
                ));
                break;
            }
            out.push(PlannedOp {
                kind: rebuild(chunk),
                reason: format!("{} (chunk {} of {n})", op.reason, i + 1),
            });
        }
    }
    out
}

/// `have - target share` as a signed number (for ordering only).
fn over_target(v: &(&str, Amount), staked: Amount, policy: &Policy) -> i128 {
    let total_w: u128 = policy.validators.iter().map(|t| u128::from(t.weight)).sum();
    let w = policy
        .validators
        .iter()
        .find(|t| t.address == v.0)
        .map_or(0, |t| u128::from(t.weight));
    let target = staked
        .mul_div_floor(w, total_w.max(1))
        .map_or(0, |(a, _)| a.base());
    let have = v.1.base();
    i128::try_from(have).unwrap_or(i128::MAX) - i128::try_from(target).unwrap_or(i128::MAX)
}

fn best_validator(vs: &[ValidatorTarget]) -> &ValidatorTarget {
    let mut best = &vs[0];
    for v in vs {
        if v.weight > best.weight {
            best = v;
        }
    }
    best
}

/// Splits `amount` of new stake over validators toward their weighted
/// targets of `total_after`, never above a validator's cap, in chunks,
/// each piece at least the chain minimum. What rounding leaves goes to the
/// validator with the most room under its cap; what no validator has room
/// for (or a piece below the minimum that fits nowhere) is not placed and
/// returned as the second value.
fn spread(
    amount: Amount,
    total_after: Amount,
    staked_by: &BTreeMap<&str, Amount>,
    validators: &[ValidatorTarget],
    chunk: Option<Amount>,
    min_delegation: Amount,
) -> (Vec<(ValidatorId, Amount)>, Amount) {
    let total_w: u128 = validators
        .iter()
        .map(|t| u128::from(t.weight))
        .sum::<u128>()
        .max(1);
    let have = |v: &ValidatorTarget| {
        staked_by
            .get(v.address.as_str())
            .copied()
            .unwrap_or(Amount::ZERO)
    };
    // Room under each cap, after what this plan gives.
    let mut room: Vec<Amount> = validators
        .iter()
        .map(|v| v.cap.apply_floor(total_after).saturating_sub(have(v)))
        .collect();
    let mut given: Vec<Amount> = vec![Amount::ZERO; validators.len()];
    let mut left = amount;
    for (i, v) in validators.iter().enumerate() {
        let target = total_after
            .mul_div_floor(u128::from(v.weight), total_w)
            .map_or(Amount::ZERO, |(a, _)| a);
        let want = target.saturating_sub(have(v)).min(room[i]);
        let take = round_down(want.min(left), chunk);
        given[i] = take;
        room[i] = room[i].saturating_sub(take);
        left = left.saturating_sub(take);
    }
    // What rounding left: to the most room first, within caps.
    while !left.is_zero() {
        let Some(i) = (0..validators.len())
            .filter(|i| !round_down(room[*i].min(left), chunk).is_zero())
            .max_by(|a, b| room[*a].cmp(&room[*b]).then(b.cmp(a)))
        else {
            break;
        };
        let take = round_down(room[i].min(left), chunk);
        given[i] = given[i].checked_add(take).unwrap_or(given[i]);
        room[i] = room[i].saturating_sub(take);
        left = left.saturating_sub(take);
    }
    // Pieces below the chain minimum join the largest piece that has room
    // for them, or are not placed.
    let mut order: Vec<usize> = (0..validators.len())
        .filter(|i| !given[*i].is_zero())
        .collect();
    order.sort_by(|a, b| {
        given[*b]
            .cmp(&given[*a])
            .then(validators[*a].address.cmp(&validators[*b].address))
    });
    let mut out: Vec<(usize, Amount)> = Vec::new();
    for i in order {
        let a = given[i];
        if a >= min_delegation {
            out.push((i, a));
            continue;
        }
        match out.first_mut() {
            Some((j, big)) if room[*j] >= a => {
                room[*j] = room[*j].saturating_sub(a);
                *big = big.checked_add(a).unwrap_or(*big);
            }
            _ => left = left.checked_add(a).unwrap_or(left),
        }
    }
    (
        out.into_iter()
            .map(|(i, a)| (validators[i].address.clone(), a))
            .collect(),
        left,
    )
}

#[cfg(test)]
mod tests;
