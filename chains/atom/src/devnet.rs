//! The Cosmos Hub driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_testnode::{DevnetChain, Driver, Rng, Started, common_section, write_key};
use std::path::Path;

const ATOM_V1: &str = "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0";
const ATOM_V2: &str = "cosmosvaloper156gqf9837u7d4c4678yt3rl4ls9c5vuursrrzf";

/// The platform's float for fees (5 ATOM), paid in once the books are open.
const FEE_FLOAT: u128 = 5_000_000;

/// The platform's own wallet on the devnet.
fn platform() -> String {
    crate::flows::module_address("softstake-devnet-platform", crate::ACCOUNT_PREFIX)
}

/// The treasury's wallet on the devnet, which fronts advances.
fn treasury() -> String {
    crate::flows::module_address("softstake-devnet-treasury", crate::ACCOUNT_PREFIX)
}

/// The node and the custody address.
struct Atom(crate::testnode::TestNode, String);

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
    async fn repay_treasury(&self, amount: u128) -> Result<Option<String>, String> {
        // A bank send from custody to the treasury (the test node takes it
        // as the custody key's), included with the next block.
        Ok(Some(self.0.bank_send(&self.1, &treasury(), amount, 5_000)))
    }
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        // A bank send from the platform's wallet, included with the next
        // block (the devnet moves time before the next cycle).
        let hash = self.0.bank_send(&platform(), &self.1, FEE_FLOAT, 5_000);
        Ok(Some((hash, FEE_FLOAT)))
    }
}

/// Cosmos Hub on the protocol-faithful test node.
async fn cosmos(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use crate::keys::{LocalKey, Signer};
    use crate::testnode::{TestNode, TestNodeConfig};
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
        // Exactly the liabilities: the platform pays its fee float in with
        // a real transfer once the books are open (`fund_fees`).
        accounts: vec![(key.address(), liabilities), (platform(), 100 * unit)],
    });
    let bound = node
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "cosmos.key", &hex_key)?;
    let mut section = common_section(
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
        driver: Box::new(Atom(node, key.address())),
        section,
        liabilities,
        unit,
    })
}

/// The Cosmos chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Cosmos,
    starting: "starting the Cosmos test node",
    sets_start_time: false,
    install: softstake_testnode::nothing_to_install,
    start: |dir, t0, rng| Box::pin(async move { Ok((cosmos(dir, t0, rng).await?, t0)) }),
};
