//! The pool's books on SQLite and PostgreSQL: holdings snapshots, flows
//! booked once, declarations (before and after the transfer lands),
//! suspense, incidents, the residual carried until it persists and then
//! recognised as income (once), the sanity bound and its confirmation,
//! and backing against what is owed.
#![allow(clippy::unwrap_used)]

use rust_decimal::Decimal;
use softstake_core::adapter::{FlowKind, Holdings, LossEvent, PoolFlow, RewardKind};
use softstake_core::config::{BooksSettings, FeeBearer, LossBearer};
use softstake_core::{Amount, ChainId, Rate, Timestamp};
use softstake_store::{
    BunkerAction, BunkerCause, Declaration, Direction, Purpose, Resolution, Snapshot,
    SnapshotInput, Store,
};
use softstake_tests::on_both;

const T0: i64 = 1_767_225_600;
const C: ChainId = ChainId::Cosmos;

fn with_fees(fees: FeeBearer) -> BooksSettings {
    BooksSettings {
        fees,
        ..BooksSettings::default()
    }
}

fn policy() -> BooksSettings {
    BooksSettings {
        fees: FeeBearer::Platform,
        // 1% a day: 10,000 on a pool of 1,000,000.
        max_unannounced_per_day: Rate::new(Decimal::new(1, 2)).unwrap(),
        settle_secs: 0,
        ..BooksSettings::default()
    }
}

fn liquid(v: u128) -> Holdings {
    Holdings {
        liquid: Amount::from_base(v),
        ..Holdings::default()
    }
}

fn flow(kind: FlowKind, tx: &str, amount: u128, at: i64) -> PoolFlow {
    PoolFlow {
        key: format!("{}:{tx}", kind.as_str()),
        kind,
        amount: Amount::from_base(amount),
        tx_id: tx.into(),
        counterparty: None,
        at: Timestamp::from_unix(at),
    }
}

async fn book(store: &Store, at: i64, holdings: Holdings, flows: &[PoolFlow]) -> Snapshot {
    book_with(store, at, holdings, flows, true, true).await
}

async fn book_with(
    store: &Store,
    at: i64,
    holdings: Holdings,
    flows: &[PoolFlow],
    complete: bool,
    rewards_current: bool,
) -> Snapshot {
    let input = SnapshotInput {
        chain: C,
        as_of: Timestamp::from_unix(at),
        holdings,
        flows,
        complete,
        flow_cursor: Some(format!("c{at}")),
        losses: &[],
        rewards_current,
        min_balance: Amount::ZERO,
        now: Timestamp::from_unix(at),
    };
    store.book_snapshot(&input, &policy()).await.unwrap()
}

fn declaration(tx: &str, direction: Direction, amount: u128) -> Declaration {
    Declaration {
        chain: C,
        tx_id: tx.into(),
        direction,
        amount: Amount::from_base(amount),
        purpose: Purpose::Principal,
        note: None,
    }
}

async fn reward(store: &Store, key: &str, amount: u128, end: i64) {
    softstake_tests::record_reward(store, C, key, amount, end - 600, end).await;
}

