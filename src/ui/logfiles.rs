//! Where log lines go. Two sinks, each with its own level:
//!
//! - the terminal (stderr): warnings and errors only, unless `--debug` / `RUST_LOG` / `DEBUG=true` (the
//!   terminal shows progress, not logs); printed above the spinner, never through it. Standalone servers
//!   (`webhook serve`, `controller`) log at info here: in a container stderr is their log.
//! - the state dir's log files, once a process supervises an instance ([`to_files`]): everything at info,
//!   as plain text, into `logs/supervisor.log`, and the receiver's and the controller's lines also into
//!   `logs/receiver.log` and `logs/controller.log`, so `ghboot logs receiver` works in every mode.

use crate::layout::Layout;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tracing_subscriber::fmt::MakeWriter;

struct Files {
    supervisor: File,
    receiver: File,
    controller: File,
}

static FILES: Mutex<Option<Files>> = Mutex::new(None);
/// The detached supervisor's stderr is its log file already: the terminal sink would write every line twice.
static TERMINAL_OFF: AtomicBool = AtomicBool::new(false);

/// Which component's file a tracing target belongs to, besides the supervisor's.
pub fn component_of(target: &str) -> Option<&'static str> {
    if target.starts_with("ghboot::webhook") || target.starts_with("ghboot::stages::webhooks") {
        Some("receiver")
    } else if target.starts_with("ghboot::controller")
        || target.starts_with("ghboot::stages::controller")
    {
        Some("controller")
    } else {
        None
    }
}

/// From now on, log into the state dir's files. `terminal`: keep the terminal sink too (foreground `up`);
/// false for the detached supervisor.
pub fn to_files(layout: &Layout, terminal: bool) {
    let open = |name: &str| {
        let _ = std::fs::create_dir_all(layout.logs_dir());
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(layout.log_file(name))
    };
    match (open("supervisor"), open("receiver"), open("controller")) {
        (Ok(supervisor), Ok(receiver), Ok(controller)) => {
            if let Ok(mut g) = FILES.lock() {
                *g = Some(Files {
                    supervisor,
                    receiver,
                    controller,
                });
            }
            TERMINAL_OFF.store(!terminal, Ordering::Relaxed);
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            tracing::warn!(
                "cannot open the log files in {}: {e}",
                layout.logs_dir().display()
            )
        }
    }
}

/// One formatted event for the files; written whole when dropped.
pub struct FileLine {
    buf: Vec<u8>,
    component: Option<&'static str>,
}

impl Write for FileLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for FileLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Ok(mut g) = FILES.lock() {
            if let Some(f) = g.as_mut() {
                let _ = f.supervisor.write_all(&self.buf);
                let extra = match self.component {
                    Some("receiver") => Some(&mut f.receiver),
                    Some("controller") => Some(&mut f.controller),
                    _ => None,
                };
                if let Some(x) = extra {
                    let _ = x.write_all(&self.buf);
                }
            }
        }
    }
}

pub struct FileSink;

impl<'a> MakeWriter<'a> for FileSink {
    type Writer = FileLine;
    fn make_writer(&'a self) -> FileLine {
        FileLine {
            buf: Vec::new(),
            component: None,
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> FileLine {
        FileLine {
            buf: Vec::new(),
            component: component_of(meta.target()),
        }
    }
}

/// Are the files on? (Cheap check so the file layer costs nothing in short commands.)
pub fn files_on() -> bool {
    FILES.lock().map(|g| g.is_some()).unwrap_or(false)
}

/// One formatted event for the terminal; printed whole above the spinner when dropped.
pub struct TermLine(Vec<u8>);

impl Write for TermLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TermLine {
    fn drop(&mut self) {
        if !self.0.is_empty() && !TERMINAL_OFF.load(Ordering::Relaxed) {
            super::eprint_above_spinner(&self.0);
        }
    }
}

pub struct TermSink;

impl<'a> MakeWriter<'a> for TermSink {
    type Writer = TermLine;
    fn make_writer(&'a self) -> TermLine {
        TermLine(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn receiver_and_controller_lines_have_their_own_files() {
        use super::component_of;
        assert_eq!(component_of("ghboot::webhook::receive"), Some("receiver"));
        assert_eq!(
            component_of("ghboot::controller::consume"),
            Some("controller")
        );
        assert_eq!(component_of("ghboot::natsd::supervise"), None);
    }
}
