//! Fencing on PostgreSQL: the chain loops' writes prove, in their own
//! transaction, that this daemon still leads (its term is current and its
//! lock session still holds the advisory lock), so a deposed leader's
//! writes fail, whether or not it has noticed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use softstake_core::adapter::OperationKind;
use softstake_core::{Amount, ChainId, Timestamp};
use softstake_store::{FenceSlot, NewOp, StoreError, claim_leadership};
use softstake_tests::TestStore;
use sqlx::Connection;

fn op(id: &str) -> NewOp {
    NewOp {
        id: id.into(),
        chain: ChainId::Cosmos,
        kind: OperationKind::Delegate {
            validator: "cosmosvaloper1x".into(),
            amount: Amount::from_base(10),
        },
        reason: "test".into(),
        needs_approval: false,
    }
}

fn now() -> Timestamp {
    Timestamp::from_unix(1_790_000_000)
}

fn fenced(e: StoreError) -> String {
    match e {
        StoreError::Fenced(m) => m,
        other => panic!("expected a fenced write, got {other}"),
    }
}

#[tokio::test]
async fn a_deposed_leaders_writes_fail_before_and_after_a_new_term() {
    let ts = TestStore::postgres().await;
    // Daemon A takes the lock in its own session and starts term 1.
    let mut lock_a = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    let fa = claim_leadership(&mut lock_a, "a", now())
        .await
        .unwrap()
        .unwrap();
    let slot_a = FenceSlot::new();
    slot_a.set(Some(fa));
    let store_a = ts.store.with_fence(slot_a.clone());
    assert!(store_a.journal_insert(&op("a1"), now()).await.unwrap());

    // Daemon B cannot lead while A's session holds the lock.
    let mut lock_b = sqlx::PgConnection::connect(&ts.url).await.unwrap();
    assert!(
        claim_leadership(&mut lock_b, "b", now())
            .await
            .unwrap()
            .is_none()
    );

    // The server ends A's lock session; A is not told (a failover behind a
    // virtual IP, a one-way partition). A's next write is refused at once,
    // before anyone else has led.
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(fa.lock_pid)
        .fetch_one(&mut lock_b)
        .await
        .unwrap();
    assert!(killed);
    // The backend exits asynchronously; the lock is free once it is gone
    // (and only then could anyone else take it).
    for _ in 0..200 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(fa.lock_pid)
                .fetch_one(&mut lock_b)
                .await
                .unwrap();
        if !alive {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let m = fenced(store_a.journal_insert(&op("a2"), now()).await.unwrap_err());
    assert!(m.contains("no longer holds the lock"), "{m}");
    assert!(
        ts.store.journal_get("a2").await.unwrap().is_none(),
        "nothing written"
    );

    // B takes over with term 2; its writes pass, A's fail on the term too.
    let fb = claim_leadership(&mut lock_b, "b", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fb.term, fa.term + 1);
    let store_b = ts.store.with_fence(FenceSlot::new());
    let m = fenced(store_b.journal_insert(&op("b0"), now()).await.unwrap_err());
    assert!(
        m.contains("not the leader"),
        "an empty slot writes nothing: {m}"
    );
    let slot_b = FenceSlot::new();
    slot_b.set(Some(fb));
    let store_b = ts.store.with_fence(slot_b);
    assert!(store_b.journal_insert(&op("b1"), now()).await.unwrap());
    let m = fenced(
        store_a
            .set_reward_cursor(ChainId::Cosmos, Some("x"), now())
            .await
            .unwrap_err(),
    );
    assert!(m.contains("term"), "{m}");
    // Every kind of chain-acting write is fenced: transitions too.
    fenced(store_a.journal_broadcast("b1", now()).await.unwrap_err());
    store_b
        .journal_signed("b1", &[1], "T1", None, now())
        .await
        .unwrap();
    fenced(
        store_a
            .journal_replace("b1", "T1", &[2], "T2", None, "refused for its fee", now())
            .await
            .unwrap_err(),
    );
    let b1 = ts.store.journal_get("b1").await.unwrap().unwrap();
    assert_eq!(
        b1.tx_id.as_deref(),
        Some("T1"),
        "a deposed leader replaces nothing"
    );
    assert!(ts.store.journal_attempts("b1").await.unwrap().is_empty());
    // Unfenced stores (the API's, for the exchange's writes) are unaffected.
    assert!(ts.store.journal_insert(&op("api"), now()).await.unwrap());
}

#[tokio::test]
async fn a_sqlite_store_is_never_fenced() {
    // One daemon per SQLite file (a file lock): a slot changes nothing.
    let ts = TestStore::sqlite().await;
    let store = ts.store.with_fence(FenceSlot::new());
    assert!(store.journal_insert(&op("s1"), now()).await.unwrap());
}
