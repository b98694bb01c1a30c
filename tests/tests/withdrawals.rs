//! Withdrawal liquidity tests: every one runs on SQLite and on a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use softstake_core::adapter::UnbondingEntry;
use softstake_core::{Amount, ChainId, Timestamp};
use softstake_store::{Liquidity, Store, WithdrawalRequest};
use softstake_tests::{clear_tables, eth_update, on_both};

const T0: i64 = 1_790_000_000;
const DAY: i64 = 86_400;

fn req(id: &str, user: &str, amount: u128) -> WithdrawalRequest {
    WithdrawalRequest {
        request_id: id.into(),
        user_id: user.into(),
        chain: ChainId::Ethereum,
        amount: Amount::from_base(amount),
        requested_at: None,
    }
}

fn liq(liquid: u128, unbonding: &[(u128, i64)]) -> Liquidity {
    Liquidity {
        liquid: Amount::from_base(liquid),
        unbonding: unbonding
            .iter()
            .map(|(a, at)| UnbondingEntry {
                validator: "v".into(),
                amount: Amount::from_base(*a),
                completes_at: Timestamp::from_unix(*at),
            })
            .collect(),
        unbonding_delay_secs: 27 * 86_400,
        cycle_secs: 600,
        advance_limit: Amount::ZERO,
    }
}

fn now() -> Timestamp {
    Timestamp::from_unix(T0)
}

