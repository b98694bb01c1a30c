//! The adapter's full cycle against the protocol-faithful test node over
//! real HTTP: delegate, accrue, claim, redelegate, undelegate, wait, see
//! the funds return; and the bad inputs the issue lists.
#![allow(clippy::unwrap_used)]

use rust_decimal::Decimal;
use softstake_chain_atom::keys::{LocalKey, Signer};
use softstake_chain_atom::testnode::{TestNode, TestNodeConfig};
use softstake_chain_atom::{AtomAdapter, AtomSettings};
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, LookupRequest, OperationKind,
    PoolStateRequest, ReplaceRequest, RewardsRequest, SignedOperation, TxStatus,
};
use softstake_core::{Amount, Period, Secret, Timestamp};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const V1: &str = "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0";
const V2: &str = "cosmosvaloper156gqf9837u7d4c4678yt3rl4ls9c5vuursrrzf";
// A well-formed validator address the chain does not know.
const V3: &str = "cosmosvaloper1clpqr4nrk4khgkxj78fcwwh6dl3uw4epsluffn";
const DAY: i64 = 86_400;

async fn setup(chain_id_in_adapter: &str) -> (TestNode, AtomAdapter, String) {
    let (node, a, addr, _) = setup_at(chain_id_in_adapter).await;
    (node, a, addr)
}

async fn setup_at(
    chain_id_in_adapter: &str,
) -> (TestNode, AtomAdapter, String, std::net::SocketAddr) {
    let key = LocalKey::parse(&Secret::new(KEY.into())).unwrap();
    let addr = key.address();
    let node = TestNode::new(TestNodeConfig {
        chain_id: "sim-hub-1".into(),
        genesis_time: 1_767_225_600,
        block_secs: 6,
        unbonding_secs: 21 * DAY,
        max_entries: 7,
        // About 10% a year: 3.2e-9 per second, x 1e18.
        reward_per_token_per_sec: 3_200_000_000,
        // 0.005 uatom per gas.
        min_gas_price: 5_000_000_000_000_000,
        validators: vec![V1.into(), V2.into()],
        accounts: vec![(addr.clone(), 100_000_000)],
    });
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    (node, adapter(bound, chain_id_in_adapter), addr, bound)
}

