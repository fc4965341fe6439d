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

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    /// Defaults for campaigns created without their own settings.
    pub campaign: CampaignSettings,
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