#[tokio::test]
async fn declared_transfers_are_principal_and_undeclared_ones_are_suspense_or_incidents() {
    on_both(|store| async move {
        let t = |n: i64| T0 + n * 60;
        // Opening: whatever is there, and the flows before, is the opening balance.
        let s = book(
            &store,
            t(0),
            liquid(1_000_000),
            &[flow(FlowKind::TransferIn, "old", 5, t(0))],
        )
        .await;
        assert_eq!((s.delta, s.residual, s.booked.opening.base()), (0, 0, 5));
        assert_eq!(
            store.flow_cursor(C).await.unwrap().as_deref(),
            Some("c1767225600")
        );

        // A top-up declared before it lands: principal. A payout declared
        // before it lands: principal. A fee. A stranger's payment: suspense.
        store
            .declare_transfer(
                &declaration("top", Direction::In, 500),
                Timestamp::from_unix(t(1)),
            )
            .await
            .unwrap();
        store
            .declare_transfer(
                &declaration("pay", Direction::Out, 200),
                Timestamp::from_unix(t(1)),
            )
            .await
            .unwrap();
        let flows = [
            flow(FlowKind::TransferIn, "top", 500, t(1)),
            flow(FlowKind::TransferOut, "pay", 200, t(1)),
            flow(FlowKind::Fee, "pay", 3, t(1)),
            flow(FlowKind::TransferIn, "gift", 77, t(1)),
        ];
        let s = book(&store, t(2), liquid(1_000_000 + 500 - 200 - 3 + 77), &flows).await;
        assert_eq!(s.booked.principal_in.base(), 500);
        assert_eq!(s.booked.principal_out.base(), 200);
        assert_eq!(s.booked.fees.base(), 3);
        assert_eq!(s.booked.suspense.base(), 77);
        assert_eq!((s.delta, s.residual, s.unrecognized), (374, 0, 0));

        // Reported again (a replayed cursor): booked once.
        let s = book(&store, t(3), liquid(1_000_374), &flows).await;
        assert_eq!(s.booked, softstake_store::Booked::default());
        assert_eq!(s.residual, 0);

        // A theft: an incident, which the engine reads to hold signing.
        let s = book(
            &store,
            t(4),
            liquid(1_000_274),
            &[flow(FlowKind::TransferOut, "thief", 100, t(4))],
        )
        .await;
        assert_eq!((s.booked.incident.base(), s.residual), (100, 0));
        assert_eq!(store.open_incidents(C).await.unwrap(), 1);
        let open = store.flows(C, true, None, 10).await.unwrap();
        assert_eq!(open.len(), 2, "{open:?}");
        let theft = open.iter().find(|f| f.class == "incident").unwrap().id;
        let gift = open.iter().find(|f| f.class == "suspense").unwrap().id;

        // Books say what is open and what is owed.
        let b = store
            .books(
                C,
                &with_fees(FeeBearer::Platform),
                Timestamp::from_unix(t(5)),
            )
            .await
            .unwrap();
        assert_eq!(
            (
                b.suspense_open,
                b.suspense.base(),
                b.incidents_open,
                b.incidents.base()
            ),
            (1, 77, 1, 100)
        );
        assert_eq!(b.owed.suspense.base(), 77);
        assert_eq!(b.owed.fees.base(), 3);
        assert_eq!(b.owed.commission, -3, "the platform bears the fee");
        assert_eq!(b.holdings.base(), 1_000_274);
        let pool = store
            .books(C, &with_fees(FeeBearer::Pool), Timestamp::from_unix(t(5)))
            .await
            .unwrap();
        assert_eq!(pool.owed.commission, 0, "the pool bears the fee");

        // Resolving: a suspense cannot be a loss; an incident can.
        let e = store
            .resolve_flow(C, gift, Resolution::Loss, "no", Timestamp::from_unix(t(5)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot be resolved as loss"), "{e}");
        let e = store
            .resolve_flow(C, theft, Resolution::Loss, " ", Timestamp::from_unix(t(5)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("say why"), "{e}");
        let f = store
            .resolve_flow(
                C,
                theft,
                Resolution::Loss,
                "stolen: see incident report 7",
                Timestamp::from_unix(t(5)),
            )
            .await
            .unwrap();
        assert_eq!(f.resolution.as_deref(), Some("loss"));
        assert_eq!(store.open_incidents(C).await.unwrap(), 0);
        // Again the same way: a no-op; another way: refused.
        store
            .resolve_flow(
                C,
                theft,
                Resolution::Loss,
                "again",
                Timestamp::from_unix(t(5)),
            )
            .await
            .unwrap();
        assert!(
            store
                .resolve_flow(
                    C,
                    theft,
                    Resolution::Principal,
                    "x",
                    Timestamp::from_unix(t(5))
                )
                .await
                .is_err()
        );

        // The stranger's coins classified as income: a reconciled reward
        // for the second they arrived, keyed by the chain's flow (the same
        // reward after any restore), distributed like any other.
        let f = store
            .resolve_flow(
                C,
                gift,
                Resolution::Income,
                "a validator's tip",
                Timestamp::from_unix(t(6)),
            )
            .await
            .unwrap();
        let r = store.reward(f.reward_id.unwrap()).await.unwrap().unwrap();
        assert_eq!(
            (r.reward.kind, r.reward.amount.base()),
            (RewardKind::Reconciled, 77)
        );
        assert_eq!(r.reward.period.start().unix(), t(1) - 1);
        assert_eq!(r.reward.period.end().unix(), t(1));
        assert_eq!(r.reward.key, "reconciled:suspense:transfer_in:gift");
        // Not counted again as a reward flow by the next snapshot.
        let s = book(&store, t(7), liquid(1_000_274), &[]).await;
        assert_eq!((s.booked.rewards.base(), s.residual), (0, 0));
        assert_eq!(store.undistributed_rewards(Some(C)).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_declaration_after_the_transfer_landed_resolves_its_suspense_or_incident() {
    on_both(|store| async move {
        let t = |n: i64| T0 + n * 60;
        book(&store, t(0), liquid(1_000), &[]).await;
        book(
            &store,
            t(1),
            liquid(1_000 + 50 - 20),
            &[
                flow(FlowKind::TransferIn, "late-in", 50, t(1)),
                flow(FlowKind::TransferOut, "late-out", 20, t(1)),
            ],
        )
        .await;
        assert_eq!(store.open_incidents(C).await.unwrap(), 1);
        // A declaration with the wrong amount resolves nothing.
        let d = store
            .declare_transfer(
                &declaration("late-in", Direction::In, 49),
                Timestamp::from_unix(t(2)),
            )
            .await
            .unwrap();
        assert_eq!(d.resolved_flow, None);
        // Same tx id and direction, other content: refused (a 409 over HTTP).
        let e = store
            .declare_transfer(
                &declaration("late-in", Direction::In, 50),
                Timestamp::from_unix(t(2)),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("different content"), "{e}");
        let d = store
            .declare_transfer(
                &declaration("late-out", Direction::Out, 20),
                Timestamp::from_unix(t(2)),
            )
            .await
            .unwrap();
        assert!(d.created && d.resolved_flow.is_some());
        assert_eq!(store.open_incidents(C).await.unwrap(), 0);
        // A replay: same id, nothing new.
        let again = store
            .declare_transfer(
                &declaration("late-out", Direction::Out, 20),
                Timestamp::from_unix(t(3)),
            )
            .await
            .unwrap();
        assert_eq!(
            (again.id, again.created, again.resolved_flow),
            (d.id, false, None)
        );
        let resolved = store.flow(d.resolved_flow.unwrap()).await.unwrap().unwrap();
        assert_eq!(resolved.resolution.as_deref(), Some("principal"));
        // Bad declarations change nothing.
        assert!(
            store
                .declare_transfer(
                    &declaration(" ", Direction::In, 1),
                    Timestamp::from_unix(t(3))
                )
                .await
                .is_err()
        );
        assert!(
            store
                .declare_transfer(
                    &declaration("z", Direction::In, 0),
                    Timestamp::from_unix(t(3))
                )
                .await
                .is_err()
        );
        let b = store
            .books(
                C,
                &with_fees(FeeBearer::Platform),
                Timestamp::from_unix(t(3)),
            )
            .await
            .unwrap();
        assert_eq!((b.suspense_open, b.incidents_open), (1, 0));
    })
    .await;
}

#[tokio::test]
async fn a_residual_that_persists_is_income_once_and_a_timing_difference_is_not() {
    on_both(|store| async move {
        let t = |n: i64| T0 + n * 600;
        book(&store, t(0), liquid(1_000_000), &[]).await;
        // A reward reaches the pool before its event is recorded: a
        // residual, explained by the next snapshot, never income.
        let s = book(&store, t(1), liquid(1_000_100), &[]).await;
        assert_eq!(
            (s.residual, s.unrecognized, s.reconciled_reward_id),
            (100, 100, None)
        );
        reward(&store, "r1", 100, t(1)).await;
        let s = book(&store, t(2), liquid(1_000_100), &[]).await;
        assert_eq!(
            (s.booked.rewards.base(), s.residual, s.unrecognized),
            (100, -100, 0)
        );
        assert_eq!(s.reconciled_reward_id, None);

        // A tip nobody announces: a residual that persists over two
        // snapshots becomes a reconciled reward, once.
        let s = book(&store, t(3), liquid(1_000_130), &[]).await;
        assert_eq!(
            (s.residual, s.unrecognized, s.reconciled_reward_id),
            (30, 30, None)
        );
        // Without a current reward collection nothing is recognised.
        let s = book_with(&store, t(4), liquid(1_000_130), &[], true, false).await;
        assert_eq!((s.unrecognized, s.reconciled_reward_id), (30, None));
        // Nor from adapters that cannot prove every flow.
        let s = book_with(&store, t(5), liquid(1_000_130), &[], false, true).await;
        assert_eq!((s.unrecognized, s.reconciled_reward_id), (30, None));
        let s = book(&store, t(6), liquid(1_000_135), &[]).await;
        let rid = s.reconciled_reward_id.expect("recognised");
        assert_eq!(
            (s.residual, s.reconciled.base(), s.unrecognized),
            (5, 30, 5)
        );
        let r = store.reward(rid).await.unwrap().unwrap();
        assert_eq!(
            (r.reward.kind, r.reward.amount.base()),
            (RewardKind::Reconciled, 30)
        );
        assert_eq!(
            (r.reward.period.start().unix(), r.reward.period.end().unix()),
            (t(5), t(6))
        );
        // Keyed by its interval in chain time, never by a row id (which a
        // restored database hands out again).
        assert_eq!(
            r.reward.key,
            format!("reconciled:snapshot:{}-{}", t(5), t(6))
        );
        // The reconciled reward is not booked again as a reward flow.
        let s = book(&store, t(7), liquid(1_000_135), &[]).await;
        assert_eq!(
            (
                s.booked.rewards.base(),
                s.residual,
                s.reconciled.base(),
                s.unrecognized
            ),
            (0, 0, 5, 0)
        );

        // A spike above the bound (1% of holdings a day) is held until
        // an operator confirms it.
        let e = store
            .confirm_residual(C, "checked", Timestamp::from_unix(t(7)))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("no income awaiting confirmation"),
            "{e}"
        );
        book(&store, t(8), liquid(1_500_135), &[]).await;
        let s = book(&store, t(9), liquid(1_500_135), &[]).await;
        assert_eq!(
            (s.held.base(), s.unrecognized, s.reconciled_reward_id),
            (500_000, 500_000, None)
        );
        let s = book(&store, t(10), liquid(1_500_135), &[]).await;
        assert_eq!(
            (s.held.base(), s.reconciled_reward_id),
            (500_000, None),
            "still held"
        );
        let (snap, amount) = store
            .confirm_residual(
                C,
                "a builder paid MEV: tx 0xabc",
                Timestamp::from_unix(t(10)),
            )
            .await
            .unwrap();
        assert_eq!((snap, amount.base()), (s.id, 500_000));
        let s = book(&store, t(11), liquid(1_500_135), &[]).await;
        assert_eq!(
            (s.held.base(), s.reconciled.base(), s.unrecognized),
            (0, 500_000, 0)
        );

        // Every residual booked exactly once: the sum of residuals is what
        // became income plus what is still carried.
        let mut snaps = store.snapshots(C, None, 100).await.unwrap();
        snaps.reverse();
        let residuals: i128 = snaps.iter().map(|s| s.residual).sum();
        let recognised: i128 = snaps
            .iter()
            .map(|s| i128::try_from(s.reconciled.base()).unwrap())
            .sum();
        assert_eq!(residuals, recognised + snaps.last().unwrap().unrecognized);
        assert_eq!(recognised, 500_035);
    })
    .await;
}

#[tokio::test]
async fn bad_flows_are_refused_and_change_nothing() {
    on_both(|store| async move {
        book(&store, T0, liquid(10), &[]).await;
        let input = SnapshotInput {
            chain: C,
            as_of: Timestamp::from_unix(T0 + 60),
            holdings: liquid(10),
            flows: &[flow(FlowKind::TransferIn, "zero", 0, T0)],
            complete: true,
            flow_cursor: Some("next".into()),
            losses: &[],
            min_balance: Amount::ZERO,
            rewards_current: true,
            now: Timestamp::from_unix(T0 + 60),
        };
        let e = store.book_snapshot(&input, &policy()).await.unwrap_err();
        assert!(e.to_string().contains("amount above 0"), "{e}");
        assert_eq!(store.snapshots(C, None, 10).await.unwrap().len(), 1);
        assert_eq!(
            store.flow_cursor(C).await.unwrap().as_deref(),
            Some("c1767225600")
        );
    })
    .await;
}

#[tokio::test]
async fn a_persistent_fall_is_a_loss_the_platform_bears_until_it_pays_in() {
    on_both(|store| async move {
        let t = |n: i64| T0 + n * 600;
        let books = |bearer: LossBearer, at: i64| {
            let store = store.clone();
            async move {
                let p = BooksSettings {
                    losses: bearer,
                    ..BooksSettings::default()
                };
                store.books(C, &p, Timestamp::from_unix(at)).await.unwrap()
            }
        };
        book(&store, t(0), liquid(1_000_000), &[]).await;
        // A fall seen once is not yet a loss (it may be a timing
        // difference); nor is one the adapter cannot fully explain.
        let s = book(&store, t(1), liquid(999_900), &[]).await;
        assert_eq!((s.residual, s.unrecognized), (-100, -100));
        assert!(s.booked.loss_recognized.is_zero());
        let s = book_with(&store, t(2), liquid(999_900), &[], false, true).await;
        assert!(s.booked.loss_recognized.is_zero());
        // It persisted, with every flow proven: a loss, once.
        let s = book(&store, t(3), liquid(999_900), &[]).await;
        assert_eq!((s.booked.loss_recognized.base(), s.unrecognized), (100, 0));
        let s = book(&store, t(4), liquid(999_900), &[]).await;
        assert!(s.booked.loss_recognized.is_zero(), "recognised once");
        assert_eq!(s.booked.losses_to_date.base(), 100);
        // The platform bears it: its account goes below zero, a shortfall
        // it owes the pool; under the pool rule the backing carries it.
        let b = books(LossBearer::Platform, t(4)).await;
        assert_eq!(
            (b.owed.losses.base(), b.owed.loss_bearer),
            (100, "platform")
        );
        assert_eq!((b.owed.commission, b.owed.shortfall.base()), (-100, 100));
        let b = books(LossBearer::Pool, t(4)).await;
        assert_eq!((b.owed.commission, b.owed.shortfall.base()), (0, 0));
        assert_eq!(b.owed.losses.base(), 100);
        // The platform pays in, declared as its own money: no shortfall.
        store
            .declare_transfer(
                &Declaration {
                    purpose: Purpose::Commission,
                    ..declaration("cover", Direction::In, 100)
                },
                Timestamp::from_unix(t(5)),
            )
            .await
            .unwrap();
        book(
            &store,
            t(5),
            liquid(1_000_000),
            &[flow(FlowKind::TransferIn, "cover", 100, t(5))],
        )
        .await;
        let b = books(LossBearer::Platform, t(5)).await;
        assert_eq!((b.owed.commission, b.owed.shortfall.base()), (0, 0));

        // A dip that comes back is no loss.
        let s = book(&store, t(6), liquid(999_950), &[]).await;
        assert_eq!(s.residual, -50);
        let s = book(&store, t(7), liquid(1_000_000), &[]).await;
        assert_eq!((s.unrecognized, s.booked.loss_recognized.base()), (0, 0));
        assert_eq!(s.reconciled_reward_id, None);

        // A loss recognised, then the coins come back (a late reward, a
        // refunded penalty): the rise reverses the recognised losses (both:
        // the platform bore them) before anything is income.
        book(&store, t(8), liquid(999_000), &[]).await;
        let s = book(&store, t(9), liquid(999_000), &[]).await;
        assert_eq!(s.booked.loss_recognized.base(), 1_000);
        assert_eq!(s.booked.losses_to_date.base(), 1_100);
        book(&store, t(10), liquid(1_000_300), &[]).await;
        let s = book(&store, t(11), liquid(1_000_300), &[]).await;
        assert_eq!(s.booked.loss_recovered.base(), 1_100);
        assert_eq!(s.reconciled.base(), 200, "only the rest is income");
        assert_eq!(
            (
                s.booked.losses_to_date.base(),
                s.booked.recoverable_to_date.base(),
                s.unrecognized
            ),
            (0, 0, 0)
        );
        // The platform is made whole: its pay-in is its own money again.
        let b = books(LossBearer::Platform, t(11)).await;
        assert_eq!(b.owed.losses.base(), 0);
        assert_eq!((b.owed.commission, b.owed.shortfall.base()), (100, 0));
    })
    .await;
}

async fn book_losses(store: &Store, at: i64, holdings: Holdings, losses: &[LossEvent]) -> Snapshot {
    let input = SnapshotInput {
        chain: C,
        as_of: Timestamp::from_unix(at),
        holdings,
        flows: &[],
        complete: true,
        flow_cursor: Some(format!("c{at}")),
        losses,
        rewards_current: true,
        min_balance: Amount::ZERO,
        now: Timestamp::from_unix(at),
    };
    store.book_snapshot(&input, &policy()).await.unwrap()
}

#[tokio::test]
async fn bunker_mode_holds_while_a_fall_is_unexplained_and_ends_when_it_is_booked() {
    on_both(|store| async move {
        let t = |n: i64| T0 + n * 600;
        let now = Timestamp::from_unix(t(0));
        assert!(!store.bunker(C).await.unwrap().active, "no books yet");
        book(&store, t(0), liquid(1_000_000), &[]).await;
        assert!(!store.bunker(C).await.unwrap().active);
        // A fall the books cannot explain: bunker mode, naming where it
        // began and how far below.
        let s1 = book(&store, t(1), liquid(999_900), &[]).await;
        let b = store.bunker(C).await.unwrap();
        assert!(b.active);
        assert_eq!(
            b.cause,
            Some(BunkerCause::UnexplainedFall {
                since_snapshot: s1.id,
                since: Timestamp::from_unix(t(1)),
                shortfall: Amount::from_base(100),
            })
        );
        assert!(
            b.describe().contains("100 base units below"),
            "{}",
            b.describe()
        );
        // The books show it, with the same state.
        let books = store.books(C, &policy(), now).await.unwrap();
        assert_eq!(books.bunker, b);
        // It persisted: booked as a loss, and bunker mode ends by itself.
        let s = book(&store, t(2), liquid(999_900), &[]).await;
        assert_eq!(s.booked.loss_recognized.base(), 100);
        assert_eq!(store.bunker(C).await.unwrap().cause, None);

        // An operator ends it for a fall (e.g. a known timing difference):
        // not while the same fall lasts, but a new fall enters again.
        book(&store, t(3), liquid(999_800), &[]).await;
        assert!(store.bunker(C).await.unwrap().active);
        let b = store
            .bunker_action(
                C,
                BunkerAction::Exit,
                "known: fee paid from another wallet",
                now,
            )
            .await
            .unwrap();
        assert!(!b.active);
        assert!(b.overridden.unwrap().contains("100 base units"));
        // Without complete flows the books act on nothing: no bunker.
        let s = book_with(&store, t(4), liquid(999_700), &[], false, true).await;
        assert_eq!(s.unrecognized, -200);
        assert!(!store.bunker(C).await.unwrap().active);
        // Back to what the books explain (the loss of 100 booked before):
        // no fall, nothing overridden.
        let s = book(&store, t(5), liquid(999_900), &[]).await;
        assert_eq!(s.unrecognized, 0);
        let b = store.bunker(C).await.unwrap();
        assert_eq!((b.active, b.overridden), (false, None));
        book(&store, t(6), liquid(999_890), &[]).await;
        assert!(
            store.bunker(C).await.unwrap().active,
            "a new fall enters again"
        );
        book(&store, t(7), liquid(999_900), &[]).await;
        assert!(
            !store.bunker(C).await.unwrap().active,
            "a dip that came back"
        );

        // An operator holds the chain (a slashing the adapter cannot see)
        // until they exit, whatever the books show.
        let e = store
            .bunker_action(C, BunkerAction::Exit, "nothing to end", now)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not in bunker mode"), "{e}");
        let b = store
            .bunker_action(
                C,
                BunkerAction::Enter,
                "validator announced a double sign",
                now,
            )
            .await
            .unwrap();
        assert!(matches!(b.cause, Some(BunkerCause::Operator { .. })));
        book(&store, t(8), liquid(999_900), &[]).await;
        assert!(store.bunker(C).await.unwrap().active);
        let e = store
            .bunker_action(C, BunkerAction::Enter, "again", now)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already held"), "{e}");
        let e = store
            .bunker_action(C, BunkerAction::Exit, "  ", now)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("note is required"), "{e}");
        assert!(
            store.bunker(C).await.unwrap().active,
            "a refused action changes nothing"
        );
        store
            .bunker_action(C, BunkerAction::Exit, "checked: no slashing of ours", now)
            .await
            .unwrap();
        assert!(!store.bunker(C).await.unwrap().active);
    })
    .await;
}

#[tokio::test]
async fn a_reported_loss_marks_its_validator_once_until_an_operator_clears_it() {
    on_both(|store| async move {
        let t = |n: i64| T0 + n * 600;
        let slash = |v: &str, amount: u128| LossEvent {
            validator: v.into(),
            amount: Amount::from_base(amount),
            reason: "validator slashed".into(),
        };
        let staked = |v: u128| Holdings {
            staked: Amount::from_base(v),
            ..Holdings::default()
        };
        book(&store, t(0), staked(1_000_000), &[]).await;
        let s = book_losses(&store, t(1), staked(990_000), &[slash("valA", 10_000)]).await;
        // Booked as a loss (no residual, so no bunker), and marked.
        assert_eq!((s.booked.losses.base(), s.residual), (10_000, 0));
        assert!(!store.bunker(C).await.unwrap().active);
        let marks = store.validator_marks(C, true).await.unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(
            (
                marks[0].validator.as_str(),
                marks[0].amount.base(),
                marks[0].snapshot_id
            ),
            ("valA", 10_000, s.id)
        );
        // A second loss on the same validator keeps the one open mark.
        book_losses(
            &store,
            t(2),
            staked(989_000),
            &[slash("valA", 1_000), slash("valB", 0)],
        )
        .await;
        let marks = store.validator_marks(C, true).await.unwrap();
        assert_eq!(
            marks
                .iter()
                .map(|m| m.validator.as_str())
                .collect::<Vec<_>>(),
            ["valB", "valA"]
        );
        let books = store
            .books(C, &policy(), Timestamp::from_unix(t(2)))
            .await
            .unwrap();
        assert_eq!(books.marked_validators.len(), 2);
        assert_eq!(books.owed.losses.base(), 11_000);

        // Cleared after checking; clearing twice, or without a note, is refused.
        let e = store
            .clear_validator_mark(C, "valA", "", Timestamp::from_unix(t(3)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("note is required"), "{e}");
        let m = store
            .clear_validator_mark(
                C,
                "valA",
                "slashing was a one-off; operator rotated keys",
                Timestamp::from_unix(t(3)),
            )
            .await
            .unwrap();
        assert_eq!(m.cleared_at, Some(Timestamp::from_unix(t(3))));
        let e = store
            .clear_validator_mark(C, "valA", "again", Timestamp::from_unix(t(3)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no open mark"), "{e}");
        assert_eq!(store.validator_marks(C, true).await.unwrap().len(), 1);
        assert_eq!(store.validator_marks(C, false).await.unwrap().len(), 2);
        // A later loss marks it again.
        book_losses(&store, t(4), staked(988_000), &[slash("valA", 1_000)]).await;
        assert_eq!(store.validator_marks(C, true).await.unwrap().len(), 2);
        assert_eq!(store.validator_marks(C, false).await.unwrap().len(), 3);
    })
    .await;
}