/// An adapter (a process) on the node at `bound`, with the custody key.
fn adapter(bound: std::net::SocketAddr, chain_id_in_adapter: &str) -> AtomAdapter {
    let key = LocalKey::parse(&Secret::new(KEY.into())).unwrap();
    AtomAdapter::new(
        AtomSettings {
            // The first endpoint is down: the adapter falls back.
            endpoints: vec!["http://127.0.0.1:9/".into(), format!("http://{bound}/")],
            chain_id: chain_id_in_adapter.into(),
            gas_price: Decimal::new(25, 3),
            fee_market: true,
            gas_price_margin: Decimal::new(15, 1),
            max_gas_price: Decimal::new(1, 1),
            gas_multiplier: Decimal::new(13, 1),
            max_gas: 1_000_000,
            timeout_blocks: 20,
            memo: "softstake".into(),
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(key),
    )
    .unwrap()
}

fn op(kind: OperationKind) -> BuildRequest {
    softstake_testnode::operation(kind)
}

async fn send(node: &TestNode, a: &AtomAdapter, kind: OperationKind) -> SignedOperation {
    softstake_testnode::send_and_confirm(a, kind, || async { node.advance(6) })
        .await
        .unwrap()
}

fn delegate(v: &str, n: u128) -> OperationKind {
    OperationKind::Delegate {
        validator: v.into(),
        amount: Amount::from_base(n),
    }
}

fn undelegate(v: &str, n: u128) -> OperationKind {
    OperationKind::Undelegate {
        validator: v.into(),
        amount: Amount::from_base(n),
    }
}

#[tokio::test]
async fn delegate_accrue_claim_redelegate_undelegate_and_see_the_funds_return() {
    let (node, a, addr) = setup("sim-hub-1").await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.liquid, Amount::from_base(100_000_000));
    assert!(p.delegations.is_empty());
    assert_eq!(p.limits.max_unbonding_entries, Some(7));
    assert_eq!(p.limits.unbonding_delay_secs, 21 * 86_400);

    send(&node, &a, delegate(V1, 60_000_000)).await;
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.delegations[0].active, Amount::from_base(60_000_000));
    assert!(!p.delegations[0].impaired);
    let fee = 40_000_000 - p.liquid.base();
    assert!(fee > 0 && fee < 10_000, "fee {fee}");

    // A day of rewards: about 60M x 3.2e-9 x 86400 = 16,588.
    node.advance(DAY);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    let claimable = p.claimable_rewards.base();
    assert!((16_000..17_000).contains(&claimable), "{claimable}");
    let before = node.balance(&addr);
    send(
        &node,
        &a,
        OperationKind::ClaimRewards { validators: vec![] },
    )
    .await;
    let after = node.balance(&addr);
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    assert_eq!(r.rewards.len(), 1);
    let got = r.rewards[0].amount.base();
    // What the chain paid is what softstake records (the fee left apart).
    let claim_fee = before + got - after;
    assert!(claim_fee > 0 && claim_fee < 10_000);
    assert_eq!(r.rewards[0].validator, V1);
    assert!(
        r.rewards[0].period.secs() >= 86_400,
        "{:?}",
        r.rewards[0].period
    );
    // Replaying from the cursor finds nothing new.
    let again = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.rewards.is_empty());

    // Redelegate 10 ATOM to V2 (withdraws V1's rewards on the way).
    send(
        &node,
        &a,
        OperationKind::Redelegate {
            from: V1.into(),
            to: V2.into(),
            amount: Amount::from_base(10_000_000),
        },
    )
    .await;
    // Moving it on again before it matures is refused by the chain, which
    // the simulation catches before anything is signed for real.
    let err = a
        .build_and_sign(op(OperationKind::Redelegate {
            from: V2.into(),
            to: V1.into(),
            amount: Amount::from_base(1),
        }))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::InvalidRequest(m) if m.contains("still maturing")),
        "{err}"
    );
    let r2 = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(
        !r2.rewards.is_empty(),
        "the automatic withdrawal is a reward too"
    );

    // Seven unbonding entries, then the eighth is refused before signing.
    for _ in 0..7 {
        send(&node, &a, undelegate(V1, 1_000_000)).await;
    }
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert_eq!(p.unbonding.len(), 7);
    let err = a
        .build_and_sign(op(undelegate(V1, 1_000_000)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::InvalidRequest(m) if m.contains("7 unbonding entries")),
        "{err}"
    );
    // Wait out the unbonding time: the 7 ATOM come back.
    let liquid = p.liquid.base();
    node.advance(21 * DAY + 60);
    let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
    assert!(p.unbonding.is_empty());
    assert_eq!(p.liquid.base(), liquid + 7_000_000);
    assert_eq!(p.delegations.len(), 2);
}

