//! SIP message cost: parsing and building an INVITE and a 200 OK, and one whole
//! call (INVITE, 180, 200, ACK, BYE, 200) through the sans-IO user agent.

use criterion::{Criterion, criterion_group, criterion_main};
use dialerd::sip::call::Dial;
use dialerd::sip::message::{self, Parsed};
use dialerd::sip::{Peer, SipConfig, Transport, TrunkConfig, UserAgent, sdp};
use dialerd::time::Time;
use std::hint::black_box;

fn ua() -> UserAgent {
    let cfg = SipConfig {
        trunks: vec![TrunkConfig::new(
            "far",
            "127.0.0.1:5070".parse().unwrap(),
            Transport::Udp,
        )],
        ..SipConfig::default()
    };
    UserAgent::new(&cfg, 1, Time::from_millis(0))
}

fn dial(id: u64) -> Dial {
    Dial {
        id,
        trunk: 0,
        target: "+441632960001".into(),
        caller_id: "+441632960999".into(),
        display_name: Some("Sales".into()),
        rtp: "127.0.0.1:40000".parse().unwrap(),
        ring_timeout_ms: 25_000,
    }
}

fn ok_200(invite: &Parsed) -> Vec<u8> {
    let body = sdp::offer(
        9,
        1,
        "127.0.0.1:6000".parse().unwrap(),
        sdp::Direction::SendRecv,
    );
    message::response_to(invite, Some("far-tag-1"))
        .header("Contact", "<sip:far@127.0.0.1:5070>")
        .body("application/sdp", body)
        .response(200, "OK")
}

fn messages(c: &mut Criterion) {
    let mut ua = ua();
    ua.originate(Time::from_millis(0), dial(1)).unwrap();
    let invite_bytes = ua.poll_transmit().unwrap().bytes;
    let invite = message::parse(&invite_bytes).unwrap();
    let ok = ok_200(&invite);
    c.bench_function("sip: parse an INVITE with SDP", |b| {
        b.iter(|| message::parse(black_box(&invite_bytes)).unwrap())
    });
    c.bench_function("sip: parse a 200 OK with SDP", |b| {
        b.iter(|| message::parse(black_box(&ok)).unwrap())
    });
    c.bench_function("sip: build a 200 OK with SDP", |b| {
        b.iter(|| ok_200(black_box(&invite)))
    });
    let mut id = 10;
    let mut ua = ua_with_limits();
    c.bench_function("sip: build an INVITE (originate)", |b| {
        b.iter(|| {
            id += 1;
            ua.originate(Time::from_millis(0), dial(id)).unwrap();
            ua.poll_transmit().unwrap()
        })
    });
}

fn ua_with_limits() -> UserAgent {
    let mut t = TrunkConfig::new("far", "127.0.0.1:5070".parse().unwrap(), Transport::Udp);
    t.max_calls = usize::MAX;
    t.max_cps = 1e12;
    let cfg = SipConfig {
        trunks: vec![t],
        ..SipConfig::default()
    };
    UserAgent::new(&cfg, 1, Time::from_millis(0))
}

fn whole_call(c: &mut Criterion) {
    let far = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
    };
    let mut ua = ua_with_limits();
    let mut id = 0;
    c.bench_function(
        "sip: one answered call through the user agent (6 messages)",
        |b| {
            b.iter(|| {
                id += 1;
                let now = Time::from_millis(1000);
                ua.originate(now, dial(id)).unwrap();
                let invite = message::parse(&ua.poll_transmit().unwrap().bytes).unwrap();
                ua.handle(
                    now,
                    far,
                    &message::response_to(&invite, Some("t")).response(180, "Ringing"),
                );
                ua.handle(now, far, &ok_200(&invite));
                let _ack = ua.poll_transmit().unwrap();
                ua.hangup(now, id);
                let bye = message::parse(&ua.poll_transmit().unwrap().bytes).unwrap();
                ua.handle(
                    now,
                    far,
                    &message::response_to(&bye, None).response(200, "OK"),
                );
                while ua.poll_event().is_some() {}
            })
        },
    );
}

criterion_group!(benches, messages, whole_call);
criterion_main!(benches);
