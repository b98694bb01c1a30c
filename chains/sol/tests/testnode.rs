//! The Solana adapter against the real SVM (LiteSVM's system, vote and
//! stake programs, tests' node in chains/sol/testnode): every operation is
//! signed by the adapter and executed by the stake program; warm-up and
//! cool-down run over several epochs against a small cluster, rewards are
//! read back with evidence, and bad input is refused before signing.
#![allow(clippy::unwrap_used)]

use softstake_chain_sol::keys::LocalKey;
use softstake_chain_sol::testnode::{SvmNode, SvmOptions};
use softstake_chain_sol::tx::{self, Action, TxParams};
use softstake_chain_sol::{SolAdapter, SolSettings};
use softstake_core::Amount;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, FlowKind, FlowsRequest,
    LookupRequest, OperationKind, PoolFlow, PoolStateRequest, PoolStateResponse, RewardsRequest,
    SignedOperation, TxStatus,
};
use std::sync::Arc;
use std::time::Duration;

const SOL: u64 = 1_000_000_000;

fn settings(node: &SvmNode, endpoints: Vec<String>) -> SolSettings {
    SolSettings {
        endpoints,
        genesis_hash: node.genesis_hash.clone(),
        withdrawer: None,
        compute_unit_price: 1_000,
        compute_unit_limit: 100_000,
        priority_fee_market: true,
        priority_fee_percentile: 75,
        max_compute_unit_price: 1_000_000,
        rebroadcast_for: Duration::from_secs(2),
        rebroadcast_every: Duration::from_millis(200),
        fee_reserve: SOL / 100,
        slot_ms: 400,
        max_reward_epochs: 50,
        request_timeout: Duration::from_secs(10),
    }
}

async fn build(a: &SolAdapter, kind: OperationKind) -> Result<SignedOperation, AdapterError> {
    a.build_and_sign(BuildRequest {
        operation_id: "t".into(),
        kind,
    })
    .await
}

