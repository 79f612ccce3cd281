//! JetStream topology: reconcile against a real nats-server (library level, `TestServer`) and through the
//! binary (`Instance`): create, idempotent rerun, drift, immutable fields, subject escaping; and the KV lock
//! under contention from many connections and several processes.
//!
//! What the server holds is read back through the raw JetStream API (`$JS.API.STREAM.INFO`, JSON parsed
//! here), not through ghboot's code.

use crate::common::{self, Instance, TestServer};
use ghboot::topology::desired::{self, TopologyFile};
use ghboot::topology::lock::{self, Lock, StaleToken};
use ghboot::topology::{reconcile, subjects};
use serde_json::Value;
use std::time::{Duration, Instant};

// ---- raw helpers (independent of ghboot's JetStream code) ----

async fn api(nc: &async_nats::Client, subject: String, body: Value) -> Value {
    let payload = if body.is_null() {
        bytes::Bytes::new()
    } else {
        serde_json::to_vec(&body).unwrap().into()
    };
    let msg = nc
        .request(subject.clone(), payload)
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&msg.payload).expect("API answers JSON")
}

async fn raw_info(nc: &async_nats::Client, stream: &str) -> Option<Value> {
    let v = api(nc, format!("$JS.API.STREAM.INFO.{stream}"), Value::Null).await;
    if v["error"]["err_code"] == 10059 {
        return None;
    }
    assert!(v.get("error").is_none(), "info {stream}: {v}");
    Some(v)
}

async fn raw_update(nc: &async_nats::Client, stream: &str, f: impl FnOnce(&mut Value)) {
    let mut cfg = raw_info(nc, stream).await.expect("stream exists")["config"].clone();
    f(&mut cfg);
    let v = api(nc, format!("$JS.API.STREAM.UPDATE.{stream}"), cfg).await;
    assert!(v.get("error").is_none(), "update {stream}: {v}");
}

/// Delete and create the stream with a modified config (for changes the server refuses in place).
async fn raw_recreate(nc: &async_nats::Client, stream: &str, f: impl FnOnce(&mut Value)) {
    let mut cfg = raw_info(nc, stream).await.expect("stream exists")["config"].clone();
    f(&mut cfg);
    let v = api(nc, format!("$JS.API.STREAM.DELETE.{stream}"), Value::Null).await;
    assert_eq!(v["success"], true, "delete {stream}: {v}");
    let v = api(nc, format!("$JS.API.STREAM.CREATE.{stream}"), cfg).await;
    assert!(v.get("error").is_none(), "create {stream}: {v}");
}

const DAY_NS: u64 = 86400 * 1_000_000_000;

/// GET a JSON document from the monitoring port with a plain socket.
fn http_json(port: u16, path: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect monitor");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    let json = body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{path}: {e}: {json}"))
}

fn api_total(monitor_port: u16) -> u64 {
    http_json(monitor_port, "/jsz")["api"]["total"]
        .as_u64()
        .expect("/jsz api.total")
}

/// Every message published in the account while `f` runs (a `>` subscription on a separate connection),
/// up to a marker the `via` client publishes after `f`: ordered per publisher, so nothing of `f` is missed.
async fn sniff<F: std::future::Future<Output = T>, T>(
    sniffer: &async_nats::Client,
    via: &async_nats::Client,
    f: F,
) -> (T, Vec<String>) {
    use futures::StreamExt;
    let marker = format!("sniff.end.{}", uuid::Uuid::new_v4().simple());
    let mut sub = sniffer.subscribe(">").await.unwrap();
    // the subscription is live once it receives the sniffer's own probe (flush only empties the socket)
    let probe = format!("sniff.start.{}", uuid::Uuid::new_v4().simple());
    sniffer.publish(probe.clone(), "".into()).await.unwrap();
    sniffer.flush().await.unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("probe arrives")
            .expect("subscription open");
        if m.subject.as_str() == probe {
            break;
        }
    }
    let out = f.await;
    via.publish(marker.clone(), "".into()).await.unwrap();
    via.flush().await.unwrap();
    let mut seen = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout(until.saturating_duration_since(Instant::now()), sub.next())
            .await
            .expect("marker arrives")
            .expect("subscription open");
        if m.subject.as_str() == marker {
            break;
        }
        seen.push(m.subject.to_string());
    }
    (out, seen)
}

