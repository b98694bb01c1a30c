//! Test harness shared by softstake's integration tests.
//!
//! Every test gets a fresh database: a new SQLite file in a temporary
//! directory, and a new database on the PostgreSQL server named by
//! `SOFTSTAKE_TEST_PG_URL` (dropped again afterwards). `scripts/test` sets
//! that variable, starting a throwaway cluster when none is given. PostgreSQL
//! tests are never skipped: without the variable they fail, saying how to
//! run them.

use softstake_core::{Amount, Timestamp};
use softstake_store::{Backend, BalanceUpdate, ConnectOptions, Store};
use std::future::Future;

pub mod daemon;

/// Name of the variable holding the PostgreSQL server URL for tests.
pub const PG_URL_VAR: &str = "SOFTSTAKE_TEST_PG_URL";

/// A store on a fresh database, removed when dropped.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// Its URL.
    pub url: String,
    /// For PostgreSQL: (admin URL, database name) to drop afterwards.
    pg_db: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A migrated store on a new SQLite file.
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("test.db");
        Self::sqlite_file(dir, &file).await
    }

    /// The SQLite store in `file` (inside `dir`, kept as long as it is).
    async fn sqlite_file(dir: tempfile::TempDir, file: &std::path::Path) -> TestStore {
        let url = format!("sqlite://{}", file.display());
        let store = open_migrated(&url).await;
        TestStore {
            store,
            url,
            pg_db: None,
            _dir: Some(dir),
        }
    }

    /// The PostgreSQL store in the database `name` at `url` (dropped with it).
    async fn postgres_at(admin: String, url: String, name: String) -> TestStore {
        let store = open_migrated(&url).await;
        TestStore {
            store,
            url,
            pg_db: Some((admin, name)),
            _dir: None,
        }
    }

    /// A migrated store on a new PostgreSQL database.
    pub async fn postgres() -> TestStore {
        Self::postgres_created_with("").await
    }

    /// A migrated store on a new PostgreSQL database that sorts text by
    /// the ICU locale `icu_locale` (`en-US`), as a production server
    /// initialised with a language locale does.
    pub async fn postgres_with_icu_locale(icu_locale: &str) -> TestStore {
        assert!(
            icu_locale
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "locale name {icu_locale:?}"
        );
        Self::postgres_created_with(&format!(
            " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
        ))
        .await
    }

    /// Takes a backup the way the README says to (SQLite: `VACUUM INTO`, an
    /// online consistent copy; PostgreSQL: `pg_dump -Fc`) into `dir`, and
    /// returns its path.
    pub async fn backup(&self, dir: &std::path::Path) -> std::path::PathBuf {
        if self.pg_db.is_none() {
            let path = dir.join(format!("backup-{}.db", uuid::Uuid::new_v4().simple()));
            self.store
                .sqlite_backup(&path)
                .await
                .expect("VACUUM INTO backup");
            path
        } else {
            let path = dir.join(format!("backup-{}.dump", uuid::Uuid::new_v4().simple()));
            pg_tool(
                "pg_dump",
                &[
                    "-Fc".as_ref(),
                    "-f".as_ref(),
                    path.as_ref(),
                    self.url.as_ref(),
                ],
            );
            path
        }
    }

    /// A store restored from `backup` (made by [`TestStore::backup`] of a
    /// store of the same kind) in a new file or database, as an operator
    /// restores one after losing the original.
    pub async fn restore(&self, backup: &std::path::Path) -> TestStore {
        if self.pg_db.is_none() {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("restored.db");
            std::fs::copy(backup, &file).expect("copy the backup into place");
            Self::sqlite_file(dir, &file).await
        } else {
            let (admin, url, name) = fresh_pg_database_with("").await;
            pg_tool(
                "pg_restore",
                &[
                    "--no-owner".as_ref(),
                    "-d".as_ref(),
                    url.as_ref(),
                    backup.as_ref(),
                ],
            );
            Self::postgres_at(admin, url, name).await
        }
    }

    async fn postgres_created_with(options: &str) -> TestStore {
        let (admin, url, name) = fresh_pg_database_with(options).await;
        Self::postgres_at(admin, url, name).await
    }
}

