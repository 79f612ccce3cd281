//! Credentials for remote NATS (Synadia Cloud, a hub for a leaf node): loaded from the environment,
//! validated before any connection, never printed. Filled in with issue 8.

use crate::config::Settings;
use crate::stages::prerequisites::Check;
use anyhow::Result;

/// The leafnode remote of a `hybrid` leaf server.
#[derive(Debug, Clone)]
pub struct LeafConfig {
    pub domain: String,
}

impl LeafConfig {
    /// Config appended to the leaf's nats-server.conf (replaces the plain authorization block).
    pub fn render(&self, user: &str, password: &str) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        format!(
            "authorization {{\n  user: {}\n  password: {}\n}}\n",
            q(user),
            q(password)
        )
    }
}

pub fn leaf_domain(s: &Settings) -> String {
    format!("ghboot-{}", s.org)
}

pub fn leaf_config(_s: &Settings) -> Result<Option<LeafConfig>> {
    Ok(None)
}

pub fn leaf_check(_s: &Settings) -> Check {
    Check::bad(
        "hub",
        crate::error::Kind::Unavailable,
        "hybrid is not available yet",
        "use --nats-type self_hosted",
    )
}

pub fn prepare_leaf(_s: &Settings) -> Result<()> {
    Ok(())
}

pub async fn leaf_remote_status(
    _s: &Settings,
    _rt: Option<&crate::state::Runtime>,
) -> Option<serde_json::Value> {
    None
}
