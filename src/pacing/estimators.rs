//! Online estimators with fading memory.
//!
//! [`FadingHistogram`] keeps a histogram whose older samples weigh less (exponential
//! forgetting with an effective memory of N samples), so the distributions it
//! describes follow the day. [`DriftWatch`] compares a fast and a slow rate of the
//! same event and shortens the memory while they disagree: when the answer rate
//! drifts, the estimators forget faster until they have caught up.

/// A histogram over fixed bin edges, with exponentially fading weights.
///
/// Adding a sample costs O(1); the cumulative table is rebuilt lazily (O(bins)) on the
/// first query after an addition.
#[derive(Clone, Debug)]
pub struct FadingHistogram {
    /// Upper edges of the bins; the first bin starts at `lo`. The last bin also
    /// takes every sample above its edge.
    edges: Vec<f64>,
    lo: f64,
    /// How to find a sample's bin without searching.
    spacing: Spacing,
    weights: Vec<f64>,
    /// Weights of the samples added as marked (a subset of `weights`).
    marked: Vec<f64>,
    /// Weight of the next sample; grows by 1/λ per sample instead of decaying all bins.
    unit: f64,
    lambda: f64,
    /// cum[i] = weight of samples in bins 0..i (len = bins + 1).
    cum: Vec<f64>,
    /// The same for marked samples.
    cum_marked: Vec<f64>,
    dirty: bool,
    samples: u64,
}

impl FadingHistogram {
    /// `bins` equal bins over `[lo, hi]`.
    pub fn linear(lo: f64, hi: f64, bins: usize, memory: f64) -> Self {
        let w = (hi - lo) / bins as f64;
        let edges = (1..=bins).map(|i| lo + w * i as f64).collect();
        Self::with_edges(lo, edges, Spacing::Linear { width: w }, memory)
    }

    /// `bins` bins over `[0, hi]`, evenly spaced in log scale from `first` up.
    pub fn logarithmic(first: f64, hi: f64, bins: usize, memory: f64) -> Self {
        let ratio = (hi / first).powf(1.0 / (bins - 1) as f64);
        let edges = (0..bins).map(|i| first * ratio.powi(i as i32)).collect();
        let spacing = Spacing::Log {
            first,
            ln_ratio: ratio.ln(),
        };
        Self::with_edges(0.0, edges, spacing, memory)
    }

    fn with_edges(lo: f64, edges: Vec<f64>, spacing: Spacing, memory: f64) -> Self {
        let n = edges.len();
        FadingHistogram {
            edges,
            lo,
            spacing,
            weights: vec![0.0; n],
            marked: vec![0.0; n],
            unit: 1.0,
            lambda: lambda_for(memory),
            cum: vec![0.0; n + 1],
            cum_marked: vec![0.0; n + 1],
            dirty: false,
            samples: 0,
        }
    }

