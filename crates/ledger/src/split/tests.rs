use super::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn rate(permille: i64) -> Rate {
    Rate::new(Decimal::new(permille, 3)).unwrap()
}

fn share(user: &str, weight: u128, carry: u128) -> Share {
    Share {
        user_id: user.into(),
        weight: U256::from(weight),
        carry_before: carry,
    }
}

fn run(gross: u128, r: Rate, dust: U256, shares: Vec<Share>) -> Split {
    split(SplitInput {
        gross: Amount::from_base(gross),
        commission_rate: r,
        dust_before: dust,
        shares,
    })
    .unwrap()
}

#[test]
fn two_users_one_deposits_halfway() {
    // Period of 100 s: alice holds 100 throughout (weight 10_000), bob
    // deposits 100 at t=50 (weight 5_000). Reward 1000, commission 10%.
    let s = run(
        1000,
        rate(100),
        U256::ZERO,
        vec![share("bob", 5_000, 0), share("alice", 10_000, 0)],
    );
    assert_eq!(s.commission, Amount::from_base(100));
    let got: Vec<(&str, u128, u128)> = s
        .lines
        .iter()
        .map(|l| (l.user_id.as_str(), l.amount.base(), l.carry_after))
        .collect();
    assert_eq!(got, [("alice", 600, 0), ("bob", 300, 0)]);
    assert_eq!(s.dust_after, U256::ZERO);
}

#[test]
fn commission_is_rounded_down() {
    let s = run(999, rate(100), U256::ZERO, vec![share("a", 1, 0)]);
    assert_eq!(s.commission, Amount::from_base(99));
    assert_eq!(s.lines[0].amount, Amount::from_base(900));
}

#[test]
fn thirds_are_carried_forward_until_they_make_a_unit() {
    // Three equal users share 10 units three times: 3, 3, 4 each; nothing lost.
    let third = 333_333_333_333_333_333u128;
    let users = |c: u128| vec![share("a", 1, c), share("b", 1, c), share("c", 1, c)];
    let s1 = run(10, Rate::ZERO, U256::ZERO, users(0));
    assert!(
        s1.lines
            .iter()
            .all(|l| l.amount.base() == 3 && l.carry_after == third)
    );
    assert_eq!(s1.dust_after, U256::from(1));
    let s2 = run(10, Rate::ZERO, s1.dust_after, users(third));
    assert!(
        s2.lines
            .iter()
            .all(|l| l.amount.base() == 3 && l.carry_after == 2 * third)
    );
    assert_eq!(s2.dust_after, U256::from(2));
    let s3 = run(10, Rate::ZERO, s2.dust_after, users(2 * third));
    assert!(
        s3.lines
            .iter()
            .all(|l| l.amount.base() == 4 && l.carry_after == 0)
    );
    assert_eq!(s3.dust_after, U256::ZERO);
}

#[test]
fn with_no_weight_the_pool_waits_as_dust() {
    let s = run(50, rate(200), U256::ZERO, vec![share("idle", 0, 5)]);
    assert!(s.lines.is_empty());
    assert_eq!(s.commission, Amount::from_base(10));
    assert_eq!(s.dust_after, U256::from(40u128 * CARRY_SCALE));
}

#[test]
fn inconsistent_inputs_are_refused() {
    let e = split(SplitInput {
        gross: Amount::from_base(1),
        commission_rate: Rate::ZERO,
        dust_before: U256::ZERO,
        shares: vec![share("a", 1, 0), share("a", 2, 0)],
    });
    assert_eq!(e.unwrap_err(), SplitError::DuplicateUser("a".into()));
    let e = split(SplitInput {
        gross: Amount::from_base(1),
        commission_rate: Rate::ZERO,
        dust_before: U256::ZERO,
        shares: vec![share("a", 1, CARRY_SCALE)],
    });
    assert!(matches!(e, Err(SplitError::CarryTooLarge(_))));
}

#[test]
fn a_pool_at_the_amount_limit_is_refused_not_wrapped() {
    // The case proptest found: carries 0.53 + 0.52 would credit u128::MAX + 1.
    let e = split(SplitInput {
        gross: Amount::MAX,
        commission_rate: Rate::ZERO,
        dust_before: U256::ZERO,
        shares: vec![
            share("a", 1, CARRY_SCALE / 2 + 1),
            share("b", 1, CARRY_SCALE / 2 + 1),
        ],
    });
    assert!(
        matches!(e, Err(SplitError::TooLarge { users: 2, .. })),
        "{e:?}"
    );
    // Two units of headroom for two users (and none of dust) are enough.
    let s = run(
        u128::MAX - 3,
        Rate::ZERO,
        U256::ZERO,
        vec![share("a", 1, 0), share("b", 1, 0)],
    );
    assert!(s.check_conservation().is_ok());
}

#[test]
fn a_tampered_split_fails_the_conservation_check() {
    let mut s = run(
        1000,
        rate(100),
        U256::ZERO,
        vec![share("a", 1, 0), share("b", 3, 0)],
    );
    s.lines[0].amount = Amount::from_base(s.lines[0].amount.base() + 1);
    assert!(s.check_conservation().is_err());
    s.credited = Amount::from_base(s.credited.base() + 1);
    assert!(s.check_conservation().is_err());
}

