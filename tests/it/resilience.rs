//! Supervision that never gives up, and nothing that destroys what ghboot does not own (issue 16). Real
//! supervisor, real nats-server, real sockets: a port taken during a restart, the binary gone during a restart,
//! the JetStream store lost, `RUST_LOG=trace`, a foreign dir given to `down --purge`.
use crate::common::*;
use std::time::Duration;

fn nats_pid(st: &serde_json::Value) -> Option<u32> {
    st["nats"]["pid"].as_u64().map(|p| p as u32)
}

fn sup_pid(st: &serde_json::Value) -> u32 {
    st["supervisor"]["pid"].as_u64().expect("supervisor pid") as u32
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Wait until status says a restart is being retried, and return that line.
fn wait_restarting(inst: &Instance, contains: &str) -> String {
    wait_for(
        Duration::from_secs(30),
        "status to show the restart being retried",
        || {
            let st = inst.status();
            st["restarting"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|l| l.as_str())
                .filter(|l| l.contains("restarting (attempt") && l.contains(contains))
                .map(str::to_string)
        },
    )
}

fn wait_recovered(inst: &Instance, sup: u32) {
    wait_for(Duration::from_secs(45), "nats healthy again", || {
        assert!(
            is_alive(sup),
            "the supervisor {sup} exited instead of retrying"
        );
        let st = inst.status();
        (st["nats"]["healthy"] == true && st["restarting"].as_array().is_some_and(|a| a.is_empty()))
            .then_some(())
    });
    assert_eq!(
        sup_pid(&inst.status()),
        sup,
        "the same supervisor recovered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_blocked_by_a_taken_port_recovers_by_itself() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let st = inst.status();
    let (sup, nats) = (sup_pid(&st), nats_pid(&st).expect("nats pid"));
    signal(sup, "STOP");
    ghboot::platform::kill(nats);
    wait_for(Duration::from_secs(10), "nats-server gone", || {
        (!is_alive(nats) || listener_pid(inst.port).is_none()).then_some(())
    });
    let held = wait_for(Duration::from_secs(5), "the client port", || {
        std::net::TcpListener::bind(("127.0.0.1", inst.port)).ok()
    });
    signal(sup, "CONT");
    let line = wait_restarting(&inst, "attempt");
    assert!(line.contains("next in"), "{line}");
    // several attempts fail while the port is held; the supervisor keeps going
    wait_for(Duration::from_secs(20), "a third attempt", || {
        let st = inst.status();
        st["restarting"][0]
            .as_str()
            .filter(|l| !l.contains("attempt 1,") && !l.contains("attempt 2,"))
            .map(|_| ())
    });
    drop(held);
    wait_recovered(&inst, sup);
    assert_eq!(
        Some(nats_pid(&inst.status()).expect("pid")),
        listener_pid(inst.port)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_blocked_by_a_missing_binary_recovers_by_itself() {
    let inst = Instance::new();
    let bin = inst.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let ns = bin.join("nats-server");
    copy_executable(&nats_server_bin(), &ns);
    ok(&inst.up(&["--nats-server", &ns.to_string_lossy()]));
    let st = inst.status();
    let (sup, nats) = (sup_pid(&st), nats_pid(&st).expect("nats pid"));
    let away = bin.join("away");
    std::fs::rename(&ns, &away).expect("move away");
    ghboot::platform::kill(nats);
    let line = wait_restarting(&inst, "cannot start");
    assert!(line.contains(&ns.to_string_lossy().to_string()), "{line}");
    std::fs::rename(&away, &ns).expect("move back");
    wait_recovered(&inst, sup);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_jetstream_store_is_rebuilt_and_the_controller_consumes_again() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let st = inst.status();
    assert_eq!(st["healthy"], true, "healthy after up: {}", st["drift"]);
    let (sup, nats) = (sup_pid(&st), nats_pid(&st).expect("nats pid"));
    std::fs::remove_dir_all(inst.state_dir().join("nats/n0/jetstream")).expect("rm store");
    ghboot::platform::kill(nats);
    // without any rerun: the supervisor remakes the topology, the controller its consumer
    wait_for(
        Duration::from_secs(60),
        "status healthy (plan clean) again",
        || {
            assert!(is_alive(sup), "the supervisor exited");
            let st = inst.status();
            (st["healthy"] == true).then_some(())
        },
    );
    let out = inst.run(&["plan"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plan: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let js = async_nats::jetstream::new(inst.client().await);
    let stream = js
        .get_stream(ghboot::topology::subjects::events_stream("local"))
        .await
        .expect("events stream");
    stream
        .consumer_info("ghboot-controller")
        .await
        .expect("the controller's durable consumer");
    ok(&inst.up(&[]));
    assert_eq!(inst.run(&["plan"]).status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_logging_never_prints_the_nats_password() {
    let inst = Instance::new();
    ok(&inst.up(&[]));
    let pw = inst.env_json()["NATS_PASSWORD"]
        .as_str()
        .expect("password")
        .to_string();
    for args in [&["plan"][..], &["dlq", "list"]] {
        let out = inst
            .cmd()
            .env("RUST_LOG", "trace")
            .args(args)
            .output()
            .expect("run");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "plan" {
            // plan talks HTTP to the monitoring port: its stack logs at trace, so the level is really on
            assert!(all.contains("TRACE"), "{args:?} did not log at trace level");
        }
        assert!(
            !all.contains(&pw),
            "{args:?} at RUST_LOG=trace printed the NATS password"
        );
        assert!(matches!(out.status.code(), Some(0 | 2)), "{args:?}: {all}");
    }
}

#[test]
fn purge_and_reset_refuse_a_dir_ghboot_did_not_make() {
    let inst = Instance::new();
    let x = inst.state_dir();
    std::fs::create_dir_all(&x).expect("mkdir");
    std::fs::write(x.join("state.json"), "{}").expect("write");
    std::fs::write(x.join("mine.txt"), "p").expect("write");
    for args in [&["down", "--purge"][..], &["reset", "--yes"]] {
        let out = inst.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{args:?}: {err}");
        assert!(err.contains("state.json"), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert_eq!(read(&x.join("state.json")), "{}");
        assert_eq!(read(&x.join("mine.txt")), "p");
    }
    ok(&inst.run(&["down", "--purge", "--force"]));
    assert!(!x.exists());
}