/// Requests that change JetStream state: stream/consumer create, update, delete, purge; KV writes.
/// JetStream API requests that only read (verify looks at streams and consumers; it must change nothing).
const READS: &[&str] = &[
    "$JS.API.STREAM.INFO.",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.CONSUMER.INFO.",
    "$JS.API.CONSUMER.NAMES.",
    "$JS.API.CONSUMER.LIST.",
    "$JS.API.DIRECT.GET.",
];

fn mutations(seen: &[String]) -> Vec<&String> {
    seen.iter()
        .filter(|s| {
            let s = s.as_str();
            (s.starts_with("$JS.API.")
                && !READS.iter().any(|r| s.starts_with(r))
                && s != "$JS.API.INFO")
                || s.starts_with("$KV.")
                || s.starts_with("github.")
        })
        .collect()
}

fn desired_for(org: &str, toml_text: &str) -> desired::Desired {
    let t: toml::Table = toml::from_str(toml_text).unwrap();
    let f: TopologyFile = desired::parse_table(&t, "test").unwrap();
    desired::build(org, &f, 1).unwrap()
}

async fn reconcile(
    js: &async_nats::jetstream::Context,
    want: &desired::Desired,
    allow_replace: bool,
) -> anyhow::Result<reconcile::Summary> {
    reconcile::reconcile(js, want, allow_replace, &|_| {}, &|_| Ok(true)).await
}

// ---- library level ----

#[tokio::test]
async fn a_resource_created_by_someone_else_meanwhile_is_adopted_not_an_error() {
    // a controller that starts before the topology makes the workflows bucket with its own settings
    let srv = TestServer::start();
    let nc = srv.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "workflows".into(),
        history: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let want = desired_for("acme", "");
    let wf = want
        .resources
        .iter()
        .find(|r| r.name == "workflows")
        .expect("workflows bucket desired");
    assert_eq!(
        reconcile::create_or_adopt(&js, &wf.config).await.unwrap(),
        reconcile::Created::Adopted
    );
    let live = raw_info(&nc, "KV_workflows").await.unwrap();
    assert_eq!(
        live["config"]["max_msgs_per_subject"], wf.config.max_messages_per_subject,
        "brought to the desired history"
    );
    assert_eq!(
        reconcile(&js, &want, false).await.unwrap().updated.len(),
        0,
        "nothing left to change"
    );
}

#[tokio::test]
async fn fresh_create_then_rerun_makes_no_mutation() {
    let srv = TestServer::start();
    let nc = srv.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    let want = desired_for("acme", "");
    let sum = reconcile(&js, &want, false).await.unwrap();
    assert_eq!(sum.created.len(), 6, "{sum:?}");

    let ev = raw_info(&nc, &subjects::events_stream("acme"))
        .await
        .expect("events stream");
    let c = &ev["config"];
    assert_eq!(c["subjects"], serde_json::json!(["github.acme.>"]));
    assert_eq!(c["storage"], "file");
    assert_eq!(c["retention"], "limits");
    assert_eq!(c["max_age"].as_u64(), Some(7 * DAY_NS));
    assert_eq!(c["duplicate_window"].as_u64(), Some(3 * DAY_NS));
    assert!(c["max_bytes"].as_i64().unwrap() > 0, "bounded size");
    assert_eq!(c["num_replicas"], 1);
    let dlq = raw_info(&nc, &subjects::dead_letter_stream("acme"))
        .await
        .expect("dead-letter stream");
    assert_eq!(
        dlq["config"]["subjects"],
        serde_json::json!(["ghboot.dlq.acme.>"])
    );
    assert!(raw_info(&nc, &subjects::ghboot_events_stream("acme"))
        .await
        .is_some());
    let locks = raw_info(&nc, "KV_locks").await.expect("locks bucket");
    assert_eq!(
        locks["config"]["max_age"].as_u64(),
        Some(300 * 1_000_000_000),
        "lock entries expire"
    );
    assert!(
        raw_info(&nc, "KV_state").await.is_some() && raw_info(&nc, "KV_workflows").await.is_some()
    );
    // plain KV clients see the buckets
    js.get_key_value("workflows")
        .await
        .expect("workflows is a KV bucket")
        .put("x", "idle".into())
        .await
        .unwrap();

    let names: Vec<String> = want
        .resources
        .iter()
        .map(|r| r.config.name.clone())
        .collect();
    let mut before = Vec::new();
    for n in &names {
        before.push(raw_info(&nc, n).await.unwrap());
    }
    let sniffer = srv.client().await;
    let total0 = api_total(srv.monitor_port);
    let (sum, seen) = sniff(&sniffer, &nc, reconcile(&js, &want, false)).await;
    let total1 = api_total(srv.monitor_port);
    let sum = sum.unwrap();
    assert_eq!(sum.unchanged.len(), 6, "{sum:?}");
    assert!(sum.created.is_empty() && sum.updated.is_empty() && sum.replaced.is_empty());
    assert!(
        mutations(&seen).is_empty(),
        "a rerun with nothing changed made changes: {:?}",
        mutations(&seen)
    );
    let api_calls = seen
        .iter()
        .filter(|s| s.starts_with("$JS.API.") && !s.starts_with("$JS.API.DIRECT."))
        .count();
    assert_eq!(api_calls, 6, "one STREAM.INFO per resource: {seen:?}");
    assert_eq!(
        total1 - total0,
        api_calls as u64,
        "the server counted the same API calls the sniffer saw"
    );
    for (n, b) in names.iter().zip(&before) {
        let a = raw_info(&nc, n).await.unwrap();
        assert_eq!(a["created"], b["created"], "{n} was recreated");
        assert_eq!(a["config"], b["config"], "{n} config changed");
    }
    // the plan agrees
    let items = reconcile::inspect(&js, &want).await.unwrap();
    assert!(items.iter().all(|i| i.change().is_none()));
}

