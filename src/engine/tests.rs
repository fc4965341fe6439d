//! Deterministic tests of the engine's rules: a driver that feeds inputs at chosen
//! times and reads the outputs.

use std::time::Duration;

use super::*;
use crate::campaign::CampaignSettings;
use crate::ids::LeadId;
use crate::pacing::{PacingConfig, Policy};

const C: CampaignId = CampaignId(1);

/// 09:00 on a weekday: inside the default calling window.
fn base() -> Time {
    Time::SIM_EPOCH + Duration::from_secs(9 * 3600)
}

fn t(ms: u64) -> Time {
    base() + Duration::from_millis(ms)
}

struct Harness {
    e: Engine,
    out: Vec<Output>,
}

impl Harness {
    fn new(settings: CampaignSettings) -> Self {
        let mut h = Harness {
            e: Engine::new(EngineConfig::default()),
            out: Vec::new(),
        };
        h.input(
            0,
            Input::Campaign(CampaignCommand::Create {
                campaign: C,
                settings: Box::new(settings),
            }),
        )
        .expect("valid campaign");
        h
    }

    fn progressive() -> Self {
        Self::new(CampaignSettings {
            pacing: PacingConfig {
                policy: Policy::Progressive,
                ..PacingConfig::default()
            },
            ..CampaignSettings::default()
        })
    }

    fn input(&mut self, ms: u64, input: Input) -> Result<(), EngineError> {
        let r = self.e.handle(t(ms), input);
        while let Some(o) = self.e.poll_output() {
            if let Output::LeadsWanted { campaign, count } = o {
                let leads = (0..count as u64)
                    .map(|i| DialableLead {
                        id: LeadId(1000 + i),
                        number: format!("+4420000{i:05}"),
                    })
                    .collect();
                self.e
                    .handle(
                        t(ms),
                        Input::Campaign(CampaignCommand::AddLeads { campaign, leads }),
                    )
                    .unwrap();
            }
            self.out.push(o);
        }
        r
    }

    /// Tick at every engine deadline up to `ms`.
    fn run_to(&mut self, ms: u64) {
        while let Some(d) = self.e.poll_timeout() {
            if d > t(ms) {
                break;
            }
            self.input(d.as_millis() - base().as_millis(), Input::Tick)
                .unwrap();
        }
        self.input(ms, Input::Tick).unwrap();
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    fn originated(out: &[Output]) -> Vec<CallId> {
        out.iter()
            .filter_map(|o| match o {
                Output::Originate { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    fn agent_ready(&mut self, ms: u64, id: u32) {
        self.input(
            ms,
            Input::Agent(AgentCommand::Login {
                agent: AgentId(id),
                campaign: C,
            }),
        )
        .unwrap();
        self.input(ms, Input::Agent(AgentCommand::Ready { agent: AgentId(id) }))
            .unwrap();
    }

    fn start(&mut self, ms: u64) {
        self.input(ms, Input::Campaign(CampaignCommand::Start { campaign: C }))
            .unwrap();
    }

    fn answer_human(&mut self, ms: u64, call: CallId) {
        self.input(
            ms,
            Input::Progress {
                call,
                progress: Progress::Answered,
            },
        )
        .unwrap();
        self.input(
            ms + 1000,
            Input::Amd {
                call,
                verdict: AmdVerdict::Human,
            },
        )
        .unwrap();
    }
}

fn cdr(out: &[Output], call: CallId) -> Option<CallRecord> {
    out.iter().find_map(|o| match o {
        Output::Persist(Record::Call(r)) if r.call == call => Some(r.clone()),
        _ => None,
    })
}

#[test]
fn never_dials_without_an_agent_able_to_take_the_call() {
    let mut h = Harness::progressive();
    h.start(0);
    h.run_to(60_000);
    assert!(
        Harness::originated(&h.take()).is_empty(),
        "no agent logged in"
    );
    h.input(
        61_000,
        Input::Agent(AgentCommand::Login {
            agent: AgentId(1),
            campaign: C,
        }),
    )
    .unwrap();
    h.run_to(120_000);
    assert!(
        Harness::originated(&h.take()).is_empty(),
        "a paused agent cannot take a call"
    );
    h.input(
        121_000,
        Input::Agent(AgentCommand::Ready { agent: AgentId(1) }),
    )
    .unwrap();
    assert_eq!(Harness::originated(&h.take()).len(), 1);
}

#[test]
fn never_dials_outside_the_calling_window() {
    let mut h = Harness::new(CampaignSettings {
        calling_window: crate::campaign::CallingWindow {
            start_hhmm: 1000,
            end_hhmm: 1700,
            ..Default::default()
        },
        pacing: PacingConfig {
            policy: Policy::Progressive,
            ..PacingConfig::default()
        },
        ..CampaignSettings::default()
    });
    h.agent_ready(0, 1);
    h.start(0);
    h.run_to(3_599_000);
    assert!(
        Harness::originated(&h.take()).is_empty(),
        "09:59 is before the window"
    );
    h.run_to(3_601_000);
    assert_eq!(Harness::originated(&h.take()).len(), 1, "10:00 opens it");
}

#[test]
fn dialing_is_persisted_before_the_originate() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let out = h.take();
    let persist = out
        .iter()
        .position(|o| matches!(o, Output::Persist(Record::Dialing { .. })))
        .unwrap();
    let originate = out
        .iter()
        .position(|o| matches!(o, Output::Originate { .. }))
        .unwrap();
    assert!(persist < originate);
}

#[test]
fn a_person_is_bridged_to_the_longest_idle_agent() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.agent_ready(500, 2);
    h.start(1000);
    let calls = Harness::originated(&h.take());
    assert_eq!(calls.len(), 2);
    h.answer_human(5000, calls[1]);
    let out = h.take();
    assert!(
        out.contains(&Output::Bridge {
            call: calls[1],
            agent: AgentId(1)
        }),
        "{out:?}"
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::CallOffered {
            agent: AgentId(1),
            ..
        })
    )));
}

