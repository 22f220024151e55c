//! The count-model burst test: a p-value for a term's distinct authors in one closed bucket, from
//! a negative binomial fitted to the term's own history, and Benjamini–Hochberg over all the
//! terms tested in the bucket.
//!
//! The predictive distribution of the next bucket is a Poisson–Gamma mixture: the term's rate
//! gets a Gamma posterior from its EWMA sums (`a = a0 + s1` authors over `b = b0 + w` weighted
//! buckets, so a short history is uncertain and a new term falls back on the prior of
//! [`PRIOR_MEAN`] authors per bucket worth [`PRIOR_BUCKETS`] buckets); when the history varies more
//! than Poisson (`var > mean`), the extra variance is added. Both give a negative binomial with
//! mean `μ = max(a / b, mean)` (the prior may raise a quiet term's expectation, never lower a busy
//! one's) and variance `V = (μ + max(var − mean, 0)) · (1 + 1/b)`; the p-value is its
//! upper tail `P(X ≥ x)`. A burst that straddles a bucket boundary is also tested over the two
//! buckets together (against the sum's predictive distribution as of the first), and the term's
//! p-value is the smaller of the two, doubled (Bonferroni). The Gamma posterior uses `w` (not the larger effective sample size of
//! the EWMA) as the number of buckets seen, which overstates the rate's uncertainty a little: the
//! p-values err on the conservative side.

use super::baseline::Baseline;

/// Prior rate of a term never seen, in distinct authors per bucket.
pub const PRIOR_MEAN: f64 = 0.1;
/// Weight of the prior, in buckets. A new term's next bucket is then geometric with
/// `P(X ≥ k) ≈ 0.09^k`: 6 distinct authors at once is about a one-in-two-million chance.
pub const PRIOR_BUCKETS: f64 = 10.0;

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 coefficients; relative error about 1e-15).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Predictive distribution of a term's distinct authors in its next bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictive {
    pub mean: f64,
    pub var: f64,
}

impl Predictive {
    /// The predictive distribution after the history in `base` (already caught up to the bucket
    /// being scored).
    pub fn of(base: &Baseline) -> Predictive {
        Predictive::window(base, 1)
    }

    /// The predictive distribution of the sum of the term's next `n` buckets: mean `n·μ`,
    /// variance `n·(μ + extra)·(1 + n/b)` (the buckets share the uncertain rate).
    pub fn window(base: &Baseline, n: u32) -> Predictive {
        let n = f64::from(n);
        let a = PRIOR_MEAN * PRIOR_BUCKETS + base.s1.max(0.0);
        let b = PRIOR_BUCKETS + base.w.max(0.0);
        let (m, v) = base.mean_var();
        // The posterior mean, but never below the term's own mean: the prior only ever makes a
        // term with little history look busier, never a busy term quieter than it is.
        let mean = (a / b).max(m);
        let extra = (v - m).max(0.0);
        Predictive {
            mean: n * mean,
            var: n * (mean + extra) * (1.0 + n / b),
        }
    }

    /// `P(X ≥ x)`. Counts at or below the mean get 1 (no excess: never significant).
    pub fn upper_tail(&self, x: u32) -> f64 {
        let xf = f64::from(x);
        if xf <= self.mean || self.mean <= 0.0 {
            return 1.0;
        }
        let excess = self.var - self.mean;
        // (log pmf at x, ratio pmf(k+1)/pmf(k) as a function of k)
        let poisson = excess <= self.mean * 1e-9;
        let (r, q) = if poisson {
            (f64::INFINITY, 0.0)
        } else {
            (self.mean * self.mean / excess, excess / self.var)
        };
        let ln_pmf = if poisson {
            -self.mean + xf * self.mean.ln() - ln_gamma(xf + 1.0)
        } else {
            // NB(r, p = 1 − q): Γ(k + r) / (Γ(r) k!) · p^r · q^k.
            ln_gamma(xf + r) - ln_gamma(r) - ln_gamma(xf + 1.0) + r * (1.0 - q).ln() + xf * q.ln()
        };
        let mut term = ln_pmf.exp();
        if term == 0.0 {
            return 0.0;
        }
        let mut sum = 0.0;
        let mut k = xf;
        for _ in 0..100_000 {
            sum += term;
            let ratio = if poisson {
                self.mean / (k + 1.0)
            } else {
                (k + r) / (k + 1.0) * q
            };
            term *= ratio;
            k += 1.0;
            if term <= sum * 1e-13 {
                break;
            }
        }
        sum.min(1.0)
    }
}

