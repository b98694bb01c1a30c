//! The validated chain section every chain crate receives, and the shape of
//! a configuration problem.
//!
//! `softstake-config` parses the file and checks the part common to every
//! chain (commission, buffer, safety limits, validators' weights and caps);
//! the chain's own settings stay a raw table ([`NetworkTable`]) that only
//! the chain's crate reads, once, into its typed settings with
//! `deny_unknown_fields` (see [`crate::plugin::ChainPlugin`]).

use crate::{Amount, ChainId, Rate, SecretRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One problem, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path (`chains[0].commission`; a chain crate names keys
    /// relative to its section, `network.gas_price`, and the registry puts
    /// `chains[i].` in front).
    pub key: String,
    /// What is wrong. Never the value of a secret.
    pub message: String,
}

impl ConfigIssue {
    /// An issue about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The same issue under `prefix` (`chains[2]`).
    pub fn under(self, prefix: &str) -> Self {
        ConfigIssue {
            key: format!("{prefix}.{}", self.key),
            message: self.message,
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
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
    /// The most the treasury fronts at once for withdrawals the buffer
    /// cannot cover (0: none).
    pub advance_limit: Amount,
    /// Kept in custody for transaction fees, never granted to withdrawals.
    pub fee_reserve: Amount,
    /// The target derived from the exchange's own withdrawals instead of
    /// the fixed `target` (softstake_planner::sizing), when configured.
    pub sizing: Option<BufferSizing>,
}

/// `buffer.sizing`, validated: the buffer target from observed outflows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferSizing {
    /// Which share of windows the buffer must cover (0 < q <= 1).
    pub quantile: Rate,
    /// How far back the history counts.
    pub horizon_secs: u64,
    /// Lowest target.
    pub floor: Rate,
    /// Highest target.
    pub ceiling: Rate,
}

/// Who bears the pool's fees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeBearer {
    /// The platform: fees are taken from the commission owed to it, never
    /// from a user's credit (the default).
    #[default]
    Platform,
    /// The pool: fees lower the backing of what users are owed.
    Pool,
}

impl FeeBearer {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeeBearer::Platform => "platform",
            FeeBearer::Pool => "pool",
        }
    }
}

/// Who bears the pool's losses (slashing, penalties, unexplained falls in
/// holdings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossBearer {
    /// The platform (the default): a loss is charged to the commission owed
    /// to it; below zero that is a shortfall the platform owes the pool,
    /// shown and alerted until it pays in (a declared `commission`
    /// transfer). Users' balances and credits are untouched.
    #[default]
    Platform,
    /// Nobody by rule: the loss lowers the pool's backing.
    Pool,
    /// The users who held during the period the loss was incurred bear it,
    /// in proportion to their time-weighted balance (rounded down per
    /// user: what rounding leaves is the platform's), first netted against
    /// the commission owed where `losses_commission_first` says so; each
    /// share is netted against the user's later credits (never a negative
    /// credit) and what is not netted within `loss_netting_days` becomes
    /// the platform's shortfall.
    Users,
}

impl LossBearer {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            LossBearer::Platform => "platform",
            LossBearer::Pool => "pool",
            LossBearer::Users => "users",
        }
    }
}

/// Validated `[chains.books]`: how the pool's books treat fees, losses and
/// unannounced income.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BooksSettings {
    /// Who bears fees.
    pub fees: FeeBearer,
    /// Who bears losses.
    pub losses: LossBearer,
    /// Sanity bound on unannounced income found by the books, as a
    /// fraction of holdings per day: more is held until an operator
    /// confirms it (`softstake books confirm`).
    pub max_unannounced_per_day: Rate,
    /// How long a residual must persist before it is income: at least one
    /// snapshot interval, and this many seconds where a chain evidences
    /// rewards later than they reach the holdings (finality lag).
    pub settle_secs: u64,
    /// Under the `users` rule: how long after a loss's period its shares
    /// are netted against users' credits; what remains then is the
    /// platform's.
    pub loss_netting_secs: u64,
    /// Under the `users` rule: a loss is first taken from the commission
    /// owed to the platform (as far as it is above zero), and only the
    /// rest is allocated to users.
    pub losses_commission_first: bool,
}

/// Default of `loss_netting_days`: 90 days.
pub const DEFAULT_LOSS_NETTING_SECS: u64 = 90 * 86_400;

impl Default for BooksSettings {
    fn default() -> Self {
        BooksSettings {
            fees: FeeBearer::Platform,
            losses: LossBearer::Platform,
            // 0.1% of holdings a day (~44% a year): far above any chain's
            // staking yield, so only a spike or a mistake is held.
            max_unannounced_per_day: Rate::new(rust_decimal::Decimal::new(1, 3))
                .unwrap_or(Rate::ZERO),
            settle_secs: 0,
            loss_netting_secs: DEFAULT_LOSS_NETTING_SECS,
            losses_commission_first: false,
        }
    }
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
    /// The most commission a validator may charge and keep the pool's
    /// stake (none: any).
    pub max_validator_commission: Option<Rate>,
}