#[test]
fn a_person_not_bridged_within_max_wait_is_abandoned_with_the_prompt() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let first = Harness::originated(&h.take())[0];
    // The agent pauses while the call rings: the person will find nobody.
    h.input(
        1000,
        Input::Agent(AgentCommand::Pause { agent: AgentId(1) }),
    )
    .unwrap();
    h.answer_human(5000, first); // verdict at 6000
    h.run_to(7999);
    assert!(cdr(&h.out, first).is_none(), "still within the 2 s");
    h.run_to(8000);
    let out = h.take();
    assert!(out.contains(&Output::Hangup {
        call: first,
        outcome: Outcome::Abandoned,
        prompt: Some("abandon".into())
    }));
    let r = cdr(&out, first).unwrap();
    assert!(r.abandoned);
    assert_eq!(r.amd_at, Some(t(6000)));
    let s = h.e.stats(C).unwrap();
    assert_eq!((s.live_answers, s.abandoned), (1, 1));
}

#[test]
fn an_agent_freed_within_max_wait_takes_the_waiting_person() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let first = Harness::originated(&h.take())[0];
    h.input(
        1000,
        Input::Agent(AgentCommand::Pause { agent: AgentId(1) }),
    )
    .unwrap();
    h.answer_human(5000, first);
    h.input(
        7500,
        Input::Agent(AgentCommand::Ready { agent: AgentId(1) }),
    )
    .unwrap();
    let out = h.take();
    assert!(out.contains(&Output::Bridge {
        call: first,
        agent: AgentId(1)
    }));
    h.run_to(20_000);
    assert_eq!(
        h.e.stats(C).unwrap().abandoned,
        0,
        "the wait timer must not fire after the bridge"
    );
}

#[test]
fn amd_false_positives_are_counted_as_abandons_at_the_known_rate() {
    let mut h = Harness::new(CampaignSettings {
        amd_false_positive: 0.02,
        pacing: PacingConfig {
            policy: Policy::Progressive,
            ..PacingConfig::default()
        },
        ..CampaignSettings::default()
    });
    for a in 1..=10 {
        h.agent_ready(0, a);
    }
    h.start(0);
    let calls = Harness::originated(&h.take());
    for (i, call) in calls.iter().enumerate() {
        h.answer_human(1000 + i as u64, *call);
    }
    let s = h.e.stats(C).unwrap();
    assert_eq!(s.abandoned, 0, "no person waited");
    // 10 human verdicts at 2 % imply 10 × 0.02 / 0.98 persons hung up on as machines.
    let fp = 10.0 * 0.02 / 0.98;
    assert!(
        (s.abandon_rate - fp / (10.0 + fp)).abs() < 1e-9,
        "{}",
        s.abandon_rate
    );
}

#[test]
fn machines_are_hung_up_without_counting_as_live() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    h.input(
        4000,
        Input::Progress {
            call,
            progress: Progress::Answered,
        },
    )
    .unwrap();
    h.input(
        7000,
        Input::Amd {
            call,
            verdict: AmdVerdict::Machine,
        },
    )
    .unwrap();
    let out = h.take();
    assert!(out.contains(&Output::Hangup {
        call,
        outcome: Outcome::Machine,
        prompt: None
    }));
    assert_eq!(cdr(&out, call).unwrap().outcome, Outcome::Machine);
    let s = h.e.stats(C).unwrap();
    assert_eq!((s.live_answers, s.machines), (0, 1));
    // The agent is still ready, so a new call goes out at once.
    assert_eq!(Harness::originated(&out).len(), 1);
}

