//! Cardano as a plug-in: its `[chains.network]` settings (read once,
//! unknown keys refused), their checks, the adapter's construction and
//! offline signing.

use crate::{AdaAdapter, AdaSettings};
use serde::Deserialize;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue, Issues};
use softstake_core::plugin::{ChainPlugin, SignError, issues_to_error, resolve_key, sign_json};
use softstake_core::{ChainId, SecretRef};
use std::sync::Arc;
use std::time::Duration;

/// `[chains.network]` with `type = "cardano"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardanoNetwork {
    /// Network magic (764824073 mainnet) every endpoint must report.
    pub network_magic: u32,
    /// The stake key (cardano-cli .skey); `key` is the payment key.
    pub stake_key: Option<SecretRef>,
    /// Blockfrost project id (sent as the `project_id` header).
    #[serde(default)]
    pub project_id: Option<SecretRef>,
    /// DRep for the vote delegation Conway requires before withdrawals:
    /// always_abstain, always_no_confidence, key:<hash> or script:<hash>.
    #[serde(default = "default_drep")]
    pub drep: String,
    /// Withdraw rewards once they reach this many lovelace.
    #[serde(default = "default_min_withdrawal")]
    pub min_withdrawal_lovelace: u64,
    /// Transactions are valid for this many slots (seconds).
    #[serde(default = "default_ttl_slots")]
    pub ttl_slots: u64,
    /// Blocks deep (the including block counted) before a transaction is
    /// treated as confirmed: a shallower one can still be rolled back.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
}

fn default_drep() -> String {
    "always_abstain".into()
}
fn default_min_withdrawal() -> u64 {
    10_000_000
}
fn default_ttl_slots() -> u64 {
    7_200
}
fn default_confirmations() -> u64 {
    15
}

/// The checked network section, its secrets still references.
fn network(cfg: &ChainConfig) -> Result<CardanoNetwork, Vec<ConfigIssue>> {
    let n: CardanoNetwork = cfg.network.parse().map_err(|e| vec![e])?;
    let mut c = Issues::default();
    if n.stake_key.is_none() {
        c.push(
            "network.stake_key",
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
        c.push(
            "network.drep",
            format!(
                "{:?} is not always_abstain, always_no_confidence, key:<56 hex> or script:<56 hex>",
                n.drep
            ),
        );
    }
    if n.ttl_slots == 0 {
        c.push("network.ttl_slots", "must be at least 1");
    }
    // k = 2160 blocks is where Ouroboros makes a block immutable.
    if !(1..=2160).contains(&n.confirmations) {
        c.push(
            "network.confirmations",
            "must be between 1 and 2160 (the security parameter k)",
        );
    }
    c.into_result(n)
}

/// The top-level fields of a signing request: serde cannot refuse unknown
/// ones through the flattened [`crate::tx::TxParams`].
const REQUEST_FIELDS: &[&str] = &[
    "payment_key_file",
    "stake_key_file",
    "action",
    "network_id",
    "min_fee_a",
    "min_fee_b",
    "ttl",
    "inputs",
    "min_change",
];

/// The Cardano plug-in.
#[derive(Debug, Clone, Copy)]
pub struct Plugin;

impl ChainPlugin for Plugin {
    fn chain(&self) -> ChainId {
        ChainId::Cardano
    }

    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue> {
        network(cfg).err().unwrap_or_default()
    }

    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
        let n = network(cfg).map_err(|i| issues_to_error(self.chain(), i))?;
        let payment = crate::keys::LocalKey::parse(resolve_key("key", &cfg.key)?.expose())
            .map_err(|e| AdapterError::Config(format!("key: {e}")))?;
        let stake_ref = n
            .stake_key
            .as_ref()
            .ok_or_else(|| AdapterError::Config("cardano: network.stake_key is required".into()))?;
        let stake =
            crate::keys::LocalKey::parse(resolve_key("network.stake_key", stake_ref)?.expose())
                .map_err(|e| AdapterError::Config(format!("network.stake_key: {e}")))?;
        let project_id = n
            .project_id
            .as_ref()
            .map(|p| resolve_key("network.project_id", p))
            .transpose()?;
        let a = AdaAdapter::new(
            AdaSettings {
                endpoints: cfg.endpoints.clone(),
                project_id,
                network_id: u8::from(n.network_magic == 764_824_073),
                network_magic: u64::from(n.network_magic),
                drep: n.drep,
                min_withdrawal: n.min_withdrawal_lovelace,
                ttl_slots: n.ttl_slots,
                confirmations: n.confirmations,
                min_change: 1_000_000,
                request_timeout: Duration::from_secs(20),
            },
            Arc::new(payment),
            Arc::new(stake),
        )?;
        Ok(Arc::new(a))
    }

    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError> {
        sign_json(request_json, Some(REQUEST_FIELDS), crate::request::sign)
    }
}
