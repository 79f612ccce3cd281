//! `ghboot up`: run the stages, then supervise what they started until told to stop.
//!
//! Three ways in: a supervisor is already alive (verify, change what a client can, exit 0); `--detach`
//! (start a detached supervisor and wait until it is ready); otherwise this process is the supervisor.

use crate::cli::GlobalArgs;
use crate::config::{self, Settings};
use crate::engine::{Ctx, Host, NeedsRestart, Role};
use crate::error::{fail, Kind};
use crate::layout::Layout;
use crate::natsd::supervise::SharedRuntime;
use crate::state::{Runtime, StageStatus, StateFile, StateLock};
use crate::ui::Reporter;
use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub async fn run(g: &GlobalArgs) -> Result<u8> {
    let dir = config::state_dir(g, true)?;
    let layout = Layout::new(dir.clone());
    let state = if dir.is_dir() {
        StateFile::load(&layout)?
    } else {
        None
    };
    let settings = config::resolve(g, dir, state.as_ref().map(|s| s.settings.clone()))?;
    let mut settings = ask_missing(settings, state.is_none())?;
    super::validate_config(&settings)?;
    let mut reporter = Reporter::new(settings.json);
    if settings.supervisor_child {
        reporter = reporter.with_progress_file(&progress_file(&layout));
    }
    if settings.mode == crate::cli::Mode::Auto {
        crate::deploy::auto::resolve(&mut settings).await;
        reporter.info(settings.mode_reason.as_deref().unwrap_or_default());
    }
    if settings.mode_defaulted && state.is_none() && !settings.supervisor_child {
        // Without a terminal nothing is asked: the default is dev, and it is said (a `--json` event too).
        if settings.json {
            println!(
                "{}",
                serde_json::json!({"event": "default", "setting": "mode", "value": settings.mode.to_string(), "why": "no --mode, BOOTSTRAP_MODE or ghboot.toml mode"})
            );
        } else {
            reporter.info(&format!(
                "no mode given: using {} (pass --mode or set BOOTSTRAP_MODE to choose)",
                settings.mode
            ));
        }
    }
    if settings.org_defaulted
        && state
            .as_ref()
            .and_then(|s| s.settings.org.as_ref())
            .is_none()
        && !settings.supervisor_child
    {
        reporter.info("no GitHub org given: using 'local' (dev needs none; pass --org or set GITHUB_ORG to talk to GitHub)");
    }
    ensure_root(&layout)?;
    // A target that keeps itself running (containers in an engine or a cluster) needs no supervisor: this
    // process runs the stages as their host and returns.
    let supervises = crate::deploy::for_settings(&settings).supervises();
    if !supervises && settings.detach {
        reporter.info(&format!(
            "--mode {}: the containers run detached in the engine; no supervisor process is needed",
            settings.mode
        ));
    }
    if supervises && !settings.supervisor_child {
        if Runtime::load(&layout).is_some_and(|r| r.supervisor_alive()) {
            match attach(&settings, state.clone(), reporter.clone()).await {
                Ok(code) => return Ok(code),
                Err(e) => match e.downcast_ref::<NeedsRestart>() {
                    Some(why) => {
                        reporter.info(&format!("{why}; stopping the running supervisor"));
                        super::down::stop(&layout).await?;
                    }
                    None => return Err(e),
                },
            }
        }
        if settings.detach {
            return spawn_detached(&settings, state, &reporter).await;
        }
    }
    host(settings, state, reporter).await
}

fn ensure_root(layout: &Layout) -> Result<()> {
    std::fs::create_dir_all(layout.root()).map_err(|e| {
        fail(
            Kind::CantCreate,
            format!("cannot create state dir {}: {e}", layout.root().display()),
        )
        .help("pass --state-dir (GHBOOT_STATE_DIR) to a writable place")
    })?;
    // 0700: logs, the local git repository and the JetStream store are nobody else's business. Best effort:
    // on a read-only state dir the lock (next) says what is wrong, with its own exit code.
    if let Err(e) = crate::platform::restrict_dir(layout.root()) {
        tracing::debug!("cannot make {} 0700: {e}", layout.root().display());
    }
    Ok(())
}

/// A supervisor is alive: verify every stage and change only what a client can change.
async fn attach(settings: &Settings, state: Option<StateFile>, reporter: Reporter) -> Result<u8> {
    let _lock = StateLock::acquire(&settings.layout)?;
    let mut ctx = Ctx {
        settings: settings.clone(),
        state: state.unwrap_or_default(),
        role: Role::Client,
        reporter,
        nats: None,
    };
    crate::stages::run(&mut ctx).await?;
    ctx.state.settings = ctx.settings.recorded();
    ctx.state.save(&ctx.settings.layout)?;
    print_summary(&ctx.settings, "ghboot is already running").await;
    print_exports(&ctx.settings).await?;
    Ok(0)
}

