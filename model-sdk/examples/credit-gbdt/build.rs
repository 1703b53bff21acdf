//! Trains the compiled-in trees at build time, deterministically.
//!
//! The "provider's training data" is a synthetic credit table drawn from a fixed-seed
//! xorshift generator with the same shape as the demo table (`cleanroom generate`), with
//! labels drawn from the same true default model. Gradient boosting with logistic loss,
//! second-order (Newton) leaves, histogram splits on fixed quantile edges, complete trees
//! of depth [`DEPTH`]. Only `+ - * /`, comparisons and the pure-Rust `libm` are used, so
//! the output (and the module hash) is the same on every build machine.
//!
//! Writes `$OUT_DIR/trees.rs` with `BASE_SCORE`, `TREES` and the training metadata.

use std::fmt::Write as _;

const TREES: usize = 100;
const DEPTH: usize = 6;
const INTERNAL: usize = (1 << DEPTH) - 1;
const LEAVES: usize = 1 << DEPTH;
const FEATURES: usize = 5;
const SAMPLES: usize = 20_000;
const BINS: usize = 32;
const LEARNING_RATE: f64 = 0.1;
const LAMBDA: f64 = 1.0;
const MIN_CHILD_HESSIAN: f64 = 2.0;
const SEED: u64 = 0x6bd7_c0de_2026_0007;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        libm::sqrt(-2.0 * libm::log(u)) * libm::cos(2.0 * std::f64::consts::PI * v)
    }
    fn poisson(&mut self, lambda: f64, max: i64) -> i64 {
        let l = libm::exp(-lambda);
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= l || k >= max {
                return k;
            }
            k += 1;
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::exp(-x))
    } else {
        let e = libm::exp(x);
        e / (1.0 + e)
    }
}

/// One synthetic applicant: features as the model sees them (birth decade, not year).
fn sample(r: &mut Rng) -> ([f64; FEATURES], f64) {
    let birth_year = libm::round(1978.0 + 14.0 * r.normal()).clamp(1940.0, 2005.0);
    let age = 2026.0 - birth_year;
    let income = libm::exp(libm::log(60_000.0) + 0.55 * r.normal() + 0.006 * (age - 40.0)).clamp(12_000.0, 500_000.0);
    let li = libm::log(income / 60_000.0);
    let util = (0.3 + 0.22 * r.normal() - 0.05 * li).clamp(0.0, 1.2);
    let late = r.poisson(0.8 * libm::exp(1.2 * (util - 0.3) - 0.3 * li), 12);
    let max_tenure = ((age - 18.0) * 12.0).clamp(1.0, 360.0);
    let tenure = 1.0 + libm::floor(r.unit() * max_tenure);
    let logit =
        -2.0 + 3.0 * (util - 0.3) + 0.5 * late as f64 - 0.8 * li - 0.005 * (tenure - 60.0) - 0.015 * (age - 40.0);
    let y = if r.unit() < sigmoid(logit) { 1.0 } else { 0.0 };
    let decade = libm::floor(birth_year / 10.0) * 10.0;
    ([income, util, late as f64, tenure, decade], y)
}

struct Tree {
    feature: [u8; INTERNAL],
    threshold: [f64; INTERNAL],
    leaf: [f64; LEAVES],
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let mut rng = Rng(SEED);
    let data: Vec<([f64; FEATURES], f64)> = (0..SAMPLES).map(|_| sample(&mut rng)).collect();

    // Split candidates: distinct quantiles of each feature; bin[i][f] = #edges < x.
    let mut edges: Vec<Vec<f64>> = Vec::new();
    for f in 0..FEATURES {
        let mut v: Vec<f64> = data.iter().map(|(x, _)| x[f]).collect();
        v.sort_by(f64::total_cmp);
        let mut e: Vec<f64> = (1..BINS).map(|k| v[k * (v.len() - 1) / BINS]).collect();
        e.dedup();
        edges.push(e);
    }
    let bins: Vec<[u8; FEATURES]> = data
        .iter()
        .map(|(x, _)| {
            let mut b = [0u8; FEATURES];
            for f in 0..FEATURES {
                b[f] = edges[f].partition_point(|&t| t < x[f]) as u8;
            }
            b
        })
        .collect();

