use crate::cli::{GlobalArgs, LogComponent};
use anyhow::Result;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

pub async fn run(
    g: &GlobalArgs,
    component: Option<LogComponent>,
    follow: bool,
    tail: Option<usize>,
    since: Option<&str>,
) -> Result<u8> {
    let since_raw = since.map(str::to_string);
    let since = since.map(parse_since).transpose()?;
    let (settings, _) = super::existing_instance(g)?;
    // docker mode: the components are containers, their logs are the engine's
    if settings.mode == crate::cli::Mode::Docker {
        let which = component.map(|c| match c {
            LogComponent::Nats => "nats",
            LogComponent::Receiver => "receiver",
            LogComponent::Controller => "controller",
            LogComponent::Supervisor => "supervisor",
        });
        if which != Some("supervisor") {
            let since_arg = since_raw.as_deref();
            return crate::deploy::docker::engine::logs(&settings, which, follow, tail, since_arg)
                .await;
        }
    }
    let names: Vec<&str> = match component {
        Some(LogComponent::Nats) => vec!["nats"],
        Some(LogComponent::Supervisor) => vec!["supervisor"],
        Some(LogComponent::Receiver) => vec!["receiver"],
        Some(LogComponent::Controller) => vec!["controller"],
        // supervisor.log already holds the receiver's and the controller's lines (their files are copies)
        None => vec!["supervisor", "nats"],
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
    let mut first = true;
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
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)?;
            offsets[i] += bytes.len() as u64;
            let buf = String::from_utf8_lossy(&bytes);
            let mut lines: Vec<&str> = buf.lines().collect();
            // --since and --tail pick from what is there now; --follow then prints everything new
            if first {
                if let Some(t) = since {
                    lines = since_filter(lines, t);
                }
                if let Some(n) = tail {
                    lines.drain(..lines.len().saturating_sub(n));
                }
            }
            for line in lines {
                if prefix {
                    writeln!(out, "{name:>10} | {line}")?;
                } else {
                    writeln!(out, "{line}")?;
                }
            }
        }
        out.flush()?;
        drop(out);
        first = false;
        if !follow {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `--since`: a duration back from now (`10m`, `2h`, `1d`) or an RFC 3339 time.
fn parse_since(s: &str) -> Result<time::OffsetDateTime> {
    use crate::error::{fail, Kind};
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    match humantime::parse_duration(s) {
        Ok(d) => Ok(time::OffsetDateTime::now_utc() - d),
        Err(_) => Err(fail(
            Kind::Usage,
            format!("--since {s:?} is neither a duration nor an RFC 3339 time"),
        )
        .help("e.g. --since 10m, --since 2h, or --since 2026-01-31T12:00:00Z")
        .into()),
    }
}

/// When a log line was written: ghboot's lines start with an RFC 3339 time; nats-server's with
/// `[pid] YYYY/MM/DD HH:MM:SS.micros` in local time.
fn line_time(line: &str) -> Option<time::OffsetDateTime> {
    let first = line.split_whitespace().next()?;
    if let Ok(t) =
        time::OffsetDateTime::parse(first, &time::format_description::well_known::Rfc3339)
    {
        return Some(t);
    }
    let mut words = line.split_whitespace();
    if line.starts_with('[') {
        words.next();
    }
    let (d, t) = (words.next()?, words.next()?);
    let fmt = time::macros::format_description!(
        "[year]/[month]/[day] [hour]:[minute]:[second].[subsecond]"
    );
    let naive = time::PrimitiveDateTime::parse(&format!("{d} {t}"), &fmt).ok()?;
    let offset = time::UtcOffset::from_whole_seconds(crate::platform::local_utc_offset_secs())
        .unwrap_or(time::UtcOffset::UTC);
    Some(naive.assume_offset(offset))
}

/// The lines written at or after `t`; a line without a time of its own (a continuation) goes with the line
/// before it.
fn since_filter(lines: Vec<&str>, t: time::OffsetDateTime) -> Vec<&str> {
    let mut keep = false;
    lines
        .into_iter()
        .filter(|l| {
            if let Some(lt) = line_time(l) {
                keep = lt >= t;
            }
            keep
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_keeps_lines_from_then_on_with_their_continuations() {
        let t = time::OffsetDateTime::parse(
            "2026-01-01T10:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let lines = vec![
            "2026-01-01T09:59:59.000000Z  INFO old",
            "  continuation of old",
            "2026-01-01T10:00:01.000000Z  WARN new",
            "  continuation of new",
        ];
        assert_eq!(
            since_filter(lines, t),
            vec![
                "2026-01-01T10:00:01.000000Z  WARN new",
                "  continuation of new"
            ]
        );
        assert!(parse_since("10m").is_ok());
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn nats_server_log_lines_have_a_time() {
        assert!(line_time("[123] 2026/01/01 10:00:00.123456 [INF] Starting nats-server").is_some());
    }
}
