//! The dependency rules ARCHITECTURE.md states, read from `cargo metadata`
//! and `cargo tree`, so a forbidden edge fails the build's tests:
//! - `softstake-core` depends on no other softstake crate, no chain SDK and
//!   no database driver;
//! - a chain crate (`chains/*`) depends on `softstake-core` and
//!   `softstake-rpc` only (and, optionally or in tests, on the test-node
//!   kit);
//! - only the registry (`softstake-adapters`) and test code depend on chain
//!   crates: the binary and the devnet reach chains through the registry;
//! - `softstake` built without its `devnet` feature contains no test node
//!   and no test hook (`test-utils`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs cargo in the workspace with `args`; its standard output.
fn cargo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (package, dependency, kind, optional) for every declared dependency.
fn edges() -> Vec<(String, String, String, bool)> {
    let out = cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]);
    let m: Value = serde_json::from_slice(&out).unwrap();
    let mut e = Vec::new();
    for p in m["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_owned();
        for d in p["dependencies"].as_array().unwrap() {
            e.push((
                name.clone(),
                d["name"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap_or("normal").to_owned(),
                d["optional"].as_bool().unwrap_or(false),
            ));
        }
    }
    e
}

const CHAIN_SDKS_AND_DRIVERS: &[&str] = &[
    "sqlx",
    "alloy",
    "subxt",
    "subxt-signer",
    "cosmrs",
    "pallas-codec",
    "pallas-crypto",
    "pallas-primitives",
    "pallas-addresses",
    "solana-sdk",
    "solana-rpc-client",
    "solana-rpc-client-api",
    "solana-stake-interface",
    "solana-system-interface",
    "blst",
    "reqwest",
    "axum",
];

#[test]
fn core_depends_on_no_softstake_crate_sdk_or_driver() {
    for (p, d, kind, _) in edges() {
        if p == "softstake-core" && kind == "normal" {
            assert!(!d.starts_with("softstake-"), "softstake-core -> {d}");
            assert!(
                !CHAIN_SDKS_AND_DRIVERS.contains(&d.as_str()),
                "softstake-core -> {d}"
            );
        }
    }
}

#[test]
fn chain_crates_depend_only_on_core_and_the_rpc_layer() {
    let mut seen = 0;
    for (p, d, kind, optional) in edges() {
        if !p.starts_with("softstake-chain-") || !d.starts_with("softstake-") {
            continue;
        }
        seen += 1;
        let ok = match d.as_str() {
            "softstake-core" | "softstake-rpc" => true,
            // The test-node kit: optional (the `testnode` feature), or for
            // the crate's own tests.
            "softstake-testnode" => optional || kind == "dev",
            // A chain crate's own tests enable its test-node feature.
            other => kind == "dev" && other == p,
        };
        assert!(
            ok,
            "{p} -> {d} ({kind}{})",
            if optional { ", optional" } else { "" }
        );
    }
    assert!(seen >= 12, "the chain crates were not found ({seen} edges)");
}

#[test]
fn only_the_registry_and_tests_depend_on_chain_crates() {
    for (p, d, kind, _) in edges() {
        if d.starts_with("softstake-chain-") && kind == "normal" {
            assert!(
                p == "softstake-adapters",
                "{p} depends on {d}: reach chains through softstake-adapters"
            );
        }
    }
}

#[test]
fn the_binary_without_the_devnet_feature_contains_no_test_node() {
    let tree = |extra: &[&str]| {
        let mut args = vec![
            "tree",
            "-p",
            "softstake",
            "-e",
            "normal,features",
            "--prefix",
            "none",
            "--offline",
        ];
        args.extend_from_slice(extra);
        String::from_utf8(cargo(&args)).unwrap()
    };
    let without = tree(&["--no-default-features"]);
    assert!(
        without.contains("softstake-chain-eth"),
        "the tree lists the chain crates"
    );
    assert!(!without.contains("softstake-testnode"), "{without}");
    assert!(!without.contains("feature \"testnode\""), "{without}");
    assert!(!without.contains("feature \"test-utils\""), "{without}");
    // And the default build (the README's devnet) has them.
    assert!(tree(&[]).contains("softstake-testnode"));
}
