//! The Tezos adapter's full cycle against the octez-shaped test node over
//! HTTP: reveal, delegate, stake, staking rewards as staked-balance growth
//! net of the account's own operations, payouts dated to real cycle
//! boundaries, unstake and finalize after the protocol's delay, slashing as a
//! loss, a protocol change of cycle length and block time, a start level on
//! a pruned node; expiry; and the bad inputs refused before signing.
#![allow(clippy::unwrap_used)]

use softstake_chain_xtz::forge::{self, prefix};
use softstake_chain_xtz::keys::{LocalKey, Signer};
use softstake_chain_xtz::ops::Mode;
use softstake_chain_xtz::testnode::{ProtocolChange, TestNode, TestNodeConfig};
use softstake_chain_xtz::{XtzAdapter, XtzSettings};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, LookupRequest, OperationKind,
    PoolStateRequest, RewardKind, RewardsRequest, RewardsResponse, SignedOperation, TxStatus,
};
use softstake_core::{Amount, Secret};
use std::sync::Arc;
use std::time::Duration;

const EDSK: &str = "edsk2gLvWRYgkCPVKPjXag2uSGDjQh5YGUThMgLXUhzbrJWXdvvYoj";
const BAKER: &str = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";
const TEZ: u128 = 1_000_000;

fn tz1(n: u8) -> String {
    forge::b58(prefix::TZ1, &[n; 20])
}

async fn setup(chain_id: &str, mode: Mode) -> (TestNode, XtzAdapter, String) {
    setup_with(chain_id, mode, None, Some(1)).await
}

async fn setup_with(
    chain_id: &str,
    mode: Mode,
    protocol_change: Option<ProtocolChange>,
    start_level: Option<i64>,
) -> (TestNode, XtzAdapter, String) {
    let key = LocalKey::parse(&Secret::new(EDSK.into())).unwrap();
    let me = key.address();
    let node = TestNode::new(TestNodeConfig {
        protocol_change,
        ..TestNodeConfig::small(
            vec![
                (BAKER.into(), true, 10_000 * TEZ),
                (tz1(9), false, 10_000 * TEZ),
            ],
            vec![(me.clone(), 1_000 * TEZ), (tz1(7), 100 * TEZ)],
        )
    });
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = XtzAdapter::new(
        XtzSettings {
            endpoints: vec!["http://127.0.0.1:9".into(), format!("http://{bound}")],
            chain_id: chain_id.into(),
            mode,
            payout_addresses: vec![tz1(7)],
            payout_delay_cycles: 1,
            max_scan: 1_000,
            expected_payout_cycles: Some(2),
            request_timeout: Duration::from_secs(5),
            start_level,
        },
        Arc::new(key),
    )
    .unwrap();
    (node, a, me)
}

fn op(kind: OperationKind) -> BuildRequest {
    softstake_testnode::operation(kind)
}

async fn send(node: &TestNode, a: &XtzAdapter, kind: OperationKind) -> SignedOperation {
    softstake_testnode::send_and_confirm(a, kind, || async { node.bake(1) })
        .await
        .unwrap()
}

const T0: i64 = 1_767_225_600;

/// Unix time of a level on the test chain (8-second blocks from T0).
fn time_of(level: i64) -> i64 {
    T0 + (level - 1) * 8
}

fn unstake(mutez: u128) -> OperationKind {
    OperationKind::Undelegate {
        validator: BAKER.into(),
        amount: Amount::from_base(mutez),
    }
}

fn delegate(tez: u128) -> OperationKind {
    OperationKind::Delegate {
        validator: BAKER.into(),
        amount: Amount::from_base(tez * TEZ),
    }
}

/// Bakes to the end of the current cycle, then two more blocks (Tenderbake
/// finality: the adapter reads only final blocks).
fn finish_cycle(node: &TestNode) {
    node.bake_to_cycle_end();
    node.bake(2);
}

