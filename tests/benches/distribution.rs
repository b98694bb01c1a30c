//! Distribution benchmark: one reward over N users with random balance
//! histories, on SQLite and PostgreSQL, beside a bare bulk insert of N credit
//! rows into the same store; plus the balance ingest rate.
//!
//! cargo bench -p softstake-tests --bench distribution -- [--users N] [--updates K] [--seed S] [--only sqlite|postgres]
//!
//! PostgreSQL comes from SOFTSTAKE_TEST_PG_URL (scripts/bench sets it up).
//! Timings use wall-clock time on whatever machine runs it; see README.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    clippy::float_arithmetic
)] // timings, not money

use softstake_core::adapter::RewardKind;
use softstake_core::{Amount, ChainId, Period, Rate, Timestamp};
use softstake_store::{
    BalanceUpdate, DistributeOptions, DistributeOutcome, MAX_BATCH, NewReward, Store,
};
use softstake_tests::{TestStore, raw_exec};
use std::time::{Duration, Instant};

const T0: i64 = 1_790_000_000;
const PERIOD: i64 = 86_400;

struct Args {
    users: usize,
    updates: usize,
    seed: u64,
    only: Option<String>,
    streams: usize,
    /// PostgreSQL: an ICU locale for the benchmark's database (`en-US`),
    /// as on a server initialised with a language locale; None: the
    /// server's default.
    pg_icu_locale: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        users: 1_000_000,
        updates: 3,
        seed: 42,
        only: None,
        streams: 2,
        pg_icu_locale: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--users" => a.users = it.next().unwrap().parse().unwrap(),
            "--updates" => a.updates = it.next().unwrap().parse().unwrap(),
            "--seed" => a.seed = it.next().unwrap().parse().unwrap(),
            "--only" => a.only = it.next(),
            "--ingest-streams" => a.streams = it.next().unwrap().parse().unwrap(),
            "--pg-icu-locale" => a.pg_icu_locale = it.next(),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn history(a: &Args) -> Vec<BalanceUpdate> {
    let mut r = Rng(a.seed | 1);
    let mut v = Vec::with_capacity(a.users * a.updates);
    for u in 0..a.users {
        for k in 0..a.updates {
            // First update before the period, the rest inside it.
            let at = if k == 0 {
                T0 - 1 - i64::try_from(r.below(86_400)).unwrap()
            } else {
                T0 + i64::try_from(r.below(u64::try_from(PERIOD).unwrap())).unwrap()
            };
            // Up to ~18 ETH in wei, some zero.
            let bal = if r.below(10) == 0 {
                0
            } else {
                u128::from(r.next())
            };
            v.push(BalanceUpdate {
                event_id: format!("u{u}-{k}"),
                user_id: format!("user-{u:08}"),
                asset: "ETH".into(),
                balance: Amount::from_base(bal),
                effective_at: Timestamp::from_unix(at),
            });
        }
    }
    v
}

fn peak_rss_mib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn reset_peak_rss() {
    // Linux: writing 5 resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// N credit rows for the benchmark's own users (the same user ids the
/// distribution writes, so index insertions land where the distribution's
/// do), under a distribution of their own.
async fn bare_insert(store: &Store, dist_id: i64, n: usize) -> Duration {
    let start = Instant::now();
    if let Some(pool) = store.pg_pool() {
        let mut tx = pool.begin().await.unwrap();
        let mut copy = tx
            .copy_in_raw("COPY credits (distribution_id, user_id, asset, amount, weight, carry_after) FROM STDIN")
            .await
            .unwrap();
        let mut buf = String::with_capacity(1 << 20);
        for i in 0..n {
            buf.push_str(&format!(
                "{dist_id}\tuser-{i:08}\tDOT\t{}\t{}\t{}\n",
                1_000_000_007u64 * (i as u64 % 97),
                u128::from(u64::MAX) * 86_400,
                999_999_999_999_999u64
            ));
            if buf.len() > (1 << 20) {
                copy.send(buf.as_bytes()).await.unwrap();
                buf.clear();
            }
        }
        copy.send(buf.as_bytes()).await.unwrap();
        copy.finish().await.unwrap();
        tx.commit().await.unwrap();
    } else {
        // The store's own pool: same connection settings as the distribution.
        let pool = store.sqlite_pool().unwrap();
        let mut tx = pool.begin().await.unwrap();
        let chunk = 500;
        let mut i = 0;
        while i < n {
            let m = chunk.min(n - i);
            let mut sql = String::from(
                "INSERT INTO credits (distribution_id, user_id, asset, amount, weight, carry_after) VALUES ",
            );
            sql.push_str(&vec!["(?,?,?,?,?,?)"; m].join(","));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for k in i..i + m {
                q = q
                    .bind(dist_id)
                    .bind(format!("user-{k:08}"))
                    .bind("DOT")
                    .bind((1_000_000_007u64 * (k as u64 % 97 + 1)).to_string())
                    .bind((u128::from(u64::MAX) * 86_400 / (k as u128 + 1)).to_string())
                    .bind((999_999_999_999_999_999u128 / (k as u128 + 3)).to_string());
            }
            q.execute(&mut *tx).await.unwrap();
            i += m;
        }
        tx.commit().await.unwrap();
    }
    start.elapsed()
}

async fn delete_bare(store: &Store, dist_id: i64) {
    raw_exec(
        store,
        &format!("DELETE FROM credits WHERE distribution_id = {dist_id}"),
    )
    .await;
    if store.pg_pool().is_some() {
        raw_exec(store, "VACUUM ANALYZE credits").await;
    }
}

fn reward(chain: ChainId, key: &str) -> NewReward {
    NewReward {
        chain,
        key: key.into(),
        period: Period::new(Timestamp::from_unix(T0), Timestamp::from_unix(T0 + PERIOD)).unwrap(),
        amount: Amount::from_base(12_345_678_901_234_567_890),
        validator: "bench".into(),
        kind: RewardKind::Consensus,
        tx_hash: None,
        epoch: None,
    }
}

async fn bench(name: &str, ts: TestStore, a: &Args, updates: &[BalanceUpdate]) {
    let store = &ts.store;
    let now = Timestamp::from_unix(T0 + 2 * PERIOD);
    // Bare insert baseline: a distribution row with no users (DOT has no
    // balances), then N credit rows under it, then removed again. Made
    // before the ingest, so the timed distribution finds the database as a
    // bulk ingest leaves it (on PostgreSQL: planner statistics out of date,
    // which the distribution refreshes and pays for).
    let dummy = store
        .record_reward(&reward(ChainId::Polkadot, "dummy"), now)
        .await
        .unwrap()
        .id;
    let dummy_dist = match store
        .distribute(dummy, Rate::ZERO, &DistributeOptions::default(), now)
        .await
        .unwrap()
    {
        DistributeOutcome::Distributed(s) | DistributeOutcome::AlreadyDistributed(s) => s.id,
    };
    // Batches of MAX_BATCH from `streams` concurrent callers, as the
    // exchange's API calls arrive (SQLite takes them one at a time).
    let t = Instant::now();
    let batches: Vec<&[BalanceUpdate]> = updates.chunks(MAX_BATCH).collect();
    let streams = a.streams.max(1);
    let mut tasks = Vec::new();
    for k in 0..streams {
        let mine: Vec<&[BalanceUpdate]> =
            batches.iter().skip(k).step_by(streams).copied().collect();
        tasks.push(async move {
            for batch in mine {
                store.ingest_balance_updates(batch, now).await.unwrap();
            }
        });
    }
    futures_util::future::join_all(tasks).await;
    let ingest = t.elapsed();
    let ingest_rate = updates.len() as f64 / ingest.as_secs_f64();

    let bare = bare_insert(store, dummy_dist, a.users).await;
    delete_bare(store, dummy_dist).await;

    let id = store
        .record_reward(&reward(ChainId::Ethereum, "bench"), now)
        .await
        .unwrap()
        .id;
    reset_peak_rss();
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let out = store
        .distribute(
            id,
            Rate::new("0.1".parse().unwrap()).unwrap(),
            &DistributeOptions::default(),
            now,
        )
        .await
        .unwrap();
    let dist = t.elapsed();
    let peak = peak_rss_mib();
    let s = match out {
        DistributeOutcome::Distributed(s) => s,
        DistributeOutcome::AlreadyDistributed(_) => panic!("already distributed"),
    };
    // Steady state: a second reward over the same users, each of whom now
    // has a carried remainder (the latest credit's) to read back, beside a
    // bare insert into the credits table at the same size (1 x N rows).
    let bare2 = bare_insert(store, dummy_dist, a.users).await;
    delete_bare(store, dummy_dist).await;
    let id2 = store
        .record_reward(&reward(ChainId::Ethereum, "bench-2"), now)
        .await
        .unwrap()
        .id;
    let t = Instant::now();
    let out2 = store
        .distribute(
            id2,
            Rate::new("0.1".parse().unwrap()).unwrap(),
            &DistributeOptions::default(),
            now,
        )
        .await
        .unwrap();
    let dist2 = t.elapsed();
    assert!(matches!(out2, DistributeOutcome::Distributed(_)));
    println!(
        "{name:>8}: users {} | updates {} | ingest {:.1} s ({:.0} rows/s) | bare insert {:.2} s | distribution {:.2} s ({} credit rows) | ratio {:.2} | peak RSS during distribution {} MiB (before {} MiB) | second distribution (every user has a carry; N credits stored) {:.2} s beside a bare insert of {:.2} s, ratio {:.2}",
        a.users,
        updates.len(),
        ingest.as_secs_f64(),
        ingest_rate,
        bare.as_secs_f64(),
        dist.as_secs_f64(),
        s.users_credited,
        dist.as_secs_f64() / bare.as_secs_f64(),
        peak,
        rss_before,
        dist2.as_secs_f64(),
        bare2.as_secs_f64(),
        dist2.as_secs_f64() / bare2.as_secs_f64(),
    );
}

#[tokio::main]
async fn main() {
    // RUST_LOG=softstake_store=debug prints each distribution's phases.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = args();
    let updates = history(&a);
    println!(
        "distribution benchmark: {} users x {} updates, seed {}, {} ingest streams, {} cores, PostgreSQL locale: {}",
        a.users,
        a.updates,
        a.seed,
        a.streams,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        a.pg_icu_locale.as_deref().unwrap_or("server default")
    );
    if a.only.as_deref() != Some("postgres") {
        bench("sqlite", TestStore::sqlite().await, &a, &updates).await;
    }
    if a.only.as_deref() != Some("sqlite") {
        let ts = match &a.pg_icu_locale {
            Some(l) => TestStore::postgres_with_icu_locale(l).await,
            None => TestStore::postgres().await,
        };
        bench("postgres", ts, &a, &updates).await;
    }
}