/// Start `ghboot up --supervisor-child` in its own session, its output in the state dir's log, and wait
/// until it reports ready (or dies, whose error is then ours).
async fn spawn_detached(
    settings: &Settings,
    state: Option<StateFile>,
    reporter: &Reporter,
) -> Result<u8> {
    let layout = &settings.layout;
    {
        let _lock = StateLock::acquire(layout)?;
        let mut state = state.unwrap_or_default();
        state.settings = settings.recorded();
        state.save(layout)?;
    }
    std::fs::create_dir_all(layout.logs_dir())?;
    let log_path = layout.log_file("supervisor");
    rotate_log(layout, "supervisor");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    // what this run does, as the supervisor reports it (not the durations of an earlier run)
    let progress_path = progress_file(layout);
    std::fs::create_dir_all(layout.run_dir())?;
    std::fs::File::create(&progress_path)?;
    let mut progress = Progress::new(progress_path);
    let exe = std::env::current_exe().context("cannot find ghboot's own executable")?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detach")
        .collect();
    args.extend([
        "--supervisor-child".into(),
        "--non-interactive".into(),
        "--state-dir".into(),
        layout.root().as_os_str().to_owned(),
    ]);
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    crate::platform::detach_child(&mut cmd);
    let mut child = cmd
        .spawn()
        .context("cannot start the detached supervisor")?;
    let pid = child.id();
    let until = Instant::now() + settings.wait_timeout;
    loop {
        progress.replay(reporter);
        if let Some(status) = child.try_wait()? {
            progress.replay(reporter);
            reporter.clear();
            let code = status.code().unwrap_or(1).clamp(1, 255) as u8;
            let tail = new_log_lines(&log_path, log_start);
            let err_line = tail
                .iter()
                .find(|l| l.starts_with("error:"))
                .cloned()
                .unwrap_or_else(|| format!("error: the supervisor exited ({status})"));
            let help = tail
                .iter()
                .find(|l| l.trim_start().starts_with("help:"))
                .cloned();
            eprintln!("{err_line}");
            if let Some(h) = help {
                eprintln!("{h}");
            }
            eprintln!("  (log: {})", log_path.display());
            return Ok(code);
        }
        if Runtime::load(layout).is_some_and(|r| r.supervisor_pid == pid && r.ready) {
            progress.replay(reporter);
            reporter.clear();
            break;
        }
        if Instant::now() > until {
            reporter.clear();
            return Err(fail(
                Kind::TempFail,
                format!(
                    "not ready within {}s; the supervisor (pid {pid}) keeps trying",
                    settings.wait_timeout.as_secs()
                ),
            )
            .help(format!(
                "see {} and `ghboot status`; `ghboot down` stops it",
                log_path.display()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    print_summary(settings, "ghboot is ready").await;
    export_for_ci(settings).await?;
    print_exports(settings).await?;
    Ok(0)
}

fn progress_file(layout: &Layout) -> std::path::PathBuf {
    layout.run_dir().join("progress.jsonl")
}

/// Follows the detached supervisor's progress file and shows each complete event once.
struct Progress {
    path: std::path::PathBuf,
    offset: u64,
}

impl Progress {
    fn new(path: std::path::PathBuf) -> Self {
        Progress { path, offset: 0 }
    }
    fn replay(&mut self, reporter: &Reporter) {
        let mut buf = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.path) {
            if f.seek(SeekFrom::Start(self.offset)).is_ok() {
                let _ = f.read_to_end(&mut buf);
            }
        }
        // only whole lines: the supervisor may be half-way through writing one
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.offset += end as u64 + 1;
        for line in buf[..end].split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                reporter.replay(&v);
            }
        }
    }
}

fn new_log_lines(path: &std::path::Path, from: u64) -> Vec<String> {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut s);
    }
    s.lines().map(str::to_string).collect()
}

