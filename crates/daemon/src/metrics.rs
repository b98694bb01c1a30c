//! Prometheus metrics, one struct per component (reth style), every field
//! documented with what it measures. Served as OpenMetrics text on the
//! metrics port. Names follow Prometheus conventions: a `softstake_`
//! prefix, the unit in the name (`_coins` = the chain's display unit such as
//! ETH or ATOM, `_seconds`, `_ratio`), `_total` on counters (added by the
//! encoder). Money is exported for dashboards only; nothing reads it back.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use softstake_core::{Amount, ChainId};
use std::sync::atomic::AtomicU64;

/// `{chain}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabels {
    /// Chain name.
    pub chain: String,
}

/// `{chain, denom}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenomLabels {
    /// Chain name.
    pub chain: String,
    /// A denomination other than the chain's coin.
    pub denom: String,
}

/// `{chain, state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Chain name.
    pub chain: String,
    /// Journal state.
    pub state: String,
}

/// `{chain, kind, event}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpEventLabels {
    /// Chain name.
    pub chain: String,
    /// Operation kind.
    pub kind: String,
    /// What happened.
    pub event: String,
}

/// `{chain, result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Chain name.
    pub chain: String,
    /// `ok`, `partial` (a step failed, the others ran), `retryable_error`,
    /// `fatal_error`, `panic`, `aborted`.
    pub result: String,
}

/// `{chain, step}`: a cycle step (`softstake_engine::Step`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    /// Chain name.
    pub chain: String,
    /// `collect_rewards`, `distribute`, `reconcile`, `read_pool`, `plan`,
    /// `grant_withdrawals`.
    pub step: String,
}

/// `{chain, method}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// Chain name.
    pub chain: String,
    /// Adapter method (`pool_state`, `broadcast`, ...).
    pub method: String,
}

/// `{chain, method, endpoint, kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcErrorLabels {
    /// Chain name.
    pub chain: String,
    /// Adapter method.
    pub method: String,
    /// Endpoint (credentials removed), empty when the error names none.
    pub endpoint: String,
    /// `transport`, `rate_limited`, `wrong_network`, `invalid_request`,
    /// `rejected`, `config`.
    pub kind: String,
}

/// `{chain, endpoint}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Chain name.
    pub chain: String,
    /// Endpoint (credentials removed).
    pub endpoint: String,
}

/// `{chain, validator}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidatorLabels {
    /// Chain name.
    pub chain: String,
    /// Validator address.
    pub validator: String,
}

/// `{route, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// Route pattern (`/v1/chains/{chain}`).
    pub route: String,
    /// HTTP status code.
    pub status: String,
}