/// Runs a PostgreSQL client tool (Debian: postgresql-client) and panics
/// with its stderr when it fails.
fn pg_tool(tool: &str, args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} does not run (Debian: postgresql-client): {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store at `url`, opened and migrated.
async fn open_migrated(url: &str) -> Store {
    let store = Store::connect(url, &ConnectOptions::default())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrate {url}: {e}"));
    store
}

/// The PostgreSQL server URL for tests, or a panic explaining how to get one.
pub fn pg_url() -> String {
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{PG_URL_VAR} is not set: run the tests with scripts/test (it starts a throwaway \
             PostgreSQL cluster), or point {PG_URL_VAR} at a server, e.g. \
             postgres://postgres@127.0.0.1:5432/postgres"
        )
    })
}

/// Creates an empty database; returns (admin URL, URL of the new database, its name).
pub async fn fresh_pg_database() -> (String, String, String) {
    fresh_pg_database_with("").await
}

/// [`fresh_pg_database`] with `options` appended to `CREATE DATABASE name`.
async fn fresh_pg_database_with(options: &str) -> (String, String, String) {
    use sqlx::Connection;
    let admin = pg_url();
    let name = format!("softstake_t_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server ({PG_URL_VAR}): {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name}{options}"
    )))
    .execute(&mut c)
    .await
    .expect("create test database");
    let url = with_database(&admin, &name);
    (admin, url, name)
}

