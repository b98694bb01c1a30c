//! The engine's safety switches on both databases, with the simulated
//! chain: the approval threshold, dry run, pause, the per-operation and
//! daily caps, and recovery of a crash between signing and broadcasting.
#![allow(clippy::unwrap_used)]

use rust_decimal::Decimal;
use softstake_core::adapter::{ChainAdapter, OperationKind};
use softstake_core::{Amount, ChainId, Clock, ManualClock, Rate, Timestamp};
use softstake_engine::{CrashPoint, Engine, EngineConfig, EngineError, Faults};
use softstake_planner::{Policy, ValidatorTarget};
use softstake_store::{BalanceUpdate, OpState, Store};
use softstake_testkit::{SimChain, SimParams};
use softstake_tests::on_both;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const T0: i64 = 1_767_225_600;

fn sim() -> (SimChain, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_unix(T0));
    let s = SimChain::new(
        1,
        SimParams::hub_like(&["val0"], 1),
        clock.clone(),
        Amount::from_base(1_000_000),
    );
    (s, clock)
}

fn cfg() -> EngineConfig {
    EngineConfig {
        chain: ChainId::Cosmos,
        commission: Rate::ZERO,
        min_eligible_balance: Amount::ZERO,
        policy: Policy {
            target: Rate::new(Decimal::new(20, 2)).unwrap(),
            band: Rate::new(Decimal::new(5, 2)).unwrap(),
            min_operation: Amount::from_base(100),
            validators: vec![ValidatorTarget {
                address: "val0".into(),
                weight: 1,
                cap: Rate::ONE,
            }],
            max_per_operation: Amount::from_base(10_000_000),
            remaining_today: Amount::ZERO,
        },
        max_per_day: Amount::from_base(10_000_000),
        approval_threshold: Amount::ZERO,
        dry_run: false,
        cycle_secs: 60,
    }
}

async fn users(store: &Store) {
    store
        .ingest_balance_updates(
            &[BalanceUpdate {
                event_id: "e1".into(),
                user_id: "alice".into(),
                asset: "ATOM".into(),
                balance: Amount::from_base(1_000_000),
                effective_at: Timestamp::from_unix(T0),
            }],
            Timestamp::from_unix(T0),
        )
        .await
        .unwrap();
}

fn engine(store: &Store, s: &SimChain, c: &ManualClock, cfg: EngineConfig) -> Engine {
    Engine::new(
        store.clone(),
        Arc::new(s.clone()) as Arc<dyn ChainAdapter>,
        cfg,
        Arc::new(c.clone()),
    )
    .unwrap()
}

fn delegated(ops: &[softstake_store::JournalOp]) -> u128 {
    ops.iter()
        .filter_map(|o| match &o.kind {
            OperationKind::Delegate { amount, .. } => Some(amount.base()),
            _ => None,
        })
        .sum()
}

#[tokio::test]
async fn above_the_threshold_an_operation_waits_for_approval_then_goes() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let mut k = cfg();
        k.approval_threshold = Amount::from_base(500_000);
        let e = engine(&store, &s, &c, k);
        let r = e.cycle().await.unwrap();
        assert_eq!(r.ops[0].event, "awaiting_approval");
        let id = r.ops[0].id.clone();
        // Nothing is sent, and nothing more is planned while it waits.
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert!(r.plan.is_none() && r.plan_skipped.unwrap().contains("awaiting_approval"));
        assert!(s.audit().broadcasts.is_empty());
        store.journal_approve(&id, c.now()).await.unwrap();
        let r = e.cycle().await.unwrap();
        assert!(
            r.ops.iter().any(|o| o.id == id && o.event == "broadcast"),
            "{:?}",
            r.ops
        );
        s.advance(60);
        e.cycle().await.unwrap();
        assert_eq!(
            store.journal_get(&id).await.unwrap().unwrap().state,
            OpState::Confirmed
        );
    })
    .await;
}

#[tokio::test]
async fn dry_run_and_pause_send_nothing() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let mut k = cfg();
        k.dry_run = true;
        let r = engine(&store, &s, &c, k).cycle().await.unwrap();
        // The plan is made and reported, nothing journaled or sent.
        assert!(!r.plan.unwrap().ops.is_empty());
        assert!(r.plan_skipped.unwrap().contains("dry run"));
        assert!(
            store
                .journal_list(ChainId::Cosmos, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        store.set_paused(ChainId::Cosmos, true).await.unwrap();
        let e = engine(&store, &s, &c, cfg());
        let r = e.cycle().await.unwrap();
        assert!(r.paused && r.plan.is_none());
        assert!(
            store
                .journal_list(ChainId::Cosmos, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(s.audit().broadcasts.is_empty());
        store.set_paused(ChainId::Cosmos, false).await.unwrap();
        let r = e.cycle().await.unwrap();
        assert!(r.ops.iter().any(|o| o.event == "broadcast"));
    })
    .await;
}

#[tokio::test]
async fn caps_bound_each_operation_and_the_day() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let mut k = cfg();
        k.policy.max_per_operation = Amount::from_base(100_000);
        k.max_per_day = Amount::from_base(250_000);
        let e = engine(&store, &s, &c, k);
        for _ in 0..10 {
            e.cycle().await.unwrap();
            s.advance(60);
        }
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        assert!(ops.iter().all(|o| o.value.base() <= 100_000), "{ops:?}");
        // 800k wanted, 250k allowed today.
        assert_eq!(delegated(&ops), 250_000);
        // The next UTC day the rest follows.
        s.advance(86_400);
        for _ in 0..10 {
            e.cycle().await.unwrap();
            s.advance(60);
        }
        let ops = store
            .journal_list(ChainId::Cosmos, None, 100)
            .await
            .unwrap();
        assert_eq!(delegated(&ops), 500_000);
    })
    .await;
}

/// Crashes once, right after the bytes were journaled.
#[derive(Debug, Default)]
struct CrashOnce(AtomicBool);

impl Faults for CrashOnce {
    fn check(&self, p: CrashPoint) -> Result<(), EngineError> {
        if p == CrashPoint::AfterStore && !self.0.swap(true, Ordering::SeqCst) {
            return Err(EngineError::Crash(p));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_crash_after_journaling_the_bytes_sends_exactly_those_bytes_after_restart() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let e = engine(&store, &s, &c, cfg()).with_faults(Arc::new(CrashOnce::default()));
        assert!(matches!(
            e.cycle().await,
            Err(EngineError::Crash(CrashPoint::AfterStore))
        ));
        let open = store.journal_open(ChainId::Cosmos).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].state, OpState::Signed);
        assert!(
            s.audit().broadcasts.is_empty(),
            "nothing was sent before the crash"
        );
        // Restart: a fresh engine reconciles: not found, still valid, so the
        // same journaled bytes are broadcast (never re-signed).
        let e = engine(&store, &s, &c, cfg());
        let r = e.cycle().await.unwrap();
        assert!(
            r.ops.iter().any(|o| o.event == "rebroadcast"),
            "{:?}",
            r.ops
        );
        s.advance(60);
        e.cycle().await.unwrap();
        let audit = s.audit();
        assert_eq!(audit.broadcasts[&open[0].id].len(), 1);
        assert_eq!(
            audit.broadcasts[&open[0].id].iter().next().unwrap(),
            open[0].tx_id.as_ref().unwrap()
        );
        assert_eq!(
            store.journal_get(&open[0].id).await.unwrap().unwrap().state,
            OpState::Confirmed
        );
    })
    .await;
}
