//! One driver per chain: starts the local node the adapter tests use, funds
//! a throwaway custody key, writes the key file and the chain's config
//! section, and moves the chain's time forward with the devnet clock.

use serde_json::json;
use softstake_core::ChainId;
use softstake_core::adapter::{ChainAdapter, PoolStateRequest};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A started chain.
pub struct Started {
    /// Its driver.
    pub driver: Box<dyn Driver>,
    /// The `[[chains]]` section (TOML), key file written.
    pub section: String,
    /// What the custody holds for users, base units.
    pub liabilities: u128,
    /// Base units per coin.
    pub unit: u128,
}

/// Moves one chain's time.
#[async_trait::async_trait]
pub trait Driver: Send + Sync {
    /// The chain.
    fn chain(&self) -> ChainId;
    /// What runs it, for the summary and the README.
    fn node(&self) -> &'static str;
    /// Moves the chain to devnet time `t` (unix seconds).
    async fn advance_to(&self, t: i64) -> Result<(), String>;
    /// Includes what waits in the mempool on a node that only makes blocks
    /// when told, without moving the devnet clock; `false` when this node
    /// cannot do that safely (the devnet then moves everyone's time).
    async fn nudge(&self) -> Result<bool, String> {
        Ok(false)
    }
}

pub use softstake_core::rng::Rng;

fn write_key(dir: &Path, name: &str, content: &str) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, content).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p.display().to_string())
}

fn common(
    endpoint: &str,
    key_file: &str,
    validators: &[&str],
    min_operation: &str,
    max_op: &str,
) -> String {
    let mut s = format!(
        "[[chains]]\nenabled = true\nendpoints = [\"{endpoint}\"]\nkey = {{ file = \"{key_file}\" }}\n\
         interval_secs = 1\ncommission = \"0.10\"\n"
    );
    for v in validators {
        s.push_str(&format!(
            "[[chains.validators]]\naddress = \"{v}\"\nweight = 1\ncap = \"1\"\n"
        ));
    }
    s.push_str(&format!(
        "[chains.buffer]\ntarget = \"0.2\"\nband = \"0.05\"\nmin_operation = \"{min_operation}\"\n\
         [chains.safety]\nmax_per_operation = \"{max_op}\"\nmax_per_day = \"100000000\"\napproval_threshold = \"{max_op}\"\n"
    ));
    s
}

// ---------------------------------------------------------------- Cosmos

const ATOM_V1: &str = "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0";
const ATOM_V2: &str = "cosmosvaloper156gqf9837u7d4c4678yt3rl4ls9c5vuursrrzf";

struct Atom(softstake_chain_atom::testnode::TestNode);

#[async_trait::async_trait]
impl Driver for Atom {
    fn chain(&self) -> ChainId {
        ChainId::Cosmos
    }
    fn node(&self) -> &'static str {
        "softstake's protocol-faithful Cosmos test node (no gaiad installs from the registries)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let now = self.0.head().1;
        if t > now {
            self.0.advance(t - now);
        }
        Ok(())
    }
}

/// Cosmos Hub on the protocol-faithful test node.
pub async fn cosmos(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use softstake_chain_atom::keys::{LocalKey, Signer};
    use softstake_chain_atom::testnode::{TestNode, TestNodeConfig};
    let hex_key = hex::encode(rng.bytes32());
    let key = LocalKey::parse(&softstake_core::Secret::new(hex_key.clone()))
        .map_err(|e| e.to_string())?;
    let unit = 1_000_000u128;
    let liabilities = 100_000 * unit;
    let node = TestNode::new(TestNodeConfig {
        chain_id: "softstake-devnet-1".into(),
        genesis_time: t0,
        // One-second blocks: a transaction lands in the first second after
        // the devnet moves time, as it would within a daemon cycle.
        block_secs: 1,
        unbonding_secs: 2 * 86_400,
        max_entries: 7,
        reward_per_token_per_sec: 3_200_000_000,
        min_gas_price: 5_000_000_000_000_000,
        validators: vec![ATOM_V1.into(), ATOM_V2.into()],
        accounts: vec![(key.address(), liabilities + 5 * unit)],
    });
    let bound = node
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "cosmos.key", &hex_key)?;
    let mut section = common(
        &format!("http://{bound}/"),
        &key_file,
        &[ATOM_V1, ATOM_V2],
        "1",
        "1000000",
    );
    section.push_str(
        "[chains.network]\ntype = \"cosmos\"\nchain_id = \"softstake-devnet-1\"\ngas_price = \"0.025\"\n\
         gas_multiplier = \"1.3\"\nmax_gas = 1000000\ntimeout_blocks = 20\n",
    );
    Ok(Started {
        driver: Box::new(Atom(node)),
        section,
        liabilities,
        unit,
    })
}

