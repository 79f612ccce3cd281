//! Everything that differs by operating system, behind one small interface: process groups, the
//! parent-death guarantee ("no orphans"), signals, liveness probes and file modes. The rest of ghboot is
//! portable and never uses `cfg(unix)` itself.
//!
//! How each OS keeps a child from outliving a SIGKILLed ghboot:
//! - **Linux**: `prctl(PR_SET_PDEATHSIG, SIGKILL)` in the child between fork and exec, followed by a check that
//!   the parent is still the one that forked us (closing the race where the parent died before the prctl).
//!   The child gets its own process group so a terminal's Ctrl-C reaches ghboot only, and ghboot stops the
//!   child in order.
//! - **macOS** (no PDEATHSIG): the child is started through a watchdog: ghboot forks a tiny process that
//!   waits on `kqueue` `EVFILT_PROC`/`NOTE_EXIT` for ghboot's pid and kills the child's process group when it
//!   fires. Not built here (only Linux can be built on this project's machines); see `unix.rs`.
//! - **Windows**: children are assigned to a Job Object created with
//!   `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`; the handle lives as long as ghboot, so the kernel kills the job
//!   when ghboot dies however it dies. A graceful stop uses `CTRL_BREAK_EVENT` to the child's process group
//!   (`CREATE_NEW_PROCESS_GROUP`), since Ctrl-C cannot be sent to one child. See `windows.rs`.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
