//! Statistics helpers shared by the distribution and audit tests. Floats are fine here: this
//! is the *checker*, not the sampler.
#![allow(dead_code)]

use statrs::distribution::{Beta, ContinuousCDF};

/// Exact CDF of the discrete Laplace with scale b: P(Z = z) = (1-q)/(1+q) q^|z|, q = e^{-1/b}.
/// P(Z <= x) = q^{-x}/(1+q) for x < 0 and 1 - q^{x+1}/(1+q) for x >= 0.
pub fn dlap_cdf(b: f64, x: i64) -> f64 {
    let lq = -1.0 / b; // ln q
    let q = lq.exp();
    if x < 0 {
        ((-x) as f64 * lq).exp() / (1.0 + q)
    } else {
        1.0 - ((x as f64 + 1.0) * lq).exp() / (1.0 + q)
    }
}

/// CDF of the discrete Gaussian N_Z(0, σ²).
/// * σ < 100: exact, by summing exp(-x²/2σ²) over |x| <= 40σ + 40 (the rest is < e^{-800}).
/// * σ >= 100: Φ((x + 1/2)/σ). By the Euler–Maclaurin formula the midpoint sum differs from the
///   integral by at most max|f'|/24 <= 0.01/σ² <= 10^-6 per CDF value, and the normalising
///   constant differs from σ√(2π) by a factor 1 + O(e^{-2π²σ²}); both are far below what
///   10^6 samples can resolve.
pub struct DGaussCdf {
    sigma: f64,
    lo: i64,
    table: Vec<f64>, // cumulative for x in [lo, -lo]
}

impl DGaussCdf {
    pub fn new(sigma: f64) -> Self {
        if sigma >= 100.0 {
            return DGaussCdf { sigma, lo: 0, table: Vec::new() };
        }
        let lo = -((40.0 * sigma).ceil() as i64 + 40);
        let w: Vec<f64> = (lo..=-lo).map(|x| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp()).collect();
        let z: f64 = w.iter().sum();
        let mut acc = 0.0;
        let table = w
            .iter()
            .map(|p| {
                acc += p / z;
                acc
            })
            .collect();
        DGaussCdf { sigma, lo, table }
    }

    pub fn cdf(&self, x: i64) -> f64 {
        if self.table.is_empty() {
            let n = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
            return n.cdf((x as f64 + 0.5) / self.sigma);
        }
        if x < self.lo {
            0.0
        } else if x > -self.lo {
            1.0
        } else {
            self.table[(x - self.lo) as usize]
        }
    }
}

/// Kolmogorov–Smirnov distance sup_x |F_n(x) - F(x)| for integer samples (sorted in place).
/// For a discrete F the supremum is attained at the sample values (left and right limits).
pub fn ks_distance(samples: &mut [i64], cdf: impl Fn(i64) -> f64) -> f64 {
    samples.sort_unstable();
    let n = samples.len() as f64;
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < samples.len() {
        let x = samples[i];
        let mut j = i;
        while j < samples.len() && samples[j] == x {
            j += 1;
        }
        let f_hi = cdf(x);
        let f_lo = cdf(x - 1);
        d = d.max((j as f64 / n - f_hi).abs());
        d = d.max((i as f64 / n - f_lo).abs());
        i = j;
    }
    d
}

/// DKW–Massart: P(sup|F_n - F| > t) <= 2 exp(-2 n t²) for every F (discrete F only makes it
/// more conservative). Solving for a false-alarm rate `alpha`: t = sqrt(ln(2/alpha) / (2n)).
pub fn dkw_threshold(n: usize, alpha: f64) -> f64 {
    ((2.0 / alpha).ln() / (2.0 * n as f64)).sqrt()
}

