//! The engine's loop with the real Cardano adapter against the
//! protocol-faithful test node over HTTP, on SQLite and PostgreSQL: the
//! planner delegates the whole balance (stake key registration + pool
//! delegation), housekeeping delegates the vote and withdraws rewards,
//! rewards are distributed per epoch, and a withdrawal is granted at once
//! because delegated ada stays spendable.
#![allow(clippy::unwrap_used)]

use softstake_chain_ada::keys::LocalKey;
use softstake_chain_ada::testnode::{TestNode, TestNodeConfig, pool_bech32};
use softstake_chain_ada::tx;
use softstake_chain_ada::{AdaAdapter, AdaSettings};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;
use std::time::Duration;

const ADA: u128 = 1_000_000;

struct Run {
    node: TestNode,
    engine: softstake_engine::Engine,
    clock: ManualClock,
    pool: [u8; 28],
}

impl Run {
    /// A funded custody on the test node, its adapter (`confirmations`
    /// deep is final) and an engine over `store`, alice 600 and bob 400.
    async fn new(store: &softstake_store::Store, confirmations: u64) -> Run {
        let node = TestNode::new(TestNodeConfig {
            min_fee_a: 44,
            min_fee_b: 155_381,
            key_deposit: 2_000_000,
            epoch_length: 100,
            system_start: 1_700_000_000,
            reward_bps: 20,
            network_id: 0,
        });
        let pool = [0x33; 28];
        node.add_pool(pool);
        let payment = Arc::new(LocalKey::from_seed([0x41; 32]));
        let stake = Arc::new(LocalKey::from_seed([0x42; 32]));
        node.fund(
            &tx::base_address(0, &payment.key_hash(), &stake.key_hash()),
            1_005_000_000,
        );
        let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let adapter: Arc<dyn ChainAdapter> = Arc::new(
            AdaAdapter::new(
                AdaSettings {
                    endpoints: vec![format!("http://{bound}")],
                    project_id: None,
                    network_id: 0,
                    network_magic: 42,
                    drep: "always_abstain".into(),
                    min_withdrawal: 1_000_000,
                    ttl_slots: 300,
                    confirmations,
                    min_change: 1_000_000,
                    request_timeout: Duration::from_secs(5),
                },
                payment,
                stake,
            )
            .unwrap(),
        );
        let clock = ManualClock::new(Timestamp::from_unix(node.now()));
        let engine = softstake_tests::adapter_engine(
            store,
            adapter,
            &[(&pool_bech32(&pool), 1)],
            ADA,
            50,
            &clock,
        );
        softstake_tests::opening_balances(
            store,
            "ADA",
            &[("alice", 600 * ADA), ("bob", 400 * ADA)],
            clock.now(),
        )
        .await;
        Run {
            node,
            engine,
            clock,
            pool,
        }
    }