#[tokio::test]
async fn bad_inputs_are_refused_before_anything_is_signed_or_sent() {
    let (node, a, _) = setup("sim-hub-1").await;
    let sent_before = node.successful_txs();
    for (kind, want) in [
        (delegate(V3, 5), "unknown validator"),
        (
            delegate("cosmos1notavalidator", 5),
            "not a valid cosmosvaloper",
        ),
        (delegate(V1, 100_000_001), "free balance"),
        (delegate(V1, 0), "greater than 0"),
    ] {
        let err = a.build_and_sign(op(kind)).await.unwrap_err();
        assert!(
            matches!(&err, AdapterError::InvalidRequest(m) if m.contains(want)),
            "{want}: {err}"
        );
    }
    node.jail(V2);
    let err = a.build_and_sign(op(delegate(V2, 5))).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::InvalidRequest(m) if m.contains("jailed")),
        "{err}"
    );
    assert_eq!(node.mempool_len(), 0);
    assert_eq!(node.successful_txs(), sent_before);

    // An endpoint on another network is fatal, not retried.
    let (_n2, wrong, _) = setup("cosmoshub-4").await;
    let err = wrong
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::WrongNetwork { .. }), "{err}");
    assert!(!err.is_retryable());

    // A node that does not index transactions would answer every
    // tx_search with nothing: refused, saying what to configure.
    let (n3, unindexed, _) = setup("sim-hub-1").await;
    n3.disable_tx_index();
    let err = unindexed
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("does not index transactions")
            && err.to_string().contains("indexer = \"kv\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_sequence_mismatch_is_recovered_by_rereading_and_expiry_is_proven_by_height() {
    let (node, a, _) = setup("sim-hub-1").await;
    // Two signed back to back take sequences 0 and 1.
    let first = a.build_and_sign(op(delegate(V1, 1_000))).await.unwrap();
    let second = a.build_and_sign(op(delegate(V1, 2_000))).await.unwrap();
    // The first never reaches the node; the second is out of order.
    let err = a
        .broadcast(BroadcastRequest {
            signed: second.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("sequence")),
        "{err}"
    );
    // The next build re-reads the sequence (0 again): one new transaction,
    // and neither old one was sent twice.
    let third = send(&node, &a, delegate(V1, 3_000)).await;
    assert_ne!(third.bytes, first.bytes);
    assert_eq!(node.successful_txs(), 1);
    // The first, never sent, is past its timeout height after 20 blocks:
    // the chain proves it can never be included.
    let look = |s: &SignedOperation| LookupRequest {
        tx_id: s.tx_id.clone(),
        signed_bytes: Some(s.bytes.clone()),
    };
    assert_eq!(
        a.lookup(look(&first)).await.unwrap().status,
        TxStatus::NotFound
    );
    node.advance(6 * 25);
    assert_eq!(
        a.lookup(look(&first)).await.unwrap().status,
        TxStatus::Expired
    );
    // And broadcasting it now is refused by the node.
    assert!(
        a.broadcast(BroadcastRequest { signed: first })
            .await
            .is_err()
    );
}

#[tokio::test]
async fn slashing_shows_as_lost_delegation_value() {
    let (node, a, _) = setup("sim-hub-1").await;
    send(&node, &a, delegate(V1, 50_000_000)).await;
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    assert!(p.losses.is_empty());
    assert_eq!(p.delegations[0].commission.as_deref(), Some("0.05"));
    node.slash(V1, 50_000); // 5% of the validator's tokens
    // A read that does not observe (a withdrawal request through the API)
    // reports nothing and moves nothing: the loss is still there for the
    // engine's cycle.
    for _ in 0..2 {
        let p = a.pool_state(PoolStateRequest::default()).await.unwrap();
        assert!(p.losses.is_empty(), "{:?}", p.losses);
    }
    let p = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let active = p.delegations[0].active.base();
    // Reported once, as a loss event of what our stake lost.
    assert_eq!(p.losses.len(), 1, "{:?}", p.losses);
    assert_eq!(p.losses[0].validator, V1);
    assert_eq!(p.losses[0].amount.base(), 50_000_000 - active);
    assert!(
        a.pool_state(PoolStateRequest::observing())
            .await
            .unwrap()
            .losses
            .is_empty()
    );
    assert!((47_499_999..50_000_000).contains(&active), "{active}");
}

