//! The Cosmos Hub as a plug-in: its `[chains.network]` settings (read once,
//! unknown keys refused), their checks, the adapter's construction and
//! offline signing.

use crate::{AtomAdapter, AtomSettings};
use rust_decimal::Decimal;
use serde::Deserialize;
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue, Issues};
use softstake_core::plugin::{ChainPlugin, SignError, issues_to_error, resolve_key, sign_json};
use std::sync::Arc;
use std::time::Duration;

/// `[chains.network]` with `type = "cosmos"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosmosNetwork {
    /// Chain id the endpoints must report (`cosmoshub-4`).
    pub chain_id: String,
    /// Gas price in uatom per unit of gas (decimal string): the price
    /// without a fee market, the floor with one.
    #[serde(default = "default_gas_price")]
    pub gas_price: String,
    /// Price each transaction from the chain's fee market (`x/feemarket`,
    /// the Hub since Gaia v20) when it is signed (default true).
    #[serde(default = "default_fee_market")]
    pub fee_market: bool,
    /// The fee market's price is multiplied by this (decimal string, >= 1)
    /// so the transaction still pays enough after a few blocks of rising
    /// prices (default "1.5").
    #[serde(default = "default_gas_price_margin")]
    pub gas_price_margin: String,
    /// Ceiling, uatom per gas: while the price to pay is above it nothing
    /// is signed (the operation waits and says why). Default "0.1", 20x
    /// the Hub's minimum base price.
    #[serde(default = "default_max_gas_price")]
    pub max_gas_price: String,
    /// Simulated gas is multiplied by this (decimal string, >= 1).
    #[serde(default = "default_gas_multiplier")]
    pub gas_multiplier: String,
    /// Operations needing more gas are refused.
    #[serde(default = "default_max_gas")]
    pub max_gas: u64,
    /// Blocks a signed transaction stays valid (its timeout height).
    #[serde(default = "default_timeout_blocks")]
    pub timeout_blocks: u64,
}

fn default_gas_price() -> String {
    "0.005".into()
}
fn default_fee_market() -> bool {
    true
}
fn default_gas_price_margin() -> String {
    "1.5".into()
}
fn default_max_gas_price() -> String {
    "0.1".into()
}
fn default_gas_multiplier() -> String {
    "1.4".into()
}
fn default_max_gas() -> u64 {
    2_000_000
}
fn default_timeout_blocks() -> u64 {
    100
}

/// The adapter's settings from a chain section, or every problem.
pub fn settings(cfg: &ChainConfig) -> Result<AtomSettings, Vec<ConfigIssue>> {
    let n: CosmosNetwork = cfg.network.parse().map_err(|e| vec![e])?;
    let mut c = Issues::default();
    if n.chain_id.trim().is_empty() {
        c.push("network.chain_id", "is empty");
    }
    let gas_price = match Decimal::from_str_exact(&n.gas_price) {
        Ok(v) if v >= Decimal::ZERO => v,
        _ => {
            c.push(
                "network.gas_price",
                format!("{:?} is not a non-negative decimal", n.gas_price),
            );
            Decimal::ZERO
        }
    };
    let gas_multiplier = match Decimal::from_str_exact(&n.gas_multiplier) {
        Ok(v) if v >= Decimal::ONE => v,
        _ => {
            c.push(
                "network.gas_multiplier",
                format!("{:?} is not a decimal >= 1", n.gas_multiplier),
            );
            Decimal::ONE
        }
    };
    let gas_price_margin = match Decimal::from_str_exact(&n.gas_price_margin) {
        Ok(v) if v >= Decimal::ONE && v <= Decimal::TEN => v,
        _ => {
            c.push(
                "network.gas_price_margin",
                format!("{:?} is not a decimal from 1 to 10", n.gas_price_margin),
            );
            Decimal::ONE
        }
    };
    let max_gas_price = match Decimal::from_str_exact(&n.max_gas_price) {
        Ok(v) if v >= gas_price => v,
        _ => {
            c.push(
                "network.max_gas_price",
                format!(
                    "{:?} is not a decimal at least network.gas_price ({gas_price})",
                    n.max_gas_price
                ),
            );
            gas_price
        }
    };
    if n.max_gas == 0 {
        c.push("network.max_gas", "must be at least 1");
    }
    if n.timeout_blocks == 0 {
        c.push("network.timeout_blocks", "must be at least 1");
    }
    c.into_result(AtomSettings {
        endpoints: cfg.endpoints.clone(),
        chain_id: n.chain_id,
        gas_price,
        fee_market: n.fee_market,
        gas_price_margin,
        max_gas_price,
        gas_multiplier,
        max_gas: n.max_gas,
        timeout_blocks: n.timeout_blocks,
        memo: "softstake".into(),
        request_timeout: Duration::from_secs(20),
    })
}

/// The Cosmos Hub plug-in.
#[derive(Debug, Clone, Copy)]
pub struct Plugin;

impl ChainPlugin for Plugin {
    fn chain(&self) -> ChainId {
        ChainId::Cosmos
    }

    fn validate(&self, cfg: &ChainConfig) -> Vec<ConfigIssue> {
        settings(cfg).err().unwrap_or_default()
    }

    fn build(&self, cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
        let s = settings(cfg).map_err(|i| issues_to_error(self.chain(), i))?;
        let signer = crate::keys::LocalKey::parse(&resolve_key("key", &cfg.key)?)
            .map_err(|e| AdapterError::Config(format!("key: {e}")))?;
        Ok(Arc::new(AtomAdapter::new(s, Arc::new(signer))?))
    }

    fn sign_request(&self, request_json: &str) -> Result<serde_json::Value, SignError> {
        sign_json(request_json, None, crate::request::sign)
    }
}
