//! ghboot: an all-in-one bootstrap appliance for a NATS-driven GitHub automation control plane.
//! See ARCHITECTURE.md for the map.
pub mod cli;
pub mod commands;
pub mod config;
pub mod containers;
pub mod controller;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod layout;
pub mod natsd;
pub mod platform;
pub mod secret;
pub mod stages;
pub mod state;
pub mod statuspage;
pub mod target;
pub mod topology;
pub mod ui;
pub mod webhook;

use cli::{Cli, Command};

/// Run a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    containers::env_from_files();
    let g = &cli.global;
    match &cli.command {
        None | Some(Command::Up) => commands::up::run(g).await,
        Some(Command::Status) => commands::status::run(g).await,
        Some(Command::Plan) => commands::plan::run(g).await,
        Some(Command::Down { purge }) => commands::down::run(g, *purge).await,
        Some(Command::Reset { yes }) => commands::reset::run(g, *yes).await,
        Some(Command::Doctor) => commands::doctor::run(g).await,
        Some(Command::Env { format }) => commands::env::run(g, *format).await,
        Some(Command::Logs { component, follow }) => {
            commands::logs::run(g, *component, *follow).await
        }
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
        }) => controller::hook::run(g, hook, git_dir, deliver).await,
        Some(Command::Render { out }) => commands::render::run(g, out).await,
        Some(Command::Healthcheck { url }) => Ok(containers::docker::healthcheck(url)),
        Some(Command::Webhook(c)) => commands::webhook::run(g, c).await,
        Some(Command::Ui) => commands::ui::run(g).await,
    }
}

/// Logs go to stderr: human progress and logs there, machine output (`--json`) on stdout.
pub fn init_tracing(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = if debug {
        EnvFilter::new("ghboot=debug,info")
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("ghboot=info,warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
