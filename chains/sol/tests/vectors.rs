//! softstake's Solana transactions equal @solana/web3.js's, byte for byte
//! (tests/vectors/sol/vectors.json, made by tests/vectors/sol/generate.mjs),
//! for the same key, blockhash and parameters.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use serde_json::Value;
use softstake_chain_sol::keys::LocalKey;
use softstake_chain_sol::tx::{self, Action, TxParams};

#[test]
fn every_stake_transaction_matches_web3js_byte_for_byte() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/sol/vectors.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let seed: [u8; 32] = hex_seed(v["key_seed_hex"].as_str().unwrap());
    let key = LocalKey::from_seed(seed);
    assert_eq!(key.address(), v["address"].as_str().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let action: Action = serde_json::from_value(c["action"].clone()).unwrap();
        let params = TxParams {
            blockhash: v["blockhash"].as_str().unwrap().into(),
            rent_exempt_reserve: v["rent_exempt_reserve"].as_u64().unwrap(),
            compute_unit_price: c["compute_unit_price"].as_u64().unwrap(),
            compute_unit_limit: u32::try_from(c["compute_unit_limit"].as_u64().unwrap()).unwrap(),
            withdrawer: None,
        };
        let signed = tx::build(&action, &key, &params).unwrap();
        let want = base64::engine::general_purpose::STANDARD
            .decode(c["tx_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            hexs(&signed.bytes),
            hexs(&want),
            "{name}: transaction bytes differ from web3.js"
        );
        assert_eq!(signed.signature, c["signature"].as_str().unwrap(), "{name}");
        assert!(
            tx::verify(&signed.bytes),
            "{name}: signature does not verify"
        );
    }
}

fn hex_seed(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
