//! Issue 32 on Tezos, on SQLite and PostgreSQL: the ledger is restored from
//! a backup older than the stake the lost process injected, which is still
//! in the node's mempool. The restored engine, with a fresh adapter, plans
//! the stake again at the same head: the group it signs is the very same
//! (branch, counter and fee come from the chain; signatures are
//! deterministic), and the node, which holds it, refuses a second one from
//! the source (one manager operation per source and block). Once it is
//! baked the restored operation is confirmed as that transaction: one
//! stake, every snapshot explained. (A group signed on another head would
//! differ, be refused while the pending one waits, and could never land
//! after it: the counter is used.)
#![allow(clippy::unwrap_used)]

use softstake_chain_xtz::keys::{LocalKey, Signer};
use softstake_chain_xtz::ops::Mode;
use softstake_chain_xtz::testnode::{TestNode, TestNodeConfig};
use softstake_chain_xtz::{XtzAdapter, XtzSettings};
use softstake_core::adapter::{ChainAdapter, PoolStateRequest};
use softstake_core::{ChainId, ManualClock, Secret, Timestamp};
use softstake_store::OpState;
use softstake_tests::TestStore;
use std::sync::Arc;
use std::time::Duration;

const EDSK: &str = "edsk2gLvWRYgkCPVKPjXag2uSGDjQh5YGUThMgLXUhzbrJWXdvvYoj";
const BAKER: &str = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";
const T0: i64 = 1_767_225_600;
const TEZ: u128 = 1_000_000;

async fn a_pending_stake_at_a_restore_is_never_sent_twice(ts: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let key = || LocalKey::parse(&Secret::new(EDSK.into())).unwrap();
    let node = TestNode::new(TestNodeConfig::small(
        vec![(BAKER.into(), true, 10_000 * TEZ)],
        vec![(key().address(), 1_000 * TEZ)],
    ));
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // A fresh adapter each time: a restarted process holds nothing in memory.
    let adapter = || -> Arc<dyn ChainAdapter> {
        Arc::new(
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
                Arc::new(key()),
            )
            .unwrap(),
        )
    };
    let clock = ManualClock::new(Timestamp::from_unix(T0));
    let engine =
        softstake_tests::adapter_engine(&ts.store, adapter(), &[(BAKER, 1)], TEZ, 64, &clock);
    softstake_tests::opening_balances(
        &ts.store,
        "XTZ",
        &[("alice", 600 * TEZ), ("bob", 400 * TEZ)],
        Timestamp::from_unix(T0),
    )
    .await;
    let bake = |n: i64| {
        node.bake(n);
        clock.set(Timestamp::from_unix(node.head().1));
    };

    // The books open while the chain is paused; the backup is taken.
    ts.store.set_paused(ChainId::Tezos, true).await.unwrap();
    engine.cycle().await.unwrap();
    let backup = ts.backup(dir.path()).await;
    // Resumed: the stake group is injected and waits in the mempool.
    ts.store.set_paused(ChainId::Tezos, false).await.unwrap();
    let r = engine.cycle().await.unwrap();
    let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
    assert_eq!(sent.len(), 1, "{:?}", r.ops);
    let first = sent[0].detail.clone().unwrap();

    // The disk is lost; the backup is restored; softstake restarts with a
    // fresh adapter and the operator resumes the chain.
    let (restored, check) =
        softstake_tests::restore_and_verify(&ts, &backup, adapter().as_ref()).await;
    let store = restored.store.clone();
    assert!(check.unknown.is_empty(), "{check:?}");
    store.set_paused(ChainId::Tezos, false).await.unwrap();
    let engine = softstake_tests::adapter_engine(&store, adapter(), &[(BAKER, 1)], TEZ, 64, &clock);
    // The restored plan stakes again; the node refuses the group while the
    // pending one waits for its block.
    let r = engine.cycle().await.unwrap();
    assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
    let second = store
        .journal_open(ChainId::Tezos)
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.id.starts_with("tezos-"))
        .unwrap_or_else(|| panic!("the restored plan: {:?}", r.ops));

    // The same plan at the same head signs the very same group (branch,
    // counter and fee are the chain's): the node already holds it.
    assert_eq!(second.tx_id.as_deref(), Some(first.as_str()));
    // The pending group is baked: the restored operation is confirmed as
    // the very transaction the lost process sent; nothing is sent twice.
    bake(1);
    for _ in 0..4 {
        let r = engine.cycle().await.unwrap();
        assert!(
            r.ops.iter().all(|o| o.event != "broadcast"),
            "nothing is sent twice: {:?}",
            r.ops
        );
        bake(8);
    }
    let ops = store.journal_list(ChainId::Tezos, None, 100).await.unwrap();
    let second = store.journal_get(&second.id).await.unwrap().unwrap();
    assert_eq!(second.state, OpState::Confirmed, "{ops:?}");
    assert_eq!(
        ops.iter().filter(|o| o.kind.name() == "delegate").count(),
        1,
        "{ops:?}"
    );
    // Staked once: 80% of the pool.
    let p = engine
        .adapter()
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap();
    let staked: u128 = p
        .delegations
        .iter()
        .map(|d| d.active.base() + d.activating.base())
        .sum();
    assert!(staked <= 810 * TEZ, "staked twice? {staked}: {p:?}");
    softstake_tests::assert_every_snapshot_explained(&store, ChainId::Tezos, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_with_a_tezos_stake_pending() {
    a_pending_stake_at_a_restore_is_never_sent_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_with_a_tezos_stake_pending() {
    a_pending_stake_at_a_restore_is_never_sent_twice(TestStore::postgres().await).await;
}
