//! The TOML file as written: every struct rejects unknown keys.

use crate::SecretRef;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

/// Rates are exact decimal strings ("0.10"); a TOML float (0.1) is refused
/// rather than converted, so no binary float ever becomes a money rate.
fn decimal_str<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    match Raw::deserialize(d)? {
        // Exactly or not at all: a rate with more digits than a Decimal
        // holds (28 after the point) is refused, never rounded (rounding
        // "0.99999999999999999999999999999" up made a commission of 1).
        Raw::Text(s) => Decimal::from_str_exact(s.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not a decimal this program can hold exactly: {e}"
            ))
        }),
        Raw::Int(i) => Ok(Decimal::from(i)),
        Raw::Float(f) => Err(serde::de::Error::custom(format!(
            "{f} is a float; write rates as decimal strings, e.g. \"0.10\""
        ))),
    }
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[database]`.
    #[serde(default)]
    pub database: DatabaseSection,
    /// `[api]`.
    #[serde(default)]
    pub api: ApiSection,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[log]`.
    #[serde(default)]
    pub log: LogSection,
    /// `[[chains]]`: one per chain, at most one per chain id.
    #[serde(default)]
    pub chains: Vec<ChainSection>,
}

/// `[database]`. Its `Debug` shows the URL redacted.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://path/softstake.db` (created on first run) or `postgres://...`.
    /// A password in the URL is redacted from every log line.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Connection pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_db_url() -> String {
    "sqlite://softstake.db".to_owned()
}
fn default_max_connections() -> u32 {
    8
}

impl std::fmt::Debug for DatabaseSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSection")
            .field("url", &softstake_core::secret::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: default_db_url(),
            max_connections: default_max_connections(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Listen address (`127.0.0.1:8080`; port 0 picks a free port).
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// Bearer token of the exchange backend.
    #[serde(default)]
    pub exchange_token: Option<SecretRef>,
    /// Bearer token of operators.
    #[serde(default)]
    pub admin_token: Option<SecretRef>,
    /// Public read requests per second per client address (burst: twice that).
    #[serde(default = "default_read_rate_limit")]
    pub read_rate_limit: u32,
    /// Connections the API serves at once; more are closed at once (the
    /// metrics listener, with `/healthz` and `/readyz`, has its own).
    #[serde(default = "default_api_max_connections")]
    pub max_connections: u32,
    /// Seconds a connection may take to send a request's headers; also how
    /// long an idle keep-alive connection stays open.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take before it is answered 503.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
}

fn default_api_max_connections() -> u32 {
    512
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    60
}

fn default_read_rate_limit() -> u32 {
    20
}

fn default_api_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: default_api_listen(),
            exchange_token: None,
            admin_token: None,
            read_rate_limit: default_read_rate_limit(),
            max_connections: default_api_max_connections(),
            header_read_timeout_secs: default_header_read_timeout(),
            request_timeout_secs: default_request_timeout(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Prometheus listen address.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9100".to_owned()
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: default_metrics_listen(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `human` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter (`info`, `softstake=debug,sqlx=warn`).
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_format() -> String {
    "human".to_owned()
}
fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

/// `[[chains]]`: one chain's pool. Its `Debug` shows URLs redacted.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// Whether the daemon runs this chain's loop.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// RPC endpoints, tried in order with fallback.
    pub endpoints: Vec<String>,
    /// The custody signing key.
    pub key: SecretRef,
    /// Seconds between cycles of the chain loop.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Platform commission on rewards, as a decimal string in 0..=1 ("0.10").
    #[serde(deserialize_with = "decimal_str")]
    pub commission: Decimal,
    /// Minimum liquid balance (display units) for a user to earn; default 0.
    #[serde(default = "zero_amount")]
    pub min_eligible_balance: String,
    /// Validators to delegate to.
    #[serde(default)]
    pub validators: Vec<ValidatorSection>,
    /// Liquidity buffer policy.
    pub buffer: BufferSection,
    /// Safety limits.
    pub safety: SafetySection,
    /// The pool's books (optional: defaults below).
    #[serde(default)]
    pub books: BooksSection,
    /// Chain-specific settings: `type` names the chain; the rest is read by
    /// that chain's crate (`chains/<x>/src/config.rs`), which refuses
    /// unknown keys.
    pub network: toml::Table,
}

impl std::fmt::Debug for ChainSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSection")
            .field("enabled", &self.enabled)
            .field(
                "endpoints",
                &softstake_core::secret::redact_endpoints(&self.endpoints),
            )
            .field("key", &self.key)
            .field("interval_secs", &self.interval_secs)
            .field("commission", &self.commission)
            .field("min_eligible_balance", &self.min_eligible_balance)
            .field("validators", &self.validators)
            .field("buffer", &self.buffer)
            .field("safety", &self.safety)
            .field("books", &self.books)
            .field(
                "network",
                &softstake_core::config::redacted_table(&self.network),
            )
            .finish()
    }
}

fn yes() -> bool {
    true
}
fn default_interval() -> u64 {
    60
}
fn zero_amount() -> String {
    "0".to_owned()
}

/// `[[chains.validators]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSection {
    /// The chain's id for the validator (vote account, valoper, pool id, ...).
    pub address: String,
    /// Relative weight (> 0) of the target stake.
    #[serde(default = "one")]
    pub weight: u32,
    /// Most this validator may hold, as a share of the staked pool (0..=1).
    #[serde(default = "one_decimal", deserialize_with = "decimal_str")]
    pub cap: Decimal,
}

