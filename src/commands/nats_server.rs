use crate::cli::{GlobalArgs, NatsServerCmd};
use anyhow::Result;

pub async fn run(g: &GlobalArgs, cmd: &NatsServerCmd) -> Result<u8> {
    match cmd {
        NatsServerCmd::Which => {
            let found = crate::natsd::find::find(g.nats_server.as_deref())?;
            eprintln!("source: {}", found.source);
            println!("{}", found.path.display());
            Ok(0)
        }
    }
}
