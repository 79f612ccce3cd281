//! CI use and the operator's experience (issue 7): ephemeral instances, GitHub env files, the NATS CLI
//! context, JSON progress events, the bootstrap scripts and the composite action.

use crate::common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

/// Parse a GitHub env file as the runner does: `NAME=value` or `NAME<<DELIM` ... `DELIM`.
fn parse_github_file(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut lines = text.split('\n');
    while let Some(l) = lines.next() {
        if l.is_empty() {
            continue;
        }
        if let Some((k, d)) = l.split_once("<<") {
            let mut v = Vec::new();
            for x in lines.by_ref() {
                if x == d {
                    break;
                }
                v.push(x);
            }
            out.insert(k.to_string(), v.join("\n"));
        } else {
            let (k, v) = l.split_once('=').expect("NAME=value line");
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

#[test]
fn github_env_lines_follow_githubs_format() {
    use ghboot::commands::env::github_line;
    assert_eq!(github_line("A", "b c"), "A=b c\n");
    let multi = github_line("CREDS", "line1\nline2");
    let parsed = parse_github_file(&multi);
    assert_eq!(parsed["CREDS"], "line1\nline2");
    let (head, _) = multi.split_once('\n').expect("header line");
    let delim = head.split_once("<<").expect("heredoc").1;
    assert!(delim.starts_with("ghadelimiter_") && !"line1\nline2".contains(delim));
}

#[tokio::test(flavor = "multi_thread")]
async fn ephemeral_ci_run_exports_masks_connects_and_purges() {
    let base = tempfile::tempdir().expect("tmp");
    let genv = base.path().join("genv");
    let gout = base.path().join("gout");
    std::fs::write(&genv, "").expect("w");
    std::fs::write(&gout, "").expect("w");
    let cfg = base.path().join("config");
    let run = |args: &[&str], sd: Option<&Path>| {
        let mut c = std::process::Command::new(ghboot_bin());
        c.env_remove("GHBOOT_STATE_DIR")
            .env("TMPDIR", base.path())
            .env("XDG_CONFIG_HOME", &cfg)
            .env("GHBOOT_NATS_SERVER", nats_server_bin())
            .env("CI", "true")
            .env("GITHUB_ENV", &genv)
            .env("GITHUB_OUTPUT", &gout)
            .stdin(Stdio::null())
            .args(args);
        if let Some(sd) = sd {
            c.arg("--state-dir").arg(sd);
        }
        c.output().expect("run")
    };
    let out = run(&["--mode", "dev", "--ephemeral", "--detach"], None);
    let stdout = ok(&out);
    let env = parse_github_file(&read(&genv));
    let outputs = parse_github_file(&read(&gout));
    let pw = env.get("NATS_PASSWORD").expect("password exported").clone();
    assert_eq!(outputs.get("NATS_URL"), env.get("NATS_URL"));
    assert!(
        stdout.lines().any(|l| l == format!("::add-mask::{pw}")),
        "password masked"
    );
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        all.lines()
            .filter(|l| l.contains(&pw))
            .all(|l| l.starts_with("::add-mask::")),
        "password printed in the clear"
    );
    let sd = std::path::PathBuf::from(env.get("GHBOOT_STATE_DIR").expect("state dir exported"));
    assert!(
        sd.starts_with(base.path()),
        "fresh temporary state dir under TMPDIR"
    );
    let ctx_dir = cfg.join("nats/context");
    let ctx_file = ctx_dir.join(format!(
        "{}.json",
        env.get("NATS_CONTEXT").expect("context name")
    ));
    let ctx: serde_json::Value = serde_json::from_str(&read(&ctx_file)).expect("context is JSON");
    assert_eq!(ctx["url"].as_str(), env.get("NATS_URL").map(String::as_str));
    assert_eq!(ghboot::platform::file_mode(&ctx_file), Some(0o600));

    // connect with exactly what was exported
    let nc =
        async_nats::ConnectOptions::with_user_and_password(env["NATS_USER"].clone(), pw.clone())
            .connect(env["NATS_URL"].as_str())
            .await
            .expect("connect");
    let js = async_nats::jetstream::new(nc.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "CI".into(),
        subjects: vec!["ci.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    js.publish("ci.x", "1".into())
        .await
        .expect("pub")
        .await
        .expect("ack");
    drop(nc);

    let port: u16 = env["NATS_URL"]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    ok(&run(&["down", "--purge"], Some(&sd)));
    assert!(!sd.exists(), "state dir left after purge");
    assert!(!ctx_file.exists(), "context left after purge");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
}

#[test]
fn two_ephemeral_instances_side_by_side_do_not_collide() {
    let base = tempfile::tempdir().expect("tmp");
    let up = || {
        let out = std::process::Command::new(ghboot_bin())
            .env_remove("GHBOOT_STATE_DIR")
            .env("TMPDIR", base.path())
            .env("XDG_CONFIG_HOME", base.path().join("config"))
            .env("GHBOOT_NATS_SERVER", nats_server_bin())
            .args(["--mode", "dev", "--ephemeral", "--detach", "--json"])
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let stdout = ok(&out);
        // --json: every stdout line is a JSON event; the last one says ready
        let events: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
            .collect();
        let ready = events
            .iter()
            .find(|e| e["event"] == "ready")
            .expect("ready event")
            .clone();
        ready
    };
    let a = up();
    let b = up();
    assert_ne!(a["nats_url"], b["nats_url"]);
    assert_ne!(a["state_dir"], b["state_dir"]);
    for r in [&a, &b] {
        let sd = r["state_dir"].as_str().expect("dir");
        let out = std::process::Command::new(ghboot_bin())
            .args(["down", "--purge", "--state-dir", sd])
            .output()
            .expect("down");
        ok(&out);
    }
}

#[test]
fn json_progress_is_one_event_per_line_with_durations() {
    let inst = Instance::new();
    let out = inst.up(&["--json"]);
    let stdout = ok(&out);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "stage_finished")
        .collect();
    assert!(
        finished
            .iter()
            .any(|e| e["stage"] == "nats" && e["duration_ms"].is_u64()),
        "{stdout}"
    );
}

#[test]
fn bootstrap_sh_is_shellcheck_clean_and_runs_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("bootstrap/bootstrap.sh");
    if let Some(sc) = tool("shellcheck") {
        let out = std::process::Command::new(sc)
            .arg("-s")
            .arg("sh")
            .arg(&script)
            .output()
            .expect("shellcheck");
        assert!(
            out.status.success(),
            "shellcheck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let inst = Instance::new();
    let bin_dir = inst.dir.path().join("bin");
    // the script, with the same private environment the harness gives ghboot
    let ghboot_cmd = inst.cmd();
    let mut c = std::process::Command::new("sh");
    for (k, v) in ghboot_cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c
        .env("GHBOOT_BIN_DIR", &bin_dir)
        .arg(&script)
        .args(["--binary"])
        .arg(ghboot_bin())
        .args([
            "--mode",
            "dev",
            "--detach",
            "--non-interactive",
            "--port",
            &inst.port.to_string(),
            "--monitor-port",
            &inst.monitor_port.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("sh bootstrap.sh");
    ok(&out);
    assert!(bin_dir.join("ghboot").is_file(), "installed");
    assert_eq!(inst.status()["nats"]["healthy"], true);
}

#[test]
fn composite_action_validates_against_githubs_schema() {
    let Some(cj) = tool("check-jsonschema") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(cj)
        .arg("--schemafile")
        .arg(root.join("tests/data/schemas/github-actions.json"))
        .arg(root.join("bootstrap/action/action.yml"))
        .output()
        .expect("check-jsonschema");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unix only: it drives ghboot in a pseudo-terminal (rexpect, built on nix).
#[cfg(unix)]
#[test]
fn first_run_at_a_terminal_asks_and_saves_the_answers() {
    let inst = Instance::new();
    // the harness's environment, but stdio left to the pseudo-terminal
    let base = inst.cmd();
    let mut cmd = std::process::Command::new(base.get_program());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir(inst.dir.path());
    cmd.env("GITHUB_TOKEN", "not-used-without-a-webhook-url")
        .env("TERM", "dumb")
        .args([
            "up",
            "--detach",
            "--port",
            &inst.port.to_string(),
            "--monitor-port",
            &inst.monitor_port.to_string(),
        ]);
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("spawn in a pty");
    p.exp_string("Deployment mode").expect("asked for the mode");
    p.send_line("").expect("accept the default");
    p.exp_string("GitHub organisation")
        .expect("asked for the org");
    p.send_line("acme-pty").expect("answer");
    p.exp_string("ready").expect("came up");
    p.exp_eof().expect("returned");
    let saved = read(&inst.dir.path().join("ghboot.toml"));
    assert!(
        saved.contains("mode = \"dev\"") && saved.contains("org = \"acme-pty\""),
        "{saved}"
    );
    assert_eq!(inst.status()["org"], "acme-pty");
}

#[test]
fn without_a_terminal_a_missing_required_value_names_the_flag() {
    let inst = Instance::new();
    let out = inst
        .cmd()
        .env("GITHUB_TOKEN", "x")
        .args(["up", "--detach"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--org") && err.contains("GITHUB_ORG"), "{err}");
}
