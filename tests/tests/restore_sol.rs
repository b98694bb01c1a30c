//! A ledger restored from a backup older than what the chain did, on the
//! LiteSVM test node (the real stake program), on SQLite and PostgreSQL:
//! the planner's stake account is created and delegated after the backup,
//! so the restored journal does not know it. `verify_restore` lists it as
//! adoptable (decoded from the transaction's bytes); the engine, restarted
//! on the restored ledger with a fresh adapter, journals it as the chain
//! shows it before planning, books its fee as its own, and signs no second
//! delegation.
#![allow(clippy::unwrap_used)]

use softstake_chain_sol::SolAdapter;
use softstake_chain_sol::keys::LocalKey;
use softstake_chain_sol::testnode::{SvmNode, SvmOptions};
use softstake_core::adapter::{ChainAdapter, OperationKind, TxStatus};
use softstake_core::{ChainId, Clock, ManualClock};
use softstake_store::OpState;
use softstake_tests::TestStore;
use std::sync::Arc;

const SOL: u128 = 1_000_000_000;

async fn restore_after_a_delegation_signs_nothing_twice(ts: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    // No inflation: the stake stays what was delegated.
    let node = SvmNode::start(SvmOptions {
        reward_bps: 0,
        ..SvmOptions::default()
    })
    .await
    .unwrap();
    let key = Arc::new(LocalKey::from_seed([7; 32]));
    node.airdrop(&key.address(), u64::try_from(101 * SOL).unwrap())
        .await
        .unwrap();
    let vote = node.create_vote(5).await.unwrap();
    node.advance_slots(1).await.unwrap();
    let settings = node.settings();
    let adapter = || -> Arc<dyn ChainAdapter> {
        Arc::new(SolAdapter::new(settings.clone(), key.clone()).unwrap())
    };
    let clock = ManualClock::new(node.time().await.unwrap());
    let engine =
        softstake_tests::adapter_engine(&ts.store, adapter(), &[(&vote, 1)], SOL, 7, &clock);
    softstake_tests::opening_balances(
        &ts.store,
        "SOL",
        &[("alice", 60 * SOL), ("bob", 40 * SOL)],
        clock.now(),
    )
    .await;
    let advance = || async {
        node.advance_slots(16).await.unwrap();
        clock.set(node.time().await.unwrap());
    };

    // The books open while the chain is paused; the backup is taken.
    ts.store.set_paused(ChainId::Solana, true).await.unwrap();
    engine.cycle().await.unwrap();
    let backup = ts.backup(dir.path()).await;
    // Resumed: the stake account is created and delegated, and lands.
    ts.store.set_paused(ChainId::Solana, false).await.unwrap();
    let r = engine.cycle().await.unwrap();
    let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
    assert_eq!(sent.len(), 1, "{:?}", r.ops);
    let tx = sent[0].detail.clone().unwrap();
    advance().await;
    let r = engine.cycle().await.unwrap();
    let staked = |r: &softstake_engine::CycleReport| -> u128 {
        r.pool
            .as_ref()
            .unwrap()
            .delegations
            .iter()
            .map(|d| d.active.base() + d.activating.base())
            .sum()
    };
    let before = staked(&r);
    assert!(before > 70 * SOL, "{before}");

    // The disk is lost; the backup is restored; softstake restarts with a
    // fresh adapter (nothing in memory).
    let (restored, check) =
        softstake_tests::restore_and_verify(&ts, &backup, adapter().as_ref()).await;
    let store = restored.store.clone();
    assert!(check.unexplained.is_empty(), "{check:?}");
    assert_eq!(check.adoptable.len(), 1, "{check:?}");
    assert_eq!(check.adoptable[0].tx_id, tx);
    let OperationKind::Delegate { validator, amount } = &check.adoptable[0].operation.kind else {
        panic!("{check:?}");
    };
    assert_eq!(validator, &vote);
    assert_eq!(amount.base(), before);
    assert!(matches!(
        check.adoptable[0].operation.status,
        TxStatus::Confirmed { .. }
    ));

    // The engine on the restored ledger adopts it and plans from the chain.
    let engine = softstake_tests::adapter_engine(&store, adapter(), &[(&vote, 1)], SOL, 7, &clock);
    let r = engine.cycle().await.unwrap();
    assert_eq!(
        r.ops.iter().filter(|o| o.event == "adopted").count(),
        1,
        "{:?}",
        r.ops
    );
    assert_eq!(r.incidents_open, 0, "{:?}", r.books);
    assert!(
        r.ops.iter().all(|o| o.event != "journaled"),
        "nothing signed twice: {:?}",
        r.ops
    );
    let op = store
        .journal_get(&format!("found:solana:{tx}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(op.state, OpState::Confirmed);
    for _ in 0..3 {
        advance().await;
        let r = engine.cycle().await.unwrap();
        assert!(r.ops.iter().all(|o| o.event != "journaled"), "{:?}", r.ops);
        assert_eq!(staked(&r), before, "the chain's stake, not a second one");
    }
    let check = softstake_engine::verify_restore(&store, adapter().as_ref())
        .await
        .unwrap();
    assert!(check.unknown.is_empty(), "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_after_a_delegation_signs_nothing_twice() {
    restore_after_a_delegation_signs_nothing_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_after_a_delegation_signs_nothing_twice() {
    restore_after_a_delegation_signs_nothing_twice(TestStore::postgres().await).await;
}
