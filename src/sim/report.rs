//! What a run measured: the per-seed JSON line, the 15-minute CSV and the SVG chart.

use std::fmt::Write as _;

use serde::Serialize;

use super::scenario::Scenario;
use super::world::INTERVAL_S;

/// Running totals of a run (ground truth: the simulator knows who was a person).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub dials: u64,
    pub live_answers: u64,
    pub machine_answers: u64,
    /// Persons left waiting past `max_wait_s` (or who hung up waiting).
    pub queue_abandons: u64,
    /// Persons the AMD judged machines and hung up on.
    pub amd_false_positives: u64,
    pub talk_person_s: f64,
    pub talk_machine_s: f64,
    pub wrap_s: f64,
    pub agent_wait_s: f64,
    pub agent_waits: u64,
    /// Seconds from the human verdict to the bridge, per bridged person.
    pub connect_delays: Vec<f64>,
}

impl Tally {
    pub fn abandoned(&self) -> u64 {
        self.queue_abandons + self.amd_false_positives
    }

    /// Spread agent time over `[t0, t1]` across the 15-minute intervals.
    pub fn add_busy(
        &mut self,
        closed: &mut [Interval],
        open: &mut Interval,
        t0: f64,
        t1: f64,
        person: bool,
    ) {
        if person {
            self.talk_person_s += t1 - t0;
        } else {
            self.talk_machine_s += t1 - t0;
        }
        spread(closed, open, t0, t1, |i, d| {
            i.busy_s += d;
            if person {
                i.talk_person_s += d;
            }
        });
    }

    pub fn add_wrap(&mut self, closed: &mut [Interval], open: &mut Interval, t0: f64, t1: f64) {
        self.wrap_s += t1 - t0;
        spread(closed, open, t0, t1, |i, d| i.busy_s += d);
    }
}

/// Apply `f(interval, seconds)` to every interval `[t0, t1]` overlaps; the open
/// interval takes whatever lies after the closed ones.
fn spread(
    closed: &mut [Interval],
    open: &mut Interval,
    t0: f64,
    t1: f64,
    mut f: impl FnMut(&mut Interval, f64),
) {
    let mut t = t0;
    while t < t1 {
        let idx = (t / INTERVAL_S).floor() as usize;
        let bound = ((idx + 1) as f64 * INTERVAL_S).min(t1);
        let d = bound - t;
        match closed.get_mut(idx) {
            Some(i) => f(i, d),
            None => f(open, t1 - t),
        }
        if idx >= closed.len() {
            break;
        }
        t = bound;
    }
}

/// One 15-minute row.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Interval {
    pub start_s: f64,
    pub end_s: f64,
    pub dials: u64,
    pub live_answers: u64,
    pub talk_person_s: f64,
    pub busy_s: f64,
    /// Integral of calls in flight over time.
    pub line_seconds: f64,
    /// Cumulative abandoned persons and live answers at the end of the interval.
    pub abandoned_so_far: u64,
    pub lives_so_far: u64,
}

impl Interval {
    pub fn new(start_s: f64) -> Self {
        Interval {
            start_s,
            ..Interval::default()
        }
    }

    pub fn close(mut self, end_s: f64, tally: &Tally) -> Self {
        self.end_s = end_s;
        self.abandoned_so_far = tally.abandoned();
        self.lives_so_far = tally.live_answers;
        self
    }
}

