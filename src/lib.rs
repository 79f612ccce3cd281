//! ghboot: an all-in-one bootstrap appliance for a NATS-driven GitHub automation control plane.
//! See ARCHITECTURE.md for the map.
pub mod change;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod controller;
pub mod deploy;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod layout;
pub mod natsd;
pub mod platform;
pub mod purge;
pub mod repos;
pub mod secret;
pub mod secrets;
pub mod stages;
pub mod state;
pub mod statuspage;
pub mod terraform;
pub mod topology;
pub mod ui;
pub mod webhook;

use cli::{Cli, Command};

/// Run a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    deploy::containers::env_from_files();
    let g = &cli.global;
    match &cli.command {
        None | Some(Command::Up) => commands::up::run(g).await,
        Some(Command::Status) => commands::status::run(g).await,
        Some(Command::Plan) => commands::plan::run(g).await,
        Some(Command::Down { purge, yes, force }) => {
            commands::down::run(g, *purge, *yes, *force).await
        }
        Some(Command::Reset { yes, force }) => commands::reset::run(g, *yes, *force).await,
        Some(Command::Doctor) => commands::doctor::run(g).await,
        Some(Command::Env { format }) => commands::env::run(g, *format).await,
        Some(Command::Logs {
            component,
            follow,
            tail,
            since,
        }) => commands::logs::run(g, *component, *follow, *tail, since.as_deref()).await,
        Some(Command::NatsServer(c)) => commands::nats_server::run(g, c).await,
        Some(Command::Generate(a)) => {
            commands::generate::run(g, a, commands::generate::Op::Generate).await
        }
        Some(Command::Check(a)) => {
            commands::generate::run(g, a, commands::generate::Op::Check).await
        }
        Some(Command::Clean(a)) => {
            commands::generate::run(g, a, commands::generate::Op::Clean).await
        }
        Some(Command::Controller(a)) => commands::controller::run(g, a).await,
        Some(Command::Dlq(c)) => commands::controller::dlq(g, c).await,
        Some(Command::GitHook {
            hook,
            git_dir,
            deliver,
        }) => commands::git_hook::run(g, hook, git_dir, deliver).await,
        Some(Command::Render { out }) => commands::render::run(g, out).await,
        Some(Command::Healthcheck { url }) => Ok(deploy::docker::engine::healthcheck(url)),
        Some(Command::Webhook(c)) => commands::webhook::run(g, c).await,
        Some(Command::Completion { shell }) => Ok(commands::completion::run(*shell)),
        Some(Command::Secrets(c)) => commands::secrets::run(g, c).await,
        Some(Command::Repo(c)) => commands::repo::run(g, c).await,
        Some(Command::Health) => commands::repo::health(g).await,
        Some(Command::Ui) => commands::ui::run(g).await,
    }
}

/// Logs: the terminal (stderr) shows warnings only, unless `debug` (or RUST_LOG); `server` (a standalone
/// receiver or controller, whose stderr is its log) shows info there too. A supervising process also logs
/// into the state dir's files (see `ui::logfiles`).
///
/// Whatever RUST_LOG asks for, async-nats' TRACE events are never emitted: they include the raw protocol
/// lines, CONNECT among them, which carries the NATS password (see [`never_logged`]).
pub fn init_tracing(debug: bool, server: bool) {
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let term_filter = match (debug, &rust_log, server) {
        (true, _, _) => EnvFilter::new("ghboot=debug,info"),
        (false, Some(r), _) => EnvFilter::new(r),
        (false, None, true) => EnvFilter::new("ghboot=info,warn"),
        (false, None, false) => EnvFilter::new("warn"),
    };
    let file_filter = match (debug, &rust_log) {
        (true, _) => EnvFilter::new("ghboot=debug,info"),
        (false, Some(r)) => EnvFilter::new(r),
        (false, None) => EnvFilter::new("ghboot=info,warn"),
    };
    let term = fmt::layer()
        .with_writer(ui::logfiles::TermSink)
        .with_target(false)
        .with_ansi(ui::smart_terminal())
        .with_filter(term_filter);
    let files = fmt::layer()
        .with_writer(ui::logfiles::FileSink)
        .with_target(false)
        .with_ansi(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|_| {
            ui::logfiles::files_on()
        }))
        .with_filter(file_filter);
    let _ = tracing_subscriber::registry()
        .with(term)
        .with(files)
        .with(tracing_subscriber::filter::filter_fn(|m| {
            !never_logged(m.target(), *m.level())
        }))
        .try_init();
}

/// Events no filter may turn on because they can carry a secret.
pub fn never_logged(target: &str, level: tracing::Level) -> bool {
    level == tracing::Level::TRACE && (target == "async_nats" || target.starts_with("async_nats::"))
}
