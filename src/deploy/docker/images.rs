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
    let libs = linked_libraries(&exe)?;
    let mut parts: Vec<Vec<u8>> = vec![bin.clone(), GHBOOT_DOCKERFILE.as_bytes().to_vec()];
    let mut lib_data = Vec::new();
    for l in &libs {
        let d = std::fs::read(l)
            .with_context(|| format!("cannot read {} (linked by ghboot)", l.display()))?;
        parts.push(l.to_string_lossy().as_bytes().to_vec());
        parts.push(d.clone());
        lib_data.push((l.clone(), d));
    }
    let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
    let tag = format!(
        "{}/ghboot:{}-{}",
        crate::deploy::containers::project(s),
        env!("CARGO_PKG_VERSION"),
        hash(&refs)
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
    t.file("rootfs/ghboot", &bin, 0o755)?;
    for (l, d) in &lib_data {
        t.file(&format!("rootfs{}", l.display()), d, 0o755)?;
    }
    for d in [
        "rootfs/tmp",
        "rootfs/var/lib/ghboot",
        "rootfs/etc/ghboot",
        "rootfs/run/secrets/ghboot",
    ] {
        t.dir(d, if d.ends_with("tmp") { 0o1777 } else { 0o755 })?;
    }
    let id = build(docker, s, &tag, t.finish()?).await?;
    let what = if libs.is_empty() {
        "a static executable".to_string()
    } else {
        format!("{} shared libraries from ldd", libs.len())
    };
    Ok(Image {
        reference: tag,
        id,
        origin: format!(
            "built locally FROM scratch from {} and {what} (no registry needed)",
            exe.display()
        ),
        built: true,
    })
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
