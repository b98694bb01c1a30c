use super::*;
use std::io::Write;

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml")
}

fn example_text() -> String {
    std::fs::read_to_string(example_path()).unwrap()
}

fn load_str(text: &str, env: Vec<(String, String)>) -> Result<ConfigFile, LoadError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    load(Some(f.path()), env)
}

fn issues(text: &str) -> Vec<ConfigIssue> {
    load_str(text, vec![]).unwrap().validate().unwrap_err().0
}

#[test]
fn example_config_validates() {
    let cfg = load(Some(&example_path()), Vec::new())
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(cfg.chains.len(), 3);
    let eth = cfg.chain(softstake_core::ChainId::Ethereum).unwrap();
    assert_eq!(eth.commission.to_string(), "0.1");
    assert_eq!(cfg.database_kind, DatabaseKind::Sqlite);
    let atom = cfg.chain(softstake_core::ChainId::Cosmos).unwrap();
    // Display units, in each chain's base unit; an absent advance line is 0.
    let units = |s: &str, d: u32| softstake_core::Amount::parse_units(s, d).unwrap();
    for (got, want) in [
        (eth.buffer.min_operation, units("32", 18)),
        (eth.buffer.advance_limit, units("320", 18)),
        (eth.buffer.fee_reserve, units("0.05", 18)),
        (atom.buffer.advance_limit, units("0", 6)),
        (atom.buffer.fee_reserve, units("0.5", 6)),
    ] {
        assert_eq!(got, want);
    }
    let sizing = eth.buffer.sizing.clone().unwrap();
    assert_eq!(sizing.quantile.to_string(), "0.999");
    assert_eq!(sizing.horizon_secs, 365 * 86_400);
    assert!(atom.buffer.sizing.is_none());
    assert_eq!(atom.validators.len(), 2);
    assert_eq!(atom.min_eligible_balance.base(), 10_000);
    assert_eq!(
        atom.safety.max_validator_commission.map(|r| r.value()),
        Some(rust_decimal::Decimal::new(10, 2))
    );
    // The chain's own settings are the chain crate's (tested in
    // crates/adapters/tests/config.rs): here only the raw table.
    let sol = cfg.chain(softstake_core::ChainId::Solana).unwrap();
    assert_eq!(
        sol.network.table["compute_unit_price"].as_integer(),
        Some(5000)
    );
}

#[test]
fn defaults_without_a_file_are_valid() {
    let cfg = load(None, Vec::new()).unwrap().validate().unwrap();
    assert_eq!(cfg.database_url, "sqlite://softstake.db");
    assert!(cfg.chains.is_empty());
}

#[test]
fn unknown_keys_are_refused_naming_the_key() {
    let text = example_text().replace(
        "max_connections = 8",
        "max_connections = 8\nmax_conections = 9",
    );
    let err = load_str(&text, vec![]).unwrap_err().to_string();
    assert!(err.contains("max_conections"), "{err}");
}

#[test]
fn a_network_type_naming_no_chain_is_refused_naming_the_key() {
    let text = example_text().replace("type = \"cosmos\"", "type = \"cosmoss\"");
    let found = issues(&text);
    assert!(
        found
            .iter()
            .any(|i| i.key == "chains[1].network.type" && i.message.contains("cosmoss")),
        "{found:?}"
    );
}

#[test]
fn commission_over_100_percent_is_refused_naming_the_key() {
    let text = example_text().replace("commission = \"0.10\"", "commission = \"1.2\"");
    let found = issues(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "chains[0].commission");
    assert!(found[0].message.contains("outside 0..=1"));
}

#[test]
fn semantic_errors_are_all_reported_with_their_keys() {
    let text = example_text()
        .replace(
            "address = \"cosmosvaloper156gqf9837u7d4c4678yt3rl4ls9c5vuursrrzf\"",
            "address = \"cosmosvaloper1sjllsnramtg3ewxqwwrwjxfgc4n4ef9u2lcnj0\"",
        )
        .replace("band = \"0.05\"", "band = \"1.5\"")
        .replace(
            "min_eligible_balance = \"0.01\"",
            "min_eligible_balance = \"0.0000001\"",
        )
        .replace("url = \"sqlite://softstake.db\"", "url = \"mysql://x\"")
        .replace("weight = 2", "weight = 0")
        .replace(
            "max_validator_commission = \"0.1\"",
            "max_validator_commission = \"1.5\"",
        );
    let keys: Vec<String> = issues(&text).into_iter().map(|i| i.key).collect();
    for k in [
        "chains[1].safety.max_validator_commission",
        "database.url",
        "chains[1].validators[1].address",
        "chains[1].validators[0].weight",
        "chains[1].buffer.band",
        "chains[1].min_eligible_balance",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} missing from {keys:?}");
    }
}

