//! The state file (stage progress, recorded settings), the advisory lock that guards changes to it, and the
//! runtime file that the live supervisor keeps. The state file is versioned and written atomically; a
//! corrupt or newer file is an error with the recovery command, never silently overwritten.

use crate::config::Recorded;
use crate::error::{fail, Kind};
use crate::fsutil::write_atomic;
use crate::layout::Layout;
use anyhow::{Context, Result};
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use time::OffsetDateTime;

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    Pending,
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub name: String,
    pub status: StageStatus,
    /// Why a pending stage is pending (e.g. not available in this mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// pid of the ghboot that set `running`; a running stage whose runner is gone was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The `help:` line of the last error, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_help: Option<String>,
}

impl StageRecord {
    pub fn new(name: &str) -> Self {
        StageRecord {
            name: name.to_string(),
            status: StageStatus::Pending,
            reason: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            runner_pid: None,
            outputs: BTreeMap::new(),
            last_error: None,
            last_help: None,
        }
    }

    /// The status as it is now: a `running` stage whose runner died was interrupted.
    pub fn live_status(&self) -> StageStatus {
        match (self.status, self.runner_pid) {
            (StageStatus::Running, Some(pid)) if !crate::platform::is_alive(pid) => {
                StageStatus::Failed
            }
            (s, _) => s,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// Random id written when ghboot creates the instance: with the version, the marker that makes a dir
    /// ghboot's (purge refuses dirs without a valid state file). Older state files have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(default)]
    pub settings: Recorded,
    #[serde(default)]
    pub stages: Vec<StageRecord>,
}

impl StateFile {
    pub fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        StateFile {
            version: STATE_VERSION,
            instance_id: Some(hex::encode(rand::random::<[u8; 8]>())),
            created_at: now,
            updated_at: now,
            settings: Recorded::default(),
            stages: Vec::new(),
        }
    }

    /// Read the state file. `Ok(None)` when there is none yet.
    pub fn load(layout: &Layout) -> Result<Option<StateFile>> {
        let path = layout.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(fail(
                    Kind::Data,
                    format!("cannot read state file {}: {e}", path.display()),
                )
                .help("check the permissions of the state dir")
                .into())
            }
        };
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(&path, &e.to_string()))?;
        let version = probe
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| corrupt(&path, "no version field"))?;
        if version > STATE_VERSION as u64 {
            return Err(fail(
                Kind::Data,
                format!("state file {} is version {version}, newer than this ghboot understands ({STATE_VERSION})", path.display()),
            )
            .help("run the newer ghboot that wrote it, or start over with `ghboot reset --yes` (this loses the instance)")
            .into());
        }
        let state: StateFile =
            serde_json::from_value(probe).map_err(|e| corrupt(&path, &e.to_string()))?;
        Ok(Some(state))
    }

    pub fn save(&mut self, layout: &Layout) -> Result<()> {
        self.updated_at = OffsetDateTime::now_utc();
        let text = serde_json::to_vec_pretty(self)?;
        write_atomic(&layout.state_file(), &text).map_err(|e| {
            fail(
                Kind::CantCreate,
                format!(
                    "cannot write state file {}: {e}",
                    layout.state_file().display()
                ),
            )
            .help("make the state dir writable, or free disk space")
            .into()
        })
    }

    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }

    pub fn stage_mut(&mut self, name: &str) -> &mut StageRecord {
        if let Some(i) = self.stages.iter().position(|s| s.name == name) {
            return &mut self.stages[i];
        }
        self.stages.push(StageRecord::new(name));
        self.stages.last_mut().expect("just pushed")
    }
}

impl Default for StateFile {
    fn default() -> Self {
        Self::new()
    }
}

fn corrupt(path: &Path, why: &str) -> anyhow::Error {
    fail(Kind::Data, format!("state file {} is corrupt: {why}", path.display()))
        .help(format!(
            "move it aside and rerun (`mv {0} {0}.bad`; ghboot then re-verifies every stage), or start over with `ghboot reset --yes`",
            path.display()
        ))
        .into()
}

/// An exclusive advisory lock on the state dir. Released on drop (and by the OS when ghboot dies).
pub struct StateLock {
    file: File,
}

