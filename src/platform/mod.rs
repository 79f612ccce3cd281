//! Everything that differs by operating system, behind one small interface: process groups, the
//! parent-death guarantee ("no orphans"), signals, liveness probes and file modes. The rest of ghboot is
//! portable and never uses `cfg(unix)` itself.
//!
//! How each OS keeps a child from outliving a SIGKILLed ghboot:
//! - **Linux**: `prctl(PR_SET_PDEATHSIG, SIGKILL)` in the child between fork and exec, followed by a check that
//!   the parent is still the one that forked us (closing the race where the parent died before the prctl).
//!   The child gets its own process group so a terminal's Ctrl-C reaches ghboot only, and ghboot stops the
//!   child in order.
//! - **macOS** (no PDEATHSIG): between fork and exec the child forks a tiny watchdog that waits on `kqueue`
//!   `EVFILT_PROC`/`NOTE_EXIT` for ghboot's pid (SIGKILL the child) and the child's (just go). The child
//!   execs only once the watchdog is watching and ghboot is still its parent. See `unix.rs`.
//! - **Windows**: children start suspended in their own process group, join a Job Object created with
//!   `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE` (`adopt_child`, right after spawn) and only then run; the job's
//!   handle lives as long as ghboot, so the kernel kills the job when ghboot dies however it dies. A graceful
//!   stop is a `CTRL_BREAK_EVENT` to the child's process group, since Ctrl-C cannot be sent to one child.
//!   See `windows.rs`.
//!
//! macOS and Windows code is compiled and clippy-checked on Linux by `cargo xtask xcheck`; it is not run here.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;