/// Pearson chi-square statistic over bins of (roughly) equal probability, with bins whose
/// expected count is below 50 merged into a neighbour. Returns (statistic, degrees of freedom).
/// Bin edges come from the exact CDF by bisection, so this works at any scale.
pub fn chi_square(samples_sorted: &[i64], cdf: &dyn Fn(i64) -> f64, target_bins: usize) -> (f64, usize) {
    let n = samples_sorted.len() as f64;
    // smallest integer x with cdf(x) >= p, searched in [-2^52, 2^52]
    let quantile = |p: f64| -> i64 {
        let (mut lo, mut hi) = (-(1i64 << 52), 1i64 << 52);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if cdf(mid) >= p {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    };
    let mut edges: Vec<i64> = (1..target_bins).map(|j| quantile(j as f64 / target_bins as f64)).collect();
    edges.dedup();
    // bins: (-inf, e0], (e0, e1], ..., (e_last, inf)
    let mut bins: Vec<(f64, f64)> = Vec::new(); // (expected prob, observed)
    let mut prev_f = 0.0;
    let mut prev_idx = 0usize;
    for &e in &edges {
        let f = cdf(e);
        let idx = samples_sorted.partition_point(|&x| x <= e);
        bins.push((f - prev_f, (idx - prev_idx) as f64));
        prev_f = f;
        prev_idx = idx;
    }
    bins.push((1.0 - prev_f, (samples_sorted.len() - prev_idx) as f64));
    // merge small-expectation bins
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for b in bins {
        match merged.last_mut() {
            Some(last) if last.0 * n < 50.0 => {
                last.0 += b.0;
                last.1 += b.1;
            }
            _ => merged.push(b),
        }
    }
    while merged.len() > 1 && merged.last().is_some_and(|l| l.0 * n < 50.0) {
        let l = merged.pop().unwrap();
        let p = merged.last_mut().unwrap();
        p.0 += l.0;
        p.1 += l.1;
    }
    let stat = merged
        .iter()
        .map(|&(p, o)| {
            let e = p * n;
            (o - e) * (o - e) / e
        })
        .sum();
    (stat, merged.len() - 1)
}

/// Laurent–Massart (2000): for X ~ χ²_k, P(X >= k + 2√(k x) + 2x) <= e^{-x}. With
/// x = ln(1/alpha) this threshold has false-alarm rate <= alpha (for the chi-square limit of
/// Pearson's statistic; every bin has expectation >= 50, where that limit is accurate).
pub fn chi_square_threshold(df: usize, alpha: f64) -> f64 {
    let x = (1.0 / alpha).ln();
    let k = df as f64;
    k + 2.0 * (k * x).sqrt() + 2.0 * x
}

/// Two-sided Clopper–Pearson interval for `successes` out of `n` at level 1 - alpha.
pub fn clopper_pearson(successes: u64, n: u64, alpha: f64) -> (f64, f64) {
    let x = successes as f64;
    let nn = n as f64;
    let lower = if successes == 0 { 0.0 } else { Beta::new(x, nn - x + 1.0).unwrap().inverse_cdf(alpha / 2.0) };
    let upper = if successes == n { 1.0 } else { Beta::new(x + 1.0, nn - x).unwrap().inverse_cdf(1.0 - alpha / 2.0) };
    (lower, upper)
}

/// A named event on outputs, fixed before sampling.
pub type Event<'a, T> = (&'a str, &'a dyn Fn(&T) -> bool);

/// An owned event.
pub type OwnedEvent<T> = (String, Box<dyn Fn(&T) -> bool>);

/// Empirical lower bound on ε from samples of M(D) and M(D'), over a fixed list of events
/// chosen before sampling. For each event E and both directions, with Clopper–Pearson bounds
/// at a Bonferroni-corrected level, ε >= ln(p_hi.lower / p_lo.upper) holds with probability
/// >= 1 - alpha jointly (for δ = 0). Returns the maximum over events (0 if none is informative).
pub fn epsilon_lower_bound<T>(s0: &[T], s1: &[T], events: &[Event<'_, T>], alpha: f64) -> (f64, String) {
    let a = alpha / (2.0 * events.len() as f64);
    let mut best = (0.0f64, String::from("none"));
    for (name, ev) in events {
        let c0 = s0.iter().filter(|x| ev(x)).count() as u64;
        let c1 = s1.iter().filter(|x| ev(x)).count() as u64;
        // two bounds per direction, each at a/2 inside clopper_pearson's two-sided level a
        let (l0, u0) = clopper_pearson(c0, s0.len() as u64, a);
        let (l1, u1) = clopper_pearson(c1, s1.len() as u64, a);
        for (num, den, dir) in [(l1, u0, "D'/D"), (l0, u1, "D/D'")] {
            if num > 0.0 && den > 0.0 {
                let e = (num / den).ln();
                if e > best.0 {
                    best = (e, format!("{name} {dir}: counts {c0} vs {c1}"));
                }
            }
        }
    }
    best
}

/// Spearman rank correlation: Pearson's on the ranks (ties share their mean rank), so a
/// few measurements stretched by preemption on a loaded machine weigh as much as any other.
pub fn rank_correlation(x: &[f64], y: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                r[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    correlation(&ranks(x), &ranks(y))
}

/// Pearson correlation.
pub fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}