#[tokio::test]
async fn flows_prove_every_coin_in_and_out_and_our_operations_are_recognised() {
    use softstake_core::adapter::{FlowKind, FlowsRequest, IdentifyRequest};
    let (node, a, addr) = setup("sim-hub-1").await;
    let holdings = |p: &softstake_core::adapter::PoolStateResponse| {
        p.holdings().unwrap().booked().unwrap().base()
    };
    // The first observing read opens the books: nothing before it is a flow.
    send(&node, &a, delegate(V1, 50_000_000)).await;
    let p0 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let f = a.flows_since(FlowsRequest { cursor: None }).await.unwrap();
    assert!(f.complete && f.flows.is_empty(), "{f:?}");
    let rewards = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();

    // Staking, rewards, a top-up from the exchange's wallet, a payout
    // signed elsewhere with the custody key, and a stranger's payment in
    // another denomination's transaction.
    let delegated = send(&node, &a, delegate(V2, 20_000_000)).await;
    node.advance(DAY);
    let claim = send(
        &node,
        &a,
        OperationKind::ClaimRewards { validators: vec![] },
    )
    .await;
    let top_up = node.bank_send("cosmos1exchangehotwallet", &addr, 5_000_000, 3_000);
    let payout = node.bank_send(&addr, "cosmos1someuser", 1_000_000, 2_500);
    node.advance(6);
    send(&node, &a, undelegate(V1, 10_000_000)).await;
    let p1 = a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let f = a
        .flows_since(FlowsRequest {
            cursor: f.next_cursor,
        })
        .await
        .unwrap();
    assert!(f.complete);
    let of = |tx: &str, kind: FlowKind| -> u128 {
        f.flows
            .iter()
            .filter(|x| x.tx_id == tx && x.kind == kind)
            .map(|x| x.amount.base())
            .sum()
    };
    assert_eq!(of(&top_up, FlowKind::TransferIn), 5_000_000);
    assert_eq!(of(&top_up, FlowKind::Fee), 0, "the sender paid it");
    assert_eq!(of(&payout, FlowKind::TransferOut), 1_000_000);
    assert_eq!(of(&payout, FlowKind::Fee), 2_500);
    assert!(of(&delegated.tx_id, FlowKind::Fee) > 0);
    assert_eq!(
        of(&delegated.tx_id, FlowKind::TransferOut),
        0,
        "staking is no flow"
    );
    assert_eq!(
        of(&claim.tx_id, FlowKind::TransferIn),
        0,
        "rewards are booked as rewards"
    );
    let top = f.flows.iter().find(|x| x.tx_id == top_up).unwrap();
    assert_eq!(
        top.counterparty.as_deref(),
        Some("cosmos1exchangehotwallet")
    );
    // Keys are unique, so each is booked once.
    let keys: std::collections::BTreeSet<_> = f.flows.iter().map(|x| &x.key).collect();
    assert_eq!(keys.len(), f.flows.len());

    // The books balance to the uatom: Δholdings = in − out − fees + rewards.
    let r = a
        .rewards_since(RewardsRequest {
            cursor: rewards.next_cursor,
        })
        .await
        .unwrap();
    let withdrawn: u128 = r.rewards.iter().map(|x| x.amount.base()).sum();
    assert!(withdrawn > 0);
    let signed = |k: FlowKind| -> i128 {
        f.flows
            .iter()
            .filter(|x| x.kind == k)
            .map(|x| i128::try_from(x.amount.base()).unwrap())
            .sum()
    };
    let explained =
        signed(FlowKind::TransferIn) - signed(FlowKind::TransferOut) - signed(FlowKind::Fee)
            + i128::try_from(withdrawn).unwrap();
    let delta = i128::try_from(holdings(&p1)).unwrap() - i128::try_from(holdings(&p0)).unwrap();
    assert_eq!(delta, explained);

    // Nothing new: nothing reported again.
    a.pool_state(PoolStateRequest::observing()).await.unwrap();
    let again = a
        .flows_since(FlowsRequest {
            cursor: f.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.flows.is_empty());

    // After a restore: our own transactions are recognised, the payout is not.
    let id = |tx: &str| {
        let a = &a;
        let tx = tx.to_owned();
        async move { a.identify(IdentifyRequest { tx_id: tx }).await.unwrap() }
    };
    let found = id(&delegated.tx_id).await.found.unwrap();
    assert_eq!(found.kind, delegate(V2, 20_000_000));
    assert!(matches!(found.status, TxStatus::Confirmed { .. }));
    assert!(matches!(
        id(&claim.tx_id).await.found.unwrap().kind,
        OperationKind::ClaimRewards { .. }
    ));
    let not = id(&payout).await;
    assert!(not.supported && not.found.is_none());
}

/// uatom per gas x 10^18, as the fee market's query answers it.
fn price(milli_uatom: u128) -> u128 {
    milli_uatom * 1_000_000_000_000_000
}

#[tokio::test]
async fn the_fee_market_prices_every_transaction_and_nothing_is_signed_above_the_ceiling() {
    let (node, a, addr) = setup("sim-hub-1").await;
    let paid = |before: u128, delegated: u128| before - node.balance(&addr) - delegated;
    // The market at its minimum (0.005, x1.5 margin = 0.0075): the
    // configured floor (0.025) is paid.
    let before = node.balance(&addr);
    let first = a.build_and_sign(op(delegate(V1, 1_000))).await.unwrap();
    a.broadcast(BroadcastRequest { signed: first })
        .await
        .unwrap();
    node.advance(6);
    let floor_fee = paid(before, 1_000);
    // The market rises to 0.04: 0.06 a gas with the margin, 2.4x the floor.
    node.set_gas_price(price(40));
    let before = node.balance(&addr);
    send(&node, &a, delegate(V1, 1_000)).await;
    let market_fee = paid(before, 1_000);
    assert!(
        market_fee * 10 >= floor_fee * 23 && market_fee * 10 <= floor_fee * 25,
        "floor {floor_fee}, market {market_fee}"
    );
    // A transaction priced before a rise is refused by the node's fee
    // market (CheckTx: fee < ceil(price x gas limit)), never included.
    let stale = a.build_and_sign(op(delegate(V1, 1_000))).await.unwrap();
    node.set_gas_price(price(70));
    let err = a
        .broadcast(BroadcastRequest {
            signed: stale.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Underpriced(m) if m.contains("code 13") && m.contains("insufficient fee")),
        "{err}"
    );
    // At 0.065 (x1.5 = 0.0975, under the ceiling) the stale version is
    // still short; signed again under the same sequence at the market's price: the
    // same messages, a higher fee, and it is taken; the refused version
    // can then never land (its sequence is used).
    let replace = |previous: &SignedOperation| {
        a.replace(ReplaceRequest {
            operation_id: "op".into(),
            kind: op(delegate(V1, 1_000)).kind,
            previous: previous.clone(),
        })
    };
    node.set_gas_price(price(65));
    let again = replace(&stale).await.unwrap();
    let (s0, s1) = (
        softstake_chain_atom::tx::decode_signed(&stale.bytes).unwrap(),
        softstake_chain_atom::tx::decode_signed(&again.bytes).unwrap(),
    );
    assert_eq!((s1.sequence, &s1.messages), (s0.sequence, &s0.messages));
    assert!(s1.fee > s0.fee, "{} > {}", s1.fee, s0.fee);
    // No higher fee to offer than the new version's: nothing better.
    let err = replace(&again).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::TryLater(m) if m.contains("no more")),
        "{err}"
    );
    let before = node.balance(&addr);
    a.broadcast(BroadcastRequest { signed: again })
        .await
        .unwrap();
    node.advance(6);
    assert_eq!(before - node.balance(&addr), 1_000 + s1.fee);
    let err = a
        .broadcast(BroadcastRequest {
            signed: stale.clone(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sequence"), "{err}");
    // Nor is a used sequence signed again.
    let err = replace(&stale).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::TryLater(m) if m.contains("used already")),
        "{err}"
    );
    // Above the ceiling (0.08 x 1.5 = 0.12 > 0.1) nothing is signed: the
    // operation waits and says why.
    node.set_gas_price(price(80));
    let txs = node.successful_txs();
    let err = a.build_and_sign(op(delegate(V1, 1_000))).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::TryLater(m) if m.contains("max_gas_price")),
        "{err}"
    );
    assert!(err.is_retryable());
    // Once the price falls it is signed and lands (the stale transaction's
    // sequence is taken again once its timeout passed or it was refused).
    node.set_gas_price(price(50));
    node.advance(6 * 25);
    send(&node, &a, delegate(V1, 1_000)).await;
    assert_eq!(node.successful_txs(), txs + 1);
}

