//! The abandon ledger: live answers and abandoned calls over a campaign's compliance
//! window (24 h by default, 30 days where the rule says so), with an upper confidence
//! bound on the abandon rate.
//!
//! Counting follows Ofcom's statement on persistent misuse: the rate is abandoned calls
//! over live answers, and where answering-machine detection is used, a reasoned
//! estimate of its false positives (persons hung up on as machines) is added to both
//! the abandoned calls and the live answers.

use std::collections::VecDeque;
use std::time::Duration;

use statrs::distribution::{Beta, ContinuousCDF};

use crate::time::Time;

/// Buckets per window: the window slides in steps of window/1440 (one minute for 24 h).
const BUCKETS: u64 = 1440;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    lives: f64,
    abandons: f64,
    estimated_fp: f64,
}

/// A snapshot of the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AbandonStatus {
    /// Live answers in the window, including estimated AMD false positives.
    pub lives: f64,
    /// Abandoned calls in the window, including estimated AMD false positives.
    pub abandons: f64,
    /// The estimated AMD false positives inside both counts.
    pub estimated_fp: f64,
    /// abandons / lives (0 when there are no lives).
    pub rate: f64,
    /// Live answers in the last hour.
    pub lives_last_hour: f64,
    /// Seconds of history behind `lives_last_hour` (under 3600 early in the window).
    pub history_s: f64,
    /// Share of live answers the AMD is estimated to hang up on.
    pub fp_share: f64,
}

/// Live answers and abandons over a sliding window.
#[derive(Clone, Debug)]
pub struct AbandonLedger {
    window: Duration,
    width_ms: u64,
    confidence: f64,
    /// Ofcom estimate: share of persons the AMD judges machines.
    amd_false_positive: f64,
    buckets: VecDeque<(u64, Bucket)>,
    sum: Bucket,
    cached: Option<AbandonStatus>,
}