async fn scan(a: &XtzAdapter, cursor: &Option<String>) -> RewardsResponse {
    a.rewards_since(RewardsRequest {
        cursor: cursor.clone(),
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn reveal_delegate_stake_earn_unstake_finalize() {
    let (node, a, me) = setup("NetXsoftstake1", Mode::Staking).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.liquid.base(), 1_000 * TEZ);
    assert!(p.delegations.is_empty());
    assert!(!p.limits.delegation_keeps_funds_liquid);

    // One group: reveal + set delegate + stake.
    send(&node, &a, delegate(500)).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.delegations[0].validator, BAKER);
    assert_eq!(p.delegations[0].active.base(), 500 * TEZ);
    let fees = 500 * TEZ - p.liquid.base();
    assert!(fees > 0 && fees < 10_000, "fees {fees}");

    // The cycle's last block credits the baker's stakers' pool, never the
    // staker: the reward is the growth of the staked balance (90% of 0.02%:
    // the baker keeps a 10% edge).
    let staked0 = node.staked(&me);
    finish_cycle(&node);
    let r = scan(&a, &None).await;
    assert_eq!(r.rewards.len(), 1, "{:?}", r.rewards);
    let x = &r.rewards[0];
    let grown = node.staked(&me) - staked0;
    assert_eq!(grown, 500 * TEZ * 200 / 1_000_000 * 9 / 10);
    assert_eq!(x.amount.base(), grown);
    assert_eq!(
        (x.kind, x.key.as_str(), x.validator.as_str(), x.epoch),
        (RewardKind::Consensus, "staking:0", BAKER, Some(0))
    );
    // From the start level to the cycle's last block, by their timestamps.
    assert_eq!(x.period.start().unix(), time_of(1));
    assert_eq!(x.period.end().unix(), time_of(8));
    let evidence = x.tx_hash.as_deref().unwrap();
    assert!(
        evidence.contains(&format!("to {} at 8", staked0 + grown))
            && evidence.contains(&format!("pool of {BAKER} credited {grown} in block 8")),
        "{evidence}"
    );
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.delegations[0].active.base(), 500 * TEZ + grown);

    // 100 tez more staked in the middle of cycle 1: the cycle's reward is
    // the growth net of it (found through the account's counter).
    let at_cycle_end = node.staked(&me);
    send(&node, &a, delegate(100)).await;
    finish_cycle(&node);
    let r2 = scan(&a, &r.next_cursor).await;
    assert_eq!(r2.rewards.len(), 1, "{:?}", r2.rewards);
    assert_eq!(r2.rewards[0].key, "staking:1");
    let grown1 = node.staked(&me) - at_cycle_end - 100 * TEZ;
    assert!(grown1 > grown, "more at stake earns more");
    assert_eq!(r2.rewards[0].amount.base(), grown1);
    assert_eq!(r2.rewards[0].period.start().unix(), time_of(8));
    assert!(
        r2.rewards[0]
            .tx_hash
            .as_deref()
            .unwrap()
            .contains(&format!("own stake/unstake {} in 1 operation", 100 * TEZ))
    );

    // The baker's payout address pays delegators: recorded for the cycle
    // before the one it arrived in, dated by that cycle's own blocks.
    node.payout(&tz1(7), &me, 1_234);
    node.bake(2);
    let r3 = scan(&a, &r2.next_cursor).await;
    assert_eq!(r3.rewards.len(), 1, "{:?}", r3.rewards);
    let pay = &r3.rewards[0];
    assert_eq!(pay.kind, RewardKind::DelegationPayout);
    assert_eq!(pay.amount.base(), 1_234);
    assert_eq!(pay.epoch, Some(1));
    assert_eq!(
        (pay.period.start().unix(), pay.period.end().unix()),
        (time_of(8), time_of(16))
    );
    // Nothing twice.
    let r4 = scan(&a, &r3.next_cursor).await;
    assert!(r4.rewards.is_empty(), "{:?}", r4.rewards);

    // Unstake 100 tez: an unbonding entry until the first block of cycle
    // n + unstake_finalization_delay + 1.
    let cycle = node.cycle();
    send(&node, &a, unstake(100 * TEZ)).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.unbonding.len(), 1);
    let unstaked = p.unbonding[0].amount.base();
    assert!(
        (100 * TEZ - 1..=100 * TEZ).contains(&unstaked),
        "{unstaked}"
    );
    let due = 1 + (cycle + 3) * 8;
    assert_eq!(p.unbonding[0].completes_at.unix(), time_of(due));
    assert!(p.withdrawable.is_zero());
    // One block before: still frozen; at it: finalizable.
    let (level, _) = node.head();
    node.bake(due - 1 - level);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.withdrawable.is_zero(), "{p:?}");
    node.bake(1);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.unbonding.is_empty());
    assert_eq!(p.withdrawable.base(), unstaked);
    let before = p.liquid.base();
    send(
        &node,
        &a,
        OperationKind::WithdrawUnbonded {
            amount: Amount::from_base(100 * TEZ),
        },
    )
    .await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.withdrawable.is_zero());
    let gained = p.liquid.base() - before;
    assert!(gained > unstaked - 10_000 && gained < unstaked, "{gained}");

    // The unstake and the finalize were the account's own: the cycles
    // after report only rewards, equal to the staked balance's growth.
    let staked_now = node.staked(&me);
    let cursor = scan(&a, &r4.next_cursor).await.next_cursor;
    let s_before = node.staked(&me);
    assert_eq!(s_before, staked_now);
    finish_cycle(&node);
    let r5 = scan(&a, &cursor).await;
    let last: Vec<_> = r5
        .rewards
        .iter()
        .filter(|x| x.kind == RewardKind::Consensus)
        .collect();
    assert_eq!(last.len(), 1, "{:?}", r5.rewards);
    assert_eq!(last[0].amount.base(), node.staked(&me) - s_before);
}

