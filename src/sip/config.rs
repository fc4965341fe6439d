//! The `[sip]` section of the configuration: our addresses, timers and trunks.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::Transport;
use crate::config::ConfigError;

/// SIP settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP address to listen on (and to name in Via and Contact).
    pub udp: Option<SocketAddr>,
    /// TCP address to listen on.
    pub tcp: Option<SocketAddr>,
    /// RFC 3261 T1, T2 and T4 in milliseconds (500, 4000, 5000).
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// How long an unanswered call rings before it is cancelled (at least 15 s).
    pub ring_timeout_s: u64,
    /// The User-Agent header.
    pub user_agent: String,
    pub trunks: Vec<TrunkConfig>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            udp: Some(SocketAddr::from(([127, 0, 0, 1], 5060))),
            tcp: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            ring_timeout_s: 25,
            user_agent: concat!("dialerd/", env!("CARGO_PKG_VERSION")).into(),
            trunks: Vec::new(),
        }
    }
}

/// Shortest ring before an unanswered call may be given up (regulators' rule).
pub const MIN_RING_S: u64 = 15;

/// A SIP trunk or PBX that calls are sent through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// The next hop: every request to this trunk is sent here.
    pub address: SocketAddr,
    #[serde(default)]
    pub transport: Transport,
    /// Host part of request URIs and of From (default: the address).
    #[serde(default)]
    pub domain: Option<String>,
    /// Digest credentials answered on 401/407.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// REGISTER to the trunk and keep the registration fresh.
    #[serde(default)]
    pub register: bool,
    #[serde(default = "default_register_expires")]
    pub register_expires_s: u32,
    /// OPTIONS ping interval in seconds (0: no pings).
    #[serde(default = "default_options_interval")]
    pub options_interval_s: u64,
    /// Consecutive failed pings before the trunk is marked down.
    #[serde(default = "default_down_after")]
    pub down_after: u32,
    /// Calls up or ringing at once on this trunk.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// New calls per second on this trunk.
    #[serde(default = "default_max_cps")]
    pub max_cps: f64,
    /// Send the caller ID in P-Asserted-Identity as well as From.
    #[serde(default)]
    pub asserted_identity: bool,
}

fn default_register_expires() -> u32 {
    3600
}
fn default_options_interval() -> u64 {
    30
}
fn default_down_after() -> u32 {
    3
}
fn default_max_calls() -> usize {
    10_000
}
fn default_max_cps() -> f64 {
    5_000.0
}

impl TrunkConfig {
    /// A trunk with default settings sending to `address`.
    pub fn new(name: &str, address: SocketAddr, transport: Transport) -> Self {
        TrunkConfig {
            name: name.into(),
            address,
            transport,
            domain: None,
            username: None,
            password: None,
            register: false,
            register_expires_s: default_register_expires(),
            options_interval_s: 0,
            down_after: default_down_after(),
            max_calls: default_max_calls(),
            max_cps: default_max_cps(),
            asserted_identity: false,
        }
    }

    /// The host used in request URIs and From.
    pub fn domain(&self) -> String {
        match &self.domain {
            Some(d) => d.clone(),
            None => match self.address {
                SocketAddr::V4(a) => a.to_string(),
                SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
            },
        }
    }
}

impl SipConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: &'static str, why: String| Err(ConfigError::Invalid { field, why });
        if self.udp.is_none() && self.tcp.is_none() {
            return bad("sip.udp", "one of sip.udp and sip.tcp is needed".into());
        }
        if !(10..=10_000).contains(&self.t1_ms) {
            return bad("sip.t1_ms", format!("{} is outside 10..=10000", self.t1_ms));
        }
        if self.t2_ms < self.t1_ms {
            return bad("sip.t2_ms", "is smaller than t1_ms".into());
        }
        if self.ring_timeout_s < MIN_RING_S {
            return bad(
                "sip.ring_timeout_s",
                format!(
                    "{} is below the {MIN_RING_S} s minimum ring",
                    self.ring_timeout_s
                ),
            );
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.trunks {
            if !names.insert(t.name.as_str()) {
                return bad("sip.trunks.name", format!("{} appears twice", t.name));
            }
            if t.username.is_some() != t.password.is_some() {
                return bad(
                    "sip.trunks.password",
                    format!("trunk {}: username and password go together", t.name),
                );
            }
            if t.register && t.username.is_none() {
                return bad(
                    "sip.trunks.register",
                    format!("trunk {}: registration needs credentials", t.name),
                );
            }
            if t.max_calls == 0 || t.max_cps.is_nan() || t.max_cps <= 0.0 {
                return bad(
                    "sip.trunks.max_cps",
                    format!("trunk {}: max_calls and max_cps must be positive", t.name),
                );
            }
            if t.register && t.register_expires_s < 60 {
                return bad(
                    "sip.trunks.register_expires_s",
                    format!("trunk {}: at least 60", t.name),
                );
            }
            let needs = match t.transport {
                Transport::Udp => self.udp.is_none(),
                Transport::Tcp => self.tcp.is_none(),
            };
            if needs {
                return bad(
                    "sip.trunks.transport",
                    format!("trunk {}: no local {} address", t.name, t.transport),
                );
            }
        }
        Ok(())
    }
}
