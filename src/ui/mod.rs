//! How ghboot talks to people and machines: stage progress (plain lines on stderr, a spinner on a
//! terminal, or one JSON event per line on stdout with `--json`), and the final summary.

use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `• stage ... ✓` lines on stderr
    Plain,
    /// a spinner per stage with elapsed time on a terminal, then the same ✓/✗ lines
    Tty,
    /// one JSON object per line on stdout
    Json,
    /// nothing (tests, internal runs)
    Quiet,
}

/// A terminal that can take colour: kind's rule (a tty, not NO_COLOR, not TERM=dumb), decided in one place.
pub fn smart_terminal() -> bool {
    std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
}

#[derive(Debug, Clone)]
pub struct Reporter {
    pub style: Style,
    color: bool,
    spinner: std::sync::Arc<std::sync::Mutex<Option<indicatif::ProgressBar>>>,
    /// The detached supervisor also appends every event here, so the `up --detach` that started it can show
    /// what this run did (see `commands::up`).
    progress: Option<std::sync::Arc<std::sync::Mutex<std::fs::File>>>,
}

/// The spinner on screen, if any: terminal log lines are printed above it instead of through it.
static ACTIVE_SPINNER: std::sync::Mutex<Option<indicatif::ProgressBar>> =
    std::sync::Mutex::new(None);

/// Write `text` to stderr without tearing the spinner (printed above it, the spinner redrawn below).
pub fn eprint_above_spinner(text: &[u8]) {
    let pb = ACTIVE_SPINNER.lock().ok().and_then(|g| g.clone());
    let write = || {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text);
        let _ = e.flush();
    };
    match pb {
        Some(pb) if !pb.is_finished() => pb.suspend(write),
        _ => write(),
    }
}

