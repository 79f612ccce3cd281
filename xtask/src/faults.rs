//! `cargo xtask faults`: the fault matrix. Each row injects one fault into a real instance (real ghboot,
//! real nats-server, real files and sockets), observes what happens, and is written to FAULTS.md with the
//! command that reproduces it. A row passes when the observed outcome is the expected one.

use crate::bench::{free_ports, http_status, Env};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Row {
    pub fault: String,
    pub expected: String,
    pub observed: String,
    pub pass: bool,
    pub reproduce: String,
}

/// A private instance for one row; stopped and removed on drop.
pub struct Inst<'a> {
    env: &'a Env,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub monitor_port: u16,
    pub webhook_port: u16,
}

impl<'a> Inst<'a> {
    pub fn new(env: &'a Env) -> Result<Self> {
        let p = free_ports(3);
        Ok(Inst {
            env,
            dir: tempfile::tempdir_in(env.tmp.path())?,
            port: p[0],
            monitor_port: p[1],
            webhook_port: p[2],
        })
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.env.ghboot);
        c.env("GHBOOT_STATE_DIR", self.state())
            .env("GHBOOT_NATS_SERVER", &self.env.nats_server)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env_remove("GITHUB_ORG")
            .env_remove("GITHUB_TOKEN")
            .env_remove("CI")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }
    pub fn up_args(&self) -> Vec<String> {
        [
            "--mode",
            "dev",
            "--detach",
            "--non-interactive",
            "--port",
            &self.port.to_string(),
            "--monitor-port",
            &self.monitor_port.to_string(),
            "--webhook-port",
            &self.webhook_port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
    pub fn up(&self) -> Output {
        self.cmd()
            .args(self.up_args())
            .output()
            .unwrap_or_else(|e| failed_output(&e.to_string()))
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .unwrap_or_else(|e| failed_output(&e.to_string()))
    }
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.run(&["status", "--json"]).stdout).unwrap_or_default()
    }
}

impl Drop for Inst<'_> {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .arg("down")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What a command that could not even start reports: exit code 1 and the reason on stderr.
pub(crate) fn failed_output(e: &str) -> Output {
    // std has no portable constructor for an exit status; the raw encodings differ (wait status vs code)
    #[cfg(unix)]
    let status = {
        use std::os::unix::process::ExitStatusExt;
        std::process::ExitStatus::from_raw(1 << 8)
    };
    #[cfg(windows)]
    let status = {
        use std::os::windows::process::ExitStatusExt;
        std::process::ExitStatus::from_raw(1)
    };
    Output {
        status,
        stdout: vec![],
        stderr: e.as_bytes().to_vec(),
    }
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub(crate) fn first_err(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr);
    e.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| e.lines().last().unwrap_or(""))
        .chars()
        .take(140)
        .collect()
}

pub(crate) fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false)
}

pub(crate) fn wait(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn done_stages(st: &serde_json::Value) -> usize {
    st["stages"]
        .as_array()
        .map(|a| a.iter().filter(|s| s["status"] == "done").count())
        .unwrap_or(0)
}

/// Expected exit code and message fragment of a CLI error.
fn expect_error(
    fault: &str,
    reproduce: &str,
    o: &Output,
    want_code: i32,
    want_text: &str,
    extra_ok: bool,
) -> Row {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let pass = code(o) == want_code && err.contains(want_text) && err.contains("help:") && extra_ok;
    Row {
        fault: fault.into(),
        expected: format!("exit {want_code}, a one-line cause naming `{want_text}` and a `help:` line; nothing lost"),
        observed: format!("exit {}: {}", code(o), first_err(o)),
        pass,
        reproduce: reproduce.into(),
    }
}

pub fn matrix(env: &Env) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for stage in [
        "prerequisites",
        "state-backend",
        "nats",
        "webhooks",
        "controller",
        "self-management",
    ] {
        rows.push(kill_after_stage(env, stage)?);
    }
    rows.push(kill_nats_server(env)?);
    rows.push(kill_supervisor(env)?);
    rows.push(kill_foreground(env)?);
    rows.push(corrupt_state(
        env,
        "{ not json",
        "corrupt state file (not JSON)",
    )?);
    rows.push(corrupt_state(
        env,
        r#"{"version": 99, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}"#,
        "state file from a newer ghboot (version 99)",
    )?);
    rows.push(port_stolen(env)?);
    rows.push(state_dir_full(env)?);
    rows.push(state_dir_read_only(env)?);
    rows.extend(cli_bad_inputs(env)?);
    Ok(rows)
}

