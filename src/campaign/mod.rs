//! Campaigns and leads: what a campaign is allowed to do (its settings) and the leads
//! the engine dials.
//!
//! The engine holds a short buffer of leads that are due now for each running campaign
//! and asks its driver for more (`Output::LeadsWanted`); where the leads come from (the
//! store in the daemon, a generator in the simulator) is the driver's business.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::ids::LeadId;
use crate::pacing::PacingConfig;

/// The least ring time before giving up on an unanswered call (a rule of the trade:
/// shorter rings make "no answer" out of people walking to the phone).
pub const MIN_RING_TIMEOUT_S: f64 = 15.0;

/// A lead ready to dial now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialableLead {
    pub id: LeadId,
    /// E.164 number.
    pub number: String,
}

/// Rules and parameters of one campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignSettings {
    pub name: String,
    /// Caller ID presented on every call (E.164). Always presented.
    pub caller_id: String,
    pub pacing: PacingConfig,
    /// Seconds a person may wait for an agent after AMD says human before the call
    /// counts as abandoned.
    pub max_wait_s: f64,
    /// Seconds to ring before giving up (at least 15).
    pub ring_timeout_s: f64,
    /// Answering-machine detection on answered calls.
    pub amd: bool,
    /// Seconds to wait for an AMD verdict before treating the call as a person.
    pub amd_timeout_s: f64,
    /// Known share of persons the AMD judges machines (the Ofcom estimate added to
    /// abandoned calls). 0 when unknown.
    pub amd_false_positive: f64,
    /// Window of the abandon-rate rule, in hours (24 for Ofcom, 720 for 30 days).
    pub abandon_window_h: f64,
    /// Prompt played to an abandoned person before hang-up.
    pub abandon_prompt: Option<String>,
    /// Hours of the day the campaign may dial, on the campaign's clock
    /// (`pacing.utc_offset_min`).
    pub calling_window: CallingWindow,
}

/// Daily calling hours, `start` inclusive to `end` exclusive, as HHMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallingWindow {
    pub start_hhmm: u32,
    pub end_hhmm: u32,
}

impl Default for CallingWindow {
    fn default() -> Self {
        CallingWindow {
            start_hhmm: 800,
            end_hhmm: 2100,
        }
    }
}

impl CallingWindow {
    fn minutes(hhmm: u32) -> u32 {
        hhmm / 100 * 60 + hhmm % 100
    }

    /// Seconds left in today's window at minute-of-day `minute` (with `second` of
    /// that minute), or `None` when outside the window.
    pub fn left_s(&self, now: crate::time::Time, utc_offset_min: i32) -> Option<f64> {
        let minute = now.minute_of_day(utc_offset_min);
        let (start, end) = (Self::minutes(self.start_hhmm), Self::minutes(self.end_hhmm));
        if minute < start || minute >= end {
            return None;
        }
        let into_minute = (now.as_millis() % 60_000) as f64 / 1000.0;
        Some(f64::from(end - minute) * 60.0 - into_minute)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("calling_window.start_hhmm", self.start_hhmm),
            ("calling_window.end_hhmm", self.end_hhmm),
        ] {
            if v > 2400 || v % 100 >= 60 {
                return Err(ConfigError::Invalid {
                    field,
                    why: format!("{v} is not an HHMM time"),
                });
            }
        }
        if self.start_hhmm >= self.end_hhmm {
            return Err(ConfigError::Invalid {
                field: "calling_window",
                why: format!(
                    "start {} is not before end {}",
                    self.start_hhmm, self.end_hhmm
                ),
            });
        }
        Ok(())
    }
}

impl Default for CampaignSettings {
    fn default() -> Self {
        CampaignSettings {
            name: "default".into(),
            caller_id: "+441000000000".into(),
            pacing: PacingConfig::default(),
            max_wait_s: 2.0,
            ring_timeout_s: 25.0,
            amd: true,
            amd_timeout_s: 5.0,
            amd_false_positive: 0.02,
            abandon_window_h: 24.0,
            abandon_prompt: Some("abandon".into()),
            calling_window: CallingWindow::default(),
        }
    }
}

