//! The daemon's TOML configuration: serde structs with per-field defaults that reject
//! unknown fields, checked by `validate`, with errors that name the field and file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::campaign::CampaignSettings;

/// The configuration embedded in the binary (also `config/dialerd.toml`).
pub const EMBEDDED: &str = include_str!("../../config/dialerd.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid `{field}`: {why}")]
    Invalid { field: &'static str, why: String },
    #[error("{path}: invalid `{field}`: {why}")]
    InvalidIn {
        path: PathBuf,
        field: &'static str,
        why: String,
    },
}

/// Engine-wide settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Longest gap between two pacing decisions of a campaign, in milliseconds.
    pub decision_interval_ms: u64,
    /// Shortest gap between two pacing decisions triggered by events.
    pub decision_gap_ms: u64,
    /// Leads the engine keeps buffered per running campaign.
    pub lead_buffer: usize,
    /// Calls in flight allowed across all campaigns (trunk capacity).
    pub max_calls: usize,
    /// Seconds between `campaign.stats` events.
    pub stats_interval_s: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            decision_interval_ms: 1000,
            decision_gap_ms: 500,
            lead_buffer: 200,
            max_calls: 5000,
            stats_interval_s: 10,
        }
    }
}

impl EngineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, why: String| Err(ConfigError::Invalid { field, why });
        if !(10..=60_000).contains(&self.decision_interval_ms) {
            return bad(
                "engine.decision_interval_ms",
                format!("{} is outside 10..=60000", self.decision_interval_ms),
            );
        }
        if self.decision_gap_ms > self.decision_interval_ms {
            return bad(
                "engine.decision_gap_ms",
                "is larger than decision_interval_ms".into(),
            );
        }
        if self.lead_buffer == 0 {
            return bad("engine.lead_buffer", "must be at least 1".into());
        }
        if self.max_calls == 0 {
            return bad("engine.max_calls", "must be at least 1".into());
        }
        if self.stats_interval_s == 0 {
            return bad("engine.stats_interval_s", "must be at least 1".into());
        }
        Ok(())
    }
}

/// The daemon process: where it keeps its data, its seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Folder of the sled store (created if missing).
    pub data_dir: PathBuf,
    /// Seed of every random choice the daemon makes (the simulated trunk's).
    pub seed: u64,
    /// Seconds bridged calls may run on after SIGTERM before they are hung up.
    pub shutdown_grace_s: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            data_dir: PathBuf::from("./dialerd-data"),
            seed: 1,
            shutdown_grace_s: 30,
        }
    }
}

/// Who may do what on the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Campaigns, leads, DNC, reports; click-to-dial for any agent.
    Crm,
    /// One agent's own session.
    Agent,
    /// Read everything, pause campaigns.
    Supervisor,
}

/// A token for the TCP control listener.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub token: String,
    pub role: Role,
    /// The agent an `agent` token acts as.
    #[serde(default)]
    pub agent: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix socket (mode 0600) for the CRM and supervisors.
    pub socket: PathBuf,
    /// TCP listener (`127.0.0.1:7070`), off unless set; every connection must `auth`.
    pub tcp: Option<String>,
    pub tokens: Vec<Token>,
    /// Connections served at once across both listeners.
    pub max_connections: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("./dialerd.sock"),
            tcp: None,
            tokens: Vec::new(),
            max_connections: 1024,
        }
    }
}

impl ControlConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, why: String| Err(ConfigError::Invalid { field, why });
        if let Some(addr) = &self.tcp {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return bad("control.tcp", format!("`{addr}` is not an address:port"));
            }
            if self.tokens.is_empty() {
                return bad(
                    "control.tokens",
                    "the TCP listener needs at least one token".into(),
                );
            }
        }
        for t in &self.tokens {
            if t.token.len() < 16 {
                return bad(
                    "control.tokens.token",
                    "tokens are at least 16 characters".into(),
                );
            }
            if (t.role == Role::Agent) != t.agent.is_some() {
                return bad(
                    "control.tokens.agent",
                    "agent tokens, and only they, name their agent".into(),
                );
            }
        }
        if self.max_connections == 0 {
            return bad("control.max_connections", "must be at least 1".into());
        }
        Ok(())
    }
}

/// The simulated trunk: a model of customers answering, for running the daemon and
/// testing a CRM integration without a PBX.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedTrunk {
    /// Share of dials answered (by a person or a machine).
    pub answer_rate: f64,
    /// Share of dials that are busy.
    pub busy_rate: f64,
    /// Share of answers that are machines.
    pub machine_rate: f64,
    /// Mean seconds from dial to answer.
    pub ring_s: f64,
    /// Mean seconds of a conversation.
    pub talk_s: f64,
    /// Seconds the AMD takes to decide.
    pub amd_s: f64,
}

impl Default for SimulatedTrunk {
    fn default() -> Self {
        SimulatedTrunk {
            answer_rate: 0.4,
            busy_rate: 0.1,
            machine_rate: 0.3,
            ring_s: 8.0,
            talk_s: 60.0,
            amd_s: 1.5,
        }
    }
}

impl SimulatedTrunk {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, why: String| Err(ConfigError::Invalid { field, why });
        for (field, v) in [
            ("simulated_trunk.answer_rate", self.answer_rate),
            ("simulated_trunk.busy_rate", self.busy_rate),
            ("simulated_trunk.machine_rate", self.machine_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, format!("{v} is outside 0..=1"));
            }
        }
        if self.answer_rate + self.busy_rate > 1.0 {
            return bad(
                "simulated_trunk.busy_rate",
                "answer_rate + busy_rate is over 1".into(),
            );
        }
        for (field, v) in [
            ("simulated_trunk.ring_s", self.ring_s),
            ("simulated_trunk.talk_s", self.talk_s),
            ("simulated_trunk.amd_s", self.amd_s),
        ] {
            if !(v > 0.0 && v < 3600.0) {
                return bad(field, format!("{v} is outside (0, 3600)"));
            }
        }
        Ok(())
    }
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub control: ControlConfig,
    pub engine: EngineConfig,
    pub simulated_trunk: SimulatedTrunk,
    /// Defaults for campaigns created without their own settings.
    pub campaign: CampaignSettings,
    /// The SIP user agent and its trunks.
    pub sip: crate::sip::SipConfig,
}

impl Config {
    /// Parse and validate TOML text; `path` names it in errors.
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|e| match e {
            ConfigError::Invalid { field, why } => ConfigError::InvalidIn {
                path: path.to_owned(),
                field,
                why,
            },
            other => other,
        })?;
        Ok(cfg)
    }

    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// The embedded defaults.
    pub fn embedded() -> Config {
        Self::from_str_at(EMBEDDED, Path::new("<embedded config/dialerd.toml>"))
            .expect("the embedded config is valid (tested)")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine.validate()?;
        self.control.validate()?;
        self.simulated_trunk.validate()?;
        self.sip.validate()?;
        self.campaign.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_config_is_valid() {
        let c = Config::embedded();
        assert_eq!(c.campaign.max_wait_s, 2.0);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let p = Path::new("x.toml");
        let err = Config::from_str_at("[campaign]\nring_timeout_s = 5", p)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("ring_timeout_s"),
            "{err}"
        );
        let err = Config::from_str_at("[engine]\nbogus = 1", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("bogus"), "{err}");
        let err = Config::from_str_at("[campaign.pacing]\ntarget_abandon = 0.9", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("target_abandon"), "{err}");
    }
}