/// Benjamini–Hochberg at level `q`: the largest p-value rejected among `ps` (every p at or below
/// it is a discovery), or `None` when nothing is. Controls the expected share of false
/// discoveries among the discoveries at `q` for independent tests (and the chance of any false
/// discovery at `q` when no term bursts).
pub fn bh_cutoff(ps: &mut [f64], q: f64) -> Option<f64> {
    bh_cutoff_among(ps, q, ps.len())
}

/// [`bh_cutoff`] for `ps` that are one share of a family of `family` tests (at least
/// `ps.len()`) whose other members are judged elsewhere: each rank's level is that of the whole
/// family. Applied to every share, the union's expected share of false discoveries is at most
/// `q` (each share is BH at level `q·len/family`), and a lone burst needs the p-value it would
/// need in the whole family.
pub fn bh_cutoff_among(ps: &mut [f64], q: f64, family: usize) -> Option<f64> {
    let m = family.max(ps.len());
    if ps.is_empty() {
        return None;
    }
    ps.sort_by(f64::total_cmp);
    let mut cut = None;
    for (i, p) in ps.iter().enumerate() {
        if *p <= q * (i + 1) as f64 / m as f64 {
            cut = Some(*p);
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::super::baseline::lambda;
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..30u32 {
            f *= f64::from(n);
            let got = ln_gamma(f64::from(n) + 1.0);
            assert!((got - f.ln()).abs() < 1e-10 * f.ln().max(1.0), "{n}: {got}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    fn exact_poisson_tail(mean: f64, x: u32) -> f64 {
        let mut below = 0.0;
        let mut pmf = (-mean).exp();
        for k in 0..x {
            below += pmf;
            pmf *= mean / f64::from(k + 1);
        }
        1.0 - below
    }

    #[test]
    fn tails_are_right_for_poisson_and_negative_binomial() {
        let p = Predictive {
            mean: 4.0,
            var: 4.0,
        };
        for x in [5, 8, 12] {
            let (a, b) = (p.upper_tail(x), exact_poisson_tail(4.0, x));
            assert!(
                (a - b).abs() < 1e-12 * b.max(1e-300) + 1e-15,
                "{x}: {a} {b}"
            );
        }
        // NB with r = 1 is geometric: P(X ≥ x) = q^x, here mean 3, var 12 (q = 3/4).
        let g = Predictive {
            mean: 3.0,
            var: 12.0,
        };
        for x in [4, 10, 40] {
            let want = 0.75f64.powi(x as i32);
            assert!(
                (g.upper_tail(x) / want - 1.0).abs() < 1e-9,
                "{x}: {}",
                g.upper_tail(x)
            );
        }
        assert_eq!(g.upper_tail(3), 1.0, "no excess, no test");
    }

    #[test]
    fn overdispersed_history_needs_a_bigger_burst() {
        let l = lambda(30.0);
        let (mut flat, mut wild) = (Baseline::default(), Baseline::default());
        for o in 0..200u64 {
            flat.push(o, 5, l);
            wild.push(o, if o % 2 == 0 { 1 } else { 9 }, l);
        }
        let (pf, pw) = (Predictive::of(&flat), Predictive::of(&wild));
        assert!((pf.mean - pw.mean).abs() < 0.2, "{pf:?} {pw:?}");
        assert!(pw.upper_tail(15) > 100.0 * pf.upper_tail(15));
        // A new term: 6 distinct authors at once is far outside the prior, 2 is not.
        let new = Predictive::of(&Baseline::default());
        assert!(new.upper_tail(6) < 1e-5, "{}", new.upper_tail(6));
        assert!(new.upper_tail(2) > 0.005, "{}", new.upper_tail(2));
        // A busy term is never expected quieter than its own mean.
        assert!(pf.mean >= flat.mean_var().0);
    }

    #[test]
    fn benjamini_hochberg_cutoff() {
        let mut ps = vec![0.5, 0.001, 0.03, 0.0002, 0.9];
        // m = 5, q = 0.05: thresholds 0.01, 0.02, 0.03, 0.04, 0.05 → 0.0002, 0.001, 0.03 pass.
        assert_eq!(bh_cutoff(&mut ps, 0.05), Some(0.03));
        assert_eq!(bh_cutoff(&mut [0.2, 0.3], 0.05), None);
        assert_eq!(bh_cutoff(&mut [], 0.05), None);
        // One share of a family three times its size: every level is a third.
        let mut ps = [0.011, 0.04, 0.001, 0.5];
        assert_eq!(bh_cutoff(&mut ps.clone(), 0.05), Some(0.011));
        assert_eq!(bh_cutoff_among(&mut ps, 0.05, 12), Some(0.001));
        assert_eq!(bh_cutoff_among(&mut [0.02], 0.05, 3), None);
        assert_eq!(bh_cutoff_among(&mut [0.02], 0.05, 1), Some(0.02));
    }
}
