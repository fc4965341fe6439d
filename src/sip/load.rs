//! `dialerd call`: place real calls through a trunk at a set rate and report each
//! call and a summary. Operators test a trunk with it; we load-test with it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::call::Dial;
use super::config::{SipConfig, TrunkConfig};
use super::message;
use super::trunk::Refusal;
use super::ua::OriginateError;
use super::{Event, Transport, transport};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub target: String,
    pub count: u64,
    /// Call attempts per second.
    pub rate: f64,
    /// Calls up or ringing at once.
    pub concurrency: usize,
    /// Seconds an answered call stays up before we send BYE.
    pub hangup_after_s: f64,
    pub caller_id: String,
    /// Print one line per call.
    pub per_call: bool,
}

/// One call's report line.
#[derive(Debug, Serialize)]
pub struct CallLine {
    pub call: u64,
    pub outcome: &'static str,
    pub status: Option<u16>,
    pub reason: &'static str,
    /// From INVITE to the first 180/183.
    pub ring_ms: Option<u64>,
    /// From INVITE to the 200 OK (answered calls).
    pub setup_ms: Option<u64>,
    /// From INVITE to the end.
    pub total_ms: u64,
}

/// The run's summary line.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub calls: u64,
    pub outcomes: BTreeMap<&'static str, u64>,
    pub elapsed_s: f64,
    pub attempts_per_s: f64,
    pub setup_ms_p50: Option<u64>,
    pub setup_ms_p99: Option<u64>,
    pub max_concurrent: usize,
    pub retransmissions: u64,
    pub malformed: u64,
    /// Attempts the trunk's own limits held back for a moment.
    pub throttled: u64,
}

/// The trunk a bare target is dialled through: its host and port, its transport.
pub fn trunk_for_target(target: &str, transport: Option<Transport>) -> Option<TrunkConfig> {
    let addr = message::uri_addr(target)?;
    let tp = transport.unwrap_or(match message::uri_transport(target).as_deref() {
        Some("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    });
    let mut t = TrunkConfig::new("target", addr, tp);
    t.max_calls = usize::MAX / 2;
    t.max_cps = 1e9;
    Some(t)
}

/// A local address of the same family as `peer` with an ephemeral port.
pub fn local_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        SocketAddr::V6(_) => "[::1]:0".parse().expect("literal"),
    }
}

fn percentile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied()
}

struct Live {
    started: Instant,
    ring_ms: Option<u64>,
    setup_ms: Option<u64>,
}

/// Run the plan through `trunk` (an index into `cfg.trunks`); `line` gets every
/// report line as it is made.
pub async fn run(
    cfg: SipConfig,
    trunk: usize,
    plan: &LoadPlan,
    seed: u64,
    mut line: impl FnMut(String),
) -> std::io::Result<Summary> {
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (sip, mut events) = transport::start(cfg.clone(), seed, stop_rx).await?;
    let rtp_ip = sip
        .udp
        .or(sip.tcp)
        .map(|a| a.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    let hold = Duration::from_secs_f64(plan.hangup_after_s.max(0.0));
    let mut next_id = 1u64;
    let mut next_at = start;
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut hangups: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut setups = Vec::new();
    let (mut done, mut max_live, mut throttled) = (0u64, 0usize, 0u64);
    while done < plan.count {
        // Start every call that is due.
        while next_id <= plan.count && live.len() < plan.concurrency && next_at <= Instant::now() {
            let dial = Dial {
                id: next_id,
                trunk,
                target: plan.target.clone(),
                caller_id: plan.caller_id.clone(),
                display_name: None,
                rtp: SocketAddr::new(rtp_ip, 40_000 + 2 * (next_id % 10_000) as u16),
                ring_timeout_ms: cfg.ring_timeout_s * 1000,
            };
            match sip.originate(dial).await {
                Ok(()) => {
                    live.insert(
                        next_id,
                        Live {
                            started: Instant::now(),
                            ring_ms: None,
                            setup_ms: None,
                        },
                    );
                    max_live = max_live.max(live.len());
                    next_id += 1;
                    next_at += gap;
                }
                Err(OriginateError::Refused(Refusal::Rate { .. } | Refusal::Full { .. })) => {
                    throttled += 1;
                    next_at = Instant::now() + Duration::from_millis(1);
                    break;
                }
                Err(OriginateError::Refused(r)) => {
                    // Down or paused: wait for the trunk to come back.
                    throttled += 1;
                    let wait = match r {
                        Refusal::Paused { until } => until
                            .as_millis()
                            .saturating_sub(crate::time::wall_clock().as_millis()),
                        _ => 1000,
                    };
                    next_at = Instant::now() + Duration::from_millis(wait.max(1));
                    break;
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        e.to_string(),
                    ));
                }
            }
        }
        let wake = [
            (next_id <= plan.count && live.len() < plan.concurrency).then_some(next_at),
            hangups.peek().map(|Reverse((t, _))| *t),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                let ms = |l: &Live| l.started.elapsed().as_millis() as u64;
                match ev {
                    Event::Ringing { call, .. } => {
                        if let Some(l) = live.get_mut(&call) {
                            l.ring_ms = Some(ms(l));
                        }
                    }
                    Event::Answered { call, .. } => {
                        if let Some(l) = live.get_mut(&call) {
                            l.setup_ms = Some(ms(l));
                            setups.push(ms(l));
                            hangups.push(Reverse((Instant::now() + hold, call)));
                        }
                    }
                    Event::Ended { call, end, .. } => {
                        let Some(l) = live.remove(&call) else { continue };
                        done += 1;
                        *outcomes.entry(end.outcome.code()).or_default() += 1;
                        if plan.per_call {
                            let report = CallLine {
                                call,
                                outcome: end.outcome.code(),
                                status: end.status,
                                reason: end.reason,
                                ring_ms: l.ring_ms,
                                setup_ms: l.setup_ms,
                                total_ms: ms(&l),
                            };
                            line(serde_json::to_string(&report).unwrap_or_default());
                        }
                    }
                    Event::Trunk { state, .. } => {
                        line(format!("{{\"trunk\":\"{state:?}\"}}"));
                    }
                    Event::Dropped { from, reason } => {
                        eprintln!("dropped from {}: {reason}", from.addr);
                    }
                    Event::Hold { .. } => {}
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                while let Some(Reverse((t, call))) = hangups.peek().copied() {
                    if t > now {
                        break;
                    }
                    hangups.pop();
                    sip.hangup(call).await;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    setups.sort_unstable();
    let stats = sip.stats().await.map(|s| s.0).unwrap_or_default();
    Ok(Summary {
        calls: done,
        outcomes,
        elapsed_s: (elapsed * 1000.0).round() / 1000.0,
        attempts_per_s: (done as f64 / elapsed.max(1e-9) * 10.0).round() / 10.0,
        setup_ms_p50: percentile(&setups, 0.5),
        setup_ms_p99: percentile(&setups, 0.99),
        max_concurrent: max_live,
        retransmissions: stats.retransmissions,
        malformed: stats.malformed,
        throttled,
    })
}
