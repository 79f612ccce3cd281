use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match ghboot::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
                _ => ExitCode::from(ghboot::error::Kind::Usage.code()),
            };
        }
    };
    let debug = cli.global.debug || std::env::var("DEBUG").is_ok_and(|v| v == "true" || v == "1");
    // a standalone receiver or controller: its stderr is its log (containers)
    let server = matches!(
        cli.command,
        Some(ghboot::cli::Command::Controller(_))
            | Some(ghboot::cli::Command::Webhook(
                ghboot::cli::WebhookCmd::Serve { .. }
            ))
    );
    ghboot::init_tracing(debug, server);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(ghboot::run(cli));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            if let Some(help) = ghboot::error::find_failure(&e).and_then(|f| f.help.as_ref()) {
                eprintln!("  help: {help}");
            }
            ExitCode::from(ghboot::error::exit_code_of(&e))
        }
    }
}
