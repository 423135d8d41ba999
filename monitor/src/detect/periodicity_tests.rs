//! Tests of `periodicity.rs`: the readings, and every pruning shortcut against the
//! unpruned computation it replaces.
use super::sparse::*;
use super::*;

const P: ScoreParams = ScoreParams {
    tolerance: 0.35,
    fold_tolerance: 0.22,
    max_missed: 3,
    missed_margin: 2,
    min_intervals: 9,
    sparse_min_intervals: usize::MAX,
    floor_ms: 0.0,
};

/// The defaults with the sparse reading on, as `beacon` sets it: from 19 intervals, the
/// floor at 5 s.
const SPARSE: ScoreParams = ScoreParams {
    sparse_min_intervals: 19,
    floor_ms: 5_000.0,
    ..P
};

/// 29 intervals of a 60 s ± 20 % schedule that missed about half its check-ins: 13 on
/// time, the rest spanning 2 to 7 periods.
const HALF_MISSED: [u32; 29] = [
    61_200, 118_900, 55_300, 181_700, 124_800, 124_800, 49_800, 179_000, 243_100, 58_100, 107_600,
    63_700, 112_000, 196_500, 69_300, 131_900, 57_700, 424_000, 64_800, 112_300, 50_900, 301_800,
    71_600, 126_400, 59_900, 168_200, 54_400, 239_700, 62_300,
];

#[test]
fn perfect_period_scores_one() {
    let p = analyze(&[60_000; 9], &P).unwrap();
    assert_eq!(p.median_ms, 60_000.0);
    assert_eq!(p.mad_ms, 0.0);
    assert_eq!(p.skew, 0.0);
    assert_eq!((p.explained, p.folded, p.missed), (9, 0, 0));
    assert_eq!(p.share, 1.0);
    assert_eq!(p.score, 1.0);
    assert_eq!(p.jitter(), 0.0);
}

#[test]
fn one_sided_jitter_fits_the_steady_band() {
    // Cobalt Strike style: 60 s minus up to 50 %.
    let xs = [
        30_500, 59_000, 45_000, 33_000, 52_000, 41_000, 57_500, 38_000, 49_000,
    ];
    let p = analyze(&xs, &P).unwrap();
    assert_eq!((p.explained, p.folded), (9, 0));
    assert!((p.median_ms - 45_000.0).abs() < 1.0, "{p:?}");
}

#[test]
fn missed_check_ins_count_as_whole_periods() {
    let xs = [
        60_000, 59_000, 121_000, 61_000, 60_500, 180_500, 59_500, 60_000, 60_000,
    ];
    let p = analyze(&xs, &P).unwrap();
    assert_eq!((p.explained, p.folded, p.missed), (9, 2, 3));
    assert!((p.median_ms - 60_000.0).abs() < 600.0, "{p:?}");
    assert!(p.score > 0.9, "{p:?}");
}

#[test]
fn missed_check_ins_need_on_time_evidence() {
    // Five on time, four triples: 8 missed + 2 > 5, so the folded reading is refused
    // and only the steady one (the five) remains.
    let xs = [
        60_000, 61_000, 59_000, 60_500, 59_500, 180_000, 181_000, 179_000, 180_500,
    ];
    let p = analyze(&xs, &P).unwrap();
    assert_eq!((p.explained, p.folded, p.missed), (5, 0, 0));
    // Seven on time and two triples: 4 + 2 <= 7.
    let xs = [
        60_000, 61_000, 59_000, 60_500, 59_500, 60_200, 60_800, 181_000, 179_000,
    ];
    let p = analyze(&xs, &P).unwrap();
    assert_eq!((p.explained, p.folded, p.missed), (9, 2, 4));
    assert!((p.median_ms - 60_000.0).abs() < 600.0, "{p:?}");
    // With 8 more intervals on time the margin is gone: 8 missed against 13 on time
    // passes, where 8 + 2 against 5 did not.
    assert_eq!(P.margin(9), 2);
    assert_eq!(P.margin(13), 1);
    assert_eq!(P.margin(17), 0);
}

