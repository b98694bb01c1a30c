//! The engine's safety switches on both databases, with the simulated
//! chain: the approval threshold, dry run, pause, the per-operation and
//! daily caps, recovery of a crash between signing and broadcasting, and
//! step isolation (a failing reward read leaves grants working).
#![allow(clippy::unwrap_used)]

use rust_decimal::Decimal;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, FlowsRequest,
    FlowsResponse, HealthRequest, HealthResponse, IdentifyRequest, IdentifyResponse, LookupRequest,
    LookupResponse, Maintenance, OperationKind, PoolStateRequest, PoolStateResponse,
    RewardsRequest, RewardsResponse, SignedOperation,
};
use softstake_core::{Amount, ChainId, Clock, ManualClock, Rate, Timestamp};
use softstake_engine::{CrashPoint, Engine, EngineConfig, EngineError, Step};
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
            marked: Default::default(),
            max_commission: None,
        },
        max_per_day: Amount::from_base(10_000_000),
        approval_threshold: Amount::ZERO,
        dry_run: false,
        cycle_secs: 60,
        books: softstake_config::BooksSettings::default(),
        advance_limit: Amount::ZERO,
        fee_reserve: Amount::ZERO,
        sizing: None,
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

#[tokio::test]
async fn a_crash_after_journaling_the_bytes_sends_exactly_those_bytes_after_restart() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let e = engine(&store, &s, &c, cfg())
            .with_faults(Arc::new(softstake_tests::CrashAfterStore::default()));
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

/// The simulated chain whose reward reads fail (a pruned block, a node
/// error) while everything else answers: the daemon's own step isolation
/// is under test here, not a chain.
struct RewardsFail {
    sim: SimChain,
    failing: AtomicBool,
}

#[async_trait::async_trait]
impl ChainAdapter for RewardsFail {
    fn chain(&self) -> ChainId {
        self.sim.chain()
    }
    async fn pool_state(&self, r: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        self.sim.pool_state(r).await
    }
    async fn flows_since(&self, r: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        self.sim.flows_since(r).await
    }
    async fn rewards_since(&self, r: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AdapterError::Transport {
                endpoint: "sim://node".into(),
                message: "block 1234 is pruned".into(),
            });
        }
        self.sim.rewards_since(r).await
    }
    async fn build_and_sign(&self, r: BuildRequest) -> Result<SignedOperation, AdapterError> {
        self.sim.build_and_sign(r).await
    }
    async fn broadcast(&self, r: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        self.sim.broadcast(r).await
    }
    async fn lookup(&self, r: LookupRequest) -> Result<LookupResponse, AdapterError> {
        self.sim.lookup(r).await
    }
    async fn identify(&self, r: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        self.sim.identify(r).await
    }
    async fn health(&self, r: HealthRequest) -> Result<HealthResponse, AdapterError> {
        self.sim.health(r).await
    }
    fn maintenance(&self, s: &PoolStateResponse) -> Vec<Maintenance> {
        self.sim.maintenance(s)
    }
}

#[tokio::test]
async fn a_failing_reward_read_leaves_withdrawal_grants_and_planning_working() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let adapter = Arc::new(RewardsFail {
            sim: s.clone(),
            failing: AtomicBool::new(true),
        });
        let e = Engine::new(
            store.clone(),
            adapter.clone() as Arc<dyn ChainAdapter>,
            cfg(),
            Arc::new(c.clone()),
        )
        .unwrap();
        // Asked while the pool looked empty: queued.
        let nothing = softstake_store::Liquidity {
            liquid: Amount::ZERO,
            unbonding: Vec::new(),
            unbonding_delay_secs: 21 * 86_400,
            cycle_secs: 60,
            advance_limit: Amount::ZERO,
        };
        let d = store
            .request_withdrawal(
                &softstake_store::WithdrawalRequest {
                    request_id: "w1".into(),
                    user_id: "alice".into(),
                    chain: ChainId::Cosmos,
                    amount: Amount::from_base(50_000),
                    requested_at: None,
                },
                &nothing,
                c.now(),
            )
            .await
            .unwrap();
        assert_eq!(d.status, "queued", "{d:?}");

        // Rewards cannot be read; the cycle still plans and grants.
        let r = e.cycle().await.unwrap();
        assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
        let f = &r.failures[0];
        assert_eq!(
            (f.step, f.retryable, f.consecutive),
            (Step::CollectRewards, true, 1)
        );
        assert!(f.error.contains("pruned"), "{}", f.error);
        assert_eq!(r.withdrawals_granted, vec!["w1".to_owned()]);
        assert!(r.plan.is_some(), "planning ran: {:?}", r.plan_skipped);
        assert!(
            r.ops
                .iter()
                .any(|o| o.event == "broadcast" || o.event == "confirmed"),
            "{:?}",
            r.ops
        );

        // Failing again, it backs off: retried next cycle, then sits out
        // one cycle, while the other steps run every cycle.
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert_eq!(
            r.failures.iter().map(|f| f.consecutive).collect::<Vec<_>>(),
            vec![2]
        );
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert_eq!(
            (r.failures.len(), r.skipped.clone()),
            (0, vec![Step::CollectRewards])
        );
        assert!(!r.ops.is_empty() || r.plan.is_some() || r.plan_skipped.is_some());

        // The node recovers: the step runs again and its backoff clears.
        adapter.failing.store(false, Ordering::SeqCst);
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert!(
            r.failures.is_empty() && r.skipped.is_empty(),
            "{:?} {:?}",
            r.failures,
            r.skipped
        );
        s.advance(60);
        adapter.failing.store(true, Ordering::SeqCst);
        let r = e.cycle().await.unwrap();
        assert_eq!(
            r.failures.iter().map(|f| f.consecutive).collect::<Vec<_>>(),
            vec![1]
        );
    })
    .await;
}

