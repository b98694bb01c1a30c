//! The Polkadot adapter against chopsticks running the real Paseo runtime:
//! our signed extrinsics execute in the runtime's wasm (bond, nominate,
//! payout_stakers, unbond, withdraw_unbonded, proxy), and the runtime's
//! own checks (minimum nominator bond) reject what they should. Eras are
//! moved with chopsticks' `dev_setStorage` (see `testnode`), since no
//! validators produce sessions here. One chopsticks per test binary run:
//! the scenario is sequential and starting the runtime takes ~20 s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use softstake_chain_dot::testnode::{CHOPSTICKS_GENESIS, Chopsticks};
use softstake_chain_dot::tx::{Call, Payee};
use softstake_chain_dot::{DotAdapter, DotSettings};
use softstake_core::Amount;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, LookupRequest, OperationKind,
    PoolStateRequest, PoolStateResponse, RewardsRequest, SignedOperation, TxStatus,
};
use std::sync::Arc;
use std::time::Duration;
use subxt::utils::AccountId32;
use subxt_signer::sr25519::Keypair;

const DOT: u128 = 10_000_000_000;
const RESERVE: u128 = DOT;

fn key(uri: &str) -> Arc<Keypair> {
    Arc::new(Keypair::from_uri(&uri.parse().unwrap()).unwrap())
}

fn address(k: &Keypair) -> String {
    AccountId32(k.public_key().0).to_string()
}

fn adapter(
    node: &Chopsticks,
    key: Arc<Keypair>,
    targets: &[String],
    stash: Option<AccountId32>,
    genesis: &str,
) -> DotAdapter {
    DotAdapter::new(
        DotSettings {
            endpoints: vec![node.url.clone()],
            genesis_hash: genesis.into(),
            targets: targets
                .iter()
                .map(|t| (t.clone(), t.parse().unwrap()))
                .collect(),
            stash,
            payee: Payee::Staked,
            fee_reserve: RESERVE,
            era_period: 16,
            rewards_from_block: None,
            max_scan_blocks: 500,
            max_payouts_per_tx: 8,
            request_timeout: Duration::from_secs(60),
        },
        key,
    )
    .unwrap()
}

async fn state(a: &DotAdapter) -> PoolStateResponse {
    a.pool_state(PoolStateRequest::default()).await.unwrap()
}

async fn build(a: &DotAdapter, kind: OperationKind) -> Result<SignedOperation, AdapterError> {
    a.build_and_sign(BuildRequest {
        operation_id: "t".into(),
        kind,
    })
    .await
}

