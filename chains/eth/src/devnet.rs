//! The Ethereum driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_testnode::{DevnetChain, Driver, Started, common_section, write_key};
use std::path::Path;

/// Beacon slot length on the devnet: one epoch (32 slots) is one step.
const ETH_SLOT_SECS: u64 = 675;
/// The platform's float for gas, paid in once the pool's books are open.
const FEE_FLOAT: u128 = 100_000_000_000_000_000;

struct Eth(crate::testnode::EthWorld);

#[async_trait::async_trait]
impl Driver for Eth {
    fn chain(&self) -> ChainId {
        ChainId::Ethereum
    }
    fn node(&self) -> &'static str {
        "a real execution node (anvil from npm) with the deposit and EIP-7002 contracts, and softstake's Beacon API test server for the consensus layer (no beacon node installs from the registries)"
    }
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        let w = &self.0;
        let dev = w.anvil.dev_account().await?;
        let h = w
            .anvil
            .call(
                "eth_sendTransaction",
                serde_json::json!([{"from": dev, "to": w.custody, "value": format!("0x{FEE_FLOAT:x}")}]),
            )
            .await?;
        w.anvil.receipt(&h).await?;
        let h = h.as_str().ok_or("eth_sendTransaction: no hash")?;
        Ok(Some((h.to_lowercase(), FEE_FLOAT)))
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let t = u64::try_from(t).unwrap_or(0);
        let b = &self.0.beacon;
        while b.slot_time(b.head()) + 32 * ETH_SLOT_SECS <= t {
            self.0.step().await?;
        }
        Ok(())
    }
}

/// Ethereum: anvil with the deposit and withdrawal-request contracts, and
/// the Beacon API test server. The custody key and the validators' deposit
/// data are the public test vectors' (tests/vectors/eth): deposit data is
/// signed by BLS keys, which the devnet does not generate.
async fn ethereum(dir: &Path, t0: i64) -> Result<Started, String> {
    use crate::testnode::{EthWorld, REQUESTS, vectors};
    let unit = 1_000_000_000_000_000_000u128;
    let liabilities = 100 * unit;
    let deposits = dir.join("eth-deposits");
    std::fs::create_dir_all(&deposits).map_err(|e| e.to_string())?;
    // Exactly what users hold: the platform's gas float comes later, as a
    // declared transfer (Driver::fund_fees). The two 0x01 validators (32
    // ETH each).
    let w = EthWorld::start_at(
        liabilities,
        &[0, 2],
        &deposits,
        u64::try_from(t0).unwrap_or(0),
        ETH_SLOT_SECS,
    )
    .await?;
    let key_hex = vectors()["custody_key_hex"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let (bound, deposit_contract) = (w.beacon_addr, w.deposit_contract.clone());
    let key_file = write_key(dir, "ethereum.key", &key_hex)?;
    let mut section = common_section(&w.anvil.url, &key_file, &["op-a"], "1", "1000");
    section.push_str(&format!(
        "[chains.network]\ntype = \"ethereum\"\nchain_id = 31337\nbeacon_endpoints = [\"http://{bound}\"]\n\
         fork_version = \"0x10000038\"\ndeposit_contract = \"{deposit_contract}\"\n\
         withdrawal_request_contract = \"{REQUESTS}\"\ndeposit_data_dir = \"{}\"\n\
         max_fee_per_gas_gwei = 500\nmax_gas = 1000000\ndeposit_log_from_block = 0\nconfirmations = 1\n\
         sweep_delay_secs = 3600\n",
        deposits.display()
    ));
    Ok(Started {
        driver: Box::new(Eth(w)),
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
