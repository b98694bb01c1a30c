//! Seeded simulation of the whole loop on SQLite and PostgreSQL: users
//! deposit and withdraw, the engine collects rewards, distributes, plans and
//! executes through the journal against `SimChain`, while RPC calls fail,
//! transactions are dropped, broadcast responses are lost and the process
//! crashes at every journal step. Time is simulated, so a seed takes
//! milliseconds.
//!
//! The pool's books run in every cycle: the exchange declares its top-ups
//! (sometimes only after they landed) and payouts, while strangers send
//! coins nobody declared (suspense, then classified), a thief takes some
//! (an incident, which holds signing until booked), income arrives that
//! nobody announces, a reward event is missed, and a spike trips the
//! sanity bound. After every cycle the books must balance to the base unit
//! against the chain, and at the end every residual must have been booked
//! exactly once, across the crashes.
//!
//! Half the seeds lose the database: a backup is taken at one step and
//! restored a few steps later, while the chain went on. The daemon
//! restarts on the restored ledger; the exchange sends again what it sent
//! since (its balance updates, declarations and the withdrawals it still
//! waits for: each idempotent by its key) and pays each request once; the
//! operator books again what it had booked. Then no credit may reach the
//! exchange twice or differently under one key, none may be lost, every
//! distribution made again has the digest it had, and no operation is
//! carried out twice on chain: what the lost journal had sent is found on
//! chain and adopted.
//!
//! Two in five seeds that keep their database have a treasury advance
//! line (5% to 60% of what users hold) and a bank run: several users ask
//! for everything in one step. Then no request queues while nobody is
//! ahead and the line has room for what the buffer lacks; the treasury
//! fronts exactly that; the line never passes its limit; every advance is
//! repaid from custody once the unbonding it started completes, exactly
//! what was fronted, declared as principal, with the books balancing.
//!
//! `SOFTSTAKE_SIM_SEEDS=N` sets the number of seeds (default 200 per
//! database, to keep CI within its time; run 1,000 before a release);
//! `SOFTSTAKE_SIM_SEED=S` replays one seed. A failing seed prints itself.

use rust_decimal::Decimal;
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Rate, Timestamp};
use softstake_engine::{Engine, EngineConfig, EngineError, Faults, NoFaults};
use softstake_planner::{Policy, ValidatorTarget};
use softstake_store::{
    BalanceUpdate, Declaration, Direction, Purpose, Resolution, Store, WithdrawalRequest,
};
use softstake_testkit::{CrashFaults, FaultRates, Rng, SimChain, SimParams};
use softstake_tests::{TestStore, clear_tables, raw_exec_pooled};
use std::collections::BTreeMap;
use std::sync::Arc;

const T0: i64 = 1_767_225_600; // 2026-01-01
const CHAIN: ChainId = ChainId::Cosmos;

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SOFTSTAKE_SIM_SEED") {
        return vec![s.parse().expect("SOFTSTAKE_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("SOFTSTAKE_SIM_SEEDS")
        .ok()
        .map_or(200, |v| v.parse().expect("SOFTSTAKE_SIM_SEEDS is a number"));
    (0..n).collect()
}

/// What one seed did, to show the faults were really exercised.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    crashes: u64,
    rpc_errors: u64,
    dropped: u64,
    lost: u64,
    confirmed: u64,
    expired: u64,
    queued: u64,
    granted_at_once: u64,
    distributions: u64,
    suspense: u64,
    incidents: u64,
    held: u64,
    reconciled: u64,
    losses_recognized: u64,
    restores: u64,
    adopted: u64,
    superseded: u64,
    redistributed: u64,
    /// Seeds with a treasury advance line, and what it did.
    bank_runs: u64,
    fronted: u64,
    repaid: u64,
    queued_past_line: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.crashes += o.crashes;
        self.rpc_errors += o.rpc_errors;
        self.dropped += o.dropped;
        self.lost += o.lost;
        self.confirmed += o.confirmed;
        self.expired += o.expired;
        self.queued += o.queued;
        self.granted_at_once += o.granted_at_once;
        self.losses_recognized += o.losses_recognized;
        self.distributions += o.distributions;
        self.suspense += o.suspense;
        self.incidents += o.incidents;
        self.held += o.held;
        self.reconciled += o.reconciled;
        self.restores += o.restores;
        self.adopted += o.adopted;
        self.superseded += o.superseded;
        self.redistributed += o.redistributed;
        self.bank_runs += o.bank_runs;
        self.fronted += o.fronted;
        self.repaid += o.repaid;
        self.queued_past_line += o.queued_past_line;
    }
}

struct Queued {
    amount: Amount,
    eta: Timestamp,
}

/// The exchange's side of the outbox: it pages by position and applies
/// each credit key once.
#[derive(Default)]
struct Exchange {
    cursor: i64,
    applied: BTreeMap<String, (String, u128)>,
}

/// One thing the exchange sent.
enum Sent {
    Balance(BalanceUpdate),
    Request(String),
}

/// What the exchange and the operator keep outside softstake's database,
/// and send again after a restore.
#[derive(Default)]
struct Outside {
    /// Every balance update and withdrawal request sent, in order.
    log: Vec<Sent>,
    /// Every transfer declared.
    declared: Vec<Declaration>,
    /// Every withdrawal request sent.
    requests: BTreeMap<String, WithdrawalRequest>,
    /// Requests paid out (a payout is keyed by its request: never twice).
    paid: std::collections::BTreeSet<String>,
    /// How the operator resolved each undeclared transfer, by tx id.
    resolved: BTreeMap<String, Resolution>,
    /// Distribution digests by reward key, as the exchange saw them before
    /// a restore.
    digests: BTreeMap<String, String>,
}

struct World {
    seed: u64,
    store: Store,
    sim: SimChain,
    clock: ManualClock,
    cfg: EngineConfig,
    faults: Arc<dyn Faults>,
    engine: Engine,
    balances: BTreeMap<String, u128>,
    queued: BTreeMap<String, Queued>,
    amounts: BTreeMap<String, Amount>,
    deposited: u128,
    paid_out: u128,
    events: u64,
    epoch_secs: i64,
    distribution_ids: Vec<i64>,
    stats: Stats,
    /// Transfers the exchange declares only after the next cycle.
    late: Vec<Declaration>,
    /// Undeclared inflows and outflows the operator resolves after the
    /// next cycle: (tx id, amount, inflow).
    undeclared: Vec<(String, Amount, bool)>,
    /// Stranger's coins the operator classified as income.
    income_classified: u128,
    /// A cycle booked the first snapshot.
    books_opened: bool,
    /// Strangers' coins to send back.
    returns: Vec<Amount>,
    /// Cycles that could not plan because the chain could not be read
    /// (failing or backing off) or an incident held signing: ETAs are
    /// promised for a working chain, so each such cycle excuses one tick.
    degraded_cycles: i64,
    tick: i64,
    exchange: Exchange,
    outside: Outside,
    /// This seed loses its database: income the books recognise from
    /// residuals is left out (see the module's note).
    restoring: bool,
    /// The treasury's advance line: what it fronted and was repaid, in
    /// base units (the books never see the fronted part leave custody).
    fronted_total: u128,
    repaid_total: u128,
}

