//! Settings, resolved in one place: flags > environment > `ghboot.toml` > settings recorded by the `up`
//! that made this instance > defaults. Everything downstream reads [`Settings`], never flags or env.

use crate::cli::{GlobalArgs, Mode, NatsType, TerraformBackend};
use crate::error::{fail, Kind};
use crate::layout::Layout;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const DEFAULT_PORT: u16 = 4222;
pub const DEFAULT_MONITOR_PORT: u16 = 8222;
pub const DEFAULT_BIND: &str = "127.0.0.1";
/// dev needs no GitHub org: this one is used (and said so) when none is given.
pub const LOCAL_ORG: &str = "local";

/// `ghboot.toml`. Unknown keys are an error, so that a typo is not silently ignored.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub org: Option<String>,
    pub mode: Option<Mode>,
    pub nats_type: Option<NatsType>,
    pub terraform_backend: Option<TerraformBackend>,
    #[serde(default)]
    pub nats: NatsFileConfig,
    #[serde(default)]
    pub webhook: toml::Table,
    #[serde(default)]
    pub topology: toml::Table,
    #[serde(default)]
    pub controller: toml::Table,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsFileConfig {
    pub port: Option<u16>,
    pub monitor_port: Option<u16>,
    pub bind: Option<String>,
    pub server: Option<PathBuf>,
}

/// What `up` was given, kept in the state file (no secrets) as the defaults of later commands.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recorded {
    pub mode: Option<Mode>,
    pub nats_type: Option<NatsType>,
    pub org: Option<String>,
    pub port: Option<u16>,
    pub monitor_port: Option<u16>,
    pub webhook_port: Option<u16>,
    pub bind: Option<String>,
    pub config_file: Option<PathBuf>,
    #[serde(default)]
    pub ephemeral: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_creds: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub js_domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub layout: Layout,
    pub config_file: Option<PathBuf>,
    pub file: FileConfig,
    pub mode: Mode,
    pub nats_type: NatsType,
    /// true when no flag, variable, file or record chose the mode
    pub mode_defaulted: bool,
    pub org: String,
    /// true when `org` is the dev default rather than something the user gave
    pub org_defaulted: bool,
    pub bind: String,
    /// None: pick a free port (ephemeral) on first start, then keep it
    pub port: Option<u16>,
    pub monitor_port: Option<u16>,
    pub webhook_port: Option<u16>,
    pub nats_server: Option<PathBuf>,
    /// Remote NATS (synadia): URL without credentials
    pub nats_url: Option<String>,
    /// Hub of a hybrid leaf node, and the .creds file for it
    pub hub_url: Option<String>,
    pub hub_creds: Option<PathBuf>,
    pub js_domain: Option<String>,
    pub terraform_backend: TerraformBackend,
    pub non_interactive: bool,
    pub ephemeral: bool,
    pub detach: bool,
    pub allow_replace: bool,
    pub json: bool,
    pub debug: bool,
    pub wait_timeout: std::time::Duration,
    pub supervisor_child: bool,
    /// `--image NAME=REF` overrides of container images (docker, kubernetes)
    pub images: Vec<(String, String)>,
    /// Why `--mode auto` chose the mode it did (set by `containers::auto`)
    pub mode_reason: Option<String>,
    /// Public URL for the GitHub hook (`--webhook-url`); with `github_token`, `up` registers it.
    pub webhook_public_url: Option<String>,
    /// GitHub API base (`--github-api-url`, GITHUB_API_URL); None: https://api.github.com
    pub github_api_url: Option<String>,
    /// GITHUB_TOKEN (never recorded).
    pub github_token: Option<crate::secret::Secret>,
    /// GHBOOT_WEBHOOK_SECRET: an operator-supplied webhook secret (never recorded).
    pub webhook_secret: Option<crate::secret::Secret>,
}

impl Settings {
    pub fn recorded(&self) -> Recorded {
        Recorded {
            mode: Some(self.mode),
            nats_type: Some(self.nats_type),
            org: Some(self.org.clone()),
            port: self.port,
            monitor_port: self.monitor_port,
            webhook_port: self.webhook_port,
            bind: Some(self.bind.clone()),
            config_file: self.config_file.clone(),
            ephemeral: self.ephemeral,
            nats_url: self.nats_url.clone(),
            hub_url: self.hub_url.clone(),
            hub_creds: self.hub_creds.clone(),
            js_domain: self.js_domain.clone(),
        }
    }

