//! Stage: is this machine able to run the chosen mode? Each failed check carries its remedy.
//! `ghboot doctor` runs these checks alone and prints them as a table.

use crate::config::Settings;
use crate::engine::{Change, Ctx, Outputs, Stage, Verdict};
use crate::error::{fail, Kind};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Re-exported: the targets' checks and `doctor` share [`crate::check::Check`].
pub use crate::check::Check;

pub struct Prerequisites;

const MIN_MEMORY: u64 = 256 * 1024 * 1024;
const MIN_DISK: u64 = 256 * 1024 * 1024;

/// Every check, passing or not.
pub fn checks(s: &Settings) -> Vec<Check> {
    let mut out = vec![platform()];
    out.extend(resources(s.layout.root(), disk_needed(s)));
    out.push(state_dir_writable(&s.layout));
    out.push(mode_supported(s));
    out.extend(crate::deploy::for_settings(s).checks(s));
    out
}

fn platform() -> Check {
    let (os, arch) = (std::env::consts::OS, std::env::consts::ARCH);
    let supported =
        matches!(os, "linux" | "macos" | "windows") && matches!(arch, "x86_64" | "aarch64");
    if supported {
        Check::ok("platform", format!("{os}/{arch}"))
    } else {
        Check::bad(
            "platform",
            Kind::Unavailable,
            format!("{os}/{arch} is not supported"),
            "run ghboot on Linux, macOS or Windows, x86_64 or aarch64",
        )
    }
}

/// Free disk the instance needs under its state dir: what the JetStream topology reserves on file storage,
/// divided by the 75% of free disk nats-server allows JetStream by default, plus room for logs. Remote
/// deployments (Synadia) store nothing here.
fn disk_needed(s: &Settings) -> u64 {
    if !crate::deploy::for_settings(s).stores_locally(s) {
        return MIN_DISK;
    }
    let reserved: i64 = crate::topology::desired::desired(s)
        .map(|d| {
            d.resources
                .iter()
                .filter(|r| {
                    r.config.storage == async_nats::jetstream::stream::StorageType::File
                        && r.config.max_bytes > 0
                })
                .map(|r| r.config.max_bytes)
                .sum()
        })
        .unwrap_or(0);
    (reserved.max(0) as u64 * 4 / 3 + 64 * 1024 * 1024).max(MIN_DISK)
}

fn mode_supported(s: &Settings) -> Check {
    Check::ok("mode", crate::deploy::for_settings(s).mode_line(s))
}

fn resources(state_dir: &Path, disk_needed: u64) -> Vec<Check> {
    use sysinfo::System;
    let mut sys = System::new();
    sys.refresh_memory();
    let avail = sys.available_memory();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = if avail >= MIN_MEMORY || avail == 0 {
        Check::ok("memory", format!("{} MiB available", avail / 1048576))
    } else {
        Check::bad(
            "memory",
            Kind::Unavailable,
            format!("only {} MiB available", avail / 1048576),
            "free memory: nats-server and ghboot need about 256 MiB",
        )
    };
    let probe = existing_ancestor(state_dir);
    // statvfs on the one path that matters, rather than enumerating every mount
    let disk = fs4::available_space(&probe).ok();
    let disk = match disk {
        Some(free) if free < disk_needed => Check::bad(
            "disk",
            Kind::Unavailable,
            format!(
                "only {} MiB free under {}; the JetStream topology needs {} MiB (its streams' max_bytes, of which JetStream may use 75% of free disk)",
                free / 1048576,
                probe.display(),
                disk_needed / 1048576
            ),
            "free disk space, pass --state-dir on a larger filesystem, or lower max_bytes under [topology] in ghboot.toml",
        ),
        Some(free) => Check::ok(
            "disk",
            format!("{} MiB free under {}", free / 1048576, probe.display()),
        ),
        None => Check::ok(
            "disk",
            format!("free space under {} unknown", probe.display()),
        ),
    };
    vec![mem, Check::ok("cpus", format!("{cpus}")), disk]
}

fn existing_ancestor(p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    while !cur.exists() {
        if !cur.pop() {
            break;
        }
    }
    cur
}

fn state_dir_writable(layout: &crate::layout::Layout) -> Check {
    let dir = layout.root();
    let probe = layout.write_probe_file();
    let r = std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe));
    match r {
        Ok(()) => Check::ok("state dir", format!("{} is writable", dir.display())),
        Err(e) => Check::bad(
            "state dir",
            Kind::CantCreate,
            format!("{} is not writable: {e}", dir.display()),
            "fix its permissions, or pass --state-dir DIR (env GHBOOT_STATE_DIR) to a writable place",
        ),
    }
}

fn failure(failed: &[&Check]) -> anyhow::Error {
    let kind = failed
        .iter()
        .find_map(|c| c.kind)
        .unwrap_or(Kind::Unavailable);
    let msg = failed
        .iter()
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect::<Vec<_>>()
        .join("; ");
    let help = failed
        .iter()
        .filter_map(|c| c.remedy.clone())
        .collect::<Vec<_>>()
        .join("; ");
    fail(kind, format!("prerequisites not met: {msg}"))
        .help(help)
        .into()
}

#[async_trait::async_trait]
impl Stage for Prerequisites {
    fn name(&self) -> &'static str {
        "prerequisites"
    }
    fn summary(&self) -> &'static str {
        "check platform, resources, tools and ports"
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        Ok(checks(&ctx.settings)
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| {
                Change::new("prerequisites", c.name, "fix").note(format!(
                    "{} ({})",
                    c.detail,
                    c.remedy.unwrap_or_default()
                ))
            })
            .collect())
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        let failed: Vec<Check> = checks(&ctx.settings)
            .into_iter()
            .filter(|c| !c.ok)
            .collect();
        Ok(match failed.first() {
            None => Verdict::Holds,
            Some(c) => Verdict::Drift(format!("{}: {}", c.name, c.detail)),
        })
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        let all = checks(&ctx.settings);
        let failed: Vec<&Check> = all.iter().filter(|c| !c.ok).collect();
        if !failed.is_empty() {
            return Err(failure(&failed));
        }
        let mut out = Outputs::new();
        for c in &all {
            out.insert(c.name.replace(' ', "_"), c.detail.clone().into());
        }
        out.insert(
            "summary".into(),
            format!("{} checks passed", all.len()).into(),
        );
        Ok(out)
    }
}