/// The result of one run, printed as one JSON line per seed.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub policy: String,
    pub seed: u64,
    pub agents: u32,
    pub duration_s: f64,
    pub dials: u64,
    pub live_answers: u64,
    /// Persons not connected in time plus persons the AMD hung up on (ground truth).
    pub abandoned: u64,
    pub abandon_rate: f64,
    /// The engine's own rate: queue abandons plus the Ofcom estimate of AMD false
    /// positives, over the 24-hour window.
    pub abandon_rate_ofcom: f64,
    pub queue_abandons: u64,
    pub amd_false_positives: u64,
    pub utilization: f64,
    pub occupancy: f64,
    pub mean_agent_wait_s: f64,
    pub connect_delay_p95_s: f64,
    pub machine_answers: u64,
    /// Time-averaged calls in flight per agent.
    pub mean_dial_level: f64,
    /// Events the loop processed (customer and agent actions, engine deadlines).
    pub events: u64,
    /// The fixed ratio, for the `ratio` policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    #[serde(skip)]
    pub intervals: Vec<Interval>,
    #[serde(skip)]
    pub start_hhmm: u32,
}

impl Report {
    pub fn build(
        sc: &Scenario,
        policy: &str,
        seed: u64,
        mut t: Tally,
        intervals: Vec<Interval>,
        abandon_rate_ofcom: f64,
        events: u64,
    ) -> Report {
        let agent_s = f64::from(sc.agents.count) * sc.duration_s;
        t.connect_delays.sort_by(f64::total_cmp);
        let p95 = percentile(&t.connect_delays, 0.95);
        let line_s: f64 = intervals.iter().map(|i| i.line_seconds).sum();
        Report {
            scenario: sc.name.clone(),
            policy: policy.to_string(),
            seed,
            agents: sc.agents.count,
            duration_s: sc.duration_s,
            dials: t.dials,
            live_answers: t.live_answers,
            abandoned: t.abandoned(),
            abandon_rate: ratio(t.abandoned() as f64, t.live_answers as f64),
            abandon_rate_ofcom,
            queue_abandons: t.queue_abandons,
            amd_false_positives: t.amd_false_positives,
            utilization: t.talk_person_s / agent_s,
            occupancy: (t.talk_person_s + t.talk_machine_s + t.wrap_s) / agent_s,
            mean_agent_wait_s: ratio(t.agent_wait_s, t.agent_waits as f64),
            connect_delay_p95_s: p95,
            machine_answers: t.machine_answers,
            mean_dial_level: line_s / agent_s,
            events,
            ratio: (policy == "ratio").then_some(sc.pacing.ratio),
            intervals,
            start_hhmm: sc.start_hhmm,
        }
    }

    fn clock(&self, t_s: f64) -> String {
        let m = (self.start_hhmm / 100 * 60 + self.start_hhmm % 100) as f64 + t_s / 60.0;
        let m = m.round() as u64 % 1440;
        format!("{:02}:{:02}", m / 60, m % 60)
    }

    /// One row per 15 minutes.
    pub fn csv(&self) -> String {
        let agents = f64::from(self.agents);
        let mut out = String::from(
            "start_s,end_s,clock,utilization,occupancy,abandon_rate_so_far,dial_level,live_share,dials,live_answers\n",
        );
        for i in &self.intervals {
            let len = (i.end_s - i.start_s).max(1e-9);
            let _ = writeln!(
                out,
                "{:.0},{:.0},{},{:.4},{:.4},{:.4},{:.3},{:.4},{},{}",
                i.start_s,
                i.end_s,
                self.clock(i.start_s),
                i.talk_person_s / (agents * len),
                i.busy_s / (agents * len),
                ratio(i.abandoned_so_far as f64, i.lives_so_far as f64),
                i.line_seconds / (agents * len),
                ratio(i.live_answers as f64, i.dials as f64),
                i.dials,
                i.live_answers,
            );
        }
        out
    }

