//! `cargo xtask xcheck`: compile and lint the whole workspace for Windows and macOS on a Linux machine that
//! cannot download those targets' std (no rustup targets, no SDKs).
//!
//! How: Debian's Rust (`rustc-web`, `cargo-web`, `rust-web-src`, `rust-web-clippy`, bookworm-security) ships
//! the std *source*, so `-Zbuild-std` (allowed by `RUSTC_BOOTSTRAP=1`) compiles std for any target. Nothing
//! is linked, so build scripts that run a C compiler for the target (ring, zstd-sys) get a stub that only
//! creates its output files; windows-gnu's std needs mingw's `dlltool` (`binutils-mingw-w64-x86-64`). It
//! proves the code compiles and is lint-clean for the target; it runs nothing there.
//!
//! Missing Debian packages are installed with apt-get (through sudo when not root). Cost on 2 cores: the
//! first run per target builds std and every dependency (70-98 s unloaded), later runs take 8-10 s.
//!
//! usage: cargo xtask xcheck [--targets T1,T2] [--features default|none|both] [--check] [-- cargo args]
//!   default: clippy --workspace --all-targets -- -D warnings, all four targets, with and without `bundled`.
//!   XCHECK_TARGET_DIR (default target/xcheck) and XCHECK_CARGO_HOME (default: the usual CARGO_HOME, so the
//!   registry and nats-server download caches are shared) move its state.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const ALL_TARGETS: &[&str] = &[
    "x86_64-pc-windows-msvc",
    "x86_64-pc-windows-gnu",
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
];

const APT_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-clippy",
    "binutils-mingw-w64-x86-64",
];

const CARGO: &str = "/usr/bin/cargo";
const RUSTC: &str = "/usr/bin/rustc";
const STD_SRC: &str = "/usr/lib/rustlib/src/rust/library/std/src/lib.rs";
const DLLTOOL: &str = "/usr/bin/x86_64-w64-mingw32-dlltool";
const CLIPPY: &str = "/usr/bin/cargo-clippy";

/// A C compiler and archiver for build scripts that link nothing: answers the cc crate's probes (`-E` for
/// the compiler family, `-?` for MSVC detection) and creates whatever output file it is asked for.
const STUB_CC: &str = r#"#!/bin/sh
case " $* " in *" -E "*) echo '#pragma message "clang"'; exit 0;; *" -? "*) exit 1;; esac
out=; prev=
for a in "$@"; do
  case "$prev" in -o) out=$a;; esac
  case "$a" in -Fo?*) out=${a#-Fo};; -out:*) out=${a#-out:};; esac
  prev=$a
done
case "$1" in cq|cqD|crs|crsD|rcs|q|s) out=$2;; esac
[ -n "$out" ] && : > "$out"
exit 0
"#;

struct Opts {
    targets: Vec<String>,
    features: Vec<Option<&'static str>>,
    cmd: &'static str,
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        targets: ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
        features: vec![None, Some("--no-default-features")],
        cmd: "clippy",
        extra: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--targets" => {
                let v = it
                    .next()
                    .context("--targets needs a comma-separated list")?;
                o.targets = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
            }
            "--features" => {
                o.features = match it.next().map(String::as_str) {
                    Some("default") => vec![None],
                    Some("none") => vec![Some("--no-default-features")],
                    Some("both") => vec![None, Some("--no-default-features")],
                    _ => bail!("--features takes default, none or both"),
                }
            }
            "--check" => o.cmd = "check",
            "--" => {
                o.extra = it.cloned().collect();
                break;
            }
            other => bail!("unknown xcheck argument {other:?} (see `cargo xtask xcheck --help`)"),
        }
    }
    if o.extra.is_empty() {
        o.extra = ["--workspace", "--all-targets"].map(String::from).to_vec();
        if o.cmd == "clippy" {
            o.extra.extend(["--", "-D", "warnings"].map(String::from));
        }
    }
    Ok(o)
}

