//! The binary as an operator uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_softstake"));
    // Keep the caller's environment from leaking config into the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("SOFTSTAKE_") {
            c.env_remove(k);
        }
    }
    c
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml")
}

fn run(c: &mut Command) -> Output {
    c.output().expect("run softstake")
}

/// Runs the binary against `url`: (success, stdout, stderr).
fn ledger_cli(url: &str, args: &[&str]) -> (bool, String, String) {
    let o = run(bin().args(["--database-url", url]).args(args));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr(&o),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn example_config_validates() {
    let o = run(bin().args(["config", "validate"]).arg(example()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 chain(s): ethereum, cosmos, solana"));
}

#[test]
fn bad_configs_fail_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example()).unwrap();
    let cases = [
        (
            text.replace("commission = \"0.10\"", "commission = \"1.20\""),
            "chains[0].commission",
        ),
        (
            text.replace("[metrics]\n", "[metrics]\nlisten_port = 1\n"),
            "listen_port",
        ),
    ];
    for (i, (body, key)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, body).unwrap();
        let o = run(bin().args(["config", "validate"]).arg(&p));
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.starts_with("error: "), "{e}");
        assert!(e.contains(key), "{key} not in {e}");
    }
}

/// Reads a child's stderr on a thread; lines arrive on the channel.
fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    seen: &mut Vec<String>,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(needle) {
                    return l;
                }
            }
            Err(_) => panic!("{needle:?} never logged; saw:\n{}", seen.join("\n")),
        }
    }
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn run_serves_the_api_refuses_a_second_instance_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub.db");
    let url = format!("sqlite://{}", db.display());
    let daemon = |c: &mut Command| {
        c.args(["run", "--log-json", "--database-url", &url])
            .env("SOFTSTAKE_API_LISTEN", "127.0.0.1:0")
            .env("SOFTSTAKE_METRICS_LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = daemon(&mut bin());
    let rx = stderr_lines(&mut child);
    let mut seen = Vec::new();
    let line = wait_for(&rx, "softstake running", &mut seen);
    // The bound addresses are logged (port 0 picked free ones).
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let api = v["fields"]["api"].as_str().unwrap().to_owned();
    let metrics = v["fields"]["metrics"].as_str().unwrap().to_owned();
    assert!(http_get(&api, "/healthz").contains("\"ok\""));
    assert!(http_get(&metrics, "/metrics").contains("softstake_leader 1"));
    let o = run(bin().args(["status", "--database-url", &url]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema_version"], v["binary_schema_version"]);
    assert_eq!(v["backend"], "sqlite");

    // A second daemon on the same file refuses to start, naming it.
    let second = daemon(&mut bin()).wait_with_output().unwrap();
    assert!(!second.status.success());
    let e = stderr(&second);
    assert!(e.contains("already running") && e.contains("sub.db"), "{e}");

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    wait_for(&rx, "stopped cleanly", &mut seen);
    assert!(child.wait().unwrap().success());
}

#[test]
fn status_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let o = run(bin()
        .args(["status", "--database-url"])
        .arg(format!("sqlite://{}", db.display())));
    assert!(!o.status.success());
    assert!(!db.exists());
    let e = stderr(&o);
    assert!(e.contains("softstake migrate"), "says what to do: {e}");
}

#[test]
fn an_unreachable_database_is_one_line_and_non_zero() {
    let o = run(bin().args([
        "migrate",
        "--database-url",
        "postgres://u:topsecret@127.0.0.1:1/x",
    ]));
    assert!(!o.status.success());
    let e = stderr(&o);
    let last = e.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: cannot open database"), "{e}");
    assert!(!e.contains("topsecret"), "{e}");
}

#[test]
fn ledger_commands_end_to_end_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    let cli = |args: &[&str]| {
        let o = run(bin()
            .arg("--config")
            .arg(example())
            .args(["--database-url", &url])
            .args(args));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr(&o),
        )
    };
    assert!(cli(&["migrate"]).0);
    // Rewards in other denominations: none yet, per chain, as JSON.
    let (ok, out, err) = cli(&["books", "foreign", "--chain", "cosmos"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chain"], "cosmos");
    assert_eq!(v["denominations"], serde_json::json!([]));

    // A file with a bad row stores nothing and names the row.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "event_id,user_id,asset,balance,effective_at\n\
         e1,alice,ETH,100,2026-11-01T00:00:00Z\n\
         e2,bob,ETH,1.5,2026-11-01T00:00:50Z\n",
    )
    .unwrap();
    let (ok, _, err) = cli(&["balances", "import", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("row 2 (line 3)") && err.contains("nothing was imported"),
        "{err}"
    );

    let good = dir.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"event_id\":\"e1\",\"user_id\":\"alice\",\"asset\":\"ETH\",\"balance\":\"100\",\"effective_at\":\"2026-11-01T00:00:00Z\"}\n\
         {\"event_id\":\"e2\",\"user_id\":\"bob\",\"asset\":\"ETH\",\"balance\":\"100\",\"effective_at\":\"2026-11-01T00:00:50Z\"}\n",
    )
    .unwrap();
    let (ok, out, err) = cli(&["balances", "import", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("\"inserted\":2"), "{out}");
    let (_, out, _) = cli(&["balances", "import", good.to_str().unwrap()]);
    assert!(out.contains("\"duplicates\":2"), "{out}");

    // 0.000000000000001 ETH = 1000 wei over [0, 100 s); commission 10% in example.toml.
    let (ok, out, err) = cli(&[
        "rewards",
        "record",
        "--chain",
        "ethereum",
        "--key",
        "manual-1",
        "--from",
        "2026-11-01T00:00:00Z",
        "--to",
        "2026-11-01T00:01:40Z",
        "--amount",
        "0.000000000000001",
        "--validator",
        "0xval",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("\"created\":true"), "{out}");
    let (ok, out, err) = cli(&["distribute"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"outcome\":\"distributed\"") && out.contains("\"credited\":\"900\""),
        "{out}"
    );
    let (ok, out, _) = cli(&["distributions", "verify", "1"]);
    assert!(ok && out.contains("\"ok\": true"), "{out}");
    // The outbox without HTTP: list, acknowledge, and the status follows.
    let (ok, out, err) = cli(&["outbox", "list", "--after", "0"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].to_string())
        .collect();
    let keys: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() >= 2, "{out}");
    // The first by id, the rest by key (keys survive a database restore).
    let (ok, out, err) = cli(&["outbox", "ack", &ids[0]]);
    assert!(ok && out.contains("\"acknowledged\":1"), "{out}{err}");
    let mut args = vec!["outbox", "ack"];
    for k in &keys[1..] {
        args.extend(["--key", k.as_str()]);
    }
    let (ok, out, err) = cli(&args);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("\"acknowledged\":{}", ids.len() - 1)),
        "{out}"
    );
    // An online backup of the SQLite ledger opens as the same ledger; a
    // backup never overwrites a file.
    let copy = dir.path().join("backup.db");
    let (ok, out, err) = cli(&["backup", "--to", copy.to_str().unwrap()]);
    assert!(ok && out.contains("backed up"), "{out}{err}");
    let (ok, _, err) = cli(&["backup", "--to", copy.to_str().unwrap()]);
    assert!(!ok && err.contains("exists"), "{err}");
    let o = run(bin()
        .arg("--config")
        .arg(example())
        .args(["--database-url", &format!("sqlite://{}", copy.display())])
        .args(["outbox", "list"]));
    let restored: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(restored.as_array().unwrap().len(), ids.len(), "{restored}");
    let (_, out, _) = cli(&["status"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["credits_unacked"], 0, "{out}");
    let (ok, out, err) = cli(&[
        "statement",
        "--user",
        "alice",
        "--from",
        "2026-11-01T00:00:00Z",
        "--to",
        "2026-11-02T00:00:00Z",
        "--csv",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].contains(",ethereum,ETH,0.0000000000000006,600,"),
        "{out}"
    );
    // A reward that cannot be distributed (its chain has no [[chains]]
    // section) is reported and never blocks the others.
    for (chain, key) in [("tezos", "manual-x"), ("ethereum", "manual-2")] {
        let (ok, _, err) = cli(&[
            "rewards",
            "record",
            "--chain",
            chain,
            "--key",
            key,
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-01T00:01:40Z",
            "--amount",
            "0.000001",
            "--validator",
            "v",
        ]);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = cli(&["distribute"]);
    assert!(!ok, "a failed reward makes the command fail: {out}");
    assert!(err.contains("1 reward(s) not distributed"), "{err}");
    assert!(
        out.contains("\"committed\":false") && out.contains("no [[chains]] section"),
        "{out}"
    );
    assert!(
        out.contains("\"committed\":true") && out.contains("\"outcome\":\"distributed\""),
        "the ethereum reward committed: {out}"
    );
}

#[test]
fn operators_pause_resume_and_approval_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("o.db").display());
    let cli = |args: &[&str]| ledger_cli(&url, args);
    assert!(cli(&["migrate"]).0);
    assert!(cli(&["pause", "--chain", "cosmos"]).0);
    let (_, out, _) = cli(&["status"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chains"][0]["chain"], "cosmos");
    assert_eq!(v["chains"][0]["paused"], true);
    assert!(cli(&["resume", "--chain", "cosmos"]).0);
    let (_, out, _) = cli(&["status"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chains"][0]["paused"], false);
    let (ok, _, err) = cli(&["approve", "nope"]);
    assert!(!ok && err.contains("no operation \"nope\""), "{err}");
    let (ok, out, _) = cli(&["operations", "--chain", "cosmos"]);
    assert!(ok && out.trim() == "[]", "{out}");
    let (ok, _, err) = cli(&["pause", "--chain", "bitcoin"]);
    assert!(!ok && err.contains("unknown chain"), "{err}");
}

#[test]
fn plan_prints_operations_from_a_pool_state_file_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let cli = |args: &[&str]| {
        let o = run(bin()
            .arg("--config")
            .arg(example())
            .args(["--database-url", &url])
            .args(args));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr(&o),
        )
    };
    assert!(cli(&["migrate"]).0);
    // alice holds 1,000 ATOM.
    let f = dir.path().join("b.csv");
    std::fs::write(
        &f,
        "event_id,user_id,asset,balance,effective_at\ne1,alice,ATOM,1000000000,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    assert!(cli(&["balances", "import", f.to_str().unwrap()]).0);
    // The whole 1,000 ATOM pool is liquid, nothing is staked.
    let state = dir.path().join("state.json");
    std::fs::write(
        &state,
        r#"{"chain":"cosmos","as_of":"2026-01-02T00:00:00Z","liquid":"1000000000","delegations":[],
            "unbonding":[],"withdrawable":"0","claimable_rewards":"0",
            "limits":{"min_delegation":"1","max_unbonding_entries":7,"unbonding_delay_secs":1814400,
                      "delegation_keeps_funds_liquid":false,"stake_chunk":null}}"#,
    )
    .unwrap();
    let (ok, out, err) = cli(&[
        "plan",
        "--chain",
        "cosmos",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Buffer target 15% of liabilities stays liquid; 850 ATOM are staked
    // over the two configured validators.
    let ops = v["plan"]["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "{out}");
    let staked: u128 = ops
        .iter()
        .map(|o| {
            assert_eq!(o["kind"]["kind"], "delegate");
            o["kind"]["amount"]
                .as_str()
                .unwrap()
                .parse::<u128>()
                .unwrap()
        })
        .sum();
    assert_eq!(staked, 850_000_000);
    assert_eq!(v["plan"]["summary"]["aim"], "150000000");
    // Nothing was journaled.
    let (_, out, _) = cli(&["operations", "--chain", "cosmos", "--all"]);
    assert_eq!(out.trim(), "[]");
    // Without a state file it needs the chain's adapter; unconfigured chains
    // and bad files are one clear line.
    let (ok, _, err) = cli(&["plan", "--chain", "ethereum"]);
    assert!(!ok && err.contains("eth.key"), "{err}");
    // The cosmos adapter exists; its key (an env reference here) is missing.
    let (ok, _, err) = cli(&["plan", "--chain", "cosmos"]);
    assert!(!ok && err.contains("SOFTSTAKE_COSMOS_KEY_HEX"), "{err}");
    let (ok, _, err) = cli(&[
        "plan",
        "--chain",
        "polkadot",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("polkadot is not configured"), "{err}");
    std::fs::write(&state, "{}").unwrap();
    let (ok, _, err) = cli(&[
        "plan",
        "--chain",
        "cosmos",
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("is not a pool state"), "{err}");
}

#[test]
fn tx_sign_builds_the_cosmjs_bytes_offline_and_refuses_a_readable_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/atom/vectors.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let key = dir.path().join("atom.key");
    std::fs::write(&key, v["key_hex"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let case = &v["cases"][0];
    let req = serde_json::json!({
        "key_file": key, "chain_id": v["chain_id"], "account_number": v["account_number"],
        "sequence": v["sequence"], "fee_amount": v["fee_amount"], "gas_limit": v["gas_limit"],
        "memo": v["memo"], "operation": case["operation"],
    });
    let rf = dir.path().join("req.json");
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "atom", "--request"])
        .arg(&rf));
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["tx_hex"], case["tx_hex"]);
    assert_eq!(out["tx_hash"], case["tx_hash"]);
    // Never the key, anywhere.
    assert!(!String::from_utf8_lossy(&o.stdout).contains(v["key_hex"].as_str().unwrap()));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "atom", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bad = serde_json::json!({"key_file": key, "chain_id": "cosmoshub-4", "account_number": 1,
        "sequence": 0, "fee_amount": "1", "gas_limit": 1,
        "operation": {"kind": "delegate", "validator": "cosmos1notavaloper", "amount": "5"}});
    std::fs::write(&rf, bad.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "atom", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a valid cosmosvaloper address"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(v["key_hex"].as_str().unwrap()));
}

#[test]
fn tx_sign_forges_the_taquito_bytes_offline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/xtz/vectors.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let key = dir.path().join("xtz.key");
    std::fs::write(&key, v["secret_key"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let case = |n: &str| {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    let rf = dir.path().join("req.json");
    // An unrevealed account delegating: reveal + delegation in one group.
    let req = serde_json::json!({
        "key_file": key, "branch": v["branch"], "counter": 8, "fee": 1300, "gas_limit": 3250,
        "storage_limit": 0, "mode": "delegation", "revealed": false,
        "operation": {"kind": "delegate", "validator": v["baker"], "amount": "0"},
    });
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "xtz", "--request"])
        .arg(&rf));
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let want = case("reveal_and_delegation");
    assert_eq!(out["signed_hex"], want["signed_hex"]);
    assert_eq!(out["operation_hash"], want["operation_hash"]);
    // Staking with the delegate already set: just the stake call.
    let req = serde_json::json!({
        "key_file": key, "branch": v["branch"], "counter": 11, "fee": 1300, "gas_limit": 3250,
        "mode": "staking", "revealed": true, "current_delegate": v["baker"],
        "operation": {"kind": "delegate", "validator": v["baker"], "amount": "1000000"},
    });
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "xtz", "--request"])
        .arg(&rf));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["signed_hex"], case("stake")["signed_hex"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains(v["secret_key"].as_str().unwrap()));
}

#[test]
fn tx_sign_builds_every_solana_stake_transaction_like_web3js_offline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/sol/vectors.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let seed = [2u8; 32];
    let key = dir.path().join("sol.json");
    let keygen = softstake_chain_sol::keys::LocalKey::from_seed(seed).to_keygen_json();
    std::fs::write(&key, &keygen).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rf = dir.path().join("req.json");
    for case in v["cases"].as_array().unwrap() {
        let req = serde_json::json!({
            "key_file": key, "blockhash": v["blockhash"],
            "rent_exempt_reserve": v["rent_exempt_reserve"],
            "compute_unit_price": case["compute_unit_price"],
            "compute_unit_limit": case["compute_unit_limit"],
            "action": case["action"],
        });
        std::fs::write(&rf, req.to_string()).unwrap();
        let o = run(bin()
            .args(["tx", "sign", "--chain", "sol", "--request"])
            .arg(&rf));
        assert!(o.status.success(), "{}", stderr(&o));
        let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            out["transaction_base64"], case["tx_base64"],
            "{}",
            case["name"]
        );
        assert_eq!(out["signature"], case["signature"]);
        assert_eq!(out["address"], v["address"]);
        assert!(!String::from_utf8_lossy(&o.stdout).contains(&keygen));
    }
    // A bad vote address: a clear error, no key material.
    let req = serde_json::json!({
        "key_file": key, "blockhash": v["blockhash"], "rent_exempt_reserve": 2282880,
        "action": {"type": "create_and_delegate", "seed_index": 0, "vote": "not-a-key", "stake_lamports": 5},
    });
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "sol", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a Solana address"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(&keygen));
    // A key file others can read is refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "sol", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("sol.json"), "{}", stderr(&o));
}

