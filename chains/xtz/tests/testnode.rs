//! The Tezos adapter's full cycle against the protocol-faithful test node
//! over HTTP: reveal, delegate, stake, rewards, payouts, unstake, finalize;
//! expiry; and the bad inputs refused before signing.
#![allow(clippy::unwrap_used)]

use softstake_chain_xtz::forge::{self, prefix};
use softstake_chain_xtz::keys::{LocalKey, Signer};
use softstake_chain_xtz::ops::Mode;
use softstake_chain_xtz::testnode::{TestNode, TestNodeConfig};
use softstake_chain_xtz::{XtzAdapter, XtzSettings};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, LookupRequest, OperationKind,
    PoolStateRequest, RewardKind, RewardsRequest, SignedOperation, TxStatus,
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
    let key = LocalKey::parse(&Secret::new(EDSK.into())).unwrap();
    let me = key.address();
    let node = TestNode::new(TestNodeConfig {
        chain_id: "NetXsoftstake1".into(),
        genesis_time: 1_767_225_600,
        block_secs: 8,
        blocks_per_cycle: 8,
        unstake_delay_cycles: 2,
        reward_ppm_per_cycle: 200,
        bakers: vec![
            (BAKER.into(), true, 10_000 * TEZ),
            (tz1(9), false, 10_000 * TEZ),
        ],
        accounts: vec![(me.clone(), 1_000 * TEZ), (tz1(7), 100 * TEZ)],
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

#[tokio::test]
async fn reveal_delegate_stake_earn_unstake_finalize() {
    let (node, a, me) = setup("NetXsoftstake1", Mode::Staking).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.liquid.base(), 1_000 * TEZ);
    assert!(p.delegations.is_empty());
    assert!(!p.limits.delegation_keeps_funds_liquid);

    // One group: reveal + set delegate + stake.
    send(
        &node,
        &a,
        OperationKind::Delegate {
            validator: BAKER.into(),
            amount: Amount::from_base(500 * TEZ),
        },
    )
    .await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.delegations[0].validator, BAKER);
    assert_eq!(p.delegations[0].active.base(), 500 * TEZ);
    let fees = 500 * TEZ - p.liquid.base();
    assert!(fees > 0 && fees < 10_000, "fees {fees}");

    // A cycle end pays 0.02% on the stake, auto-staked.
    node.bake(8);
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    let staking: Vec<_> = r
        .rewards
        .iter()
        .filter(|x| x.kind == RewardKind::Consensus)
        .collect();
    assert_eq!(staking.len(), 1, "{:?}", r.rewards);
    assert_eq!(staking[0].amount.base(), 500 * TEZ * 200 / 1_000_000);
    assert_eq!(staking[0].validator, BAKER);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(
        p.delegations[0].active.base(),
        500 * TEZ + staking[0].amount.base()
    );

    // The baker's payout address pays delegators: recorded for its cycle.
    node.payout(&tz1(7), &me, 1_234);
    let r2 = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r2.rewards.len(), 1, "{:?}", r2.rewards);
    assert_eq!(r2.rewards[0].kind, RewardKind::DelegationPayout);
    assert_eq!(r2.rewards[0].amount.base(), 1_234);
    // Nothing twice.
    let r3 = a
        .rewards_since(RewardsRequest {
            cursor: r2.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(r3.rewards.is_empty());

    // Unstake 100 tez: an unbonding entry until the delay has passed.
    send(
        &node,
        &a,
        OperationKind::Undelegate {
            validator: BAKER.into(),
            amount: Amount::from_base(100 * TEZ),
        },
    )
    .await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.unbonding.len(), 1);
    assert_eq!(p.unbonding[0].amount.base(), 100 * TEZ);
    assert!(p.unbonding[0].completes_at > p.as_of);
    assert!(p.withdrawable.is_zero());
    node.bake(8 * 3);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.unbonding.is_empty());
    assert_eq!(p.withdrawable.base(), 100 * TEZ);
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
    assert!(
        gained > 100 * TEZ - 10_000 && gained < 100 * TEZ,
        "{gained}"
    );
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
    // A payout, seen by the rewards scan, clears it.
    node.payout(&tz1(7), &me, 5_000);
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