    /// Change the effective memory (in samples) from now on.
    pub fn set_memory(&mut self, memory: f64) {
        self.lambda = lambda_for(memory);
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn add(&mut self, x: f64) {
        self.add_marked(x, false);
    }

    /// Add a sample; `marked` samples are also counted in the marked sub-histogram
    /// (for instance: dials that ended ringing, marked when answered).
    pub fn add_marked(&mut self, x: f64, marked: bool) {
        let i = self.bin(x);
        self.weights[i] += self.unit;
        if marked {
            self.marked[i] += self.unit;
        }
        self.unit /= self.lambda;
        self.samples += 1;
        self.dirty = true;
        if self.unit > 1e150 {
            let k = 1.0 / self.unit;
            self.weights.iter_mut().for_each(|w| *w *= k);
            self.marked.iter_mut().for_each(|w| *w *= k);
            self.unit = 1.0;
        }
    }

    fn bin(&self, x: f64) -> usize {
        let last = self.edges.len() - 1;
        let guess = match self.spacing {
            Spacing::Linear { width } => ((x - self.lo) / width).floor(),
            Spacing::Log { first, ln_ratio } if x > first => ((x / first).ln() / ln_ratio).ceil(),
            Spacing::Log { .. } => 0.0,
        };
        let mut i = if guess.is_finite() && guess > 0.0 {
            (guess as usize).min(last)
        } else {
            0
        };
        // Floating-point rounding can put the guess one bin off: settle on the edges.
        while i > 0 && x <= self.edges[i - 1] {
            i -= 1;
        }
        while i < last && x > self.edges[i] {
            i += 1;
        }
        i
    }

    /// Rebuild the cumulative tables if samples were added since the last query.
    pub fn refresh(&mut self) {
        if self.dirty {
            let (mut acc, mut acc_m) = (0.0, 0.0);
            for i in 0..self.weights.len() {
                acc += self.weights[i];
                acc_m += self.marked[i];
                self.cum[i + 1] = acc;
                self.cum_marked[i + 1] = acc_m;
            }
            self.dirty = false;
        }
    }

    /// Total (faded) weight.
    pub fn total(&mut self) -> f64 {
        self.refresh();
        self.cum[self.weights.len()]
    }

    /// Faded weight of samples at or below `x`, interpolating linearly within a bin;
    /// call [`refresh`](Self::refresh) (or [`total`](Self::total)) first.
    pub fn mass_below_fresh(&self, x: f64) -> f64 {
        self.below(x, &self.cum, &self.weights)
    }

    /// Faded weight of marked samples at or below `x`; call [`refresh`](Self::refresh)
    /// first.
    pub fn marked_below_fresh(&self, x: f64) -> f64 {
        self.below(x, &self.cum_marked, &self.marked)
    }

    /// Faded weight of all marked samples; call [`refresh`](Self::refresh) first.
    pub fn marked_total_fresh(&self) -> f64 {
        debug_assert!(!self.dirty);
        self.cum_marked[self.marked.len()]
    }

    /// Faded weight of all samples; call [`refresh`](Self::refresh) first.
    pub fn total_fresh(&self) -> f64 {
        debug_assert!(!self.dirty);
        self.cum[self.weights.len()]
    }

    /// Faded mass at or below `k × step` for `k = 0..n` (all samples, or marked ones),
    /// in one pass over the bins; call [`refresh`](Self::refresh) first.
    pub fn mass_grid(&self, step: f64, n: usize, marked: bool) -> Vec<f64> {
        let (cum, weights) = if marked {
            (&self.cum_marked, &self.marked)
        } else {
            (&self.cum, &self.weights)
        };
        let mut out = Vec::with_capacity(n);
        let mut i = 0;
        let last = self.edges.len() - 1;
        for k in 0..n {
            let x = k as f64 * step;
            if x <= self.lo {
                out.push(0.0);
                continue;
            }
            while i < last && x > self.edges[i] {
                i += 1;
            }
            out.push(self.within_bin(i, x, cum, weights));
        }
        out
    }

    fn below(&self, x: f64, cum: &[f64], weights: &[f64]) -> f64 {
        debug_assert!(!self.dirty);
        if x <= self.lo {
            return 0.0;
        }
        self.within_bin(self.bin(x), x, cum, weights)
    }

    /// Mass at or below `x`, which lies in bin `i`: the bins before it plus a linear
    /// share of bin `i`.
    fn within_bin(&self, i: usize, x: f64, cum: &[f64], weights: &[f64]) -> f64 {
        let start = if i == 0 { self.lo } else { self.edges[i - 1] };
        let end = self.edges[i];
        let frac = if x >= end {
            1.0
        } else {
            (x - start) / (end - start)
        };
        cum[i] + weights[i] * frac
    }

    /// Empirical cumulative distribution at `x` (0 when empty).
    pub fn cdf(&mut self, x: f64) -> f64 {
        let t = self.total();
        if t <= 0.0 {
            0.0
        } else {
            self.mass_below_fresh(x) / t
        }
    }

    /// Faded mean of the samples (bin midpoints), or `None` when empty.
    pub fn mean(&mut self) -> Option<f64> {
        let t = self.total();
        if t <= 0.0 {
            return None;
        }
        let mut s = 0.0;
        for (i, w) in self.weights.iter().enumerate() {
            let start = if i == 0 { self.lo } else { self.edges[i - 1] };
            s += w * 0.5 * (start + self.edges[i]);
        }
        Some(s / t)
    }

    /// The `q` quantile (0..1), or `None` when empty.
    pub fn quantile(&mut self, q: f64) -> Option<f64> {
        let t = self.total();
        if t <= 0.0 {
            return None;
        }
        let target = q.clamp(0.0, 1.0) * t;
        let i = self
            .cum
            .partition_point(|&c| c < target)
            .clamp(1, self.weights.len());
        let (start, end) = (
            if i == 1 { self.lo } else { self.edges[i - 2] },
            self.edges[i - 1],
        );
        let w = self.weights[i - 1];
        let frac = if w > 0.0 {
            (target - self.cum[i - 1]) / w
        } else {
            0.5
        };
        Some(start + (end - start) * frac.clamp(0.0, 1.0))
    }
}

#[derive(Clone, Copy, Debug)]
enum Spacing {
    Linear { width: f64 },
    Log { first: f64, ln_ratio: f64 },
}

/// Forgetting factor λ for an effective memory of `memory` samples.
fn lambda_for(memory: f64) -> f64 {
    1.0 - 1.0 / memory.max(2.0)
}

/// An exponentially weighted rate of a yes/no event.
#[derive(Clone, Debug)]
pub struct FadingRate {
    yes: f64,
    all: f64,
    lambda: f64,
}

impl FadingRate {
    pub fn new(memory: f64, prior: f64, prior_weight: f64) -> Self {
        FadingRate {
            yes: prior * prior_weight,
            all: prior_weight,
            lambda: lambda_for(memory),
        }
    }

