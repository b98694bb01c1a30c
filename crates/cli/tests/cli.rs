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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn example_config_validates() {
    let o = run(bin().args(["config", "validate"]).arg(example()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 chain(s): ethereum, cosmos"));
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

#[test]
fn run_creates_the_sqlite_database_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub.db");
    let child = bin()
        .args(["run", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Wait until migrations are applied (status succeeds on the file).
    loop {
        let o = run(bin()
            .args(["status", "--database-url"])
            .arg(format!("sqlite://{}", db.display())));
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["schema_version"], v["binary_schema_version"]);
            assert_eq!(v["backend"], "sqlite");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "daemon never became ready: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(stderr(&out).contains("stopped cleanly"), "{}", stderr(&out));
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