/// `admin` with its database path replaced by `db`.
pub fn with_database(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_db.take() {
            // The test's runtime may be blocked right here, so the pool is
            // not closed from this thread; DROP ... WITH (FORCE) ends its
            // connections. A private runtime on another thread does the work.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                if let Ok(rt) = rt {
                    rt.block_on(async move {
                        use sqlx::Connection;
                        if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&mut c)
                            .await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL store.
pub async fn on_both<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let s = TestStore::sqlite().await;
    test(s.store.clone()).await;
    s.store.close().await;
    drop(s);
    let p = TestStore::postgres().await;
    test(p.store.clone()).await;
    p.store.close().await;
    drop(p);
}

/// An ETH balance update: `user` holds `balance` wei from Unix time `at`.
pub fn eth_update(event: &str, user: &str, balance: u128, at: i64) -> BalanceUpdate {
    BalanceUpdate {
        event_id: event.into(),
        user_id: user.into(),
        asset: "ETH".into(),
        balance: Amount::from_base(balance),
        effective_at: Timestamp::from_unix(at),
    }
}

/// Runs raw SQL on the store's database, bypassing the store's API (to
/// tamper with data, or to fake a newer schema, in tests and benchmarks).
pub async fn raw_exec(store: &Store, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match store.backend() {
        Backend::Postgres => {
            sqlx::query(sql)
                .execute(store.pg_pool().expect("postgres pool"))
                .await
                .expect("raw sql");
        }
        Backend::Sqlite => {
            let path = store.sqlite_path().expect("sqlite file");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("open sqlite");
            sqlx::query(sql).execute(&pool).await.expect("raw sql");
            pool.close().await;
        }
    }
}

/// Runs raw SQL through the store's own pool (cheaper than [`raw_exec`],
/// which opens a connection of its own on SQLite).
pub async fn raw_exec_pooled(store: &Store, sql: &str) {
    let q = sqlx::AssertSqlSafe(sql.to_owned());
    if let Some(p) = store.pg_pool() {
        sqlx::query(q).execute(p).await.expect("raw sql");
    } else if let Some(p) = store.sqlite_pool() {
        sqlx::query(q).execute(p).await.expect("raw sql");
    } else {
        raw_exec(store, sql).await;
    }
}

/// Empties `tables` (those referring to others first): a cheap reset
/// between seeds.
pub async fn clear_tables(store: &Store, tables: &[&str]) {
    for t in tables {
        raw_exec_pooled(store, &format!("DELETE FROM {t}")).await;
    }
}

/// Stores each user's opening balance of `asset` at `at` (event ids
/// `open-USER`).
pub async fn opening_balances(store: &Store, asset: &str, users: &[(&str, u128)], at: Timestamp) {
    let batch: Vec<BalanceUpdate> = users
        .iter()
        .map(|(u, b)| BalanceUpdate {
            event_id: format!("open-{u}"),
            user_id: (*u).into(),
            asset: asset.into(),
            balance: Amount::from_base(*b),
            effective_at: at,
        })
        .collect();
    store
        .ingest_balance_updates(&batch, at)
        .await
        .expect("opening balances");
}

/// Asks for a withdrawal of `user`'s whole balance (`amount`), which must
/// queue, records the user's balance dropping to zero, then runs `step`
/// (one engine cycle plus chain time) until the request is granted; asserts
/// it was granted by its ETA. Returns the number of steps it took.
pub async fn queue_withdrawal_until_granted<F, Fut>(
    store: &Store,
    engine: &softstake_engine::Engine,
    clock: &softstake_core::ManualClock,
    user: &str,
    amount: Amount,
    mut step: F,
) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = softstake_engine::CycleReport>,
{
    use softstake_core::Clock;
    let chain = engine.chain();
    let liq = engine.liquidity().await.expect("liquidity");
    let d = store
        .request_withdrawal(
            &softstake_store::WithdrawalRequest {
                request_id: "w1".into(),
                user_id: user.into(),
                chain,
                amount,
                requested_at: None,
            },
            &liq,
            clock.now(),
        )
        .await
        .expect("request");
    assert_eq!(d.status, "queued", "{d:?}");
    let eta = d.eta.expect("eta");
    let now = clock.now();
    store
        .ingest_balance_updates(
            &[BalanceUpdate {
                event_id: format!("{user}-withdrawn"),
                user_id: user.into(),
                asset: chain.asset().into(),
                balance: Amount::ZERO,
                effective_at: now,
            }],
            now,
        )
        .await
        .expect("ingest");
    for n in 1..=40 {
        let r = step().await;
        if r.withdrawals_granted.iter().any(|w| w == "w1") {
            assert!(
                clock.now() <= eta,
                "granted at {} after ETA {eta}",
                clock.now()
            );
            return n;
        }
    }
    panic!("the queued withdrawal was never granted");
}

/// The disk is lost: `ts` is closed and its database put back from
/// `backup` (an operator's restore); returns the restored store, whose
/// journal is checked to know nothing of `adapter`'s chain, and what
/// `softstake verify-restore` finds that chain did since.
pub async fn restore_and_verify(
    ts: &TestStore,
    backup: &std::path::Path,
    adapter: &dyn softstake_core::adapter::ChainAdapter,
) -> (TestStore, softstake_engine::RestoreCheck) {
    let restored = ts.restore(backup).await;
    ts.store.close().await;
    let lost = restored
        .store
        .journal_list(adapter.chain(), None, 10)
        .await
        .expect("journal");
    assert!(
        lost.is_empty(),
        "the backup predates the operations: {lost:?}"
    );
    let check = softstake_engine::verify_restore(&restored.store, adapter)
        .await
        .expect("verify-restore");
    assert!(check.complete, "{check:?}");
    (restored, check)
}

/// The engine the chain-adapter engine tests run: 10% commission, a 20%
/// buffer with a 5% band, the given validators (weight, no cap), operations
/// of at least one `unit`, caps far above the tests' amounts (10^7 units per
/// operation, 10^8 per day), no approvals, no dry run.
pub fn adapter_engine(
    store: &Store,
    adapter: std::sync::Arc<dyn softstake_core::adapter::ChainAdapter>,
    validators: &[(&str, u32)],
    unit: u128,
    cycle_secs: u64,
    clock: &softstake_core::ManualClock,
) -> softstake_engine::Engine {
    adapter_engine_with_books(
        store,
        adapter,
        validators,
        unit,
        cycle_secs,
        clock,
        softstake_config::BooksSettings::default(),
    )
}

/// [`adapter_engine`] with the chain's books settings (the loss rule).
pub fn adapter_engine_with_books(
    store: &Store,
    adapter: std::sync::Arc<dyn softstake_core::adapter::ChainAdapter>,
    validators: &[(&str, u32)],
    unit: u128,
    cycle_secs: u64,
    clock: &softstake_core::ManualClock,
    books: softstake_config::BooksSettings,
) -> softstake_engine::Engine {
    use rust_decimal::Decimal;
    use softstake_core::Rate;
    let rate = |s: &str| Rate::new(s.parse::<Decimal>().expect("decimal")).expect("rate");
    let chain = adapter.chain();
    softstake_engine::Engine::new(
        store.clone(),
        adapter,
        softstake_engine::EngineConfig {
            chain,
            commission: rate("0.10"),
            min_eligible_balance: Amount::ZERO,
            policy: softstake_planner::Policy {
                target: rate("0.20"),
                band: rate("0.05"),
                min_operation: Amount::from_base(unit),
                validators: validators
                    .iter()
                    .map(|(address, weight)| softstake_planner::ValidatorTarget {
                        address: (*address).to_owned(),
                        weight: *weight,
                        cap: Rate::ONE,
                    })
                    .collect(),
                max_per_operation: Amount::from_base(unit * 10_000_000),
                remaining_today: Amount::ZERO,
                marked: Default::default(),
                max_commission: None,
            },
            max_per_day: Amount::from_base(unit * 100_000_000),
            approval_threshold: Amount::ZERO,
            dry_run: false,
            cycle_secs,
            books,
            advance_limit: Amount::ZERO,
            fee_reserve: Amount::ZERO,
            sizing: None,
        },
        std::sync::Arc::new(clock.clone()),
    )
    .expect("engine")
}

/// Asserts the chain's books balance by construction: at least `min`
/// snapshots, each with every flow proven and a residual of exactly 0 (its
/// change in holdings explained to the base unit), and fees booked.
pub async fn assert_every_snapshot_explained(
    store: &Store,
    chain: softstake_core::ChainId,
    min: usize,
) {
    let snaps = store
        .snapshots(chain, None, 1_000)
        .await
        .expect("snapshots");
    assert!(snaps.len() >= min, "{chain}: {} snapshots", snaps.len());
    for s in &snaps {
        assert!(s.complete, "{chain} snapshot {}: flows not proven", s.id);
        assert_eq!(
            (s.residual, s.unrecognized),
            (0, 0),
            "{chain} snapshot {}: {s:?}",
            s.id
        );
    }
    let books = store
        .books(chain, &Default::default(), softstake_core::Timestamp::now())
        .await
        .expect("books");
    assert!(books.owed.fees.base() > 0, "{chain}: no fee booked");
    assert_eq!(books.incidents_open, 0, "{chain}");
    assert!(!books.bunker.active, "{chain}: {:?}", books.bunker);
}

/// Asserts that `asset` has at least `min` distributions and that every
/// one of them verifies.
pub async fn assert_distributions_verify(store: &Store, asset: &str, min: usize) {
    let ds = store
        .list_distributions(Some(asset), None, 1_000)
        .await
        .expect("distributions");
    assert!(
        ds.len() >= min,
        "{} distributions of {asset}, expected at least {min}: {ds:?}",
        ds.len()
    );
    for d in &ds {
        assert!(
            store.verify_distribution(d.id).await.expect("verify").ok,
            "distribution {} does not verify",
            d.id
        );
    }
}

/// Records a consensus reward of `amount` on `chain` for `[start, end)`
/// (validator `val`), at `end`; returns its id.
pub async fn record_reward(
    store: &Store,
    chain: softstake_core::ChainId,
    key: &str,
    amount: u128,
    start: i64,
    end: i64,
) -> i64 {
    let r = softstake_store::NewReward {
        chain,
        key: key.into(),
        period: softstake_core::Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end))
            .expect("a period"),
        amount: Amount::from_base(amount),
        validator: "val".into(),
        kind: softstake_core::adapter::RewardKind::Consensus,
        tx_hash: None,
        epoch: None,
    };
    store
        .record_reward(&r, Timestamp::from_unix(end))
        .await
        .expect("reward recorded")
        .id
}

/// Crashes once, at the first `AfterStore` it sees: right after bytes were
/// journaled, before they were sent.
#[derive(Debug, Default)]
pub struct CrashAfterStore(std::sync::atomic::AtomicBool);

impl softstake_engine::Faults for CrashAfterStore {
    fn check(&self, p: softstake_engine::CrashPoint) -> Result<(), softstake_engine::EngineError> {
        if p == softstake_engine::CrashPoint::AfterStore
            && !self.0.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(softstake_engine::EngineError::Crash(p));
        }
        Ok(())
    }
}