#[tokio::test]
async fn refusals_before_signing_and_expiry_proven_by_the_branch() {
    let (node, a, _) = setup("NetXsoftstake1", Mode::Staking).await;
    let applied = node.applied_count();
    for (kind, want) in [
        (
            OperationKind::Delegate {
                validator: tz1(9),
                amount: Amount::from_base(TEZ),
            },
            "does not accept stakers",
        ),
        (
            OperationKind::Delegate {
                validator: tz1(3),
                amount: Amount::from_base(TEZ),
            },
            "not a registered baker",
        ),
        (
            OperationKind::Delegate {
                validator: BAKER.into(),
                amount: Amount::from_base(2_000 * TEZ),
            },
            "spendable balance",
        ),
        (
            OperationKind::Delegate {
                validator: "tz1nope".into(),
                amount: Amount::from_base(TEZ),
            },
            "not a valid tz1",
        ),
        (
            OperationKind::ClaimRewards { validators: vec![] },
            "nothing to claim",
        ),
    ] {
        let err = a.build_and_sign(op(kind)).await.unwrap_err();
        assert!(
            matches!(&err, AdapterError::InvalidRequest(m) if m.contains(want)),
            "{want}: {err}"
        );
    }
    assert_eq!(node.applied_count(), applied);

    // Signed but never sent: after max_operations_time_to_live levels the
    // branch is too old, and the chain proves it can never be included.
    let s = a
        .build_and_sign(op(OperationKind::Delegate {
            validator: BAKER.into(),
            amount: Amount::ZERO,
        }))
        .await
        .unwrap();
    let look = || LookupRequest {
        tx_id: s.tx_id.clone(),
        signed_bytes: Some(s.bytes.clone()),
    };
    assert_eq!(a.lookup(look()).await.unwrap().status, TxStatus::NotFound);
    node.bake(241);
    assert_eq!(a.lookup(look()).await.unwrap().status, TxStatus::Expired);
    let err = a
        .broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("outdated")),
        "{err}"
    );

    // Another network at the endpoint: fatal.
    let (_n, wrong, _) = setup("NetXdQprcVkpaWU", Mode::Staking).await;
    let err = wrong
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::WrongNetwork { .. }), "{err}");
}

