//! The Cardano adapter against the protocol-faithful test node over its
//! Blockfrost-shaped HTTP API: register + delegate, rewards over epochs, a
//! withdrawal refused without a DRep delegation and made after the vote
//! delegation, re-delegation, deregistration returning the deposit, the
//! refusals, chain-proven expiry and a wrong network.
#![allow(clippy::unwrap_used)]

use softstake_chain_ada::emulator;
use softstake_chain_ada::keys::LocalKey;
use softstake_chain_ada::testnode::{TestNode, TestNodeConfig, pool_bech32};
use softstake_chain_ada::tx::{self, Action, TxParams};
use softstake_chain_ada::{AdaAdapter, AdaSettings};
use softstake_core::Amount;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, FlowsRequest, LookupRequest,
    OperationKind, PoolStateRequest, RewardsRequest, SignedOperation, TxStatus,
};
use std::sync::Arc;
use std::time::Duration;

const ADA: u64 = 1_000_000;
const POOL1: [u8; 28] = [0x33; 28];
const POOL2: [u8; 28] = [0x44; 28];

fn cfg() -> TestNodeConfig {
    TestNodeConfig {
        min_fee_a: 44,
        min_fee_b: 155_381,
        key_deposit: 2 * ADA,
        epoch_length: 100,
        system_start: 1_700_000_000,
        reward_bps: 10,
        network_id: 0,
    }
}

fn settings(url: &str, magic: u64) -> AdaSettings {
    AdaSettings {
        endpoints: vec!["http://127.0.0.1:9".into(), url.into()],
        project_id: None,
        network_id: 0,
        network_magic: magic,
        drep: "always_abstain".into(),
        min_withdrawal: 1,
        ttl_slots: 50,
        // The including block and one more (each test step adds a block).
        confirmations: 2,
        min_change: ADA,
        request_timeout: Duration::from_secs(5),
    }
}

async fn build(a: &AdaAdapter, kind: OperationKind) -> Result<SignedOperation, AdapterError> {
    a.build_and_sign(softstake_testnode::operation(kind)).await
}

async fn send(node: &TestNode, a: &AdaAdapter, s: SignedOperation) {
    softstake_testnode::confirm(a, &s, || async { node.advance_slots(1) })
        .await
        .unwrap();
}

