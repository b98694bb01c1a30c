//! One chain's cycle, shared by the daemon and the operator commands.
//!
//! [`Engine::cycle`] runs, for one chain and in this order:
//! 1. **collect** rewards from the adapter since the stored cursor and record
//!    them (idempotent by key, cursor stored after);
//! 2. **distribute** every undistributed reward of the chain (exactly once,
//!    conservation checked by the store before commit), unless the chain is
//!    in bunker mode (its books show a fall not yet accounted: the rewards
//!    wait, crates/store/src/losses.rs);
//! 3. **reconcile** every non-final journaled operation against the chain
//!    with [`softstake_store::recovery_action`]: confirm, fail, expire, or
//!    rebroadcast the *same* journaled bytes; sign operations still `planned`;
//! 4. **plan**, only when the chain has no open operation (so a crash can
//!    never produce a second delegation for the same need), from the pool
//!    state, the liabilities, the withdrawals owed and the policy;
//! 5. **execute** the plan through the journal: insert (operations above the
//!    approval threshold wait in `awaiting_approval`), sign, store the bytes,
//!    broadcast, mark broadcast. Confirmation happens in a later cycle's
//!    reconcile, after the chain has included the transaction;
//! 6. **promote** queued withdrawals that the liquid balance now covers.
//!
//! A paused chain still collects, distributes and grants queued withdrawals
//! from liquid funds (bookkeeping) but sends nothing: no reconcile, no plan,
//! no signing. In dry-run mode the plan is
//! computed and reported but nothing is journaled, signed or sent.
//!
//! Crash points: [`Faults::check`] is called between every journal write and
//! chain call. Production uses [`NoFaults`]; the simulation
//! (`softstake-testkit`) crashes there to prove the recovery rule.

use serde::Serialize;
use sha2::{Digest, Sha256};
use softstake_config::ChainConfig;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BuildRequest, ChainAdapter, FlowKind, FlowsRequest,
    IdentifyRequest, LookupRequest, PoolFlow, PoolStateRequest, PoolStateResponse, ReplaceRequest,
    RewardsRequest, SignedOperation, TxStatus,
};
use softstake_core::{Amount, ChainId, Clock, Timestamp};
use softstake_planner::{Plan, PlanError, Policy, ValidatorTarget};
use softstake_store::{
    DistributeOptions, DistributeOutcome, DistributionSummary, JournalOp, Liquidity, NewOp,
    NewReward, OpState, Recovery, Store, StoreError, recovery_action,
};
use std::sync::Arc;

/// A point between two steps of an operation where a process can die.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// After the operation was journaled, before signing.
    AfterJournal,
    /// After signing, before the bytes were stored.
    AfterSign,
    /// After the bytes were stored, before broadcasting.
    AfterStore,
    /// After broadcasting, before marking it broadcast.
    AfterBroadcast,
    /// After a lookup, before recording the outcome.
    AfterLookup,
    /// After recording rewards, before storing the cursor.
    AfterRewards,
    /// After reading flows, before booking the snapshot.
    BeforeBooks,
}

/// Fault injection at crash points.
pub trait Faults: Send + Sync + std::fmt::Debug {
    /// `Err` aborts the cycle as if the process died here.
    fn check(&self, point: CrashPoint) -> Result<(), EngineError>;
}

/// Production: never crashes on purpose.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl Faults for NoFaults {
    fn check(&self, _point: CrashPoint) -> Result<(), EngineError> {
        Ok(())
    }
}

/// Errors of a cycle.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The chain adapter failed.
    #[error("chain: {0}")]
    Adapter(#[from] AdapterError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The planner refused its inputs.
    #[error("planner: {0}")]
    Plan(#[from] PlanError),
    /// An injected crash (simulation only).
    #[error("injected crash at {0:?}")]
    Crash(CrashPoint),
    /// The chain answered something that contradicts the journal.
    #[error("inconsistent: {0}")]
    Inconsistent(String),
}

impl EngineError {
    /// Whether the next cycle may succeed without an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Adapter(e) => e.is_retryable(),
            EngineError::Store(e) => e.is_retryable(),
            EngineError::Crash(_) => true,
            EngineError::Plan(_) | EngineError::Inconsistent(_) => false,
        }
    }
}

/// What the engine needs from a chain's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Chain.
    pub chain: ChainId,
    /// Commission rate on rewards.
    pub commission: softstake_core::Rate,
    /// Per-asset eligibility minimum.
    pub min_eligible_balance: Amount,
    /// Buffer policy and validators (`remaining_today` is filled per cycle).
    pub policy: Policy,
    /// Per UTC day cap on value moved.
    pub max_per_day: Amount,
    /// Operations moving more than this wait for approval (0: none wait).
    pub approval_threshold: Amount,
    /// Plan only.
    pub dry_run: bool,
    /// Seconds between cycles (for withdrawal ETAs).
    pub cycle_secs: u64,
    /// The pool's books.
    pub books: softstake_config::BooksSettings,
    /// The treasury's advance line (0: none): withdrawals the buffer cannot
    /// cover are granted at once up to it (softstake_store's `advances`).
    pub advance_limit: Amount,
    /// Kept in custody for transaction fees: withdrawals are granted from
    /// the liquid balance less this, so the pool can always pay for the
    /// operations that refill the buffer.
    pub fee_reserve: Amount,
    /// The buffer target from observed withdrawals (None: the fixed
    /// `policy.target`).
    pub sizing: Option<softstake_planner::sizing::OutflowSizing>,
}

impl EngineConfig {
    /// From a validated chain section.
    pub fn from_chain_config(c: &ChainConfig) -> EngineConfig {
        EngineConfig {
            chain: c.chain,
            commission: c.commission,
            min_eligible_balance: c.min_eligible_balance,
            policy: Policy {
                target: c.buffer.target,
                band: c.buffer.band,
                min_operation: c.buffer.min_operation,
                validators: c
                    .validators
                    .iter()
                    .map(|v| ValidatorTarget {
                        address: v.address.clone(),
                        weight: v.weight,
                        cap: v.cap,
                    })
                    .collect(),
                max_per_operation: c.safety.max_per_operation,
                remaining_today: c.safety.max_per_day,
                marked: Default::default(),
                max_commission: c.safety.max_validator_commission,
            },
            max_per_day: c.safety.max_per_day,
            approval_threshold: c.safety.approval_threshold,
            dry_run: c.safety.dry_run,
            cycle_secs: c.interval_secs,
            books: c.books,
            advance_limit: c.buffer.advance_limit,
            fee_reserve: c.buffer.fee_reserve,
            sizing: c.buffer.sizing.clone(),
        }
    }
}