type FGauge = Gauge<f64, AtomicU64>;
type FCounter = Counter<f64, AtomicU64>;
type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Per-chain pool and loop metrics (the chain task).
#[derive(Debug)]
pub struct ChainMetrics {
    /// Sum of users' liquid balances (what the pool owes), in coins.
    pub liabilities_coins: Family<ChainLabels, FGauge>,
    /// Stake earning or activating with validators, in coins.
    pub staked_coins: Family<ChainLabels, FGauge>,
    /// Spendable custody balance plus matured unbonding, in coins.
    pub liquid_coins: Family<ChainLabels, FGauge>,
    /// Unbonding in flight, in coins.
    pub unbonding_coins: Family<ChainLabels, FGauge>,
    /// Withdrawals queued or granted and not yet paid, in coins.
    pub withdrawals_owed_coins: Family<ChainLabels, FGauge>,
    /// What the treasury's advance line fronted and has not got back, in
    /// coins.
    pub advances_outstanding_coins: Family<ChainLabels, FGauge>,
    /// The advance line's configured limit, in coins (0: none).
    pub advance_limit_coins: Family<ChainLabels, FGauge>,
    /// Advances not repaid past their expected repayment time.
    pub advances_late: Family<ChainLabels, Gauge>,
    /// Liquid / liabilities (the buffer), 0..=n.
    pub buffer_ratio: Family<ChainLabels, FGauge>,
    /// Configured buffer target (share of liabilities).
    pub buffer_target_ratio: Family<ChainLabels, FGauge>,
    /// Lower edge of the band (target - band).
    pub buffer_floor_ratio: Family<ChainLabels, FGauge>,
    /// Rewards recorded from the chain, in coins.
    pub rewards_collected_coins: Family<ChainLabels, FCounter>,
    /// Rewards distributed (gross), in coins.
    pub rewards_distributed_coins: Family<ChainLabels, FCounter>,
    /// Commission kept from distributed rewards, in coins.
    pub commission_coins: Family<ChainLabels, FCounter>,
    /// Journaled operations by state (current count).
    pub operations: Family<StateLabels, Gauge>,
    /// Age of the oldest non-final operation, in seconds (0 if none).
    pub oldest_open_operation_seconds: Family<ChainLabels, Gauge>,
    /// Operation events seen by the engine (journaled, broadcast, confirmed...).
    pub operation_events: Family<OpEventLabels, Counter>,
    /// Cycles run, by result.
    pub cycles: Family<ResultLabels, Counter>,
    /// Failed cycle steps (the cycle's other steps ran), by step.
    pub step_failures: Family<StepLabels, Counter>,
    /// Duration of a cycle, in seconds.
    pub cycle_duration_seconds: HistFamily<ChainLabels>,
    /// Unix time of the last successful cycle.
    pub last_success_timestamp_seconds: Family<ChainLabels, Gauge>,
    /// Seconds since the last successful cycle (computed at scrape time;
    /// counts from start-up before the first success).
    pub seconds_since_last_success: Family<ChainLabels, Gauge>,
    /// Chain tasks restarted after a panic.
    pub task_restarts: Family<ChainLabels, Counter>,
    /// 1 while the chain's last cycle met a reward whose period ends in the
    /// future (the node's clock runs ahead of ours): it is neither recorded
    /// nor distributed until our time catches up.
    pub clock_ahead: Family<ChainLabels, Gauge>,
    /// 1 when the chain is paused by an operator.
    pub paused: Family<ChainLabels, Gauge>,
    /// Adapter call latency, in seconds.
    pub rpc_duration_seconds: HistFamily<RpcLabels>,
    /// Adapter call errors.
    pub rpc_errors: Family<RpcErrorLabels, Counter>,
    /// 1 when the endpoint answered the last health check.
    pub endpoint_up: Family<EndpointLabels, Gauge>,
    /// How far the endpoint's head is behind wall-clock time, in seconds.
    pub endpoint_lag_seconds: Family<EndpointLabels, Gauge>,
    /// Latency of the endpoint's last health probe, in seconds.
    pub endpoint_latency_seconds: Family<EndpointLabels, FGauge>,
    /// The commission a validator holding the pool's stake charges, as
    /// the chain reports it (a share: 0.05); absent where the chain does
    /// not report one.
    pub validator_commission_ratio: Family<ValidatorLabels, FGauge>,
    /// The chain's `max_validator_commission`, where configured.
    pub validator_commission_limit_ratio: Family<ChainLabels, FGauge>,
    /// 1 when a validator we stake with is jailed, delinquent or otherwise
    /// not earning.
    pub validator_impaired: Family<ValidatorLabels, Gauge>,
    /// Stake lost to slashing as the adapter detected it, in coins.
    pub slashing_loss_coins: Family<ValidatorLabels, FCounter>,
    /// Conditions the adapter flags for operators (e.g. a baker stopped
    /// paying), as of the last pool reading.
    pub chain_alerts: Family<ChainLabels, Gauge>,
    /// The pool's books: holdings / what is owed (users, unacknowledged
    /// credits, undistributed rewards, withdrawals, suspense, commission).
    pub backing_ratio: Family<ChainLabels, FGauge>,
    /// Holdings - what is owed, in coins (negative: under-backed).
    pub surplus_coins: Family<ChainLabels, FGauge>,
    /// Residual no booked flow explains, carried until recognised, in
    /// coins (negative: value left that nothing explains).
    pub residual_unrecognized_coins: Family<ChainLabels, FGauge>,
    /// Unannounced income held by the sanity bound until an operator
    /// confirms it, in coins.
    pub income_held_coins: Family<ChainLabels, FGauge>,
    /// Undeclared inflows in suspense (never distributed), in coins.
    pub suspense_coins: Family<ChainLabels, FGauge>,
    /// Losses booked so far (slashing, penalties, a persistent unexplained
    /// fall, outflows booked as losses), in coins.
    pub losses_coins: Family<ChainLabels, FGauge>,
    /// What the platform owes the pool (fees and losses it bears beyond
    /// its commission) until it pays in, in coins.
    pub shortfall_coins: Family<ChainLabels, FGauge>,
    /// Under the `users` loss rule: users' loss shares not netted from
    /// their credits yet (their debt to the pool), in coins.
    pub loss_receivable_coins: Family<ChainLabels, FGauge>,
    /// Under the `users` loss rule: shares whose netting horizon passed
    /// (the platform's now), in coins.
    pub loss_written_off_coins: Family<ChainLabels, FGauge>,
    /// Rewards received in other denominations than the chain's coin, in
    /// base units of each (a float: for dashboards; the exact figure is in
    /// `GET /v1/chains/{chain}/foreign-rewards`).
    pub foreign_reward_base_units: Family<DenomLabels, FGauge>,
    /// Open incidents (undeclared outflows; nothing is signed while any).
    pub incidents_open: Family<ChainLabels, Gauge>,
    /// 1 when the adapter proves every transfer and fee (the books act);
    /// 0 when they only observe.
    pub books_complete: Family<ChainLabels, Gauge>,
    /// 1 while the chain is in bunker mode (its rewards wait for a loss
    /// to be accounted).
    pub bunker: Family<ChainLabels, Gauge>,
    /// Validators marked by a loss (no new stake until an operator clears).
    pub validators_marked: Family<ChainLabels, Gauge>,
}

