//! Numeric helpers every layer may use: ranking, stable log-softmax, and the seedable random
//! sequences that make samples, synthetic weights and device checks the same on every platform.

/// Indices of the `k` largest values, largest first (lower index first on ties).
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    let rank = |&a: &usize, &b: &usize| values[b].total_cmp(&values[a]).then(a.cmp(&b));
    // Ties are broken by index, so the order is total and selecting the first k before sorting
    // them gives the full sort's first k.
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, rank);
        order.truncate(k);
    }
    order.sort_unstable_by(rank);
    order
}

/// The index of the largest value (the first, on ties): greedy decoding's choice.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// `log softmax(logits)`, computed stably.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let log_total = log_sum_exp(logits);
    logits.iter().map(|l| l - log_total).collect()
}

/// `log Σ exp(values)`, by way of the maximum so that nothing overflows.
pub fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    values.iter().map(|l| (l - max).exp()).sum::<f32>().ln() + max
}

/// `log softmax(a + b)[w]`, `b` optional, with the sum of exponentials in f64.
pub fn log_prob_of_sum(a: &[f32], b: Option<&[f32]>, w: usize) -> f64 {
    let at = |i: usize| a[i] + b.map_or(0.0, |b| b[i]);
    let max = (0..a.len()).map(at).fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = (0..a.len()).map(|i| f64::from((at(i) - max).exp())).sum();
    f64::from(at(w)) - (f64::from(max) + sum.ln())
}

/// Pearson's correlation of two equally long series; `None` when either is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// The `n`-point Gauss–Legendre rule on [0, 1]: nodes and weights (summing to 1) that integrate
/// polynomials of degree up to `2n − 1` exactly. Each node is the root of the Legendre polynomial
/// `P_n` found by Newton's method from the usual cosine estimate.
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut rule = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            // P_n(x) and P_{n−1}(x) by the three-term recurrence.
            let (mut p, mut previous) = (1.0, 0.0);
            for k in 1..=n {
                let k = k as f64;
                (p, previous) = (((2.0 * k - 1.0) * x * p - (k - 1.0) * previous) / k, p);
            }
            derivative = n as f64 * (x * p - previous) / (x * x - 1.0);
            let step = p / derivative;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
        // From [-1, 1] to [0, 1].
        rule.push(((1.0 - x) / 2.0, weight / 2.0));
    }
    rule
}

/// SplitMix64: small, seedable and the same on every platform, so a seed reproduces a sample
/// natively and in the browser.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A fixed pseudo-random sequence in [-1, 1), the same on every platform: the data of the device
/// checks that compare a backend with the CPU.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_has_the_textbook_nodes_and_integrates_polynomials_exactly() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-14;
        // Two points: ±1/√3 on [-1, 1], weights 1; three: 0, ±√(3/5), weights 8/9, 5/9.
        let two = gauss_legendre(2);
        assert!(close(two[0].0, 0.5 - 0.5 / 3f64.sqrt()) && close(two[1].0, 0.5 + 0.5 / 3f64.sqrt()));
        assert!(two.iter().all(|&(_, w)| close(w, 0.5)));
        let three = gauss_legendre(3);
        assert!(close(three[1].0, 0.5) && close(three[1].1, 4.0 / 9.0));
        assert!(close(three[0].0, 0.5 - 0.5 * 0.6f64.sqrt()) && close(three[0].1, 5.0 / 18.0));
        // ∫₀¹ x^k dx = 1/(k + 1) for k up to 2n − 1.
        for n in [1, 4, 16, 50] {
            let rule = gauss_legendre(n);
            for k in 0..2 * n as i32 {
                let integral: f64 = rule.iter().map(|&(x, w)| w * x.powi(k)).sum();
                assert!((integral - 1.0 / f64::from(k + 1)).abs() < 1e-12, "n {n}, x^{k}: {integral}");
            }
        }
    }

    #[test]
    fn log_softmax_matches_the_hand_computation() {
        // log softmax([0, ln 3]) = [ln 1/4, ln 3/4].
        let out = log_softmax(&[0.0, 3f32.ln()]);
        assert!((out[0] - 0.25f32.ln()).abs() < 1e-6);
        assert!((out[1] - 0.75f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn ranking_puts_the_lower_index_first_on_ties() {
        assert_eq!(top_k(&[1.0, 3.0, 3.0, 2.0], 3), vec![1, 2, 3]);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn splitmix_starts_with_its_published_value() {
        // SplitMix64 seeded with 0: the first output is 0xe220a8397b1dcdaf (Vigna's reference).
        assert_eq!(Rng(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }
}
