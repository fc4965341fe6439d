//! The control protocol's pure codec and the store's due-lead pick.

use criterion::{Criterion, criterion_group, criterion_main};
use dialerd::campaign::{CampaignSettings, LeadInput};
use dialerd::control::codec::{LineBuffer, parse_request};
use dialerd::store::Store;
use dialerd::time::Time;

fn codec(c: &mut Criterion) {
    let leads: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({ "number": format!("020 7946 {i:04}"), "fields": { "name": "Ada" } }))
        .collect();
    let line = serde_json::json!({ "id": 1, "cmd": "lead.add", "args": { "campaign": 1, "leads": leads } }).to_string();
    let mut bytes = line.clone().into_bytes();
    bytes.push(b'\n');
    c.bench_function("control: frame and parse a 100-lead lead.add line", |b| {
        b.iter(|| {
            let mut buf = LineBuffer::default();
            buf.push(std::hint::black_box(&bytes));
            match buf.next_frame() {
                Some(dialerd::control::codec::Frame::Line(l)) => parse_request(&l).unwrap(),
                _ => unreachable!(),
            }
        })
    });
}

fn store(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("dialerd-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let now = Time::SIM_EPOCH + std::time::Duration::from_secs(10 * 3600);
    let mut s = Store::open(&dir).unwrap();
    let campaign = s
        .create_campaign(CampaignSettings::default(), now)
        .unwrap()
        .id;
    for k in 0..10 {
        let batch: Vec<LeadInput> = (0..10_000)
            .map(|i| LeadInput {
                number: format!("+44207{:07}", k * 10_000 + i),
                ..LeadInput::default()
            })
            .collect();
        s.add_leads(campaign, batch, now).unwrap();
    }
    c.bench_function("store: take the next due lead of 100,000", |b| {
        b.iter(|| {
            let got = s.take_due(campaign, now, 1).unwrap();
            s.release(got.iter().map(|l| l.id));
            got
        })
    });
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, codec, store);
criterion_main!(benches);
