//! Images for `--mode docker`, built locally without any registry: `FROM scratch` + ghboot's own executable and
//! the shared libraries `ldd` lists; the nats image adds the (static) nats-server ghboot resolved on top, so
//! that ghboot's executable can serve as its health check. `--image nats=REF` / `--image ghboot=REF` take
//! the user's own images instead. Tags are content-addressed and per instance, so a rerun with the same
//! binaries builds nothing and `down --purge` removes exactly this instance's images.

use crate::config::Settings;
use crate::deploy::containers::{instance_id, LABEL_INSTANCE, LABEL_MANAGED};
use crate::deploy::docker::engine::Docker;
use crate::deploy::docker::render::{hash, image_override, nats_dockerfile, GHBOOT_DOCKERFILE};
use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// An image a deployment runs, and where it came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Image {
    pub reference: String,
    /// the engine's image id (sha256:...), the part of a container's config hash that changes with content
    pub id: String,
    /// "built locally from ..." / "reused ..." / "given with --image"
    pub origin: String,
    pub built: bool,
}

/// Shared libraries an executable loads, as `ldd` lists them (none for a static executable).
pub fn linked_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = std::process::Command::new("ldd").arg(exe).output();
    let out = match out {
        Ok(o) => o,
        // no ldd: only a static executable can be copied alone
        Err(_) => return Ok(vec![]),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success()
        || text.contains("not a dynamic executable")
        || text.contains("statically linked")
    {
        return Ok(vec![]);
    }
    Ok(parse_ldd(&text))
}

pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim().split(" (").next().unwrap_or("").trim(),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs
}

struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Tar {
    fn new() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }
    fn file(&mut self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        self.b
            .append_data(&mut h, path, data)
            .with_context(|| format!("cannot add {path} to the build context"))
    }
    fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Directory);
        self.b
            .append_data(&mut h, path, &[][..])
            .with_context(|| format!("cannot add {path} to the build context"))
    }
    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Symlink);
        self.b
            .append_link(&mut h, path, target)
            .with_context(|| format!("cannot add {path} to the build context"))
    }
    fn finish(self) -> Result<Vec<u8>> {
        self.b
            .into_inner()
            .context("cannot finish the build context")
    }
}

