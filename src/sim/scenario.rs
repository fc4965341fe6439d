//! Scenario files (TOML): the agents, the customers, the AMD and the pacing of one
//! simulated campaign. Unknown fields are errors.

use std::path::Path;

use rand::Rng;
use rand_distr::{Distribution, Exp, Gamma, LogNormal, Uniform};
use serde::{Deserialize, Serialize};

use crate::campaign::{CallingWindow, CampaignSettings};
use crate::pacing::{PacingConfig, Policy};

/// The scenario used when no file is given (also `simulations/base-20.toml`).
pub const DEFAULT_SCENARIO: &str = include_str!("../../simulations/base-20.toml");

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("scenario {path}: {message}")]
    Parse { path: String, message: String },
    #[error("scenario {path}: invalid `{field}`: {why}")]
    Invalid {
        path: String,
        field: String,
        why: String,
    },
}

/// A probability distribution of durations in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dist {
    Constant { mean: f64 },
    Uniform { min: f64, max: f64 },
    Exponential { mean: f64 },
    Lognormal { mean: f64, cv: f64 },
    Gamma { mean: f64, cv: f64 },
}

impl Dist {
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Constant { mean } | Dist::Exponential { mean } => mean,
            Dist::Lognormal { mean, .. } | Dist::Gamma { mean, .. } => mean,
            Dist::Uniform { min, max } => 0.5 * (min + max),
        }
    }

    fn check(&self) -> Result<(), String> {
        let ok = match *self {
            Dist::Constant { mean } => mean >= 0.0,
            Dist::Uniform { min, max } => min >= 0.0 && max >= min,
            Dist::Exponential { mean } => mean > 0.0,
            Dist::Lognormal { mean, cv } | Dist::Gamma { mean, cv } => mean > 0.0 && cv > 0.0,
        };
        if ok && self.mean().is_finite() {
            Ok(())
        } else {
            Err(format!("{self:?} has out-of-range parameters"))
        }
    }

    /// Build a sampler (parameters are checked at load).
    pub fn sampler(&self) -> Sampler {
        match *self {
            Dist::Constant { mean } => Sampler::Constant(mean),
            Dist::Uniform { min, max } if max > min => {
                Sampler::Uniform(Uniform::new(min, max).expect("checked"))
            }
            Dist::Uniform { min, .. } => Sampler::Constant(min),
            Dist::Exponential { mean } => Sampler::Exp(Exp::new(1.0 / mean).expect("checked")),
            Dist::Lognormal { mean, cv } => {
                let sigma2 = (1.0 + cv * cv).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                Sampler::LogNormal(LogNormal::new(mu, sigma2.sqrt()).expect("checked"))
            }
            Dist::Gamma { mean, cv } => {
                let shape = 1.0 / (cv * cv);
                Sampler::Gamma(Gamma::new(shape, mean / shape).expect("checked"))
            }
        }
    }
}

/// A ready-to-use sampler for a [`Dist`].
#[derive(Clone, Copy, Debug)]
pub enum Sampler {
    Constant(f64),
    Uniform(Uniform<f64>),
    Exp(Exp<f64>),
    LogNormal(LogNormal<f64>),
    Gamma(Gamma<f64>),
}