/// Daemon-wide metrics.
#[derive(Debug)]
pub struct DaemonMetrics {
    /// 1 while this instance holds the leader lock and runs the loops.
    pub leader: Gauge,
    /// API requests by route pattern and status.
    pub api_requests: Family<ApiLabels, Counter>,
    /// API requests refused by the public read rate limit.
    pub api_rate_limited: Counter,
}

/// Every metric, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    /// Chain metrics.
    pub chain: ChainMetrics,
    /// Daemon metrics.
    pub daemon: DaemonMetrics,
}

fn reg(
    r: &mut Registry,
    names: &mut Vec<String>,
    name: &str,
    help: &str,
    metric: impl prometheus_client::registry::Metric,
) {
    names.push(format!("softstake_{name}"));
    r.register(name, help, metric);
}

/// Labels for a chain.
pub fn chain_labels(chain: ChainId) -> ChainLabels {
    ChainLabels {
        chain: chain.as_str().to_owned(),
    }
}

/// An amount in the chain's display unit, for gauges.
pub fn coins(chain: ChainId, a: Amount) -> f64 {
    a.format_units(chain.decimals()).parse().unwrap_or(0.0)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("softstake");
        let mut names = Vec::new();
        let chain = ChainMetrics {
            liabilities_coins: Family::default(),
            staked_coins: Family::default(),
            liquid_coins: Family::default(),
            unbonding_coins: Family::default(),
            withdrawals_owed_coins: Family::default(),
            advances_outstanding_coins: Family::default(),
            advance_limit_coins: Family::default(),
            advances_late: Family::default(),
            buffer_ratio: Family::default(),
            buffer_target_ratio: Family::default(),
            buffer_floor_ratio: Family::default(),
            rewards_collected_coins: Family::default(),
            rewards_distributed_coins: Family::default(),
            commission_coins: Family::default(),
            operations: Family::default(),
            oldest_open_operation_seconds: Family::default(),
            operation_events: Family::default(),
            cycles: Family::default(),
            step_failures: Family::default(),
            cycle_duration_seconds: Family::new_with_constructor(latency_histogram),
            last_success_timestamp_seconds: Family::default(),
            seconds_since_last_success: Family::default(),
            clock_ahead: Family::default(),
            task_restarts: Family::default(),
            paused: Family::default(),
            rpc_duration_seconds: Family::new_with_constructor(latency_histogram),
            rpc_errors: Family::default(),
            endpoint_up: Family::default(),
            endpoint_lag_seconds: Family::default(),
            endpoint_latency_seconds: Family::default(),
            validator_impaired: Family::default(),
            validator_commission_ratio: Family::default(),
            validator_commission_limit_ratio: Family::default(),
            slashing_loss_coins: Family::default(),
            chain_alerts: Family::default(),
            backing_ratio: Family::default(),
            surplus_coins: Family::default(),
            residual_unrecognized_coins: Family::default(),
            income_held_coins: Family::default(),
            suspense_coins: Family::default(),
            losses_coins: Family::default(),
            shortfall_coins: Family::default(),
            loss_receivable_coins: Family::default(),
            loss_written_off_coins: Family::default(),
            foreign_reward_base_units: Family::default(),
            incidents_open: Family::default(),
            books_complete: Family::default(),
            bunker: Family::default(),
            validators_marked: Family::default(),
        };
        let c = &chain;
        reg(
            &mut r,
            &mut names,
            "pool_liabilities_coins",
            "Sum of users' liquid balances",
            c.liabilities_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_staked_coins",
            "Stake earning or activating",
            c.staked_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_liquid_coins",
            "Spendable custody balance plus matured unbonding",
            c.liquid_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_unbonding_coins",
            "Unbonding in flight",
            c.unbonding_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_withdrawals_owed_coins",
            "Withdrawals queued or granted, not yet paid",
            c.withdrawals_owed_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_advances_outstanding_coins",
            "What the treasury's advance line fronted for withdrawals and has not got back",
            c.advances_outstanding_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_advance_limit_coins",
            "The advance line's configured limit (0: none)",
            c.advance_limit_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_advances_late",
            "Advances not repaid past their expected repayment time",
            c.advances_late.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_buffer_ratio",
            "Liquid over liabilities",
            c.buffer_ratio.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_buffer_target_ratio",
            "Configured buffer target",
            c.buffer_target_ratio.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_buffer_floor_ratio",
            "Buffer target minus band",
            c.buffer_floor_ratio.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rewards_collected_coins",
            "Rewards recorded from the chain",
            c.rewards_collected_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rewards_distributed_coins",
            "Rewards distributed to users (gross)",
            c.rewards_distributed_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "commission_coins",
            "Commission kept from distributed rewards",
            c.commission_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "operations",
            "Journaled operations by state",
            c.operations.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "oldest_open_operation_seconds",
            "Age of the oldest non-final operation",
            c.oldest_open_operation_seconds.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "operation_events",
            "Operation events seen by the engine",
            c.operation_events.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "cycles",
            "Chain cycles by result",
            c.cycles.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "cycle_step_failures",
            "Failed steps of chain cycles (the other steps still ran)",
            c.step_failures.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "cycle_duration_seconds",
            "Duration of a chain cycle",
            c.cycle_duration_seconds.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "last_success_timestamp_seconds",
            "Unix time of the last successful cycle",
            c.last_success_timestamp_seconds.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "seconds_since_last_success",
            "Seconds since the last successful cycle",
            c.seconds_since_last_success.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "chain_clock_ahead",
            "1 while a reward from the future (a node clock ahead of ours) is refused",
            c.clock_ahead.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "chain_task_restarts",
            "Chain tasks restarted after a panic",
            c.task_restarts.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "chain_paused",
            "1 when an operator paused the chain",
            c.paused.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rpc_duration_seconds",
            "Chain adapter call latency",
            c.rpc_duration_seconds.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rpc_errors",
            "Chain adapter call errors",
            c.rpc_errors.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rpc_endpoint_up",
            "1 when the endpoint answered the last health check",
            c.endpoint_up.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rpc_endpoint_lag_seconds",
            "Endpoint head behind wall-clock time",
            c.endpoint_lag_seconds.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "rpc_endpoint_latency_seconds",
            "Latency of the endpoint's last health probe",
            c.endpoint_latency_seconds.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "validator_commission_ratio",
            "The commission a validator holding the pool's stake charges, as the chain reports it (a share)",
            c.validator_commission_ratio.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "validator_commission_limit_ratio",
            "The chain's max_validator_commission (a share), where configured",
            c.validator_commission_limit_ratio.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "validator_impaired",
            "1 when a validator we stake with is not earning",
            c.validator_impaired.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "slashing_loss_coins",
            "Stake lost to slashing, as detected",
            c.slashing_loss_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "chain_alerts",
            "Conditions the chain adapter flags for operators",
            c.chain_alerts.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_backing_ratio",
            "Holdings / what the pool owes (users, unacknowledged credits, undistributed rewards, withdrawals, suspense, commission)",
            c.backing_ratio.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_surplus_coins",
            "Holdings - what the pool owes, in coins (negative: under-backed)",
            c.surplus_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_residual_unrecognized_coins",
            "Change in holdings no booked flow explains, not yet recognised, in coins",
            c.residual_unrecognized_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_income_held_coins",
            "Unannounced income held by the sanity bound until confirmed, in coins",
            c.income_held_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_suspense_coins",
            "Undeclared inflows in suspense, never distributed until classified, in coins",
            c.suspense_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_losses_coins",
            "Losses booked so far (slashing, penalties, a persistent unexplained fall), in coins",
            c.losses_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_shortfall_coins",
            "What the platform owes the pool (fees and losses it bears beyond its commission) until it pays in, in coins",
            c.shortfall_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_loss_receivable_coins",
            "Users' loss shares (losses = users) not yet netted from their credits, in coins",
            c.loss_receivable_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_loss_written_off_coins",
            "Users' loss shares (losses = users) whose netting horizon passed: the platform's, in coins",
            c.loss_written_off_coins.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_foreign_reward_base_units",
            "Rewards received in a denomination other than the chain's coin (never distributed as it), base units of that denomination",
            c.foreign_reward_base_units.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_incidents_open",
            "Open incidents (undeclared outflows): the chain signs nothing while any",
            c.incidents_open.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_books_complete",
            "1 when the adapter proves every transfer and fee, so the books act; 0 when they only observe",
            c.books_complete.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "pool_bunker",
            "1 while the chain is in bunker mode: holdings fell below what the books explain and its rewards are not distributed until the loss is accounted",
            c.bunker.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "validators_marked",
            "Validators marked by a loss: no new stake goes to them until an operator clears the mark",
            c.validators_marked.clone(),
        );
        let daemon = DaemonMetrics {
            leader: Gauge::default(),
            api_requests: Family::default(),
            api_rate_limited: Counter::default(),
        };
        reg(
            &mut r,
            &mut names,
            "leader",
            "1 while this instance holds the leader lock",
            daemon.leader.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "api_requests",
            "API requests by route and status",
            daemon.api_requests.clone(),
        );
        reg(
            &mut r,
            &mut names,
            "api_rate_limited",
            "Public reads refused by the rate limit",
            daemon.api_rate_limited.clone(),
        );
        Metrics {
            registry: r,
            names,
            chain,
            daemon,
        }
    }

    /// Every registered family name (`softstake_...`, before the encoder's
    /// `_total` / `_bucket` / `_sum` / `_count` suffixes).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_units_and_counters_end_in_total() {
        let m = Metrics::new();
        let l = chain_labels(ChainId::Ethereum);
        m.chain
            .rewards_collected_coins
            .get_or_create(&l)
            .inc_by(coins(
                ChainId::Ethereum,
                Amount::from_base(1_500_000_000_000_000_000),
            ));
        m.chain.liabilities_coins.get_or_create(&l).set(2.0);
        let text = m.encode();
        assert!(
            text.contains("softstake_rewards_collected_coins_total{chain=\"ethereum\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("softstake_pool_liabilities_coins{chain=\"ethereum\"} 2.0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_dashboard_and_the_alert_rules_use_only_metrics_that_exist() {
        let m = Metrics::new();
        let known = |t: &str| {
            m.names().iter().any(|n| {
                t == n
                    || ["_total", "_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| t == format!("{n}{s}"))
            })
        };
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
        for file in ["grafana/softstake.json", "prometheus/alerts.yml"] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            let mut used = 0;
            for (i, _) in text.match_indices("softstake_") {
                let tok: String = text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if tok == "softstake_" {
                    continue;
                }
                used += 1;
                assert!(
                    known(&tok),
                    "{file} uses {tok}, which softstake does not export"
                );
            }
            assert!(used >= 8, "{file} uses only {used} softstake metrics");
        }
    }
}
