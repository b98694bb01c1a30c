//! The Blockfrost description the Cardano test node is held to is the one
//! Blockfrost publishes (tests/fixtures/ada/SOURCES.md), and the checker
//! refuses answers Blockfrost would not send; and the adapter reads the
//! answers Blockfrost's document shows.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use sha2::Digest;
use softstake_chain_ada::testnode::blockfrost_api;
use softstake_chain_ada::{AdaAdapter, AdaSettings};
use softstake_core::adapter::{AdapterError, ChainAdapter, RewardsRequest};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn the_pinned_blockfrost_document_is_the_published_one_and_it_is_enforced() {
    let path = format!(
        "{}/../../tests/fixtures/ada/blockfrost-openapi.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read(&path).unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&text)),
        "b0f64545d55c459525d31ba681d8134fba95d2ce5452d87a754aa7409d2ca887"
    );
    let api = blockfrost_api();
    // An account as the test node used to answer it: Blockfrost documents
    // more required fields (controlled_amount, reserves_sum, ...).
    let old = json!({"stake_address": "stake1u9", "active": true, "rewards_sum": "0",
        "withdrawals_sum": "0", "withdrawable_amount": "0", "pool_id": null, "drep_id": null});
    let e = api.check("GET", "/accounts/stake1u9", &old).unwrap_err();
    assert!(e.contains("required field"), "{e}");
    // Built from Blockfrost's examples, it conforms.
    let ex = api.example("GET", "/accounts/stake1u9").unwrap();
    api.check("GET", "/accounts/stake1u9", &ex).unwrap();
    // Lovelace amounts are strings in Blockfrost, never numbers.
    let mut bad = ex.clone();
    bad["withdrawable_amount"] = json!(5);
    let e = api.check("GET", "/accounts/stake1u9", &bad).unwrap_err();
    assert!(e.contains("withdrawable_amount"), "{e}");
}

/// Blockfrost as its own document shows it: each answer the documented
/// example (the schema's whole example where it has one).
struct Documented;

#[async_trait::async_trait]
impl softstake_chain_ada::adapter::ChainApi for Documented {
    async fn get(&self, path: &str) -> Result<Option<Value>, AdapterError> {
        let path = path.split('?').next().unwrap_or(path);
        Ok(blockfrost_api().documented("GET", path))
    }
    async fn submit(&self, _cbor: &[u8]) -> Result<String, AdapterError> {
        Err(AdapterError::InvalidRequest("read-only".into()))
    }
    async fn health(&self) -> Vec<softstake_core::adapter::EndpointHealth> {
        Vec::new()
    }
}

#[tokio::test]
async fn the_adapter_reads_blockfrosts_documented_reward_history() {
    use softstake_chain_ada::keys::LocalKey;
    let a = AdaAdapter::with_api(
        AdaSettings {
            endpoints: vec![],
            project_id: None,
            network_id: 1,
            network_magic: 764_824_073,
            drep: "always_abstain".into(),
            min_withdrawal: 1,
            ttl_slots: 50,
            confirmations: 2,
            min_change: 1_000_000,
            request_timeout: Duration::from_secs(5),
        },
        Arc::new(LocalKey::from_seed([0x11; 32])),
        Arc::new(LocalKey::from_seed([0x22; 32])),
        Box::new(Documented),
    )
    .unwrap();
    // Blockfrost's example history: member rewards of epochs 215-218, a
    // leader reward, and a pool deposit refund of 500 ADA (epoch 218).
    let r = a
        .rewards_since(RewardsRequest { cursor: None })
        .await
        .unwrap();
    let got: Vec<(String, u128)> = r
        .rewards
        .iter()
        .map(|x| (x.key.clone(), x.amount.base()))
        .collect();
    let member = "pool1pu5jlj4q9w9jlxeu370a3c9myx47md5j5m2str0naunn2q3lkdy";
    let leader = "pool1cytwr0n7eas6du2h2xshl8ypa1yqr18f0erlhhjcuczysiunjcs";
    assert_eq!(
        got,
        vec![
            (format!("reward:215:{member}:member"), 12_695_385),
            (format!("reward:216:{member}:member"), 3_586_329),
            (format!("reward:217:{member}:member"), 1),
            (format!("reward:217:{leader}:leader"), 1_337),
            (format!("reward:218:{member}:member"), 1_395_265),
        ],
        "the 500 ADA pool deposit refund is principal, never income"
    );
    assert_eq!(r.next_cursor.as_deref(), Some("epoch:218:seen:6"));
}