#[test]
fn no_verdict_in_time_is_treated_as_a_person() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    h.input(
        4000,
        Input::Progress {
            call,
            progress: Progress::Answered,
        },
    )
    .unwrap();
    h.run_to(4000 + 5000);
    assert!(h.take().contains(&Output::Bridge {
        call,
        agent: AgentId(1)
    }));
}

#[test]
fn unanswered_calls_ring_the_full_timeout_and_are_canceled() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    h.input(
        500,
        Input::Progress {
            call,
            progress: Progress::Ringing,
        },
    )
    .unwrap();
    h.run_to(24_999);
    assert!(cdr(&h.out, call).is_none());
    h.run_to(25_000);
    let out = h.take();
    assert!(out.contains(&Output::Hangup {
        call,
        outcome: Outcome::NoAnswer,
        prompt: None
    }));
    let r = cdr(&out, call).unwrap();
    assert_eq!((r.outcome, r.ringing_at), (Outcome::NoAnswer, Some(t(500))));
    // A late 200 OK for the canceled call is refused: the SIP layer BYEs it.
    assert_eq!(
        h.input(
            25_100,
            Input::Progress {
                call,
                progress: Progress::Answered
            }
        ),
        Err(EngineError::UnknownCall { call })
    );
}

#[test]
fn busy_and_failures_end_the_call_with_their_outcome() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    let progress = Progress::Failed {
        outcome: Outcome::Busy,
        sip_status: Some(486),
    };
    h.input(3000, Input::Progress { call, progress }).unwrap();
    let out = h.take();
    let r = cdr(&out, call).unwrap();
    assert_eq!((r.outcome, r.sip_status), (Outcome::Busy, Some(486)));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Hangup { .. })),
        "nothing to hang up"
    );
}

#[test]
fn talk_then_wrap_then_disposition() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    h.answer_human(4000, call);
    h.input(65_000, Input::Hangup { call }).unwrap();
    let out = h.take();
    assert_eq!(cdr(&out, call).unwrap().outcome, Outcome::Connected);
    assert!(
        Harness::originated(&out).is_empty(),
        "the agent is in wrap-up"
    );
    assert!(matches!(
        h.e.agents().get(AgentId(1)).unwrap().state,
        crate::agents::AgentState::WrapUp { .. }
    ));
    let d = AgentCommand::Disposition {
        agent: AgentId(1),
        code: "sale".into(),
        then_ready: true,
    };
    h.input(80_000, Input::Agent(d)).unwrap();
    let out = h.take();
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Persist(Record::Disposition { code, .. }) if code == "sale")
        )
    );
    assert_eq!(Harness::originated(&out).len(), 1, "ready again: next call");
    let again = AgentCommand::Disposition {
        agent: AgentId(1),
        code: "x".into(),
        then_ready: true,
    };
    assert!(matches!(
        h.input(81_000, Input::Agent(again)),
        Err(EngineError::NoCallToDisposition { .. })
    ));
}

#[test]
fn a_machine_disposition_takes_the_call_out_of_the_live_answers() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    h.answer_human(4000, call);
    assert_eq!(h.e.stats(C).unwrap().live_answers, 1);
    h.input(12_000, Input::Hangup { call }).unwrap();
    let d = AgentCommand::Disposition {
        agent: AgentId(1),
        code: MACHINE_DISPOSITION.into(),
        then_ready: true,
    };
    h.input(13_000, Input::Agent(d)).unwrap();
    let s = h.e.stats(C).unwrap();
    assert_eq!((s.live_answers, s.machines), (0, 1));
    assert_eq!(s.abandon_rate, 0.0);
}

#[test]
fn the_engine_is_deterministic() {
    let run = || {
        let mut h = Harness::new(CampaignSettings::default());
        for a in 1..=5 {
            h.agent_ready(0, a);
        }
        h.start(0);
        h.run_to(120_000);
        h.take()
    };
    assert_eq!(run(), run());
}

fn paused_agent(h: &mut Harness, id: u32) {
    h.input(
        0,
        Input::Agent(AgentCommand::Login {
            agent: AgentId(id),
            campaign: C,
        }),
    )
    .unwrap();
}