#[test]
fn tx_sign_verifies_deposit_data_and_signs_the_viem_bytes_offline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/eth/vectors.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let key = dir.path().join("eth.key");
    let secret = v["custody_key_hex"].as_str().unwrap();
    std::fs::write(&key, secret).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rf = dir.path().join("req.json");
    let params = |t: &serde_json::Value| {
        serde_json::json!({
            "key_file": key, "chain_id": v["chain_id"], "nonce": t["nonce"],
            "max_fee_per_gas": v["max_fee_per_gas"].as_str().unwrap().parse::<u64>().unwrap(),
            "max_priority_fee_per_gas": v["max_priority_fee_per_gas"].as_str().unwrap().parse::<u64>().unwrap(),
            "gas_limit": t["gas"], "deposit_contract": v["deposit_contract"],
            "withdrawal_request_contract": v["withdrawal_request_contract"],
        })
    };
    for t in v["transactions"].as_array().unwrap() {
        let entry =
            &v["deposit_data"][usize::try_from(t["params"]["entry"].as_u64().unwrap()).unwrap()];
        let mut req = params(t);
        req["action"] = if t["name"].as_str().unwrap().starts_with("deposit") {
            serde_json::json!({"type": "deposit", "entry": entry, "fork_version": format!("0x{}", v["fork_version"].as_str().unwrap())})
        } else {
            serde_json::json!({"type": "withdrawal_request", "pubkey": format!("0x{}", entry["pubkey"].as_str().unwrap()),
                "amount_gwei": t["params"]["amount_gwei"], "fee_wei": t["params"]["fee_wei"]})
        };
        std::fs::write(&rf, req.to_string()).unwrap();
        let o = run(bin()
            .args(["tx", "sign", "--chain", "eth", "--request"])
            .arg(&rf));
        assert!(o.status.success(), "{}", stderr(&o));
        let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(out["raw"], t["raw"], "{}", t["name"]);
        assert_eq!(out["hash"], t["hash"]);
        assert!(!String::from_utf8_lossy(&o.stdout).contains(secret));
    }
    // A deposit entry for another network is refused with the reason.
    let t = &v["transactions"][0];
    let mut req = params(t);
    req["action"] = serde_json::json!({"type": "deposit", "entry": v["deposit_data"][0], "fork_version": "0x00000000"});
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "eth", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("fork version"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(secret));
}

