//! Fault rows of "supervision that never gives up, and nothing that destroys what ghboot does not own": a
//! restart blocked (port taken, binary missing, log unwritable), the JetStream store lost, a stopped
//! supervisor, purge of a foreign dir, secrets at trace level, hostile deliveries and slow clients, and the
//! configuration errors that used to pass silently.

use crate::bench::Env;
use crate::faults::{alive, code, first_err, wait, Inst, Row};
use anyhow::{Context, Result};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn rows(env: &Env) -> Result<Vec<Row>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = vec![
        restart_port_taken(env)?,
        restart_binary_missing(env)?,
        restart_log_unwritable(env)?,
        store_lost(env)?,
        supervisor_stopped(env)?,
        foreign_purge(env)?,
        trace_secret(env)?,
    ];
    rows.extend(rt.block_on(receiver_rows(env))?);
    rows.extend(config_rows(env)?);
    Ok(rows)
}

fn sig(pid: u64, s: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{s}"), &pid.to_string()])
        .status();
}

fn pids(i: &Inst) -> (u64, u64) {
    let st = i.status();
    (
        st["supervisor"]["pid"].as_u64().unwrap_or(0),
        st["nats"]["pid"].as_u64().unwrap_or(0),
    )
}

fn restarting_line(i: &Inst) -> Option<String> {
    i.status()["restarting"][0].as_str().map(str::to_string)
}

/// Healthy again, no node restarting, the same supervisor; returns how long that took.
fn recovered(i: &Inst, sup: u64) -> Option<Duration> {
    let t = Instant::now();
    wait(Duration::from_secs(45), || {
        let st = i.status();
        st["nats"]["healthy"] == true
            && st["restarting"].as_array().is_some_and(|a| a.is_empty())
            && st["supervisor"]["pid"].as_u64() == Some(sup)
    })
    .then(|| t.elapsed())
}

fn restart_port_taken(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let (sup, nats) = pids(&i);
    sig(sup, "STOP");
    sig(nats, "KILL");
    wait(Duration::from_secs(5), || !alive(nats));
    let mut held = None;
    wait(Duration::from_secs(5), || {
        held = std::net::TcpListener::bind(("127.0.0.1", i.port)).ok();
        held.is_some()
    });
    sig(sup, "CONT");
    let mut line = String::new();
    let retrying = wait(Duration::from_secs(20), || {
        line = restarting_line(&i).unwrap_or_default();
        line.contains("attempt 3")
    });
    let was_held = held.is_some();
    drop(held);
    let back = recovered(&i, sup);
    Ok(Row {
        fault: "the client port taken while the supervisor restarts nats-server".into(),
        expected: "it keeps retrying with capped backoff (status: `restarting (attempt N, next in Xs): …`), and is healthy within one backoff step once the port is free; same supervisor".into(),
        observed: format!(
            "up exit {}; port held: {was_held}; retrying: {retrying} ({}); healthy after release: {}",
            code(&up),
            line.chars().take(90).collect::<String>(),
            back.map(|d| format!("{} ms", d.as_millis())).unwrap_or_else(|| "no".into())
        ),
        pass: up.status.success() && was_held && retrying && back.is_some(),
        reproduce: "kill -STOP $SUP; kill -9 $NATS; (hold 127.0.0.1:$PORT 8 s) & kill -CONT $SUP; ghboot status".into(),
    })
}

fn restart_binary_missing(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let bin = i.dir.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    let ns = bin.join("nats-server");
    std::fs::copy(&env.nats_server, &ns)?;
    let mut args = i.up_args();
    args.extend(["--nats-server".into(), ns.display().to_string()]);
    let up = i.cmd().args(&args).output()?;
    let (sup, nats) = pids(&i);
    let away = bin.join("away");
    std::fs::rename(&ns, &away)?;
    sig(nats, "KILL");
    let mut line = String::new();
    let retrying = wait(Duration::from_secs(20), || {
        line = restarting_line(&i).unwrap_or_default();
        line.contains("cannot start")
    });
    std::fs::rename(&away, &ns)?;
    let back = recovered(&i, sup);
    Ok(Row {
        fault: "the nats-server binary missing while the supervisor restarts it".into(),
        expected: "retried with backoff, the cause in status; healthy again once the binary is back".into(),
        observed: format!(
            "up exit {}; retrying: {retrying}; healthy after it came back: {}",
            code(&up),
            back.map(|d| format!("{} ms", d.as_millis()))
                .unwrap_or_else(|| "no".into())
        ),
        pass: up.status.success() && retrying && back.is_some(),
        reproduce: "ghboot --nats-server $BIN --detach; mv $BIN $BIN.away; kill -9 $NATS; sleep 3; mv $BIN.away $BIN".into(),
    })
}

