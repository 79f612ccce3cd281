//! `cargo xtask dist [--target TRIPLE]`: the release artifacts of one target, as the installer
//! (bootstrap/install.sh, install.ps1) expects them:
//!
//! - `dist/ghboot-<version>-<target>.tar.gz`: one directory `ghboot-<version>-<target>/` holding the release
//!   binary (with its bundled nats-server), README.md, LICENSE, `completions/` and `man/`;
//! - `dist/SHA256SUMS`: `<sha256>  <file>` for every archive of this version in dist/ (archives of other
//!   targets, built on their own machines and copied in, are kept and listed; other versions are removed).
//!
//! The archive is reproducible: members sorted, owner root, mtime from `SOURCE_DATE_EPOCH` or the HEAD commit.

use anyhow::{bail, Context, Result};
use ghboot::natsd::pin;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files whose default version must move with Cargo.toml's (a release installs what its installer names).
pub const PINNED_VERSION_FILES: &[(&str, &str)] = &[
    ("bootstrap/install.sh", "GHBOOT_DEFAULT_VERSION="),
    ("bootstrap/install.ps1", "$DefaultVersion = "),
    ("bootstrap/action/action.yml", "default: \""),
];

pub fn run(args: &[String]) -> Result<()> {
    let mut target = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => target = Some(it.next().context("--target needs a triple")?.clone()),
            other => bail!("unknown argument {other}; usage: cargo xtask dist [--target TRIPLE]"),
        }
    }
    let root = super::root();
    let version = package_version(&root)?;
    check_pinned_versions(&root, &version)?;
    let host = host_triple()?;
    let target = target.unwrap_or_else(|| host.clone());
    let exe = if target.contains("windows") {
        "ghboot.exe"
    } else {
        "ghboot"
    };

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    build
        .current_dir(&root)
        .args(["build", "--release", "--locked", "-p", "ghboot"]);
    if target != host {
        build.args(["--target", &target]);
    }
    super::run(&mut build)?;
    let target_dir = cargo_target_dir(&root)?;
    let bin = if target != host {
        target_dir.join(&target).join("release").join(exe)
    } else {
        target_dir.join("release").join(exe)
    };
    if target == host {
        // the artifact must be the version it is named after (a stale binary would not be)
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !said.split_whitespace().any(|w| w == version) {
            bail!("{} --version says {said:?}, not {version}", bin.display());
        }
    }

    let docs = tempfile::Builder::new().prefix("ghboot-dist-").tempdir()?;
    super::docs(docs.path())?;
    let top = format!("ghboot-{version}-{target}");
    let mut members: Vec<(String, PathBuf, u32)> = vec![
        (format!("{top}/{exe}"), bin.clone(), 0o755),
        (format!("{top}/README.md"), root.join("README.md"), 0o644),
        (format!("{top}/LICENSE"), root.join("LICENSE"), 0o644),
    ];
    for sub in ["completions", "man"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(docs.path().join(sub))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        files.sort();
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).context("odd name")?;
            members.push((format!("{top}/{sub}/{name}"), f.clone(), 0o644));
        }
    }
    let archive = tar_gz(&members, source_date(&root))?;

    let dist = root.join("dist");
    std::fs::create_dir_all(&dist)?;
    let name = format!("{top}.tar.gz");
    let ours = format!("ghboot-{version}-");
    for e in std::fs::read_dir(&dist)? {
        let p = e?.path();
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // another version's archives do not belong in this release
        if n.starts_with("ghboot-") && n.ends_with(".tar.gz") && !n.starts_with(&ours) {
            std::fs::remove_file(&p)?;
        }
    }
    pin::write_file_atomic(&dist.join(&name), &archive)?;
    let mut sums = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&dist)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&ours) && n.ends_with(".tar.gz"))
        .collect();
    names.sort();
    for n in &names {
        let bytes = std::fs::read(dist.join(n))?;
        sums.push(format!("{}  {n}\n", pin::sha256_hex(&bytes)));
    }
    pin::write_file_atomic(&dist.join("SHA256SUMS"), sums.concat().as_bytes())?;
    println!(
        "{} ({:.1} MB)\n{}",
        dist.join(&name).display(),
        archive.len() as f64 / 1e6,
        dist.join("SHA256SUMS").display()
    );
    Ok(())
}