async fn users(store: &Store) {
    store
        .ingest_balance_updates(
            &[
                eth_update("a", "alice", 1_000, T0 - 10),
                eth_update("b", "bob", 1_000, T0 - 10),
            ],
            now(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_buffer_grants_at_once_and_the_rest_queues_fifo_with_an_eta() {
    on_both(|store| async move {
        users(&store).await;
        let l = liq(100, &[(50, T0 + 3 * DAY)]);
        let d = store
            .request_withdrawal(&req("r1", "alice", 80), &l, now())
            .await
            .unwrap();
        assert_eq!((d.status.as_str(), d.eta), ("granted", None));
        // 20 left unreserved: 60 must wait for the unbonding entry in 3 days.
        let d = store
            .request_withdrawal(&req("r2", "bob", 60), &l, now())
            .await
            .unwrap();
        assert_eq!(d.status, "queued");
        // The entry's completion plus two 10-minute cycles (withdraw, grant).
        assert_eq!(d.eta, Some(Timestamp::from_unix(T0 + 3 * DAY + 1_200)));
        // A small one that would fit does not jump the queue; in flight is
        // used up, so it waits for a fresh unbonding.
        let d = store
            .request_withdrawal(&req("r3", "alice", 15), &l, now())
            .await
            .unwrap();
        assert_eq!(d.status, "queued");
        // One cycle to send the unstake, the delay, two cycles.
        assert_eq!(d.eta, Some(Timestamp::from_unix(T0 + 27 * DAY + 1_800)));
        assert_eq!(
            store.queued_withdrawals(ChainId::Ethereum).await.unwrap(),
            Amount::from_base(75)
        );
        // Liquidity arrives: promotion is FIFO and stops at the first that
        // does not fit (80 reserved of 150: 70 free, r2 60 fits, r3 15 not).
        let granted = store
            .promote_withdrawals(
                ChainId::Ethereum,
                Amount::from_base(150),
                Amount::ZERO,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(granted, ["r2"]);
        store.complete_withdrawal("r1", now()).await.unwrap();
        assert!(store.complete_withdrawal("r1", now()).await.is_err());
        let granted = store
            .promote_withdrawals(
                ChainId::Ethereum,
                Amount::from_base(150),
                Amount::ZERO,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(granted, ["r3"]);
    })
    .await;
}

#[tokio::test]
async fn replays_are_no_ops_and_bad_requests_change_nothing() {
    on_both(|store| async move {
        users(&store).await;
        let l = liq(100, &[]);
        let d = store
            .request_withdrawal(&req("r1", "alice", 10), &l, now())
            .await
            .unwrap();
        assert!(!d.replay);
        let again = store
            .request_withdrawal(&req("r1", "alice", 10), &l, now())
            .await
            .unwrap();
        assert!(again.replay && again.status == "granted");
        let err = store
            .request_withdrawal(&req("r1", "alice", 11), &l, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already used"), "{err}");
        let err = store
            .request_withdrawal(&req("r2", "alice", 1_001), &l, now())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("exceeds user alice's liquid balance"),
            "{err}"
        );
        let err = store
            .request_withdrawal(&req("r3", "nobody", 1), &l, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("liquid balance of 0"), "{err}");
        assert!(
            store
                .request_withdrawal(&req("r4", "alice", 0), &l, now())
                .await
                .is_err()
        );
        assert_eq!(
            store.queued_withdrawals(ChainId::Ethereum).await.unwrap(),
            Amount::ZERO
        );
        assert_eq!(store.status().await.unwrap().withdrawals_queued, 0);
    })
    .await;
}

#[tokio::test]
async fn a_request_counts_only_the_balance_in_effect_now_less_open_requests() {
    on_both(|store| async move {
        // carol's only balance takes effect tomorrow: nothing to withdraw yet.
        store
            .ingest_balance_updates(&[eth_update("c", "carol", 100, T0 + DAY)], now())
            .await
            .unwrap();
        let l = liq(0, &[]);
        let err = store
            .request_withdrawal(&req("c1", "carol", 100), &l, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("liquid balance of 0"), "{err}");
        // alice holds 1,000: four requests of 300 cannot all be accepted.
        users(&store).await;
        for (i, ok) in [true, true, true, false].into_iter().enumerate() {
            let r = store
                .request_withdrawal(&req(&format!("a{i}"), "alice", 300), &l, now())
                .await;
            assert_eq!(r.is_ok(), ok, "request {i}: {r:?}");
        }
        // What is left (100) can still be asked for.
        store
            .request_withdrawal(&req("a9", "alice", 100), &l, now())
            .await
            .unwrap();
        assert_eq!(
            store.queued_withdrawals(ChainId::Ethereum).await.unwrap(),
            Amount::from_base(1_000)
        );
    })
    .await;
}

#[tokio::test]
async fn a_request_sent_again_after_a_restore_is_checked_and_queued_as_first_taken() {
    on_both(|store| async move {
        let l = liq(0, &[]);
        let at = |id: &str, user: &str, amount: u128, when: i64| WithdrawalRequest {
            requested_at: Some(Timestamp::from_unix(when)),
            ..req(id, user, amount)
        };
        // The restored ledger knows alice's and bob's 1,000 from two hours
        // ago. Since, bob asked for 100 (now); the exchange sends again
        // what the ledger lost, in the order it first sent it: alice's
        // request of 600 taken an hour ago, then her reduced balance.
        store
            .ingest_balance_updates(
                &[
                    eth_update("a", "alice", 1_000, T0 - 7_200),
                    eth_update("b", "bob", 1_000, T0 - 7_200),
                ],
                now(),
            )
            .await
            .unwrap();
        store
            .request_withdrawal(&req("b1", "bob", 100), &l, now())
            .await
            .unwrap();
        let d = store
            .request_withdrawal(&at("a1", "alice", 600, T0 - 3_600), &l, now())
            .await
            .unwrap();
        assert_eq!(d.status, "queued");
        store
            .ingest_balance_updates(&[eth_update("a2", "alice", 400, T0 - 3_600)], now())
            .await
            .unwrap();
        // Her posted 400 reflects the request: 400 is what she can still ask for.
        let err = store
            .request_withdrawal(&req("a3", "alice", 401), &l, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("(400 available)"), "{err}");
        // Her request keeps its place ahead of bob's.
        let granted = store
            .promote_withdrawals(
                ChainId::Ethereum,
                Amount::from_base(600),
                Amount::ZERO,
                now(),
            )
            .await
            .unwrap();
        assert_eq!(granted, vec!["a1".to_owned()]);
        // Checked against the balance as it stood when taken: carol's only
        // balance took effect after it.
        store
            .ingest_balance_updates(&[eth_update("c", "carol", 100, T0 - 60)], now())
            .await
            .unwrap();
        let err = store
            .request_withdrawal(&at("c1", "carol", 100, T0 - 600), &l, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("liquid balance of 0"), "{err}");
        // A time in the future is refused; neither changed anything.
        let err = store
            .request_withdrawal(&at("c2", "carol", 1, T0 + DAY), &l, now())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("in the future"), "{err}");
        assert_eq!(
            store.queued_withdrawals(ChainId::Ethereum).await.unwrap(),
            Amount::from_base(100)
        );
        // A queued request the exchange paid another way (the lost database
        // had granted it) is completed and waits no more; only once.
        store.complete_withdrawal("b1", now()).await.unwrap();
        assert!(store.complete_withdrawal("b1", now()).await.is_err());
        assert_eq!(
            store.queued_withdrawals(ChainId::Ethereum).await.unwrap(),
            Amount::ZERO
        );
    })
    .await;
}

fn line(liquid: u128, unbonding: &[(u128, i64)], limit: u128) -> Liquidity {
    Liquidity {
        advance_limit: Amount::from_base(limit),
        ..liq(liquid, unbonding)
    }
}

#[tokio::test]
async fn the_advance_line_grants_what_the_buffer_cannot_up_to_its_limit_and_is_repaid_once() {
    on_both(|store| async move {
        users(&store).await;
        let eth = ChainId::Ethereum;
        let owed = || async { store.withdrawals_owed(eth).await.unwrap().base() };
        let l = line(100, &[(500, T0 + 3 * DAY)], 300);
        let d = store
            .request_withdrawal(&req("r1", "alice", 80), &l, now())
            .await
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.source.as_deref(), d.advanced),
            ("granted", Some("buffer"), None)
        );
        // 20 left in the buffer: the treasury fronts 180 of 200, at once.
        let d = store
            .request_withdrawal(&req("r2", "bob", 200), &l, now())
            .await
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.source.as_deref(), d.advanced, d.eta),
            (
                "granted",
                Some("advance"),
                Some(Amount::from_base(180)),
                None
            )
        );
        // A replay says the same.
        let again = store
            .request_withdrawal(&req("r2", "bob", 200), &l, now())
            .await
            .unwrap();
        assert!(again.replay);
        assert_eq!(again.advanced, Some(Amount::from_base(180)));
        // 120 of room left: 150 would pass the limit, so it queues.
        let d = store
            .request_withdrawal(&req("r3", "alice", 150), &l, now())
            .await
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.source.as_deref()),
            ("queued", Some("queue"))
        );
        assert!(d.advanced.is_none() && d.eta.is_some());
        // The pool owes the queue, what it granted less what was fronted,
        // and the advance: 150 + (80 + 20) + 180.
        assert_eq!(owed().await, 430);
        let l0 = store.advance_line(eth, 10, now()).await.unwrap();
        assert_eq!(l0.outstanding, Amount::from_base(180));
        assert_eq!(l0.due, Amount::ZERO);
        assert_eq!(l0.advances.len(), 1);
        let adv = l0.advances[0].clone();
        assert_eq!(
            (adv.request_id.as_str(), adv.status.as_str()),
            ("r2", "outstanding")
        );
        // Repaid by the unbonding entry in flight, plus two cycles.
        assert_eq!(adv.expected_at, Timestamp::from_unix(T0 + 3 * DAY + 1_200));
        // Not late yet; late after its expected time.
        assert_eq!(l0.late, 0);
        let later = Timestamp::from_unix(T0 + 4 * DAY);
        assert_eq!(store.advance_line(eth, 10, later).await.unwrap().late, 1);
        // Not due: its repayment is refused and nothing changes.
        let e = store
            .repay_advance(eth, adv.id, "0xrepay", now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not due"), "{e}");
        // The exchange pays the two granted users.
        store.complete_withdrawal("r1", now()).await.unwrap();
        store.complete_withdrawal("r2", now()).await.unwrap();
        assert_eq!(owed().await, 150 + 180);
        // The unbonding lands: 400 liquid. The queued user first, then the
        // advance is set aside.
        let granted = store
            .promote_withdrawals(eth, Amount::from_base(400), Amount::from_base(300), now())
            .await
            .unwrap();
        assert_eq!(granted, ["r3"]);
        let l1 = store.advance_line(eth, 10, now()).await.unwrap();
        assert_eq!(
            (l1.outstanding, l1.due),
            (Amount::from_base(180), Amount::from_base(180))
        );
        assert_eq!(owed().await, 150 + 180);
        // Repaid: the transfer is declared as principal, once.
        let r = store
            .repay_advance(eth, adv.id, "0xrepay", now())
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_str(), r.repay_tx_id.as_deref()),
            ("repaid", Some("0xrepay"))
        );
        let again = store
            .repay_advance(eth, adv.id, "0xrepay", now())
            .await
            .unwrap();
        assert_eq!(again, r);
        let e = store
            .repay_advance(eth, adv.id, "0xother", now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("another transaction"), "{e}");
        let e = store
            .repay_advance(ChainId::Cosmos, adv.id, "0xrepay", now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not"), "{e}");
        let declared = store
            .declare_transfer(
                &softstake_store::Declaration {
                    chain: eth,
                    tx_id: "0xrepay".into(),
                    direction: softstake_store::Direction::Out,
                    amount: Amount::from_base(180),
                    purpose: softstake_store::Purpose::Principal,
                    note: Some(format!(
                        "repayment of treasury advance {} (withdrawal r2)",
                        adv.id
                    )),
                },
                now(),
            )
            .await
            .unwrap();
        assert!(!declared.created, "the repayment was declared already");
        assert_eq!(owed().await, 150);
        let l2 = store.advance_line(eth, 10, later).await.unwrap();
        assert_eq!((l2.outstanding, l2.late), (Amount::ZERO, 0));
    })
    .await;
}

