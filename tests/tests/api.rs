//! The HTTP API over a real socket (port 0) and through the router, on
//! SQLite and on PostgreSQL: auth, validation errors naming the field,
//! idempotent replays, outbox cursor semantics, statements, operators'
//! doors, rate limits, and a property test that throws malformed and
//! oversized bodies at every write endpoint.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use reqwest::Client;
use serde_json::{Value, json};
use softstake_core::adapter::RewardKind;
use softstake_core::{Amount, ChainId, Clock, Period, Rate, Timestamp};
use softstake_store::{DistributeOptions, NewReward, Store};
use softstake_tests::TestStore;
use softstake_tests::daemon::{ADMIN_TOKEN, EXCHANGE_TOKEN, start};
use tower::ServiceExt;

async fn both<F, Fut>(f: F)
where
    F: Fn(TestStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f(TestStore::sqlite().await).await;
    f(TestStore::postgres().await).await;
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

async fn post(c: &Client, url: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut r = c.post(url).json(&body);
    if let Some(t) = token {
        r = r.header("authorization", bearer(t));
    }
    let resp = r.send().await.expect("request");
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(c: &Client, url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut r = c.get(url);
    if let Some(t) = token {
        r = r.header("authorization", bearer(t));
    }
    let resp = r.send().await.expect("request");
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
    (status, resp.text().await.unwrap_or_default())
}

async fn scrape(c: &Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

fn upd(event: &str, user: &str, balance: &str, at: &str) -> Value {
    json!({"event_id": event, "user_id": user, "asset": "atom", "balance": balance, "effective_at": at})
}

async fn table_counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for t in [
        "balance_updates",
        "rewards",
        "distributions",
        "credits",
        "withdrawals",
        "operations",
        "chain_state",
        "transfer_declarations",
        "pool_flows",
        "pool_snapshots",
        "residual_confirmations",
        "bunker_actions",
        "validator_marks",
        "pool_losses",
        "loss_allocations",
        "loss_nettings",
        "advances",
    ] {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}"));
        let n: i64 = if let Some(p) = store.pg_pool() {
            sqlx::query_scalar(sql).fetch_one(p).await.expect("count")
        } else {
            let p = store.sqlite_pool().expect("pool");
            sqlx::query_scalar(sql).fetch_one(p).await.expect("count")
        };
        out.push(n);
    }
    // Acked credits and paused flags change without adding rows.
    let acked = store.outbox(0, 10_000).await.expect("outbox");
    out.push(acked.iter().filter(|c| c.acked).count() as i64);
    let st = store.status().await.expect("status");
    out.push(st.chains.iter().filter(|c| c.paused).count() as i64);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_flow_over_a_real_socket() {
    both(|ts| async move {
        let d = start(&ts.store, &ts.url, None, 1_000).await;
        let c = Client::new();
        let url = |p: &str| format!("{}{p}", d.base);
        let batch = json!({"updates": [
            upd("e1", "alice", "1000", "2026-01-01T00:00:00Z"),
            upd("e2", "bob", "1000", "2026-01-01T00:00:50Z"),
        ]});

        // Doors: no token, a wrong one, and the operators' one are all 401.
        for t in [None, Some("nope"), Some(ADMIN_TOKEN)] {
            let (s, b) = post(&c, &url("/v1/balance-updates"), t, batch.clone()).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
            assert_eq!(b["error"]["code"], "unauthorized");
        }
        let (s, b) = post(&c, &url("/v1/chains/cosmos/pause"), Some(EXCHANGE_TOKEN), Value::Null).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");

        // A bad row rejects the batch, naming the field; nothing is stored.
        let before = table_counts(&ts.store).await;
        let bad = json!({"updates": [
            upd("e1", "alice", "1000", "2026-01-01T00:00:00Z"),
            upd("e2", "bob", "1.5", "2026-01-01T00:00:50Z"),
        ]});
        let (s, b) = post(&c, &url("/v1/balance-updates"), Some(EXCHANGE_TOKEN), bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(b["error"]["field"], "updates[1].balance");
        let unknown = json!({"updates": [upd("e1", "alice", "1", "2026-01-01T00:00:00Z")], "extra": 1});
        let (s, b) = post(&c, &url("/v1/balance-updates"), Some(EXCHANGE_TOKEN), unknown).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("extra"), "{b}");
        let (s, b) = post(
            &c,
            &url("/v1/balance-updates"),
            Some(EXCHANGE_TOKEN),
            json!({"updates": [{"event_id": "e9", "user_id": "carol", "asset": "BTC", "balance": "5", "effective_at": "2026-01-01T00:00:00Z"}]}),
        )
        .await;
        assert_eq!((s, b["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("updates[0].asset")));
        assert_eq!(table_counts(&ts.store).await, before);

        // Stored once; a replay reports duplicates.
        let (s, b) = post(&c, &url("/v1/balance-updates"), Some(EXCHANGE_TOKEN), batch.clone()).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["inserted"], 2);
        let (_, b) = post(&c, &url("/v1/balance-updates"), Some(EXCHANGE_TOKEN), batch).await;
        assert_eq!((b["inserted"].clone(), b["duplicates"].clone()), (json!(0), json!(2)));
        // The same id with other content is a conflict.
        let (s, _) = post(
            &c,
            &url("/v1/balance-updates"),
            Some(EXCHANGE_TOKEN),
            json!({"updates": [upd("e1", "alice", "999", "2026-01-01T00:00:00Z")]}),
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);

        // A reward over [0, 100 s) distributed: alice 100 s, bob 50 s.
        let t0 = Timestamp::from_unix(1_767_225_600);
        let rec = ts
            .store
            .record_reward(
                &NewReward {
                    chain: ChainId::Cosmos,
                    key: "r1".into(),
                    period: Period::new(t0, t0.plus_secs(100)).unwrap(),
                    amount: Amount::from_base(1_500),
                    validator: "val0".into(),
                    kind: RewardKind::Manual,
                    tx_hash: None,
                    epoch: None,
                },
                t0.plus_secs(200),
            )
            .await
            .unwrap();
        ts.store
            .distribute(rec.id, Rate::ZERO, &DistributeOptions::default(), t0.plus_secs(200))
            .await
            .unwrap();

        // Outbox: a position cursor, natural keys, acknowledgements.
        let (s, body) = get(&c, &url("/v1/outbox?after=0&limit=1"), Some(EXCHANGE_TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["credits"].as_array().unwrap().len(), 1);
        let first = page["credits"][0]["id"].as_i64().unwrap();
        let first_pos = page["credits"][0]["position"].as_i64().unwrap();
        assert_eq!(page["next_cursor"], first_pos);
        // Positions start at the distribution's time x 10^9.
        assert_eq!(first_pos, (t0.unix() + 200) * 1_000_000_000);
        assert_eq!(page["credits"][0]["key"], "cosmos:2:r1:alice");
        assert_eq!(page["credits"][0]["user_id"], "alice");
        assert_eq!(page["credits"][0]["amount"], "1000");
        let (_, body) = get(&c, &url(&format!("/v1/outbox?after={first_pos}")), Some(EXCHANGE_TOKEN)).await;
        let page: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["credits"][0]["user_id"], "bob");
        assert_eq!(page["credits"][0]["amount"], "500");
        assert_eq!(page["credits"][0]["key"], "cosmos:2:r1:bob");
        let second = page["next_cursor"].as_i64().unwrap();
        assert_eq!(second, first_pos + 1);
        let (_, body) = get(&c, &url(&format!("/v1/outbox?after={second}")), Some(EXCHANGE_TOKEN)).await;
        let page: Value = serde_json::from_str(&body).unwrap();
        assert!(page["credits"].as_array().unwrap().is_empty());
        assert_eq!(page["next_cursor"], second);
        let (s, _) = get(&c, &url("/v1/outbox?after=-1"), Some(EXCHANGE_TOKEN)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // An unknown id or key acknowledges nothing; ids and keys together
        // are refused.
        let (s, _) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"ids": [first, 999_999]})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"keys": ["cosmos:2:r1:bob", "cosmos:2:r9:bob"]})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"ids": [first], "keys": ["cosmos:2:r1:bob"]})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"keys": ["no-key"]})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(ts.store.outbox(0, 10).await.unwrap().iter().all(|c| !c.acked));
        let (s, b) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"ids": [first]})).await;
        assert_eq!((s, b["acknowledged"].clone()), (StatusCode::OK, json!(1)));
        let (s, b) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"keys": ["cosmos:2:r1:bob"]})).await;
        assert_eq!((s, b["acknowledged"].clone()), (StatusCode::OK, json!(1)));
        assert!(ts.store.outbox(0, 10).await.unwrap().iter().all(|c| c.acked));
        let (_, b) = post(&c, &url("/v1/outbox/ack"), Some(EXCHANGE_TOKEN), json!({"ids": [first]})).await;
        assert_eq!(b["acknowledged"], 0);

        // Statements, JSON and CSV.
        let (s, body) = get(
            &c,
            &url("/v1/users/alice/statement?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z"),
            Some(EXCHANGE_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let lines: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(lines[0]["amount"], "1000");
        let (_, csv) = get(
            &c,
            &url("/v1/users/alice/statement?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&format=csv"),
            Some(EXCHANGE_TOKEN),
        )
        .await;
        assert!(csv.starts_with("credited_at,chain,asset,amount"), "{csv}");
        assert!(csv.contains(",cosmos,ATOM,0.001,1000,"), "{csv}");
        let (s, _) = get(&c, &url("/v1/users/alice/statement?from=x&to=y"), Some(EXCHANGE_TOKEN)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(lines[0]["loss_netted"], "0");
        assert_eq!(lines[0]["paid"], "1000");
        let out = ts.store.outbox(0, 10).await.unwrap();
        assert_eq!((out[0].gross, out[0].loss_netted), (out[0].amount, softstake_core::Amount::ZERO));

        // Loss shares (the `users` rule): none here; the door is the
        // exchange's, and the range must be a range.
        let losses = "/v1/users/alice/losses?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
        let (s, body) = get(&c, &url(losses), Some(EXCHANGE_TOKEN)).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "[]"));
        let (s, _) = get(&c, &url(losses), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _) = get(
            &c,
            &url("/v1/users/alice/losses?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
            Some(EXCHANGE_TOKEN),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        let (s, _) = get(&c, &url("/v1/chains/cosmos/losses"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "no chain runs on this daemon");

        // Dashboards read without a token.
        let (s, body) = get(&c, &url("/v1/distributions"), None).await;
        assert_eq!(s, StatusCode::OK);
        let ds: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ds[0]["gross"], "1500");
        let id = ds[0]["id"].as_i64().unwrap();
        let (s, _) = get(&c, &url(&format!("/v1/distributions/{id}")), None).await;
        assert_eq!(s, StatusCode::OK);
        let (s, body) = get(&c, &url("/v1/rewards?chain=cosmos"), None).await;
        assert!(s == StatusCode::OK && body.contains("\"r1\""), "{body}");
        let (s, _) = get(&c, &url("/v1/rewards?chain=bitcoin"), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = get(&c, &url("/v1/chains/cosmos"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "cosmos is not enabled on this daemon");
        let (s, body) = get(&c, &url("/openapi.json"), None).await;
        assert!(s == StatusCode::OK && body.contains("\"openapi\""));
        let (s, body) = get(&c, &url("/readyz"), None).await;
        assert!(s == StatusCode::OK && body.contains("ready"), "{body}");
        let (s, _) = get(&c, &url("/nope"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // A withdrawal on a chain this daemon does not run.
        let (s, b) = post(
            &c,
            &url("/v1/withdrawals"),
            Some(EXCHANGE_TOKEN),
            json!({"request_id": "w1", "user_id": "alice", "asset": "ATOM", "amount": "10"}),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

        // Operators pause and resume; stray bodies are refused.
        let (s, _) = post(&c, &url("/v1/chains/cosmos/pause"), Some(ADMIN_TOKEN), Value::Null).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "a JSON null is a body");
        let r = c
            .post(url("/v1/chains/cosmos/pause"))
            .header("authorization", bearer(ADMIN_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(ts.store.is_paused(ChainId::Cosmos).await.unwrap());
        let (s, b) = post(&c, &url("/v1/operations/nope/approve"), Some(ADMIN_TOKEN), Value::Null).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");

        // Content type and size.
        let r = c
            .post(url("/v1/withdrawals"))
            .header("authorization", bearer(EXCHANGE_TOKEN))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 415);
        let big = json!({"request_id": "x".repeat(70_000), "user_id": "a", "asset": "ATOM", "amount": "1"});
        let (s, b) = post(&c, &url("/v1/withdrawals"), Some(EXCHANGE_TOKEN), big).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

        // Metrics count requests by route.
        let m = c.get(&d.metrics_url).send().await.unwrap().text().await.unwrap();
        assert!(
            m.contains("softstake_api_requests_total{route=\"/v1/balance-updates\",status=\"401\"} 3"),
            "{m}"
        );
        d.handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn public_reads_are_rate_limited_per_client() {
    let ts = TestStore::sqlite().await;
    let d = start(&ts.store, &ts.url, None, 1).await;
    let c = Client::new();
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            c.get(format!("{}/v1/chains", d.base))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    // A burst of two, then 429 with Retry-After.
    assert_eq!(codes, [200, 200, 429, 429]);
    // Health and authenticated doors are not rate limited.
    assert_eq!(
        c.get(format!("{}/healthz", d.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let m = scrape(&c, &d.metrics_url).await;
    assert!(m.contains("softstake_api_rate_limited_total 2"), "{m}");
    d.handle.shutdown().await;
}

/// Malformed bodies for the JSON write endpoints.
fn junk() -> impl Strategy<Value = Vec<u8>> {
    let valid_update = json!({"updates": [upd("f1", "u", "5", "2026-01-01T00:00:00Z")]});
    let mutations = prop_oneof![
        Just(json!({})),
        Just(json!([])),
        Just(json!(null)),
        Just(json!({"updates": []})),
        Just(json!({"updates": [{"event_id": "f1"}]})),
        Just(json!({"updates": [upd("", "u", "5", "2026-01-01T00:00:00Z")]})),
        Just(json!({"updates": [upd("f1", "u", "-5", "2026-01-01T00:00:00Z")]})),
        Just(json!({"updates": [upd("f1", "u", "5", "yesterday")]})),
        Just(json!({"updates": [upd("f1", "u\u{0007}", "5", "2026-01-01T00:00:00Z")]})),
        Just(json!({"updates": [upd("f1", "u", "340282366920938463463374607431768211456", "2026-01-01T00:00:00Z")]})),
        Just(json!({"request_id": "w", "user_id": "u", "asset": "ATOM", "amount": 5})),
        Just(json!({"request_id": "w", "user_id": "u", "asset": "ATOM", "amount": "0"})),
        Just(json!({"request_id": "w", "user_id": "u", "asset": "DOGE", "amount": "5"})),
        Just(json!({"ids": []})),
        Just(json!({"ids": ["1"]})),
        Just(json!({"ids": [1.5]})),
        any::<i64>().prop_map(|n| json!({"updates": n})),
        ".{0,40}".prop_map(|s| json!({"request_id": s, "amount": "1"})),
    ]
    .prop_map(|v| serde_json::to_vec(&v).unwrap_or_default());
    prop_oneof![
        // Random bytes, valid JSON prefixes cut short, and valid bodies
        // with a byte flipped.
        proptest::collection::vec(any::<u8>(), 0..200),
        (1usize..60).prop_map(move |n| {
            let mut b = serde_json::to_vec(&valid_update).unwrap_or_default();
            b.truncate(n);
            b
        }),
        mutations,
        // Oversized for every endpoint.
        Just(vec![b' '; (4 << 20) + 1]),
    ]
}

const WRITE_ENDPOINTS: &[(&str, &str)] = &[
    ("/v1/balance-updates", EXCHANGE_TOKEN),
    ("/v1/withdrawals", EXCHANGE_TOKEN),
    ("/v1/withdrawals/w1/complete", EXCHANGE_TOKEN),
    ("/v1/outbox/ack", EXCHANGE_TOKEN),
    ("/v1/operations/op1/approve", ADMIN_TOKEN),
    ("/v1/chains/cosmos/pause", ADMIN_TOKEN),
    ("/v1/chains/cosmos/resume", ADMIN_TOKEN),
    ("/v1/chains/cosmos/plan", ADMIN_TOKEN),
    ("/v1/chains/cosmos/transfers", EXCHANGE_TOKEN),
    ("/v1/chains/cosmos/flows/1/resolve", ADMIN_TOKEN),
    ("/v1/chains/cosmos/books/confirm", ADMIN_TOKEN),
    ("/v1/chains/cosmos/books/bunker", ADMIN_TOKEN),
    ("/v1/chains/cosmos/validators/val0/unmark", ADMIN_TOKEN),
    ("/v1/chains/cosmos/advances/1/repaid", EXCHANGE_TOKEN),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_get_4xx_and_change_nothing() {
    both(|ts| async move {
        let d = start(&ts.store, &ts.url, None, 1_000).await;
        // Something stored already, which must survive untouched.
        ts.store
            .ingest_balance_updates(
                &[softstake_tests::eth_update("seed", "u", 5, 1_767_225_600)],
                Timestamp::from_unix(1_767_225_600),
            )
            .await
            .unwrap();
        let router = softstake_daemon::api::router(d.handle.shared.clone());
        let before = table_counts(&ts.store).await;
        let cases = if ts.store.pg_pool().is_some() {
            64
        } else {
            160
        };
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            ..ProptestConfig::default()
        });
        let strategy = (junk(), 0..WRITE_ENDPOINTS.len(), any::<bool>());
        for _ in 0..cases {
            let (body, i, json_ct) = strategy.new_tree(&mut runner).expect("value").current();
            let (path, token) = WRITE_ENDPOINTS[i];
            // Body-less endpoints get a non-empty body; empty JSON bodies
            // are malformed too.
            let body = if body.iter().all(u8::is_ascii_whitespace) && body.len() <= (4 << 20) {
                b"{".to_vec()
            } else {
                body
            };
            let mut req = Request::post(path).header("authorization", bearer(token));
            if json_ct {
                req = req.header("content-type", "application/json");
            }
            let resp = router
                .clone()
                .oneshot(req.body(Body::from(body.clone())).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            assert!(
                status.is_client_error(),
                "{path} answered {status} to {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            assert!(
                v["error"]["code"].is_string(),
                "{path}: not a JSON error: {v}"
            );
        }
        assert_eq!(
            table_counts(&ts.store).await,
            before,
            "a refused request changed the database"
        );
        d.handle.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn documented_bounds_hold_past_int64_and_on_large_acknowledgements() {
    let ts = TestStore::sqlite().await;
    let d = start(&ts.store, &ts.url, None, 1_000).await;
    let c = Client::new();
    // Integer parameters are documented as int64: one past it is a 400,
    // never a 500.
    let doc: Value =
        serde_json::from_str(include_str!("../../crates/daemon/openapi.json")).unwrap();
    assert_eq!(
        doc["paths"]["/v1/outbox"]["get"]["parameters"][0]["schema"]["maximum"],
        json!(i64::MAX)
    );
    for (url, token) in [
        (
            format!("{}/v1/outbox?after=9223372036854775808", d.base),
            Some(EXCHANGE_TOKEN),
        ),
        (
            format!("{}/v1/rewards?before=9223372036854775808", d.base),
            None,
        ),
        (
            format!("{}/v1/distributions/9223372036854775808", d.base),
            None,
        ),
    ] {
        let (status, body) = get(&c, &url, token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
    }
    // A body over the limit on /v1/outbox/ack is the documented 413.
    let ids: Vec<i64> = (1..=20_000).collect();
    let (status, _) = post(
        &c,
        &format!("{}/v1/outbox/ack", d.base),
        Some(EXCHANGE_TOKEN),
        json!({ "ids": ids }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        doc["paths"]["/v1/outbox/ack"]["post"]["responses"]
            .get("413")
            .is_some()
    );
    d.handle.shutdown().await;
}

/// A test daemon on one simulated Hub-like chain holding 1 ATOM liquid,
/// with a manual clock.
async fn sim_daemon(
    ts: &TestStore,
    seed: u64,
) -> (
    softstake_tests::daemon::TestDaemon,
    softstake_testkit::SimChain,
    softstake_core::ManualClock,
) {
    let clock = softstake_core::ManualClock::new(Timestamp::from_unix(1_767_225_600));
    let sim = softstake_testkit::SimChain::new(
        seed,
        softstake_testkit::SimParams::hub_like(&["val0"], 1),
        clock.clone(),
        Amount::from_base(1_000_000),
    );
    let d = start(
        &ts.store,
        &ts.url,
        Some((sim.clone(), clock.clone())),
        1_000,
    )
    .await;
    (d, sim, clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_over_http_declarations_suspense_and_backing() {
    both(|ts| async move {
        let (d, sim, clock) = sim_daemon(&ts, 3).await;
        let c = Client::new();
        let url = |p: &str| format!("{}{p}", d.base);
        let wait_for = |cond: &'static str| {
            let c = c.clone();
            let u = url("/v1/chains/cosmos/flows?open=true");
            async move {
                for _ in 0..200 {
                    let (s, b) = get(&c, &u, Some(ADMIN_TOKEN)).await;
                    assert_eq!(s, StatusCode::OK, "{b}");
                    let v: Value = serde_json::from_str(&b).unwrap();
                    let open = v.as_array().unwrap().len();
                    if (cond == "open" && open > 0) || (cond == "none" && open == 0) {
                        return v;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!("flows never became {cond}");
            }
        };
        // The books are open once a cycle ran.
        let mut books = Value::Null;
        for _ in 0..200 {
            let (s, b) = get(&c, &url("/v1/chains/cosmos/books"), None).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            books = serde_json::from_str(&b).unwrap();
            if !books["snapshot"].is_null() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(books["holdings"], "1000000", "{books}");
        assert_eq!(books["snapshot"]["complete"], true);
        assert_eq!(books["owed"]["fee_bearer"], "platform");
        assert_eq!(
            (
                &books["owed"]["loss_bearer"],
                &books["owed"]["losses"],
                &books["owed"]["shortfall"]
            ),
            (&json!("platform"), &json!("0"), &json!("0")),
            "{books}"
        );
        let (s, _) = get(&c, &url("/v1/chains/ethereum/books"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // A top-up declared before it lands: principal, no suspense.
        let decl = json!({"tx_id": "will-be-replaced", "direction": "in", "amount": "500"});
        for (t, want) in [
            (None, StatusCode::UNAUTHORIZED),
            (Some(ADMIN_TOKEN), StatusCode::UNAUTHORIZED),
        ] {
            let (s, b) = post(&c, &url("/v1/chains/cosmos/transfers"), t, decl.clone()).await;
            assert_eq!(s, want, "{b}");
        }
        for (body, field) in [
            (
                json!({"tx_id": "a", "direction": "sideways", "amount": "5"}),
                "direction",
            ),
            (
                json!({"tx_id": "a", "direction": "in", "amount": "0"}),
                "amount",
            ),
            (
                json!({"tx_id": "", "direction": "in", "amount": "5"}),
                "tx_id",
            ),
            (
                json!({"tx_id": "a", "direction": "in", "amount": "5", "purpose": "gift"}),
                "purpose",
            ),
            (
                json!({"tx_id": "a", "direction": "in", "amount": "5", "note": "\u{7}"}),
                "note",
            ),
        ] {
            let (s, b) = post(
                &c,
                &url("/v1/chains/cosmos/transfers"),
                Some(EXCHANGE_TOKEN),
                body,
            )
            .await;
            assert_eq!(
                (s, b["error"]["field"].clone()),
                (StatusCode::BAD_REQUEST, json!(field)),
                "{b}"
            );
        }
        // Undeclared: a stranger's coins land, and the books put them in suspense.
        let tx = sim.deposit(Amount::from_base(777));
        clock.set(clock.now().plus_secs(60));
        let open = wait_for("open").await;
        assert_eq!(open[0]["class"], "suspense", "{open}");
        assert_eq!(open[0]["amount"], "777");
        let id = open[0]["id"].as_i64().unwrap();
        let (s, b) = get(&c, &url("/v1/chains/cosmos/books"), None).await;
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            (s, v["suspense"].clone(), v["owed"]["suspense"].clone()),
            (StatusCode::OK, json!("777"), json!("777"))
        );
        // Operators only; a suspense cannot be a loss; it can be income.
        let resolve = url(&format!("/v1/chains/cosmos/flows/{id}/resolve"));
        let (s, _) = post(
            &c,
            &resolve,
            Some(EXCHANGE_TOKEN),
            json!({"resolution": "income", "note": "tip"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, b) = post(
            &c,
            &resolve,
            Some(ADMIN_TOKEN),
            json!({"resolution": "loss", "note": "no"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = post(
            &c,
            &resolve,
            Some(ADMIN_TOKEN),
            json!({"resolution": "shrug", "note": "no"}),
        )
        .await;
        assert_eq!(
            (s, b["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("resolution"))
        );
        // Declaring it after the fact resolves it as principal.
        let late =
            json!({"tx_id": tx, "direction": "in", "amount": "777", "note": "deposit batch 3"});
        let (s, b) = post(
            &c,
            &url("/v1/chains/cosmos/transfers"),
            Some(EXCHANGE_TOKEN),
            late.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["resolved_flow"], id);
        let (s, b) = post(
            &c,
            &url("/v1/chains/cosmos/transfers"),
            Some(EXCHANGE_TOKEN),
            late,
        )
        .await;
        assert_eq!(
            (s, b["created"].clone()),
            (StatusCode::OK, json!(false)),
            "{b}"
        );
        let conflict = json!({"tx_id": tx, "direction": "in", "amount": "778"});
        let (s, b) = post(
            &c,
            &url("/v1/chains/cosmos/transfers"),
            Some(EXCHANGE_TOKEN),
            conflict,
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        wait_for("none").await;
        // Nothing is held, so there is nothing to confirm.
        let (s, b) = post(
            &c,
            &url("/v1/chains/cosmos/books/confirm"),
            Some(ADMIN_TOKEN),
            json!({"note": "ok"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // Bunker mode: not in it, so nothing to exit; an operator holds
        // the chain, the books say so, and an exit ends it.
        assert_eq!(books["bunker"], json!({"active": false}), "{books}");
        assert_eq!(books["marked_validators"], json!([]));
        let bunker = url("/v1/chains/cosmos/books/bunker");
        let (s, b) = post(
            &c,
            &bunker,
            Some(ADMIN_TOKEN),
            json!({"action": "exit", "note": "ok"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = post(
            &c,
            &bunker,
            Some(ADMIN_TOKEN),
            json!({"action": "sideways", "note": "ok"}),
        )
        .await;
        assert_eq!(
            (s, b["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!("action"))
        );
        let (s, _) = post(
            &c,
            &bunker,
            Some(EXCHANGE_TOKEN),
            json!({"action": "enter", "note": "no"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, b) = post(
            &c,
            &bunker,
            Some(ADMIN_TOKEN),
            json!({"action": "enter", "note": "validator announced a double sign"}),
        )
        .await;
        assert_eq!(
            (s, b["active"].clone()),
            (StatusCode::OK, json!(true)),
            "{b}"
        );
        assert_eq!(b["cause"]["cause"], "operator", "{b}");
        let (_, v) = get(&c, &url("/v1/chains/cosmos/books"), None).await;
        let v: Value = serde_json::from_str(&v).unwrap();
        assert_eq!(v["bunker"]["active"], true, "{v}");
        assert_eq!(v["owed"]["users_losses"]["receivable"], "0", "{v}");
        let (s, body) = get(&c, &url("/v1/chains/cosmos/losses"), None).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "[]"));
        // Rewards in other denominations: read by dashboards, per
        // denomination, amounts as exact strings.
        let foreign = softstake_core::adapter::ForeignReward {
            key: "withdraw:AB:val0:ibc/X".into(),
            denom: "ibc/X".into(),
            amount: u128::from(u64::MAX) + 2,
            validator: "val0".into(),
            tx_hash: Some("AB".into()),
            paid_at: Timestamp::from_unix(1_767_225_600),
        };
        ts.store
            .record_foreign_reward(softstake_core::ChainId::Cosmos, &foreign, clock.now())
            .await
            .unwrap();
        let (s, body) = get(&c, &url("/v1/chains/cosmos/foreign-rewards"), None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["chain"], "cosmos");
        assert_eq!(v["denominations"][0]["denom"], "ibc/X");
        assert_eq!(v["denominations"][0]["amount"], "18446744073709551617");
        assert_eq!(v["denominations"][0]["payments"], 1);
        let (s, _) = get(&c, &url("/v1/chains/solana/foreign-rewards"), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "no such chain runs here");
        let (s, b) = post(
            &c,
            &bunker,
            Some(ADMIN_TOKEN),
            json!({"action": "exit", "note": "checked: not ours"}),
        )
        .await;
        assert_eq!(
            (s, b["active"].clone()),
            (StatusCode::OK, json!(false)),
            "{b}"
        );
        // No mark to clear.
        let (s, b) = post(
            &c,
            &url("/v1/chains/cosmos/validators/val0/unmark"),
            Some(ADMIN_TOKEN),
            json!({"note": "ok"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        // The gauges say it too.
        let text = scrape(&c, &d.metrics_url).await;
        assert!(
            text.contains("softstake_pool_books_complete{chain=\"cosmos\"} 1"),
            "{text}"
        );
        assert!(text.contains("softstake_pool_backing_ratio{chain=\"cosmos\"}"));

        assert!(
            text.contains("softstake_pool_losses_coins{chain=\"cosmos\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("softstake_pool_shortfall_coins{chain=\"cosmos\"}"),
            "{text}"
        );
        assert!(
            text.contains("softstake_pool_loss_receivable_coins{chain=\"cosmos\"} 0"),
            "{text}"
        );
        d.handle.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_the_buffer_cannot_cover_is_granted_from_the_advance_line_over_http() {
    both(|ts| async move {
        let (d, _sim, _clock) = sim_daemon(&ts, 5).await;
        let c = Client::new();
        let url = |p: &str| format!("{}{p}", d.base);
        // With no liabilities yet the first cycle delegates the whole pool;
        // the manual clock stands still, so the delegation stays open and
        // commits the liquid balance: nothing is free for withdrawals.
        let mut last = String::new();
        for _ in 0..200 {
            let (s, b) = get(&c, &url("/v1/chains/cosmos"), None).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            last = b.clone();
            if b.contains("open operation") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(last.contains("open operation"), "the pool was never delegated: {last}");
        let (s, b) = post(
            &c,
            &url("/v1/balance-updates"),
            Some(EXCHANGE_TOKEN),
            json!({"updates": [upd("e1", "alice", "9000000", "2026-01-01T00:00:00Z")]}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        // More than the pool holds liquid: the treasury fronts the rest,
        // within the test daemon's 1 ATOM line, at once.
        let (s, b) = post(
            &c,
            &url("/v1/withdrawals"),
            Some(EXCHANGE_TOKEN),
            json!({"request_id": "big", "user_id": "alice", "asset": "ATOM", "amount": "900000"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!((&b["status"], &b["source"]), (&json!("granted"), &json!("advance")), "{b}");
        let advanced: u128 = b["advanced"].as_str().unwrap().parse().unwrap();
        assert!((800_000..=900_000).contains(&advanced), "{b}");
        // The line has less than 2 ATOM of room: the next one queues.
        let (s, b) = post(
            &c,
            &url("/v1/withdrawals"),
            Some(EXCHANGE_TOKEN),
            json!({"request_id": "bigger", "user_id": "alice", "asset": "ATOM", "amount": "2000000"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!((&b["status"], &b["source"]), (&json!("queued"), &json!("queue")), "{b}");
        assert!(b["advanced"].is_null(), "{b}");
        // The treasury's view: operators only.
        let (s, _) = get(&c, &url("/v1/chains/cosmos/advances"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, body) = get(&c, &url("/v1/chains/cosmos/advances"), Some(ADMIN_TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let line: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(line["limit"], "1000000", "{line}");
        assert_eq!(line["outstanding"], advanced.to_string(), "{line}");
        let adv = &line["advances"][0];
        assert_eq!((&adv["request_id"], &adv["status"]), (&json!("big"), &json!("outstanding")), "{line}");
        // Not due yet: its repayment is refused, and nothing changes.
        let id = adv["id"].as_i64().unwrap();
        let before = table_counts(&ts.store).await;
        let (s, b) = post(
            &c,
            &url(&format!("/v1/chains/cosmos/advances/{id}/repaid")),
            Some(EXCHANGE_TOKEN),
            json!({"tx_id": "ABCD"}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("not due"), "{b}");
        assert_eq!(table_counts(&ts.store).await, before);
        // The metrics show the line.
        let m = scrape(&c, &d.metrics_url).await;
        assert!(m.contains("softstake_pool_advance_limit_coins{chain=\"cosmos\"} 1"), "{m}");
        d.handle.shutdown().await;
    })
    .await;
}
