//! The daemon as a whole, on real databases with the simulated chain:
//! end to end over HTTP on PostgreSQL, leader failover between two
//! daemons, and a panicking chain that is restarted while another keeps
//! running.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use async_trait::async_trait;
use reqwest::Client;
use serde_json::{Value, json};
use softstake_core::ChainId;
use softstake_core::adapter::{
    AdapterError, BroadcastRequest, BroadcastResponse, BuildRequest, ChainAdapter, FlowsRequest,
    FlowsResponse, HealthRequest, HealthResponse, IdentifyRequest, IdentifyResponse, LookupRequest,
    LookupResponse, PoolStateRequest, PoolStateResponse, RewardsRequest, RewardsResponse,
    SignedOperation,
};
use softstake_store::{ConnectOptions, OpState, Store};
use softstake_testkit::SimChain;
use softstake_tests::TestStore;
use softstake_tests::daemon::{EXCHANGE_TOKEN, sim, start, start_no_wait, start_with};
use sqlx::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Advances the simulated chain one minute every 20 ms of real time until
/// stopped (an epoch of 600 s is then 0.2 s).
fn drive(sim: SimChain) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let h = tokio::spawn(async move {
        while !s.load(Ordering::SeqCst) {
            sim.advance(60);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (stop, h)
}

/// The value of the first sample of `name` whose labels contain `labels`.
fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes `url` until `ok` holds for the text (or fails after `secs`).
async fn metrics_until(c: &Client, url: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let m = c.get(url).send().await.unwrap().text().await.unwrap();
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "metrics never got there: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post_balances(c: &Client, base: &str, rows: &[(&str, &str, u64)]) -> Value {
    let updates: Vec<Value> = rows
        .iter()
        .map(|(e, u, b)| {
            json!({"event_id": e, "user_id": u, "asset": "ATOM", "balance": b.to_string(),
                   "effective_at": "2026-01-01T00:00:00Z"})
        })
        .collect();
    let r = c
        .post(format!("{base}/v1/balance-updates"))
        .header("authorization", format!("Bearer {EXCHANGE_TOKEN}"))
        .json(&json!({ "updates": updates }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_postgres_with_the_simulated_chain() {
    let ts = TestStore::postgres().await;
    let (chain, clock) = sim(7, 10_000_000);
    let d = start(&ts.store, &ts.url, Some((chain.clone(), clock)), 1_000).await;
    let c = Client::new();
    // The exchange posts its users' balances: all 10 ATOM in custody.
    let r = post_balances(
        &c,
        &d.base,
        &[
            ("b1", "alice", 5_000_000),
            ("b2", "bob", 3_000_000),
            ("b3", "carol", 2_000_000),
        ],
    )
    .await;
    assert_eq!(r["inserted"], 3);
    eventually("leadership", 10, || async { d.handle.is_leader() }).await;
    let (stop, driver) = drive(chain.clone());

    // The daemon stakes, rewards accrue, get claimed, recorded, distributed.
    eventually("a distribution", 60, || async {
        !ts.store
            .list_distributions(Some("ATOM"), None, 10)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    driver.await.unwrap();

    // Credits over HTTP, exactly the distribution's.
    let out: Value = c
        .get(format!("{}/v1/outbox?after=0&limit=10000", d.base))
        .header("authorization", format!("Bearer {EXCHANGE_TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let credits = out["credits"].as_array().unwrap();
    assert!(!credits.is_empty());
    let mut by_user = std::collections::BTreeMap::new();
    for cr in credits {
        *by_user
            .entry(cr["user_id"].as_str().unwrap().to_owned())
            .or_insert(0u128) += cr["amount"].as_str().unwrap().parse::<u128>().unwrap();
    }
    // Proportional to balances: alice earns more than bob, bob than carol.
    assert!(
        by_user["alice"] > by_user["bob"] && by_user["bob"] > by_user["carol"],
        "{by_user:?}"
    );
    for dist in ts
        .store
        .list_distributions(Some("ATOM"), None, 1_000)
        .await
        .unwrap()
    {
        assert!(ts.store.verify_distribution(dist.id).await.unwrap().ok);
    }

    // The dashboard view and the metrics tell the same story.
    let v: Value = c
        .get(format!("{}/v1/chains/cosmos", d.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["leader"], true);
    assert!(
        v["staked"].as_str().unwrap().parse::<u128>().unwrap() > 0,
        "{v}"
    );
    assert!(v["realised_apy_30d"].is_string(), "{v}");
    assert_eq!(v["liabilities"], "10000000");
    // The cycle that committed the distribution updates the metrics when
    // it returns.
    let m = metrics_until(&c, &d.metrics_url, 10, |m| {
        metric(
            m,
            "softstake_rewards_distributed_coins_total",
            "chain=\"cosmos\"",
        )
        .is_some_and(|v| v > 0.0)
    })
    .await;
    assert_eq!(metric(&m, "softstake_leader", ""), Some(1.0), "{m}");
    assert!(
        metric(
            &m,
            "softstake_rewards_collected_coins_total",
            "chain=\"cosmos\""
        )
        .unwrap()
            > 0.0
    );
    assert!(metric(&m, "softstake_pool_staked_coins", "chain=\"cosmos\"").unwrap() > 0.0);
    // The commission the chain reports for a validator holding the stake.
    assert_eq!(
        metric(
            &m,
            "softstake_validator_commission_ratio",
            "chain=\"cosmos\""
        ),
        Some(0.05),
        "{m}"
    );
    assert_eq!(
        metric(&m, "softstake_pool_liabilities_coins", "chain=\"cosmos\""),
        Some(10.0)
    );
    assert!(
        metric(&m, "softstake_operations", "state=\"confirmed\"").unwrap() >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "softstake_cycles_total", "result=\"ok\"").unwrap() >= 1.0);
    assert!(m.contains("softstake_rpc_duration_seconds_bucket{"), "{m}");
    assert_eq!(
        metric(&m, "softstake_rpc_endpoint_up", "endpoint=\"sim://node\""),
        Some(1.0)
    );
    assert!(
        metric(
            &m,
            "softstake_rpc_endpoint_latency_seconds",
            "endpoint=\"sim://node\""
        )
        .is_some(),
        "{m}"
    );

    // A withdrawal the buffer covers is granted at once.
    let r = c
        .post(format!("{}/v1/withdrawals", d.base))
        .header("authorization", format!("Bearer {EXCHANGE_TOKEN}"))
        .json(&json!({"request_id": "w1", "user_id": "carol", "asset": "ATOM", "amount": "1000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let dec: Value = r.json().await.unwrap();
    assert_eq!(dec["status"], "granted");
    d.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_when_the_leader_dies_and_nothing_runs_twice() {
    let ts = TestStore::postgres().await;
    let (chain, clock) = sim(11, 10_000_000);
    let a = start(
        &ts.store,
        &ts.url,
        Some((chain.clone(), clock.clone())),
        1_000,
    )
    .await;
    eventually("A leads", 10, || async { a.handle.is_leader() }).await;
    // B: its own connection pool, same database, same chain.
    let store_b = Store::connect(&ts.url, &ConnectOptions::default())
        .await
        .unwrap();
    let b = start_no_wait(
        &store_b,
        &ts.url,
        Some((chain.clone(), clock.clone())),
        1_000,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b.handle.is_leader(), "two leaders");
    let c = Client::new();
    // The standby serves reads and sends writes to the leader.
    let v: Value = c
        .get(format!("{}/readyz", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["leader"], false);
    let r = c
        .post(format!("{}/v1/balance-updates", b.base))
        .header("authorization", format!("Bearer {EXCHANGE_TOKEN}"))
        .json(
            &json!({"updates": [{"event_id": "x", "user_id": "u", "asset": "ATOM",
                                   "balance": "1", "effective_at": "2026-01-01T00:00:00Z"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "standby");
    post_balances(
        &c,
        &a.base,
        &[("b1", "alice", 6_000_000), ("b2", "bob", 4_000_000)],
    )
    .await;
    let (stop, driver) = drive(chain.clone());
    eventually("A confirms operations", 30, || async {
        ts.store
            .journal_state_counts(ChainId::Cosmos)
            .await
            .unwrap()
            .iter()
            .any(|(s, n)| *s == OpState::Confirmed && *n >= 2)
    })
    .await;

    // The leader dies without a goodbye; B takes over within seconds.
    let died = Instant::now();
    a.handle.kill();
    eventually("B takes over", 10, || async { b.handle.is_leader() }).await;
    let took = died.elapsed();
    assert!(took < Duration::from_secs(5), "takeover took {took:?}");
    // Give B something to do whatever state A left the pool in (it may be
    // inside the band): alice's balance drops to 0, so the buffer is far
    // above its ceiling and B must stake the excess.
    let now = softstake_core::Clock::now(&clock);
    let r = c
        .post(format!("{}/v1/balance-updates", b.base))
        .header("authorization", format!("Bearer {EXCHANGE_TOKEN}"))
        .json(
            &json!({"updates": [{"event_id": "b3", "user_id": "alice", "asset": "ATOM",
                                   "balance": "0", "effective_at": now.to_string()}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    let confirmed_at_takeover = ts
        .store
        .journal_list(ChainId::Cosmos, None, 10_000)
        .await
        .unwrap()
        .len();
    let view = || async {
        c.get(format!("{}/v1/chains/cosmos", b.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // B journals operations of its own (the journal settling is checked
    // below, after the chain stops moving).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ts
        .store
        .journal_list(ChainId::Cosmos, None, 10_000)
        .await
        .unwrap()
        .len()
        <= confirmed_at_takeover
    {
        assert!(
            Instant::now() < deadline,
            "B runs no operations: {}",
            view().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    driver.await.unwrap();
    // Settle: the chain moves a block at a time, slower than B's cycles,
    // until B has nothing open (an operation B sends after the last block
    // would otherwise wait in the mempool for good).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        chain.advance(60);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        if ts
            .store
            .journal_open(ChainId::Cosmos)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the journal never settles: {}",
            view().await
        );
    }

    // Nothing ran twice: one signed transaction per operation, applied at
    // most once, and the journal agrees with the chain.
    let audit = chain.audit();
    for (op, txs) in &audit.broadcasts {
        assert_eq!(txs.len(), 1, "operation {op} was sent with different bytes");
    }
    let ops = ts
        .store
        .journal_list(ChainId::Cosmos, None, 10_000)
        .await
        .unwrap();
    for op in &ops {
        let applied = audit.applied.get(&op.id).copied().unwrap_or(0);
        assert!(applied <= 1);
        assert_eq!(
            op.state == OpState::Confirmed,
            applied == 1,
            "journal {} vs chain {applied}",
            op.state.as_str()
        );
    }
    b.handle.shutdown().await;
}

/// Panics on every pool read: a broken adapter.
struct Panicky;

#[async_trait]
impl ChainAdapter for Panicky {
    fn chain(&self) -> ChainId {
        ChainId::Tezos
    }
    async fn pool_state(&self, _: PoolStateRequest) -> Result<PoolStateResponse, AdapterError> {
        panic!("adapter bug: unexpected node answer");
    }
    async fn flows_since(&self, _req: FlowsRequest) -> Result<FlowsResponse, AdapterError> {
        // Transfers and fees of the custody accounts are not proven by
        // this adapter yet (issue 30): the books observe and act on nothing.
        Ok(FlowsResponse::unsupported())
    }

    async fn rewards_since(&self, _: RewardsRequest) -> Result<RewardsResponse, AdapterError> {
        Ok(RewardsResponse {
            rewards: vec![],
            next_cursor: None,
            foreign: Vec::new(),
        })
    }
    async fn build_and_sign(&self, _: BuildRequest) -> Result<SignedOperation, AdapterError> {
        Err(AdapterError::Config("unused".into()))
    }
    async fn broadcast(&self, _: BroadcastRequest) -> Result<BroadcastResponse, AdapterError> {
        Err(AdapterError::Config("unused".into()))
    }
    async fn lookup(&self, _: LookupRequest) -> Result<LookupResponse, AdapterError> {
        Err(AdapterError::Config("unused".into()))
    }
    async fn identify(&self, _: IdentifyRequest) -> Result<IdentifyResponse, AdapterError> {
        Ok(IdentifyResponse::unsupported())
    }
    async fn health(&self, _: HealthRequest) -> Result<HealthResponse, AdapterError> {
        Ok(HealthResponse { endpoints: vec![] })
    }
    fn maintenance(&self, _: &PoolStateResponse) -> Vec<softstake_core::adapter::Maintenance> {
        Vec::new()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_chain_is_restarted_while_the_other_chain_keeps_running() {
    let ts = TestStore::sqlite().await;
    let (chain, clock) = sim(3, 1_000_000);
    let d = start_with(
        &ts.store,
        &ts.url,
        vec![Arc::new(chain.clone()), Arc::new(Panicky)],
        Arc::new(clock),
        1_000,
    )
    .await;
    let (stop, driver) = drive(chain);
    let c = Client::new();
    let m = metrics_until(&c, &d.metrics_url, 20, |m| {
        metric(m, "softstake_chain_task_restarts_total", "chain=\"tezos\"").unwrap_or(0.0) >= 2.0
            && metric(
                m,
                "softstake_cycles_total",
                "chain=\"cosmos\",result=\"ok\"",
            )
            .unwrap_or(0.0)
                >= 3.0
    })
    .await;
    assert!(
        metric(
            &m,
            "softstake_cycles_total",
            "chain=\"tezos\",result=\"panic\""
        )
        .unwrap()
            >= 2.0
    );
    let v: Value = c
        .get(format!("{}/v1/chains/tezos", d.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["last_error"].as_str().unwrap().contains("adapter bug"),
        "{v}"
    );
    let v: Value = c
        .get(format!("{}/v1/chains/cosmos", d.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        v["last_error"].is_null() && v["last_success_at"].is_string(),
        "{v}"
    );
    stop.store(true, Ordering::SeqCst);
    driver.await.unwrap();
    d.handle.shutdown().await;
}

/// Copies `from` to `to` until either ends, or, once `partitioned` is
/// set, swallows everything and never closes (the peer is never told).
async fn pipe<R, W>(mut from: R, mut to: W, partitioned: Arc<AtomicBool>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) if partitioned.load(Ordering::SeqCst) => {
                std::future::pending::<()>().await;
            }
            Ok(0) | Err(_) => return,
            Ok(_) if partitioned.load(Ordering::SeqCst) => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A TCP proxy on 127.0.0.1:0 to `target`; once `partitioned` is set it
/// forwards nothing in either direction but keeps every socket open, so
/// neither side is told (a one-way partition, a failover behind a VIP).
async fn blackhole_proxy(target: String, partitioned: Arc<AtomicBool>) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, partitioned.clone()));
            tokio::spawn(pipe(sr, cw, partitioned.clone()));
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_steps_down_in_bounded_time_and_a_standby_takes_over() {
    let ts = TestStore::postgres().await;
    // A's lock session goes through a proxy we can partition; its pool does not.
    let hostport = ts
        .url
        .split_once('@')
        .map(|(_, r)| r.split('/').next().unwrap().to_owned())
        .unwrap();
    let partitioned = Arc::new(AtomicBool::new(false));
    let proxy = blackhole_proxy(hostport.clone(), partitioned.clone()).await;
    let proxied = ts.url.replace(&hostport, &proxy.to_string());
    let (chain, clock) = sim(12, 10_000_000);
    let a = start(
        &ts.store,
        &proxied,
        Some((chain.clone(), clock.clone())),
        1_000,
    )
    .await;
    let store_b = Store::connect(&ts.url, &ConnectOptions::default())
        .await
        .unwrap();
    let b = start_no_wait(&store_b, &ts.url, Some((chain, clock)), 1_000).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.handle.is_leader() && !b.handle.is_leader());

    // The server ends A's lock session and A is not told.
    let mut admin = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    partitioned.store(true, Ordering::SeqCst);
    let cut = Instant::now();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    // B takes the lock (and a new term) within a poll or two; A, whose
    // check gets no answer, steps down within its check timeout. In between
    // A's writes are refused by the fence (tests/tests/fencing.rs).
    eventually("B takes over", 10, || async { b.handle.is_leader() }).await;
    eventually("A steps down", 10, || async { !a.handle.is_leader() }).await;
    let took = cut.elapsed();
    assert!(
        took < softstake_daemon::leader::CHECK_TIMEOUT * 2 + Duration::from_secs(2),
        "A led for {took:?} after losing its lock session"
    );
    let term: i64 = sqlx::query_scalar("SELECT term FROM leadership WHERE id = 1")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(term, 2, "A's term, then B's");
    b.handle.shutdown().await;
    a.handle.kill();
}

/// How many connections the flood opens: 2,000, less if the open-file limit
/// would not leave room for the daemon in this same process.
fn flood_size() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1_024);
    2_000.min(soft.saturating_sub(600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_leaves_the_probes_answering_and_is_closed() {
    use tokio::io::AsyncReadExt;
    let ts = TestStore::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = softstake_tests::daemon::config(&ts.url, dir.path(), &[], 1_000);
    cfg.api_max_connections = 200;
    cfg.api_header_read_timeout = Duration::from_secs(2);
    let handle = softstake_daemon::Daemon::start(
        &cfg,
        softstake_daemon::DaemonOptions {
            store: ts.store.clone(),
            adapters: std::collections::BTreeMap::new(),
            clock: Arc::new(softstake_core::SystemClock),
            faults: None,
        },
    )
    .await
    .unwrap();
    let n = flood_size();
    assert!(
        n >= 1_100,
        "the open-file limit leaves room for only {n} connections"
    );
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(
            tokio::net::TcpStream::connect(handle.api_addr)
                .await
                .unwrap(),
        );
    }
    // The probes and metrics, on their own listener, answer at once.
    let c = Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = c
            .get(format!("http://{}{path}", handle.metrics_addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    // Past the header timeout every idle connection has been closed by the
    // server (those past the cap at once), and the API answers again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let mut closed = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, n, "idle connections left open");
    drop(idle);
    let r = c
        .get(format!("http://{}/healthz", handle.api_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_read_only_ledger_is_refused_at_start() {
    let ts = TestStore::sqlite().await;
    ts.store.check_writable().await.unwrap();
    // The same file opened read-only (as a read-only mount or file would be).
    let ro_url = format!("{}?mode=ro", ts.url);
    let ro = Store::connect(
        &ro_url,
        &ConnectOptions {
            create_if_missing: false,
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let e = ro.check_writable().await.unwrap_err();
    assert!(matches!(e, softstake_store::StoreError::ReadOnly(_)), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = softstake_tests::daemon::config(&ro_url, dir.path(), &[], 1_000);
    let started = softstake_daemon::Daemon::start(
        &cfg,
        softstake_daemon::DaemonOptions {
            store: ro,
            adapters: std::collections::BTreeMap::new(),
            clock: Arc::new(softstake_core::SystemClock),
            faults: None,
        },
    )
    .await;
    let Err(err) = started else {
        panic!("a read-only ledger must not start");
    };
    assert!(err.to_string().contains("does not accept writes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_clock_ahead_raises_an_alert_and_distributes_nothing() {
    let ts = TestStore::sqlite().await;
    let (chain, chain_clock) = sim(13, 10_000_000);
    // Our clock is an hour behind the chain's: every reward it pays is
    // dated after our now.
    let ours = softstake_core::ManualClock::new(softstake_core::Timestamp::from_unix(
        softstake_core::Clock::now(&chain_clock).unix() - 3_600,
    ));
    let d = start_with(
        &ts.store,
        &ts.url,
        vec![Arc::new(chain.clone())],
        Arc::new(ours),
        1_000,
    )
    .await;
    let c = Client::new();
    // Alice holds since before our (late) clock, so the pool stakes and earns.
    let r = c
        .post(format!("{}/v1/balance-updates", d.base))
        .header("authorization", format!("Bearer {EXCHANGE_TOKEN}"))
        .json(
            &json!({"updates": [{"event_id": "c1", "user_id": "alice", "asset": "ATOM",
                                   "balance": "6000000", "effective_at": "2025-12-31T00:00:00Z"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (stop, driver) = drive(chain);
    let m = metrics_until(&c, &d.metrics_url, 30, |m| {
        metric(m, "softstake_chain_clock_ahead", "chain=\"cosmos\"") == Some(1.0)
    })
    .await;
    assert!(m.contains("softstake_chain_clock_ahead"), "{m}");
    stop.store(true, Ordering::SeqCst);
    driver.await.unwrap();
    assert!(
        ts.store
            .undistributed_rewards(None)
            .await
            .unwrap()
            .is_empty(),
        "nothing from the future was recorded"
    );
    assert_eq!(ts.store.status().await.unwrap().distributions, 0);
    d.handle.shutdown().await;
}