/// What one operation went through in this cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpEvent {
    /// Operation id.
    pub id: String,
    /// Operation kind name.
    pub kind: &'static str,
    /// What happened.
    pub event: OpEventKind,
    /// Detail (error text, tx id).
    pub detail: Option<String>,
}

/// What happened to an operation in a cycle (serialized in snake_case:
/// `journaled`, `awaiting_approval`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpEventKind {
    /// Journaled, about to be signed.
    Journaled,
    /// Above the approval threshold: waits for an operator.
    AwaitingApproval,
    /// The adapter refused to sign; nothing was sent.
    SignRefused,
    /// Signed and sent.
    Broadcast,
    /// The journaled bytes were sent again after a restart or a lost answer.
    Rebroadcast,
    /// Sending failed; the bytes stay journaled for the next reconcile.
    BroadcastError,
    /// Refused for its fee, signed again under the same sequence at the
    /// market's price (the earlier version kept in the journal) and sent.
    Replaced,
    /// Seen on chain but not final yet.
    Pending,
    /// Final and successful.
    Confirmed,
    /// Final and failed.
    Failed,
    /// Can never be included.
    Expired,
    /// Found on chain, sent by the custody account, not in the journal
    /// (a restored database): journaled as what the chain shows.
    Adopted,
}

impl OpEventKind {
    /// The stable name (logs, the API, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            OpEventKind::Journaled => "journaled",
            OpEventKind::AwaitingApproval => "awaiting_approval",
            OpEventKind::SignRefused => "sign_refused",
            OpEventKind::Broadcast => "broadcast",
            OpEventKind::Rebroadcast => "rebroadcast",
            OpEventKind::BroadcastError => "broadcast_error",
            OpEventKind::Replaced => "replaced",
            OpEventKind::Pending => "pending",
            OpEventKind::Confirmed => "confirmed",
            OpEventKind::Failed => "failed",
            OpEventKind::Expired => "expired",
            OpEventKind::Adopted => "adopted",
        }
    }
}

impl std::fmt::Display for OpEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with the stable name, for reports read as text.
impl PartialEq<&str> for OpEventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The steps of a cycle. Each runs and fails on its own: a failing step
/// never stops the steps that do not need its result (planning and
/// withdrawal grants need the pool state; nothing needs the rewards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Record rewards paid since the cursor.
    CollectRewards,
    /// Distribute recorded rewards.
    Distribute,
    /// Look up open operations on the chain.
    Reconcile,
    /// Read the pool's state from the chain.
    ReadPool,
    /// Book the pool's holdings and flows (the pool's books).
    Books,
    /// Plan and send operations.
    Plan,
    /// Grant queued withdrawals from the buffer.
    GrantWithdrawals,
}

impl Step {
    /// Stable name (metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CollectRewards => "collect_rewards",
            Step::Distribute => "distribute",
            Step::Reconcile => "reconcile",
            Step::ReadPool => "read_pool",
            Step::Books => "books",
            Step::Plan => "plan",
            Step::GrantWithdrawals => "grant_withdrawals",
        }
    }
}

/// A step that failed in a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepFailure {
    /// The step.
    pub step: Step,
    /// What happened.
    pub error: String,
    /// Whether a later cycle may succeed without an operator.
    pub retryable: bool,
    /// The failure is a reward dated ahead of our clock (a node's clock
    /// runs ahead).
    pub clock_ahead: bool,
    /// Failures of this step in a row, this one included.
    pub consecutive: u32,
}

/// Cycles a step sits out after `failures` failures in a row: 0, 1, 3,
/// then 7 (retried in the next cycle, then backing off, bounded).
pub fn step_backoff_cycles(failures: u32) -> u32 {
    match failures {
        0 | 1 => 0,
        2 => 1,
        3 => 3,
        _ => 7,
    }
}

#[derive(Debug, Default)]
struct StepBackoff {
    failures: u32,
    skip: u32,
}

type Backoffs = std::sync::Mutex<std::collections::HashMap<Step, StepBackoff>>;

fn lock_backoff(
    m: &Backoffs,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<Step, StepBackoff>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct PlanOutcome {
    plan: Option<Plan>,
    skipped: Option<String>,
    ops: Vec<OpEvent>,
}

/// What a cycle did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CycleReport {
    /// New rewards recorded.
    pub rewards_recorded: u64,
    /// Their total.
    pub rewards_amount: Amount,
    /// Distributions made.
    pub distributions: Vec<DistributionSummary>,
    /// Journal events.
    pub ops: Vec<OpEvent>,
    /// The plan, when one was made.
    pub plan: Option<Plan>,
    /// Why no plan was made, if none.
    pub plan_skipped: Option<String>,
    /// Withdrawal requests granted from the queue.
    pub withdrawals_granted: Vec<String>,
    /// Whether the chain was paused.
    pub paused: bool,
    /// The pool state the cycle planned from.
    pub pool: Option<PoolStateResponse>,
    /// The holdings snapshot the books booked from it.
    pub books: Option<softstake_store::Snapshot>,
    /// Why the books booked nothing this cycle although the pool was read:
    /// the chain's recent blocks can still be rolled back (a transaction
    /// of the pool's is shallower than the adapter's confirmation depth),
    /// so the snapshot waits until what it would book is final.
    pub books_waiting: Option<String>,
    /// Open incidents (undeclared outflows): nothing is signed while any.
    pub incidents_open: u64,
    /// Why the chain's rewards waited (bunker mode), when they did.
    pub bunker: Option<String>,
    /// Steps that failed (the others ran).
    pub failures: Vec<StepFailure>,
    /// Steps sat out this cycle because they are backing off.
    pub skipped: Vec<Step>,
}

/// What the books step did with a pool read.
enum Booked {
    /// A snapshot, and the operations adopted from the flows.
    Snapshot(Box<softstake_store::Snapshot>, Vec<OpEvent>),
    /// Nothing yet, and why (see [`Engine::book`]).
    Waiting(String),
}