#[test]
fn a_chain_configured_twice_is_refused() {
    let t = example_text();
    let first_chain = &t[t.find("[[chains]]\n# Run").unwrap()
        ..t.find("[[chains]]\nenabled = true\nendpoints = [\"https://cosmos")
            .unwrap()];
    let text = format!("{t}\n{first_chain}");
    let found = issues(&text);
    assert!(
        found.iter().any(|i| i.key == "chains[3].network.type"),
        "{found:?}"
    );
}

#[test]
fn environment_overrides_the_file_and_unknown_env_keys_are_errors() {
    let env = vec![
        (
            "SOFTSTAKE_DATABASE_URL".to_owned(),
            "postgres://u:pw@db/softstake".to_owned(),
        ),
        (
            "SOFTSTAKE_DATABASE_MAX_CONNECTIONS".to_owned(),
            "3".to_owned(),
        ),
        ("SOFTSTAKE_API_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "SOFTSTAKE_API_EXCHANGE_TOKEN".to_owned(),
            "s3cret".to_owned(),
        ),
        // Not a config section: ignored.
        ("SOFTSTAKE_TEST_PG_URL".to_owned(), "x".to_owned()),
    ];
    let cfg = load_str(&example_text(), env).unwrap().validate().unwrap();
    assert_eq!(cfg.database_kind, DatabaseKind::Postgres);
    assert_eq!(cfg.max_connections, 3);
    assert_eq!(cfg.api_listen.port(), 0);
    assert_eq!(cfg.database_url_redacted(), "postgres://u:***@db/softstake");
    // The token's value never enters the config, only the variable's name.
    assert_eq!(
        cfg.exchange_token,
        Some(SecretRef::Env {
            env: "SOFTSTAKE_API_EXCHANGE_TOKEN".into()
        })
    );
    assert!(!format!("{cfg:?}").contains("s3cret"));
    assert!(
        !format!("{cfg:?}").contains(":pw@"),
        "Debug shows the database URL redacted"
    );

    let err = load_str(
        &example_text(),
        vec![("SOFTSTAKE_DATABASE_URLL".to_owned(), "x".to_owned())],
    )
    .unwrap_err();
    assert!(err.to_string().contains("SOFTSTAKE_DATABASE_URLL"), "{err}");
}

#[test]
fn secret_files_must_be_private_and_are_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("token");
    std::fs::write(&p, "tok-123\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = SecretRef::File { file: p.clone() };
    assert!(matches!(
        r.resolve(),
        Err(SecretRefError::File(
            softstake_core::secret::KeyFileError::TooOpen { .. }
        ))
    ));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = r.resolve().unwrap();
    assert_eq!(s.expose(), "tok-123");
    assert_eq!(format!("{s:?}"), "[redacted]");
    let missing = SecretRef::Env {
        env: "SOFTSTAKE_TEST_SURELY_UNSET_VAR".into(),
    };
    assert!(matches!(
        missing.resolve(),
        Err(SecretRefError::MissingEnv(_))
    ));
}

#[test]
fn float_rates_are_refused_naming_the_key() {
    let text = example_text().replace("commission = \"0.10\"", "commission = 0.1");
    let err = load_str(&text, vec![]).unwrap_err().to_string();
    assert!(
        err.contains("commission") && err.contains("is a float"),
        "{err}"
    );
    // Whole numbers are exact and allowed.
    let text = example_text().replace("cap = \"1\"", "cap = 1");
    assert!(load_str(&text, vec![]).unwrap().validate().is_ok());
}

#[test]
fn toml_errors_name_the_line_but_never_echo_a_value() {
    // A malformed line holding an inline secret.
    let text = example_text().replace(
        "max_connections = 8",
        "max_connections = 8\nurl2 = \"postgres://u:hunter2@db/x",
    );
    let err = load_str(&text, vec![]).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("line "), "{err}");
    // A value of the wrong type: serde's message would quote it.
    let text = example_text().replace("max_connections = 8", "max_connections = \"hunter2\"");
    let err = load_str(&text, vec![]).unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.contains("line ") && err.contains("max_connections"),
        "{err}"
    );
}

