//! The dev appliance (issues 2 and 12), end to end with the real binary and a real nats-server.

use crate::common::*;
use std::time::Duration;

fn nats_pid(st: &serde_json::Value) -> Option<u32> {
    st["nats"]["pid"].as_u64().map(|p| p as u32)
}

fn stage_status(st: &serde_json::Value, name: &str) -> String {
    st["stages"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .map(|s| s["status"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_bootstrap_serves_jetstream_to_authenticated_clients_only() {
    let inst = Instance::new();
    let out = inst.up(&[]);
    let stdout = ok(&out);
    assert!(
        stdout.contains(&format!("nats://127.0.0.1:{}", inst.port)),
        "summary names the URL: {stdout}"
    );
    let st = inst.status();
    assert_eq!(st["nats"]["healthy"], true);
    for s in ["prerequisites", "state-backend", "nats"] {
        assert_eq!(stage_status(&st, s), "done", "{s}");
    }
    assert_eq!(
        nats_pid(&st),
        listener_pid(inst.port),
        "status pid is the listener's"
    );
    assert_eq!(st["org"], "local", "dev with no org comes up as local");

    // secrets: 0600 and absent from output, logs and the state file
    let env = inst.env_json();
    let pw = env["NATS_PASSWORD"].as_str().expect("password").to_string();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&pw) && !stdout.contains(&pw));
    for entry in walk(&inst.state_dir()) {
        let text = std::fs::read(&entry).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(&pw) {
            let mode = ghboot::platform::file_mode(&entry).unwrap_or(0);
            assert_eq!(
                mode & 0o077,
                0,
                "{} holds the password and is readable by others",
                entry.display()
            );
        }
    }
    assert!(!read(&inst.state_dir().join("state.json")).contains(&pw));

    // an outside client with the printed credentials uses JetStream
    let nc = inst.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        ..Default::default()
    })
    .await
    .expect("create stream");
    js.publish("t.x", "hello".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    // and an anonymous one is refused
    let anon = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(Some(1));
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        anon.connect(format!("nats://127.0.0.1:{}", inst.port)),
    )
    .await;
    match r {
        Ok(Err(e)) => assert_eq!(
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "refused, but not by the server: {e}"
        ),
        Ok(Ok(_)) => panic!("anonymous client was let in"),
        Err(_) => panic!("anonymous connect neither failed nor succeeded"),
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn rerun_is_a_noop_and_plan_is_clean_without_flags() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let pid = nats_pid(&inst.status());
    // without the port flags: the recorded settings apply
    let out = inst
        .cmd()
        .args(["--mode", "dev", "--detach", "--non-interactive"])
        .output()
        .expect("run");
    ok(&out);
    assert_eq!(nats_pid(&inst.status()), pid, "rerun replaced the server");
    let plan = inst.run(&["plan"]);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan after up: {}",
        String::from_utf8_lossy(&plan.stdout)
    );
    // flags on either side of the subcommand
    let sd = inst.state_dir();
    let a = inst
        .cmd()
        .env_remove("GHBOOT_STATE_DIR")
        .arg("--state-dir")
        .arg(&sd)
        .args(["status", "--json"])
        .output()
        .expect("run");
    let b = inst
        .cmd()
        .env_remove("GHBOOT_STATE_DIR")
        .args(["status", "--json", "--state-dir"])
        .arg(&sd)
        .output()
        .expect("run");
    assert!(a.status.success() && b.status.success());
    // a changed port is a pending change, shown by plan
    let other = free_ports(1)[0];
    let plan = inst.run(&["plan", "--port", &other.to_string()]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_server_is_restarted_with_its_data() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let nc = inst.client().await;
    let js = async_nats::jetstream::new(nc);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "KEEP".into(),
        subjects: vec!["keep.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    for i in 0..10 {
        js.publish("keep.x", format!("{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let pid1 = nats_pid(&inst.status()).expect("pid");
    ghboot::platform::kill(pid1);
    let pid2 = wait_for(Duration::from_secs(30), "a restarted nats-server", || {
        let st = inst.status();
        (st["nats"]["healthy"] == true)
            .then(|| nats_pid(&st))
            .flatten()
            .filter(|p| *p != pid1)
    });
    assert_eq!(Some(pid2), listener_pid(inst.port));
    let nc = inst.client().await;
    let js = async_nats::jetstream::new(nc);
    let mut s = js.get_stream("KEEP").await.expect("stream survives");
    assert_eq!(s.info().await.expect("info").state.messages, 10);
    assert_eq!(inst.status()["nats"]["nodes"][0]["restarts"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_the_supervisor_leaves_no_orphan_and_rerun_converges() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let st = inst.status();
    let nats = nats_pid(&st).expect("pid");
    let sup = st["supervisor"]["pid"].as_u64().expect("supervisor pid") as u32;
    ghboot::platform::kill(sup);
    wait_for(
        Duration::from_secs(10),
        "nats-server to die with its supervisor",
        || (!is_alive(nats)).then_some(()),
    );
    let st = inst.status();
    assert_eq!(st["nats"]["healthy"], false);
    assert_eq!(st["supervisor"]["alive"], false);
    ok(&inst.up(&[]));
    assert_eq!(inst.status()["nats"]["healthy"], true);
    ok(&inst.run(&["down"]));
    let st = inst.status();
    assert_eq!(st["nats"]["healthy"], false);
    assert!(
        listener_pid(inst.port).is_none(),
        "something still listens after down"
    );
}

#[test]
fn sigkill_of_a_foreground_ghboot_leaves_no_nats_server() {
    let inst = Instance::new();
    let mut child = inst
        .cmd()
        .args([
            "--mode",
            "dev",
            "--non-interactive",
            "--port",
            &inst.port.to_string(),
            "--monitor-port",
            &inst.monitor_port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let nats = wait_for(
        Duration::from_secs(30),
        "foreground ghboot to be ready",
        || {
            let out = inst.run(&["status", "--json"]);
            let st: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (st["nats"]["healthy"] == true)
                .then(|| nats_pid(&st))
                .flatten()
        },
    );
    child.kill().expect("SIGKILL ghboot");
    let _ = child.wait();
    wait_for(
        Duration::from_secs(10),
        "nats-server to die with ghboot",
        || (!is_alive(nats)).then_some(()),
    );
}

#[test]
fn a_second_ghboot_changing_state_is_refused_naming_the_holder() {
    use fs4::fs_std::FileExt;
    let inst = Instance::new();
    std::fs::create_dir_all(inst.state_dir()).expect("mkdir");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(inst.state_dir().join("lock"))
        .expect("lock file");
    f.try_lock_exclusive().expect("take the lock");
    std::fs::write(inst.state_dir().join("lock"), "4242").expect("holder pid");
    let out = inst.up(&[]);
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("4242"));
}

#[test]
fn corrupt_or_future_state_is_a_clear_error_and_left_untouched() {
    for content in [
        "{ not json",
        r#"{"version": 99, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}"#,
    ] {
        let inst = Instance::new();
        std::fs::create_dir_all(inst.state_dir()).expect("mkdir");
        let path = inst.state_dir().join("state.json");
        std::fs::write(&path, content).expect("write");
        let out = inst.up(&[]);
        assert_eq!(
            out.status.code(),
            Some(65),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("help:") && err.contains("reset"), "{err}");
        assert_eq!(read(&path), content, "state file was changed");
        assert_eq!(inst.run(&["status", "--json"]).status.code(), Some(65));
    }
}

#[test]
fn bad_environment_gives_distinct_clear_errors() {
    // port taken
    let inst = Instance::new();
    let _hold = std::net::TcpListener::bind(("127.0.0.1", inst.port)).expect("hold port");
    let out = inst.up(&[]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&inst.port.to_string()));

    // state dir not writable (a file stands where a directory must be)
    let inst = Instance::new();
    std::fs::write(inst.dir.path().join("file"), "x").expect("write");
    let out = inst
        .cmd()
        .env("GHBOOT_STATE_DIR", inst.dir.path().join("file/state"))
        .args(["--mode", "dev", "--detach"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(73),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // nats-server missing, and too old
    let inst = Instance::new();
    let out = inst
        .cmd()
        .env("GHBOOT_NATS_SERVER", inst.dir.path().join("nope"))
        .args(["--mode", "dev", "--detach"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old = inst.dir.path().join("old-nats-server");
    std::fs::write(&old, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").expect("write");
    ghboot::platform::make_executable(&old).expect("chmod");
    let out = inst
        .cmd()
        .env("GHBOOT_NATS_SERVER", &old)
        .args(["--mode", "dev", "--detach"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2.9.10"));

    // invalid mode lists the valid ones; status on a missing dir fails
    let out = inst.run(&["--mode", "nonsense"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dev"));
    let out = inst
        .cmd()
        .env("GHBOOT_STATE_DIR", inst.dir.path().join("missing"))
        .args(["status", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(66));
}

#[test]
fn detach_returns_with_closed_stdio() {
    // $(ghboot --detach) must return: the supervisor keeps none of the caller's pipes.
    let inst = Instance::new();
    let mut child = inst
        .cmd()
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
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = String::new();
    use std::io::Read;
    // read_to_string returns only when every holder of the pipe closed it
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    assert!(child.wait().expect("wait").success());
    assert!(out.contains("ready"));
}

#[test]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault hook: run through `cargo xtask test` (--features fault-injection)"
)]
fn sigkill_after_each_stage_then_rerun_converges() {
    for stage in ["prerequisites", "state-backend", "nats"] {
        let inst = Instance::new();
        let out = inst
            .cmd()
            .env("GHBOOT_FAULT_KILL_AFTER", stage)
            .args(["--mode", "dev", "--non-interactive"])
            .args([
                "--port",
                &inst.port.to_string(),
                "--monitor-port",
                &inst.monitor_port.to_string(),
            ])
            .output()
            .expect("run");
        assert!(
            !out.status.success(),
            "the fault did not fire after {stage}"
        );
        let st = inst.status();
        assert_eq!(
            stage_status(&st, stage),
            "done",
            "{stage} recorded before the crash"
        );
        assert_eq!(st["nats"]["healthy"], false);
        ok(&inst.up(&[]));
        let st = inst.status();
        assert_eq!(st["nats"]["healthy"], true, "after a crash after {stage}");
        for s in ["prerequisites", "state-backend", "nats"] {
            assert_eq!(
                stage_status(&st, s),
                "done",
                "{s} after a crash after {stage}"
            );
        }
        assert_eq!(nats_pid(&st), listener_pid(inst.port));
    }
}
