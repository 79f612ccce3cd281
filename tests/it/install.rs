//! Release installation (issue 23): bootstrap/install.sh against a local HTTP release mirror, the composite
//! action (GitHub's action schema, vendored in tests/data/schemas, and no `${{ inputs.` pasted into code), and
//! the generated regenerate workflow (GitHub's workflow schema; it installs ghboot before calling it).
//!
//! The archive served is laid out as `cargo xtask dist` lays it out, but built here from the debug binary:
//! a release build has no place in the test suite (the dist check builds and installs the real one).

use crate::common::*;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The asset name install.sh picks on this machine.
fn host_target() -> String {
    let os = match std::env::consts::OS {
        "linux" => "unknown-linux-gnu",
        "macos" => "apple-darwin",
        other => panic!("no installer target for {other}"),
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

/// `ghboot-<version>-<target>/{ghboot,README.md}` as a tar.gz; `patch` changes one byte of the binary.
fn archive(target: &str, patch: bool) -> Vec<u8> {
    let top = format!("ghboot-{VERSION}-{target}");
    let mut bin = std::fs::read(ghboot_bin()).expect("debug binary");
    if patch {
        // the last byte: section headers, not loaded, so only the checksum can tell
        let last = bin.len() - 1;
        bin[last] ^= 1;
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: String, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        tar.append_data(&mut h, path, data).expect("tar");
    };
    add(format!("{top}/ghboot"), &bin, 0o755);
    add(format!("{top}/README.md"), b"readme\n", 0o644);
    tar.into_inner().expect("tar").finish().expect("gzip")
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Serves DIR read-only over HTTP on 127.0.0.1: a release mirror as GitHub lays it out (BASE/v<version>/FILE).
async fn serve(dir: PathBuf) -> String {
    async fn file(State(dir): State<Arc<PathBuf>>, UrlPath(p): UrlPath<String>) -> Response {
        let rel = Path::new(&p);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return StatusCode::NOT_FOUND.into_response();
        }
        match tokio::fs::read(dir.join(rel)).await {
            Ok(b) => b.into_response(),
            Err(_) => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(file))
        .with_state(Arc::new(dir));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    base
}

struct Mirror {
    dir: tempfile::TempDir,
    base: String,
}

impl Mirror {
    async fn new() -> Mirror {
        let dir = tempfile::tempdir().expect("tmp");
        let base = serve(dir.path().to_path_buf()).await;
        Mirror { dir, base }
    }
    /// Release `name`: FILES under `name/v<version>/`; returns its GHBOOT_DOWNLOAD_BASE.
    fn release(&self, name: &str, files: &[(&str, &[u8])]) -> String {
        let d = self.dir.path().join(name).join(format!("v{VERSION}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        for (n, b) in files {
            std::fs::write(d.join(n), b).expect("write");
        }
        format!("{}/{name}", self.base)
    }
}

/// A sandbox like a fresh CI runner's: no cargo, rustc or rustup but stubs that record their calls (the
/// stub cargo "installs" a script when asked to), HOME and TMPDIR private, nothing else inherited.
struct Sandbox {
    dir: tempfile::TempDir,
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    cargo_calls: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tmp");
        let stubs = dir.path().join("stubs");
        for d in ["stubs", "home", "tmp"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let log = dir.path().join("cargo-calls");
        for tool in ["cargo", "rustc", "rustup"] {
            // cargo install ... --root R: leaves R/bin/ghboot, as the real one does
            let script = format!(
                "#!/bin/sh\necho \"{tool} $*\" >>'{}'\n[ \"{tool}\" = cargo ] || exit 127\n\
                 while [ $# -gt 0 ]; do [ \"$1\" = --root ] && root=$2; shift; done\n\
                 mkdir -p \"$root/bin\" && printf '#!/bin/sh\\necho built-by-cargo\\n' >\"$root/bin/ghboot\"\n",
                log.display()
            );
            let p = stubs.join(tool);
            std::fs::write(&p, script).expect("stub");
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        }
        Sandbox { dir }
    }
    fn install_dir(&self) -> PathBuf {
        self.dir.path().join("home/bin")
    }
    async fn install(&self, base: &str, extra: &[(&str, &str)]) -> Run {
        let p = self.dir.path();
        let _ = std::fs::remove_file(p.join("cargo-calls"));
        let mut c = tokio::process::Command::new("sh");
        c.arg(root().join("bootstrap/install.sh"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", p.join("stubs").display()),
            )
            .env("HOME", p.join("home"))
            .env("TMPDIR", p.join("tmp"))
            .env("GHBOOT_DOWNLOAD_BASE", base)
            .env("GHBOOT_INSTALL_DIR", self.install_dir())
            .current_dir(p.join("home"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), c.output())
            .await
            .expect("installer finished within 60 s")
            .expect("run sh");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
            cargo_calls: std::fs::read_to_string(p.join("cargo-calls")).unwrap_or_default(),
        }
    }
    fn installed(&self) -> Vec<String> {
        std::fs::read_dir(self.install_dir())
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
    fn tmp_left(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installer_installs_a_verified_release_and_refuses_a_tampered_or_unlisted_one() {
    let target = host_target();
    let asset = format!("ghboot-{VERSION}-{target}.tar.gz");
    let good = archive(&target, false);
    let sums = format!(
        "{}  ghboot-{VERSION}-other-target.tar.gz\n{}  {asset}\n",
        sha256(b"other"),
        sha256(&good)
    );
    let m = Mirror::new().await;
    let sb = Sandbox::new();

    // the release as published: installed, and the installed ghboot runs
    let base = m.release("good", &[(&asset, &good), ("SHA256SUMS", sums.as_bytes())]);
    let r = sb.install(&base, &[("GHBOOT_VERSION", VERSION)]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.cargo_calls.is_empty(), "cargo called: {}", r.cargo_calls);
    let bin = sb.install_dir().join("ghboot");
    assert_eq!(r.stdout.trim(), bin.display().to_string());
    assert_eq!(sb.installed(), vec!["ghboot".to_string()]);
    let v = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run the installed ghboot");
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && said.split_whitespace().any(|w| w == VERSION),
        "{said}"
    );
    assert_eq!(sb.tmp_left(), 0, "temporary files left behind");

    // refusals: exit 65, the cause named, nothing installed, no build attempted
    let tampered = archive(&target, true);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let unlisted = format!(
        "{}  ghboot-{VERSION}-other-target.tar.gz\n",
        sha256(b"other")
    );
    let cases: [(&str, &[u8], &[u8], &str); 3] = [
        ("tampered", &tampered, sums.as_bytes(), "checksum mismatch"),
        ("flipped", &flipped, sums.as_bytes(), "checksum mismatch"),
        ("unlisted", &good, unlisted.as_bytes(), "no entry for"),
    ];
    for (name, bytes, sums, why) in cases {
        let sb = Sandbox::new();
        let base = m.release(name, &[(&asset, bytes), ("SHA256SUMS", sums)]);
        let r = sb.install(&base, &[]).await;
        assert_eq!(r.code, Some(65), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains(why) && r.stderr.contains("help:"),
            "{name}: {}",
            r.stderr
        );
        assert!(
            sb.installed().is_empty(),
            "{name}: left {:?}",
            sb.installed()
        );
        assert!(
            r.cargo_calls.is_empty(),
            "{name}: cargo called: {}",
            r.cargo_calls
        );
        assert_eq!(sb.tmp_left(), 0, "{name}: temporary files left behind");
    }

    // a release without SHA256SUMS: refused too (a download cannot be verified)
    let sb = Sandbox::new();
    let base = m.release("nosums", &[(&asset, &good)]);
    let r = sb.install(&base, &[]).await;
    assert_eq!(r.code, Some(69), "{}", r.stderr);
    assert!(r.stderr.contains("SHA256SUMS"), "{}", r.stderr);
    assert!(sb.installed().is_empty() && r.cargo_calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installer_builds_with_cargo_only_when_the_release_has_no_asset_for_the_platform() {
    let target = host_target();
    let asset = format!("ghboot-{VERSION}-{target}.tar.gz");
    let good = archive(&target, false);
    let sums = format!("{}  {asset}\n", sha256(&good));
    let m = Mirror::new().await;
    let base = m.release("r", &[(&asset, &good), ("SHA256SUMS", sums.as_bytes())]);
    let sb = Sandbox::new();
    let r = sb
        .install(&base, &[("GHBOOT_TARGET", "riscv64gc-unknown-linux-gnu")])
        .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("no prebuilt ghboot") && r.stderr.contains("cargo install --locked"),
        "says why it builds: {}",
        r.stderr
    );
    assert!(
        r.cargo_calls.starts_with("cargo install --locked "),
        "{}",
        r.cargo_calls
    );
    let out = std::process::Command::new(sb.install_dir().join("ghboot"))
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "built-by-cargo"
    );
}

#[test]
fn installer_is_posix_sh_and_shellcheck_clean() {
    let script = root().join("bootstrap/install.sh");
    let out = std::process::Command::new("sh")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("sh -n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(sc) = tool("shellcheck") {
        let out = std::process::Command::new(sc)
            .args(["-s", "sh"])
            .arg(&script)
            .output()
            .expect("shellcheck");
        assert!(
            out.status.success(),
            "shellcheck: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // the installer and the action install the release they belong to
    let sh = read(&script);
    assert!(
        sh.contains(&format!("\nGHBOOT_DEFAULT_VERSION={VERSION}\n")),
        "install.sh's default version is not {VERSION}"
    );
    let ps = read(&root().join("bootstrap/install.ps1"));
    assert!(ps.contains(&format!("$DefaultVersion = '{VERSION}'")));
    let action = read(&root().join("bootstrap/action/action.yml"));
    assert!(action.contains(&format!("default: \"{VERSION}\"")));
}

fn check_schema(schema: &str, file: &Path) {
    let Some(cj) = tool("check-jsonschema") else {
        return;
    };
    let out = std::process::Command::new(cj)
        .arg("--schemafile")
        .arg(root().join("tests/data/schemas").join(schema))
        .arg(file)
        .output()
        .expect("check-jsonschema");
    assert!(
        out.status.success(),
        "{}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each step's code (`run:`, and `with: run/post/script`, which actions run as code) and `uses:`,
/// read by a YAML parser; a step with `${{ ... inputs ... }}` in code or an action not pinned by a full
/// commit SHA is reported.
const LINT: &str = r#"
import json, re, sys, yaml
steps = yaml.safe_load(open(sys.argv[1]))["runs"]["steps"]
expr = re.compile(r"\$\{\{(?:(?!\}\}).)*?\binputs\b", re.S)
bad = []
for i, s in enumerate(steps, 1):
    name = s.get("name") or f"step {i}"
    code = [("run", s.get("run"))] + [("with." + k, (s.get("with") or {}).get(k)) for k in ("run", "post", "script")]
    bad += [f"{name}: inputs in {k}" for k, v in code if isinstance(v, str) and expr.search(v)]
    u = s.get("uses")
    if isinstance(u, str) and not u.startswith("docker://") and not re.fullmatch(r"[0-9a-f]{40}", u.rsplit("@", 1)[-1]):
        bad.append(f"{name}: {u} not pinned by commit")
print(json.dumps({"steps": len(steps), "bad": bad}))
"#;

fn lint(python: &Path, file: &Path) -> serde_json::Value {
    let out = std::process::Command::new(python)
        .args(["-c", LINT])
        .arg(file)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn composite_action_passes_githubs_schema_and_pastes_no_input_into_code() {
    let action = root().join("bootstrap/action/action.yml");
    check_schema("github-actions.json", &action);
    let python = std::env::var_os("GHBOOT_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| tool("python3"));
    let Some(python) = python else { return };
    let has_yaml = std::process::Command::new(&python)
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_yaml {
        assert!(
            std::env::var_os("CI").is_none(),
            "PyYAML is required under CI (run `cargo xtask test`)"
        );
        eprintln!(
            "SKIPPED: no PyYAML for {} (run `cargo xtask test`)",
            python.display()
        );
        return;
    }
    let r = lint(&python, &action);
    assert!(r["steps"].as_u64() >= Some(3), "{r}");
    assert_eq!(r["bad"], serde_json::json!([]), "{r}");

    // the lint itself catches what it is for
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("action.yml");
    std::fs::write(
        &bad,
        "runs:\n  using: composite\n  steps:\n    - run: ghboot ${{ inputs.args }}\n      shell: bash\n    - uses: webiny/action-post-run@3.1.0\n      with:\n        run: echo ${{ inputs.x }}\n",
    )
    .expect("w");
    let r = lint(&python, &bad);
    assert_eq!(r["bad"].as_array().map(Vec::len), Some(3), "{r}");
}

#[test]
fn generated_regenerate_workflow_passes_githubs_schema() {
    use ghboot::controller::templates::{render, Bot, Source, Vars};
    let vars = Vars {
        org: "acme".into(),
        branch: "main".into(),
        bot: Bot {
            name: "ghboot-controller".into(),
            email: "ghboot-controller@users.noreply.github.com".into(),
        },
        controller: serde_json::json!({}),
    };
    let r = render(&Source::Embedded, &vars).expect("render");
    let dir = tempfile::tempdir().expect("tmp");
    for name in ["regenerate.yml", "ci.yml"] {
        let f = dir.path().join(name);
        std::fs::write(&f, &r[&format!(".github/workflows/{name}")]).expect("w");
        check_schema("github-workflows.json", &f);
    }
}
