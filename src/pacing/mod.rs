//! Pacing: how many calls to have in flight, moment by moment.
//!
//! The engine hands a policy a [`View`] of one campaign (agents by state, calls in
//! flight with their phase and age, customers waiting, the abandon ledger) and the
//! policy answers how many new calls to originate now. Policies learn from
//! [`Observation`]s (ring times, AMD delays, talk and wrap times) that the engine
//! reports as calls progress. No policy reads the clock or does IO.
//!
//! | policy | module | rule |
//! |---|---|---|
//! | `progressive` | [`progressive`] | one call per ready agent not yet covered |
//! | `ratio` | [`ratio`] | a fixed number of lines per ready agent |
//! | `predictive` | [`predictive`] | statistics of answers and agents freeing up, under an abandon-rate controller |
//! | `vicidial-adapt` | [`vicidial`] | VICIdial's ADAPT_TAPERED, as a baseline |

pub mod abandon;
pub mod estimators;
pub mod predictive;
pub mod progressive;
pub mod ratio;
pub mod vicidial;

use serde::{Deserialize, Serialize};

use crate::time::Time;
pub use abandon::{AbandonLedger, AbandonStatus};

/// The pacing policy of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    Progressive,
    Ratio,
    Predictive,
    VicidialAdapt,
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::Progressive,
        Policy::Ratio,
        Policy::Predictive,
        Policy::VicidialAdapt,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Policy::Progressive => "progressive",
            Policy::Ratio => "ratio",
            Policy::Predictive => "predictive",
            Policy::VicidialAdapt => "vicidial-adapt",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown pacing policy `{s}` (progressive, ratio, predictive, vicidial-adapt)"
                )
            })
    }
}

/// Pacing parameters of a campaign. Every field has a default, so a campaign names
/// only what it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    pub policy: Policy,
    /// Lines per ready agent, for `ratio`.
    pub ratio: f64,
    /// Abandon-rate target (share of live answers), 0.03 = 3 %.
    pub target_abandon: f64,
    /// Confidence of the upper bound the predictive controller keeps under target.
    pub confidence: f64,
    /// Longest span the predictive controller plans its allowance over, in seconds
    /// of dialing (it plans over what is left of the calling window when shorter).
    pub lookahead_s: f64,
    /// Hard cap on calls in flight per logged-in agent (all policies).
    pub max_lines_per_agent: f64,
    /// Dials the predictive policy needs to have seen before it trusts its
    /// estimates; it dials progressively until then.
    pub warmup_dials: u32,
    /// Effective memory of the answer and service-time estimators, in samples.
    pub memory: u32,
    /// VICIdial: starting dial level.
    pub vicidial_start_level: f64,
    /// VICIdial: `adaptive_maximum_level`.
    pub vicidial_max_level: f64,
    /// VICIdial: `adaptive_dropped_percentage` (percent).
    pub vicidial_drop_percent: f64,
    /// VICIdial: `adaptive_latest_server_time` as HHMM.
    pub vicidial_latest_hhmm: u32,
    /// VICIdial: `adaptive_intensity` (-40..40).
    pub vicidial_intensity: f64,
    /// VICIdial: `adaptive_dl_diff_target`.
    pub vicidial_dl_diff_target: f64,
    /// Minutes east of UTC of the campaign's clock (VICIdial's server time).
    pub utc_offset_min: i32,
}

impl Default for PacingConfig {
    fn default() -> Self {
        PacingConfig {
            policy: Policy::Predictive,
            ratio: 2.0,
            target_abandon: 0.03,
            confidence: 0.99,
            lookahead_s: 28_800.0,
            max_lines_per_agent: 6.0,
            warmup_dials: 60,
            memory: 1500,
            vicidial_start_level: 1.0,
            vicidial_max_level: 3.0,
            vicidial_drop_percent: 3.0,
            vicidial_latest_hhmm: 2100,
            vicidial_intensity: 0.0,
            vicidial_dl_diff_target: 0.0,
            utc_offset_min: 0,
        }
    }
}

