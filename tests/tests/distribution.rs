//! Distribution tests: every one runs on SQLite and on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use rust_decimal::Decimal;
use softstake_core::adapter::RewardKind;
use softstake_core::{Amount, ChainId, Period, Rate, Timestamp};
use softstake_store::{DistributeOptions, DistributeOutcome, NewReward, Store};
use softstake_tests::{eth_update as upd, on_both, raw_exec};
use std::sync::{Arc, Mutex};

const T0: i64 = 1_790_000_000;

fn reward(key: &str, start: i64, end: i64, amount: u128) -> NewReward {
    NewReward {
        chain: ChainId::Ethereum,
        key: key.into(),
        period: Period::new(Timestamp::from_unix(start), Timestamp::from_unix(end)).unwrap(),
        amount: Amount::from_base(amount),
        validator: "0xvalidator".into(),
        kind: RewardKind::Consensus,
        tx_hash: None,
        epoch: Some(7),
    }
}

fn rate(permille: i64) -> Rate {
    Rate::new(Decimal::new(permille, 3)).unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_unix(T0 + 10_000)
}

async fn distribute(store: &Store, id: i64, r: Rate) -> DistributeOutcome {
    store
        .distribute(id, r, &DistributeOptions::default(), now())
        .await
        .unwrap()
}

fn summary(o: DistributeOutcome) -> softstake_store::DistributionSummary {
    match o {
        DistributeOutcome::Distributed(s) | DistributeOutcome::AlreadyDistributed(s) => s,
    }
}

/// The first `limit` credits in the outbox as (user, amount).
async fn outbox_amounts(store: &Store, limit: u32) -> Vec<(String, String)> {
    store
        .outbox(0, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.user_id, c.amount.to_string()))
        .collect()
}

/// alice holds 100 for the whole period; bob deposits 100 halfway.
async fn two_users(store: &Store) -> i64 {
    store
        .ingest_balance_updates(
            &[
                upd("a1", "alice", 100, T0 - 50),
                upd("b1", "bob", 100, T0 + 50),
            ],
            now(),
        )
        .await
        .unwrap();
    store
        .record_reward(&reward("epoch-7", T0, T0 + 100, 1000), now())
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn worked_example_two_users_one_deposits_halfway() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        let s = summary(distribute(&store, id, rate(100)).await);
        assert_eq!(s.commission, Amount::from_base(100));
        assert_eq!(s.credited, Amount::from_base(900));
        let out = store.outbox(0, 100).await.unwrap();
        let got: Vec<(&str, u128)> = out
            .iter()
            .map(|c| (c.user_id.as_str(), c.amount.base()))
            .collect();
        assert_eq!(got, [("alice", 600), ("bob", 300)]);
        assert!(store.verify_distribution(s.id).await.unwrap().ok);
    })
    .await;
}