#[test]
fn tx_sign_builds_the_cardano_serialization_lib_bytes_offline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/ada/vectors.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let write_key = |name: &str, seed: &str, kind: &str| {
        let s: [u8; 32] = (0..32)
            .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .try_into()
            .unwrap();
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            softstake_chain_ada::keys::LocalKey::from_seed(s).to_skey(kind),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let pay = write_key(
        "payment.skey",
        v["payment_seed_hex"].as_str().unwrap(),
        "Payment",
    );
    let stake = write_key("stake.skey", v["stake_seed_hex"].as_str().unwrap(), "Stake");
    let rf = dir.path().join("req.json");
    let case = |n: &str| {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    let c = case("register_and_delegate");
    let req = serde_json::json!({
        "payment_key_file": pay, "stake_key_file": stake, "network_id": 0,
        "min_fee_a": v["params"]["min_fee_a"], "min_fee_b": v["params"]["min_fee_b"], "ttl": v["ttl"],
        "inputs": [v["utxos"][0]],
        "action": c["op"],
    });
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "ada", "--request"])
        .arg(&rf));
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["tx_cbor"], c["tx_cbor"]);
    assert_eq!(out["tx_hash"], c["tx_hash"]);
    assert_eq!(out["address"], v["address"]);
    // Too little ada: a clear error.
    let mut poor = req.clone();
    poor["inputs"] =
        serde_json::json!([{"tx_hash": "cc".repeat(32), "output_index": 0, "lovelace": 2_100_000}]);
    std::fs::write(&rf, poor.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "ada", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("insufficient UTxOs"), "{}", stderr(&o));
}