impl StateLock {
    pub fn acquire(layout: &Layout) -> Result<StateLock> {
        let path = layout.lock_file();
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| {
            fail(Kind::CantCreate, format!("cannot open lock file {}: {e}", path.display()))
                .help("make the state dir writable (and its filesystem not read-only), or pass --state-dir DIR")
        })?;
        match file.try_lock_exclusive() {
            Ok(()) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == fs4::lock_contended_error().raw_os_error() =>
            {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another ghboot".to_string()
                } else {
                    format!("another ghboot (pid {holder})")
                };
                return Err(fail(
                    Kind::TempFail,
                    format!("{who} is changing the state in {}", layout.root().display()),
                )
                .help("wait for it to finish, or stop it with `ghboot down`, then retry")
                .into());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
            }
        }
        // The holder's pid is informational: a full disk must not stop us from holding the lock.
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        Ok(StateLock { file })
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = FileExt::unlock(&self.file);
    }
}

/// What the live supervisor runs. Written only by the supervisor (atomically); read by everyone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Runtime {
    pub supervisor_pid: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// Fingerprint of the configuration the running servers were started with.
    #[serde(default)]
    pub config_hash: String,
    #[serde(default)]
    pub nodes: Vec<NodeRuntime>,
    #[serde(default)]
    pub components: BTreeMap<String, serde_json::Value>,
    /// All stages the supervisor ran are finished.
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rewritten every [`SUPERVISOR_HEARTBEAT`] by the supervisor's own loop.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub heartbeat: Option<OffsetDateTime>,
    /// A node restarted more often than the restart budget allows (reported; the supervisor keeps trying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_exceeded: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeRuntime {
    pub name: String,
    pub pid: u32,
    pub port: u16,
    pub monitor_port: u16,
    #[serde(default)]
    pub cluster_port: Option<u16>,
    #[serde(default)]
    pub restarts: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// Set while the supervisor is trying to start this node again (cleared once it is ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarting: Option<Restarting>,
}

/// A node the supervisor is bringing back: which attempt, when the next one is due, and why the last failed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Restarting {
    pub attempt: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub next_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Restarting {
    /// `restarting (attempt N, next in Xs): <last error>`, as `status` prints it.
    pub fn describe(&self) -> String {
        let next = self
            .next_at
            .map(|t| (t - OffsetDateTime::now_utc()).whole_seconds().max(0))
            .unwrap_or(0);
        let mut s = format!("restarting (attempt {}, next in {next}s)", self.attempt);
        if let Some(e) = &self.last_error {
            s.push_str(": ");
            s.push_str(e);
        }
        s
    }
}

/// How often the live supervisor rewrites its heartbeat, and the age past which it counts as unresponsive
/// (stopped with SIGSTOP, or wedged): the pid alone cannot tell.
pub const SUPERVISOR_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);
pub const SUPERVISOR_STALE: std::time::Duration = std::time::Duration::from_secs(20);

impl Runtime {
    pub fn load(layout: &Layout) -> Option<Runtime> {
        let text = std::fs::read(layout.runtime_file()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn save(&self, layout: &Layout) -> Result<()> {
        std::fs::create_dir_all(layout.run_dir())?;
        write_atomic(&layout.runtime_file(), &serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", layout.runtime_file().display()))
    }

    pub fn remove(layout: &Layout) {
        let _ = std::fs::remove_file(layout.runtime_file());
    }

    /// The supervisor is alive and is a ghboot (a recycled pid does not count).
    pub fn supervisor_alive(&self) -> bool {
        crate::platform::is_alive(self.supervisor_pid)
            && crate::platform::exe_of(self.supervisor_pid)
                .map(|e| {
                    e.file_name()
                        .map(|n| n.to_string_lossy().starts_with("ghboot"))
                        .unwrap_or(false)
                        || e == current_exe()
                })
                .unwrap_or(true)
    }
}

impl Runtime {
    /// Seconds since the supervisor's last heartbeat (`None` for a supervisor that writes none).
    pub fn heartbeat_age(&self) -> Option<i64> {
        self.heartbeat
            .map(|t| (OffsetDateTime::now_utc() - t).whole_seconds())
    }

    /// Alive and still beating: a SIGSTOPped or wedged supervisor is alive but not responsive.
    pub fn supervisor_responsive(&self) -> bool {
        self.supervisor_alive()
            && self
                .heartbeat_age()
                .map_or(true, |a| a < SUPERVISOR_STALE.as_secs() as i64)
    }
}

fn current_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path().to_path_buf());
        (dir, layout)
    }

