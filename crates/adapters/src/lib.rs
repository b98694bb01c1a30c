//! The chain registry, like Hyperlane's `build_provider()`: the only crate
//! that lists the `chains/*` crates. Each chain crate exports a
//! [`ChainPlugin`] and is named here once, in [`PLUGINS`]; the daemon,
//! `config validate`, `softstake tx sign` and the devnet reach a chain only
//! through these functions and only ever see `Arc<dyn ChainAdapter>`, so
//! `softstake-core`, the engine and the daemon stay free of chain SDKs.
//!
//! A config problem (bad key, a missing or unknown setting) is found by
//! [`validate`] at start-up, naming its key, not at the first operation.

use softstake_config::{Config, ConfigErrors, ConfigFile};
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use softstake_core::config::{ChainConfig, ConfigIssue};
use softstake_core::plugin::{ChainPlugin, SignError};
use std::sync::Arc;

/// Declares the chains of this build: [`PLUGINS`] and, with the `devnet`
/// feature, [`DEVNET`], from one list.
macro_rules! chains {
    ($($krate:ident),* $(,)?) => {
        /// Every chain in this build.
        pub static PLUGINS: &[&dyn ChainPlugin] = &[$(&$krate::plugin::Plugin),*];
        /// Every chain's devnet driver (feature `devnet`).
        #[cfg(feature = "devnet")]
        pub static DEVNET: &[&softstake_testnode::DevnetChain] = &[$(&$krate::devnet::DEVNET),*];
    };
}

// The registry: one line per chain.
chains!(
    softstake_chain_eth,
    softstake_chain_dot,
    softstake_chain_sol,
    softstake_chain_atom,
    softstake_chain_ada,
    softstake_chain_xtz,
);

/// The devnet driver of `chain` (feature `devnet`).
#[cfg(feature = "devnet")]
pub fn devnet(chain: ChainId) -> Option<&'static softstake_testnode::DevnetChain> {
    DEVNET.iter().copied().find(|d| d.chain == chain)
}

/// The plug-in of `chain`, if this build has it.
pub fn plugin(chain: ChainId) -> Option<&'static dyn ChainPlugin> {
    PLUGINS.iter().copied().find(|p| p.chain() == chain)
}

/// Chains whose adapter this build contains.
pub fn available() -> Vec<ChainId> {
    PLUGINS.iter().map(|p| p.chain()).collect()
}

/// The chain-specific checks of one validated section (keys relative to
/// the section).
pub fn validate_chain(cfg: &ChainConfig) -> Vec<ConfigIssue> {
    match plugin(cfg.chain) {
        Some(p) => p.validate(cfg),
        None => vec![ConfigIssue::new(
            "network.type",
            format!("{} is not in this build", cfg.chain),
        )],
    }
}

/// The whole validation: the common part ([`ConfigFile::validate`]) and
/// every chain section's own settings, every problem at once, each naming
/// its key (`chains[2].network.gas_price`).
pub fn validate(file: &ConfigFile) -> Result<Config, ConfigErrors> {
    let cfg = file.validate()?;
    let mut issues = Vec::new();
    for c in &cfg.chains {
        // Chains keep file order; find the section's index by its chain.
        let i = file
            .chains
            .iter()
            .position(|s| s.network.get("type").and_then(|t| t.as_str()) == Some(c.chain.as_str()))
            .unwrap_or(0);
        issues.extend(
            validate_chain(c)
                .into_iter()
                .map(|x| x.under(&format!("chains[{i}]"))),
        );
    }
    if issues.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(issues))
    }
}

/// The adapter for `cfg`'s chain, connected to its endpoints.
pub fn build_adapter(cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
    plugin(cfg.chain)
        .ok_or_else(|| AdapterError::Config(format!("{} is not in this build", cfg.chain)))?
        .build(cfg)
}

/// Signs an offline request for `chain` (`softstake tx sign`): the answer
/// as JSON.
pub fn sign_request(chain: ChainId, request_json: &str) -> Result<serde_json::Value, SignError> {
    plugin(chain)
        .ok_or_else(|| SignError::Request(format!("{chain} is not in this build")))?
        .sign_request(request_json)
}
