//! Builds a [`ChainAdapter`] from a validated chain section, like
//! Hyperlane's `build_provider()`: the daemon and the operator commands call
//! [`build_adapter`] and only ever see `Arc<dyn ChainAdapter>`. This crate
//! is the only one that depends on the per-chain crates under `chains/`,
//! so `softstake-core` and the engine stay free of chain SDKs.
//!
//! Every chain softstake supports has its adapter in this build
//! ([`AVAILABLE`]); a config problem (bad key, missing setting) is a
//! configuration error at start-up, not at the first operation.

use rust_decimal::Decimal;
use softstake_config::{ChainConfig, NetworkSection};
use softstake_core::ChainId;
use softstake_core::adapter::{AdapterError, ChainAdapter};
use std::sync::Arc;
use std::time::Duration;

/// Chains whose adapter this build contains.
pub const AVAILABLE: &[ChainId] = &[
    ChainId::Ethereum,
    ChainId::Solana,
    ChainId::Cardano,
    ChainId::Cosmos,
    ChainId::Tezos,
    ChainId::Polkadot,
];

/// The adapter for `cfg`'s chain, connected to its endpoints.
pub fn build_adapter(cfg: &ChainConfig) -> Result<Arc<dyn ChainAdapter>, AdapterError> {
    let key = || {
        cfg.key
            .resolve()
            .map_err(|e| AdapterError::Config(format!("key: {e}")))
    };
    match &cfg.network {
        NetworkSection::Cosmos(n) => {
            let signer = softstake_chain_atom::keys::LocalKey::parse(&key()?)
                .map_err(|e| AdapterError::Config(e.to_string()))?;
            let dec = |what: &str, v: &str| {
                Decimal::from_str_exact(v)
                    .map_err(|e| AdapterError::Config(format!("network.{what}: {e}")))
            };
            let a = softstake_chain_atom::AtomAdapter::new(
                softstake_chain_atom::AtomSettings {
                    endpoints: cfg.endpoints.clone(),
                    chain_id: n.chain_id.clone(),
                    gas_price: dec("gas_price", &n.gas_price)?,
                    gas_multiplier: dec("gas_multiplier", &n.gas_multiplier)?,
                    max_gas: n.max_gas,
                    timeout_blocks: n.timeout_blocks,
                    memo: "softstake".into(),
                    request_timeout: Duration::from_secs(20),
                },
                Arc::new(signer),
            )?;
            Ok(Arc::new(a))
        }
        NetworkSection::Ethereum(n) => {
            let password = match &n.keystore_password {
                Some(p) => Some(p.resolve().map_err(|e| {
                    AdapterError::Config(format!("network.keystore_password: {e}"))
                })?),
                None => None,
            };
            let key = softstake_chain_eth::keys::LocalKey::parse(
                key()?.expose(),
                password.as_ref().map(|p| p.expose().as_str()),
            )
            .map_err(|e| AdapterError::Config(e.to_string()))?;
            let fork = hex_fork(&n.fork_version)?;
            let operator = cfg
                .validators
                .first()
                .map(|v| v.address.clone())
                .ok_or_else(|| {
                    AdapterError::Config("ethereum: no operator in [[chains.validators]]".into())
                })?;
            let dir = n.deposit_data_dir.clone().ok_or_else(|| {
                AdapterError::Config("ethereum: network.deposit_data_dir is required".into())
            })?;
            let a = softstake_chain_eth::EthAdapter::new(
                softstake_chain_eth::EthSettings {
                    endpoints: cfg.endpoints.clone(),
                    beacon_endpoints: n.beacon_endpoints.clone(),
                    chain_id: n.chain_id,
                    fork_version: fork,
                    deposit_contract: n.deposit_contract.clone(),
                    withdrawal_request_contract: n.withdrawal_request_contract.clone(),
                    deposit_data_dir: dir.into(),
                    operator,
                    fee_recipient: n.fee_recipient.clone(),
                    max_fee_per_gas: u128::from(n.max_fee_per_gas_gwei) * 1_000_000_000,
                    max_gas: n.max_gas,
                    deposit_log_from_block: n.deposit_log_from_block,
                    confirmations: n.confirmations,
                    sweep_delay_secs: n.sweep_delay_secs,
                    max_scan_slots: 2_048,
                    max_scan_blocks: 2_048,
                    request_timeout: Duration::from_secs(20),
                },
                Arc::new(key),
            )?;
            Ok(Arc::new(a))
        }
        NetworkSection::Cardano(n) => {
            let payment = softstake_chain_ada::keys::LocalKey::parse(key()?.expose())
                .map_err(|e| AdapterError::Config(format!("key: {e}")))?;
            let stake_ref = n.stake_key.as_ref().ok_or_else(|| {
                AdapterError::Config("cardano: network.stake_key is required".into())
            })?;
            let stake_text = stake_ref
                .resolve()
                .map_err(|e| AdapterError::Config(format!("network.stake_key: {e}")))?;
            let stake = softstake_chain_ada::keys::LocalKey::parse(stake_text.expose())
                .map_err(|e| AdapterError::Config(format!("network.stake_key: {e}")))?;
            let project_id = match &n.project_id {
                Some(p) => Some(
                    p.resolve()
                        .map_err(|e| AdapterError::Config(format!("network.project_id: {e}")))?,
                ),
                None => None,
            };
            let a = softstake_chain_ada::AdaAdapter::new(
                softstake_chain_ada::AdaSettings {
                    endpoints: cfg.endpoints.clone(),
                    project_id,
                    network_id: u8::from(n.network_magic == 764_824_073),
                    network_magic: u64::from(n.network_magic),
                    drep: n.drep.clone(),
                    min_withdrawal: n.min_withdrawal_lovelace,
                    ttl_slots: n.ttl_slots,
                    min_change: 1_000_000,
                    request_timeout: Duration::from_secs(20),
                },
                Arc::new(payment),
                Arc::new(stake),
            )?;
            Ok(Arc::new(a))
        }
        NetworkSection::Solana(n) => {
            let key = softstake_chain_sol::keys::LocalKey::parse(key()?.expose())
                .map_err(|e| AdapterError::Config(e.to_string()))?;
            let a = softstake_chain_sol::SolAdapter::new(
                softstake_chain_sol::SolSettings {
                    endpoints: cfg.endpoints.clone(),
                    genesis_hash: n.genesis_hash.clone(),
                    withdrawer: n.withdrawer.clone(),
                    compute_unit_price: n.compute_unit_price,
                    compute_unit_limit: n.compute_unit_limit,
                    fee_reserve: n.fee_reserve_lamports,
                    slot_ms: n.slot_ms,
                    max_reward_epochs: 10,
                    request_timeout: Duration::from_secs(20),
                },
                Arc::new(key),
            )?;
            Ok(Arc::new(a))
        }
        NetworkSection::Polkadot(n) => {
            let secret = key()?;
            let uri: subxt_signer::SecretUri = secret.expose().trim().parse().map_err(|_| {
                AdapterError::Config("key: not an sr25519 secret URI, seed or mnemonic".into())
            })?;
            let pair = subxt_signer::sr25519::Keypair::from_uri(&uri).map_err(|_| {
                AdapterError::Config("key: not an sr25519 secret URI, seed or mnemonic".into())
            })?;
            let account = |what: &str, v: &str| {
                v.parse::<subxt::utils::AccountId32>().map_err(|_| {
                    AdapterError::Config(format!("{what}: {v:?} is not an SS58 address"))
                })
            };
            let targets = cfg
                .validators
                .iter()
                .map(|v| Ok((v.address.clone(), account("validators", &v.address)?)))
                .collect::<Result<Vec<_>, AdapterError>>()?;
            let payee = match n.payee.as_str() {
                "Staked" | "staked" => softstake_chain_dot::tx::Payee::Staked,
                "Stash" | "stash" => softstake_chain_dot::tx::Payee::Stash,
                other => softstake_chain_dot::tx::Payee::Account(account("network.payee", other)?),
            };
            let stash = n
                .stash
                .as_deref()
                .map(|s| account("network.stash", s))
                .transpose()?;
            let a = softstake_chain_dot::DotAdapter::new(
                softstake_chain_dot::DotSettings {
                    endpoints: cfg.endpoints.clone(),
                    genesis_hash: n.genesis_hash.clone(),
                    targets,
                    stash,
                    payee,
                    fee_reserve: u128::from(n.fee_reserve_planck),
                    era_period: n.era_period_blocks,
                    rewards_from_block: n.rewards_from_block,
                    max_scan_blocks: 2_000,
                    max_payouts_per_tx: 8,
                    request_timeout: Duration::from_secs(20),
                },
                Arc::new(pair),
            )?;
            Ok(Arc::new(a))
        }
        NetworkSection::Tezos(n) => {
            let signer = softstake_chain_xtz::keys::LocalKey::parse(&key()?)
                .map_err(|e| AdapterError::Config(e.to_string()))?;
            let mode = match n.mode.as_str() {
                "delegation" => softstake_chain_xtz::ops::Mode::Delegation,
                _ => softstake_chain_xtz::ops::Mode::Staking,
            };
            let a = softstake_chain_xtz::XtzAdapter::new(
                softstake_chain_xtz::XtzSettings {
                    endpoints: cfg.endpoints.clone(),
                    chain_id: n.chain_id.clone(),
                    mode,
                    payout_addresses: n.payout_addresses.clone(),
                    payout_delay_cycles: i64::from(n.payout_delay_cycles),
                    max_scan: 2_000,
                    expected_payout_cycles: n.expected_payout_cycles.map(i64::from),
                    request_timeout: Duration::from_secs(20),
                },
                Arc::new(signer),
            )?;
            Ok(Arc::new(a))
        }
    }
}

fn hex_fork(v: &str) -> Result<[u8; 4], AdapterError> {
    let bytes = v
        .strip_prefix("0x")
        .and_then(|h| {
            (0..4)
                .map(|i| {
                    h.get(2 * i..2 * i + 2)
                        .and_then(|b| u8::from_str_radix(b, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
        })
        .ok_or_else(|| {
            AdapterError::Config(format!(
                "network.fork_version {v:?} is not 0x + 8 hex digits"
            ))
        })?;
    bytes
        .try_into()
        .map_err(|_| AdapterError::Config(format!("network.fork_version {v:?} is not 4 bytes")))
}
