//! Where everything lives in a state dir. One place, so that no module invents a path.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Self {
        Layout { root }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Stage progress and recorded settings (versioned JSON, no secrets).
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// Advisory lock guarding changes to the state file; holds the holder's pid.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    /// Written by the live supervisor: its pid and those of its children, URLs.
    pub fn runtime_file(&self) -> PathBuf {
        self.run_dir().join("supervisor.json")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log_file(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{component}.log"))
    }
    pub fn nats_dir(&self) -> PathBuf {
        self.root.join("nats")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.nats_dir().join(node)
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }
    /// NATS user and password, 0600.
    pub fn nats_auth_file(&self) -> PathBuf {
        self.secrets_dir().join("nats-auth.json")
    }
    pub fn webhook_secret_file(&self) -> PathBuf {
        self.secrets_dir().join("webhook-secret")
    }
    /// The status page's token (state-changing requests need it), 0600.
    pub fn ui_token_file(&self) -> PathBuf {
        self.secrets_dir().join("ui-token")
    }
    /// The directories the state-backend stage creates, and their purpose.
    pub fn dirs(&self) -> Vec<(PathBuf, &'static str, bool)> {
        vec![
            (
                self.run_dir(),
                "runtime files of the live supervisor",
                false,
            ),
            (self.logs_dir(), "logs of ghboot and nats-server", false),
            (
                self.nats_dir(),
                "nats-server config and JetStream store",
                false,
            ),
            (
                self.secrets_dir(),
                "credentials (0700 dir, 0600 files)",
                true,
            ),
        ]
    }
}