impl AbandonLedger {
    /// `amd_false_positive` is the known share of persons the AMD hangs up on (0 when
    /// AMD is off or the rate is unknown).
    pub fn new(window: Duration, confidence: f64, amd_false_positive: f64) -> Self {
        let width_ms = (window.as_millis() as u64 / BUCKETS).max(1);
        AbandonLedger {
            window,
            width_ms,
            confidence,
            amd_false_positive: amd_false_positive.clamp(0.0, 0.5),
            buckets: VecDeque::new(),
            sum: Bucket::default(),
            cached: None,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn bucket(&mut self, now: Time) -> &mut Bucket {
        self.expire(now);
        self.cached = None;
        let idx = now.as_millis() / self.width_ms;
        if self.buckets.back().is_none_or(|(i, _)| *i != idx) {
            self.buckets.push_back((idx, Bucket::default()));
        }
        &mut self.buckets.back_mut().expect("just pushed").1
    }

    fn expire(&mut self, now: Time) {
        let first = (now.as_millis() / self.width_ms).saturating_sub(BUCKETS - 1);
        while let Some((i, b)) = self.buckets.front() {
            if *i >= first {
                break;
            }
            self.sum.lives -= b.lives;
            self.sum.abandons -= b.abandons;
            self.sum.estimated_fp -= b.estimated_fp;
            self.buckets.pop_front();
            self.cached = None;
        }
    }

    /// A person answered. `after_amd` when an AMD verdict let the call through: the
    /// false positives that verdict implies are added as estimated abandons.
    pub fn record_live(&mut self, now: Time, after_amd: bool) {
        self.add_live(now, after_amd, 1.0);
    }

    /// A call counted as a live answer turned out to be a machine (the agent said
    /// so): take it, and the false positives its verdict implied, back out.
    pub fn retract_live(&mut self, now: Time, after_amd: bool) {
        self.add_live(now, after_amd, -1.0);
    }

    fn add_live(&mut self, now: Time, after_amd: bool, sign: f64) {
        let fp = if after_amd {
            let f = self.amd_false_positive;
            sign * f / (1.0 - f)
        } else {
            0.0
        };
        let b = self.bucket(now);
        b.lives += sign + fp;
        b.abandons += fp;
        b.estimated_fp += fp;
        self.sum.lives += sign + fp;
        self.sum.abandons += fp;
        self.sum.estimated_fp += fp;
    }

    /// A live answer was abandoned (not connected to an agent in time).
    pub fn record_abandon(&mut self, now: Time) {
        self.bucket(now).abandons += 1.0;
        self.sum.abandons += 1.0;
    }

    /// The ledger as of `now`.
    pub fn status(&mut self, now: Time) -> AbandonStatus {
        self.expire(now);
        if let Some(s) = self.cached {
            return AbandonStatus {
                lives_last_hour: self.lives_since(now),
                ..s
            };
        }
        let lives = self.sum.lives.max(0.0);
        let abandons = self.sum.abandons.clamp(0.0, lives);
        let status = AbandonStatus {
            lives,
            abandons,
            estimated_fp: self.sum.estimated_fp.max(0.0),
            rate: if lives > 0.0 { abandons / lives } else { 0.0 },
            lives_last_hour: self.lives_since(now),
            history_s: self.history_s(now),
            fp_share: self.amd_false_positive,
        };
        self.cached = Some(status);
        status
    }

    /// Seconds from the first recorded bucket to now, at most an hour.
    fn history_s(&self, now: Time) -> f64 {
        match self.buckets.front() {
            Some((first, _)) => now.secs_since(Time(first * self.width_ms)).min(3600.0),
            None => 0.0,
        }
    }

    /// One-sided Clopper–Pearson upper bound of the window's rate at the ledger's
    /// confidence (computed on demand: it costs a beta-function inversion).
    pub fn upper(&mut self, now: Time) -> f64 {
        let s = self.status(now);
        clopper_pearson_upper(s.abandons, s.lives, self.confidence)
    }

    fn lives_since(&self, now: Time) -> f64 {
        let hour_buckets = (3_600_000 / self.width_ms).max(1);
        let first = (now.as_millis() / self.width_ms).saturating_sub(hour_buckets - 1);
        self.buckets
            .iter()
            .rev()
            .take_while(|(i, _)| *i >= first)
            .map(|(_, b)| b.lives)
            .sum()
    }
}

/// One-sided upper confidence bound for a binomial proportion (Clopper–Pearson),
/// accepting fractional counts.
pub fn clopper_pearson_upper(successes: f64, trials: f64, confidence: f64) -> f64 {
    if trials <= 0.0 {
        return 1.0;
    }
    let k = successes.clamp(0.0, trials);
    if trials - k < 1e-9 {
        return 1.0;
    }
    match Beta::new(k + 1.0, trials - k) {
        Ok(beta) => beta.inverse_cdf(confidence).clamp(k / trials, 1.0),
        Err(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn counts_lives_abandons_and_estimated_false_positives() {
        let mut l = AbandonLedger::new(DAY, 0.95, 0.02);
        let t = Time::SIM_EPOCH;
        for _ in 0..98 {
            l.record_live(t, true);
        }
        l.record_abandon(t);
        let s = l.status(t);
        // 98 human verdicts imply 2 persons hung up as machines.
        assert!((s.estimated_fp - 2.0).abs() < 1e-9);
        assert!((s.lives - 100.0).abs() < 1e-9);
        assert!((s.abandons - 3.0).abs() < 1e-9);
        assert!((s.rate - 0.03).abs() < 1e-9);
        assert!(l.upper(t) > s.rate);
    }

    #[test]
    fn a_machine_found_by_the_agent_is_taken_back() {
        let mut l = AbandonLedger::new(DAY, 0.95, 0.02);
        let t = Time::SIM_EPOCH;
        for _ in 0..99 {
            l.record_live(t, true);
        }
        l.retract_live(t, true);
        let s = l.status(t);
        assert!((s.lives - 100.0).abs() < 1e-9, "{}", s.lives);
        assert!((s.estimated_fp - 2.0).abs() < 1e-9);
    }

    #[test]
    fn old_entries_leave_the_window() {
        let mut l = AbandonLedger::new(DAY, 0.95, 0.0);
        let t0 = Time::SIM_EPOCH;
        l.record_live(t0, false);
        l.record_abandon(t0);
        let t1 = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            l.record_live(t1, false);
        }
        assert_eq!(l.status(t1).abandons, 1.0);
        assert_eq!(l.status(t1).lives_last_hour, 10.0);
        let later = t0 + DAY + Duration::from_secs(60);
        let s = l.status(later);
        assert_eq!(s.abandons, 0.0);
        assert_eq!(s.lives, 10.0);
        assert_eq!(s.lives_last_hour, 0.0);
    }

    #[test]
    fn clopper_pearson_matches_known_values() {
        // 0 of 100 at 95 %: 1 - 0.05^(1/100) = 0.0295.
        assert!((clopper_pearson_upper(0.0, 100.0, 0.95) - 0.0295).abs() < 1e-3);
        // 3 of 100 at 95 % one-sided: 0.0757 (standard tables).
        assert!((clopper_pearson_upper(3.0, 100.0, 0.95) - 0.0757).abs() < 2e-3);
        assert_eq!(clopper_pearson_upper(0.0, 0.0, 0.95), 1.0);
        // The bound narrows as evidence grows.
        assert!(
            clopper_pearson_upper(30.0, 1000.0, 0.95) < clopper_pearson_upper(3.0, 100.0, 0.95)
        );
    }
}