#[tokio::test]
async fn delegation_mode_keeps_funds_spendable_and_a_baker_that_stops_paying_raises_an_alert() {
    let (node, a, me) = setup("NetXsoftstake1", Mode::Delegation).await;
    send(
        &node,
        &a,
        OperationKind::Delegate {
            validator: BAKER.into(),
            amount: Amount::from_base(1_000 * TEZ),
        },
    )
    .await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.limits.delegation_keeps_funds_liquid);
    assert_eq!(p.delegations[0].validator, BAKER);
    // Nothing frozen: the whole balance stays liquid and counts as delegated.
    assert_eq!(p.delegations[0].active, p.liquid);
    assert!(p.liquid.base() > 999 * TEZ);
    assert!(p.alerts.is_empty());
    // Three cycles without a payout (2 expected): an alert.
    node.bake(8 * 3);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.alerts.len(), 1, "{:?}", p.alerts);
    assert!(p.alerts[0].contains("no delegation payout"));
    // A payout, seen by the rewards scan once final, clears it.
    node.payout(&tz1(7), &me, 5_000);
    node.bake(2);
    a.rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    assert!(
        a.pool_state(PoolStateRequest::default())
            .await
            .unwrap()
            .alerts
            .is_empty()
    );
}

#[tokio::test]
async fn a_second_operation_while_one_waits_for_its_block_is_retried_later() {
    let (node, a, _) = setup("NetXsoftstake1", Mode::Staking).await;
    let delegate = |tez: u128| OperationKind::Delegate {
        validator: BAKER.into(),
        amount: Amount::from_base(tez * TEZ),
    };
    let first = a.build_and_sign(op(delegate(100))).await.unwrap();
    a.broadcast(BroadcastRequest {
        signed: first.clone(),
    })
    .await
    .unwrap();
    // One manager operation per source and block: the second is refused for
    // now, as a retryable error (the engine sends it again, quietly).
    let second = a.build_and_sign(op(delegate(50))).await.unwrap();
    let e = a
        .broadcast(BroadcastRequest {
            signed: second.clone(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, AdapterError::TryLater(_)), "{e}");
    assert!(e.is_retryable());
    node.bake(1);
    // Once the first is included the conflict is gone (the second may now
    // fail on its counter, which the journal's reconcile settles; only the
    // conflict is the point here).
    let l = a
        .lookup(LookupRequest {
            tx_id: first.tx_id.clone(),
            signed_bytes: Some(first.bytes.clone()),
        })
        .await
        .unwrap();
    assert!(matches!(l.status, TxStatus::Confirmed { .. }), "{l:?}");
}

#[tokio::test]
async fn a_slashed_baker_shows_as_a_loss_reported_once_by_the_observing_read() {
    let (node, a, me) = setup("NetXsoftstake1", Mode::Staking).await;
    send(&node, &a, delegate(500)).await;
    finish_cycle(&node);
    let r = scan(&a, &None).await;
    assert_eq!(r.rewards.len(), 1);
    // A denunciation takes 10% of the baker's stake at the next cycle end:
    // the pool, and so the staked balance, falls by more than it earned.
    let before = node.staked(&me);
    node.slash(BAKER, 100_000);
    finish_cycle(&node);
    let lost = before - node.staked(&me);
    assert!(lost > 40 * TEZ, "{lost}");
    let r2 = scan(&a, &r.next_cursor).await;
    assert!(
        r2.rewards.is_empty(),
        "no reward for a slashed cycle: {:?}",
        r2.rewards
    );
    // A read that does not observe consumes nothing.
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.losses.is_empty());
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert_eq!(p.losses.len(), 1, "{:?}", p.losses);
    assert_eq!(p.losses[0].amount.base(), lost);
    assert_eq!(p.losses[0].validator, BAKER);
    assert!(
        p.losses[0].reason.contains("slashing") && p.losses[0].reason.contains("cycle 1"),
        "{}",
        p.losses[0].reason
    );
    // Reported once, even when the same cycle is scanned again.
    scan(&a, &r.next_cursor).await;
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert!(p.losses.is_empty(), "{:?}", p.losses);
    // The next cycle earns again, on what is left.
    let s = node.staked(&me);
    finish_cycle(&node);
    let r3 = scan(&a, &r2.next_cursor).await;
    assert_eq!(r3.rewards.len(), 1);
    assert_eq!(r3.rewards[0].amount.base(), node.staked(&me) - s);
}

