//! The bundled nats-server (issue 3): extraction into a private per-user cache, verification on every use,
//! concurrent extraction, the finder's order, `nats-server install`, and a bootstrap with no nats-server on
//! PATH. Every command runs the real ghboot with HOME/XDG_CACHE_HOME in a temp dir.

use crate::common::{self, ghboot_bin, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// PATH without any directory that holds a nats-server.
fn clean_path() -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("nats-server").exists())
        .collect();
    std::env::join_paths(dirs)
        .expect("join PATH")
        .to_string_lossy()
        .into_owned()
}

/// A private per-user world: its own HOME and cache dir, and a PATH without nats-server.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let w = World {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir_all(w.home()).expect("home");
        w
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    /// `<cache>/ghboot/nats-server` (directories' ProjectDirs on Linux)
    fn cache_root(&self) -> PathBuf {
        self.cache().join("ghboot").join("nats-server")
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(ghboot_bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("GHBOOT_")
                || k.starts_with("GITHUB_")
                || k == "BOOTSTRAP_MODE"
                || k == "XDG_CACHE_HOME"
            {
                c.env_remove(&k);
            }
        }
        c.env("HOME", self.home())
            .env("XDG_CACHE_HOME", self.cache())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("GHBOOT_STATE_DIR", self.dir.path().join("state"))
            .env("PATH", clean_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }
    fn which(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd();
        c.args(["nats-server", "which", "--json"]).args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run ghboot")
    }
    /// Every file under the cache root (names relative to it).
    fn cache_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.cache_root()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(
                        e.path()
                            .strip_prefix(self.cache_root())
                            .expect("under root")
                            .display()
                            .to_string(),
                    );
                }
            }
        }
        out.sort();
        out
    }
}

fn json(out: &Output) -> serde_json::Value {
    let stdout = common::ok(out);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn sha256(path: &Path) -> String {
    ghboot::natsd::pin::sha256_file(path).expect("hash").0
}

/// A file anyone may execute: the mode bits on Unix; Windows has none (ghboot's `file_mode` is `None`
/// there), so a file is all it takes.
fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
        && match ghboot::platform::file_mode(path) {
            Some(mode) => mode & 0o111 == 0o111,
            None => cfg!(windows),
        }
}

/// The test binary was built with a bundle (the default feature, with a source available at build time).
fn bundled() -> Option<ghboot::natsd::bundle::Info> {
    let info = ghboot::natsd::bundle::info();
    if info.is_none() {
        eprintln!("this ghboot was built without a bundled nats-server: bundle tests skipped");
    }
    info
}

/// An executable that matches the pinned checksum for this machine, if one can be had.
fn pinned_exe(w: &World) -> Option<PathBuf> {
    let pins = ghboot::natsd::pin::Pins::builtin();
    let want = pins
        .platform(ghboot::natsd::pin::host_key()?)?
        .exe_sha256
        .clone();
    if bundled().is_some() {
        let v = json(&w.which(&[], &[]));
        return Some(PathBuf::from(v["path"].as_str()?));
    }
    let p = common::nats_server_bin();
    (sha256(&p) == want).then_some(p)
}

