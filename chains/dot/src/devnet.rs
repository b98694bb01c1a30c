//! The Polkadot driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_core::adapter::{ChainAdapter, PoolStateRequest};
use softstake_testnode::{DevnetChain, Driver, Rng, Started, common_section, write_key};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Length of an era on Westend's Asset Hub (its `MaxEraDuration`: 6 relay
/// sessions of an hour), as on Polkadot's.
pub const DOT_ERA_SECS: i64 = 6 * 3600;

/// The platform's float for fees, paid in once the books are open (planck).
const FEE_FLOAT: u128 = 5 * 10_000_000_000;

/// A devnet wallet from a fixed derivation (never a real key).
fn dev_key(uri: &str) -> subxt_signer::sr25519::Keypair {
    #[allow(clippy::expect_used)]
    subxt_signer::sr25519::Keypair::from_uri(&uri.parse().expect("a secret URI"))
        .expect("an sr25519 key")
}

/// The platform's own wallet.
fn platform() -> subxt_signer::sr25519::Keypair {
    dev_key("//SoftstakeDevnetPlatform")
}

/// The treasury's wallet, which fronts advances.
fn treasury() -> subxt_signer::sr25519::Keypair {
    dev_key("//SoftstakeDevnetTreasury")
}

struct Dot {
    node: crate::testnode::Chopsticks,
    reader: crate::DotAdapter,
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
        "the real Westend Asset Hub runtime (pallet-staking-async) under chopsticks (eras end on relay-chain session reports sent as XCM; paged exposures written through its dev RPC: no election runs)"
    }
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        // A transfer from the platform's wallet, built into a block at once
        // (chopsticks in Instant mode).
        let stash: subxt::utils::AccountId32 = self.stash.parse().map_err(|_| "stash address")?;
        let hash = self
            .node
            .submit(
                &crate::tx::Call::TransferKeepAlive {
                    dest: stash,
                    value: FEE_FLOAT,
                },
                &platform(),
            )
            .await?;
        Ok(Some((hash, FEE_FLOAT)))
    }
    async fn repay_treasury(&self, amount: u128) -> Result<Option<String>, String> {
        // Signed by the custody key (the adapter's), to the treasury.
        let op = self
            .reader
            .sign_raw(&crate::tx::Call::TransferKeepAlive {
                dest: subxt::utils::AccountId32(treasury().public_key().0),
                value: amount,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.reader
            .broadcast(softstake_core::adapter::BroadcastRequest { signed: op.clone() })
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(op.tx_id))
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
                .pool_state(PoolStateRequest::default())
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

/// Polkadot: chopsticks running the real Westend Asset Hub runtime, where
/// staking lives since the Asset Hub migration. Returns the chain and its
/// time (chopsticks starts at the wall clock).
async fn polkadot(dir: &Path, rng: &mut Rng) -> Result<(Started, i64), String> {
    use crate::testnode::{CHOPSTICKS_GENESIS, Chopsticks};
    let node = Chopsticks::asset_hub("Instant").await?;
    let t0 = i64::try_from(node.now_ms().await? / 1000).map_err(|e| e.to_string())?;
    let vals = node.staking_validators().await?;
    let validator = vals
        .first()
        .cloned()
        .ok_or("the Asset Hub development genesis without validators")?;
    let uri = format!("0x{}", hex::encode(rng.bytes32()));
    let pair = subxt_signer::sr25519::Keypair::from_uri(
        &uri.parse().map_err(|_| "secret uri".to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let stash = subxt::utils::AccountId32(pair.public_key().0).to_string();
    let unit = 10_000_000_000u128;
    let liabilities = 10_000 * unit;
    // Exactly the liabilities: the platform pays its fee float in with a
    // real transfer once the books are open (`fund_fees`).
    node.fund(&stash, liabilities).await?;
    node.fund(
        &subxt::utils::AccountId32(platform().public_key().0).to_string(),
        100 * unit,
    )
    .await?;
    node.set_era(1, u64::try_from(t0).unwrap_or(0) * 1000)
        .await?;
    let key_file = write_key(dir, "polkadot.uri", &uri)?;
    let mut section = common_section(&node.url, &key_file, &[&validator], "1", "100000");
    section.push_str(&format!(
        "[chains.network]\ntype = \"polkadot\"\ngenesis_hash = \"{CHOPSTICKS_GENESIS}\"\n"
    ));
    let reader = crate::DotAdapter::new(
        crate::DotSettings {
            endpoints: vec![node.url.clone()],
            genesis_hash: CHOPSTICKS_GENESIS.into(),
            targets: vec![(
                validator.clone(),
                validator.parse().map_err(|_| "validator address")?,
            )],
            stash: None,
            payee: crate::tx::Payee::Staked,
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

/// What the node needs installed, when it is missing.
fn install(root: &Path) -> Option<(&'static str, std::process::Command)> {
    if crate::testnode::chopsticks_path().is_ok() {
        return None;
    }
    Some((
        "chopsticks",
        std::process::Command::new(root.join("scripts/dot-node")),
    ))
}

/// The Polkadot chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Polkadot,
    starting: "starting chopsticks with the Westend Asset Hub runtime (about 20 s)",
    sets_start_time: true,
    install,
    start: |dir, _t0, rng| Box::pin(async move { polkadot(dir, rng).await }),
};
