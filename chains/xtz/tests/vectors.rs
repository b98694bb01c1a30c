//! softstake's forged bytes and signatures equal Taquito's, byte for byte
//! (tests/vectors/xtz/vectors.json, made by tests/vectors/xtz/generate.mjs).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use softstake_chain_xtz::forge::{Content, Entrypoint, Kind, forge, operation_hash};
use softstake_chain_xtz::keys::{LocalKey, Signer};
use softstake_core::Secret;

fn content(v: &Value) -> Content {
    let n = |k: &str| v[k].as_str().unwrap().parse::<u128>().unwrap();
    let kind = match v["kind"].as_str().unwrap() {
        "reveal" => Kind::Reveal {
            public_key: v["public_key"].as_str().unwrap().into(),
        },
        "delegation" => Kind::Delegation {
            delegate: v["delegate"].as_str().map(Into::into),
        },
        "transaction" => {
            assert_eq!(v["destination"], v["source"], "staking calls go to self");
            assert_eq!(v["parameters"]["value"]["prim"], "Unit");
            Kind::StakingCall {
                amount: n("amount"),
                entrypoint: Entrypoint::from_name(v["parameters"]["entrypoint"].as_str().unwrap())
                    .unwrap(),
            }
        }
        other => panic!("unexpected kind {other}"),
    };
    Content {
        source: v["source"].as_str().unwrap().into(),
        fee: n("fee"),
        counter: n("counter"),
        gas_limit: n("gas_limit"),
        storage_limit: n("storage_limit"),
        kind,
    }
}

#[test]
fn every_operation_matches_taquito_byte_for_byte() {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/xtz/vectors.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let key = LocalKey::parse(&Secret::new(v["secret_key"].as_str().unwrap().into())).unwrap();
    assert_eq!(key.address(), v["source"].as_str().unwrap());
    assert_eq!(key.public_key(), v["public_key"].as_str().unwrap());
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let contents: Vec<Content> = c["contents"]
            .as_array()
            .unwrap()
            .iter()
            .map(content)
            .collect();
        let forged = forge(v["branch"].as_str().unwrap(), &contents).unwrap();
        assert_eq!(
            hex::encode(&forged),
            c["forged_hex"].as_str().unwrap(),
            "forged {}",
            c["name"]
        );
        let sig = key.sign_operation(&forged);
        assert_eq!(
            hex::encode(sig),
            c["signature_hex"].as_str().unwrap(),
            "signature {}",
            c["name"]
        );
        let mut signed = forged.clone();
        signed.extend_from_slice(&sig);
        assert_eq!(
            operation_hash(&signed),
            c["operation_hash"].as_str().unwrap(),
            "hash {}",
            c["name"]
        );
    }
}