    pub fn add(&mut self, yes: bool) {
        self.yes = self.yes * self.lambda + f64::from(u8::from(yes));
        self.all = self.all * self.lambda + 1.0;
    }

    pub fn set_memory(&mut self, memory: f64) {
        self.lambda = lambda_for(memory);
    }

    pub fn rate(&self) -> f64 {
        if self.all > 0.0 {
            self.yes / self.all
        } else {
            0.0
        }
    }

    /// Effective number of samples behind the rate.
    pub fn weight(&self) -> f64 {
        self.all
    }
}

/// Watches a yes/no rate at two speeds and says when it has drifted.
#[derive(Clone, Debug)]
pub struct DriftWatch {
    fast: FadingRate,
    slow: FadingRate,
    fast_memory: f64,
}

impl DriftWatch {
    pub fn new(fast_memory: f64, slow_memory: f64) -> Self {
        DriftWatch {
            fast: FadingRate::new(fast_memory, 0.0, 0.0),
            slow: FadingRate::new(slow_memory, 0.0, 0.0),
            fast_memory,
        }
    }

    pub fn add(&mut self, yes: bool) {
        self.fast.add(yes);
        self.slow.add(yes);
    }

    /// True when the fast rate differs from the slow one by more than three standard
    /// errors of the fast estimate.
    pub fn drifting(&self) -> bool {
        if self.slow.weight() < self.fast_memory {
            return false;
        }
        let p = self.slow.rate().clamp(0.01, 0.99);
        let se = (p * (1.0 - p) / self.fast.weight().max(1.0)).sqrt();
        (self.fast.rate() - self.slow.rate()).abs() > 3.0 * se
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_cdf_and_quantiles_match_uniform_samples() {
        let mut h = FadingHistogram::linear(0.0, 20.0, 40, 1e9);
        for i in 0..1000 {
            h.add(4.0 + 14.0 * (i as f64 + 0.5) / 1000.0);
        }
        assert!((h.cdf(11.0) - 0.5).abs() < 0.01, "{}", h.cdf(11.0));
        assert!(h.cdf(3.9) < 1e-9);
        assert!((h.cdf(18.0) - 1.0).abs() < 1e-9);
        let med = h.quantile(0.5).unwrap();
        assert!((med - 11.0).abs() < 0.1, "{med}");
        assert!((h.mean().unwrap() - 11.0).abs() < 0.1);
    }

    #[test]
    fn bins_found_arithmetically_agree_with_a_search() {
        for mut h in [
            FadingHistogram::linear(0.0, 30.0, 60, 1e9),
            FadingHistogram::logarithmic(0.5, 3600.0, 64, 1e9),
        ] {
            for k in 0..5000 {
                let x = k as f64 * 0.731;
                let searched = h.edges.partition_point(|&e| e < x).min(h.edges.len() - 1);
                assert_eq!(h.bin(x), searched, "x = {x}");
            }
            h.add_marked(7.3, true);
            h.add_marked(300.0, false);
            h.refresh();
            let grid = h.mass_grid(0.37, 1000, false);
            for (k, g) in grid.iter().enumerate() {
                assert!((g - h.mass_below_fresh(k as f64 * 0.37)).abs() < 1e-12);
            }
            let grid = h.mass_grid(0.37, 1000, true);
            for (k, g) in grid.iter().enumerate() {
                assert!((g - h.marked_below_fresh(k as f64 * 0.37)).abs() < 1e-12);
            }
            h.add_marked(1.0, true);
            h.add_marked(2.0, false);
            h.refresh();
            assert!((h.marked_total_fresh() * 2.0 - h.total_fresh()).abs() < 1e-6);
        }
    }

    #[test]
    fn fading_forgets_old_samples() {
        let mut h = FadingHistogram::linear(0.0, 10.0, 10, 100.0);
        for _ in 0..2000 {
            h.add(1.5);
        }
        for _ in 0..500 {
            h.add(8.5);
        }
        // After five memories of new samples the old ones weigh under 1 %.
        assert!(h.cdf(5.0) < 0.01, "{}", h.cdf(5.0));
    }

    #[test]
    fn log_histogram_spans_long_tails() {
        let mut h = FadingHistogram::logarithmic(1.0, 3600.0, 64, 1e9);
        for x in [2.0, 60.0, 120.0, 3000.0, 10_000.0] {
            h.add(x);
        }
        assert!((h.cdf(3600.0) - 1.0).abs() < 1e-9);
        assert!(h.cdf(100.0) > 0.39 && h.cdf(100.0) < 0.41);
    }

    #[test]
    fn drift_is_seen_when_the_rate_moves() {
        let mut d = DriftWatch::new(100.0, 1000.0);
        for i in 0..3000 {
            d.add(i % 3 == 0);
        }
        assert!(!d.drifting());
        for i in 0..150 {
            d.add(i % 10 == 0);
        }
        assert!(d.drifting());
    }
}
