//! Issue 23, the first step: the real Westend Asset Hub runtime with
//! pallet-staking-async (crates.io `asset-hub-westend-runtime` 0.57.0,
//! westmint spec 1_025_002), built once to wasm by
//! scripts/build-asset-hub-runtime and committed with its sha256, runs
//! under chopsticks here: its own GenesisBuilder makes the development
//! genesis, chopsticks serves it, and its metadata has the staking shape
//! the adapter must move to (paged exposures, payouts by page, the relay
//! chain client). What it does not do yet is build blocks: see
//! chains/dot/runtime/README.md.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use softstake_chain_dot::testnode::{Chopsticks, asset_hub_wasm_path, runtime_chain_spec};

/// sha256 of chains/dot/runtime/asset-hub-westend-1025002.compact.compressed.wasm.
const WASM_SHA256: &str = "193c2e74da32b9646d1039cd6e26e3d716510b04d7a71a1f19dc7dc4acf55123";

#[test]
fn the_committed_runtime_is_the_pinned_build() {
    let bytes = std::fs::read(asset_hub_wasm_path()).unwrap();
    assert_eq!(
        hex::encode(sp_crypto_hashing::sha2_256(&bytes)),
        WASM_SHA256,
        "rebuilt? run scripts/build-asset-hub-runtime and update chains/dot/runtime/README.md"
    );
    // sp-maybe-compressed-blob's zstd form.
    assert_eq!(
        &bytes[..8],
        &[0x52, 0xbc, 0x53, 0x76, 0x46, 0xdb, 0x8e, 0x05]
    );
}

fn storage_key(pallet: &str, item: &str) -> String {
    let mut k = sp_crypto_hashing::twox_128(pallet.as_bytes()).to_vec();
    k.extend(sp_crypto_hashing::twox_128(item.as_bytes()));
    format!("0x{}", hex::encode(k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_hub_runtime_makes_its_genesis_and_serves_staking_async_under_chopsticks() {
    let dir = tempfile_dir();
    let spec = dir.join("westmint-development.json");
    let said = runtime_chain_spec(&asset_hub_wasm_path(), "development", &spec)
        .await
        .unwrap();
    assert_eq!(said, "spec westmint 1025002");
    let node = Chopsticks::start_spec(&spec, "Manual").await.unwrap();
    let v = node
        .call("state_getRuntimeVersion", json!([]))
        .await
        .unwrap();
    assert_eq!(v["specName"], "westmint");
    assert_eq!(v["specVersion"], 1_025_002);

    // The staking pallet is staking-async: exposures by page, payouts by
    // page, claims per page, no unpaged ErasStakers; the relay chain's
    // session reports arrive through its client pallet.
    let m = node.call("state_getMetadata", json!([])).await.unwrap();
    let bytes = hex::decode(m.as_str().unwrap().trim_start_matches("0x")).unwrap();
    let meta = softstake_chain_dot::tx::metadata(&bytes).unwrap();
    let staking = meta.pallet_by_name("Staking").unwrap();
    let calls: Vec<&str> = staking
        .call_variants()
        .unwrap()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    for c in [
        "bond",
        "bond_extra",
        "nominate",
        "unbond",
        "withdraw_unbonded",
        "rebond",
        "chill",
        "set_payee",
        "payout_stakers_by_page",
    ] {
        assert!(calls.contains(&c), "Staking.{c} missing: {calls:?}");
    }
    let entries: Vec<&str> = staking
        .storage()
        .unwrap()
        .entries()
        .iter()
        .map(|e| e.name())
        .collect();
    for e in [
        "ErasStakersOverview",
        "ErasStakersPaged",
        "ClaimedRewards",
        "ActiveEra",
        "Ledger",
        "Bonded",
        "MinNominatorBond",
    ] {
        assert!(entries.contains(&e), "Staking.{e} missing: {entries:?}");
    }
    assert!(!entries.contains(&"ErasStakers"), "{entries:?}");
    assert!(staking.constant_by_name("BondingDuration").is_some());
    assert!(meta.pallet_by_name("StakingRcClient").is_some());

    // The genesis the runtime built: era 0 active, the preset's two
    // validators.
    let active = node
        .call(
            "state_getStorage",
            json!([storage_key("Staking", "ActiveEra")]),
        )
        .await
        .unwrap();
    assert!(active.is_string(), "{active}");
    let count = node
        .call(
            "state_getStorage",
            json!([storage_key("Staking", "CounterForValidators")]),
        )
        .await
        .unwrap();
    assert_eq!(count, "0x02000000");
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("softstake-ah-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
