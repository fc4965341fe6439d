//! The discrete-event loop: customers and agents drawn from a scenario, the engine in
//! the middle, and the clock jumping to the next event (an engine deadline or a
//! customer or agent action). No sleeping, no wall clock: a run is a pure function of
//! the scenario and the seed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::report::{Interval, Report, Tally};
use super::scenario::{Sampler, Scenario};
use crate::campaign::DialableLead;
use crate::config::EngineConfig;
use crate::engine::{
    AgentCommand, AmdVerdict, CampaignCommand, Engine, Input, MACHINE_DISPOSITION, Output, Progress,
};
use crate::ids::{AgentId, CallId, CampaignId, DetMap, LeadId};
use crate::outcome::Outcome;
use crate::time::{Time, secs};

const CAMPAIGN: CampaignId = CampaignId(1);
/// Length of one CSV row.
pub const INTERVAL_S: f64 = 900.0;

/// Who (or what) picks up a dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Person,
    Machine,
    Busy,
    NoAnswer,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Close the current reporting interval.
    Interval,
    Answer(CallId),
    Busy(CallId),
    Verdict(CallId),
    /// The conversation ends (customer or agent hangs up).
    TalkEnd(CallId),
    /// The agent finishes wrap-up and gives its disposition; `machine` when the call
    /// was a machine AMD let through.
    WrapEnd(AgentId, bool),
}

struct SimCall {
    fate: Fate,
    /// Human verdict time, for the connect delay.
    verdict_at: Option<Time>,
    bridged: Option<(AgentId, Time)>,
}

struct Samplers {
    talk: Sampler,
    wrap: Sampler,
    machine: Sampler,
    ring: Sampler,
    busy: Sampler,
}

/// One simulated run.
pub struct World<'a> {
    sc: &'a Scenario,
    policy_label: String,
    seed: u64,
    rng: ChaCha8Rng,
    s: Samplers,
    engine: Engine,
    start: Time,
    end: Time,
    events: BinaryHeap<Reverse<(Time, u64, Ev)>>,
    seq: u64,
    calls: DetMap<CallId, SimCall>,
    /// Ready since, per agent, for agent wait.
    ready_since: HashMap<AgentId, Time>,
    next_lead: u64,
    last_t: Time,
    tally: Tally,
    interval: Interval,
    intervals: Vec<Interval>,
    pending: Vec<Output>,
    events_processed: u64,
}

impl<'a> World<'a> {
    pub fn new(sc: &'a Scenario, seed: u64) -> Self {
        let start = Time::SIM_EPOCH
            + Duration::from_secs(
                u64::from(sc.start_hhmm / 100) * 3600 + u64::from(sc.start_hhmm % 100) * 60,
            );
        let end = start + secs(sc.duration_s);
        let settings = sc.campaign_settings();
        let policy_label = settings.pacing.policy.name().to_string();
        World {
            sc,
            policy_label,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            s: Samplers {
                talk: sc.agents.talk_s.sampler(),
                wrap: sc.agents.wrap_s.sampler(),
                machine: sc.agents.machine_s.sampler(),
                ring: sc.customers.ring_s.sampler(),
                busy: sc.customers.busy_s.sampler(),
            },
            engine: Engine::new(EngineConfig::default()),
            start,
            end,
            events: BinaryHeap::new(),
            seq: 0,
            calls: DetMap::default(),
            ready_since: HashMap::new(),
            next_lead: 1,
            last_t: start,
            tally: Tally::default(),
            interval: Interval::new(0.0),
            intervals: Vec::new(),
            pending: Vec::new(),
            events_processed: 0,
        }
    }

