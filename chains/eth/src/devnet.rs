//! The Ethereum driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_testnode::{DevnetChain, Driver, Started, common_section, write_key};
use std::path::Path;

/// Beacon slot length on the devnet: one epoch (32 slots) is one step.
const ETH_SLOT_SECS: u64 = 675;
const ETH_REQUESTS: &str = "0x00000961Ef480Eb55e80D19ad83579A64c007002";
/// The platform's float for gas, paid in once the pool's books are open.
const FEE_FLOAT: u128 = 100_000_000_000_000_000;
const ETH_VECTORS: &str = include_str!("../../../tests/vectors/eth/vectors.json");

struct Eth {
    anvil: crate::testnode::Anvil,
    beacon: crate::testnode::BeaconServer,
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
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        let dev = self.anvil.dev_account().await?;
        let h = self
            .anvil
            .call(
                "eth_sendTransaction",
                serde_json::json!([{"from": dev, "to": self.custody, "value": format!("0x{FEE_FLOAT:x}")}]),
            )
            .await?;
        self.anvil.receipt(&h).await?;
        let h = h.as_str().ok_or("eth_sendTransaction: no hash")?;
        Ok(Some((h.to_lowercase(), FEE_FLOAT)))
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let t = u64::try_from(t).unwrap_or(0);
        while self.beacon.slot_time(self.beacon.head()) + 32 * ETH_SLOT_SECS <= t {
            crate::testnode::consensus_step(
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
async fn ethereum(dir: &Path, t0: i64) -> Result<Started, String> {
    use crate::testnode::{Anvil, BeaconServer};
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
    // Exactly what users hold: the platform's gas float comes later, as a
    // declared transfer (Driver::fund_fees).
    anvil.set_balance(&custody, liabilities).await?;
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
    let mut section = common_section(&anvil.url, &key_file, &["op-a"], "1", "1000");
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

/// What the node needs installed, when it is missing.
fn install(root: &Path) -> Option<(&'static str, std::process::Command)> {
    if crate::testnode::anvil_path().is_ok() {
        return None;
    }
    let mut cmd = std::process::Command::new("npm");
    cmd.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(root.join("tests/vectors/eth"));
    Some(("anvil (npm)", cmd))
}

/// The Ethereum chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Ethereum,
    starting: "starting anvil and the Beacon API test server",
    sets_start_time: false,
    install,
    start: |dir, t0, _rng| Box::pin(async move { Ok((ethereum(dir, t0).await?, t0)) }),
};
