//! Simulator throughput on the 150-agent scenario: one 8-hour day per iteration, and
//! the events it processes per second.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialerd::pacing::Policy;
use dialerd::sim::{self, Scenario};

fn day(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("simulations/large-150.toml");
    let base = Scenario::load(&path).expect("scenario");
    let mut g = c.benchmark_group("simulator large-150 8h day");
    g.sample_size(10);
    for policy in [Policy::Predictive, Policy::Ratio] {
        let mut sc = base.clone();
        sc.pacing.policy = policy;
        let events = sim::run(&sc, 1).events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(policy.name(), |b| b.iter(|| sim::run(&sc, 1)));
    }
    g.finish();
}

criterion_group!(benches, day);
criterion_main!(benches);
