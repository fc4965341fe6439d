//! Progressive dialing: one call per agent who is ready and not yet covered by a call
//! in flight. Never more calls than ready agents, so a person can be left waiting only
//! when an agent leaves between dial and answer.

use super::{Pacer, Policy, View, room};

#[derive(Clone, Copy, Debug, Default)]
pub struct Progressive;

/// Ready agents not covered by a call in flight (the progressive count).
pub fn uncovered(view: &View<'_>) -> usize {
    view.agents
        .ready
        .saturating_sub(view.in_flight + view.waiting)
}

impl Pacer for Progressive {
    fn policy(&self) -> Policy {
        Policy::Progressive
    }

    fn decide(&mut self, view: &View<'_>) -> usize {
        uncovered(view).min(room(view))
    }

    fn dial_level(&self) -> f64 {
        1.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pacing::{AbandonStatus, AgentCounts};
    use crate::time::Time;

    pub(crate) fn view(ready: usize, in_flight: usize) -> View<'static> {
        View {
            now: Time::SIM_EPOCH,
            agents: AgentCounts {
                ready,
                on_call: 3,
                wrap_up: 1,
                paused: 1,
            },
            busy: &[],
            calls: &[],
            in_flight,
            waiting: 0,
            connected: 3,
            abandon: AbandonStatus::default(),
            max_in_flight: 100,
            window_left_s: None,
        }
    }

    #[test]
    fn one_call_per_uncovered_ready_agent() {
        let mut p = Progressive;
        assert_eq!(p.decide(&view(4, 0)), 4);
        assert_eq!(p.decide(&view(4, 3)), 1);
        assert_eq!(p.decide(&view(4, 6)), 0);
        assert_eq!(p.decide(&view(0, 0)), 0);
        let capped = View {
            max_in_flight: 2,
            ..view(4, 0)
        };
        assert_eq!(p.decide(&capped), 2);
    }
}
