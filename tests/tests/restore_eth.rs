//! A ledger restored from a backup older than what the chain did, on a
//! real execution node (anvil) with the Beacon API test server, on SQLite
//! and PostgreSQL: two deposits are signed and broadcast after the backup;
//! the restored ledger does not know them. `verify_restore` (what
//! `softstake verify-restore` prints) names them, recognised from the chain
//! as the deposits they are, without booking anything; the engine,
//! restarted on the restored ledger with a fresh adapter, finds their fees
//! among the chain's flows, journals the deposits as the chain shows them
//! before it plans, and plans from what the chain holds: no third deposit.
//! A transaction the custody account sent that is not softstake's is not
//! adopted: it holds signing as an incident.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use softstake_chain_eth::EthAdapter;
use softstake_chain_eth::testnode::{Anvil, EthWorld};
use softstake_core::adapter::{ChainAdapter, FlowKind, OperationKind, TxStatus};
use softstake_core::{Amount, ChainId, ManualClock, Timestamp};
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

/// Two 0x01 validators' deposit data (32 ETH each) and 100 ETH owed; the
/// books opened while the chain was paused, and the backup taken then.
struct Scene {
    _dir: tempfile::TempDir,
    w: EthWorld,
    settings: softstake_chain_eth::EthSettings,
    clock: ManualClock,
    engine: softstake_engine::Engine,
    backup: std::path::PathBuf,
}

impl Scene {
    async fn open(ts: &TestStore) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let w = EthWorld::start(100 * ETH, &[0, 2], dir.path())
            .await
            .unwrap();
        let settings = w.settings(3_600);
        let clock = ManualClock::new(Timestamp::from_unix(1_700_000_000));
        let adapter: Arc<dyn ChainAdapter> =
            Arc::new(EthAdapter::new(settings.clone(), EthWorld::key().unwrap()).unwrap());
        let engine =
            softstake_tests::adapter_engine(&ts.store, adapter, &[("op-a", 1)], ETH, 384, &clock);
        softstake_tests::opening_balances(
            &ts.store,
            "ETH",
            &[("alice", 60 * ETH), ("bob", 40 * ETH)],
            Timestamp::from_unix(1_700_000_000),
        )
        .await;
        ts.store.set_paused(ChainId::Ethereum, true).await.unwrap();
        engine.cycle().await.unwrap();
        let backup = ts.backup(dir.path()).await;
        Scene {
            _dir: dir,
            w,
            settings,
            clock,
            engine,
            backup,
        }
    }

    /// Resumed: the planner's two deposits are signed and broadcast.
    async fn resume_and_send(&self, ts: &TestStore) {
        ts.store.set_paused(ChainId::Ethereum, false).await.unwrap();
        let r = self.engine.cycle().await.unwrap();
        assert_eq!(
            r.ops.iter().filter(|o| o.event == "broadcast").count(),
            2,
            "{:?}",
            r.ops
        );
    }

    /// A fresh adapter (nothing in memory), as after a restart.
    fn adapter(&self) -> Arc<dyn ChainAdapter> {
        Arc::new(EthAdapter::new(self.settings.clone(), EthWorld::key().unwrap()).unwrap())
    }
}