/// Issue 32 on Cosmos: after a database restore the journal no longer knows
/// a delegation the lost process broadcast, still in the mempool. The
/// restored process plans it again: its transaction takes the committed
/// sequence, which the pending one holds, so the node refuses it; once the
/// pending one is included the books find it by its fee and adopt it. The
/// chain's sequence makes a second send impossible (unlike Ethereum's
/// "pending" nonce, guarded in the adapter).
#[tokio::test]
async fn a_transaction_still_in_the_mempool_at_a_restore_is_never_sent_twice() {
    let (node, lost, _, bound) = setup_at("sim-hub-1").await;
    let first = lost.build_and_sign(op(delegate(V1, 5_000))).await.unwrap();
    lost.broadcast(BroadcastRequest {
        signed: first.clone(),
    })
    .await
    .unwrap();
    drop(lost);
    // The restored process: nothing pending in memory. The same plan at
    // the same height signs the very same bytes (deterministic signatures,
    // the committed sequence): the node already holds them (CometBFT's
    // mempool cache refuses them as "tx already exists in cache", which
    // the adapter takes as sent), and they can be included once.
    let restored = adapter(bound, "sim-hub-1");
    let same = restored
        .build_and_sign(op(delegate(V1, 5_000)))
        .await
        .unwrap();
    assert_eq!((&same.tx_id, &same.bytes), (&first.tx_id, &first.bytes));
    restored
        .broadcast(BroadcastRequest { signed: same })
        .await
        .unwrap();
    // Any other plan takes the same sequence, which the pending one holds:
    // refused.
    let restored = adapter(bound, "sim-hub-1");
    let again = restored
        .build_and_sign(op(delegate(V1, 6_000)))
        .await
        .unwrap();
    assert_ne!(again.tx_id, first.tx_id);
    let err = restored
        .broadcast(BroadcastRequest { signed: again })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::Rejected(m) if m.contains("sequence")),
        "{err}"
    );
    node.advance(6);
    assert_eq!(node.successful_txs(), 1, "only the first was included");
    let look = restored
        .lookup(LookupRequest {
            tx_id: first.tx_id.clone(),
            signed_bytes: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(look.status, TxStatus::Confirmed { .. }),
        "{look:?}"
    );
    // Its fee is a flow the books see, and the adapter recognises it as
    // its own delegation (the journal adopts it).
    let found = restored
        .identify(softstake_core::adapter::IdentifyRequest {
            tx_id: first.tx_id.clone(),
        })
        .await
        .unwrap();
    assert!(
        matches!(&found.found, Some(f) if matches!(&f.kind, OperationKind::Delegate { amount, .. } if amount.base() == 5_000)),
        "{found:?}"
    );
}