fn restart_log_unwritable(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let (sup, nats) = pids(&i);
    // a directory where the log file should be: unwritable even for root
    let log = i.state().join("logs").join("nats.log");
    std::fs::remove_file(&log)?;
    std::fs::create_dir(&log)?;
    sig(nats, "KILL");
    let mut line = String::new();
    let retrying = wait(Duration::from_secs(20), || {
        line = restarting_line(&i).unwrap_or_default();
        line.contains("nats.log")
    });
    std::fs::remove_dir(&log)?;
    let back = recovered(&i, sup);
    Ok(Row {
        fault: "`logs/nats.log` unwritable while the supervisor restarts nats-server".into(),
        expected: "retried with backoff, status names the file; healthy again once it is writable".into(),
        observed: format!(
            "up exit {}; retrying naming nats.log: {retrying}; healthy after the fix: {}",
            code(&up),
            back.map(|d| format!("{} ms", d.as_millis()))
                .unwrap_or_else(|| "no".into())
        ),
        pass: up.status.success() && retrying && back.is_some(),
        reproduce: "rm $STATE/logs/nats.log; mkdir $STATE/logs/nats.log; kill -9 $NATS; ghboot status; rmdir $STATE/logs/nats.log".into(),
    })
}

fn store_lost(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let (sup, nats) = pids(&i);
    std::fs::remove_dir_all(i.state().join("nats/n0/jetstream"))?;
    sig(nats, "KILL");
    let t = Instant::now();
    // nothing run by hand: the supervisor remakes the topology, the controller its consumer
    let healed = wait(Duration::from_secs(60), || i.status()["healthy"] == true);
    let took = t.elapsed();
    let plan = i.run(&["plan"]);
    let rerun = i.up();
    let plan2 = i.run(&["plan"]);
    Ok(Row {
        fault: "the JetStream store deleted, then nats-server SIGKILLed".into(),
        expected: "the supervisor restarts it and remakes streams, buckets and the controller's consumer by itself; status healthy only once `plan` is clean; a rerun verifies".into(),
        observed: format!(
            "up exit {}; healthy (plan clean) by itself: {healed} after {} ms; plan exit {}; rerun exit {}, plan exit {}; supervisor kept: {}",
            code(&up),
            took.as_millis(),
            code(&plan),
            code(&rerun),
            code(&plan2),
            alive(sup)
        ),
        pass: up.status.success() && healed && code(&plan) == 0 && rerun.status.success() && code(&plan2) == 0 && alive(sup),
        reproduce: "rm -rf $STATE/nats/n0/jetstream; kill -9 $NATS; ghboot status; ghboot plan".into(),
    })
}

fn supervisor_stopped(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let (sup, _) = pids(&i);
    sig(sup, "STOP");
    let seen = wait(Duration::from_secs(40), || {
        let st = i.status();
        st["supervisor"]["responsive"] == false && st["nats"]["healthy"] == false
    });
    sig(sup, "CONT");
    let back = wait(Duration::from_secs(20), || {
        i.status()["supervisor"]["responsive"] == true
    });
    Ok(Row {
        fault: "the supervisor stopped with SIGSTOP".into(),
        expected: "status tells it by the heartbeat's age (not responding, not healthy); fine again after SIGCONT".into(),
        observed: format!("up exit {}; reported unresponsive: {seen}; responsive after SIGCONT: {back}", code(&up)),
        pass: up.status.success() && seen && back,
        reproduce: "kill -STOP $(ghboot status --json | jq .supervisor.pid); sleep 25; ghboot status".into(),
    })
}

fn foreign_purge(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let x = i.state();
    std::fs::create_dir_all(&x)?;
    std::fs::write(x.join("state.json"), "{}")?;
    std::fs::write(x.join("mine.txt"), "p")?;
    let down = i.run(&["down", "--purge", "--non-interactive"]);
    let reset = i.run(&["reset", "--yes", "--non-interactive"]);
    let kept = std::fs::read_to_string(x.join("mine.txt")).ok().as_deref() == Some("p")
        && std::fs::read_to_string(x.join("state.json"))
            .ok()
            .as_deref()
            == Some("{}");
    Ok(Row {
        fault: "`down --purge` / `reset --yes` on a dir holding `{}` as state.json and a file of its own".into(),
        expected: "both refuse with 65 naming why and the --force override; nothing removed".into(),
        observed: format!(
            "down exit {}, reset exit {}: {}; files kept: {kept}",
            code(&down),
            code(&reset),
            first_err(&down)
        ),
        pass: code(&down) == 65 && code(&reset) == 65 && kept,
        reproduce: "mkdir x; echo '{}' >x/state.json; echo p >x/mine.txt; ghboot down --purge --state-dir x".into(),
    })
}

