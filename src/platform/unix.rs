use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub fn set_create_mode(opts: &mut OpenOptions, mode: u32) {
    opts.mode(mode);
}

pub fn restrict_dir(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Owner read/write only (a secret file found wider than that).
pub fn restrict_file(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

pub fn file_mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

pub fn make_executable(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// A child that must die with us: own process group (terminal signals go to ghboot, which stops it in
/// order) and the parent-death guarantee: on Linux the parent-death signal, on macOS a kqueue watchdog.
pub fn supervise_child(cmd: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody would ever signal us.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            #[cfg(target_os = "macos")]
            parent_watch::start(parent)?;
            #[cfg(not(any(target_os = "linux", target_os = "macos")))]
            let _ = parent;
            Ok(())
        });
    }
}

/// Right after spawning a `supervise_child` command. Nothing left to do on Unix: everything happened
/// between fork and exec (Windows puts the child into its job here).
pub fn adopt_child(_child: &tokio::process::Child) -> std::io::Result<()> {
    Ok(())
}

/// macOS has no parent-death signal. Between fork and exec the child forks a watchdog that waits on
/// `kqueue` (`EVFILT_PROC`/`NOTE_EXIT`) for two pids: ghboot's, whose exit makes it SIGKILL the child, and
/// the child's, whose exit lets it go. Compiled and clippy-checked here (`cargo xtask xcheck`), never run:
/// only reviewed.
#[cfg(target_os = "macos")]
mod parent_watch {
    use std::io::Error;

    /// In the child between fork and exec: only async-signal-safe calls, no allocation.
    pub(super) unsafe fn start(parent: libc::pid_t) -> std::io::Result<()> {
        let mut ready = [0 as libc::c_int; 2];
        if libc::pipe(ready.as_mut_ptr()) != 0 {
            return Err(Error::last_os_error());
        }
        let child = libc::getpid();
        match libc::fork() {
            -1 => {
                let e = Error::last_os_error();
                libc::close(ready[0]);
                libc::close(ready[1]);
                return Err(e);
            }
            0 => watchdog(parent, child, ready[1]),
            _ => {}
        }
        libc::close(ready[1]);
        // Wait until the watchdog watches ghboot; EOF instead of its byte means it could not.
        let mut byte = 0u8;
        let n = loop {
            let n = libc::read(ready[0], (&mut byte as *mut u8).cast(), 1);
            if n >= 0 || Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break n;
            }
        };
        libc::close(ready[0]);
        if n != 1 {
            return Err(Error::from_raw_os_error(libc::ECHILD));
        }
        // ghboot may have died before the watch began (then its pid could even be someone else's by now):
        // we were re-parented, so give up rather than run unwatched.
        if libc::getppid() != parent {
            libc::_exit(1);
        }
        Ok(())
    }

    unsafe fn watch(kq: libc::c_int, pid: libc::pid_t) -> bool {
        let mut ev: libc::kevent = std::mem::zeroed();
        ev.ident = pid as libc::uintptr_t;
        ev.filter = libc::EVFILT_PROC;
        ev.flags = libc::EV_ADD | libc::EV_ONESHOT;
        ev.fflags = libc::NOTE_EXIT;
        libc::kevent(kq, &ev, 1, std::ptr::null_mut(), 0, std::ptr::null()) == 0
    }

    /// The watchdog: a fork of the child, so a copy of ghboot that must hold nothing of it (ghboot's std
    /// waits for its exec-status pipe to close; listening sockets must close when ghboot's do).
    unsafe fn watchdog(parent: libc::pid_t, child: libc::pid_t, ready: libc::c_int) -> ! {
        // descriptors are allocated lowest first and ghboot holds few: the soft limit, capped, covers them
        let mut lim: libc::rlimit = std::mem::zeroed();
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(65_536) as libc::c_int
        } else {
            1024
        };
        for fd in 0..max {
            if fd != ready {
                libc::close(fd);
            }
        }
        let kq = libc::kqueue();
        if kq < 0 {
            libc::_exit(1); // the child reads EOF and fails its spawn: never unwatched
        }
        if !watch(kq, parent) {
            // ESRCH: ghboot is already gone
            libc::kill(child, libc::SIGKILL);
            libc::_exit(0);
        }
        if !watch(kq, child) {
            libc::_exit(0);
        }
        let one = 1u8;
        libc::write(ready, (&one as *const u8).cast(), 1);
        libc::close(ready);
        loop {
            let mut ev: libc::kevent = std::mem::zeroed();
            let n = libc::kevent(kq, std::ptr::null(), 0, &mut ev, 1, std::ptr::null());
            if n == 1 {
                if ev.ident == parent as libc::uintptr_t {
                    libc::kill(child, libc::SIGKILL);
                }
                libc::_exit(0);
            }
            if n < 0 && Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(1);
            }
        }
    }
}

/// A child that must outlive us: a new session, no controlling terminal.
pub fn detach_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Is `pid` a live process (zombies count as dead)?
pub fn is_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // state is the first field after the parenthesised command name
            if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) {
                return !matches!(rest.trim_start().chars().next(), Some('Z') | Some('X'));
            }
        }
    }
    true
}

/// The executable behind `pid`, where the OS tells (used to make sure a recorded pid is still ours).
#[cfg(not(target_os = "macos"))]
pub fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The executable behind `pid` (macOS has no /proc: `proc_pidpath`).
#[cfg(target_os = "macos")]
pub fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let pid = libc::c_int::try_from(pid).ok()?;
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: the size passed is the buffer's length.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    (n > 0).then(|| std::ffi::OsStr::from_bytes(&buf[..n as usize]).into())
}

pub fn terminate(pid: u32) {
    if pid > 0 && pid <= i32::MAX as u32 {
        // SAFETY: plain signal send.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}

pub fn kill(pid: u32) {
    if pid > 0 && pid <= i32::MAX as u32 {
        // SAFETY: plain signal send.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Resolves when the process is asked to stop (Ctrl-C, SIGTERM, SIGHUP).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match hup.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// This machine's UTC offset now, in seconds (nats-server writes its log times in local time).
pub fn local_utc_offset_secs() -> i32 {
    // SAFETY: time(NULL) and localtime_r with our own `tm` touch no shared state we hold.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff as i32
    }
}

/// Ask a nats-server to reload its configuration (SIGHUP). False when the signal could not be sent.
pub fn reload_config(pid: u32) -> bool {
    // SAFETY: plain signal send.
    pid > 0
        && pid <= i32::MAX as u32
        && unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } == 0
}

/// The desktop's "open this URL" command, when a graphical session is at hand (none on a server or in CI).
pub fn url_opener(url: &str) -> Option<std::process::Command> {
    if cfg!(target_os = "macos") {
        let mut c = std::process::Command::new("open");
        c.arg(url);
        return Some(c);
    }
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let xdg = which::which("xdg-open").ok().filter(|_| graphical)?;
    let mut c = std::process::Command::new(xdg);
    c.arg(url);
    Some(c)
}

/// The user and group ids this process runs as: rendered Compose files run their containers as the user
/// who rendered them (so that the 0600 secret files it wrote are readable by them), unless that is root.
pub fn current_ids() -> Option<(u32, u32)> {
    // SAFETY: geteuid/getegid cannot fail and touch no memory
    Some(unsafe { (libc::geteuid(), libc::getegid()) })
}

/// Give a file to another owner (root rendering files for a non-root container user).
pub fn chown(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}