type Fail = String;

impl World {
    fn restart(&mut self) {
        self.stats.crashes += 1;
        self.engine = Engine::new(
            self.store.clone(),
            Arc::new(self.sim.clone()) as Arc<dyn ChainAdapter>,
            self.cfg.clone(),
            Arc::new(self.clock.clone()),
        )
        .expect("engine")
        .with_faults(self.faults.clone());
    }

    async fn set_balance(&mut self, user: &str, balance: u128) -> Result<(), Fail> {
        self.events += 1;
        let u = BalanceUpdate {
            event_id: format!("e{}", self.events),
            user_id: user.into(),
            asset: CHAIN.asset().into(),
            balance: Amount::from_base(balance),
            effective_at: self.clock.now(),
        };
        self.store
            .ingest_balance_updates(std::slice::from_ref(&u), self.clock.now())
            .await
            .map_err(|e| format!("ingest: {e}"))?;
        self.outside.log.push(Sent::Balance(u));
        self.balances.insert(user.into(), balance);
        Ok(())
    }

    fn declaration(tx_id: String, direction: Direction, amount: Amount) -> Declaration {
        Declaration {
            chain: CHAIN,
            tx_id,
            direction,
            amount,
            purpose: Purpose::Principal,
            note: None,
        }
    }

    async fn declare(&mut self, d: &Declaration) -> Result<(), Fail> {
        self.store
            .declare_transfer(d, self.clock.now())
            .await
            .map(|_| ())
            .map_err(|e| format!("declare {}: {e}", d.tx_id))?;
        self.outside.declared.push(d.clone());
        Ok(())
    }

    async fn pay(&mut self, request_id: &str) -> Result<(), Fail> {
        if self.outside.paid.contains(request_id) {
            // Paid before the database was lost: granted again, completed,
            // never paid twice.
            return self
                .store
                .complete_withdrawal(request_id, self.clock.now())
                .await
                .map_err(|e| format!("complete {request_id}: {e}"));
        }
        // What the treasury fronted it pays from its own wallet; custody
        // pays the rest.
        let fronted = self.fronted(request_id).await?;
        self.fronted_total += fronted.base();
        self.stats.fronted += u64::from(!fronted.is_zero());
        let amount = self.amounts[request_id]
            .checked_sub(fronted)
            .ok_or("fronted more than the request")?;
        if !amount.is_zero() {
            let tx = self
                .sim
                .pay_out(amount)
                .map_err(|e| format!("granted withdrawal {request_id} was not covered: {e}"))?;
            // The exchange declares what it sends as it sends it.
            self.declare(&Self::declaration(tx, Direction::Out, amount))
                .await?;
            self.paid_out += amount.base();
        }
        self.outside.paid.insert(request_id.to_owned());
        self.store
            .complete_withdrawal(request_id, self.clock.now())
            .await
            .map_err(|e| format!("complete {request_id}: {e}"))
    }

    /// What the treasury fronted for a request (0 when none).
    async fn fronted(&self, request_id: &str) -> Result<Amount, Fail> {
        if self.cfg.advance_limit.is_zero() {
            return Ok(Amount::ZERO);
        }
        let line = self
            .store
            .advance_line(CHAIN, u32::MAX, self.clock.now())
            .await
            .map_err(|e| format!("advance line: {e}"))?;
        Ok(line
            .advances
            .iter()
            .find(|a| a.request_id == request_id)
            .map_or(Amount::ZERO, |a| a.amount))
    }

    /// The treasury is repaid every advance that is due, by a payment out
    /// of custody (declared by softstake as principal), sometimes a cycle
    /// late; the line never passes its limit.
    async fn repay(&mut self, rng: &mut Rng) -> Result<(), Fail> {
        if self.cfg.advance_limit.is_zero() {
            return Ok(());
        }
        let now = self.clock.now();
        let line = self
            .store
            .advance_line(CHAIN, u32::MAX, now)
            .await
            .map_err(|e| format!("advance line: {e}"))?;
        if line.outstanding > self.cfg.advance_limit {
            return Err(format!(
                "advances outstanding {} over the limit {}",
                line.outstanding, self.cfg.advance_limit
            ));
        }
        for a in line.advances.iter().filter(|a| a.status == "due") {
            if !rng.chance(700_000) {
                continue;
            }
            // Set aside when it became due; a theft since may have taken
            // the coins (the books hold an incident): the treasury waits.
            let Ok(tx) = self.sim.pay_out(a.amount) else {
                continue;
            };
            self.paid_out += a.amount.base();
            self.store
                .repay_advance(CHAIN, a.id, &tx, now)
                .await
                .map_err(|e| format!("repay advance {}: {e}", a.id))?;
            self.repaid_total += a.amount.base();
            self.stats.repaid += 1;
        }
        Ok(())
    }

    /// What the operator and the exchange do after a cycle: late
    /// declarations, classifying suspense, booking incidents, confirming
    /// held income.
    async fn back_office(&mut self, rng: &mut Rng) -> Result<(), Fail> {
        for d in std::mem::take(&mut self.late) {
            self.declare(&d).await?;
        }
        self.repay(rng).await?;
        let open = self
            .store
            .flows(CHAIN, true, None, u32::MAX)
            .await
            .map_err(|e| format!("flows: {e}"))?;
        for f in open {
            if let Some(how) = self.outside.resolved.get(&f.flow.tx_id).copied() {
                // Booked before the database was lost: booked the same way
                // again (the coins went back once; income is keyed by the
                // chain's flow, so it is the same reward).
                self.store
                    .resolve_flow(CHAIN, f.id, how, "sim operator, again", self.clock.now())
                    .await
                    .map_err(|e| format!("resolve {} again: {e}", f.id))?;
                continue;
            }
            let Some(pos) = self
                .undeclared
                .iter()
                .position(|(tx, _, _)| *tx == f.flow.tx_id)
            else {
                return Err(format!(
                    "flow {} ({}) is open but nobody sent it undeclared",
                    f.id, f.class
                ));
            };
            let (_, amount, inflow) = self.undeclared.remove(pos);
            if inflow {
                self.stats.suspense += 1;
            }
            let how = if !inflow {
                Resolution::Loss
            } else if rng.chance(500_000) && !self.restoring {
                self.income_classified += amount.base();
                Resolution::Income
            } else {
                Resolution::Returned
            };
            self.store
                .resolve_flow(CHAIN, f.id, how, "sim operator", self.clock.now())
                .await
                .map_err(|e| format!("resolve {}: {e}", f.id))?;
            self.outside.resolved.insert(f.flow.tx_id.clone(), how);
            if how == Resolution::Returned {
                self.returns.push(amount);
            }
        }
        // Strangers' coins go back, declared as they are sent, once the
        // liquid balance allows.
        for amount in std::mem::take(&mut self.returns) {
            match self.sim.pay_out(amount) {
                Ok(tx) => {
                    self.paid_out += amount.base();
                    self.declare(&Self::declaration(tx, Direction::Out, amount))
                        .await?;
                }
                Err(_) => self.returns.push(amount),
            }
        }
        let latest = self
            .store
            .snapshots(CHAIN, None, 1)
            .await
            .map_err(|e| format!("books: {e}"))?;
        if latest.first().is_some_and(|s| !s.held.is_zero()) {
            self.stats.held += 1;
            self.store
                .confirm_residual(CHAIN, "sim operator checked the spike", self.clock.now())
                .await
                .map_err(|e| format!("confirm: {e}"))?;
        }
        Ok(())
    }

