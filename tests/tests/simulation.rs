//! Seeded simulation of the whole loop on SQLite and PostgreSQL: users
//! deposit and withdraw, the engine collects rewards, distributes, plans and
//! executes through the journal against `SimChain`, while RPC calls fail,
//! transactions are dropped, broadcast responses are lost and the process
//! crashes at every journal step. Time is simulated, so a seed takes
//! milliseconds.
//!
//! `SOFTSTAKE_SIM_SEEDS=N` sets the number of seeds (default 1000);
//! `SOFTSTAKE_SIM_SEED=S` replays one seed. A failing seed prints itself.

use rust_decimal::Decimal;
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Rate, Timestamp};
use softstake_engine::{Engine, EngineConfig, EngineError, Faults, NoFaults};
use softstake_planner::{Policy, ValidatorTarget};
use softstake_store::{BalanceUpdate, Store, WithdrawalRequest};
use softstake_testkit::{CrashFaults, FaultRates, Rng, SimChain, SimParams};
use softstake_tests::{TestStore, raw_exec};
use std::collections::BTreeMap;
use std::sync::Arc;

const T0: i64 = 1_767_225_600; // 2026-01-01
const CHAIN: ChainId = ChainId::Cosmos;

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SOFTSTAKE_SIM_SEED") {
        return vec![s.parse().expect("SOFTSTAKE_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("SOFTSTAKE_SIM_SEEDS").ok().map_or(1000, |v| {
        v.parse().expect("SOFTSTAKE_SIM_SEEDS is a number")
    });
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
        self.distributions += o.distributions;
    }
}

struct Queued {
    amount: Amount,
    eta: Timestamp,
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
            .ingest_balance_updates(&[u], self.clock.now())
            .await
            .map_err(|e| format!("ingest: {e}"))?;
        self.balances.insert(user.into(), balance);
        Ok(())
    }

    async fn pay(&mut self, request_id: &str) -> Result<(), Fail> {
        let amount = self.amounts[request_id];
        self.sim
            .pay_out(amount)
            .map_err(|e| format!("granted withdrawal {request_id} was not covered: {e}"))?;
        self.paid_out += amount.base();
        self.store
            .complete_withdrawal(request_id, self.clock.now())
            .await
            .map_err(|e| format!("complete {request_id}: {e}"))
    }

    async fn cycle(&mut self) -> Result<(), Fail> {
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
                        &r.withdrawals_granted
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
                self.distribution_ids
                    .extend(r.distributions.iter().map(|d| d.id));
                for id in r.withdrawals_granted {
                    self.queued.remove(&id);
                    self.pay(&id).await?;
                }
                Ok(())
            }
            Err(EngineError::Crash(_)) => {
                self.restart();
                Ok(())
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
        let req = WithdrawalRequest {
            request_id: id.clone(),
            user_id: user.into(),
            chain: CHAIN,
            amount: Amount::from_base(amount),
        };
        let d = self
            .store
            .request_withdrawal(&req, &liq, self.clock.now())
            .await
            .map_err(|e| format!("request {id}: {e}"))?;
        self.amounts.insert(id.clone(), req.amount);
        let bal = self.balances[user] - amount;
        self.set_balance(user, bal).await?;
        match d.status.as_str() {
            "granted" => {
                self.stats.granted_at_once += 1;
                self.pay(&id).await
            }
            "queued" => {
                self.stats.queued += 1;
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

    fn check_etas(&self) -> Result<(), Fail> {
        let now = self.clock.now();
        for (id, q) in &self.queued {
            if now > q.eta.plus_secs(self.epoch_secs) {
                return Err(format!(
                    "queued withdrawal {id} of {} not covered by its ETA {} plus one epoch (now {now})",
                    q.amount, q.eta
                ));
            }
        }
        Ok(())
    }
}

async fn reset(store: &Store) {
    for t in [
        "credits",
        "distributions",
        "rewards",
        "balance_updates",
        "withdrawals",
        "operations",
        "chain_state",
    ] {
        raw_exec_fast(store, &format!("DELETE FROM {t}")).await;
    }
}

async fn raw_exec_fast(store: &Store, sql: &str) {
    let q = sqlx::AssertSqlSafe(sql.to_owned());
    if let Some(p) = store.pg_pool() {
        sqlx::query(q).execute(p).await.expect("reset");
    } else if let Some(p) = store.sqlite_pool() {
        sqlx::query(q).execute(p).await.expect("reset");
    } else {
        raw_exec(store, sql).await;
    }
}

async fn run_seed(store: Store, seed: u64) -> Result<Stats, Fail> {
    reset(&store).await;
    let mut rng = Rng::new(seed);
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
        fee: Amount::from_base(u128::from(rng.range(0, 50))),
        validity_secs: if rng.chance(800_000) {
            Some(block * i64::try_from(rng.range(2, 10)).unwrap_or(2))
        } else {
            None
        },
        validators: validators.clone(),
    };
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
    let sim = SimChain::new(seed, params, clock.clone(), Amount::from_base(total));
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
        },
        max_per_day: Amount::from_base(u128::from(u64::MAX)),
        approval_threshold: Amount::ZERO,
        dry_run: false,
        cycle_secs: u64::try_from(tick).unwrap_or(0),
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
    };
    for (u, b) in &opening {
        w.set_balance(u, *b).await?;
    }
    let users: Vec<String> = opening.keys().cloned().collect();
    let mut requests = 0u64;
    // 12 epochs of activity.
    for _step in 0..48 {
        if rng.chance(400_000) {
            let u = &users[rng.index(users.len())];
            let x = u128::from(rng.range(1_000, 1_000_000));
            w.sim.deposit(Amount::from_base(x));
            w.deposited += x;
            let b = w.balances[u] + x;
            w.set_balance(u, b).await?;
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
        w.check_etas()?;
        let open = w
            .store
            .journal_open(CHAIN)
            .await
            .map_err(|e| e.to_string())?;
        if open.is_empty() && w.queued.is_empty() && w.sim.mempool_len() == 0 {
            settled = true;
            break;
        }
        w.sim.advance(tick);
    }
    if !settled {
        return Err("did not settle: operations or withdrawals still open".into());
    }
    // One more cycle collects and distributes the last claim.
    w.cycle().await?;

    let audit = w.sim.audit();
    for (op, txs) in &audit.broadcasts {
        if txs.len() > 1 {
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
    for op in &ops {
        let applied = audit.applied.get(&op.id).copied().unwrap_or(0);
        let confirmed = op.state == softstake_store::OpState::Confirmed;
        if confirmed != (applied == 1) {
            return Err(format!(
                "journal says operation {} is {}, the chain applied it {applied} time(s)",
                op.id,
                op.state.as_str()
            ));
        }
    }
    if audit.deposited != w.deposited || audit.paid_out != w.paid_out {
        return Err(format!(
            "custody flows differ: sim saw {} in / {} out, users moved {} / {}",
            audit.deposited, audit.paid_out, w.deposited, w.paid_out
        ));
    }
    let expected = audit.deposited + audit.rewards_accrued - audit.paid_out - audit.fees;
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
    if distributed != observed {
        return Err(format!(
            "chain paid {observed} in rewards, softstake distributed {distributed}"
        ));
    }
    w.stats.distributions = all.len() as u64;
    w.stats.rpc_errors = audit.rpc_errors;
    w.stats.dropped = audit.dropped;
    w.stats.lost = audit.lost_responses;
    Ok(w.stats)
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
