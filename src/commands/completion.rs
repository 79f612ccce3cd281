//! `ghboot completion SHELL`: the completion script for SHELL on stdout, generated from the clap
//! definitions (the same generator as `cargo xtask docs`), so it never drifts from the CLI.

pub fn run(shell: clap_complete::Shell) -> u8 {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut cmd, "ghboot", &mut std::io::stdout());
    0
}
