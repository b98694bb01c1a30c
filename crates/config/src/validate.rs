//! Semantic validation: [`ConfigFile`] -> typed [`Config`].

use crate::{
    BooksSettings, BufferPolicy, ChainConfig, ChainSection, ConfigFile, ConfigIssue, LossBearer,
    NetworkTable, SafetyLimits, SecretRef, ValidatorConfig,
};
use rust_decimal::Decimal;
use softstake_core::{Amount, ChainId, Rate};
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

/// Every problem found by [`ConfigFile::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid config: {}", lines.join("; "))
    }
}

/// Which database, from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// A validated config. Its `Debug` shows the database URL redacted.
#[derive(Clone)]
pub struct Config {
    /// Database URL (may contain a password; log [`Config::database_url_redacted`]).
    pub database_url: String,
    /// Database kind.
    pub database_kind: DatabaseKind,
    /// Pool size.
    pub max_connections: u32,
    /// API listen address.
    pub api_listen: SocketAddr,
    /// Public read requests per second per client address.
    pub read_rate_limit: u32,
    /// Connections the API serves at once.
    pub api_max_connections: usize,
    /// Header read (and keep-alive idle) timeout.
    pub api_header_read_timeout: std::time::Duration,
    /// Request timeout.
    pub api_request_timeout: std::time::Duration,
    /// Exchange token reference.
    pub exchange_token: Option<SecretRef>,
    /// Admin token reference.
    pub admin_token: Option<SecretRef>,
    /// Metrics listen address.
    pub metrics_listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Chains, in file order.
    pub chains: Vec<ChainConfig>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url_redacted())
            .field("database_kind", &self.database_kind)
            .field("max_connections", &self.max_connections)
            .field("api_listen", &self.api_listen)
            .field("read_rate_limit", &self.read_rate_limit)
            .field("api_max_connections", &self.api_max_connections)
            .field("api_header_read_timeout", &self.api_header_read_timeout)
            .field("api_request_timeout", &self.api_request_timeout)
            .field("exchange_token", &self.exchange_token)
            .field("admin_token", &self.admin_token)
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("chains", &self.chains)
            .finish()
    }
}

impl Config {
    /// The database URL with any password replaced by `***`.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }

    /// The chain section for `chain`, if configured.
    pub fn chain(&self, chain: ChainId) -> Option<&ChainConfig> {
        self.chains.iter().find(|c| c.chain == chain)
    }
}

pub use softstake_core::secret::redact_url;

struct Collector(Vec<ConfigIssue>);

impl Collector {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue::new(key, message));
    }

    fn rate(&mut self, key: String, v: Decimal) -> Rate {
        Rate::new(v).unwrap_or_else(|_| {
            self.push(
                key,
                format!("{v} is outside 0..=1 (write a share, e.g. \"0.10\" for 10%)"),
            );
            Rate::ZERO
        })
    }

    fn amount(&mut self, key: String, v: &str, chain: ChainId) -> Amount {
        Amount::parse_units(v, chain.decimals()).unwrap_or_else(|e| {
            self.push(key, format!("{e} (in {})", chain.asset()));
            Amount::ZERO
        })
    }

    fn addr(&mut self, key: &str, v: &str) -> SocketAddr {
        v.parse().unwrap_or_else(|_| {
            self.push(
                key,
                format!("{v:?} is not an address:port (e.g. 127.0.0.1:8080)"),
            );
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
}

impl ConfigFile {
    /// Checks everything serde cannot and returns the typed config, or every
    /// problem found, each naming its key.
    pub fn validate(&self) -> Result<Config, ConfigErrors> {
        let mut c = Collector(Vec::new());
        let url = self.database.url.trim().to_owned();
        let database_kind = if url.starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DatabaseKind::Postgres
        } else {
            c.push(
                "database.url",
                format!(
                    "{:?} is neither sqlite://PATH nor postgres://...",
                    redact_url(&url)
                ),
            );
            DatabaseKind::Sqlite
        };
        if self.database.max_connections == 0 {
            c.push("database.max_connections", "must be at least 1");
        }
        let api_listen = c.addr("api.listen", &self.api.listen);
        let metrics_listen = c.addr("metrics.listen", &self.metrics.listen);
        if self.api.read_rate_limit == 0 {
            c.push(
                "api.read_rate_limit",
                "must be at least 1 request per second",
            );
        }
        if self.api.max_connections == 0 {
            c.push("api.max_connections", "must be at least 1");
        }
        if self.api.header_read_timeout_secs == 0 {
            c.push("api.header_read_timeout_secs", "must be at least 1");
        }
        if self.api.request_timeout_secs == 0 {
            c.push("api.request_timeout_secs", "must be at least 1");
        }
        if api_listen == metrics_listen && api_listen.port() != 0 {
            c.push("metrics.listen", "must differ from api.listen");
        }
        let log_format = match self.log.format.as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                c.push(
                    "log.format",
                    format!("{other:?} is neither \"human\" nor \"json\""),
                );
                LogFormat::Human
            }
        };
        let mut seen = BTreeSet::new();
        let mut chains = Vec::new();
        for (i, s) in self.chains.iter().enumerate() {
            let Some(network) = network_table(&mut c, i, s) else {
                continue;
            };
            let chain = network.chain;
            if !seen.insert(chain) {
                c.push(
                    format!("chains[{i}].network.type"),
                    format!("{chain} is configured twice; one section per chain"),
                );
            }
            chains.push(validate_chain(&mut c, i, s, network));
        }
        if c.0.is_empty() {
            Ok(Config {
                database_url: url,
                database_kind,
                max_connections: self.database.max_connections,
                api_listen,
                read_rate_limit: self.api.read_rate_limit,
                api_max_connections: usize::try_from(self.api.max_connections)
                    .unwrap_or(usize::MAX),
                api_header_read_timeout: std::time::Duration::from_secs(
                    self.api.header_read_timeout_secs,
                ),
                api_request_timeout: std::time::Duration::from_secs(self.api.request_timeout_secs),
                exchange_token: self.api.exchange_token.clone(),
                admin_token: self.api.admin_token.clone(),
                metrics_listen,
                log_format,
                log_level: self.log.level.clone(),
                chains,
            })
        } else {
            Err(ConfigErrors(c.0))
        }
    }
}