#[tokio::test]
async fn a_queued_request_is_granted_from_the_line_when_it_has_room_again_and_users_come_before_repayment()
 {
    on_both(|store| async move {
        users(&store).await;
        let eth = ChainId::Ethereum;
        let limit = Amount::from_base(100);
        let l = line(0, &[], 100);
        // Nothing liquid: the line fronts all of 100, then is full.
        let d = store
            .request_withdrawal(&req("a", "alice", 100), &l, now())
            .await
            .unwrap();
        assert_eq!(d.advanced, Some(Amount::from_base(100)));
        let d = store
            .request_withdrawal(&req("b", "bob", 60), &l, now())
            .await
            .unwrap();
        assert_eq!(d.status, "queued");
        store.complete_withdrawal("a", now()).await.unwrap();
        // 50 arrives: not enough for b (60) with no room; the advance (100)
        // does not fit either, and b waits, so nothing is set aside.
        let g = store
            .promote_withdrawals(eth, Amount::from_base(50), limit, now())
            .await
            .unwrap();
        assert!(g.is_empty());
        assert_eq!(
            store.advance_line(eth, 10, now()).await.unwrap().due,
            Amount::ZERO
        );
        // 120 arrives: b is granted from the buffer first (60), and the
        // 60 left cannot cover the 100 advance yet.
        let g = store
            .promote_withdrawals(eth, Amount::from_base(120), limit, now())
            .await
            .unwrap();
        assert_eq!(g, ["b"]);
        let line_now = store.advance_line(eth, 10, now()).await.unwrap();
        assert_eq!((line_now.outstanding, line_now.due), (limit, Amount::ZERO));
        // b is paid; 160 liquid covers the advance: set aside.
        store.complete_withdrawal("b", now()).await.unwrap();
        store
            .promote_withdrawals(eth, Amount::from_base(160), limit, now())
            .await
            .unwrap();
        let line_now = store.advance_line(eth, 10, now()).await.unwrap();
        assert_eq!(line_now.due, limit);
        // A new request finds the due advance's liquidity reserved (160 -
        // 100 = 60 free) and no room on the line (100 outstanding): 70
        // queues; 60 is granted from the buffer.
        let l = line(160, &[], 100);
        let d = store
            .request_withdrawal(&req("c", "alice", 70), &l, now())
            .await
            .unwrap();
        assert_eq!(d.status, "queued");
        store.complete_withdrawal("c", now()).await.unwrap();
        let d = store
            .request_withdrawal(&req("d", "bob", 60), &l, now())
            .await
            .unwrap();
        assert_eq!(
            (d.status.as_str(), d.source.as_deref()),
            ("granted", Some("buffer"))
        );
    })
    .await;
}

