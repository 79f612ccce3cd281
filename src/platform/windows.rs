//! Windows counterparts, written against `windows-sys` (the Win32 API itself, no wrapper layer to trust).
//! Compiled and clippy-checked on Linux by `cargo xtask xcheck`; never run here, only reviewed.
//!
//! - No orphans: every supervised child is started suspended, put into one Job Object created with
//!   `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`, and only then resumed, so it never runs outside the job. The job's
//!   only handle is ghboot's and is never closed: when ghboot exits, however it exits, the kernel closes it
//!   and kills everything in the job.
//! - Graceful stop without Ctrl-C: children get their own process group (`CREATE_NEW_PROCESS_GROUP`) and
//!   share ghboot's console, so `CTRL_BREAK_EVENT` reaches just that group; Go's runtime (nats-server)
//!   turns it into `os.Interrupt` and shuts down cleanly. (`nats-server --signal stop=` addresses a Windows
//!   *service* by name on Windows, not a pid, so it cannot be used here.) Where no console is shared the event
//!   cannot be delivered and the stop is a `TerminateProcess`.
//! - Liveness and identity: `OpenProcess` on the one pid (exit code, image name), not a system-wide scan.
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::OnceLock;
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_ACCESS_DENIED, HANDLE, INVALID_HANDLE_VALUE, STILL_ACTIVE,
    WAIT_TIMEOUT,
};
use windows_sys::Win32::System::Console::{
    GenerateConsoleCtrlEvent, GetConsoleProcessList, CTRL_BREAK_EVENT,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
    SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, OpenProcess, OpenThread, QueryFullProcessImageNameW, ResumeThread,
    TerminateProcess, WaitForSingleObject, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW,
    CREATE_SUSPENDED, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE,
    PROCESS_TERMINATE, THREAD_SUSPEND_RESUME,
};

pub fn set_create_mode(_opts: &mut OpenOptions, _mode: u32) {
    // ACLs of the per-user profile dirs already keep other users out.
}

pub fn restrict_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub fn restrict_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub fn file_mode(_path: &Path) -> Option<u32> {
    None
}

pub fn make_executable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// A handle closed on drop.
struct Owned(HANDLE);

impl Owned {
    fn new(h: HANDLE) -> Option<Owned> {
        (!h.is_null() && h != INVALID_HANDLE_VALUE).then_some(Owned(h))
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the handle is ours and closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The kill-on-close job every supervised child joins. The handle is deliberately never closed: the kernel
/// closes it when ghboot exits, and that kills the job.
struct Job(HANDLE);
// SAFETY: a job handle is a kernel object reference, usable from any thread.
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

fn kill_job() -> std::io::Result<HANDLE> {
    static JOB: OnceLock<Result<Job, i32>> = OnceLock::new();
    let job = JOB.get_or_init(|| {
        // SAFETY: plain Win32 calls; the info struct outlives the call that reads it.
        unsafe {
            // not inheritable (null attributes), so no child keeps the job alive after ghboot
            let h = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if h.is_null() {
                return Err(GetLastError() as i32);
            }
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            if SetInformationJobObject(
                h,
                JobObjectExtendedLimitInformation,
                &info as *const _ as *const std::ffi::c_void,
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            ) == 0
            {
                let e = GetLastError() as i32;
                CloseHandle(h);
                return Err(e);
            }
            Ok(Job(h))
        }
    });
    match job {
        Ok(j) => Ok(j.0),
        Err(e) => Err(std::io::Error::from_raw_os_error(*e)),
    }
}

/// A child that must die with us: its own process group (so a console break reaches it alone), and started
/// suspended so `adopt_child` can put it into the kill-on-close job before it runs a single instruction.
pub fn supervise_child(cmd: &mut tokio::process::Command) {
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED);
}

/// Right after spawning a `supervise_child` command: join the kill-on-close job, then let it run. On error
/// the child is killed (it never ran), so nothing is left behind.
pub fn adopt_child(child: &tokio::process::Child) -> std::io::Result<()> {
    let (Some(handle), Some(pid)) = (child.raw_handle(), child.id()) else {
        return Err(std::io::Error::other("the child is already gone"));
    };
    let handle = handle as HANDLE;
    let joined = kill_job().and_then(|job| {
        // SAFETY: both handles are valid for the duration of the call.
        if unsafe { AssignProcessToJobObject(job, handle) } == 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    });
    let resumed = joined.and_then(|()| resume_threads(pid));
    if resumed.is_err() {
        // SAFETY: our own child's handle.
        unsafe { TerminateProcess(handle, 1) };
    }
    resumed
}

/// Resume the (single, suspended) thread of a process started with `CREATE_SUSPENDED`. std does not hand
/// out the primary thread handle, so find it by a thread snapshot.
fn resume_threads(pid: u32) -> std::io::Result<()> {
    // SAFETY: plain Win32 calls on handles owned by `Owned`; the entry struct is sized as the API asks.
    unsafe {
        let snap = Owned::new(CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0))
            .ok_or_else(std::io::Error::last_os_error)?;
        let mut entry: THREADENTRY32 = std::mem::zeroed();
        entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
        let mut resumed = 0;
        let mut more = Thread32First(snap.0, &mut entry) != 0;
        while more {
            if entry.th32OwnerProcessID == pid {
                if let Some(t) =
                    Owned::new(OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID))
                {
                    if ResumeThread(t.0) != u32::MAX {
                        resumed += 1;
                    }
                }
            }
            more = Thread32Next(snap.0, &mut entry) != 0;
        }
        if resumed == 0 {
            return Err(std::io::Error::other(format!(
                "cannot resume the suspended process {pid}"
            )));
        }
    }
    Ok(())
}

