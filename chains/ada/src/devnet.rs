//! The Cardano driver of `softstake devnet`: starts the local node the
//! adapter tests use, funds a throwaway custody key, writes the key file and
//! the chain's config section, and moves the chain's time with the devnet
//! clock.

use softstake_core::ChainId;
use softstake_testnode::{
    DevnetChain, Driver, Rng, Started, common_section, u128_to_u64, write_key,
};
use std::path::Path;

/// The platform's float for fees (5 ADA), paid in once the books are open.
const FEE_FLOAT: u64 = 5_000_000;

/// The node and the custody address (bytes).
struct Ada(crate::testnode::TestNode, Vec<u8>);

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
    async fn fund_fees(&self) -> Result<Option<(String, u128)>, String> {
        // A payment from outside (the node's faucet stands for the
        // platform's wallet), in a block of its own.
        let hash = self.0.fund(&self.1, FEE_FLOAT);
        Ok(Some((hash, u128::from(FEE_FLOAT))))
    }
}

/// Cardano on the protocol-faithful test node.
async fn cardano(dir: &Path, t0: i64, rng: &mut Rng) -> Result<Started, String> {
    use crate::keys::LocalKey;
    use crate::testnode::{TestNode, TestNodeConfig, pool_bech32};
    use crate::tx;
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
    let custody = tx::base_address(0, &payment.key_hash(), &stake.key_hash());
    // Exactly the liabilities: the platform pays its fee float in with a
    // real transfer once the books are open (`fund_fees`).
    node.fund(&custody, u128_to_u64(liabilities)?);
    let bound = node
        .serve("127.0.0.1:0".parse().map_err(|e| format!("{e}"))?)
        .await
        .map_err(|e| e.to_string())?;
    let key_file = write_key(dir, "cardano-payment.skey", &payment.to_skey("Payment"))?;
    let stake_file = write_key(dir, "cardano-stake.skey", &stake.to_skey("Stake"))?;
    let mut section = common_section(
        &format!("http://{bound}"),
        &key_file,
        &[&pool_bech32(&pool)],
        "1",
        "1000000",
    );
    section.push_str(&format!(
        "[chains.network]\ntype = \"cardano\"\nnetwork_magic = 42\nstake_key = {{ file = \"{stake_file}\" }}\n\
         drep = \"always_abstain\"\nmin_withdrawal_lovelace = 1000000\nttl_slots = 7200\nconfirmations = 15\n"
    ));
    Ok(Started {
        driver: Box::new(Ada(node, custody)),
        section,
        liabilities,
        unit,
    })
}

/// The Cardano chain in `softstake devnet`.
pub static DEVNET: DevnetChain = DevnetChain {
    chain: ChainId::Cardano,
    starting: "starting the Cardano test node",
    sets_start_time: false,
    install: softstake_testnode::nothing_to_install,
    start: |dir, t0, rng| Box::pin(async move { Ok((cardano(dir, t0, rng).await?, t0)) }),
};