async fn send(a: &DotAdapter, s: &SignedOperation) -> TxStatus {
    let r = a
        .broadcast(BroadcastRequest { signed: s.clone() })
        .await
        .unwrap();
    assert_eq!(r.tx_id, s.tx_id);
    // Instant mode builds the block on submission; give it a moment.
    for _ in 0..50 {
        let st = lookup(a, s).await;
        if !matches!(st, TxStatus::Pending | TxStatus::NotFound) {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lookup(a, s).await
}

async fn lookup(a: &DotAdapter, s: &SignedOperation) -> TxStatus {
    a.lookup(LookupRequest {
        tx_id: s.tx_id.clone(),
        signed_bytes: Some(s.bytes.clone()),
    })
    .await
    .unwrap()
    .status
}

fn active(s: &PoolStateResponse) -> u128 {
    s.delegations.iter().map(|d| d.active.base()).sum()
}

fn bonded(s: &PoolStateResponse) -> u128 {
    s.delegations
        .iter()
        .map(|d| d.active.base() + d.activating.base())
        .sum()
}

fn invalid(r: Result<SignedOperation, AdapterError>, needle: &str) {
    match r {
        Err(AdapterError::InvalidRequest(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a refusal mentioning {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bond_nominate_payout_unbond_withdraw_on_the_paseo_runtime() {
    let node = Chopsticks::start().await.unwrap();
    let vals = node.session_validators().await.unwrap();
    assert!(vals.len() >= 2, "Paseo's genesis has validators");
    let targets = vec![vals[0].clone(), vals[1].clone()];
    let stash_key = key("//SoftstakeChopsticks");
    let stash = address(&stash_key);
    node.fund(&stash, 10_000 * DOT).await.unwrap();
    let a = adapter(&node, stash_key.clone(), &targets, None, CHOPSTICKS_GENESIS);

    // Fresh stash: everything liquid but the existential deposit and the
    // fee reserve; nothing bonded; the minimum is the chain's nominator bond.
    let s0 = state(&a).await;
    assert_eq!(s0.liquid.base(), 10_000 * DOT - DOT - RESERVE);
    assert_eq!(bonded(&s0), 0);
    assert_eq!(
        s0.limits.min_delegation.base(),
        250 * DOT,
        "MinNominatorBond"
    );
    assert_eq!(s0.limits.max_unbonding_entries, Some(32));
    assert_eq!(
        s0.limits.unbonding_delay_secs,
        28 * 6 * 3600,
        "28 eras of 6 h"
    );
    let rewards0 = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    assert!(rewards0.rewards.is_empty());
    let cursor = rewards0.next_cursor.clone();

    // Refused before signing: a bond below the minimum, more than the
    // balance, a validator that is not configured, a redelegation.
    invalid(
        build(
            &a,
            OperationKind::Delegate {
                validator: targets[0].clone(),
                amount: Amount::from_base(100 * DOT),
            },
        )
        .await,
        "minimum nominator bond",
    );
    invalid(
        build(
            &a,
            OperationKind::Delegate {
                validator: targets[0].clone(),
                amount: Amount::from_base(20_000 * DOT),
            },
        )
        .await,
        "fee reserve",
    );
    invalid(
        build(
            &a,
            OperationKind::Delegate {
                validator: vals[2].clone(),
                amount: Amount::from_base(300 * DOT),
            },
        )
        .await,
        "not a configured nomination target",
    );
    invalid(
        build(
            &a,
            OperationKind::Redelegate {
                from: targets[0].clone(),
                to: targets[1].clone(),
                amount: Amount::from_base(DOT),
            },
        )
        .await,
        "nomination set",
    );

    // The runtime enforces the same minimum: a hand-made bond + nominate
    // below it fails on chain (batch_all reverts the bond too).
    let low = a
        .sign_raw(&Call::BatchAll(vec![
            Call::Bond {
                value: 100 * DOT,
                payee: Payee::Staked,
            },
            Call::Nominate {
                targets: vec![targets[0].parse().unwrap()],
            },
        ]))
        .await
        .unwrap();
    match send(&a, &low).await {
        TxStatus::Failed { reason } => assert!(reason.contains("InsufficientBond"), "{reason}"),
        other => panic!("expected the runtime to refuse, got {other:?}"),
    }
    assert_eq!(bonded(&state(&a).await), 0, "nothing bonded");

    // Bond 1,000 and nominate both targets in one batch.
    let op = build(
        &a,
        OperationKind::Delegate {
            validator: targets[0].clone(),
            amount: Amount::from_base(1_000 * DOT),
        },
    )
    .await
    .unwrap();
    assert!(op.valid_until.is_none(), "expiry is proven by the runtime");
    let st = send(&a, &op).await;
    assert!(matches!(st, TxStatus::Confirmed { .. }), "{st:?}");
    // Replaying the same bytes is harmless.
    a.broadcast(BroadcastRequest { signed: op.clone() })
        .await
        .unwrap();
    let s1 = state(&a).await;
    assert_eq!(bonded(&s1), 1_000 * DOT);
    assert_eq!(active(&s1), 0, "not in any exposure before the next era");
    assert_eq!(s1.delegations[0].activating.base(), 1_000 * DOT);
    assert!(s1.alerts.is_empty(), "{:?}", s1.alerts);
    assert!(s1.liquid.base() < s0.liquid.base() - 1_000 * DOT + DOT);
    assert!(a.maintenance(&s1).is_empty(), "nominations and payee match");

    // Era 1: the election exposed our stake to target 0.
    let era_ms = 6 * 3600 * 1000;
    let t1 = node.now_ms().await.unwrap();
    node.set_exposure(
        1,
        &targets[0],
        1_000_000 * DOT,
        &[(stash.clone(), 1_000 * DOT)],
    )
    .await
    .unwrap();
    node.set_era(1, t1).await.unwrap();
    let s2 = state(&a).await;
    assert_eq!(s2.delegations[0].active.base(), 1_000 * DOT);
    assert_eq!(s2.delegations[0].activating.base(), 0);
    assert_eq!(s2.delegations[1].active.base(), 0);

    // Era 1 ends with a 100 DOT payout for target 0's points; era 2 starts.
    node.set_era_reward(1, &targets[0], 100 * DOT)
        .await
        .unwrap();
    node.set_era(2, t1 + era_ms).await.unwrap();
    let s3 = state(&a).await;
    let m = a.maintenance(&s3);
    assert_eq!(m.len(), 1, "{m:?}");
    let OperationKind::ClaimRewards { validators } = &m[0].kind else {
        panic!("expected a payout, got {m:?}");
    };
    assert_eq!(validators, &vec![targets[0].clone()]);
    let payout = build(&a, m[0].kind.clone()).await.unwrap();
    let st = send(&a, &payout).await;
    assert!(matches!(st, TxStatus::Confirmed { .. }), "{st:?}");
    let s4 = state(&a).await;
    let grown = bonded(&s4) - bonded(&s3);
    // Our share of the validator's payout (no commission): 1,000 / 1,001,000
    // as the runtime's Perbill (rounded down), times the payout.
    let perbill = 1_000_000_000u128 * 1_000 / 1_001_000;
    let expect = 100 * DOT * perbill / 1_000_000_000;
    assert_eq!(grown, expect);
    assert!(a.maintenance(&s4).is_empty(), "the payout is claimed");
    invalid(
        build(&a, OperationKind::ClaimRewards { validators: vec![] }).await,
        "no unclaimed",
    );

    // The reward, with its evidence, from the Rewarded event.
    let r = a
        .rewards_since(RewardsRequest {
            cursor: cursor.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r.rewards.len(), 1, "{:?}", r.rewards);
    let rw = &r.rewards[0];
    assert_eq!(rw.amount.base(), grown, "payee Staked: the bond grew by it");
    assert_eq!(rw.validator, targets[0]);
    assert_eq!(rw.epoch, Some(1));
    assert_eq!(rw.tx_hash.as_deref(), Some(payout.tx_id.as_str()));
    assert_eq!(rw.period.start().unix(), i64::try_from(t1 / 1000).unwrap());
    assert_eq!(rw.period.secs(), 6 * 3600);
    assert!(rw.key.starts_with("era:1:"));
    // From its own cursor: nothing new; from the old one: the same key.
    let again = a
        .rewards_since(RewardsRequest {
            cursor: r.next_cursor.clone(),
        })
        .await
        .unwrap();
    assert!(again.rewards.is_empty());
    let replay = a.rewards_since(RewardsRequest { cursor }).await.unwrap();
    assert_eq!(replay.rewards, r.rewards);

    // Unbond: refused above active, refused when it would leave less than
    // the minimum bonded; 300 DOT goes into an unlocking chunk.
    let act = active(&s4) + s4.delegations[0].activating.base();
    invalid(
        build(
            &a,
            OperationKind::Undelegate {
                validator: targets[0].clone(),
                amount: Amount::from_base(act + 1),
            },
        )
        .await,
        "only",
    );
    invalid(
        build(
            &a,
            OperationKind::Undelegate {
                validator: targets[0].clone(),
                amount: Amount::from_base(act - 100 * DOT),
            },
        )
        .await,
        "below the chain's minimum",
    );
    invalid(
        build(
            &a,
            OperationKind::WithdrawUnbonded {
                amount: Amount::from_base(DOT),
            },
        )
        .await,
        "matured",
    );
    let unbond = build(
        &a,
        OperationKind::Undelegate {
            validator: targets[0].clone(),
            amount: Amount::from_base(300 * DOT),
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        send(&a, &unbond).await,
        TxStatus::Confirmed { .. }
    ));
    let s5 = state(&a).await;
    assert_eq!(s5.unbonding.len(), 1);
    assert_eq!(s5.unbonding[0].amount.base(), 300 * DOT);
    // Withdrawable at era 2 + 28, i.e. 28 eras after era 2 started.
    assert_eq!(
        s5.unbonding[0].completes_at.unix(),
        i64::try_from((t1 + era_ms + 28 * era_ms) / 1000).unwrap()
    );
    assert_eq!(s5.withdrawable.base(), 0);

    // 28 eras later the chunk is withdrawable and withdraw_unbonded frees it.
    node.set_era(30, t1 + 29 * era_ms).await.unwrap();
    let s6 = state(&a).await;
    assert!(s6.unbonding.is_empty());
    assert_eq!(s6.withdrawable.base(), 300 * DOT);
    let liquid_before = s6.liquid.base();
    let w = build(
        &a,
        OperationKind::WithdrawUnbonded {
            amount: Amount::from_base(300 * DOT),
        },
    )
    .await
    .unwrap();
    assert!(matches!(send(&a, &w).await, TxStatus::Confirmed { .. }));
    let s7 = state(&a).await;
    assert_eq!(s7.withdrawable.base(), 0);
    let gained = s7.liquid.base() - liquid_before;
    assert!(gained > 299 * DOT && gained <= 300 * DOT, "{gained}");

    // Expiry proven by the runtime: a signed but unsent operation is
    // NotFound while its mortal era lasts and Expired after it (16 blocks here).
    let late = build(
        &a,
        OperationKind::Setup {
            step: "nominate".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(lookup(&a, &late).await, TxStatus::NotFound);
    node.new_blocks(20).await.unwrap();
    assert_eq!(lookup(&a, &late).await, TxStatus::Expired);

    // A nonce used by another transaction: the earlier signature expires.
    let first = build(
        &a,
        OperationKind::Setup {
            step: "set_payee".into(),
        },
    )
    .await
    .unwrap();
    let second = build(
        &a,
        OperationKind::Setup {
            step: "nominate".into(),
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        send(&a, &second).await,
        TxStatus::Confirmed { .. }
    ));
    assert_eq!(lookup(&a, &first).await, TxStatus::Expired);

    // More targets than the runtime's nomination quota (16): refused.
    let many: Vec<String> = (0..17)
        .map(|i| address(&key(&format!("//Target{i}"))))
        .collect();
    let too_many = adapter(&node, stash_key.clone(), &many, None, CHOPSTICKS_GENESIS);
    invalid(
        build(
            &too_many,
            OperationKind::Delegate {
                validator: many[0].clone(),
                amount: Amount::from_base(10 * DOT),
            },
        )
        .await,
        "at most 16",
    );

    // An endpoint on another network: refused before anything is signed.
    let wrong = adapter(
        &node,
        stash_key.clone(),
        &targets,
        None,
        "0x91b171bb158e2d3848fa23a9f1c25182fb8e20313b2c1eb49219da7a70ce90c3",
    );
    assert!(matches!(
        wrong.pool_state(PoolStateRequest::default()).await,
        Err(AdapterError::WrongNetwork { .. })
    ));
    assert!(matches!(
        build(
            &wrong,
            OperationKind::Delegate {
                validator: targets[0].clone(),
                amount: Amount::from_base(300 * DOT),
            },
        )
        .await,
        Err(AdapterError::WrongNetwork { .. })
    ));

    // A staking proxy bonds for another stash through Proxy.proxy.
    let stash2 = key("//SoftstakeStash2");
    let proxy = key("//SoftstakeProxy");
    node.fund(&address(&stash2), 2_000 * DOT).await.unwrap();
    node.fund(&address(&proxy), 10 * DOT).await.unwrap();
    node.set_storage(
        serde_json::json!({"Proxy": {"Proxies": [[[address(&stash2)], [[{
        "delegate": address(&proxy), "proxyType": "Staking", "delay": 0
    }], 0]]]}}),
    )
    .await
    .unwrap();
    let pa = adapter(
        &node,
        proxy,
        &targets,
        Some(AccountId32(stash2.public_key().0)),
        CHOPSTICKS_GENESIS,
    );
    let p0 = state(&pa).await;
    assert_eq!(
        p0.liquid.base(),
        2_000 * DOT - DOT - RESERVE,
        "the stash's balance"
    );
    let bond = build(
        &pa,
        OperationKind::Delegate {
            validator: targets[1].clone(),
            amount: Amount::from_base(500 * DOT),
        },
    )
    .await
    .unwrap();
    assert!(matches!(send(&pa, &bond).await, TxStatus::Confirmed { .. }));
    assert_eq!(
        bonded(&state(&pa).await),
        500 * DOT,
        "bonded from the stash"
    );
}

/// Issue 32 on Polkadot: a bond another process left in the node's pool
/// (sent before a restart or a restore) holds signing in a fresh process:
/// the node's next nonce counts the pool, so signing would put a second
/// bond beside it. Once the pending one is final, signing goes on, at the
/// nonce after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_another_process_left_in_the_pool_holds_signing_until_final() {
    let node = Chopsticks::start_manual().await.unwrap();
    let vals = node.session_validators().await.unwrap();
    let targets = vec![vals[0].clone()];
    let stash_key = key("//SoftstakeRestored");
    node.fund(&address(&stash_key), 10_000 * DOT).await.unwrap();
    node.new_blocks(1).await.unwrap();
    let bond = OperationKind::Delegate {
        validator: targets[0].clone(),
        amount: Amount::from_base(1_000 * DOT),
    };
    let lost = adapter(&node, stash_key.clone(), &targets, None, CHOPSTICKS_GENESIS);
    let pending = build(&lost, bond.clone()).await.unwrap();
    lost.broadcast(BroadcastRequest {
        signed: pending.clone(),
    })
    .await
    .unwrap();
    assert_eq!(lookup(&lost, &pending).await, TxStatus::Pending);
    // The process that sent it may go on (it knows the nonce is its own).
    assert!(build(&lost, bond.clone()).await.is_ok());
    // A restarted process refuses to sign beside it.
    let restored = adapter(&node, stash_key.clone(), &targets, None, CHOPSTICKS_GENESIS);
    match build(&restored, bond.clone()).await {
        Err(AdapterError::TryLater(m)) => assert!(m.contains("did not send"), "{m}"),
        other => panic!("expected to wait, got {other:?}"),
    }
    // Final: the restored process sees the bond and signs after it.
    node.new_blocks(1).await.unwrap();
    assert!(matches!(
        lookup(&restored, &pending).await,
        TxStatus::Confirmed { .. }
    ));
    assert_eq!(bonded(&state(&restored).await), 1_000 * DOT);
    assert!(
        build(
            &restored,
            OperationKind::Setup {
                step: "nominate".into()
            }
        )
        .await
        .is_ok()
    );
}
