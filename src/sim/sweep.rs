//! Hindsight baselines and comparisons.
//!
//! [`sweep_ratio`] finds the best fixed ratio for a scenario: the highest utilisation
//! among the ratios that keep every seed at or under the abandon target. Knowing the
//! day in advance is what makes it a hindsight baseline; a real campaign cannot pick
//! its ratio that way. [`compare`] runs every policy (and the hindsight ratio) on
//! scenarios and prints the comparison table.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Report, Scenario, run_seeds};
use crate::pacing::Policy;

/// Summary of one policy on one scenario over several seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    pub seeds: usize,
    pub abandon_rate_mean: f64,
    pub abandon_rate_max: f64,
    pub utilization_mean: f64,
    pub utilization_min: f64,
    pub occupancy_mean: f64,
    pub mean_agent_wait_s: f64,
    pub connect_delay_p95_s: f64,
    /// Every seed at or under the target.
    pub compliant: bool,
}

impl Summary {
    pub fn of(reports: &[Report], target: f64) -> Summary {
        let n = reports.len().max(1) as f64;
        let mean = |f: fn(&Report) -> f64| reports.iter().map(f).sum::<f64>() / n;
        let first = &reports[0];
        Summary {
            scenario: first.scenario.clone(),
            policy: first.policy.clone(),
            ratio: first.ratio,
            seeds: reports.len(),
            abandon_rate_mean: mean(|r| r.abandon_rate),
            abandon_rate_max: reports.iter().map(|r| r.abandon_rate).fold(0.0, f64::max),
            utilization_mean: mean(|r| r.utilization),
            utilization_min: reports.iter().map(|r| r.utilization).fold(1.0, f64::min),
            occupancy_mean: mean(|r| r.occupancy),
            mean_agent_wait_s: mean(|r| r.mean_agent_wait_s),
            connect_delay_p95_s: reports
                .iter()
                .map(|r| r.connect_delay_p95_s)
                .fold(0.0, f64::max),
            compliant: reports.iter().all(|r| r.abandon_rate <= target + 1e-12),
        }
    }
}

fn with_policy(sc: &Scenario, policy: Policy, ratio: Option<f64>) -> Scenario {
    let mut s = sc.clone();
    s.pacing.policy = policy;
    if let Some(r) = ratio {
        s.pacing.ratio = r;
    }
    s
}

/// Summarise a policy on a scenario over seeds `first..first + n`.
pub fn evaluate(sc: &Scenario, policy: Policy, ratio: Option<f64>, first: u64, n: u64) -> Summary {
    let s = with_policy(sc, policy, ratio);
    Summary::of(&run_seeds(&s, first, n), s.pacing.target_abandon)
}

/// The best fixed ratio in hindsight: coarse steps of 0.25 up from 1.0 until a ratio
/// breaks the target on some seed, then steps of 0.05 inside the last compliant step.
/// Returns every ratio tried and the best compliant one (`None` if even 1.0 breaks it).
pub fn sweep_ratio(sc: &Scenario, first: u64, n: u64) -> (Vec<Summary>, Option<Summary>) {
    let mut tried = Vec::new();
    let mut best: Option<Summary> = None;
    let mut consider = |s: Summary, best: &mut Option<Summary>| {
        let ok = s.compliant;
        if ok
            && best
                .as_ref()
                .is_none_or(|b| s.utilization_mean > b.utilization_mean)
        {
            *best = Some(s.clone());
        }
        tried.push(s);
        ok
    };
    let mut r = 1.0;
    let mut last_ok = None;
    while r <= 6.0 + 1e-9 {
        if !consider(evaluate(sc, Policy::Ratio, Some(r), first, n), &mut best) {
            break;
        }
        last_ok = Some(r);
        r += 0.25;
    }
    if let Some(lo) = last_ok {
        let mut f = lo + 0.05;
        while f < lo + 0.25 - 1e-9 && f <= 6.0 {
            if !consider(evaluate(sc, Policy::Ratio, Some(f), first, n), &mut best) {
                break;
            }
            f += 0.05;
        }
    }
    tried.sort_by(|a, b| a.ratio.partial_cmp(&b.ratio).expect("finite"));
    (tried, best)
}

/// The comparison of one scenario: every policy plus the hindsight ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub progressive: Summary,
    pub ratio: Summary,
    pub hindsight: Option<Summary>,
    pub predictive: Summary,
    pub vicidial: Summary,
}

pub fn compare(sc: &Scenario, first: u64, n: u64) -> Comparison {
    let (_, hindsight) = sweep_ratio(sc, first, n);
    Comparison {
        scenario: sc.name.clone(),
        progressive: evaluate(sc, Policy::Progressive, None, first, n),
        ratio: evaluate(sc, Policy::Ratio, None, first, n),
        hindsight,
        predictive: evaluate(sc, Policy::Predictive, None, first, n),
        vicidial: evaluate(sc, Policy::VicidialAdapt, None, first, n),
    }
}

/// Markdown table of comparisons.
pub fn table(rows: &[Comparison]) -> String {
    let mut s = String::from(
        "| scenario | policy | abandon mean | abandon max | ≤ target every seed | utilisation mean | occupancy | agent wait (s) | connect p95 (s) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in rows {
        let line = |s: &mut String, label: String, m: &Summary| {
            let _ = writeln!(
                s,
                "| {} | {} | {:.2} % | {:.2} % | {} | {:.1} % | {:.1} % | {:.1} | {:.2} |",
                c.scenario,
                label,
                100.0 * m.abandon_rate_mean,
                100.0 * m.abandon_rate_max,
                if m.compliant { "yes" } else { "**no**" },
                100.0 * m.utilization_mean,
                100.0 * m.occupancy_mean,
                m.mean_agent_wait_s,
                m.connect_delay_p95_s,
            );
        };
        line(&mut s, "progressive".into(), &c.progressive);
        line(
            &mut s,
            format!("ratio {:.2}", c.ratio.ratio.unwrap_or(0.0)),
            &c.ratio,
        );
        match &c.hindsight {
            Some(h) => line(
                &mut s,
                format!("best fixed ratio {:.2} (hindsight)", h.ratio.unwrap_or(0.0)),
                h,
            ),
            None => {
                let _ = writeln!(
                    s,
                    "| {} | best fixed ratio (hindsight) | — | — | none ≥ 1.0 complies | — | — | — | — |",
                    c.scenario
                );
            }
        }
        line(&mut s, "vicidial-adapt".into(), &c.vicidial);
        line(&mut s, "**predictive**".into(), &c.predictive);
    }
    s.push_str("\n| scenario | predictive − hindsight ratio (points) | predictive − vicidial-adapt (points) | predictive ≤ target every seed |\n|---|---|---|---|\n");
    for c in rows {
        let p = c.predictive.utilization_mean;
        let h = c
            .hindsight
            .as_ref()
            .map(|h| format!("{:+.1}", 100.0 * (p - h.utilization_mean)));
        let _ = writeln!(
            s,
            "| {} | {} | {:+.1} | {} |",
            c.scenario,
            h.unwrap_or_else(|| "n/a".into()),
            100.0 * (p - c.vicidial.utilization_mean),
            if c.predictive.compliant {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    s
}
