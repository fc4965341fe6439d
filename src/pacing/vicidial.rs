//! VICIdial's ADAPT_TAPERED dial method, re-implemented as a baseline to measure the
//! predictive policy against. It is not offered as a production choice.
//!
//! Every rule comes from VICIdial's `bin/AST_VDadapt.pl` (version 2.4) and the call
//! placement in `bin/AST_VDauto_dial.pl`:
//!
//! - **Samples** (`count_agents_lines`): once a second, the campaign's READY agents,
//!   the customers waiting for an agent (`vicidial_auto_calls` in status LIVE) and all
//!   logged-in agents; the last 15 samples are averaged.
//! - **Differential**: `stat_differential = ready_avg - waiting_avg`.
//! - **Level step** (`calculate_dial_level`, every 15 s): `differential_target =
//!   differential + adaptive_dl_diff_target`; `differential_mul = target /
//!   agents_avg`; the intensity setting scales the percentage (`× (intensity/100 + 1)`
//!   when positive, `× |intensity/100 - 1|` when negative); the new level is
//!   `level × (1 + intensity_diff/100)`, capped at `adaptive_maximum_level` (3.0) and
//!   raised to 1.0 when lower.
//! - **Drop gates** (`calculate_drops`, refreshed every 60 s): if more than 20 calls
//!   were placed in the last minute and over 50 % of them dropped, the level is halved;
//!   if more than 50 calls were placed today and drops exceed
//!   `adaptive_dropped_percentage` of today's answers, ADAPT_TAPERED multiplies the
//!   level by `(adaptive_latest_server_time - HHMM_now) / 1000` (1 when more than
//!   1000 "HHMM units" remain: VICIdial subtracts HHMM numbers, not minutes) and sets
//!   it to 1.0 once that time has passed. The level never goes below 1.0.
//! - **Placement** (`AST_VDauto_dial.pl`): `goal = round(level × agents)` where
//!   agents are READY plus INCALL (paused and wrap-up agents do not count, as
//!   `available_only_ratio_tally` is N by default), and `calls to place = goal -
//!   existing calls` (ringing, waiting for an agent and connected to an agent).
//! - "Today" starts at midnight of the campaign's clock.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Observation, Pacer, PacingConfig, Policy, View, room};
use crate::time::Time;

const SAMPLES: usize = 15;
const STEP: Duration = Duration::from_secs(15);
const DROP_REFRESH: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    ready: f64,
    waiting: f64,
    total: f64,
}

#[derive(Clone, Debug)]
pub struct VicidialAdapt {
    level: f64,
    max_level: f64,
    drop_percent: f64,
    latest_hhmm: i64,
    intensity: f64,
    dl_diff_target: f64,
    utc_offset_min: i32,
    samples: VecDeque<Sample>,
    next_sample: Option<Time>,
    next_step: Option<Time>,
    next_drop_refresh: Option<Time>,
    /// Dial and drop times within the last minute.
    recent_dials: VecDeque<Time>,
    recent_drops: VecDeque<Time>,
    day: u64,
    calls_today: u64,
    answers_today: u64,
    drops_today: u64,
    /// Drop statistics as of the last refresh (VICIdial reads them from its stats table).
    gate: DropStats,
}

#[derive(Clone, Copy, Debug, Default)]
struct DropStats {
    calls_one: usize,
    drops_one_pct: f64,
    calls_today: u64,
    drops_answers_today_pct: f64,
}

impl VicidialAdapt {
    pub fn new(cfg: &PacingConfig) -> Self {
        VicidialAdapt {
            level: cfg.vicidial_start_level.max(1.0),
            max_level: cfg.vicidial_max_level,
            drop_percent: cfg.vicidial_drop_percent,
            latest_hhmm: i64::from(cfg.vicidial_latest_hhmm),
            intensity: cfg.vicidial_intensity,
            dl_diff_target: cfg.vicidial_dl_diff_target,
            utc_offset_min: cfg.utc_offset_min,
            samples: VecDeque::with_capacity(SAMPLES),
            next_sample: None,
            next_step: None,
            next_drop_refresh: None,
            recent_dials: VecDeque::new(),
            recent_drops: VecDeque::new(),
            day: 0,
            calls_today: 0,
            answers_today: 0,
            drops_today: 0,
            gate: DropStats::default(),
        }
    }

