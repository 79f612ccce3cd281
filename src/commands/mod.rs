//! One module per subcommand. Each resolves settings through `config`, does its work, and returns the exit code.
pub mod completion;
pub mod confirm;
pub mod controller;
pub mod doctor;
pub mod down;
pub mod env;
pub mod generate;
pub mod git_hook;
pub mod logs;
pub mod nats_server;
pub mod plan;
pub mod render;
pub mod repo;
pub mod reset;
pub mod secrets;
pub mod status;
pub mod ui;
pub mod up;
pub mod webhook;

use crate::cli::GlobalArgs;
use crate::config::{self, Settings};
use crate::error::{fail, Kind};
use crate::layout::Layout;
use crate::state::StateFile;
use anyhow::Result;

/// Settings and state of an existing instance (status, env, plan, ...): a missing or unreadable state dir is
/// a clear error.
pub fn existing_instance(g: &GlobalArgs) -> Result<(Settings, StateFile)> {
    let dir = config::state_dir(g, false)?;
    if !dir.is_dir() {
        return Err(fail(
            Kind::NoInput,
            format!("state dir {} does not exist", dir.display()),
        )
        .help("run `ghboot up` first, or pass the --state-dir (GHBOOT_STATE_DIR) it used")
        .into());
    }
    let layout = Layout::new(dir.clone());
    let state = StateFile::load(&layout)?.ok_or_else(|| {
        fail(
            Kind::NoInput,
            format!("no ghboot instance in {} (no state.json)", dir.display()),
        )
        .help("run `ghboot up` first, or pass the --state-dir (GHBOOT_STATE_DIR) it used")
    })?;
    let mut settings = config::resolve_for_instance(g, dir, state.settings.clone())?;
    crate::deploy::containers::keep_recorded_mode(&mut settings, &state);
    Ok((settings, state))
}

/// Settings for a command that may run before any instance exists (plan, doctor).
pub fn maybe_instance(g: &GlobalArgs) -> Result<(Settings, Option<StateFile>)> {
    let dir = config::state_dir(g, false)?;
    let layout = Layout::new(dir.clone());
    let state = if dir.is_dir() {
        StateFile::load(&layout)?
    } else {
        None
    };
    let settings = config::resolve(g, dir, state.as_ref().map(|s| s.settings.clone()))?;
    Ok((settings, state))
}

/// Check every table of the configuration the stages will read, before any of them runs: `plan` and `up`
/// refuse an invalid file the same way (78, naming the key), whatever state the instance is in.
pub fn validate_config(settings: &Settings) -> Result<()> {
    crate::topology::desired::desired(settings)?;
    crate::webhook::WebhookConfig::from_settings(settings)?;
    if settings.mode == crate::cli::Mode::Dev {
        crate::controller::Config::from_settings(settings)?;
    }
    Ok(())
}