async fn restore_after_a_broadcast_signs_nothing_twice(ts: TestStore) {
    let scene = Scene::open(&ts).await;
    let (w, clock, backup) = (&scene.w, &scene.clock, &scene.backup);
    let (anvil, contract) = (&w.anvil, w.deposit_contract.clone());
    let adapter = || scene.adapter();
    // Resumed: two deposits are signed and broadcast (anvil mines them).
    scene.resume_and_send(&ts).await;
    assert_eq!(deposits_on_chain(anvil, &contract).await, 2);

    // The disk is lost; the backup is restored; softstake restarts with a
    // fresh adapter (nothing in memory).
    let (restored, check) =
        softstake_tests::restore_and_verify(&ts, backup, adapter().as_ref()).await;
    let store = restored.store.clone();
    assert_eq!(check.unknown.len(), 2, "{check:?}");
    assert!(check.unknown.iter().all(|f| f.kind == FlowKind::Fee));
    // Both are recognised from the chain as the deposits they are.
    assert!(check.unexplained.is_empty(), "{check:?}");
    assert_eq!(check.adoptable.len(), 2, "{check:?}");
    for a in &check.adoptable {
        assert_eq!(
            a.operation.kind,
            OperationKind::Delegate {
                validator: "op-a".into(),
                amount: Amount::from_base(32 * ETH)
            }
        );
        assert!(matches!(a.operation.status, TxStatus::Confirmed { .. }));
    }
    // It booked and journaled nothing.
    assert_eq!(
        store
            .snapshots(ChainId::Ethereum, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .journal_list(ChainId::Ethereum, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The backup was taken while the chain was paused; an operator resumes
    // it. The engine journals the two deposits as the chain shows them
    // before planning, books their fees as its own, and plans from what
    // the chain holds: no third deposit.
    store.set_paused(ChainId::Ethereum, false).await.unwrap();
    let engine =
        softstake_tests::adapter_engine(&store, adapter(), &[("op-a", 1)], ETH, 384, clock);
    let r = engine.cycle().await.unwrap();
    let adopted: Vec<_> = r.ops.iter().filter(|o| o.event == "adopted").collect();
    assert_eq!(adopted.len(), 2, "{:?}", r.ops);
    assert_eq!(r.incidents_open, 0, "{:?}", r.books);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
    let journal = store
        .journal_list(ChainId::Ethereum, None, 10)
        .await
        .unwrap();
    assert_eq!(journal.len(), 2);
    for op in &journal {
        assert!(op.id.starts_with("found:ethereum:0x"), "{op:?}");
        assert_eq!(op.state, softstake_store::OpState::Confirmed);
        assert!(op.signed_bytes.is_none());
        assert!(
            check
                .adoptable
                .iter()
                .any(|a| Some(&a.tx_id) == op.tx_id.as_ref())
        );
    }
    // Their fees are the operations' fees, not incidents.
    assert!(
        store
            .flows(ChainId::Ethereum, true, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        deposits_on_chain(anvil, &contract).await,
        2,
        "nothing signed twice"
    );
    // Adopting again is a no-op.
    let r = engine.cycle().await.unwrap();
    assert!(r.ops.iter().all(|o| o.event != "adopted"), "{:?}", r.ops);
    w.step().await.unwrap();
    let r = engine.cycle().await.unwrap();
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

    // A transaction the custody account sent that is not softstake's (a
    // plain transfer signed elsewhere) is not adopted: it is an incident,
    // and nothing is signed until an operator books it.
    let custody = w.custody.clone();
    anvil
        .call("anvil_impersonateAccount", json!([custody]))
        .await
        .unwrap();
    anvil
        .call(
            "eth_sendTransaction",
            json!([{"from": custody, "to": "0x000000000000000000000000000000000000dEaD", "value": format!("{:#x}", ETH)}]),
        )
        .await
        .unwrap();
    w.step().await.unwrap();
    let check = softstake_engine::verify_restore(&store, adapter().as_ref())
        .await
        .unwrap();
    assert!(check.adoptable.is_empty(), "{check:?}");
    assert_eq!(
        check.unexplained.len(),
        2,
        "the transfer and its fee: {check:?}"
    );
    let r = engine.cycle().await.unwrap();
    assert!(r.ops.iter().all(|o| o.event != "adopted"), "{:?}", r.ops);
    assert_eq!(r.incidents_open, 2, "{:?}", r.books);
    assert!(
        r.plan_skipped.as_deref().unwrap().contains("incident"),
        "{:?}",
        r.plan_skipped
    );
    assert_eq!(
        store
            .journal_list(ChainId::Ethereum, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_after_a_broadcast_signs_nothing_twice() {
    restore_after_a_broadcast_signs_nothing_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_after_a_broadcast_signs_nothing_twice() {
    restore_after_a_broadcast_signs_nothing_twice(TestStore::postgres().await).await;
}

/// The same, but the deposits are still in the node's mempool when the
/// backup is restored: the restarted engine plans from the chain as it
/// was, and the plan must not be signed beside them (it would take the
/// next nonce and deposit a second time). Nothing is signed while the node
/// holds transactions this process did not send; once they are mined they
/// are adopted and the plan made without them is dropped.
async fn restore_while_deposits_are_pending_signs_nothing_twice(ts: TestStore) {
    let scene = Scene::open(&ts).await;
    let (w, clock, backup) = (&scene.w, &scene.clock, &scene.backup);
    let (anvil, contract) = (&w.anvil, w.deposit_contract.clone());
    let adapter = || scene.adapter();
    // The node stops mining: the two deposits wait in its mempool.
    anvil.call("evm_setAutomine", json!([false])).await.unwrap();
    scene.resume_and_send(&ts).await;
    assert_eq!(deposits_on_chain(anvil, &contract).await, 0);
    let pending = || async {
        let count = |tag: &'static str| {
            let custody = w.custody.clone();
            async move {
                let v = anvil
                    .call("eth_getTransactionCount", json!([custody, tag]))
                    .await
                    .unwrap();
                u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
            }
        };
        count("pending").await - count("latest").await
    };
    assert_eq!(pending().await, 2);

    // Restored; restarted with a fresh adapter. Nothing was mined, so the
    // books find nothing to adopt and the planner wants the deposits again.
    let (restored, check) =
        softstake_tests::restore_and_verify(&ts, backup, adapter().as_ref()).await;
    assert!(check.unknown.is_empty(), "{check:?}");
    let store = restored.store.clone();
    store.set_paused(ChainId::Ethereum, false).await.unwrap();
    let engine =
        softstake_tests::adapter_engine(&store, adapter(), &[("op-a", 1)], ETH, 384, clock);
    for _ in 0..2 {
        let r = engine.cycle().await.unwrap();
        assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
        assert!(
            r.failures
                .iter()
                .any(|f| f.retryable && f.error.contains("mempool")),
            "{:?} {:?}",
            r.failures,
            r.skipped
        );
        assert_eq!(pending().await, 2, "nothing sent beside them");
    }

    // Mined: adopted as the deposits they are, the plan made without them
    // is dropped, and there is no third deposit.
    anvil.call("evm_mine", json!([])).await.unwrap();
    anvil.call("evm_setAutomine", json!([true])).await.unwrap();
    let r = engine.cycle().await.unwrap();
    let adopted = r.ops.iter().filter(|o| o.event == "adopted").count();
    assert_eq!(adopted, 2, "{:?}", r.ops);
    assert_eq!(deposits_on_chain(anvil, &contract).await, 2);
    w.step().await.unwrap();
    for _ in 0..2 {
        let r = engine.cycle().await.unwrap();
        assert!(r.ops.iter().all(|o| o.event != "broadcast"), "{:?}", r.ops);
    }
    assert_eq!(
        deposits_on_chain(anvil, &contract).await,
        2,
        "no third deposit"
    );
    let journal = store
        .journal_list(ChainId::Ethereum, None, 10)
        .await
        .unwrap();
    assert!(
        journal
            .iter()
            .all(|o| o.id.starts_with("found:") || o.state == softstake_store::OpState::Failed),
        "{journal:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_while_deposits_are_pending_signs_nothing_twice() {
    restore_while_deposits_are_pending_signs_nothing_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_while_deposits_are_pending_signs_nothing_twice() {
    restore_while_deposits_are_pending_signs_nothing_twice(TestStore::postgres().await).await;
}
