use crate::cli::{EnvFormat, GlobalArgs};
use crate::config::Settings;
pub use crate::ui::shell_quote;
use anyhow::Result;

/// What a client needs to connect, in a fixed order. Secrets are marked so writers can mask them.
pub async fn vars(settings: &Settings) -> Result<Vec<(String, String, bool)>> {
    let mut v = crate::deploy::for_settings(settings)
        .client_env(settings)
        .await?;
    if let Some(u) = crate::webhook::instance_url(settings) {
        v.push(("GHBOOT_WEBHOOK_URL".into(), u, false));
    }
    // carries the token that lets a browser replay dead letters: a secret (masked in CI)
    if let Some(u) = crate::statuspage::url_with_token(settings) {
        v.push(("GHBOOT_UI_URL".into(), u, true));
    }
    v.push((
        "GHBOOT_STATE_DIR".into(),
        settings.layout.root().display().to_string(),
        false,
    ));
    // every `up` writes this context (`nats --context NAME ...`)
    v.push((
        "NATS_CONTEXT".into(),
        crate::ui::context::context_name(&settings.layout),
        false,
    ));
    Ok(v)
}

pub async fn run(g: &GlobalArgs, format: EnvFormat) -> Result<u8> {
    let (settings, _) = super::existing_instance(g)?;
    ensure_running(&settings)?;
    let vars = vars(&settings).await?;
    let format = if g.json { EnvFormat::Json } else { format };
    print!("{}", render(&vars, format));
    Ok(0)
}

/// Values of an instance that is not running would send clients to nothing (or, worse, to whatever took its
/// port): say so instead. Only the locally supervised targets can tell; containers and remote accounts are
/// asked as before.
fn ensure_running(settings: &crate::config::Settings) -> Result<()> {
    use crate::error::{fail, Kind};
    let local = !crate::deploy::containers::is_container_mode(settings.mode)
        && !crate::deploy::is_synadia(settings);
    let alive = crate::state::Runtime::load(&settings.layout).is_some_and(|r| r.supervisor_alive());
    if local && !alive {
        return Err(fail(
            Kind::Unavailable,
            format!(
                "the ghboot instance in {} is not running",
                settings.layout.root().display()
            ),
        )
        .help(format!(
            "start it with `ghboot up --detach --state-dir {}`, or point GHBOOT_STATE_DIR (--state-dir) at a running one",
            settings.layout.root().display()
        ))
        .into());
    }
    Ok(())
}

pub fn render(vars: &[(String, String, bool)], format: EnvFormat) -> String {
    match format {
        EnvFormat::Json => {
            let m: serde_json::Map<String, serde_json::Value> = vars
                .iter()
                .map(|(k, v, _)| (k.clone(), v.clone().into()))
                .collect();
            format!("{}\n", serde_json::Value::Object(m))
        }
        EnvFormat::Shell => vars
            .iter()
            .map(|(k, v, _)| format!("export {k}={}\n", shell_quote(v)))
            .collect(),
        EnvFormat::Github => vars.iter().map(|(k, v, _)| github_line(k, v)).collect(),
    }
}

/// One entry in GitHub's env-file format: `NAME=value`, or `NAME<<DELIM` for values with newlines, with a
/// delimiter that occurs in neither name nor value.
pub fn github_line(k: &str, v: &str) -> String {
    if !v.contains('\n') && !v.contains('\r') {
        return format!("{k}={v}\n");
    }
    let mut delim = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
    while v.contains(&delim) || k.contains(&delim) {
        delim = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
    }
    format!("{k}<<{delim}\n{v}\n{delim}\n")
}