#[tokio::test]
async fn cycles_and_periods_follow_a_protocol_change_of_cycle_length_and_block_time() {
    // From cycle 2 on: 12 blocks of 6 s instead of 8 blocks of 8 s.
    let change = ProtocolChange {
        at_cycle: 2,
        blocks_per_cycle: 12,
        block_secs: 6,
    };
    let (node, a, me) = setup_with("NetXsoftstake1", Mode::Staking, Some(change), Some(1)).await;
    send(&node, &a, delegate(500)).await;
    for _ in 0..4 {
        finish_cycle(&node);
    }
    assert_eq!(node.cycle_levels(2), (17, 28));
    assert_eq!(node.cycle_levels(3), (29, 40));
    let r = scan(&a, &None).await;
    let keys: Vec<_> = r.rewards.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["staking:0", "staking:1", "staking:2", "staking:3"]);
    let t = |l: i64| node.block_time(l).unwrap();
    for (x, (b0, b1)) in r.rewards.iter().zip([(1, 8), (8, 16), (16, 28), (28, 40)]) {
        assert_eq!(
            (x.period.start().unix(), x.period.end().unix()),
            (t(b0), t(b1)),
            "{}",
            x.key
        );
    }
    // Cycle 2 is 72 s long, not the 64 s of the old cycle length.
    assert_eq!(r.rewards[2].period.secs(), 72);
    let total: u128 = r.rewards.iter().map(|x| x.amount.base()).sum();
    assert_eq!(total, node.staked(&me) - 500 * TEZ);

    // A payout in cycle 4 pays for cycle 3: dated by cycle 3's blocks.
    node.payout(&tz1(7), &me, 777);
    node.bake(2);
    let r2 = scan(&a, &r.next_cursor).await;
    assert_eq!(r2.rewards.len(), 1, "{:?}", r2.rewards);
    assert_eq!(
        (
            r2.rewards[0].period.start().unix(),
            r2.rewards[0].period.end().unix()
        ),
        (t(28), t(40))
    );

    // An unstake is due at the first block of cycle n + 3, timed at the
    // new block time.
    let cycle = node.cycle();
    send(&node, &a, unstake(TEZ)).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    let due = node.cycle_levels(cycle + 3).0;
    let (level, now) = node.head();
    assert_eq!(p.unbonding[0].completes_at.unix(), now + (due - level) * 6);
}