fn trace_secret(env: &Env) -> Result<Row> {
    let i = Inst::new(env)?;
    let up = i.up();
    let v: serde_json::Value =
        serde_json::from_slice(&i.run(&["env", "--format", "json"]).stdout).unwrap_or_default();
    let pw = v["NATS_PASSWORD"].as_str().unwrap_or_default().to_string();
    let mut leaked = Vec::new();
    let mut codes = Vec::new();
    for args in [&["plan"][..], &["dlq", "list"]] {
        let o = i.cmd().env("RUST_LOG", "trace").args(args).output()?;
        codes.push(code(&o));
        let all = [o.stdout, o.stderr].concat();
        if !pw.is_empty() && String::from_utf8_lossy(&all).contains(&pw) {
            leaked.push(args.join(" "));
        }
    }
    Ok(Row {
        fault: "`RUST_LOG=trace ghboot plan` / `dlq list`".into(),
        expected: "no log level or filter prints the NATS password (async-nats' protocol trace is never emitted)".into(),
        observed: format!("exits {codes:?}; password printed by: {leaked:?}"),
        pass: up.status.success() && !pw.is_empty() && leaked.is_empty() && matches!(codes[..], [0 | 2, 0]),
        reproduce: "RUST_LOG=trace ghboot plan 2>&1 | grep -F \"$NATS_PASSWORD\"".into(),
    })
}

async fn receiver_rows(env: &Env) -> Result<Vec<Row>> {
    let i = Inst::new(env)?;
    let up = i.up();
    let v: serde_json::Value =
        serde_json::from_slice(&i.run(&["env", "--format", "json"]).stdout).context("env json")?;
    let url = v["GHBOOT_WEBHOOK_URL"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let secret = String::from_utf8_lossy(&i.run(&["webhook", "secret"]).stdout)
        .trim()
        .to_string();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let send = |delivery: String, body: Vec<u8>| {
        let sig = ghboot::webhook::verify::sign(secret.as_bytes(), &body);
        let r = c
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sig)
            .body(body);
        async move {
            match r.send().await {
                Ok(resp) => {
                    let st = resp.status().as_u16();
                    (st, resp.text().await.unwrap_or_default())
                }
                Err(_) => (0, String::new()),
            }
        }
    };
    let repo = |name: &str| {
        serde_json::json!({"repository": {"name": name}})
            .to_string()
            .into_bytes()
    };
    let mut rows = Vec::new();

    let (long, _) = send("long-name".into(), repo(&"r".repeat(5000))).await;
    let (after, _) = send("after-long".into(), repo("fine")).await;
    rows.push(Row {
        fault: "a signed delivery whose repository name is 5000 characters, then a valid one".into(),
        expected: "400 before anything is published (GitHub caps names at 100); the next delivery is stored (2xx)".into(),
        observed: format!("long name: {long}; next: {after}"),
        pass: up.status.success() && long == 400 && after == 200,
        reproduce: "ghboot webhook send --event push --payload <(a repository.name of 5000 chars)".into(),
    });

    let (arr, _) = send(
        "array".into(),
        b"[{\"repository\": {\"name\": \"r\"}}]".to_vec(),
    )
    .await;
    let (empty, text) = send("empty-name".into(), repo("")).await;
    let subject = serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["subject"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    rows.push(Row {
        fault: "a JSON array body; an empty repository name".into(),
        expected: "the array is 400 (a GitHub payload is an object); the empty name is stored under its own escaped token `~`, not the org-level `~org`".into(),
        observed: format!("array: {arr}; empty name: {empty} on {subject}"),
        pass: arr == 400 && empty == 200 && subject == "github.local.~.push",
        reproduce: "post a signed `[]`; post a signed {\"repository\":{\"name\":\"\"}}".into(),
    });

    let body = repo("dup");
    let (first, _) = send("same-id".into(), body.clone()).await;
    let (again, _) = send("same-id".into(), body).await;
    let (other, _) = send("same-id".into(), repo("different")).await;
    rows.push(Row {
        fault: "a delivery id reused: the same body, then a different body".into(),
        expected: "the same body is a duplicate (2xx, stored once); a different body is 409 (nothing stored)".into(),
        observed: format!("first {first}, same body {again}, different body {other}"),
        pass: first == 200 && again == 200 && other == 409,
        reproduce: "ghboot webhook send --delivery D --payload a.json; … --delivery D --payload b.json".into(),
    });

    let t = Instant::now();
    let how = half_head(&url).await;
    let took = t.elapsed();
    rows.push(Row {
        fault: "a connection that sends half a request head and waits".into(),
        expected: "closed by the receiver within 15 s (header-read timeout 10 s), counted in /metrics".into(),
        observed: format!("{how} after {:.1} s", took.as_secs_f64()),
        pass: how == "closed" && took < Duration::from_secs(15),
        reproduce: "printf 'POST /webhook HTTP/1.1\\r\\nHost: x\\r\\n' | nc 127.0.0.1 $WEBHOOK_PORT".into(),
    });
    Ok(rows)
}

async fn half_head(url: &str) -> &'static str {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return "no url";
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut s) = tokio::net::TcpStream::connect(host).await else {
        return "no connection";
    };
    let head = format!("POST /{path} HTTP/1.1\r\nHost: x\r\n");
    if s.write_all(head.as_bytes()).await.is_err() {
        return "write failed";
    }
    let mut buf = vec![0u8; 512];
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    if r.is_ok() {
        "closed"
    } else {
        "still open"
    }
}