fn kill_after_stage(env: &Env, stage: &str) -> Result<Row> {
    let i = Inst::new(env)?;
    let crashed = i
        .cmd()
        .env("GHBOOT_FAULT_KILL_AFTER", stage)
        .args(i.up_args().iter().filter(|a| *a != "--detach"))
        .output()?;
    let recorded = i.status()["stages"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["name"] == stage)
                .map(|s| s["status"] == "done")
        })
        .unwrap_or(false);
    let rerun = i.up();
    let st = i.status();
    let healthy = st["nats"]["healthy"] == true;
    let n = done_stages(&st);
    Ok(Row {
        fault: format!("SIGKILL of ghboot right after stage `{stage}` is persisted"),
        expected: "the stage is recorded done; a rerun re-verifies it, resumes, ends healthy"
            .into(),
        observed: format!(
            "killed: {}; recorded: {recorded}; rerun exit {}, healthy={healthy}, {n} stages done",
            !crashed.status.success(),
            code(&rerun)
        ),
        pass: !crashed.status.success() && recorded && rerun.status.success() && healthy && n == 6,
        reproduce: format!(
            "GHBOOT_FAULT_KILL_AFTER={stage} ghboot --mode dev; ghboot --mode dev --detach"
        ),
    })
}

fn kill_nats_server(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let pid = i.status()["nats"]["pid"].as_u64().unwrap_or(0);
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()?;
    let t = Instant::now();
    let back = wait(Duration::from_secs(30), || {
        let st = i.status();
        st["nats"]["healthy"] == true && st["nats"]["pid"].as_u64().is_some_and(|p| p != pid)
    });
    Ok(Row {
        fault: "SIGKILL of the supervised nats-server".into(),
        expected: "the supervisor restarts it (first attempt at once, then capped backoff; it never gives up) on the same ports and store".into(),
        observed: format!("up exit {}; healthy again with a new pid: {back} after {} ms", code(&up), t.elapsed().as_millis()),
        pass: up.status.success() && back,
        reproduce: "ghboot --mode dev --detach; kill -9 $(ghboot status --json | jq .nats.pid); ghboot status".into(),
    })
}

fn kill_supervisor(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let st = i.status();
    let (sup, nats) = (
        st["supervisor"]["pid"].as_u64().unwrap_or(0),
        st["nats"]["pid"].as_u64().unwrap_or(0),
    );
    Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()?;
    let orphan_gone = wait(Duration::from_secs(10), || !alive(nats));
    let unhealthy = i.status()["nats"]["healthy"] == false;
    let rerun = i.up();
    let healthy = i.status()["nats"]["healthy"] == true;
    Ok(Row {
        fault: "SIGKILL of the detached supervisor".into(),
        expected: "its nats-server dies with it (no orphan); status says unhealthy at once; a rerun converges".into(),
        observed: format!(
            "up exit {}; nats-server gone: {orphan_gone}; status unhealthy: {unhealthy}; rerun exit {}, healthy={healthy}",
            code(&up),
            code(&rerun)
        ),
        pass: up.status.success() && orphan_gone && unhealthy && rerun.status.success() && healthy,
        reproduce: "ghboot --mode dev --detach; kill -9 $(ghboot status --json | jq .supervisor.pid); ghboot status".into(),
    })
}