    fn roll_day(&mut self, now: Time) {
        let day = (now.as_millis() as i64 / 60_000 + i64::from(self.utc_offset_min))
            .div_euclid(1440) as u64;
        if day != self.day {
            self.day = day;
            self.calls_today = 0;
            self.answers_today = 0;
            self.drops_today = 0;
        }
    }

    fn hhmm(&self, now: Time) -> i64 {
        let m = i64::from(now.minute_of_day(self.utc_offset_min));
        (m / 60) * 100 + m % 60
    }

    fn refresh_drops(&mut self, now: Time) {
        let minute_ago = now - Duration::from_secs(60);
        while self.recent_dials.front().is_some_and(|t| *t <= minute_ago) {
            self.recent_dials.pop_front();
        }
        while self.recent_drops.front().is_some_and(|t| *t <= minute_ago) {
            self.recent_drops.pop_front();
        }
        let calls_one = self.recent_dials.len();
        self.gate = DropStats {
            calls_one,
            drops_one_pct: if calls_one > 0 {
                100.0 * self.recent_drops.len() as f64 / calls_one as f64
            } else {
                0.0
            },
            calls_today: self.calls_today,
            drops_answers_today_pct: if self.drops_today > 0 {
                100.0 * self.drops_today as f64 / self.answers_today.max(1) as f64
            } else {
                0.0
            },
        };
    }

    /// One 15-second step of `calculate_dial_level`.
    fn step(&mut self, now: Time) {
        let n = self.samples.len().max(1) as f64;
        let ready_avg = self.samples.iter().map(|s| s.ready).sum::<f64>() / n;
        let waiting_avg = self.samples.iter().map(|s| s.waiting).sum::<f64>() / n;
        let agents_avg = self.samples.iter().map(|s| s.total).sum::<f64>() / n;
        if agents_avg <= 0.0 {
            return;
        }
        let target = ready_avg - waiting_avg + self.dl_diff_target;
        let pct_raw = if target != 0.0 {
            100.0 * target / agents_avg
        } else {
            0.0
        };
        let intensity_mul = self.intensity / 100.0;
        let intensity_pct = if pct_raw < 0.0 {
            pct_raw * (intensity_mul - 1.0).abs()
        } else {
            pct_raw * (intensity_mul + 1.0)
        };
        let mut level = self.level * (intensity_pct / 100.0 + 1.0);
        level = level.min(self.max_level);
        if level < 1.0 {
            level = 1.0;
        }
        let g = self.gate;
        if g.calls_one > 20 && g.drops_one_pct > 50.0 {
            level /= 2.0;
        }
        if g.calls_today > 50 && g.drops_answers_today_pct > self.drop_percent {
            let hours_left = self.latest_hhmm - self.hhmm(now);
            if hours_left < 0 {
                level = 1.0;
            } else {
                let tapered = if hours_left > 1000 {
                    1.0
                } else {
                    hours_left as f64 / 1000.0
                };
                level *= tapered;
            }
        }
        self.level = level.max(1.0);
    }
}

impl Pacer for VicidialAdapt {
    fn policy(&self) -> Policy {
        Policy::VicidialAdapt
    }

    fn observe(&mut self, now: Time, obs: Observation) {
        self.roll_day(now);
        match obs {
            Observation::Dialed => {
                self.calls_today += 1;
                self.recent_dials.push_back(now);
            }
            Observation::AmdDecided { to_agent: true, .. } => self.answers_today += 1,
            Observation::Abandoned => {
                self.drops_today += 1;
                self.recent_drops.push_back(now);
            }
            _ => {}
        }
    }