/// One chain's engine. Cheap to rebuild: all state lives in the store and on
/// the chain, which is what makes a restart safe.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    adapter: Arc<dyn ChainAdapter>,
    cfg: EngineConfig,
    clock: Arc<dyn Clock>,
    faults: Arc<dyn Faults>,
    /// Operations whose retryable broadcast failure was already logged
    /// (log hygiene only: nothing is decided from it).
    quiet: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Per step: failures in a row and cycles left to sit out (scheduling
    /// only: nothing about money is decided from it).
    backoff: Arc<Backoffs>,
    /// Whether the books have compared the chain with the journal since
    /// this engine started (and adopted what the journal did not know):
    /// until then nothing is signed for the first time, since a restored
    /// database may hold as planned what the chain already has.
    compared: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("chain", &self.cfg.chain)
            .field("store", &self.store)
            .field("dry_run", &self.cfg.dry_run)
            .finish_non_exhaustive()
    }
}

const DAY: i64 = 86_400;

impl Engine {
    /// An engine for one chain.
    pub fn new(
        store: Store,
        adapter: Arc<dyn ChainAdapter>,
        cfg: EngineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        if adapter.chain() != cfg.chain {
            return Err(EngineError::Inconsistent(format!(
                "adapter is for {}, config for {}",
                adapter.chain(),
                cfg.chain
            )));
        }
        Ok(Engine {
            store,
            adapter,
            cfg,
            clock,
            faults: Arc::new(NoFaults),
            quiet: Arc::default(),
            backoff: Arc::default(),
            compared: Arc::default(),
        })
    }

    /// Replaces the fault injector (simulation).
    pub fn with_faults(mut self, faults: Arc<dyn Faults>) -> Engine {
        self.faults = faults;
        self
    }