/// Broadcasts, lets a slot pass, and asserts the transaction is final.
async fn send_and_confirm(node: &SvmNode, a: &SolAdapter, signed: SignedOperation) {
    assert!(tx::verify(&signed.bytes));
    let r = a
        .broadcast(BroadcastRequest {
            signed: signed.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r.tx_id, signed.tx_id);
    let look = || {
        a.lookup(LookupRequest {
            tx_id: signed.tx_id.clone(),
            signed_bytes: Some(signed.bytes.clone()),
        })
    };
    assert_eq!(look().await.unwrap().status, TxStatus::Pending);
    node.advance_slots(1).await.unwrap();
    assert!(matches!(
        look().await.unwrap().status,
        TxStatus::Confirmed { .. }
    ));
}

/// A node whose other validators hold 20 SOL effective: 9% of it (1.8 SOL)
/// warms up per epoch, so 10 SOL takes several epochs.
async fn small_cluster() -> SvmNode {
    SvmNode::start(SvmOptions {
        cluster_stake: 20 * SOL,
        reward_bps: 10,
        ..SvmOptions::default()
    })
    .await
    .unwrap()
}

async fn pool(a: &SolAdapter) -> PoolStateResponse {
    a.pool_state(PoolStateRequest::default()).await.unwrap()
}

fn delegate(v: &str, amount: u64) -> OperationKind {
    OperationKind::Delegate {
        validator: v.into(),
        amount: Amount::from_base(u128::from(amount)),
    }
}

fn on(p: &PoolStateResponse, v: &str) -> (u128, u128) {
    p.delegations
        .iter()
        .find(|d| d.validator == v)
        .map(|d| (d.active.base(), d.activating.base()))
        .unwrap_or((0, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stake_accounts_live_from_creation_to_withdrawal_on_the_real_stake_program() {
    let node = small_cluster().await;
    let key = Arc::new(LocalKey::from_seed([42; 32]));
    node.airdrop(&key.address(), 100 * SOL).await.unwrap();
    let v1 = node.create_vote(5).await.unwrap();
    let v2 = node.create_vote(10).await.unwrap();
    let v3 = node.create_vote(0).await.unwrap();
    node.set_delinquent(&v3, true).await.unwrap();
    node.advance_slots(1).await.unwrap();

    // A dead endpoint first: the adapter falls back to the node.
    let a = SolAdapter::new(
        settings(&node, vec!["http://127.0.0.1:9".into(), node.url.clone()]),
        key.clone(),
    )
    .unwrap();
    let p = pool(&a).await;
    assert_eq!(p.liquid.base(), u128::from(100 * SOL));
    assert!(p.delegations.is_empty());
    assert_eq!(
        p.limits.min_delegation.base(),
        u128::from(SOL),
        "asked of the stake program"
    );

    // Bad input, refused before signing.
    let refused = |r: Result<SignedOperation, AdapterError>| match r {
        Err(AdapterError::InvalidRequest(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let unknown = "11111111111111111111111111111112";
    assert!(refused(build(&a, delegate(unknown, 2 * SOL)).await).contains("does not exist"));
    assert!(refused(build(&a, delegate(&v3, 2 * SOL)).await).contains("delinquent"));
    assert!(refused(build(&a, delegate(&v1, SOL / 2)).await).contains("minimum delegation"));
    assert!(refused(build(&a, delegate(&v1, 100 * SOL)).await).contains("custody account holds"));
    let withdraw = OperationKind::WithdrawUnbonded {
        amount: Amount::from_base(1),
    };
    refused(build(&a, withdraw.clone()).await);
    refused(build(&a, OperationKind::ClaimRewards { validators: vec![] }).await);

    // Create + initialize + delegate 10 SOL.
    let first = tx::stake_address(&key.pubkey(), 0).to_string();
    send_and_confirm(&node, &a, build(&a, delegate(&v1, 10 * SOL)).await.unwrap()).await;
    let p = pool(&a).await;
    assert_eq!(on(&p, &v1), (0, u128::from(10 * SOL)));
    let reserve = 2_282_880u128;
    let spent = u128::from(100 * SOL) - p.liquid.base();
    assert!(
        spent > u128::from(10 * SOL) + reserve,
        "fees paid too: {spent}"
    );
    assert!(
        spent < u128::from(10 * SOL) + reserve + 1_000_000,
        "{spent}"
    );

    // Warm-up: partial after one epoch, rate-limited by the cluster.
    node.advance_epochs(1).await.unwrap();
    let (active, activating) = on(&pool(&a).await, &v1);
    assert!(
        active > 0 && activating > 0,
        "partly warm: {active} {activating}"
    );
    assert!(active <= u128::from(2 * SOL), "{active}");
    // The adapter's computation (the stake interface's) agrees with the
    // node's own (its Python port, which feeds the cluster history).
    let va = node
        .call("getVoteAccounts", serde_json::json!([]))
        .await
        .unwrap();
    let node_active = va["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["votePubkey"] == v1.as_str())
        .unwrap()["activatedStake"]
        .as_u64()
        .unwrap();
    assert_eq!(u128::from(node_active), active);
    let mut epochs = 1;
    while on(&pool(&a).await, &v1).1 > 0 {
        node.advance_epochs(1).await.unwrap();
        epochs += 1;
        assert!(epochs < 30, "never fully active");
    }
    assert!(epochs >= 3, "warm-up took {epochs} epochs");

    // Rewards: one per epoch with effective stake, each with its evidence,
    // and a replay from the returned cursor adds nothing.
    node.advance_epochs(1).await.unwrap();
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    assert!(r.rewards.len() >= epochs, "{:?}", r.rewards);
    let total: u128 = r.rewards.iter().map(|x| x.amount.base()).sum();
    let p = pool(&a).await;
    // Rewards compound into the delegated stake.
    assert_eq!(on(&p, &v1).0, u128::from(10 * SOL) + total);
    let mut keys: Vec<&str> = r.rewards.iter().map(|x| x.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), r.rewards.len());
    for x in &r.rewards {
        assert_eq!(x.validator, v1);
        assert!(x.key.ends_with(&first));
        assert!(x.period.start() < x.period.end());
        assert!(
            x.tx_hash
                .as_deref()
                .unwrap()
                .starts_with("inflation-reward@slot:")
        );
    }
    let again = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.rewards.is_empty(), "{:?}", again.rewards);

    // A top-up is a new account; once both are active they are merged.
    send_and_confirm(&node, &a, build(&a, delegate(&v1, 3 * SOL)).await.unwrap()).await;
    let p = pool(&a).await;
    assert!(
        a.maintenance(&p).is_empty(),
        "the top-up is still warming up"
    );
    let mut n = 0;
    while on(&pool(&a).await, &v1).1 > 0 {
        node.advance_epochs(1).await.unwrap();
        n += 1;
        assert!(n < 30);
    }
    let p = pool(&a).await;
    let m = a.maintenance(&p);
    assert_eq!(m.len(), 1, "{m:?}");
    let before = on(&p, &v1).0;
    send_and_confirm(&node, &a, build(&a, m[0].kind.clone()).await.unwrap()).await;
    let p = pool(&a).await;
    assert_eq!(on(&p, &v1).0, before, "a merge keeps the stake");
    assert!(a.maintenance(&p).is_empty());

    // Undelegate part: split + deactivate; cools down over epochs; the
    // withdrawal waits for it and then returns every lamport.
    send_and_confirm(
        &node,
        &a,
        build(
            &a,
            OperationKind::Undelegate {
                validator: v1.clone(),
                amount: Amount::from_base(u128::from(4 * SOL)),
            },
        )
        .await
        .unwrap(),
    )
    .await;
    let p = pool(&a).await;
    assert_eq!(p.unbonding.len(), 1, "{p:?}");
    assert_eq!(p.unbonding[0].amount.base(), u128::from(4 * SOL) + reserve);
    assert_eq!(on(&p, &v1).0, before - u128::from(4 * SOL));
    assert!(refused(build(&a, withdraw.clone()).await).contains("cooling down"));
    // Withdrawing active stake is refused by the stake program itself.
    let p_liquid = p.liquid.base();
    let hand = tx::build(
        &Action::Withdraw {
            accounts: vec![tx::WithdrawEntry {
                account: first.clone(),
                lamports: SOL,
            }],
        },
        &key,
        &TxParams {
            blockhash: latest_blockhash(&node).await,
            rent_exempt_reserve: 2_282_880,
            compute_unit_price: 0,
            compute_unit_limit: 200_000,
            withdrawer: None,
        },
    )
    .unwrap();
    let err = a
        .broadcast(BroadcastRequest {
            signed: SignedOperation {
                bytes: hand.bytes,
                tx_id: hand.signature,
                valid_until: None,
            },
        })
        .await
        .unwrap_err();
    assert!(matches!(err, AdapterError::Rejected(_)), "{err:?}");
    let mut n = 0;
    loop {
        node.advance_epochs(1).await.unwrap();
        n += 1;
        if pool(&a).await.withdrawable.base() > 0 {
            break;
        }
        assert!(n < 30, "never cooled down");
    }
    let p = pool(&a).await;
    assert!(p.unbonding.is_empty());
    // Stake still earns during the epoch it is deactivated in.
    let w = p.withdrawable.base();
    assert!(
        w >= u128::from(4 * SOL) + reserve && w < u128::from(4 * SOL + SOL / 100) + reserve,
        "{w}"
    );
    send_and_confirm(&node, &a, build(&a, withdraw.clone()).await.unwrap()).await;
    let p2 = pool(&a).await;
    assert!(p2.withdrawable.is_zero());
    let gained = p2.liquid.base() - p.liquid.base();
    assert!(gained > u128::from(4 * SOL) && gained <= w, "{gained}");
    assert!(p2.liquid.base() > p_liquid);

    // Redelegation: deactivate on v1 (whole account), then once inactive
    // the same request delegates it to v2.
    let redelegate = OperationKind::Redelegate {
        from: v1.clone(),
        to: v2.clone(),
        amount: Amount::from_base(on(&p2, &v1).0),
    };
    send_and_confirm(&node, &a, build(&a, redelegate.clone()).await.unwrap()).await;
    assert_eq!(on(&pool(&a).await, &v1).0, 0);
    let mut n = 0;
    while pool(&a).await.withdrawable.is_zero() {
        node.advance_epochs(1).await.unwrap();
        n += 1;
        assert!(n < 30);
    }
    send_and_confirm(&node, &a, build(&a, redelegate).await.unwrap()).await;
    let p3 = pool(&a).await;
    assert!(on(&p3, &v2).1 > 0, "{p3:?}");
    // Sending the same bytes again is harmless.
    let again = build(&a, delegate(&v2, 2 * SOL)).await.unwrap();
    send_and_confirm(&node, &a, again.clone()).await;
    let r = a
        .broadcast(BroadcastRequest {
            signed: again.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r.tx_id, again.tx_id);
}

async fn latest_blockhash(node: &SvmNode) -> String {
    let v = node
        .call("getLatestBlockhash", serde_json::json!([]))
        .await
        .unwrap();
    v["value"]["blockhash"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_transaction_is_expired_only_once_the_chain_proves_its_blockhash_dead() {
    let node = SvmNode::start(SvmOptions::default()).await.unwrap();
    let key = Arc::new(LocalKey::from_seed([43; 32]));
    node.airdrop(&key.address(), 20 * SOL).await.unwrap();
    let v1 = node.create_vote(5).await.unwrap();
    let a = SolAdapter::new(settings(&node, vec![node.url.clone()]), key.clone()).unwrap();
    let signed = build(&a, delegate(&v1, 2 * SOL)).await.unwrap();
    assert_eq!(
        signed.valid_until, None,
        "expiry is never guessed from the clock"
    );
    // Every send is lost, the re-sends too.
    node.drop_sends(1_000).await.unwrap();
    a.broadcast(BroadcastRequest {
        signed: signed.clone(),
    })
    .await
    .unwrap();
    let look = || {
        a.lookup(LookupRequest {
            tx_id: signed.tx_id.clone(),
            signed_bytes: Some(signed.bytes.clone()),
        })
    };
    node.advance_slots(100).await.unwrap();
    assert_eq!(look().await.unwrap().status, TxStatus::NotFound);
    node.advance_slots(60).await.unwrap();
    assert_eq!(look().await.unwrap().status, TxStatus::Expired);
    // And the expired bytes can no longer land.
    let err = a.broadcast(BroadcastRequest { signed }).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(pool(&a).await.liquid.base(), u128::from(20 * SOL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_on_another_network_is_refused() {
    let node = SvmNode::start(SvmOptions::default()).await.unwrap();
    let key = Arc::new(LocalKey::from_seed([44; 32]));
    let mut s = settings(&node, vec![node.url.clone()]);
    s.genesis_hash = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d".into();
    let a = SolAdapter::new(s, key).unwrap();
    let err = a.pool_state(PoolStateRequest::default()).await.unwrap_err();
    assert!(matches!(err, AdapterError::WrongNetwork { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

/// One observing pool read and the books' flows and rewards since the
/// previous one: the change in holdings each explains.
struct Books<'a> {
    a: &'a SolAdapter,
    held: u128,
    flows: Option<String>,
    rewards: Option<String>,
}

impl Books<'_> {
    /// Reads again; returns (Δ holdings, flows since, rewards since).
    async fn step(&mut self) -> (i128, Vec<PoolFlow>, u128) {
        let p = self
            .a
            .pool_state(PoolStateRequest::observing())
            .await
            .unwrap();
        let held = p.holdings().unwrap().booked().unwrap().base();
        let f = self
            .a
            .flows_since(FlowsRequest {
                cursor: self.flows.clone(),
            })
            .await
            .unwrap();
        assert!(f.complete);
        let r = self
            .a
            .rewards_since(RewardsRequest {
                cursor: self.rewards.clone(),
            })
            .await
            .unwrap();
        self.flows = f.next_cursor;
        self.rewards = r.next_cursor;
        let delta = i128::try_from(held).unwrap() - i128::try_from(self.held).unwrap();
        self.held = held;
        (
            delta,
            f.flows,
            r.rewards.iter().map(|x| x.amount.base()).sum(),
        )
    }
}

/// What the flows explain: transfers in, less transfers out and fees.
fn explained(flows: &[PoolFlow]) -> i128 {
    flows
        .iter()
        .map(|f| {
            let a = i128::try_from(f.amount.base()).unwrap();
            match f.kind {
                FlowKind::TransferIn => a,
                FlowKind::TransferOut | FlowKind::Fee => -a,
            }
        })
        .sum()
}

/// The pool's books against the real stake program: over a stake
/// account's whole life (created, warmed up, earning, deactivated, cooled
/// down, withdrawn) every lamport of change in the holdings is a flow the
/// adapter proves or a reward it evidences; a top-up to the wallet is a
/// transfer with its signature; lamports someone pays into a stake account
/// (a tip) are the only residual, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lamport_over_a_stake_accounts_life_is_a_flow_a_reward_or_the_tip() {
    let node = small_cluster().await;
    let key = Arc::new(LocalKey::from_seed([43; 32]));
    node.airdrop(&key.address(), 50 * SOL).await.unwrap();
    let v1 = node.create_vote(5).await.unwrap();
    node.advance_slots(1).await.unwrap();
    let a = SolAdapter::new(settings(&node, vec![node.url.clone()]), key.clone()).unwrap();
    let mut b = Books {
        a: &a,
        held: 0,
        flows: None,
        rewards: None,
    };
    let (_, opening, _) = b.step().await;
    assert!(
        opening.is_empty(),
        "what came before is the opening balance"
    );

    // A top-up from the exchange's wallet, a stake delegation, and a tip
    // paid into the new stake account.
    let top_up = node.transfer(&key.address(), 5 * SOL).await.unwrap();
    let signed = build(&a, delegate(&v1, 10 * SOL)).await.unwrap();
    let deleg = signed.tx_id.clone();
    send_and_confirm(&node, &a, signed).await;
    let stake_account = tx::stake_address(&key.pubkey(), 0).to_string();
    let tip = SOL / 3;
    node.transfer(&stake_account, tip).await.unwrap();
    node.advance_slots(1).await.unwrap();
    let (delta, flows, rewards) = b.step().await;
    let keys: Vec<(&str, FlowKind)> = flows.iter().map(|f| (f.key.as_str(), f.kind)).collect();
    assert_eq!(
        keys,
        vec![
            (format!("in:{top_up}").as_str(), FlowKind::TransferIn),
            (format!("fee:{deleg}").as_str(), FlowKind::Fee),
        ],
        "the tip went to the stake account, not the wallet"
    );
    assert_eq!(flows[0].amount.base(), u128::from(5 * SOL));
    assert!(flows[1].amount.base() > 0);
    assert_eq!(rewards, 0);
    assert_eq!(
        delta - explained(&flows),
        i128::from(tip),
        "the residual is the tip, to the lamport (the rent reserve is still ours)"
    );

    // Warm-up and rewards: the holdings grow by exactly the evidenced rewards.
    let mut earned = 0u128;
    for _ in 0..4 {
        node.advance_epochs(1).await.unwrap();
        let (delta, flows, rewards) = b.step().await;
        assert!(flows.is_empty(), "{flows:?}");
        assert_eq!(delta, i128::try_from(rewards).unwrap());
        earned += rewards;
    }
    assert!(earned > 0);

    // Deactivate everything, cool down, withdraw: lamports move between
    // the pool's own accounts; only fees (and last rewards) change the total.
    let p = pool(&a).await;
    let all = on(&p, &v1);
    let signed = build(
        &a,
        OperationKind::Undelegate {
            validator: v1.clone(),
            amount: Amount::from_base(all.0 + all.1),
        },
    )
    .await
    .unwrap();
    send_and_confirm(&node, &a, signed).await;
    let mut n = 0;
    loop {
        let (delta, flows, rewards) = b.step().await;
        assert!(flows.iter().all(|f| f.kind == FlowKind::Fee), "{flows:?}");
        assert_eq!(delta - explained(&flows), i128::try_from(rewards).unwrap());
        if pool(&a).await.withdrawable.base() > 0 {
            break;
        }
        node.advance_epochs(1).await.unwrap();
        n += 1;
        assert!(n < 30, "never cooled down");
    }
    let w = pool(&a).await.withdrawable;
    assert!(
        w.base() > u128::from(10 * SOL + tip),
        "the tip and rent come back: {w}"
    );
    let signed = build(&a, OperationKind::WithdrawUnbonded { amount: w })
        .await
        .unwrap();
    let withdraw = signed.tx_id.clone();
    send_and_confirm(&node, &a, signed).await;
    let (delta, flows, rewards) = b.step().await;
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0].key, format!("fee:{withdraw}"));
    assert_eq!(delta - explained(&flows), i128::try_from(rewards).unwrap());
    assert!(pool(&a).await.delegations.is_empty());
}

/// Issue 26: a transaction pays the priority-fee market for the accounts it
/// writes (never below the floor, never above the ceiling: then nothing is
/// signed), and a send the leader drops is sent again, the same bytes,
/// until it lands. A fixed price under a busy market is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_pay_the_priority_fee_market_and_a_dropped_send_is_sent_again() {
    let node = SvmNode::start(SvmOptions::default()).await.unwrap();
    let key = Arc::new(LocalKey::from_seed([45; 32]));
    node.airdrop(&key.address(), 20 * SOL).await.unwrap();
    let v1 = node.create_vote(5).await.unwrap();
    let a = SolAdapter::new(settings(&node, vec![node.url.clone()]), key.clone()).unwrap();
    // Leaders under load want 50,000 micro-lamports per compute unit; the
    // recent slots show it.
    node.set_priority_market(50_000).await.unwrap();
    node.advance_slots(120).await.unwrap();
    // A fixed price (the floor, 1,000) is answered, then dropped.
    let fixed = SolAdapter::new(
        SolSettings {
            priority_fee_market: false,
            ..settings(&node, vec![node.url.clone()])
        },
        key.clone(),
    )
    .unwrap();
    let cheap = build(&fixed, delegate(&v1, 2 * SOL)).await.unwrap();
    fixed
        .broadcast(BroadcastRequest {
            signed: cheap.clone(),
        })
        .await
        .unwrap();
    let dropped = node.set_priority_market(50_000).await.unwrap();
    assert!(
        dropped >= 1,
        "the underpriced send and its re-sends were dropped"
    );
    let look = |s: &SignedOperation| {
        a.lookup(LookupRequest {
            tx_id: s.tx_id.clone(),
            signed_bytes: Some(s.bytes.clone()),
        })
    };
    assert_eq!(look(&cheap).await.unwrap().status, TxStatus::NotFound);
    // At the market's price it lands, asking for the compute units its
    // simulation used plus a fifth, not the configured 100,000.
    let paid = build(&a, delegate(&v1, 2 * SOL)).await.unwrap();
    let (limit, price) = tx::compute_budget_of(&paid.bytes).unwrap();
    assert_eq!(price, Some(50_000));
    let limit = limit.unwrap();
    assert!((1_000..100_000).contains(&limit), "{limit}");
    send_and_confirm(&node, &a, paid).await;
    // Above the ceiling (1,000,000) nothing is signed: the operation waits.
    node.set_priority_market(2_000_000).await.unwrap();
    node.advance_slots(120).await.unwrap();
    let err = build(&a, delegate(&v1, SOL)).await.unwrap_err();
    assert!(
        matches!(&err, AdapterError::TryLater(m) if m.contains("max_compute_unit_price")),
        "{err:?}"
    );
    // The market calms down; the leader drops the first two sends: the
    // adapter sends the same bytes again and they land once.
    node.set_priority_market(0).await.unwrap();
    node.advance_slots(150).await.unwrap();
    // What the stake program refuses is refused by the simulation, before
    // anything is sent: deactivating an account that is no stake account.
    let err = a
        .sign_action(
            &Action::Deactivate {
                account: key.address(),
            },
            2_282_880,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AdapterError::InvalidRequest(m) if m.contains("would refuse")),
        "{err:?}"
    );
    let signed = build(&a, delegate(&v1, SOL)).await.unwrap();
    node.drop_sends(2).await.unwrap();
    send_and_confirm(&node, &a, signed).await;
    // 2 SOL and 1 SOL staked (plus the epochs' rewards since); the dropped
    // 2 SOL never landed, and the re-sent 1 SOL landed once.
    let (active, activating) = on(&pool(&a).await, &v1);
    let staked = active + activating;
    assert!(
        (u128::from(3 * SOL)..u128::from(3 * SOL + SOL / 10)).contains(&staked),
        "{staked}"
    );
}

/// Issue 32: a delegation the lost process broadcast is still pending when
/// the restored process (nothing in memory, a ledger that does not know
/// it) plans the same need again. The new stake account takes the first
/// seed whose address holds nothing, which is the pending one's too, so
/// whichever lands first creates it and the other fails as the system
/// program refuses an account in use: the stake is never doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_pending_at_a_restore_is_never_doubled() {
    let node = SvmNode::start(SvmOptions::default()).await.unwrap();
    let key = Arc::new(LocalKey::from_seed([46; 32]));
    node.airdrop(&key.address(), 20 * SOL).await.unwrap();
    let v1 = node.create_vote(5).await.unwrap();
    let lost = SolAdapter::new(settings(&node, vec![node.url.clone()]), key.clone()).unwrap();
    let first = build(&lost, delegate(&v1, 2 * SOL)).await.unwrap();
    node.hold_sends(1).await.unwrap();
    lost.broadcast(BroadcastRequest {
        signed: first.clone(),
    })
    .await
    .unwrap();
    drop(lost);
    // A slot later (a new blockhash), the restored process plans again.
    node.advance_slots(1).await.unwrap();
    let restored = SolAdapter::new(settings(&node, vec![node.url.clone()]), key.clone()).unwrap();
    let second = build(&restored, delegate(&v1, 2 * SOL)).await.unwrap();
    assert_ne!(second.tx_id, first.tx_id, "a new signature");
    send_and_confirm(&node, &restored, second).await;
    // The pending one is included now, and fails: its account is in use.
    let released = node.release_held().await.unwrap();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].0, first.tx_id);
    // SystemError::AccountAlreadyInUse (0), in the create instruction
    // (after the two compute-budget instructions).
    assert_eq!(
        released[0].1,
        Some(serde_json::json!({"InstructionError": [2, {"Custom": 0}]})),
        "{released:?}"
    );
    let look = restored
        .lookup(LookupRequest {
            tx_id: first.tx_id.clone(),
            signed_bytes: Some(first.bytes.clone()),
        })
        .await
        .unwrap();
    assert!(matches!(look.status, TxStatus::Failed { .. }), "{look:?}");
    let p = pool(&restored).await;
    let (active, activating) = on(&p, &v1);
    assert_eq!(active + activating, u128::from(2 * SOL), "staked once");
}
