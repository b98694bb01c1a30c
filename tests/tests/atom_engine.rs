//! The engine's loop with the real Cosmos adapter against the Cosmos test
//! node over HTTP, on SQLite and PostgreSQL: the planner's delegations are
//! signed, sent and confirmed, rewards are claimed, recorded and
//! distributed, and a withdrawal bigger than the buffer is queued, unbonded
//! for and granted when the funds return.
#![allow(clippy::unwrap_used)]

use rust_decimal::Decimal;
use softstake_chain_atom::keys::{LocalKey, Signer};
use softstake_chain_atom::testnode::{TestNode, TestNodeConfig};
use softstake_chain_atom::{AtomAdapter, AtomSettings};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Rate, Secret, Timestamp};
use softstake_engine::{Engine, EngineConfig};
use softstake_planner::{Policy, ValidatorTarget};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const V1: &str = "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0";
const V2: &str = "cosmosvaloper156gqf9837u7d4c4678yt3rl4ls9c5vuursrrzf";
const T0: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

/// The engine on the Cosmos test node: two validators (weights 2:1, no
/// caps), 100 ATOM in custody owed to alice (75) and bob (25).
struct Run {
    node: TestNode,
    engine: Engine,
    clock: ManualClock,
    custody: String,
}

impl Run {
    async fn start(store: &softstake_store::Store, max_commission: Option<Rate>) -> Run {
        let key = LocalKey::parse(&Secret::new(KEY.into())).unwrap();
        let custody = key.address();
        let node = TestNode::new(TestNodeConfig {
            chain_id: "sim-hub-1".into(),
            genesis_time: T0,
            block_secs: 6,
            unbonding_secs: 21 * DAY,
            max_entries: 7,
            reward_per_token_per_sec: 3_200_000_000,
            min_gas_price: 5_000_000_000_000_000,
            validators: vec![V1.into(), V2.into()],
            accounts: vec![(key.address(), 100_000_000)],
        });
        let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let adapter: Arc<dyn ChainAdapter> = Arc::new(
            AtomAdapter::new(
                AtomSettings {
                    endpoints: vec![format!("http://{bound}/")],
                    chain_id: "sim-hub-1".into(),
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
            .unwrap(),
        );
        let clock = ManualClock::new(Timestamp::from_unix(T0));
        let rate = |s: &str| Rate::new(s.parse::<Decimal>().unwrap()).unwrap();
        let engine = Engine::new(
            store.clone(),
            adapter,
            EngineConfig {
                chain: ChainId::Cosmos,
                commission: rate("0.10"),
                min_eligible_balance: Amount::ZERO,
                policy: Policy {
                    target: rate("0.20"),
                    band: rate("0.05"),
                    min_operation: Amount::from_base(1_000),
                    validators: vec![
                        ValidatorTarget {
                            address: V1.into(),
                            weight: 2,
                            cap: Rate::ONE,
                        },
                        ValidatorTarget {
                            address: V2.into(),
                            weight: 1,
                            cap: Rate::ONE,
                        },
                    ],
                    max_per_operation: Amount::from_base(1_000_000_000),
                    remaining_today: Amount::ZERO,
                    marked: Default::default(),
                    max_commission,
                },
                max_per_day: Amount::from_base(10_000_000_000),
                approval_threshold: Amount::ZERO,
                dry_run: false,
                // The loop below steps a day between cycles once withdrawals start.
                cycle_secs: DAY as u64,
                books: softstake_config::BooksSettings::default(),
                advance_limit: Amount::ZERO,
                fee_reserve: Amount::ZERO,
                sizing: None,
            },
            Arc::new(clock.clone()),
        )
        .unwrap();
        // Two users hold the 100 ATOM in custody.
        softstake_tests::opening_balances(
            store,
            "ATOM",
            &[("alice", 75_000_000), ("bob", 25_000_000)],
            Timestamp::from_unix(T0),
        )
        .await;
        Run {
            node,
            engine,
            clock,
            custody,
        }
    }

    /// A cycle, then `secs` of blocks.
    async fn step(&self, secs: i64) -> softstake_engine::CycleReport {
        let r = self.engine.cycle().await.unwrap();
        self.node.advance(secs);
        self.clock.set(Timestamp::from_unix(self.node.head().1));
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stakes_claims_distributes_and_serves_a_queued_withdrawal_on_the_cosmos_test_node()
 {
    on_both(|store| async move {
        let run = Run::start(&store, None).await;
        let (node, engine, clock, custody) = (&run.node, &run.engine, &run.clock, &run.custody);
        let step = |secs: i64| run.step(secs);
        // The fee market runs above the ceiling (0.08 x 1.5 > 0.1): the plan
        // is journaled, nothing is signed or sent, and the step says why.
        node.set_gas_price(80_000_000_000_000_000);
        let r = step(600).await;
        assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
        assert!(
            r.failures.iter().any(|f| f.error.contains("max_gas_price")),
            "{:?}",
            r.failures
        );
        assert_eq!(node.successful_txs(), 0);
        // The price falls back: the journaled operations are signed at it
        // (the plan made while it was high, not a second one), staking 80%
        // (the buffer aim is 20%) over V1:V2 = 2:1.
        node.set_gas_price(5_000_000_000_000_000);
        let (mut sent, mut confirmed) = (0, 0);
        let mut r = step(600).await;
        for _ in 0..4 {
            sent += r.ops.iter().filter(|o| o.event == "broadcast").count();
            confirmed += r.ops.iter().filter(|o| o.event == "confirmed").count();
            if confirmed == 2 {
                break;
            }
            r = step(600).await;
        }
        assert_eq!((sent, confirmed), (2, 2), "{:?}", r.ops);
        assert_eq!(node.successful_txs(), 2);
        let pool = r.pool.unwrap();
        let staked: u128 = pool.delegations.iter().map(|d| d.active.base()).sum();
        assert!((79_990_000..=80_000_000).contains(&staked), "{staked}");

        // A day later the claimable rewards are claimed, recorded, distributed.
        // V1 also pays 999 of an IBC denomination (issue 30): kept for the
        // treasury, never distributed as uatom.
        node.pay_foreign(custody, V1, "ibc/X", 999);
        node.advance(DAY);
        clock.set(Timestamp::from_unix(node.head().1));
        step(600).await; // claim broadcast
        step(600).await; // included: collected, distributed; confirmed
        step(600).await;
        let ds = store
            .list_distributions(Some("ATOM"), None, 100)
            .await
            .unwrap();
        assert!(!ds.is_empty());
        for d in &ds {
            assert!(store.verify_distribution(d.id).await.unwrap().ok);
        }
        let gross: u128 = ds.iter().map(|d| d.gross.base()).sum();
        assert!(
            gross > 20_000,
            "a day of ~10% on 80 ATOM is ~22,000 uatom, got {gross}"
        );
        let foreign = store.foreign_totals(ChainId::Cosmos).await.unwrap();
        assert_eq!(
            foreign
                .iter()
                .map(|t| (t.denom.as_str(), t.amount))
                .collect::<Vec<_>>(),
            [("ibc/X", 999)]
        );
        assert_eq!(node.foreign_balance(custody, "ibc/X"), 999);

        // Bob withdraws everything: more than the buffer, so it queues; the
        // planner unstakes for it and it is granted by its ETA.
        softstake_tests::queue_withdrawal_until_granted(
            &store,
            engine,
            clock,
            "bob",
            Amount::from_base(25_000_000),
            || step(DAY),
        )
        .await;
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        assert!(
            ops.iter()
                .any(|o| o.kind.name() == "undelegate" && o.state == OpState::Confirmed)
        );
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");

        // V1 is slashed 1%: the adapter reports the loss once, the books
        // book it, and the platform bears it (users' balances untouched).
        let before = store
            .books(ChainId::Cosmos, &Default::default(), clock.now())
            .await
            .unwrap();
        assert!(before.owed.losses.is_zero());
        node.slash(V1, 10_000);
        let r = step(600).await;
        let lost: u128 = r
            .pool
            .as_ref()
            .unwrap()
            .losses
            .iter()
            .map(|l| l.amount.base())
            .sum();
        assert!(lost > 0, "{:?}", r.pool);
        assert_eq!(r.books.as_ref().unwrap().booked.losses.base(), lost);
        step(600).await;
        let after = store
            .books(ChainId::Cosmos, &Default::default(), clock.now())
            .await
            .unwrap();
        assert_eq!(after.owed.losses.base(), lost, "booked once");
        assert_eq!(after.owed.loss_bearer, "platform");
        // Charged to the platform: its account is lower by the loss than
        // under the pool rule, where the backing carries it.
        let pool_rule = store
            .books(
                ChainId::Cosmos,
                &softstake_config::BooksSettings {
                    losses: softstake_config::LossBearer::Pool,
                    ..Default::default()
                },
                clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(
            pool_rule.owed.commission - after.owed.commission,
            i128::try_from(lost).unwrap()
        );
        assert_eq!(after.owed.users, before.owed.users, "users untouched");
        // The adapter proves every transfer and fee, so every snapshot's
        // change in holdings is explained to the uatom (fees, rewards,
        // the slashing): nothing unrecognised, no bunker mode.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cosmos, 10).await;
        // The slashed validator is marked: no new stake goes to it.
        assert_eq!(
            after
                .marked_validators
                .iter()
                .map(|m| m.validator.as_str())
                .collect::<Vec<_>>(),
            [V1]
        );
        // ...and its stake is moved to V2 by redelegation (it keeps
        // earning, nothing unbonds), with the reason in the journal.
        let mut moved = None;
        for _ in 0..4 {
            let r = step(600).await;
            let pool = r.pool.as_ref().unwrap();
            let on = |v: &str| {
                pool.delegations
                    .iter()
                    .find(|d| d.validator == v)
                    .map_or(0, |d| d.active.base())
            };
            if on(V1) == 0 {
                moved = Some(on(V2));
                break;
            }
        }
        assert!(moved.is_some_and(|v2| v2 > 0), "V1's stake was not moved");
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        let redelegated: Vec<_> = ops
            .iter()
            .filter(|o| o.kind.name() == "redelegate")
            .collect();
        assert!(!redelegated.is_empty(), "{ops:?}");
        assert!(
            redelegated
                .iter()
                .all(|o| o.state == OpState::Confirmed && o.reason.contains("marked by a loss")),
            "{redelegated:?}"
        );
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cosmos, 10).await;
    })
    .await;
}

/// Issue 25 on the Cosmos test node, on both databases: a validator that
/// raises its commission above `max_validator_commission` gets no new
/// stake, and the engine moves its stake to the other validator by
/// redelegation, with the reason in the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_raising_its_commission_above_the_limit_loses_the_pools_stake() {
    on_both(|store| async move {
        let limit = Rate::new(Decimal::new(10, 2)).unwrap();
        let run = Run::start(&store, Some(limit)).await;
        let on = |r: &softstake_engine::CycleReport, v: &str| {
            r.pool
                .as_ref()
                .unwrap()
                .delegations
                .iter()
                .find(|d| d.validator == v)
                .map_or(0, |d| d.active.base())
        };
        // Staked 2:1 over V1 and V2 (both at 5%).
        let mut r = run.step(600).await;
        for _ in 0..4 {
            if on(&r, V1) > 0 && on(&r, V2) > 0 {
                break;
            }
            r = run.step(600).await;
        }
        assert!(on(&r, V1) > 0 && on(&r, V2) > 0, "{:?}", r.pool);
        // V2 raises its commission to 15%: its stake moves to V1.
        run.node.set_commission(V2, 150_000_000_000_000_000);
        let mut moved = false;
        for _ in 0..4 {
            let r = run.step(600).await;
            if on(&r, V2) == 0 {
                moved = true;
                assert!(on(&r, V1) > 79_000_000, "{:?}", r.pool);
                break;
            }
        }
        assert!(moved, "V2's stake was not moved");
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        let moves: Vec<_> = ops
            .iter()
            .filter(|o| o.kind.name() == "redelegate")
            .collect();
        assert!(!moves.is_empty(), "{ops:?}");
        assert!(
            moves.iter().all(|o| o.state == OpState::Confirmed
                && o.reason
                    .contains("commission 0.15 above max_validator_commission 0.1")),
            "{moves:?}"
        );
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cosmos, 3).await;
    })
    .await;
}

/// The fee market at 0.05 uatom a gas (x1.5 margin = 0.075, under the
/// 0.1 ceiling): twice the 0.025 floor every first delegation paid.
const RISEN: u128 = 50_000_000_000_000_000;

impl Run {
    /// The first delegation signed at the floor and journaled, then the
    /// process crashes before sending it, and the market rises: returns
    /// the operation as journaled.
    async fn signed_then_priced_out(
        &self,
        store: &softstake_store::Store,
    ) -> softstake_store::JournalOp {
        let crashing = self
            .engine
            .clone()
            .with_faults(Arc::new(softstake_tests::CrashAfterStore::default()));
        assert!(matches!(
            crashing.cycle().await,
            Err(softstake_engine::EngineError::Crash(_))
        ));
        let op = store
            .journal_open(ChainId::Cosmos)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.state == OpState::Signed)
            .unwrap();
        self.node.set_gas_price(RISEN);
        op
    }
}

/// Issue 26: a delegation the fee market priced out after it was signed is
/// refused by CheckTx (code 13) and never enters a mempool. The engine
/// signs it again under the same sequence at the market's price, journals
/// both versions, sends the new one before the old one's timeout height,
/// and it lands; its fee is the operation's in the books, and the refused
/// version can never land. On both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegation_refused_for_its_fee_is_signed_again_under_the_same_sequence_and_lands() {
    on_both(|store| async move {
        let run = Run::start(&store, None).await;
        let op = run.signed_then_priced_out(&store).await;
        let old_tx = op.tx_id.clone().unwrap();
        let old =
            softstake_chain_atom::tx::decode_signed(op.signed_bytes.as_ref().unwrap()).unwrap();
        // The restarted engine sends the journaled bytes: refused for the
        // fee, signed again, journaled, sent.
        let r = run.step(0).await;
        let e = r.ops.iter().find(|o| o.id == op.id).unwrap();
        assert_eq!(e.event, "replaced", "{:?}", r.ops);
        let now = store.journal_get(&op.id).await.unwrap().unwrap();
        let new_tx = now.tx_id.clone().unwrap();
        assert_ne!(new_tx, old_tx);
        assert_eq!(now.state, OpState::Broadcast);
        let new =
            softstake_chain_atom::tx::decode_signed(now.signed_bytes.as_ref().unwrap()).unwrap();
        assert_eq!(new.sequence, old.sequence, "the same sequence");
        assert_eq!(new.messages, old.messages, "the same delegation");
        assert!(
            new.fee > old.fee * 2,
            "at the market's price: {} vs {}",
            new.fee,
            old.fee
        );
        let attempts = store.journal_attempts(&op.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].tx_id, old_tx);
        assert_eq!(attempts[0].signed_bytes, op.signed_bytes.clone().unwrap());
        assert!(
            attempts[0].reason.contains("insufficient fee"),
            "{}",
            attempts[0].reason
        );
        for _ in 0..4 {
            run.step(600).await;
        }
        let done = store.journal_get(&op.id).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.tx_id.as_deref()),
            (OpState::Confirmed, Some(new_tx.as_str()))
        );
        // The refused version can never land now: its sequence is used.
        run.node.set_gas_price(5_000_000_000_000_000);
        let again = run
            .engine
            .adapter()
            .broadcast(softstake_core::adapter::BroadcastRequest {
                signed: softstake_core::adapter::SignedOperation {
                    bytes: op.signed_bytes.clone().unwrap(),
                    tx_id: old_tx.clone(),
                    valid_until: None,
                },
            })
            .await
            .unwrap_err();
        assert!(again.to_string().contains("sequence"), "{again}");
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");
        // The new version's fee is the operation's: every snapshot explained.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cosmos, 4).await;
    })
    .await;
}

