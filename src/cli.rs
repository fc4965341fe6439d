//! The `dialerd` command line. The binary parses flags and calls [`run`].

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::pacing::Policy;
use crate::sim::{self, Scenario, sweep};

#[derive(Debug, Parser)]
#[command(name = "dialerd", version, about = "Predictive dialer engine")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine against a simulated day of customers and agents.
    Simulate(SimulateArgs),
    /// Validate a configuration file and name the bad field.
    CheckConfig {
        /// The TOML file (the embedded defaults when omitted).
        file: Option<PathBuf>,
    },
    /// Run the daemon: store, control socket, engine, trunk.
    Run(RunArgs),
    /// Send one command to a running daemon and print the response (JSON lines).
    Ctl(CtlArgs),
    /// Place real SIP calls to a target and print one JSON line per call and a summary.
    Call(CallArgs),
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Where to call: a SIP URI (`sip:1000@127.0.0.1:5070;transport=tcp`), or with
    /// `--trunk`, a number or URI sent through that trunk.
    pub target: String,
    /// Configuration file for the `[sip]` section (our addresses, timers, trunks).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Send through this configured trunk instead of straight to the target.
    #[arg(long)]
    pub trunk: Option<String>,
    /// Calls to place.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Call attempts per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Calls ringing or up at once.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// Seconds an answered call stays up before BYE.
    #[arg(long, default_value_t = 1.0)]
    pub hangup_after: f64,
    /// Transport when the target does not say (`udp` or `tcp`).
    #[arg(long)]
    pub transport: Option<crate::sip::Transport>,
    /// Digest credentials for a bare target.
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long, env = "DIALERD_SIP_PASSWORD")]
    pub password: Option<String>,
    /// Local address to bind (default: loopback of the target's family, any port).
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    /// Ring timeout in seconds (at least 15).
    #[arg(long)]
    pub ring_timeout: Option<u64>,
    /// The caller ID presented.
    #[arg(long, default_value = "dialerd")]
    pub caller_id: String,
    /// Print only the summary.
    #[arg(long)]
    pub summary_only: bool,
    /// T1 in milliseconds (retransmission base).
    #[arg(long)]
    pub t1_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (the embedded defaults when omitted).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Store folder (overrides `daemon.data_dir`).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Control socket path (overrides `control.socket`).
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Unix socket of the daemon.
    #[arg(long, default_value = "./dialerd.sock")]
    pub socket: PathBuf,
    /// Connect over TCP instead (`127.0.0.1:7070`); needs `--token`.
    #[arg(long)]
    pub tcp: Option<String>,
    /// Token sent with `auth` first.
    #[arg(long, env = "DIALERD_TOKEN")]
    pub token: Option<String>,
    /// Keep printing what the daemon sends (events) after the response.
    #[arg(long)]
    pub follow: bool,
    /// The command (`campaign.list`, `lead.add`, …).
    pub cmd: String,
    /// Its arguments as a JSON object.
    pub args: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Scenario files (TOML). Without one, the embedded `base-20` scenario runs.
    pub files: Vec<PathBuf>,
    /// Override the scenario's pacing policy.
    #[arg(long)]
    pub policy: Option<Policy>,
    /// Override the ratio (for `--policy ratio`).
    #[arg(long)]
    pub ratio: Option<f64>,
    /// First seed (default: the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of seeds to run, from the first.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Print one JSON object per seed instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Write the 15-minute table of the first seed as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Write a chart of the first seed's day as SVG.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Find the best fixed ratio that keeps every seed at or under the target.
    #[arg(long)]
    pub sweep_ratio: bool,
    /// Compare every policy (and the hindsight ratio) on the files; print a Markdown table.
    #[arg(long)]
    pub table: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Simulate(args) => simulate(args),
        Command::CheckConfig { file } => {
            let cfg = match &file {
                Some(f) => Config::load(f)?,
                None => Config::embedded(),
            };
            let shown = file.map_or("<embedded>".to_string(), |f| f.display().to_string());
            println!(
                "{shown}: ok (campaign default policy {})",
                cfg.campaign.pacing.policy.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let mut cfg = match &args.config {
                Some(f) => Config::load(f)?,
                None => Config::embedded(),
            };
            if let Some(d) = args.data {
                cfg.daemon.data_dir = d;
            }
            if let Some(s) = args.socket {
                cfg.control.socket = s;
            }
            crate::daemon::run_blocking(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ctl(args) => crate::control::client::ctl(&args),
        Command::Call(args) => call(&args),
    }
}

fn call(args: &CallArgs) -> anyhow::Result<ExitCode> {
    use crate::sip::{Transport, config::MIN_RING_S, load};
    let mut sip = match &args.config {
        Some(path) => Config::load(path)?.sip,
        None => crate::sip::SipConfig::default(),
    };
    let trunk = match &args.trunk {
        Some(name) => sip
            .trunks
            .iter()
            .position(|t| &t.name == name)
            .with_context(|| format!("no trunk named {name} in the configuration"))?,
        None => {
            let mut t =
                load::trunk_for_target(&args.target, args.transport).with_context(|| {
                    format!(
                        "{}: a bare target must be a SIP URI with an IP address (or use --trunk)",
                        args.target
                    )
                })?;
            t.username = args.user.clone();
            t.password = args.password.clone();
            let local = args.bind.unwrap_or_else(|| load::local_for(t.address));
            sip.udp = (t.transport == Transport::Udp).then_some(local);
            sip.tcp = (t.transport == Transport::Tcp).then_some(local);
            sip.trunks = vec![t];
            0
        }
    };
    if let Some(r) = args.ring_timeout {
        anyhow::ensure!(
            r >= MIN_RING_S,
            "--ring-timeout must be at least {MIN_RING_S} s"
        );
        sip.ring_timeout_s = r;
    }
    if let Some(t1) = args.t1_ms {
        sip.t1_ms = t1;
    }
    sip.validate()?;
    anyhow::ensure!(
        args.rate > 0.0 && args.concurrency > 0,
        "--rate and --concurrency must be positive"
    );
    let plan = load::LoadPlan {
        target: args.target.clone(),
        count: args.count,
        rate: args.rate,
        concurrency: args.concurrency,
        hangup_after_s: args.hangup_after,
        caller_id: args.caller_id.clone(),
        per_call: !args.summary_only,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let stdout = std::io::stdout();
        load::run(sip, trunk, &plan, 1, |line| {
            let _ = writeln!(stdout.lock(), "{line}");
        })
        .await
    })?;
    println!(
        "{}",
        serde_json::to_string(&serde_json::json!({ "summary": summary }))?
    );
    Ok(ExitCode::SUCCESS)
}