impl Sampler {
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Sampler::Constant(x) => *x,
            Sampler::Uniform(d) => d.sample(rng),
            Sampler::Exp(d) => d.sample(rng),
            Sampler::LogNormal(d) => d.sample(rng),
            Sampler::Gamma(d) => d.sample(rng),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsModel {
    pub count: u32,
    /// Talk time with a person.
    pub talk_s: Dist,
    /// Wrap-up after a call with a person.
    pub wrap_s: Dist,
    /// Time an agent spends on a machine that AMD let through, disposition included.
    #[serde(default = "default_machine_s")]
    pub machine_s: Dist,
}

fn default_machine_s() -> Dist {
    Dist::Constant { mean: 8.0 }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePoint {
    pub at_s: f64,
    pub p: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomersModel {
    /// Share of dials answered by a person.
    pub live: f64,
    /// Share answered by a machine.
    pub machine: f64,
    /// Share busy; the rest ring until the no-answer timeout.
    pub busy: f64,
    /// The person share over the day, interpolated linearly (overrides `live`).
    #[serde(default)]
    pub live_schedule: Vec<SchedulePoint>,
    /// Time from dial to answer (person or machine).
    pub ring_s: Dist,
    /// Time from dial to the busy signal.
    pub busy_s: Dist,
}

impl CustomersModel {
    /// Person share at `t` seconds into the run.
    pub fn live_at(&self, t: f64) -> f64 {
        let s = &self.live_schedule;
        match s.len() {
            0 => self.live,
            _ if t <= s[0].at_s => s[0].p,
            _ if t >= s[s.len() - 1].at_s => s[s.len() - 1].p,
            _ => {
                let i = s.partition_point(|p| p.at_s <= t);
                let (a, b) = (s[i - 1], s[i]);
                a.p + (b.p - a.p) * (t - a.at_s) / (b.at_s - a.at_s)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmdModel {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds after answer until the verdict.
    pub decision_s: f64,
    /// Share of persons judged machines (hung up; they count as abandoned).
    pub false_positive: f64,
    /// Share of machines passed to agents.
    pub false_negative: f64,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacingModel {
    pub policy: Policy,
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    #[serde(default = "default_target")]
    pub target_abandon: f64,
    #[serde(default = "default_max_wait")]
    pub max_wait_s: f64,
    #[serde(default = "default_no_answer")]
    pub no_answer_timeout_s: f64,
    /// Further pacing parameters (confidence, lookahead_s, memory, …).
    #[serde(default)]
    pub tuning: Option<toml::Table>,
}

fn default_ratio() -> f64 {
    2.0
}
fn default_target() -> f64 {
    0.03
}
fn default_max_wait() -> f64 {
    2.0
}
fn default_no_answer() -> f64 {
    25.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default = "one")]
    pub seed: u64,
    pub duration_s: f64,
    /// Local time of day the run starts, HHMM (for VICIdial's taper and reports).
    #[serde(default = "nine")]
    pub start_hhmm: u32,
    pub agents: AgentsModel,
    pub customers: CustomersModel,
    pub amd: AmdModel,
    pub pacing: PacingModel,
}

fn one() -> u64 {
    1
}
fn nine() -> u32 {
    900
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn default_scenario() -> Scenario {
        Self::parse(DEFAULT_SCENARIO, "<embedded base-20>")
            .expect("the embedded scenario is valid (tested)")
    }

    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        s.validate()
            .map_err(|(field, why)| ScenarioError::Invalid {
                path: path.into(),
                field,
                why,
            })?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, w: String| Err((f.to_string(), w));
        if !(self.duration_s > 0.0 && self.duration_s <= 31.0 * 86_400.0) {
            return bad(
                "duration_s",
                format!("{} is outside (0, 31 days]", self.duration_s),
            );
        }
        if self.agents.count == 0 || self.agents.count > 10_000 {
            return bad(
                "agents.count",
                format!("{} is outside 1..=10000", self.agents.count),
            );
        }
        for (f, d) in [
            ("agents.talk_s", &self.agents.talk_s),
            ("agents.wrap_s", &self.agents.wrap_s),
            ("agents.machine_s", &self.agents.machine_s),
            ("customers.ring_s", &self.customers.ring_s),
            ("customers.busy_s", &self.customers.busy_s),
        ] {
            d.check().or_else(|w| bad(f, w))?;
        }
        let c = &self.customers;
        let lives: Vec<f64> = if c.live_schedule.is_empty() {
            vec![c.live]
        } else {
            c.live_schedule.iter().map(|p| p.p).collect()
        };
        for live in lives {
            if !(0.0..=1.0).contains(&live) || live + c.machine + c.busy > 1.0 + 1e-9 {
                return bad(
                    "customers",
                    format!(
                        "live {live} + machine {} + busy {} exceeds 1",
                        c.machine, c.busy
                    ),
                );
            }
        }
        if c.live_schedule.windows(2).any(|w| w[1].at_s <= w[0].at_s) {
            return bad("customers.live_schedule", "at_s must increase".into());
        }
        for (f, p) in [
            ("amd.false_positive", self.amd.false_positive),
            ("amd.false_negative", self.amd.false_negative),
        ] {
            if !(0.0..0.5).contains(&p) {
                return bad(f, format!("{p} is outside [0, 0.5)"));
            }
        }
        if !(self.amd.decision_s >= 0.0 && self.amd.decision_s < 30.0) {
            return bad(
                "amd.decision_s",
                format!("{} is outside [0, 30)", self.amd.decision_s),
            );
        }
        if self.start_hhmm >= 2400 || self.start_hhmm % 100 >= 60 {
            return bad(
                "start_hhmm",
                format!("{} is not an HHMM time", self.start_hhmm),
            );
        }
        self.campaign_settings()
            .validate()
            .or_else(|e| bad("pacing", e.to_string()))
    }

    /// The campaign settings the engine runs this scenario with.
    pub fn campaign_settings(&self) -> CampaignSettings {
        let p = &self.pacing;
        let mut pacing = match &p.tuning {
            Some(t) => t
                .clone()
                .try_into::<PacingConfig>()
                .unwrap_or_else(|_| PacingConfig::default()),
            None => PacingConfig::default(),
        };
        pacing.policy = p.policy;
        pacing.ratio = p.ratio;
        pacing.target_abandon = p.target_abandon;
        CampaignSettings {
            name: self.name.clone(),
            caller_id: "+441000000000".into(),
            pacing,
            max_wait_s: p.max_wait_s,
            ring_timeout_s: p.no_answer_timeout_s,
            amd: self.amd.enabled,
            amd_timeout_s: (self.amd.decision_s + 2.0).max(1.0),
            amd_false_positive: self.amd.false_positive,
            abandon_window_h: 24.0,
            abandon_prompt: Some("abandon".into()),
            calling_window: self.calling_window(),
            // The simulated day runs on UTC, whatever the scenario's start time.
            time_zone: "UTC".into(),
            ..CampaignSettings::default()
        }
    }

    /// The run is the campaign's calling day: from the start to the end of the run
    /// (or the whole day for runs that cross midnight).
    fn calling_window(&self) -> CallingWindow {
        let start = self.start_hhmm / 100 * 60 + self.start_hhmm % 100;
        let end = start + (self.duration_s / 60.0).ceil() as u32;
        if end <= 24 * 60 {
            CallingWindow {
                start_hhmm: self.start_hhmm,
                end_hhmm: end / 60 * 100 + end % 60,
                ..CallingWindow::default()
            }
        } else {
            CallingWindow {
                start_hhmm: 0,
                end_hhmm: 2400,
                ..CallingWindow::default()
            }
        }
    }

    /// Check the `[pacing.tuning]` table against the pacing schema.
    pub fn check_tuning(&self) -> Result<(), String> {
        match &self.pacing.tuning {
            Some(t) => t
                .clone()
                .try_into::<PacingConfig>()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn embedded_scenario_parses() {
        let s = Scenario::default_scenario();
        assert_eq!(s.agents.count, 20);
        s.check_tuning().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let base = DEFAULT_SCENARIO.replace("duration_s = 28800", "duration_s = 28800\nfoo = 1");
        let err = Scenario::parse(&base, "x.toml").unwrap_err().to_string();
        assert!(err.contains("foo"), "{err}");
        let base = DEFAULT_SCENARIO.replace("busy = 0.08", "busy = 0.9");
        let err = Scenario::parse(&base, "x.toml").unwrap_err().to_string();
        assert!(err.contains("customers"), "{err}");
    }

    #[test]
    fn schedule_interpolates() {
        let s = Scenario::default_scenario();
        let mut c = s.customers.clone();
        c.live_schedule = vec![
            SchedulePoint { at_s: 0.0, p: 0.4 },
            SchedulePoint {
                at_s: 100.0,
                p: 0.2,
            },
        ];
        assert!((c.live_at(50.0) - 0.3).abs() < 1e-12);
        assert_eq!(c.live_at(-1.0), 0.4);
        assert_eq!(c.live_at(1000.0), 0.2);
    }

    #[test]
    fn samplers_have_the_stated_means() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for d in [
            Dist::Lognormal {
                mean: 120.0,
                cv: 1.0,
            },
            Dist::Gamma {
                mean: 60.0,
                cv: 0.5,
            },
            Dist::Exponential { mean: 30.0 },
            Dist::Uniform {
                min: 4.0,
                max: 18.0,
            },
        ] {
            let s = d.sampler();
            let n = 200_000;
            let m: f64 = (0..n).map(|_| s.sample(&mut rng)).sum::<f64>() / n as f64;
            assert!((m / d.mean() - 1.0).abs() < 0.02, "{d:?}: {m}");
        }
    }
}