/// The other way round: the engine signed the operation again, then
/// crashed before sending the new version, and the market fell back so
/// the refused version was taken after all (a node that still had it).
/// The engine finds the earlier version included and confirms the
/// operation with it; the new version can never land; the books know the
/// earlier version's fee as the operation's. On both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_earlier_version_lands_instead_the_operation_is_confirmed_with_it() {
    on_both(|store| async move {
        let run = Run::start(&store, None).await;
        let op = run.signed_then_priced_out(&store).await;
        let old_tx = op.tx_id.clone().unwrap();
        // Signed again, journaled, and the process dies before sending it.
        let crashing = run
            .engine
            .clone()
            .with_faults(Arc::new(softstake_tests::CrashAfterStore::default()));
        assert!(matches!(
            crashing.cycle().await,
            Err(softstake_engine::EngineError::Crash(_))
        ));
        let now = store.journal_get(&op.id).await.unwrap().unwrap();
        let new_tx = now.tx_id.clone().unwrap();
        assert_ne!(new_tx, old_tx);
        assert_eq!(now.state, OpState::Signed);
        // The market falls back; the earlier version is taken and included.
        run.node.set_gas_price(5_000_000_000_000_000);
        run.engine
            .adapter()
            .broadcast(softstake_core::adapter::BroadcastRequest {
                signed: softstake_core::adapter::SignedOperation {
                    bytes: op.signed_bytes.clone().unwrap(),
                    tx_id: old_tx.clone(),
                    valid_until: None,
                },
            })
            .await
            .unwrap();
        run.node.advance(6);
        run.clock.set(Timestamp::from_unix(run.node.head().1));
        let r = run.step(600).await;
        let e = r.ops.iter().find(|o| o.id == op.id).unwrap();
        assert_eq!(
            (e.event, e.detail.as_deref()),
            (
                softstake_engine::OpEventKind::Confirmed,
                Some(old_tx.as_str())
            ),
            "{:?}",
            r.ops
        );
        let done = store.journal_get(&op.id).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.tx_id.as_deref()),
            (OpState::Confirmed, Some(old_tx.as_str()))
        );
        let attempts = store.journal_attempts(&op.id).await.unwrap();
        assert_eq!(
            attempts
                .iter()
                .map(|a| a.tx_id.as_str())
                .collect::<Vec<_>>(),
            [new_tx.as_str()],
            "the version never included is kept"
        );
        for _ in 0..3 {
            run.step(600).await;
        }
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        let delegated: usize = ops
            .iter()
            .filter(|o| o.kind.name() == "delegate" && o.state == OpState::Confirmed)
            .count();
        assert_eq!(delegated, 2, "{ops:?}");
        assert_eq!(run.node.successful_txs(), 2);
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cosmos, 4).await;
    })
    .await;
}