#[tokio::test]
async fn an_undeclared_outflow_holds_signing_until_an_operator_books_it() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let e = engine(&store, &s, &c, cfg());
        // The first cycle opens the books and delegates.
        let r = e.cycle().await.unwrap();
        assert!(r.books.is_some() && r.incidents_open == 0);
        assert!(r.ops.iter().any(|o| o.event == "journaled"), "{:?}", r.ops);
        s.advance(600);
        e.cycle().await.unwrap();
        // Coins leave the custody account and nobody declared them.
        let tx = s.pay_out(Amount::from_base(50_000)).unwrap();
        s.advance(600);
        let r = e.cycle().await.unwrap();
        assert_eq!(r.incidents_open, 1);
        assert_eq!(r.books.as_ref().unwrap().booked.incident.base(), 50_000);
        let why = r.plan_skipped.unwrap();
        assert!(why.contains("incident"), "{why}");
        assert!(r.plan.is_none() && r.ops.iter().all(|o| o.event != "journaled"));
        // Still held a cycle later (the liquid buffer now wants topping up).
        s.advance(600);
        let r = e.cycle().await.unwrap();
        assert!(r.plan_skipped.unwrap().contains("incident"));
        // The exchange declares it after the fact: booked as its payout,
        // and the chain plans again.
        let d = store
            .declare_transfer(
                &softstake_store::Declaration {
                    chain: ChainId::Cosmos,
                    tx_id: tx,
                    direction: softstake_store::Direction::Out,
                    amount: Amount::from_base(50_000),
                    purpose: softstake_store::Purpose::Principal,
                    note: Some("payout batch 12, declared late".into()),
                },
                c.now(),
            )
            .await
            .unwrap();
        assert!(d.resolved_flow.is_some());
        s.advance(600);
        let r = e.cycle().await.unwrap();
        assert_eq!(r.incidents_open, 0);
        assert!(r.plan.is_some(), "{:?}", r.plan_skipped);
    })
    .await;
}

