//! The engine's loop with the real Solana adapter against the LiteSVM test
//! node (the real stake program), on SQLite and PostgreSQL: the planner's
//! stake waits while the priority-fee market is above the ceiling, then
//! becomes a seed-derived stake account paid at the market's price, inflation rewards are
//! recorded per epoch and distributed, and a withdrawal bigger than the
//! buffer is queued, unstaked for (split + deactivate), withdrawn after the
//! cool-down and granted by its ETA.
#![allow(clippy::unwrap_used)]

use softstake_chain_sol::SolAdapter;
use softstake_chain_sol::keys::LocalKey;
use softstake_chain_sol::testnode::{SvmNode, SvmOptions};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, ManualClock};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;

const SOL: u128 = 1_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stakes_earns_distributes_and_serves_a_queued_withdrawal_on_the_real_svm() {
    on_both(|store| async move {
        let node = SvmNode::start(SvmOptions {
            reward_bps: 20,
            ..SvmOptions::default()
        })
        .await
        .unwrap();
        let key = Arc::new(LocalKey::from_seed([7; 32]));
        // 100 SOL owed to users, plus what the custody keeps for fees.
        node.airdrop(&key.address(), 101 * 1_000_000_000)
            .await
            .unwrap();
        let vote = node.create_vote(5).await.unwrap();
        node.advance_slots(1).await.unwrap();
        let adapter: Arc<dyn ChainAdapter> =
            Arc::new(SolAdapter::new(node.settings(), key).unwrap());
        let clock = ManualClock::new(node.time().await.unwrap());
        let engine =
            softstake_tests::adapter_engine(&store, adapter, &[(&vote, 1)], SOL, 7, &clock);
        softstake_tests::opening_balances(
            &store,
            "SOL",
            &[("alice", 60 * SOL), ("bob", 40 * SOL)],
            softstake_core::Clock::now(&clock),
        )
        .await;
        // One loop step: a cycle, then 16 slots (half an epoch).
        let step = || {
            let (engine, node, clock) = (engine.clone(), &node, clock.clone());
            async move {
                let r = engine.cycle().await.unwrap();
                node.advance_slots(16).await.unwrap();
                clock.set(node.time().await.unwrap());
                r
            }
        };
        // Leaders want more per compute unit than the ceiling (the test
        // node's settings: 1,000,000): the plan is journaled, nothing is
        // signed or sent, and the step says why.
        node.set_priority_market(2_000_000).await.unwrap();
        node.advance_slots(150).await.unwrap();
        clock.set(node.time().await.unwrap());
        let r = step().await;
        assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
        assert!(
            r.failures
                .iter()
                .any(|f| f.error.contains("max_compute_unit_price")),
            "{:?}",
            r.failures
        );
        // The market falls to 20,000: the journaled delegation is signed at
        // it (the plan made while it was high, not a second one) and lands.
        node.set_priority_market(20_000).await.unwrap();
        node.advance_slots(150).await.unwrap();
        clock.set(node.time().await.unwrap());
        let r = step().await;
        assert_eq!(
            r.ops.iter().filter(|o| o.event == "broadcast").count(),
            1,
            "{:?}",
            r.ops
        );
        let r = step().await;
        assert!(r.ops.iter().any(|o| o.event == "confirmed"), "{:?}", r.ops);
        let pool = r.pool.unwrap();
        assert_eq!(pool.delegations.len(), 1);
        let staked = pool.delegations[0].active.base() + pool.delegations[0].activating.base();
        assert!((79 * SOL..=81 * SOL).contains(&staked), "{staked}");

        // A few epochs: inflation rewards recorded and distributed.
        for _ in 0..6 {
            step().await;
        }
        softstake_tests::assert_distributions_verify(&store, "SOL", 2).await;

        // Bob withdraws everything: more than the buffer, so it queues; the
        // planner unstakes for it and it is granted by its ETA.
        softstake_tests::queue_withdrawal_until_granted(
            &store,
            &engine,
            &clock,
            "bob",
            Amount::from_base(40 * SOL),
            step,
        )
        .await;
        let ops = store
            .journal_list(ChainId::Solana, None, 100)
            .await
            .unwrap();
        for kind in ["delegate", "undelegate", "withdraw_unbonded"] {
            assert!(
                ops.iter()
                    .any(|o| o.kind.name() == kind && o.state == OpState::Confirmed),
                "no confirmed {kind}: {ops:?}"
            );
        }
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");
        assert_eq!(
            ops.iter().filter(|o| o.kind.name() == "delegate").count(),
            1,
            "the delegation held back by the market is the one later sent: {ops:?}"
        );
    })
    .await;
}
