//! The SIP user agent against sipp (Debian `sip-tester`) as the far end, over
//! loopback: every outcome, UDP and TCP, IPv6, digest challenges, retransmissions,
//! the CANCEL/200 race, requests from the far end, malformed messages, trunk health
//! and registration. Each sipp scenario lives in `tests/sipp/`.

mod harness;
mod outcomes;
mod peers;

use harness::*;
