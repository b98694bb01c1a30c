//! Ethereum as a plug-in: its `[chains.network]` settings (read once,
//! unknown keys refused), their checks, the adapter's construction and
//! offline signing.

use crate::{EthAdapter, EthSettings};
use serde::Deserialize;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue, Issues};
use softstake_core::plugin::{ChainPlugin, SignError, issues_to_error, resolve_key, sign_json};
use softstake_core::{ChainId, SecretRef};
use std::sync::Arc;
use std::time::Duration;

/// `[chains.network]` with `type = "ethereum"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EthereumNetwork {
    /// EIP-155 chain id the endpoints must report (1 mainnet).
    pub chain_id: u64,
    /// Beacon API endpoints.
    #[serde(default)]
    pub beacon_endpoints: Vec<String>,
    /// Genesis fork version (0x + 8 hex digits): the deposit signature
    /// domain, also checked against the Beacon API. Mainnet: 0x00000000.
    #[serde(default = "default_fork_version")]
    pub fork_version: String,
    /// Deposit contract address.
    #[serde(default = "default_deposit_contract")]
    pub deposit_contract: String,
    /// EIP-7002 withdrawal request contract address.
    #[serde(default = "default_withdrawal_request_contract")]
    pub withdrawal_request_contract: String,
    /// Directory of staking-deposit-cli `deposit_data-*.json` files whose
    /// withdrawal credentials point to the custody key.
    #[serde(default)]
    pub deposit_data_dir: Option<String>,
    /// Fee recipient of the operator's validators (default: the custody
    /// address), for execution-layer rewards.
    #[serde(default)]
    pub fee_recipient: Option<String>,
    /// Refuse to sign above this max fee per gas, gwei.
    #[serde(default = "default_max_fee_gwei")]
    pub max_fee_per_gas_gwei: u64,
    /// Refuse to sign above this gas limit.
    #[serde(default = "default_max_gas")]
    pub max_gas: u64,
    /// First block to scan the deposit contract's logs from (mainnet: the
    /// contract's deployment block).
    #[serde(default = "default_deposit_log_from_block")]
    pub deposit_log_from_block: u64,
    /// Blocks on top of the inclusion block before an operation counts.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// Estimated delay from a validator's withdrawable epoch to the sweep
    /// paying its balance out, seconds.
    #[serde(default = "default_sweep_delay_secs")]
    pub sweep_delay_secs: u64,
    /// Password of a V3 keystore custody key.
    #[serde(default)]
    pub keystore_password: Option<SecretRef>,
}

fn default_fork_version() -> String {
    "0x00000000".into()
}
fn default_deposit_contract() -> String {
    "0x00000000219ab540356cBB839Cbe05303d7705Fa".into()
}
fn default_withdrawal_request_contract() -> String {
    "0x00000961Ef480Eb55e80D19ad83579A64c007002".into()
}
fn default_max_fee_gwei() -> u64 {
    200
}
fn default_max_gas() -> u64 {
    500_000
}
fn default_deposit_log_from_block() -> u64 {
    11_052_984
}
fn default_confirmations() -> u64 {
    12
}
fn default_sweep_delay_secs() -> u64 {
    777_600
}

fn is_hex(v: &str, bytes: usize) -> bool {
    v.strip_prefix("0x")
        .is_some_and(|h| h.len() == 2 * bytes && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The adapter's settings (and the keystore password reference) from a
/// chain section, or every problem.
pub fn settings(cfg: &ChainConfig) -> Result<(EthSettings, Option<SecretRef>), Vec<ConfigIssue>> {
    let n: EthereumNetwork = cfg.network.parse().map_err(|e| vec![e])?;
    let mut c = Issues::default();
    if n.chain_id == 0 {
        c.push("network.chain_id", "must be a positive EIP-155 chain id");
    }
    if n.beacon_endpoints.is_empty() {
        c.push(
            "network.beacon_endpoints",
            "is empty: the pool's validators are read from the Beacon API",
        );
    }
    let mut fork_version = [0u8; 4];
    if is_hex(&n.fork_version, 4) {
        if let Ok(b) = hex::decode(&n.fork_version[2..]) {
            fork_version.copy_from_slice(&b);
        }
    } else {
        c.push(
            "network.fork_version",
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
            c.push(key, format!("{v:?} is not a 0x-hex address"));
        }
    }
    let dir = n.deposit_data_dir.clone().filter(|d| !d.trim().is_empty());
    if cfg.enabled && dir.is_none() {
        c.push(
            "network.deposit_data_dir",
            "is required: deposits are made only from staking-deposit-cli deposit data",
        );
    }
    if cfg.validators.len() > 1 {
        c.push("validators", "an Ethereum pool names one operator (its label); the operator's validator keys come from deposit_data_dir");
    }
    if n.max_gas == 0 || n.max_fee_per_gas_gwei == 0 {
        c.push(
            "network.max_gas",
            "max_gas and max_fee_per_gas_gwei must be at least 1",
        );
    }
    let s = EthSettings {
        endpoints: cfg.endpoints.clone(),
        beacon_endpoints: n.beacon_endpoints,
        chain_id: n.chain_id,
        fork_version,
        deposit_contract: n.deposit_contract,
        withdrawal_request_contract: n.withdrawal_request_contract,
        deposit_data_dir: dir.unwrap_or_default().into(),
        operator: cfg
            .validators
            .first()
            .map(|v| v.address.clone())
            .unwrap_or_default(),
        fee_recipient: n.fee_recipient,
        max_fee_per_gas: u128::from(n.max_fee_per_gas_gwei) * 1_000_000_000,
        max_gas: n.max_gas,
        deposit_log_from_block: n.deposit_log_from_block,
        confirmations: n.confirmations,
        sweep_delay_secs: n.sweep_delay_secs,
        max_scan_slots: 2_048,
        max_scan_blocks: 2_048,
        request_timeout: Duration::from_secs(20),
    };
    c.into_result((s, n.keystore_password))
}

/// The top-level fields of a signing request: serde cannot refuse unknown
/// ones through the flattened [`crate::tx::TxParams`].
const REQUEST_FIELDS: &[&str] = &[
    "key_file",
    "action",
    "chain_id",
    "nonce",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "gas_limit",
    "deposit_contract",
    "withdrawal_request_contract",
];

/// The Ethereum plug-in.
#[derive(Debug, Clone, Copy)]
pub struct Plugin;

impl ChainPlugin for Plugin {
    fn chain(&self) -> ChainId {
        ChainId::Ethereum
    }

    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue> {
        settings(cfg).err().unwrap_or_default()
    }

    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
        let (s, password) = settings(cfg).map_err(|i| issues_to_error(self.chain(), i))?;
        if s.operator.is_empty() {
            return Err(AdapterError::Config(
                "ethereum: no operator in [[chains.validators]]".into(),
            ));
        }
        if s.deposit_data_dir.as_os_str().is_empty() {
            return Err(AdapterError::Config(
                "ethereum: network.deposit_data_dir is required".into(),
            ));
        }
        let password = password
            .as_ref()
            .map(|p| resolve_key("network.keystore_password", p))
            .transpose()?;
        let key = crate::keys::LocalKey::parse(
            resolve_key("key", &cfg.key)?.expose(),
            password.as_ref().map(|p| p.expose().as_str()),
        )
        .map_err(|e| AdapterError::Config(format!("key: {e}")))?;
        Ok(Arc::new(EthAdapter::new(s, Arc::new(key))?))
    }

    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError> {
        sign_json(request_json, Some(REQUEST_FIELDS), crate::request::sign)
    }
}
