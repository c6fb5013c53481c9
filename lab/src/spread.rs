//! Figures measured several times: each run kept, reported as the median with the
//! lowest and highest run, so that a rerun can be judged against the spread.

/// Several runs of one figure.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    /// Each run's value.
    pub runs: Vec<f64>,
}

impl Spread {
    /// The median (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let mut v = self.runs.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The lowest and the highest run.
    pub fn range(&self) -> (f64, f64) {
        let lowest = self.runs.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = self.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lowest, highest)
    }

    /// `median (lowest-highest)` with `decimals`.
    pub fn show(&self, decimals: usize) -> String {
        if self.runs.is_empty() {
            return "-".into();
        }
        let (lo, hi) = self.range();
        if self.runs.len() == 1 {
            return format!("{:.decimals$}", self.median());
        }
        format!("{:.decimals$} ({lo:.decimals$}-{hi:.decimals$})", self.median())
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn a_spread_shows_its_median_and_range() {
        let s = Spread {
            runs: vec![3.0, 1.0, 2.0],
        };
        assert_eq!(s.median(), 2.0);
        assert_eq!(s.range(), (1.0, 3.0));
        assert_eq!(s.show(1), "2.0 (1.0-3.0)");
        let even = Spread {
            runs: vec![4.0, 1.0, 2.0, 3.0],
        };
        assert_eq!(even.median(), 2.5);
        assert_eq!(Spread { runs: vec![5.0] }.show(0), "5");
        assert_eq!(Spread::default().show(0), "-");
        assert!(Spread::default().median().is_nan());
    }
}
