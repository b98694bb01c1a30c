//! The Ethereum driver of `softstake devnet`: starts anvil and the
//! executable consensus spec's beacon node (the engine tests' world), funds
//! the custody key, writes the key file and the chain's config section, and
//! moves the chain's time with the devnet clock, one slot (one execution
//! block) at a time.

use softstake_core::ChainId;
use softstake_testnode::{DevnetChain, Driver, Started, common_section, write_key};
use std::path::Path;

/// Beacon slot length on the devnet: a six-hour step is four epochs of
/// eight slots (the minimal preset), 32 execution blocks.
const ETH_SLOT_SECS: u64 = 675;
/// The platform's float for gas, paid in once the pool's books are open.
const FEE_FLOAT: u128 = 100_000_000_000_000_000;

struct Eth(crate::testnode::SpecWorld);

#[async_trait::async_trait]
impl Driver for Eth {
    fn chain(&self) -> ChainId {
        ChainId::Ethereum
    }
    fn node(&self) -> &'static str {
        "a real execution node (anvil from npm) with the deposit and EIP-7002 contracts, mining one block per slot for the executable consensus spec (PyPI eth-consensus-specs, Electra, minimal preset) behind the Beacon API (no beacon node installs from the registries)"
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
        w.beacon.mine().await?;
        w.anvil.receipt(&h).await?;
        let h = h.as_str().ok_or("eth_sendTransaction: no hash")?;
        Ok(Some((h.to_lowercase(), FEE_FLOAT)))
    }
    async fn repay_treasury(&self, amount: u128) -> Result<Option<String>, String> {
        // A plain transfer from custody to the treasury. The devnet's
        // anvil lets the driver send as custody (impersonation) rather than
        // hold the custody key; on chain it is the custody account's
        // transaction, its gas paid by custody.
        let w = &self.0;
        let treasury = format!("0x{}", "7e".repeat(20));
        w.anvil
            .call("anvil_impersonateAccount", serde_json::json!([w.custody]))
            .await?;
        let sent = w
            .anvil
            .call(
                "eth_sendTransaction",
                serde_json::json!([{"from": w.custody, "to": treasury, "value": format!("0x{amount:x}")}]),
            )
            .await;
        w.anvil
            .call(
                "anvil_stopImpersonatingAccount",
                serde_json::json!([w.custody]),
            )
            .await?;
        let h = sent?;
        w.beacon.mine().await?;
        w.anvil.receipt(&h).await?;
        let h = h.as_str().ok_or("eth_sendTransaction: no hash")?;
        Ok(Some(h.to_lowercase()))
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let t = u64::try_from(t).unwrap_or(0);
        let b = &self.0.beacon;
        let head = b.head().await?;
        let due = t.saturating_sub(b.slot_time(0).await?) / ETH_SLOT_SECS;
        if due > head {
            b.slots(due - head).await?;
        }
        Ok(())
    }
    async fn nudge(&self) -> Result<bool, String> {
        self.0.beacon.mine().await
    }
    /// When the next of the custody's validators may exit (activation +
    /// SHARD_COMMITTEE_PERIOD): a daemon cycling every few minutes asks
    /// then, so the devnet stops there too.
    async fn wake_at(&self, now: i64) -> Result<Option<i64>, String> {
        let b = &self.0.beacon;
        let custody = self.0.custody.to_lowercase();
        let sp = b.get("/eth/v1/config/spec").await?;
        let num = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        let period = sp
            .pointer("/data/SHARD_COMMITTEE_PERIOD")
            .and_then(num)
            .unwrap_or(256);
        let spe = sp
            .pointer("/data/SLOTS_PER_EPOCH")
            .and_then(num)
            .unwrap_or(8);
        let vals = b.get("/eth/v1/beacon/states/head/validators").await?;
        let mut out: Option<i64> = None;
        for v in vals["data"].as_array().into_iter().flatten() {
            let wc = v["validator"]["withdrawal_credentials"]
                .as_str()
                .unwrap_or("");
            let Some(a) = num(&v["validator"]["activation_epoch"]) else {
                continue;
            };
            if !wc.ends_with(&custody[2..]) || a == u64::MAX {
                continue;
            }
            let t = i64::try_from(b.slot_time((a + period) * spe).await?).unwrap_or(i64::MAX);
            if t > now && out.is_none_or(|o| t < o) {
                out = Some(t);
            }
        }
        Ok(out)
    }
}

/// Ethereum: anvil with the deposit and withdrawal-request contracts, and
/// the consensus spec's beacon node. The custody key and the validators'
/// deposit data are the public test vectors' (tests/vectors/eth): deposit
/// data is signed by BLS keys, which the devnet does not generate (the
/// spec checks those signatures).
async fn ethereum(dir: &Path, t0: i64) -> Result<Started, String> {
    use crate::testnode::{REQUESTS, SpecOptions, SpecWorld, vectors};
    let unit = 1_000_000_000_000_000_000u128;
    let liabilities = 100 * unit;
    let deposits = dir.join("eth-deposits");
    std::fs::create_dir_all(&deposits).map_err(|e| e.to_string())?;
    // Exactly what users hold: the platform's gas float comes later, as a
    // declared transfer (Driver::fund_fees). The two 0x01 validators (32
    // ETH each).
    let opts = SpecOptions {
        validators: 16,
        slot_secs: ETH_SLOT_SECS,
        genesis_time: u64::try_from(t0).unwrap_or(0),
        mev_every: 2,
        ..SpecOptions::default()
    };
    let w = SpecWorld::start(liabilities, &[0, 2], &deposits, &opts).await?;
    let key_hex = vectors()["custody_key_hex"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let (bound, deposit_contract) = (w.beacon.addr, w.deposit_contract.clone());
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

/// What the nodes need installed, when they are missing: anvil (npm in
/// tests/vectors/eth) and the consensus spec's Python (scripts/eth-spec-venv).
fn install(root: &Path) -> Option<(&'static str, std::process::Command)> {
    let anvil = crate::testnode::anvil_path().is_ok();
    let spec = crate::testnode::spec_python().is_ok();
    if anvil && spec {
        return None;
    }
    let mut script = String::from("set -e\n");
    if !anvil {
        script.push_str("(cd tests/vectors/eth && npm ci --no-audit --no-fund)\n");
    }
    if !spec {
        script.push_str("scripts/eth-spec-venv >/dev/null\n");
    }
    let mut cmd = std::process::Command::new("bash");
    cmd.args(["-c", &script]).current_dir(root);
    Some((
        "anvil (npm) and the consensus spec (PyPI eth-consensus-specs)",
        cmd,
    ))
}

/// The Ethereum chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Ethereum,
    starting: "starting anvil and the consensus spec's beacon node",
    sets_start_time: false,
    install,
    start: |dir, t0, _rng| Box::pin(async move { Ok((ethereum(dir, t0).await?, t0)) }),
};
