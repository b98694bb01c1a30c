//! Tezos as a plug-in: its `[chains.network]` settings (read once, unknown
//! keys refused), their checks, the adapter's construction and offline
//! signing.

use crate::ops::Mode;
use crate::{XtzAdapter, XtzSettings};
use serde::Deserialize;
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue, Issues};
use softstake_core::plugin::{ChainPlugin, SignError, issues_to_error, resolve_key, sign_json};
use std::sync::Arc;
use std::time::Duration;

/// `[chains.network]` with `type = "tezos"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TezosNetwork {
    /// Chain id the endpoints must report (`NetXdQprcVkpaWU` mainnet).
    pub chain_id: String,
    /// `staking` (frozen with the baker, rewards on-chain) or `delegation`
    /// (funds stay spendable, the baker pays off-protocol).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Addresses the bakers pay delegation rewards from.
    #[serde(default)]
    pub payout_addresses: Vec<String>,
    /// A payout arriving in cycle c pays for cycle c - this.
    #[serde(default = "default_payout_delay")]
    pub payout_delay_cycles: u32,
    /// Alert when no payout arrived for this many cycles (delegation mode).
    #[serde(default)]
    pub expected_payout_cycles: Option<u32>,
    /// The level whose state is the baseline of the rewards scan: rewards
    /// after it count, and no older block is read (no archive node is
    /// needed). Set it to a level before the account's first staking
    /// operation when the ledger starts after the account does. Unset: the
    /// final block when the daemon first scans.
    #[serde(default)]
    pub start_level: Option<u32>,
}

fn default_mode() -> String {
    "staking".into()
}
fn default_payout_delay() -> u32 {
    5
}

/// The adapter's settings from a chain section, or every problem.
pub fn settings(cfg: &ChainConfig) -> Result<XtzSettings, Vec<ConfigIssue>> {
    let n: TezosNetwork = cfg.network.parse().map_err(|e| vec![e])?;
    let mut c = Issues::default();
    if n.chain_id.trim().is_empty() {
        c.push("network.chain_id", "is empty");
    }
    let mode = match n.mode.as_str() {
        "staking" => Mode::Staking,
        "delegation" => Mode::Delegation,
        other => {
            c.push(
                "network.mode",
                format!("{other:?} is neither \"staking\" nor \"delegation\""),
            );
            Mode::Staking
        }
    };
    if n.start_level == Some(0) {
        c.push("network.start_level", "must be at least 1");
    }
    // An account has one delegate and stakes only with it: a second baker
    // would mean switching the delegate back and forth (which, staking,
    // unstakes everything each time).
    if cfg.validators.len() > 1 {
        c.push(
            "validators",
            format!(
                "the custody key {} has one delegate, so it can stake with or delegate to one baker only (a change of delegate unstakes everything), but {} are configured; name one, or use one chain section (and key) per baker",
                cfg.key.describe(),
                cfg.validators.len()
            ),
        );
    }
    if n.expected_payout_cycles == Some(0) {
        c.push("network.expected_payout_cycles", "must be at least 1");
    }
    c.into_result(XtzSettings {
        endpoints: cfg.endpoints.clone(),
        chain_id: n.chain_id,
        mode,
        payout_addresses: n.payout_addresses,
        payout_delay_cycles: i64::from(n.payout_delay_cycles),
        max_scan: 2_000,
        expected_payout_cycles: n.expected_payout_cycles.map(i64::from),
        request_timeout: Duration::from_secs(20),
        start_level: n.start_level.map(i64::from),
    })
}

/// The Tezos plug-in.
#[derive(Debug, Clone, Copy)]
pub struct Plugin;

impl ChainPlugin for Plugin {
    fn chain(&self) -> ChainId {
        ChainId::Tezos
    }

    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue> {
        settings(cfg).err().unwrap_or_default()
    }

    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
        let s = settings(cfg).map_err(|i| issues_to_error(self.chain(), i))?;
        let signer = crate::keys::LocalKey::parse(&resolve_key("key", &cfg.key)?)
            .map_err(|e| AdapterError::Config(format!("key: {e}")))?;
        Ok(Arc::new(XtzAdapter::new(s, Arc::new(signer))?))
    }

    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError> {
        sign_json(request_json, None, crate::request::sign)
    }
}
