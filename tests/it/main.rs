//! One integration-test binary (one link instead of one per file). Every test uses real processes: the
//! built `ghboot`, a real `nats-server`, real sockets and files. See common.rs for the shared harness.
mod bundled;
mod ci;
mod cluster;
mod common;
mod containers;
mod controller;
mod core;
mod fresh;
mod repos;
mod resilience;
mod secrets;
// the installer is POSIX sh (install.ps1 is its Windows sibling)
#[cfg(unix)]
mod install;
mod topology;
mod ui;
mod webhook;