    /// May ghboot ask questions on this run?
    pub fn interactive(&self) -> bool {
        use std::io::IsTerminal;
        !self.non_interactive
            && !self.ephemeral
            && !self.supervisor_child
            && std::env::var_os("CI").is_none()
            && std::io::stdin().is_terminal()
    }
}

/// The state dir a command addresses, before anything else is resolved.
pub fn state_dir(g: &GlobalArgs, is_up: bool) -> Result<PathBuf> {
    let dir = match &g.state_dir {
        Some(d) => d.clone(),
        None if g.ephemeral && is_up => {
            let d = tempfile::Builder::new()
                .prefix("ghboot-ephemeral-")
                .tempdir()
                .context("cannot create a temporary state dir")?;
            d.keep()
        }
        None => default_state_dir()?,
    };
    Ok(absolute(&dir))
}

pub fn default_state_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("dev", "ghboot", "ghboot")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| {
            fail(
                Kind::Config,
                "cannot find a per-user data dir (no home directory?)",
            )
            .help("pass --state-dir DIR or set GHBOOT_STATE_DIR")
            .into()
        })
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

pub fn load_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            Kind::Config,
            format!("cannot read config file {}: {e}", path.display()),
        )
        .help("check the --config path")
    })?;
    toml::from_str(&text).map_err(|e| {
        fail(
            Kind::Config,
            format!("invalid config file {}: {}", path.display(), e.message()),
        )
        .help("fix the file; see README.md for the keys ghboot.toml takes")
        .into()
    })
}

/// Resolve settings for a command. `recorded` comes from the instance's state file, when there is one.
pub fn resolve(g: &GlobalArgs, state_dir: PathBuf, recorded: Option<Recorded>) -> Result<Settings> {
    resolve_with(g, state_dir, recorded, true)
}

/// [`resolve`] for commands that read an existing instance (status, env, logs, ...): its settings are the
/// recorded ones, so a `ghboot.toml` that happens to be in the working directory is not read (an invalid
/// one there must not block `status --state-dir X`); `--config` and the recorded config file still are.
pub fn resolve_for_instance(
    g: &GlobalArgs,
    state_dir: PathBuf,
    recorded: Recorded,
) -> Result<Settings> {
    resolve_with(g, state_dir, Some(recorded), false)
}

