//! Builds a [`ChainAdapter`] from a validated chain section, like
//! Hyperlane's `build_provider()`: the daemon and the operator commands call
//! [`build_adapter`] and only ever see `Arc<dyn ChainAdapter>`. This crate
//! is the only one that depends on the per-chain crates under `chains/`,
//! so `softstake-core` and the engine stay free of chain SDKs.
//!
//! Chains whose adapter is not in this build answer with a configuration
//! error naming the chain, so a config that enables one fails at start-up
//! with a clear message instead of at the first operation.

use softstake_config::ChainConfig;
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use std::sync::Arc;

/// Chains whose adapter this build contains.
pub const AVAILABLE: &[ChainId] = &[];

/// The adapter for `cfg`'s chain, connected to its endpoints.
pub fn build_adapter(cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
    Err(AdapterError::Config(format!(
        "this softstake build has no {} adapter yet (built-in adapters: {}); \
         `softstake plan --chain {} --state FILE` plans from a pool state file without one",
        cfg.chain,
        if AVAILABLE.is_empty() {
            "none".to_owned()
        } else {
            AVAILABLE
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        cfg.chain
    )))
}
