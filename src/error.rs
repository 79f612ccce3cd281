//! One error type that knows its exit code and the remedy to print.
//!
//! Domain code returns `anyhow::Result`; where the cause is something the user can act on it returns a
//! [`Failure`], which `main` finds in the chain to pick the exit code and the `help:` line.

use std::fmt;

/// Exit codes, the same for every subcommand (documented in README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything without a more specific code.
    Error,
    /// `plan` found pending changes; `check` found drift.
    Changes,
    /// Bad command line (clap's own errors are mapped here too, so that 2 keeps one meaning).
    Usage,
    /// Corrupt or unreadable input: state file, credentials, payload files.
    Data,
    /// A named input does not exist (state dir of `status`, `env`, ...).
    NoInput,
    /// A prerequisite is missing (tool, port, resources).
    Unavailable,
    /// The state dir (or another output) cannot be written.
    CantCreate,
    /// Temporary: another ghboot holds the lock, or a deadline passed. Retrying may help.
    TempFail,
    /// Configuration is invalid.
    Config,
}

impl Kind {
    pub fn code(self) -> u8 {
        match self {
            Kind::Error => 1,
            Kind::Changes => 2,
            Kind::Usage => 64,
            Kind::Data => 65,
            Kind::NoInput => 66,
            Kind::Unavailable => 69,
            Kind::CantCreate => 73,
            Kind::TempFail => 75,
            Kind::Config => 78,
        }
    }
}

/// A failure the user can act on: one line of cause and one line of remedy.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    pub help: Option<String>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into(), help: None }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand: `bail!(fail(Kind::Config, "...").help("..."))`.
pub fn fail(kind: Kind, message: impl Into<String>) -> Failure {
    Failure::new(kind, message)
}

/// The first [`Failure`] in an error chain, if any.
pub fn find_failure(err: &anyhow::Error) -> Option<&Failure> {
    err.chain().find_map(|e| e.downcast_ref::<Failure>())
}

pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    find_failure(err).map(|f| f.kind.code()).unwrap_or(1)
}