/// Issue 26: a delegation's rewards accrued since its own previous
/// withdrawal (or since it began), not since another delegation's: the
/// chain withdraws a delegation's rewards on every delegate, undelegate and
/// redelegate touching it, and those automatic withdrawals end only that
/// delegation's period.
#[tokio::test]
async fn each_delegations_reward_period_starts_at_its_own_previous_withdrawal() {
    let (node, a, _) = setup("sim-hub-1").await;
    let t_v1 = node.head().1;
    send(&node, &a, delegate(V1, 60_000_000)).await;
    node.advance(DAY / 2);
    let t_v2 = node.head().1;
    send(&node, &a, delegate(V2, 20_000_000)).await;
    node.advance(DAY / 2);
    // Adding to V2 withdraws V2's rewards (and only V2's).
    send(&node, &a, delegate(V2, 1_000_000)).await;
    node.advance(DAY);
    send(
        &node,
        &a,
        OperationKind::ClaimRewards { validators: vec![] },
    )
    .await;
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    let of = |v: &str| -> Vec<Period> {
        r.rewards
            .iter()
            .filter(|x| x.validator == v)
            .map(|x| x.period)
            .collect()
    };
    let (v1, v2) = (of(V1), of(V2));
    assert_eq!((v1.len(), v2.len()), (1, 2), "{:?}", r.rewards);
    // V1 earned from its delegation's block to the claim: two days, not
    // the one day since V2's automatic withdrawal.
    let near = |t: Timestamp, want: i64| (t.unix() - want).abs() <= 12;
    assert!(near(v1[0].start(), t_v1), "{:?} vs {t_v1}", v1[0]);
    assert!(v1[0].secs() >= 2 * DAY as u64 - 12, "{:?}", v1[0]);
    // V2: from its delegation to the automatic withdrawal, then on.
    assert!(near(v2[0].start(), t_v2), "{:?} vs {t_v2}", v2[0]);
    assert_eq!(v2[1].start(), v2[0].end());
    assert_eq!(v2[1].end(), v1[0].end(), "one claim ends both");
    // The cursor carries each delegation's last withdrawal: read again
    // from it after another day, each period starts at that claim.
    node.advance(DAY);
    send(
        &node,
        &a,
        OperationKind::ClaimRewards { validators: vec![] },
    )
    .await;
    let next = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert_eq!(next.rewards.len(), 2, "{:?}", next.rewards);
    assert!(next.rewards.iter().all(|x| x.period.start() == v1[0].end()));
}