#[tokio::test]
async fn drift_made_outside_is_planned_per_field_and_fixed() {
    let srv = TestServer::start();
    let nc = srv.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    let want = desired_for("acme", "");
    reconcile(&js, &want, false).await.unwrap();
    let ev = subjects::events_stream("acme");
    raw_update(&nc, &ev, |c| {
        c["max_age"] = (14 * DAY_NS).into();
        c["max_bytes"] = (2i64 << 30).into();
    })
    .await;
    raw_update(&nc, "KV_locks", |c| {
        c["max_age"] = 600_000_000_000u64.into()
    })
    .await;
    let changes: Vec<_> = reconcile::inspect(&js, &want)
        .await
        .unwrap()
        .iter()
        .filter_map(|i| i.change())
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let c = changes
        .iter()
        .find(|c| c.resource == format!("stream {ev}"))
        .expect("events drift planned");
    assert_eq!(c.action, "update");
    let f: Vec<String> = c
        .fields
        .iter()
        .map(|f| format!("{}: {} -> {}", f.field, f.from, f.to))
        .collect();
    assert_eq!(f, vec!["max_age: 14d -> 7d", "max_bytes: 2GiB -> 1GiB"]);
    let l = changes
        .iter()
        .find(|c| c.resource == "kv locks")
        .expect("locks drift planned");
    assert_eq!(
        format!(
            "{}: {} -> {}",
            l.fields[0].field, l.fields[0].from, l.fields[0].to
        ),
        "max_age: 10m -> 5m"
    );

    let created = raw_info(&nc, &ev).await.unwrap()["created"].clone();
    let sum = reconcile(&js, &want, false).await.unwrap();
    assert_eq!(sum.updated.len(), 2, "{sum:?}");
    let now = raw_info(&nc, &ev).await.unwrap();
    assert_eq!(now["config"]["max_age"].as_u64(), Some(7 * DAY_NS));
    assert_eq!(now["created"], created, "updated in place, not recreated");
    assert!(reconcile::inspect(&js, &want)
        .await
        .unwrap()
        .iter()
        .all(|i| i.change().is_none()));
}