fn kill_foreground(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let args: Vec<String> = i
        .up_args()
        .into_iter()
        .filter(|a| a != "--detach")
        .collect();
    let mut child = i
        .cmd()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut nats = 0;
    let ready = wait(Duration::from_secs(30), || {
        let st = i.status();
        nats = st["nats"]["pid"].as_u64().unwrap_or(0);
        st["nats"]["healthy"] == true
    });
    child.kill()?;
    let _ = child.wait();
    let gone = wait(Duration::from_secs(10), || !alive(nats));
    Ok(Row {
        fault: "SIGKILL of a foreground `ghboot --mode dev`".into(),
        expected: "no nats-server outlives it (parent-death signal)".into(),
        observed: format!("ready: {ready}; nats-server {nats} gone: {gone}"),
        pass: ready && gone,
        reproduce: "ghboot --mode dev & sleep 2; kill -9 %1; pgrep nats-server".into(),
    })
}

fn corrupt_state(env: &Env, content: &str, fault: &str) -> Result<Row> {
    let i = Inst::new(env)?;
    std::fs::create_dir_all(i.state())?;
    let path = i.state().join("state.json");
    std::fs::write(&path, content)?;
    let o = i.up();
    let untouched = std::fs::read_to_string(&path)? == content;
    Ok(expect_error(
        fault,
        "echo '{ not json' > $STATE/state.json; ghboot --mode dev --detach",
        &o,
        65,
        "state file",
        untouched,
    ))
}

fn port_stolen(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let plan = i
        .cmd()
        .args([
            "plan",
            "--port",
            &i.port.to_string(),
            "--monitor-port",
            &i.monitor_port.to_string(),
            "--mode",
            "dev",
        ])
        .output()?;
    let _thief = std::net::TcpListener::bind(("127.0.0.1", i.port))?;
    let o = i.up();
    let mut r = expect_error(
        "port taken between `plan` and `up`",
        "ghboot plan --port P; nc -l P & ghboot --mode dev --port P",
        &o,
        69,
        &i.port.to_string(),
        code(&plan) == 2,
    );
    r.observed = format!(
        "plan exit {} (changes pending, port free); then {}",
        code(&plan),
        r.observed
    );
    Ok(r)
}

/// Mount a small tmpfs (root only); None when this machine cannot.
fn tmpfs(dir: &Path, size: &str) -> Option<()> {
    std::fs::create_dir_all(dir).ok()?;
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .ok()?
        .success()
        .then_some(())
}

fn umount(dir: &Path) {
    let _ = Command::new("umount").arg("-l").arg(dir).status();
}

/// A ghboot.toml with a small topology, so that a small filesystem is enough for a first run.
fn small_topology(i: &Inst) -> Result<()> {
    let t =
        "[topology.events]\nmax_bytes = \"16MiB\"\n[topology.dead_letter]\nmax_bytes = \"16MiB\"\n[topology.ghboot_events]\nmax_bytes = \"16MiB\"\n[topology.locks]\nmax_bytes = \"8MiB\"\n[topology.state]\nmax_bytes = \"8MiB\"\n[topology.workflows]\nmax_bytes = \"8MiB\"\n";
    Ok(std::fs::write(i.dir.path().join("ghboot.toml"), t)?)
}

/// A state dir on its own small tmpfs (`dir` under the row's temp dir), bootstrapped once and stopped again:
/// (mount point, state dir, the first `up`). None when this machine cannot mount (not root).
fn bootstrapped_on_tmpfs(i: &Inst, dir: &str) -> Result<Option<(PathBuf, PathBuf, Output)>> {
    small_topology(i)?;
    let mnt = i.dir.path().join(dir);
    if tmpfs(&mnt, "400m").is_none() {
        return Ok(None);
    }
    let state = mnt.join("state");
    let first = i
        .cmd()
        .env("GHBOOT_STATE_DIR", &state)
        .args(i.up_args())
        .output()?;
    i.cmd()
        .env("GHBOOT_STATE_DIR", &state)
        .arg("down")
        .output()?;
    Ok(Some((mnt, state, first)))
}