#[tokio::test]
async fn a_reward_is_distributed_once() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        assert!(matches!(
            distribute(&store, id, rate(100)).await,
            DistributeOutcome::Distributed(_)
        ));
        // Even with another rate, the second attempt is a no-op.
        let again = distribute(&store, id, rate(500)).await;
        assert!(matches!(again, DistributeOutcome::AlreadyDistributed(_)));
        assert_eq!(summary(again).commission, Amount::from_base(100));
        assert_eq!(store.outbox(0, 100).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_failure_before_commit_leaves_nothing() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        let opts = DistributeOptions {
            fail_before_commit: true,
            ..DistributeOptions::default()
        };
        assert!(store.distribute(id, rate(100), &opts, now()).await.is_err());
        assert!(store.distribution_for_reward(id).await.unwrap().is_none());
        assert!(store.outbox(0, 100).await.unwrap().is_empty());
        let st = store.status().await.unwrap();
        assert_eq!((st.distributions, st.credits_unacked), (0, 0));
        // The retry does the whole job.
        assert!(matches!(
            distribute(&store, id, rate(100)).await,
            DistributeOutcome::Distributed(_)
        ));
        assert_eq!(store.outbox(0, 100).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn remainders_carry_across_rewards_and_nothing_is_lost() {
    on_both(|store| async move {
        let batch: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|u| upd(&format!("e-{u}"), u, 1, T0))
            .collect();
        store.ingest_balance_updates(&batch, now()).await.unwrap();
        let mut per_user = std::collections::BTreeMap::<String, u128>::new();
        for i in 0..3 {
            let id = store
                .record_reward(
                    &reward(&format!("r{i}"), T0 + i * 10, T0 + i * 10 + 10, 10),
                    now(),
                )
                .await
                .unwrap()
                .id;
            let s = summary(distribute(&store, id, Rate::ZERO).await);
            assert!(store.verify_distribution(s.id).await.unwrap().ok);
        }
        for c in store.outbox(0, 100).await.unwrap() {
            *per_user.entry(c.user_id).or_default() += c.amount.base();
        }
        // 3 + 3 + 4 each: 30 units in, 30 credited.
        assert_eq!(per_user.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
    })
    .await;
}

#[tokio::test]
async fn the_same_inputs_give_identical_credits_on_both_databases() {
    let digests = Arc::new(Mutex::new(Vec::new()));
    let d2 = digests.clone();
    on_both(move |store| {
        let digests = d2.clone();
        async move {
            let mut batch = Vec::new();
            for u in 0..200u32 {
                let user = format!(
                    "User-{:03}-{}",
                    (u * 7919) % 200,
                    if u % 3 == 0 { "Z" } else { "a" }
                );
                batch.push(upd(
                    &format!("e{u}-0"),
                    &user,
                    u128::from(u) * 1_000_000_007,
                    T0 - 10,
                ));
                batch.push(upd(
                    &format!("e{u}-1"),
                    &user,
                    u128::from(u % 17) * 333,
                    T0 + i64::from(u),
                ));
            }
            store.ingest_balance_updates(&batch, now()).await.unwrap();
            let id = store
                .record_reward(
                    &reward("big", T0, T0 + 3_600, 987_654_321_987_654_321),
                    now(),
                )
                .await
                .unwrap()
                .id;
            let s = summary(distribute(&store, id, rate(125)).await);
            digests
                .lock()
                .unwrap()
                .push((s.digest, s.credited, s.dust_after));
        }
    })
    .await;
    let d = digests.lock().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0], d[1], "SQLite and PostgreSQL disagree");
}

#[tokio::test]
async fn verify_detects_a_tampered_credit() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        let s = summary(distribute(&store, id, rate(100)).await);
        let sql = format!(
            "UPDATE credits SET amount = '601' WHERE distribution_id = {} AND user_id = 'alice'",
            s.id
        );
        raw_exec(&store, &sql).await;
        let v = store.verify_distribution(s.id).await.unwrap();
        assert!(!v.ok);
        assert!(
            v.mismatches.iter().any(|m| m.starts_with("rows digest")),
            "{:?}",
            v.mismatches
        );
    })
    .await;
}