#[test]
fn an_interval_far_from_the_period_is_not_explained() {
    // A third of the period: outside the steady band's factor of two and no multiple.
    let xs = [60_000, 60_000, 60_000, 60_000, 20_000];
    let p = analyze(&xs, &P).unwrap();
    assert_eq!((p.explained, p.folded), (4, 0));
    assert_eq!(p.share, 0.8);
}

#[test]
fn irregular_intervals_are_mostly_unexplained() {
    // Exponential-looking spread: short and long gaps mixed.
    let xs = [
        5_200, 81_000, 33_000, 140_000, 12_000, 47_000, 9_000, 66_000, 200_000,
    ];
    let p = analyze(&xs, &P).unwrap();
    assert!(p.share < 0.6, "{p:?}");
}

#[test]
fn bowley_skew_sign_follows_the_long_tail() {
    let wide = ScoreParams {
        tolerance: 0.9,
        max_missed: 0,
        ..P
    };
    let right = analyze(&[100, 110, 120, 130, 400, 600, 800], &wide).unwrap();
    assert!(right.skew > 0.0, "{right:?}");
    let left = analyze(&[100, 300, 500, 670, 680, 690, 700], &wide).unwrap();
    assert!(left.skew < 0.0, "{left:?}");
}

#[test]
fn empty_or_oversized_input_has_no_analysis() {
    assert_eq!(analyze(&[], &P), None);
    assert_eq!(analyze(&[1; RING + 1], &P), None);
}