impl Reporter {
    pub fn new(json: bool) -> Self {
        let color = smart_terminal();
        let style = if json {
            Style::Json
        } else if color {
            Style::Tty
        } else {
            Style::Plain
        };
        Reporter {
            style,
            color,
            spinner: Default::default(),
            progress: None,
        }
    }
    pub fn quiet() -> Self {
        Reporter {
            style: Style::Quiet,
            color: false,
            spinner: Default::default(),
            progress: None,
        }
    }
    /// Also append every event, one JSON object per line, to `path`.
    pub fn with_progress_file(mut self, path: &std::path::Path) -> Self {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => self.progress = Some(std::sync::Arc::new(std::sync::Mutex::new(f))),
            Err(e) => tracing::warn!("cannot write progress to {}: {e}", path.display()),
        }
        self
    }

    fn spin(&self, msg: String) {
        let pb = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
        {
            pb.set_style(style);
        }
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut g) = self.spinner.lock() {
            if let Some(old) = g.replace(pb.clone()) {
                old.finish_and_clear();
            }
        }
        if let Ok(mut g) = ACTIVE_SPINNER.lock() {
            *g = Some(pb);
        }
    }

    fn unspin(&self) {
        if let Ok(mut g) = self.spinner.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
        if let Ok(mut g) = ACTIVE_SPINNER.lock() {
            *g = None;
        }
    }

    /// Take any spinner off the screen (before an error or a question is printed).
    pub fn clear(&self) {
        self.unspin();
    }

    fn event(&self, v: &serde_json::Value) {
        if let Some(f) = &self.progress {
            if let Ok(mut f) = f.lock() {
                let _ = writeln!(f, "{v}");
            }
        }
        if self.style == Style::Json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
            let _ = out.flush();
        }
    }

    fn line(&self, mark: &str, color: &str, text: &str) {
        let mark = if self.color {
            format!("\x1b[{color}m{mark}\x1b[0m")
        } else {
            mark.to_string()
        };
        eprint_above_spinner(format!("{mark} {text}\n").as_bytes());
    }

    pub fn started(&self, stage: &str, what: &str) {
        self.event(&serde_json::json!({"event": "stage_started", "stage": stage, "what": what, "ts": now()}));
        match self.style {
            Style::Plain => self.line("•", "36", &format!("{stage}: {what} ...")),
            Style::Tty => self.spin(format!("{stage}: {what}")),
            Style::Json | Style::Quiet => {}
        }
    }
    pub fn finished(&self, stage: &str, took: Duration, detail: &str) {
        self.event(&serde_json::json!({"event": "stage_finished", "stage": stage, "detail": detail, "duration_ms": took.as_millis() as u64, "ts": now()}));
        match self.style {
            Style::Plain | Style::Tty => {
                self.unspin();
                self.line(
                    "✓",
                    "32",
                    &format!("{stage}: {detail} ({})", fmt_duration(took)),
                )
            }
            Style::Json | Style::Quiet => {}
        }
    }
    pub fn failed(&self, stage: &str, took: Duration, err: &anyhow::Error) {
        self.failed_text(stage, took, &format!("{err:#}"))
    }
    pub fn failed_text(&self, stage: &str, took: Duration, err: &str) {
        self.event(&serde_json::json!({"event": "stage_failed", "stage": stage, "error": err, "duration_ms": took.as_millis() as u64, "ts": now()}));
        match self.style {
            Style::Plain | Style::Tty => {
                self.unspin();
                self.line(
                    "✗",
                    "31",
                    &format!("{stage}: failed ({})", fmt_duration(took)),
                )
            }
            Style::Json | Style::Quiet => {}
        }
    }
    pub fn skipped(&self, stage: &str, reason: &str) {
        self.event(&serde_json::json!({"event": "stage_skipped", "stage": stage, "reason": reason, "ts": now()}));
        match self.style {
            Style::Plain | Style::Tty => {
                self.unspin();
                self.line("-", "33", &format!("{stage}: pending ({reason})"))
            }
            Style::Json | Style::Quiet => {}
        }
    }
    pub fn note(&self, stage: &str, text: &str) {
        self.event(
            &serde_json::json!({"event": "note", "stage": stage, "text": text, "ts": now()}),
        );
        match self.style {
            Style::Plain | Style::Tty => self.line(" ", "0", &format!("{stage}: {text}")),
            Style::Json | Style::Quiet => {}
        }
    }
    pub fn info(&self, text: &str) {
        self.event(&serde_json::json!({"event": "info", "text": text, "ts": now()}));
        match self.style {
            Style::Plain | Style::Tty => eprint_above_spinner(format!("{text}\n").as_bytes()),
            Style::Json | Style::Quiet => {}
        }
    }

    /// Show one event another ghboot recorded with [`Reporter::with_progress_file`] (the detached
    /// supervisor's progress, shown by the `up --detach` that waits for it). Without a spinner a stage's
    /// start is not shown: one line per stage.
    pub fn replay(&self, v: &serde_json::Value) {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        let took =
            Duration::from_millis(v.get("duration_ms").and_then(|d| d.as_u64()).unwrap_or(0));
        match s("event") {
            "stage_started" if self.style != Style::Plain => self.started(s("stage"), s("what")),
            "stage_finished" => self.finished(s("stage"), took, s("detail")),
            "stage_failed" => self.failed_text(s("stage"), took, s("error")),
            "stage_skipped" => self.skipped(s("stage"), s("reason")),
            "note" => self.note(s("stage"), s("text")),
            "info" => self.info(s("text")),
            _ => {}
        }
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The summary people read when ghboot is ready: facts (`key  value` rows) and commands to copy.
///
/// On a terminal the facts are boxed to fit its width (a value too long for the box moves to its own,
/// wrapped lines) and the commands follow the box unwrapped, one per line, so they copy whole. Anywhere
/// else (a pipe, a file, CI logs) there is no box: plain `key: value` lines.
pub fn summary(
    title: &str,
    rows: &[(&str, String)],
    commands: &[(&str, String)],
    terminal_width: Option<usize>,
) -> String {
    let mut s = match terminal_width {
        Some(w) => summary_box(title, rows, w),
        None => {
            let mut s = format!("{title}\n");
            for (k, v) in rows {
                s.push_str(&format!("  {k}: {v}\n"));
            }
            s
        }
    };
    for (label, cmd) in commands {
        s.push_str(&format!("{label}:\n    {cmd}\n"));
    }
    s
}

/// Columns of the terminal on stdout (`to_stderr`: on stderr), None when it is not a terminal.
pub fn terminal_width(to_stderr: bool) -> Option<usize> {
    let term = if to_stderr {
        console::Term::stderr()
    } else {
        console::Term::stdout()
    };
    if !term.is_term() {
        return None;
    }
    Some(term.size_checked().map(|(_, c)| c as usize).unwrap_or(80))
}

/// A box no wider than `width` columns: title, then aligned rows.
pub fn summary_box(title: &str, rows: &[(&str, String)], width: usize) -> String {
    let kw = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let natural = rows
        .iter()
        .map(|(_, v)| kw + 2 + v.chars().count())
        .chain([title.chars().count()])
        .max()
        .unwrap_or(0);
    // inner width: what fits between "│ " and " │"
    let w = natural.min(width.saturating_sub(4)).max(20);
    let mut lines: Vec<String> = Vec::new();
    for (k, v) in rows {
        if kw + 2 + v.chars().count() <= w {
            lines.push(format!("{k:<kw$}  {v}"));
        } else {
            lines.push(k.to_string());
            lines.extend(wrap_chars(v, w - 2).into_iter().map(|l| format!("  {l}")));
        }
    }
    let title: String = wrap_chars(title, w).join("\n");
    let mut s = format!("╭{}╮\n", "─".repeat(w + 2));
    for t in title.lines() {
        s.push_str(&format!("│ {t:<w$} │\n"));
    }
    s.push_str(&format!("├{}┤\n", "─".repeat(w + 2)));
    for l in lines {
        s.push_str(&format!("│ {l:<w$} │\n"));
    }
    s.push_str(&format!("╰{}╯\n", "─".repeat(w + 2)));
    s
}

/// Split `text` into pieces of at most `width` characters, at spaces where possible.
fn wrap_chars(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let sep = usize::from(!cur.is_empty());
        if cur.chars().count() + sep + word.chars().count() <= width {
            if sep == 1 {
                cur.push(' ');
            }
            cur.push_str(word);
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        let chars: Vec<char> = word.chars().collect();
        let mut chunks = chars.chunks(width).peekable();
        while let Some(c) = chunks.next() {
            let piece: String = c.iter().collect();
            if chunks.peek().is_some() {
                out.push(piece);
            } else {
                cur = piece;
            }
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_fits_the_terminal_and_commands_stay_whole() {
        let long = format!("/tmp/{}", "x".repeat(150));
        let cmd = format!(
            "gh webhook forward --org=acme --events=* --url={}",
            "u".repeat(90)
        );
        let out = summary(
            "ghboot is ready (dev mode)",
            &[
                ("NATS", "nats://127.0.0.1:4222".into()),
                ("state dir", long.clone()),
            ],
            &[("forward webhooks", cmd.clone())],
            Some(100),
        );
        let boxed: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(['╭', '│', '├', '╰']))
            .collect();
        assert!(boxed.iter().all(|l| l.chars().count() <= 100), "{out}");
        assert!(
            out.lines().any(|l| l.trim() == cmd),
            "the command is on its own line, whole:\n{out}"
        );
        let joined: String = boxed.iter().map(|l| l.trim_matches(['│', ' '])).collect();
        assert!(
            joined.contains(&long),
            "the long value is all there:\n{out}"
        );
    }

    #[test]
    fn no_box_off_a_terminal() {
        let out = summary("ready", &[("NATS", "nats://x".into())], &[], None);
        assert_eq!(out, "ready\n  NATS: nats://x\n");
    }
}

pub mod context;
pub mod logfiles;

/// `v` as one POSIX shell word (single quotes; a quote inside becomes `'\''`).
pub fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// `ghboot SUB` as the user can type it: the executable by path when `ghboot` on PATH is not this one
/// (e.g. under `cargo run`), and `--state-dir` when this instance is not the default one.
pub fn command_for(settings: &crate::config::Settings, sub: &str) -> String {
    let exe = std::env::current_exe().ok();
    let on_path = which::which("ghboot").ok();
    let same = |a: &std::path::Path, b: &std::path::Path| {
        std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| Some(a) == std::fs::canonicalize(b).ok())
    };
    let bin = match (&exe, &on_path) {
        (Some(e), Some(p)) if same(e, p) => "ghboot".to_string(),
        (Some(e), _) => shell_quote(&e.display().to_string()),
        (None, _) => "ghboot".to_string(),
    };
    let default = crate::config::default_state_dir().ok();
    if default.as_deref() == Some(settings.layout.root()) {
        format!("{bin} {sub}")
    } else {
        format!(
            "{bin} {sub} --state-dir {}",
            shell_quote(&settings.layout.root().display().to_string())
        )
    }
}