fn refused(r: Result<SignedOperation, AdapterError>) -> String {
    match r {
        Err(AdapterError::InvalidRequest(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_delegate_earn_withdraw_redelegate_and_deregister() {
    let node = TestNode::new(cfg());
    node.add_pool(POOL1);
    node.add_pool(POOL2);
    let payment = Arc::new(LocalKey::from_seed([0x11; 32]));
    let stake = Arc::new(LocalKey::from_seed([0x22; 32]));
    let address = tx::base_address(0, &payment.key_hash(), &stake.key_hash());
    node.fund(&address, 1_000 * ADA);
    node.fund(&address, 5 * ADA);
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{bound}");
    let a = AdaAdapter::new(settings(&url, 42), payment.clone(), stake.clone()).unwrap();
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.liquid.base(), u128::from(1_005 * ADA));
    assert!(p.delegations.is_empty());
    assert!(p.limits.delegation_keeps_funds_liquid);

    // Refused before signing.
    let delegate = |pool: &[u8; 28]| OperationKind::Delegate {
        validator: pool_bech32(pool),
        amount: Amount::from_base(1),
    };
    assert!(refused(build(&a, delegate(&[0x99; 28])).await).contains("unknown pool id"));
    assert!(
        refused(build(&a, OperationKind::ClaimRewards { validators: vec![] }).await)
            .contains("not registered")
    );
    assert!(
        refused(
            build(
                &a,
                OperationKind::Undelegate {
                    validator: pool_bech32(&POOL1),
                    amount: Amount::from_base(1)
                }
            )
            .await
        )
        .contains("spendable")
    );

    // Register + delegate in one transaction.
    send(&node, &a, build(&a, delegate(&POOL1)).await.unwrap()).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.delegations.len(), 1);
    assert_eq!(p.delegations[0].validator, pool_bech32(&POOL1));
    assert_eq!(p.delegations[0].active, p.liquid, "delegated and spendable");
    assert!(
        p.liquid.base() < u128::from(1_003 * ADA),
        "deposit and fee paid"
    );
    assert!(
        p.alerts.iter().any(|x| x.contains("DRep")),
        "{:?}",
        p.alerts
    );
    // Housekeeping asks for the vote delegation first.
    let m = a.maintenance(&p);
    assert_eq!(m.len(), 1);
    assert_eq!(
        m[0].kind,
        OperationKind::Setup {
            step: "vote_delegation".into()
        }
    );

    // Two epochs of rewards; withdrawing without a DRep is refused.
    node.advance_slots(200);
    let rewards = node.rewards(&stake.key_hash());
    assert!(rewards > 0);
    assert!(
        refused(build(&a, OperationKind::ClaimRewards { validators: vec![] }).await)
            .contains("DRep")
    );
    send(&node, &a, build(&a, m[0].kind.clone()).await.unwrap()).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    let m = a.maintenance(&p);
    assert_eq!(
        m[0].kind,
        OperationKind::ClaimRewards { validators: vec![] }
    );
    let before = p.liquid.base();
    send(&node, &a, build(&a, m[0].kind.clone()).await.unwrap()).await;
    assert_eq!(node.rewards(&stake.key_hash()), 0);
    let after = a
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap()
        .liquid
        .base();
    assert!(
        after > before && after < before + u128::from(rewards),
        "rewards in, fee out"
    );

    // The reward history, with evidence; a replay adds nothing.
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    assert_eq!(r.rewards.len(), 2, "{:?}", r.rewards);
    assert_eq!(
        r.rewards.iter().map(|x| x.amount.base()).sum::<u128>(),
        u128::from(rewards)
    );
    for x in &r.rewards {
        assert_eq!(x.validator, pool_bech32(&POOL1));
        assert_eq!(x.period.end().unix() - x.period.start().unix(), 100);
    }
    let again = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.rewards.is_empty());

    // Re-delegation.
    send(&node, &a, build(&a, delegate(&POOL2)).await.unwrap()).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.delegations[0].validator, pool_bech32(&POOL2));
    assert!(refused(build(&a, delegate(&POOL2)).await).contains("already delegated"));

    // A lost transaction expires once the tip passes its TTL.
    node.drop_submissions(1);
    let lost = build(
        &a,
        OperationKind::Setup {
            step: "vote_delegation:always_no_confidence".into(),
        },
    )
    .await
    .unwrap();
    a.broadcast(BroadcastRequest {
        signed: lost.clone(),
    })
    .await
    .unwrap();
    let look = || {
        a.lookup(LookupRequest {
            tx_id: lost.tx_id.clone(),
            signed_bytes: Some(lost.bytes.clone()),
        })
    };
    assert_eq!(look().await.unwrap().status, TxStatus::NotFound);
    node.advance_slots(60);
    assert_eq!(look().await.unwrap().status, TxStatus::Expired);

    // Deregistration withdraws what is left and returns the deposit.
    node.advance_slots(100);
    let left = node.rewards(&stake.key_hash());
    assert!(left > 0);
    let before = a
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap()
        .liquid
        .base();
    send(
        &node,
        &a,
        build(
            &a,
            OperationKind::Setup {
                step: "deregister".into(),
            },
        )
        .await
        .unwrap(),
    )
    .await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.delegations.is_empty());
    let gained = p.liquid.base() - before;
    assert!(
        gained > u128::from(2 * ADA + left) - u128::from(ADA)
            && gained < u128::from(2 * ADA + left),
        "{gained}"
    );
    // An independent ledger takes every transaction the node took and ends
    // in the same state (its one known defect is the withdrawal and
    // deregistration in one transaction).
    let r = emulator::replay(&node, 44, 155_381, 2 * ADA).unwrap();
    assert_eq!(r.defects.len(), 1, "{:?}", r.defects);
    agrees(&node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_enforces_fees_witnesses_and_balance_and_the_adapter_refuses_what_it_cannot_pay() {
    let node = TestNode::new(cfg());
    node.add_pool(POOL1);
    let payment = LocalKey::from_seed([0x11; 32]);
    let stake = LocalKey::from_seed([0x22; 32]);
    let address = tx::base_address(0, &payment.key_hash(), &stake.key_hash());
    node.fund(&address, 10 * ADA);
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (hash, index) = (hex::encode(node_first_utxo(&node, &bound).await), 0);
    let p = |min_fee_b: u64| TxParams {
        network_id: 0,
        min_fee_a: 44,
        min_fee_b,
        ttl: 1_000,
        inputs: vec![tx::Utxo {
            tx_hash: hash.clone(),
            output_index: index,
            lovelace: 10 * ADA,
        }],
        min_change: ADA,
    };
    let reg = Action::RegisterAndDelegate {
        pool: hex::encode(POOL1),
        deposit: 2 * ADA,
    };
    // A fee computed from lower parameters than the chain's.
    let cheap = tx::build(&reg, &payment, &stake, &p(1_000)).unwrap();
    assert!(
        node.apply(&cheap.tx)
            .unwrap_err()
            .contains("FeeTooSmallUTxO")
    );
    // A wrong deposit does not balance (and the deposit is checked).
    let wrong = tx::build(
        &Action::RegisterAndDelegate {
            pool: hex::encode(POOL1),
            deposit: ADA,
        },
        &payment,
        &stake,
        &p(155_381),
    )
    .unwrap();
    assert!(
        node.apply(&wrong.tx)
            .unwrap_err()
            .contains("IncorrectDeposit")
    );
    // Signed by a payment key that does not own the input.
    let other = LocalKey::from_seed([0x23; 32]);
    let mut bad = tx::build(&reg, &other, &stake, &p(155_381)).unwrap();
    assert!(
        node.apply(&bad.tx)
            .unwrap_err()
            .contains("MissingVKeyWitnesses")
    );
    // A tampered signature.
    let good = tx::build(&reg, &payment, &stake, &p(155_381)).unwrap();
    bad.tx = good.tx.clone();
    let n = bad.tx.len();
    bad.tx[n - 10] ^= 1;
    assert!(
        node.apply(&bad.tx)
            .unwrap_err()
            .contains("InvalidWitnesses")
    );
    // Its TTL is the slot it would land in: `invalidHereafter` excludes it.
    let edge = tx::build(
        &reg,
        &payment,
        &stake,
        &TxParams {
            ttl: node.slot() + 1,
            ..p(155_381)
        },
    )
    .unwrap();
    assert!(
        node.apply(&edge.tx)
            .unwrap_err()
            .contains("OutsideValidityInterval")
    );
    node.apply(&good.tx).unwrap();
    // Spent inputs cannot be spent again.
    assert!(node.apply(&good.tx).is_err());

    // The adapter refuses what the UTxOs cannot pay, before signing.
    let poor_pay = Arc::new(LocalKey::from_seed([0x31; 32]));
    let poor_stake = Arc::new(LocalKey::from_seed([0x32; 32]));
    node.fund(
        &tx::base_address(0, &poor_pay.key_hash(), &poor_stake.key_hash()),
        2 * ADA,
    );
    let a = AdaAdapter::new(
        settings(&format!("http://{bound}"), 42),
        poor_pay,
        poor_stake,
    )
    .unwrap();
    let m = refused(
        a.build_and_sign(BuildRequest {
            operation_id: "x".into(),
            kind: OperationKind::Delegate {
                validator: pool_bech32(&POOL1),
                amount: Amount::from_base(1),
            },
        })
        .await,
    );
    assert!(m.contains("insufficient UTxOs"), "{m}");

    // Another network's endpoint is refused.
    let w = AdaAdapter::new(
        settings(&format!("http://{bound}"), 764_824_073),
        Arc::new(payment),
        Arc::new(stake),
    )
    .unwrap();
    let e = w.pool_state(PoolStateRequest::default()).await.unwrap_err();
    assert!(matches!(e, AdapterError::WrongNetwork { .. }), "{e:?}");
    // The emulator refuses what the node refused, for its own reasons, but
    // for the wrong deposit, which it does not check. (It found the node
    // one slot too lenient on the TTL.)
    let r = emulator::replay(&node, 44, 155_381, 2 * ADA).unwrap();
    assert_eq!(r.unchecked, ["IncorrectDepositDELEG"]);
    let said: Vec<(bool, bool)> = r
        .verdicts
        .iter()
        .map(|(n, e)| (n.is_ok(), e.is_ok()))
        .collect();
    assert_eq!(
        said,
        [
            (false, false),
            (false, false),
            (false, false),
            (false, false),
            (true, true),
            (false, false)
        ],
        "{:?}",
        r.verdicts
    );
    let why = |i: usize| r.verdicts[i].1.clone().unwrap_err();
    assert!(
        why(0).contains("Insufficient transaction fee"),
        "{}",
        why(0)
    );
    assert!(why(1).contains("not found in witness set"), "{}", why(1));
    assert!(why(2).contains("Invalid vkey"), "{}", why(2));
    assert!(why(3).contains("outside the slot range"), "{}", why(3));
    assert!(why(5).contains("not found in the ledger"), "{}", why(5));
    agrees(&node);
}

fn agrees(node: &TestNode) {
    emulator::assert_agrees(node, 44, 155_381, 2 * ADA);
}

async fn node_first_utxo(node: &TestNode, bound: &std::net::SocketAddr) -> [u8; 32] {
    let _ = node;
    let payment = LocalKey::from_seed([0x11; 32]);
    let stake = LocalKey::from_seed([0x22; 32]);
    let addr = tx::bech32(&tx::base_address(0, &payment.key_hash(), &stake.key_hash()));
    let v: serde_json::Value = reqwest::get(format!("http://{bound}/addresses/{addr}/utxos"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    hex::decode(v[0]["tx_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_reward_history_is_read_from_the_cursor_page_not_from_page_one() {
    let node = TestNode::new(cfg());
    node.add_pool(POOL1);
    let payment = Arc::new(LocalKey::from_seed([0x11; 32]));
    let stake = Arc::new(LocalKey::from_seed([0x22; 32]));
    let address = tx::base_address(0, &payment.key_hash(), &stake.key_hash());
    node.fund(&address, 1_000 * ADA);
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = AdaAdapter::new(settings(&format!("http://{bound}"), 42), payment, stake).unwrap();
    send(
        &node,
        &a,
        build(
            &a,
            OperationKind::Delegate {
                validator: pool_bech32(&POOL1),
                amount: Amount::from_base(1),
            },
        )
        .await
        .unwrap(),
    )
    .await;
    // 250 epochs: three pages of 100 rows.
    node.advance_slots(250 * 100);
    let all = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    let n = all.rewards.len();
    assert!(n >= 249, "{n}");
    let cursor = all.next_cursor.clone().unwrap();
    assert!(cursor.ends_with(&format!(":seen:{n}")), "{cursor}");
    // Ten more epochs: exactly those, from the third page on.
    node.advance_slots(10 * 100);
    let more = a
        .rewards_since(RewardsRequest {
            cursor: Some(cursor.clone()),
        })
        .await
        .unwrap();
    assert_eq!(more.rewards.len(), 10);
    let last_epoch = all.rewards.last().unwrap().epoch.unwrap();
    assert_eq!(more.rewards[0].epoch, Some(last_epoch + 1));
    assert!(
        more.next_cursor
            .as_deref()
            .unwrap()
            .ends_with(&format!(":seen:{}", n + 10))
    );
    // A cursor written before `seen` existed reads from page one and
    // still returns only what is new.
    let old = cursor.split(":seen:").next().unwrap().to_owned();
    let again = a
        .rewards_since(RewardsRequest { cursor: Some(old) })
        .await
        .unwrap();
    assert_eq!(again.rewards, more.rewards);
    assert!(
        a.rewards_since(RewardsRequest {
            cursor: Some("epoch:3:seen:x".into())
        })
        .await
        .is_err()
    );
}

/// A node with POOL1 and a custody (keys from `seeds`) funded with 100
/// ADA, `slots` blocks on, served; its adapter with `tune`d settings.
async fn funded(
    seeds: (u8, u8),
    slots: u64,
    tune: impl FnOnce(AdaSettings) -> AdaSettings,
) -> (TestNode, AdaAdapter, Vec<u8>) {
    let node = TestNode::new(cfg());
    node.add_pool(POOL1);
    let payment = Arc::new(LocalKey::from_seed([seeds.0; 32]));
    let stake = Arc::new(LocalKey::from_seed([seeds.1; 32]));
    let address = tx::base_address(0, &payment.key_hash(), &stake.key_hash());
    node.fund(&address, 100 * ADA);
    node.advance_slots(slots);
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = AdaAdapter::new(
        tune(settings(&format!("http://{bound}"), 42)),
        payment,
        stake,
    )
    .unwrap();
    (node, a, address)
}

/// A delegation of 50 ADA to POOL1, signed.
async fn delegation(a: &AdaAdapter) -> SignedOperation {
    build(
        a,
        OperationKind::Delegate {
            validator: pool_bech32(&POOL1),
            amount: Amount::from_base(u128::from(50 * ADA)),
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn an_included_transaction_is_pending_until_it_is_deep_enough() {
    let (node, a, _) = funded((0x11, 0x22), 0, |s| AdaSettings {
        confirmations: 3,
        ..s
    })
    .await;
    let s = delegation(&a).await;
    a.broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    let look = || async {
        a.lookup(LookupRequest {
            tx_id: s.tx_id.clone(),
            signed_bytes: Some(s.bytes.clone()),
        })
        .await
        .unwrap()
        .status
    };
    // In a block, then one more: two deep, not yet three.
    assert_eq!(look().await, TxStatus::Pending);
    node.advance_slots(1);
    assert_eq!(look().await, TxStatus::Pending);
    node.advance_slots(1);
    assert!(
        matches!(look().await, TxStatus::Confirmed { .. }),
        "{:?}",
        look().await
    );
}

/// A rollback of the block holding our transaction, before it was deep
/// enough: the books wait while it is shallow (holdings that a rollback
/// undoes must not be booked), the transaction is then gone, the same
/// bytes are sent again within their validity interval and land once.
#[tokio::test]
async fn a_rollback_reopens_a_shallow_transaction_and_the_same_bytes_land_once() {
    let (node, a, _) = funded((0x17, 0x27), 3, |s| AdaSettings {
        confirmations: 3,
        ..s
    })
    .await;
    a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let opened = a.flows_since(FlowsRequest { cursor: None }).await.unwrap();
    let s = delegation(&a).await;
    a.broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    let look = || async {
        a.lookup(LookupRequest {
            tx_id: s.tx_id.clone(),
            signed_bytes: Some(s.bytes.clone()),
        })
        .await
        .unwrap()
        .status
    };
    node.advance_slots(1);
    assert_eq!(look().await, TxStatus::Pending);
    // Two deep of three: the pool read shows it, the flows wait.
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert!(p.liquid.base() < u128::from(100 * ADA));
    let wait = a
        .flows_since(FlowsRequest {
            cursor: opened.next_cursor.clone(),
        })
        .await
        .unwrap_err();
    match &wait {
        AdapterError::TryLater(m) => assert!(m.contains(&s.tx_id) && m.contains("2 block(s) deep")),
        other => panic!("expected the books to wait, got {other:?}"),
    }
    // The fork without it wins.
    assert_eq!(node.rollback(2), 1);
    assert_eq!(look().await, TxStatus::NotFound);
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert_eq!(p.liquid.base(), u128::from(100 * ADA));
    assert!(p.delegations.is_empty());
    // Nothing happened to the pool: the flows say so.
    let f = a
        .flows_since(FlowsRequest {
            cursor: opened.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(f.flows.is_empty(), "{:?}", f.flows);
    // Sent again, the very same bytes, still valid: in once, then final.
    a.broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    assert_eq!(look().await, TxStatus::Pending);
    node.advance_slots(2);
    assert!(matches!(look().await, TxStatus::Confirmed { .. }));
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert_eq!(p.delegations.len(), 1);
    let f = a
        .flows_since(FlowsRequest {
            cursor: opened.next_cursor,
        })
        .await
        .unwrap();
    let fees: Vec<_> = f
        .flows
        .iter()
        .filter(|x| x.kind == softstake_core::adapter::FlowKind::Fee)
        .map(|x| x.tx_id.clone())
        .collect();
    assert_eq!(fees, vec![s.tx_id.clone()], "one fee, once: {:?}", f.flows);
    // Sending it a third time changes nothing.
    assert!(a.broadcast(BroadcastRequest { signed: s }).await.is_err());
}

/// A rollback after which the transaction's validity interval runs out:
/// it can never land, and the chain proves it.
#[tokio::test]
async fn a_transaction_rolled_back_past_its_validity_interval_expires() {
    let (node, a, address) = funded((0x18, 0x28), 0, |s| AdaSettings {
        confirmations: 3,
        ttl_slots: 5,
        ..s
    })
    .await;
    let s = delegation(&a).await;
    a.broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    assert_eq!(node.rollback(1), 1);
    node.advance_slots(6);
    let st = a
        .lookup(LookupRequest {
            tx_id: s.tx_id.clone(),
            signed_bytes: Some(s.bytes.clone()),
        })
        .await
        .unwrap()
        .status;
    assert_eq!(st, TxStatus::Expired);
    let e = a
        .broadcast(BroadcastRequest { signed: s })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("OutsideValidityInterval"), "{e}");
    assert_eq!(node.balance(&address), 100 * ADA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_explain_every_lovelace_through_deposit_rewards_withdrawal_and_a_top_up() {
    use softstake_core::adapter::FlowKind;
    let node = TestNode::new(cfg());
    node.add_pool(POOL1);
    let payment = Arc::new(LocalKey::from_seed([0x55; 32]));
    let stake = Arc::new(LocalKey::from_seed([0x66; 32]));
    let address = tx::base_address(0, &payment.key_hash(), &stake.key_hash());
    node.fund(&address, 1_000 * ADA);
    node.advance_slots(1);
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let a = AdaAdapter::new(settings(&format!("http://{bound}"), 42), payment, stake).unwrap();
    let total = |p: &softstake_core::adapter::PoolStateResponse| {
        i128::try_from(p.holdings().unwrap().booked().unwrap().base()).unwrap()
    };
    // The books open here: the funding before is the opening balance.
    let p0 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert_eq!(total(&p0), i128::from(1_000 * ADA as i64));
    let f0 = a.flows_since(FlowsRequest { cursor: None }).await.unwrap();
    assert!(f0.complete && f0.flows.is_empty());

    // Register and delegate (the deposit stays the custody's), earn two
    // epochs, delegate the vote, withdraw the rewards, get a top-up, and
    // deregister (the deposit comes back).
    let delegate = OperationKind::Delegate {
        validator: pool_bech32(&POOL1),
        amount: Amount::from_base(1),
    };
    let mut ours = Vec::new();
    let s = build(&a, delegate).await.unwrap();
    ours.push(s.tx_id.clone());
    send(&node, &a, s).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(
        total(&p) > i128::from(999 * ADA as i64),
        "the deposit is still held"
    );
    node.advance_slots(200);
    for kind in [
        OperationKind::Setup {
            step: "vote_delegation".into(),
        },
        OperationKind::ClaimRewards { validators: vec![] },
    ] {
        let s = build(&a, kind).await.unwrap();
        ours.push(s.tx_id.clone());
        send(&node, &a, s).await;
    }
    let top_up = node.fund(&address, 50 * ADA);
    node.advance_slots(1);
    let s = build(
        &a,
        OperationKind::Setup {
            step: "deregister".into(),
        },
    )
    .await
    .unwrap();
    ours.push(s.tx_id.clone());
    send(&node, &a, s).await;

    let p1 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let f = a
        .flows_since(FlowsRequest {
            cursor: f0.next_cursor,
        })
        .await
        .unwrap();
    assert!(f.complete);
    let fees: Vec<&str> = f
        .flows
        .iter()
        .filter(|x| x.kind == FlowKind::Fee)
        .map(|x| x.tx_id.as_str())
        .collect();
    assert_eq!(fees, ours.iter().map(String::as_str).collect::<Vec<_>>());
    let ins: Vec<_> = f
        .flows
        .iter()
        .filter(|x| x.kind == FlowKind::TransferIn)
        .collect();
    assert_eq!(ins.len(), 1);
    assert_eq!(
        (ins[0].tx_id.as_str(), ins[0].amount.base()),
        (top_up.as_str(), u128::from(50 * ADA))
    );
    assert!(f.flows.iter().all(|x| x.kind != FlowKind::TransferOut));
    // Every lovelace explained: Δholdings = in − fees + rewards.
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    let rewards: i128 = r
        .rewards
        .iter()
        .map(|x| i128::try_from(x.amount.base()).unwrap())
        .sum();
    assert!(rewards > 0);
    let sum = |k: FlowKind| -> i128 {
        f.flows
            .iter()
            .filter(|x| x.kind == k)
            .map(|x| i128::try_from(x.amount.base()).unwrap())
            .sum()
    };
    assert_eq!(
        total(&p1) - total(&p0),
        sum(FlowKind::TransferIn) - sum(FlowKind::Fee) + rewards
    );
    // After a restore: each of our transactions is recognised as the
    // operation it was; the faucet's top-up is not ours.
    use softstake_core::adapter::IdentifyRequest;
    let mut kinds = Vec::new();
    for t in &ours {
        let r = a
            .identify(IdentifyRequest { tx_id: t.clone() })
            .await
            .unwrap();
        let found = r.found.unwrap();
        assert!(matches!(found.status, TxStatus::Confirmed { .. }));
        kinds.push(found.kind.name());
    }
    assert_eq!(kinds, ["delegate", "setup", "claim_rewards", "setup"]);
    let r = a.identify(IdentifyRequest { tx_id: top_up }).await.unwrap();
    assert!(r.supported && r.found.is_none());
    // Read again: nothing new.
    a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let again = a
        .flows_since(FlowsRequest {
            cursor: f.next_cursor,
        })
        .await
        .unwrap();
    assert!(again.flows.is_empty());
    agrees(&node);
}