/// This process supervises: run the stages, then keep everything up until a stop signal.
async fn host(settings: Settings, state: Option<StateFile>, reporter: Reporter) -> Result<u8> {
    let layout = settings.layout.clone();
    let lock = StateLock::acquire(&layout)?;
    // the log files of `ghboot logs` in every mode; the foreground run keeps warnings on the terminal
    crate::ui::logfiles::to_files(&layout, !settings.supervisor_child);
    crate::natsd::supervise::reap_strays(&layout);
    let mut state = state.unwrap_or_default();
    state.settings = settings.recorded();
    state.save(&layout)?;
    let runtime = SharedRuntime::new(
        layout.clone(),
        Runtime {
            supervisor_pid: std::process::id(),
            started_at: Some(time::OffsetDateTime::now_utc()),
            ..Default::default()
        },
    );
    runtime.update(|_| {});
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let heartbeat = crate::natsd::supervise::spawn_heartbeat(runtime.clone(), shutdown.subscribe());
    let page = crate::statuspage::Feeds::default();
    // the status page first: it shows the stages while they run
    let ui = crate::statuspage::start(
        &settings,
        &crate::statuspage::Options::from_env()?,
        page.clone(),
        shutdown.subscribe(),
    )
    .await?;
    runtime.update(|r| {
        r.components.insert(
            "ui".into(),
            serde_json::json!({"url": ui.url, "port": ui.port, "bind": ui.bind.to_string()}),
        );
    });
    let host = Host {
        runtime: runtime.clone(),
        supervisor: None,
        tasks: vec![
            ("heartbeat".into(), heartbeat),
            ("status page".into(), ui.task),
        ],
        shutdown,
        page,
    };
    let mut ctx = Ctx {
        settings,
        state,
        role: Role::Host(host),
        reporter,
        nats: None,
    };
    let result = tokio::select! {
        r = crate::stages::run(&mut ctx) => r,
        _ = crate::platform::shutdown_signal() => Err(fail(Kind::Error, "interrupted").into()),
    };
    if let Err(e) = result {
        for rec in ctx
            .state
            .stages
            .iter_mut()
            .filter(|r| r.status == StageStatus::Running)
        {
            rec.status = StageStatus::Failed;
            rec.last_error = Some(format!("{e:#}"));
            rec.runner_pid = None;
        }
        let _ = ctx.state.save(&layout);
        // an interrupted stage leaves its spinner behind otherwise
        ctx.reporter.clear();
        shutdown_host(&mut ctx).await;
        return Err(e);
    }
    ctx.state.settings = ctx.settings.recorded();
    ctx.state.save(&layout)?;
    drop(lock);
    if !crate::deploy::for_settings(&ctx.settings).supervises() {
        // nothing to supervise: the runtime file kept during the run goes with this process
        Runtime::remove(&layout);
        write_nats_context(&ctx.settings).await;
        print_summary(&ctx.settings, "ghboot is ready").await;
        export_for_ci(&ctx.settings).await?;
        print_exports(&ctx.settings).await?;
        return Ok(0);
    }
    write_nats_context(&ctx.settings).await;
    runtime.update(|r| r.ready = true);
    if !ctx.settings.supervisor_child {
        print_summary(&ctx.settings, "ghboot is ready").await;
        export_for_ci(&ctx.settings).await?;
        eprintln!("supervising in the foreground; Ctrl-C stops everything");
    }
    let budget = {
        let (sup, shutdown) = match &mut ctx.role {
            Role::Host(h) => (h.supervisor.as_ref(), h.shutdown.clone()),
            Role::Client => (None, tokio::sync::watch::channel(false).0),
        };
        if let (Some(sup), Role::Host(h)) = (sup.map(|s| s.restarts()), &mut ctx.role) {
            h.tasks.push((
                "topology-heal".into(),
                crate::topology::heal::spawn(ctx.settings.clone(), sup, shutdown.subscribe()),
            ));
        }
        let sup = match &ctx.role {
            Role::Host(h) => h.supervisor.as_ref(),
            Role::Client => None,
        };
        let json = ctx.settings.json;
        // The restart budget is a report (logged, a `--json` event, the exit code below), never a stop.
        let report = async {
            if let Some(s) = sup {
                let reason = s.failed().await;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"event": "restart_budget_exceeded", "reason": reason})
                    );
                } else {
                    eprintln!("warning: {reason}");
                }
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = crate::platform::shutdown_signal() => {}
            _ = report => {}
        }
        sup.and_then(|s| s.budget_report())
    };
    shutdown_host(&mut ctx).await;
    match budget {
        None => {
            eprintln!("stopped");
            Ok(0)
        }
        Some(reason) => Err(fail(Kind::Error, format!("stopped; earlier: {reason}"))
            .help("see `ghboot logs nats` for why nats-server kept exiting")
            .into()),
    }
}