fn resolve_with(
    g: &GlobalArgs,
    state_dir: PathBuf,
    recorded: Option<Recorded>,
    cwd_config: bool,
) -> Result<Settings> {
    let rec = recorded.unwrap_or_default();
    let config_file = match (&g.config, &rec.config_file) {
        (Some(p), _) => Some(absolute(p)),
        (None, Some(p)) if p.exists() => Some(p.clone()),
        _ if cwd_config => Some(absolute(Path::new("ghboot.toml"))).filter(|p| p.is_file()),
        _ => None,
    };
    let file = match &config_file {
        Some(p) => load_file_config(p)?,
        None => FileConfig::default(),
    };
    // DEBUG=true is the seeds' spelling of --debug
    let debug = g.debug
        || std::env::var("DEBUG")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
    let chosen_mode = g.mode.or(file.mode).or(rec.mode);
    let mode = chosen_mode.unwrap_or(Mode::Dev);
    let nats_type = g
        .nats_type
        .or(file.nats_type)
        .or(rec.nats_type)
        .unwrap_or(match mode {
            Mode::Synadia => NatsType::SynadiaCloud,
            _ => NatsType::SelfHosted,
        });
    let ephemeral = g.ephemeral || rec.ephemeral;
    let explicit_org = g
        .org
        .clone()
        .filter(|o| !o.is_empty())
        .or(file.org.clone())
        .or(rec.org.clone());
    let (org, org_defaulted) = match explicit_org {
        Some(o) => (o, false),
        None => (LOCAL_ORG.to_string(), true),
    };
    validate_org(&org)?;
    let bind = g
        .bind
        .clone()
        .or(file.nats.bind.clone())
        .or(rec.bind.clone())
        .unwrap_or_else(|| DEFAULT_BIND.to_string());
    bind.parse::<std::net::IpAddr>().map_err(|_| {
        fail(
            Kind::Config,
            format!("--bind {bind:?} is not an IP address"),
        )
        .help("use 127.0.0.1 (default), 0.0.0.0 or an address of this machine")
    })?;
    let pick =
        |flag: Option<u16>, file: Option<u16>, rec: Option<u16>, default: u16| -> Option<u16> {
            flag.or(file)
                .or(rec)
                .or(if ephemeral { None } else { Some(default) })
        };
    let port = pick(g.port, file.nats.port, rec.port, DEFAULT_PORT);
    let monitor_port = pick(
        g.monitor_port,
        file.nats.monitor_port,
        rec.monitor_port,
        DEFAULT_MONITOR_PORT,
    );
    if port.is_some() && port == monitor_port {
        return Err(fail(
            Kind::Config,
            format!(
                "--port and --monitor-port are both {}",
                port.unwrap_or_default()
            ),
        )
        .help("give them different values")
        .into());
    }
    let file_webhook_port = match file.webhook.get("port") {
        None => None,
        Some(v) => Some(
            v.as_integer()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    fail(
                        Kind::Config,
                        format!("[webhook] port = {v} is not a port number"),
                    )
                    .help("write a number from 1 to 65535, without quotes (or leave the key out: a free port is picked once and kept)")
                })?,
        ),
    };
    for (key, p) in [
        ("[nats] port", file.nats.port),
        ("[nats] monitor_port", file.nats.monitor_port),
    ] {
        if p == Some(0) {
            return Err(
                fail(Kind::Config, format!("{key} = 0 is not a port number"))
                    .help("write a number from 1 to 65535 (or leave the key out for the default)")
                    .into(),
            );
        }
    }
    let webhook_port = g.webhook_port.or(file_webhook_port).or(rec.webhook_port);
    let images = g
        .image
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k @ ("nats" | "ghboot"), v)) if !v.is_empty() => {
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err(
                fail(Kind::Config, format!("--image {i:?} is not NAME=IMAGE"))
                    .help("use --image nats=REF or --image ghboot=REF"),
            ),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nats_url = g.nats_url.clone().or(rec.nats_url.clone());
    let hub_url = g.hub_url.clone().or(rec.hub_url.clone());
    for u in [&nats_url, &hub_url].into_iter().flatten() {
        crate::target::creds::check_url(u)?;
    }
    let hub_creds = g
        .hub_creds
        .as_deref()
        .map(absolute)
        .or(rec.hub_creds.clone());
    let js_domain = g.js_domain.clone().or(rec.js_domain.clone());
    let terraform_backend = g
        .terraform_backend
        .or(file.terraform_backend)
        .unwrap_or(TerraformBackend::Local);
    Ok(Settings {
        layout: Layout::new(state_dir),
        config_file,
        mode,
        nats_type,
        mode_defaulted: chosen_mode.is_none(),
        org,
        org_defaulted,
        bind,
        port,
        monitor_port,
        webhook_port,
        nats_server: g.nats_server.clone().or(file.nats.server.clone()),
        nats_url,
        hub_url,
        hub_creds,
        js_domain,
        terraform_backend,
        non_interactive: g.non_interactive,
        ephemeral,
        detach: g.detach,
        allow_replace: g.allow_replace,
        json: g.json,
        debug,
        wait_timeout: std::time::Duration::from_secs(g.wait_timeout),
        supervisor_child: g.supervisor_child,
        images,
        mode_reason: None,
        webhook_public_url: g.webhook_url.clone().filter(|u| !u.is_empty()),
        github_api_url: g.github_api_url.clone().filter(|u| !u.is_empty()),
        github_token: env_secret("GITHUB_TOKEN"),
        webhook_secret: env_secret("GHBOOT_WEBHOOK_SECRET"),
        file,
    })
}

fn env_secret(name: &str) -> Option<crate::secret::Secret> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(crate::secret::Secret::new)
}

/// GitHub logins: alphanumerics and single hyphens, at most 39 characters.
pub fn validate_org(org: &str) -> Result<()> {
    let ok = !org.is_empty()
        && org.len() <= 39
        && org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !org.starts_with('-')
        && !org.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(fail(
            Kind::Config,
            format!("{org:?} is not a valid GitHub organisation name"),
        )
        .help("use letters, digits and single hyphens (at most 39), e.g. --org acme")
        .into())
    }
}

/// Set top-level keys in a ghboot.toml, keeping the rest of the file.
pub fn save_to_file_config(path: &Path, values: &[(&str, toml::Value)]) -> Result<()> {
    let mut table: toml::Table = match std::fs::read_to_string(path) {
        Ok(t) => toml::from_str(&t).map_err(|e| {
            fail(
                Kind::Config,
                format!("invalid config file {}: {}", path.display(), e.message()),
            )
        })?,
        Err(_) => toml::Table::new(),
    };
    for (k, v) in values {
        table.insert((*k).to_string(), v.clone());
    }
    let text = toml::to_string_pretty(&table)?;
    crate::fsutil::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
