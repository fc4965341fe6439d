//! Ratio ("power") dialing: a fixed number of lines per ready agent. With a ratio of
//! 2.0 and three ready agents, six calls are kept in flight.

use super::{Pacer, Policy, View, room};

#[derive(Clone, Copy, Debug)]
pub struct Ratio {
    ratio: f64,
}

impl Ratio {
    pub fn new(ratio: f64) -> Self {
        Ratio { ratio }
    }
}

impl Pacer for Ratio {
    fn policy(&self) -> Policy {
        Policy::Ratio
    }

    fn decide(&mut self, view: &View<'_>) -> usize {
        let ready = view.agents.ready.saturating_sub(view.waiting);
        let goal = (self.ratio * ready as f64).round() as usize;
        goal.saturating_sub(view.in_flight).min(room(view))
    }

    fn dial_level(&self) -> f64 {
        self.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::progressive::tests::view;

    #[test]
    fn keeps_ratio_lines_per_ready_agent() {
        let mut r = Ratio::new(2.5);
        assert_eq!(r.decide(&view(2, 0)), 5);
        assert_eq!(r.decide(&view(2, 4)), 1);
        assert_eq!(r.decide(&view(0, 0)), 0);
        assert_eq!(Ratio::new(1.0).decide(&view(3, 1)), 2);
    }
}