    fn kind(e: &anyhow::Error) -> Option<Kind> {
        crate::error::find_failure(e).map(|f| f.kind)
    }

    #[test]
    fn no_state_file_is_none() {
        let (_d, layout) = layout();
        assert!(StateFile::load(&layout).expect("load").is_none());
    }

    #[test]
    fn a_saved_state_reads_back_the_same() {
        let (_d, layout) = layout();
        let mut st = StateFile::new();
        st.settings.org = Some("acme".into());
        st.settings.port = Some(4333);
        let rec = st.stage_mut("nats");
        rec.status = StageStatus::Done;
        rec.outputs
            .insert("url".into(), "nats://127.0.0.1:4333".into());
        st.stage_mut("webhooks").status = StageStatus::Failed;
        st.save(&layout).expect("save");
        let back = StateFile::load(&layout).expect("load").expect("present");
        assert_eq!(back.version, STATE_VERSION);
        assert_eq!(back.settings, st.settings);
        assert_eq!(back.stages.len(), 2);
        let nats = back.stage("nats").expect("nats record");
        assert_eq!(nats.status, StageStatus::Done);
        assert_eq!(nats.outputs["url"], "nats://127.0.0.1:4333");
        assert_eq!(
            back.stage("webhooks").map(|r| r.status),
            Some(StageStatus::Failed)
        );
        // saved atomically: no temporary file is left next to it
        let leftovers: Vec<_> = std::fs::read_dir(layout.root())
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n != "state.json")
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    }

    #[test]
    fn stage_mut_keeps_one_record_per_stage() {
        let mut st = StateFile::new();
        st.stage_mut("nats").status = StageStatus::Running;
        st.stage_mut("nats").status = StageStatus::Done;
        assert_eq!(st.stages.len(), 1);
        assert_eq!(st.stage("nats").map(|r| r.status), Some(StageStatus::Done));
    }

    #[test]
    fn a_corrupt_state_file_is_refused_and_left_alone() {
        let (_d, layout) = layout();
        for text in [
            "{not json",
            "{\"stages\": []}",
            "{\"version\": 1, \"stages\": 3}",
        ] {
            std::fs::write(layout.state_file(), text).expect("write");
            let e = StateFile::load(&layout).expect_err(text);
            assert_eq!(kind(&e), Some(Kind::Data), "{text}: {e:#}");
            assert_eq!(
                std::fs::read_to_string(layout.state_file()).expect("read"),
                text
            );
        }
    }

    #[test]
    fn a_newer_state_file_is_refused() {
        let (_d, layout) = layout();
        let mut st = serde_json::to_value(StateFile::new()).expect("to json");
        st["version"] = (STATE_VERSION + 1).into();
        std::fs::write(layout.state_file(), st.to_string()).expect("write");
        let e = StateFile::load(&layout).expect_err("newer");
        assert_eq!(kind(&e), Some(Kind::Data));
        assert!(format!("{e:#}").contains("newer"), "{e:#}");
    }

    #[test]
    fn the_runtime_file_round_trips_and_goes_away() {
        let (_d, layout) = layout();
        let rt = Runtime {
            supervisor_pid: 42,
            config_hash: "abc".into(),
            nodes: vec![NodeRuntime {
                name: "n1".into(),
                pid: 43,
                port: 4222,
                monitor_port: 8222,
                ..Default::default()
            }],
            ready: true,
            ..Default::default()
        };
        rt.save(&layout).expect("save");
        let back = Runtime::load(&layout).expect("present");
        assert_eq!(
            (back.supervisor_pid, back.config_hash.as_str(), back.ready),
            (42, "abc", true)
        );
        assert_eq!(back.nodes[0].port, 4222);
        Runtime::remove(&layout);
        assert!(Runtime::load(&layout).is_none());
    }

    #[test]
    fn a_second_lock_on_the_same_state_dir_is_refused_until_the_first_is_dropped() {
        let (_d, layout) = layout();
        let first = StateLock::acquire(&layout).expect("first lock");
        let e = StateLock::acquire(&layout)
            .err()
            .expect("second lock refused");
        assert_eq!(kind(&e), Some(Kind::TempFail));
        drop(first);
        StateLock::acquire(&layout).expect("free again");
    }
}
