//! The sparse reading of `periodicity`: schedules that miss many of their check-ins (a
//! laptop asleep half the time, a C2 down for hours), so that most intervals span several
//! periods. Bands around k periods grow like √k, the reading rests on evidence (what
//! random phases would rarely match), and its on-time band must clear the floor where a
//! busy key's intervals pile up. DETECTION.md, "Half the check-ins missed", has the why
//! and the measurements.

use super::{Fit, RING, ScoreParams};

/// Most periods one interval spans in the sparse reading (7 check-ins missed in a row: at
/// half missed, one interval in 256 spans more). From 6 periods on the bands cover every
/// phase and explain anything; the cap keeps a short period from explaining long
/// random intervals as many periods each.
pub(super) const SPARSE_MAX_PERIODS: u32 = 8;

/// Most periods per explained interval, on average, in the sparse reading: at least one
/// check-in in three made.
pub(super) const SPARSE_MAX_MEAN_PERIODS: usize = 3;

/// Least evidence (nats) of a sparse reading: the chance that intervals with random
/// phases all land in its bands is at most e^−12, 6 in a million (`sparse_fit`). The
/// reading is tried on every check-in from `sparse_min_intervals` on, with up to 32
/// candidate periods each, so the bar per trial is far below the false-positive rate
/// wanted per key.
pub(super) const SPARSE_MIN_EVIDENCE: f64 = 12.0;

/// The sparse reading's on-time band must start at least this many times `floor_ms` above
/// zero (with the defaults, 15 s: periods from 19 s). On a busy key, intervals pile up
/// just above the floor, a cluster no schedule made, and from there every longer
/// interval is near some multiple of it.
pub(super) const SPARSE_FLOOR_FACTOR: f64 = 3.0;

/// The smallest interval a sparse reading can explain: its on-time band starts at
/// `SPARSE_FLOOR_FACTOR` × `floor_ms` or above (widened against rounding).
pub(super) fn sparse_low(p: &ScoreParams) -> f64 {
    SPARSE_FLOOR_FACTOR * p.floor_ms * (1.0 - 1e-9)
}

/// False when no sparse reading can explain `floor` of sorted `xs`: it applies to them,
/// and for some start s at `sparse_low` or above, the `floor` intervals from s lie within
/// `sparse_ratio` of xs[s] and average at most `SPARSE_MAX_MEAN_PERIODS` × (1 + f) /
/// (1 − f) times xs[s]. A reading that explains E ≥ `floor` intervals, the smallest
/// xs[s], has c ≤ xs[s] / (1 − f) and each x ≤ k·c(1 + f) with Σk ≤ 3E, so its explained
/// intervals average at most that, and the `floor` from s average no more. On a busy key
/// (most intervals just above the floor) and on random quiet ones (a long tail) this
/// refuses before any candidate is tried.
pub(super) fn sparse_may_reach(xs: &[f64], p: &ScoreParams, floor: usize) -> bool {
    let n = xs.len();
    if !sparse_applies(p, n) || floor > n {
        return false;
    }
    if floor == 0 {
        return true;
    }
    let low = sparse_low(p);
    let ratio = sparse_ratio(p);
    let f = p.fold_tolerance;
    let mean_ratio = SPARSE_MAX_MEAN_PERIODS as f64 * (1.0 + f) / (1.0 - f) * (1.0 + 1e-9);
    // The sum of xs[s..s + floor], slid along.
    let mut sum: f64 = xs[..floor].iter().sum();
    for s in 0..=n - floor {
        if s > 0 {
            sum += xs[s + floor - 1] - xs[s - 1];
        }
        if xs[s] >= low
            && xs[s + floor - 1] <= ratio * xs[s]
            && sum <= floor as f64 * mean_ratio * xs[s]
        {
            return true;
        }
    }
    false
}

/// Evidence (nats) of an interval explained as k periods, by k (`sparse_fit`).
pub(super) fn sparse_weights(p: &ScoreParams) -> [f64; SPARSE_MAX_PERIODS as usize + 1] {
    let mut w = [0.0; SPARSE_MAX_PERIODS as usize + 1];
    for (k, slot) in w.iter_mut().enumerate().skip(1) {
        *slot = -(2.0 * sparse_width(p, k as f64)).min(1.0).ln();
    }
    w
}

/// Whether the sparse reading is tried on `n` intervals.
pub(super) fn sparse_applies(p: &ScoreParams, n: usize) -> bool {
    n >= p.sparse_min_intervals && p.sparse_min_intervals <= RING
}