#[test]
fn concurrent_extraction_gives_every_process_the_same_verified_executable() {
    let Some(info) = bundled() else { return };
    let w = World::new();
    let children: Vec<_> = (0..6)
        .map(|_| {
            w.cmd()
                .args(["nats-server", "which", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ghboot")
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait"))
        .collect();
    let answers: Vec<serde_json::Value> = outs.iter().map(json).collect();
    let path = PathBuf::from(answers[0]["path"].as_str().expect("path"));
    for a in &answers {
        assert_eq!(a["source"], "bundled", "{a}");
        assert_eq!(PathBuf::from(a["path"].as_str().expect("path")), path);
        assert_eq!(a["sha256"], info.sha256);
    }
    assert!(
        path.starts_with(w.cache_root()),
        "{} is in the private cache",
        path.display()
    );
    assert_eq!(sha256(&path), info.sha256);
    assert!(is_executable(&path));
    let v = Command::new(&path)
        .arg("--version")
        .output()
        .expect("run the extracted nats-server");
    assert!(
        String::from_utf8_lossy(&v.stdout).contains(info.version),
        "{v:?}"
    );
    // one executable, no temp files left behind
    let files: Vec<String> = w
        .cache_files()
        .into_iter()
        .filter(|f| !f.ends_with(".extract.lock"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}

#[test]
fn tampered_extracted_copy_is_replaced_not_run() {
    let Some(info) = bundled() else { return };
    let w = World::new();
    let path = PathBuf::from(json(&w.which(&[], &[]))["path"].as_str().expect("path"));
    let marker = w.dir.path().join("tampered-copy-ran");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ntouch {}\necho 'nats-server: v2.15.1'\n",
            marker.display()
        ),
    )
    .expect("tamper");
    assert_ne!(sha256(&path), info.sha256);
    // doctor runs `--version` of the nats-server it finds: the tampered copy must not be what runs
    let out = w.cmd().args(["doctor", "--json"]).output().expect("doctor");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("bundled"), "{report}");
    assert!(!marker.exists(), "the tampered copy was executed");
    assert_eq!(sha256(&path), info.sha256, "the copy was restored");
    assert!(is_executable(&path));
}

#[test]
fn resolution_order_explicit_then_bundle_then_cache_then_path() {
    let w = World::new();
    let exe = common::nats_server_bin();
    let other = w.dir.path().join("other-nats-server");
    common::copy_executable(&exe, &other);
    let flag = w.dir.path().join("flag-nats-server");
    common::copy_executable(&exe, &flag);
    let env_val = other.to_str().expect("utf8");

    // the flag beats the environment variable (GHBOOT_NATS_SERVER is the env of --nats-server)
    let v = json(&w.which(
        &["--nats-server", flag.to_str().expect("utf8")],
        &[("GHBOOT_NATS_SERVER", env_val)],
    ));
    assert_eq!(
        (v["source"].as_str(), v["path"].as_str()),
        (Some("explicit"), flag.to_str())
    );
    // the environment beats the bundle
    let v = json(&w.which(&[], &[("GHBOOT_NATS_SERVER", env_val)]));
    assert_eq!(
        (v["source"].as_str(), v["path"].as_str()),
        (Some("explicit"), Some(env_val))
    );

    // fill the per-user cache (install a pinned executable from a local file)
    let Some(src) = pinned_exe(&w) else {
        eprintln!("no executable matching the pin here: cache part skipped");
        return;
    };
    let installed = common::ok(
        &w.cmd()
            .args(["nats-server", "install", "--from"])
            .arg(&src)
            .output()
            .expect("install"),
    );
    let installed = PathBuf::from(installed.trim());
    assert!(
        installed.starts_with(w.cache_root().join("2.15.1")),
        "{}",
        installed.display()
    );

    // the bundle beats the cache
    if bundled().is_some() {
        let v = json(&w.which(&[], &[]));
        assert_eq!(v["source"], "bundled", "{v}");
    }
    // the cache beats PATH (a PATH that does hold a nats-server)
    let bin = w.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    common::copy_executable(&exe, &bin.join("nats-server"));
    let path_with = format!("{}:{}", bin.display(), clean_path());
    let v = json(&w.which(&[], &[("GHBOOT_SKIP_BUNDLED", "1"), ("PATH", &path_with)]));
    assert_eq!(
        (v["source"].as_str(), v["path"].as_str()),
        (Some("cache"), installed.to_str())
    );
    // a cached copy that no longer matches its recorded checksum is passed over: PATH answers
    std::fs::write(&installed, b"#!/bin/sh\nexit 0\n").expect("tamper");
    let v = json(&w.which(&[], &[("GHBOOT_SKIP_BUNDLED", "1"), ("PATH", &path_with)]));
    assert_eq!(v["source"], "path", "{v}");
    assert_eq!(v["path"].as_str(), bin.join("nats-server").to_str());
    // nothing anywhere: a clear failure with its exit code
    std::fs::remove_dir_all(w.cache_root()).expect("rm cache");
    let out = w.which(&[], &[("GHBOOT_SKIP_BUNDLED", "1")]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_refuses_a_checksum_mismatch_and_leaves_nothing_in_the_cache() {
    let w = World::new();
    let pins = ghboot::natsd::pin::Pins::builtin();
    let Some(plat) = ghboot::natsd::pin::host_key().and_then(|k| pins.platform(k)) else {
        return;
    };
    // a "wheel" with the pinned name but other bytes
    let wheel = w
        .dir
        .path()
        .join(&plat.wheel.as_ref().expect("wheel pinned").file);
    std::fs::write(&wheel, b"PK\x03\x04 not the pinned wheel").expect("write");
    let out = w
        .cmd()
        .args(["nats-server", "install", "--from"])
        .arg(&wheel)
        .output()
        .expect("install");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("mismatch") && err.contains(&plat.wheel.as_ref().expect("wheel").sha256),
        "names the expected checksum: {err}"
    );
    // a raw executable that is not the pinned one
    let exe = w.dir.path().join("nats-server");
    let mut bytes = std::fs::read(common::nats_server_bin()).expect("read");
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&exe, bytes).expect("write");
    let out = w
        .cmd()
        .args(["nats-server", "install", "--from"])
        .arg(&exe)
        .output()
        .expect("install");
    assert_eq!(
        out.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        w.cache_files(),
        Vec::<String>::new(),
        "nothing left in the cache"
    );
}

#[test]
fn bootstraps_from_the_bundle_with_no_nats_server_on_path() {
    if bundled().is_none() {
        return;
    }
    let inst = common::Instance::new();
    let w = World::new();
    let mut up = inst.cmd();
    up.env_remove("GHBOOT_NATS_SERVER")
        .env("HOME", w.home())
        .env("XDG_CACHE_HOME", w.cache())
        .env("PATH", clean_path())
        .args([
            "--mode",
            "dev",
            "--detach",
            "--non-interactive",
            "--org",
            "acme",
        ])
        .args([
            "--port",
            &inst.port.to_string(),
            "--monitor-port",
            &inst.monitor_port.to_string(),
        ])
        .args(["--webhook-port", &inst.webhook_port.to_string()]);
    let out = up.output().expect("up");
    common::ok(&out);
    wait_for(Duration::from_secs(60), "nats healthy", || {
        (inst.status()["nats"]["healthy"] == true).then_some(())
    });
    let pid = inst.status()["nats"]["pid"].as_u64().expect("nats pid") as u32;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe of the nats-server");
    assert!(
        exe.starts_with(w.cache_root()),
        "runs the extracted bundle, not {}",
        exe.display()
    );
}