/// A bank run against the advance line, seeded and replayable
/// (`SOFTSTAKE_BANK_RUN_SEEDS`, default 25, on both databases; each seed
/// starts from empty withdrawal tables, so 1,000 seeds cost 40 times 25;
/// `SOFTSTAKE_BANK_RUN_SEED=S` replays one): random
/// withdrawals larger and smaller than the buffer, payouts, unbonding
/// arriving, promotions and repayments, with the pool's custody balance
/// modelled here. After every step: the advances not repaid never exceed
/// the limit; what is set aside (granted less fronted, and due advances) is
/// in custody; a request queues only when someone is queued ahead or the
/// line has no room for its shortfall. At the end, with everything
/// unbonded, every request is granted and every advance repaid exactly
/// what was fronted for it, once.
#[tokio::test]
async fn bank_runs_never_pass_the_advance_limit_and_every_advance_is_repaid_exactly() {
    let seeds: Vec<u64> = match std::env::var("SOFTSTAKE_BANK_RUN_SEED") {
        Ok(s) => vec![s.parse().expect("SOFTSTAKE_BANK_RUN_SEED is a number")],
        Err(_) => (0..std::env::var("SOFTSTAKE_BANK_RUN_SEEDS").map_or(25, |s| {
            s.parse().expect("SOFTSTAKE_BANK_RUN_SEEDS is a number")
        }))
            .collect(),
    };
    on_both(|store| {
        let seeds = seeds.clone();
        async move {
        let eth = ChainId::Ethereum;
        let users: Vec<_> = (0..8)
            .map(|i| eth_update(&format!("u{i}"), &format!("user{i}"), 1_000_000_000, T0 - 10))
            .collect();
        store.ingest_balance_updates(&users, now()).await.unwrap();
        let limit: u128 = 3_000;
        // How often the run fronted, queued, and granted from the line
        // after a wait: the test must exercise each.
        let (mut fronting, mut queueing, mut late_fronting) = (0, 0, 0);
        for &seed in &seeds {
            // What the seeds before left behind is not this seed's.
            clear_tables(&store, &["advances", "transfer_declarations", "withdrawals"]).await;
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut rnd = |n: u128| -> u128 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                u128::from(x) % n
            };
            // Custody liquid and staked, in this seed's own units.
            let (mut liquid, mut staked): (u128, u128) = (1_000, 20_000);
            let mut open: Vec<(String, u128, u128)> = Vec::new(); // granted: id, amount, fronted
            let mut queued: Vec<(String, u128)> = Vec::new();
            let mut fronted_total: u128 = 0;
            let mut repaid_total: u128 = 0;
            let mut requested: u128 = 0;
            let mut n = 0;
            let at = |i: u128| Timestamp::from_unix(T0 + i64::try_from(i).unwrap());
            let step_limit = Amount::from_base(limit);
            for step in 0..60u128 {
                let t = at(seed as u128 * 1_000 + step);
                match rnd(5) {
                    0 | 1 if requested < 18_000 => {
                        // A withdrawal, sometimes far above the buffer (the
                        // users' claims stay within what the pool holds).
                        let amount = (1 + if rnd(3) == 0 { rnd(4_000) } else { rnd(400) })
                            .min(18_000 - requested);
                        requested += amount;
                        n += 1;
                        let id = format!("s{seed}-{n}");
                        let user = format!("user{}", rnd(8));
                        let reserved: u128 = open.iter().map(|(_, a, f)| a - f).sum::<u128>()
                            + store.advance_line(eth, 0, t).await.unwrap().due.base();
                        let outstanding = store.advance_line(eth, 0, t).await.unwrap().outstanding.base();
                        let free = liquid.saturating_sub(reserved);
                        let room = limit - outstanding;
                        let d = store
                            .request_withdrawal(
                                &WithdrawalRequest {
                                    request_id: id.clone(),
                                    user_id: user,
                                    chain: eth,
                                    amount: Amount::from_base(amount),
                                    requested_at: Some(t),
                                },
                                &Liquidity {
                                    liquid: Amount::from_base(liquid),
                                    unbonding: Vec::new(),
                                    unbonding_delay_secs: 600,
                                    cycle_secs: 60,
                                    advance_limit: step_limit,
                                },
                                t,
                            )
                            .await
                            .unwrap();
                        if d.status == "queued" {
                            queueing += 1;
                            assert!(
                                !queued.is_empty() || amount.saturating_sub(free) > room,
                                "seed {seed}: {id} queued with room {room} for {amount} (free {free})"
                            );
                            queued.push((id, amount));
                        } else {
                            assert!(queued.is_empty(), "seed {seed}: {id} jumped the queue");
                            let f = d.advanced.map_or(0, |a| a.base());
                            assert_eq!(f, amount.saturating_sub(free), "seed {seed}: {id}");
                            fronting += usize::from(f > 0);
                            fronted_total += f;
                            open.push((id, amount, f));
                        }
                    }
                    // The exchange pays a granted request: the custody
                    // part leaves custody, the treasury pays the rest.
                    2 if !open.is_empty() => {
                        let i = usize::try_from(rnd(open.len() as u128)).unwrap();
                        let (id, amount, f) = open.remove(i);
                        store.complete_withdrawal(&id, t).await.unwrap();
                        liquid -= amount - f;
                    }
                    3 => {
                        // Unbonding arrives.
                        let back = rnd(staked / 4 + 1);
                        staked -= back;
                        liquid += back;
                    }
                    _ => {}
                }
                // Every cycle: promote, then repay what is due.
                let granted = store
                    .promote_withdrawals(eth, Amount::from_base(liquid), step_limit, t)
                    .await
                    .unwrap();
                for g in granted {
                    let k = queued.iter().position(|(id, _)| *id == g).unwrap();
                    assert_eq!(k, 0, "seed {seed}: {g} granted out of order");
                    let (id, amount) = queued.remove(0);
                    let adv = store.advance_line(eth, 10_000, t).await.unwrap();
                    let fronted = adv
                        .advances
                        .iter()
                        .find(|a| a.request_id == id)
                        .map_or(0, |a| a.amount.base());
                    fronted_total += fronted;
                    late_fronting += usize::from(fronted > 0);
                    open.push((id, amount, fronted));
                }
                let line_now = store.advance_line(eth, 10_000, t).await.unwrap();
                assert!(line_now.outstanding.base() <= limit, "seed {seed}: over the limit");
                let reserved: u128 =
                    open.iter().map(|(_, a, f)| a - f).sum::<u128>() + line_now.due.base();
                assert!(reserved <= liquid, "seed {seed}: {reserved} set aside, {liquid} in custody");
                for a in line_now.advances.iter().filter(|a| a.status == "due") {
                    if rnd(2) == 0 {
                        let tx = format!("0xrepay-{seed}-{}", a.id);
                        store.repay_advance(eth, a.id, &tx, t).await.unwrap();
                        liquid -= a.amount.base();
                        repaid_total += a.amount.base();
                    }
                }
            }
            // Drain: everything unbonds, the exchange pays everyone, the
            // treasury is repaid.
            liquid += staked;
            for round in 0..200u128 {
                let t = at(seed as u128 * 1_000 + 100 + round);
                let granted = store
                    .promote_withdrawals(eth, Amount::from_base(liquid), step_limit, t)
                    .await
                    .unwrap();
                for g in granted {
                    let (id, amount) = queued.remove(0);
                    assert_eq!(g, id);
                    let adv = store.advance_line(eth, 10_000, t).await.unwrap();
                    let f = adv
                        .advances
                        .iter()
                        .find(|a| a.request_id == id)
                        .map_or(0, |a| a.amount.base());
                    fronted_total += f;
                    open.push((id, amount, f));
                }
                for (id, amount, f) in std::mem::take(&mut open) {
                    store.complete_withdrawal(&id, t).await.unwrap();
                    liquid -= amount - f;
                }
                let line_now = store.advance_line(eth, 10_000, t).await.unwrap();
                for a in line_now.advances.iter().filter(|a| a.status == "due") {
                    store
                        .repay_advance(eth, a.id, &format!("0xrepay-{seed}-{}", a.id), t)
                        .await
                        .unwrap();
                    liquid -= a.amount.base();
                    repaid_total += a.amount.base();
                }
                if queued.is_empty() && line_now.outstanding.is_zero() {
                    break;
                }
            }
            assert!(queued.is_empty(), "seed {seed}: requests still queued");
            let end = store.advance_line(eth, 10_000, at(0)).await.unwrap();
            assert!(end.outstanding.is_zero(), "seed {seed}: advances not repaid");
            assert_eq!(repaid_total, fronted_total, "seed {seed}: repaid what was fronted");
            assert!(store.withdrawals_owed(eth).await.unwrap().is_zero(), "seed {seed}");
        }
        if seeds.len() >= 25 {
            assert!(
                fronting > 0 && queueing > 0 && late_fronting > 0,
                "fronted {fronting}, queued {queueing}, fronted after a wait {late_fronting}"
            );
        }
        eprintln!(
            "{} seeds: fronted {fronting}, queued {queueing}, fronted after a wait {late_fronting}",
            seeds.len()
        );
        }
    })
    .await;
}