fn u128_to_u64(v: u128) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{v} does not fit the test node's u64"))
}

// ---------------------------------------------------------------- Tezos

const BAKER: &str = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";

struct Xtz(softstake_chain_xtz::testnode::TestNode, i64);

#[async_trait::async_trait]
impl Driver for Xtz {
    fn chain(&self) -> ChainId {
        ChainId::Tezos
    }
    fn node(&self) -> &'static str {
        "softstake's protocol-faithful Tezos test node (no octez binaries in the registries)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let now = self.0.head().1;
        if t > now {
            self.0.bake((t - now) / self.1);
        }
        Ok(())
    }
    // One block (a minute) ahead of the clock at most: the devnet stops at
    // whole hours, which are cycle boundaries here, so no cycle's rewards
    // end inside the block.
    async fn nudge(&self) -> Result<bool, String> {
        self.0.bake(1);
        Ok(true)
    }
}

/// Tezos (staking mode) on the protocol-faithful test node.
pub async fn tezos(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use softstake_chain_xtz::keys::{LocalKey, Signer};
    use softstake_chain_xtz::testnode::{TestNode, TestNodeConfig};
    let edsk = softstake_chain_xtz::forge::b58(
        softstake_chain_xtz::forge::prefix::EDSK_SEED,
        &rng.bytes32(),
    );
    let key =
        LocalKey::parse(&softstake_core::Secret::new(edsk.clone())).map_err(|e| e.to_string())?;
    let unit = 1_000_000u128;
    let liabilities = 20_000 * unit;
    let block_secs = 60;
    let node = TestNode::new(TestNodeConfig {
        chain_id: "NetXsoftstake1".into(),
        genesis_time: t0,
        block_secs,
        blocks_per_cycle: 60,
        unstake_delay_cycles: 2,
        reward_ppm_per_cycle: 200,
        bakers: vec![(BAKER.into(), true, 10_000_000 * unit)],
        accounts: vec![(key.address(), liabilities + 5 * unit)],
    });
    let bound = node
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "tezos.key", &edsk)?;
    let mut section = common(
        &format!("http://{bound}"),
        &key_file,
        &[BAKER],
        "1",
        "100000",
    );
    section.push_str(
        "[chains.network]\ntype = \"tezos\"\nchain_id = \"NetXsoftstake1\"\nmode = \"staking\"\n",
    );
    Ok(Started {
        driver: Box::new(Xtz(node, block_secs)),
        section,
        liabilities,
        unit,
    })
}

// ---------------------------------------------------------------- Cardano

struct Ada(softstake_chain_ada::testnode::TestNode);

#[async_trait::async_trait]
impl Driver for Ada {
    fn chain(&self) -> ChainId {
        ChainId::Cardano
    }
    fn node(&self) -> &'static str {
        "softstake's protocol-faithful Cardano test node behind a Blockfrost-shaped API (no cardano-node in the registries)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let now = self.0.now();
        if t > now {
            self.0
                .advance_slots(u64::try_from(t - now).map_err(|e| e.to_string())?);
        }
        Ok(())
    }
}