/// A tar stream with the given files (path inside the container, content, mode): for `docker cp -` and
/// `docker build -`, so that nothing secret is written to disk or passed on a command line.
pub fn tar_of(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>> {
    let mut t = Tar::new();
    for (p, d, m) in files {
        t.file(p, d, *m)?;
    }
    t.finish()
}

async fn existing(docker: &Docker, reference: &str) -> Option<String> {
    docker
        .run(&["image", "inspect", "--format", "{{.Id}}", reference])
        .await
        .ok()
        .map(|s| s.trim().to_string())
}

async fn build(docker: &Docker, s: &Settings, tag: &str, context: Vec<u8>) -> Result<String> {
    let inst = format!("{LABEL_INSTANCE}={}", instance_id(s));
    let managed = format!("{LABEL_MANAGED}=true");
    docker
        .run_input(
            &[
                "build", "-q", "--label", &managed, "--label", &inst, "-t", tag, "-",
            ],
            context,
        )
        .await
        .map_err(|e| {
            fail(Kind::Error, format!("cannot build image {tag}: {e:#}"))
                .help("check `docker info`; or pass your own image with --image")
        })?;
    existing(docker, tag).await.ok_or_else(|| {
        fail(
            Kind::Error,
            format!("image {tag} was built but cannot be found"),
        )
        .into()
    })
}

/// The images a rendered Compose file names, built (or reused) the way `--mode docker` builds them.
pub async fn build_for_render(s: &Settings) -> Result<super::render::Images> {
    // both given with --image: nothing to build, no engine needed
    if let (Some(nats), Some(ghboot)) = (image_override(s, "nats"), image_override(s, "ghboot")) {
        return Ok(super::render::Images { nats, ghboot });
    }
    let docker = Docker::find()?;
    super::engine::engine_check(&docker).await?;
    let ghboot = ghboot_image(&docker, s).await?;
    let nats = nats_image(&docker, s, &ghboot).await?;
    for i in [&ghboot, &nats] {
        eprintln!("image {}: {}", i.reference, i.origin);
    }
    Ok(super::render::Images {
        nats: nats.reference,
        ghboot: ghboot.reference,
    })
}

/// ghboot's own image: this executable plus the libraries it links.
pub async fn ghboot_image(docker: &Docker, s: &Settings) -> Result<Image> {
    if let Some(r) = image_override(s, "ghboot") {
        let id = existing(docker, &r).await.unwrap_or_default();
        return Ok(Image {
            reference: r,
            id,
            origin: "given with --image ghboot=...".into(),
            built: false,
        });
    }
    let exe = std::env::current_exe().context("cannot find ghboot's own executable")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let bin = std::fs::read(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    let mut root = Rootfs::default();
    root.file("/ghboot", bin, 0o755);
    root.libraries_of(&exe, "ghboot")?;
    let git = root.git();
    root.ca_bundle();
    root.file(
        "/etc/passwd",
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{id}:{id}:nonroot:/tmp:/sbin/nologin\n",
            id = super::render::NONROOT_ID
        )
        .into_bytes(),
        0o644,
    );
    root.file(
        "/etc/group",
        format!("root:x:0:\nnonroot:x:{}:\n", super::render::NONROOT_ID).into_bytes(),
        0o644,
    );
    let mut parts: Vec<&[u8]> = vec![GHBOOT_DOCKERFILE.as_bytes(), ROOTFS_LAYOUT.as_bytes()];
    for (p, d, _) in &root.files {
        parts.push(p.as_bytes());
        parts.push(d);
    }
    for (p, t) in &root.links {
        parts.push(p.as_bytes());
        parts.push(t.as_bytes());
    }
    let tag = format!(
        "{}/ghboot:{}-{}",
        crate::deploy::containers::project(s),
        env!("CARGO_PKG_VERSION"),
        hash(&parts)
    );
    if let Some(id) = existing(docker, &tag).await {
        return Ok(Image {
            reference: tag,
            id,
            origin: "built locally earlier (reused)".into(),
            built: false,
        });
    }
    let mut t = Tar::new();
    t.file("Dockerfile", GHBOOT_DOCKERFILE.as_bytes(), 0o644)?;
    for (p, d, m) in &root.files {
        t.file(&format!("rootfs{p}"), d, *m)?;
    }
    for (p, target) in &root.links {
        t.symlink(&format!("rootfs{p}"), target)?;
    }
    // world-writable (sticky) so that any non-root uid the deployment picks can write its volumes: a fresh
    // named volume takes the mode of the directory it is mounted on
    for (d, mode) in [
        ("rootfs/tmp", 0o1777),
        ("rootfs/data", 0o1777),
        ("rootfs/var/lib/ghboot", 0o1777),
        ("rootfs/etc/ghboot", 0o755),
        ("rootfs/run/secrets/ghboot", 0o755),
    ] {
        t.dir(d, mode)?;
    }
    let id = build(docker, s, &tag, t.finish()?).await?;
    let with_git = match git {
        Some(g) => format!(", git from {g} and the CA bundle"),
        None => ", no git (none found on this host: the controller cannot regenerate)".into(),
    };
    Ok(Image {
        reference: tag,
        id,
        origin: format!(
            "built locally FROM scratch from {}, the shared libraries ldd lists{with_git} (no registry needed)",
            exe.display()
        ),
        built: true,
    })
}

/// Bumped when the image's directory layout changes (dirs are not in the hash otherwise).
const ROOTFS_LAYOUT: &str = "2: /data, sticky volumes, nonroot passwd, git";

/// The files of a FROM-scratch image, taken from this host.
#[derive(Default)]
struct Rootfs {
    files: Vec<(String, Vec<u8>, u32)>,
    links: Vec<(String, String)>,
}

impl Rootfs {
    fn has(&self, path: &str) -> bool {
        self.files.iter().any(|(p, _, _)| p == path) || self.links.iter().any(|(p, _)| p == path)
    }
    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        if !self.has(path) {
            self.files.push((path.to_string(), data, mode));
        }
    }
    /// The libraries `exe` links, at the paths ldd resolves them to.
    fn libraries_of(&mut self, exe: &Path, what: &str) -> Result<()> {
        for l in linked_libraries(exe)? {
            let p = l.to_string_lossy().to_string();
            if self.has(&p) {
                continue;
            }
            let d = std::fs::read(&l)
                .with_context(|| format!("cannot read {} (linked by {what})", l.display()))?;
            self.file(&p, d, 0o755);
        }
        Ok(())
    }
    /// git (the controller clones, commits and pushes with it): the executable, the https remote helper and
    /// the helpers git runs as separate programs (symlinks to git, which dispatches on its name), at this
    /// host's paths so that git's compiled-in exec path holds. None when this host has no usable git.
    fn git(&mut self) -> Option<String> {
        let git = which::which("git").ok()?;
        let git = git.canonicalize().unwrap_or(git);
        let exec = std::process::Command::new(&git)
            .arg("--exec-path")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())?;
        let data = std::fs::read(&git).ok()?;
        let gp = git.to_string_lossy().to_string();
        self.file(&gp, data, 0o755);
        self.libraries_of(&git, "git").ok()?;
        for helper in ["git-remote-https", "git-remote-http"] {
            let h = Path::new(&exec).join(helper);
            if let Ok(d) = std::fs::read(&h) {
                self.file(&h.to_string_lossy(), d, 0o755);
                let _ = self.libraries_of(&h, "git");
            }
        }
        for builtin in ["git-upload-pack", "git-receive-pack", "git-upload-archive"] {
            let p = format!("{exec}/{builtin}");
            if !self.has(&p) {
                self.links.push((p, gp.clone()));
            }
        }
        // on PATH too, where the image's default PATH looks
        if !gp.starts_with("/usr/bin/") && !gp.starts_with("/usr/local/bin/") {
            self.links.push(("/usr/bin/git".into(), gp.clone()));
        }
        Some(gp)
    }
    /// The host's CA bundle at the paths Debian, Alpine and Red Hat use (git over https verifies GitHub).
    fn ca_bundle(&mut self) {
        const PATHS: [&str; 3] = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ];
        let Some(d) = PATHS.iter().find_map(|p| std::fs::read(p).ok()) else {
            return;
        };
        for p in PATHS {
            self.file(p, d.clone(), 0o644);
        }
    }
}