#[tokio::test]
async fn updates_into_a_distributed_period_are_refused() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        distribute(&store, id, rate(100)).await;
        let err = store
            .ingest_balance_updates(&[upd("late", "carol", 5, T0 + 99)], now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already distributed"), "{err}");
        // Replaying an event stored before the horizon is still a no-op.
        let replay = store
            .ingest_balance_updates(&[upd("a1", "alice", 100, T0 - 50)], now())
            .await
            .unwrap();
        assert_eq!((replay.inserted, replay.duplicates), (0, 1));
        // At or after the horizon is fine.
        store
            .ingest_balance_updates(&[upd("ok", "carol", 5, T0 + 100)], now())
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn rewards_are_recorded_once_by_key() {
    on_both(|store| async move {
        let r = reward("k", T0, T0 + 10, 5);
        let a = store.record_reward(&r, now()).await.unwrap();
        let b = store.record_reward(&r, now()).await.unwrap();
        assert!(a.created && !b.created);
        assert_eq!(a.id, b.id);
        let mut other = r.clone();
        other.amount = Amount::from_base(6);
        let err = store.record_reward(&other, now()).await.unwrap_err();
        assert!(err.to_string().contains("different content"), "{err}");
        assert!(
            store
                .record_reward(&reward("z", T0, T0 + 1, 0), now())
                .await
                .is_err()
        );
        assert_eq!(
            store
                .undistributed_rewards(Some(ChainId::Ethereum))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .undistributed_rewards(Some(ChainId::Solana))
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn outbox_cursor_and_acknowledgements() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        distribute(&store, id, rate(100)).await;
        let all = store.outbox(0, 100).await.unwrap();
        let rest = store.outbox(all[0].position, 100).await.unwrap();
        assert_eq!(rest, all[1..]);
        assert_eq!(store.outbox(0, 1).await.unwrap().len(), 1);
        // Unknown id: nothing acknowledged.
        assert!(
            store
                .ack_credits(&[all[0].id, 999_999], now())
                .await
                .is_err()
        );
        assert!(store.outbox(0, 100).await.unwrap().iter().all(|c| !c.acked));
        assert_eq!(store.ack_credits(&[all[0].id], now()).await.unwrap(), 1);
        assert_eq!(store.ack_credits(&[all[0].id], now()).await.unwrap(), 0);
        assert!(store.outbox(0, 100).await.unwrap()[0].acked);
        assert_eq!(store.status().await.unwrap().credits_unacked, 1);
    })
    .await;
}

#[tokio::test]
async fn statements_show_amount_period_validator_and_apy() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        let d = summary(distribute(&store, id, rate(100)).await);
        let lines = store
            .statement(
                "alice",
                Timestamp::from_unix(T0),
                Timestamp::from_unix(T0 + 1_000),
            )
            .await
            .unwrap();
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l.amount, Amount::from_base(600));
        assert_eq!(l.validator, "0xvalidator");
        assert_eq!(l.period_end.unix(), T0 + 100);
        // 600 on an average of 100 over 100 s: 6 x (31_557_600 / 100) = 1_893_456.
        assert_eq!(l.apy, "1893456");
        assert_eq!(l.distribution_id, d.id);
        assert_eq!(l.carried_base_units, "0");
        assert!(
            store
                .statement(
                    "alice",
                    Timestamp::from_unix(T0 + 101),
                    Timestamp::from_unix(T0 + 1_000)
                )
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn time_below_the_minimum_earns_nothing() {
    on_both(|store| async move {
        store
            .ingest_balance_updates(&[upd("s", "small", 5, T0), upd("b", "big", 50, T0)], now())
            .await
            .unwrap();
        let id = store
            .record_reward(&reward("m", T0, T0 + 10, 100), now())
            .await
            .unwrap()
            .id;
        let opts = DistributeOptions {
            min_balance: Amount::from_base(10),
            ..DistributeOptions::default()
        };
        let s = summary(
            store
                .distribute(id, Rate::ZERO, &opts, now())
                .await
                .unwrap(),
        );
        let out = store.outbox(0, 10).await.unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].user_id.as_str(), out[0].amount.base()),
            ("big", 100)
        );
        assert!(store.verify_distribution(s.id).await.unwrap().ok);
    })
    .await;
}

/// The history read packs users and separators into text on SQLite: ids
/// holding the separators, multibyte ids, same-second updates (the later
/// row wins) and more users than fit one packed row must all come out as
/// on PostgreSQL, to the unit.
#[tokio::test]
async fn awkward_user_ids_ties_and_many_users_read_back_exactly() {
    let results = Arc::new(Mutex::new(Vec::new()));
    let r2 = results.clone();
    on_both(move |store| {
        let results = r2.clone();
        async move {
            let mut batch = vec![
                // 10 for the whole period.
                upd("s1", "a;b:c,d 1", 10, T0 - 1),
                // 7:ü✓ holds 30, then 0 at the same second as a later 20:
                // the later row (20) wins from T0 + 50.
                upd("s2", "7:ü✓;", 30, T0 - 1),
                upd("s3", "7:ü✓;", 0, T0 + 50),
                upd("s4", "7:ü✓;", 20, T0 + 50),
            ];
            for i in 0..2_500 {
                batch.push(upd(&format!("m{i}"), &format!("user{i:05}"), 1, T0 - 1));
            }
            store.ingest_balance_updates(&batch, now()).await.unwrap();
            let id = store
                .record_reward(&reward("awkward", T0, T0 + 100, 1_000_000_000), now())
                .await
                .unwrap()
                .id;
            let d = summary(distribute(&store, id, Rate::ZERO).await);
            assert!(store.verify_distribution(d.id).await.unwrap().ok);
            let credits = outbox_amounts(&store, 10_000).await;
            // Weights: 10x100 + (30x50 + 20x50) + 2500 x 1x100 = 253,500.
            let get = |u: &str| credits.iter().find(|c| c.0 == u).unwrap().1.clone();
            assert_eq!(d.total_weight, "253500");
            assert_eq!(get("a;b:c,d 1"), "3944773");
            assert_eq!(get("7:ü✓;"), "9861932");
            assert_eq!(credits.len(), 2_502);
            results.lock().unwrap().push(credits);
        }
    })
    .await;
    let r = results.lock().unwrap();
    assert_eq!(r[0], r[1], "SQLite and PostgreSQL credit differently");
}

