//! Solana as a plug-in: its `[chains.network]` settings (read once, unknown
//! keys refused), their checks, the adapter's construction and offline
//! signing.

use crate::{SolAdapter, SolSettings};
use serde::Deserialize;
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue, Issues};
use softstake_core::plugin::{ChainPlugin, SignError, issues_to_error, resolve_key, sign_json};
use std::sync::Arc;
use std::time::Duration;

/// `[chains.network]` with `type = "solana"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolanaNetwork {
    /// Genesis hash (base58) the endpoints must report.
    pub genesis_hash: String,
    /// Withdraw authority of the stake accounts, when it is not the custody
    /// key (a cold key): softstake then finds the accounts by it but cannot
    /// sign withdrawals. Default: the custody key.
    #[serde(default)]
    pub withdrawer: Option<String>,
    /// Priority fee in micro-lamports per compute unit: the price without
    /// the market, the floor with it (0: none).
    #[serde(default)]
    pub compute_unit_price: u64,
    /// Compute unit limit sent with a priority fee.
    #[serde(default = "default_compute_unit_limit")]
    pub compute_unit_limit: u32,
    /// Pay the priority-fee market (`getRecentPrioritizationFees` for the
    /// accounts a transaction writes). Default true.
    #[serde(default = "default_true")]
    pub priority_fee_market: bool,
    /// Which percentile of the recent fees (1 to 100). Default 75.
    #[serde(default = "default_priority_fee_percentile")]
    pub priority_fee_percentile: u8,
    /// The most micro-lamports per compute unit ever paid; above it
    /// nothing is signed and the operation waits. Default 5,000,000
    /// (0.001 SOL at the default 200,000 compute units).
    #[serde(default = "default_max_compute_unit_price")]
    pub max_compute_unit_price: u64,
    /// How long a broadcast re-sends the same signed bytes until the node
    /// reports them or their blockhash dies, seconds (0: once). Default 60.
    #[serde(default = "default_rebroadcast_secs")]
    pub rebroadcast_secs: u64,
    /// Lamports the custody account always keeps for transaction fees.
    #[serde(default = "default_fee_reserve_lamports")]
    pub fee_reserve_lamports: u64,
    /// Slot duration for time estimates (unbonding ETA), milliseconds.
    #[serde(default = "default_slot_ms")]
    pub slot_ms: u64,
}

fn default_compute_unit_limit() -> u32 {
    200_000
}
fn default_true() -> bool {
    true
}
fn default_priority_fee_percentile() -> u8 {
    75
}
fn default_max_compute_unit_price() -> u64 {
    5_000_000
}
fn default_rebroadcast_secs() -> u64 {
    60
}
fn default_fee_reserve_lamports() -> u64 {
    50_000_000
}
fn default_slot_ms() -> u64 {
    400
}

fn base58(v: &str) -> bool {
    (32..=44).contains(&v.len())
        && v.chars()
            .all(|ch| ch.is_ascii_alphanumeric() && !matches!(ch, '0' | 'O' | 'I' | 'l'))
}

/// The adapter's settings from a chain section, or every problem.
pub fn settings(cfg: &ChainConfig) -> Result<SolSettings, Vec<ConfigIssue>> {
    let n: SolanaNetwork = cfg.network.parse().map_err(|e| vec![e])?;
    let mut c = Issues::default();
    if !base58(n.genesis_hash.trim()) {
        c.push(
            "network.genesis_hash",
            format!("{:?} is not a base58 hash", n.genesis_hash),
        );
    }
    if let Some(w) = n.withdrawer.as_deref().filter(|w| !base58(w)) {
        c.push(
            "network.withdrawer",
            format!("{w:?} is not a base58 Solana address"),
        );
    }
    if n.compute_unit_limit == 0 || n.compute_unit_limit > 1_400_000 {
        c.push(
            "network.compute_unit_limit",
            "must be between 1 and 1400000",
        );
    }
    if !(1..=100).contains(&n.priority_fee_percentile) {
        c.push(
            "network.priority_fee_percentile",
            "must be between 1 and 100",
        );
    }
    if n.max_compute_unit_price < n.compute_unit_price {
        c.push(
            "network.max_compute_unit_price",
            format!(
                "{} is below compute_unit_price {}: nothing could ever be signed",
                n.max_compute_unit_price, n.compute_unit_price
            ),
        );
    }
    if n.rebroadcast_secs > 300 {
        c.push(
            "network.rebroadcast_secs",
            "must be at most 300 (a blockhash lives about 60 to 90 seconds)",
        );
    }
    if n.slot_ms == 0 {
        c.push("network.slot_ms", "must be at least 1");
    }
    c.into_result(SolSettings {
        endpoints: cfg.endpoints.clone(),
        genesis_hash: n.genesis_hash,
        withdrawer: n.withdrawer,
        compute_unit_price: n.compute_unit_price,
        compute_unit_limit: n.compute_unit_limit,
        priority_fee_market: n.priority_fee_market,
        priority_fee_percentile: n.priority_fee_percentile,
        max_compute_unit_price: n.max_compute_unit_price,
        rebroadcast_for: Duration::from_secs(n.rebroadcast_secs),
        rebroadcast_every: Duration::from_secs(2),
        fee_reserve: n.fee_reserve_lamports,
        slot_ms: n.slot_ms,
        max_reward_epochs: 10,
        request_timeout: Duration::from_secs(20),
    })
}

/// The top-level fields of a signing request: serde cannot refuse unknown
/// ones through the flattened [`crate::tx::TxParams`].
const REQUEST_FIELDS: &[&str] = &[
    "key_file",
    "action",
    "blockhash",
    "rent_exempt_reserve",
    "compute_unit_price",
    "compute_unit_limit",
    "withdrawer",
];

/// The Solana plug-in.
#[derive(Debug, Clone, Copy)]
pub struct Plugin;

impl ChainPlugin for Plugin {
    fn chain(&self) -> ChainId {
        ChainId::Solana
    }

    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue> {
        settings(cfg).err().unwrap_or_default()
    }

    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
        let s = settings(cfg).map_err(|i| issues_to_error(self.chain(), i))?;
        let key = crate::keys::LocalKey::parse(resolve_key("key", &cfg.key)?.expose())
            .map_err(|e| AdapterError::Config(format!("key: {e}")))?;
        Ok(Arc::new(SolAdapter::new(s, Arc::new(key))?))
    }

    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError> {
        sign_json(request_json, Some(REQUEST_FIELDS), crate::request::sign)
    }
}
