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
        }
    }
    pub fn quiet() -> Self {
        Reporter {
            style: Style::Quiet,
            color: false,
            spinner: Default::default(),
        }
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
            if let Some(old) = g.replace(pb) {
                old.finish_and_clear();
            }
        }
    }

    fn unspin(&self) {
        if let Ok(mut g) = self.spinner.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }

    fn event(&self, v: serde_json::Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }

    fn line(&self, mark: &str, color: &str, text: &str) {
        let mark = if self.color {
            format!("\x1b[{color}m{mark}\x1b[0m")
        } else {
            mark.to_string()
        };
        eprintln!("{mark} {text}");
    }

    pub fn started(&self, stage: &str, what: &str) {
        match self.style {
            Style::Json => self.event(serde_json::json!({"event": "stage_started", "stage": stage, "what": what, "ts": now()})),
            Style::Plain => self.line("•", "36", &format!("{stage}: {what} ...")),
            Style::Tty => self.spin(format!("{stage}: {what}")),
            Style::Quiet => {}
        }
    }
    pub fn finished(&self, stage: &str, took: Duration, detail: &str) {
        match self.style {
            Style::Json => self.event(
                serde_json::json!({"event": "stage_finished", "stage": stage, "detail": detail, "duration_ms": took.as_millis() as u64, "ts": now()}),
            ),
            Style::Plain | Style::Tty => {
                self.unspin();
                self.line("✓", "32", &format!("{stage}: {detail} ({})", fmt_duration(took)))
            }
            Style::Quiet => {}
        }
    }
    pub fn failed(&self, stage: &str, took: Duration, err: &anyhow::Error) {
        match self.style {
            Style::Json => self.event(serde_json::json!({"event": "stage_failed", "stage": stage, "error": format!("{err:#}"), "duration_ms": took.as_millis() as u64, "ts": now()})),
            Style::Plain | Style::Tty => {
                self.unspin();
                self.line("✗", "31", &format!("{stage}: failed ({})", fmt_duration(took)))
            }
            Style::Quiet => {}
        }
    }
    pub fn skipped(&self, stage: &str, reason: &str) {
        match self.style {
            Style::Json => self.event(serde_json::json!({"event": "stage_skipped", "stage": stage, "reason": reason, "ts": now()})),
            Style::Plain | Style::Tty => {
                self.unspin();
                self.line("-", "33", &format!("{stage}: pending ({reason})"))
            }
            Style::Quiet => {}
        }
    }
    pub fn note(&self, stage: &str, text: &str) {
        match self.style {
            Style::Json => self.event(
                serde_json::json!({"event": "note", "stage": stage, "text": text, "ts": now()}),
            ),
            Style::Plain => self.line(" ", "0", &format!("{stage}: {text}")),
            Style::Tty => match self.spinner.lock().ok().and_then(|g| g.clone()) {
                Some(pb) => pb.println(format!("  {stage}: {text}")),
                None => self.line(" ", "0", &format!("{stage}: {text}")),
            },
            Style::Quiet => {}
        }
    }
    pub fn info(&self, text: &str) {
        match self.style {
            Style::Json => {
                self.event(serde_json::json!({"event": "info", "text": text, "ts": now()}))
            }
            Style::Plain | Style::Tty => eprintln!("{text}"),
            Style::Quiet => {}
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

/// A boxed summary for people: title and aligned `key  value` rows.
pub fn summary_box(title: &str, rows: &[(&str, String)]) -> String {
    let kw = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<String> = rows.iter().map(|(k, v)| format!("{k:<kw$}  {v}")).collect();
    let w = lines
        .iter()
        .map(|l| l.chars().count())
        .chain([title.chars().count()])
        .max()
        .unwrap_or(0);
    let mut s = format!(
        "╭{}╮\n│ {title:<w$} │\n├{}┤\n",
        "─".repeat(w + 2),
        "─".repeat(w + 2)
    );
    for l in lines {
        s.push_str(&format!("│ {l:<w$} │\n"));
    }
    s.push_str(&format!("╰{}╯", "─".repeat(w + 2)));
    s
}

pub mod context;

/// `v` as one POSIX shell word (single quotes; a quote inside becomes `'\''`).
pub fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}