async fn shutdown_host(ctx: &mut Ctx) {
    if let Role::Host(h) = &mut ctx.role {
        let _ = h.shutdown.send(true);
        for (name, t) in h.tasks.drain(..) {
            if tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .is_err()
            {
                tracing::warn!("{name} did not stop in time");
            }
        }
        if let Some(s) = h.supervisor.take() {
            s.stop().await;
        }
        Runtime::remove(&ctx.settings.layout);
    }
}

/// The ready summary: on stdout, or on stderr when stdout carries machine output (`--ephemeral --detach`).
pub async fn print_summary(settings: &Settings, title: &str) {
    let h = crate::stages::nats::health(settings).await;
    if settings.json {
        println!(
            "{}",
            serde_json::json!({"event": "ready", "nats_url": h.url, "monitor_url": h.monitor_url, "state_dir": settings.layout.root(), "supervisor_pid": h.supervisor_pid})
        );
        return;
    }
    let ghboot = |sub: &str| command_for(settings, sub);
    let mut rows = vec![
        ("NATS", h.url.clone().unwrap_or_default()),
        ("monitoring", h.monitor_url.clone().unwrap_or_default()),
        ("state dir", settings.layout.root().display().to_string()),
    ];
    // where the credentials are: ghboot's generated user (dev, docker) or the remote account's copy (synadia)
    let remote = crate::deploy::creds::stored_path(settings);
    // Synadia: the account's creds, even when an earlier local run left a nats-auth.json behind
    let creds = if settings.mode == crate::cli::Mode::Synadia {
        remote.exists().then_some(remote)
    } else if settings.layout.nats_auth_file().exists() {
        Some(settings.layout.nats_auth_file())
    } else {
        remote.exists().then_some(remote)
    };
    if let Some(c) = creds {
        rows.insert(2, ("credentials", c.display().to_string()));
    }
    if let Some(p) = h.supervisor_pid {
        rows.push(("supervisor", format!("pid {p}")));
    }
    rows.push(("org", settings.org.clone()));
    // the webhook stage's rows; its "forward with" commands go below the box, whole
    let mut commands: Vec<(&str, String)> = Vec::new();
    for (k, v) in crate::stages::webhooks::summary_rows(settings) {
        match k {
            "forward with" => commands.push(("forward GitHub deliveries with", v)),
            "  or" => commands.push(("  or", v)),
            _ => rows.push((k, v)),
        }
    }
    if let Some(row) = crate::commands::ui::summary_row(settings) {
        rows.push(row);
    }
    let mut head = vec![
        (
            "connect with the NATS CLI",
            format!(
                "nats --context {} stream ls",
                crate::ui::context::context_name(&settings.layout)
            ),
        ),
        ("client variables (NATS_URL, NATS_USER, ...)", ghboot("env")),
        ("logs", ghboot("logs --follow")),
    ];
    if h.supervisor_pid.is_some() {
        head.push(("stop", ghboot("down")));
    }
    head.extend(commands);
    let to_stderr = machine_stdout(settings);
    let text = crate::ui::summary(
        &format!("{title} ({} mode)", settings.mode),
        &rows,
        &head,
        crate::ui::terminal_width(to_stderr),
    );
    if to_stderr {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
}

pub use crate::ui::command_for;

/// `up --ephemeral --detach` keeps stdout for machines: `export NAME='value'` lines (for
/// `eval "$(ghboot up ...)"`), or in GitHub Actions the `::add-mask::` lines; people's output goes to stderr.
fn machine_stdout(settings: &Settings) -> bool {
    settings.ephemeral && settings.detach && !settings.json
}

/// In GitHub Actions (or any CI that sets the same files).
fn in_github_actions() -> bool {
    ["GITHUB_ENV", "GITHUB_OUTPUT"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// Outside GitHub Actions, `up --ephemeral --detach` prints the instance's variables as `export` lines, so
/// `eval "$(ghboot up --ephemeral --detach)"` points every later command of that shell at it.
pub async fn print_exports(settings: &Settings) -> Result<()> {
    if !machine_stdout(settings) || in_github_actions() {
        return Ok(());
    }
    let vars = super::env::vars(settings).await?;
    print!(
        "{}",
        super::env::render(&vars, crate::cli::EnvFormat::Shell)
    );
    use std::io::Write;
    std::io::stdout().flush()?;
    eprintln!(
        "(stdout holds the instance's variables: `eval \"$(ghboot up --ephemeral --detach ...)\"` exports them)"
    );
    Ok(())
}

/// The NATS CLI context for this instance, so `nats --context <name>` works at once.
async fn write_nats_context(settings: &Settings) {
    let Ok(vars) = super::env::vars(settings).await else {
        return;
    };
    let get = |k: &str| {
        vars.iter()
            .find(|(n, _, _)| n == k)
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default()
    };
    let (url, user, password) = (get("NATS_URL"), get("NATS_USER"), get("NATS_PASSWORD"));
    let (creds, domain) = (get("NATS_CREDS"), get("NATS_JS_DOMAIN"));
    let fields = crate::ui::context::Fields {
        url: &url,
        user: &user,
        password: &password,
        creds: &creds,
        jetstream_domain: &domain,
    };
    match crate::ui::context::write(&settings.layout, &fields) {
        Ok(p) => tracing::info!("NATS CLI context written to {}", p.display()),
        Err(e) => tracing::warn!("cannot write the NATS CLI context: {e:#}"),
    }
}

/// In GitHub Actions (or any CI that sets the same files): mask the secrets, then append what later steps
/// need to `$GITHUB_ENV` and `$GITHUB_OUTPUT`.
async fn export_for_ci(settings: &Settings) -> Result<()> {
    let env_file = std::env::var_os("GITHUB_ENV").filter(|v| !v.is_empty());
    let out_file = std::env::var_os("GITHUB_OUTPUT").filter(|v| !v.is_empty());
    if env_file.is_none() && out_file.is_none() {
        return Ok(());
    }
    let vars = super::env::vars(settings).await?;
    for (_, v, secret) in &vars {
        if *secret {
            // one line per line of the value: ::add-mask:: masks a single line
            for line in v.lines() {
                println!("::add-mask::{line}");
            }
        }
    }
    let text = super::env::render(&vars, crate::cli::EnvFormat::Github);
    for f in [env_file, out_file].into_iter().flatten() {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f)
            .map_err(|e| {
                fail(
                    Kind::CantCreate,
                    format!(
                        "cannot append to {}: {e}",
                        std::path::Path::new(&f).display()
                    ),
                )
                .help("check $GITHUB_ENV / $GITHUB_OUTPUT")
            })?;
        file.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// First run at a terminal: ask for what is missing (mode; the org when GitHub will be talked to) and save
/// the answers to ghboot.toml. Never asks without a terminal, under CI or with --non-interactive: then a
/// missing required value is an error naming the flag and variable.
fn ask_missing(mut settings: Settings, first_run: bool) -> Result<Settings> {
    let github_needed = std::env::var_os("GITHUB_TOKEN").is_some_and(|t| !t.is_empty());
    let need_org = settings.org_defaulted && github_needed;
    let ask_mode = settings.mode_defaulted && first_run;
    if !settings.interactive() {
        if need_org {
            return Err(fail(Kind::Config, "GITHUB_TOKEN is set but no GitHub organisation is given")
                .help("pass --org ORG or set GITHUB_ORG (ghboot never prompts without a terminal, under CI, or with --non-interactive)")
                .into());
        }
        return Ok(settings);
    }
    if !ask_mode && !need_org {
        return Ok(settings);
    }
    let theme = dialoguer::theme::SimpleTheme;
    let mut save: Vec<(&str, toml::Value)> = Vec::new();
    if ask_mode {
        use clap::ValueEnum;
        let modes = crate::cli::Mode::value_variants();
        let names: Vec<String> = modes.iter().map(|m| m.to_string()).collect();
        let i = dialoguer::Select::with_theme(&theme)
            .with_prompt("Deployment mode (dev runs everything on this machine)")
            .items(&names)
            .default(0)
            .interact()?;
        settings.mode = modes[i];
        settings.mode_defaulted = false;
        save.push(("mode", names[i].clone().into()));
    }
    if need_org {
        let org: String = dialoguer::Input::with_theme(&theme)
            .with_prompt("GitHub organisation")
            .validate_with(|o: &String| config::validate_org(o).map_err(|e| format!("{e:#}")))
            .interact_text()?;
        settings.org = org.clone();
        settings.org_defaulted = false;
        save.push(("org", org.into()));
    }
    let path = settings
        .config_file
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("ghboot.toml"));
    config::save_to_file_config(&path, &save)?;
    eprintln!("saved your answers to {}", path.display());
    settings.config_file = Some(std::fs::canonicalize(&path).unwrap_or(path));
    Ok(settings)
}

/// Keep one previous supervisor log: past 10 MiB the log moves to `.1` when a new supervisor starts.
/// (nats-server rotates its own log: `logfile_size_limit` in its config.)
fn rotate_log(layout: &Layout, component: &str) {
    const LIMIT: u64 = 10 * 1024 * 1024;
    let path = layout.log_file(component);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > LIMIT) {
        let _ = std::fs::rename(&path, layout.rotated_log_file(component));
    }
}