fn arb_shares() -> impl Strategy<Value = Vec<Share>> {
    prop::collection::vec(
        (
            prop_oneof![
                Just(0u128),
                1u128..1_000,
                any::<u64>().prop_map(u128::from),
                any::<u128>()
            ],
            0..CARRY_SCALE,
            0u32..64,
        ),
        1..40,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (w, c, shift))| Share {
                user_id: format!("user-{i:03}"),
                // up to 2^191: u128::MAX balance over ~2^63 seconds
                weight: U256::from(w) << (shift as usize),
                carry_before: c,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn conservation_holds_to_the_micro_unit(
        gross in prop_oneof![Just(0u128), Just(1u128), 0u128..1_000_000, any::<u128>(), Just(u128::MAX)],
        permille in 0i64..=1000,
        dust in 0u128..1_000,
        shares in arb_shares(),
    ) {
        let input = SplitInput {
            gross: Amount::from_base(gross),
            commission_rate: rate(permille),
            dust_before: U256::from(dust),
            shares: shares.clone(),
        };
        let commission = rate(permille).apply_floor(Amount::from_base(gross));
        let users = shares.iter().filter(|x| !x.weight.is_zero()).count() as u128;
        let s = match split(input) {
            Ok(s) => s,
            Err(SplitError::TooLarge { .. }) => {
                // Refused only at the very edge of the amount type.
                prop_assert!(gross - commission.base() > u128::MAX - users - 1);
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        // Independent recomputation of the identity.
        let d = U256::from(CARRY_SCALE);
        let f_in: U256 = shares.iter().filter(|x| !x.weight.is_zero()).map(|x| U256::from(x.carry_before)).fold(U256::ZERO, |a, b| a + b);
        let f_out: U256 = s.lines.iter().map(|l| U256::from(l.carry_after)).fold(U256::ZERO, |a, b| a + b);
        let credits: U256 = s.lines.iter().map(|l| U256::from(l.amount.base())).fold(U256::ZERO, |a, b| a + b);
        prop_assert_eq!(
            U256::from(gross) * d + f_in + U256::from(dust),
            (credits + U256::from(s.commission.base())) * d + f_out + s.dust_after
        );
        // Carries stay below one unit; dust below one micro-unit per user.
        prop_assert!(s.lines.iter().all(|l| l.carry_after < CARRY_SCALE));
        if !s.total_weight.is_zero() {
            prop_assert!(s.dust_after < U256::from(shares.len() as u64 + 1) + U256::from(dust));
        }
        // Commission never above the rate.
        prop_assert!(s.commission <= commission);
    }

    #[test]
    fn input_order_does_not_change_credits(shares in arb_shares(), gross in any::<u64>(), seed in any::<u64>()) {
        let a = run(gross.into(), rate(50), U256::ZERO, shares.clone());
        let mut shuffled = shares;
        // Deterministic shuffle from the seed.
        let n = shuffled.len();
        let mut x = seed | 1;
        for i in (1..n).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap());
        }
        let b = run(gross.into(), rate(50), U256::ZERO, shuffled);
        prop_assert_eq!(a.digest(), b.digest());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn each_allocation_is_the_exact_floor_of_the_share(
        gross in any::<u128>(),
        permille in 0i64..=1000,
        dust in any::<u64>(),
        shares in arb_shares(),
    ) {
        // arb_shares' weights reach 2^191, so P*D*w overflows 256 bits for
        // some lines (the 512-bit path) and not for others (the fast path).
        let input = SplitInput {
            gross: Amount::from_base(gross),
            commission_rate: rate(permille),
            dust_before: U256::from(dust),
            shares: shares.clone(),
        };
        let Ok(s) = split(input) else { return Ok(()) };
        let d = U512::from(CARRY_SCALE);
        let pool = U512::from(s.users_pool.base()) * d + U512::from(dust);
        let w_total = U512::from(s.total_weight);
        for l in &s.lines {
            let a = U512::from(l.amount.base()) * d + U512::from(l.carry_after) - U512::from(l.carry_before);
            prop_assert_eq!(a, pool * U512::from(l.weight) / w_total, "user {}", &l.user_id);
        }
    }

    #[test]
    fn a_single_user_gets_the_whole_pool(gross in any::<u128>(), w in 1u128.., permille in 0i64..=1000) {
        let s = run(gross, rate(permille), U256::ZERO, vec![share("solo", w, 0)]);
        prop_assert_eq!(s.lines[0].amount, s.users_pool);
        prop_assert_eq!(s.lines[0].carry_after, 0);
        prop_assert_eq!(s.dust_after, U256::ZERO);
    }
}

#[test]
fn a_splitter_refuses_lines_that_do_not_match_what_was_declared() {
    let new = || {
        Splitter::new(
            Amount::from_base(100),
            rate(0),
            U256::ZERO,
            U256::from(30u8),
            2,
        )
        .unwrap()
    };
    // Out of order and duplicate users.
    let mut s = new();
    s.line(share("b", 10, 0)).unwrap();
    assert!(matches!(
        s.line(share("a", 20, 0)),
        Err(SplitError::Conservation(_))
    ));
    let mut s = new();
    s.line(share("a", 10, 0)).unwrap();
    assert_eq!(
        s.line(share("a", 20, 0)),
        Err(SplitError::DuplicateUser("a".into()))
    );
    // More weight than declared, or a user without weight.
    let mut s = new();
    assert!(s.line(share("a", 31, 0)).is_err());
    assert!(s.line(share("b", 0, 0)).is_err());
    // Fewer lines than declared: the pool would be left unallocated.
    let mut s = new();
    let l = s.line(share("a", 10, 0)).unwrap();
    assert!(matches!(
        s.finish(vec![l]),
        Err(SplitError::Conservation(_))
    ));
    // As declared: the same as split().
    let mut s = new();
    let lines = vec![
        s.line(share("a", 10, 0)).unwrap(),
        s.line(share("b", 20, 0)).unwrap(),
    ];
    let made = s.finish(lines).unwrap();
    assert_eq!(
        made,
        run(
            100,
            rate(0),
            U256::ZERO,
            vec![share("b", 20, 0), share("a", 10, 0)]
        )
    );
}