/// Cardano on the protocol-faithful test node.
pub async fn cardano(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use softstake_chain_ada::keys::LocalKey;
    use softstake_chain_ada::testnode::{TestNode, TestNodeConfig, pool_bech32};
    use softstake_chain_ada::tx;
    let unit = 1_000_000u128;
    let liabilities = 50_000 * unit;
    let node = TestNode::new(TestNodeConfig {
        min_fee_a: 44,
        min_fee_b: 155_381,
        key_deposit: 2_000_000,
        epoch_length: 3_600,
        system_start: t0,
        reward_bps: 5,
        network_id: 0,
    });
    let pool = [0x33; 28];
    node.add_pool(pool);
    let payment = LocalKey::from_seed(rng.bytes32());
    let stake = LocalKey::from_seed(rng.bytes32());
    node.fund(
        &tx::base_address(0, &payment.key_hash(), &stake.key_hash()),
        u128_to_u64(liabilities + 5 * unit)?,
    );
    let bound = node
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "cardano-payment.skey", &payment.to_skey("Payment"))?;
    let stake_file = write_key(dir, "cardano-stake.skey", &stake.to_skey("Stake"))?;
    let mut section = common(
        &format!("http://{bound}"),
        &key_file,
        &[&pool_bech32(&pool)],
        "1",
        "1000000",
    );
    section.push_str(&format!(
        "[chains.network]\ntype = \"cardano\"\nnetwork_magic = 42\nstake_key = {{ file = \"{stake_file}\" }}\n\
         drep = \"always_abstain\"\nmin_withdrawal_lovelace = 1000000\nttl_slots = 7200\n"
    ));
    Ok(Started {
        driver: Box::new(Ada(node)),
        section,
        liabilities,
        unit,
    })
}

// ---------------------------------------------------------------- Polkadot

/// Length of a Polkadot era on Paseo (6 sessions x 600 slots x 6 s).
pub const DOT_ERA_SECS: i64 = 6 * 3600;

struct Dot {
    node: softstake_chain_dot::testnode::Chopsticks,
    reader: softstake_chain_dot::DotAdapter,
    stash: String,
    validator: String,
    t0: i64,
    era: std::sync::Mutex<u32>,
}

#[async_trait::async_trait]
impl Driver for Dot {
    fn chain(&self) -> ChainId {
        ChainId::Polkadot
    }
    fn node(&self) -> &'static str {
        "the real Paseo runtime under chopsticks (eras moved through its dev RPC: no validators produce sessions)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let target = u32::try_from(1 + (t - self.t0).max(0) / DOT_ERA_SECS).unwrap_or(u32::MAX);
        loop {
            let e = *self.era.lock().map_err(|_| "poisoned")?;
            if e >= target {
                return Ok(());
            }
            // The era that ends pays 50 DOT for the validator's points; the
            // next one exposes what the stash has bonded.
            let pool = self
                .reader
                .pool_state(PoolStateRequest {})
                .await
                .map_err(|e| e.to_string())?;
            let bonded: u128 = pool
                .delegations
                .iter()
                .map(|d| d.active.base() + d.activating.base())
                .sum();
            let start = self.t0 + i64::from(e) * DOT_ERA_SECS;
            self.node
                .next_era(
                    e,
                    u64::try_from(start).unwrap_or(0) * 1000,
                    &self.validator,
                    &self.stash,
                    bonded,
                    50 * 10_000_000_000,
                )
                .await?;
            *self.era.lock().map_err(|_| "poisoned")? = e + 1;
        }
    }
}

