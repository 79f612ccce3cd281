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
/// order) and, on Linux, the parent-death signal.
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
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
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
pub fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
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
