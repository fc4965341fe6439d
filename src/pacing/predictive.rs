//! Predictive dialing: keep as many calls in flight as the statistics say agents will
//! be free to take, while the abandon rate stays under its limit.
//!
//! ## The model
//!
//! A call placed now needs an agent at `X = ring time + AMD delay` if a person answers
//! (probability `p`). At a horizon `τ` (five quantiles of X for answered calls) the
//! policy estimates
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
//! `β` spends the campaign's allowance: over the lives expected in what is left of
//! today's calling window (at most `lookahead_s`, at the current live-answer rate),
//! it is the
//! largest per-person abandon probability that keeps the upper confidence bound
//! (normal approximation at `confidence`) of the window's abandon rate at or under
//! the target, after the AMD false positives the Ofcom estimate will add. The bound's
//! variance counts what is really uncertain: the number of persons the AMD hung up on
//! (binomial at the known false-positive rate, past and future) and the abandons of
//! the persons still to come; past queue abandons are known exactly. After a bad spell `β` shrinks and the
//! policy dials close to progressively; as evidence accumulates under target, it
//! dials harder. Capping the *marginal* call's risk at `β` would leave the *average*
//! risk (what the abandon rate measures) well under it, and the normal approximation
//! has its own bias, so the threshold is `β × gain`, where `gain` is steered by
//! stochastic approximation until the realised share of persons abandoned in the
//! queue equals `β`.
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
const HORIZON_QUANTILES: [f64; H] = [0.1, 0.3, 0.5, 0.7, 0.9];
const H: usize = 5;
/// A person waits this long for an agent before being abandoned (the tables assume
/// the usual 2 s).
const GRACE_S: f64 = 2.0;
/// Table resolutions (seconds per row) and lengths.
const RING_BIN: f64 = 0.25;
const RING_ROWS: usize = 360;
const AMD_BIN: f64 = 0.1;
const AMD_ROWS: usize = 100;
const TALK_BIN: f64 = 2.0;
const TALK_ROWS: usize = 900;
const WRAP_BIN: f64 = 0.5;
const WRAP_ROWS: usize = 600;
/// How often the tables are rebuilt from the estimators, in engine seconds.
const TABLE_REFRESH_S: u64 = 30;
/// The smallest per-person risk the controller allows beyond the progressive floor.
const BETA_FLOOR: f64 = 0.0;
/// Learning rate of the gain: one abandon divides it by e^0.15.
const GAIN_RATE: f64 = 0.15;
const GAIN_MIN: f64 = 0.25;
const GAIN_MAX: f64 = 40.0;

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
    /// Multiplier on β for the marginal call's risk, steered so that the realised
    /// share of persons abandoned in the queue matches β (the marginal risk is
    /// higher than the average one, which is what the abandon rate measures).
    gain: f64,
    /// The β of the last decision: the allowance in force (also what steers `gain`).
    beta_now: f64,
    normal: Normal,
    /// Demand and supply at each horizon, for the decision being made.
    horizons: [Horizon; H],
    /// Per-horizon probabilities by elapsed time, rebuilt every `TABLE_REFRESH_S`.
    tables: Tables,
    tables_due: Option<Time>,
    level: f64,
}

/// Per-horizon probabilities by elapsed time.
#[derive(Debug)]
struct Tables {
    tau: [f64; H],
    p_new: [f64; H],
    /// P(a call ringing for e seconds needs an agent by each horizon).
    ring: Vec<[f64; H]>,
    /// P(a call in AMD for e seconds needs an agent by each horizon).
    amd: Vec<[f64; H]>,
    /// P(an agent talking / in wrap-up for e seconds is free by each horizon + grace).
    talk: Vec<[f64; H]>,
    wrap: Vec<[f64; H]>,
}

