//! Where everything lives in a state dir. One place, so that no module invents a path.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    /// Private: every path below it is made by a method here.
    root: PathBuf,
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
    /// One older supervisor log, kept when a new supervisor starts (`<component>.log.1`).
    pub fn rotated_log_file(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{component}.log.1"))
    }
    /// A node's JetStream store.
    pub fn node_store_dir(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("jetstream")
    }
    /// A node's rendered nats-server config.
    pub fn node_conf_file(&self, node: &str) -> PathBuf {
        self.node_dir(node).join("nats-server.conf")
    }
    /// The 0600 copy of a remote account's user credentials (Synadia, a leaf node's hub).
    pub fn remote_creds_file(&self) -> PathBuf {
        self.secrets_dir().join("remote.creds")
    }
    /// Dev's local "GitHub": the bare `.github` repository of an org.
    pub fn local_github_repo(&self, org: &str) -> PathBuf {
        self.root.join("github").join(org).join(".github.git")
    }
    /// The Terraform export of the state-backend stage.
    pub fn terraform_dir(&self) -> PathBuf {
        self.root.join("terraform")
    }
    /// Terraform's state with the local backend.
    pub fn terraform_state_file(&self) -> PathBuf {
        self.terraform_dir().join("terraform.tfstate")
    }
    /// The manifests `--mode kubernetes` applies.
    pub fn kubernetes_dir(&self) -> PathBuf {
        self.root.join("kubernetes")
    }
    /// A throw-away file that proves the state dir is writable (per process, removed at once).
    pub fn write_probe_file(&self) -> PathBuf {
        self.root
            .join(format!(".write-probe.{}", std::process::id()))
    }
    /// During a webhook secret rotation: the old secret and until when it is still accepted (0600).
    pub fn webhook_previous_secret_file(&self) -> PathBuf {
        self.secrets_dir().join("webhook-secret.previous")
    }
    /// What `secrets sync` sent, per scope and name: keyed fingerprints and key ids, never values (0600).
    pub fn actions_secrets_store(&self) -> PathBuf {
        self.secrets_dir().join("actions-secrets.json")
    }
    /// The local HMAC key of those fingerprints (0600).
    pub fn actions_secrets_key(&self) -> PathBuf {
        self.secrets_dir().join("actions-secrets.key")
    }
    /// The product repositories `ghboot repo add` registered (names, events, grants; no secrets).
    pub fn repos_file(&self) -> PathBuf {
        self.root.join("repos.json")
    }
    /// Serializes changes to the repository registry (`up` holds the state lock for its whole life).
    pub fn repos_lock_file(&self) -> PathBuf {
        self.root.join("repos.lock")
    }
    /// Passwords of ghboot's own least-privilege NATS users (the webhook receiver), 0600.
    pub fn internal_auth_file(&self) -> PathBuf {
        self.secrets_dir().join("nats-internal.json")
    }
    /// The product repositories' NATS passwords, 0600.
    pub fn repo_passwords_file(&self) -> PathBuf {
        self.secrets_dir().join("repo-passwords.json")
    }
    /// The `users` list a node's config includes (every NATS identity and its permissions), 0600.
    pub fn users_conf(&self, node: &str) -> PathBuf {
        self.node_dir(node).join(crate::natsd::users::USERS_CONF)
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