/// A gzip'd tar of `members` (archive path, source file, mode), in the given order, with fixed metadata.
pub fn tar_gz(members: &[(String, PathBuf, u32)], mtime: u64) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    let mut dirs = std::collections::BTreeSet::new();
    for (path, src, mode) in members {
        // directory entries first, so that every extractor makes them with sane modes
        let mut p = Path::new(path).parent();
        let mut missing = Vec::new();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if dirs.insert(d.to_path_buf()) {
                missing.push(d.to_path_buf());
            }
            p = d.parent();
        }
        for d in missing.into_iter().rev() {
            let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
            tar.append_data(&mut h, format!("{}/", d.display()), std::io::empty())?;
        }
        let data = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
        let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64, mtime);
        tar.append_data(&mut h, path, data.as_slice())?;
    }
    Ok(tar.into_inner()?.finish()?)
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn source_date(root: &Path) -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .or_else(|| {
            super::capture(
                Command::new("git")
                    .args(["log", "-1", "--format=%ct"])
                    .current_dir(root),
            )
            .parse()
            .ok()
        })
        .unwrap_or(0)
}

fn metadata(root: &Path) -> Result<serde_json::Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn package_version(root: &Path) -> Result<String> {
    let m = metadata(root)?;
    m["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "ghboot"))
        .and_then(|p| p["version"].as_str())
        .map(str::to_string)
        .context("cargo metadata lists no ghboot package")
}

fn cargo_target_dir(root: &Path) -> Result<PathBuf> {
    metadata(root)?["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata gives no target_directory")
}

fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    super::capture(Command::new(rustc).arg("-vV"))
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .context("rustc -vV names no host")
}

/// The installer and the action install a pinned version: it must be the one being released.
pub fn check_pinned_versions(root: &Path, version: &str) -> Result<()> {
    for (file, marker) in PINNED_VERSION_FILES {
        let text = std::fs::read_to_string(root.join(file))
            .with_context(|| format!("cannot read {file}"))?;
        let found = pinned_version(&text, marker)
            .with_context(|| format!("{file} has no line with {marker:?}"))?;
        if found != version {
            bail!("{file} pins version {found}, Cargo.toml says {version}: update the {marker:?} line");
        }
    }
    Ok(())
}

/// The version after `marker` (quoted or not) on the first line that has one there (an empty default is no version).
pub fn pinned_version(text: &str, marker: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let i = l.find(marker)?;
        let v: String = l[i + marker.len()..]
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
            .collect();
        v.starts_with(|c: char| c.is_ascii_digit()).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installer_and_the_action_pin_the_version_being_released() {
        let root = crate::root();
        let v = package_version(&root).expect("version");
        check_pinned_versions(&root, &v).expect("pinned versions");
        assert!(check_pinned_versions(&root, "99.0.0").is_err());
        assert_eq!(
            pinned_version(
                "x\n  default: \"\"\n  default: \"1.2.3\" # y\n",
                "default: \""
            ),
            Some("1.2.3".into())
        );
    }

    #[test]
    fn archive_is_one_directory_with_an_executable_and_fixed_metadata() {
        let dir = tempfile::tempdir().expect("tmp");
        let (bin, doc) = (dir.path().join("ghboot"), dir.path().join("README.md"));
        std::fs::write(&bin, b"#!/bin/sh\n").expect("w");
        std::fs::write(&doc, b"readme").expect("w");
        let members = vec![
            ("ghboot-1.0.0-t/ghboot".to_string(), bin, 0o755),
            ("ghboot-1.0.0-t/man/ghboot.1".to_string(), doc, 0o644),
        ];
        let a = tar_gz(&members, 42).expect("archive");
        assert_eq!(a, tar_gz(&members, 42).expect("again"), "reproducible");
        let mut t = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
        let got: Vec<(String, u32, u64)> = t
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                (
                    e.path().expect("path").display().to_string(),
                    h.mode().expect("mode"),
                    h.mtime().expect("mtime"),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ghboot-1.0.0-t/".into(), 0o755, 42),
                ("ghboot-1.0.0-t/ghboot".into(), 0o755, 42),
                ("ghboot-1.0.0-t/man/".into(), 0o755, 42),
                ("ghboot-1.0.0-t/man/ghboot.1".into(), 0o644, 42),
            ]
        );
    }
}
