//! The TOML file as written: every struct rejects unknown keys.

use crate::SecretRef;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::str::FromStr;

/// Rates are exact decimal strings ("0.10"); a TOML float (0.1) is refused
/// rather than converted, so no binary float ever becomes a money rate.
fn decimal_str<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    match Raw::deserialize(d)? {
        Raw::Text(s) => Decimal::from_str(s.trim())
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a decimal: {e}"))),
        Raw::Int(i) => Ok(Decimal::from(i)),
        Raw::Float(f) => Err(serde::de::Error::custom(format!(
            "{f} is a float; write rates as decimal strings, e.g. \"0.10\""
        ))),
    }
}

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[database]`.
    #[serde(default)]
    pub database: DatabaseSection,
    /// `[api]`.
    #[serde(default)]
    pub api: ApiSection,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[log]`.
    #[serde(default)]
    pub log: LogSection,
    /// `[[chains]]`: one per chain, at most one per chain id.
    #[serde(default)]
    pub chains: Vec<ChainSection>,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://path/softstake.db` (created on first run) or `postgres://...`.
    /// A password in the URL is redacted from every log line.
    #[serde(default = "default_db_url")]
    pub url: String,
    /// Connection pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_db_url() -> String {
    "sqlite://softstake.db".to_owned()
}
fn default_max_connections() -> u32 {
    8
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: default_db_url(),
            max_connections: default_max_connections(),
        }
    }
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Listen address (`127.0.0.1:8080`; port 0 picks a free port).
    #[serde(default = "default_api_listen")]
    pub listen: String,
    /// Bearer token of the exchange backend.
    #[serde(default)]
    pub exchange_token: Option<SecretRef>,
    /// Bearer token of operators.
    #[serde(default)]
    pub admin_token: Option<SecretRef>,
    /// Public read requests per second per client address (burst: twice that).
    #[serde(default = "default_read_rate_limit")]
    pub read_rate_limit: u32,
}

fn default_read_rate_limit() -> u32 {
    20
}

fn default_api_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: default_api_listen(),
            exchange_token: None,
            admin_token: None,
            read_rate_limit: default_read_rate_limit(),
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Prometheus listen address.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

fn default_metrics_listen() -> String {
    "127.0.0.1:9100".to_owned()
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: default_metrics_listen(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `human` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// A tracing filter (`info`, `softstake=debug,sqlx=warn`).
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_format() -> String {
    "human".to_owned()
}
fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

/// `[[chains]]`: one chain's pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// Whether the daemon runs this chain's loop.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// RPC endpoints, tried in order with fallback.
    pub endpoints: Vec<String>,
    /// The custody signing key.
    pub key: SecretRef,
    /// Seconds between cycles of the chain loop.
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// Platform commission on rewards, as a decimal string in 0..=1 ("0.10").
    #[serde(deserialize_with = "decimal_str")]
    pub commission: Decimal,
    /// Minimum liquid balance (display units) for a user to earn; default 0.
    #[serde(default = "zero_amount")]
    pub min_eligible_balance: String,
    /// Validators to delegate to.
    #[serde(default)]
    pub validators: Vec<ValidatorSection>,
    /// Liquidity buffer policy.
    pub buffer: BufferSection,
    /// Safety limits.
    pub safety: SafetySection,
    /// Chain-specific network settings, tagged by `type`.
    pub network: NetworkSection,
}

fn yes() -> bool {
    true
}
fn default_interval() -> u64 {
    60
}
fn zero_amount() -> String {
    "0".to_owned()
}

/// `[[chains.validators]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSection {
    /// The chain's id for the validator (vote account, valoper, pool id, ...).
    pub address: String,
    /// Relative weight (> 0) of the target stake.
    #[serde(default = "one")]
    pub weight: u32,
    /// Most this validator may hold, as a share of the staked pool (0..=1).
    #[serde(default = "one_decimal", deserialize_with = "decimal_str")]
    pub cap: Decimal,
}

fn one() -> u32 {
    1
}
fn one_decimal() -> Decimal {
    Decimal::ONE
}

/// `[chains.buffer]`: the unstaked share kept for withdrawals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferSection {
    /// Target liquid share of liabilities (0..=1).
    #[serde(deserialize_with = "decimal_str")]
    pub target: Decimal,
    /// Allowed deviation either side of the target (0..=1).
    #[serde(deserialize_with = "decimal_str")]
    pub band: Decimal,
    /// Smallest operation worth sending (display units).
    pub min_operation: String,
}

/// `[chains.safety]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetySection {
    /// Most value one operation may move (display units).
    pub max_per_operation: String,
    /// Most value moved per UTC day (display units).
    pub max_per_day: String,
    /// Operations moving more than this wait for `softstake approve`.
    pub approval_threshold: String,
    /// Plan and log only: nothing is journaled, signed or broadcast.
    #[serde(default)]
    pub dry_run: bool,
}

