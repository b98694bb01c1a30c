//! The OpenAPI document against the server that answers it, on SQLite and on
//! PostgreSQL: schemathesis (PyPI, pinned in tests/api-fuzz/requirements.txt,
//! installed by scripts/api-fuzz-venv) reads crates/daemon/openapi.json,
//! generates requests for every operation — schema-valid ones and ones that
//! break a documented bound (negative testing), boundary values, missing
//! and wrong credentials — sends them to a real daemon over its socket and
//! checks every answer: no 5xx, every status code, content type and header
//! documented for that operation, every body valid against its schema,
//! invalid input refused, valid input accepted, and a call without its
//! token refused. Settings and the reasons for each are in
//! tests/api-fuzz/schemathesis.toml. A run is seeded, so a failure replays
//! (`SOFTSTAKE_API_FUZZ_SEED` picks another seed).
//! Each operation gets the token its `security` entry names (the
//! exchange's or the operators'), so both doors are exercised with the right
//! credentials and checked without them.

use reqwest::Client;
use serde_json::json;
use softstake_core::adapter::RewardKind;
use softstake_core::{Amount, ChainId, Period, Rate, Timestamp};
use softstake_store::{DistributeOptions, DistributeOutcome, NewReward};
use softstake_tests::TestStore;
use softstake_tests::daemon::{ADMIN_TOKEN, EXCHANGE_TOKEN, TestDaemon, sim, start};
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// schemathesis' `st`: `SOFTSTAKE_API_FUZZ`, else the venv
/// scripts/api-fuzz-venv makes under the target directory.
fn st() -> PathBuf {
    if let Ok(p) = std::env::var("SOFTSTAKE_API_FUZZ") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let p = target.join("api-fuzz-venv/bin/st");
    assert!(
        p.exists(),
        "no schemathesis at {}: run scripts/api-fuzz-venv (scripts/test does) or set SOFTSTAKE_API_FUZZ",
        p.display()
    );
    p
}

/// Gives the server something to answer about: balances, a reward and its
/// distribution (id 1, the document's example id) with credits, so reads
/// return real rows and not only 404s.
async fn seed(ts: &TestStore, d: &TestDaemon) {
    let c = Client::new();
    let updates = json!({"updates": [
        {"event_id": "seed-1", "user_id": "alice", "asset": "atom", "balance": "1000000", "effective_at": "2026-01-01T00:00:00Z"},
        {"event_id": "seed-2", "user_id": "bob", "asset": "atom", "balance": "2500000", "effective_at": "2026-01-01T00:00:00Z"},
    ]});
    let r = c
        .post(format!("{}/v1/balance-updates", d.base))
        .bearer_auth(EXCHANGE_TOKEN)
        .json(&updates)
        .send()
        .await
        .expect("seed balances");
    assert!(r.status().is_success(), "seed balances: {}", r.status());
    let t0 = Timestamp::from_unix(1_767_225_600);
    let rec = ts
        .store
        .record_reward(
            &NewReward {
                chain: ChainId::Cosmos,
                key: "seed-reward".into(),
                period: Period::new(t0, t0.plus_secs(3_600)).expect("period"),
                amount: Amount::from_base(1_234_567),
                validator: "val0".into(),
                kind: RewardKind::Manual,
                tx_hash: None,
                epoch: None,
            },
            t0.plus_secs(7_200),
        )
        .await
        .expect("seed reward");
    let out = ts
        .store
        .distribute(
            rec.id,
            Rate::ZERO,
            &DistributeOptions::default(),
            t0.plus_secs(7_200),
        )
        .await
        .expect("seed distribution");
    assert!(
        matches!(out, DistributeOutcome::Distributed(ref s) if s.id == 1),
        "the seeded distribution is the document's example id 1: {out:?}"
    );
}

/// Runs schemathesis against `d`; returns (passed, output).
fn run_schemathesis(d: &TestDaemon, seed: u64) -> (bool, String) {
    let out = Command::new(st())
        .arg("--config-file")
        .arg(root().join("tests/api-fuzz/schemathesis.toml"))
        .arg("run")
        .arg(root().join("crates/daemon/openapi.json"))
        .arg("--url")
        .arg(&d.base)
        .arg("--seed")
        .arg(seed.to_string())
        .env("SOFTSTAKE_FUZZ_EXCHANGE_TOKEN", EXCHANGE_TOKEN)
        .env("SOFTSTAKE_FUZZ_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn conformance(ts: TestStore, what: &str) {
    let d = start(&ts.store, &ts.url, Some(sim(7, 10_000_000_000)), 1_000_000).await;
    seed(&ts, &d).await;
    // The seed is fixed so a failure replays; SOFTSTAKE_API_FUZZ_SEED
    // explores others.
    let seed = std::env::var("SOFTSTAKE_API_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_130);
    let (ok, text) = run_schemathesis(&d, seed);
    assert!(
        ok,
        "schemathesis found the server and crates/daemon/openapi.json disagreeing ({what}):\n{text}"
    );
    // The summary goes to the test's output (cargo shows it with
    // --nocapture or on failure).
    if let Some(i) = text.find("WARNINGS").or_else(|| text.find("SUMMARY")) {
        eprintln!("schemathesis ({what}): {}", &text[i..]);
    }
    // The run did test something: the summary counts test cases.
    assert!(
        text.contains("passed") && !text.contains("No test cases"),
        "schemathesis ran no test ({what}):\n{text}"
    );
    d.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_as_its_openapi_document_says_sqlite() {
    conformance(TestStore::sqlite().await, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_as_its_openapi_document_says_postgres() {
    conformance(TestStore::postgres().await, "PostgreSQL").await;
}
