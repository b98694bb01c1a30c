//! The Blockfrost description the Cardano test node is held to is the one
//! Blockfrost publishes (tests/fixtures/ada/SOURCES.md), and the checker
//! refuses answers Blockfrost would not send.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sha2::Digest;
use softstake_chain_ada::testnode::blockfrost_api;

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