    /// The chain.
    pub fn chain(&self) -> ChainId {
        self.cfg.chain
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The adapter.
    pub fn adapter(&self) -> &Arc<dyn ChainAdapter> {
        &self.adapter
    }

    /// The full cycle (module docs).
    pub async fn cycle(&self) -> Result<CycleReport, EngineError> {
        let mut report = CycleReport::default();
        // 1. Rewards, 2. distributions: each on its own.
        let collected = self
            .step(Step::CollectRewards, &mut report, self.collect_rewards())
            .await?;
        let rewards_current = collected.is_some();
        if let Some((n, total)) = collected {
            report.rewards_recorded = n;
            report.rewards_amount = total;
        }
        if let Some((d, bunker)) = self
            .step(Step::Distribute, &mut report, self.distribute_pending())
            .await?
        {
            report.distributions = d;
            report.bunker = bunker;
        }
        // Without knowing whether the chain is paused nothing may act.
        report.paused = self.store.is_paused(self.cfg.chain).await?;
        // 3. The journal against the chain.
        let compared_before = self.compared.load(std::sync::atomic::Ordering::SeqCst);
        if !report.paused
            && let Some(ops) = self
                .step(Step::Reconcile, &mut report, self.reconcile())
                .await?
        {
            report.ops = ops;
        }
        // 4. The pool as the chain shows it: planning and withdrawal
        // grants need it, so they wait for the next cycle without it.
        // The cycle's read is the one that observes losses (the others,
        // from the API or the CLI, consume nothing).
        let read = async {
            Ok::<_, EngineError>(
                self.adapter
                    .pool_state(PoolStateRequest::observing())
                    .await?,
            )
        };
        let Some(state) = self.step(Step::ReadPool, &mut report, read).await? else {
            return Ok(report);
        };
        // The books: holdings and the flows that explain them.
        match self
            .step(Step::Books, &mut report, self.book(&state, rewards_current))
            .await?
        {
            Some(Booked::Snapshot(s, adopted)) => {
                report.books = Some(*s);
                report.ops.extend(adopted);
            }
            Some(Booked::Waiting(why)) => {
                tracing::debug!(chain = %self.cfg.chain, %why, "books wait for final blocks");
                report.books_waiting = Some(why);
            }
            None => {}
        }
        // The first comparison since the start has run: what reconcile
        // held back (planned operations not signed yet) is signed now,
        // unless the comparison found the journal behind and dropped it.
        if !compared_before
            && !report.paused
            && self.compared.load(std::sync::atomic::Ordering::SeqCst)
            && let Some(ops) = self
                .step(Step::Reconcile, &mut report, self.reconcile())
                .await?
        {
            report
                .ops
                .extend(ops.into_iter().filter(|o| o.event != OpEventKind::Pending));
        }
        // An undeclared outflow holds signing until an operator books it.
        report.incidents_open = self.store.open_incidents(self.cfg.chain).await?;
        // 5. Plan and execute.
        let hold = if report.paused {
            Some("chain is paused: nothing is signed or sent".to_owned())
        } else if !self.compared.load(std::sync::atomic::Ordering::SeqCst) {
            Some("the chain has not been compared with the journal since the start (the books step has not run): nothing is signed".to_owned())
        } else if report.incidents_open > 0 {
            Some(format!(
                "{} open incident(s): an outflow nobody declared; nothing is signed until an operator books it (softstake books resolve)",
                report.incidents_open
            ))
        } else {
            None
        };
        if let Some(o) = self
            .step(Step::Plan, &mut report, self.plan_and_execute(&state, hold))
            .await?
        {
            report.plan = o.plan;
            report.plan_skipped = o.skipped;
            report.ops.extend(o.ops);
        }
        // 6. Withdrawal grants from the buffer.
        let grant = async {
            let spendable = self.spendable(&state).await?;
            Ok::<_, EngineError>(
                self.store
                    .promote_withdrawals(
                        self.cfg.chain,
                        spendable,
                        self.cfg.advance_limit,
                        self.clock.now(),
                    )
                    .await?,
            )
        };
        if let Some(granted) = self
            .step(Step::GrantWithdrawals, &mut report, grant)
            .await?
        {
            report.withdrawals_granted = granted;
        }
        report.pool = Some(state);
        Ok(report)
    }

    /// Runs one step of a cycle unless its backoff says to skip it this
    /// cycle. A failure is recorded in the report and backs the step off;
    /// an injected crash or a lost leadership (fenced write) ends the whole
    /// cycle, as they must.
    async fn step<T>(
        &self,
        step: Step,
        report: &mut CycleReport,
        fut: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<Option<T>, EngineError> {
        {
            let mut b = lock_backoff(&self.backoff);
            if let Some(s) = b.get_mut(&step)
                && s.skip > 0
            {
                s.skip -= 1;
                report.skipped.push(step);
                return Ok(None);
            }
        }
        match fut.await {
            Ok(v) => {
                lock_backoff(&self.backoff).remove(&step);
                Ok(Some(v))
            }
            Err(e @ (EngineError::Crash(_) | EngineError::Store(StoreError::Fenced(_)))) => Err(e),
            Err(e) => {
                let mut b = lock_backoff(&self.backoff);
                let s = b.entry(step).or_default();
                s.failures = s.failures.saturating_add(1);
                s.skip = step_backoff_cycles(s.failures);
                report.failures.push(StepFailure {
                    step,
                    retryable: e.is_retryable(),
                    clock_ahead: matches!(e, EngineError::Store(StoreError::FutureReward { .. })),
                    consecutive: s.failures,
                    error: e.to_string(),
                });
                Ok(None)
            }
        }
    }

    /// Books the observing read's holdings with the flows the adapter
    /// proves since the books' cursor (crates/store/src/books.rs), after
    /// adopting into the journal the operations among them it did not know.
    ///
    /// An adapter whose chain can still roll back the blocks the read saw
    /// (a pool transaction shallower than its confirmation depth) answers
    /// the flows with `TryLater`: nothing is booked and the cursor stays,
    /// since holdings that a rollback undoes would book as a residual
    /// (income nobody earned, or a loss nobody bore). It is not a failure:
    /// the step does not back off.
    async fn book(
        &self,
        state: &PoolStateResponse,
        rewards_current: bool,
    ) -> Result<Booked, EngineError> {
        let holdings = state
            .holdings()
            .ok_or_else(|| EngineError::Inconsistent("pool holdings overflow".into()))?;
        let cursor = self.store.flow_cursor(self.cfg.chain).await?;
        let flows = match self.adapter.flows_since(FlowsRequest { cursor }).await {
            Err(AdapterError::TryLater(why)) => return Ok(Booked::Waiting(why)),
            other => other?,
        };
        let adopted = self.adopt(&flows.flows).await?;
        self.faults.check(CrashPoint::BeforeBooks)?;
        let input = softstake_store::SnapshotInput {
            chain: self.cfg.chain,
            as_of: state.as_of,
            holdings,
            flows: &flows.flows,
            complete: flows.complete,
            flow_cursor: flows.next_cursor,
            losses: &state.losses,
            rewards_current,
            min_balance: self.cfg.min_eligible_balance,
            now: self.clock.now(),
        };
        let snapshot = self.store.book_snapshot(&input, &self.cfg.books).await?;
        self.compared
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(Booked::Snapshot(Box::new(snapshot), adopted))
    }

    /// The chain shows the custody account paid fees for transactions the
    /// journal never signed: after a database restore, operations sent
    /// after the backup. Each one the adapter recognises as its own
    /// staking operation is journaled as the chain shows it (confirmed,
    /// failed, or broadcast while pending, which holds planning until it
    /// settles), so nothing is planned twice and its fee books as the
    /// operation's. What it does not recognise stays unexplained: the
    /// books make it an incident and planning waits for an operator.
    async fn adopt(&self, flows: &[PoolFlow]) -> Result<Vec<OpEvent>, EngineError> {
        let chain = self.cfg.chain;
        let mut out = Vec::new();
        let fees: Vec<PoolFlow> = flows
            .iter()
            .filter(|f| f.kind == FlowKind::Fee)
            .cloned()
            .collect();
        if fees.is_empty() {
            return Ok(out);
        }
        let unknown = self.store.unknown_activity(chain, &fees).await?;
        for FoundTx {
            tx_id,
            operation: found,
        } in identify_unknown(self.adapter.as_ref(), &unknown).await?
        {
            let now = self.clock.now();
            // The transaction names the journaled operation it carries out:
            // complete that one.
            if let Some(id) = &found.operation_id
                && self.store.journal_get(id).await?.is_some()
            {
                if self
                    .store
                    .journal_found(id, &tx_id, &found.status, now)
                    .await?
                {
                    tracing::warn!(
                        %chain,
                        op = %id,
                        tx = %tx_id,
                        "found on chain an operation the journal held as not sent (a restored database?)"
                    );
                    out.push(event(
                        id,
                        found.kind.name(),
                        OpEventKind::Adopted,
                        Some(tx_id.clone()),
                    ));
                }
                continue;
            }
            if self
                .store
                .journal_adopt(chain, &tx_id, &found.kind, &found.status, now)
                .await?
            {
                tracing::warn!(
                    %chain,
                    tx = %tx_id,
                    kind = found.kind.name(),
                    "adopted an operation found on chain that the journal did not know (a restored database?)"
                );
                out.push(event(
                    &format!("found:{}:{}", chain.as_str(), tx_id),
                    found.kind.name(),
                    OpEventKind::Adopted,
                    Some(tx_id.clone()),
                ));
            }
        }
        if !out.is_empty() {
            // The journal was behind the chain: what it still holds as
            // planned was decided from that outdated view (and may be what
            // a lost signing already did). It is dropped; the planner plans
            // again from what the chain holds.
            for op in self.store.journal_open(chain).await? {
                if op.state == OpState::Planned {
                    self.store
                        .journal_finish(
                            &op.id,
                            OpState::Failed,
                            Some("superseded: the journal was behind the chain (operations found on chain were adopted); planned again from the chain"),
                            self.clock.now(),
                        )
                        .await?;
                    out.push(event(&op.id, op.kind.name(), OpEventKind::Failed, None));
                }
            }
        }
        Ok(out)
    }

    /// Plans from `state` and journals and sends the plan's operations,
    /// unless the chain is paused, an operation is still open or this is a
    /// dry run (`skipped` says why).
    async fn plan_and_execute(
        &self,
        state: &PoolStateResponse,
        hold: Option<String>,
    ) -> Result<PlanOutcome, EngineError> {
        let mut out = PlanOutcome::default();
        let open = self.store.journal_open(self.cfg.chain).await?;
        if let Some(why) = hold {
            out.skipped = Some(why);
        } else if let Some(op) = open.first() {
            out.skipped = Some(format!(
                "{} open operation(s), oldest {} is {}",
                open.len(),
                op.id,
                op.state.as_str()
            ));
        } else {
            let mut plan = self.plan_from(state).await?;
            if plan.ops.is_empty() {
                plan.ops
                    .extend(self.adapter.maintenance(state).into_iter().map(|m| {
                        softstake_planner::PlannedOp {
                            kind: m.kind,
                            reason: format!("housekeeping: {}", m.reason),
                        }
                    }));
            }
            if self.cfg.dry_run {
                out.skipped = Some("dry run: nothing journaled or sent".into());
            } else {
                out.ops = self.execute(&plan, state).await?;
            }
            out.plan = Some(plan);
        }
        Ok(out)
    }

    /// Records rewards paid since the stored cursor; returns how many were
    /// new and their total.
    pub async fn collect_rewards(&self) -> Result<(u64, Amount), EngineError> {
        let chain = self.cfg.chain;
        let cursor = self.store.reward_cursor(chain).await?;
        let resp = self
            .adapter
            .rewards_since(RewardsRequest {
                cursor: cursor.clone(),
            })
            .await?;
        let now = self.clock.now();
        let mut new = 0;
        let mut total = Amount::ZERO;
        for r in resp.rewards {
            if r.amount.is_zero() {
                continue; // nothing to distribute; the cursor moves past it
            }
            let rec = self
                .store
                .record_reward(
                    &NewReward {
                        chain,
                        key: r.key,
                        period: r.period,
                        amount: r.amount,
                        validator: r.validator,
                        kind: r.kind,
                        tx_hash: r.tx_hash,
                        epoch: r.epoch,
                    },
                    now,
                )
                .await?;
            if rec.created {
                new += 1;
                total = total.checked_add(r.amount).unwrap_or(Amount::MAX);
            }
        }
        // Paid in another denomination: kept for the treasury, never
        // distributed as the chain's coin (crates/store/src/foreign.rs).
        for f in &resp.foreign {
            if f.amount > 0 && self.store.record_foreign_reward(chain, f, now).await? {
                tracing::info!(chain = %chain, denom = %f.denom, amount = %f.amount, key = %f.key,
                    "reward paid in another denomination: kept for the treasury, not distributed");
            }
        }
        self.faults.check(CrashPoint::AfterRewards)?;
        if resp.next_cursor != cursor {
            self.store
                .set_reward_cursor(chain, resp.next_cursor.as_deref(), now)
                .await?;
        }
        Ok((new, total))
    }

    /// Distributes every undistributed reward of the chain, oldest first,
    /// unless the chain is in bunker mode (crates/store/src/losses.rs):
    /// then nothing, and why.
    pub async fn distribute_pending(
        &self,
    ) -> Result<(Vec<DistributionSummary>, Option<String>), EngineError> {
        let mut out = Vec::new();
        let bunker = self.store.bunker(self.cfg.chain).await?;
        if bunker.active {
            return Ok((out, Some(bunker.describe())));
        }
        // A loss booked under the `users` rule whose allocation a crash
        // interrupted is allocated before any credit is made.
        self.store
            .allocate_losses(
                self.cfg.chain,
                &self.cfg.books,
                self.cfg.min_eligible_balance,
                self.clock.now(),
            )
            .await?;
        for r in self
            .store
            .undistributed_rewards(Some(self.cfg.chain))
            .await?
        {
            let opts = DistributeOptions::with_min_balance(self.cfg.min_eligible_balance);
            match self
                .store
                .distribute(r.id, self.cfg.commission, &opts, self.clock.now())
                .await?
            {
                DistributeOutcome::Distributed(d) => out.push(d),
                DistributeOutcome::AlreadyDistributed(_) => {}
            }
        }
        Ok((out, None))
    }

    /// Computes the plan from fresh pool state without journaling anything
    /// (`softstake plan`).
    pub async fn plan(&self) -> Result<(PoolStateResponse, Plan), EngineError> {
        let state = self.adapter.pool_state(PoolStateRequest::default()).await?;
        let plan = self.plan_from(&state).await?;
        Ok((state, plan))
    }

    /// The plan for a given pool state.
    pub async fn plan_from(&self, state: &PoolStateResponse) -> Result<Plan, EngineError> {
        plan_for(&self.store, &self.cfg, state, self.clock.now()).await
    }

    /// Liquidity for withdrawal requests, from fresh pool state.
    pub async fn liquidity(&self) -> Result<Liquidity, EngineError> {
        let s = self.adapter.pool_state(PoolStateRequest::default()).await?;
        Ok(Liquidity {
            liquid: self.spendable(&s).await?,
            unbonding: s.unbonding,
            unbonding_delay_secs: s.limits.unbonding_delay_secs,
            cycle_secs: self.cfg.cycle_secs,
            advance_limit: self.cfg.advance_limit,
        })
    }

    /// The liquid balance minus what open delegations will take from it once
    /// included and the fee reserve: what withdrawals may be granted from.
    async fn spendable(&self, s: &PoolStateResponse) -> Result<Amount, EngineError> {
        let mut committed = Amount::ZERO;
        for op in self.store.journal_open(self.cfg.chain).await? {
            if let softstake_core::adapter::OperationKind::Delegate { amount, .. } = op.kind {
                committed = committed.checked_add(amount).unwrap_or(Amount::MAX);
            }
        }
        Ok(s.liquid
            .saturating_sub(committed)
            .saturating_sub(self.cfg.fee_reserve))
    }

    /// Journals and sends a plan's operations.
    async fn execute(
        &self,
        plan: &Plan,
        state: &PoolStateResponse,
    ) -> Result<Vec<OpEvent>, EngineError> {
        let mut events = Vec::new();
        let now = self.clock.now();
        for (i, p) in plan.ops.iter().enumerate() {
            let id = operation_id(self.cfg.chain, state.as_of, i, &p.kind);
            let needs_approval = !self.cfg.approval_threshold.is_zero()
                && p.kind.value_moved() > self.cfg.approval_threshold;
            self.store
                .journal_insert(
                    &NewOp {
                        id: id.clone(),
                        chain: self.cfg.chain,
                        kind: p.kind.clone(),
                        reason: p.reason.clone(),
                        needs_approval,
                    },
                    now,
                )
                .await?;
            if needs_approval {
                tracing::warn!(chain = %self.cfg.chain, op = %id, kind = p.kind.name(),
                    value = %p.kind.value_moved(), "operation above the approval threshold waits for `softstake approve`");
                events.push(event(
                    &id,
                    p.kind.name(),
                    OpEventKind::AwaitingApproval,
                    None,
                ));
                continue;
            }
            events.push(event(&id, p.kind.name(), OpEventKind::Journaled, None));
            self.faults.check(CrashPoint::AfterJournal)?;
            let op = self
                .store
                .journal_get(&id)
                .await?
                .ok_or_else(|| EngineError::Inconsistent(format!("operation {id} vanished")))?;
            events.push(self.sign_and_send(&op).await?);
        }
        Ok(events)
    }

    /// `planned -> signed -> broadcast`.
    async fn sign_and_send(&self, op: &JournalOp) -> Result<OpEvent, EngineError> {
        let now = self.clock.now();
        let signed = match self
            .adapter
            .build_and_sign(BuildRequest {
                operation_id: op.id.clone(),
                kind: op.kind.clone(),
            })
            .await
        {
            Ok(s) => s,
            Err(e) if e.is_retryable() => return Err(e.into()),
            Err(e) => {
                // Nothing was signed or sent: the operation fails and the
                // next plan starts from the chain's state.
                let msg = e.to_string();
                self.store
                    .journal_finish(&op.id, OpState::Failed, Some(&msg), now)
                    .await?;
                tracing::warn!(chain = %self.cfg.chain, op = %op.id, error = %msg, "signing refused");
                return Ok(event(
                    &op.id,
                    op.kind.name(),
                    OpEventKind::SignRefused,
                    Some(msg),
                ));
            }
        };
        self.faults.check(CrashPoint::AfterSign)?;
        self.store
            .journal_signed(
                &op.id,
                &signed.bytes,
                &signed.tx_id,
                signed.valid_until,
                now,
            )
            .await?;
        self.faults.check(CrashPoint::AfterStore)?;
        self.send(op, signed, OpState::Signed).await
    }

    /// Broadcasts journaled bytes; marks `broadcast` when they were `signed`.
    async fn send(
        &self,
        op: &JournalOp,
        signed: SignedOperation,
        from: OpState,
    ) -> Result<OpEvent, EngineError> {
        let tx_id = signed.tx_id.clone();
        match self.adapter.broadcast(BroadcastRequest { signed }).await {
            Ok(r) if r.tx_id != tx_id => Err(EngineError::Inconsistent(format!(
                "operation {}: node reported tx id {} for journaled {}",
                op.id, r.tx_id, tx_id
            ))),
            Ok(_) => {
                self.faults.check(CrashPoint::AfterBroadcast)?;
                if from == OpState::Signed {
                    self.store
                        .journal_broadcast(&op.id, self.clock.now())
                        .await?;
                }
                tracing::info!(chain = %self.cfg.chain, op = %op.id, tx = %tx_id, "broadcast");
                Ok(event(
                    &op.id,
                    op.kind.name(),
                    OpEventKind::Broadcast,
                    Some(tx_id),
                ))
            }
            // The node holds nothing of it, refused for its fee: a new
            // version at the market's price, under the same sequence.
            Err(AdapterError::Underpriced(why)) => {
                let previous = SignedOperation {
                    bytes: Vec::new(),
                    tx_id,
                    valid_until: None,
                };
                self.resign(op, previous, &why).await
            }
            // Whether or not the node took it, the journal keeps the bytes
            // and the next reconcile finds out from the chain.
            Err(e) => {
                // A refusal that passes by itself (the chain's one operation
                // per source and block, a rate limit) is retried every cycle:
                // logged once per operation, then quietly.
                let first = e.is_retryable()
                    && self
                        .quiet
                        .lock()
                        .map(|mut q| q.insert(op.id.clone()))
                        .unwrap_or(true);
                if !e.is_retryable() || first {
                    tracing::warn!(chain = %self.cfg.chain, op = %op.id, error = %e, "broadcast failed; will reconcile");
                } else {
                    tracing::debug!(chain = %self.cfg.chain, op = %op.id, error = %e, "broadcast failed again; will reconcile");
                }
                Ok(event(
                    &op.id,
                    op.kind.name(),
                    OpEventKind::BroadcastError,
                    Some(e.to_string()),
                ))
            }
        }
    }

    /// After the chain refused `previous` for its fee: asks the adapter
    /// for a version under the same sequence at today's price, journals it
    /// next to the refused one (which stays, with its bytes: whichever the
    /// chain includes is the operation's), then sends it. When no better
    /// version can be signed now, the refused one stays the operation's
    /// and reconcile sends it again until the chain proves it expired.
    async fn resign(
        &self,
        op: &JournalOp,
        previous: SignedOperation,
        why: &str,
    ) -> Result<OpEvent, EngineError> {
        let name = op.kind.name();
        // The journal's bytes, not the caller's copy.
        let current =
            self.store.journal_get(&op.id).await?.ok_or_else(|| {
                EngineError::Inconsistent(format!("operation {} vanished", op.id))
            })?;
        let (Some(bytes), Some(tx_id)) = (current.signed_bytes, current.tx_id) else {
            return Err(EngineError::Inconsistent(format!(
                "operation {} was refused for its fee without journaled bytes",
                op.id
            )));
        };
        if tx_id != previous.tx_id {
            return Err(EngineError::Inconsistent(format!(
                "operation {}: refused {} but the journal holds {tx_id}",
                op.id, previous.tx_id
            )));
        }
        let previous = SignedOperation {
            bytes,
            tx_id,
            valid_until: current.valid_until,
        };
        let next = match self
            .adapter
            .replace(ReplaceRequest {
                operation_id: op.id.clone(),
                kind: op.kind.clone(),
                previous: previous.clone(),
            })
            .await
        {
            Ok(n) if n.tx_id != previous.tx_id => n,
            Ok(_) => {
                return Ok(event(
                    &op.id,
                    name,
                    OpEventKind::BroadcastError,
                    Some(format!(
                        "refused for its fee ({why}); signed again, the same transaction"
                    )),
                ));
            }
            Err(e) => {
                tracing::debug!(chain = %self.cfg.chain, op = %op.id, error = %e, "refused for its fee; not signed again");
                return Ok(event(
                    &op.id,
                    name,
                    OpEventKind::BroadcastError,
                    Some(format!(
                        "refused for its fee ({why}); not signed again: {e}"
                    )),
                ));
            }
        };
        self.faults.check(CrashPoint::AfterSign)?;
        let reason = format!(
            "refused for its fee ({why}): signed again as {} under the same sequence",
            next.tx_id
        );
        if !self
            .store
            .journal_replace(
                &op.id,
                &previous.tx_id,
                &next.bytes,
                &next.tx_id,
                next.valid_until,
                &reason,
                self.clock.now(),
            )
            .await?
        {
            return Ok(event(
                &op.id,
                name,
                OpEventKind::Pending,
                Some("moved on while it was signed again; the next reconcile looks".into()),
            ));
        }
        self.faults.check(CrashPoint::AfterStore)?;
        tracing::info!(chain = %self.cfg.chain, op = %op.id, replaced = %previous.tx_id, tx = %next.tx_id, %why, "signed again at the market's price");
        let new_id = next.tx_id.clone();
        match self
            .adapter
            .broadcast(BroadcastRequest { signed: next })
            .await
        {
            Ok(r) if r.tx_id != new_id => Err(EngineError::Inconsistent(format!(
                "operation {}: node reported tx id {} for journaled {}",
                op.id, r.tx_id, new_id
            ))),
            Ok(_) => {
                self.faults.check(CrashPoint::AfterBroadcast)?;
                self.store
                    .journal_broadcast(&op.id, self.clock.now())
                    .await?;
                Ok(event(&op.id, name, OpEventKind::Replaced, Some(new_id)))
            }
            Err(e) => Ok(event(
                &op.id,
                name,
                OpEventKind::BroadcastError,
                Some(format!("signed again as {new_id}, not sent yet: {e}")),
            )),
        }
    }

    /// An earlier version of `op` that the chain included, if any (only
    /// operations signed again have earlier versions).
    async fn landed_attempt(
        &self,
        op: &JournalOp,
    ) -> Result<Option<(String, TxStatus)>, EngineError> {
        for a in self.store.journal_attempts(&op.id).await? {
            let r = self
                .adapter
                .lookup(LookupRequest {
                    tx_id: a.tx_id.clone(),
                    signed_bytes: Some(a.signed_bytes),
                })
                .await?;
            if matches!(
                r.status,
                TxStatus::Confirmed { .. } | TxStatus::Failed { .. }
            ) {
                return Ok(Some((a.tx_id, r.status)));
            }
        }
        Ok(None)
    }

    /// Applies the recovery rule to every open operation.
    pub async fn reconcile(&self) -> Result<Vec<OpEvent>, EngineError> {
        let mut events = Vec::new();
        for op in self.store.journal_open(self.cfg.chain).await? {
            let (status, head) = match (&op.tx_id, op.state) {
                (Some(tx), OpState::Signed | OpState::Broadcast) => {
                    let r = self
                        .adapter
                        .lookup(LookupRequest {
                            tx_id: tx.clone(),
                            signed_bytes: op.signed_bytes.clone(),
                        })
                        .await?;
                    (Some(r.status), r.head_time)
                }
                _ => (None, self.clock.now()),
            };
            // Signed again: an earlier version may be the one included.
            if matches!(op.state, OpState::Signed | OpState::Broadcast)
                && !matches!(
                    status,
                    Some(TxStatus::Confirmed { .. } | TxStatus::Failed { .. })
                )
                && let Some((tx, landed)) = self.landed_attempt(&op).await?
            {
                self.faults.check(CrashPoint::AfterLookup)?;
                let now = self.clock.now();
                if self.store.journal_landed(&op.id, &tx, &landed, now).await? {
                    let kind = if matches!(landed, TxStatus::Confirmed { .. }) {
                        OpEventKind::Confirmed
                    } else {
                        OpEventKind::Failed
                    };
                    events.push(event(&op.id, op.kind.name(), kind, Some(tx)));
                }
                continue;
            }
            self.faults.check(CrashPoint::AfterLookup)?;
            let now = self.clock.now();
            let name = op.kind.name();
            let mut action = recovery_action(&op, status.as_ref(), head);
            let mut expiry = "not included before it expired";
            if action == Recovery::Rebroadcast
                && op.signed_bytes.is_none()
                && op.id.starts_with("found:")
            {
                // Adopted while pending, gone since (dropped or reorged
                // out): nothing of ours to send again.
                action = Recovery::Expire;
                expiry = "found on chain while pending, gone since; softstake never held its bytes";
            }
            match action {
                Recovery::AwaitApproval | Recovery::Wait => {
                    if op.state != OpState::AwaitingApproval {
                        events.push(event(&op.id, name, OpEventKind::Pending, None));
                    }
                }
                // Priced out while the node holds it: a version under the
                // same sequence at today's price (the held one stays in
                // the journal; whichever lands is the operation's).
                Recovery::Replace(why) => {
                    events.push(self.resign(&op, journaled(&op)?, &why).await?);
                }
                Recovery::Sign if !self.compared.load(std::sync::atomic::Ordering::SeqCst) => {
                    events.push(event(
                        &op.id,
                        name,
                        OpEventKind::Pending,
                        Some("not signed until the chain has been compared with the journal since the start".into()),
                    ));
                }
                Recovery::Sign => events.push(self.sign_and_send(&op).await?),
                Recovery::Confirm => {
                    self.store
                        .journal_finish(&op.id, OpState::Confirmed, None, now)
                        .await?;
                    events.push(event(
                        &op.id,
                        name,
                        OpEventKind::Confirmed,
                        op.tx_id.clone(),
                    ));
                }
                Recovery::Fail(reason) => {
                    self.store
                        .journal_finish(&op.id, OpState::Failed, Some(&reason), now)
                        .await?;
                    tracing::warn!(chain = %self.cfg.chain, op = %op.id, %reason, "operation failed on chain");
                    events.push(event(&op.id, name, OpEventKind::Failed, Some(reason)));
                }
                Recovery::Expire => {
                    self.store
                        .journal_finish(&op.id, OpState::Expired, Some(expiry), now)
                        .await?;
                    events.push(event(&op.id, name, OpEventKind::Expired, None));
                }
                Recovery::Rebroadcast => {
                    let signed = journaled(&op)?;
                    let mut e = self.send(&op, signed, op.state).await?;
                    if e.event == OpEventKind::Broadcast {
                        e.event = OpEventKind::Rebroadcast;
                    }
                    events.push(e);
                }
            }
        }
        Ok(events)
    }
}

/// What a chain did after the ledger's last snapshot that the ledger cannot
/// explain (`softstake verify-restore`): asks the adapter for its flows
/// after the stored cursor and books nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreCheck {
    /// Chain.
    pub chain: softstake_core::ChainId,
    /// Whether the adapter proves every flow (otherwise nothing can be
    /// said: compare the chain with `softstake plan`).
    pub complete: bool,
    /// Flows since the cursor.
    pub flows: usize,
    /// Of them, what the ledger does not know: fees of transactions the
    /// journal did not sign and transfers nobody declared.
    pub unknown: Vec<softstake_core::adapter::PoolFlow>,
    /// Of the unknown transactions, the adapter's own staking operations:
    /// the daemon adopts them into the journal at its next cycle.
    pub adoptable: Vec<FoundTx>,
    /// The unknown flows that are not an adoptable operation's: what an
    /// operator must explain (declare, or book once the books hold them).
    pub unexplained: Vec<softstake_core::adapter::PoolFlow>,
}

/// An operation found on chain (see [`RestoreCheck::adoptable`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundTx {
    /// Its transaction.
    pub tx_id: String,
    /// What the chain shows it did, and where it stands.
    pub operation: softstake_core::adapter::FoundOperation,
}