/// Install Debian's Rust with std source and mingw's dlltool where one of them is missing.
fn ensure_toolchain() -> Result<()> {
    if [CARGO, RUSTC, STD_SRC, DLLTOOL, CLIPPY]
        .iter()
        .all(|p| Path::new(p).exists())
    {
        return Ok(());
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "xcheck needs Debian's rust-web toolchain ({}); install it, or run this on Debian 12",
            APT_PACKAGES.join(" ")
        );
    }
    eprintln!("xcheck: installing {}", APT_PACKAGES.join(" "));
    // `id -u` rather than libc: xtask has no unsafe code
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        crate::run(&mut c)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-q"];
    install.extend(APT_PACKAGES);
    apt(&install)
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: cargo xtask xcheck [--targets T1,T2] [--features default|none|both] [--check] [-- cargo args]");
        println!("targets (default all): {}", ALL_TARGETS.join(" "));
        return Ok(());
    }
    let o = parse(args)?;
    ensure_toolchain()?;
    let root = crate::root();
    let target_dir = std::env::var_os("XCHECK_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("xcheck"));
    let bin = target_dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let nocc = bin.join("nocc");
    std::fs::write(&nocc, STUB_CC)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&nocc, std::fs::Permissions::from_mode(0o755))?;
    }
    // Debian's tools first: rustup's proxies (earlier on PATH under `cargo xtask`) must not answer for them
    let path = std::env::join_paths(std::iter::once(PathBuf::from("/usr/bin")).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let mut failed = Vec::new();
    for feat in &o.features {
        for t in &o.targets {
            let label = format!("{t} {}", feat.unwrap_or("(default features)"));
            println!("=== {label}");
            let var = t.replace('-', "_");
            let mut c = Command::new(CARGO);
            c.current_dir(&root)
                .env("PATH", &path)
                .env("RUSTC", RUSTC)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_DIR", &target_dir)
                .env(format!("CC_{var}"), &nocc)
                .env(format!("AR_{var}"), &nocc)
                // set by rustup / the outer cargo for xtask itself; they would steer the inner cargo
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("CARGO")
                .env_remove("RUSTC_WRAPPER")
                .env_remove("RUSTC_WORKSPACE_WRAPPER");
            if std::env::var_os("CARGO_BUILD_JOBS").is_none() {
                c.env("CARGO_BUILD_JOBS", "2");
            }
            if let Some(home) = std::env::var_os("XCHECK_CARGO_HOME") {
                c.env("CARGO_HOME", home);
            }
            c.args([o.cmd, "-Zbuild-std=std,panic_abort", "--target", t]);
            c.args(feat.iter());
            c.args(&o.extra);
            let ok = c
                .status()
                .with_context(|| format!("cannot run {CARGO}"))?
                .success();
            if !ok {
                failed.push(label);
            }
        }
    }
    if !failed.is_empty() {
        bail!("xcheck failed for: {}", failed.join(", "));
    }
    println!("xcheck: {} clean for {}", o.cmd, o.targets.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_are_clippy_of_everything_for_all_four_targets_both_feature_sets() {
        let o = parse(&[]).expect("parse");
        assert_eq!(o.targets, ALL_TARGETS);
        assert_eq!(o.features, vec![None, Some("--no-default-features")]);
        assert_eq!(o.cmd, "clippy");
        assert_eq!(
            o.extra,
            args(&["--workspace", "--all-targets", "--", "-D", "warnings"])
        );
    }

    #[test]
    fn a_subset_and_one_feature_set_can_be_chosen() {
        let o = parse(&args(&[
            "--targets",
            "x86_64-pc-windows-msvc,aarch64-apple-darwin",
            "--features",
            "none",
            "--check",
        ]))
        .expect("parse");
        assert_eq!(
            o.targets,
            ["x86_64-pc-windows-msvc", "aarch64-apple-darwin"]
        );
        assert_eq!(o.features, vec![Some("--no-default-features")]);
        assert_eq!(o.extra, args(&["--workspace", "--all-targets"]));
        assert!(parse(&args(&["--features", "some"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
    }
}
