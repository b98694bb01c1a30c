//! Store tests: every one runs on SQLite and on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use softstake_core::Timestamp;
use softstake_store::{Backend, ConnectOptions, Store, StoreError};
use softstake_tests::{TestStore, on_both, raw_exec};

use softstake_tests::eth_update as upd;

#[tokio::test]
async fn amounts_round_trip_exactly_up_to_the_per_asset_maximum_and_above_it_are_refused() {
    on_both(|store| async move {
        let max = softstake_core::ChainId::Ethereum.max_balance();
        let values = [0u128, 1, (1u128 << 64) + 1, max - 1, max];
        let batch: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| upd(&format!("e{i}"), "alice", *v, 1_000 + i as i64))
            .collect();
        let r = store
            .ingest_balance_updates(&batch, Timestamp::from_unix(5_000))
            .await
            .unwrap();
        assert_eq!(r.inserted, values.len() as u64);
        let back: Vec<u128> = store
            .balance_history("alice", "ETH")
            .await
            .unwrap()
            .iter()
            .map(|u| u.balance.base())
            .collect();
        assert_eq!(back, values);
        // Two users at 2^128 - 1 would overflow every sum over users (the
        // liabilities gauge, /v1/chains): refused, naming the row, nothing stored.
        let huge = [
            upd("h1", "bob", 1, 2_000),
            upd("h2", "carol", u128::MAX, 2_000),
            upd("h3", "dave", u128::MAX, 2_000),
        ];
        let e = store
            .ingest_balance_updates(&huge, Timestamp::from_unix(5_000))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("row 2") && e.to_string().contains("above the most"),
            "{e}"
        );
        assert!(
            store
                .balance_history("bob", "ETH")
                .await
                .unwrap()
                .is_empty()
        );
        // Sums stay exact: liabilities of alice at the maximum.
        assert_eq!(
            store
                .liabilities("ETH", Timestamp::from_unix(5_000))
                .await
                .unwrap()
                .base(),
            max
        );
    })
    .await;
}

#[tokio::test]
async fn replayed_events_are_duplicates_and_reused_ids_are_refused_whole() {
    on_both(|store| async move {
        let t = Timestamp::from_unix(9_000);
        let a = vec![upd("e1", "u1", 10, 100), upd("e2", "u1", 20, 200)];
        assert_eq!(
            store.ingest_balance_updates(&a, t).await.unwrap().inserted,
            2
        );
        let again = store.ingest_balance_updates(&a, t).await.unwrap();
        assert_eq!((again.inserted, again.duplicates), (0, 2));
        assert_eq!(again.duplicate_ids, ["e1", "e2"]);

        // A batch that reuses e1 with another balance is refused, naming the
        // row, and its other (new) rows are not stored either.
        let bad = vec![upd("e3", "u1", 30, 300), upd("e1", "u1", 99, 100)];
        let err = store.ingest_balance_updates(&bad, t).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)));
        assert!(err.to_string().contains("row 2"), "{err}");
        let hist = store.balance_history("u1", "ETH").await.unwrap();
        assert_eq!(hist.len(), 2, "nothing from the refused batch was stored");
    })
    .await;
}

#[tokio::test]
async fn late_updates_apply_in_time_order() {
    on_both(|store| async move {
        let t = Timestamp::from_unix(9_000);
        store
            .ingest_balance_updates(&[upd("a", "u", 5, 300)], t)
            .await
            .unwrap();
        store
            .ingest_balance_updates(&[upd("b", "u", 7, 100)], t)
            .await
            .unwrap();
        let order: Vec<String> = store
            .balance_history("u", "ETH")
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.event_id)
            .collect();
        assert_eq!(order, ["b", "a"]);
    })
    .await;
}

#[tokio::test]
async fn oversized_batches_are_refused() {
    let s = TestStore::sqlite().await;
    let batch: Vec<_> = (0..10_001)
        .map(|i| upd(&format!("e{i}"), "u", 1, i))
        .collect();
    let err = s
        .store
        .ingest_balance_updates(&batch, Timestamp::from_unix(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 10000"), "{err}");
}

#[tokio::test]
async fn migrations_are_idempotent_and_status_reads_the_store() {
    on_both(|store| async move {
        let v = store.schema_version().await.unwrap();
        assert_eq!(v, store.binary_schema_version());
        let again = store.migrate().await.unwrap();
        assert_eq!((again.before, again.after), (v, v));
        let st = store.status().await.unwrap();
        assert_eq!(st.balance_updates, 0);
        assert_eq!(st.schema_version, v);
    })
    .await;
}

#[tokio::test]
async fn a_database_from_a_newer_binary_is_refused_and_left_untouched() {
    on_both(|store| async move {
        let future = store.binary_schema_version() + 1;
        let sql = format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({future}, 'from the future', TRUE, {blob}, 1)",
            blob = match store.backend() {
                Backend::Sqlite => "X'00'",
                Backend::Postgres => "'\\x00'::bytea",
            }
        );
        raw_exec(&store, &sql).await;
        let err = store.migrate().await.unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade softstake"));
        assert!(store.status().await.is_err());
        assert_eq!(store.schema_version().await.unwrap(), future);
    })
    .await;
}

#[tokio::test]
async fn both_dialects_have_the_same_migrations_and_columns() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let list = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(list("sqlite"), list("postgres"));

    let s = TestStore::sqlite().await;
    let p = TestStore::postgres().await;
    assert_eq!(columns(&s.store).await, columns(&p.store).await);

    // Identifier columns compare by bytes on PostgreSQL, as on SQLite
    // (migrations/README.md): every text column named id, asset, chain,
    // reward_key or *_id.
    let not_bytewise: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, collation_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%' AND data_type = 'text' \
         AND (column_name IN ('id', 'asset', 'chain', 'reward_key') OR column_name LIKE '%\\_id') \
         AND collation_name IS DISTINCT FROM 'C'",
    )
    .fetch_all(p.store.pg_pool().unwrap())
    .await
    .unwrap();
    assert!(not_bytewise.is_empty(), "{not_bytewise:?}");
}

