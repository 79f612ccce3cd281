use crate::cli::{GlobalArgs, LogComponent};
use anyhow::Result;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

pub async fn run(g: &GlobalArgs, component: Option<LogComponent>, follow: bool) -> Result<u8> {
    let (settings, _) = super::existing_instance(g)?;
    let names: Vec<&str> = match component {
        Some(LogComponent::Nats) => vec!["nats"],
        Some(LogComponent::Supervisor) => vec!["supervisor"],
        Some(LogComponent::Receiver) => vec!["receiver"],
        Some(LogComponent::Controller) => vec!["controller"],
        None => vec!["supervisor", "nats", "receiver", "controller"],
    };
    let mut files: Vec<_> = names
        .iter()
        .map(|n| (n.to_string(), settings.layout.log_file(n)))
        .filter(|(_, p)| p.exists())
        .collect();
    // In dev the receiver and the controller run inside the supervisor and log to its file.
    if files.is_empty()
        && matches!(
            component,
            Some(LogComponent::Receiver | LogComponent::Controller)
        )
    {
        let sup = settings.layout.log_file("supervisor");
        if sup.exists() {
            eprintln!(
                "the receiver and the controller run inside the supervisor here: showing {}",
                sup.display()
            );
            files.push(("supervisor".into(), sup));
        }
    }
    if files.is_empty() {
        eprintln!(
            "no log files yet in {}",
            settings.layout.logs_dir().display()
        );
        return Ok(0);
    }
    let prefix = files.len() > 1;
    let mut offsets = vec![0u64; files.len()];
    loop {
        let mut out = std::io::stdout().lock();
        for (i, (name, path)) in files.iter().enumerate() {
            let Ok(mut f) = std::fs::File::open(path) else {
                continue;
            };
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if len < offsets[i] {
                offsets[i] = 0; // rotated
            }
            f.seek(SeekFrom::Start(offsets[i]))?;
            let mut buf = String::new();
            f.read_to_string(&mut buf)?;
            offsets[i] += buf.len() as u64;
            for line in buf.lines() {
                if prefix {
                    writeln!(out, "{name:>10} | {line}")?;
                } else {
                    writeln!(out, "{line}")?;
                }
            }
        }
        out.flush()?;
        drop(out);
        if !follow {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
