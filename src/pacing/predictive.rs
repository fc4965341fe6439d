//! Predictive dialing: keep as many calls in flight as the statistics say agents will
//! be free to take, while the abandon rate stays under its limit.
//!
//! ## The model
//!
//! A call placed now needs an agent at `X = ring time + AMD delay` if a person answers
//! (probability `p`). At a horizon `τ` (three values: quartiles of X for answered
//! calls) the policy estimates
//!
//! - **supply** `S(τ)`: ready agents, plus each busy agent with the probability that
//!   they are free by `τ + max_wait` given how long they have been talking or in
//!   wrap-up (talk and wrap-time distributions, learnt online);
//! - **demand** `D(τ)`: customers already waiting, plus each call in flight with the
//!   probability that it turns into a person for an agent by `τ`, given how long it
//!   has rung (the hazard of the ring-time distribution of answered dials against all
//!   dials) or how long AMD has been listening.
//!
//! Both are sums of independent Bernoulli variables, approximated as normal. The `k`-th
//! new call is placed if the chance that its person finds no agent, `P(D + k - 1 ≥ S)`
//! averaged over the horizons, is at most `β`.
//!
//! ## The abandon controller
//!
//! `β` spends the campaign's allowance: over the lives expected in the look-ahead
//! (`lookahead_s` at the current live-answer rate), it is the largest per-person abandon
//! probability that keeps the upper confidence bound (normal approximation at
//! `confidence`) of the window's abandon rate at or under the target, after the AMD
//! false positives the Ofcom estimate will add. Early in the window, or after a bad
//! spell, `β` is small and the policy dials close to progressively; as evidence
//! accumulates under target, it dials harder. A calibration factor (observed
//! abandons ÷ the abandons the model predicted for the calls it placed) corrects the
//! model's optimism or pessimism.
//!
//! All estimators fade with an effective memory of `memory` samples; when the answer
//! rate drifts (a fast and a slow estimate disagree), memory is cut to a fifth until
//! they agree again.

use statrs::distribution::{ContinuousCDF, Normal};

use super::estimators::{DriftWatch, FadingHistogram, FadingRate};
use super::progressive::uncovered;
use super::{BusyPhase, FlightPhase, Observation, Pacer, PacingConfig, Policy, View, room};
use crate::time::Time;

/// Horizon quantiles of the time from dial to "needs an agent".
const HORIZON_QUANTILES: [f64; 3] = [0.25, 0.5, 0.75];
/// The smallest per-person risk the controller allows beyond the progressive floor.
const BETA_FLOOR: f64 = 0.0;

#[derive(Debug)]
pub struct Predictive {
    target: f64,
    z: f64,
    lookahead_s: f64,
    warmup: u64,
    memory: f64,
    /// Time each dial rang; marked when answered.
    ring: FadingHistogram,
    /// Delay from answer to AMD verdict.
    amd: FadingHistogram,
    /// Share of answered calls that go to an agent.
    to_agent: FadingRate,
    talk: FadingHistogram,
    wrap: FadingHistogram,
    drift: DriftWatch,
    drifting: bool,
    dials: u64,
    /// Abandons the model expected for the calls it placed, and those observed
    /// (faded alike), to calibrate the risk.
    predicted_abandons: f64,
    observed_abandons: f64,
    calib_lambda: f64,
    normal: Normal,
    /// Per-horizon scratch.
    horizons: Vec<Horizon>,
    level: f64,
    /// Last allowance, for inspection.
    last_beta: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Horizon {
    tau: f64,
    /// Mean and variance of demand minus supply, without new calls.
    mean: f64,
    var: f64,
    /// Probability that a new call needs an agent by `tau`.
    p_new: f64,
}

impl Predictive {
    pub fn new(cfg: &PacingConfig) -> Self {
        let normal = Normal::standard();
        let memory = f64::from(cfg.memory);
        Predictive {
            target: cfg.target_abandon,
            z: normal.inverse_cdf(cfg.confidence),
            lookahead_s: cfg.lookahead_s,
            warmup: u64::from(cfg.warmup_dials),
            memory,
            ring: FadingHistogram::linear(0.0, 90.0, 180, memory),
            amd: FadingHistogram::linear(0.0, 10.0, 50, memory / 3.0),
            to_agent: FadingRate::new(memory / 3.0, 0.7, 3.0),
            talk: FadingHistogram::logarithmic(1.0, 3600.0, 96, memory / 3.0),
            wrap: FadingHistogram::logarithmic(0.5, 1800.0, 64, memory / 3.0),
            drift: DriftWatch::new(memory / 10.0, memory),
            drifting: false,
            dials: 0,
            predicted_abandons: 0.0,
            observed_abandons: 0.0,
            calib_lambda: 1.0 - 1.0 / 400.0,
            normal,
            horizons: Vec::with_capacity(HORIZON_QUANTILES.len()),
            level: 1.0,
            last_beta: 0.0,
        }
    }