    /// A cycle, then `slots` blocks.
    async fn step(&self, slots: u64) -> softstake_engine::CycleReport {
        let r = self.engine.cycle().await.unwrap();
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        self.node.advance_slots(slots);
        self.clock.set(Timestamp::from_unix(self.node.now()));
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_delegates_earns_withdraws_rewards_and_distributes_on_the_cardano_test_node() {
    on_both(|store| async move {
        let run = Run::new(&store, 15).await;
        for _ in 0..12 {
            run.step(50).await;
        }
        let (engine, clock) = (&run.engine, &run.clock);
        let ops = store
            .journal_list(ChainId::Cardano, None, 100)
            .await
            .unwrap();
        for kind in ["delegate", "setup", "claim_rewards"] {
            assert!(
                ops.iter()
                    .any(|o| o.kind.name() == kind && o.state == OpState::Confirmed),
                "no confirmed {kind}: {ops:?}"
            );
        }
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");
        softstake_tests::assert_distributions_verify(&store, "ADA", 2).await;
        // The adapter proves every transfer and fee: through the deposit,
        // the vote delegation, the epochs' rewards and their withdrawal,
        // every snapshot's change in holdings is explained to the lovelace.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cardano, 12).await;
        // Delegated ada is spendable: bob's withdrawal is granted at once.
        let liq = engine.liquidity().await.unwrap();
        let d = store
            .request_withdrawal(
                &softstake_store::WithdrawalRequest {
                    request_id: "w1".into(),
                    user_id: "bob".into(),
                    chain: ChainId::Cardano,
                    amount: Amount::from_base(400 * ADA),
                    requested_at: None,
                },
                &liq,
                clock.now(),
            )
            .await
            .unwrap();
        assert_eq!(d.status, "granted", "{d:?}");
    })
    .await;
}

/// A rollback on Cardano while the pool's delegation is shallower than the
/// confirmation depth: the books book nothing until it is final (no
/// residual from holdings a rollback undid), the journal keeps the
/// operation open, the engine sends the same bytes again when the chain
/// no longer has them, and they land once: one delegation, one fee, every
/// snapshot explained, on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_of_the_delegation_before_it_is_final_is_sent_again_and_booked_once() {
    on_both(|store| async move {
        let run = Run::new(&store, 5).await;
        // Opens the books (the opening snapshot), then plans and sends
        // the delegation, which the node puts in the next block.
        let r = run.step(1).await;
        assert!(r.books.is_some(), "{r:?}");
        assert!(r.ops.iter().any(|o| o.event == "broadcast"), "{:?}", r.ops);
        let op = store
            .journal_list(ChainId::Cardano, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.kind.name() == "delegate")
            .unwrap();
        // Two deep of five: the pool is read, the books wait.
        let r = run.step(0).await;
        assert!(r.books.is_none(), "{r:?}");
        assert!(
            r.books_waiting
                .as_deref()
                .is_some_and(|w| w.contains("rollback")),
            "{r:?}"
        );
        // The fork without it wins: the next cycle finds it gone and sends
        // the journaled bytes again.
        assert_eq!(run.node.rollback(2), 1);
        run.clock.set(Timestamp::from_unix(run.node.now()));
        let r = run.step(0).await;
        assert!(
            r.ops
                .iter()
                .any(|o| o.id == op.id && o.event == "rebroadcast"),
            "{:?}",
            r.ops
        );
        assert!(r.books.is_none() && r.books_waiting.is_some(), "{r:?}");
        for _ in 0..10 {
            run.step(50).await;
        }
        let ops = store
            .journal_list(ChainId::Cardano, None, 100)
            .await
            .unwrap();
        let delegations: Vec<_> = ops.iter().filter(|o| o.kind.name() == "delegate").collect();
        assert_eq!(delegations.len(), 1, "{ops:?}");
        assert_eq!(delegations[0].state, OpState::Confirmed);
        assert_eq!(delegations[0].tx_id, op.tx_id, "the same bytes landed");
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");
        // Every snapshot explained to the lovelace: no residual from the
        // holdings the rollback undid, the fee booked once.
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cardano, 8).await;
        let state = run
            .engine
            .adapter()
            .pool_state(Default::default())
            .await
            .unwrap();
        assert_eq!(state.delegations.len(), 1);
        assert_eq!(state.delegations[0].validator, pool_bech32(&run.pool));
        softstake_tests::assert_distributions_verify(&store, "ADA", 1).await;
    })
    .await;
}

/// A rollback that takes the pool's delegation out for good (the node
/// loses every resubmission until its validity interval is over): without
/// waiting for finality, the books would have booked its fee, then seen
/// the holdings come back with no flow to explain it, a residual taken
/// for income. Here nothing is booked while it is shallow, the operation
/// expires, a new one is planned and lands, and every snapshot is
/// explained, on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_loses_the_delegation_for_good_books_no_income() {
    on_both(|store| async move {
        let run = Run::new(&store, 5).await;
        run.step(1).await;
        let first = store
            .journal_list(ChainId::Cardano, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|o| o.kind.name() == "delegate")
            .unwrap();
        let r = run.step(0).await;
        assert!(r.books.is_none() && r.books_waiting.is_some(), "{r:?}");
        assert_eq!(run.node.rollback(2), 1);
        run.node.drop_submissions(u32::MAX);
        run.clock.set(Timestamp::from_unix(run.node.now()));
        // 300 slots of validity: resent and lost every cycle, then expired.
        for _ in 0..8 {
            run.step(50).await;
        }
        run.node.drop_submissions(0);
        for _ in 0..6 {
            run.step(50).await;
        }
        let ops = store
            .journal_list(ChainId::Cardano, None, 100)
            .await
            .unwrap();
        let state_of = |id: &str| ops.iter().find(|o| o.id == id).map(|o| o.state);
        assert_eq!(state_of(&first.id), Some(OpState::Expired), "{ops:?}");
        let landed: Vec<_> = ops
            .iter()
            .filter(|o| o.kind.name() == "delegate" && o.state == OpState::Confirmed)
            .collect();
        assert_eq!(landed.len(), 1, "{ops:?}");
        softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cardano, 8).await;
        let rewards = store
            .list_rewards(Some(ChainId::Cardano), None, 100)
            .await
            .unwrap();
        assert!(
            rewards
                .iter()
                .all(|r| r.reward.kind != softstake_core::adapter::RewardKind::Reconciled),
            "income from a rollback: {rewards:?}"
        );
    })
    .await;
}
