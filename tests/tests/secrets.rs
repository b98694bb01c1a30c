//! Secrets never leave the daemon: a daemon on PostgreSQL (its URL carrying
//! a password) runs the real Cosmos adapter, built through the registry
//! from a config whose endpoints carry provider keys in the userinfo, the
//! path and the query (one of them unreachable, so errors are logged and
//! counted), with a custody key and API tokens from files. Every API
//! response, the metrics, every log line at debug level, the config's
//! Debug and the errors are scanned for each secret.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use softstake_chain_atom::keys::{LocalKey, Signer};
use softstake_chain_atom::testnode::{TestNode, TestNodeConfig};
use softstake_core::{Secret, SystemClock};
use softstake_daemon::{Daemon, DaemonOptions};
use softstake_tests::TestStore;
use softstake_tests::daemon::{ADMIN_TOKEN, EXCHANGE_TOKEN};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const V1: &str = "cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0";

/// Log lines, captured at debug level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn private_file(dir: &std::path::Path, name: &str, value: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_the_api_metrics_logs_debug_output_or_errors() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();

    let ts = TestStore::postgres().await;
    // Trust authentication ignores the password; the daemon must still
    // never print it.
    let db_url = ts.url.replacen("postgres@", "postgres:DBSECRET@", 1);
    assert_ne!(db_url, ts.url, "the test URL names a user");

    let key = LocalKey::parse(&Secret::new(KEY.into())).unwrap();
    let node = TestNode::new(TestNodeConfig {
        chain_id: "sim-hub-1".into(),
        genesis_time: 1_767_225_600,
        block_secs: 6,
        unbonding_secs: 21 * 86_400,
        max_entries: 7,
        reward_per_token_per_sec: 3_200_000_000,
        min_gas_price: 5_000_000_000_000_000,
        validators: vec![V1.into()],
        accounts: vec![(key.address(), 100_000_000)],
    });
    let bound = node.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_file = private_file(dir.path(), "atom.key", KEY);
    let ex = private_file(dir.path(), "ex.token", EXCHANGE_TOKEN);
    let ad = private_file(dir.path(), "ad.token", ADMIN_TOKEN);
    let text = format!(
        r#"
[database]
url = "{db_url}"
[api]
listen = "127.0.0.1:0"
exchange_token = {{ file = "{ex}" }}
admin_token = {{ file = "{ad}" }}
[metrics]
listen = "127.0.0.1:0"
[[chains]]
enabled = true
endpoints = ["http://user:SECRETPW@127.0.0.1:9/v2/SECRETKEY", "http://{bound}/?apikey=SECRETKEY"]
key = {{ file = "{key_file}" }}
interval_secs = 1
commission = "0.10"
[[chains.validators]]
address = "{V1}"
[chains.buffer]
target = "0.20"
band = "0.05"
min_operation = "0.001"
[chains.safety]
max_per_operation = "1000"
max_per_day = "10000"
approval_threshold = "1000"
[chains.network]
type = "cosmos"
chain_id = "sim-hub-1"
"#
    );
    let cfg_path = dir.path().join("softstake.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let file = softstake_config::load(Some(&cfg_path), Vec::new()).unwrap();
    let cfg = softstake_adapters::validate(&file).unwrap();
    let adapter = softstake_adapters::build_adapter(&cfg.chains[0]).unwrap();
    let mut adapters = BTreeMap::new();
    adapters.insert(cfg.chains[0].chain, adapter);
    let store =
        softstake_store::Store::connect(&db_url, &softstake_store::ConnectOptions::default())
            .await
            .unwrap();
    let handle = Daemon::start(
        &cfg,
        DaemonOptions {
            store: store.clone(),
            adapters,
            clock: Arc::new(SystemClock),
            faults: None,
        },
    )
    .await
    .unwrap();
    // A few cycles: the unreachable endpoint fails (logged, counted), the
    // other one serves.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let c = reqwest::Client::new();
    let get = |url: String, token: Option<&'static str>| {
        let c = c.clone();
        async move {
            let mut r = c.get(url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap().text().await.unwrap()
        }
    };
    let api = format!("http://{}", handle.api_addr);
    let met = format!("http://{}", handle.metrics_addr);
    let mut seen = String::new();
    for (url, token) in [
        (format!("{api}/v1/chains"), None),
        (format!("{api}/v1/chains/cosmos"), None),
        (format!("{api}/v1/chains/cosmos/validators"), None),
        (
            format!("{api}/v1/chains/cosmos/operations"),
            Some(ADMIN_TOKEN),
        ),
        (format!("{api}/readyz"), None),
        (format!("{api}/v1/outbox?after=0"), Some(EXCHANGE_TOKEN)),
        (format!("{met}/metrics"), None),
        (format!("{api}/openapi.json"), None),
    ] {
        seen.push_str(&get(url, token).await);
        seen.push('\n');
    }
    // Not vacuous: the unreachable endpoint is reported, shown redacted.
    assert!(seen.contains("http://127.0.0.1:9/***"), "{seen}");
    seen.push_str(&format!("{cfg:?}\n{file:?}\n"));
    // A build error about the endpoints, and a failing call's error.
    let mut bad = cfg.chains[0].clone();
    bad.endpoints = vec!["not-a-url-SECRETKEY".into()];
    seen.push_str(&format!(
        "{:?}\n",
        softstake_adapters::build_adapter(&bad).err()
    ));
    handle.shutdown().await;
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("127.0.0.1:9") && logged.contains("trying the next"),
        "the failing endpoint was logged"
    );
    seen.push_str(&logged);
    for secret in [
        "SECRETKEY",
        "SECRETPW",
        "DBSECRET",
        KEY,
        EXCHANGE_TOKEN,
        ADMIN_TOKEN,
    ] {
        if let Some(i) = seen.find(secret) {
            let from = i.saturating_sub(200);
            panic!(
                "{secret} leaked: ...{}...",
                &seen[from..(i + secret.len()).min(seen.len())]
            );
        }
    }
}