/// Carried remainders come from the previous distribution's rows (read in
/// pages on SQLite: 6,250 users is more than one), and for a user who was
/// not in it (away for a period) from their latest earlier credit. Every
/// share here is exact (1e18 / 6,250 has no remainder), so the expected
/// credits are computed by hand: F (6,249 users, every period) earns 1.6,
/// 1.6, 1.9 units: credits 1, 2 (1.6 + 0.6 carried), 2 (1.9 + 0.2 carried);
/// A (away in period 2) earns 1.6 then 1.9: credits 1, then 2 only if the
/// 0.6 carried from period 1 is found; G (period 2 only) 1.
#[tokio::test]
async fn carries_come_from_the_previous_distribution_or_the_users_latest_credit() {
    on_both(|store| async move {
        let mut batch: Vec<_> = (0..6_249)
            .map(|i| upd(&format!("f{i}"), &format!("f{i:05}"), 1, T0 - 1))
            .collect();
        batch.extend([
            upd("a1", "A", 1, T0 - 1),
            upd("a2", "A", 0, T0 + 10),
            upd("a3", "A", 1, T0 + 20),
            upd("g1", "G", 1, T0 + 10),
            upd("g2", "G", 0, T0 + 20),
        ]);
        store.ingest_balance_updates(&batch, now()).await.unwrap();
        for (i, amount) in [10_000u128, 10_000, 11_875].into_iter().enumerate() {
            let start = T0 + 10 * i64::try_from(i).unwrap();
            let id = store
                .record_reward(&reward(&format!("p{i}"), start, start + 10, amount), now())
                .await
                .unwrap()
                .id;
            let d = summary(distribute(&store, id, Rate::ZERO).await);
            assert_eq!(d.users_credited, 6_250);
            assert!(store.verify_distribution(d.id).await.unwrap().ok);
        }
        let mut per_user = std::collections::HashMap::<String, u128>::new();
        let mut after = 0;
        loop {
            let page = store.outbox(after, 10_000).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            for c in page {
                *per_user.entry(c.user_id).or_default() += c.amount.base();
            }
        }
        assert_eq!(per_user.len(), 6_251);
        assert_eq!(per_user["A"], 3, "A's carry from period 1 was not found");
        assert_eq!(per_user["G"], 1);
        let wrong: Vec<_> = per_user
            .iter()
            .filter(|(u, v)| u.starts_with('f') && **v != 5)
            .collect();
        assert!(
            wrong.is_empty(),
            "{} F users credited wrongly, e.g. {:?}",
            wrong.len(),
            wrong.first()
        );
    })
    .await;
}

