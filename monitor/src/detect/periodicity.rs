//! How periodic a series of check-in intervals is.
//!
//! A beacon sleeps for a period, optionally randomised ("jitter"), and checks in; sometimes a
//! check-in fails and the next interval spans two or three periods. Other traffic (people,
//! request-driven services) has intervals spread over orders of magnitude. The analysis
//! reads the intervals in up to three ways and keeps the one that explains the most:
//!
//! - **steady**: the largest group of intervals that agree with one period within
//!   ±`tolerance` (the share of intervals "within a tolerance of the period").
//! - **with missed check-ins**: a period `c` such that each interval is within
//!   ±`fold_tolerance` of c, or of k × c with k − 1 check-ins missed (k ≤ `max_missed` + 1).
//!   The band is narrower than the steady one because a wide band around every multiple
//!   would cover almost any interval. A reading that assumes missed check-ins must rest on
//!   at least `missed_margin` more on-time intervals than check-ins it assumes missed:
//!   with few intervals, "mostly multiples of some period" fits random traffic too. The
//!   margin drops by one for every `MARGIN_RELIEF` intervals beyond `min_intervals`, down
//!   to "no more missed than on time", because chance fits thin out as intervals accrue.
//!
//! - **sparse** (from `sparse_min_intervals` on): a schedule that misses many check-ins,
//!   so that most intervals span several periods. Bands around k periods grow like √k (a
//!   sum of k independent jitters), and the reading must rest on evidence: the sum over
//!   explained intervals of −ln(the share of phases their band covers), which long
//!   intervals, whose bands cover every phase, do not add to. Its on-time band must clear
//!   a multiple of the floor, where a busy key's intervals pile up.
//!
//! On the intervals so explained (multiples divided by k) it computes RITA's timestamp
//! statistics (Active Countermeasures, `pkg/beacon/analyzer.go`): the Bowley skew from the
//! quartiles and the median absolute deviation relative to the median, and combines them
//! with the share explained into one score.
//!
//! Everything works on fixed-size stack buffers: no allocation per evaluation, and a
//! bounded amount of work (at most `RING` intervals).

use sparse::{best_sparse, sparse_applies, sparse_k, sparse_low, sparse_may_reach, sparse_ratio};

/// Most intervals one key keeps (the ring in `beacon::Series`).
pub const RING: usize = 32;

/// Intervals beyond `min_intervals` that lower the missed-check-in margin by one.
pub const MARGIN_RELIEF: usize = 4;

/// The knobs of the analysis (from `BeaconConfig`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreParams {
    /// Half-width of the steady band around the period, as a fraction of it.
    pub tolerance: f64,
    /// Half-width, per period, of the bands around c, 2c, 3c ... when reading missed
    /// check-ins.
    pub fold_tolerance: f64,
    /// Most consecutive missed check-ins one interval may stand for; 0 reads none.
    pub max_missed: u32,
    /// On-time intervals a reading with missed check-ins needs beyond the number missed,
    /// at `min_intervals`.
    pub missed_margin: u32,
    /// The fewest intervals a key is scored with (the margin's reference point).
    pub min_intervals: usize,
    /// The fewest intervals the sparse reading (schedules that miss many check-ins) is
    /// tried with; above `RING`, never.
    pub sparse_min_intervals: usize,
    /// The shortest interval that starts a check-in (`min_interval_secs`, ms): busy
    /// random traffic piles up just above it.
    pub floor_ms: f64,
}

impl ScoreParams {
    /// The missed-check-in margin with `n` intervals.
    pub fn margin(&self, n: usize) -> usize {
        (self.missed_margin as usize)
            .saturating_sub(n.saturating_sub(self.min_intervals) / MARGIN_RELIEF)
    }

    /// The fewest on-time intervals an admissible reading with missed check-ins that
    /// explains `explained` of `n` intervals has: all of them if it assumes none missed,
    /// else half of them plus the margin (`Fit::admissible`).
    fn on_time_needed(&self, explained: usize, n: usize) -> usize {
        explained.min((explained + self.margin(n)).div_ceil(2))
    }

    /// Most intervals an admissible reading with missed check-ins explains when at most
    /// `on_time` can be on time and at most `banded` explained at all, of `n`: all on time,
    /// or on time plus at most on time − margin folded.
    fn explained_bound(&self, on_time: usize, banded: usize, n: usize) -> usize {
        on_time
            .max((2 * on_time).saturating_sub(self.margin(n)))
            .min(banded)
    }

