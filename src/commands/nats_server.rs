use crate::cli::{GlobalArgs, NatsServerCmd};
use crate::error::{fail, Kind};
use crate::natsd::{bundle, find, install, pin};
use anyhow::Result;

pub async fn run(g: &GlobalArgs, cmd: &NatsServerCmd) -> Result<u8> {
    match cmd {
        NatsServerCmd::Which => {
            let found = find::find(g.nats_server.as_deref())?;
            if g.json {
                let version = find::version_of(&found.path).ok().map(|v| v.to_string());
                let sha = pin::sha256_file(&found.path).ok().map(|(h, _)| h);
                println!(
                    "{}",
                    serde_json::json!({
                        "path": found.path, "source": found.source, "version": version, "sha256": sha,
                        "bundle": bundle::info(),
                    })
                );
            } else {
                match (found.source, bundle::info()) {
                    (find::Source::Bundled, Some(i)) => eprintln!("source: {} (nats-server {}, from {})", found.source, i.version, i.origin),
                    _ => eprintln!("source: {}", found.source),
                }
                println!("{}", found.path.display());
            }
            Ok(0)
        }
        NatsServerCmd::Install { version, from } => {
            let pins = pin::Pins::builtin();
            let key = pin::host_key().ok_or_else(|| {
                fail(Kind::Unavailable, format!("no nats-server build is known for {}/{}", std::env::consts::OS, std::env::consts::ARCH))
                    .help("install nats-server yourself and pass --nats-server PATH")
            })?;
            let version = version.as_deref().unwrap_or(&pins.version).trim_start_matches('v').to_string();
            let v = match from {
                Some(path) => install::verify_local(&pins, key, &version, path)?,
                None => install::download(&pins, key, &version).await?,
            };
            let dir = install::version_dir(&version)?;
            let exe = install::install_into(&dir, &v)?;
            // the file must be the nats-server it claims to be
            match find::version_of(&exe) {
                Ok(got) if got.to_string() == version => {}
                got => {
                    let _ = std::fs::remove_dir_all(&dir);
                    let got = got.map(|v| v.to_string()).unwrap_or_else(|e| format!("{e:#}"));
                    return Err(fail(Kind::Data, format!("the installed file is not nats-server {version} (it says {got}); removed"))
                        .help("pass --version matching the file, or a different --from")
                        .into());
                }
            }
            eprintln!("installed nats-server {version} from {}", v.origin);
            if bundle::available() && !bundle::skipped() {
                eprintln!("note: this ghboot runs its bundled nats-server first; the cached one is used with GHBOOT_SKIP_BUNDLED=1");
            }
            println!("{}", exe.display());
            Ok(0)
        }
    }
}