impl CampaignSettings {
    /// Check every value; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, why: String| Err(ConfigError::Invalid { field, why });
        if self.name.trim().is_empty() {
            return bad("name", "is empty".into());
        }
        if self.caller_id.trim().is_empty() {
            return bad(
                "caller_id",
                "is empty: caller ID is always presented".into(),
            );
        }
        if !(self.max_wait_s > 0.0 && self.max_wait_s <= 60.0) {
            return bad(
                "max_wait_s",
                format!("{} is outside (0, 60]", self.max_wait_s),
            );
        }
        if !(self.ring_timeout_s >= MIN_RING_TIMEOUT_S && self.ring_timeout_s <= 120.0) {
            return bad(
                "ring_timeout_s",
                format!(
                    "{} is outside {MIN_RING_TIMEOUT_S}..=120",
                    self.ring_timeout_s
                ),
            );
        }
        if !(self.amd_timeout_s > 0.0 && self.amd_timeout_s <= 30.0) {
            return bad(
                "amd_timeout_s",
                format!("{} is outside (0, 30]", self.amd_timeout_s),
            );
        }
        if !(0.0..0.5).contains(&self.amd_false_positive) {
            return bad(
                "amd_false_positive",
                format!("{} is outside [0, 0.5)", self.amd_false_positive),
            );
        }
        if !(self.abandon_window_h >= 1.0 && self.abandon_window_h <= 24.0 * 31.0) {
            return bad(
                "abandon_window_h",
                format!("{} is outside 1..=744", self.abandon_window_h),
            );
        }
        self.calling_window.validate()?;
        self.pacing.validate()
    }

    pub fn max_wait(&self) -> Duration {
        crate::time::secs(self.max_wait_s)
    }

    pub fn ring_timeout(&self) -> Duration {
        crate::time::secs(self.ring_timeout_s)
    }

    pub fn amd_timeout(&self) -> Duration {
        crate::time::secs(self.amd_timeout_s)
    }

    pub fn abandon_window(&self) -> Duration {
        crate::time::secs(self.abandon_window_h * 3600.0)
    }

    /// The false-positive share the abandon ledger adds (0 when AMD is off).
    pub fn counted_false_positive(&self) -> f64 {
        if self.amd {
            self.amd_false_positive
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_rules_are_enforced() {
        let s = CampaignSettings::default();
        s.validate().unwrap();
        let short = CampaignSettings {
            ring_timeout_s: 10.0,
            ..s.clone()
        };
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("ring_timeout_s"), "{err}");
        let no_cli = CampaignSettings {
            caller_id: String::new(),
            ..s
        };
        assert!(
            no_cli
                .validate()
                .unwrap_err()
                .to_string()
                .contains("caller_id")
        );
    }

    #[test]
    fn calling_window_counts_down_and_closes() {
        use crate::time::Time;
        use std::time::Duration;
        let w = CallingWindow {
            start_hhmm: 900,
            end_hhmm: 1700,
        };
        let at = |h: u64, m: u64| Time::SIM_EPOCH + Duration::from_secs(h * 3600 + m * 60);
        assert_eq!(w.left_s(at(8, 59), 0), None);
        assert_eq!(w.left_s(at(9, 0), 0), Some(8.0 * 3600.0));
        assert_eq!(w.left_s(at(16, 59), 0), Some(60.0));
        assert_eq!(w.left_s(at(17, 0), 0), None);
        // An hour east of UTC, 16:00 UTC is 17:00 local: closed.
        assert_eq!(w.left_s(at(16, 0), 60), None);
        let bad = CampaignSettings {
            calling_window: CallingWindow {
                start_hhmm: 1700,
                end_hhmm: 900,
            },
            ..CampaignSettings::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("calling_window")
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            toml::from_str::<CampaignSettings>("name = \"x\"\nring_timout_s = 20").unwrap_err();
        assert!(err.to_string().contains("ring_timout_s"), "{err}");
    }
}