#[test]
fn the_share_bound_never_hides_a_reading_that_meets_the_bar() {
    // Seeded series of every kind the detector meets (steady with jitter, missed
    // check-ins, irregular, a mix), under several parameter sets and bars: the bounded
    // analysis is either the full one or refused where the full one misses the bar.
    let mut x = 0xB0_0517_u64;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let params = [
        P,
        ScoreParams { max_missed: 0, ..P },
        ScoreParams {
            tolerance: 0.1,
            fold_tolerance: 0.3,
            max_missed: 10,
            missed_margin: 0,
            min_intervals: 3,
            sparse_min_intervals: usize::MAX,
            floor_ms: 0.0,
        },
        SPARSE,
    ];
    let (mut refused, mut passed) = (0, 0);
    for case in 0..6000u64 {
        let n = 3 + (case % 30) as usize;
        let period = 5_000.0 + (next() % 600_000) as f64;
        let mut unit = || (next() >> 11) as f64 / (1u64 << 53) as f64;
        let xs: Vec<u32> = (0..n)
            .map(|_| {
                let v = match case % 4 {
                    0 => period * (1.0 + 0.8 * (unit() - 0.5)),
                    1 => period * (1.0 + (unit() * 3.0).floor()) * (1.0 + 0.4 * (unit() - 0.5)),
                    2 => 5_000.0 - period * (1.0 - unit()).ln(),
                    _ if unit() < 0.8 => period * (1.0 + 0.2 * (unit() - 0.5)),
                    _ => 5_000.0 + unit() * 4.0 * period,
                };
                v as u32
            })
            .collect();
        for p in &params {
            let full = analyze(&xs, p).unwrap();
            for bar in [0.93 - 1e-9, 0.8, 0.5] {
                match analyze_if_share(&xs, p, bar) {
                    Some(q) => {
                        assert_eq!(q, full, "{xs:?}");
                        passed += 1;
                    }
                    None => {
                        assert!(full.share < bar, "refused {full:?} for {xs:?}");
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(
        refused > 1000 && passed > 1000,
        "{refused} refused, {passed} passed"
    );
}

#[test]
fn skipping_the_fold_search_keeps_the_reading_the_full_search_picks() {
    // The reading `analyze` reports is the one the unpruned search picks: every
    // candidate period, no bound, no early exit (`reference_best_fold`).
    let mut x = 0x5ca1_ab1e_u64;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut folded_readings = 0;
    for case in 0..20_000u64 {
        let n = 1 + (case % RING as u64) as usize;
        let period = 5_000 + next() % 300_000;
        let xs: Vec<u32> = (0..n)
            .map(|_| {
                let k = if case % 3 == 0 { 1 } else { 1 + next() % 4 };
                let jitter = (next() % 400) as i64 - 200;
                let v = (period * k) as i64 * (1000 + jitter) / 1000;
                if next() % 8 == 0 {
                    (5_000 + next() % 900_000) as u32
                } else {
                    v as u32
                }
            })
            .collect();
        let mut buf = [0f64; RING];
        let sorted = sorted_intervals(&xs, &mut buf).unwrap();
        let (_, count) = steady_window(sorted, P.tolerance);
        let expected = match reference_best_fold(sorted, &P, 0) {
            Some((_, fit)) if fit.explained() > count => {
                folded_readings += 1;
                (fit.explained(), fit.folded, fit.missed)
            }
            _ => (count, 0, 0),
        };
        let got = analyze(&xs, &P).unwrap();
        assert_eq!((got.explained, got.folded, got.missed), expected, "{xs:?}");
    }
    assert!(folded_readings > 1000, "{folded_readings}");
}

#[test]
fn fold_k_rounds_as_f64_round_does() {
    let reference = |x: f64, c: f64, p: &ScoreParams| {
        let k = (x / c).round();
        (k >= 1.0
            && k <= f64::from(p.max_missed + 1)
            && (x - k * c).abs() <= p.fold_tolerance * k * c)
            .then_some(k as u32)
    };
    let mut x = 0x0f01d_u64;
    let mut next = move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let wide = ScoreParams {
        fold_tolerance: 0.3,
        max_missed: 10,
        ..P
    };
    for _ in 0..200_000 {
        let c = 1.0 + (next() % 3_600_000) as f64;
        // Half-way points between multiples, and anything up to 14 periods.
        let xs = [
            (next() % 28) as f64 * c / 2.0,
            c * (next() % 14_000) as f64 / 1000.0,
            (1 + next() % 50_000_000) as f64,
        ];
        for x in xs {
            for p in [&P, &wide] {
                assert_eq!(fold_k(x, c, p), reference(x, c, p), "x {x} c {c}");
            }
        }
    }
}

/// SplitMix64: seeded, so every run sees the same cases.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Interval series of every kind the detector meets: steady with jitter, missed
/// check-ins, irregular, a mix with strays, repeated values, the odd zero.
fn series(next: &mut impl FnMut() -> u64, case: u64) -> Vec<u32> {
    let n = 1 + (next() % RING as u64) as usize;
    let period = 5_000 + next() % 600_000;
    (0..n)
        .map(|_| {
            let jitter = |next: &mut dyn FnMut() -> u64, per_mille: u64| {
                1000 + (next() % (2 * per_mille + 1)) as i64 - per_mille as i64
            };
            let v = match case % 6 {
                0 => period as i64 * jitter(next, 250) / 1000,
                1 => (period * (1 + next() % 4)) as i64 * jitter(next, 200) / 1000,
                2 => (5_000 + next() % 900_000) as i64,
                3 if next().is_multiple_of(6) => (5_000 + next() % (4 * period)) as i64,
                3 => period as i64 * jitter(next, 100) / 1000,
                4 => (period + 1000 * (next() % 3)) as i64,
                _ if next().is_multiple_of(40) => 0,
                _ => (period * (1 + next() % 2)) as i64 * jitter(next, 300) / 1000,
            };
            v as u32
        })
        .collect()
}

/// Parameter sets: the defaults, folding off, wide folding with many missed check-ins,
/// more missed check-ins than `Bands` follows (the scan fallback), a narrow fold band,
/// the sparse reading from few intervals on.
fn param_sets() -> [ScoreParams; 7] {
    [
        P,
        ScoreParams {
            sparse_min_intervals: 3,
            ..SPARSE
        },
        ScoreParams {
            sparse_min_intervals: 3,
            floor_ms: 0.0,
            ..SPARSE
        },
        ScoreParams { max_missed: 0, ..P },
        ScoreParams {
            tolerance: 0.1,
            fold_tolerance: 0.3,
            max_missed: 10,
            missed_margin: 0,
            min_intervals: 3,
            sparse_min_intervals: usize::MAX,
            floor_ms: 0.0,
        },
        ScoreParams {
            max_missed: 12,
            missed_margin: 1,
            ..P
        },
        ScoreParams {
            tolerance: 0.5,
            fold_tolerance: 0.001,
            max_missed: 2,
            missed_margin: 5,
            min_intervals: 20,
            sparse_min_intervals: usize::MAX,
            floor_ms: 0.0,
        },
    ]
}

/// `fit_with` as first written: every interval, no early exit.
fn reference_fit(xs: &[f64], c: f64, p: &ScoreParams) -> (Fit, f64, u32) {
    let mut fit = Fit::default();
    let (mut total, mut periods) = (0.0, 0u32);
    for &x in xs {
        let Some(k) = fold_k(x, c, p) else {
            continue;
        };
        if k == 1 {
            fit.on_time += 1;
        } else {
            fit.folded += 1;
            fit.missed += (k - 1) as usize;
        }
        total += x;
        periods += k;
    }
    (fit, total, periods)
}

/// `best_fold` without any pruning: every candidate refined and fitted in full, the
/// first strictly best admissible fit that explains `at_least` kept.
fn reference_best_fold(xs: &[f64], p: &ScoreParams, at_least: usize) -> Option<(f64, Fit)> {
    if p.max_missed == 0 {
        return None;
    }
    let margin = p.margin(xs.len());
    let mut best: Option<(f64, Fit)> = None;
    for (i, &candidate) in xs.iter().enumerate() {
        if candidate <= 0.0 || (i > 0 && xs[i - 1] == candidate) {
            continue;
        }
        let (_, total, periods) = reference_fit(xs, candidate, p);
        let c = if periods > 0 {
            total / f64::from(periods)
        } else {
            candidate
        };
        let (fit, _, _) = reference_fit(xs, c, p);
        if fit.explained() < at_least || !fit.admissible(margin) {
            continue;
        }
        let better = best.as_ref().is_none_or(|(_, b)| {
            (fit.explained(), fit.on_time, usize::MAX - fit.missed)
                > (b.explained(), b.on_time, usize::MAX - b.missed)
        });
        if better {
            best = Some((c, fit));
        }
    }
    best
}

#[test]
fn the_pruned_fold_search_finds_what_the_full_search_finds() {
    // Every bar `analyze_sorted` asks for (0, the share floor, one more than the
    // steady window) and a few more, under every parameter set: the same period, to
    // the bit, and the same fit as the unpruned search.
    let mut next = rng(0xf01d_5ea5);
    let mut found = 0;
    for case in 0..12_000u64 {
        let xs = series(&mut next, case);
        let mut buf = [0f64; RING];
        let sorted = sorted_intervals(&xs, &mut buf).unwrap();
        let n = sorted.len();
        for p in &param_sets() {
            let (_, count) = steady_window(sorted, p.tolerance);
            let floor = ShareBar::new(0.93 - 1e-9).floor(n);
            for at_least in [0, 1, n / 2, n.saturating_sub(2), floor, count + 1, n, n + 1] {
                let got = best_fold(sorted, p, at_least).map(|(c, f)| (c.to_bits(), f));
                let want = reference_best_fold(sorted, p, at_least).map(|(c, f)| (c.to_bits(), f));
                assert_eq!(got, want, "{xs:?} at least {at_least} {p:?}");
                found += usize::from(got.is_some());
            }
        }
    }
    assert!(found > 10_000, "{found}");
}

#[test]
fn band_positions_give_the_scan_s_fit_from_any_previous_period() {
    // One `Bands` carried across periods in no particular order (as candidates and
    // refined periods alternate), including periods that put intervals exactly on a
    // rounding boundary (x / c = k ± 1/2) or a band's edge (x = k·c(1 ± f)).
    let mut next = rng(0xba_4d5);
    for case in 0..6_000u64 {
        let xs = series(&mut next, case);
        let mut buf = [0f64; RING];
        let sorted = sorted_intervals(&xs, &mut buf).unwrap();
        let mut prefix = [0f64; RING + 1];
        for (i, &x) in sorted.iter().enumerate() {
            prefix[i + 1] = prefix[i] + x;
        }
        for p in param_sets() {
            if p.max_missed as usize >= MAX_BANDS {
                continue;
            }
            let mut bands = Bands::new();
            for _ in 0..24 {
                let x = sorted[(next() % sorted.len() as u64) as usize].max(1.0);
                let k = f64::from(1 + (next() % u64::from(p.max_missed + 2)) as u32);
                let f = p.fold_tolerance;
                let c = match next() % 6 {
                    0 => x,
                    1 => x / (k + 0.5),
                    2 => x / (k - 0.5),
                    3 => x / (k * (1.0 + f)),
                    4 => x / (k * (1.0 - f)),
                    _ => x * (0.5 + (next() % 1000) as f64 / 500.0),
                };
                let (fit, total, periods) = reference_fit(sorted, c, &p);
                let (got_total, got_periods) = bands.sums(sorted, &prefix, c, &p);
                assert_eq!(
                    (got_total.to_bits(), got_periods),
                    (total.to_bits(), periods),
                    "{xs:?} c {c}"
                );
                for at_least in [0, fit.explained(), fit.explained() + 1, sorted.len()] {
                    let want = (fit.explained() >= at_least).then_some(fit);
                    assert_eq!(bands.fit(sorted, c, &p, at_least), want, "{xs:?} c {c}");
                    let scan = fit_with(sorted, c, &p, at_least).map(|(f, _, _)| f);
                    assert_eq!(scan, want, "{xs:?} c {c}");
                }
            }
        }
    }
}

#[test]
fn pair_checks_agree_with_counted_runs() {
    // `runs_reach` and `run_starts_by` compare a few pairs where `longest_run` counts.
    let mut next = rng(0x2a115);
    let ratios = [
        1.0,
        1.0 + 1e-9,
        1.2,
        2.077,
        P.on_time_ratio(),
        P.banded_ratio(),
        40.0,
    ];
    for case in 0..20_000u64 {
        let xs = series(&mut next, case);
        let mut buf = [0f64; RING];
        let sorted = sorted_intervals(&xs, &mut buf).unwrap();
        let n = sorted.len();
        let ratio = ratios[(case % ratios.len() as u64) as usize];
        let widest = longest_run(sorted, ratio);
        // The run from each start, counted.
        let from = |s: usize| {
            sorted[s..]
                .iter()
                .take_while(|&&x| x <= ratio * sorted[s])
                .count()
        };
        for len in 0..=n + 1 {
            assert_eq!(
                runs_reach(sorted, ratio, len),
                widest >= len,
                "{xs:?} {len}"
            );
            let last = (next() % (n as u64 + 2)) as usize;
            let want = len == 0 || (0..n.min(last + 1)).any(|s| from(s) >= len);
            assert_eq!(
                run_starts_by(sorted, ratio, len, last),
                want,
                "{xs:?} {len} {last}"
            );
        }
    }
}

#[test]
fn the_extremes_refuse_exactly_what_the_sorted_runs_refuse() {
    // Before any sorting: refused exactly when neither run bound reaches `floor`,
    // wherever the few smallest and largest values decide (at most 4 window starts).
    let mut next = rng(0xe7_7e3e5);
    for case in 0..20_000u64 {
        let xs = series(&mut next, case);
        let n = xs.len();
        let mut sorted = xs.clone();
        sorted.sort_unstable();
        let sorted: Vec<f64> = sorted.into_iter().map(f64::from).collect();
        for p in &param_sets() {
            let steady = longest_run(&sorted, p.steady_ratio());
            let banded = if p.max_missed > 0 {
                longest_run(&sorted, p.banded_ratio())
            } else {
                0
            };
            for floor in 0..=n + 1 {
                let want = match floor {
                    0 => true,
                    f if f > n => false,
                    f if n - f + 1 > 4 => true,
                    f => {
                        steady >= f
                            || banded >= f
                            || (sparse_applies(p, n) && {
                                let low = sparse_low(p);
                                let above: Vec<f64> =
                                    sorted.iter().copied().filter(|&x| x >= low).collect();
                                longest_run(&above, sparse_ratio(p)) >= f
                            })
                    }
                };
                assert_eq!(
                    extremes_may_reach(&xs, p, floor),
                    want,
                    "{xs:?} floor {floor} {p:?}"
                );
            }
        }
        let (lo, hi) = extremes::<4>(&xs);
        if n >= 4 {
            let s: Vec<u32> = sorted.iter().map(|&x| x as u32).collect();
            assert_eq!((lo.as_slice(), hi.as_slice()), (&s[..4], &s[n - 4..]));
        }
    }
}

#[test]
fn the_share_bar_is_the_fewest_intervals_meeting_the_share() {
    for share in [0.0, 0.5, 0.8, 0.93 - 1e-9, 0.93, 1.0 - 1e-9, 1.0] {
        let bar = ShareBar::new(share);
        for n in 1..=RING {
            let floor = bar.floor(n);
            assert!(floor as f64 / n as f64 >= share, "{share} {n}");
            assert!(
                floor == 0 || ((floor - 1) as f64 / n as f64) < share,
                "{share} {n}"
            );
        }
    }
}

#[test]
fn a_schedule_missing_half_its_check_ins_is_read_as_sparse() {
    // The steady and folded readings leave too much: the folded one needs as many on
    // time as missed, and the 5 and 7 periods are beyond its 4.
    let dense = analyze(&HALF_MISSED, &P).unwrap();
    assert!(dense.share < 0.93, "{dense:?}");
    let p = analyze(&HALF_MISSED, &SPARSE).unwrap();
    assert_eq!((p.explained, p.on_time()), (29, 13), "{p:?}");
    assert!(p.missed > p.on_time(), "{p:?}");
    assert!((p.median_ms - 60_000.0).abs() < 3_000.0, "{p:?}");
    // Not before its count: with 19 intervals required, 18 are read as before.
    let early = analyze(&HALF_MISSED[..18], &SPARSE).unwrap();
    assert_eq!(early, analyze(&HALF_MISSED[..18], &P).unwrap());
}

#[test]
fn sparse_bands_grow_like_the_square_root_and_weigh_less() {
    let c = 60_000.0;
    // Two periods: ±0.31 periods; three: ±0.38.
    assert_eq!(sparse_k(2.0 * c + 0.3 * c, c, &SPARSE), Some(2));
    assert_eq!(sparse_k(2.0 * c + 0.32 * c, c, &SPARSE), None);
    assert_eq!(sparse_k(3.0 * c - 0.37 * c, c, &SPARSE), Some(3));
    assert_eq!(sparse_k(3.0 * c - 0.39 * c, c, &SPARSE), None);
    assert_eq!(sparse_k(8.0 * c, c, &SPARSE), Some(8));
    assert_eq!(sparse_k(9.0 * c, c, &SPARSE), None);
    // Evidence per explained interval: 0.82, 0.47, 0.27, 0.13, 0.02 nats, then none.
    let weights = sparse_weights(&SPARSE);
    let evidence = |k: f64| sparse_fit(&[k * c], c, &SPARSE, &weights).3;
    let want = [0.821, 0.474, 0.272, 0.128, 0.016, 0.0];
    for (k, w) in want.iter().enumerate() {
        let got = evidence(k as f64 + 1.0);
        assert!((got - w).abs() < 0.001, "k {} evidence {got}", k + 1);
    }
}

#[test]
fn random_intervals_are_not_a_sparse_schedule() {
    // Exponential intervals above the 5 s floor, from busy (6 s mean gap) to quiet
    // (10 min): none read as a sparse schedule, whatever the period tried.
    let mut next = rng(0x5_9a75e);
    let mut unit = move || (next() >> 11) as f64 / (1u64 << 53) as f64;
    for case in 0..6_000u64 {
        let mean = [6_000.0, 20_000.0, 60_000.0, 600_000.0][(case % 4) as usize];
        let n = 19 + (case % 14) as usize;
        let xs: Vec<u32> = (0..n)
            .map(|_| (5_000.0 - mean * (1.0 - unit()).ln()) as u32)
            .collect();
        let mut buf = [0f64; RING];
        let sorted = sorted_intervals(&xs, &mut buf).unwrap();
        let floor = ShareBar::new(0.93 - 1e-9).floor(n);
        assert_eq!(best_sparse(sorted, &SPARSE, floor), None, "{xs:?}");
    }
}

#[test]
fn a_cluster_at_the_floor_is_not_an_on_time_band() {
    // The most visited site of a browsing trace: intervals pile up just above the 5 s
    // floor, and from there every longer interval is near some multiple of 7 s.
    let xs = [
        5_500, 6_800, 6_900, 7_600, 7_600, 7_700, 8_000, 8_100, 8_300, 10_600, 12_100, 12_600,
        12_800, 14_000, 15_000, 18_100, 19_500, 19_500, 20_100, 20_500, 20_900, 21_200, 22_400,
        22_900, 24_600, 24_700, 26_600, 28_400, 29_100, 32_600, 53_500, 535_500,
    ];
    let mut buf = [0f64; RING];
    let sorted = sorted_intervals(&xs, &mut buf).unwrap();
    let no_floor = ScoreParams {
        floor_ms: 0.0,
        ..SPARSE
    };
    let (c, fit) = best_sparse(sorted, &no_floor, 30).unwrap();
    assert!((6_000.0..8_000.0).contains(&c), "{c} {fit:?}");
    assert_eq!(best_sparse(sorted, &SPARSE, 30), None);
}

/// `best_sparse` without pruning: every candidate refined and fitted.
fn reference_best_sparse(xs: &[f64], p: &ScoreParams, at_least: usize) -> Option<(f64, Fit)> {
    let mut best: Option<(f64, Fit)> = None;
    let weights = sparse_weights(p);
    for (i, &candidate) in xs.iter().enumerate() {
        if candidate <= 0.0 || (i > 0 && xs[i - 1] == candidate) {
            continue;
        }
        let (_, total, periods, _) = sparse_fit(xs, candidate, p, &weights);
        if periods == 0 {
            continue;
        }
        let c = total / f64::from(periods);
        let (fit, _, periods, evidence) = sparse_fit(xs, c, p, &weights);
        if fit.explained() < at_least
            || c * (1.0 - p.fold_tolerance) < SPARSE_FLOOR_FACTOR * p.floor_ms
            || evidence < SPARSE_MIN_EVIDENCE
            || periods as usize > SPARSE_MAX_MEAN_PERIODS * fit.explained()
        {
            continue;
        }
        let better = best.as_ref().is_none_or(|(_, b)| {
            (fit.explained(), fit.on_time, usize::MAX - fit.missed)
                > (b.explained(), b.on_time, usize::MAX - b.missed)
        });
        if better {
            best = Some((c, fit));
        }
    }
    best
}

#[test]
fn the_pruned_sparse_search_finds_what_the_full_search_finds() {
    let mut next = rng(0x0059_a75e_5ea5);
    let mut found = 0;
    for case in 0..12_000u64 {
        let mut xs = series(&mut next, case);
        // Half the cases as a schedule missing about half its check-ins.
        if case % 2 == 0 {
            let period = 10_000 + next() % 300_000;
            for x in xs.iter_mut() {
                let mut k = 1;
                while k < 9 && next().is_multiple_of(2) {
                    k += 1;
                }
                let jitter = (0..k).map(|_| next() % 400).sum::<u64>() as i64 - 200 * k as i64;
                *x = ((period * k) as i64 + period as i64 * jitter / 1000) as u32;
            }
        }
        let mut buf = [0f64; RING];
        let sorted = sorted_intervals(&xs, &mut buf).unwrap();
        let n = sorted.len();
        let floor = ShareBar::new(0.93 - 1e-9).floor(n);
        for p in [
            SPARSE,
            ScoreParams {
                floor_ms: 0.0,
                ..SPARSE
            },
        ] {
            for at_least in [0, 1, n / 2, n.saturating_sub(2), floor, n, n + 1] {
                let got = best_sparse(sorted, &p, at_least).map(|(c, f)| (c.to_bits(), f));
                let want =
                    reference_best_sparse(sorted, &p, at_least).map(|(c, f)| (c.to_bits(), f));
                assert_eq!(got, want, "{xs:?} at least {at_least}");
                found += usize::from(got.is_some());
            }
        }
    }
    assert!(found > 5_000, "{found}");
}