impl PacingConfig {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError::Invalid;
        let bad = |field: &'static str, why: String| Err(Invalid { field, why });
        if !(self.ratio >= 0.1 && self.ratio <= 20.0) {
            return bad("ratio", format!("{} is outside 0.1..=20", self.ratio));
        }
        if !(self.target_abandon > 0.0 && self.target_abandon < 0.5) {
            return bad(
                "target_abandon",
                format!("{} is outside (0, 0.5)", self.target_abandon),
            );
        }
        if !(self.confidence >= 0.5 && self.confidence < 1.0) {
            return bad(
                "confidence",
                format!("{} is outside [0.5, 1)", self.confidence),
            );
        }
        if self.lookahead_s.is_nan() || self.lookahead_s < 60.0 {
            return bad("lookahead_s", format!("{} is under 60", self.lookahead_s));
        }
        if !(self.max_lines_per_agent >= 1.0 && self.max_lines_per_agent <= 50.0) {
            return bad(
                "max_lines_per_agent",
                format!("{} is outside 1..=50", self.max_lines_per_agent),
            );
        }
        if self.memory < 50 {
            return bad("memory", format!("{} is under 50 samples", self.memory));
        }
        if self.vicidial_max_level.is_nan() || self.vicidial_max_level < 1.0 {
            return bad(
                "vicidial_max_level",
                format!("{} is under 1.0", self.vicidial_max_level),
            );
        }
        if self.vicidial_latest_hhmm > 2400 || self.vicidial_latest_hhmm % 100 >= 60 {
            return bad(
                "vicidial_latest_hhmm",
                format!("{} is not an HHMM time", self.vicidial_latest_hhmm),
            );
        }
        Ok(())
    }

    /// Build the policy this config names.
    pub fn build(&self) -> Box<dyn Pacer> {
        match self.policy {
            Policy::Progressive => Box::new(progressive::Progressive),
            Policy::Ratio => Box::new(ratio::Ratio::new(self.ratio)),
            Policy::Predictive => Box::new(predictive::Predictive::new(self)),
            Policy::VicidialAdapt => Box::new(vicidial::VicidialAdapt::new(self)),
        }
    }
}

/// Counts of a campaign's logged-in agents by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    pub ready: usize,
    pub on_call: usize,
    pub wrap_up: usize,
    pub paused: usize,
}

impl AgentCounts {
    pub fn logged_in(&self) -> usize {
        self.ready + self.on_call + self.wrap_up + self.paused
    }

    /// Agents who are working (not paused).
    pub fn active(&self) -> usize {
        self.ready + self.on_call + self.wrap_up
    }
}

/// What a busy agent is doing, and since when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BusyPhase {
    /// On a call with a person (or a machine AMD let through).
    Talking,
    /// After the call, before the disposition.
    WrapUp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BusyAgent {
    pub phase: BusyPhase,
    pub since: Time,
}

/// Where a call in flight stands, and since when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlightPhase {
    /// Dialled, not answered; `since` is the dial time.
    Ringing,
    /// Answered, waiting for the AMD verdict; `since` is the answer time.
    Detecting,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlightCall {
    pub phase: FlightPhase,
    pub since: Time,
}

/// A campaign as a pacing policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub now: Time,
    pub agents: AgentCounts,
    /// Agents talking or in wrap-up. Filled only for policies that ask for detail.
    pub busy: &'a [BusyAgent],
    /// Calls dialled and not yet resolved (ringing or in AMD). Filled only for
    /// policies that ask for detail; `in_flight` is always set.
    pub calls: &'a [FlightCall],
    /// Calls ringing or in AMD.
    pub in_flight: usize,
    /// Persons answered and waiting for an agent.
    pub waiting: usize,
    /// Calls bridged to an agent.
    pub connected: usize,
    /// The campaign's abandon ledger over its compliance window.
    pub abandon: AbandonStatus,
    /// Upper limit on calls in flight (lines cap, trunk limits).
    pub max_in_flight: usize,
    /// Seconds left in today's calling window: the predictive controller plans its
    /// abandon allowance over them.
    pub window_left_s: Option<f64>,
}

/// What the engine tells a policy as calls progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observation {
    /// A dial stopped ringing after `ring_s`: answered, or ended without answer.
    RingEnded { ring_s: f64, answered: bool },
    /// AMD decided `amd_s` after answer; `to_agent` when the call goes to an agent.
    AmdDecided { amd_s: f64, to_agent: bool },
    /// An agent finished a call that lasted `talk_s`.
    TalkEnded { talk_s: f64 },
    /// An agent finished wrap-up that lasted `wrap_s`.
    WrapEnded { wrap_s: f64 },
    /// A person waiting for an agent was abandoned.
    Abandoned,
    /// A call was dialled.
    Dialed,
}

/// A pacing policy.
pub trait Pacer: Send {
    fn policy(&self) -> Policy;

    /// Whether `decide` reads `View::busy` and `View::calls` (costly to build).
    fn wants_detail(&self) -> bool {
        false
    }

    /// Learn from what happened.
    fn observe(&mut self, _now: Time, _obs: Observation) {}

    /// How many new calls to originate now.
    fn decide(&mut self, view: &View<'_>) -> usize;

    /// Current dial level: lines in flight per active agent the policy aims for.
    fn dial_level(&self) -> f64;
}

/// Calls the lines cap still allows.
pub(crate) fn room(view: &View<'_>) -> usize {
    view.max_in_flight.saturating_sub(view.in_flight)
}
