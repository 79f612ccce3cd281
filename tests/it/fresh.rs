//! The way a new user meets ghboot (issue 15): `eval "$(ghboot up --ephemeral --detach)"` points the shell at
//! the ephemeral instance, `env` refuses an instance that is not running, `down --purge` asks at a terminal
//! before deleting one that is not ephemeral, shell completion, help that starts with the subcommand's own
//! options, and log files that exist in the foreground run too.

use crate::common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `export NAME='value'` lines, unquoted the way sh does for single quotes.
fn parse_exports(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix("export ")
                .unwrap_or_else(|| panic!("stdout holds more than export lines: {l:?}"));
            let (k, v) = rest.split_once('=').expect("NAME=value");
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .expect("single-quoted value")
                .replace(r"'\''", "'");
            (k.to_string(), v)
        })
        .collect()
}

/// A ghboot command with no instance settings from the host, private config and temp dirs under `base`.
fn bare_cmd(base: &Path) -> Command {
    let mut c = Command::new(ghboot_bin());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("GHBOOT_")
            || k.starts_with("GITHUB_")
            || k == "CI"
            || k == "BOOTSTRAP_MODE"
        {
            c.env_remove(&k);
        }
    }
    c.env("TMPDIR", base)
        .env("XDG_CONFIG_HOME", base.join("config"))
        .env("XDG_DATA_HOME", base.join("data"))
        .env("GHBOOT_NATS_SERVER", nats_server_bin())
        .stdin(Stdio::null());
    c
}

#[test]
fn ephemeral_detach_prints_exports_that_point_later_commands_at_it() {
    let base = tempfile::tempdir().expect("tmp");
    let out = bare_cmd(base.path())
        .args([
            "up",
            "--mode",
            "dev",
            "--ephemeral",
            "--detach",
            "--non-interactive",
        ])
        .output()
        .expect("run");
    let stdout = ok(&out);
    let vars = parse_exports(&stdout);
    for k in [
        "GHBOOT_STATE_DIR",
        "NATS_URL",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_CONTEXT",
        "GHBOOT_WEBHOOK_URL",
    ] {
        assert!(vars.contains_key(k), "{k} not exported:\n{stdout}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ghboot is ready"),
        "the summary goes to stderr:\n{stderr}"
    );
    let sd = PathBuf::from(&vars["GHBOOT_STATE_DIR"]);
    assert!(
        sd.starts_with(base.path()) && sd.is_dir(),
        "{}",
        sd.display()
    );

    // what `eval` does: later commands find the instance through the exported GHBOOT_STATE_DIR
    let with_env = |args: &[&str]| {
        let mut c = bare_cmd(base.path());
        c.envs(&vars).args(args);
        c.output().expect("run")
    };
    let env: serde_json::Value =
        serde_json::from_str(&ok(&with_env(&["env", "--format", "json"]))).expect("json");
    assert_eq!(
        env["GHBOOT_STATE_DIR"].as_str(),
        Some(vars["GHBOOT_STATE_DIR"].as_str())
    );
    assert_eq!(env["NATS_URL"].as_str(), Some(vars["NATS_URL"].as_str()));
    assert_eq!(
        env["NATS_CONTEXT"].as_str(),
        Some(vars["NATS_CONTEXT"].as_str())
    );

    // stopped: env says so and names the dir, instead of printing values nothing answers to
    ok(&with_env(&["down"]));
    let o = with_env(&["env"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(69), "{err}");
    assert!(
        err.contains("not running") && err.contains(&vars["GHBOOT_STATE_DIR"]),
        "{err}"
    );
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout for a stopped instance"
    );

    // no terminal: purge proceeds without asking (scripts, CI)
    ok(&with_env(&["down", "--purge"]));
    assert!(!sd.exists(), "purged");
    assert_eq!(
        with_env(&["env"]).status.code(),
        Some(66),
        "no such instance"
    );
}

/// `down --purge STATE_DIR` in a pseudo-terminal, answering `answer` (None: end of input).
/// Unix only: a pseudo-terminal through rexpect.
#[cfg(unix)]
fn purge_at_a_terminal(inst: &Instance, extra: &[&str], answer: Option<&str>) -> String {
    let base = inst.cmd();
    let mut cmd = Command::new(base.get_program());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("TERM", "dumb")
        .args(["down", "--purge"])
        .args(extra);
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).expect("spawn in a pty");
    let mut seen = String::new();
    if extra.contains(&"--yes") {
        seen.push_str(&p.exp_eof().expect("returned"));
        return seen;
    }
    let (before, m) = p.exp_regex(r"\[y/N\] ").expect("asked");
    seen.push_str(&before);
    seen.push_str(&m);
    match answer {
        Some(a) => {
            p.send_line(a).expect("answer");
        }
        None => p.send_control('d').expect("end of input"),
    }
    seen.push_str(&p.exp_eof().expect("returned"));
    seen
}