/// `[chains.network]`'s `type`, and the rest of the table for the chain's
/// crate.
fn network_table(c: &mut Collector, i: usize, s: &ChainSection) -> Option<NetworkTable> {
    let key = format!("chains[{i}].network.type");
    let mut table = s.network.clone();
    match table.remove("type") {
        Some(toml::Value::String(t)) => match t.parse::<ChainId>() {
            Ok(chain) if chain.as_str() == t => Some(NetworkTable { chain, table }),
            _ => {
                c.push(
                    key,
                    format!(
                        "{t:?} names no chain: expected one of {}",
                        ChainId::ALL.map(ChainId::as_str).join(", ")
                    ),
                );
                None
            }
        },
        Some(_) => {
            c.push(key, "must be a string naming the chain (\"cosmos\")");
            None
        }
        None => {
            c.push(key, "is missing: name the chain (type = \"cosmos\")");
            None
        }
    }
}

fn validate_chain(
    c: &mut Collector,
    i: usize,
    s: &ChainSection,
    network: NetworkTable,
) -> ChainConfig {
    let chain = network.chain;
    let k = |key: &str| format!("chains[{i}].{key}");
    if s.endpoints.is_empty() {
        c.push(
            k("endpoints"),
            format!("{chain} needs at least one endpoint"),
        );
    }
    for (j, e) in s.endpoints.iter().enumerate() {
        let ok = ["http://", "https://", "ws://", "wss://"]
            .iter()
            .any(|p| e.starts_with(p) && e.len() > p.len());
        if !ok {
            c.push(
                k(&format!("endpoints[{j}]")),
                format!(
                    "{:?} is not an http(s):// or ws(s):// URL",
                    softstake_core::secret::redact_endpoint(e)
                ),
            );
        }
    }
    if s.interval_secs == 0 {
        c.push(k("interval_secs"), "must be at least 1");
    }
    let commission = c.rate(k("commission"), s.commission);
    let min_eligible_balance = c.amount(k("min_eligible_balance"), &s.min_eligible_balance, chain);
    let mut addrs = BTreeSet::new();
    let mut validators = Vec::new();
    for (j, v) in s.validators.iter().enumerate() {
        let vk = |key: &str| k(&format!("validators[{j}].{key}"));
        if v.address.trim().is_empty() {
            c.push(vk("address"), "is empty");
        } else if !addrs.insert(v.address.clone()) {
            c.push(vk("address"), format!("duplicate validator {}", v.address));
        }
        if v.weight == 0 {
            c.push(vk("weight"), "must be greater than 0");
        }
        let cap = c.rate(vk("cap"), v.cap);
        if v.cap.is_zero() {
            c.push(vk("cap"), "must be greater than 0");
        }
        validators.push(ValidatorConfig {
            address: v.address.clone(),
            weight: v.weight,
            cap,
        });
    }
    if s.enabled && validators.is_empty() {
        c.push(
            k("validators"),
            format!("enabled chain {chain} has no validators"),
        );
    }
    let target = c.rate(k("buffer.target"), s.buffer.target);
    let band = c.rate(k("buffer.band"), s.buffer.band);
    if band.value() > target.value() || target.value() + band.value() > Decimal::ONE {
        c.push(
            k("buffer.band"),
            format!(
                "target {} +/- band {} must stay within 0..=1",
                target.value(),
                band.value()
            ),
        );
    }
    let min_operation = c.amount(k("buffer.min_operation"), &s.buffer.min_operation, chain);
    let advance_limit = match &s.buffer.advance_limit {
        Some(a) => c.amount(k("buffer.advance_limit"), a, chain),
        None => Amount::ZERO,
    };
    let fee_reserve = match &s.buffer.fee_reserve {
        Some(a) => c.amount(k("buffer.fee_reserve"), a, chain),
        None => Amount::ZERO,
    };
    let sizing = s.buffer.sizing.as_ref().map(|z| {
        if z.quantile <= Decimal::ZERO || z.quantile > Decimal::ONE {
            c.push(k("buffer.sizing.quantile"), "must be above 0 and at most 1");
        }
        if z.horizon_days == 0 || z.horizon_days > 3_650 {
            c.push(k("buffer.sizing.horizon_days"), "must be 1 to 3650");
        }
        let floor = c.rate(k("buffer.sizing.floor"), z.floor);
        let ceiling = c.rate(k("buffer.sizing.ceiling"), z.ceiling);
        if floor.value() > ceiling.value() {
            c.push(k("buffer.sizing.floor"), "is above buffer.sizing.ceiling");
        }
        if band.value() > floor.value() {
            c.push(
                k("buffer.sizing.floor"),
                format!(
                    "is below buffer.band {}: the band must fit under every target",
                    band.value()
                ),
            );
        }
        if ceiling.value() + band.value() > Decimal::ONE {
            c.push(k("buffer.sizing.ceiling"), "plus buffer.band is above 1");
        }
        softstake_core::config::BufferSizing {
            quantile: Rate::new(z.quantile.clamp(Decimal::ZERO, Decimal::ONE)).unwrap_or(Rate::ONE),
            horizon_secs: z.horizon_days.saturating_mul(86_400),
            floor,
            ceiling,
        }
    });
    let max_per_operation = c.amount(
        k("safety.max_per_operation"),
        &s.safety.max_per_operation,
        chain,
    );
    let max_per_day = c.amount(k("safety.max_per_day"), &s.safety.max_per_day, chain);
    let approval_threshold = c.amount(
        k("safety.approval_threshold"),
        &s.safety.approval_threshold,
        chain,
    );
    if max_per_operation > max_per_day {
        c.push(
            k("safety.max_per_operation"),
            "is larger than safety.max_per_day",
        );
    }
    if approval_threshold > max_per_operation {
        c.push(
            k("safety.approval_threshold"),
            "is larger than safety.max_per_operation, so approval could never be needed",
        );
    }
    if min_operation > max_per_operation {
        c.push(
            k("buffer.min_operation"),
            "is larger than safety.max_per_operation",
        );
    }
    ChainConfig {
        chain,
        enabled: s.enabled,
        endpoints: s.endpoints.clone(),
        key: s.key.clone(),
        interval_secs: s.interval_secs,
        commission,
        min_eligible_balance,
        validators,
        buffer: BufferPolicy {
            target,
            band,
            min_operation,
            advance_limit,
            fee_reserve,
            sizing,
        },
        safety: SafetyLimits {
            max_per_operation,
            max_per_day,
            approval_threshold,
            dry_run: s.safety.dry_run,
            max_validator_commission: s
                .safety
                .max_validator_commission
                .map(|r| c.rate(k("safety.max_validator_commission"), r)),
        },
        books: BooksSettings {
            fees: s.books.fees,
            losses: match s.books.losses.as_deref() {
                None | Some("platform") => LossBearer::Platform,
                Some("pool") => LossBearer::Pool,
                Some("users") => LossBearer::Users,
                Some(other) => {
                    c.push(
                        k("books.losses"),
                        format!(
                            "{other:?} is not a loss rule: use \"platform\", \"pool\" or \"users\""
                        ),
                    );
                    LossBearer::Platform
                }
            },
            max_unannounced_per_day: match s.books.max_unannounced_per_day {
                Some(d) => c.rate(k("books.max_unannounced_per_day"), d),
                None => BooksSettings::default().max_unannounced_per_day,
            },
            settle_secs: s.books.settle_secs,
            loss_netting_secs: match s.books.loss_netting_days {
                Some(0) => {
                    c.push(
                        k("books.loss_netting_days"),
                        "must be at least 1 (a share nobody can net is the platform's at once: use losses = \"platform\")",
                    );
                    0
                }
                Some(d) if d > 3650 => {
                    c.push(
                        k("books.loss_netting_days"),
                        "must be at most 3650 (ten years)",
                    );
                    0
                }
                Some(d) => d * 86_400,
                None => softstake_core::config::DEFAULT_LOSS_NETTING_SECS,
            },
            losses_commission_first: s.books.losses_commission_first.unwrap_or(false),
        },
        network,
    }
}