/// Runs the check for one chain (see [`RestoreCheck`]).
pub async fn verify_restore(
    store: &Store,
    adapter: &dyn ChainAdapter,
) -> Result<RestoreCheck, EngineError> {
    let chain = adapter.chain();
    let cursor = store.flow_cursor(chain).await?;
    let flows = adapter.flows_since(FlowsRequest { cursor }).await?;
    let unknown = store.unknown_activity(chain, &flows.flows).await?;
    let adoptable = identify_unknown(adapter, &unknown).await?;
    let unexplained = unknown
        .iter()
        .filter(|f| !adoptable.iter().any(|a| a.tx_id == f.tx_id))
        .cloned()
        .collect();
    Ok(RestoreCheck {
        chain,
        complete: flows.complete,
        flows: flows.flows.len(),
        unknown,
        adoptable,
        unexplained,
    })
}

/// Of the flows the ledger does not know, the transactions whose fee the
/// custody account paid that the adapter recognises as its own operations,
/// still on chain: each once.
async fn identify_unknown(
    adapter: &dyn ChainAdapter,
    unknown: &[PoolFlow],
) -> Result<Vec<FoundTx>, EngineError> {
    let mut found: Vec<FoundTx> = Vec::new();
    let mut asked = std::collections::BTreeSet::new();
    for f in unknown.iter().filter(|f| f.kind == FlowKind::Fee) {
        if !asked.insert(f.tx_id.as_str()) {
            continue;
        }
        let r = adapter
            .identify(IdentifyRequest {
                tx_id: f.tx_id.clone(),
            })
            .await?;
        if let Some(operation) = r.found
            && !matches!(operation.status, TxStatus::NotFound | TxStatus::Expired)
        {
            found.push(FoundTx {
                tx_id: f.tx_id.clone(),
                operation,
            });
        }
    }
    Ok(found)
}