impl Tables {
    fn new() -> Self {
        Tables {
            tau: [0.0; H],
            p_new: [0.0; H],
            ring: vec![[0.0; H]; RING_ROWS],
            amd: vec![[0.0; H]; AMD_ROWS],
            talk: vec![[0.0; H]; TALK_ROWS],
            wrap: vec![[0.0; H]; WRAP_ROWS],
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Horizon {
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
            gain: 1.0,
            beta_now: 0.0,
            normal,
            horizons: [Horizon::default(); H],
            tables: Tables::new(),
            tables_due: None,
            level: 1.0,
        }
    }

    /// The per-person abandon risk the controller currently allows.
    pub fn allowance(&self) -> f64 {
        self.beta_now
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
        // Lives to plan over: the live-answer rate of the last hour (or of the history
        // there is), and at least ten an hour per working agent.
        let hours = (a.history_s / 3600.0).clamp(0.1, 1.0);
        let floor = 10.0 * view.agents.active() as f64;
        let plan_s = view
            .window_left_s
            .map_or(self.lookahead_s, |left| left.min(self.lookahead_s))
            .max(60.0);
        let n = (a.lives_last_hour / hours).max(floor) * plan_s / 3600.0;
        let total = a.lives + n;
        // What is uncertain: how many persons the AMD really hung up on (past and
        // future), and how many future persons will be abandoned. Past queue
        // abandons are known exactly.
        let fp = a.fp_share;
        let q = (alpha - fp).max(0.001);
        let var = fp * (1.0 - fp) * total + q * (1.0 - q) * n;
        let margin = self.z * var.sqrt();
        let allowed = (alpha * total - margin - a.abandons) / n;
        (allowed - fp).clamp(BETA_FLOOR, alpha)
    }

    /// Steer `gain` by stochastic approximation: each live answer raises it by β,
    /// each queue abandon lowers it by 1, so it settles where the realised abandon
    /// share equals β. Frozen while there is no allowance to spend.
    fn steer(&mut self, step: f64) {
        if self.beta_now > 0.0 {
            self.gain = (self.gain * (GAIN_RATE * step).exp()).clamp(GAIN_MIN, GAIN_MAX);
        }
    }

    /// Rebuild the per-horizon probability tables from the estimators.
    fn rebuild_tables(&mut self) {
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
        let t = &mut self.tables;
        for (j, q) in HORIZON_QUANTILES.iter().enumerate() {
            t.tau[j] = quantile_marked(&self.ring, answered_total, *q) + amd_mean;
            let reach = (t.tau[j] - amd_mean).max(0.0);
            t.p_new[j] = if ring_total > 0.0 {
                (h * self.ring.marked_below_fresh(reach) / ring_total).clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
        // Cumulative masses on uniform grids (one pass each), so that every row below
        // is a few array reads. Grids reach past the tables by the longest horizon.
        let reach_max = t.tau.iter().copied().fold(0.0, f64::max) + GRACE_S;
        let grid = |hist: &FadingHistogram, step: f64, rows: usize, marked: bool| {
            hist.mass_grid(step, rows + (reach_max / step).ceil() as usize + 2, marked)
        };
        let at = |g: &[f64], x: f64, step: f64| {
            let pos = (x / step).max(0.0);
            let i = (pos as usize).min(g.len() - 2);
            let frac = (pos - i as f64).min(1.0);
            g[i] + (g[i + 1] - g[i]) * frac
        };
        let ring_all = grid(&self.ring, RING_BIN, RING_ROWS, false);
        let ring_ans = grid(&self.ring, RING_BIN, RING_ROWS, true);
        for (b, row) in t.ring.iter_mut().enumerate() {
            let e = b as f64 * RING_BIN;
            let left = ring_total - ring_all[b];
            for (v, tau) in row.iter_mut().zip(t.tau) {
                let reach = e + (tau - amd_mean).max(0.0);
                *v = if left <= 0.0 {
                    0.0
                } else {
                    (h * (at(&ring_ans, reach, RING_BIN) - ring_ans[b]) / left).clamp(0.0, 1.0)
                };
            }
        }
        let amd = grid(&self.amd, AMD_BIN, AMD_ROWS, false);
        for (b, row) in t.amd.iter_mut().enumerate() {
            let e = b as f64 * AMD_BIN;
            let left = amd_total - amd[b];
            for (v, tau) in row.iter_mut().zip(t.tau) {
                *v = if left <= 0.0 {
                    h
                } else {
                    (h * (at(&amd, e + tau, AMD_BIN) - amd[b]) / left).clamp(0.0, 1.0)
                };
            }
        }
        // A talking agent is free once talk and then wrap-up are over.
        for (hist, shift, table, width) in [
            (&self.talk, wrap_mean, &mut t.talk, TALK_BIN),
            (&self.wrap, 0.0, &mut t.wrap, WRAP_BIN),
        ] {
            let total = hist.total_fresh();
            let g = grid(hist, width, table.len(), false);
            for (b, row) in table.iter_mut().enumerate() {
                let e = b as f64 * width;
                let below = g[b];
                let left = total - below;
                for (v, tau) in row.iter_mut().zip(t.tau) {
                    let h = tau + GRACE_S;
                    *v = if left <= total * 1e-6 {
                        // Longer than anything seen: a heavy tail, assume it lasts as long again.
                        0.5 * (h / (h + e.max(1.0))).min(1.0)
                    } else if h <= shift {
                        0.0
                    } else {
                        ((at(&g, e + h - shift, width) - below) / left).clamp(0.0, 1.0)
                    };
                }
            }
        }
    }

    /// Mean and variance of demand minus supply at each horizon, without new calls.
    fn compute_horizons(&mut self, view: &View<'_>) {
        if self.tables_due.is_none_or(|d| d <= view.now) {
            self.rebuild_tables();
            self.tables_due = Some(view.now + std::time::Duration::from_secs(TABLE_REFRESH_S));
        }
        let t = &self.tables;
        let mut mean = [view.waiting as f64 - view.agents.ready as f64; H];
        let mut var = [0.0; H];
        let mut add = |row: &[f64; H], sign: f64| {
            for j in 0..H {
                mean[j] += sign * row[j];
                var[j] += row[j] * (1.0 - row[j]);
            }
        };
        for b in view.busy {
            let e = view.now.secs_since(b.since);
            match b.phase {
                BusyPhase::Talking => add(lookup(&t.talk, e, TALK_BIN), -1.0),
                BusyPhase::WrapUp => add(lookup(&t.wrap, e, WRAP_BIN), -1.0),
            }
        }
        for c in view.calls {
            let e = view.now.secs_since(c.since);
            match c.phase {
                FlightPhase::Ringing => add(lookup(&t.ring, e, RING_BIN), 1.0),
                FlightPhase::Detecting => add(lookup(&t.amd, e, AMD_BIN), 1.0),
            }
        }
        for j in 0..H {
            self.horizons[j] = Horizon {
                mean: mean[j],
                var: var[j],
                p_new: t.p_new[j],
            };
        }
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
        sum / H as f64
    }
}

/// The table row for elapsed time `e` (the last row beyond the table).
fn lookup<const N: usize>(table: &[[f64; N]], e: f64, width: f64) -> &[f64; N] {
    let i = ((e / width) as usize).min(table.len() - 1);
    &table[i]
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
                if to_agent {
                    self.steer(self.beta_now);
                }
            }
            Observation::TalkEnded { talk_s } => self.talk.add(talk_s),
            Observation::WrapEnded { wrap_s } => self.wrap.add(wrap_s),
            // The live answer already raised the gain by β: lowering it by 1 nets the
            // abandoned person's -(1 - β).
            Observation::Abandoned => self.steer(-1.0),
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
        self.beta_now = beta;
        let threshold = (beta * self.gain).min(0.5);
        let mut placed = 0;
        while placed < room {
            if placed >= floor && self.risk(placed + 1) > threshold {
                break;
            }
            placed += 1;
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
            history_s: 3600.0,
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
            window_left_s: None,
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
