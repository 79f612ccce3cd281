//! `ghboot ui`: print the status page's URL (with the token that lets it replay dead letters), and open it
//! when a person is at a terminal with a browser at hand.
use crate::cli::GlobalArgs;
use crate::config::Settings;
use crate::error::{fail, Kind};
use anyhow::Result;
use std::io::IsTerminal;

pub async fn run(g: &GlobalArgs) -> Result<u8> {
    let (settings, _) = super::existing_instance(g)?;
    let Some(url) = crate::statuspage::url_with_token(&settings) else {
        let why = if crate::deploy::containers::is_container_mode(settings.mode) {
            format!(
                "in {} mode no ghboot supervisor runs on this machine to serve the status page",
                settings.mode
            )
        } else {
            format!(
                "no status page: the supervisor of {} is not running",
                settings.layout.root().display()
            )
        };
        return Err(fail(Kind::Unavailable, why)
            .help("start it with `ghboot up --detach`; `ghboot status` answers in text meanwhile")
            .into());
    };
    if settings.json {
        println!("{}", serde_json::json!({ "url": url }));
        return Ok(0);
    }
    println!("{url}");
    if std::io::stdout().is_terminal() {
        match open(&url) {
            Some(how) => eprintln!("opened with {how}"),
            None => eprintln!("open it in a browser on this machine (the URL carries the token: keep it to yourself)"),
        }
    }
    Ok(0)
}

/// `$BROWSER`, else the desktop's opener. Returns what opened it.
fn open(url: &str) -> Option<String> {
    let mut cmd = match std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
    {
        Some(b) => {
            let mut c = std::process::Command::new(b.trim());
            c.arg(url);
            c
        }
        None => crate::platform::url_opener(url)?,
    };
    let name = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // the browser outlives us; its exit status only says whether the hand-over worked
    let ok = cmd.status().is_ok_and(|s| s.success());
    ok.then_some(name)
}

/// The row of the ready box. The token is shown only to a person at a terminal: a CI log keeps what it is
/// shown, so there the row says how to get it.
pub fn summary_row(settings: &Settings) -> Option<(&'static str, String)> {
    let bare = crate::statuspage::recorded_url(settings)?;
    if std::io::stdout().is_terminal() {
        if let Some(u) = crate::statuspage::url_with_token(settings) {
            return Some(("status page", u));
        }
    }
    Some((
        "status page",
        format!("{bare} (`ghboot ui` prints it with its token)"),
    ))
}
