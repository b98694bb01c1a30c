//! Semantic validation: [`ConfigFile`] -> typed [`Config`].

use crate::{ChainSection, ConfigFile, NetworkSection, SecretRef};
use rust_decimal::Decimal;
use softstake_core::{Amount, ChainId, Rate};
use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

/// One problem, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path (`chains[0].commission`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

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

/// A validated config.
#[derive(Debug, Clone)]
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

/// A validated validator entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorConfig {
    /// Address.
    pub address: String,
    /// Weight (> 0).
    pub weight: u32,
    /// Cap as share of staked pool.
    pub cap: Rate,
}

/// A validated buffer policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferPolicy {
    /// Target liquid share of liabilities.
    pub target: Rate,
    /// Band either side of the target.
    pub band: Rate,
    /// Smallest operation worth sending.
    pub min_operation: Amount,
}

/// Validated safety limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyLimits {
    /// Per operation cap.
    pub max_per_operation: Amount,
    /// Per UTC day cap.
    pub max_per_day: Amount,
    /// Approval threshold.
    pub approval_threshold: Amount,
    /// Never broadcast.
    pub dry_run: bool,
}

/// A validated chain section.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// Chain.
    pub chain: ChainId,
    /// Enabled.
    pub enabled: bool,
    /// RPC endpoints.
    pub endpoints: Vec<String>,
    /// Signing key reference.
    pub key: SecretRef,
    /// Loop interval.
    pub interval_secs: u64,
    /// Commission rate.
    pub commission: Rate,
    /// Minimum eligible balance.
    pub min_eligible_balance: Amount,
    /// Validators.
    pub validators: Vec<ValidatorConfig>,
    /// Buffer policy.
    pub buffer: BufferPolicy,
    /// Safety limits.
    pub safety: SafetyLimits,
    /// Network settings.
    pub network: NetworkSection,
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
        self.0.push(ConfigIssue {
            key: key.into(),
            message: message.into(),
        });
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
            let chain = s.network.chain();
            if !seen.insert(chain) {
                c.push(
                    format!("chains[{i}].network.type"),
                    format!("{chain} is configured twice; one section per chain"),
                );
            }
            chains.push(validate_chain(&mut c, i, s));
        }
        if c.0.is_empty() {
            Ok(Config {
                database_url: url,
                database_kind,
                max_connections: self.database.max_connections,
                api_listen,
                read_rate_limit: self.api.read_rate_limit,
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

fn validate_chain(c: &mut Collector, i: usize, s: &ChainSection) -> ChainConfig {
    let chain = s.network.chain();
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
                format!("{:?} is not an http(s):// or ws(s):// URL", redact_url(e)),
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
    match &s.network {
        NetworkSection::Ethereum(n) => {
            if n.chain_id == 0 {
                c.push(k("network.chain_id"), "must be a positive EIP-155 chain id");
            }
            if n.beacon_endpoints.is_empty() {
                c.push(
                    k("network.beacon_endpoints"),
                    "is empty: the pool's validators are read from the Beacon API",
                );
            }
            let is_hex = |v: &str, bytes: usize| {
                v.strip_prefix("0x").is_some_and(|h| {
                    h.len() == 2 * bytes && h.chars().all(|c| c.is_ascii_hexdigit())
                })
            };
            if !is_hex(&n.fork_version, 4) {
                c.push(
                    k("network.fork_version"),
                    format!("{:?} is not 0x + 8 hex digits", n.fork_version),
                );
            }
            for (key, v) in [
                ("network.deposit_contract", Some(&n.deposit_contract)),
                (
                    "network.withdrawal_request_contract",
                    Some(&n.withdrawal_request_contract),
                ),
                ("network.fee_recipient", n.fee_recipient.as_ref()),
            ] {
                if let Some(v) = v.filter(|v| !is_hex(v, 20)) {
                    c.push(k(key), format!("{v:?} is not a 0x-hex address"));
                }
            }
            if s.enabled
                && n.deposit_data_dir
                    .as_deref()
                    .is_none_or(|d| d.trim().is_empty())
            {
                c.push(
                    k("network.deposit_data_dir"),
                    "is required: deposits are made only from staking-deposit-cli deposit data",
                );
            }
            if s.validators.len() > 1 {
                c.push(k("validators"), "an Ethereum pool names one operator (its label); the operator's validator keys come from deposit_data_dir");
            }
            if n.max_gas == 0 || n.max_fee_per_gas_gwei == 0 {
                c.push(
                    k("network.max_gas"),
                    "max_gas and max_fee_per_gas_gwei must be at least 1",
                );
            }
        }
        NetworkSection::Polkadot(n) => {
            if !(n.genesis_hash.starts_with("0x")
                && n.genesis_hash.len() == 66
                && n.genesis_hash[2..].chars().all(|ch| ch.is_ascii_hexdigit()))
            {
                c.push(
                    k("network.genesis_hash"),
                    "must be 0x followed by 64 hex digits",
                );
            }
            if !(4..=65_536).contains(&n.era_period_blocks)
                || !n.era_period_blocks.is_power_of_two()
            {
                c.push(
                    k("network.era_period_blocks"),
                    format!(
                        "{} is not a power of two from 4 to 65536",
                        n.era_period_blocks
                    ),
                );
            }
            if s.validators.len() > 16 {
                c.push(
                    k("validators"),
                    format!(
                        "{} nomination targets; Polkadot allows at most 16 (the runtime's quota is checked again before signing)",
                        s.validators.len()
                    ),
                );
            }
            if n.payee.trim().is_empty() {
                c.push(
                    k("network.payee"),
                    "is empty: Staked, Stash or an SS58 account",
                );
            }
        }
        NetworkSection::Cosmos(n) => {
            if n.chain_id.trim().is_empty() {
                c.push(k("network.chain_id"), "is empty");
            }
            match Decimal::from_str_exact(&n.gas_price) {
                Ok(v) if v >= Decimal::ZERO => {}
                _ => c.push(
                    k("network.gas_price"),
                    format!("{:?} is not a non-negative decimal", n.gas_price),
                ),
            }
            match Decimal::from_str_exact(&n.gas_multiplier) {
                Ok(v) if v >= Decimal::ONE => {}
                _ => c.push(
                    k("network.gas_multiplier"),
                    format!("{:?} is not a decimal >= 1", n.gas_multiplier),
                ),
            }
            if n.max_gas == 0 {
                c.push(k("network.max_gas"), "must be at least 1");
            }
            if n.timeout_blocks == 0 {
                c.push(k("network.timeout_blocks"), "must be at least 1");
            }
        }
        NetworkSection::Tezos(n) => {
            if n.chain_id.trim().is_empty() {
                c.push(k("network.chain_id"), "is empty");
            }
            if n.mode != "staking" && n.mode != "delegation" {
                c.push(
                    k("network.mode"),
                    format!("{:?} is neither \"staking\" nor \"delegation\"", n.mode),
                );
            }
            if n.expected_payout_cycles == Some(0) {
                c.push(k("network.expected_payout_cycles"), "must be at least 1");
            }
        }
        NetworkSection::Cardano(n) => {
            if n.stake_key.is_none() {
                c.push(
                    k("network.stake_key"),
                    "is required: the stake key signs registration, delegation and withdrawals",
                );
            }
            let drep_ok = matches!(n.drep.as_str(), "always_abstain" | "always_no_confidence")
                || n.drep.split_once(':').is_some_and(|(kind, h)| {
                    matches!(kind, "key" | "script")
                        && h.len() == 56
                        && h.chars().all(|c| c.is_ascii_hexdigit())
                });
            if !drep_ok {
                c.push(k("network.drep"), format!("{:?} is not always_abstain, always_no_confidence, key:<56 hex> or script:<56 hex>", n.drep));
            }
            if n.ttl_slots == 0 {
                c.push(k("network.ttl_slots"), "must be at least 1");
            }
        }
        NetworkSection::Solana(n) => {
            let base58 = |v: &str| {
                (32..=44).contains(&v.len())
                    && v.chars().all(|ch| {
                        ch.is_ascii_alphanumeric() && !matches!(ch, '0' | 'O' | 'I' | 'l')
                    })
            };
            if !base58(n.genesis_hash.trim()) {
                c.push(
                    k("network.genesis_hash"),
                    format!("{:?} is not a base58 hash", n.genesis_hash),
                );
            }
            if let Some(w) = n.withdrawer.as_deref().filter(|w| !base58(w)) {
                c.push(
                    k("network.withdrawer"),
                    format!("{w:?} is not a base58 Solana address"),
                );
            }
            if n.compute_unit_limit == 0 || n.compute_unit_limit > 1_400_000 {
                c.push(
                    k("network.compute_unit_limit"),
                    "must be between 1 and 1400000",
                );
            }
            if n.slot_ms == 0 {
                c.push(k("network.slot_ms"), "must be at least 1");
            }
        }
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
        },
        safety: SafetyLimits {
            max_per_operation,
            max_per_day,
            approval_threshold,
            dry_run: s.safety.dry_run,
        },
        network: s.network.clone(),
    }
}