#[test]
fn tx_sign_signs_a_polkadot_staking_extrinsic_offline() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/vectors/dot/vectors.json")).unwrap(),
    )
    .unwrap();
    let key = dir.path().join("stash.uri");
    std::fs::write(&key, v["stash_uri"].as_str().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nominate")
        .unwrap()
        .clone();
    let req = serde_json::json!({
        "key_file": key, "metadata_file": root.join("chains/dot/metadata/paseo.scale"),
        "genesis_hash": v["genesis_hash"], "spec_version": v["spec_version"],
        "transaction_version": v["transaction_version"], "nonce": v["nonce"],
        "era_block": v["block_number"], "era_block_hash": v["block_hash"], "era_period": v["period"],
        "call": {"call": "nominate", "targets": case["args"]["targets"]},
    });
    let rf = dir.path().join("req.json");
    std::fs::write(&rf, req.to_string()).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "dot", "--request"])
        .arg(&rf));
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        out["extrinsic"]
            .as_str()
            .unwrap()
            .ends_with(case["call_data"].as_str().unwrap().trim_start_matches("0x"))
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(v["stash_uri"].as_str().unwrap()));
    // A key file others can read is refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(bin()
        .args(["tx", "sign", "--chain", "dot", "--request"])
        .arg(&rf));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("stash.uri"), "{}", stderr(&o));
}

