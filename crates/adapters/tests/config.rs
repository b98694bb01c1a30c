//! Chain sections checked by their chain's crate through the registry
//! (moved from softstake-config's tests when the chains' settings moved into
//! the chain crates; same assertions).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use softstake_adapters::validate;
use softstake_config::{ConfigIssue, load};
use std::io::Write;

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

fn check(text: &str) -> Result<softstake_config::Config, Vec<ConfigIssue>> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    validate(&load(Some(f.path()), Vec::new()).unwrap()).map_err(|e| e.0)
}

fn keys(text: &str) -> Vec<String> {
    check(text)
        .unwrap_err()
        .into_iter()
        .map(|i| i.key)
        .collect()
}

#[test]
fn example_config_validates_with_every_chain_section() {
    let cfg = check(&example_text()).unwrap();
    assert_eq!(cfg.chains.len(), 3);
    let sol = cfg.chain(softstake_core::ChainId::Solana).unwrap();
    let s = softstake_chain_sol::plugin::settings(sol).unwrap();
    assert_eq!(s.compute_unit_price, 5000);
    assert!(s.priority_fee_market);
    assert_eq!(
        (s.priority_fee_percentile, s.max_compute_unit_price),
        (75, 5_000_000)
    );
    assert_eq!(s.rebroadcast_for, std::time::Duration::from_secs(60));
    assert_eq!(s.fee_reserve, 50_000_000);
    assert_eq!(s.withdrawer, None);
}

#[test]
fn an_unknown_network_key_is_refused_naming_it() {
    let text = example_text().replace("chain_id = 1\n", "chain_id = 1\nchainid = 1\n");
    let found = check(&text).unwrap_err();
    assert!(
        found
            .iter()
            .any(|i| i.key.starts_with("chains[0].network") && i.to_string().contains("chainid")),
        "{found:?}"
    );
}

#[test]
fn solana_settings_are_checked() {
    let t = example_text();
    let bad = t
        .replace(
            "genesis_hash = \"5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d\"\n# Priority",
            "genesis_hash = \"0xnot-base58\"\nwithdrawer = \"O0O0\"\n# Priority",
        )
        .replace("compute_unit_limit = 200000", "compute_unit_limit = 0")
        .replace(
            "priority_fee_percentile = 75",
            "priority_fee_percentile = 0",
        )
        .replace(
            "max_compute_unit_price = 5000000",
            "max_compute_unit_price = 4999",
        )
        .replace("rebroadcast_secs = 60", "rebroadcast_secs = 301");
    assert_ne!(bad, t);
    let keys = keys(&bad);
    for k in [
        "chains[2].network.genesis_hash",
        "chains[2].network.withdrawer",
        "chains[2].network.compute_unit_limit",
        "chains[2].network.priority_fee_percentile",
        "chains[2].network.max_compute_unit_price",
        "chains[2].network.rebroadcast_secs",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} missing from {keys:?}");
    }
}

/// Two SS58 accounts (the dev accounts Alice and Bob), for nomination targets.
const DOT_TARGETS: [&str; 2] = [
    "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
    "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
];

fn polkadot_section(validators: usize, extra: &str) -> String {
    let mut t = example_text();
    t.push_str("\n[[chains]]\nenabled = true\nendpoints = [\"https://rpc.example.net\"]\n");
    t.push_str("key = { env = \"DOT_KEY\" }\ncommission = \"0.1\"\n");
    for i in 0..validators {
        let a = DOT_TARGETS
            .get(i)
            .map_or_else(|| format!("v{i}"), |a| (*a).to_owned());
        t.push_str(&format!(
            "[[chains.validators]]\naddress = \"{a}\"\nweight = 1\ncap = \"1\"\n"
        ));
    }
    t.push_str("[chains.buffer]\ntarget = \"0.2\"\nband = \"0.05\"\nmin_operation = \"1\"\n");
    t.push_str("[chains.safety]\nmax_per_operation = \"1000\"\nmax_per_day = \"5000\"\napproval_threshold = \"1000\"\n");
    t.push_str("[chains.network]\ntype = \"polkadot\"\n");
    t.push_str(extra);
    t
}

