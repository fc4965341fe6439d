//! Arbitrary bytes into the SIP parser, the stream framer and a user agent with a
//! call ringing, as a response and as a request from the trunk: nothing may panic,
//! and whatever parses must survive a build-and-parse round trip of its response.
#![no_main]

use dialerd::sip::call::Dial;
use dialerd::sip::message;
use dialerd::sip::{Peer, SipConfig, Transport, TrunkConfig, UserAgent};
use dialerd::time::Time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = message::frame(data);
    if let Ok(p) = message::parse(data) {
        if p.method().is_some() {
            let resp = message::response_to(&p, Some("t")).response(200, "OK");
            message::parse(&resp).expect("our response to a parsed request parses");
        }
    }
    let far = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5070".parse().unwrap(),
    };
    let cfg = SipConfig {
        trunks: vec![TrunkConfig::new("far", far.addr, Transport::Udp)],
        ..SipConfig::default()
    };
    let mut ua = UserAgent::new(&cfg, 1, Time::from_millis(0));
    let dial = Dial {
        id: 1,
        trunk: 0,
        target: "+441632960001".into(),
        caller_id: "+441632960999".into(),
        display_name: None,
        rtp: "127.0.0.1:40000".parse().unwrap(),
        ring_timeout_ms: 25_000,
    };
    ua.originate(Time::from_millis(0), dial).unwrap();
    while ua.poll_transmit().is_some() {}
    ua.handle(Time::from_millis(10), far, data);
    ua.handle_timeout(Time::from_millis(40_000));
    while ua.poll_transmit().is_some() || ua.poll_event().is_some() {}
});
