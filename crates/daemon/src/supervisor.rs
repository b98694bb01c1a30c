//! Per-chain tasks: the loop, its supervision, and the gauges it refreshes.

use crate::metrics::{
    DenomLabels, EndpointLabels, OpEventLabels, ResultLabels, StateLabels, StepLabels,
    ValidatorLabels, chain_labels, coins,
};
use crate::{ChainRuntime, Shared};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;
use softstake_core::adapter::{HealthRequest, HealthResponse, PoolStateRequest, PoolStateResponse};
use softstake_core::{Amount, ChainId, Timestamp};
use softstake_engine::CycleReport;
use softstake_planner::PlanSummary;
use softstake_store::OpState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the API shows about a chain between cycles.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChainView {
    /// Pool state as last read.
    pub pool: Option<PoolStateResponse>,
    /// The last plan's summary (liabilities, floor, aim, ceiling...).
    pub plan: Option<PlanSummary>,
    /// Why the last cycle made no plan.
    pub plan_skipped: Option<String>,
    /// What the last plan wanted but could not do.
    pub blocked: Vec<String>,
    /// Last successful cycle.
    pub last_success_at: Option<Timestamp>,
    /// Last error (cleared by a success).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
    /// Consecutive failed cycles.
    pub consecutive_failures: u32,
    /// Endpoint health as last checked.
    pub health: Option<HealthResponse>,
    /// Liabilities as computed by the last refresh (once per loop
    /// iteration): the API reads this instead of scanning every user's
    /// balance on each request.
    pub liabilities: Option<Amount>,
    /// When (wall clock) the books gauges were last computed: they read
    /// every unacknowledged credit and fee of the chain, so at most every
    /// [`BOOKS_REFRESH`] of real time, whatever the daemon's clock does (the
    /// devnet's jumps hours a step).
    #[serde(skip)]
    pub books_refreshed_at: Option<Instant>,
}

/// Least wall-clock time between two computations of a chain's books
/// gauges.
pub const BOOKS_REFRESH: Duration = Duration::from_secs(30);

/// Longest wait between retries after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delay before the next try after `failures` consecutive failures:
/// 1 s, 2 s, 4 s ... capped at [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let secs = 1u64
        .checked_shl(failures.saturating_sub(1).min(20))
        .unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic with a non-string payload".into()),
        Err(e) => e.to_string(),
    }
}

