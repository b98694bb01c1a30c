//! Starting a real daemon (API and metrics on port 0) on a test store,
//! optionally with a simulated chain (Cosmos-shaped, validator `val0`).

use softstake_config::Config;
use softstake_core::adapter::ChainAdapter;
use softstake_core::{Amount, ChainId, Clock, ManualClock, Timestamp};
use softstake_daemon::{Daemon, DaemonHandle, DaemonOptions};
use softstake_store::Store;
use softstake_testkit::{SimChain, SimParams};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The exchange token the test daemons accept.
pub const EXCHANGE_TOKEN: &str = "test-exchange-token-0123456789";
/// The operator token the test daemons accept.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running test daemon.
pub struct TestDaemon {
    /// The handle.
    pub handle: DaemonHandle,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_url: String,
    _dir: tempfile::TempDir,
}

/// Params of the simulated chain the daemon tests use.
pub fn sim_params() -> SimParams {
    SimParams::hub_like(&["val0"], 10)
}

/// A simulated chain with `initial` uatom in custody, on its own clock.
pub fn sim(seed: u64, initial: u128) -> (SimChain, ManualClock) {
    let clock = ManualClock::new(Timestamp::from_unix(1_767_225_600));
    (
        SimChain::new(
            seed,
            sim_params(),
            clock.clone(),
            Amount::from_base(initial),
        ),
        clock,
    )
}

fn secret_file(dir: &std::path::Path, name: &str, value: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, value).expect("write token");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p.display().to_string()
}

/// The daemon's config: `url`, ports 0, token files, and one chain section
/// per entry of `chains` (validator `val0`, 1-second interval).
pub fn config(
    url: &str,
    dir: &std::path::Path,
    chains: &[ChainId],
    read_rate_limit: u32,
) -> Config {
    let ex = secret_file(dir, "exchange.token", EXCHANGE_TOKEN);
    let ad = secret_file(dir, "admin.token", ADMIN_TOKEN);
    let mut text = format!(
        r#"
[database]
url = "{url}"
[api]
listen = "127.0.0.1:0"
exchange_token = {{ file = "{ex}" }}
admin_token = {{ file = "{ad}" }}
read_rate_limit = {read_rate_limit}
[metrics]
listen = "127.0.0.1:0"
"#
    );
    for chain in chains {
        let network = match chain {
            ChainId::Cosmos => "type = \"cosmos\"\nchain_id = \"sim-1\"".to_owned(),
            ChainId::Tezos => "type = \"tezos\"\nchain_id = \"NetXsim\"".to_owned(),
            other => panic!("the test harness has no network section for {other}"),
        };
        text.push_str(&format!(
            r#"
[[chains]]
enabled = true
endpoints = ["http://127.0.0.1:9/sim"]
key = {{ env = "SOFTSTAKE_TEST_UNUSED_KEY" }}
interval_secs = 1
commission = "0.10"
min_eligible_balance = "0"
[[chains.validators]]
address = "val0"
weight = 1
cap = "1"
[chains.buffer]
target = "0.20"
band = "0.05"
min_operation = "0.001"
advance_limit = "1"
[chains.safety]
max_per_operation = "1000000"
max_per_day = "10000000"
approval_threshold = "0"
[chains.network]
{network}
"#
        ));
    }
    let file: softstake_config::ConfigFile = toml::from_str(&text).expect("test config parses");
    file.validate().expect("test config validates")
}

/// Starts a daemon on `store` (whose URL is `url`), with `sim` as its cosmos
/// chain if given, and waits until it leads.
pub async fn start(
    store: &Store,
    url: &str,
    sim: Option<(SimChain, ManualClock)>,
    read_rate_limit: u32,
) -> TestDaemon {
    let d = start_no_wait(store, url, sim, read_rate_limit).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !d.handle.is_leader() {
        assert!(
            std::time::Instant::now() < deadline,
            "the test daemon never became leader"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    d
}

/// [`start`] without waiting for leadership (a standby).
pub async fn start_no_wait(
    store: &Store,
    url: &str,
    sim: Option<(SimChain, ManualClock)>,
    read_rate_limit: u32,
) -> TestDaemon {
    match sim {
        Some((s, c)) => {
            start_with(store, url, vec![Arc::new(s)], Arc::new(c), read_rate_limit).await
        }
        None => {
            start_with(
                store,
                url,
                Vec::new(),
                Arc::new(softstake_core::SystemClock),
                read_rate_limit,
            )
            .await
        }
    }
}

/// Starts a daemon with these adapters (one chain section each).
pub async fn start_with(
    store: &Store,
    url: &str,
    adapters: Vec<Arc<dyn ChainAdapter>>,
    clock: Arc<dyn Clock>,
    read_rate_limit: u32,
) -> TestDaemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let chains: Vec<ChainId> = adapters.iter().map(|a| a.chain()).collect();
    let cfg = config(url, dir.path(), &chains, read_rate_limit);
    let adapters: BTreeMap<ChainId, Arc<dyn ChainAdapter>> =
        adapters.into_iter().map(|a| (a.chain(), a)).collect();
    let handle = Daemon::start(
        &cfg,
        DaemonOptions {
            store: store.clone(),
            adapters,
            clock,
            faults: None,
        },
    )
    .await
    .expect("daemon starts");
    TestDaemon {
        base: format!("http://{}", handle.api_addr),
        metrics_url: format!("http://{}/metrics", handle.metrics_addr),
        handle,
        _dir: dir,
    }
}