    /// Largest over smallest interval of a steady window.
    fn steady_ratio(&self) -> f64 {
        (1.0 + self.tolerance) / (1.0 - self.tolerance)
    }

    /// Largest over smallest on-time interval of a reading with missed check-ins, widened
    /// by a relative 1e-9 so rounding in `fold_k` cannot put an explained interval outside.
    fn on_time_ratio(&self) -> f64 {
        let f = self.fold_tolerance;
        (1.0 + f) / (1.0 - f) * (1.0 + 1e-9)
    }

    /// Largest over smallest explained interval of a reading with missed check-ins,
    /// widened likewise.
    fn banded_ratio(&self) -> f64 {
        let f = self.fold_tolerance;
        f64::from(self.max_missed + 1) * (1.0 + f) / (1.0 - f) * (1.0 + 1e-9)
    }
}

/// The fewest explained intervals that meet a share bar, for every count of intervals:
/// worked out once per configuration instead of on every analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareBar {
    /// `floor[n]`: the fewest of `n` intervals whose share meets the bar (n + 1 if none).
    floor: [u8; RING + 1],
}

impl ShareBar {
    pub fn new(min_share: f64) -> ShareBar {
        let mut floor = [0u8; RING + 1];
        for (n, slot) in floor.iter_mut().enumerate() {
            // Compared as `Periodicity::share` is computed.
            let e = (0..=n)
                .find(|&e| e as f64 / n as f64 >= min_share)
                .unwrap_or(n + 1);
            *slot = e as u8;
        }
        ShareBar { floor }
    }

    fn floor(&self, n: usize) -> usize {
        usize::from(self.floor[n])
    }
}

/// The periodicity statistics of one series of intervals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Periodicity {
    /// Intervals analysed.
    pub intervals: usize,
    /// Intervals explained by the period (on time, or a whole number of periods).
    pub explained: usize,
    /// Explained intervals that span missed check-ins.
    pub folded: usize,
    /// Check-ins missed in total (sum of k − 1 over the folded intervals).
    pub missed: usize,
    /// Median of the explained intervals, each divided by its number of periods (ms):
    /// the period estimate.
    pub median_ms: f64,
    /// Mean of the same (ms).
    pub mean_ms: f64,
    /// Median absolute deviation of the same from their median (ms).
    pub mad_ms: f64,
    /// Bowley (quartile) skew of the same, in [-1, 1]; 0 for a symmetric spread.
    pub skew: f64,
    /// `explained / intervals`.
    pub share: f64,
    /// `((1 - |skew|) + max(0, 1 - MAD/median) + share) / 3`, in [0, 1].
    pub score: f64,
}

impl Periodicity {
    /// MAD relative to the median (RITA's dispersion): 0 for a perfect period, about 0.1
    /// for ±20 % uniform jitter.
    pub fn jitter(&self) -> f64 {
        if self.median_ms > 0.0 {
            self.mad_ms / self.median_ms
        } else {
            0.0
        }
    }

    /// Explained intervals that were on time (not spanning missed check-ins).
    pub fn on_time(&self) -> usize {
        self.explained - self.folded
    }
}

/// Analyses `intervals` (milliseconds, any order). `None` when there are none or more than
/// `RING`.
pub fn analyze(intervals: &[u32], p: &ScoreParams) -> Option<Periodicity> {
    let mut sorted = [0f64; RING];
    let xs = sorted_intervals(intervals, &mut sorted)?;
    analyze_sorted(xs, p, 0)
}

/// `analyze`, or `None` when its share would be below `min_share`, found without the full
/// analysis where bounds show it (most irregular series: the common case for a busy key,
/// which is checked on every new interval).
pub fn analyze_if_share(intervals: &[u32], p: &ScoreParams, min_share: f64) -> Option<Periodicity> {
    analyze_if_bar(intervals, p, &ShareBar::new(min_share))
}

/// `analyze_if_share` with the bar worked out beforehand. Most series are refused from
/// their few smallest and largest intervals, before any sorting.
pub fn analyze_if_bar(intervals: &[u32], p: &ScoreParams, bar: &ShareBar) -> Option<Periodicity> {
    let n = intervals.len();
    if n == 0 || n > RING {
        return None;
    }
    let floor = bar.floor(n);
    if !extremes_may_reach(intervals, p, floor) {
        return None;
    }
    let mut sorted = [0f64; RING];
    let xs = sorted_intervals(intervals, &mut sorted)?;
    analyze_sorted(xs, p, floor)
}