/// Runs the chain's loop; if the loop itself panics, logs it with the chain
/// and starts it again after backoff. Returns on shutdown.
pub async fn supervise(rt: Arc<ChainRuntime>, sh: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    let chain = rt.config.chain;
    let mut restarts = 0u32;
    loop {
        let h = tokio::spawn(chain_loop(rt.clone(), sh.clone(), shutdown.clone()));
        match h.await {
            Ok(()) => return,
            Err(e) => {
                restarts += 1;
                let msg = panic_message(e);
                tracing::error!(chain = %chain, panic = %msg, restarts, "chain task panicked; restarting it after backoff");
                sh.metrics
                    .chain
                    .task_restarts
                    .get_or_create(&chain_labels(chain))
                    .inc();
                tokio::time::sleep(backoff(restarts)).await;
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Publishes the leader gauge.
pub async fn leader_gauge(sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut leader = sh.leader.clone();
    loop {
        sh.metrics.daemon.leader.set(i64::from(*leader.borrow()));
        tokio::select! {
            r = leader.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    sh.metrics.daemon.leader.set(0);
}

async fn until_not_leader(rx: &mut watch::Receiver<bool>) {
    loop {
        if !*rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            // Nobody can take leadership away any more.
            std::future::pending::<()>().await;
        }
    }
}

async fn chain_loop(rt: Arc<ChainRuntime>, sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let chain = rt.config.chain;
    let interval = Duration::from_secs(rt.config.interval_secs.max(1));
    let mut leader = sh.leader.clone();
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let mut delay = interval;
        if *leader.borrow() {
            let started = Instant::now();
            let engine = rt.engine.clone();
            let mut h = tokio::spawn(async move { engine.cycle().await });
            // A running cycle is never interrupted by shutdown (it finishes
            // its journal steps), only by losing leadership.
            let outcome = tokio::select! {
                r = &mut h => Some(r),
                _ = until_not_leader(&mut leader) => { h.abort(); None }
            };
            sh.metrics
                .chain
                .cycle_duration_seconds
                .get_or_create(&chain_labels(chain))
                .observe(started.elapsed().as_secs_f64());
            let result = match outcome {
                Some(Ok(Ok(report))) => {
                    failures = 0;
                    let ahead = report.failures.iter().any(|f| f.clock_ahead);
                    let partial = !report.failures.is_empty();
                    on_success(&rt, &sh, report);
                    clock_ahead(&sh, chain, ahead);
                    if partial { "partial" } else { "ok" }
                }
                Some(Ok(Err(e))) => {
                    let ahead = matches!(
                        e,
                        softstake_engine::EngineError::Store(
                            softstake_store::StoreError::FutureReward { .. }
                        )
                    );
                    clock_ahead(&sh, chain, ahead);
                    failures += 1;
                    delay = backoff(failures);
                    on_error(&rt, &sh, &e.to_string());
                    if e.is_retryable() {
                        tracing::warn!(chain = %chain, error = %e, failures, retry_in_secs = delay.as_secs(), "cycle failed; retrying");
                        "retryable_error"
                    } else {
                        tracing::error!(chain = %chain, error = %e, failures, retry_in_secs = delay.as_secs(), "cycle failed; needs attention");
                        "fatal_error"
                    }
                }
                Some(Err(j)) if j.is_panic() => {
                    failures += 1;
                    delay = backoff(failures);
                    let msg = panic_message(j);
                    tracing::error!(chain = %chain, panic = %msg, retry_in_secs = delay.as_secs(), "cycle panicked; the other chains keep running");
                    on_error(&rt, &sh, &format!("panic: {msg}"));
                    sh.metrics
                        .chain
                        .task_restarts
                        .get_or_create(&chain_labels(chain))
                        .inc();
                    "panic"
                }
                Some(Err(_)) | None => {
                    tracing::warn!(chain = %chain, "cycle aborted: leadership lost");
                    delay = Duration::ZERO;
                    "aborted"
                }
            };
            sh.metrics
                .chain
                .cycles
                .get_or_create(&ResultLabels {
                    chain: chain.as_str().to_owned(),
                    result: result.to_owned(),
                })
                .inc();
        } else {
            // Standby: keep the read API's view fresh; never send anything.
            match rt
                .engine
                .adapter()
                .pool_state(PoolStateRequest::default())
                .await
            {
                Ok(p) => rt.update_view(|v| v.pool = Some(p)),
                Err(e) => {
                    tracing::debug!(chain = %chain, error = %e, "standby pool refresh failed")
                }
            }
        }
        refresh_gauges(&rt, &sh).await;
        let was_leader = *leader.borrow();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => {}
            // A standby wakes as soon as it becomes leader.
            r = leader.changed(), if !was_leader => { if r.is_err() { break } }
        }
    }
}

/// Raises (or clears) the node-clock-ahead gauge of `chain`.
fn clock_ahead(sh: &Shared, chain: ChainId, ahead: bool) {
    sh.metrics
        .chain
        .clock_ahead
        .get_or_create(&chain_labels(chain))
        .set(i64::from(ahead));
    if ahead {
        tracing::error!(chain = %chain, "a reward from the future was refused: is the node's clock ahead of ours?");
    }
}

fn on_success(rt: &ChainRuntime, sh: &Shared, r: CycleReport) {
    let chain = rt.config.chain;
    let l = chain_labels(chain);
    let m = &sh.metrics.chain;
    let now = sh.clock.now();
    for f in &r.failures {
        m.step_failures
            .get_or_create(&StepLabels {
                chain: chain.as_str().to_owned(),
                step: f.step.as_str().to_owned(),
            })
            .inc();
        let sits_out = softstake_engine::step_backoff_cycles(f.consecutive);
        if f.retryable {
            tracing::warn!(chain = %chain, step = f.step.as_str(), error = %f.error, in_a_row = f.consecutive, sits_out_cycles = sits_out,
                "cycle step failed; the other steps ran");
        } else {
            tracing::error!(chain = %chain, step = f.step.as_str(), error = %f.error, in_a_row = f.consecutive, sits_out_cycles = sits_out,
                "cycle step failed and needs attention; the other steps ran");
        }
    }
    let step_error = (!r.failures.is_empty()).then(|| {
        r.failures
            .iter()
            .map(|f| format!("{}: {}", f.step.as_str(), f.error))
            .collect::<Vec<_>>()
            .join("; ")
    });
    m.rewards_collected_coins
        .get_or_create(&l)
        .inc_by(coins(chain, r.rewards_amount));
    for d in &r.distributions {
        m.rewards_distributed_coins
            .get_or_create(&l)
            .inc_by(coins(chain, d.gross));
        m.commission_coins
            .get_or_create(&l)
            .inc_by(coins(chain, d.commission));
    }
    for e in &r.ops {
        m.operation_events
            .get_or_create(&OpEventLabels {
                chain: chain.as_str().to_owned(),
                kind: e.kind.to_owned(),
                event: e.event.as_str().to_owned(),
            })
            .inc();
    }
    m.last_success_timestamp_seconds
        .get_or_create(&l)
        .set(now.unix());
    if r.rewards_recorded > 0 || !r.distributions.is_empty() || !r.withdrawals_granted.is_empty() {
        tracing::info!(
            chain = %chain,
            rewards_recorded = r.rewards_recorded,
            distributions = r.distributions.len(),
            withdrawals_granted = r.withdrawals_granted.len(),
            "cycle"
        );
    }
    if let Some(why) = &r.bunker {
        tracing::warn!(chain = %chain, reason = %why, "rewards are not distributed: bunker mode");
    }
    if let Some(p) = &r.pool {
        for a in &p.alerts {
            tracing::warn!(chain = %chain, alert = %a, "chain alert");
        }
        m.chain_alerts
            .get_or_create(&l)
            .set(i64::try_from(p.alerts.len()).unwrap_or(i64::MAX));
    }
    for loss in r.pool.iter().flat_map(|p| &p.losses) {
        tracing::error!(chain = %chain, validator = %loss.validator, lost = %loss.amount, reason = %loss.reason,
            "the pool lost stake: the liabilities are no longer fully backed until it is made good");
        m.slashing_loss_coins
            .get_or_create(&ValidatorLabels {
                chain: chain.as_str().to_owned(),
                validator: loss.validator.clone(),
            })
            .inc_by(coins(chain, loss.amount));
    }
    rt.update_view(|v| {
        if let Some(p) = r.pool {
            v.pool = Some(p);
        }
        if let Some(plan) = &r.plan {
            v.plan = Some(plan.summary.clone());
            v.blocked = plan.blocked.clone();
        }
        v.plan_skipped = r.plan_skipped;
        v.last_success_at = Some(now);
        match step_error {
            // A partial cycle: what failed stays visible until a cycle runs
            // every step.
            Some(e) => {
                v.last_error = Some(e);
                v.last_error_at = Some(now);
            }
            None => {
                v.last_error = None;
                v.consecutive_failures = 0;
            }
        }
    });
}

fn on_error(rt: &ChainRuntime, sh: &Shared, msg: &str) {
    let now = sh.clock.now();
    rt.update_view(|v| {
        v.last_error = Some(msg.to_owned());
        v.last_error_at = Some(now);
        v.consecutive_failures += 1;
    });
}

/// Refreshes the gauges from the store, the view and a health check.
async fn refresh_gauges(rt: &ChainRuntime, sh: &Shared) {
    let chain = rt.config.chain;
    let l = chain_labels(chain);
    let m = &sh.metrics.chain;
    let store = &sh.store;
    let now = sh.clock.now();
    if let Ok(paused) = store.is_paused(chain).await {
        m.paused.get_or_create(&l).set(i64::from(paused));
    }
    if let Ok(counts) = store.journal_state_counts(chain).await {
        for s in OpState::ALL {
            let n = counts
                .iter()
                .find(|(st, _)| *st == s)
                .map_or(0, |(_, n)| *n);
            m.operations
                .get_or_create(&StateLabels {
                    chain: chain.as_str().to_owned(),
                    state: s.as_str().to_owned(),
                })
                .set(n);
        }
    }
    if let Ok(open) = store.journal_open(chain).await {
        let oldest = open
            .iter()
            .map(|o| now.unix() - o.created_at.unix())
            .max()
            .unwrap_or(0);
        m.oldest_open_operation_seconds
            .get_or_create(&l)
            .set(oldest.max(0));
    }
    let liabilities = store.liabilities(chain.asset(), now).await.ok();
    let owed = store.withdrawals_owed(chain).await.ok();
    let view = rt.view();
    if let Some(a) = liabilities {
        m.liabilities_coins.get_or_create(&l).set(coins(chain, a));
        rt.update_view(|v| v.liabilities = Some(a));
    }
    if let Some(a) = owed {
        m.withdrawals_owed_coins
            .get_or_create(&l)
            .set(coins(chain, a));
    }
    m.advance_limit_coins
        .get_or_create(&l)
        .set(coins(chain, rt.config.buffer.advance_limit));
    if let Ok(line) = store.advance_line(chain, 0, now).await {
        m.advances_outstanding_coins
            .get_or_create(&l)
            .set(coins(chain, line.outstanding));
        m.advances_late
            .get_or_create(&l)
            .set(i64::try_from(line.late).unwrap_or(i64::MAX));
    }
    m.buffer_target_ratio
        .get_or_create(&l)
        .set(rt.config.buffer.target.value().to_f64().unwrap_or(0.0));
    let floor =
        (rt.config.buffer.target.value() - rt.config.buffer.band.value()).max(Decimal::ZERO);
    m.buffer_floor_ratio
        .get_or_create(&l)
        .set(floor.to_f64().unwrap_or(0.0));
    if let Some(p) = &view.pool {
        let staked =
            Amount::checked_sum(p.delegations.iter().flat_map(|d| [d.active, d.activating]))
                .unwrap_or(Amount::MAX);
        let liquid = p.liquid.checked_add(p.withdrawable).unwrap_or(Amount::MAX);
        let unbonding =
            Amount::checked_sum(p.unbonding.iter().map(|u| u.amount)).unwrap_or(Amount::MAX);
        m.staked_coins.get_or_create(&l).set(coins(chain, staked));
        m.liquid_coins.get_or_create(&l).set(coins(chain, liquid));
        m.unbonding_coins
            .get_or_create(&l)
            .set(coins(chain, unbonding));
        if let Some(a) = liabilities {
            m.buffer_ratio.get_or_create(&l).set(ratio(liquid, a));
        }
        for d in &p.delegations {
            m.validator_impaired
                .get_or_create(&ValidatorLabels {
                    chain: chain.as_str().to_owned(),
                    validator: d.validator.clone(),
                })
                .set(i64::from(d.impaired));
            if let Some(c) = d
                .commission
                .as_deref()
                .and_then(|c| c.parse::<Decimal>().ok())
                .and_then(|c| c.to_f64())
            {
                m.validator_commission_ratio
                    .get_or_create(&ValidatorLabels {
                        chain: chain.as_str().to_owned(),
                        validator: d.validator.clone(),
                    })
                    .set(c);
            }
        }
    }
    if let Some(max) = rt.config.safety.max_validator_commission {
        m.validator_commission_limit_ratio
            .get_or_create(&l)
            .set(max.value().to_f64().unwrap_or(0.0));
    }
    if let Ok(h) = rt.engine.adapter().health(HealthRequest::default()).await {
        for e in &h.endpoints {
            let el = EndpointLabels {
                chain: chain.as_str().to_owned(),
                endpoint: e.endpoint.clone(),
            };
            m.endpoint_up.get_or_create(&el).set(i64::from(e.up));
            if let Some(ms) = e.latency_ms {
                m.endpoint_latency_seconds
                    .get_or_create(&el)
                    .set(Duration::from_millis(ms).as_secs_f64());
            }
            if let Some(lag) = e.lag_secs {
                m.endpoint_lag_seconds
                    .get_or_create(&el)
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
        rt.update_view(|v| v.health = Some(h));
    }
    let due = view
        .books_refreshed_at
        .is_none_or(|t| t.elapsed() >= BOOKS_REFRESH);
    let books = if due {
        let b = store.books(chain, &rt.config.books, now).await;
        // Until the first snapshot is booked, try again every iteration.
        if b.as_ref().is_ok_and(|b| b.snapshot.is_some()) {
            rt.update_view(|v| v.books_refreshed_at = Some(Instant::now()));
        }
        Some(b)
    } else {
        None
    };
    match books {
        None => {}
        Some(Ok(b)) => {
            let ratio = b
                .backing_ratio
                .as_deref()
                .and_then(|r| r.parse::<Decimal>().ok())
                .and_then(|r| r.to_f64())
                .unwrap_or(0.0);
            m.backing_ratio.get_or_create(&l).set(ratio);
            m.surplus_coins
                .get_or_create(&l)
                .set(signed_coins(chain, b.surplus));
            m.suspense_coins
                .get_or_create(&l)
                .set(coins(chain, b.suspense));
            m.losses_coins
                .get_or_create(&l)
                .set(coins(chain, b.owed.losses));
            m.shortfall_coins
                .get_or_create(&l)
                .set(coins(chain, b.owed.shortfall));
            m.loss_receivable_coins
                .get_or_create(&l)
                .set(coins(chain, b.owed.users_losses.receivable));
            m.loss_written_off_coins
                .get_or_create(&l)
                .set(coins(chain, b.owed.users_losses.written_off));
            m.incidents_open
                .get_or_create(&l)
                .set(i64::try_from(b.incidents_open).unwrap_or(i64::MAX));
            m.bunker.get_or_create(&l).set(i64::from(b.bunker.active));
            m.validators_marked
                .get_or_create(&l)
                .set(i64::try_from(b.marked_validators.len()).unwrap_or(i64::MAX));
            if let Some(s) = &b.snapshot {
                m.residual_unrecognized_coins
                    .get_or_create(&l)
                    .set(signed_coins(chain, s.unrecognized));
                m.income_held_coins
                    .get_or_create(&l)
                    .set(coins(chain, s.held));
                m.books_complete
                    .get_or_create(&l)
                    .set(i64::from(s.complete));
            }
        }
        Some(Err(e)) => {
            tracing::warn!(chain = %chain, error = %e, "books unavailable for the gauges");
        }
    }
    if due {
        match store.foreign_totals(chain).await {
            Ok(totals) => {
                for t in totals {
                    let dl = DenomLabels {
                        chain: chain.as_str().to_owned(),
                        denom: t.denom,
                    };
                    // Dashboards only: u128 base units as a float.
                    #[allow(clippy::cast_precision_loss)]
                    m.foreign_reward_base_units
                        .get_or_create(&dl)
                        .set(t.amount as f64);
                }
            }
            Err(e) => {
                tracing::warn!(chain = %chain, error = %e, "foreign rewards unavailable for the gauges");
            }
        }
    }
    let since = view.last_success_at.unwrap_or(sh.started_at);
    m.seconds_since_last_success
        .get_or_create(&l)
        .set((now.unix() - since.unix()).max(0));
}

/// A signed base-unit amount in coins, for gauges (display only).
fn signed_coins(chain: ChainId, v: i128) -> f64 {
    Amount::format_signed_units(v, chain.decimals())
        .parse()
        .unwrap_or(0.0)
}

/// `a / b` as a float for gauges (0 when `b` is 0).
pub fn ratio(a: Amount, b: Amount) -> f64 {
    if b.is_zero() {
        return 0.0;
    }
    let (Ok(a), Ok(b)) = (
        Decimal::from_str_exact(&a.to_string()),
        Decimal::from_str_exact(&b.to_string()),
    ) else {
        return 0.0;
    };
    a.checked_div(b).and_then(|r| r.to_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn ratios_for_gauges() {
        assert!((ratio(Amount::from_base(1), Amount::from_base(4)) - 0.25).abs() < 1e-12);
        assert_eq!(ratio(Amount::from_base(1), Amount::ZERO), 0.0);
    }
}
