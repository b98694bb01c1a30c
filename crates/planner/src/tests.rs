use super::*;
use proptest::prelude::*;
use softstake_core::ChainId;
use softstake_core::adapter::{ChainLimits, Delegation, UnbondingEntry};

const DAY: i64 = 86_400;

fn limits(chunk: Option<u128>, max_entries: Option<u32>, liquid_delegation: bool) -> ChainLimits {
    ChainLimits {
        min_delegation: Amount::from_base(1),
        max_unbonding_entries: max_entries,
        unbonding_delay_secs: 21 * 86_400,
        delegation_keeps_funds_liquid: liquid_delegation,
        stake_chunk: chunk.map(Amount::from_base),
        redelegation: false,
        redelegation_locked: Vec::new(),
    }
}

fn state(
    liquid: u128,
    dels: &[(&str, u128)],
    unb: &[(&str, u128)],
    limits: ChainLimits,
) -> PoolStateResponse {
    PoolStateResponse {
        chain: ChainId::Cosmos,
        as_of: Timestamp::from_unix(0),
        liquid: Amount::from_base(liquid),
        delegations: dels
            .iter()
            .map(|(v, a)| Delegation {
                validator: (*v).into(),
                active: Amount::from_base(*a),
                activating: Amount::ZERO,
                impaired: false,
                commission: None,
            })
            .collect(),
        unbonding: unb
            .iter()
            .map(|(v, a)| UnbondingEntry {
                validator: (*v).into(),
                amount: Amount::from_base(*a),
                completes_at: Timestamp::from_unix(21 * DAY),
            })
            .collect(),
        withdrawable: Amount::ZERO,
        claimable_rewards: Amount::ZERO,
        reserved: Amount::ZERO,
        limits,
        losses: Vec::new(),
        alerts: Vec::new(),
    }
}

fn rate(permille: i64) -> Rate {
    Rate::new(Decimal::new(permille, 3)).unwrap()
}

fn policy(vals: &[(&str, u32)], target: i64, band: i64) -> Policy {
    Policy {
        target: rate(target),
        band: rate(band),
        min_operation: Amount::from_base(10),
        validators: vals
            .iter()
            .map(|(a, w)| ValidatorTarget {
                address: (*a).into(),
                weight: *w,
                cap: Rate::ONE,
            })
            .collect(),
        max_per_operation: Amount::from_base(u128::MAX),
        remaining_today: Amount::from_base(u128::MAX),
        marked: Default::default(),
        max_commission: None,
    }
}

fn now() -> Timestamp {
    Timestamp::from_unix(0)
}

/// Plans with liabilities and queued withdrawals in base units.
fn run(s: &PoolStateResponse, liabilities: u128, queued: u128, pol: &Policy) -> Plan {
    plan(
        s,
        Amount::from_base(liabilities),
        Amount::from_base(queued),
        pol,
        now(),
    )
    .unwrap()
}

