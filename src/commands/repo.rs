//! `ghboot repo add | list | remove | env` and `ghboot health`.

use crate::cli::{EnvFormat, GlobalArgs, RepoCmd};
use crate::config::Settings;
use crate::error::{fail, Kind};
use crate::repos::{self, Registry, Repo};
use crate::secret::Secret;
use crate::topology::subjects::{self, repo as rs};
use anyhow::{Context, Result};
use fs4::fs_std::FileExt;

pub async fn run(g: &GlobalArgs, cmd: &RepoCmd) -> Result<u8> {
    let (settings, _) = super::existing_instance(g)?;
    match cmd {
        RepoCmd::Add {
            name,
            events,
            subscribe,
        } => add(&settings, name, events, subscribe).await,
        RepoCmd::List => list(g, &settings),
        RepoCmd::Remove { name } => remove(&settings, name).await,
        RepoCmd::Env { name, format } => {
            env(
                &settings,
                name,
                if g.json { EnvFormat::Json } else { *format },
            )
            .await
        }
    }
}

/// `ghboot health`: the instance's NATS answers its health check.
pub async fn health(g: &GlobalArgs) -> Result<u8> {
    let (settings, _) = super::existing_instance(g)?;
    let h = crate::deploy::for_settings(&settings)
        .health(&settings)
        .await;
    if !h.healthy {
        return Err(fail(
            Kind::Unavailable,
            format!(
                "NATS of the instance in {} is not healthy{}",
                settings.layout.root().display(),
                if h.supervisor_alive {
                    ""
                } else {
                    " (not running)"
                }
            ),
        )
        .help("`ghboot status` shows why; `ghboot up --detach` starts it")
        .into());
    }
    println!("nats: healthy ({})", h.url.unwrap_or_default());
    Ok(0)
}

/// Repositories get identities only where ghboot runs the server (and so owns its users).
fn require_supervised(s: &Settings) -> Result<()> {
    if crate::deploy::for_settings(s).name() != "dev" {
        return Err(fail(
            Kind::Config,
            format!(
                "product repositories need a nats-server ghboot supervises; this instance runs {}",
                crate::deploy::for_settings(s).name()
            ),
        )
        .help("use --mode dev (self_hosted, self_hosted_cluster or hybrid); on Synadia Cloud issue users in its account instead")
        .into());
    }
    Ok(())
}

/// Held while the registry changes: `up` holds the state lock for as long as it runs, so repositories have
/// their own.
fn lock(s: &Settings) -> Result<std::fs::File> {
    let path = s.layout.repos_lock_file();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.lock_exclusive()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(f)
}

fn not_registered(name: &str) -> anyhow::Error {
    fail(
        Kind::NoInput,
        format!("repository {name} is not registered"),
    )
    .help("`ghboot repo list` shows the registered ones; `ghboot repo add NAME` registers one")
    .into()
}

/// Bring the running server's routing stream and repository consumers to the registry. `false` when no
/// instance runs (the next `ghboot up` does it).
async fn reconcile(s: &Settings) -> Result<bool> {
    let running = crate::state::Runtime::load(&s.layout).is_some_and(|r| r.supervisor_alive());
    if !running {
        return Ok(false);
    }
    let want = crate::topology::desired::desired(s)?;
    let client = crate::deploy::for_settings(s).connect(s).await?;
    let js = crate::deploy::jetstream(s, client);
    let routes = rs::routes_stream(&want.org);
    for r in want.resources.iter().filter(|r| r.name == routes) {
        if crate::topology::reconcile::stream_info(&js, &r.config.name)
            .await?
            .is_none()
        {
            crate::topology::reconcile::create_or_adopt(&js, &r.config).await?;
        }
    }
    crate::topology::consumers::reconcile(&js, &want.org, &want.consumers).await?;
    Ok(true)
}

async fn add(s: &Settings, raw: &str, events: &[String], subscribe: &[String]) -> Result<u8> {
    require_supervised(s)?;
    let name = repos::validate_name(&s.org, raw)?;
    let events = repos::validate_events(events)?;
    let mut grants = Vec::new();
    for g in subscribe {
        let (other, topic) = repos::validate_grant(&s.org, g)?;
        if other == name {
            return Err(fail(
                Kind::Usage,
                format!("--subscribe {g}: a repository needs no grant for its own topics"),
            )
            .help("grant another repository's topic, OTHER.TOPIC")
            .into());
        }
        grants.push(format!("{other}.{topic}"));
    }
    let _lock = lock(s)?;
    let mut reg = Registry::load(&s.layout)?;
    let mut pw = repos::load_passwords(&s.layout)?;
    let repo = Repo {
        name: name.clone(),
        events,
        subscribe: grants,
    };
    let existed = reg.repos.insert(name.clone(), repo.clone()).is_some();
    if !pw.contains_key(&name) {
        pw.insert(name.clone(), Secret::generate(32));
        repos::save_passwords(&s.layout, &pw)?;
    }
    reg.save(&s.layout)?;
    let reloaded = crate::natsd::users::apply(s).await?;
    let live = reconcile(s).await?;
    println!(
        "repository {name} {}: consumer {} on {} ({}), NATS user {}{}",
        if existed { "updated" } else { "added" },
        rs::consumer(&name),
        subjects::events_stream(&s.org),
        repos::event_filters(&s.org, &repo).join(", "),
        rs::user(&name),
        if live {
            format!(" (applied to {reloaded} running node(s))")
        } else {
            " (the instance is not running: `ghboot up` applies it)".into()
        }
    );
    println!(
        "publishes to {}.<topic>",
        rs::outbound_prefix(&s.org, &name)
    );
    if !repo.subscribe.is_empty() {
        println!(
            "receives {} from consumer {} on {}",
            repos::granted_subjects(&s.org, &repo).join(", "),
            rs::routes_consumer(&name),
            rs::routes_stream(&s.org)
        );
    }
    println!("`ghboot repo env {name}` prints its credentials");
    Ok(0)
}

