//! The simulator: the real engine against a model of customers and agents.
//!
//! A scenario ([`scenario`]) describes agents (talk, wrap-up), customers (who answers,
//! how fast, the answer rate over the day), the AMD (delay, errors) and the pacing.
//! [`world`] runs the discrete-event loop; [`report`] turns a run into a JSON line, a
//! 15-minute CSV and an SVG chart; [`sweep`] finds the best fixed ratio in hindsight
//! and compares policies across scenarios and seeds.

pub mod report;
pub mod scenario;
pub mod sweep;
pub mod world;

pub use report::Report;
pub use scenario::Scenario;

/// Run one scenario with one seed.
pub fn run(scenario: &Scenario, seed: u64) -> Report {
    world::World::new(scenario, seed).run()
}

/// Run seeds `first..first + n`, in parallel on the machine's cores; reports come
/// back in seed order and do not depend on the number of threads.
pub fn run_seeds(scenario: &Scenario, first: u64, n: u64) -> Vec<Report> {
    let seeds: Vec<u64> = (first..first + n).collect();
    parallel_map(&seeds, |&s| run(scenario, s))
}

/// Map `f` over `items` on all cores, keeping the order.
pub fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= items.len() {
                            break mine;
                        }
                        mine.push((i, f(&items[i])));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation thread"))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
