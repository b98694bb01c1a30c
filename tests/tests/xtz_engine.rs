//! The engine's loop with the real Tezos adapter (staking mode) against the
//! Tezos test node over HTTP, on SQLite and PostgreSQL: the planner's stake
//! goes out as one reveal + delegation + stake group, staking rewards are
//! recorded with their evidence and distributed per cycle, a withdrawal
//! bigger than the buffer is queued, unstaked for, finalized and granted, a
//! slashing is booked once as a loss, and the pool's books balance with
//! every fee proven (backing exactly 1).
#![allow(clippy::unwrap_used)]

use softstake_chain_xtz::keys::{LocalKey, Signer};
use softstake_chain_xtz::ops::Mode;
use softstake_chain_xtz::testnode::{TestNode, TestNodeConfig};
use softstake_chain_xtz::{XtzAdapter, XtzSettings};
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Secret, Timestamp};
use softstake_store::OpState;
use softstake_tests::on_both;
use std::sync::Arc;
use std::time::Duration;

const EDSK: &str = "edsk2gLvWRYgkCPVKPjXag2uSGDjQh5YGUThMgLXUhzbrJWXdvvYoj";
const BAKER: &str = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";
const T0: i64 = 1_767_225_600;
const TEZ: u128 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_stakes_earns_distributes_and_serves_a_queued_withdrawal_on_the_tezos_test_node()
{
    on_both(|store| async move {
        let key = LocalKey::parse(&Secret::new(EDSK.into())).unwrap();
        let node = TestNode::new(TestNodeConfig::small(
            vec![(BAKER.into(), true, 10_000 * TEZ)],
            vec![(key.address(), 1_000 * TEZ)],
        ));
        let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let adapter: Arc<dyn ChainAdapter> = Arc::new(
            XtzAdapter::new(
                XtzSettings {
                    endpoints: vec![format!("http://{bound}")],
                    chain_id: "NetXsoftstake1".into(),
                    mode: Mode::Staking,
                    payout_addresses: vec![],
                    payout_delay_cycles: 5,
                    max_scan: 10_000,
                    expected_payout_cycles: None,
                    request_timeout: Duration::from_secs(5),
                    start_level: Some(1),
                },
                Arc::new(key),
            )
            .unwrap(),
        );
        let clock = ManualClock::new(Timestamp::from_unix(T0));
        let engine =
            softstake_tests::adapter_engine(&store, adapter, &[(BAKER, 1)], TEZ, 64, &clock);
        softstake_tests::opening_balances(
            &store,
            "XTZ",
            &[("alice", 600 * TEZ), ("bob", 400 * TEZ)],
            Timestamp::from_unix(T0),
        )
        .await;
        // One loop step: a cycle, then `blocks` blocks.
        let step = |blocks: i64| {
            let (engine, node, clock) = (engine.clone(), node.clone(), clock.clone());
            async move {
                let r = engine.cycle().await.unwrap();
                node.bake(blocks);
                clock.set(Timestamp::from_unix(node.head().1));
                r
            }
        };
        // 80% staked in one group (reveal + delegation + stake).
        let r = step(1).await;
        assert_eq!(
            r.ops.iter().filter(|o| o.event == "broadcast").count(),
            1,
            "{:?}",
            r.ops
        );
        let r = step(1).await;
        assert_eq!(
            r.ops.iter().filter(|o| o.event == "confirmed").count(),
            1,
            "{:?}",
            r.ops
        );
        let pool = r.pool.unwrap();
        assert_eq!(pool.delegations[0].active.base(), 800 * TEZ);

        // Two cycle ends: staking rewards recorded and distributed.
        for _ in 0..4 {
            step(8).await;
        }
        softstake_tests::assert_distributions_verify(&store, "XTZ", 2).await;

        // Bob withdraws everything: more than the buffer, so it queues; the
        // planner unstakes for it and it is granted by its ETA.
        softstake_tests::queue_withdrawal_until_granted(
            &store,
            &engine,
            &clock,
            "bob",
            Amount::from_base(400 * TEZ),
            || step(8),
        )
        .await;
        let ops = store.journal_list(ChainId::Tezos, None, 100).await.unwrap();
        for kind in ["undelegate", "withdraw_unbonded"] {
            assert!(
                ops.iter()
                    .any(|o| o.kind.name() == kind && o.state == OpState::Confirmed),
                "no confirmed {kind}: {ops:?}"
            );
        }
        assert!(ops.iter().all(|o| o.state != OpState::Failed), "{ops:?}");

        // Every staking reward carries its evidence: the staked balance at
        // both boundary blocks and the pool's credit.
        let rewards = store
            .list_rewards(Some(ChainId::Tezos), None, 100)
            .await
            .unwrap();
        let staking: Vec<_> = rewards
            .iter()
            .filter(|r| r.reward.key.starts_with("staking:"))
            .collect();
        assert!(staking.len() >= 2, "{rewards:?}");
        for r in &staking {
            let e = r.reward.tx_hash.as_deref().unwrap_or("");
            assert!(
                e.starts_with("staked_balance ")
                    && e.contains(&format!("pool of {BAKER} credited")),
                "{e}"
            );
        }

        // The baker is slashed 10%: the staked balance falls, the adapter
        // reports the fall once as a loss, and the books book it once.
        let key = LocalKey::parse(&Secret::new(EDSK.into())).unwrap();
        let staked = node.staked(&key.address());
        node.slash(BAKER, 100_000);
        let mut lost = 0u128;
        let mut booked = 0u128;
        for _ in 0..4 {
            let r = step(8).await;
            lost += r
                .pool
                .as_ref()
                .map_or(0, |p| p.losses.iter().map(|l| l.amount.base()).sum());
            booked += r.books.as_ref().map_or(0, |b| b.booked.losses.base());
        }
        // 10% of the stake, less the cycle's reward on it.
        assert!(
            lost < staked / 10 && lost > staked / 11,
            "{lost} of {staked}"
        );
        assert_eq!(booked, lost);
        let after = store
            .books(ChainId::Tezos, &Default::default(), clock.now())
            .await
            .unwrap();
        assert_eq!(after.owed.losses.base(), lost, "booked once");
        // The books balance by construction: every fee proven, every
        // reward evidenced, the loss booked, nothing unexplained.
        let snap = after.snapshot.as_ref().unwrap();
        assert!(snap.complete, "{snap:?}");
        assert_eq!(snap.unrecognized, 0, "{snap:?}");
        assert!(after.owed.fees.base() > 0);
        assert_eq!((after.suspense_open, after.incidents_open), (0, 0));
        assert_eq!(after.backing_ratio.as_deref(), Some("1.000000"));
        assert_eq!(after.surplus, 0);
    })
    .await;
}
