//! Settings, resolved in one place: flags > environment > `ghboot.toml` > settings recorded by the `up`
//! that made this instance > defaults. Everything downstream reads [`Settings`], never flags or env.

use crate::cli::GlobalArgs;
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terraform_backend: Option<TerraformBackend>,
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
    /// Why `--mode auto` chose the mode it did (set by `deploy::auto`)
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
            terraform_backend: Some(self.terraform_backend),
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

/// The one precedence rule of every setting: the flag (or its environment variable: clap merges them), then
/// `ghboot.toml`, then what the `up` that made this instance recorded. `None`: use the field's default.
/// (A field without a `ghboot.toml` key passes `None` as `file`.)
fn layered<T>(flag: Option<T>, file: Option<T>, recorded: Option<T>) -> Option<T> {
    flag.or(file).or(recorded)
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
    let chosen_mode = layered(g.mode, file.mode, rec.mode);
    let mode = chosen_mode.unwrap_or(Mode::Dev);
    let nats_type = layered(g.nats_type, file.nats_type, rec.nats_type).unwrap_or(match mode {
        Mode::Synadia => NatsType::SynadiaCloud,
        _ => NatsType::SelfHosted,
    });
    let ephemeral = g.ephemeral || rec.ephemeral;
    let explicit_org = layered(
        g.org.clone().filter(|o| !o.is_empty()),
        file.org.clone(),
        rec.org.clone(),
    );
    let (org, org_defaulted) = match explicit_org {
        Some(o) => (o, false),
        None => (LOCAL_ORG.to_string(), true),
    };
    validate_org(&org)?;
    let bind = layered(g.bind.clone(), file.nats.bind.clone(), rec.bind.clone())
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
            layered(flag, file, rec).or(if ephemeral { None } else { Some(default) })
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
    let webhook_port = layered(g.webhook_port, file_webhook_port, rec.webhook_port);
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
    let nats_url = layered(g.nats_url.clone(), None, rec.nats_url.clone());
    let hub_url = layered(g.hub_url.clone(), None, rec.hub_url.clone());
    for u in [&nats_url, &hub_url].into_iter().flatten() {
        check_url(u)?;
    }
    let hub_creds = layered(
        g.hub_creds.as_deref().map(absolute),
        None,
        rec.hub_creds.clone(),
    );
    let js_domain = layered(g.js_domain.clone(), None, rec.js_domain.clone());
    let terraform_backend = layered(
        g.terraform_backend,
        file.terraform_backend,
        rec.terraform_backend,
    )
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
        nats_server: layered(g.nats_server.clone(), file.nats.server.clone(), None),
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

/// A remote URL must not carry credentials (they would land in the state file) and must be NATS.
pub fn check_url(u: &str) -> Result<()> {
    for part in u.split(',') {
        let parsed = url::Url::parse(part.trim()).map_err(|e| {
            fail(Kind::Config, format!("{part:?} is not a URL: {e}"))
                .help("e.g. tls://connect.ngs.global or nats://host:4222")
        })?;
        if !matches!(parsed.scheme(), "nats" | "tls" | "nats-leaf" | "ws" | "wss") {
            return Err(fail(
                Kind::Config,
                format!("{part:?}: scheme {} is not a NATS scheme", parsed.scheme()),
            )
            .help("use nats://, tls://, nats-leaf://, ws:// or wss://")
            .into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(fail(Kind::Config, "the NATS URL carries credentials, which would be stored in plain text")
                .help("remove user:password@ from the URL and give a .creds file (SYNADIA_CREDS_FILE or --hub-creds)")
                .into());
        }
    }
    Ok(())
}

// ---- Domain values of the settings (clap parses them as flag values: `ValueEnum`). ----

#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Dev,
    Docker,
    Kubernetes,
    Synadia,
    Auto,
}

#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NatsType {
    #[value(name = "self_hosted", alias = "self-hosted")]
    SelfHosted,
    #[value(name = "self_hosted_cluster", alias = "self-hosted-cluster")]
    SelfHostedCluster,
    #[value(name = "synadia_cloud", alias = "synadia-cloud")]
    SynadiaCloud,
    Hybrid,
}