fn delegate_targets(r: &softstake_engine::CycleReport) -> Vec<String> {
    r.plan
        .iter()
        .flat_map(|p| &p.ops)
        .filter_map(|o| match &o.kind {
            OperationKind::Delegate { validator, .. } => Some(validator.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_slashed_validator_gets_no_new_stake_and_an_unexplained_fall_holds_distributions() {
    on_both(|store| async move {
        use softstake_core::Period;
        use softstake_core::adapter::RewardKind;
        users(&store).await;
        let c = ManualClock::new(Timestamp::from_unix(T0));
        let s = SimChain::new(
            1,
            SimParams::hub_like(&["val0", "val1"], 1),
            c.clone(),
            Amount::from_base(1_000_000),
        );
        let mut k = cfg();
        k.policy.validators = ["val0", "val1"]
            .map(|v| ValidatorTarget {
                address: v.into(),
                weight: 1,
                cap: Rate::ONE,
            })
            .to_vec();
        let e = engine(&store, &s, &c, k);
        let r = e.cycle().await.unwrap();
        assert_eq!(delegate_targets(&r), ["val0", "val1"]);
        // Included, then active after the epoch.
        s.advance(600);
        e.cycle().await.unwrap();

        // The chain slashes val0 and reports it: booked as a loss (the
        // platform bears it) and val0 is marked.
        let lost = s.slash("val0", Amount::from_base(4_000));
        assert_eq!(lost.base(), 4_000);
        s.advance(60);
        let r = e.cycle().await.unwrap();
        let snap = r.books.as_ref().unwrap();
        assert_eq!((snap.booked.losses.base(), snap.residual), (4_000, 0));
        let marks = store.validator_marks(ChainId::Cosmos, true).await.unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0].validator, "val0");
        assert!(
            r.bunker.is_none(),
            "a reported, booked loss needs no bunker"
        );

        // Users deposit; the exchange tops the pool up and declares it:
        // the new stake goes to val1 only.
        top_up(&store, &s, &c, 2_000_000, 1_000_000).await;
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert_eq!(delegate_targets(&r), ["val1"], "{:?}", r.plan_skipped);
        s.advance(60);
        e.cycle().await.unwrap();

        // A fall nobody reports: bunker mode from the next cycle, so a
        // reward recorded then waits instead of being distributed.
        s.lose_silently(Amount::from_base(30_000));
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert_eq!(r.books.as_ref().unwrap().unrecognized, -30_000);
        assert!(store.bunker(ChainId::Cosmos).await.unwrap().active);
        let reward = softstake_store::NewReward {
            chain: ChainId::Cosmos,
            key: "tip-1".into(),
            period: Period::new(c.now().plus_secs(-60), c.now()).unwrap(),
            amount: Amount::from_base(500),
            validator: "val1".into(),
            kind: RewardKind::Consensus,
            tx_hash: None,
            epoch: None,
        };
        store.record_reward(&reward, c.now()).await.unwrap();
        s.pay_unannounced(Amount::from_base(500));
        s.advance(60);
        let r = e.cycle().await.unwrap();
        let why = r.bunker.clone().unwrap();
        assert!(why.contains("30000 base units below"), "{why}");
        assert!(r.distributions.is_empty());
        assert_eq!(
            store
                .undistributed_rewards(Some(ChainId::Cosmos))
                .await
                .unwrap()
                .len(),
            1
        );
        // The fall persisted with every flow proven: booked as a loss in
        // the same cycle, so the next cycle distributes what waited.
        assert_eq!(
            r.books.as_ref().unwrap().booked.loss_recognized.base(),
            30_000
        );
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert!(r.bunker.is_none());
        assert_eq!(r.distributions.len(), 1);
        assert_eq!(r.distributions[0].gross.base(), 500);

        // The operator checks val0 and clears it: the next new stake goes
        // to it (it is furthest below its weight).
        store
            .clear_validator_mark(
                ChainId::Cosmos,
                "val0",
                "double sign was a one-off",
                c.now(),
            )
            .await
            .unwrap();
        let tx = top_up(&store, &s, &c, 3_000_000, 1_000_000).await;
        assert!(!tx.is_empty());
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert_eq!(delegate_targets(&r), ["val0"], "{:?}", r.plan_skipped);
    })
    .await;
}

/// Alice's balance becomes `balance`; the exchange pays `amount` into
/// custody and declares it as principal. Returns the transfer's tx id.
#[tokio::test]
async fn under_the_users_rule_a_slash_is_borne_by_the_holders_and_netted_from_their_next_credit() {
    on_both(|store| async move {
        use softstake_core::Period;
        use softstake_core::adapter::RewardKind;
        use softstake_core::config::LossBearer;
        users(&store).await; // alice holds 1,000,000 from T0
        let (s, c) = sim();
        let mut k = cfg();
        k.books.losses = LossBearer::Users;
        let e = engine(&store, &s, &c, k.clone());
        e.cycle().await.unwrap();
        s.advance(600);
        e.cycle().await.unwrap();
        // The chain slashes and reports it: alice held all along, so the
        // whole loss is her share; the platform owes nothing.
        s.slash("val0", Amount::from_base(4_000));
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert_eq!(r.books.as_ref().unwrap().booked.losses.base(), 4_000);
        let b = store
            .books(ChainId::Cosmos, &k.books, c.now())
            .await
            .unwrap();
        assert_eq!(b.owed.users_losses.receivable.base(), 4_000);
        assert_eq!(b.owed.users_losses.platform, Amount::ZERO);
        // The next reward (10,000) is hers, less her share.
        let reward = softstake_store::NewReward {
            chain: ChainId::Cosmos,
            key: "after-slash".into(),
            period: Period::new(c.now().plus_secs(-60), c.now()).unwrap(),
            amount: Amount::from_base(10_000),
            validator: "val0".into(),
            kind: RewardKind::Consensus,
            tx_hash: None,
            epoch: None,
        };
        store.record_reward(&reward, c.now()).await.unwrap();
        s.pay_unannounced(Amount::from_base(10_000));
        s.advance(60);
        let r = e.cycle().await.unwrap();
        assert!(!r.distributions.is_empty());
        // Every credit since the slash is paid gross less what it kept,
        // and together they kept exactly her share.
        let out = store.outbox(0, 100).await.unwrap();
        assert!(out.iter().any(|o| o.key.contains("after-slash")), "{out:?}");
        let mut kept = 0;
        for o in &out {
            assert_eq!(o.amount.checked_add(o.loss_netted), Some(o.gross));
            kept += o.loss_netted.base();
        }
        assert_eq!(kept, 4_000);
        let b = store
            .books(ChainId::Cosmos, &k.books, c.now())
            .await
            .unwrap();
        assert_eq!(b.owed.users_losses.receivable, Amount::ZERO);
        assert_eq!(b.owed.users_losses.netted.base(), 4_000);
    })
    .await;
}

async fn top_up(
    store: &Store,
    s: &SimChain,
    c: &ManualClock,
    balance: u128,
    amount: u128,
) -> String {
    store
        .ingest_balance_updates(
            &[BalanceUpdate {
                event_id: format!("alice-{balance}"),
                user_id: "alice".into(),
                asset: "ATOM".into(),
                balance: Amount::from_base(balance),
                effective_at: c.now(),
            }],
            c.now(),
        )
        .await
        .unwrap();
    let tx = s.deposit(Amount::from_base(amount));
    store
        .declare_transfer(
            &softstake_store::Declaration {
                chain: ChainId::Cosmos,
                tx_id: tx.clone(),
                direction: softstake_store::Direction::In,
                amount: Amount::from_base(amount),
                purpose: softstake_store::Purpose::Principal,
                note: None,
            },
            c.now(),
        )
        .await
        .unwrap();
    tx
}

/// A transaction the node keeps in its pool after the base fee overtook
/// what it pays (geth keeps such a transaction until the base fee falls)
/// is reported stuck; the engine signs the same operation again at today's
/// price, the pool replaces the held version with it, and only the new one
/// is included. Both versions stay in the journal. (The simulated chain
/// proves the engine's rule; on Ethereum the adapter reports `Stuck` when
/// the node holds a transaction whose max fee is under the latest base
/// fee, which anvil cannot show: it drops such a transaction, and the
/// adapter's refusal path replaces it then, see eth_spec_engine.)
#[tokio::test]
async fn a_transaction_held_below_the_base_fee_is_replaced_and_only_the_replacement_lands() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let e = engine(&store, &s, &c, cfg());
        let r = e.cycle().await.unwrap();
        let sent: Vec<_> = r.ops.iter().filter(|o| o.event == "broadcast").collect();
        assert_eq!(sent.len(), 1, "{:?}", r.ops);
        let id = sent[0].id.clone();
        let old_tx = store
            .journal_get(&id)
            .await
            .unwrap()
            .unwrap()
            .tx_id
            .unwrap();
        // The base fee rises before a block includes it: held, not included.
        s.raise_base_fee(1);
        s.advance(60);
        assert_eq!((s.mempool_len(), s.included_count()), (1, 0));
        let r = e.cycle().await.unwrap();
        let ev = r.ops.iter().find(|o| o.id == id).unwrap();
        assert_eq!(ev.event, "replaced", "{:?}", r.ops);
        let now = store.journal_get(&id).await.unwrap().unwrap();
        let new_tx = now.tx_id.clone().unwrap();
        assert_ne!(new_tx, old_tx);
        let attempts = store.journal_attempts(&id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].tx_id, old_tx);
        assert!(
            attempts[0].reason.contains("below the base fee"),
            "{}",
            attempts[0].reason
        );
        // The pool holds only the replacement, which the next block takes.
        assert_eq!(s.mempool_len(), 1);
        s.advance(60);
        e.cycle().await.unwrap();
        let done = store.journal_get(&id).await.unwrap().unwrap();
        assert_eq!(
            (done.state, done.tx_id.as_deref()),
            (OpState::Confirmed, Some(new_tx.as_str()))
        );
        assert_eq!(s.included_count(), 1, "exactly one version landed");
        assert_eq!(s.audit().broadcasts[&id].len(), 2);
    })
    .await;
}