fn config_rows(env: &Env) -> Result<Vec<Row>> {
    let mut rows = Vec::new();

    let i = Inst::new(env)?;
    std::fs::write(
        i.dir.path().join("ghboot.toml"),
        "[topology.events]\nmax_age = \"banana\"\n",
    )?;
    let plan = i.run(&["plan"]);
    let up = i.up();
    rows.push(Row {
        fault: "`[topology.events] max_age = \"banana\"`: `plan`, then `up`".into(),
        expected: "both validate the same way first: 78 naming the key".into(),
        observed: format!("plan exit {}, up exit {}: {}", code(&plan), code(&up), first_err(&plan)),
        pass: code(&plan) == 78 && code(&up) == 78,
        reproduce: "printf '[topology.events]\\nmax_age = \"banana\"\\n' > ghboot.toml; ghboot plan; ghboot up".into(),
    });

    let i = Inst::new(env)?;
    std::fs::write(
        i.dir.path().join("ghboot.toml"),
        "[webhook]\nport = \"52943\"\n",
    )?;
    let quoted = i.up();
    std::fs::write(
        i.dir.path().join("ghboot.toml"),
        "[webhook]\nport = 99999\n",
    )?;
    let big = i.up();
    std::fs::remove_file(i.dir.path().join("ghboot.toml"))?;
    let zero = i.run(&["--mode", "dev", "--detach", "--port", "0"]);
    let named = String::from_utf8_lossy(&quoted.stderr).contains("[webhook] port");
    rows.push(Row {
        fault: "`[webhook] port = \"52943\"` / `99999`; `--port 0`".into(),
        expected:
            "78 naming `[webhook] port` (not silently a random port); `--port 0` refused with 64"
                .into(),
        observed: format!(
            "quoted exit {}, 99999 exit {}, --port 0 exit {}: {}",
            code(&quoted),
            code(&big),
            code(&zero),
            first_err(&quoted)
        ),
        pass: code(&quoted) == 78 && code(&big) == 78 && named && code(&zero) == 64,
        reproduce:
            "printf '[webhook]\\nport = \"52943\"\\n' > ghboot.toml; ghboot up; ghboot up --port 0"
                .into(),
    });

    let i = Inst::new(env)?;
    std::fs::create_dir_all(i.state().join("logs").join("nats.log"))?;
    let up = i.up();
    let named = String::from_utf8_lossy(&up.stderr).contains("nats.log");
    rows.push(Row {
        fault: "`logs/nats.log` unwritable at the first start".into(),
        expected: "73 naming the file, with a help line".into(),
        observed: format!("exit {}: {}", code(&up), first_err(&up)),
        pass: code(&up) == 73 && named,
        reproduce: "mkdir -p $STATE/logs/nats.log; ghboot --mode dev --detach".into(),
    });

    let i = Inst::new(env)?;
    let up = i.up();
    std::fs::write(i.dir.path().join("ghboot.toml"), "this is = = not toml")?;
    let status = i.run(&["status"]);
    let env_cmd = i.run(&["env"]);
    let auth = i.state().join("secrets").join("nats-auth.json");
    let _ = Command::new("chmod").arg("644").arg(&auth).status();
    let _ = i.run(&["env"]);
    let mode = ghboot::platform::file_mode(&auth).unwrap_or(0);
    let dir_mode = ghboot::platform::file_mode(&i.state()).unwrap_or(0);
    rows.push(Row {
        fault: "an invalid ./ghboot.toml beside an instance; a secret file chmod 644; the state dir's mode".into(),
        expected: "status/env of the instance still work (they read the recorded settings); the secret is made 0600 again; the state dir is 0700".into(),
        observed: format!(
            "status exit {}, env exit {}; secret mode {mode:o}; state dir {dir_mode:o}",
            code(&status),
            code(&env_cmd)
        ),
        pass: up.status.success() && status.status.success() && env_cmd.status.success() && mode == 0o600 && dir_mode == 0o700,
        reproduce: "echo 'x = = y' > ghboot.toml; ghboot status --state-dir X; chmod 644 X/secrets/nats-auth.json; ghboot env".into(),
    });
    Ok(rows)
}