fn list(g: &GlobalArgs, s: &Settings) -> Result<u8> {
    let reg = Registry::load(&s.layout)?;
    let rows: Vec<serde_json::Value> = reg
        .repos
        .values()
        .map(|r| {
            serde_json::json!({
                "name": r.name,
                "full_name": format!("{}/{}", s.org, r.name),
                "events": r.events,
                "subscribe": r.subscribe,
                "stream": subjects::events_stream(&s.org),
                "consumer": rs::consumer(&r.name),
                "filter_subjects": repos::event_filters(&s.org, r),
                "user": rs::user(&r.name),
                "publishes": rs::outbound_filter(&s.org, &r.name),
            })
        })
        .collect();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "repos": rows }))?
        );
        return Ok(0);
    }
    if reg.repos.is_empty() {
        println!("no repositories registered (`ghboot repo add NAME`)");
        return Ok(0);
    }
    for r in reg.repos.values() {
        let events = if r.events.is_empty() {
            "all events".to_string()
        } else {
            r.events.join(",")
        };
        let grants = if r.subscribe.is_empty() {
            String::new()
        } else {
            format!(", subscribes to {}", r.subscribe.join(","))
        };
        println!(
            "{:<24} {} ({events}{grants})",
            r.name,
            rs::consumer(&r.name)
        );
    }
    Ok(0)
}

async fn remove(s: &Settings, raw: &str) -> Result<u8> {
    let name = repos::validate_name(&s.org, raw)?;
    let _lock = lock(s)?;
    let mut reg = Registry::load(&s.layout)?;
    if reg.repos.remove(&name).is_none() {
        return Err(not_registered(&name));
    }
    reg.save(&s.layout)?;
    let mut pw = repos::load_passwords(&s.layout)?;
    if pw.remove(&name).is_some() {
        repos::save_passwords(&s.layout, &pw)?;
    }
    // The reload closes the identity's connections and refuses new ones before we return.
    let reloaded = crate::natsd::users::apply(s).await?;
    let live = reconcile(s).await?;
    crate::ui::context::remove_repo(&s.layout, &name);
    println!(
        "repository {name} removed: NATS user {} revoked{}, consumer {} {}",
        rs::user(&name),
        if reloaded > 0 {
            format!(" on {reloaded} running node(s)")
        } else {
            String::new()
        },
        rs::consumer(&name),
        if live {
            "deleted"
        } else {
            "deleted at the next `ghboot up`"
        }
    );
    Ok(0)
}

async fn env(s: &Settings, raw: &str, format: EnvFormat) -> Result<u8> {
    let name = repos::validate_name(&s.org, raw)?;
    let reg = Registry::load(&s.layout)?;
    let repo = reg.repos.get(&name).ok_or_else(|| not_registered(&name))?;
    let password = repos::load_passwords(&s.layout)?
        .remove(&name)
        .ok_or_else(|| {
            fail(
                Kind::NoInput,
                format!("repository {name} has no password in the state dir"),
            )
            .help(format!("`ghboot repo add {name}` gives it a new one"))
        })?;
    let target = crate::deploy::for_settings(s);
    let url = target.health(s).await.url.ok_or_else(|| {
        fail(Kind::NoInput, "this instance has no NATS URL yet").help("run `ghboot up` first")
    })?;
    let domain = target.jetstream_domain(s);
    let user = rs::user(&name);
    let inbox = rs::inbox_prefix(&name);
    let mut v: Vec<(String, String, bool)> = vec![
        ("NATS_URL".into(), url.clone(), false),
        ("NATS_USER".into(), user.clone(), false),
        ("NATS_PASSWORD".into(), password.expose().to_string(), true),
        ("NATS_INBOX_PREFIX".into(), inbox.clone(), false),
    ];
    if let Some(d) = &domain {
        v.push(("NATS_JS_DOMAIN".into(), d.clone(), false));
    }
    v.push((
        "GHBOOT_STREAM".into(),
        subjects::events_stream(&s.org),
        false,
    ));
    v.push(("GHBOOT_CONSUMER".into(), rs::consumer(&name), false));
    v.push((
        "GHBOOT_PUBLISH_PREFIX".into(),
        rs::outbound_prefix(&s.org, &name),
        false,
    ));
    if !repo.subscribe.is_empty() {
        v.push((
            "GHBOOT_ROUTES_STREAM".into(),
            rs::routes_stream(&s.org),
            false,
        ));
        v.push((
            "GHBOOT_ROUTES_CONSUMER".into(),
            rs::routes_consumer(&name),
            false,
        ));
    }
    match crate::ui::context::write_repo(
        &s.layout,
        &name,
        &url,
        &user,
        password.expose(),
        &inbox,
        domain.as_deref(),
    ) {
        Ok(_) => v.push((
            "NATS_CONTEXT".into(),
            crate::ui::context::repo_context_name(&s.layout, &name),
            false,
        )),
        Err(e) => eprintln!("note: no NATS CLI context written: {e:#}"),
    }
    print!("{}", super::env::render(&v, format));
    Ok(0)
}