/// Half-width of the band around `k` periods in the sparse reading, in periods: the
/// fold tolerance grown like √k, as the spread of a sum of k independent jitters grows.
pub(super) fn sparse_width(p: &ScoreParams, k: f64) -> f64 {
    p.fold_tolerance * k.sqrt()
}

/// Largest over smallest explained interval of a sparse reading, widened as
/// `banded_ratio`.
pub(super) fn sparse_ratio(p: &ScoreParams) -> f64 {
    let k = f64::from(SPARSE_MAX_PERIODS);
    (k + sparse_width(p, k)) / (1.0 - p.fold_tolerance) * (1.0 + 1e-9)
}

/// How many periods of `c` the interval `x` spans in the sparse reading, if within the
/// band of that many.
pub(super) fn sparse_k(x: f64, c: f64, p: &ScoreParams) -> Option<u32> {
    let y = x / c;
    // k = round(y) must be 1 to SPARSE_MAX_PERIODS; NaN fails too. Rounded as `fold_k`.
    if !(y >= 0.5 && y < f64::from(SPARSE_MAX_PERIODS) + 0.5) {
        return None;
    }
    let t = f64::from(y as u32);
    let k = if y - t >= 0.5 { t + 1.0 } else { t };
    ((x - k * c).abs() <= sparse_width(p, k) * c).then_some(k as u32)
}

/// The sparse fit of period `c`, with the sum and period count of what it explains, and
/// its evidence: the sum over explained intervals of −ln(the share of a period its band
/// covers), so −ln of the chance that as many intervals with random phases would all land
/// in their bands. An on-time interval adds 0.82 nats, one of two periods 0.47, three
/// 0.27, four 0.13, five 0.02, six or more nothing (their bands cover every phase).
/// `weights` are `sparse_weights(p)`.
pub(super) fn sparse_fit(
    xs: &[f64],
    c: f64,
    p: &ScoreParams,
    weights: &[f64; SPARSE_MAX_PERIODS as usize + 1],
) -> (Fit, f64, u32, f64) {
    let mut fit = Fit::default();
    let (mut total, mut periods, mut evidence) = (0.0, 0u32, 0.0);
    for &x in xs {
        let Some(k) = sparse_k(x, c, p) else {
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
        evidence += weights[k as usize];
    }
    (fit, total, periods, evidence)
}

/// The period that explains the most intervals in the sparse reading, and its fit, if
/// it explains at least `at_least` with enough evidence, at most `SPARSE_MAX_MEAN_PERIODS`
/// periods per interval and its on-time band clear of the floor. Candidates are the
/// intervals, each refined once to total time / total periods, as in `best_fold`.
pub(super) fn best_sparse(xs: &[f64], p: &ScoreParams, at_least: usize) -> Option<(f64, Fit)> {
    let n = xs.len();
    let spare = n.checked_sub(at_least)?;
    let f = p.fold_tolerance;
    let widen_lo = (1.0 - f) * (1.0 - f) * (1.0 - 1e-9);
    // The refined period is at most cand(1 + f): below this, its band starts under the
    // floor bound.
    let lowest = SPARSE_FLOOR_FACTOR * p.floor_ms / ((1.0 + f) * (1.0 - f) * (1.0 + 1e-9));
    let weights = sparse_weights(p);
    let mut below = 0;
    let mut best: Option<(f64, Fit)> = None;
    for (i, &candidate) in xs.iter().enumerate() {
        if candidate <= 0.0 || candidate < lowest || (i > 0 && xs[i - 1] == candidate) {
            continue;
        }
        // Each explained x / k is within cand(1 ± f), so the refined period is too, and
        // what lies below cand(1 − f)² is below its on-time band: unexplained.
        while below < n && xs[below] < candidate * widen_lo {
            below += 1;
        }
        if below > spare {
            break;
        }
        let (_, total, periods, _) = sparse_fit(xs, candidate, p, &weights);
        if periods == 0 {
            continue;
        }
        let c = total / f64::from(periods);
        if c * (1.0 - f) < SPARSE_FLOOR_FACTOR * p.floor_ms {
            continue;
        }
        let (fit, _, periods, evidence) = sparse_fit(xs, c, p, &weights);
        if fit.explained() < at_least
            || evidence < SPARSE_MIN_EVIDENCE
            || periods as usize > SPARSE_MAX_MEAN_PERIODS * fit.explained()
        {
            continue;
        }
        let better = match &best {
            None => true,
            Some((_, b)) => {
                (fit.explained(), fit.on_time, usize::MAX - fit.missed)
                    > (b.explained(), b.on_time, usize::MAX - b.missed)
            }
        };
        if better {
            best = Some((c, fit));
        }
    }
    best
}
