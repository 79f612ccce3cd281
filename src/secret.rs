//! Secrets: a type that never prints its value, and 0600 files that hold them.

use anyhow::{Context, Result};
use rand::distributions::Alphanumeric;
use rand::Rng;
use std::fmt;
use std::path::Path;

/// A secret string. `Debug` and `Display` are redacted so that a secret cannot reach a log by accident;
/// `expose()` is the one way to read it, and greppable.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn generate(len: usize) -> Self {
        Secret(
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(len)
                .map(char::from)
                .collect(),
        )
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Write `contents` to `path` atomically, readable by the owner only (0600 from creation, never wider).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    crate::fsutil::write_atomic_mode(path, contents, 0o600)
        .with_context(|| format!("cannot write secret file {}", path.display()))
}

/// A secret file of the state dir readable by others (created by hand, copied, or by an older ghboot) is
/// made 0600 before it is used (files the operator points at are theirs: left alone); one whose mode cannot be fixed is refused (exit 73) rather than used as it is.
pub fn ensure_private_file(path: &Path) -> Result<()> {
    let Some(mode) = crate::platform::file_mode(path) else {
        return Ok(());
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    crate::platform::restrict_file(path).map_err(|e| {
        crate::error::fail(
            crate::error::Kind::CantCreate,
            format!(
                "secret file {} is readable by others (mode {mode:o}) and cannot be made 0600: {e}",
                path.display()
            ),
        )
        .help(format!("run `chmod 600 {}` as its owner", path.display()))
    })?;
    tracing::warn!(
        "secret file {} had mode {mode:o}; made it 0600",
        path.display()
    );
    Ok(())
}

pub fn read_secret_file(path: &Path) -> Result<Secret> {
    let s =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Secret::new(s.trim_end_matches(['\r', '\n'])))
}