/// Polkadot: chopsticks running the real Paseo runtime. Returns the chain
/// and its time (chopsticks starts at the wall clock).
pub async fn polkadot(dir: &Path, rng: &mut Rng) -> Result<(Started, i64), String> {
    use softstake_chain_dot::testnode::{CHOPSTICKS_GENESIS, Chopsticks};
    let node = Chopsticks::start().await?;
    let t0 = i64::try_from(node.now_ms().await? / 1000).map_err(|e| e.to_string())?;
    let vals = node.session_validators().await?;
    let validator = vals
        .first()
        .cloned()
        .ok_or("Paseo genesis without validators")?;
    let uri = format!("0x{}", hex::encode(rng.bytes32()));
    let pair = subxt_signer::sr25519::Keypair::from_uri(
        &uri.parse().map_err(|_| "secret uri".to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let stash = subxt::utils::AccountId32(pair.public_key().0).to_string();
    let unit = 10_000_000_000u128;
    let liabilities = 10_000 * unit;
    node.fund(&stash, liabilities + 5 * unit).await?;
    node.set_era(1, u64::try_from(t0).unwrap_or(0) * 1000)
        .await?;
    let key_file = write_key(dir, "polkadot.uri", &uri)?;
    let mut section = common(&node.url, &key_file, &[&validator], "1", "100000");
    section.push_str(&format!(
        "[chains.network]\ntype = \"polkadot\"\ngenesis_hash = \"{CHOPSTICKS_GENESIS}\"\n"
    ));
    let reader = softstake_chain_dot::DotAdapter::new(
        softstake_chain_dot::DotSettings {
            endpoints: vec![node.url.clone()],
            genesis_hash: CHOPSTICKS_GENESIS.into(),
            targets: vec![(
                validator.clone(),
                validator.parse().map_err(|_| "validator address")?,
            )],
            stash: None,
            payee: softstake_chain_dot::tx::Payee::Staked,
            fee_reserve: unit,
            era_period: 64,
            rewards_from_block: None,
            max_scan_blocks: 100,
            max_payouts_per_tx: 8,
            request_timeout: Duration::from_secs(60),
        },
        Arc::new(pair),
    )
    .map_err(|e| e.to_string())?;
    Ok((
        Started {
            driver: Box::new(Dot {
                node,
                reader,
                stash,
                validator,
                t0,
                era: std::sync::Mutex::new(1),
            }),
            section,
            liabilities,
            unit,
        },
        t0,
    ))
}

// ---------------------------------------------------------------- Ethereum

/// Beacon slot length on the devnet: one epoch (32 slots) is one step.
const ETH_SLOT_SECS: u64 = 675;
const ETH_REQUESTS: &str = "0x00000961Ef480Eb55e80D19ad83579A64c007002";
const ETH_VECTORS: &str = include_str!("../../../tests/vectors/eth/vectors.json");

struct Eth {
    anvil: softstake_chain_eth::testnode::Anvil,
    beacon: softstake_chain_eth::testnode::BeaconServer,
    deposit_contract: String,
    custody: String,
}

#[async_trait::async_trait]
impl Driver for Eth {
    fn chain(&self) -> ChainId {
        ChainId::Ethereum
    }
    fn node(&self) -> &'static str {
        "a real execution node (anvil from npm) with the deposit and EIP-7002 contracts, and softstake's Beacon API test server for the consensus layer (no beacon node installs from the registries)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let t = u64::try_from(t).unwrap_or(0);
        while self.beacon.slot_time(self.beacon.head()) + 32 * ETH_SLOT_SECS <= t {
            softstake_chain_eth::testnode::consensus_step(
                &self.anvil,
                &self.beacon,
                &self.deposit_contract,
                &self.custody,
                ETH_REQUESTS,
            )
            .await?;
        }
        Ok(())
    }
}

/// Ethereum: anvil with the deposit and withdrawal-request contracts, and
/// the Beacon API test server. The custody key and the validators' deposit
/// data are the public test vectors' (tests/vectors/eth): deposit data is
/// signed by BLS keys, which the devnet does not generate.
pub async fn ethereum(dir: &Path, t0: i64) -> Result<Started, String> {
    use softstake_chain_eth::testnode::{Anvil, BeaconServer};
    let v: serde_json::Value = serde_json::from_str(ETH_VECTORS).map_err(|e| e.to_string())?;
    let unit = 1_000_000_000_000_000_000u128;
    let liabilities = 100 * unit;
    let anvil = Anvil::start().await?;
    let deposit_contract = anvil
        .deploy(v["deposit_contract_bytecode"].as_str().unwrap_or(""))
        .await?;
    anvil
        .set_code(
            ETH_REQUESTS,
            v["withdrawal_request_runtime"].as_str().unwrap_or(""),
        )
        .await?;
    let key_hex = v["custody_key_hex"].as_str().unwrap_or("").to_owned();
    let custody = v["custody_address"].as_str().unwrap_or("").to_owned();
    anvil.set_balance(&custody, liabilities + unit / 10).await?;
    let beacon = BeaconServer::new(
        u64::try_from(t0).unwrap_or(0),
        ETH_SLOT_SECS,
        32,
        "0x10000038",
    );
    let bound = beacon
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let deposits = dir.join("eth-deposits");
    std::fs::create_dir_all(&deposits).map_err(|e| e.to_string())?;
    let entries = v["deposit_data"].as_array().cloned().unwrap_or_default();
    // The two 0x01 validators (32 ETH each).
    let pick: Vec<serde_json::Value> = [0usize, 2]
        .iter()
        .filter_map(|i| entries.get(*i).cloned())
        .collect();
    std::fs::write(
        deposits.join("deposit_data-devnet.json"),
        serde_json::to_string(&pick).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "ethereum.key", &key_hex)?;
    let mut section = common(&anvil.url, &key_file, &["op-a"], "1", "1000");
    section.push_str(&format!(
        "[chains.network]\ntype = \"ethereum\"\nchain_id = 31337\nbeacon_endpoints = [\"http://{bound}\"]\n\
         fork_version = \"0x10000038\"\ndeposit_contract = \"{deposit_contract}\"\n\
         withdrawal_request_contract = \"{ETH_REQUESTS}\"\ndeposit_data_dir = \"{}\"\n\
         max_fee_per_gas_gwei = 500\nmax_gas = 1000000\ndeposit_log_from_block = 0\nconfirmations = 1\n\
         sweep_delay_secs = 3600\n",
        deposits.display()
    ));
    Ok(Started {
        driver: Box::new(Eth {
            anvil,
            beacon,
            deposit_contract,
            custody,
        }),
        section,
        liabilities,
        unit,
    })
}

// ---------------------------------------------------------------- Solana

/// Solana slot length on the devnet (chain time per slot).
const SOL_SLOT_MS: u64 = 60_000;

struct Sol(softstake_chain_sol::testnode::SvmNode);

impl Sol {
    async fn time(&self) -> Result<i64, String> {
        let slot = self.0.call("getSlot", json!([])).await?;
        let t = self.0.call("getBlockTime", json!([slot])).await?;
        t.as_i64().ok_or_else(|| "bad block time".into())
    }
}

#[async_trait::async_trait]
impl Driver for Sol {
    fn chain(&self) -> ChainId {
        ChainId::Solana
    }
    fn node(&self) -> &'static str {
        "the real SVM (LiteSVM from PyPI solders) executing the real system, vote and stake programs, behind softstake's JSON-RPC front (no validator in the registries)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let now = self.time().await?;
        if t > now {
            let slots = u64::try_from((t - now) * 1000).unwrap_or(0) / SOL_SLOT_MS;
            self.0.advance_slots(slots).await?;
        }
        Ok(())
    }
}