/// The plan for `state` under `cfg`, with liabilities, withdrawals owed and
/// the day's remaining cap read from the store. Journals nothing (also used
/// by `softstake plan --state FILE`, which needs no adapter).
pub async fn plan_for(
    store: &Store,
    cfg: &EngineConfig,
    state: &PoolStateResponse,
    now: Timestamp,
) -> Result<Plan, EngineError> {
    if state.chain != cfg.chain {
        return Err(EngineError::Inconsistent(format!(
            "pool state is for {}, config for {}",
            state.chain, cfg.chain
        )));
    }
    let liabilities = store.liabilities(cfg.chain.asset(), now).await?;
    let owed = store.withdrawals_owed(cfg.chain).await?;
    let day_start = Timestamp::from_unix(now.unix().div_euclid(DAY) * DAY);
    let moved = store.journal_moved_since(cfg.chain, day_start).await?;
    let mut policy = cfg.policy.clone();
    policy.remaining_today = cfg.max_per_day.saturating_sub(moved);
    // The target from the exchange's own withdrawals, when configured:
    // windows as long as the chain's unbonding delay.
    let sized = match &cfg.sizing {
        Some(sz) => {
            let window = state.limits.unbonding_delay_secs;
            let since = now.plus_secs(
                -i64::try_from(sz.horizon_secs.saturating_add(window)).unwrap_or(i64::MAX),
            );
            let history = store.withdrawal_history(cfg.chain, since).await?;
            let s = softstake_planner::sizing::size_buffer(&history, window, sz, liabilities, now);
            policy.target = s.target;
            Some(s)
        }
        None => None,
    };
    policy.marked = store
        .validator_marks(cfg.chain, true)
        .await?
        .into_iter()
        .map(|m| m.validator)
        .collect();
    let mut plan = softstake_planner::plan(state, liabilities, owed, &policy, now)?;
    plan.sizing = sized;
    Ok(plan)
}