    fn decide(&mut self, view: &View<'_>) -> usize {
        let now = view.now;
        self.roll_day(now);
        let sample = Sample {
            ready: view.agents.ready as f64,
            waiting: view.waiting as f64,
            total: view.agents.logged_in() as f64,
        };
        // Once-a-second samples; a gap repeats the current sample, as the state held.
        let mut next = *self.next_sample.get_or_insert(now);
        while next <= now {
            if self.samples.len() == SAMPLES {
                self.samples.pop_front();
            }
            self.samples.push_back(sample);
            next += Duration::from_secs(1);
        }
        self.next_sample = Some(next);
        if *self.next_drop_refresh.get_or_insert(now) <= now {
            self.refresh_drops(now);
            self.next_drop_refresh = Some(now + DROP_REFRESH);
        }
        if *self.next_step.get_or_insert(now + STEP) <= now {
            self.step(now);
            self.next_step = Some(now + STEP);
        }
        let agents = (view.agents.ready + view.agents.on_call) as f64;
        let goal = (self.level * agents).round() as usize;
        let existing = view.in_flight + view.waiting + view.connected;
        goal.saturating_sub(existing).min(room(view))
    }

    fn dial_level(&self) -> f64 {
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::progressive::tests::view;

    fn adapt() -> VicidialAdapt {
        VicidialAdapt::new(&PacingConfig {
            policy: Policy::VicidialAdapt,
            ..PacingConfig::default()
        })
    }

    #[test]
    fn level_rises_while_agents_wait_and_is_capped() {
        let mut v = adapt();
        let mut now = Time::SIM_EPOCH + Duration::from_secs(9 * 3600);
        for _ in 0..600 {
            let mut w = view(4, 0);
            w.now = now;
            v.decide(&w);
            now += Duration::from_secs(1);
        }
        assert_eq!(v.dial_level(), 3.0);
    }

    #[test]
    fn level_falls_to_one_when_customers_wait() {
        let mut v = adapt();
        v.level = 2.5;
        let mut now = Time::SIM_EPOCH + Duration::from_secs(9 * 3600);
        for _ in 0..120 {
            let mut w = view(0, 0);
            w.waiting = 3;
            w.now = now;
            v.decide(&w);
            now += Duration::from_secs(1);
        }
        assert_eq!(v.dial_level(), 1.0);
    }

    #[test]
    fn taper_applies_when_todays_drops_exceed_the_limit() {
        let mut v = adapt();
        v.level = 2.0;
        // 18:00 local: 2100 - 1800 = 300 HHMM units left -> level x 0.3, floored at 1.0.
        let now = Time::SIM_EPOCH + Duration::from_secs(18 * 3600);
        for _ in 0..100 {
            v.observe(now, Observation::Dialed);
            v.observe(
                now,
                Observation::AmdDecided {
                    amd_s: 1.0,
                    to_agent: true,
                },
            );
        }
        for _ in 0..10 {
            v.observe(now, Observation::Abandoned);
        }
        v.refresh_drops(now);
        v.samples.push_back(Sample {
            ready: 0.0,
            waiting: 0.0,
            total: 10.0,
        });
        v.step(now);
        assert_eq!(v.dial_level(), 1.0);
        // At 11:30 there are 2100 - 1130 = 970 units left: level x 0.97.
        v.level = 2.0;
        v.step(Time::SIM_EPOCH + Duration::from_secs(11 * 3600 + 1800));
        assert!((v.dial_level() - 1.94).abs() < 1e-9, "{}", v.dial_level());
    }

    #[test]
    fn goal_counts_ready_and_incall_agents_against_all_calls() {
        let mut v = adapt();
        v.level = 2.0;
        v.next_step = Some(Time(u64::MAX));
        // ready 4 + on call 3 = 7 agents -> goal 14; existing = 2 in flight + 3 connected.
        let w = view(4, 2);
        assert_eq!(v.decide(&w), 9);
    }
}