    async fn cycle(&mut self) -> Result<(), Fail> {
        let sim_before = self.sim.total() - self.sim.claimable();
        let r = self.engine.cycle().await;
        if std::env::var("SOFTSTAKE_SIM_TRACE").is_ok() {
            eprintln!(
                "--- seed {} at {}: queued {:?}",
                self.seed,
                self.clock.now(),
                self.queued
                    .iter()
                    .map(|(k, q)| (k.clone(), q.amount.base(), q.eta.to_string()))
                    .collect::<Vec<_>>()
            );
            match &r {
                Ok(r) => eprintln!(
                    "{}",
                    serde_json::to_string(&(
                        &r.ops,
                        &r.plan,
                        &r.plan_skipped,
                        &r.withdrawals_granted,
                        &r.failures,
                        &r.skipped
                    ))
                    .unwrap_or_default()
                ),
                Err(e) => eprintln!("cycle error: {e}"),
            }
        }
        match r {
            Ok(r) => {
                // A step may fail on an injected RPC error (the others
                // run); a failure no retry can fix is a finding.
                if let Some(f) = r.failures.iter().find(|f| !f.retryable) {
                    return Err(format!(
                        "cycle step {} failed: {}",
                        f.step.as_str(),
                        f.error
                    ));
                }
                self.stats.confirmed +=
                    r.ops.iter().filter(|o| o.event == "confirmed").count() as u64;
                self.stats.expired += r.ops.iter().filter(|o| o.event == "expired").count() as u64;
                self.stats.adopted += r.ops.iter().filter(|o| o.event == "adopted").count() as u64;
                self.distribution_ids
                    .extend(r.distributions.iter().map(|d| d.id));
                if let Some(b) = &r.books {
                    self.books_opened = true;
                    // The books hold what the chain holds, to the unit.
                    if b.total.base() != sim_before {
                        return Err(format!(
                            "snapshot {} books {} but the pool held {sim_before}",
                            b.id, b.total
                        ));
                    }
                    if b.reconciled_reward_id.is_some() {
                        self.stats.reconciled += 1;
                    }
                }
                let unread = r
                    .failures
                    .iter()
                    .map(|f| f.step)
                    .chain(r.skipped.iter().copied())
                    .any(|s| s == softstake_engine::Step::ReadPool);
                // Nothing is signed until the chain has been compared with
                // the journal since the start; a cycle whose comparison
                // failed is held too.
                let uncompared = r
                    .plan_skipped
                    .as_deref()
                    .is_some_and(|w| w.contains("has not been compared"));
                if unread || uncompared || r.incidents_open > 0 {
                    self.degraded_cycles += 1;
                }
                if r.incidents_open > 0 {
                    self.stats.incidents += 1;
                    if r.ops.iter().any(|o| o.event == "journaled") {
                        return Err("an operation was journaled while an incident was open".into());
                    }
                }
                for id in r.withdrawals_granted {
                    self.queued.remove(&id);
                    self.pay(&id).await?;
                }
                self.pull().await
            }
            Err(EngineError::Crash(_)) => {
                self.restart();
                self.pull().await
            }
            Err(e) if e.is_retryable() => Ok(()),
            Err(e) => Err(format!("cycle failed: {e}")),
        }
    }

    async fn request(&mut self, n: u64, user: &str, amount: u128) -> Result<(), Fail> {
        let liq = match self.engine.liquidity().await {
            Ok(l) => l,
            Err(e) if e.is_retryable() => return Ok(()), // the exchange retries later
            Err(e) => return Err(format!("liquidity: {e}")),
        };
        let id = format!("w{n}");
        // Before: what the buffer and the line could cover (granted
        // requests are paid at once, so only due advances are set aside).
        let line = if self.cfg.advance_limit.is_zero() {
            None
        } else {
            Some(
                self.store
                    .advance_line(CHAIN, 0, self.clock.now())
                    .await
                    .map_err(|e| format!("advance line: {e}"))?,
            )
        };
        let queue_empty = self.queued.is_empty();
        let req = WithdrawalRequest {
            request_id: id.clone(),
            user_id: user.into(),
            chain: CHAIN,
            amount: Amount::from_base(amount),
            // Kept with the request: sent again after a restore.
            requested_at: Some(self.clock.now()),
        };
        let d = self
            .store
            .request_withdrawal(&req, &liq, self.clock.now())
            .await
            .map_err(|e| format!("request {id}: {e}"))?;
        self.amounts.insert(id.clone(), req.amount);
        self.outside.requests.insert(id.clone(), req.clone());
        self.outside.log.push(Sent::Request(id.clone()));
        let bal = self.balances[user] - amount;
        self.set_balance(user, bal).await?;
        match d.status.as_str() {
            "granted" => {
                self.stats.granted_at_once += 1;
                if let Some(line) = &line {
                    // The treasury fronts exactly what the buffer lacks.
                    let free = liq.liquid.saturating_sub(line.due).base();
                    let want = amount.saturating_sub(free);
                    let got = d.advanced.map_or(0, |a| a.base());
                    if got != want {
                        return Err(format!(
                            "{id} of {amount} with {free} free: fronted {got}, not {want}"
                        ));
                    }
                }
                self.pay(&id).await
            }
            "queued" => {
                self.stats.queued += 1;
                if let Some(line) = &line {
                    let free = liq.liquid.saturating_sub(line.due);
                    let room = self.cfg.advance_limit.saturating_sub(line.outstanding);
                    if queue_empty && amount.saturating_sub(free.base()) <= room.base() {
                        return Err(format!(
                            "{id} of {amount} queued with nobody ahead, {free} free and {room} of the advance line left"
                        ));
                    }
                    self.stats.queued_past_line += 1;
                }
                let eta = d.eta.ok_or("queued without an ETA")?;
                self.queued.insert(
                    id,
                    Queued {
                        amount: req.amount,
                        eta,
                    },
                );
                Ok(())
            }
            other => Err(format!("request {id}: unexpected status {other}")),
        }
    }

