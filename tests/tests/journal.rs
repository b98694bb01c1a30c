//! Operation journal tests: every one runs on SQLite and on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use softstake_core::adapter::OperationKind;
use softstake_core::{Amount, ChainId, Timestamp};
use softstake_store::{NewOp, OpState, Store};
use softstake_tests::on_both;

fn delegate(id: &str, amount: u128, approval: bool) -> NewOp {
    NewOp {
        id: id.into(),
        chain: ChainId::Cosmos,
        kind: OperationKind::Delegate {
            validator: "cosmosvaloper1x".into(),
            amount: Amount::from_base(amount),
        },
        reason: "liquid above the band".into(),
        needs_approval: approval,
    }
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix(1_790_000_000 + s)
}

async fn state(store: &Store, id: &str) -> OpState {
    store.journal_get(id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn an_operation_is_journaled_once_by_its_key() {
    on_both(|store| async move {
        assert!(
            store
                .journal_insert(&delegate("p1", 10, false), t(0))
                .await
                .unwrap()
        );
        assert!(
            !store
                .journal_insert(&delegate("p1", 10, false), t(1))
                .await
                .unwrap()
        );
        let err = store
            .journal_insert(&delegate("p1", 11, false), t(2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("different content"), "{err}");
        assert_eq!(store.journal_open(ChainId::Cosmos).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn signed_bytes_are_written_once_and_the_life_cycle_is_enforced() {
    on_both(|store| async move {
        store
            .journal_insert(&delegate("op", 10, false), t(0))
            .await
            .unwrap();
        // Cannot broadcast or confirm what is not signed.
        assert!(store.journal_broadcast("op", t(1)).await.is_err());
        assert!(
            store
                .journal_finish("op", OpState::Confirmed, None, t(1))
                .await
                .is_err()
        );
        store
            .journal_signed("op", &[1, 2, 3], "TX1", Some(t(100)), t(2))
            .await
            .unwrap();
        // A second signature (new nonce) is refused; the first bytes stay.
        let err = store
            .journal_signed("op", &[9, 9], "TX2", None, t(3))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is signed"), "{err}");
        let op = store.journal_get("op").await.unwrap().unwrap();
        assert_eq!(
            (op.signed_bytes.as_deref(), op.tx_id.as_deref()),
            (Some(&[1u8, 2, 3][..]), Some("TX1"))
        );
        assert_eq!(op.valid_until, Some(t(100)));
        store.journal_broadcast("op", t(4)).await.unwrap();
        store
            .journal_finish("op", OpState::Confirmed, None, t(5))
            .await
            .unwrap();
        assert_eq!(state(&store, "op").await, OpState::Confirmed);
        // Final is final.
        assert!(
            store
                .journal_finish("op", OpState::Failed, Some("x"), t(6))
                .await
                .is_err()
        );
        assert!(
            store
                .journal_open(ChainId::Cosmos)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .journal_finish("missing", OpState::Failed, None, t(6))
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
async fn large_operations_wait_for_approval() {
    on_both(|store| async move {
        store
            .journal_insert(&delegate("big", 1_000, true), t(0))
            .await
            .unwrap();
        assert_eq!(state(&store, "big").await, OpState::AwaitingApproval);
        assert!(
            store
                .journal_signed("big", &[1], "TX", None, t(1))
                .await
                .is_err()
        );
        store.journal_approve("big", t(2)).await.unwrap();
        assert_eq!(state(&store, "big").await, OpState::Planned);
        assert!(store.journal_approve("big", t(3)).await.is_err());
        store
            .journal_signed("big", &[1], "TX", None, t(4))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_daily_cap_counts_signed_and_later_but_not_failed() {
    on_both(|store| async move {
        for (id, amount) in [("a", 10), ("b", 20), ("c", 40), ("d", 80)] {
            store
                .journal_insert(&delegate(id, amount, false), t(0))
                .await
                .unwrap();
        }
        store
            .journal_signed("a", &[1], "TA", None, t(1))
            .await
            .unwrap();
        store
            .journal_signed("b", &[2], "TB", None, t(1))
            .await
            .unwrap();
        store.journal_broadcast("b", t(2)).await.unwrap();
        store
            .journal_signed("c", &[3], "TC", None, t(1))
            .await
            .unwrap();
        store
            .journal_finish("c", OpState::Failed, Some("rejected"), t(2))
            .await
            .unwrap();
        // d stays planned: nothing signed yet.
        let moved = store
            .journal_moved_since(ChainId::Cosmos, t(0))
            .await
            .unwrap();
        assert_eq!(moved, Amount::from_base(30));
        assert_eq!(
            store
                .journal_get("c")
                .await
                .unwrap()
                .unwrap()
                .error
                .as_deref(),
            Some("rejected")
        );
        let open: Vec<String> = store
            .journal_open(ChainId::Cosmos)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(open, ["a", "b", "d"]);
    })
    .await;
}

#[tokio::test]
async fn chains_pause_and_resume() {
    on_both(|store| async move {
        assert!(!store.is_paused(ChainId::Solana).await.unwrap());
        store.set_paused(ChainId::Solana, true).await.unwrap();
        store.set_paused(ChainId::Solana, true).await.unwrap();
        assert!(store.is_paused(ChainId::Solana).await.unwrap());
        assert!(!store.is_paused(ChainId::Cosmos).await.unwrap());
        store.set_paused(ChainId::Solana, false).await.unwrap();
        assert!(!store.is_paused(ChainId::Solana).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn an_operation_found_on_chain_is_journaled_as_the_chain_shows_it_once() {
    on_both(|store| async move {
        use softstake_core::adapter::TxStatus;
        let kind = delegate("x", 10, false).kind;
        let confirmed = TxStatus::Confirmed { height: 7 };
        // Adopted with its tx id, confirmed, no bytes; again: a no-op.
        assert!(
            store
                .journal_adopt(ChainId::Cosmos, "TX1", &kind, &confirmed, t(0))
                .await
                .unwrap()
        );
        assert!(
            !store
                .journal_adopt(ChainId::Cosmos, "TX1", &kind, &confirmed, t(1))
                .await
                .unwrap()
        );
        let op = store
            .journal_get("found:cosmos:TX1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (op.state, op.tx_id.as_deref(), op.signed_bytes.is_none()),
            (OpState::Confirmed, Some("TX1"), true)
        );
        assert!(op.reason.starts_with("found on chain"), "{}", op.reason);
        // Pending: broadcast (the reconciler follows it); a transaction the
        // chain does not hold, or one the journal signed, is refused.
        store
            .journal_adopt(ChainId::Cosmos, "TX2", &kind, &TxStatus::Pending, t(2))
            .await
            .unwrap();
        assert_eq!(state(&store, "found:cosmos:TX2").await, OpState::Broadcast);
        let e = store
            .journal_adopt(ChainId::Cosmos, "TX3", &kind, &TxStatus::NotFound, t(2))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not on chain"), "{e}");
        store
            .journal_insert(&delegate("mine", 10, false), t(3))
            .await
            .unwrap();
        store
            .journal_signed("mine", b"bytes", "TX4", None, t(3))
            .await
            .unwrap();
        let e = store
            .journal_adopt(ChainId::Cosmos, "TX4", &kind, &confirmed, t(4))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("journaled already"), "{e}");

        // A planned operation the chain shows as sent (its memo names it):
        // it takes the chain's tx id and state, and no bytes.
        store
            .journal_insert(&delegate("planned", 10, false), t(5))
            .await
            .unwrap();
        assert!(
            store
                .journal_found("planned", "TX5", &confirmed, t(6))
                .await
                .unwrap()
        );
        let op = store.journal_get("planned").await.unwrap().unwrap();
        assert_eq!(
            (op.state, op.tx_id.as_deref(), op.signed_bytes.is_none()),
            (OpState::Confirmed, Some("TX5"), true)
        );
        // Final now: nothing changes it again.
        assert!(
            !store
                .journal_found("planned", "TX6", &confirmed, t(7))
                .await
                .unwrap()
        );
    })
    .await;
}

/// A version refused for its fee is replaced under compare-and-set on the
/// journaled tx id, kept with its bytes, and recognised as the operation's
/// (its fee is not unknown activity, it cannot be adopted as a stranger);
/// when the chain included it instead, it becomes the operation's again.
#[tokio::test]
async fn a_replaced_version_is_kept_and_recognised_and_may_be_the_one_that_lands() {
    use softstake_core::adapter::{FlowKind, PoolFlow, TxStatus};
    on_both(|store| async move {
        store
            .journal_insert(&delegate("op", 10, false), t(0))
            .await
            .unwrap();
        store
            .journal_signed("op", &[1, 1], "T1", None, t(1))
            .await
            .unwrap();
        store.journal_broadcast("op", t(2)).await.unwrap();
        // Against another version than the journal's: nothing changes.
        assert!(
            !store
                .journal_replace("op", "T0", &[2, 2], "T2", None, "fee", t(3))
                .await
                .unwrap()
        );
        let err = store
            .journal_replace("op", "T1", &[2, 2], "T1", None, "fee", t(3))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("another transaction"), "{err}");
        assert!(
            store
                .journal_replace("op", "T1", &[2, 2], "T2", None, "refused for its fee", t(3))
                .await
                .unwrap()
        );
        let op = store.journal_get("op").await.unwrap().unwrap();
        assert_eq!(
            (op.state, op.tx_id.as_deref(), op.signed_bytes.as_deref()),
            (OpState::Signed, Some("T2"), Some(&[2u8, 2][..]))
        );
        let a = store.journal_attempts("op").await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (
                a[0].tx_id.as_str(),
                a[0].signed_bytes.as_slice(),
                a[0].replaced_at
            ),
            ("T1", &[1u8, 1][..], t(3))
        );
        // Replaced twice from the same version: the second finds it gone.
        assert!(
            !store
                .journal_replace("op", "T1", &[3], "T3", None, "fee", t(4))
                .await
                .unwrap()
        );
        // Either version's fee is the operation's.
        let fee = |tx: &str| PoolFlow {
            key: format!("fee:{tx}"),
            kind: FlowKind::Fee,
            amount: Amount::from_base(5),
            tx_id: tx.into(),
            counterparty: None,
            at: t(5),
        };
        let unknown = store
            .unknown_activity(ChainId::Cosmos, &[fee("T1"), fee("T2"), fee("T9")])
            .await
            .unwrap();
        assert_eq!(
            unknown.iter().map(|f| f.tx_id.as_str()).collect::<Vec<_>>(),
            ["T9"]
        );
        let err = store
            .journal_adopt(
                ChainId::Cosmos,
                "T1",
                &OperationKind::ClaimRewards { validators: vec![] },
                &TxStatus::Confirmed { height: 9 },
                t(6),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("journaled already"), "{err}");
        // The chain included the earlier version.
        let err = store
            .journal_landed("op", "T9", &TxStatus::Confirmed { height: 9 }, t(7))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not an earlier version"), "{err}");
        assert!(
            store
                .journal_landed("op", "T1", &TxStatus::Confirmed { height: 9 }, t(7))
                .await
                .unwrap()
        );
        let op = store.journal_get("op").await.unwrap().unwrap();
        assert_eq!(
            (op.state, op.tx_id.as_deref(), op.signed_bytes.as_deref()),
            (OpState::Confirmed, Some("T1"), Some(&[1u8, 1][..]))
        );
        let a = store.journal_attempts("op").await.unwrap();
        assert_eq!(
            a.iter().map(|x| x.tx_id.as_str()).collect::<Vec<_>>(),
            ["T2"]
        );
        assert!(
            a[0].reason.contains("earlier version T1"),
            "{}",
            a[0].reason
        );
        // Final: neither is replaced nor lands again.
        assert!(
            !store
                .journal_replace("op", "T1", &[4], "T4", None, "fee", t(8))
                .await
                .unwrap()
        );
        assert!(
            !store
                .journal_landed("op", "T2", &TxStatus::Confirmed { height: 9 }, t(8))
                .await
                .unwrap()
        );
    })
    .await;
}
