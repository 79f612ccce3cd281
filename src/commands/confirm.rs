//! The question `down --purge` and `reset` ask before deleting an instance someone may still want.
//!
//! Asked only at a terminal and only for an instance that is not ephemeral; `--yes` skips it. Without a
//! terminal the caller decides (scripts and CI keep working as before). The question names the state dir and
//! what it holds, so "y" is an informed answer.

use crate::config::Settings;
use crate::layout::Layout;
use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

/// May `verb` delete the instance in `layout`? True without asking for `--yes`, an ephemeral instance, or
/// no terminal (`--non-interactive`, `CI`, no tty on stdin); otherwise the answer to the question.
pub async fn purge_confirmed(
    g: &crate::cli::GlobalArgs,
    layout: &Layout,
    yes: bool,
    verb: &str,
) -> Result<bool> {
    let instance = super::maybe_instance(g).ok();
    let ephemeral = instance
        .as_ref()
        .and_then(|(_, st)| st.as_ref())
        .is_some_and(|st| st.settings.ephemeral);
    let terminal = !g.non_interactive && std::env::var_os("CI").is_none();
    if !should_ask(yes, ephemeral) || !terminal {
        return Ok(true);
    }
    ask_delete(layout, instance.as_ref().map(|(s, _)| s), verb).await
}

/// Should ghboot ask before deleting this instance? Only at a terminal, only for a non-ephemeral instance.
pub fn should_ask(yes: bool, ephemeral: bool) -> bool {
    !yes && !ephemeral && std::io::stdin().is_terminal()
}

/// Ask on stderr and read one line from stdin: only `y`/`yes` agrees; "n", anything else and end of input
/// decline.
pub async fn ask_delete(layout: &Layout, settings: Option<&Settings>, verb: &str) -> Result<bool> {
    let holds = describe(layout, settings).await;
    let question = format!(
        "{verb} deletes the state dir {} (not an ephemeral instance), which holds {holds}.\nDelete it? [y/N] ",
        layout.root().display()
    );
    // the read blocks; keep it off the async workers
    let answer = tokio::task::spawn_blocking(move || {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(question.as_bytes());
        let _ = err.flush();
        drop(err);
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line),
        }
    })
    .await?;
    let yes = answer
        .as_deref()
        .map(|a| matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
        .unwrap_or(false);
    if answer.is_none() {
        eprintln!();
    }
    Ok(yes)
}

/// What the state dir holds, in a few words: JetStream streams and their messages (asked from the running
/// server, else counted on disk), credentials, logs.
pub async fn describe(layout: &Layout, settings: Option<&Settings>) -> String {
    let mut parts = Vec::new();
    let live = match settings {
        Some(s) => tokio::time::timeout(Duration::from_secs(5), live_streams(s))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    match live {
        Some(streams) => {
            let messages: u64 = streams.iter().map(|(_, n)| n).sum();
            let names: Vec<String> = streams
                .iter()
                .take(6)
                .map(|(name, n)| format!("{name}: {n}"))
                .collect();
            let more = if streams.len() > names.len() {
                ", ..."
            } else {
                ""
            };
            parts.push(format!(
                "{} JetStream stream(s) with {messages} message(s) ({}{more})",
                streams.len(),
                names.join(", ")
            ));
        }
        None => {
            let streams = streams_on_disk(&layout.nats_dir());
            if !streams.is_empty() {
                parts.push(format!(
                    "{} JetStream stream(s) on disk ({}), {}",
                    streams.len(),
                    streams.join(", "),
                    human_bytes(dir_size(&layout.nats_dir()))
                ));
            }
        }
    }
    if layout.secrets_dir().is_dir() {
        parts.push("its NATS credentials and webhook secret".into());
    }
    if layout.logs_dir().is_dir() {
        parts.push("its logs".into());
    }
    if parts.is_empty() {
        "no JetStream data".into()
    } else {
        parts.join("; ")
    }
}

async fn live_streams(s: &Settings) -> Option<Vec<(String, u64)>> {
    use futures::StreamExt;
    let client = crate::deploy::for_settings(s).connect(s).await.ok()?;
    let js = crate::deploy::jetstream(s, client);
    let mut names = js.stream_names();
    let mut out = Vec::new();
    while let Some(Ok(name)) = names.next().await {
        let n = match js.get_stream(&name).await {
            Ok(mut st) => st.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        out.push((name, n));
    }
    out.sort();
    Some(out)
}

/// Stream names from nats-server's store layout (`.../jetstream/<account>/streams/<NAME>`), any depth.
fn streams_on_disk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name() == "streams" {
            if let Ok(s) = std::fs::read_dir(&p) {
                out.extend(
                    s.flatten()
                        .map(|x| x.file_name().to_string_lossy().into_owned()),
                );
            }
        } else {
            out.extend(streams_on_disk(&p));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_found_in_nats_servers_store_layout() {
        let d = tempfile::tempdir().expect("tmp");
        for s in ["A", "B"] {
            std::fs::create_dir_all(d.path().join("n0/jetstream/$G/streams").join(s)).expect("mk");
        }
        assert_eq!(streams_on_disk(d.path()), vec!["A", "B"]);
        assert!(streams_on_disk(&d.path().join("missing")).is_empty());
    }

    #[test]
    fn never_asks_with_yes_or_for_an_ephemeral_instance() {
        assert!(!should_ask(true, false));
        assert!(!should_ask(false, true));
    }
}
