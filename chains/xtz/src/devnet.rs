//! The Tezos driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_testnode::{DevnetChain, Driver, Rng, Started, common_section, write_key};
use std::path::Path;

const BAKER: &str = "tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN";

/// The platform's account, which pays the fee float in.
fn platform() -> String {
    crate::forge::b58(crate::forge::prefix::TZ1, &[0x50; 20])
}
/// The treasury's wallet, which fronts advances.
fn treasury() -> String {
    crate::forge::b58(crate::forge::prefix::TZ1, &[0x51; 20])
}
/// What the platform pays in for fees, mutez.
const FEE_FLOAT: u128 = 5_000_000;

struct Xtz(crate::testnode::TestNode, i64, String);

#[async_trait::async_trait]
impl Driver for Xtz {
    fn chain(&self) -> ChainId {
        ChainId::Tezos
    }
    fn node(&self) -> &'static str {
        "softstake's octez-shaped Tezos test node (no octez binaries in the registries; its answers checked against recorded octez and Taquito outputs)"
    }
    async fn advance_to(&self, t: i64) -> Result<(), String> {
        let now = self.0.head().1;
        if t > now {
            self.0.bake((t - now) / self.1);
        }
        Ok(())
    }
    async fn repay_treasury(&self, amount: u128) -> Result<Option<String>, String> {
        // A transaction from custody to the treasury, baked at once.
        Ok(Some(self.0.payout(&self.2, &treasury(), amount)))
    }
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        let hash = self.0.payout(&platform(), &self.2, FEE_FLOAT);
        Ok(Some((hash, FEE_FLOAT)))
    }
    // One block (a minute) ahead of the clock at most: the devnet stops at
    // whole hours, which are cycle boundaries here, so no cycle's rewards
    // end inside the block.
    async fn nudge(&self) -> Result<bool, String> {
        self.0.bake(1);
        Ok(true)
    }
}

/// Tezos (staking mode) on the octez-shaped test node.
async fn tezos(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use crate::keys::{LocalKey, Signer};
    use crate::testnode::{TestNode, TestNodeConfig};
    let edsk = crate::forge::b58(crate::forge::prefix::EDSK_SEED, &rng.bytes32());
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
        // Exactly the liabilities: the platform pays its fee float in with
        // a real transfer once the books are open (`fund_fees`).
        accounts: vec![(key.address(), liabilities), (platform(), 100 * unit)],
        protocol_change: None,
    });
    let bound = node
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "tezos.key", &edsk)?;
    let mut section = common_section(
        &format!("http://{bound}"),
        &key_file,
        &[BAKER],
        "1",
        "100000",
    );
    section.push_str(
        "[chains.network]\ntype = \"tezos\"\nchain_id = \"NetXsoftstake1\"\nmode = \"staking\"\nstart_level = 1\n",
    );
    Ok(Started {
        driver: Box::new(Xtz(node, block_secs, key.address())),
        section,
        liabilities,
        unit,
    })
}

/// The Tezos chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Tezos,
    starting: "starting the Tezos test node",
    sets_start_time: false,
    install: softstake_testnode::nothing_to_install,
    start: |dir, t0, rng| Box::pin(async move { Ok((tezos(dir, t0, rng).await?, t0)) }),
};