/// Issue 30: the Hub pays ATOM delegators in other denominations too (IBC
/// denominations, in the same `withdraw_rewards` event as the uatom). The
/// uatom is the pool's reward; each other denomination is reported
/// separately, never dropped and never counted as uatom; the custody
/// account's uatom flows are untouched by it.
#[tokio::test]
async fn a_reward_paid_in_another_denomination_is_reported_apart_from_the_uatom() {
    const IBC: &str = "ibc/0025F8A87464A471E66B234C4F93AEC5B4DA3D42D7986451A059273426290DD5";
    let (node, a, addr) = setup("sim-hub-1").await;
    send(&node, &a, delegate(V1, 60_000_000)).await;
    send(&node, &a, delegate(V2, 20_000_000)).await;
    node.advance(DAY);
    node.pay_foreign(&addr, V1, IBC, 4_321);
    node.pay_foreign(&addr, V1, "ibc/AAA", 7);
    send(
        &node,
        &a,
        OperationKind::ClaimRewards { validators: vec![] },
    )
    .await;
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    // Both delegations paid uatom; V1 also paid two other denominations.
    assert_eq!(r.rewards.len(), 2, "{:?}", r.rewards);
    assert!(r.rewards.iter().all(|x| x.amount.base() > 0));
    let mut foreign: Vec<(String, u128, String)> = r
        .foreign
        .iter()
        .map(|f| (f.denom.clone(), f.amount, f.validator.clone()))
        .collect();
    foreign.sort();
    assert_eq!(
        foreign,
        [
            (IBC.to_owned(), 4_321, V1.to_owned()),
            ("ibc/AAA".to_owned(), 7, V1.to_owned())
        ]
    );
    assert_eq!(node.foreign_balance(&addr, IBC), 4_321);
    // Keys are distinct per denomination, and the same on a re-read.
    let again = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    assert_eq!(again.foreign, r.foreign);
    assert_ne!(r.foreign[0].key, r.foreign[1].key);
    // From the cursor, nothing is reported twice.
    let next = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(next.rewards.is_empty() && next.foreign.is_empty());
}