#[test]
fn devnet_stops_within_five_seconds_of_ctrl_c_saying_what_it_stops() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "devnet", "--chains", "cosmos", "--users", "20", "--steps", "1",
        ])
        .args(["--api", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--dir"])
        .arg(dir.path().join("dev"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stderr_lines(&mut child);
    let out = child.stdout.take().unwrap();
    let (tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("Ctrl-C stops the devnet") {
                let _ = tx.send(());
            }
        }
    });
    if ready.recv_timeout(Duration::from_secs(300)).is_err() {
        let _ = child.kill();
        let seen: Vec<String> = rx.try_iter().collect();
        panic!("the devnet never got to its summary:\n{}", seen.join("\n"));
    }
    let int = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut seen = Vec::new();
    let stopping = wait_for(&rx, "stopping:", &mut seen);
    assert!(stopping.contains("cosmos"), "{stopping}");
    wait_for(&rx, "stopped", &mut seen);
    let status = child.wait().unwrap();
    let took = int.elapsed();
    assert!(status.success(), "{status:?}: {}", seen.join("\n"));
    // The daemon's drain is cut at 4 s by construction; the bound here
    // leaves room for a loaded machine without letting the old 20-65 s pass.
    assert!(
        took < Duration::from_secs(8),
        "exited {took:?} after Ctrl-C"
    );
}

#[test]
fn books_declare_show_and_refusals_without_a_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("b.db").display());
    let cli = |args: &[&str]| ledger_cli(&url, args);
    assert!(cli(&["migrate"]).0);
    // Before any cycle: no snapshot, nothing owed.
    let (ok, out, err) = cli(&["books", "show", "--chain", "cosmos"]);
    assert!(ok, "{err}");
    assert!(out.contains("no holdings snapshot yet"), "{out}");
    // A declaration in display units is stored in base units; a replay
    // is not new; the same tx id with another amount is refused.
    let declare = |amount: &str| {
        cli(&[
            "books",
            "declare",
            "--chain",
            "cosmos",
            "--tx-id",
            "ABC",
            "--direction",
            "in",
            "--amount",
            amount,
            "--note",
            "deposit sweep",
        ])
    };
    let (ok, out, err) = declare("1.5");
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["created"], true);
    let (ok, out, _) = declare("1.5");
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["created"],
        false
    );
    let (ok, _, err) = declare("2");
    assert!(!ok && err.contains("different content"), "{err}");
    let (ok, _, err) = declare("0.0000001");
    assert!(!ok && err.contains("--amount"), "{err}");
    // Nothing to resolve or confirm yet.
    let (ok, _, err) = cli(&[
        "books", "resolve", "--chain", "cosmos", "--flow", "1", "--as", "income", "--note", "x",
    ]);
    assert!(!ok && err.contains("no flow 1"), "{err}");
    let (ok, _, err) = cli(&["books", "confirm", "--chain", "cosmos", "--note", "x"]);
    assert!(!ok && err.contains("no books yet"), "{err}");
    let (ok, out, _) = cli(&["books", "show", "--chain", "cosmos", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["holdings"], "0");
    assert_eq!(v["owed"]["fee_bearer"], "platform");
    let (ok, out, _) = cli(&["books", "flows", "--chain", "cosmos", "--open"]);
    assert!(ok && out.trim() == "[]", "{out}");
}

#[test]
fn verify_restore_says_what_it_cannot_tell_and_books_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let cli = |args: &[&str]| {
        let o = run(bin()
            .arg("--config")
            .arg(example())
            .args(["--database-url", &url])
            .env(
                "SOFTSTAKE_COSMOS_KEY_HEX",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            )
            .args(args));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr(&o),
        )
    };
    assert!(cli(&["migrate"]).0);
    // The example's Cosmos node cannot be reached from here: the command
    // cannot read what the chain did, says so, fails, and books nothing
    // (the real-node cases, where it names what the restored ledger does
    // not know, are tests/tests/restore_eth.rs and restore_sol.rs).
    let (ok, out, err) = cli(&["verify-restore", "--chain", "cosmos"]);
    assert!(!ok, "{out}");
    assert!(err.contains("cosmos: reading what the chain did"), "{err}");
    let (ok, _, err) = cli(&["verify-restore", "--chain", "polkadot"]);
    assert!(!ok && err.contains("polkadot is not configured"), "{err}");
    let (_, out, _) = cli(&["books", "snapshots", "--chain", "cosmos"]);
    assert_eq!(out.trim(), "[]", "booked nothing");
}