/// False when neither reading can explain `floor` of `intervals` (unsorted), judged from
/// their few smallest and largest values; true when one may, or when `floor` leaves too
/// many window starts to judge this way.
///
/// Both runs that bound the readings (`steady_window`'s and `fold_bound`'s widest) hold
/// `floor` values only if, for some start j, the sorted values s[j] and s[j + floor − 1]
/// are within their ratio (`runs_reach`). With j < n − floor + 1 (the starts) those are
/// the smallest and the largest few values.
fn extremes_may_reach(intervals: &[u32], p: &ScoreParams, floor: usize) -> bool {
    let n = intervals.len();
    if floor == 0 {
        return true;
    }
    if floor > n {
        return false;
    }
    // s[j] is lo[j] and s[j + floor − 1] = s[n − starts + j] is hi[j] (each ascending).
    // Compared as `longest_run` compares.
    let fits = |lo: &[u32], hi: &[u32], ratio: f64| {
        lo.iter()
            .zip(hi)
            .any(|(&l, &h)| f64::from(h) <= ratio * f64::from(l))
    };
    let sparse = sparse_applies(p, n);
    // The sparse reading explains nothing below `sparse_low`: its run starts there.
    let (low, ratio) = (sparse_low(p), sparse_ratio(p));
    let sparse_fits = |lo: &[u32], hi: &[u32]| {
        lo.iter()
            .zip(hi)
            .any(|(&l, &h)| f64::from(l) >= low && f64::from(h) <= ratio * f64::from(l))
    };
    let reach = |lo: &[u32], hi: &[u32]| {
        fits(lo, hi, p.steady_ratio())
            || (p.max_missed > 0 && fits(lo, hi, p.banded_ratio()))
            || (sparse && sparse_fits(lo, hi))
    };
    match n - floor + 1 {
        1 => {
            let (mut lo, mut hi) = (u32::MAX, 0);
            for &v in intervals {
                lo = lo.min(v);
                hi = hi.max(v);
            }
            reach(&[lo], &[hi])
        }
        2 => {
            let (lo, hi) = extremes::<2>(intervals);
            reach(&lo, &hi)
        }
        3 => {
            let (lo, hi) = extremes::<3>(intervals);
            reach(&lo, &hi)
        }
        4 => {
            let (lo, hi) = extremes::<4>(intervals);
            reach(&lo, &hi)
        }
        // Too many starts to judge this way: the sorted check decides.
        _ => true,
    }
}

/// The `K` smallest and the `K` largest of `xs` (at least `K` values), each ascending.
fn extremes<const K: usize>(xs: &[u32]) -> ([u32; K], [u32; K]) {
    let mut lo = [u32::MAX; K];
    let mut hi = [0u32; K];
    for &v in xs {
        if v < lo[K - 1] {
            let mut j = K - 1;
            while j > 0 && lo[j - 1] > v {
                lo[j] = lo[j - 1];
                j -= 1;
            }
            lo[j] = v;
        }
        if v > hi[0] {
            let mut j = 0;
            while j + 1 < K && hi[j + 1] < v {
                hi[j] = hi[j + 1];
                j += 1;
            }
            hi[j] = v;
        }
    }
    (lo, hi)
}

/// Whether `longest_run(xs, ratio) >= len`, in `xs.len() − len + 1` comparisons.
fn runs_reach(xs: &[f64], ratio: f64, len: usize) -> bool {
    run_starts_by(xs, ratio, len, xs.len())
}

/// Whether a run of `len` sorted values within a factor `ratio` starts at index `last` or
/// before. For sorted `xs` and `ratio` ≥ 1 the run from start s covers exactly the values
/// up to `ratio · xs[s]` (as `longest_run` compares), so it holds `len` values when
/// `xs[s + len − 1]` is among them.
fn run_starts_by(xs: &[f64], ratio: f64, len: usize, last: usize) -> bool {
    len == 0
        || (len <= xs.len()
            && (0..=last.min(xs.len() - len)).any(|s| xs[s + len - 1] <= ratio * xs[s]))
}