    let positives: f64 = data.iter().map(|d| d.1).sum();
    let mean = positives / SAMPLES as f64;
    let base = libm::log(mean / (1.0 - mean));
    let mut score = vec![base; SAMPLES];
    let mut trees = Vec::with_capacity(TREES);
    let mut node = vec![0usize; SAMPLES];
    for _ in 0..TREES {
        let (g, h): (Vec<f64>, Vec<f64>) = data
            .iter()
            .zip(&score)
            .map(|((_, y), &s)| {
                let p = sigmoid(s);
                (p - y, (p * (1.0 - p)).max(1e-12))
            })
            .unzip();
        let mut tree = Tree { feature: [0; INTERNAL], threshold: [f64::INFINITY; INTERNAL], leaf: [0.0; LEAVES] };
        node.iter_mut().for_each(|n| *n = 0);
        for depth in 0..DEPTH {
            let width = 1usize << depth;
            // hist[node][feature][bin] = (sum g, sum h)
            let mut hist = vec![[[(0.0f64, 0.0f64); BINS]; FEATURES]; width];
            for i in 0..SAMPLES {
                for f in 0..FEATURES {
                    let c = &mut hist[node[i]][f][bins[i][f] as usize];
                    c.0 += g[i];
                    c.1 += h[i];
                }
            }
            let mut split = vec![None; width];
            for (n, hn) in hist.iter().enumerate() {
                let (gt, ht) = hn[0].iter().fold((0.0, 0.0), |a, c| (a.0 + c.0, a.1 + c.1));
                let parent = gt * gt / (ht + LAMBDA);
                let mut best: Option<(f64, usize, usize)> = None;
                for (f, hf) in hn.iter().enumerate() {
                    let (mut gl, mut hl) = (0.0, 0.0);
                    for (k, c) in hf.iter().take(edges[f].len()).enumerate() {
                        gl += c.0;
                        hl += c.1;
                        let (gr, hr) = (gt - gl, ht - hl);
                        if hl < MIN_CHILD_HESSIAN || hr < MIN_CHILD_HESSIAN {
                            continue;
                        }
                        let gain = gl * gl / (hl + LAMBDA) + gr * gr / (hr + LAMBDA) - parent;
                        if gain > 1e-9 && best.is_none_or(|b| gain > b.0) {
                            best = Some((gain, f, k));
                        }
                    }
                }
                split[n] = best.map(|(_, f, k)| (f, k));
                let id = width - 1 + n;
                if let Some((f, k)) = split[n] {
                    tree.feature[id] = f as u8;
                    tree.threshold[id] = edges[f][k];
                }
            }
            for i in 0..SAMPLES {
                let n = node[i];
                let right = match split[n] {
                    Some((f, k)) => (bins[i][f] as usize > k) as usize,
                    None => 0,
                };
                node[i] = 2 * n + right;
            }
        }
        let mut sums = vec![(0.0f64, 0.0f64); LEAVES];
        for i in 0..SAMPLES {
            sums[node[i]].0 += g[i];
            sums[node[i]].1 += h[i];
        }
        for (l, (gs, hs)) in sums.iter().enumerate() {
            tree.leaf[l] = -LEARNING_RATE * gs / (hs + LAMBDA);
        }
        for i in 0..SAMPLES {
            score[i] += tree.leaf[node[i]];
        }
        trees.push(tree);
    }
    let loss: f64 = data
        .iter()
        .zip(&score)
        .map(|((_, y), &s)| {
            let p = sigmoid(s).clamp(1e-15, 1.0 - 1e-15);
            -(y * libm::log(p) + (1.0 - y) * libm::log(1.0 - p))
        })
        .sum::<f64>()
        / SAMPLES as f64;

    let bits = |x: f64| format!("f64::from_bits(0x{:016x})", x.to_bits());
    let mut out = String::new();
    writeln!(out, "// Generated by build.rs; do not edit.").unwrap();
    writeln!(out, "/// Log-odds every score starts from (the training set's base rate).").unwrap();
    writeln!(out, "pub const BASE_SCORE: f64 = {};", bits(base)).unwrap();
    writeln!(out, "/// Mean log-loss of the trees on their own training set.").unwrap();
    writeln!(out, "pub const TRAINING_LOG_LOSS: f64 = {};", bits(loss)).unwrap();
    writeln!(out, "pub const TRAINING_SAMPLES: usize = {SAMPLES};").unwrap();
    writeln!(out, "pub static TREES: [Tree; {TREES}] = [").unwrap();
    for t in &trees {
        write!(out, "Tree {{ feature: {:?}, threshold: [", t.feature).unwrap();
        for x in t.threshold {
            write!(out, "{},", bits(x)).unwrap();
        }
        write!(out, "], leaf: [").unwrap();
        for x in t.leaf {
            write!(out, "{},", bits(x)).unwrap();
        }
        writeln!(out, "] }},").unwrap();
    }
    writeln!(out, "];").unwrap();
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("trees.rs");
    std::fs::write(path, out).unwrap();
}