/// With `buffer.sizing` the plan's target comes from the exchange's own
/// withdrawals over windows as long as the chain's unbonding delay, and the
/// plan says how (both databases).
#[tokio::test]
async fn the_buffer_is_sized_from_observed_withdrawals_and_the_plan_says_how() {
    on_both(|store| async move {
        let (sim, clock) = sim();
        users(&store).await;
        // Two days on, two withdrawals ten minutes apart (the simulated
        // chain unbonds in 30 minutes: one window holds both).
        let now = Timestamp::from_unix(T0 + 2 * 86_400);
        clock.set(now);
        let liq = softstake_store::Liquidity {
            liquid: Amount::from_base(1_000_000),
            unbonding: Vec::new(),
            unbonding_delay_secs: 1_800,
            cycle_secs: 60,
            advance_limit: Amount::ZERO,
        };
        for (id, amount, ago) in [("w1", 50_000u128, 1_200i64), ("w2", 30_000, 600)] {
            store
                .request_withdrawal(
                    &softstake_store::WithdrawalRequest {
                        request_id: id.into(),
                        user_id: "alice".into(),
                        chain: ChainId::Cosmos,
                        amount: Amount::from_base(amount),
                        requested_at: Some(now.plus_secs(-ago)),
                    },
                    &liq,
                    now,
                )
                .await
                .unwrap();
            store.complete_withdrawal(id, now).await.unwrap();
        }
        let state = sim.pool_state(PoolStateRequest::default()).await.unwrap();
        assert_eq!(state.limits.unbonding_delay_secs, 1_800);
        // Fixed: the configured 20%.
        let fixed = softstake_engine::plan_for(&store, &cfg(), &state, now)
            .await
            .unwrap();
        assert!(fixed.sizing.is_none());
        assert_eq!(fixed.summary.aim, Amount::from_base(200_000));
        // Sized: the worst 30-minute window held 80,000 of 1,000,000.
        let rate = |s: &str| Rate::new(s.parse().unwrap()).unwrap();
        let sized_cfg = EngineConfig {
            sizing: Some(softstake_planner::sizing::OutflowSizing {
                quantile: rate("1"),
                horizon_secs: 30 * 86_400,
                floor: rate("0.05"),
                ceiling: rate("0.6"),
            }),
            ..cfg()
        };
        let plan = softstake_engine::plan_for(&store, &sized_cfg, &state, now)
            .await
            .unwrap();
        let s = plan.sizing.clone().unwrap();
        assert_eq!(
            (s.outflow, s.target),
            (Amount::from_base(80_000), rate("0.08"))
        );
        assert!(s.explanation.contains("p100 of"), "{}", s.explanation);
        assert_eq!(plan.summary.aim, Amount::from_base(80_000));
        // The median window had nothing in it: the floor.
        let median = EngineConfig {
            sizing: Some(softstake_planner::sizing::OutflowSizing {
                quantile: rate("0.5"),
                ..sized_cfg.sizing.clone().unwrap()
            }),
            ..cfg()
        };
        let plan = softstake_engine::plan_for(&store, &median, &state, now)
            .await
            .unwrap();
        assert_eq!(plan.summary.aim, Amount::from_base(50_000));
    })
    .await;
}