async fn columns(store: &Store) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = match store.backend() {
        Backend::Postgres => sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%'",
        )
        .fetch_all(store.pg_pool().unwrap())
        .await
        .unwrap(),
        Backend::Sqlite => {
            let path = store.sqlite_path().unwrap();
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query_as(
                "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND m.name != 'sqlite_sequence'",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    v.sort();
    v
}

#[tokio::test]
async fn an_unreachable_database_is_one_clear_error_without_the_password() {
    let err = Store::connect(
        "postgres://softstake:hunter2@127.0.0.1:1/softstake",
        &ConnectOptions {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(2),
            create_if_missing: false,
        },
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot open database"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("softstake:***@127.0.0.1:1"), "{msg}");
    // It says why: the connection was refused (not "pool timed out").
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(err.is_retryable());
}

/// Issue 30: a reward paid in another denomination than the chain's coin
/// is kept once per key, totals are exact past u64, the same key with other
/// content is refused, and nothing of it is a reward to distribute.
#[tokio::test]
async fn foreign_rewards_are_kept_once_and_totalled_exactly_per_denomination() {
    use softstake_core::ChainId;
    use softstake_core::adapter::ForeignReward;
    on_both(|store| async move {
        let f = |key: &str, denom: &str, amount: u128, at: i64| ForeignReward {
            key: key.into(),
            denom: denom.into(),
            amount,
            validator: "cosmosvaloper1v".into(),
            tx_hash: Some("AB".into()),
            paid_at: Timestamp::from_unix(at),
        };
        let now = Timestamp::from_unix(10_000);
        let big = u128::from(u64::MAX);
        let a = f("withdraw:AB:v:ibc/X", "ibc/X", big, 1_000);
        assert!(
            store
                .record_foreign_reward(ChainId::Cosmos, &a, now)
                .await
                .unwrap()
        );
        // A replay is not new.
        assert!(
            !store
                .record_foreign_reward(ChainId::Cosmos, &a, now)
                .await
                .unwrap()
        );
        let b = f("withdraw:CD:v:ibc/X", "ibc/X", 5, 2_000);
        assert!(
            store
                .record_foreign_reward(ChainId::Cosmos, &b, now)
                .await
                .unwrap()
        );
        let c = f("withdraw:CD:v:ibc/A", "ibc/A", 7, 2_000);
        assert!(
            store
                .record_foreign_reward(ChainId::Cosmos, &c, now)
                .await
                .unwrap()
        );
        // The same key with another amount is refused, and changes nothing.
        let e = store
            .record_foreign_reward(
                ChainId::Cosmos,
                &f("withdraw:CD:v:ibc/A", "ibc/A", 8, 2_000),
                now,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("different content"), "{e}");
        // A zero or nameless one is bad input.
        assert!(
            store
                .record_foreign_reward(ChainId::Cosmos, &f("k", "ibc/A", 0, 1), now)
                .await
                .is_err()
        );
        assert!(
            store
                .record_foreign_reward(ChainId::Cosmos, &f("k", " ", 1, 1), now)
                .await
                .is_err()
        );
        let t = store.foreign_totals(ChainId::Cosmos).await.unwrap();
        let got: Vec<(String, u128, u64, i64)> = t
            .iter()
            .map(|t| (t.denom.clone(), t.amount, t.payments, t.last_paid_at.unix()))
            .collect();
        assert_eq!(
            got,
            [
                ("ibc/A".to_owned(), 7, 1, 2_000),
                ("ibc/X".to_owned(), big + 5, 2, 2_000)
            ]
        );
        // Per chain, and never a reward of the chain's coin.
        assert!(
            store
                .foreign_totals(ChainId::Solana)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .undistributed_rewards(Some(ChainId::Cosmos))
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}