/// Solana on the SVM test node, with one-minute slots and one-hour epochs.
pub async fn solana(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use softstake_chain_sol::keys::LocalKey;
    use softstake_chain_sol::testnode::{SvmNode, SvmOptions};
    let spe = 60u64;
    let start_epoch = 10u64;
    let node = SvmNode::start(SvmOptions {
        slots_per_epoch: spe,
        start_epoch,
        reward_bps: 5,
        slot_ms: SOL_SLOT_MS,
        genesis_time: t0 - i64::try_from(start_epoch * spe * SOL_SLOT_MS / 1000).unwrap_or(0),
        ..SvmOptions::default()
    })
    .await?;
    let key = LocalKey::from_seed(rng.bytes32());
    let unit = 1_000_000_000u128;
    let liabilities = 1_000 * unit;
    node.airdrop(&key.address(), u128_to_u64(liabilities + unit)?)
        .await?;
    let vote = node.create_vote(5).await?;
    node.advance_slots(1).await?;
    let key_file = write_key(dir, "solana.json", &key.to_keygen_json())?;
    let mut section = common(&node.url, &key_file, &[&vote], "1", "100000");
    section.push_str(&format!(
        "[chains.network]\ntype = \"solana\"\ngenesis_hash = \"{}\"\nfee_reserve_lamports = 10000000\nslot_ms = {SOL_SLOT_MS}\n",
        node.genesis_hash
    ));
    Ok(Started {
        driver: Box::new(Sol(node)),
        section,
        liabilities,
        unit,
    })
}

/// `json!` re-export check for callers building request bodies.
pub fn balance_update(
    event: &str,
    user: &str,
    asset: &str,
    balance: u128,
    at: i64,
) -> serde_json::Value {
    json!({
        "event_id": event,
        "user_id": user,
        "asset": asset,
        "balance": balance.to_string(),
        "effective_at": softstake_core::Timestamp::from_unix(at).to_string(),
    })
}
