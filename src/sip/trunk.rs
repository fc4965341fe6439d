//! A trunk at run time: how many calls it carries, its call-rate budget, whether it
//! answers its OPTIONS pings, whether it asked us to back off (503 Retry-After), and
//! its registration.

use super::auth::Challenge;
use super::{Peer, TrunkConfig};
use crate::time::Time;

/// Why a trunk cannot take a call right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("trunk is down")]
    Down,
    #[error("trunk asked to pause until {until:?}")]
    Paused { until: Time },
    #[error("trunk carries its maximum of {max} calls")]
    Full { max: usize },
    #[error("trunk's call rate is spent until {until:?}")]
    Rate { until: Time },
}

/// Registration progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    Off,
    /// Next REGISTER (first or refresh) is due at this time.
    Due(Time),
    /// A REGISTER is in flight.
    Pending,
}

#[derive(Debug)]
pub struct Trunk {
    pub cfg: TrunkConfig,
    pub peer: Peer,
    pub domain: String,
    pub up: bool,
    pub failures: u32,
    pub paused_until: Option<Time>,
    pub calls: usize,
    /// Call-rate bucket: tokens (calls) and when they were last topped up.
    tokens: f64,
    refilled: Time,
    pub next_ping: Option<Time>,
    pub registration: Registration,
    /// The last challenge the registrar sent, reused for refreshes, and the header
    /// that answers it.
    pub challenge: Option<(Challenge, &'static str)>,
    /// Challenges answered since the last successful REGISTER (at most 2 in a row,
    /// so wrong credentials do not loop).
    pub auth_retries: u8,
    pub nonce_count: u32,
    pub register_cseq: u32,
    pub register_call_id: String,
}

impl Trunk {
    pub fn new(cfg: TrunkConfig, now: Time, call_id: String) -> Self {
        let peer = Peer {
            transport: cfg.transport,
            addr: cfg.address,
        };
        let next_ping = (cfg.options_interval_s > 0).then_some(now);
        let registration = if cfg.register {
            Registration::Due(now)
        } else {
            Registration::Off
        };
        Trunk {
            domain: cfg.domain(),
            tokens: cfg.max_cps.max(1.0),
            refilled: now,
            peer,
            up: true,
            failures: 0,
            paused_until: None,
            calls: 0,
            next_ping,
            registration,
            challenge: None,
            auth_retries: 0,
            nonce_count: 0,
            register_cseq: 0,
            register_call_id: call_id,
            cfg,
        }
    }

    fn refill(&mut self, now: Time) {
        let dt = now.secs_since(self.refilled).max(0.0);
        self.tokens = (self.tokens + dt * self.cfg.max_cps).min(self.cfg.max_cps.max(1.0));
        self.refilled = now;
    }

    /// Whether a call may start now; if so, count it.
    pub fn admit(&mut self, now: Time) -> Result<(), Refusal> {
        if !self.up {
            return Err(Refusal::Down);
        }
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(Refusal::Paused { until });
            }
            self.paused_until = None;
        }
        if self.calls >= self.cfg.max_calls {
            return Err(Refusal::Full {
                max: self.cfg.max_calls,
            });
        }
        self.refill(now);
        if self.tokens < 1.0 {
            let wait_ms = ((1.0 - self.tokens) / self.cfg.max_cps * 1000.0).ceil() as u64;
            return Err(Refusal::Rate {
                until: now + std::time::Duration::from_millis(wait_ms.max(1)),
            });
        }
        self.tokens -= 1.0;
        self.calls += 1;
        Ok(())
    }

    /// A call on this trunk is over.
    pub fn release(&mut self) {
        self.calls = self.calls.saturating_sub(1);
    }

    /// A ping (or a transport) failed; returns true when this marks the trunk down.
    pub fn failed(&mut self) -> bool {
        self.failures += 1;
        if self.up && self.failures >= self.cfg.down_after.max(1) {
            self.up = false;
            return true;
        }
        false
    }

    /// A ping was answered; returns true when this brings the trunk back up.
    pub fn answered(&mut self) -> bool {
        self.failures = 0;
        let was_down = !self.up;
        self.up = true;
        was_down
    }

    /// The next time this trunk needs the user agent's attention.
    pub fn deadline(&self) -> Option<Time> {
        let reg = match self.registration {
            Registration::Due(t) => Some(t),
            _ => None,
        };
        match (self.next_ping, reg) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;

    fn trunk(cps: f64, max: usize) -> Trunk {
        let mut cfg = TrunkConfig::new("t", "127.0.0.1:5070".parse().unwrap(), Transport::Udp);
        cfg.max_cps = cps;
        cfg.max_calls = max;
        cfg.down_after = 2;
        Trunk::new(cfg, Time::from_millis(0), "r".into())
    }

    #[test]
    fn rate_and_concurrency_limits() {
        let mut t = trunk(2.0, 3);
        let now = Time::from_millis(0);
        assert!(t.admit(now).is_ok());
        assert!(t.admit(now).is_ok());
        assert_eq!(
            t.admit(now),
            Err(Refusal::Rate {
                until: Time::from_millis(500)
            })
        );
        assert!(t.admit(Time::from_millis(500)).is_ok());
        assert_eq!(
            t.admit(Time::from_millis(5000)),
            Err(Refusal::Full { max: 3 })
        );
        t.release();
        assert!(t.admit(Time::from_millis(5000)).is_ok());
    }

    #[test]
    fn health_and_pause() {
        let mut t = trunk(10.0, 10);
        assert!(!t.failed());
        assert!(t.failed(), "second failure marks it down");
        assert_eq!(t.admit(Time::from_millis(0)), Err(Refusal::Down));
        assert!(t.answered());
        t.paused_until = Some(Time::from_millis(3000));
        assert!(matches!(
            t.admit(Time::from_millis(1000)),
            Err(Refusal::Paused { .. })
        ));
        assert!(t.admit(Time::from_millis(3000)).is_ok());
    }
}