fn not_run(fault: &str, reproduce: &str) -> Row {
    Row {
        fault: fault.into(),
        expected: "clear error".into(),
        observed: "not run: cannot mount tmpfs here (needs root)".into(),
        pass: false,
        reproduce: reproduce.into(),
    }
}

fn state_dir_full(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let reproduce = "mount -t tmpfs -o size=400m tmpfs $STATE; ghboot --mode dev --state-dir $STATE; ghboot down; cat /dev/zero > $STATE/fill; ghboot --mode dev --state-dir $STATE";
    let Some((mnt, state, first)) = bootstrapped_on_tmpfs(&i, "small")? else {
        return Ok(not_run("state dir on a full filesystem", reproduce));
    };
    let before = std::fs::read(state.join("state.json")).unwrap_or_default();
    let fill = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat /dev/zero > '{}' 2>/dev/null; true",
            mnt.join("fill").display()
        ))
        .status();
    let o = i
        .cmd()
        .env("GHBOOT_STATE_DIR", &state)
        .args(i.up_args())
        .output()?;
    let after = std::fs::read(state.join("state.json")).unwrap_or_default();
    let intact = !before.is_empty() && serde_json::from_slice::<serde_json::Value>(&after).is_ok();
    let _ = i.cmd().env("GHBOOT_STATE_DIR", &state).arg("down").output();
    umount(&mnt);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    Ok(Row {
        fault: "state dir on a full filesystem".into(),
        expected:
            "up fails with a clear error naming the cause; state.json stays a whole, valid file"
                .into(),
        observed: format!(
            "first up exit {}; fill ok {}; up on full disk exit {}: {}; state.json valid: {intact}",
            code(&first),
            fill.is_ok(),
            code(&o),
            first_err(&o)
        ),
        pass: first.status.success()
            && !o.status.success()
            && err.contains("help:")
            && err.contains("free")
            && intact,
        reproduce: reproduce.into(),
    })
}

fn state_dir_read_only(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let reproduce =
        "mount -t tmpfs tmpfs $STATE; ghboot --mode dev --state-dir $STATE; mount -o remount,ro $STATE; ghboot --mode dev --state-dir $STATE";
    let Some((mnt, state, first)) = bootstrapped_on_tmpfs(&i, "ro")? else {
        return Ok(not_run("read-only state dir", reproduce));
    };
    let before = std::fs::read(state.join("state.json")).unwrap_or_default();
    Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()?;
    let o = i
        .cmd()
        .env("GHBOOT_STATE_DIR", &state)
        .args(i.up_args())
        .output()?;
    let after = std::fs::read(state.join("state.json")).unwrap_or_default();
    umount(&mnt);
    Ok(expect_error(
        "read-only state dir",
        reproduce,
        &o,
        73,
        "lock",
        first.status.success() && before == after && !o.status.success(),
    ))
}

