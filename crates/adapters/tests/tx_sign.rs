//! `softstake tx sign` through the registry: every chain's documented
//! request parses, and an unknown field at any level of it is refused,
//! naming the field, before any key is read or anything is signed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use serde_json::Value;
use softstake_adapters::{PLUGINS, sign_request};
use softstake_core::ChainId;
use softstake_core::plugin::SignError;

/// The example request of each chain in docs/tx-requests.md.
fn documented_requests() -> Vec<(ChainId, Value)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/tx-requests.md"),
    )
    .unwrap();
    let mut out = Vec::new();
    for part in doc.split("\n## ").skip(1) {
        let Some(tag) = part
            .split("`--chain ")
            .nth(1)
            .and_then(|t| t.split('`').next())
        else {
            continue;
        };
        let chain: ChainId = tag.parse().unwrap();
        let json = part
            .split("```json\n")
            .nth(1)
            .and_then(|b| b.split("\n```").next())
            .unwrap();
        out.push((chain, serde_json::from_str(json).unwrap()));
    }
    out
}

/// Paths to every JSON object in `v` ("" for the top).
fn object_paths(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            out.push(at.clone());
            for (k, x) in m {
                object_paths(x, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                object_paths(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_chain_has_a_documented_request_that_parses() {
    let reqs = documented_requests();
    let chains: Vec<ChainId> = reqs.iter().map(|(c, _)| *c).collect();
    for p in PLUGINS {
        assert!(
            chains.contains(&p.chain()),
            "no documented request for {}",
            p.chain()
        );
    }
    for (chain, req) in reqs {
        // The key file does not exist: parsing passed when that is the error.
        match sign_request(chain, &req.to_string()) {
            Err(SignError::KeyFile(_)) => {}
            other => panic!("{chain}: {other:?}"),
        }
    }
}

#[test]
fn an_unknown_field_at_any_level_is_refused_naming_it() {
    let mut checked = 0;
    for (chain, req) in documented_requests() {
        let mut paths = Vec::new();
        object_paths(&req, String::new(), &mut paths);
        assert!(paths.len() >= 2, "{chain}: the example has a nested object");
        for path in paths {
            let mut bad = req.clone();
            let target = if path.is_empty() {
                &mut bad
            } else {
                bad.pointer_mut(&path).unwrap()
            };
            target
                .as_object_mut()
                .unwrap()
                .insert("zz_unknown".into(), Value::from(1));
            match sign_request(chain, &bad.to_string()) {
                Err(SignError::Request(m)) => {
                    assert!(m.contains("zz_unknown"), "{chain} at {path:?}: {m}")
                }
                other => panic!("{chain}: zz_unknown at {path:?} was not refused: {other:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked}");
}

#[test]
fn a_typo_in_a_solana_withdrawal_is_refused_not_signed_to_custody() {
    // The issue's case: "to" on a withdrawal used to be ignored, signing a
    // withdrawal to the custody address.
    let req = serde_json::json!({
        "key_file": "/nonexistent/sol.json",
        "blockhash": "cGfHiC6Kgg3FpFZvgwGcswsCRtp4aBP2fzuXRQPizuN",
        "rent_exempt_reserve": 2282880,
        "action": { "type": "withdraw", "to": "SomeoneElse1111111111111111111111111111111",
                    "accounts": [ { "account": "x", "lamports": 1 } ] }
    });
    let e = sign_request(ChainId::Solana, &req.to_string()).unwrap_err();
    assert!(
        matches!(&e, SignError::Request(m) if m.contains("`to`")),
        "{e}"
    );
}
