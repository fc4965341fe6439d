//! A simulated trunk: customers who ring, answer (persons and machines), are busy or
//! never answer, and talk for a while once bridged. Sans-IO like the engine: calls
//! in, `poll(now)` gives the engine's inputs when they fall due. Seeded, so a daemon
//! run with a fixed seed makes the same choices in the same order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SimulatedTrunk;
use crate::engine::{AmdVerdict, Input, Progress};
use crate::ids::CallId;
use crate::outcome::Outcome;
use crate::time::{Time, secs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Ring,
    Answer,
    Busy,
    Verdict(bool),
    TalkEnd,
}

pub struct SimTrunk {
    model: SimulatedTrunk,
    rng: ChaCha8Rng,
    seq: u64,
    due: BinaryHeap<Reverse<(Time, u64, CallId, Step)>>,
    live: HashSet<CallId>,
}

impl SimTrunk {
    pub fn new(model: SimulatedTrunk, seed: u64) -> Self {
        SimTrunk {
            model,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seq: 0,
            due: BinaryHeap::new(),
            live: HashSet::new(),
        }
    }

    fn at(&mut self, at: Time, call: CallId, step: Step) {
        self.seq += 1;
        self.due.push(Reverse((at, self.seq, call, step)));
    }

    fn exp(&mut self, mean: f64) -> f64 {
        let u: f64 = self.rng.random::<f64>().max(1e-12);
        -mean * u.ln()
    }

    /// A call was placed.
    pub fn originate(&mut self, now: Time, call: CallId) {
        self.live.insert(call);
        let ring = self.exp(self.model.ring_s).min(60.0);
        self.at(now + secs(0.3), call, Step::Ring);
        let u: f64 = self.rng.random();
        if u < self.model.busy_rate {
            self.at(now + secs(1.0), call, Step::Busy);
        } else if u < self.model.busy_rate + self.model.answer_rate {
            self.at(now + secs(1.0 + ring), call, Step::Answer);
            let machine = self.rng.random_bool(self.model.machine_rate);
            let amd = self.model.amd_s * (0.5 + self.rng.random::<f64>());
            self.at(now + secs(1.0 + ring + amd), call, Step::Verdict(machine));
        }
        // Otherwise it rings until the engine gives up.
    }

    /// We hung up (or canceled) the call.
    pub fn hangup(&mut self, call: CallId) {
        self.live.remove(&call);
    }

    /// The call was bridged to an agent: the customer talks, then hangs up.
    pub fn bridged(&mut self, now: Time, call: CallId) {
        let talk = self.exp(self.model.talk_s).max(3.0);
        self.at(now + secs(talk), call, Step::TalkEnd);
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        self.due.peek().map(|Reverse((t, ..))| *t)
    }

    /// The next input due at `now`.
    pub fn poll(&mut self, now: Time) -> Option<Input> {
        loop {
            let Reverse((at, _, call, step)) = *self.due.peek()?;
            if at > now {
                return None;
            }
            self.due.pop();
            if !self.live.contains(&call) {
                continue;
            }
            return Some(match step {
                Step::Ring => Input::Progress {
                    call,
                    progress: Progress::Ringing,
                },
                Step::Answer => Input::Progress {
                    call,
                    progress: Progress::Answered,
                },
                Step::Busy => {
                    self.live.remove(&call);
                    Input::Progress {
                        call,
                        progress: Progress::Failed {
                            outcome: Outcome::Busy,
                            sip_status: Some(486),
                        },
                    }
                }
                Step::Verdict(machine) => Input::Amd {
                    call,
                    verdict: if machine {
                        AmdVerdict::Machine
                    } else {
                        AmdVerdict::Human
                    },
                },
                Step::TalkEnd => {
                    self.live.remove(&call);
                    Input::Hangup { call }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_model_and_the_seed() {
        let run = |seed| {
            let mut t = SimTrunk::new(SimulatedTrunk::default(), seed);
            let mut got = Vec::new();
            for i in 0..2000 {
                t.originate(Time(0), CallId(i));
            }
            while let Some(at) = t.poll_timeout() {
                while let Some(input) = t.poll(at) {
                    got.push(format!("{input:?}"));
                }
            }
            got
        };
        let a = run(1);
        assert_eq!(a, run(1), "same seed, same run");
        assert_ne!(a, run(2));
        let count = |s: &str| a.iter().filter(|x| x.contains(s)).count() as f64 / 2000.0;
        assert!((count("Busy") - 0.1).abs() < 0.03);
        assert!((count("Answered") - 0.4).abs() < 0.04);
        assert!((count("Machine") - 0.12).abs() < 0.03);
        // Hung-up calls produce nothing more.
        let mut t = SimTrunk::new(SimulatedTrunk::default(), 1);
        t.originate(Time(0), CallId(1));
        t.hangup(CallId(1));
        assert!(t.poll(Time(u64::MAX / 2)).is_none());
    }
}