    /// The exchange pulls the outbox: each key is applied once, and a key
    /// seen again must say the same (user, amount).
    async fn pull(&mut self) -> Result<(), Fail> {
        loop {
            let page = self
                .store
                .outbox(self.exchange.cursor, 500)
                .await
                .map_err(|e| format!("outbox: {e}"))?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            self.exchange.cursor = last.position;
            for c in page {
                let now = (c.user_id.clone(), c.amount.base());
                match self.exchange.applied.get(&c.key) {
                    Some(was) if *was != now => {
                        return Err(format!(
                            "credit {} reached the exchange again as {now:?}, first as {was:?}",
                            c.key
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.exchange.applied.insert(c.key, now);
                    }
                }
            }
        }
    }

    /// The database is restored from `backup`'s copy; softstake restarts
    /// on it. The exchange and the operator send again what they sent
    /// since: the whole log, every key idempotent.
    async fn restore(&mut self) -> Result<(), Fail> {
        self.pull().await?;
        // What the exchange knows of the distributions it was sent.
        for (key, digest) in distribution_digests(&self.store).await? {
            self.outside.digests.insert(key, digest);
        }
        restore_tables(&self.store).await;
        self.stats.restores += 1;
        self.restart();
        self.stats.crashes -= 1;
        let now = self.clock.now();
        for d in &self.outside.declared {
            self.store
                .declare_transfer(d, now)
                .await
                .map_err(|e| format!("declare {} again after the restore: {e}", d.tx_id))?;
        }
        // Balance updates and requests in the order they were sent; of
        // the requests, those the exchange still waits for (it was told
        // they are queued), same request ids.
        let log = std::mem::take(&mut self.outside.log);
        let mut batch = Vec::new();
        for sent in &log {
            match sent {
                Sent::Balance(u) => batch.push(u.clone()),
                Sent::Request(id) => {
                    self.ingest_again(&mut batch).await?;
                    if self.queued.contains_key(id) {
                        self.request_again(id).await?;
                    }
                }
            }
        }
        self.ingest_again(&mut batch).await?;
        self.outside.log = log;
        // What the lost database had granted and the exchange paid, the
        // restored one may still hold queued: the exchange completes it.
        for id in &self.outside.paid {
            let open = self
                .store
                .withdrawal_status(id)
                .await
                .map_err(|e| format!("status {id}: {e}"))?
                .is_some_and(|(s, _)| s == "queued" || s == "granted");
            if open {
                self.store
                    .complete_withdrawal(id, now)
                    .await
                    .map_err(|e| format!("complete {id} again after the restore: {e}"))?;
            }
        }
        Ok(())
    }

    async fn ingest_again(&self, batch: &mut Vec<BalanceUpdate>) -> Result<(), Fail> {
        for chunk in batch.chunks(500) {
            self.store
                .ingest_balance_updates(chunk, self.clock.now())
                .await
                .map_err(|e| format!("ingest again after the restore: {e}"))?;
        }
        batch.clear();
        Ok(())
    }

    async fn request_again(&mut self, id: &str) -> Result<(), Fail> {
        let req = self.outside.requests[id].clone();
        let mut liq = None;
        for _ in 0..20 {
            match self.engine.liquidity().await {
                Ok(l) => {
                    liq = Some(l);
                    break;
                }
                Err(e) if e.is_retryable() => {}
                Err(e) => return Err(format!("liquidity: {e}")),
            }
        }
        let liq = liq.ok_or("liquidity kept failing")?;
        let d = self
            .store
            .request_withdrawal(&req, &liq, self.clock.now())
            .await
            .map_err(|e| format!("request {id} again after the restore: {e}"))?;
        match d.status.as_str() {
            "granted" => {
                self.queued.remove(id);
                self.pay(id).await
            }
            "queued" => {
                let eta = d.eta.ok_or("queued without an ETA")?;
                if let Some(q) = self.queued.get_mut(id) {
                    q.eta = q.eta.max(eta);
                }
                Ok(())
            }
            other => Err(format!("request {id} again: unexpected status {other}")),
        }
    }

    fn check_etas(&self) -> Result<(), Fail> {
        let now = self.clock.now();
        for (id, q) in &self.queued {
            let excused = self.degraded_cycles * self.tick;
            if now > q.eta.plus_secs(self.epoch_secs + excused) {
                return Err(format!(
                    "queued withdrawal {id} of {} not covered by its ETA {} plus one epoch and {excused} s the chain could not be read or was held (now {now})",
                    q.amount, q.eta
                ));
            }
        }
        Ok(())
    }
}

/// The ledger's tables, those that refer to others first.
const TABLES: [&str; 18] = [
    "loss_nettings",
    "loss_allocations",
    "credits",
    "distributions",
    "residual_confirmations",
    "bunker_actions",
    "validator_marks",
    "pool_losses",
    "pool_flows",
    "pool_snapshots",
    "transfer_declarations",
    "rewards",
    "balance_updates",
    "advances",
    "withdrawals",
    "operation_attempts",
    "operations",
    "chain_state",
];

/// Tables whose `id` a sequence hands out.
const WITH_IDS: [&str; 12] = [
    "advances",
    "pool_losses",
    "bunker_actions",
    "validator_marks",
    "credits",
    "distributions",
    "pool_flows",
    "pool_snapshots",
    "transfer_declarations",
    "rewards",
    "balance_updates",
    "withdrawals",
];

/// A copy of the ledger inside its own database (`bk_` tables): what a
/// backup holds. (The real tools, `VACUUM INTO` and pg_dump/pg_restore,
/// are exercised in restore.rs and restore_eth.rs; here a seed must cost
/// milliseconds.)
async fn backup_tables(store: &Store) {
    for t in TABLES {
        raw_exec_pooled(store, &format!("DROP TABLE IF EXISTS bk_{t}")).await;
        raw_exec_pooled(store, &format!("CREATE TABLE bk_{t} AS SELECT * FROM {t}")).await;
    }
    if store.sqlite_pool().is_some() {
        raw_exec_pooled(store, "DROP TABLE IF EXISTS bk_sqlite_sequence").await;
        raw_exec_pooled(
            store,
            "CREATE TABLE bk_sqlite_sequence AS SELECT name, seq FROM sqlite_sequence",
        )
        .await;
    }
}

/// Puts the copy back, sequences included, as a restore does: the ids
/// handed out since the backup are handed out again (on PostgreSQL from
/// the highest restored id, the most a restore can reuse).
async fn restore_tables(store: &Store) {
    for t in TABLES {
        raw_exec_pooled(store, &format!("DELETE FROM {t}")).await;
    }
    let pg = store.pg_pool().is_some();
    for t in TABLES.iter().rev() {
        let overriding = if pg { "OVERRIDING SYSTEM VALUE " } else { "" };
        raw_exec_pooled(
            store,
            &format!("INSERT INTO {t} {overriding}SELECT * FROM bk_{t}"),
        )
        .await;
    }
    if pg {
        for t in WITH_IDS {
            raw_exec_pooled(
                store,
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
                ),
            )
            .await;
        }
    } else {
        raw_exec_pooled(store, "DELETE FROM sqlite_sequence").await;
        raw_exec_pooled(
            store,
            "INSERT INTO sqlite_sequence (name, seq) SELECT name, seq FROM bk_sqlite_sequence",
        )
        .await;
    }
}

/// Every distribution's digest, by its reward's key.
async fn distribution_digests(store: &Store) -> Result<BTreeMap<String, String>, Fail> {
    let keys: BTreeMap<i64, String> = all_rewards(store)
        .await?
        .into_iter()
        .map(|r| (r.id, r.reward.key))
        .collect();
    Ok(store
        .list_distributions(Some(CHAIN.asset()), None, u32::MAX)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|d| keys.get(&d.reward_id).map(|k| (k.clone(), d.digest)))
        .collect())
}