/// False when no admissible reading with missed check-ins can explain `floor` (≥ 1)
/// intervals, by the counts `fold_bound` bounds it with, the on-time ones placed as in
/// `best_fold`: among the first n − floor + 1.
fn fold_may_reach(xs: &[f64], p: &ScoreParams, floor: usize) -> bool {
    let n = xs.len();
    let on_time_needed = p.on_time_needed(floor, n);
    p.max_missed > 0
        && floor <= n
        && runs_reach(xs, p.banded_ratio(), floor)
        && run_starts_by(xs, p.on_time_ratio(), on_time_needed, n - floor)
}

/// Most intervals a reading with missed check-ins can explain. It explains on-time
/// intervals, all within [c(1 − f), c(1 + f)], and folded ones; all of them lie within
/// [c(1 − f), (m + 1)·c(1 + f)] (f the fold tolerance, m the most missed check-ins), and an
/// admissible reading has no more folded intervals than on-time ones minus the margin.
/// Counting the fullest run of sorted intervals that spans each ratio bounds both,
/// whatever c is.
fn fold_bound(xs: &[f64], p: &ScoreParams) -> usize {
    if p.max_missed == 0 {
        return 0;
    }
    let on_time = longest_run(xs, p.on_time_ratio());
    let banded = longest_run(xs, p.banded_ratio());
    p.explained_bound(on_time, banded, xs.len())
}

/// The most sorted intervals with the largest at most `ratio` times the smallest.
fn longest_run(xs: &[f64], ratio: f64) -> usize {
    let mut widest = 0;
    let mut end = 0;
    for start in 0..xs.len() {
        end = end.max(start);
        while end < xs.len() && xs[end] <= ratio * xs[start] {
            end += 1;
        }
        widest = widest.max(end - start);
    }
    widest
}

/// `intervals` as sorted floats in `buf`; `None` when there are none or more than `RING`.
fn sorted_intervals<'b>(intervals: &[u32], buf: &'b mut [f64; RING]) -> Option<&'b [f64]> {
    let n = intervals.len();
    if n == 0 || n > RING {
        return None;
    }
    // Sorted as integers (cheaper compares); u32 -> f64 is exact and keeps the order.
    let mut ints = [0u32; RING];
    ints[..n].copy_from_slice(intervals);
    ints[..n].sort_unstable();
    for (x, &v) in buf.iter_mut().zip(&ints[..n]) {
        *x = f64::from(v);
    }
    Some(&buf[..n])
}

