//! Issue 32 on Cardano, on SQLite and PostgreSQL: the ledger is restored
//! from a backup older than a delegation the lost process sent, which is
//! still in the node's mempool. The restored engine, with a fresh adapter,
//! plans the delegation again; its transaction spends the same outputs the
//! pending one spends, so the node's mempool refuses it (UTxO: a second send
//! is impossible, not merely unlikely). Once the pending one is included
//! the books find its fee, the adapter recognises it as the custody's
//! delegation, the engine adopts it, the refused one expires, and the
//! chain holds one registration, one deposit, one delegation: every
//! snapshot explained.
#![allow(clippy::unwrap_used)]

use softstake_chain_ada::keys::LocalKey;
use softstake_chain_ada::testnode::{TestNode, TestNodeConfig, pool_bech32};
use softstake_chain_ada::tx;
use softstake_chain_ada::{AdaAdapter, AdaSettings};
use softstake_core::adapter::{ChainAdapter, OperationKind, PoolStateRequest};
use softstake_core::{ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::TestStore;
use std::sync::Arc;
use std::time::Duration;

const ADA: u128 = 1_000_000;

async fn a_pending_delegation_at_a_restore_is_never_sent_twice(ts: TestStore) {
    let dir = tempfile::tempdir().unwrap();
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
    let (payment, stake) = ([0x51; 32], [0x52; 32]);
    let address = tx::base_address(
        0,
        &LocalKey::from_seed(payment).key_hash(),
        &LocalKey::from_seed(stake).key_hash(),
    );
    node.fund(&address, 1_005_000_000);
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // A fresh adapter each time: a restarted process holds nothing in memory.
    let adapter = || -> Arc<dyn ChainAdapter> {
        Arc::new(
            AdaAdapter::new(
                AdaSettings {
                    endpoints: vec![format!("http://{bound}")],
                    project_id: None,
                    network_id: 0,
                    network_magic: 42,
                    drep: "always_abstain".into(),
                    min_withdrawal: 1_000_000,
                    ttl_slots: 300,
                    confirmations: 3,
                    min_change: 1_000_000,
                    request_timeout: Duration::from_secs(5),
                },
                Arc::new(LocalKey::from_seed(payment)),
                Arc::new(LocalKey::from_seed(stake)),
            )
            .unwrap(),
        )
    };
    let validators = [(pool_bech32(&pool), 1)];
    let validators: Vec<(&str, u32)> = validators.iter().map(|(v, w)| (v.as_str(), *w)).collect();
    let clock = ManualClock::new(Timestamp::from_unix(node.now()));
    let engine =
        softstake_tests::adapter_engine(&ts.store, adapter(), &validators, ADA, 50, &clock);
    softstake_tests::opening_balances(
        &ts.store,
        "ADA",
        &[("alice", 600 * ADA), ("bob", 400 * ADA)],
        clock.now(),
    )
    .await;
    let advance = |slots: u64| {
        node.advance_slots(slots);
        clock.set(Timestamp::from_unix(node.now()));
    };

    // The books open while the chain is paused; the backup is taken.
    ts.store.set_paused(ChainId::Cardano, true).await.unwrap();
    engine.cycle().await.unwrap();
    let backup = ts.backup(dir.path()).await;
    // Resumed: the delegation is signed and sent, and waits in the mempool.
    ts.store.set_paused(ChainId::Cardano, false).await.unwrap();
    node.hold_sends();
    let r = engine.cycle().await.unwrap();
    let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
    assert_eq!(sent.len(), 1, "{:?}", r.ops);
    let first = sent[0].detail.clone().unwrap();

    // The disk is lost; the backup is restored; softstake restarts with a
    // fresh adapter. The chain shows nothing yet: the delegation is pending.
    let (restored, check) =
        softstake_tests::restore_and_verify(&ts, &backup, adapter().as_ref()).await;
    let store = restored.store.clone();
    assert!(check.unknown.is_empty(), "{check:?}");
    // The backup was taken paused: the operator resumes the chain.
    store.set_paused(ChainId::Cardano, false).await.unwrap();
    advance(1);
    let engine = softstake_tests::adapter_engine(&store, adapter(), &validators, ADA, 50, &clock);
    // The restored plan delegates again: another transaction (a later
    // TTL) over the same outputs, which the mempool refuses.
    let r = engine.cycle().await.unwrap();
    let refused: Vec<_> = r
        .ops
        .iter()
        .filter(|o| o.event == "broadcast_error")
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?} {:?} {:?} {:?}",
        r.ops,
        r.plan_skipped,
        r.failures,
        r.books_waiting
    );
    assert!(
        refused[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("BadInputsUTxO")),
        "{:?}",
        r.ops
    );
    let second = store.journal_get(&refused[0].id).await.unwrap().unwrap();
    assert_ne!(second.tx_id.as_deref(), Some(first.as_str()));

    // The pending one is included. The books find its fee; the engine
    // adopts it as the custody's delegation; the refused one is resent
    // and refused (its inputs are spent) until its TTL, then expires.
    assert_eq!(node.release_sends(), vec![first.clone()]);
    for _ in 0..10 {
        advance(50);
        let r = engine.cycle().await.unwrap();
        // (Housekeeping, the DRep vote delegation, follows as usual.)
        assert!(
            r.ops
                .iter()
                .all(|o| !(o.kind == "delegate" && o.event == "broadcast")),
            "no second delegation is sent: {:?}",
            r.ops
        );
    }
    let ops = store
        .journal_list(ChainId::Cardano, None, 100)
        .await
        .unwrap();
    let adopted = store
        .journal_get(&format!("found:cardano:{first}"))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("not adopted: {ops:?}"));
    assert_eq!(adopted.state, OpState::Confirmed);
    assert!(matches!(adopted.kind, OperationKind::Delegate { .. }));
    let second = store.journal_get(&second.id).await.unwrap().unwrap();
    assert_eq!(second.state, OpState::Expired, "{ops:?}");
    // One registration, one deposit, one delegation.
    let p = engine
        .adapter()
        .pool_state(PoolStateRequest::default())
        .await
        .unwrap();
    assert_eq!(p.delegations.len(), 1);
    assert_eq!(
        p.reserved.base() - u128::from(node.rewards(&LocalKey::from_seed(stake).key_hash())),
        2_000_000
    );
    softstake_tests::assert_every_snapshot_explained(&store, ChainId::Cardano, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_with_a_cardano_delegation_pending() {
    a_pending_delegation_at_a_restore_is_never_sent_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_with_a_cardano_delegation_pending() {
    a_pending_delegation_at_a_restore_is_never_sent_twice(TestStore::postgres().await).await;
}
