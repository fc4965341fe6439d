//! dialerd: a predictive dialer engine.
//!
//! One sans-IO [`engine`] makes every decision: how many calls to place ([`pacing`]),
//! what happens to each call, which agent takes a person, what counts as abandoned. It
//! is given time and events and returns actions. The simulator ([`sim`]) drives the
//! same engine with a model of customers and agents, jumping the clock from event to
//! event, so a pacing change measured there behaves the same in production.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`time`] | `Time` (ms since the Unix epoch) — every core takes `now`; the wall clock, read only by the shells |
//! | [`ids`] | call, agent, campaign and lead identifiers |
//! | [`outcome`] | call outcomes with stable codes and SIP status classification |
//! | [`pacing`] | estimators, the abandon ledger, and the policies: progressive, ratio, predictive, vicidial-adapt |
//! | [`engine`] | the sans-IO orchestrator: dial loop, call lifecycle, abandon accounting, routing |
//! | [`agents`] | agent state machine and the queue of persons waiting for an agent |
//! | [`campaign`] | campaign settings, leads (E.164, states), retry rules, abandon lockout, calling windows in a time zone |
//! | [`store`] | sled persistence: campaigns, leads, due and phone indexes, DNC, CDRs, callbacks, abandon counters; crash recovery |
//! | [`control`] | the JSON-lines protocol (pure codec), roles, the Unix/TCP server, `dialerd ctl` |
//! | [`daemon`] | `dialerd run`: the core task (engine + store + trunk), control commands, the simulated trunk, shutdown |
//! | [`sip`] | the SIP user agent: message parsing and building, SDP, digest auth, RFC 3261 transactions, calls and dialogs, trunks (limits, OPTIONS health, REGISTER) as sans-IO cores; UDP/TCP transports; `dialerd call` |
//! | [`sim`] | scenarios (TOML), the discrete-event loop, reports (JSON, CSV, SVG), ratio sweeps |
//! | [`config`] | the daemon's TOML configuration with validation |
//! | [`cli`] | the `dialerd` command line (the binary only parses and calls in) |
//!
//! Data flows one way: driver → [`engine::Input`] → engine → [`engine::Output`] →
//! driver. Nothing below `engine` calls up into it. In the daemon the driver is the
//! core task: control requests and trunk events become inputs; records are written
//! to the store and flushed before any call is placed or any answer given.

pub mod agents;
pub mod campaign;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod ids;
pub mod outcome;
pub mod pacing;
pub mod sim;
pub mod sip;
pub mod store;
pub mod time;