/// On PostgreSQL a balance ingest waits while a distribution of the asset
/// holds its lock, so it reads the distributed horizon only after that
/// distribution commits and cannot slip an update into the period just
/// distributed. (On SQLite every write transaction takes the write lock.)
#[tokio::test]
async fn ingest_waits_for_a_distribution_in_progress_on_postgres() {
    let ts = softstake_tests::TestStore::postgres().await;
    let store = ts.store.clone();
    let id = two_users(&store).await;
    // Hold the ETH lock as a distribution does, from another connection.
    let pool = store.pg_pool().unwrap().clone();
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(7402, hashtext('ETH'))")
        .execute(&mut *holder)
        .await
        .unwrap();
    let s2 = store.clone();
    let ingest = tokio::spawn(async move {
        s2.ingest_balance_updates(&[upd("late", "alice", 5, T0 + 10)], now())
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !ingest.is_finished(),
        "the ingest did not wait for the asset lock"
    );
    // The holder lets go without distributing: the waiting ingest goes on
    // and is accepted. Once the period is distributed, updates into it are
    // refused.
    holder.rollback().await.unwrap();
    let r = ingest.await.unwrap();
    assert!(
        r.is_ok(),
        "no distribution yet, so the update is accepted: {r:?}"
    );
    summary(distribute(&store, id, Rate::ZERO).await);
    let late = store
        .ingest_balance_updates(&[upd("later", "alice", 6, T0 + 20)], now())
        .await;
    assert!(
        late.is_err(),
        "an update into a distributed period must be refused"
    );
    drop(ts);
}

/// A production PostgreSQL is often initialised with a language locale,
/// under which text sorts differently from bytes ("a" < "B" in en-US, the
/// reverse in bytes). Identifier columns compare bytewise there too
/// (migration 0003), so the database orders ids exactly as SQLite and the
/// split do, and the credits are the same as on SQLite to the unit.
#[tokio::test]
async fn ids_order_bytewise_and_credit_the_same_on_a_language_locale_server() {
    let users = ["a", "B", "_z", "ä", "Z10", "z2", "b"];
    let mut bytewise: Vec<&str> = users.to_vec();
    bytewise.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    let run = |store: Store| async move {
        let batch: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(i, u)| upd(&format!("e-{u}"), u, 1_000 + i as u128 * 7, T0 - 1))
            .collect();
        store.ingest_balance_updates(&batch, now()).await.unwrap();
        let id = store
            .record_reward(&reward("locale", T0, T0 + 100, 1_000_003), now())
            .await
            .unwrap()
            .id;
        let d = summary(distribute(&store, id, rate(100)).await);
        let credits = outbox_amounts(&store, 100).await;
        (d.digest, credits)
    };
    let sqlite = softstake_tests::TestStore::sqlite().await;
    let on_sqlite = run(sqlite.store.clone()).await;
    let pg = softstake_tests::TestStore::postgres_with_icu_locale("en-US").await;
    let pool = pg.store.pg_pool().unwrap().clone();
    // The server really sorts by the locale: plain text is not bytewise.
    let by_locale: Vec<String> =
        sqlx::query_scalar("SELECT u FROM UNNEST($1::text[]) AS x(u) ORDER BY u")
            .bind(users.to_vec())
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_ne!(
        by_locale, bytewise,
        "the test database does not sort by en-US"
    );
    let on_pg = run(pg.store.clone()).await;
    assert_eq!(
        on_sqlite, on_pg,
        "SQLite and PostgreSQL (en-US) credit differently"
    );
    for sql in [
        "SELECT user_id FROM balance_updates ORDER BY user_id",
        "SELECT user_id FROM credits ORDER BY user_id",
        "SELECT event_id FROM balance_updates ORDER BY event_id",
    ] {
        let got: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        let mut want: Vec<String> = got.clone();
        want.sort_unstable_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        assert_eq!(got, want, "{sql}");
        assert_eq!(got.len(), users.len(), "{sql}");
    }
    pg.store.close().await;
}

#[tokio::test]
async fn a_reward_from_the_future_is_neither_recorded_nor_distributed() {
    on_both(|store| async move {
        // Ends an hour after now: refused, nothing stored.
        let late = T0 + 10_000 + 3_600;
        let e = store
            .record_reward(&reward("future", T0, late, 1000), now())
            .await
            .unwrap_err();
        assert!(
            matches!(e, softstake_store::StoreError::FutureReward { .. }),
            "{e}"
        );
        assert!(e.is_retryable(), "time catches up");
        assert!(
            store
                .undistributed_rewards(Some(ChainId::Ethereum))
                .await
                .unwrap()
                .is_empty()
        );
        // Within the tolerance (a node a few seconds ahead): recorded.
        let close = T0 + 10_000 + softstake_store::FUTURE_TOLERANCE_SECS;
        store
            .record_reward(&reward("close", T0, close, 1000), now())
            .await
            .unwrap();
        // Recorded when its end had passed, distributed with a clock that
        // is behind it by more than the tolerance: refused, nothing written.
        let id = store
            .record_reward(&reward("later", T0, late, 1000), Timestamp::from_unix(late))
            .await
            .unwrap()
            .id;
        let e = store
            .distribute(id, rate(100), &DistributeOptions::default(), now())
            .await
            .unwrap_err();
        assert!(
            matches!(e, softstake_store::StoreError::FutureReward { .. }),
            "{e}"
        );
        assert!(store.distribution_for_reward(id).await.unwrap().is_none());
        // Balance updates at the present are still accepted.
        store
            .ingest_balance_updates(&[upd("p1", "carol", 5, T0 + 9_000)], now())
            .await
            .unwrap();
    })
    .await;
}

