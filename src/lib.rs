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
//! | [`time`] | `Time` (ms since the Unix epoch) — every core takes `now` |
//! | [`ids`] | call, agent, campaign and lead identifiers |
//! | [`outcome`] | call outcomes with stable codes and SIP status classification |
//! | [`pacing`] | estimators, the abandon ledger, and the policies: progressive, ratio, predictive, vicidial-adapt |
//! | [`engine`] | the sans-IO orchestrator: dial loop, call lifecycle, abandon accounting, routing |
//! | [`agents`] | agent state machine and the queue of persons waiting for an agent |
//! | [`campaign`] | campaign settings and validation, dialable leads |
//! | [`sim`] | scenarios (TOML), the discrete-event loop, reports (JSON, CSV, SVG), ratio sweeps |
//! | [`config`] | the daemon's TOML configuration with validation |
//! | [`cli`] | the `dialerd` command line (the binary only parses and calls in) |
//!
//! Data flows one way: driver → [`engine::Input`] → engine → [`engine::Output`] →
//! driver. Nothing below `engine` calls up into it.

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
pub mod store;
pub mod time;