    /// The per-person abandon risk the controller currently allows.
    pub fn allowance(&self) -> f64 {
        self.last_beta
    }

    fn set_memory(&mut self, memory: f64) {
        self.ring.set_memory(memory);
        self.to_agent.set_memory(memory / 3.0);
    }

    fn ready_to_predict(&self) -> bool {
        self.dials >= self.warmup && self.talk.samples() >= 5 && self.ring.samples() > 0
    }

    /// β: the largest per-person risk the window's allowance affords.
    fn beta(&self, view: &View<'_>) -> f64 {
        let a = view.abandon;
        let alpha = self.target;
        let n = (a.lives_last_hour * self.lookahead_s / 3600.0).max(100.0);
        let total = a.lives + n;
        let margin = self.z * (alpha * (1.0 - alpha) * total).sqrt();
        let allowed = (alpha * total - margin - a.abandons) / n;
        let calibration = (self.observed_abandons + 2.0) / (self.predicted_abandons + 2.0);
        ((allowed - a.fp_share) / calibration.clamp(0.5, 4.0)).clamp(BETA_FLOOR, alpha)
    }

    /// P(a talking or wrapping agent is free within `h` seconds).
    fn p_free(&self, phase: BusyPhase, elapsed: f64, h: f64, wrap_mean: f64) -> f64 {
        let (hist, shift) = match phase {
            BusyPhase::Talking => (&self.talk, wrap_mean),
            BusyPhase::WrapUp => (&self.wrap, 0.0),
        };
        let total = hist.total_fresh();
        let below = hist.mass_below_fresh(elapsed);
        let left = total - below;
        if left <= total * 1e-6 {
            // Longer than anything seen: assume the median remaining time of the tail.
            return 0.5 * (h / (h + elapsed.max(1.0))).min(1.0);
        }
        let end = elapsed + h - shift;
        if end <= elapsed {
            return 0.0;
        }
        ((hist.mass_below_fresh(end) - below) / left).clamp(0.0, 1.0)
    }

    fn compute_horizons(&mut self, view: &View<'_>) {
        self.ring.refresh();
        self.amd.refresh();
        self.talk.refresh();
        self.wrap.refresh();
        let h = self.to_agent.rate();
        let amd_mean = self.amd.mean().unwrap_or(0.0);
        let wrap_mean = self.wrap.mean().unwrap_or(0.0);
        let ring_total = self.ring.total_fresh();
        let answered_total = self.ring.marked_total_fresh();
        let amd_total = self.amd.total_fresh();
        let grace = 2.0;

        self.horizons.clear();
        for q in HORIZON_QUANTILES {
            let tau = quantile_marked(&self.ring, answered_total, q) + amd_mean;
            self.horizons.push(Horizon {
                tau,
                ..Horizon::default()
            });
        }
        let mut horizons = std::mem::take(&mut self.horizons);
        for hz in &mut horizons {
            let tau = hz.tau;
            let (mut mean, mut var) = (view.waiting as f64 - view.agents.ready as f64, 0.0);
            for b in view.busy {
                let p = self.p_free(
                    b.phase,
                    view.now.secs_since(b.since),
                    tau + grace,
                    wrap_mean,
                );
                mean -= p;
                var += p * (1.0 - p);
            }
            for c in view.calls {
                let e = view.now.secs_since(c.since);
                let q = match c.phase {
                    FlightPhase::Ringing => {
                        let left = ring_total - self.ring.mass_below_fresh(e);
                        if left <= 0.0 {
                            0.0
                        } else {
                            let reach = e + (tau - amd_mean).max(0.0);
                            h * (self.ring.marked_below_fresh(reach)
                                - self.ring.marked_below_fresh(e))
                                / left
                        }
                    }
                    FlightPhase::Detecting => {
                        let left = amd_total - self.amd.mass_below_fresh(e);
                        if left <= 0.0 {
                            h
                        } else {
                            h * (self.amd.mass_below_fresh(e + tau) - self.amd.mass_below_fresh(e))
                                / left
                        }
                    }
                };
                let q = q.clamp(0.0, 1.0);
                mean += q;
                var += q * (1.0 - q);
            }
            let reach = (tau - amd_mean).max(0.0);
            hz.p_new = if ring_total > 0.0 {
                (h * self.ring.marked_below_fresh(reach) / ring_total).clamp(0.0, 1.0)
            } else {
                0.0
            };
            hz.mean = mean;
            hz.var = var;
        }
        self.horizons = horizons;
    }