#[tokio::test]
async fn a_start_level_needs_no_older_block_and_a_pruned_block_is_named() {
    let (node, a0, me) = setup("NetXsoftstake1", Mode::Staking).await;
    send(&node, &a0, delegate(500)).await;
    node.bake(40);
    // A rolling node: nothing before level 30 is left.
    node.prune_before(30);

    // Starting at 30 (inside cycle 3, levels 25..32): the first cycle is
    // read from the state at 30, and nothing older is asked for.
    let key = || Arc::new(LocalKey::parse(&Secret::new(EDSK.into())).unwrap());
    // A second server over the same node state.
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let settings = |start| XtzSettings {
        endpoints: vec![format!("http://{bound}")],
        chain_id: "NetXsoftstake1".into(),
        mode: Mode::Staking,
        payout_addresses: vec![tz1(7)],
        payout_delay_cycles: 1,
        max_scan: 1_000,
        expected_payout_cycles: None,
        request_timeout: Duration::from_secs(5),
        start_level: start,
    };
    let a = XtzAdapter::new(settings(Some(30)), key()).unwrap();
    let r = scan(&a, &None).await;
    let keys: Vec<_> = r.rewards.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys, ["staking:3", "staking:4"], "{:?}", r.rewards);
    assert_eq!(r.rewards[0].period.start().unix(), time_of(30));
    assert_eq!(r.next_cursor.as_deref(), Some("40"));
    let _ = me;

    // Starting at 10 on that node: the first block it cannot serve is
    // named, nothing is skipped, and the cursor does not move.
    let a = XtzAdapter::new(settings(Some(10)), key()).unwrap();
    let e = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("block 10"), "{e}");
    assert!(e.is_retryable(), "{e}");

    // No start level: the first scan starts at the final block, reading
    // nothing; the cycle it is in is read from the cycle's start.
    let a = XtzAdapter::new(settings(None), key()).unwrap();
    let r = scan(&a, &None).await;
    assert!(r.rewards.is_empty());
    assert_eq!(r.next_cursor.as_deref(), Some("40"));
    finish_cycle(&node);
    let r2 = scan(&a, &r.next_cursor).await;
    assert_eq!(r2.rewards.len(), 1, "{:?}", r2.rewards);
    assert_eq!(r2.rewards[0].key, "staking:5");
    assert_eq!(r2.rewards[0].period.start().unix(), time_of(40));
}

#[tokio::test]
async fn flows_prove_fees_and_transfers_and_identify_finds_our_staking_operations() {
    use softstake_core::adapter::{FlowKind, FlowsRequest, IdentifyRequest};
    let (node, a, me) = setup("NetXsoftstake1", Mode::Staking).await;
    let _ = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let first = a.flows_since(FlowsRequest { cursor: None }).await.unwrap();
    assert!(first.flows.is_empty() && first.complete);
    // Our stake (fees), the exchange's top-up from a stranger, the baker's
    // payout (a reward, not a flow), and a transfer out.
    let staked = send(&node, &a, delegate(500)).await;
    node.payout(&tz1(5), &me, 7 * TEZ);
    node.payout(&tz1(7), &me, 1_234);
    node.payout(&me, &tz1(6), 3 * TEZ);
    let _ = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let r = a
        .flows_since(FlowsRequest {
            cursor: first.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(r.complete);
    let by = |k: FlowKind| -> Vec<(u128, Option<String>)> {
        r.flows
            .iter()
            .filter(|f| f.kind == k)
            .map(|f| (f.amount.base(), f.counterparty.clone()))
            .collect()
    };
    let fees: u128 = by(FlowKind::Fee).iter().map(|x| x.0).sum();
    // Everything the spendable balance lost beyond the stake and transfers.
    assert_eq!(
        fees,
        1_000 * TEZ + 7 * TEZ + 1_234 - 3 * TEZ - 500 * TEZ - node.balance(&me)
    );
    assert_eq!(by(FlowKind::TransferIn), [(7 * TEZ, Some(tz1(5)))]);
    assert_eq!(by(FlowKind::TransferOut), [(3 * TEZ, Some(tz1(6)))]);
    assert!(
        r.flows
            .iter()
            .filter(|f| f.kind == FlowKind::Fee)
            .all(|f| f.tx_id == staked.tx_id)
    );
    // Nothing twice.
    let again = a
        .flows_since(FlowsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.flows.is_empty());
    // The stake is recognised as the operation softstake signs.
    let found = a
        .identify(IdentifyRequest {
            tx_id: staked.tx_id.clone(),
        })
        .await
        .unwrap();
    let op = found.found.unwrap();
    assert_eq!(
        op.kind,
        OperationKind::Delegate {
            validator: BAKER.into(),
            amount: Amount::from_base(500 * TEZ)
        }
    );
    assert!(matches!(op.status, TxStatus::Confirmed { .. }), "{op:?}");
    // An operation the scan never met cannot be placed: said, not guessed.
    let unknown = a
        .identify(IdentifyRequest {
            tx_id: "opNotSeen".into(),
        })
        .await
        .unwrap();
    assert!(!unknown.supported && unknown.found.is_none());
}