    /// The day as a chart: utilisation, abandon rate so far and live share (left axis,
    /// percent), dial level (right axis).
    pub fn svg(&self) -> String {
        let (w, h, ml, mr, mt, mb) = (900.0, 420.0, 60.0, 60.0, 40.0, 50.0);
        let pw = w - ml - mr;
        let ph = h - mt - mb;
        let agents = f64::from(self.agents);
        let rows: Vec<Row> = self
            .intervals
            .iter()
            .map(|i| {
                let len = (i.end_s - i.start_s).max(1e-9);
                (
                    0.5 * (i.start_s + i.end_s),
                    i.talk_person_s / (agents * len),
                    ratio(i.abandoned_so_far as f64, i.lives_so_far as f64),
                    ratio(i.live_answers as f64, i.dials as f64),
                    i.line_seconds / (agents * len),
                )
            })
            .collect();
        let max_level = rows.iter().map(|r| r.4).fold(1.0_f64, f64::max).ceil();
        let x = |t: f64| ml + pw * t / self.duration_s.max(1.0);
        let y = |p: f64| mt + ph * (1.0 - p.clamp(0.0, 1.0));
        let yl = |l: f64| mt + ph * (1.0 - (l / max_level).clamp(0.0, 1.0));
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{ml}" y="22" font-size="15">{} — {} (seed {}): utilisation {:.1} %, abandon {:.2} %</text>"#,
            self.scenario,
            self.policy,
            self.seed,
            100.0 * self.utilization,
            100.0 * self.abandon_rate
        );
        for k in 0..=10 {
            let p = k as f64 / 10.0;
            let yy = y(p);
            let _ = writeln!(
                s,
                r##"<line x1="{ml}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.0} %</text><text x="{:.1}" y="{:.1}">{:.1}</text>"##,
                ml + pw,
                ml - 6.0,
                yy + 4.0,
                100.0 * p,
                ml + pw + 6.0,
                yy + 4.0,
                max_level * p
            );
        }
        let hours = (self.duration_s / 3600.0).ceil() as u64;
        for hr in 0..=hours {
            let t = (hr * 3600) as f64;
            if t > self.duration_s {
                break;
            }
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{mt}" x2="{0:.1}" y2="{1:.1}" stroke="#eee"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{3}</text>"##,
                x(t),
                mt + ph,
                mt + ph + 18.0,
                self.clock(t)
            );
        }
        let series: [Series<'_>; 4] = [
            ("utilisation", "#1f77b4", Box::new(|r| y(r.1))),
            ("abandon rate so far", "#d62728", Box::new(|r| y(r.2))),
            ("live share of dials", "#2ca02c", Box::new(|r| y(r.3))),
            ("dial level (right axis)", "#9467bd", Box::new(|r| yl(r.4))),
        ];
        for (k, (name, colour, f)) in series.iter().enumerate() {
            let pts: Vec<String> = rows
                .iter()
                .map(|r| format!("{:.1},{:.1}", x(r.0), f(r)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            let lx = ml + 10.0 + 190.0 * k as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="3" fill="{colour}"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
                h - 14.0,
                lx + 16.0,
                h - 9.0
            );
        }
        // The 3 % line.
        let yy = y(0.03);
        let _ = writeln!(
            s,
            r##"<line x1="{ml}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#d62728" stroke-dasharray="4 4"/>"##,
            ml + pw
        );
        s.push_str("</svg>\n");
        s
    }
}

/// A chart line: label, colour, and the y coordinate of a row.
type Series<'a> = (&'a str, &'a str, Box<dyn Fn(&Row) -> f64 + 'a>);
/// A chart row: mid-time, utilisation, abandon so far, live share, dial level.
type Row = (f64, f64, f64, f64, f64);

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The `q` percentile of sorted values (nearest rank), 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn busy_time_spreads_over_intervals() {
        let mut t = Tally::default();
        let mut closed = vec![Interval::new(0.0), Interval::new(900.0)];
        let mut open = Interval::new(1800.0);
        t.add_busy(&mut closed, &mut open, 800.0, 2000.0, true);
        assert_eq!(closed[0].talk_person_s, 100.0);
        assert_eq!(closed[1].talk_person_s, 900.0);
        assert_eq!(open.talk_person_s, 200.0);
        assert_eq!(t.talk_person_s, 1200.0);
    }
}