    /// Chance that the person of the `k`-th new call (k ≥ 1) finds no agent.
    fn risk(&self, k: usize) -> f64 {
        let others = (k - 1) as f64;
        let mut sum = 0.0;
        for hz in &self.horizons {
            let mean = hz.mean + others * hz.p_new;
            let var = hz.var + others * hz.p_new * (1.0 - hz.p_new);
            sum += if var < 1e-12 {
                if mean + 0.5 > 0.0 { 1.0 } else { 0.0 }
            } else {
                self.normal.cdf((mean + 0.5) / var.sqrt())
            };
        }
        sum / self.horizons.len() as f64
    }

    /// P(a new dial ends up with an agent).
    fn p_person(&self) -> f64 {
        let total = self.ring.total_fresh();
        if total > 0.0 {
            self.to_agent.rate() * self.ring.marked_total_fresh() / total
        } else {
            0.0
        }
    }
}

/// The `q` quantile of the marked samples of `hist` (refreshed).
fn quantile_marked(hist: &FadingHistogram, marked_total: f64, q: f64) -> f64 {
    if marked_total <= 0.0 {
        return 0.0;
    }
    // Bisection on the marked mass: the histogram's range is small.
    let (mut lo, mut hi) = (0.0_f64, 90.0_f64);
    let target = q * marked_total;
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        if hist.marked_below_fresh(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

impl Pacer for Predictive {
    fn policy(&self) -> Policy {
        Policy::Predictive
    }

    fn wants_detail(&self) -> bool {
        true
    }

    fn observe(&mut self, _now: Time, obs: Observation) {
        match obs {
            Observation::Dialed => self.dials += 1,
            Observation::RingEnded { ring_s, answered } => {
                self.ring.add_marked(ring_s, answered);
                self.drift.add(answered);
                let drifting = self.drift.drifting();
                if drifting != self.drifting {
                    self.drifting = drifting;
                    self.set_memory(if drifting {
                        self.memory / 5.0
                    } else {
                        self.memory
                    });
                }
            }
            Observation::AmdDecided { amd_s, to_agent } => {
                self.amd.add(amd_s);
                self.to_agent.add(to_agent);
            }
            Observation::TalkEnded { talk_s } => self.talk.add(talk_s),
            Observation::WrapEnded { wrap_s } => self.wrap.add(wrap_s),
            Observation::Abandoned => {
                self.observed_abandons += 1.0;
            }
        }
    }

    fn decide(&mut self, view: &View<'_>) -> usize {
        let floor = uncovered(view);
        let room = room(view);
        let active = view.agents.active().max(1) as f64;
        if !self.ready_to_predict() || view.agents.active() == 0 {
            self.level = (view.in_flight + floor) as f64 / active;
            return floor.min(room);
        }
        self.compute_horizons(view);
        let beta = self.beta(view);
        self.last_beta = beta;
        let p_person = self.p_person();
        let mut placed = 0;
        let mut expected = 0.0;
        while placed < room {
            let r = self.risk(placed + 1);
            if placed >= floor && r > beta {
                break;
            }
            expected += r * p_person;
            placed += 1;
        }
        // Fade the calibration counts per decision that placed calls.
        if placed > 0 {
            let k = self.calib_lambda.powi(placed as i32);
            self.predicted_abandons = self.predicted_abandons * k + expected;
            self.observed_abandons *= k;
        }
        self.level = (view.in_flight + placed) as f64 / active;
        placed
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::{AbandonStatus, AgentCounts, BusyAgent, FlightCall};
    use std::time::Duration;

    fn trained() -> Predictive {
        let mut p = Predictive::new(&PacingConfig::default());
        let now = Time::SIM_EPOCH;
        for i in 0..2000u32 {
            p.observe(now, Observation::Dialed);
            let ring = 4.0 + f64::from(i % 15);
            let answered = i % 10 < 3;
            p.observe(
                now,
                Observation::RingEnded {
                    ring_s: if answered { ring } else { 25.0 },
                    answered,
                },
            );
            if answered {
                p.observe(
                    now,
                    Observation::AmdDecided {
                        amd_s: 3.0,
                        to_agent: i % 30 != 0,
                    },
                );
            }
        }
        for i in 0..500u32 {
            p.observe(
                now,
                Observation::TalkEnded {
                    talk_s: 60.0 + f64::from(i % 120),
                },
            );
            p.observe(now, Observation::WrapEnded { wrap_s: 15.0 });
        }
        p
    }

    fn status(lives: f64, abandons: f64) -> AbandonStatus {
        AbandonStatus {
            lives,
            abandons,
            lives_last_hour: 1000.0,
            ..AbandonStatus::default()
        }
    }

    fn view<'a>(
        busy: &'a [BusyAgent],
        calls: &'a [FlightCall],
        ready: usize,
        abandon: AbandonStatus,
    ) -> View<'a> {
        View {
            now: Time::SIM_EPOCH + Duration::from_secs(1000),
            agents: AgentCounts {
                ready,
                on_call: busy.len(),
                wrap_up: 0,
                paused: 0,
            },
            busy,
            calls,
            in_flight: calls.len(),
            waiting: 0,
            connected: busy.len(),
            abandon,
            max_in_flight: 1000,
        }
    }

    #[test]
    fn dials_progressively_until_warmed_up() {
        let mut p = Predictive::new(&PacingConfig::default());
        let v = view(&[], &[], 3, status(0.0, 0.0));
        assert_eq!(p.decide(&v), 3);
    }

    #[test]
    fn overdials_for_ready_agents_when_the_allowance_is_there() {
        let mut p = trained();
        let v = view(&[], &[], 10, status(5000.0, 50.0));
        let n = p.decide(&v);
        // About 0.29 persons per dial: well over one dial per ready agent.
        assert!(n > 20, "{n}");
        assert!(p.allowance() > 0.0);
    }

    #[test]
    fn spent_allowance_falls_back_to_progressive() {
        let mut p = trained();
        let v = view(&[], &[], 10, status(5000.0, 400.0));
        assert_eq!(p.decide(&v), 10);
        assert_eq!(p.allowance(), 0.0);
    }

    #[test]
    fn dials_ahead_for_agents_about_to_be_free() {
        let mut p = trained();
        let now = Time::SIM_EPOCH + Duration::from_secs(1000);
        let nearly_done: Vec<BusyAgent> = (0..10)
            .map(|_| BusyAgent {
                phase: BusyPhase::WrapUp,
                since: now - Duration::from_secs(14),
            })
            .collect();
        let just_started: Vec<BusyAgent> = (0..10)
            .map(|_| BusyAgent {
                phase: BusyPhase::Talking,
                since: now,
            })
            .collect();
        let a = p.decide(&view(&nearly_done, &[], 0, status(5000.0, 50.0)));
        let b = p.decide(&view(&just_started, &[], 0, status(5000.0, 50.0)));
        assert!(a > 5, "agents about to be free get calls: {a}");
        assert!(b < a, "agents just started talking get fewer: {b} vs {a}");
    }

    #[test]
    fn calls_in_flight_reduce_new_dials() {
        let mut p = trained();
        let now = Time::SIM_EPOCH + Duration::from_secs(1000);
        let ringing: Vec<FlightCall> = (0..20)
            .map(|_| FlightCall {
                phase: FlightPhase::Ringing,
                since: now - Duration::from_secs(2),
            })
            .collect();
        let free = p.decide(&view(&[], &[], 10, status(5000.0, 50.0)));
        let with = p.decide(&view(&[], &ringing, 10, status(5000.0, 50.0)));
        assert!(with + 10 < free, "{with} vs {free}");
    }
}
