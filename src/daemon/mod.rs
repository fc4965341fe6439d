//! The daemon: one core task owns the engine, the store and the trunk; the control
//! server's connections send it requests over a channel and receive events from a
//! broadcast. The core sleeps until the earliest deadline of the engine or the trunk.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`run`]: startup (recovery, restore), the core loop, graceful shutdown |
//! | `core.rs` | the core's state and the output pump (persist, flush, then act) |
//! | `commands.rs` | control commands and their error codes |
//! | `simtrunk.rs` | the simulated trunk (customers), sans-IO |
//!
//! Shutdown (SIGTERM/SIGINT or the `shutdown` future): stop dialing (ringing calls
//! are canceled and their leads due again), let bridged calls run up to
//! `daemon.shutdown_grace_s`, hang up the rest, flush the store. Campaigns keep their
//! stored state, so a restart resumes them.

mod commands;
mod core;
mod simtrunk;

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::Config;
use crate::control::ToCore;
use crate::control::server::{self, Listeners};
use crate::engine::{CampaignCommand, Input, RunState};
use crate::store::Store;
use crate::time::{Time, wait_until, wall_clock as now};
pub use core::Core;
pub use simtrunk::SimTrunk;

/// How often ready agents' due callbacks are looked for.
const CALLBACK_POLL: Duration = Duration::from_secs(5);

fn instant_at(t: Time) -> tokio::time::Instant {
    tokio::time::Instant::now() + wait_until(t)
}

/// Run the daemon until `shutdown` completes.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let dir = &cfg.daemon.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut store =
        Store::open(dir).with_context(|| format!("opening the store in {}", dir.display()))?;
    let started = now();
    let recovery = store.recover(started)?;
    if recovery != Default::default() {
        eprintln!(
            "dialerd: recovered: {} calls open at the crash closed as network, {} leads of an interrupted batch rolled back",
            recovery.calls_closed, recovery.leads_rolled_back
        );
    }
    let (events, _) = broadcast::channel(4096);
    let mut core = Core::new(cfg.clone(), store, events.clone())?;
    core.restore(started)?;
    let listeners = Listeners::bind(&cfg.control).await.with_context(|| {
        format!(
            "binding the control socket {}",
            cfg.control.socket.display()
        )
    })?;
    let (to_core, mut rx) = mpsc::channel::<ToCore>(1024);
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(server::serve(
        cfg.control.clone(),
        listeners,
        to_core,
        events,
        stopped,
    ));
    eprintln!(
        "dialerd: ready: control socket {}{}, store {}",
        cfg.control.socket.display(),
        cfg.control
            .tcp
            .as_ref()
            .map(|a| format!(", tcp {a}"))
            .unwrap_or_default(),
        dir.display()
    );
    tokio::pin!(shutdown);
    let mut housekeeping = tokio::time::interval(CALLBACK_POLL);
    loop {
        let wake = core.poll_timeout().map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            instant_at,
        );
        tokio::select! {
            _ = &mut shutdown => break,
            msg = rx.recv() => match msg {
                Some(ToCore::Request { session, req, reply }) => {
                    let r = core.command(&session, req, now());
                    let _ = reply.send(r);
                }
                Some(ToCore::Closed { conn }) => core.connection_closed(conn, now()),
                None => break,
            },
            _ = tokio::time::sleep_until(wake) => core.tick(now()),
            _ = housekeeping.tick() => core.dial_due_callbacks(now()),
        }
    }
    eprintln!("dialerd: stopping");
    let _ = stop.send(true);
    drain(&mut core, cfg.daemon.shutdown_grace_s).await;
    let _ = server.await;
    let _ = std::fs::remove_file(&cfg.control.socket);
    core.store.flush()?;
    Ok(())
}

/// Stop dialing, let bridged calls finish within the grace period, end the rest.
async fn drain(core: &mut Core, grace_s: u64) {
    let t = now();
    let running: Vec<_> = core
        .store
        .campaigns()
        .map(|c| c.id)
        .filter(|c| core.engine.campaign_state(*c) == Some(RunState::Running))
        .collect();
    for campaign in running {
        // The engine stops (ringing calls canceled); the stored state stays
        // `running` so that a restart resumes the campaign.
        let _ = core
            .engine
            .handle(t, Input::Campaign(CampaignCommand::Stop { campaign }));
    }
    core.pump(t);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(grace_s);
    while !core.engine.call_ids().is_empty() {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let wake = core
            .poll_timeout()
            .map_or(deadline, |w| instant_at(w).min(deadline));
        tokio::time::sleep_until(wake).await;
        core.tick(now());
    }
    for call in core.engine.call_ids() {
        let _ = core.engine.handle(now(), Input::Drop { call });
    }
    core.pump(now());
}

/// `dialerd run`: the daemon until SIGTERM or SIGINT.
pub fn run_blocking(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        run(cfg, shutdown).await
    })
}