#[derive(
    clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TerraformBackend {
    Local,
    S3,
    Gcs,
}

macro_rules! display_as_value {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match clap::ValueEnum::to_possible_value(self) {
                    Some(v) => f.write_str(v.get_name()),
                    None => write!(f, "{self:?}"),
                }
            }
        }
    )*};
}
display_as_value!(Mode, NatsType, TerraformBackend);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The fields whose precedence the table checks, as text.
    fn view(s: &Settings) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("mode", s.mode.to_string()),
            ("nats_type", s.nats_type.to_string()),
            ("org", s.org.clone()),
            ("bind", s.bind.clone()),
            ("port", format!("{:?}", s.port)),
            ("monitor_port", format!("{:?}", s.monitor_port)),
            ("webhook_port", format!("{:?}", s.webhook_port)),
            ("nats_url", format!("{:?}", s.nats_url)),
            ("js_domain", format!("{:?}", s.js_domain)),
            ("terraform_backend", s.terraform_backend.to_string()),
        ])
    }

    /// A `ghboot.toml` and a recorded instance that each set every field they have a key for, differently.
    fn sources(dir: &Path) -> (PathBuf, Recorded) {
        let file = dir.join("ghboot.toml");
        std::fs::write(
            &file,
            "org = \"from-file\"\nmode = \"docker\"\nnats_type = \"hybrid\"\nterraform_backend = \"s3\"\n\
             [nats]\nport = 5001\nmonitor_port = 5002\nbind = \"127.0.0.2\"\n[webhook]\nport = 5003\n",
        )
        .expect("write ghboot.toml");
        let rec = Recorded {
            mode: Some(Mode::Kubernetes),
            nats_type: Some(NatsType::SelfHostedCluster),
            org: Some("from-rec".into()),
            port: Some(6001),
            monitor_port: Some(6002),
            webhook_port: Some(6003),
            bind: Some("127.0.0.3".into()),
            nats_url: Some("nats://rec:4222".into()),
            js_domain: Some("rec".into()),
            terraform_backend: Some(TerraformBackend::Gcs),
            ..Default::default()
        };
        (file, rec)
    }

    fn flags(config: Option<PathBuf>) -> GlobalArgs {
        GlobalArgs {
            config,
            mode: Some(Mode::Synadia),
            nats_type: Some(NatsType::SynadiaCloud),
            org: Some("from-flag".into()),
            port: Some(7001),
            monitor_port: Some(7002),
            webhook_port: Some(7003),
            bind: Some("127.0.0.4".into()),
            nats_url: Some("nats://flag:4222".into()),
            js_domain: Some("flag".into()),
            terraform_backend: Some(TerraformBackend::Local),
            ..Default::default()
        }
    }

    fn expect(rows: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
        rows.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn flags_win_over_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, rec) = sources(dir.path());
        let s = resolve(&flags(Some(file)), dir.path().into(), Some(rec)).expect("resolve");
        assert_eq!(
            view(&s),
            expect(&[
                ("mode", "synadia"),
                ("nats_type", "synadia_cloud"),
                ("org", "from-flag"),
                ("bind", "127.0.0.4"),
                ("port", "Some(7001)"),
                ("monitor_port", "Some(7002)"),
                ("webhook_port", "Some(7003)"),
                ("nats_url", "Some(\"nats://flag:4222\")"),
                ("js_domain", "Some(\"flag\")"),
                ("terraform_backend", "local"),
            ])
        );
        assert!(!s.mode_defaulted && !s.org_defaulted);
    }

    #[test]
    fn the_file_wins_over_the_record_and_fields_without_a_file_key_fall_to_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, rec) = sources(dir.path());
        let g = GlobalArgs {
            config: Some(file),
            ..Default::default()
        };
        let s = resolve(&g, dir.path().into(), Some(rec)).expect("resolve");
        assert_eq!(
            view(&s),
            expect(&[
                ("mode", "docker"),
                ("nats_type", "hybrid"),
                ("org", "from-file"),
                ("bind", "127.0.0.2"),
                ("port", "Some(5001)"),
                ("monitor_port", "Some(5002)"),
                ("webhook_port", "Some(5003)"),
                ("nats_url", "Some(\"nats://rec:4222\")"),
                ("js_domain", "Some(\"rec\")"),
                ("terraform_backend", "s3"),
            ])
        );
    }

    #[test]
    fn the_record_wins_over_defaults_for_every_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, rec) = sources(dir.path());
        let s = resolve(&GlobalArgs::default(), dir.path().join("i"), Some(rec)).expect("resolve");
        assert_eq!(
            view(&s),
            expect(&[
                ("mode", "kubernetes"),
                ("nats_type", "self_hosted_cluster"),
                ("org", "from-rec"),
                ("bind", "127.0.0.3"),
                ("port", "Some(6001)"),
                ("monitor_port", "Some(6002)"),
                ("webhook_port", "Some(6003)"),
                ("nats_url", "Some(\"nats://rec:4222\")"),
                ("js_domain", "Some(\"rec\")"),
                ("terraform_backend", "gcs"),
            ])
        );
        assert!(!s.mode_defaulted);
    }

    #[test]
    fn defaults_when_nothing_is_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = resolve(&GlobalArgs::default(), dir.path().join("i"), None).expect("resolve");
        assert_eq!(
            view(&s),
            expect(&[
                ("mode", "dev"),
                ("nats_type", "self_hosted"),
                ("org", LOCAL_ORG),
                ("bind", DEFAULT_BIND),
                ("port", "Some(4222)"),
                ("monitor_port", "Some(8222)"),
                ("webhook_port", "None"),
                ("nats_url", "None"),
                ("js_domain", "None"),
                ("terraform_backend", "local"),
            ])
        );
        assert!(s.mode_defaulted && s.org_defaulted);
    }

    #[test]
    fn ephemeral_leaves_unset_ports_to_be_picked_and_synadia_defaults_its_nats_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let g = GlobalArgs {
            ephemeral: true,
            mode: Some(Mode::Synadia),
            ..Default::default()
        };
        let s = resolve(&g, dir.path().join("i"), None).expect("resolve");
        assert_eq!((s.port, s.monitor_port), (None, None));
        assert_eq!(s.nats_type, NatsType::SynadiaCloud);
    }

    #[test]
    fn what_up_records_resolves_to_the_same_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = resolve(&flags(None), dir.path().into(), None).expect("resolve");
        let again = resolve(
            &GlobalArgs::default(),
            dir.path().into(),
            Some(first.recorded()),
        )
        .expect("resolve");
        assert_eq!(view(&again), view(&first));
        assert_eq!(again.recorded(), first.recorded());
    }

    #[test]
    fn bad_values_are_config_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kind = |g: GlobalArgs| {
            let e = resolve(&g, dir.path().join("i"), None).expect_err("must refuse");
            crate::error::find_failure(&e).map(|f| f.kind)
        };
        let same_ports = GlobalArgs {
            port: Some(5000),
            monitor_port: Some(5000),
            ..Default::default()
        };
        assert_eq!(kind(same_ports), Some(Kind::Config));
        let bad_bind = GlobalArgs {
            bind: Some("localhost".into()),
            ..Default::default()
        };
        assert_eq!(kind(bad_bind), Some(Kind::Config));
        let creds_in_url = GlobalArgs {
            nats_url: Some("nats://u:p@host:4222".into()),
            ..Default::default()
        };
        assert_eq!(kind(creds_in_url), Some(Kind::Config));
        let bad_image = GlobalArgs {
            image: vec!["nats".into()],
            ..Default::default()
        };
        assert_eq!(kind(bad_image), Some(Kind::Config));
        let unknown_key = dir.path().join("bad.toml");
        std::fs::write(&unknown_key, "colour = \"blue\"\n").expect("write");
        let typo = GlobalArgs {
            config: Some(unknown_key),
            ..Default::default()
        };
        assert_eq!(kind(typo), Some(Kind::Config));
    }
}