/// Two users holding 100 each over the whole period of a reward of `wei`.
async fn equal_holders(store: &Store, users: [&str; 2], key: &str, wei: u128) -> i64 {
    store
        .ingest_balance_updates(
            &[
                upd(&format!("{key}-0"), users[0], 100, T0 - 50),
                upd(&format!("{key}-1"), users[1], 100, T0 - 50),
            ],
            now(),
        )
        .await
        .unwrap();
    store
        .record_reward(&reward(key, T0, T0 + 100, wei), now())
        .await
        .unwrap()
        .id
}

#[tokio::test]
async fn zero_amount_credit_rows_are_neither_published_nor_counted_as_unacked() {
    on_both(|store| async move {
        // 1 wei for two equal holders: half a unit each, carried, 0 credited.
        let id = equal_holders(&store, ["alice", "bob"], "tiny", 1).await;
        let s = summary(distribute(&store, id, rate(0)).await);
        assert_eq!(s.credited.base(), 0);
        assert!(outbox_amounts(&store, 10).await.is_empty());
        assert_eq!(store.status().await.unwrap().credits_unacked, 0);
    })
    .await;
}

#[tokio::test]
async fn statements_show_the_remainder_carried_to_the_next_credit() {
    on_both(|store| async move {
        // 3 wei for two equal holders: 1 each, half a wei carried each.
        let id = equal_holders(&store, ["carl", "cora"], "three", 3).await;
        let d = summary(distribute(&store, id, rate(0)).await);
        let lines = store
            .statement(
                "carl",
                Timestamp::from_unix(T0),
                Timestamp::from_unix(T0 + 1_000),
            )
            .await
            .unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].amount, Amount::from_base(1));
        assert_eq!(lines[0].carried_base_units, "0.5");
        assert_eq!(lines[0].distribution_id, d.id);
        let csv = softstake_store::statement_csv(&lines);
        assert!(
            csv.lines().next().unwrap().ends_with(
                ",distribution_id,carried_base_units,loss_netted_base_units,paid_base_units"
            ),
            "{csv}"
        );
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .ends_with(&format!(",{},0.5,0,1", d.id)),
            "{csv}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_wrong_reward_is_voided_before_distribution_and_never_distributed() {
    on_both(|store| async move {
        let id = two_users(&store).await;
        let e = store.void_reward(id, " ", now()).await.unwrap_err();
        assert!(e.to_string().contains("say why"), "{e}");
        let r = store
            .void_reward(id, "typo: 1000 instead of 100", now())
            .await
            .unwrap();
        assert!(r.voided_at.is_some());
        // Voiding again is a no-op; it is no longer pending; distribute refuses it.
        store.void_reward(id, "again", now()).await.unwrap();
        assert!(
            store
                .undistributed_rewards(Some(ChainId::Ethereum))
                .await
                .unwrap()
                .is_empty()
        );
        let e = store
            .distribute(id, rate(100), &DistributeOptions::default(), now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("voided"), "{e}");
        assert!(store.distribution_for_reward(id).await.unwrap().is_none());
        assert_eq!(
            store
                .reward(id)
                .await
                .unwrap()
                .unwrap()
                .void_reason
                .as_deref(),
            Some("typo: 1000 instead of 100")
        );
        // A distributed reward cannot be voided.
        let id2 = store
            .record_reward(&reward("right", T0, T0 + 100, 100), now())
            .await
            .unwrap()
            .id;
        distribute(&store, id2, rate(100)).await;
        let e = store.void_reward(id2, "late", now()).await.unwrap_err();
        assert!(e.to_string().contains("cannot be voided"), "{e}");
    })
    .await;
}
