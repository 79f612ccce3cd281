//! Windows counterparts. Not built on this project's machines (only Linux can be built here); kept small
//! so it is easy to review. Children go into a kill-on-close Job Object (see mod.rs).
use std::fs::OpenOptions;
use std::path::Path;

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

pub fn supervise_child(cmd: &mut tokio::process::Command) {
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    cmd.creation_flags(CREATE_NEW_PROCESS_GROUP);
    // The Job Object assignment happens right after spawn in natsd::supervise via `assign_to_kill_job`.
}

pub fn detach_child(cmd: &mut std::process::Command) {
    use std::os::windows::process::CommandExt;
    const DETACHED_PROCESS: u32 = 0x0000_0008;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    cmd.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP);
}

pub fn is_alive(pid: u32) -> bool {
    sysinfo::System::new_all()
        .process(sysinfo::Pid::from_u32(pid))
        .is_some()
}

pub fn exe_of(pid: u32) -> Option<std::path::PathBuf> {
    let sys = sysinfo::System::new_all();
    sys.process(sysinfo::Pid::from_u32(pid))
        .and_then(|p| p.exe().map(|e| e.to_path_buf()))
}

pub fn terminate(pid: u32) {
    kill(pid)
}

pub fn kill(pid: u32) {
    if let Some(p) = sysinfo::System::new_all().process(sysinfo::Pid::from_u32(pid)) {
        p.kill();
    }
}

pub async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// This machine's UTC offset now, in seconds. Not read on Windows (no build here to test it): UTC.
pub fn local_utc_offset_secs() -> i32 {
    0
}

/// No uid/gid on Windows: rendered Compose files keep the image's default (non-root) user.
pub fn current_ids() -> Option<(u32, u32)> {
    None
}

pub fn chown(_path: &Path, _uid: u32, _gid: u32) -> std::io::Result<()> {
    Ok(())
}
