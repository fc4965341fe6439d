//! Load figures for the store with a million leads: CSV import, `lead.add`-sized
//! batches, picking the next due lead, and reopening (restart) time.
//!
//! `cargo run --release --example store_load [-- LEADS]` (default 1,000,000).

use std::io::Write;
use std::time::Instant;

use dialerd::campaign::{CampaignSettings, LeadInput};
use dialerd::store::{ImportMapping, Store};
use dialerd::time::Time;

fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("dialerd-store-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // 10:00 UTC on a Monday: inside the default calling window.
    let now = Time::SIM_EPOCH + std::time::Duration::from_secs(10 * 3600);
    let number = |i: u64| format!("020 {:04} {:04}", 7000 + i / 10_000 % 1000, i % 10_000);
    let name = |i: u64| format!("Customer {i}");

    // The CSV file, with a 1 % share of duplicates and a DNC list of 10,000 numbers.
    let csv = dir.join("leads.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv)?);
    writeln!(f, "phone,name,account")?;
    for i in 0..n {
        let j = if i % 100 == 99 { i - 1 } else { i };
        writeln!(f, "{},{},{}", number(j), name(j), 100_000 + j)?;
    }
    f.flush()?;
    drop(f);
    let dnc = dir.join("dnc.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&dnc)?);
    for i in (0..n).step_by((n as usize / 10_000).max(1)) {
        writeln!(f, "{}", number(i + 1))?;
    }
    f.flush()?;
    drop(f);

    let a = dir.join("csv-store");
    let mut store = Store::open(&a)?;
    let c = store.create_campaign(CampaignSettings::default(), now)?.id;
    store.dnc_import(None, &dnc, now)?;
    let t = Instant::now();
    let mapping = ImportMapping {
        number: "phone".into(),
        ..ImportMapping::default()
    };
    let s = store.import_csv(c, &csv, &mapping, now)?;
    let csv_s = t.elapsed().as_secs_f64();
    println!(
        "csv import: {} rows in {csv_s:.2} s ({:.0} rows/s): {} added, {} duplicates, {} dnc, {} invalid",
        s.rows,
        s.rows as f64 / csv_s,
        s.added,
        s.duplicates,
        s.dnc,
        s.invalid
    );

    // Picking the next due lead with the whole list stored.
    let t = Instant::now();
    let picks = 10_000;
    for _ in 0..picks {
        let got = store.take_due(c, now, 1)?;
        assert_eq!(got.len(), 1);
        store.release(got.iter().map(|l| l.id));
    }
    let per = t.elapsed().as_secs_f64() / picks as f64;
    println!("take_due(1) with {n} leads: {:.1} µs per pick", per * 1e6);
    let t = Instant::now();
    let batch = store.take_due(c, now, 200)?;
    println!("take_due(200): {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
    store.release(batch.iter().map(|l| l.id));
    let size = store.size_on_disk();
    drop(store);

    // Restart: open and recover.
    let t = Instant::now();
    let mut store = Store::open(&a)?;
    let r = store.recover(now)?;
    let first = store.take_due(c, now, 1)?;
    println!(
        "restart with {n} leads ({:.0} MB on disk): {:.2} s to open, recover and pick the first lead ({r:?}, {} picked)",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        first.len()
    );
    drop(store);

    // The same leads as lead.add batches of 10,000.
    let b = dir.join("batch-store");
    let mut store = Store::open(&b)?;
    let c = store.create_campaign(CampaignSettings::default(), now)?.id;
    store.dnc_import(None, &dnc, now)?;
    let t = Instant::now();
    let mut added = 0;
    let mut i = 0;
    while i < n {
        let inputs: Vec<LeadInput> = (i..(i + 10_000).min(n))
            .map(|k| {
                let j = if k % 100 == 99 { k - 1 } else { k };
                LeadInput {
                    number: number(j),
                    fields: Some(serde_json::json!({ "name": name(j), "account": 100_000 + j })),
                    ..LeadInput::default()
                }
            })
            .collect();
        added += store
            .add_leads(c, inputs, now)?
            .iter()
            .filter(|r| r.error.is_none())
            .count();
        i += 10_000;
    }
    let batch_s = t.elapsed().as_secs_f64();
    println!(
        "lead.add batches: {n} leads in {batch_s:.2} s ({:.0} leads/s), {added} added",
        n as f64 / batch_s
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