fn load_scenarios(args: &SimulateArgs) -> anyhow::Result<Vec<Scenario>> {
    let mut out = Vec::new();
    if args.files.is_empty() {
        out.push(Scenario::default_scenario());
    }
    for f in &args.files {
        let s = Scenario::load(f)?;
        s.check_tuning()
            .map_err(|e| anyhow::anyhow!("{}: [pacing.tuning]: {e}", f.display()))?;
        out.push(s);
    }
    for s in &mut out {
        if let Some(p) = args.policy {
            s.pacing.policy = p;
        }
        if let Some(r) = args.ratio {
            s.pacing.ratio = r;
        }
        s.campaign_settings()
            .validate()
            .context("scenario pacing after overrides")?;
    }
    Ok(out)
}

fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let scenarios = load_scenarios(&args)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.table {
        let seeds = args.seeds;
        let mut rows = Vec::new();
        for sc in &scenarios {
            let first = args.seed.unwrap_or(sc.seed);
            eprintln!("comparing policies on {} over {seeds} seeds…", sc.name);
            rows.push(sweep::compare(sc, first, seeds));
        }
        if args.json {
            for r in &rows {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        } else {
            write!(out, "{}", sweep::table(&rows))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    for sc in &scenarios {
        let first = args.seed.unwrap_or(sc.seed);
        if args.sweep_ratio {
            let (tried, best) = sweep::sweep_ratio(sc, first, args.seeds);
            for t in &tried {
                writeln!(out, "{}", serde_json::to_string(t)?)?;
            }
            match best {
                Some(b) => writeln!(
                    out,
                    "{{\"scenario\":{:?},\"best_ratio\":{},\"utilization_mean\":{:.4},\"abandon_rate_max\":{:.4}}}",
                    b.scenario,
                    b.ratio.unwrap_or(0.0),
                    b.utilization_mean,
                    b.abandon_rate_max
                )?,
                None => writeln!(out, "{{\"scenario\":{:?},\"best_ratio\":null}}", sc.name)?,
            }
            continue;
        }
        let reports = sim::run_seeds(sc, first, args.seeds);
        if let Some(path) = &args.csv {
            std::fs::write(path, reports[0].csv())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if let Some(path) = &args.svg {
            std::fs::write(path, reports[0].svg())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        for r in &reports {
            if args.json {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            } else {
                writeln!(
                    out,
                    "{} {} seed {}: {} agents, {} dials, {} live answers, {} abandoned ({:.2} %; Ofcom estimate {:.2} %), utilisation {:.1} %, occupancy {:.1} %, agent wait {:.1} s, connect p95 {:.2} s",
                    r.scenario,
                    r.policy,
                    r.seed,
                    r.agents,
                    r.dials,
                    r.live_answers,
                    r.abandoned,
                    100.0 * r.abandon_rate,
                    100.0 * r.abandon_rate_ofcom,
                    100.0 * r.utilization,
                    100.0 * r.occupancy,
                    r.mean_agent_wait_s,
                    r.connect_delay_p95_s,
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
