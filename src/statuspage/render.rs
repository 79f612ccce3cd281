//! The page's HTML, rendered on the server from the snapshot (minijinja, auto-escaped: every value on the
//! page comes from outside, e.g. a payload's repository name or a dead letter's error).
use anyhow::Result;
use serde_json::Value;

const PAGE: &str = include_str!("../../assets/statuspage/page.html");
const LIVE: &str = include_str!("../../assets/statuspage/live.html");

fn env() -> Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    // names ending in .html are auto-escaped
    env.add_template("page.html", PAGE)?;
    env.add_template("live.html", LIVE)?;
    env.add_filter("short", |s: String| -> String {
        s.chars().take(8).collect()
    });
    env.add_filter("bytes", |n: u64| -> String {
        match n {
            n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
            n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
            n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
            n => format!("{n} B"),
        }
    });
    env.add_filter("clock", |s: String| -> String {
        // 2026-12-01T15:04:05.123Z -> 15:04:05 (the full time is in the title attribute)
        s.split('T')
            .nth(1)
            .map(|t| t.chars().take(8).collect())
            .unwrap_or(s)
    });
    Ok(env)
}

fn ctx(snap: &Value, token: Option<&str>) -> minijinja::Value {
    minijinja::context! { s => minijinja::Value::from_serialize(snap), token => token }
}

/// The whole page (static frame and the live part as it is now).
pub fn page(snap: &Value, token: Option<&str>) -> Result<String> {
    Ok(env()?.get_template("page.html")?.render(ctx(snap, token))?)
}

/// The live part alone, for `/events`.
pub fn live(snap: &Value, token: Option<&str>) -> Result<String> {
    Ok(env()?.get_template("live.html")?.render(ctx(snap, token))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap() -> Value {
        json!({
            "org": "acme", "mode": "dev", "stages": [
                {"name": "prerequisites", "status": "done", "duration": "0.1 s"},
                {"name": "nats", "status": "failed", "error": "port taken", "help": "pass --port"},
            ],
            "nats": {"healthy": true, "nodes": [], "streams": []},
            "deliveries": {"running": true, "recent": [
                {"at": "2026-12-01T15:04:05Z", "event": "push", "repo": "<script>x</script>", "delivery": "d-1",
                 "subject": "github.acme.r.push", "outcome": "stored", "duplicate": false}],
                "refused": [{"reason": "signature_invalid", "status": 401, "count": 2}]},
            "controller": {"dead_letters": [{"id": 7, "reason": "bad", "original_subject": "github.acme.x.push", "at": "t"}]},
        })
    }

    #[test]
    fn escapes_what_came_from_outside_and_names_the_replay_with_its_id() {
        let html = page(&snap(), Some("tok")).unwrap();
        assert!(
            !html.contains("<script>x</script>"),
            "unescaped payload value"
        );
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("/api/dlq/7/replay"));
        assert!(html.contains("help: pass --port"));
        // without the token the Replay control is shown disabled and the token is nowhere
        let html = page(&snap(), None).unwrap();
        assert!(!html.contains("tok\""));
        assert!(html.contains("disabled"));
    }
}