#[test]
fn a_rate_with_more_digits_than_it_can_hold_is_refused_not_rounded_up() {
    let text = example_text().replace(
        "commission = \"0.10\"",
        "commission = \"0.99999999999999999999999999999\"",
    );
    let err = load_str(&text, vec![]).unwrap_err().to_string();
    assert!(
        err.contains("commission") && err.contains("exactly"),
        "{err}"
    );
    // 28 decimals fit and stay exact.
    let text = example_text().replace(
        "commission = \"0.10\"",
        "commission = \"0.9999999999999999999999999999\"",
    );
    let cfg = load_str(&text, vec![]).unwrap().validate().unwrap();
    assert_eq!(
        cfg.chains[0].commission.to_string(),
        "0.9999999999999999999999999999"
    );
}

#[test]
fn a_missing_config_file_says_why_once() {
    let e = load(
        Some(std::path::Path::new("/nonexistent/softstake.toml")),
        vec![],
    )
    .unwrap_err();
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        chain.push_str(&format!(": {s}"));
        src = s.source();
    }
    assert!(chain.contains("/nonexistent/softstake.toml"), "{chain}");
    assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
}

#[test]
fn the_loss_rule_is_platform_pool_or_users_or_refused_naming_the_key() {
    let cfg = load(Some(&example_path()), Vec::new())
        .unwrap()
        .validate()
        .unwrap();
    let eth = cfg.chain(softstake_core::ChainId::Ethereum).unwrap();
    assert_eq!(eth.books.losses, LossBearer::Platform);
    assert_eq!(eth.books.loss_netting_secs, 90 * 86_400);
    assert!(!eth.books.losses_commission_first);
    let pool = example_text().replacen("losses = \"platform\"", "losses = \"pool\"", 1);
    let cfg = load_str(&pool, vec![]).unwrap().validate().unwrap();
    assert_eq!(cfg.chains[0].books.losses, LossBearer::Pool);
    let users = example_text()
        .replacen("losses = \"platform\"", "losses = \"users\"", 1)
        .replacen("loss_netting_days = 90", "loss_netting_days = 30", 1)
        .replacen(
            "losses_commission_first = false",
            "losses_commission_first = true",
            1,
        );
    let cfg = load_str(&users, vec![]).unwrap().validate().unwrap();
    assert_eq!(cfg.chains[0].books.losses, LossBearer::Users);
    assert_eq!(cfg.chains[0].books.loss_netting_secs, 30 * 86_400);
    assert!(cfg.chains[0].books.losses_commission_first);
    for (from, to, key, says) in [
        (
            "losses = \"platform\"",
            "losses = \"nobody\"",
            "chains[0].books.losses",
            "not a loss rule",
        ),
        (
            "loss_netting_days = 90",
            "loss_netting_days = 0",
            "chains[0].books.loss_netting_days",
            "at least 1",
        ),
        (
            "loss_netting_days = 90",
            "loss_netting_days = 4000",
            "chains[0].books.loss_netting_days",
            "at most 3650",
        ),
    ] {
        let text = example_text().replacen(from, to, 1);
        let found = issues(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, key);
        assert!(found[0].message.contains(says), "{}", found[0].message);
    }
}

#[test]
fn the_advance_line_and_buffer_sizing_are_checked_naming_the_key() {
    let text = example_text()
        .replace("advance_limit = \"320\"", "advance_limit = \"-5\"")
        .replace(
            "fee_reserve = \"0.05\"",
            "fee_reserve = \"0.0000000000000000001\"",
        )
        .replace("quantile = \"0.999\"", "quantile = \"1.5\"")
        .replace("horizon_days = 365", "horizon_days = 0")
        .replace("floor = \"0.05\"", "floor = \"0.01\"")
        .replace("ceiling = \"0.5\"", "ceiling = \"0.005\"");
    let keys: Vec<String> = issues(&text).into_iter().map(|i| i.key).collect();
    for k in [
        "chains[0].buffer.advance_limit",
        // Finer than a wei.
        "chains[0].buffer.fee_reserve",
        "chains[0].buffer.sizing.quantile",
        "chains[0].buffer.sizing.horizon_days",
        // Below the band (0.03), and above the ceiling.
        "chains[0].buffer.sizing.floor",
    ] {
        assert!(keys.contains(&k.to_owned()), "{k} missing from {keys:?}");
    }
    // An unknown key in the sizing table is refused.
    let text = example_text().replace("horizon_days = 365", "horizon_days = 365\nhorizon = 3");
    assert!(load_str(&text, vec![]).is_err());
}