async fn reset(store: &Store) {
    clear_tables(store, &TABLES).await;
}

async fn run_seed(store: Store, seed: u64) -> Result<Stats, Fail> {
    reset(&store).await;
    let mut rng = Rng::new(seed);
    // Whether and when this seed loses its database (its own stream, so
    // the other draws stay what they were).
    let mut lose = Rng::new(seed ^ 0x5eed_dead_beef);
    // Whether this seed has a treasury advance line and a bank run (its
    // own stream too). Seeds that lose their database have no line: an
    // advance granted after the backup is lost with it (the README says
    // what is missing).
    let mut bank = Rng::new(seed ^ 0xba2c_2a11_0bad_f00d);
    let restore_at = if lose.chance(500_000) {
        let backup = usize::try_from(lose.range(2, 36)).unwrap_or(2);
        Some((
            backup,
            backup + usize::try_from(lose.range(1, 9)).unwrap_or(1),
        ))
    } else {
        None
    };
    let block = 60;
    let epoch_secs = i64::try_from(rng.range(1, 6)).unwrap_or(1) * 3_600;
    let delay = epoch_secs * i64::try_from(rng.range(1, 5)).unwrap_or(1);
    let tick = epoch_secs / 4;
    let validators: Vec<String> = (0..rng.range(1, 3)).map(|i| format!("val{i}")).collect();
    let params = SimParams {
        chain: CHAIN,
        block_secs: block,
        epoch_secs,
        unbonding_delay_secs: delay,
        min_delegation: Amount::from_base(u128::from(rng.range(1, 1_000))),
        max_unbonding_entries: if rng.chance(500_000) { Some(7) } else { None },
        reward_ppm_per_epoch: u32::try_from(rng.range(50, 500)).unwrap_or(100),
        // A restored journal finds what it lost by the fees the custody
        // account paid; every real chain charges one.
        fee: Amount::from_base(u128::from(rng.range(0, 50)).max(u128::from(restore_at.is_some()))),
        validity_secs: if rng.chance(800_000) {
            Some(block * i64::try_from(rng.range(2, 10)).unwrap_or(2))
        } else {
            None
        },
        validators: validators.clone(),
    };
    let fee_max = params.fee.base();
    let clock = ManualClock::new(Timestamp::from_unix(T0));
    // Users and their opening balances, all in custody.
    let n_users = rng.range(3, 12);
    let mut opening = BTreeMap::new();
    for u in 0..n_users {
        opening.insert(
            format!("user{u}"),
            u128::from(rng.range(10_000, 10_000_000)),
        );
    }
    let total: u128 = opening.values().sum();
    let bank_run = restore_at.is_none() && bank.chance(400_000);
    let (advance_limit, run_at) = if bank_run {
        (
            total * u128::from(bank.range(5, 60)) / 100,
            usize::try_from(bank.range(2, 40)).unwrap_or(2),
        )
    } else {
        (0, usize::MAX)
    };
    let sim = SimChain::new(seed, params, clock.clone(), Amount::from_base(total));
    // Half the seeds that lose their database run on a chain whose
    // transactions carry no journal id.
    sim.set_memo(lose.chance(500_000));
    sim.set_faults(FaultRates {
        rpc_error_ppm: 20_000,
        drop_tx_ppm: 50_000,
        lost_response_ppm: 50_000,
    });
    let crash: Arc<dyn Faults> = Arc::new(CrashFaults::new(seed, 20_000));
    let cfg = EngineConfig {
        chain: CHAIN,
        commission: Rate::new(Decimal::new(
            i64::try_from(rng.range(0, 25)).unwrap_or(0),
            2,
        ))
        .expect("rate"),
        min_eligible_balance: Amount::ZERO,
        policy: Policy {
            target: Rate::new(Decimal::new(20, 2)).expect("rate"),
            band: Rate::new(Decimal::new(5, 2)).expect("rate"),
            min_operation: Amount::from_base(1_000),
            validators: validators
                .iter()
                .map(|v| ValidatorTarget {
                    address: v.clone(),
                    weight: u32::try_from(rng.range(1, 5)).unwrap_or(1),
                    cap: Rate::ONE,
                })
                .collect(),
            max_per_operation: Amount::from_base(u128::from(u64::MAX)),
            remaining_today: Amount::ZERO,
            marked: Default::default(),
            max_commission: None,
        },
        max_per_day: Amount::from_base(u128::from(u64::MAX)),
        approval_threshold: Amount::ZERO,
        dry_run: false,
        cycle_secs: u64::try_from(tick).unwrap_or(0),
        books: softstake_config::BooksSettings::default(),
        advance_limit: Amount::from_base(advance_limit),
        // What twenty transactions cost at most: a grant never takes the
        // fees the unstaking that repays the treasury needs.
        fee_reserve: Amount::from_base(fee_max * 20),
        sizing: None,
    };
    let engine = Engine::new(
        store.clone(),
        Arc::new(sim.clone()) as Arc<dyn ChainAdapter>,
        cfg.clone(),
        Arc::new(clock.clone()),
    )
    .map_err(|e| e.to_string())?
    .with_faults(crash.clone());
    let mut w = World {
        seed,
        store,
        sim,
        clock,
        cfg,
        faults: crash,
        engine,
        balances: BTreeMap::new(),
        queued: BTreeMap::new(),
        amounts: BTreeMap::new(),
        deposited: total,
        paid_out: 0,
        events: 0,
        epoch_secs,
        distribution_ids: Vec::new(),
        stats: Stats::default(),
        late: Vec::new(),
        undeclared: Vec::new(),
        income_classified: 0,
        books_opened: false,
        returns: Vec::new(),
        degraded_cycles: 0,
        tick,
        exchange: Exchange::default(),
        outside: Outside::default(),
        restoring: restore_at.is_some(),
        fronted_total: 0,
        repaid_total: 0,
    };
    w.stats.bank_runs = u64::from(bank_run);
    for (u, b) in &opening {
        w.set_balance(u, *b).await?;
    }
    let users: Vec<String> = opening.keys().cloned().collect();
    let mut requests = 0u64;
    // 12 epochs of activity.
    for step in 0..48 {
        if let Some((backup, restore)) = restore_at {
            let trace = std::env::var("SOFTSTAKE_SIM_TRACE").is_ok();
            if step == backup {
                if trace {
                    eprintln!("--- backup at {}", w.clock.now());
                }
                backup_tables(&w.store).await;
            }
            if step == restore {
                if trace {
                    eprintln!("--- restore at {}", w.clock.now());
                }
                w.restore().await?;
            }
        }
        if rng.chance(400_000) {
            let u = &users[rng.index(users.len())];
            let x = u128::from(rng.range(1_000, 1_000_000));
            let tx = w.sim.deposit(Amount::from_base(x));
            w.deposited += x;
            // Declared at once, or only after the books saw it land.
            let d = World::declaration(tx, Direction::In, Amount::from_base(x));
            if rng.chance(700_000) {
                w.declare(&d).await?;
            } else {
                w.late.push(d);
            }
            let b = w.balances[u] + x;
            w.set_balance(u, b).await?;
        }
        // What a hostile or careless world does to the custody accounts,
        // once the books are open (the first snapshot is the opening
        // balance: whatever came before it is in it).
        let opened = w.books_opened;
        if opened && rng.chance(50_000) {
            // A stranger's payment: suspense until classified.
            let x = Amount::from_base(u128::from(rng.range(1, 100_000)));
            let tx = w.sim.deposit(x);
            w.deposited += x.base();
            w.undeclared.push((tx, x, true));
        }
        if opened && rng.chance(20_000) {
            // A theft: an incident that holds signing until booked.
            let x = Amount::from_base(u128::from(rng.range(1, 100)));
            if let Ok(tx) = w.sim.pay_out(x) {
                w.paid_out += x.base();
                w.undeclared.push((tx, x, false));
            }
        }
        // Income nobody announces is recognised from the books' residuals,
        // which depend on when snapshots were taken: after a restore it
        // cannot be recognised into the same rewards, so seeds that lose
        // their database leave it out (the README says what is missing).
        let residual_income = !w.restoring;
        if opened && rng.chance(100_000) && residual_income {
            // Income nobody announces (a tip, MEV).
            w.sim
                .pay_unannounced(Amount::from_base(u128::from(rng.range(1, 10_000))));
        }
        if opened && rng.chance(30_000) && residual_income {
            // A spike: far above a day's yield, held until confirmed.
            let x = w.sim.total() / 20 + 1;
            w.sim.pay_unannounced(Amount::from_base(x));
        }
        if opened && rng.chance(50_000) && residual_income {
            w.sim.miss_reward_events(1);
        }
        if opened && rng.chance(40_000) {
            // A loss nobody reports (a slashing the adapter misses): the
            // books recognise it from the fall once it persists.
            w.sim
                .lose_silently(Amount::from_base(u128::from(rng.range(1, 5_000))));
        }
        if step == run_at {
            // A bank run: several users ask for everything at once.
            for _ in 0..bank.range(2, 6) {
                let u = users[bank.index(users.len())].clone();
                let bal = w.balances[&u];
                if bal > 0 {
                    requests += 1;
                    w.request(requests, &u, bal).await?;
                }
            }
        }
        if rng.chance(300_000) {
            let u = users[rng.index(users.len())].clone();
            let bal = u64::try_from(w.balances[&u]).unwrap_or(u64::MAX);
            if bal > 0 {
                // Sometimes everything, to overrun the buffer.
                let amount = if rng.chance(300_000) {
                    bal
                } else {
                    rng.range(1, bal)
                };
                requests += 1;
                w.request(requests, &u, u128::from(amount)).await?;
            }
        }
        w.cycle().await?;
        w.back_office(&mut rng).await?;
        w.check_etas()?;
        w.sim.advance(tick);
    }
    // Settle: faults off, run until the journal is empty and the queue served.
    w.sim.set_faults(FaultRates::default());
    w.faults = Arc::new(NoFaults);
    w.restart();
    w.stats.crashes -= 1;
    let mut settled = false;
    for _ in 0..((delay / tick) + 24) {
        w.cycle().await?;
        w.back_office(&mut rng).await?;
        w.check_etas()?;
        let open = w
            .store
            .journal_open(CHAIN)
            .await
            .map_err(|e| e.to_string())?;
        let owed_to_treasury = w
            .store
            .advance_line(CHAIN, 0, w.clock.now())
            .await
            .map_err(|e| e.to_string())?
            .outstanding;
        if open.is_empty()
            && w.queued.is_empty()
            && w.sim.mempool_len() == 0
            && owed_to_treasury.is_zero()
        {
            settled = true;
            break;
        }
        w.sim.advance(tick);
    }
    if !settled {
        let line = w
            .store
            .advance_line(CHAIN, u32::MAX, w.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        let open = w
            .store
            .journal_open(CHAIN)
            .await
            .map_err(|e| e.to_string())?;
        return Err(format!(
            "did not settle: {} operations open, {} withdrawals queued, {} mempool, advances {} (due {}): {}",
            open.len(),
            w.queued.len(),
            w.sim.mempool_len(),
            line.outstanding,
            line.due,
            serde_json::to_string(&line.advances).unwrap_or_default()
        ));
    }
    // Every advance was repaid exactly what was fronted, once.
    if w.repaid_total != w.fronted_total {
        return Err(format!(
            "the treasury fronted {} and was repaid {}",
            w.fronted_total, w.repaid_total
        ));
    }
    // More cycles collect and distribute the last claim, and let the
    // books recognise the last residual (two snapshots) and distribute it.
    let mut quiet = false;
    for _ in 0..16 {
        w.cycle().await?;
        w.back_office(&mut rng).await?;
        // A payout or a coin sent back after the cycle's snapshot is
        // booked by the next cycle.
        let booked = w
            .store
            .flows(CHAIN, false, None, u32::MAX)
            .await
            .map_err(|e| e.to_string())?
            .len();
        let moved = w.sim.flows().len() != booked;
        let books = w
            .store
            .books(CHAIN, &w.cfg.books, w.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        let pending = w
            .store
            .undistributed_rewards(Some(CHAIN))
            .await
            .map_err(|e| e.to_string())?;
        if !moved
            && books
                .snapshot
                .is_some_and(|s| s.unrecognized == 0 && s.held.is_zero())
            && pending.is_empty()
            && books.suspense_open == 0
            && books.incidents_open == 0
            && w.returns.is_empty()
        {
            quiet = true;
            break;
        }
        w.sim.advance(tick);
    }
    if !quiet {
        let books = w
            .store
            .books(CHAIN, &w.cfg.books, w.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        let snaps = snapshots(&w.store).await?;
        let trail: Vec<String> = snaps
            .iter()
            .filter(|s| s.residual != 0 || !s.reconciled.is_zero() || !s.held.is_zero())
            .map(|s| {
                format!(
                    "#{} at {}: residual {} recognised {} held {} unrecognised {} booked {}",
                    s.id,
                    s.as_of,
                    s.residual,
                    s.reconciled,
                    s.held,
                    s.unrecognized,
                    serde_json::to_string(&s.booked).unwrap_or_default()
                )
            })
            .collect();
        return Err(format!(
            "the books did not settle (residuals: {}): {} returns pending, {}",
            trail.join("; "),
            w.returns.len(),
            serde_json::to_string(&books).unwrap_or_default()
        ));
    }
    check_books(&w).await?;

    check_exchange(&mut w).await?;
    let audit = w.sim.audit();
    for (op, txs) in &audit.broadcasts {
        // A restore may sign again an operation the lost journal had
        // signed but the chain never got (dropped): applied once is what
        // counts then.
        if txs.len() > 1 && !w.restoring {
            return Err(format!(
                "operation {op} was broadcast with {} different signed transactions",
                txs.len()
            ));
        }
    }
    for (op, n) in &audit.applied {
        if *n > 1 {
            return Err(format!("operation {op} was applied {n} times"));
        }
    }
    // The journal agrees with the chain: confirmed exactly when applied.
    let ops = w
        .store
        .journal_list(CHAIN, None, u32::MAX)
        .await
        .map_err(|e| e.to_string())?;
    // Which operation a transaction carried out (the memo).
    let carried: BTreeMap<&str, &str> = audit
        .broadcasts
        .iter()
        .flat_map(|(op, txs)| txs.iter().map(move |t| (t.as_str(), op.as_str())))
        .collect();
    let mut known = std::collections::BTreeSet::new();
    // An operation found on chain is the one its transaction carried.
    let mut found = BTreeMap::new();
    for op in ops.iter().filter(|o| o.id.starts_with("found:")) {
        let id = op
            .tx_id
            .as_deref()
            .and_then(|t| carried.get(t).copied())
            .ok_or_else(|| format!("adopted {} carries no operation of the chain", op.id))?;
        if found.insert(id, op.id.as_str()).is_some() {
            return Err(format!("operation {id} was adopted twice"));
        }
    }
    for op in &ops {
        let id = match found.get(op.id.as_str()) {
            // The restored journal still planned what the lost one had
            // sent (the chain named no journal id): it was dropped when the
            // chain showed the journal behind; the adopted one is the record.
            Some(adopted) => {
                if op.state != softstake_store::OpState::Failed
                    || !op.error.as_deref().unwrap_or("").starts_with("superseded")
                {
                    return Err(format!(
                        "operation {} was adopted as {adopted} but is still {}",
                        op.id,
                        op.state.as_str()
                    ));
                }
                continue;
            }
            None if op.id.starts_with("found:") => op
                .tx_id
                .as_deref()
                .and_then(|t| carried.get(t).copied())
                .unwrap_or_default(),
            None => op.id.as_str(),
        };
        if !known.insert(id.to_owned()) {
            return Err(format!("operation {id} is journaled twice"));
        }
        let applied = audit.applied.get(id).copied().unwrap_or(0);
        let confirmed = op.state == softstake_store::OpState::Confirmed;
        if confirmed != (applied == 1) {
            return Err(format!(
                "journal says operation {} is {}, the chain applied it {applied} time(s)",
                op.id,
                op.state.as_str()
            ));
        }
    }
    // The journal knows everything the chain did for the pool.
    if let Some(op) = audit.applied.keys().find(|op| !known.contains(*op)) {
        return Err(format!(
            "the chain carried out operation {op}, which the journal does not know"
        ));
    }
    if audit.deposited != w.deposited || audit.paid_out != w.paid_out {
        return Err(format!(
            "custody flows differ: sim saw {} in / {} out, users moved {} / {}",
            audit.deposited, audit.paid_out, w.deposited, w.paid_out
        ));
    }
    let expected = audit.deposited + audit.rewards_accrued + audit.unannounced
        - audit.paid_out
        - audit.fees
        - audit.silent_losses;
    if w.sim.total() != expected {
        return Err(format!(
            "funds created or lost: pool holds {}, expected {expected} (in {} + rewards {} - out {} - fees {})",
            w.sim.total(),
            audit.deposited,
            audit.rewards_accrued,
            audit.paid_out,
            audit.fees
        ));
    }
    // Every reward the chain paid was recorded once and distributed exactly.
    let observed: u128 = w
        .sim
        .observed_rewards()
        .iter()
        .map(|r| r.amount.base())
        .sum();
    let pending = w
        .store
        .undistributed_rewards(Some(CHAIN))
        .await
        .map_err(|e| e.to_string())?;
    if !pending.is_empty() {
        return Err(format!("{} rewards left undistributed", pending.len()));
    }
    let mut distributed = 0u128;
    let all = w
        .store
        .list_distributions(Some(CHAIN.asset()), None, u32::MAX)
        .await
        .map_err(|e| e.to_string())?;
    for d in &all {
        let v = w
            .store
            .verify_distribution(d.id)
            .await
            .map_err(|e| e.to_string())?;
        if !v.ok {
            return Err(format!(
                "distribution {} does not verify: {:?}",
                d.id, v.mismatches
            ));
        }
        distributed += d.gross.base();
    }
    // Income nobody announced reached users too, once: the tips, the
    // claims whose event was missed, and the strangers' coins classified as
    // income; nothing else (no suspense, no principal).
    let reconciled: u128 = all_rewards(&w.store)
        .await?
        .iter()
        .filter(|r| r.reward.kind == softstake_core::adapter::RewardKind::Reconciled)
        .map(|r| r.reward.amount.base())
        .sum();
    let unannounced = audit.unannounced + audit.unevidenced + w.income_classified;
    // Losses nobody reported were recognised from the falls, less what a
    // later rise reversed. A loss and a tip in the same span net out, so
    // with losses the books match the chain on the net.
    let snaps = snapshots(&w.store).await?;
    let recognised_losses: u128 = snaps.iter().map(|s| s.booked.loss_recognized.base()).sum();
    let recovered: u128 = snaps.iter().map(|s| s.booked.loss_recovered.base()).sum();
    if audit.silent_losses == 0 && (reconciled != unannounced || recognised_losses != 0) {
        return Err(format!(
            "income nobody announced was {unannounced} (tips {}, missed events {}, classified {}), the books recognised {reconciled} and losses {recognised_losses}",
            audit.unannounced, audit.unevidenced, w.income_classified
        ));
    }
    let net_books = i128::try_from(reconciled + recovered).expect("fits")
        - i128::try_from(recognised_losses).expect("fits");
    let net_chain = i128::try_from(unannounced).expect("fits")
        - i128::try_from(audit.silent_losses).expect("fits");
    if net_books != net_chain {
        return Err(format!(
            "the chain's unannounced income less its silent losses was {net_chain}, the books recognised {net_books} (income {reconciled}, losses {recognised_losses}, reversed {recovered})"
        ));
    }
    // The platform bore the losses: what the books say is lost is what the
    // recognitions left, and no user's credit paid for it.
    if let Some(last) = snaps.last()
        && last.booked.losses_to_date.base() + recovered != recognised_losses
    {
        return Err(format!(
            "losses to date {} != recognised {recognised_losses} - reversed {recovered}",
            last.booked.losses_to_date
        ));
    }
    if distributed != observed + reconciled {
        return Err(format!(
            "chain paid {observed} in rewards and {reconciled} unannounced, softstake distributed {distributed}"
        ));
    }
    w.stats.distributions = all.len() as u64;
    w.stats.losses_recognized = snaps
        .iter()
        .filter(|s| !s.booked.loss_recognized.is_zero())
        .count() as u64;
    w.stats.redistributed = w.outside.digests.len() as u64;
    w.stats.superseded = ops
        .iter()
        .filter(|o| {
            o.error
                .as_deref()
                .is_some_and(|e| e.starts_with("superseded"))
        })
        .count() as u64;
    w.stats.rpc_errors = audit.rpc_errors;
    w.stats.dropped = audit.dropped;
    w.stats.lost = audit.lost_responses;
    Ok(w.stats)
}

async fn all_rewards(store: &Store) -> Result<Vec<softstake_store::RewardRecord>, Fail> {
    store
        .list_rewards(Some(CHAIN), None, u32::MAX)
        .await
        .map_err(|e| e.to_string())
}

/// The exchange has applied every credit the ledger holds, each under its
/// key with the ledger's content, and holds none the ledger lost; every
/// distribution the exchange saw before a restore was made again with the
/// same digest.
async fn check_exchange(w: &mut World) -> Result<(), Fail> {
    w.pull().await?;
    let mut all = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = w
            .store
            .outbox(after, 500)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for c in page {
            if all
                .insert(c.key.clone(), (c.user_id, c.amount.base()))
                .is_some()
            {
                return Err(format!("credit {} is in the outbox twice", c.key));
            }
        }
    }
    if all != w.exchange.applied {
        let lost: Vec<&String> = all
            .keys()
            .filter(|k| !w.exchange.applied.contains_key(*k))
            .collect();
        let gone: Vec<&String> = w
            .exchange
            .applied
            .keys()
            .filter(|k| !all.contains_key(*k))
            .collect();
        return Err(format!(
            "the exchange and the ledger disagree: never reached the exchange {lost:?}; applied but not in the ledger {gone:?}"
        ));
    }
    let now = distribution_digests(&w.store).await?;
    for (key, digest) in &w.outside.digests {
        match now.get(key) {
            Some(d) if d == digest => {}
            Some(d) => {
                return Err(format!(
                    "the distribution of {key} was made again with digest {d}, first {digest}"
                ));
            }
            None => return Err(format!("the distribution of {key} was lost")),
        }
    }
    Ok(())
}

/// Every holdings snapshot of the chain, oldest first.
async fn snapshots(store: &Store) -> Result<Vec<softstake_store::Snapshot>, Fail> {
    let mut snaps = store
        .snapshots(CHAIN, None, u32::MAX)
        .await
        .map_err(|e| e.to_string())?;
    snaps.reverse();
    Ok(snaps)
}

/// The books' identities over every snapshot: each holds the previous
/// total plus what it booked plus its residual, and every residual is
/// carried until recognised, once (`unrecognized` moves by exactly the
/// residual less what became income). Fees, principal, suspense and
/// incidents match what the chain did.
async fn check_books(w: &World) -> Result<(), Fail> {
    let snaps = snapshots(&w.store).await?;
    for pair in snaps.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let k = &b.booked;
        let sig = |x: Amount| i128::try_from(x.base()).expect("fits");
        let explained =
            sig(k.rewards) + sig(k.principal_in) + sig(k.commission_in) + sig(k.suspense)
                - sig(k.principal_out)
                - sig(k.commission_out)
                - sig(k.incident)
                - sig(k.fees)
                - sig(k.losses);
        if sig(a.total) + explained + b.residual != sig(b.total) {
            return Err(format!("snapshot {} does not balance", b.id));
        }
        if a.unrecognized + b.residual - sig(b.reconciled) + sig(k.loss_recognized)
            - sig(k.loss_recovered)
            != b.unrecognized
        {
            return Err(format!(
                "snapshot {}: residual {} not carried once (before {}, recognised {}, after {})",
                b.id, b.residual, a.unrecognized, b.reconciled, b.unrecognized
            ));
        }
    }
    let flows = w
        .store
        .flows(CHAIN, false, None, u32::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let sum = |pred: &dyn Fn(&softstake_store::FlowRecord) -> bool| -> u128 {
        flows
            .iter()
            .filter(|f| pred(f))
            .map(|f| f.flow.amount.base())
            .sum()
    };
    let audit = w.sim.audit();
    let fees = sum(&|f| f.class == "fee");
    if fees != audit.fees {
        return Err(format!(
            "the chain charged {} in fees, the books booked {fees}",
            audit.fees
        ));
    }
    let sim_flows = w.sim.flows();
    if flows.len() != sim_flows.len() {
        let booked: std::collections::BTreeSet<&str> =
            flows.iter().map(|f| f.flow.key.as_str()).collect();
        let missing: Vec<String> = sim_flows
            .iter()
            .filter(|f| !booked.contains(f.key.as_str()))
            .map(|f| format!("{} {} at {}", f.key, f.amount, f.at))
            .collect();
        return Err(format!(
            "the chain made {} transfers and fees, the books booked {} (missing: {missing:?}, last snapshot at {:?})",
            sim_flows.len(),
            flows.len(),
            snaps.last().map(|s| s.as_of)
        ));
    }
    Ok(())
}

async fn run_all(stores: Vec<Store>, backend: &str) {
    let seeds = seeds();
    let workers = stores.len() as u64;
    let mut tasks = Vec::new();
    for (k, store) in stores.into_iter().enumerate() {
        let mine: Vec<u64> = seeds
            .iter()
            .copied()
            .filter(|s| s % workers == k as u64)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut total = Stats::default();
            for seed in mine {
                match run_seed(store.clone(), seed).await {
                    Ok(s) => total += s,
                    Err(e) => return Err((seed, e)),
                }
            }
            Ok(total)
        }));
    }
    let mut total = Stats::default();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.expect("simulation task panicked") {
            Ok(s) => total += s,
            Err((seed, e)) => failures.push(format!(
                "seed {seed} failed on {backend}: {e}\n  replay: SOFTSTAKE_SIM_SEED={seed} scripts/test -p softstake-tests --test simulation"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{backend}: {} seeds, {total:?}", seeds.len());
    // The faults were really exercised (over the default seed count).
    if seeds.len() >= 100 {
        assert!(total.crashes > 0 && total.rpc_errors > 0 && total.dropped > 0 && total.lost > 0);
        assert!(total.expired > 0 && total.queued > 0 && total.granted_at_once > 0);
        assert!(total.distributions > 0 && total.confirmed > 0);
        assert!(total.suspense > 0 && total.incidents > 0);
        assert!(total.held > 0 && total.reconciled > 0);
        assert!(total.restores > 0 && total.adopted > 0 && total.redistributed > 0);
        assert!(total.bank_runs > 0 && total.fronted > 0 && total.repaid > 0);
        assert!(total.queued_past_line > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_simulation_on_sqlite() {
    let mut keep = Vec::new();
    for _ in 0..2 {
        keep.push(TestStore::sqlite().await);
    }
    run_all(keep.iter().map(|t| t.store.clone()).collect(), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_simulation_on_postgres() {
    let mut keep = Vec::new();
    for _ in 0..4 {
        keep.push(TestStore::postgres().await);
    }
    run_all(keep.iter().map(|t| t.store.clone()).collect(), "postgres").await;
}
