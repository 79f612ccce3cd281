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