/// `[chains.network]` as written, less its `type`: read only by the chain's
/// own crate, into its typed settings. Its `Debug` shows every URL in it
/// through [`crate::secret::redact_endpoint`] (a Beacon endpoint carries a
/// provider key as often as an RPC one).
#[derive(Clone, PartialEq)]
pub struct NetworkTable {
    /// The chain `type` names.
    pub chain: ChainId,
    /// The other keys.
    pub table: toml::Table,
}

impl fmt::Debug for NetworkTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkTable")
            .field("chain", &self.chain)
            .field("table", &redacted_table(&self.table))
            .finish()
    }
}

/// `t` with every string that holds a URL shown redacted, for Debug output.
pub fn redacted_table(t: &toml::Table) -> toml::Table {
    fn walk(v: &toml::Value) -> toml::Value {
        match v {
            toml::Value::String(s) if s.contains("://") => {
                toml::Value::String(crate::secret::redact_endpoint(s))
            }
            toml::Value::Array(a) => toml::Value::Array(a.iter().map(walk).collect()),
            toml::Value::Table(t) => {
                toml::Value::Table(t.iter().map(|(k, v)| (k.clone(), walk(v))).collect())
            }
            other => other.clone(),
        }
    }
    t.iter().map(|(k, v)| (k.clone(), walk(v))).collect()
}

impl NetworkTable {
    /// Deserializes the table into a chain's typed network settings (which
    /// should be `deny_unknown_fields`). The error names the key under
    /// `network`, never echoing a value.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigIssue> {
        let mut track = serde_path_to_error::Track::new();
        let de = toml::Value::Table(self.table.clone());
        let r: Result<T, _> =
            T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
        r.map_err(|e| {
            let path = track.path().to_string();
            let key = if path.is_empty() || path == "." {
                "network".to_owned()
            } else {
                format!("network.{path}")
            };
            ConfigIssue::new(key, e.to_string())
        })
    }
}

/// A validated chain section. Its `Debug` shows endpoints redacted.
#[derive(Clone)]
pub struct ChainConfig {
    /// Chain.
    pub chain: ChainId,
    /// Enabled.
    pub enabled: bool,
    /// RPC endpoints (may carry a provider key: log them only through
    /// [`crate::secret::redact_endpoint`]).
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
    /// The pool's books.
    pub books: BooksSettings,
    /// Chain-specific settings, read by the chain's crate.
    pub network: NetworkTable,
}

impl fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainConfig")
            .field("chain", &self.chain)
            .field("enabled", &self.enabled)
            .field(
                "endpoints",
                &crate::secret::redact_endpoints(&self.endpoints),
            )
            .field("key", &self.key)
            .field("interval_secs", &self.interval_secs)
            .field("commission", &self.commission)
            .field("min_eligible_balance", &self.min_eligible_balance)
            .field("validators", &self.validators)
            .field("buffer", &self.buffer)
            .field("books", &self.books)
            .field("safety", &self.safety)
            .field("network", &self.network)
            .finish()
    }
}

/// Collects issues, for a chain crate's `validate`.
#[derive(Debug, Default)]
pub struct Issues(pub Vec<ConfigIssue>);

impl Issues {
    /// Records a problem with `key`.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue::new(key, message));
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(v)` when nothing was found, else every issue.
    pub fn into_result<T>(self, v: T) -> Result<T, Vec<ConfigIssue>> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Net {
        chain_id: u64,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
    }

    fn table(text: &str) -> NetworkTable {
        NetworkTable {
            chain: ChainId::Ethereum,
            table: text.parse().unwrap(),
        }
    }

    #[test]
    fn debug_output_shows_urls_redacted() {
        let t = table(
            "chain_id = 1\nbeacon_endpoints = [\"https://u:pw@beacon.example/v1/KEY\"]\n[inner]\na = \"wss://x.example?token=KEY\"",
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains("KEY") && !shown.contains("pw"), "{shown}");
        assert!(shown.contains("https://beacon.example/***"), "{shown}");
    }

    #[test]
    fn parse_names_the_key_and_refuses_unknown_ones() {
        let e = table("chain_id = 1\nchainid = 2")
            .parse::<Net>()
            .unwrap_err();
        assert!(e.message.contains("chainid"), "{e}");
        let e = table("chain_id = \"x\"").parse::<Net>().unwrap_err();
        assert_eq!(e.key, "network.chain_id");
        let e = table("chain_id = 1\n[inner]\na = 1\nb = \"secret-value\"")
            .parse::<Net>()
            .unwrap_err();
        assert!(e.key.starts_with("network.inner"), "{e}");
        assert!(!e.to_string().contains("secret-value"), "{e}");
        assert!(table("chain_id = 5").parse::<Net>().is_ok());
    }
}
