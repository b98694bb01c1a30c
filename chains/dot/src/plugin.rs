//! Polkadot as a plug-in: its `[chains.network]` settings (read once,
//! unknown keys refused), their checks, the adapter's construction and
//! offline signing.

use crate::tx::Payee;
use crate::{DotAdapter, DotSettings};
use serde::Deserialize;
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue, Issues};
use softstake_core::plugin::{ChainPlugin, SignError, issues_to_error, resolve_key, sign_json};
use std::sync::Arc;
use std::time::Duration;
use subxt::utils::AccountId32;

/// `[chains.network]` with `type = "polkadot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolkadotNetwork {
    /// Genesis hash (0x-hex) the endpoints must report.
    pub genesis_hash: String,
    /// The stash (SS58) when `key` is a staking proxy of it; unset: `key`
    /// is the stash and signs everything itself.
    #[serde(default)]
    pub stash: Option<String>,
    /// Reward destination: `Staked` (compound, default), `Stash`, or an
    /// SS58 account.
    #[serde(default = "default_payee")]
    pub payee: String,
    /// Planck the stash always keeps free for fees (default 1 DOT).
    #[serde(default = "default_fee_reserve")]
    pub fee_reserve_planck: u64,
    /// Mortal era of our transactions, in blocks (a power of two, 4..=65536).
    #[serde(default = "default_era_period")]
    pub era_period_blocks: u64,
    /// First block the reward scan reads on a fresh database (default: the
    /// finalized head when the daemon first asks).
    #[serde(default)]
    pub rewards_from_block: Option<u64>,
}

fn default_payee() -> String {
    "Staked".into()
}
fn default_fee_reserve() -> u64 {
    10_000_000_000
}
fn default_era_period() -> u64 {
    64
}

/// The adapter's settings from a chain section, or every problem.
pub fn settings(cfg: &ChainConfig) -> Result<DotSettings, Vec<ConfigIssue>> {
    let n: PolkadotNetwork = cfg.network.parse().map_err(|e| vec![e])?;
    let mut c = Issues::default();
    let mut account = |key: &str, v: &str| match v.parse::<AccountId32>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.push(key, format!("{v:?} is not an SS58 address"));
            None
        }
    };
    let targets: Vec<(String, AccountId32)> = cfg
        .validators
        .iter()
        .enumerate()
        .filter_map(|(j, v)| {
            account(&format!("validators[{j}].address"), &v.address).map(|a| (v.address.clone(), a))
        })
        .collect();
    let stash = n.stash.as_deref().and_then(|s| account("network.stash", s));
    let payee = match n.payee.as_str() {
        "Staked" | "staked" => Payee::Staked,
        "Stash" | "stash" => Payee::Stash,
        "" => Payee::Staked,
        other => account("network.payee", other).map_or(Payee::Staked, Payee::Account),
    };
    if n.payee.trim().is_empty() {
        c.push(
            "network.payee",
            "is empty: Staked, Stash or an SS58 account",
        );
    }
    let g = &n.genesis_hash;
    if !(g.starts_with("0x") && g.len() == 66 && g[2..].chars().all(|ch| ch.is_ascii_hexdigit())) {
        c.push(
            "network.genesis_hash",
            "must be 0x followed by 64 hex digits",
        );
    }
    if !(4..=65_536).contains(&n.era_period_blocks) || !n.era_period_blocks.is_power_of_two() {
        c.push(
            "network.era_period_blocks",
            format!(
                "{} is not a power of two from 4 to 65536",
                n.era_period_blocks
            ),
        );
    }
    if cfg.validators.len() > 16 {
        c.push(
            "validators",
            format!(
                "{} nomination targets; Polkadot allows at most 16 (the runtime's quota is checked again before signing)",
                cfg.validators.len()
            ),
        );
    }
    c.into_result(DotSettings {
        endpoints: cfg.endpoints.clone(),
        genesis_hash: n.genesis_hash,
        targets,
        stash,
        payee,
        fee_reserve: u128::from(n.fee_reserve_planck),
        era_period: n.era_period_blocks,
        rewards_from_block: n.rewards_from_block,
        max_scan_blocks: 2_000,
        max_payouts_per_tx: 8,
        request_timeout: Duration::from_secs(20),
    })
}

/// The Polkadot plug-in.
#[derive(Debug, Clone, Copy)]
pub struct Plugin;

impl ChainPlugin for Plugin {
    fn chain(&self) -> ChainId {
        ChainId::Polkadot
    }

    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue> {
        settings(cfg).err().unwrap_or_default()
    }

    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
        let s = settings(cfg).map_err(|i| issues_to_error(self.chain(), i))?;
        let secret = resolve_key("key", &cfg.key)?;
        let bad =
            || AdapterError::Config("key: not an sr25519 secret URI, seed or mnemonic".into());
        let uri: subxt_signer::SecretUri = secret.expose().trim().parse().map_err(|_| bad())?;
        let pair = subxt_signer::sr25519::Keypair::from_uri(&uri).map_err(|_| bad())?;
        Ok(Arc::new(DotAdapter::new(s, Arc::new(pair))?))
    }

    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError> {
        sign_json(request_json, None, crate::request::sign)
    }
}