#[tokio::test]
async fn immutable_change_is_refused_without_allow_replace() {
    let srv = TestServer::start();
    let nc = srv.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    let want = desired_for("acme", "");
    reconcile(&js, &want, false).await.unwrap();
    let ev = subjects::events_stream("acme");
    // someone recreated the events stream in memory, and changed max_age too
    raw_recreate(&nc, &ev, |c| {
        c["storage"] = "memory".into();
        c["max_age"] = (14 * DAY_NS).into();
    })
    .await;
    js.publish(
        subjects::event_subject("acme", Some("r"), "push"),
        "x".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let changes: Vec<_> = reconcile::inspect(&js, &want)
        .await
        .unwrap()
        .iter()
        .filter_map(|i| i.change())
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, "replace");
    assert!(
        changes[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("replace required: storage"),
        "{:?}",
        changes[0]
    );
    assert!(changes[0]
        .fields
        .iter()
        .any(|f| f.field == "storage" && f.from == "memory" && f.to == "file"));

    let err = reconcile(&js, &want, false).await.expect_err("refused");
    let failure = ghboot::error::find_failure(&err).expect("a Failure");
    assert_eq!(failure.kind, ghboot::error::Kind::Config);
    assert!(
        failure.message.contains("storage memory -> file"),
        "{}",
        failure.message
    );
    assert!(failure
        .help
        .as_deref()
        .unwrap_or_default()
        .contains("--allow-replace"));
    // nothing changed, not even the in-place field
    let live = raw_info(&nc, &ev).await.unwrap();
    assert_eq!(live["config"]["storage"], "memory");
    assert_eq!(live["config"]["max_age"].as_u64(), Some(14 * DAY_NS));
    assert_eq!(live["state"]["messages"], 1);

    // declined confirmation: still nothing
    let declined = reconcile::reconcile(&js, &want, true, &|_| {}, &|_| Ok(false))
        .await
        .expect_err("declined");
    assert!(format!("{declined}").contains("declined"));
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["config"]["storage"],
        "memory"
    );

    let warned = std::sync::Mutex::new(Vec::<String>::new());
    let sum = reconcile::reconcile(
        &js,
        &want,
        true,
        &|m| warned.lock().unwrap().push(m.to_string()),
        &|_| Ok(true),
    )
    .await
    .unwrap();
    assert_eq!(sum.replaced, vec![format!("stream {ev}")]);
    assert!(
        warned.lock().unwrap()[0].contains("1 stored message(s) will be lost"),
        "{:?}",
        warned.lock().unwrap()
    );
    let live = raw_info(&nc, &ev).await.unwrap();
    assert_eq!(live["config"]["storage"], "file");
    assert_eq!(live["config"]["max_age"].as_u64(), Some(7 * DAY_NS));
}

#[tokio::test]
async fn invalid_topology_table_is_a_config_error() {
    for (text, needle) in [
        ("[events]\nmax_agee = \"1d\"", "max_agee"),
        (
            "[events]\nmax_age = \"1h\"",
            "duplicate_window 3d is longer than max_age 1h",
        ),
        ("[locks]\nhistory = 100", "history 100"),
    ] {
        let t: toml::Table = toml::from_str(text).unwrap();
        let err = desired::parse_table(&t, "ghboot.toml")
            .and_then(|f| desired::build("acme", &f, 1))
            .expect_err(text);
        let f = ghboot::error::find_failure(&err).expect("a Failure");
        assert_eq!(f.kind, ghboot::error::Kind::Config);
        assert!(f.message.contains(needle), "{text}: {}", f.message);
    }
}

// ---- the lock ----

const LOCK_URL_ENV: &str = "GHBOOT_TEST_LOCK_URL";
const LOCK_OWNER_ENV: &str = "GHBOOT_TEST_LOCK_OWNER";
const ROUNDS: usize = 12;
const TASKS_PER_PROCESS: usize = 3;

/// Add `delta` to an integer in KV with compare-and-set; returns the new value.
async fn cas_add(kv: &async_nats::jetstream::kv::Store, key: &str, delta: i64) -> i64 {
    loop {
        let e = kv.entry(key).await.unwrap();
        let (cur, rev) = e
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.value)
                        .parse::<i64>()
                        .unwrap_or(0),
                    e.revision,
                )
            })
            .unwrap_or((0, 0));
        if kv
            .update(key, (cur + delta).to_string().into(), rev)
            .await
            .is_ok()
        {
            return cur + delta;
        }
    }
}

/// One contender: its own connection; each round takes the lock, checks it is the only holder, does an
/// unguarded read-modify-write (which loses updates if two holders overlap) and a fenced write.
async fn contend(url: String, owner: String, rounds: usize) {
    let nc = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(nc);
    let locks = lock::open_locks(&js).await.unwrap();
    let inv = js.get_key_value("inv").await.unwrap();
    for round in 0..rounds {
        let l = Lock::acquire_wait(&locks, "resource-a", &owner, Duration::from_secs(120))
            .await
            .unwrap()
            .expect("lock acquired within the deadline");
        let holders = cas_add(&inv, "holders", 1).await;
        assert_eq!(
            holders, 1,
            "{owner} round {round}: {holders} holders at once"
        );
        let total: i64 = inv
            .get("total")
            .await
            .unwrap()
            .map(|b| String::from_utf8_lossy(&b).parse().unwrap())
            .unwrap_or(0);
        inv.put("total", (total + 1).to_string().into())
            .await
            .unwrap();
        lock::fenced_write(
            &inv,
            "fenced",
            l.fencing_token(),
            format!("{owner}/{round}").into(),
        )
        .await
        .expect("a current holder's token is never stale");
        assert_eq!(cas_add(&inv, "holders", -1).await, 0);
        l.release().await.unwrap();
    }
}