fn one() -> u32 {
    1
}
fn one_decimal() -> Decimal {
    Decimal::ONE
}

/// `[chains.buffer]`: the unstaked share kept for withdrawals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    /// Target liquid share of liabilities (0..=1).
    #[serde(deserialize_with = "decimal_str")]
    pub target: Decimal,
    /// Allowed deviation either side of the target (0..=1).
    #[serde(deserialize_with = "decimal_str")]
    pub band: Decimal,
    /// Smallest operation worth sending (display units).
    pub min_operation: String,
    /// The most the platform's treasury fronts at once for withdrawals the
    /// buffer cannot cover (display units; absent or 0: no advance line,
    /// such withdrawals queue for unbonding).
    #[serde(default)]
    pub advance_limit: Option<String>,
    /// What custody keeps for transaction fees (display units; absent: 0):
    /// never granted to withdrawals, so the pool can always pay for the
    /// unstaking and withdrawing that refill the buffer.
    #[serde(default)]
    pub fee_reserve: Option<String>,
    /// Derive the target from the exchange's own withdrawals (then `target`
    /// is not used).
    #[serde(default)]
    pub sizing: Option<SizingSection>,
}

/// `[chains.buffer.sizing]`: the buffer target from observed outflows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizingSection {
    /// Share of unbonding-long windows the buffer must cover (0 < q <= 1;
    /// e.g. "0.999").
    #[serde(deserialize_with = "decimal_str")]
    pub quantile: Decimal,
    /// Days of withdrawal history counted.
    pub horizon_days: u64,
    /// Lowest target share of liabilities.
    #[serde(deserialize_with = "decimal_str")]
    pub floor: Decimal,
    /// Highest target share of liabilities.
    #[serde(deserialize_with = "decimal_str")]
    pub ceiling: Decimal,
}

/// `[chains.safety]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetySection {
    /// Most value one operation may move (display units).
    pub max_per_operation: String,
    /// Most value moved per UTC day (display units).
    pub max_per_day: String,
    /// Operations moving more than this wait for `softstake approve`.
    pub approval_threshold: String,
    /// Plan and log only: nothing is journaled, signed or broadcast.
    #[serde(default)]
    pub dry_run: bool,
    /// The most commission a validator may charge and keep the pool's
    /// stake ("0.10"); none by default. A validator the chain shows above
    /// it gets no new stake, and its stake is moved where the chain moves
    /// stake without unbonding.
    #[serde(default, deserialize_with = "opt_decimal_str")]
    pub max_validator_commission: Option<Decimal>,
}

/// `[chains.books]`: how the pool's books treat fees and income nobody
/// announced.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BooksSection {
    /// Who bears transaction and request fees: `platform` (default: taken
    /// from the commission owed to the platform, never from a user's
    /// credit) or `pool`.
    #[serde(default)]
    pub fees: softstake_core::config::FeeBearer,
    /// Who bears losses: `platform` (default: charged to the commission
    /// owed to the platform; below zero, a shortfall it owes the pool),
    /// `pool` (they lower the backing) or `users` (allocated over the
    /// users who held during the loss's period by time-weighted balance,
    /// netted against their later credits).
    #[serde(default)]
    pub losses: Option<String>,
    /// Under `losses = "users"`: days after a loss's period during which
    /// its shares are netted against users' credits (default 90); what is
    /// not netted by then is the platform's shortfall.
    #[serde(default)]
    pub loss_netting_days: Option<u64>,
    /// Under `losses = "users"`: take a loss from the commission owed to
    /// the platform first, and allocate only the rest (default false).
    #[serde(default)]
    pub losses_commission_first: Option<bool>,
    /// Unannounced income above this fraction of holdings per day is held
    /// until an operator confirms it (default "0.001").
    #[serde(default, deserialize_with = "opt_decimal_str")]
    pub max_unannounced_per_day: Option<Decimal>,
    /// Seconds a residual must persist before it is income (default 0: one
    /// snapshot interval); set it above the chain's lag between a reward
    /// reaching the custody accounts and its evidence being final.
    #[serde(default)]
    pub settle_secs: u64,
}

fn opt_decimal_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    decimal_str(d).map(Some)
}

impl ConfigFile {
    /// Parses a TOML table into the config.
    pub fn deserialize_table(t: toml::Table) -> Result<ConfigFile, toml::de::Error> {
        // Round-trip through text so errors carry line and key context.
        toml::from_str(&toml::to_string(&t).unwrap_or_default())
    }

    /// Keys of a scalar section, for environment overrides.
    pub fn section_keys(section: &str) -> &'static [&'static str] {
        match section {
            "database" => &["url", "max_connections"],
            "api" => &[
                "listen",
                "exchange_token",
                "admin_token",
                "read_rate_limit",
                "max_connections",
                "header_read_timeout_secs",
                "request_timeout_secs",
            ],
            "metrics" => &["listen"],
            "log" => &["format", "level"],
            _ => &[],
        }
    }

    /// Whether `section.key` holds a [`SecretRef`].
    pub fn is_secret_key(section: &str, key: &str) -> bool {
        section == "api" && (key == "exchange_token" || key == "admin_token")
    }
}