/// The analysis of `xs` (sorted, 1 to `RING` of them), or `None` when it would explain
/// fewer than `floor` intervals (0: always the analysis).
///
/// The reading with missed check-ins wins only when it explains more than the steady one,
/// so it is searched only when its bound allows that, and among fits that would win.
fn analyze_sorted(xs: &[f64], p: &ScoreParams, floor: usize) -> Option<Periodicity> {
    let n = xs.len();
    // Neither the steady window nor a reading with missed check-ins can reach `floor`:
    // found by comparing a few pairs rather than counting the runs.
    if floor > 0
        && !runs_reach(xs, p.steady_ratio(), floor)
        && !fold_may_reach(xs, p, floor)
        && !sparse_may_reach(xs, p, floor)
    {
        return None;
    }
    let fold_most = fold_bound(xs, p);
    let (start, count) = steady_window(xs, p.tolerance);
    debug_assert_eq!(count, longest_run(xs, p.steady_ratio()));
    // The explained intervals, each as one period, for the statistics.
    let mut periods = [0f64; RING];
    // Ties go to the steady reading, which assumes nothing missed.
    let fold = if fold_most > count {
        best_fold(xs, p, floor.max(count + 1))
    } else {
        None
    };
    let so_far = fold.map_or(count, |(_, fit)| fit.explained());
    // The sparse reading, last: it wins only where the others leave intervals over.
    let sparse_least = floor.max(so_far + 1);
    let sparse = if so_far < n && sparse_may_reach(xs, p, sparse_least) {
        best_sparse(xs, p, sparse_least)
    } else {
        None
    };
    let (explained, folded, missed) = match (sparse, fold) {
        (Some((c, fit)), _) => {
            let mut m = 0;
            for &x in xs.iter() {
                if let Some(k) = sparse_k(x, c, p) {
                    periods[m] = x / f64::from(k);
                    m += 1;
                }
            }
            (fit.explained(), fit.folded, fit.missed)
        }
        (None, Some((c, fit))) => {
            let mut m = 0;
            for &x in xs.iter() {
                if let Some(k) = fold_k(x, c, p) {
                    periods[m] = x / f64::from(k);
                    m += 1;
                }
            }
            (fit.explained(), fit.folded, fit.missed)
        }
        // The best fold, if any, explained fewer than `floor`.
        (None, None) if count < floor => return None,
        (None, None) => {
            periods[..count].copy_from_slice(&xs[start..start + count]);
            (count, 0, 0)
        }
    };
    let ps = &mut periods[..explained];
    sort(ps);

    let median = median_of_sorted(ps);
    let mean = ps.iter().sum::<f64>() / explained as f64;
    let (q1, q3) = (nearest_rank(ps, 0.25), nearest_rank(ps, 0.75));
    // RITA's guard: a skew from coinciding quartiles says nothing about the shape.
    let skew = if q3 - q1 <= 0.0 || median == q1 || median == q3 {
        0.0
    } else {
        ((q1 + q3 - 2.0 * median) / (q3 - q1)).clamp(-1.0, 1.0)
    };
    let mut dev = [0f64; RING];
    for (d, &x) in dev.iter_mut().zip(ps.iter()) {
        *d = (x - median).abs();
    }
    let dev = &mut dev[..explained];
    sort(dev);
    let mad = median_of_sorted(dev);
    let madm_score = if median > 0.0 {
        (1.0 - mad / median).max(0.0)
    } else {
        0.0
    };
    let share = explained as f64 / n as f64;
    Some(Periodicity {
        intervals: n,
        explained,
        folded,
        missed,
        median_ms: median,
        mean_ms: mean,
        mad_ms: mad,
        skew,
        share,
        score: ((1.0 - skew.abs()) + madm_score + share) / 3.0,
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fit {
    on_time: usize,
    folded: usize,
    missed: usize,
}

impl Fit {
    fn explained(&self) -> usize {
        self.on_time + self.folded
    }

    /// Enough on-time intervals to back the check-ins assumed missed.
    fn admissible(&self, margin: usize) -> bool {
        self.missed == 0 || self.missed + margin <= self.on_time
    }
}

/// The largest run of sorted intervals that fits in [c(1 − t), c(1 + t)] for some c, as
/// (start, count); among equal counts the narrowest.
fn steady_window(xs: &[f64], t: f64) -> (usize, usize) {
    // As `ScoreParams::steady_ratio` computes it.
    let ratio = (1.0 + t) / (1.0 - t);
    let (mut best_start, mut best_count, mut best_spread) = (0, 0, f64::INFINITY);
    let mut end = 0;
    for start in 0..xs.len() {
        end = end.max(start);
        while end < xs.len() && xs[end] <= ratio * xs[start] {
            end += 1;
        }
        let count = end - start;
        let spread = xs[end - 1] / xs[start].max(f64::MIN_POSITIVE);
        if count > best_count || (count == best_count && spread < best_spread) {
            (best_start, best_count, best_spread) = (start, count, spread);
        }
    }
    (best_start, best_count)
}

/// How many periods of `c` the interval `x` spans, if it is within the fold band of a whole
/// number of them (1 = on time).
fn fold_k(x: f64, c: f64, p: &ScoreParams) -> Option<u32> {
    let y = x / c;
    // k = round(y) (half away from zero) must be 1 to max_missed + 1; NaN fails too.
    if !(y >= 0.5 && y < f64::from(p.max_missed) + 1.5) {
        return None;
    }
    // `round` is a libm call on baseline x86_64; truncation by cast is one instruction, and
    // `y - t` is exact, so this is the same k.
    let t = f64::from(y as u32);
    let k = if y - t >= 0.5 { t + 1.0 } else { t };
    ((x - k * c).abs() <= p.fold_tolerance * k * c).then_some(k as u32)
}

/// The fit of period `c`, with the sum and period count of what it explains; `None` as
/// soon as it cannot explain `at_least` intervals.
fn fit_with(xs: &[f64], c: f64, p: &ScoreParams, at_least: usize) -> Option<(Fit, f64, u32)> {
    let mut fit = Fit::default();
    let (mut total, mut periods) = (0.0, 0u32);
    for (i, &x) in xs.iter().enumerate() {
        if fit.explained() + (xs.len() - i) < at_least {
            return None;
        }
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
    (fit.explained() >= at_least).then_some((fit, total, periods))
}

/// Most periods `Bands` follows (`max_missed` is at most 10); beyond, `fit_with` scans.
const MAX_BANDS: usize = 11;

/// Where, in the sorted intervals, each number of periods k of a period c explains
/// intervals: `fold_k(x, c) == Some(k)` holds exactly for the intervals from `start[k − 1]`
/// up to `end[k − 1]`. The set is contiguous because, for a fixed c, both parts of that test
/// only ever turn from false to true as x grows, rounding included: x / c ≥ k − ½ (what
/// `fold_k`'s rounding to k needs, and x / c < k + ½) and x − k·c ≥ −tol (with x − k·c ≤
/// tol). The search starts from the previous period's positions, so for neighbouring
/// candidates it is a few steps rather than a pass over every interval.
struct Bands {
    start: [usize; MAX_BANDS],
    end: [usize; MAX_BANDS],
}

impl Bands {
    fn new() -> Self {
        Bands {
            start: [0; MAX_BANDS],
            end: [0; MAX_BANDS],
        }
    }

    /// The intervals `k` periods of `c` explain: `start..end` of sorted `xs` (empty when
    /// `end <= start`).
    #[inline]
    fn band(&mut self, xs: &[f64], c: f64, k: u32, p: &ScoreParams) -> (usize, usize) {
        let i = (k - 1) as usize;
        let kf = f64::from(k);
        // The terms of `fold_k`, computed as it computes them.
        let kc = kf * c;
        let tol = p.fold_tolerance * kf * c;
        let start = first_where(xs, self.start[i], |x| x / c >= kf - 0.5 && x - kc >= -tol);
        let end = first_where(xs, self.end[i].max(start), |x| {
            x / c >= kf + 0.5 || x - kc > tol
        });
        self.start[i] = start;
        self.end[i] = end;
        (start, end)
    }

    /// What `fit_with(xs, c, p, 0)` sums: the explained intervals' total and their number
    /// of periods. `prefix[i]` is the sum of `xs[..i]`; the intervals are whole
    /// milliseconds below 2^32 and at most `RING` of them, so every sum is an exact
    /// integer and the total is the one `fit_with` adds up in order.
    fn sums(&mut self, xs: &[f64], prefix: &[f64], c: f64, p: &ScoreParams) -> (f64, u32) {
        let (mut total, mut periods) = (0.0, 0u32);
        for k in 1..=p.max_missed + 1 {
            let (start, end) = self.band(xs, c, k, p);
            if end > start {
                total += prefix[end] - prefix[start];
                periods += k * (end - start) as u32;
            }
            // Every later band lies above this one's start.
            if start == xs.len() {
                break;
            }
        }
        (total, periods)
    }

    /// `fit_with(xs, c, p, at_least)`'s fit (`None` alike), band by band: the bands lie in
    /// order of k, so what lies below a band's start and in no earlier band is
    /// unexplained, and the search stops once too much is.
    fn fit(&mut self, xs: &[f64], c: f64, p: &ScoreParams, at_least: usize) -> Option<Fit> {
        let n = xs.len();
        let mut fit = Fit::default();
        for k in 1..=p.max_missed + 1 {
            let (start, end) = self.band(xs, c, k, p);
            if fit.explained() + (n - start) < at_least {
                return None;
            }
            let count = end.saturating_sub(start);
            if k == 1 {
                fit.on_time += count;
            } else {
                fit.folded += count;
                fit.missed += (k - 1) as usize * count;
            }
            if start == n {
                break;
            }
        }
        (fit.explained() >= at_least).then_some(fit)
    }
}

/// The first index of sorted `xs` where `pred` holds (`xs.len()` if none), for a `pred`
/// that holds from some index on; searched from `from` in either direction.
fn first_where(xs: &[f64], from: usize, pred: impl Fn(f64) -> bool) -> usize {
    let mut i = from.min(xs.len());
    while i > 0 && pred(xs[i - 1]) {
        i -= 1;
    }
    while i < xs.len() && !pred(xs[i]) {
        i += 1;
    }
    i
}

/// The period that explains the most intervals when missed check-ins are allowed, and its
/// fit, among admissible fits, if it explains at least `at_least` (the best among those is
/// the best of all then). Candidates are the intervals themselves (one of them is on time
/// if any is), each refined once to total time / total periods of what it explains.
fn best_fold(xs: &[f64], p: &ScoreParams, at_least: usize) -> Option<(f64, Fit)> {
    if p.max_missed == 0 {
        return None;
    }
    let n = xs.len();
    let margin = p.margin(n);
    // The intervals a fit may leave unexplained.
    let spare = n.checked_sub(at_least)?;
    // An admissible fit that explains `at_least` has that many on time if it assumes no
    // missed check-ins, else at least (at_least + margin) / 2. Its on-time intervals come
    // first among those it explains (fewer periods each) and lie within `on_time_ratio`
    // of each other, so what lies below them is unexplained: they start among the first
    // `spare + 1`.
    let on_time_needed = p.on_time_needed(at_least, n);
    if !run_starts_by(xs, p.on_time_ratio(), on_time_needed, spare) {
        return None;
    }
    let f = p.fold_tolerance;
    // Widened so rounding cannot move an interval across a bound.
    let (widen_lo, widen_hi) = (
        (1.0 - f) * (1.0 - f) * (1.0 - 1e-9),
        (1.0 + f) * (1.0 + f) * (1.0 + 1e-9),
    );
    let most = f64::from(p.max_missed + 1);
    let mut prefix = [0f64; RING + 1];
    for (i, &x) in xs.iter().enumerate() {
        prefix[i + 1] = prefix[i] + x;
    }
    let mut bands = ((p.max_missed as usize) < MAX_BANDS).then(Bands::new);
    // Intervals below the candidate's lower bound, and at most its upper bounds: the bounds
    // grow with the candidate, so the counts only move forward.
    let (mut below, mut on_time_end, mut banded_end) = (0, 0, 0);
    let mut best: Option<(f64, Fit)> = None;
    // The last few refined periods tried (NaN never equals one).
    let mut refined = [f64::NAN; 4];
    let mut next_refined = 0u8;
    for (i, &candidate) in xs.iter().enumerate() {
        // Equal neighbours give the same candidate.
        if candidate <= 0.0 || (i > 0 && xs[i - 1] == candidate) {
            continue;
        }
        // The refined period is a weighted mean of intervals / periods that the candidate
        // explains, so within [cand(1 − f), cand(1 + f)]; the refined fit's on-time
        // intervals are then within [cand(1 − f)², cand(1 + f)²] and all it explains
        // within (m + 1)·cand(1 + f)². A candidate whose admissible fit cannot reach
        // `at_least` by those counts is skipped without computing it.
        let (lo, hi, band_hi) = (
            candidate * widen_lo,
            candidate * widen_hi,
            most * candidate * widen_hi,
        );
        while below < n && xs[below] < lo {
            below += 1;
        }
        // The bound below needs `below <= spare`, and `below` only grows.
        if below > spare {
            break;
        }
        while on_time_end < n && xs[on_time_end] <= hi {
            on_time_end += 1;
        }
        while banded_end < n && xs[banded_end] <= band_hi {
            banded_end += 1;
        }
        let on_time = on_time_end - below;
        let banded = banded_end - below;
        if p.explained_bound(on_time, banded, n) < at_least {
            continue;
        }
        let (total, periods) = match bands.as_mut() {
            Some(b) => b.sums(xs, &prefix, candidate, p),
            // At least 0: always a fit.
            None => match fit_with(xs, candidate, p, 0) {
                Some((_, total, periods)) => (total, periods),
                None => continue,
            },
        };
        let c = if periods > 0 {
            total / f64::from(periods)
        } else {
            candidate
        };
        // Neighbouring candidates in a cluster often refine to the same period, whose fit
        // is then the same and cannot be strictly better.
        if refined.contains(&c) {
            continue;
        }
        refined[usize::from(next_refined)] = c;
        next_refined = (next_refined + 1) % 4;
        let fit = match bands.as_mut() {
            Some(b) => b.fit(xs, c, p, at_least),
            None => fit_with(xs, c, p, at_least).map(|(fit, _, _)| fit),
        };
        let Some(fit) = fit else {
            continue;
        };
        if !fit.admissible(margin) {
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

fn sort(xs: &mut [f64]) {
    xs.sort_unstable_by(f64::total_cmp);
}

fn median_of_sorted(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// RITA's quartile: the element at index round(q × (n − 1)) of the sorted values.
fn nearest_rank(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let i = (q * (xs.len() - 1) as f64).round() as usize;
    xs[i.min(xs.len() - 1)]
}

#[path = "periodicity_sparse.rs"]
mod sparse;

#[cfg(test)]
#[path = "periodicity_tests.rs"]
mod tests;
