//! The nats-server embedded at build time (feature `bundled`, see build.rs and assets/nats-server.toml).
//!
//! `extract` puts it into the per-user cache dir once (`<cache>/nats-server/bundled-<sha>/nats-server`) and
//! answers that path. Every use re-hashes an existing copy: a copy that does not match (damaged, tampered
//! with) is replaced, never run. Extraction writes a temp file and renames it into place under an exclusive
//! lock, so concurrent ghboot processes never see or produce half a file.
//! `GHBOOT_SKIP_BUNDLED=1` makes ghboot ignore its bundle (the finder then tries the cache and PATH).

use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use fs4::fs_std::FileExt;
use std::path::{Path, PathBuf};

#[cfg(ghboot_bundled)]
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/nats_bundle.rs"));
}

/// What was bundled at build time.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Info {
    pub version: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub origin: &'static str,
    pub compressed_size: u64,
}

pub fn info() -> Option<Info> {
    #[cfg(ghboot_bundled)]
    {
        Some(Info {
            version: embedded::VERSION,
            sha256: embedded::SHA256,
            size: embedded::SIZE,
            origin: embedded::ORIGIN,
            compressed_size: embedded::ZST.len() as u64,
        })
    }
    #[cfg(not(ghboot_bundled))]
    {
        None
    }
}

/// Was this ghboot built with a nats-server inside?
pub fn available() -> bool {
    info().is_some()
}

fn payload() -> Option<&'static [u8]> {
    #[cfg(ghboot_bundled)]
    {
        Some(embedded::ZST)
    }
    #[cfg(not(ghboot_bundled))]
    {
        None
    }
}

pub fn skipped() -> bool {
    std::env::var("GHBOOT_SKIP_BUNDLED").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The bundled nats-server, extracted and verified; `None` when this ghboot has no bundle (or it is skipped).
pub fn extract() -> Result<Option<PathBuf>> {
    let (Some(info), Some(zst)) = (info(), payload()) else {
        return Ok(None);
    };
    if skipped() {
        return Ok(None);
    }
    let root = super::find::cache_root().ok_or_else(|| {
        fail(Kind::CantCreate, "no per-user cache dir to extract the bundled nats-server into (HOME not set?)")
            .help("set HOME (or XDG_CACHE_HOME), or pass --nats-server PATH")
    })?;
    let dir = root.join(format!("bundled-{}", &info.sha256[..16]));
    extract_to(&dir, zst, info.sha256).map(Some)
}

/// Is `path` a regular file with this SHA-256?
pub fn verify_file(path: &Path, sha256: &str) -> bool {
    path.is_file() && super::pin::sha256_file(path).is_ok_and(|(h, _)| h == sha256)
}

/// Make `dir/nats-server` the zstd-compressed `zst` whose uncompressed SHA-256 is `sha256`, unless it already
/// is. Safe against concurrent callers (other processes included) and against a tampered existing copy.
pub fn extract_to(dir: &Path, zst: &[u8], sha256: &str) -> Result<PathBuf> {
    let exe = dir.join(super::find::EXE_NAME);
    if verify_file(&exe, sha256) {
        return Ok(exe);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join(".extract.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock_exclusive().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    // another process may have finished while we waited for the lock
    if verify_file(&exe, sha256) {
        return Ok(exe);
    }
    if exe.exists() {
        tracing::warn!(path = %exe.display(), "the extracted nats-server does not match the bundled one (damaged or tampered with): replacing it");
    }
    // temp files of an extraction that died half-way (we hold the lock: nobody else is writing any)
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!(".{}.tmp.", super::find::EXE_NAME)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let bytes = zstd::decode_all(zst).context("cannot decompress the bundled nats-server")?;
    let actual = super::pin::sha256_hex(&bytes);
    if actual != sha256 {
        return Err(fail(Kind::Data, format!("the nats-server bundled in this ghboot is damaged (sha256 {actual}, expected {sha256})"))
            .help("reinstall ghboot, or pass --nats-server PATH")
            .into());
    }
    crate::fsutil::write_atomic_mode(&exe, &bytes, 0o755).with_context(|| format!("cannot write {}", exe.display()))?;
    Ok(exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(content: &[u8]) -> (Vec<u8>, String) {
        (zstd::encode_all(content, 3).expect("zstd"), super::super::pin::sha256_hex(content))
    }

    #[test]
    fn extracts_once_and_verifies_on_every_use() {
        let d = tempfile::tempdir().expect("tmp");
        let (zst, sha) = payload(b"#!/bin/sh\necho v2.15.1\n");
        let dir = d.path().join("bundled-x");
        let p = extract_to(&dir, &zst, &sha).expect("extract");
        assert!(verify_file(&p, &sha));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).expect("meta").permissions().mode() & 0o111, 0o111, "executable");
        }
        let before = std::fs::metadata(&p).expect("meta").modified().expect("mtime");
        assert_eq!(extract_to(&dir, &zst, &sha).expect("again"), p);
        assert_eq!(std::fs::metadata(&p).expect("meta").modified().expect("mtime"), before, "a good copy is not rewritten");
    }

    #[test]
    fn tampered_copy_is_replaced() {
        let d = tempfile::tempdir().expect("tmp");
        let (zst, sha) = payload(b"the real thing");
        let dir = d.path().join("b");
        let p = extract_to(&dir, &zst, &sha).expect("extract");
        std::fs::write(&p, b"evil").expect("tamper");
        std::fs::write(dir.join(format!(".{}.tmp.1.2", super::super::find::EXE_NAME)), b"half").expect("stale temp");
        assert_eq!(extract_to(&dir, &zst, &sha).expect("re-extract"), p);
        assert!(verify_file(&p, &sha));
        let names: Vec<String> = std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.contains(".tmp.")), "stale temp files cleaned: {names:?}");
    }

    #[test]
    fn damaged_payload_is_refused_and_nothing_is_written() {
        let d = tempfile::tempdir().expect("tmp");
        let (zst, _) = payload(b"the real thing");
        let dir = d.path().join("b");
        let wrong = super::super::pin::sha256_hex(b"something else");
        assert!(extract_to(&dir, &zst, &wrong).is_err());
        assert!(!dir.join(super::super::find::EXE_NAME).exists());
    }
}