    fn at(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((t, self.seq, ev)));
    }

    fn input(&mut self, now: Time, input: Input) {
        // Inputs about calls the engine already ended (a late answer after the ring
        // timeout) are refused by the engine; the world just drops them.
        let _ = self.engine.handle(now, input);
        while let Some(o) = self.engine.poll_output() {
            self.pending.push(o);
        }
    }

    /// Run to the end and report.
    pub fn run(mut self) -> Report {
        let settings = self.sc.campaign_settings();
        let start = self.start;
        self.input(
            start,
            Input::Campaign(CampaignCommand::Create {
                campaign: CAMPAIGN,
                settings: Box::new(settings),
            }),
        );
        for i in 0..self.sc.agents.count {
            let agent = AgentId(i + 1);
            self.input(
                start,
                Input::Agent(AgentCommand::Login {
                    agent,
                    campaign: CAMPAIGN,
                }),
            );
            self.input(start, Input::Agent(AgentCommand::Ready { agent }));
            self.ready_since.insert(agent, start);
        }
        self.input(
            start,
            Input::Campaign(CampaignCommand::Start { campaign: CAMPAIGN }),
        );
        self.at(start + secs(INTERVAL_S), Ev::Interval);
        self.drain(start);

        loop {
            let next_ev = self.events.peek().map(|Reverse((t, _, _))| *t);
            let next_engine = self.engine.poll_timeout();
            let now = match (next_ev, next_engine) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if now > self.end {
                break;
            }
            self.advance(now);
            self.events_processed += 1;
            if next_ev == Some(now) {
                let Reverse((_, _, ev)) = self.events.pop().expect("peeked");
                self.event(now, ev);
            } else {
                self.input(now, Input::Tick);
            }
            self.drain(now);
        }
        self.finish()
    }

    /// Integrate time-weighted figures up to `now`.
    fn advance(&mut self, now: Time) {
        let dt = now.secs_since(self.last_t);
        if dt > 0.0 {
            let in_flight = self.engine.calls_in_flight() as f64;
            self.interval.line_seconds += in_flight * dt;
            self.last_t = now;
        }
    }

    fn event(&mut self, now: Time, ev: Ev) {
        match ev {
            Ev::Interval => {
                let t = now.secs_since(self.start);
                let next = Interval::new(t);
                let done = std::mem::replace(&mut self.interval, next);
                self.intervals.push(done.close(t, &self.tally));
                self.at(now + secs(INTERVAL_S), Ev::Interval);
            }
            Ev::Answer(call) => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                match c.fate {
                    Fate::Person => {
                        self.tally.live_answers += 1;
                        self.interval.live_answers += 1;
                    }
                    Fate::Machine => self.tally.machine_answers += 1,
                    _ => {}
                }
                self.input(
                    now,
                    Input::Progress {
                        call,
                        progress: Progress::Answered,
                    },
                );
                if self.calls.contains_key(&call) && self.engine.call(call).is_some() {
                    if self.sc.amd.enabled {
                        self.at(now + secs(self.sc.amd.decision_s), Ev::Verdict(call));
                    } else {
                        self.calls.get_mut(&call).expect("present").verdict_at = Some(now);
                    }
                }
            }
            Ev::Busy(call) => {
                if self.calls.contains_key(&call) {
                    let progress = Progress::Failed {
                        outcome: Outcome::Busy,
                        sip_status: Some(486),
                    };
                    self.input(now, Input::Progress { call, progress });
                }
            }
            Ev::Verdict(call) => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                let verdict = match c.fate {
                    Fate::Person if self.rng.random_bool(self.sc.amd.false_positive) => {
                        AmdVerdict::Machine
                    }
                    Fate::Person => AmdVerdict::Human,
                    _ if self.rng.random_bool(self.sc.amd.false_negative) => AmdVerdict::Human,
                    _ => AmdVerdict::Machine,
                };
                if verdict == AmdVerdict::Human {
                    c.verdict_at = Some(now);
                } else if c.fate == Fate::Person {
                    self.tally.amd_false_positives += 1;
                }
                self.input(now, Input::Amd { call, verdict });
            }
            Ev::TalkEnd(call) => {
                if let Some(c) = self.calls.remove(&call)
                    && let Some((agent, since)) = c.bridged
                {
                    let (fate, t0, t1) = (
                        c.fate,
                        since.secs_since(self.start),
                        now.secs_since(self.start),
                    );
                    self.tally.add_busy(
                        &mut self.intervals,
                        &mut self.interval,
                        t0,
                        t1,
                        fate == Fate::Person,
                    );
                    let wrap = if fate == Fate::Person {
                        self.s.wrap.sample(&mut self.rng)
                    } else {
                        0.0
                    };
                    self.tally
                        .add_wrap(&mut self.intervals, &mut self.interval, t1, t1 + wrap);
                    self.at(now + secs(wrap), Ev::WrapEnd(agent, fate == Fate::Machine));
                }
                self.input(now, Input::Hangup { call });
            }
            Ev::WrapEnd(agent, machine) => {
                let code = if machine { MACHINE_DISPOSITION } else { "done" }.to_string();
                self.input(
                    now,
                    Input::Agent(AgentCommand::Disposition {
                        agent,
                        code,
                        then_ready: true,
                    }),
                );
                self.ready_since.insert(agent, now);
            }
        }
    }

    /// React to the engine's outputs (which may produce more).
    fn drain(&mut self, now: Time) {
        while !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            for o in batch {
                self.output(now, o);
            }
        }
    }

    fn output(&mut self, now: Time, o: Output) {
        match o {
            Output::Originate { call, .. } => {
                self.tally.dials += 1;
                self.interval.dials += 1;
                let t = now.secs_since(self.start);
                let live = self.sc.customers.live_at(t);
                let c = &self.sc.customers;
                let u: f64 = self.rng.random();
                let fate = if u < live {
                    Fate::Person
                } else if u < live + c.machine {
                    Fate::Machine
                } else if u < live + c.machine + c.busy {
                    Fate::Busy
                } else {
                    Fate::NoAnswer
                };
                match fate {
                    Fate::Person | Fate::Machine => {
                        let ring = self.s.ring.sample(&mut self.rng);
                        self.at(now + secs(ring), Ev::Answer(call));
                    }
                    Fate::Busy => {
                        let b = self.s.busy.sample(&mut self.rng);
                        self.at(now + secs(b), Ev::Busy(call));
                    }
                    Fate::NoAnswer => {}
                }
                self.calls.insert(
                    call,
                    SimCall {
                        fate,
                        verdict_at: None,
                        bridged: None,
                    },
                );
            }
            Output::Bridge { call, agent } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.bridged = Some((agent, now));
                if let Some(v) = c.verdict_at {
                    self.tally.connect_delays.push(now.secs_since(v));
                }
                if let Some(since) = self.ready_since.remove(&agent) {
                    self.tally.agent_wait_s += now.secs_since(since);
                    self.tally.agent_waits += 1;
                }
                let talk = if c.fate == Fate::Person {
                    self.s.talk.sample(&mut self.rng)
                } else {
                    self.s.machine.sample(&mut self.rng)
                };
                self.at(now + secs(talk), Ev::TalkEnd(call));
            }
            Output::Hangup { call, outcome, .. } => {
                if let Some(c) = self.calls.remove(&call)
                    && c.fate == Fate::Person
                    && outcome == Outcome::Abandoned
                {
                    self.tally.queue_abandons += 1;
                }
            }
            Output::LeadsWanted { campaign, count } => {
                let leads = (0..count)
                    .map(|_| {
                        let id = LeadId(self.next_lead);
                        self.next_lead += 1;
                        DialableLead {
                            id,
                            number: format!("+4420{:08}", id.0 % 100_000_000),
                        }
                    })
                    .collect();
                self.input(
                    now,
                    Input::Campaign(CampaignCommand::AddLeads { campaign, leads }),
                );
            }
            Output::Persist(_) | Output::Event(_) => {}
        }
    }

    fn finish(mut self) -> Report {
        let end = self.end;
        self.advance(end);
        let t_end = end.secs_since(self.start);
        // Conversations still going at the end count up to the end.
        let open: Vec<(Fate, Time)> = self
            .calls
            .values()
            .filter_map(|c| c.bridged.map(|(_, since)| (c.fate, since)))
            .collect();
        for (fate, since) in open {
            let t0 = since.secs_since(self.start);
            self.tally.add_busy(
                &mut self.intervals,
                &mut self.interval,
                t0,
                t_end,
                fate == Fate::Person,
            );
        }
        if self.interval.start_s < t_end {
            let last = std::mem::replace(&mut self.interval, Interval::new(t_end));
            self.intervals.push(last.close(t_end, &self.tally));
        }
        let ofcom = self
            .engine
            .stats(CAMPAIGN)
            .map(|s| s.abandon_rate)
            .unwrap_or(0.0);
        Report::build(
            self.sc,
            &self.policy_label,
            self.seed,
            self.tally,
            self.intervals,
            ofcom,
            self.events_processed,
        )
    }
}