/// `[chains.network]`: chain-specific settings; `type` picks the chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum NetworkSection {
    /// Ethereum.
    Ethereum(EthereumNetwork),
    /// Polkadot (or a relay/Asset Hub chain carrying the staking pallet).
    Polkadot(PolkadotNetwork),
    /// Solana.
    Solana(SolanaNetwork),
    /// Cosmos Hub.
    Cosmos(CosmosNetwork),
    /// Cardano.
    Cardano(CardanoNetwork),
    /// Tezos.
    Tezos(TezosNetwork),
}

/// Ethereum network settings.
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
    #[serde(default = "default_eth_max_gas")]
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
    pub keystore_password: Option<crate::SecretRef>,
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
fn default_eth_max_gas() -> u64 {
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

/// Polkadot network settings.
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
    #[serde(default = "default_dot_payee")]
    pub payee: String,
    /// Planck the stash always keeps free for fees (default 1 DOT).
    #[serde(default = "default_dot_fee_reserve")]
    pub fee_reserve_planck: u64,
    /// Mortal era of our transactions, in blocks (a power of two, 4..=65536).
    #[serde(default = "default_dot_era_period")]
    pub era_period_blocks: u64,
    /// First block the reward scan reads on a fresh database (default: the
    /// finalized head when the daemon first asks).
    #[serde(default)]
    pub rewards_from_block: Option<u64>,
}

fn default_dot_payee() -> String {
    "Staked".into()
}

fn default_dot_fee_reserve() -> u64 {
    10_000_000_000
}

fn default_dot_era_period() -> u64 {
    64
}

/// Solana network settings.
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
    /// Priority fee in micro-lamports per compute unit (0: none).
    #[serde(default)]
    pub compute_unit_price: u64,
    /// Compute unit limit sent with a priority fee.
    #[serde(default = "default_compute_unit_limit")]
    pub compute_unit_limit: u32,
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

fn default_fee_reserve_lamports() -> u64 {
    50_000_000
}

fn default_slot_ms() -> u64 {
    400
}

/// Cosmos network settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosmosNetwork {
    /// Chain id the endpoints must report (`cosmoshub-4`).
    pub chain_id: String,
    /// Gas price in uatom per unit of gas (decimal string).
    #[serde(default = "default_gas_price")]
    pub gas_price: String,
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

fn default_gas_multiplier() -> String {
    "1.4".into()
}

fn default_max_gas() -> u64 {
    2_000_000
}

fn default_timeout_blocks() -> u64 {
    100
}

/// Cardano network settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardanoNetwork {
    /// Network magic (764824073 mainnet) every endpoint must report.
    pub network_magic: u32,
    /// The stake key (cardano-cli .skey); `key` is the payment key.
    pub stake_key: Option<crate::SecretRef>,
    /// Blockfrost project id (sent as the `project_id` header).
    #[serde(default)]
    pub project_id: Option<crate::SecretRef>,
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

/// Tezos network settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TezosNetwork {
    /// Chain id the endpoints must report (`NetXdQprcVkpaWU` mainnet).
    pub chain_id: String,
    /// `staking` (frozen with the baker, rewards on-chain) or `delegation`
    /// (funds stay spendable, the baker pays off-protocol).
    #[serde(default = "default_tezos_mode")]
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
}

fn default_tezos_mode() -> String {
    "staking".into()
}

fn default_payout_delay() -> u32 {
    5
}

impl NetworkSection {
    /// The chain this section configures.
    pub fn chain(&self) -> softstake_core::ChainId {
        use softstake_core::ChainId;
        match self {
            NetworkSection::Ethereum(_) => ChainId::Ethereum,
            NetworkSection::Polkadot(_) => ChainId::Polkadot,
            NetworkSection::Solana(_) => ChainId::Solana,
            NetworkSection::Cosmos(_) => ChainId::Cosmos,
            NetworkSection::Cardano(_) => ChainId::Cardano,
            NetworkSection::Tezos(_) => ChainId::Tezos,
        }
    }
}

impl ConfigFile {
    /// Parses a TOML table into the config.
    pub fn deserialize_table(t: toml::Table) -> Result<ConfigFile, toml::de::Error> {
        // Round-trip through text so errors carry line and key context.
        toml::from_str(&toml::to_string(&t).unwrap_or_default())
    }

    /// Keys of a scalar section, for environment overrides.
    pub fn section_keys(section: &str) -> &'static [&'static str] {
        match section {
            "database" => &["url", "max_connections"],
            "api" => &["listen", "exchange_token", "admin_token", "read_rate_limit"],
            "metrics" => &["listen"],
            "log" => &["format", "level"],
            _ => &[],
        }
    }

    /// Whether `section.key` holds a [`SecretRef`].
    pub fn is_secret_key(section: &str, key: &str) -> bool {
        section == "api" && (key == "exchange_token" || key == "admin_token")
    }
}
