//! A prerequisite check with its remedy: what the prerequisites stage, `doctor` and every target's
//! `checks` return. Shared by the layers, so it lives below all of them.

use crate::config::Settings;
use crate::error::Kind;
use crate::state::Runtime;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    #[serde(skip)]
    pub kind: Option<Kind>,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            remedy: None,
            kind: None,
        }
    }
    pub fn bad(
        name: &str,
        kind: Kind,
        detail: impl Into<String>,
        remedy: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            remedy: Some(remedy.into()),
            kind: Some(kind),
        }
    }
}

/// Host ports of the instance that must be free (or already held by this instance's live servers).
pub fn ports(s: &Settings) -> Vec<Check> {
    // Ports held by this instance's own live servers are not in the way.
    let own: Vec<u16> = Runtime::load(&s.layout)
        .filter(|r| r.supervisor_alive())
        .map(|r| {
            let mut p: Vec<u16> = r
                .nodes
                .iter()
                .flat_map(|n| [n.port, n.monitor_port])
                .collect();
            p.extend(
                r.components
                    .values()
                    .filter_map(|c| c.get("port").and_then(|p| p.as_u64()).map(|p| p as u16)),
            );
            p
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for (what, flag, port) in [
        ("client port", "--port", s.port),
        ("monitoring port", "--monitor-port", s.monitor_port),
        ("webhook port", "--webhook-port", s.webhook_port),
    ] {
        let Some(port) = port else { continue };
        if own.contains(&port) {
            out.push(Check::ok(what, format!("{port} (held by this instance)")));
        } else if port_free(&s.bind, port) {
            out.push(Check::ok(what, format!("{}:{port} is free", s.bind)));
        } else {
            out.push(Check::bad(
                what,
                Kind::Unavailable,
                format!("{}:{port} is already in use", s.bind),
                format!(
                    "stop what listens there, or pass {flag} N (or --ephemeral for free ports)"
                ),
            ));
        }
    }
    out
}

pub fn port_free(bind: &str, port: u16) -> bool {
    std::net::TcpListener::bind((bind, port)).is_ok()
}

/// The controller regenerates the org's `.github` files through git, and dev's local "GitHub" is a git repository.
pub fn git() -> Check {
    match which::which("git") {
        Ok(p) => {
            let v = std::process::Command::new(&p)
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            Check::ok("git", format!("{v} at {}", p.display()))
        }
        Err(_) => Check::bad(
            "git",
            Kind::Unavailable,
            "git not found on PATH (the controller regenerates .github files through git)",
            "install git (e.g. `apt-get install git`, `brew install git`, or Git for Windows)",
        ),
    }
}
