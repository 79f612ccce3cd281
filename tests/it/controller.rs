//! Controller and templates, end to end: the real ghboot binary, a real nats-server, real git repositories
//! (a bare "GitHub" whose post-receive hook delivers GitHub-shaped push events).
use crate::common::{self, ok, wait_for, TestServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const ORG: &str = "acme";
const HUMAN: [&str; 4] = [
    "-c",
    "user.name=Dev Eloper",
    "-c",
    "user.email=dev@example.com",
];
const BOT_EMAIL: &str = "ghboot-controller@users.noreply.github.com";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commit_push(work: &Path, msg: &str) {
    git(work, &["add", "-A"]);
    let mut a: Vec<&str> = HUMAN.to_vec();
    a.extend(["commit", "-q", "-m", msg]);
    git(work, &a);
    // the controller may have pushed meanwhile: rebase on it (as a person would)
    for _ in 0..20 {
        let out = Command::new("git")
            .arg("-C")
            .arg(work)
            .args(["push", "-q", "origin", "HEAD:main"])
            .output()
            .expect("git push");
        if out.status.success() {
            return;
        }
        let mut a: Vec<&str> = HUMAN.to_vec();
        a.extend(["pull", "-q", "--rebase", "origin", "main"]);
        git(work, &a);
    }
    panic!("could not push");
}

struct Rig {
    server: TestServer,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Rig {
    async fn new(extra_config: &str) -> Rig {
        let server = TestServer::start();
        let dir = tempfile::tempdir().expect("tmp");
        let rig = Rig {
            server,
            dir,
            children: vec![],
        };
        std::fs::create_dir_all(rig.path("tmp")).expect("tmp dir");
        std::fs::write(
            rig.config(),
            format!(
                "[controller]\nmin_interval_ms = 100\nbackoff_ms = 100\nmax_backoff_ms = 400\nmax_deliveries = 3\nack_wait_ms = 2000\nlock_wait_ms = 300\npush_attempts = 20\n{extra_config}"
            ),
        )
        .expect("config");
        let js = async_nats::jetstream::new(rig.server.client().await);
        for (name, subj) in [
            (
                ghboot::topology::subjects::events_stream(ORG),
                ghboot::topology::subjects::events_filter(ORG),
            ),
            (
                ghboot::topology::subjects::dead_letter_stream(ORG),
                ghboot::topology::subjects::dead_letter_filter(ORG),
            ),
            (
                ghboot::topology::subjects::ghboot_events_stream(ORG),
                ghboot::topology::subjects::ghboot_events_filter(ORG),
            ),
        ] {
            js.get_or_create_stream(async_nats::jetstream::stream::Config {
                name,
                subjects: vec![subj],
                ..Default::default()
            })
            .await
            .expect("stream");
        }
        // locks expire 5 s after their holder stops refreshing them (a killed controller's lock, below)
        js.create_key_value(async_nats::jetstream::kv::Config {
            bucket: ghboot::topology::subjects::LOCKS_BUCKET.into(),
            history: 1,
            max_age: Duration::from_secs(5),
            ..Default::default()
        })
        .await
        .expect("locks bucket");
        // the dev "GitHub": a bare repo whose hook publishes push events
        let bare = rig.bare();
        ok(&rig.ghboot(&[
            "git-hook",
            "install",
            "--git-dir",
            bare.to_str().unwrap_or_default(),
            "--deliver",
            &format!("nats:{}", rig.server.url()),
        ]));
        let seed = rig.path("seed");
        git_clone(&bare, &seed);
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
            &seed.join("templates"),
        );
        ok(&rig.ghboot(&["generate", "--repo", seed.to_str().unwrap_or_default()]));
        git(&seed, &["symbolic-ref", "HEAD", "refs/heads/main"]);
        commit_push(&seed, "Seed templates and generated files [skip-regen]");
        rig
    }
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn bare(&self) -> PathBuf {
        self.path(".github.git")
    }
    fn config(&self) -> PathBuf {
        self.path("ghboot.toml")
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(common::ghboot_bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("GHBOOT_") || k.starts_with("GITHUB_") || k.starts_with("GIT_") {
                c.env_remove(&k);
            }
        }
        c.env("GHBOOT_STATE_DIR", self.path("state"))
            .env("TMPDIR", self.path("tmp"))
            .args(["--org", ORG, "--config"])
            .arg(self.config())
            .stdin(Stdio::null());
        c
    }
    fn ghboot(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("ghboot")
    }
    fn controller(&mut self, instance: &str, env: &[(&str, String)]) -> usize {
        let log = std::fs::File::create(self.path(&format!(
            "controller-{instance}-{}.log",
            self.children.len()
        )))
        .expect("log");
        let mut c = self.cmd();
        c.args([
            "controller",
            "--nats-url",
            &self.server.url(),
            "--instance",
            instance,
        ])
        .stdout(Stdio::null())
        .stderr(log);
        for (k, v) in env {
            c.env(k, v);
        }
        self.children.push(c.spawn().expect("start controller"));
        self.children.len() - 1
    }
    fn kill(&mut self, i: usize) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
    }
    /// A fresh clone of the bare repo, for the human's edits.
    fn work(&self, name: &str) -> PathBuf {
        let w = self.path(name);
        if !w.exists() {
            git_clone(&self.bare(), &w);
        } else {
            let mut a: Vec<&str> = HUMAN.to_vec();
            a.extend(["pull", "-q", "--rebase", "origin", "main"]);
            git(&w, &a);
        }
        w
    }
    /// The counters a controller publishes to the `state` bucket (read on a thread of its own, so that
    /// it can be polled from a blocking `wait_for`).
    fn stats(&self, instance: &str) -> serde_json::Value {
        let url = self.server.url();
        let key = ghboot::topology::subjects::kv_key(&["controller", ORG, instance]);
        let read = move || -> Option<serde_json::Value> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let js = async_nats::jetstream::new(async_nats::connect(url).await.ok()?);
                let kv = js.get_key_value("state").await.ok()?;
                let b = kv.get(key).await.ok()??;
                serde_json::from_slice(&b).ok()
            })
        };
        std::thread::spawn(read)
            .join()
            .ok()
            .flatten()
            .unwrap_or_default()
    }
    /// Commits on main made by the controller.
    fn bot_commits(&self) -> Vec<String> {
        let log = git(&self.bare(), &["log", "--format=%H %ae", "main"]);
        log.lines()
            .filter(|l| l.ends_with(BOT_EMAIL))
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    }
    /// Does the head of main match what its templates produce?
    fn converged(&self) -> bool {
        let w = self.work("verify");
        self.ghboot(&["check", "--repo", w.to_str().unwrap_or_default()])
            .status
            .success()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tmp"));
            eprintln!("controller logs kept in {}", dir.keep().display());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

fn edit_template(work: &Path, line: &str) {
    let p = work.join("templates/.github/CODEOWNERS.j2");
    let mut t = std::fs::read_to_string(&p).expect("template");
    t.push_str(line);
    t.push('\n');
    std::fs::write(&p, t).expect("write template");
}

/// Poll until `f` returns Some; on timeout, panic showing the last thing `show` returned.
fn settle<T>(
    deadline: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    show: impl Fn() -> String,
) -> T {
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}; last seen: {}",
            show()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn num(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

#[test]
fn generate_is_idempotent_check_sees_drift_clean_spares_hand_written_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".github/workflows")).expect("mkdir");
    git(dir.path(), &["init", "-q", "repo"]);
    std::fs::write(repo.join("HANDWRITTEN.md"), "mine\n").expect("w");
    std::fs::write(repo.join(".github/workflows/handwritten.yml"), "mine\n").expect("w");
    let run = |args: &[&str]| {
        let mut c = Command::new(common::ghboot_bin());
        c.env("GHBOOT_STATE_DIR", dir.path().join("state"))
            .env_remove("GHBOOT_CONFIG")
            .current_dir(dir.path());
        c.args(args)
            .arg("--repo")
            .arg(&repo)
            .arg("--org")
            .arg(ORG)
            .output()
            .expect("ghboot")
    };
    assert_eq!(
        run(&["check"]).status.code(),
        Some(2),
        "check before generate reports missing files"
    );
    ok(&run(&["generate"]));
    git(&repo, &["add", "-A"]);
    let mut a: Vec<&str> = HUMAN.to_vec();
    a.extend(["commit", "-q", "-m", "gen"]);
    git(&repo, &a);
    ok(&run(&["generate"]));
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "second generate changed nothing"
    );
    ok(&run(&["check"]));
    // drift: an edited file and a deleted one are both listed
    std::fs::write(repo.join(".github/CODEOWNERS"), "* @someone\n").expect("w");
    std::fs::remove_file(repo.join(".github/workflows/ci.yml")).expect("rm");
    let out = run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(".github/CODEOWNERS") && listed.contains(".github/workflows/ci.yml"),
        "{listed}"
    );
    git(&repo, &["checkout", "-q", "--", "."]);
    ok(&run(&["clean"]));
    assert_eq!(common::read(&repo.join("HANDWRITTEN.md")), "mine\n");
    assert_eq!(
        common::read(&repo.join(".github/workflows/handwritten.yml")),
        "mine\n"
    );
    assert!(!repo.join(".github/workflows/ci.yml").exists());
    assert!(!repo.join(".github/.ghboot-manifest.json").exists());
    // generate refuses to overwrite a hand-written file at a generated path
    std::fs::write(repo.join(".github/CODEOWNERS"), "* @me\n").expect("w");
    assert_eq!(run(&["generate"]).status.code(), Some(65));
    assert_eq!(common::read(&repo.join(".github/CODEOWNERS")), "* @me\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_gives_few_regenerations_and_own_commits_never_trigger_one() {
    let mut rig = Rig::new("").await;
    let work = rig.work("work");
    // 50 template pushes while no controller runs: they wait in the stream and are coalesced into one
    for i in 0..50 {
        edit_template(&work, &format!("# burst {i}"));
        commit_push(&work, &format!("Template change {i}"));
    }
    rig.controller("c1", &[]);
    let s = wait_for(Duration::from_secs(60), "the burst to be handled", || {
        let s = rig.stats("c1");
        (num(&s, "received") >= 52 && num(&s, "regenerations") >= 1).then_some(s)
    });
    assert_eq!(
        num(&s, "regenerations"),
        1,
        "51 pending pushes, one regeneration: {s}"
    );
    assert_eq!(num(&s, "commits"), 1, "{s}");
    assert_eq!(rig.bot_commits().len(), 1);
    assert!(rig.converged(), "files match the newest templates");
    let newest = common::read(&rig.work("verify").join(".github/CODEOWNERS"));
    assert!(newest.contains("# burst 49"), "{newest}");
    // a live burst: pushes while the controller works; it converges with fewer regenerations than pushes
    for i in 50..80 {
        edit_template(&work, &format!("# live {i}"));
        commit_push(&work, &format!("Template change {i}"));
    }
    let s = settle(
        Duration::from_secs(90),
        "the live burst to settle",
        || {
            let s = rig.stats("c1");
            let c = rig.bot_commits().len() as u64;
            // every pushed event seen (51 + 30 human, plus one per bot commit, plus redeliveries after a
            // failed attempt), every bot commit ignored
            (num(&s, "received") == 81 + c + num(&s, "failures")
                && num(&s, "ignored_self") == 1 + c
                && num(&s, "commits") == c
                && rig.converged())
            .then_some(s)
        },
        || {
            format!(
                "{} bot commits, stats {}",
                rig.bot_commits().len(),
                rig.stats("c1")
            )
        },
    );
    assert!(num(&s, "regenerations") < 31, "coalesced: {s}");
    assert!(common::read(&rig.work("verify").join(".github/CODEOWNERS")).contains("# live 79"));
    // zero regenerations triggered by the controller's own commits: no `running` workflow event names one
    let bots: std::collections::HashSet<String> = rig.bot_commits().into_iter().collect();
    for ev in workflow_events(&rig).await {
        if ev["state"] == "running" {
            assert!(
                !bots.contains(ev["head"].as_str().unwrap_or("")),
                "a regeneration was triggered by the controller's own commit: {ev}"
            );
        }
    }
    assert_eq!(num(&s, "dead_lettered"), 0);
}

