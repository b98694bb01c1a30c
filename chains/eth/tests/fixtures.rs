//! The Beacon API the test server is held to is the one ethereum/beacon-APIs
//! publishes (tests/fixtures/eth/SOURCES.md), and the checker refuses what a
//! beacon node would not send.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sha2::Digest;
use softstake_chain_eth::testnode::beacon_api;

#[test]
fn the_pinned_beacon_api_is_the_published_one_and_it_is_enforced() {
    let path = format!(
        "{}/../../tests/fixtures/eth/beacon-node-oapi.json",
        env!("CARGO_MANIFEST_DIR")
    );
    assert_eq!(
        hex::encode(sha2::Sha256::digest(std::fs::read(&path).unwrap())),
        "6a54eac3778f389ad4d8265797d2b08a20e236de66d04f08b14f6a5b8790734d"
    );
    let api = beacon_api();
    let path = "/eth/v1/beacon/states/head/pending_partial_withdrawals";
    let ok = json!({"version": "electra", "execution_optimistic": false, "finalized": false,
        "data": [{"validator_index": "7", "amount": "1000000000", "withdrawable_epoch": "42"}]});
    api.check("GET", path, &ok).unwrap();
    // Numbers are quoted decimal strings in the Beacon API.
    let mut bad = ok.clone();
    bad["data"][0]["amount"] = json!(1_000_000_000);
    let e = api.check("GET", path, &bad).unwrap_err();
    assert!(e.contains("amount"), "{e}");
    // The head header as the server used to answer it.
    let old = json!({"data": {"header": {"message": {"slot": "5"}}}});
    let e = api
        .check("GET", "/eth/v1/beacon/headers/head", &old)
        .unwrap_err();
    assert!(e.contains("required field"), "{e}");
}
