//! Order statistics for the benchmark reports: quantiles and the distribution-free
//! confidence interval of a median, and the summary of paired ratios both paired stages
//! (TCP connects, exec storm) report.

use super::median;

/// Round-by-round ratios of one configuration to bare, summarized.
pub struct RatioSummary {
    /// The ratios, sorted.
    pub sorted: Vec<f64>,
    pub median: f64,
    /// 95 % interval of the median (`None`: too few rounds).
    pub ci95: (Option<f64>, Option<f64>),
    pub quartiles: (f64, f64),
    /// Rounds whose ratio reached the goal.
    pub at_least_goal: usize,
}

impl RatioSummary {
    pub fn of(mut ratios: Vec<f64>, goal: f64) -> RatioSummary {
        ratios.sort_by(f64::total_cmp);
        RatioSummary {
            median: median(&ratios),
            ci95: median_interval(&ratios, 0.95),
            quartiles: (quantile(&ratios, 0.25), quantile(&ratios, 0.75)),
            at_least_goal: ratios.iter().filter(|&&r| r >= goal).count(),
            sorted: ratios,
        }
    }

    /// The table cells: median, its interval, quartiles, rounds at the goal.
    pub fn cells(&self) -> [String; 4] {
        [
            format!("{:.3}", self.median),
            match self.ci95 {
                (Some(lo), Some(hi)) => format!("{lo:.3} – {hi:.3}"),
                _ => "too few rounds".into(),
            },
            format!("{:.3} – {:.3}", self.quartiles.0, self.quartiles.1),
            format!("{} of {}", self.at_least_goal, self.sorted.len()),
        ]
    }
}

/// Linear-interpolated quantile of a sorted list.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q * (n - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos.fract());
            sorted[i] + (sorted[(i + 1).min(n - 1)] - sorted[i]) * frac
        }
    }
}

/// The distribution-free confidence interval of the median of a sorted sample: the k-th
/// smallest and k-th largest values, with k the largest index such that a Binomial(n, 1/2)
/// falls below k with probability at most (1 - level) / 2. `None` when the sample is too
/// small for that level (n < 6 at 95 %).
pub fn median_interval(sorted: &[f64], level: f64) -> (Option<f64>, Option<f64>) {
    let n = sorted.len();
    let tail = (1.0 - level) / 2.0;
    // P(B <= j) for B ~ Binomial(n, 1/2), accumulated term by term.
    let mut term = 0.5f64.powi(n as i32);
    let mut cdf = 0.0;
    let mut k = 0;
    for j in 0..n {
        cdf += term;
        if cdf > tail {
            break;
        }
        // P(B < j + 1) <= tail: the (j + 1)-th order statistic is a valid lower bound.
        k = j + 1;
        term *= (n - j) as f64 / (j + 1) as f64;
    }
    if k == 0 {
        return (None, None);
    }
    (Some(sorted[k - 1]), Some(sorted[n - k]))
}

#[cfg(test)]
mod tests {
    use super::{median_interval, quantile};

    #[test]
    fn median_interval_matches_binomial_tables() {
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        // n = 30: P(B <= 9) = 0.0214, P(B <= 10) = 0.0494 -> the 10th and 21st values.
        assert_eq!(median_interval(&v, 0.95), (Some(10.0), Some(21.0)));
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // n = 10: P(B <= 1) = 0.0107, P(B <= 2) = 0.0547 -> the 2nd and 9th values.
        assert_eq!(median_interval(&v, 0.95), (Some(2.0), Some(9.0)));
        // n = 5: P(B = 0) = 0.031 > 0.025: no 95 % interval.
        assert_eq!(
            median_interval(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95),
            (None, None)
        );
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