/// Child-process side of `lock_under_contention_of_tasks_and_processes` (does nothing when run directly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "spawned as a child process by lock_under_contention_of_tasks_and_processes"]
async fn lock_worker() {
    let Ok(url) = std::env::var(LOCK_URL_ENV) else {
        return;
    };
    let owner = std::env::var(LOCK_OWNER_ENV).unwrap_or_else(|_| "proc".into());
    let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
        .map(|i| tokio::spawn(contend(url.clone(), format!("{owner}-t{i}"), ROUNDS)))
        .collect();
    for t in tasks {
        t.await.expect("contender panicked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_under_contention_of_tasks_and_processes() {
    let srv = TestServer::start();
    let nc = srv.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    js.create_key_value(async_nats::jetstream::kv::Config {
        bucket: "inv".into(),
        history: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    const PROCS: usize = 3;
    const TASKS: usize = 6;
    let mut children = Vec::new();
    for p in 0..PROCS {
        let child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "topology::lock_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LOCK_URL_ENV, srv.url())
            .env(LOCK_OWNER_ENV, format!("proc{p}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a worker process");
        children.push(child);
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| tokio::spawn(contend(srv.url(), format!("task{i}"), ROUNDS)))
        .collect();
    for t in tasks {
        t.await.expect("contender panicked");
    }
    for c in children {
        let out = c.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "worker failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let inv = js.get_key_value("inv").await.unwrap();
    let total: usize = String::from_utf8_lossy(&inv.get("total").await.unwrap().unwrap())
        .parse()
        .unwrap();
    assert_eq!(
        total,
        (TASKS + PROCS * TASKS_PER_PROCESS) * ROUNDS,
        "lost updates: two holders overlapped"
    );
    assert_eq!(
        String::from_utf8_lossy(&inv.get("holders").await.unwrap().unwrap()),
        "0"
    );
    // the lock is free again
    let locks = lock::open_locks(&js).await.unwrap();
    assert!(Lock::acquire(&locks, "resource-a", "after")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn expired_holder_cannot_write_with_its_old_token() {
    let srv = TestServer::start();
    let nc = srv.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    let locks = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "locks_short".into(),
            history: 1,
            max_age: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let data = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "data".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .unwrap();

    let mut a = Lock::acquire(&locks, "job", "a")
        .await
        .unwrap()
        .expect("free lock");
    assert!(
        Lock::acquire(&locks, "job", "b").await.unwrap().is_none(),
        "held"
    );
    let ta = a.fencing_token();
    a.refresh().await.unwrap();
    assert!(a.fencing_token() > ta, "refresh gives a new token");
    let ta = a.fencing_token();
    lock::fenced_write(&data, "res", ta, "from a".into())
        .await
        .unwrap();

    // a stalls; its entry expires (the server removes it at max_age)
    let until = Instant::now() + Duration::from_secs(20);
    while locks.entry("job").await.unwrap().is_some() {
        assert!(Instant::now() < until, "lock entry never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = Lock::acquire(&locks, "job", "b")
        .await
        .unwrap()
        .expect("expired lock is free");
    let tb = b.fencing_token();
    assert!(tb > ta);
    lock::fenced_write(&data, "res", tb, "from b".into())
        .await
        .unwrap();

    let err = lock::fenced_write(&data, "res", ta, "late a".into())
        .await
        .expect_err("stale token refused");
    assert_eq!(
        err.downcast_ref::<StaleToken>(),
        Some(&StaleToken {
            token: ta,
            highest: tb
        })
    );
    let now = lock::fenced_read(&data, "res").await.unwrap().unwrap();
    assert_eq!((now.token, now.value.as_ref()), (tb, b"from b".as_ref()));
    assert!(a.refresh().await.is_err(), "a cannot extend a lost lock");
    a.release().await.unwrap();
    assert!(
        locks.entry("job").await.unwrap().is_some(),
        "a's release left b's lock alone"
    );
    assert!(Lock::acquire(&locks, "job", "c").await.unwrap().is_none());
    b.release().await.unwrap();
    let c = Lock::acquire_wait(&locks, "job", "c", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("released lock is free");
    assert!(c.fencing_token() > tb);
}

// ---- end to end, through the binary ----

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn end_to_end_drift_state_mirror_and_hostile_subjects() {
    let inst = Instance::new();
    common::ok(&inst.up(&["--org", "acme"]));
    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 0, "fresh plan: {}", text(&plan));
    let nc = inst.client().await;
    let js = async_nats::jetstream::new(nc.clone());
    let ev = subjects::events_stream("acme");

    // the bootstrap state is mirrored into the state bucket
    let mirrored = js
        .get_key_value("state")
        .await
        .unwrap()
        .get(subjects::state_key("acme"))
        .await
        .unwrap()
        .expect("state mirrored");
    let m: Value = serde_json::from_slice(&mirrored).unwrap();
    assert_eq!(m["settings"]["org"], "acme");
    assert!(m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "nats"));

    // (dev's self-management round trip may have put its own push events there already)
    let base = raw_info(&nc, &ev).await.unwrap()["state"]["messages"]
        .as_u64()
        .unwrap_or(0);
    // hostile repository names land in the events stream, one token each
    for repo in ["my.repo", "a*b", "x>y", "with space", "~tilde"] {
        let subject = subjects::event_subject("acme", Some(repo), "push");
        let ack = js
            .publish(subject.clone(), repo.as_bytes().to_vec().into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(ack.stream, ev, "{subject}");
        let v = api(
            &nc,
            format!("$JS.API.STREAM.MSG.GET.{ev}"),
            serde_json::json!({"last_by_subj": subject}),
        )
        .await;
        let data = v["message"]["data"]
            .as_str()
            .unwrap_or_else(|| panic!("{subject}: {v}"));
        use base64::Engine;
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap(),
            repo.as_bytes()
        );
        assert_eq!(subject.split('.').count(), 4, "{subject}");
    }
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["state"]["messages"],
        base + 5
    );

    // a rerun of up with nothing changed changes nothing in JetStream
    let sniffer = inst.client().await;
    let (out, seen) = sniff(&sniffer, &nc, async { inst.up(&[]) }).await;
    common::ok(&out);
    assert!(
        mutations(&seen).is_empty(),
        "rerun mutated: {:?}",
        mutations(&seen)
    );

    // drift made behind ghboot's back
    raw_update(&nc, &ev, |c| c["max_age"] = (14 * DAY_NS).into()).await;
    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 2, "{}", text(&plan));
    assert!(
        text(&plan).contains("max_age: 14d -> 7d"),
        "{}",
        text(&plan)
    );
    let pj = inst.run(&["plan", "--json"]);
    assert_eq!(code(&pj), 2);
    let pj: Value = serde_json::from_slice(&pj.stdout).unwrap();
    let nats = pj["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "nats")
        .unwrap();
    assert_eq!(nats["changes"][0]["fields"][0]["field"], "max_age");

    common::ok(&inst.up(&[]));
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["config"]["max_age"].as_u64(),
        Some(7 * DAY_NS)
    );
    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 0, "{}", text(&plan));
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["state"]["messages"],
        base + 5,
        "fixed in place, messages kept"
    );
}

#[tokio::test]
async fn end_to_end_immutable_change_needs_allow_replace() {
    let inst = Instance::new();
    common::ok(&inst.up(&[]));
    let nc = inst.client().await;
    let ev = subjects::events_stream(ghboot::config::LOCAL_ORG);
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["config"]["storage"],
        "file"
    );
    std::fs::write(
        inst.dir.path().join("ghboot.toml"),
        "[topology.events]\nstorage = \"memory\"\n",
    )
    .unwrap();

    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 2, "{}", text(&plan));
    assert!(
        text(&plan).contains("replace required: storage"),
        "{}",
        text(&plan)
    );

    let out = inst.up(&[]);
    assert_eq!(
        code(&out),
        78,
        "refused as a configuration error: {}",
        text(&out)
    );
    assert!(
        text(&out).contains("storage file -> memory") && text(&out).contains("--allow-replace"),
        "{}",
        text(&out)
    );
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["config"]["storage"],
        "file",
        "nothing replaced"
    );

    let out = inst.up(&["--allow-replace"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        raw_info(&nc, &ev).await.unwrap()["config"]["storage"],
        "memory"
    );
    let plan = inst.run(&["plan"]);
    assert_eq!(code(&plan), 0, "{}", text(&plan));
}