/// Unix only: the question is answered through a pseudo-terminal (rexpect).
#[cfg(unix)]
#[test]
fn purge_of_a_kept_instance_asks_at_a_terminal_and_only_yes_deletes() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let sd = inst.state_dir();
    for answer in [Some("n"), None] {
        let seen = purge_at_a_terminal(&inst, &[], answer);
        assert!(
            seen.contains(&sd.display().to_string()) && seen.contains("JetStream stream"),
            "the question names the dir and what it holds:\n{seen}"
        );
        assert!(
            sd.join("state.json").is_file(),
            "answered {answer:?}: deleted anyway"
        );
        assert_eq!(
            inst.status()["nats"]["healthy"],
            true,
            "declining leaves it running"
        );
    }
    let seen = purge_at_a_terminal(&inst, &["--yes"], None);
    assert!(!seen.contains("[y/N]"), "--yes asks nothing:\n{seen}");
    assert!(!sd.exists(), "--yes deletes");
}

#[test]
fn completion_for_bash_registers_ghboot() {
    let out = Command::new(ghboot_bin())
        .args(["completion", "bash"])
        .output()
        .expect("run");
    let script = ok(&out);
    let o = Command::new("bash")
        .args(["-c", "source /dev/stdin && complete -p ghboot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .expect("bash");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ghboot"),
        "no completion registered: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_subcommands_help_starts_with_its_own_options() {
    for (args, own) in [
        (vec!["down", "--help"], "--purge"),
        (vec!["webhook", "send", "--help"], "--event"),
    ] {
        let help = ok(&Command::new(ghboot_bin())
            .args(&args)
            .output()
            .expect("run"));
        let own_at = help.find(own).expect("own option listed");
        let global_at = help
            .find("Global options:")
            .expect("a Global options heading");
        assert!(own_at < global_at, "{args:?}:\n{help}");
        assert!(help[global_at..].contains("--state-dir"), "{help}");
        assert!(!help[..global_at].contains("--hub-creds"), "{help}");
    }
}

#[test]
fn foreground_run_writes_receiver_logs_as_plain_text_and_keeps_info_off_the_terminal() {
    let inst = Instance::new();
    let child = inst
        .cmd()
        .args(["up", "--mode", "dev", "--non-interactive"])
        .args(["--port", &inst.port.to_string()])
        .args(["--monitor-port", &inst.monitor_port.to_string()])
        .args(["--webhook-port", &inst.webhook_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // stops the foreground run however the test ends
    struct Stop(Option<std::process::Child>);
    impl Drop for Stop {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                ghboot::platform::terminate(c.id());
                let _ = c.wait();
            }
        }
    }
    let mut guard = Stop(Some(child));
    wait_for(
        Duration::from_secs(60),
        "the foreground run to be ready",
        || {
            let st = inst.run(&["status", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&st.stdout).ok()?;
            (v["nats"]["healthy"] == true && v["webhook"]["url"].is_string()).then_some(())
        },
    );
    let payload = inst.dir.path().join("ping.json");
    std::fs::write(
        &payload,
        br#"{"zen":"Keep it logically awesome.","hook_id":1}"#,
    )
    .expect("payload");
    ok(&inst.run(&[
        "webhook",
        "send",
        "--event",
        "ping",
        "--payload",
        payload.to_str().expect("utf-8"),
    ]));
    let logs = wait_for(
        Duration::from_secs(20),
        "the delivery in the receiver's log",
        || {
            let o = inst.run(&["logs", "receiver"]);
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            text.contains("delivery stored").then_some(text)
        },
    );
    assert!(!logs.contains('\x1b'), "ANSI codes in the log:\n{logs}");
    let tail = ok(&inst.run(&["logs", "receiver", "--tail", "1"]));
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(!read(&inst.state_dir().join("logs/supervisor.log")).contains('\x1b'));
    // stop, then read what the terminal (stderr) got: progress, no INFO lines
    let child = guard.0.take().expect("the foreground run");
    ghboot::platform::terminate(child.id());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nats:"), "progress shown:\n{stderr}");
    assert!(
        !stderr.contains(" INFO "),
        "INFO lines on the terminal without --debug:\n{stderr}"
    );
}