fn cli_bad_inputs(env: &Env) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let i = Inst::new(env)?;
    let o = i.run(&["--mode", "nonsense"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    rows.push(Row {
        fault: "invalid `--mode` value".into(),
        expected: "exit 64 (usage), the valid values listed".into(),
        observed: format!("exit {}: {}", code(&o), err.lines().next().unwrap_or("")),
        pass: code(&o) == 64 && err.contains("dev") && err.contains("kubernetes"),
        reproduce: "ghboot --mode nonsense".into(),
    });
    let o = i.run(&["--mode", "dev", "--org", "not valid!", "--detach"]);
    rows.push(expect_error(
        "invalid GitHub org name",
        "ghboot --org 'not valid!'",
        &o,
        78,
        "organisation",
        true,
    ));
    std::fs::write(i.dir.path().join("bad.toml"), "org = [")?;
    let o = i.cmd().args(["--config", "bad.toml", "plan"]).output()?;
    rows.push(expect_error(
        "unparsable ghboot.toml",
        "echo 'org = [' > ghboot.toml; ghboot plan",
        &o,
        78,
        "config file",
        true,
    ));
    std::fs::write(i.dir.path().join("typo.toml"), "orgg = \"acme\"")?;
    let o = i
        .cmd()
        .args(["--config", "typo.toml", "--mode", "dev", "--detach"])
        .output()?;
    rows.push(expect_error(
        "unknown key in ghboot.toml (typo)",
        "echo 'orgg = \"acme\"' > ghboot.toml; ghboot up",
        &o,
        78,
        "orgg",
        true,
    ));
    let o = i
        .cmd()
        .env("GHBOOT_STATE_DIR", i.dir.path().join("missing"))
        .args(["status", "--json"])
        .output()?;
    rows.push(expect_error(
        "`status` on a state dir that does not exist",
        "ghboot status --state-dir /nonexistent",
        &o,
        66,
        "does not exist",
        true,
    ));
    let o = i
        .cmd()
        .env("GHBOOT_NATS_SERVER", i.dir.path().join("nope"))
        .args(i.up_args())
        .output()?;
    rows.push(expect_error(
        "nats-server missing",
        "ghboot --mode dev --nats-server /nonexistent",
        &o,
        69,
        "nats-server",
        true,
    ));
    let old = i.dir.path().join("old-nats-server");
    std::fs::write(&old, "#!/bin/sh\necho 'nats-server: v2.9.10'\n")?;
    Command::new("chmod").arg("755").arg(&old).status()?;
    let o = i
        .cmd()
        .env("GHBOOT_NATS_SERVER", &old)
        .args(i.up_args())
        .output()?;
    rows.push(expect_error(
        "nats-server too old (2.9.10)",
        "ghboot --mode dev --nats-server ./nats-server-2.9",
        &o,
        69,
        "2.9.10",
        true,
    ));
    std::fs::write(i.dir.path().join("file"), "x")?;
    let o = i
        .cmd()
        .env("GHBOOT_STATE_DIR", i.dir.path().join("file/state"))
        .args(i.up_args())
        .output()?;
    rows.push(expect_error(
        "state dir cannot be created (a file is in the way)",
        "touch f; ghboot --mode dev --state-dir f/state",
        &o,
        73,
        "state dir",
        true,
    ));
    // a second ghboot while one holds the lock: hold it with flock(1) for the duration
    std::fs::create_dir_all(i.state())?;
    let lock = i.state().join("lock");
    let mut holder = Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", "echo 4242 > \"$1\"; sleep 30", "sh"])
        .arg(&lock)
        .spawn()
        .context("flock")?;
    wait(Duration::from_secs(5), || {
        std::fs::read_to_string(&lock)
            .map(|s| s.contains("4242"))
            .unwrap_or(false)
    });
    let o = i.up();
    let _ = holder.kill();
    let _ = holder.wait();
    rows.push(expect_error(
        "a second ghboot while another changes the state",
        "flock $STATE/lock sleep 60 & ghboot --mode dev",
        &o,
        75,
        "4242",
        true,
    ));
    let _ = http_status(i.monitor_port, "/");
    Ok(rows)
}

pub fn render(rows: &[Row], header: &str) -> String {
    let passed = rows.iter().filter(|r| r.pass).count();
    let mut s = format!("# Fault matrix\n\n{header}\n{passed} of {} rows behave as expected. Regenerate with `cargo xtask faults` (as root: some rows mount a small tmpfs).\n\n", rows.len());
    s.push_str("| fault | expected | observed | ok | reproduce |\n|---|---|---|---|---|\n");
    for r in rows {
        let esc = |t: &str| t.replace('|', "\\|").replace('\n', " ");
        s.push_str(&format!(
            "| {} | {} | {} | {} | `{}` |\n",
            esc(&r.fault),
            esc(&r.expected),
            esc(&r.observed),
            if r.pass { "✓" } else { "✗" },
            esc(&r.reproduce)
        ));
    }
    s
}