fn moves(p: &Plan) -> Vec<(String, &str, u128)> {
    p.ops
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::Delegate { validator, amount } => {
                Some(("delegate".into(), validator.as_str(), amount.base()))
            }
            OperationKind::Undelegate { validator, amount } => {
                Some(("undelegate".into(), validator.as_str(), amount.base()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn stakes_only_the_excess_over_the_aim_spread_by_weight() {
    // Liabilities 1000, target 10% +/- 2%: aim 100, ceiling 120. Liquid 1000.
    let s = state(1000, &[], &[], limits(None, Some(7), false));
    let p = run(&s, 1000, 0, &policy(&[("a", 1), ("b", 1)], 100, 20));
    assert_eq!(p.summary.aim, Amount::from_base(100));
    assert_eq!(
        moves(&p),
        [
            ("delegate".to_string(), "a", 450),
            ("delegate".to_string(), "b", 450)
        ]
    );
    assert!(p.ops.iter().all(|o| o.reason.contains("ceiling")));
}

#[test]
fn new_stake_never_goes_to_an_impaired_validator() {
    // "a" was slashed (or is jailed, delinquent): "b" takes all new stake.
    let mut s = state(1000, &[("a", 0)], &[], limits(None, Some(7), false));
    s.delegations[0].impaired = true;
    let p = run(&s, 1000, 0, &policy(&[("a", 1), ("b", 1)], 100, 20));
    assert_eq!(moves(&p), [("delegate".to_string(), "b", 900)]);
    // Every target impaired: nothing is staked, and the plan says why.
    let mut s = state(
        1000,
        &[("a", 0), ("b", 0)],
        &[],
        limits(None, Some(7), false),
    );
    s.delegations.iter_mut().for_each(|d| d.impaired = true);
    let p = run(&s, 1000, 0, &policy(&[("a", 1), ("b", 1)], 100, 20));
    assert!(moves(&p).is_empty());
    assert!(
        p.blocked.iter().any(|b| b.contains("impaired")),
        "{:?}",
        p.blocked
    );
}

/// Issue 25: a validator charging more than `max_commission` is treated
/// like an impaired one: no new stake, and its stake is moved where the
/// chain redelegates, with the reason; a commission the chain does not
/// report, or one at the limit, changes nothing.
#[test]
fn a_validator_above_the_commission_limit_gets_no_stake_and_its_stake_is_moved() {
    let mut pol = policy(&[("a", 1), ("b", 1)], 100, 20);
    pol.max_commission = Some(rate(100));
    // New stake: "a" charges 15%, "b" 10% (at the limit): all to "b".
    let mut s = state(
        1000,
        &[("a", 0), ("b", 0)],
        &[],
        limits(None, Some(7), false),
    );
    s.delegations[0].commission = Some("0.15".into());
    s.delegations[1].commission = Some("0.1".into());
    let p = run(&s, 1000, 0, &pol);
    assert_eq!(moves(&p), [("delegate".to_string(), "b", 900)]);
    // Without a limit, both share it.
    let mut any = pol.clone();
    any.max_commission = None;
    assert_eq!(run(&s, 1000, 0, &any).ops.len(), 2);
    // A commission the chain does not report is no reason to move.
    s.delegations[0].commission = None;
    assert_eq!(run(&s, 1000, 0, &pol).ops.len(), 2);
    // Stake on "a" after it raised its commission is redelegated to "b".
    let mut lim = limits(None, Some(7), false);
    lim.redelegation = true;
    let mut s = state(100, &[("a", 600), ("b", 300)], &[], lim);
    s.delegations[0].commission = Some("0.2".into());
    let p = run(&s, 1000, 0, &pol);
    assert_eq!(redelegations(&p), [("a", "b", 600)]);
    assert!(
        p.ops[0]
            .reason
            .contains("commission 0.2 above max_validator_commission 0.1"),
        "{}",
        p.ops[0].reason
    );
}

fn redelegations(p: &Plan) -> Vec<(&str, &str, u128)> {
    p.ops
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::Redelegate { from, to, amount } => {
                Some((from.as_str(), to.as_str(), amount.base()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn stake_on_an_impaired_or_marked_validator_is_redelegated_to_healthy_ones_within_caps() {
    let mut lim = limits(None, Some(7), false);
    lim.redelegation = true;
    // In the band (liquid 100 of liabilities 1000): nothing to stake or
    // unstake. "a" is jailed with 600: it moves to "b" and "c" by weight.
    let mut s = state(100, &[("a", 600), ("b", 150), ("c", 150)], &[], lim.clone());
    s.delegations[0].impaired = true;
    let pol = policy(&[("a", 1), ("b", 1), ("c", 1)], 100, 20);
    let p = run(&s, 1000, 0, &pol);
    assert!(moves(&p).is_empty());
    assert_eq!(redelegations(&p), [("a", "b", 300), ("a", "c", 300)]);
    assert!(p.ops[0].reason.contains("impaired"), "{}", p.ops[0].reason);
    // A cap: "b" may hold at most half the stake (450 of 900): it takes
    // 300 to reach it, "c" takes the rest.
    let mut capped = pol.clone();
    capped.validators[1].cap = rate(500);
    let p = run(&s, 1000, 0, &capped);
    let r = redelegations(&p);
    let to_b: u128 = r.iter().filter(|x| x.1 == "b").map(|x| x.2).sum();
    assert!(150 + to_b <= 450, "{r:?}");
    assert_eq!(r.iter().map(|x| x.2).sum::<u128>(), 600);
    // Loss-marked instead of impaired: moved too, and says why.
    let mut s2 = state(100, &[("a", 600), ("b", 150), ("c", 150)], &[], lim.clone());
    let mut marked = pol.clone();
    marked.marked.insert("a".into());
    let p = run(&s2, 1000, 0, &marked);
    assert_eq!(redelegations(&p).len(), 2);
    assert!(p.ops[0].reason.contains("marked by a loss"));
    // The per-operation cap limits the move; the plan says what waits.
    let mut small = pol.clone();
    small.max_per_operation = Amount::from_base(200);
    let p = run(&s, 1000, 0, &small);
    assert_eq!(redelegations(&p).iter().map(|x| x.2).sum::<u128>(), 200);
    assert!(
        p.blocked.iter().any(|b| b.contains("allows 200")),
        "{:?}",
        p.blocked
    );
    // Stake redelegated into "a" still maturing cannot move yet.
    let mut locked = lim.clone();
    locked.redelegation_locked = vec!["a".into()];
    s2.limits = locked;
    s2.delegations[0].impaired = true;
    let p = run(&s2, 1000, 0, &pol);
    assert!(redelegations(&p).is_empty());
    assert!(
        p.blocked.iter().any(|b| b.contains("still maturing")),
        "{:?}",
        p.blocked
    );
    // A chain without redelegation: the plan says the stake stays.
    let mut s3 = state(
        100,
        &[("a", 600), ("b", 300)],
        &[],
        limits(None, Some(7), false),
    );
    s3.delegations[0].impaired = true;
    let p = run(&s3, 1000, 0, &pol);
    assert!(redelegations(&p).is_empty());
    assert!(
        p.blocked.iter().any(|b| b.contains("only by unstaking")),
        "{:?}",
        p.blocked
    );
    // A plan that must unstake for the queue does that, and moves nothing.
    let p = run(&s, 1000, 500, &pol);
    assert!(redelegations(&p).is_empty());
    assert!(moves(&p).iter().any(|m| m.0 == "undelegate"));
}

#[test]
fn caps_hold_and_the_rest_goes_where_there_is_room() {
    // The example config's Cosmos validators: weights 2:1, caps 60% / 50%.
    // 1000 to stake from nothing: "a" wants 666 but stops at its cap.
    let s = state(1000, &[], &[], limits(None, Some(7), false));
    let mut pol = policy(&[("a", 2), ("b", 1)], 0, 0);
    pol.validators[0].cap = rate(600);
    pol.validators[1].cap = rate(500);
    let p = run(&s, 0, 0, &pol);
    assert_eq!(
        moves(&p),
        [
            ("delegate".to_string(), "a", 600),
            ("delegate".to_string(), "b", 400)
        ]
    );
    // Caps are shares of the stake after the plan. With 1000 staked
    // elsewhere and caps of 20% each, staking x more needs a and b to hold
    // it within 40% of 1000 + x: at most 666 fits (333 each); the rest
    // stays liquid, and the plan says so.
    let s = state(1000, &[("z", 1000)], &[], limits(None, Some(7), false));
    pol.validators[0].cap = rate(200);
    pol.validators[1].cap = rate(200);
    let p = run(&s, 0, 0, &pol);
    assert_eq!(
        moves(&p),
        [
            ("delegate".to_string(), "a", 333),
            ("delegate".to_string(), "b", 333)
        ]
    );
    assert!(
        p.blocked
            .iter()
            .any(|b| b.contains("334") && b.contains("cap")),
        "{:?}",
        p.blocked
    );
}

#[test]
fn within_the_band_nothing_moves() {
    let s = state(110, &[("a", 890)], &[], limits(None, Some(7), false));
    let p = run(&s, 1000, 0, &policy(&[("a", 1)], 100, 20));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
}

#[test]
fn queued_withdrawals_are_served_even_below_min_operation() {
    // Liquid 100 = the buffer; a withdrawal of 5 is queued: unstake 5.
    let s = state(100, &[("a", 900)], &[], limits(None, Some(7), false));
    let p = run(&s, 1000, 5, &policy(&[("a", 1)], 100, 0));
    assert_eq!(moves(&p), [("undelegate".to_string(), "a", 5)]);
    // Unbonding already in flight counts: nothing more to do.
    let s = state(
        100,
        &[("a", 895)],
        &[("a", 5)],
        limits(None, Some(7), false),
    );
    let p = run(&s, 1000, 5, &policy(&[("a", 1)], 100, 0));
    assert!(moves(&p).is_empty());
}

#[test]
fn the_unbonding_entry_limit_is_respected() {
    let full: Vec<(&str, u128)> = (0..7).map(|_| ("a", 1)).collect();
    let s = state(
        0,
        &[("a", 500), ("b", 500)],
        &full,
        limits(None, Some(7), false),
    );
    let p = run(&s, 1000, 0, &policy(&[("a", 1), ("b", 1)], 100, 20));
    assert_eq!(moves(&p), [("undelegate".to_string(), "b", 93)]);
    assert!(
        p.blocked
            .iter()
            .any(|b| b.contains("a is at the chain's unbonding-entry limit"))
    );
}

#[test]
fn ethereum_moves_in_validator_sized_chunks() {
    let eth = 32;
    // Liquid 100 with aim 10: stake 64 (two validators' worth), not 90,
    // as one operation per validator.
    let s = state(100, &[], &[], limits(Some(eth), None, false));
    let p = run(&s, 100, 0, &policy(&[("v", 1)], 100, 20));
    assert_eq!(
        moves(&p),
        [
            ("delegate".to_string(), "v", 32),
            ("delegate".to_string(), "v", 32)
        ]
    );
    // Never more than MAX_CHUNK_OPS in one plan; the rest is reported.
    let s = state(32 * 40, &[], &[], limits(Some(eth), None, false));
    let p = run(&s, 32 * 40, 0, &policy(&[("v", 1)], 0, 0));
    assert_eq!(p.ops.len(), crate::MAX_CHUNK_OPS);
    assert!(
        p.blocked
            .iter()
            .any(|b| b.contains("wait for the next plan")),
        "{:?}",
        p.blocked
    );
    // Short 10 below the floor: exit a whole 32.
    let s = state(0, &[("v", 96)], &[], limits(Some(eth), None, false));
    let p = run(&s, 100, 0, &policy(&[("v", 1)], 100, 20));
    assert_eq!(moves(&p), [("undelegate".to_string(), "v", 32)]);
}

#[test]
fn liquid_delegation_delegates_the_whole_balance_once() {
    let s = state(1000, &[], &[], limits(None, None, true));
    let p = run(
        &s,
        1000,
        50,
        &policy(&[("pool1", 1), ("pool2", 3)], 100, 20),
    );
    assert_eq!(moves(&p), [("delegate".to_string(), "pool2", 1000)]);
    let s = state(1000, &[("pool1", 0)], &[], limits(None, None, true));
    let p = run(&s, 1000, 0, &policy(&[("pool1", 1)], 100, 20));
    assert!(p.ops.is_empty());
}

#[test]
fn matured_funds_are_withdrawn_and_rewards_claimed_first() {
    let mut s = state(100, &[("a", 900)], &[], limits(None, Some(7), false));
    s.withdrawable = Amount::from_base(7);
    s.claimable_rewards = Amount::from_base(50);
    let p = run(&s, 1000, 0, &policy(&[("a", 1)], 100, 20));
    assert_eq!(p.ops[0].kind.name(), "withdraw_unbonded");
    assert_eq!(p.ops[1].kind.name(), "claim_rewards");
}

#[test]
fn caps_limit_each_operation_and_the_day() {
    let s = state(1000, &[], &[], limits(None, Some(7), false));
    let mut pol = policy(&[("a", 1)], 100, 20);
    pol.max_per_operation = Amount::from_base(300);
    pol.remaining_today = Amount::from_base(200);
    let p = run(&s, 1000, 0, &pol);
    assert_eq!(moves(&p), [("delegate".to_string(), "a", 200)]);
}

// ---- properties ----

fn arb_case() -> impl Strategy<Value = (PoolStateResponse, u128, u128, Policy)> {
    (
        0u128..1_000_000,
        prop::collection::vec(0u128..1_000_000, 1..4),
        prop::collection::vec((0usize..3, 1u128..10_000), 0..10),
        0u128..2_000_000,
        0u128..100_000,
        (0i64..=500, 0i64..=100),
        prop_oneof![Just(None), Just(Some(32u128)), Just(Some(1_000u128))],
        prop_oneof![Just(None), Just(Some(7u32))],
        (1u128..500, 1u128..2_000_000, 0u128..3_000_000),
    )
        .prop_map(
            |(
                liquid,
                stakes,
                unb,
                liab,
                queued,
                (t, b),
                chunk,
                entries,
                (min_op, max_op, today),
            )| {
                let names = ["v0", "v1", "v2"];
                let dels: Vec<(&str, u128)> = stakes
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (names[i], *a))
                    .collect();
                let unb: Vec<(&str, u128)> = unb
                    .iter()
                    .map(|(i, a)| (names[i % dels.len()], *a))
                    .collect();
                let s = state(liquid, &dels, &unb, limits(chunk, entries, false));
                let mut p = policy(&[("v0", 1), ("v1", 2), ("v2", 1)], t, b.min(t));
                p.min_operation = Amount::from_base(min_op);
                p.max_per_operation = Amount::from_base(max_op);
                p.remaining_today = Amount::from_base(today);
                (s, liab, queued, p)
            },
        )
}

proptest! {
    #[test]
    fn never_stakes_what_the_buffer_or_the_queue_needs((s, liab, queued, pol) in arb_case()) {
        let p = run(&s, liab, queued, &pol);
        let staked: u128 = moves(&p).iter().filter(|m| m.0 == "delegate").map(|m| m.2).sum();
        let liquid = s.liquid.base() + s.withdrawable.base();
        prop_assert!(staked <= liquid.saturating_sub(p.summary.aim.base()));
        prop_assert!(staked == 0 || liquid - staked >= p.summary.floor.base());
    }

    #[test]
    fn never_exceeds_caps_or_chain_limits((s, liab, queued, pol) in arb_case()) {
        let p = run(&s, liab, queued, &pol);
        let ms = moves(&p);
        let total: u128 = ms.iter().map(|m| m.2).sum();
        prop_assert!(total <= pol.remaining_today.base());
        let mut entries = std::collections::BTreeMap::<&str, u32>::new();
        for u in &s.unbonding { *entries.entry(u.validator.as_str()).or_default() += 1; }
        for (kind, v, a) in &ms {
            prop_assert!(*a <= pol.max_per_operation.base());
            if let Some(c) = s.limits.stake_chunk { prop_assert_eq!(a % c.base(), 0); }
            prop_assert!(*a >= s.limits.min_delegation.base());
            if kind == "undelegate" {
                let have = s.delegations.iter().find(|d| d.validator == *v).map_or(0, |d| d.active.base());
                prop_assert!(*a <= have);
                if let Some(m) = s.limits.max_unbonding_entries {
                    prop_assert!(entries.get(v).copied().unwrap_or(0) < m);
                }
            }
        }
        // Never both directions at once.
        prop_assert!(!(ms.iter().any(|m| m.0 == "delegate") && ms.iter().any(|m| m.0 == "undelegate")));
    }

    #[test]
    fn new_stake_never_takes_a_validator_over_its_cap(
        (s, liab, queued, mut pol) in arb_case(),
        caps in prop::collection::vec(100i64..=1000, 3),
    ) {
        for (v, c) in pol.validators.iter_mut().zip(&caps) {
            v.cap = rate(*c);
        }
        let p = run(&s, liab, queued, &pol);
        let ms = moves(&p);
        let staked: u128 = s.delegations.iter().map(|d| d.active.base() + d.activating.base()).sum();
        let added: u128 = ms.iter().filter(|m| m.0 == "delegate").map(|m| m.2).sum();
        let total_after = staked + added;
        for v in &pol.validators {
            let got: u128 = ms.iter().filter(|m| m.0 == "delegate" && m.1 == v.address).map(|m| m.2).sum();
            if got == 0 {
                continue;
            }
            let have = s.delegations.iter().find(|d| d.validator == v.address).map_or(0, |d| d.active.base() + d.activating.base());
            prop_assert!(
                have + got <= v.cap.apply_floor(Amount::from_base(total_after)).base(),
                "{} ends with {} of {} (cap {}): {:?}", v.address, have + got, total_after, v.cap, ms
            );
        }
    }

    #[test]
    fn moves_off_impaired_validators_keep_caps_limits_and_the_stake(
        (mut s, liab, queued, mut pol) in arb_case(),
        caps in prop::collection::vec(100i64..=1000, 3),
        impaired in prop::collection::vec(any::<bool>(), 3),
        locked in any::<bool>(),
    ) {
        for (v, c) in pol.validators.iter_mut().zip(&caps) {
            v.cap = rate(*c);
        }
        for (d, i) in s.delegations.iter_mut().zip(&impaired) {
            d.impaired = *i;
        }
        s.limits.redelegation = true;
        if locked {
            s.limits.redelegation_locked = vec!["v0".into()];
        }
        let p = run(&s, liab, queued, &pol);
        let r = redelegations(&p);
        let staked: u128 = s.delegations.iter().map(|d| d.active.base() + d.activating.base()).sum();
        let have = |v: &str| s.delegations.iter().find(|d| d.validator == v).map_or(0, |d| d.active.base() + d.activating.base());
        let mut moved_total = 0u128;
        for v in &pol.validators {
            let out: u128 = r.iter().filter(|m| m.0 == v.address).map(|m| m.2).sum();
            let inn: u128 = r.iter().filter(|m| m.1 == v.address).map(|m| m.2).sum();
            moved_total += out;
            // Only impaired, unlocked validators give; never more than they hold.
            if out > 0 {
                let d = s.delegations.iter().find(|d| d.validator == v.address).unwrap();
                prop_assert!(d.impaired && !(locked && v.address == "v0"));
                prop_assert!(out <= have(&v.address));
            }
            // Only healthy validators take, within their caps of the same stake.
            if inn > 0 {
                prop_assert!(!s.delegations.iter().any(|d| d.validator == v.address && d.impaired));
                prop_assert!(
                    have(&v.address) + inn <= v.cap.apply_floor(Amount::from_base(staked)).base(),
                    "{} ends with {} of {} (cap {}): {:?}", v.address, have(&v.address) + inn, staked, v.cap, r
                );
            }
        }
        // The caps on one plan hold for moves too.
        prop_assert!(moved_total <= pol.max_per_operation.base().saturating_mul(r.len() as u128));
        prop_assert!(moved_total <= pol.remaining_today.base());
        // Never alongside staking or unstaking.
        prop_assert!(r.is_empty() || moves(&p).is_empty());
    }

    #[test]
    fn converges_to_the_band_within_the_unbonding_delay(
        liquid in 0u128..1_000_000,
        stake in 0u128..1_000_000,
        liab_permille in 1u128..=1000,
        queued_permille in 0u128..=100,
        t in 50i64..=300,
    ) {
        // Nothing else changes; generous caps; no chunks; no entry limit.
        // The pool covers the liabilities and the queue.
        let total = liquid + stake;
        prop_assume!(total > 1);
        let queued = total * queued_permille / 1000;
        let liab = ((total - queued) * liab_permille / 1000).max(1);
        let mut s = state(liquid, &[("v0", stake)], &[], limits(None, None, false));
        let mut pol = policy(&[("v0", 1)], t, 20);
        pol.min_operation = Amount::from_base(1);
        for _round in 0..3 {
            let p = run(&s, liab, queued, &pol);
            // Apply, then let one unbonding delay pass.
            for o in &p.ops {
                match &o.kind {
                    OperationKind::Delegate { amount, .. } => {
                        s.liquid = s.liquid.checked_sub(*amount).unwrap();
                        s.delegations[0].active = s.delegations[0].active.checked_add(*amount).unwrap();
                    }
                    OperationKind::Undelegate { amount, .. } => {
                        s.delegations[0].active = s.delegations[0].active.checked_sub(*amount).unwrap();
                        s.liquid = s.liquid.checked_add(*amount).unwrap();
                    }
                    _ => {}
                }
            }
        }
        let p = run(&s, liab, queued, &pol);
        prop_assert!(s.liquid >= p.summary.floor && s.liquid <= p.summary.ceiling,
            "liquid {} outside [{}, {}]", s.liquid, p.summary.floor, p.summary.ceiling);
    }
}