/// The signed version the journal holds for a `signed` or `broadcast`
/// operation.
fn journaled(op: &JournalOp) -> Result<SignedOperation, EngineError> {
    let (Some(bytes), Some(tx_id)) = (op.signed_bytes.clone(), op.tx_id.clone()) else {
        return Err(EngineError::Inconsistent(format!(
            "operation {} is {} without journaled bytes",
            op.id,
            op.state.as_str()
        )));
    };
    Ok(SignedOperation {
        bytes,
        tx_id,
        valid_until: op.valid_until,
    })
}
fn event(id: &str, kind: &'static str, what: OpEventKind, detail: Option<String>) -> OpEvent {
    OpEvent {
        id: id.to_owned(),
        kind,
        event: what,
        detail,
    }
}

/// Deterministic operation id: the same plan step from the same pool state
/// gets the same id, so a retried execution does not journal it twice.
pub fn operation_id(
    chain: ChainId,
    as_of: Timestamp,
    index: usize,
    kind: &softstake_core::adapter::OperationKind,
) -> String {
    let mut h = Sha256::new();
    h.update(chain.as_str().as_bytes());
    h.update(as_of.unix().to_be_bytes());
    h.update((index as u64).to_be_bytes());
    h.update(serde_json::to_vec(kind).unwrap_or_default());
    let d = h.finalize();
    format!(
        "{}-{}-{}",
        chain.as_str(),
        as_of.unix(),
        hex::encode(d.get(..8).unwrap_or_default())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use softstake_core::adapter::OperationKind;

    #[test]
    fn operation_ids_are_deterministic_and_distinguish_steps() {
        let k = OperationKind::Delegate {
            validator: "v".into(),
            amount: Amount::from_base(5),
        };
        let t = Timestamp::from_unix(1_000);
        let a = operation_id(ChainId::Cosmos, t, 0, &k);
        assert_eq!(a, operation_id(ChainId::Cosmos, t, 0, &k));
        assert!(a.starts_with("cosmos-1000-"));
        assert_ne!(a, operation_id(ChainId::Cosmos, t, 1, &k));
        assert_ne!(
            a,
            operation_id(ChainId::Cosmos, Timestamp::from_unix(1_001), 0, &k)
        );
        let k2 = OperationKind::Delegate {
            validator: "v".into(),
            amount: Amount::from_base(6),
        };
        assert_ne!(a, operation_id(ChainId::Cosmos, t, 0, &k2));
    }
}
