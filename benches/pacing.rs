//! One pacing decision of the predictive policy with 100 and 1,000 agents and 3,000
//! calls in flight (the engine's hot path), and the cheap policies for scale.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dialerd::pacing::{
    AbandonStatus, AgentCounts, BusyAgent, BusyPhase, FlightCall, FlightPhase, Observation, Pacer,
    PacingConfig, Policy, View,
};
use dialerd::time::Time;

fn trained(policy: Policy) -> Box<dyn Pacer> {
    let mut p = PacingConfig {
        policy,
        ..PacingConfig::default()
    }
    .build();
    let now = Time::SIM_EPOCH;
    for i in 0..5000u32 {
        p.observe(now, Observation::Dialed);
        let answered = i % 10 < 3;
        let ring = if answered {
            4.0 + f64::from(i % 15)
        } else {
            25.0
        };
        p.observe(
            now,
            Observation::RingEnded {
                ring_s: ring,
                answered,
            },
        );
        if answered {
            p.observe(
                now,
                Observation::AmdDecided {
                    amd_s: 3.0,
                    to_agent: i % 30 != 0,
                },
            );
        }
        if i % 4 == 0 {
            p.observe(
                now,
                Observation::TalkEnded {
                    talk_s: 30.0 + f64::from(i % 300),
                },
            );
            p.observe(now, Observation::WrapEnded { wrap_s: 15.0 });
        }
    }
    p
}

fn fixture(agents: usize, calls: usize) -> (Vec<BusyAgent>, Vec<FlightCall>, Time) {
    let now = Time::SIM_EPOCH + Duration::from_secs(3600);
    let busy = (0..agents * 9 / 10)
        .map(|i| BusyAgent {
            phase: if i % 5 == 0 {
                BusyPhase::WrapUp
            } else {
                BusyPhase::Talking
            },
            since: now - Duration::from_millis((i as u64 * 7919) % 300_000),
        })
        .collect();
    let flight = (0..calls)
        .map(|i| FlightCall {
            phase: if i % 10 == 0 {
                FlightPhase::Detecting
            } else {
                FlightPhase::Ringing
            },
            since: now - Duration::from_millis((i as u64 * 104_729) % 24_000),
        })
        .collect();
    (busy, flight, now)
}

fn decisions(c: &mut Criterion) {
    for agents in [100usize, 1000] {
        let (busy, calls, now) = fixture(agents, 3000);
        let view = View {
            now,
            agents: AgentCounts {
                ready: agents / 10,
                on_call: busy.len() * 4 / 5,
                wrap_up: busy.len() / 5,
                paused: 0,
            },
            busy: &busy,
            calls: &calls,
            in_flight: calls.len(),
            waiting: 0,
            connected: busy.len() * 4 / 5,
            abandon: AbandonStatus {
                lives: 20_000.0,
                abandons: 400.0,
                lives_last_hour: 5000.0,
                history_s: 3600.0,
                fp_share: 0.02,
                ..AbandonStatus::default()
            },
            max_in_flight: 10_000,
            window_left_s: Some(4.0 * 3600.0),
        };
        let mut p = trained(Policy::Predictive);
        p.decide(&view); // build the tables once, as in steady state
        c.bench_function(
            &format!("predictive decision, {agents} agents, 3000 calls"),
            |b| b.iter(|| black_box(p.decide(black_box(&view)))),
        );
        let mut v = trained(Policy::VicidialAdapt);
        c.bench_function(
            &format!("vicidial-adapt decision, {agents} agents, 3000 calls"),
            |b| b.iter(|| black_box(v.decide(black_box(&view)))),
        );
    }
}

criterion_group!(benches, decisions);
criterion_main!(benches);
