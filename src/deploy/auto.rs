//! `--mode auto`: kubernetes when a kube context answers, docker when an engine answers, dev otherwise,
//! and why (one line of output, and the prerequisites stage's outputs).

use crate::config::Mode;
use crate::config::Settings;
use std::time::Duration;

/// Probe the machine. Returns the mode and the reason.
pub async fn detect() -> (Mode, String) {
    let kube = match which::which("kubectl") {
        Err(_) => Err("no kubectl on PATH".to_string()),
        Ok(k) => {
            crate::deploy::kubernetes::kubectl::context_answers(&k, Duration::from_secs(3)).await
        }
    };
    let kube_why = match kube {
        Ok(ctx) => return (Mode::Kubernetes, format!("kube context {ctx} answers")),
        Err(e) => e,
    };
    let docker_why = match crate::deploy::docker::engine::Docker::find() {
        Err(_) => "no docker CLI on PATH".to_string(),
        Ok(d) => match tokio::time::timeout(Duration::from_secs(10), d.engine_version()).await {
            Ok(Ok(v)) => {
                return (
                    Mode::Docker,
                    format!("{kube_why}; Docker engine {v} answers"),
                )
            }
            Ok(Err(e)) => format!(
                "no Docker engine answers ({})",
                e.to_string().lines().next().unwrap_or("")
            ),
            Err(_) => "the Docker engine did not answer within 10s".to_string(),
        },
    };
    (Mode::Dev, format!("{kube_why}; {docker_why}"))
}

/// Replace `auto` in the settings by what the machine offers, recording why.
pub async fn resolve(s: &mut Settings) {
    if s.mode != Mode::Auto {
        return;
    }
    let (mode, why) = detect().await;
    s.mode = mode;
    s.mode_reason = Some(format!("--mode auto chose {mode}: {why}"));
}
