//! Issue 32 on Polkadot (the real Westend Asset Hub runtime under
//! chopsticks), on SQLite and PostgreSQL: the ledger is restored from a
//! backup older than the bond the lost process sent, which has landed. The
//! restored engine, with a fresh adapter, meets the bond's fee in the
//! stash's flows; the journal does not know it, so the adapter identifies
//! it from the extrinsic and its events (`identify`), and the engine adopts
//! it as a confirmed delegation. Nothing is bonded twice, the books explain
//! every snapshot and raise no incident.
#![allow(clippy::unwrap_used)]

use softstake_chain_dot::testnode::{CHOPSTICKS_GENESIS, Chopsticks};
use softstake_chain_dot::tx::Payee;
use softstake_chain_dot::{DotAdapter, DotSettings};
use softstake_core::adapter::{ChainAdapter, PoolStateRequest};
use softstake_core::{ChainId, Clock, ManualClock, Timestamp};
use softstake_store::OpState;
use softstake_tests::TestStore;
use std::sync::Arc;
use std::time::Duration;
use subxt::utils::AccountId32;
use subxt_signer::sr25519::Keypair;

const DOT: u128 = 10_000_000_000;
const ERA_SECS: u64 = 6 * 3600;

async fn a_bond_landed_after_the_backup_is_adopted_not_sent_twice(ts: TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let node = Chopsticks::asset_hub("Instant").await.unwrap();
    let vals = node.staking_validators().await.unwrap();
    let key = Arc::new(Keypair::from_uri(&"//SoftstakeRestore".parse().unwrap()).unwrap());
    let stash = AccountId32(key.public_key().0).to_string();
    node.fund(&stash, 10_000 * DOT + 5 * DOT).await.unwrap();
    // A fresh adapter each time: a restarted process holds nothing in memory.
    let adapter = || -> Arc<dyn ChainAdapter> {
        Arc::new(
            DotAdapter::new(
                DotSettings {
                    endpoints: vec![node.url.clone()],
                    genesis_hash: CHOPSTICKS_GENESIS.into(),
                    targets: vec![(vals[0].clone(), vals[0].parse().unwrap())],
                    stash: None,
                    payee: Payee::Staked,
                    fee_reserve: DOT,
                    era_period: 64,
                    rewards_from_block: None,
                    max_scan_blocks: 2_000,
                    max_payouts_per_tx: 8,
                    request_timeout: Duration::from_secs(60),
                },
                key.clone(),
            )
            .unwrap(),
        )
    };
    let t0 = i64::try_from(node.now_ms().await.unwrap() / 1000).unwrap();
    node.set_era(1, u64::try_from(t0).unwrap() * 1000)
        .await
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_unix(t0));
    let engine = softstake_tests::adapter_engine(
        &ts.store,
        adapter(),
        &[(&vals[0], 1)],
        DOT,
        ERA_SECS,
        &clock,
    );
    softstake_tests::opening_balances(
        &ts.store,
        "DOT",
        &[("alice", 6_000 * DOT), ("bob", 4_000 * DOT)],
        clock.now(),
    )
    .await;

    // The books open while the chain is paused; the backup is taken.
    ts.store.set_paused(ChainId::Polkadot, true).await.unwrap();
    engine.cycle().await.unwrap();
    let backup = ts.backup(dir.path()).await;
    // Resumed: the bond is sent and lands.
    ts.store.set_paused(ChainId::Polkadot, false).await.unwrap();
    let head = node.head_number().await.unwrap();
    let r = engine.cycle().await.unwrap();
    let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
    assert_eq!(sent.len(), 1, "{:?}", r.ops);
    let bond_tx = sent[0].detail.clone().unwrap();
    node.settle(head).await.unwrap();
    let bonded = |p: &softstake_core::adapter::PoolStateResponse| -> u128 {
        p.delegations
            .iter()
            .map(|d| d.active.base() + d.activating.base())
            .sum()
    };
    let once = bonded(
        &adapter()
            .pool_state(PoolStateRequest::default())
            .await
            .unwrap(),
    );
    assert!(once > 0);

    // The disk is lost; the backup is restored; softstake restarts with a
    // fresh adapter and the operator resumes the chain.
    let (restored, _check) =
        softstake_tests::restore_and_verify(&ts, &backup, adapter().as_ref()).await;
    let store = restored.store.clone();
    store.set_paused(ChainId::Polkadot, false).await.unwrap();
    let engine =
        softstake_tests::adapter_engine(&store, adapter(), &[(&vals[0], 1)], DOT, ERA_SECS, &clock);
    // The restored cycle books the chain as it is: the bond's fee is met
    // in the flows, identified and adopted; nothing is sent.
    let r = engine.cycle().await.unwrap();
    assert!(
        r.ops.iter().any(|o| o.event == "adopted"),
        "the landed bond is adopted: {:?}",
        r.ops
    );
    for _ in 0..3 {
        let r = engine.cycle().await.unwrap();
        assert!(
            r.ops.iter().all(|o| o.event != "broadcast"),
            "nothing is sent twice: {:?}",
            r.ops
        );
    }
    let ops = store
        .journal_list(ChainId::Polkadot, None, 100)
        .await
        .unwrap();
    let adopted: Vec<_> = ops.iter().filter(|o| o.kind.name() == "delegate").collect();
    assert_eq!(adopted.len(), 1, "{ops:?}");
    assert_eq!(adopted[0].state, OpState::Confirmed, "{ops:?}");
    assert_eq!(adopted[0].tx_id.as_deref(), Some(bond_tx.as_str()));
    assert_eq!(
        bonded(
            &adapter()
                .pool_state(PoolStateRequest::default())
                .await
                .unwrap()
        ),
        once,
        "bonded once"
    );
    softstake_tests::assert_every_snapshot_explained(&store, ChainId::Polkadot, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_sqlite_ledger_after_a_polkadot_bond_landed() {
    a_bond_landed_after_the_backup_is_adopted_not_sent_twice(TestStore::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_a_postgres_ledger_after_a_polkadot_bond_landed() {
    a_bond_landed_after_the_backup_is_adopted_not_sent_twice(TestStore::postgres().await).await;
}