/// A child that must outlive us: its own process group, and a console without a window (rather than
/// none, `DETACHED_PROCESS`): its own children then share that console, which is what lets it stop them
/// with a console break, and none of them pops up a window.
pub fn detach_child(cmd: &mut std::process::Command) {
    use std::os::windows::process::CommandExt;
    cmd.creation_flags(CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP);
}

fn open(pid: u32, access: u32) -> Option<Owned> {
    if pid == 0 {
        return None;
    }
    // SAFETY: OpenProcess returns null on failure, checked by `Owned::new`.
    Owned::new(unsafe { OpenProcess(access, 0, pid) })
}

/// Is `pid` a live process? One `OpenProcess`, not a system scan.
pub fn is_alive(pid: u32) -> bool {
    let Some(h) = open(pid, PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE) else {
        // Someone else's process (e.g. elevated) exists but will not open for us.
        // SAFETY: reads the calling thread's last error.
        return pid != 0 && unsafe { GetLastError() } == ERROR_ACCESS_DENIED;
    };
    let mut code = 0u32;
    // SAFETY: valid handle, valid out pointer.
    let running = unsafe { GetExitCodeProcess(h.0, &mut code) } != 0 && code == STILL_ACTIVE as u32;
    // An exit code of 259 (STILL_ACTIVE) is ambiguous: ask the handle whether it is signalled.
    // SAFETY: valid handle opened with SYNCHRONIZE.
    running && unsafe { WaitForSingleObject(h.0, 0) } == WAIT_TIMEOUT
}

/// The executable behind `pid` (used to make sure a recorded pid is still ours).
pub fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    use std::os::windows::ffi::OsStringExt;
    let h = open(pid, PROCESS_QUERY_LIMITED_INFORMATION)?;
    let mut buf = vec![0u16; 32 * 1024];
    let mut len = buf.len() as u32;
    // SAFETY: `len` is the buffer's size in u16s, updated to the length written.
    if unsafe { QueryFullProcessImageNameW(h.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len) }
        == 0
    {
        return None;
    }
    buf.truncate(len as usize);
    Some(std::ffi::OsString::from_wide(&buf).into())
}

/// Does `pid` share our console (the condition for a console event to reach it)?
fn shares_console(pid: u32) -> bool {
    let mut list = vec![0u32; 64];
    loop {
        // SAFETY: the count passed is the buffer's length.
        let n = unsafe { GetConsoleProcessList(list.as_mut_ptr(), list.len() as u32) } as usize;
        if n == 0 {
            return false; // we have no console
        }
        if n <= list.len() {
            return list[..n].contains(&pid);
        }
        list.resize(n + 16, 0);
    }
}

/// Ask `pid` to stop: a console break to its process group (it leads one when started by
/// `supervise_child` or `detach_child`). A break cannot reach a process on another console (`down` stopping
/// a detached supervisor): that one is stopped hard now (its nats-server children die with its job) rather
/// than after the caller waited out a grace period for nothing.
pub fn terminate(pid: u32) {
    if pid == 0 {
        return;
    }
    // SAFETY: plain Win32 call.
    if !shares_console(pid) || unsafe { GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid) } == 0 {
        kill(pid)
    }
}

pub fn kill(pid: u32) {
    if let Some(h) = open(pid, PROCESS_TERMINATE) {
        // SAFETY: valid handle opened with PROCESS_TERMINATE.
        unsafe { TerminateProcess(h.0, 1) };
    }
}

/// Resolves when the process is asked to stop: Ctrl-C, Ctrl-Break (what `terminate` sends), the console
/// closing, logoff or shutdown.
pub async fn shutdown_signal() {
    use tokio::signal::windows;
    let mut brk = windows::ctrl_break().ok();
    let mut close = windows::ctrl_close().ok();
    let mut shutdown = windows::ctrl_shutdown().ok();
    let mut logoff = windows::ctrl_logoff().ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match brk.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match close.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match shutdown.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match logoff.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// This machine's UTC offset now, in seconds. Not read on Windows (no build here to test it): UTC.
pub fn local_utc_offset_secs() -> i32 {
    0
}

/// Windows has no SIGHUP: the caller has nats-server deliver the reload (`--signal reload=PID`).
pub fn reload_config(_pid: u32) -> bool {
    false
}

/// The desktop's "open this URL" command.
pub fn url_opener(url: &str) -> Option<std::process::Command> {
    let mut c = std::process::Command::new("cmd");
    // `start` treats its first quoted argument as a window title
    c.args(["/C", "start", "", url]);
    Some(c)
}

/// No uid/gid on Windows: rendered Compose files keep the image's default (non-root) user.
pub fn current_ids() -> Option<(u32, u32)> {
    None
}

pub fn chown(_path: &Path, _uid: u32, _gid: u32) -> std::io::Result<()> {
    Ok(())
}
