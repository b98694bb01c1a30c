//! The Solana driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_testnode::{
    DevnetChain, Driver, Rng, Started, common_section, u128_to_u64, write_key,
};
use std::path::Path;

/// Solana slot length on the devnet (chain time per slot).
const SOL_SLOT_MS: u64 = 60_000;

struct Sol(crate::testnode::SvmNode, String, crate::keys::LocalKey);

/// The platform's float for fees, paid in once the pool's books are open.
const FEE_FLOAT: u64 = 1_000_000_000;

impl Sol {
    async fn time(&self) -> Result<i64, String> {
        self.0.time().await.map(|t| t.unix())
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
    async fn repay_treasury(&self, amount: u128) -> Result<Option<String>, String> {
        // A system transfer from custody to the treasury, signed by the
        // custody key.
        use base64::Engine;
        let v = self
            .0
            .call("getLatestBlockhash", serde_json::json!([]))
            .await?;
        let blockhash = v["value"]["blockhash"]
            .as_str()
            .ok_or("getLatestBlockhash: no blockhash")?;
        let treasury = solana_sdk::pubkey::Pubkey::new_from_array([0x7e; 32]);
        let signed = crate::tx::transfer(&self.2, &treasury, u128_to_u64(amount)?, blockhash)
            .map_err(|e| e.to_string())?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&signed.bytes);
        self.0
            .call(
                "sendTransaction",
                serde_json::json!([b64, {"encoding": "base64"}]),
            )
            .await?;
        self.0.advance_slots(1).await?;
        Ok(Some(signed.signature))
    }
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        let sig = self.0.transfer(&self.1, FEE_FLOAT).await?;
        Ok(Some((sig, u128::from(FEE_FLOAT))))
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
async fn solana(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use crate::keys::LocalKey;
    use crate::testnode::{SvmNode, SvmOptions};
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
    // Exactly what users hold: the platform's fee float comes later, as a
    // declared transfer (Driver::fund_fees).
    node.airdrop(&key.address(), u128_to_u64(liabilities)?)
        .await?;
    let vote = node.create_vote(5).await?;
    node.advance_slots(1).await?;
    let key_file = write_key(dir, "solana.json", &key.to_keygen_json())?;
    let mut section = common_section(&node.url, &key_file, &[&vote], "1", "100000");
    section.push_str(&format!(
        "[chains.network]\ntype = \"solana\"\ngenesis_hash = \"{}\"\nfee_reserve_lamports = 10000000\nslot_ms = {SOL_SLOT_MS}\n",
        node.genesis_hash
    ));
    Ok(Started {
        driver: Box::new(Sol(node, key.address(), key)),
        section,
        liabilities,
        unit,
    })
}

/// What the node needs installed, when it is missing.
fn install(root: &Path) -> Option<(&'static str, std::process::Command)> {
    if crate::testnode::python().is_ok() {
        return None;
    }
    Some((
        "the SVM test node's Python (solders from PyPI)",
        std::process::Command::new(root.join("scripts/svm-venv")),
    ))
}

/// The Solana chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Solana,
    starting: "starting the SVM test node (LiteSVM)",
    sets_start_time: false,
    install,
    start: |dir, t0, rng| Box::pin(async move { Ok((solana(dir, t0, rng).await?, t0)) }),
};