/// `buffer.fee_reserve`: withdrawals are granted from the liquid balance
/// less the reserve, so a grant (or the advance line fronting the rest of
/// one) never takes the coins the refilling unstake must pay its fee with.
#[tokio::test]
async fn the_fee_reserve_is_never_granted_to_withdrawals() {
    on_both(|store| async move {
        users(&store).await;
        let (s, c) = sim();
        let mut k = cfg();
        k.fee_reserve = Amount::from_base(1_000);
        let e = engine(&store, &s, &c, k.clone());
        let liq = e.liquidity().await.unwrap();
        assert_eq!(liq.liquid, Amount::from_base(1_000_000 - 1_000));
        let req = |id: &str, amount: u128| softstake_store::WithdrawalRequest {
            request_id: id.into(),
            user_id: "alice".into(),
            chain: ChainId::Cosmos,
            amount: Amount::from_base(amount),
            requested_at: None,
        };
        // With an advance line, the treasury fronts what lies beyond the
        // reserve: custody keeps the reserve.
        k.advance_limit = Amount::from_base(5_000);
        let e = engine(&store, &s, &c, k);
        let liq = e.liquidity().await.unwrap();
        let d = store
            .request_withdrawal(&req("w2", 999_500), &liq, c.now())
            .await
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.advanced),
            ("granted", Some(Amount::from_base(500)))
        );
    })
    .await;
}