#[test]
fn polkadot_settings_are_checked() {
    let good = polkadot_section(
        2,
        "genesis_hash = \"0x91b171bb158e2d3848fa23a9f1c25182fb8e20313b2c1eb49219da7a70ce90c3\"\npayee = \"Stash\"\n",
    );
    let cfg = check(&good).unwrap();
    let dot = cfg.chain(softstake_core::ChainId::Polkadot).unwrap();
    let s = softstake_chain_dot::plugin::settings(dot).unwrap();
    assert_eq!(s.payee, softstake_chain_dot::tx::Payee::Stash);
    assert_eq!(s.era_period, 64, "default mortality");
    assert_eq!(s.fee_reserve, 10_000_000_000);
    let bad = polkadot_section(
        17,
        "genesis_hash = \"0x91b1\"\nera_period_blocks = 100\npayee = \"\"\n",
    );
    let keys = keys(&bad);
    for k in [
        "chains[3].network.genesis_hash",
        "chains[3].network.era_period_blocks",
        "chains[3].network.payee",
        "chains[3].validators",
        "chains[3].validators[2].address",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} missing from {keys:?}");
    }
}

fn tezos_section(validators: usize, network: &str) -> String {
    let mut t = example_text();
    t.push_str("\n[[chains]]\nenabled = true\nendpoints = [\"https://rpc.tzkt.example\"]\n");
    t.push_str("key = { env = \"XTZ_KEY\" }\ncommission = \"0.1\"\n");
    for i in 0..validators {
        t.push_str(&format!(
            "[[chains.validators]]\naddress = \"tz1baker{i}\"\nweight = 1\ncap = \"1\"\n"
        ));
    }
    t.push_str("[chains.buffer]\ntarget = \"0.2\"\nband = \"0.05\"\nmin_operation = \"1\"\n");
    t.push_str("[chains.safety]\nmax_per_operation = \"1000\"\nmax_per_day = \"5000\"\napproval_threshold = \"1000\"\n");
    t.push_str("[chains.network]\ntype = \"tezos\"\nchain_id = \"NetXdQprcVkpaWU\"\n");
    t.push_str(network);
    t
}

#[test]
fn tezos_staking_takes_one_baker_per_key_and_a_start_level() {
    let cfg = check(&tezos_section(1, "start_level = 11000000\n")).unwrap();
    let xtz = cfg.chain(softstake_core::ChainId::Tezos).unwrap();
    let s = softstake_chain_xtz::plugin::settings(xtz).unwrap();
    assert_eq!(s.start_level, Some(11_000_000));
    // An account has one delegate and stakes only with it: two bakers are
    // refused in either mode, naming the key.
    for mode in ["", "mode = \"delegation\"\n"] {
        let found = check(&tezos_section(2, mode)).unwrap_err();
        let v = found
            .iter()
            .find(|i| i.key == "chains[3].validators")
            .unwrap_or_else(|| panic!("{found:?}"));
        assert!(
            v.to_string().contains("XTZ_KEY") && v.to_string().contains("one baker"),
            "{v}"
        );
    }
    let keys = keys(&tezos_section(1, "start_level = 0\n"));
    assert!(
        keys.contains(&"chains[3].network.start_level".to_owned()),
        "{keys:?}"
    );
}

#[test]
fn cosmos_fee_market_settings_are_checked() {
    let cfg = check(&example_text()).unwrap();
    let hub = cfg.chain(softstake_core::ChainId::Cosmos).unwrap();
    let s = softstake_chain_atom::plugin::settings(hub).unwrap();
    assert!(s.fee_market);
    assert_eq!(
        (s.gas_price_margin.to_string(), s.max_gas_price.to_string()),
        ("1.5".into(), "0.1".into())
    );
    let t = example_text();
    let bad = t
        .replace("gas_price_margin = \"1.5\"", "gas_price_margin = \"0.9\"")
        .replace("max_gas_price = \"0.1\"", "max_gas_price = \"0.001\"");
    assert_ne!(bad, t);
    let keys = keys(&bad);
    for k in [
        "chains[1].network.gas_price_margin",
        "chains[1].network.max_gas_price",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} missing from {keys:?}");
    }
}
