//! A ledger restored from a backup older than what the chain did, on a
//! real execution node (anvil) with the Beacon API test server, on SQLite
//! and PostgreSQL: two deposits are signed and broadcast after the backup;
//! the restored ledger does not know them. `verify_restore` (what
//! `softstake verify-restore` prints) names them without booking anything;
//! the engine, restarted on the restored ledger with a fresh adapter, finds
//! their fees among the chain's flows, holds planning (nothing is signed
//! twice) until an operator has booked them, and then plans from what the
//! chain holds: no third deposit.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use softstake_chain_eth::EthAdapter;
use softstake_chain_eth::testnode::{Anvil, EthWorld};
use softstake_core::adapter::{ChainAdapter, FlowKind};
use softstake_core::{ChainId, Clock, ManualClock, Timestamp};
use softstake_tests::TestStore;
use std::sync::Arc;

const ETH: u128 = 1_000_000_000_000_000_000;

async fn deposits_on_chain(anvil: &Anvil, contract: &str) -> usize {
    anvil
        .call(
            "eth_getLogs",
            json!([{"address": contract, "fromBlock": "0x0"}]),
        )
        .await
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

async fn restore_after_a_broadcast_signs_nothing_twice(ts: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    // Two 0x01 validators' deposit data (32 ETH each); 100 ETH owed.
    let w = EthWorld::start(100 * ETH, &[0, 2], dir.path())
        .await
        .unwrap();
    let (anvil, contract) = (&w.anvil, w.deposit_contract.clone());
    let settings = w.settings(3_600);
    let adapter = || -> Arc<dyn ChainAdapter> {
        Arc::new(EthAdapter::new(settings.clone(), EthWorld::key().unwrap()).unwrap())
    };
    let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
    let engine =
        softstake_tests::adapter_engine(&ts.store, adapter(), &[("op-a", 1)], ETH, 384, &clock);
    softstake_tests::opening_balances(
        &ts.store,
        "ETH",
        &[("alice", 60 * ETH), ("bob", 40 * ETH)],
        Timestamp::from_unix(1_700_000_000),
    )
    .await;

    // The books open while the chain is paused; the backup is taken.
    ts.store.set_paused(ChainId::Ethereum, true).await.unwrap();
    engine.cycle().await.unwrap();
    let backup = ts.backup(dir.path()).await;
    // Resumed: two deposits are signed and broadcast (anvil mines them).
    ts.store.set_paused(ChainId::Ethereum, false).await.unwrap();
    let r = engine.cycle().await.unwrap();
    assert_eq!(
        r.ops.iter().filter(|o| o.event == "broadcast").count(),
        2,
        "{:?}",
        r.ops
    );
    assert_eq!(deposits_on_chain(anvil, &contract).await, 2);

    // The disk is lost; the backup is restored; softstake restarts with a
    // fresh adapter (nothing in memory).
    let restored = ts.restore(&backup).await;
    ts.store.close().await;
    let store = restored.store.clone();
    assert!(
        store
            .journal_list(ChainId::Ethereum, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let check = softstake_engine::verify_restore(&store, adapter().as_ref())
        .await
        .unwrap();
    assert!(check.complete);
    assert_eq!(check.unknown.len(), 2, "{check:?}");
    assert!(check.unknown.iter().all(|f| f.kind == FlowKind::Fee));
    // It booked nothing.
    assert_eq!(
        store
            .snapshots(ChainId::Ethereum, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // The backup was taken while the chain was paused; an operator resumes
    // it without checking: the books still hold it.
    store.set_paused(ChainId::Ethereum, false).await.unwrap();
    let engine =
        softstake_tests::adapter_engine(&store, adapter(), &[("op-a", 1)], ETH, 384, &clock);
    let r = engine.cycle().await.unwrap();
    assert_eq!(r.incidents_open, 2, "{:?}", r.books);
    assert!(
        r.plan_skipped.as_deref().unwrap().contains("incident"),
        "{:?}",
        r.plan_skipped
    );
    assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
    // Still held a cycle later.
    let r = engine.cycle().await.unwrap();
    assert!(r.plan_skipped.as_deref().unwrap().contains("incident"));
    assert_eq!(
        deposits_on_chain(anvil, &contract).await,
        2,
        "nothing signed twice"
    );

    // The operator checks the chain: they are the deposits the lost disk
    // had journaled. Their fees are booked; the engine plans again, from
    // what the chain holds (the consensus layer has taken the deposits in).
    w.step().await.unwrap();
    for f in store
        .flows(ChainId::Ethereum, true, None, 10)
        .await
        .unwrap()
    {
        store
            .resolve_flow(
                ChainId::Ethereum,
                f.id,
                softstake_store::Resolution::Loss,
                "a deposit broadcast after the backup; its validator is pending on the beacon chain",
                clock.now(),
            )
            .await
            .unwrap();
    }
    let r = engine.cycle().await.unwrap();
    assert_eq!(r.incidents_open, 0);
    let pool = r.pool.as_ref().unwrap();
    assert_eq!(
        pool.delegations[0].active.base() + pool.delegations[0].activating.base(),
        64 * ETH,
        "the chain's stake, not the restored ledger's"
    );
    assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
    assert_eq!(
        deposits_on_chain(anvil, &contract).await,
        2,
        "no third deposit"
    );
    let check = softstake_engine::verify_restore(&store, adapter().as_ref())
        .await
        .unwrap();
    assert!(check.unknown.is_empty(), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_after_a_broadcast_signs_nothing_twice() {
    restore_after_a_broadcast_signs_nothing_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_after_a_broadcast_signs_nothing_twice() {
    restore_after_a_broadcast_signs_nothing_twice(TestStore::postgres().await).await;
}
