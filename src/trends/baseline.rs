//! Per-term baseline: exponentially weighted mean and variance of distinct authors per active
//! bucket, and the burst score of a new bucket against it.
//!
//! The weighted sums `w = Σ λ^age`, `s1 = Σ λ^age·x`, `s2 = Σ λ^age·x²` are kept instead of a
//! running mean so that (a) a term with a short history gets the mean of what it has (no bias
//! towards an arbitrary start value), and (b) `k` quiet buckets are folded in lazily in closed
//! form (`s1, s2 *= λ^k`, `w = λ^k·w + (1 − λ^k)/(1 − λ)`) when the term is next touched, instead
//! of visiting every idle term every bucket.

use serde::{Deserialize, Serialize};

/// Weighted sums of one term's history; `last` is the ordinal of the newest active bucket folded
/// in (`None`: no history yet).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Baseline {
    pub w: f64,
    pub s1: f64,
    pub s2: f64,
    pub last: Option<u64>,
}

/// Mean, the standard deviation used for scoring, and the score of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub mean: f64,
    pub std: f64,
    pub score: f64,
}

impl Baseline {
    /// Folds in the quiet buckets before ordinal `ord` (each counts as 0 authors).
    pub fn catch_up(&mut self, ord: u64, lambda: f64) {
        let Some(last) = self.last else { return };
        let quiet = ord.saturating_sub(last + 1);
        if quiet == 0 {
            return;
        }
        let d = lambda.powf(quiet as f64);
        self.w = d * self.w + (1.0 - d) / (1.0 - lambda);
        self.s1 *= d;
        self.s2 *= d;
        self.last = Some(ord - 1);
    }

    /// Mean and variance of the history folded in so far.
    pub fn mean_var(&self) -> (f64, f64) {
        if self.w <= 0.0 {
            return (0.0, 0.0);
        }
        let mean = self.s1 / self.w;
        (mean, (self.s2 / self.w - mean * mean).max(0.0))
    }

    /// Score of `x` authors against the history: `(x − mean) / sqrt(max(var, mean, floor))`.
    /// `mean` is the Poisson variance of a count with that mean: a short or flat history must
    /// not make a term look more surprising than chance allows.
    pub fn score(&self, x: u32, variance_floor: f64) -> Score {
        let (mean, var) = self.mean_var();
        let std = var.max(mean).max(variance_floor).sqrt();
        Score {
            mean,
            std,
            score: (f64::from(x) - mean) / std,
        }
    }

    /// Folds in active bucket `ord` with `x` authors (after [`Baseline::catch_up`]).
    pub fn push(&mut self, ord: u64, x: u32, lambda: f64) {
        self.catch_up(ord, lambda);
        let x = f64::from(x);
        self.w = lambda * self.w + 1.0;
        self.s1 = lambda * self.s1 + x;
        self.s2 = lambda * self.s2 + x * x;
        self.last = Some(ord);
    }
}

/// Per-bucket decay factor for a half-life in buckets.
pub fn lambda(half_life_buckets: f64) -> f64 {
    0.5f64.powf(1.0 / half_life_buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_quiet_buckets_equal_explicit_zeros() {
        let l = lambda(30.0);
        let (mut lazy, mut eager) = (Baseline::default(), Baseline::default());
        for (o, x) in [(0, 5), (1, 7), (2, 6)] {
            lazy.push(o, x, l);
            eager.push(o, x, l);
        }
        for o in 3..20 {
            eager.push(o, 0, l);
        }
        lazy.push(20, 9, l);
        eager.push(20, 9, l);
        let (a, b) = (lazy.mean_var(), eager.mean_var());
        assert!(
            (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn short_history_is_unbiased_and_floored() {
        let l = lambda(30.0);
        let mut b = Baseline::default();
        assert_eq!(b.score(7, 1.0).score, 7.0);
        b.push(0, 4, l);
        b.push(1, 4, l);
        let s = b.score(4, 1.0);
        assert!((s.mean - 4.0).abs() < 1e-9);
        assert!((s.std - 2.0).abs() < 1e-9, "Poisson floor: sqrt(mean)");
        assert_eq!(s.score, 0.0);
    }
}
