//! `cargo xtask bench`: every figure as the median of repeated runs, with its min–max spread and the ratio to
//! a baseline measured in the same run, written to BENCHMARKS.md. Wall-clock figures are what a user waits
//! for: from spawning the command until it is ready.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Env {
    pub ghboot: PathBuf,
    pub nats_server: PathBuf,
    pub python: PathBuf,
    pub reps: usize,
    pub tmp: tempfile::TempDir,
}

#[derive(Clone)]
pub struct Figure {
    pub name: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
}

impl Figure {
    pub fn new(name: &str, unit: &'static str, samples: Vec<f64>) -> Self {
        Figure {
            name: name.into(),
            unit,
            samples,
        }
    }
    pub fn median(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        if s.is_empty() {
            return f64::NAN;
        }
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }
    pub fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }
    pub fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// One table: a baseline and the figures compared with it.
pub struct Table {
    pub title: String,
    pub note: String,
    pub baseline: Figure,
    pub rows: Vec<Figure>,
}

pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    ls.iter()
        .filter_map(|l| l.local_addr().ok())
        .map(|a| a.port())
        .collect()
}

pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(200),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn wait_healthz(port: u16, deadline: Duration) -> Result<()> {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if http_status(port, "/healthz?js-enabled-only=true") == Some(200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    bail!("not healthy within {deadline:?}")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bare `nats-server -js` from spawn to `/healthz?js-enabled-only=true`.
pub fn bare_start(env: &Env, store: Option<&Path>) -> Result<f64> {
    let p = free_ports(2);
    let dir = tempfile::tempdir_in(env.tmp.path())?;
    let store = store
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.path().join("js"));
    let t = Instant::now();
    let child = Command::new(&env.nats_server)
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &p[0].to_string(),
            "-m",
            &p[1].to_string(),
            "-sd",
        ])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _k = Killed(child);
    wait_healthz(p[1], Duration::from_secs(20))?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