async fn workflow_events(rig: &Rig) -> Vec<serde_json::Value> {
    let js = async_nats::jetstream::new(rig.server.client().await);
    let mut stream = js
        .get_stream(ghboot::topology::subjects::ghboot_events_stream(ORG))
        .await
        .expect("events stream");
    let info = stream.info().await.expect("info");
    let mut out = vec![];
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push(serde_json::from_slice(&m.payload).unwrap_or_default());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn two_controllers_never_regenerate_at_the_same_time() {
    let mut rig = Rig::new("").await;
    rig.controller("c1", &[]);
    rig.controller("c2", &[]);
    let work = rig.work("work");
    for i in 0..20 {
        edit_template(&work, &format!("# change {i}"));
        commit_push(&work, &format!("Template change {i}"));
    }
    wait_for(
        Duration::from_secs(90),
        "both controllers to settle",
        || {
            let a = rig.stats("c1");
            let b = rig.stats("c2");
            let c = rig.bot_commits().len() as u64;
            let received = num(&a, "received") + num(&b, "received")
                - num(&a, "failures")
                - num(&b, "failures");
            let ignored = num(&a, "ignored_self") + num(&b, "ignored_self");
            (received == 21 + c && ignored == 1 + c && rig.converged()).then_some(())
        },
    );
    // the invariant, from the published transitions: between one controller's `running` and its
    // `completed`/`failed`, no other controller starts
    let events = workflow_events(&rig).await;
    let mut holder: Option<String> = None;
    let mut runs = 0;
    for ev in &events {
        let who = ev["instance"].as_str().unwrap_or("").to_string();
        match ev["state"].as_str() {
            Some("running") => {
                assert!(
                    holder.is_none(),
                    "{who} started while {holder:?} was running: {events:#?}"
                );
                holder = Some(who);
                runs += 1;
            }
            Some("completed") | Some("failed") => {
                assert_eq!(holder.as_deref(), Some(who.as_str()), "{events:#?}");
                holder = None;
            }
            _ => {}
        }
    }
    assert!(runs >= 1);
    // and the fencing tokens the regenerations ran under only ever grow
    let tokens: Vec<u64> = events
        .iter()
        .filter(|e| e["state"] == "running")
        .filter_map(|e| e["fencing_token"].as_u64())
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_ends_in_the_dead_letter_stream_and_can_be_replayed() {
    let mut rig = Rig::new("").await;
    rig.controller("c1", &[]);
    let url = rig.server.url();
    // 1. not a push payload at all
    let js = async_nats::jetstream::new(rig.server.client().await);
    let subject = ghboot::topology::subjects::event_subject(ORG, Some(".github"), "push");
    js.publish(subject, "this is not json".into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    // 2. a real push of a broken template: rendering fails on every delivery
    let work = rig.work("work");
    edit_template(&work, "{{ broken");
    commit_push(&work, "Break a template");
    let list = |rig: &Rig| -> serde_json::Value {
        let out = rig.ghboot(&["dlq", "list", "--json", "--nats-url", &url]);
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let letters = wait_for(Duration::from_secs(60), "two dead letters", || {
        let l = list(&rig);
        (l.as_array().map(|a| a.len()) == Some(2)).then_some(l)
    });
    let reasons: Vec<String> = letters
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("does not parse")),
        "{reasons:?}"
    );
    assert!(
        letters
            .as_array()
            .into_iter()
            .flatten()
            .all(|l| l["deliveries"] == "3"),
        "{letters}"
    );
    let stats = rig.stats("c1");
    assert_eq!(num(&stats, "dead_lettered"), 2, "{stats}");
    assert_eq!(rig.bot_commits().len(), 0);
    // fix the template without triggering a regeneration, then replay the dead push event
    let p = work.join("templates/.github/CODEOWNERS.j2");
    let fixed = std::fs::read_to_string(&p)
        .expect("t")
        .replace("{{ broken", "# fixed");
    std::fs::write(&p, fixed).expect("w");
    commit_push(&work, "Fix the template [skip-regen]");
    let id = letters
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| {
            l["reason"]
                .as_str()
                .unwrap_or("")
                .contains("does not parse")
        })
        .map(|l| l["id"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    ok(&rig.ghboot(&["dlq", "replay", &id.to_string(), "--nats-url", &url]));
    wait_for(
        Duration::from_secs(60),
        "the replayed event to regenerate",
        || (rig.bot_commits().len() == 1 && rig.converged()).then_some(()),
    );
    assert!(common::read(&rig.work("verify").join(".github/CODEOWNERS")).contains("# fixed"));
    assert_eq!(
        list(&rig).as_array().map(|a| a.len()),
        Some(1),
        "the replayed letter left the dead-letter stream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_killed_mid_regeneration_converges_without_a_duplicate_commit() {
    let mut rig = Rig::new("").await;
    let work = rig.work("work");
    for (n, point) in ["before_push", "after_push"].iter().enumerate() {
        let marker = rig.path(&format!("paused-{point}"));
        let c = rig.controller(
            &format!("k{n}"),
            &[(
                "GHBOOT_CONTROLLER_TEST_PAUSE",
                format!("{point}:{}", marker.display()),
            )],
        );
        edit_template(&work, &format!("# change at {point}"));
        commit_push(&work, &format!("Template change {point}"));
        wait_for(
            Duration::from_secs(60),
            "the controller to reach the pause point",
            || marker.exists().then_some(()),
        );
        rig.kill(c);
        let pushed_before = rig.bot_commits().len();
        rig.controller(&format!("r{n}"), &[]);
        wait_for(
            Duration::from_secs(90),
            "the restarted controller to converge",
            || {
                let s = rig.stats(&format!("r{n}"));
                (num(&s, "regenerations") >= 1 && rig.converged()).then_some(())
            },
        );
        assert_eq!(
            rig.bot_commits().len(),
            n + 1,
            "exactly one regeneration commit per template change (killed {point}, {pushed_before} pushed before the kill)"
        );
        let last = rig.children.len() - 1;
        rig.kill(last);
    }
}

/// The whole loop through the real supervisor: `up` in dev ends with self-management done, which proved
/// template push → post-receive → signed webhook → NATS → controller → `[skip-regen]` commit → its own push
/// ignored. Then once more by hand, as a person would.
#[tokio::test(flavor = "multi_thread")]
async fn the_full_round_trip_through_the_supervisor() {
    let inst = common::Instance::new();
    // the round trip goes through the webhook receiver (issue #5); until it is part of the build, there is
    // nothing to test end to end (self-management then stays pending with that reason)
    if !inst.run(&["webhook", "--help"]).status.success() {
        eprintln!("skipped: this build has no webhook receiver");
        return;
    }
    ok(&inst.up(&[]));
    let st = wait_for(Duration::from_secs(180), "all six stages done", || {
        let st = inst.status();
        st["stages"]
            .as_array()?
            .iter()
            .all(|s| s["status"] == "done")
            .then_some(st)
    });
    let sm = st["stages"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "self-management").cloned())
        .unwrap_or_default();
    let trip = &sm["last_round_trip"];
    assert!(
        trip["duration_ms"].as_u64().is_some(),
        "status shows the last round trip: {sm}"
    );
    let org = st["org"].as_str().unwrap_or("local").to_string();
    let bare = inst
        .state_dir()
        .join("github")
        .join(&org)
        .join(".github.git");
    let regenerated = trip["regenerated"].as_str().unwrap_or_default().to_string();
    let msg = git(&bare, &["log", "-1", "--format=%B", &regenerated]);
    assert!(msg.contains("[skip-regen]"), "{msg}");
    // by hand: change a template and push; the controller regenerates once and ignores its own push
    let work = inst.dir.path().join("work");
    git_clone(&bare, &work);
    edit_template(&work, "# by hand");
    commit_push(&work, "Change a template by hand");
    let pushed = git(&work, &["rev-parse", "HEAD"]);
    let bot = wait_for(Duration::from_secs(60), "a regenerated commit", || {
        let log = git(
            &bare,
            &["log", "--format=%H %ae", &format!("{pushed}..main")],
        );
        log.lines()
            .find(|l| l.ends_with(BOT_EMAIL))
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
    });
    let controller = wait_for(
        Duration::from_secs(60),
        "the controller to ignore its own push",
        || {
            let c = inst.status()["components"]["controller"].clone();
            c["recent_ignored"]
                .as_array()?
                .iter()
                .any(|h| h.as_str() == Some(bot.as_str()))
                .then_some(c)
        },
    );
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        bot,
        "nothing after the regenerated commit: {controller}"
    );
    let codeowners = git(&bare, &["show", "main:.github/CODEOWNERS"]);
    assert!(codeowners.contains("# by hand"), "{codeowners}");
}

/// `git clone -q FROM TO`, its stderr kept out of the test output unless it fails (cloning a new, empty
/// bare repository always warns "You appear to have cloned an empty repository").
fn git_clone(from: &Path, to: &Path) {
    let o = Command::new("git")
        .args(["clone", "-q"])
        .arg(from)
        .arg(to)
        .output()
        .expect("git clone");
    assert!(
        o.status.success(),
        "git clone {} failed: {}",
        from.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}