#[test]
fn an_agent_dials_its_own_call_and_gets_it_on_answer() {
    let mut h = Harness::progressive();
    paused_agent(&mut h, 1);
    let lead = DialableLead {
        id: LeadId(7),
        number: "+442079460123".into(),
    };
    let call = h.e.dial(t(0), AgentId(1), lead.clone()).unwrap();
    while let Some(o) = h.e.poll_output() {
        h.out.push(o);
    }
    let out = h.take();
    assert!(out.iter().any(|o| matches!(o,
        Output::Originate { call: c, agent: Some(AgentId(1)), .. } if *c == call)));
    // The agent is held: it cannot dial twice, and pacing dials nothing for it.
    assert!(matches!(
        h.e.dial(t(10), AgentId(1), lead),
        Err(EngineError::AgentBusy { .. })
    ));
    h.input(
        3000,
        Input::Progress {
            call,
            progress: Progress::Answered,
        },
    )
    .unwrap();
    let out = h.take();
    assert!(out.contains(&Output::Bridge {
        call,
        agent: AgentId(1)
    }));
    h.input(30_000, Input::Hangup { call }).unwrap();
    let rec = cdr(&h.take(), call).unwrap();
    assert_eq!(rec.outcome, Outcome::Connected);
    let stats = h.e.stats(C).unwrap();
    assert_eq!(
        (stats.live_answers, stats.in_flight),
        (0, 0),
        "outside the ledger"
    );
}

#[test]
fn an_unanswered_own_call_gives_the_agent_back_as_it_was() {
    let mut h = Harness::progressive();
    paused_agent(&mut h, 1);
    let lead = DialableLead {
        id: LeadId(7),
        number: "+442079460123".into(),
    };
    let call = h.e.dial(t(0), AgentId(1), lead).unwrap();
    h.input(
        2000,
        Input::Progress {
            call,
            progress: Progress::Failed {
                outcome: Outcome::Busy,
                sip_status: Some(486),
            },
        },
    )
    .unwrap();
    assert_eq!(
        h.e.agents().get(AgentId(1)).unwrap().state,
        crate::agents::AgentState::Paused
    );
    assert_eq!(h.e.calls_in_flight(), 0);
}

#[test]
fn dropping_calls_cancels_or_hangs_up() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let call = Harness::originated(&h.take())[0];
    h.input(1000, Input::Drop { call }).unwrap();
    let out = h.take();
    assert_eq!(cdr(&out, call).unwrap().outcome, Outcome::Canceled);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Hangup { call: c, .. } if *c == call))
    );
    let next = Harness::originated(&out)
        .first()
        .copied()
        .or_else(|| {
            h.run_to(3000);
            Harness::originated(&h.take()).first().copied()
        })
        .unwrap();
    h.answer_human(4000, next);
    h.input(9000, Input::Drop { call: next }).unwrap();
    let out = h.take();
    assert_eq!(cdr(&out, next).unwrap().outcome, Outcome::Connected);
    assert!(matches!(
        h.input(9001, Input::Drop { call: next }),
        Err(EngineError::UnknownCall { .. })
    ));
}

#[test]
fn withdrawn_leads_are_never_dialled_and_seeds_fill_the_ledger() {
    let mut h = Harness::progressive();
    h.input(
        0,
        Input::Campaign(CampaignCommand::Seed {
            campaign: C,
            answers: (0..100)
                .map(|i| PastAnswer {
                    at: t(0) - Duration::from_secs(3600) + Duration::from_secs(i),
                    after_amd: false,
                    abandoned: i < 2,
                })
                .collect(),
        }),
    )
    .unwrap();
    let stats = h.e.stats(C).unwrap();
    assert!(
        (stats.abandon_rate - 0.02).abs() < 1e-9,
        "{}",
        stats.abandon_rate
    );
    h.agent_ready(0, 1);
    h.start(0);
    // The harness supplies leads 1000.. on demand; the first was dialled at once.
    h.input(
        0,
        Input::Campaign(CampaignCommand::Withdraw {
            campaign: C,
            lead: LeadId(1001),
        }),
    )
    .unwrap();
    let call = Harness::originated(&h.take())[0];
    h.input(
        1000,
        Input::Progress {
            call,
            progress: Progress::Failed {
                outcome: Outcome::Busy,
                sip_status: Some(486),
            },
        },
    )
    .unwrap();
    h.run_to(5000);
    let out = h.take();
    let leads: Vec<LeadId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Originate { lead, .. } => Some(*lead),
            _ => None,
        })
        .collect();
    assert_eq!(leads.first(), Some(&LeadId(1002)), "{leads:?}");
}

#[test]
fn settings_change_only_while_not_running() {
    let mut h = Harness::progressive();
    h.agent_ready(0, 1);
    h.start(0);
    let update = |s: CampaignSettings| {
        Input::Campaign(CampaignCommand::Update {
            campaign: C,
            settings: Box::new(s),
        })
    };
    assert!(matches!(
        h.input(10, update(CampaignSettings::default())),
        Err(EngineError::CampaignRunning { .. })
    ));
    h.input(20, Input::Campaign(CampaignCommand::Pause { campaign: C }))
        .unwrap();
    h.input(
        30,
        update(CampaignSettings {
            max_wait_s: 1.5,
            ..CampaignSettings::default()
        }),
    )
    .unwrap();
}