pub fn ghboot(env: &Env, state: &Path) -> Command {
    let mut c = Command::new(&env.ghboot);
    c.env("GHBOOT_STATE_DIR", state)
        .env("GHBOOT_NATS_SERVER", &env.nats_server)
        .env("XDG_CONFIG_HOME", state.with_extension("config"))
        .env_remove("GITHUB_ORG")
        .env_remove("GITHUB_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn run_ok(c: &mut Command) -> Result<f64> {
    let t = Instant::now();
    let st = c.status()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !st.success() {
        bail!("{c:?} failed: {st}");
    }
    Ok(ms)
}

pub struct Instance {
    pub state: PathBuf,
    pub monitor_port: u16,
    ghboot: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new(&self.ghboot)
            .args(["down", "--purge", "--state-dir"])
            .arg(&self.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `ghboot --mode dev --detach` on a fresh state dir: returns once every stage is done.
pub fn cold_up(env: &Env) -> Result<(f64, Instance)> {
    let (_, all, inst) = cold_up_split(env)?;
    Ok((all, inst))
}

/// Cold `up --detach`: (ms until its nats-server answers healthz, ms until the command returns with all six
/// stages done, the instance).
pub fn cold_up_split(env: &Env) -> Result<(f64, f64, Instance)> {
    let p = free_ports(3);
    let state = tempfile::tempdir_in(env.tmp.path())?.keep().join("state");
    let inst = Instance {
        state: state.clone(),
        monitor_port: p[1],
        ghboot: env.ghboot.clone(),
    };
    let t = Instant::now();
    let mut child = ghboot(env, &state)
        .args(["--mode", "dev", "--detach", "--non-interactive"])
        .args([
            "--port",
            &p[0].to_string(),
            "--monitor-port",
            &p[1].to_string(),
            "--webhook-port",
            &p[2].to_string(),
        ])
        .spawn()?;
    let mut nats_ready = None;
    loop {
        if nats_ready.is_none() && http_status(p[1], "/healthz?js-enabled-only=true") == Some(200) {
            nats_ready = Some(t.elapsed().as_secs_f64() * 1000.0);
        }
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!("ghboot up failed: {st}");
            }
            break;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            bail!("ghboot up not ready within 120 s");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let all = t.elapsed().as_secs_f64() * 1000.0;
    Ok((nats_ready.unwrap_or(all), all, inst))
}

fn json_of(c: &mut Command) -> Result<serde_json::Value> {
    let out = c.stdout(Stdio::piped()).output()?;
    serde_json::from_slice(&out.stdout).context("not JSON")
}

pub fn status(env: &Env, inst: &Instance) -> Result<serde_json::Value> {
    json_of(ghboot(env, &inst.state).args(["status", "--json"]))
}

fn vm_hwm_kib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub fn startup(env: &Env) -> Result<Vec<Table>> {
    let reps = env.reps;
    let mut bare = Vec::new();
    let mut cold = Vec::new();
    let mut cold_nats = Vec::new();
    let mut noop = Vec::new();
    let mut eph = Vec::new();
    let mut recovery = Vec::new();
    let mut restart_bare = Vec::new();
    let mut rss_sup = Vec::new();
    let mut rss_nats = Vec::new();
    for _ in 0..reps {
        bare.push(bare_start(env, None)?);
        let (nats_ms, ms, inst) = cold_up_split(env)?;
        cold_nats.push(nats_ms);
        cold.push(ms);
        noop.push(run_ok(ghboot(env, &inst.state).args([
            "--mode",
            "dev",
            "--detach",
            "--non-interactive",
        ]))?);
        let st = status(env, &inst)?;
        let sup = st["supervisor"]["pid"].as_u64().context("supervisor pid")? as u32;
        let nats = st["nats"]["pid"].as_u64().context("nats pid")? as u32;
        rss_sup.push(vm_hwm_kib(sup).unwrap_or(f64::NAN) / 1024.0);
        rss_nats.push(vm_hwm_kib(nats).unwrap_or(f64::NAN) / 1024.0);
        // recovery: SIGKILL nats-server, time until the supervisor's replacement answers healthz
        let t = Instant::now();
        Command::new("kill")
            .args(["-9", &nats.to_string()])
            .status()?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let alive_old = std::fs::metadata(format!("/proc/{nats}")).is_ok();
            if !alive_old
                && http_status(inst.monitor_port, "/healthz?js-enabled-only=true") == Some(200)
            {
                break;
            }
            if Instant::now() > until {
                bail!("no recovery within 30s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        recovery.push(t.elapsed().as_secs_f64() * 1000.0);
        // its baseline: bare nats-server started on a store that already holds data
        let store = tempfile::tempdir_in(env.tmp.path())?;
        bare_start(env, Some(store.path()))?;
        restart_bare.push(bare_start(env, Some(store.path()))?);
        drop(inst);
        // ephemeral: fresh temp dir, free ports
        let tmpdir = tempfile::tempdir_in(env.tmp.path())?;
        let t = Instant::now();
        let out = Command::new(&env.ghboot)
            .env("TMPDIR", tmpdir.path())
            .env("GHBOOT_NATS_SERVER", &env.nats_server)
            .env("XDG_CONFIG_HOME", tmpdir.path().join("config"))
            .env_remove("GHBOOT_STATE_DIR")
            .args(["--mode", "dev", "--ephemeral", "--detach", "--json"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        eph.push(t.elapsed().as_secs_f64() * 1000.0);
        let ready = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "ready")
            .context("ephemeral up printed no ready event")?;
        let sd = ready["state_dir"]
            .as_str()
            .context("state dir")?
            .to_string();
        Command::new(&env.ghboot)
            .args(["down", "--purge", "--state-dir", &sd])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
    }
    let alt = alternatives(env)?;
    let mut eph_rows = vec![Figure::new(
        "`ghboot --mode dev --ephemeral --detach` to ready (JetStream topology, receiver and controller; no git round trip)",
        "ms",
        eph.clone(),
    )];
    eph_rows.extend(alt);
    Ok(vec![
        Table {
            title: "Start-up".into(),
            note: "From spawning the command until it returns ready (ghboot) or `/healthz?js-enabled-only=true` answers 200 (bare nats-server). ghboot's figure includes its own process start, the prerequisite checks, the state file, spawning the supervisor, the server and creating the JetStream topology.".into(),
            baseline: Figure::new("bare `nats-server -js` start to healthy", "ms", bare.clone()),
            rows: vec![
                Figure::new("`ghboot --mode dev --detach`, cold: its nats-server healthy (stages 1–3 of 6)", "ms", cold_nats),
                Figure::new("`ghboot --mode dev --detach`, cold, to ready: all six stages, including the self-management round trip through git, the receiver and the controller", "ms", cold),
                Figure::new("no-op rerun of `ghboot --mode dev --detach` (re-verifies every stage)", "ms", noop),
            ],
        },
        Table {
            title: "Ephemeral NATS for CI".into(),
            note: "Each tool pointed at the same nats-server binary; measured from spawn to ready as the tool reports it.".into(),
            baseline: Figure::new("bare `nats-server -js` start to healthy", "ms", bare),
            rows: eph_rows,
        },
        Table {
            title: "Recovery".into(),
            note: "SIGKILL of the supervised nats-server until its replacement answers healthz, against a bare nats-server restarted on a store dir that already holds data.".into(),
            baseline: Figure::new("bare nats-server restart on an existing store", "ms", restart_bare),
            rows: vec![Figure::new("ghboot supervisor: nats-server SIGKILLed to healthy again", "ms", recovery)],
        },
        Table {
            title: "Memory".into(),
            note: "Peak resident set (VmHWM) after bootstrap, against the nats-server it supervises.".into(),
            baseline: Figure::new("nats-server peak RSS", "MiB", rss_nats),
            rows: vec![Figure::new("ghboot supervisor peak RSS", "MiB", rss_sup)],
        },
    ])
}

/// Other ways people get an ephemeral NATS for tests that run here (PyPI; npm is unreachable here).
fn alternatives(env: &Env) -> Result<Vec<Figure>> {
    let mut out = Vec::new();
    let script = r#"
import sys, tempfile
from nats_contrib.test_server import NATSD
port = int(sys.argv[1])
d = tempfile.mkdtemp()
n = NATSD(port=port, address="127.0.0.1", with_jetstream=True, store_directory=d, output_colorized=False)
n.start(wait=True)
print("READY", flush=True)
sys.stdin.read()
n.stop()
"#;
    let mut samples = Vec::new();
    for _ in 0..env.reps {
        let port = free_ports(1)[0];
        let path = std::env::join_paths(
            std::iter::once(
                env.nats_server
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
            )
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
        )?;
        let t = Instant::now();
        let mut child = Command::new(&env.python)
            .args(["-c", script, &port.to_string()])
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // the tool logs to stdout too: read lines until ours
        let mut line = String::new();
        if let Some(o) = child.stdout.as_mut() {
            let mut b = [0u8; 1];
            while o.read(&mut b)? == 1 {
                if b[0] == b'\n' {
                    if line.trim() == "READY" {
                        break;
                    }
                    line.clear();
                } else {
                    line.push(b[0] as char);
                }
            }
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        drop(child.stdin.take());
        let _ = child.wait();
        if line.trim() != "READY" {
            eprintln!("nats-test-server did not start; leaving it out");
            return Ok(out);
        }
        samples.push(ms);
    }
    out.push(Figure::new("`nats-test-server` (PyPI) `NATSD(with_jetstream=True).start(wait=True)`, no streams created", "ms", samples));
    Ok(out)
}

pub fn render(tables: &[Table], header: &str) -> String {
    let mut s = String::from("# Benchmarks\n\n");
    s.push_str(header);
    s.push_str("\nEvery figure is the median of repeated runs, with the min–max spread, and its ratio to the baseline of its table measured in the same run (ratio = figure ÷ baseline; for throughput, higher is better). Regenerate with `cargo xtask bench`.\n");
    for t in tables {
        s.push_str(&format!(
            "\n## {}\n\n{}\n\n| | median | min–max | ratio to baseline |\n|---|---:|---:|---:|\n",
            t.title, t.note
        ));
        let b = t.baseline.median();
        let row = |f: &Figure, ratio: String| {
            format!(
                "| {} | {:.1} {} | {:.1}–{:.1} | {} |\n",
                f.name,
                f.median(),
                f.unit,
                f.min(),
                f.max(),
                ratio
            )
        };
        s.push_str(&row(&t.baseline, "1.00× (baseline)".into()));
        for f in &t.rows {
            s.push_str(&row(f, format!("{:.2}×", f.median() / b)));
        }
    }
    s
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A burst of template pushes to dev's local "GitHub": how many regenerations come out, and how long until the
/// generated files carry the newest template. Baseline: one push, same measure.
pub fn controller_burst(env: &Env) -> Result<Vec<Table>> {
    const BURST: usize = 20;
    let mut single = Vec::new();
    let mut burst = Vec::new();
    let mut regens = Vec::new();
    for rep in 0..env.reps {
        let (_, inst) = cold_up(env)?;
        let bare = inst.state.join("github").join("local").join(".github.git");
        let work = tempfile::tempdir_in(env.tmp.path())?;
        git(work.path(), &["clone", "-q", &bare.to_string_lossy(), "w"])?;
        let w = work.path().join("w");
        let regenerations = |env: &Env| -> u64 {
            status(env, &inst)
                .ok()
                .and_then(|s| s["components"]["controller"]["regenerations"].as_u64())
                .unwrap_or(0)
        };
        let converge = |marker: &str| -> Result<()> {
            let until = Instant::now() + Duration::from_secs(120);
            loop {
                git(&w, &["fetch", "-q", "origin"])?;
                let f =
                    git(&w, &["show", "origin/main:.github/workflows/ci.yml"]).unwrap_or_default();
                if f.contains(marker) {
                    return Ok(());
                }
                if Instant::now() > until {
                    bail!("controller did not converge on {marker}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let template = w.join("templates/.github/workflows/ci.yml.j2");
        let push = |marker: &str| -> Result<()> {
            git(&w, &["pull", "-q", "--rebase", "origin", "main"])?;
            let mut t = std::fs::read_to_string(&template)?;
            t.push_str(&format!("# {marker}\n"));
            std::fs::write(&template, t)?;
            git(&w, &["commit", "-qam", marker])?;
            // the controller pushes too: a rejected push is rebased and sent again, as a person would
            for attempt in 0.. {
                match git(&w, &["push", "-q", "origin", "HEAD:main"]) {
                    Ok(_) => break,
                    Err(e) if attempt >= 20 => return Err(e),
                    Err(_) => {
                        git(&w, &["pull", "-q", "--rebase", "origin", "main"])?;
                    }
                }
            }
            Ok(())
        };
        let t = Instant::now();
        push(&format!("bench-single-{rep}"))?;
        converge(&format!("bench-single-{rep}"))?;
        single.push(t.elapsed().as_secs_f64() * 1000.0);
        let before = regenerations(env);
        let t = Instant::now();
        for k in 0..BURST {
            push(&format!("bench-burst-{rep}-{k}"))?;
        }
        converge(&format!("bench-burst-{rep}-{}", BURST - 1))?;
        burst.push(t.elapsed().as_secs_f64() * 1000.0);
        // let the controller finish what it is doing, then count
        std::thread::sleep(Duration::from_millis(500));
        regens.push((regenerations(env) - before) as f64);
    }
    Ok(vec![Table {
        title: "Controller: a burst of template pushes".into(),
        note: format!(
            "{BURST} template pushes in quick succession to dev's local \"GitHub\" (each a real git push whose post-receive hook posts a signed delivery), until the regenerated files carry the newest template. Regenerations for the burst (not a time): median {:.0}, min–max {:.0}–{:.0} for {BURST} pushes. Baseline: one push, the same way.",
            Figure::new("", "", regens.clone()).median(),
            Figure::new("", "", regens.clone()).min(),
            Figure::new("", "", regens).max()
        ),
        baseline: Figure::new("one template push to regenerated commit", "ms", single),
        rows: vec![Figure::new(&format!("{BURST} pushes to converged"), "ms", burst)],
    }])
}

/// First run of a ghboot with the bundled nats-server (extraction into an empty cache) against a warm run.
pub fn extraction(env: &Env) -> Result<Option<Table>> {
    let which = |cache: &Path| -> Result<(f64, String)> {
        let t = Instant::now();
        let out = Command::new(&env.ghboot)
            .args(["nats-server", "which", "--json"])
            .env("XDG_CACHE_HOME", cache)
            .env_remove("GHBOOT_NATS_SERVER")
            .env("PATH", "/usr/bin:/bin")
            .stderr(Stdio::null())
            .output()?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        Ok((ms, v["source"].as_str().unwrap_or_default().to_string()))
    };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..env.reps {
        let cache = tempfile::tempdir_in(env.tmp.path())?;
        let (ms, source) = which(cache.path())?;
        if source != "bundled" {
            eprintln!("this ghboot has no bundled nats-server ({source}); extraction not measured");
            return Ok(None);
        }
        cold.push(ms);
        warm.push(which(cache.path())?.0);
    }
    Ok(Some(Table {
        title: "Bundled nats-server".into(),
        note: "`ghboot nats-server which` with an empty per-user cache (extracts and verifies the embedded, zstd-compressed server) against the same command once the cache is warm (re-verifies its SHA-256 on every use).".into(),
        baseline: Figure::new("warm run (verify the cached copy)", "ms", warm),
        rows: vec![Figure::new("first run (extract, verify, install atomically)", "ms", cold)],
    }))
}