/// The nats-server image: the nats-server ghboot resolved, on top of ghboot's image.
pub async fn nats_image(docker: &Docker, s: &Settings, base: &Image) -> Result<Image> {
    if let Some(r) = image_override(s, "nats") {
        let id = existing(docker, &r).await.unwrap_or_default();
        return Ok(Image {
            reference: r,
            id,
            origin: "given with --image nats=...".into(),
            built: false,
        });
    }
    let found = crate::natsd::find::find(s.nats_server.as_deref())?;
    let version = crate::natsd::find::version_of(&found.path)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let bin = std::fs::read(&found.path)
        .with_context(|| format!("cannot read {}", found.path.display()))?;
    let dockerfile = nats_dockerfile(&base.reference)?;
    let tag = format!(
        "{}/nats:{version}-{}",
        crate::deploy::containers::project(s),
        hash(&[&bin, dockerfile.as_bytes(), base.id.as_bytes()])
    );
    if let Some(id) = existing(docker, &tag).await {
        return Ok(Image {
            reference: tag,
            id,
            origin: "built locally earlier (reused)".into(),
            built: false,
        });
    }
    let ctx = tar_of(&[
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("nats-server", &bin, 0o755),
    ])?;
    let id = build(docker, s, &tag, ctx).await?;
    Ok(Image {
        reference: tag,
        id,
        origin: format!(
            "built locally from nats-server v{version} at {} ({})",
            found.path.display(),
            found.source
        ),
        built: true,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ldd_lines() {
        let t = "\tlinux-vdso.so.1 (0x00007ff)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        let l = super::parse_ldd(t);
        assert_eq!(
            l,
            vec![
                std::path::PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                "/lib64/ld-linux-x86-64.so.2".into()
            ]
        );
    }
}
