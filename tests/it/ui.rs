//! The status page (issue 22): served by the supervisor on a loopback listener of its own; replay needs the
//! token and the page's own origin; and, in a real browser (headless Chromium + Selenium, ui_browser.py),
//! the stages, NATS health, a delivery arriving live and the Replay button.
use crate::common::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// A raw HTTP/1.1 request on loopback: (status, body). No client library, so the Host header is ours to set.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the page");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req += &format!("Host: 127.0.0.1:{port}\r\n");
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, body.to_string())
}

fn dead_letter_ids(i: &Instance) -> Vec<u64> {
    let out = ok(&i.run(&["dlq", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("dlq list --json");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["id"].as_u64())
        .collect()
}

const PUSH: &str = r#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"1111111111111111111111111111111111111111","repository":{"name":"uirepo","full_name":"acme/uirepo","owner":{"login":"acme"}},"pusher":{"name":"t"},"sender":{"login":"t"},"commits":[]}"#;
/// A push of the org's .github without `ref`: the controller dead-letters it.
const POISON: &str = r#"{"repository":{"name":".github","full_name":"acme/.github","owner":{"login":"acme"}},"sender":{"login":"t"}}"#;

/// What the browser test needs, or why it cannot run here.
fn browser() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let find = |env: &str, names: &[&str]| {
        std::env::var_os(env)
            .map(PathBuf::from)
            .or_else(|| names.iter().find_map(|n| which::which(n).ok()))
    };
    let chromium = find("GHBOOT_TEST_CHROMIUM", &["chromium", "chromium-browser"])
        .ok_or("no chromium (Debian: apt-get install chromium chromium-driver)")?;
    let driver = find("GHBOOT_TEST_CHROMEDRIVER", &["chromedriver"])
        .ok_or("no chromedriver (Debian: apt-get install chromium-driver)")?;
    let python = find("GHBOOT_TEST_PYTHON", &["python3"]).ok_or("no python3")?;
    let has_selenium = std::process::Command::new(&python)
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_selenium {
        return Err(format!(
            "{} has no selenium (run `cargo xtask test`, which installs it)",
            python.display()
        ));
    }
    Ok((chromium, driver, python))
}

#[test]
fn status_page_is_loopback_only_guards_replay_and_works_in_chromium() {
    let i = Instance::new();
    let cfg = i.dir.path().join("ghboot.toml");
    std::fs::write(&cfg, "[controller]\nmax_deliveries = 1\n").unwrap();
    ok(&i.up(&["--org", "acme", "--config", cfg.to_str().unwrap()]));

    // the URL: loopback, a port of its own, the token in its query; `ghboot ui` prints the same
    let env = i.env_json();
    let url = env["GHBOOT_UI_URL"]
        .as_str()
        .expect("GHBOOT_UI_URL in ghboot env")
        .to_string();
    let u = url::Url::parse(&url).expect("GHBOOT_UI_URL is a URL");
    assert_eq!(u.host_str(), Some("127.0.0.1"), "{u}");
    let port = u.port().expect("a port");
    assert_ne!(
        port, i.webhook_port,
        "the page must not share the webhook port"
    );
    let token = u
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("token in the URL");
    assert!(token.len() >= 32);
    let printed = ok(&i.run(&["ui"]));
    assert_eq!(printed.trim(), url, "ghboot ui prints GHBOOT_UI_URL");

    // the token is a secret: 0600, never in the supervisor's log or the runtime/state files
    let tok_file = i.state_dir().join("secrets").join("ui-token");
    assert_eq!(
        ghboot::platform::file_mode(&tok_file).map(|m| m & 0o777),
        Some(0o600)
    );
    for f in [
        i.state_dir().join("logs").join("supervisor.log"),
        i.state_dir().join("run").join("supervisor.json"),
        i.state_dir().join("state.json"),
    ] {
        assert!(!read(&f).contains(&token), "token in {}", f.display());
    }

    // bound to loopback only, as the OS sees it
    let ss = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss");
    let ss = String::from_utf8_lossy(&ss.stdout);
    let locals: Vec<&str> = ss
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert!(!locals.is_empty(), "nothing listens on {port}");
    assert!(
        locals.iter().all(|a| a.starts_with("127.")),
        "the page listens on {locals:?}"
    );

    // readable without the token on loopback; a foreign Host (DNS rebinding) is refused
    let (code, html) = http(port, "GET", "/", &[]);
    assert_eq!(code, 200);
    for st in [
        "prerequisites",
        "state-backend",
        "nats",
        "webhooks",
        "controller",
        "self-management",
    ] {
        assert!(
            html.contains(&format!("<th scope=\"row\">{st}</th>")),
            "{st} row"
        );
    }
    assert!(
        !html.contains(&token),
        "a page loaded without the token shows it"
    );
    let (code, _) = http(
        port,
        "GET",
        "/",
        &[("Host", &format!("evil.example:{port}"))],
    );
    assert_eq!(code, 421, "a page for another host name");

    // a dead letter, then replay requests that must all be refused and change nothing
    let push = i.dir.path().join("push.json");
    let poison = i.dir.path().join("poison.json");
    std::fs::write(&push, PUSH).unwrap();
    std::fs::write(&poison, POISON).unwrap();
    ok(&i.run(&[
        "webhook",
        "send",
        "--event",
        "push",
        "--payload",
        poison.to_str().unwrap(),
    ]));
    let id = wait_for(Duration::from_secs(30), "a dead letter", || {
        dead_letter_ids(&i).first().copied()
    });
    let path = format!("/api/dlq/{id}/replay");
    let own = format!("http://127.0.0.1:{port}");
    let with_token = format!("{path}?token={token}");
    for (what, p, h) in [
        ("no token", path.as_str(), vec![("Origin", own.as_str())]),
        ("no token, no Origin", path.as_str(), vec![]),
        (
            "wrong token",
            "/api/dlq/0/replay?token=0000",
            vec![("Origin", own.as_str())],
        ),
        (
            "token, foreign Origin",
            with_token.as_str(),
            vec![("Origin", "http://evil.example")],
        ),
        (
            "token, cross-site fetch",
            with_token.as_str(),
            vec![("Sec-Fetch-Site", "cross-site")],
        ),
    ] {
        let (code, body) = http(port, "POST", p, &h);
        assert_eq!(code, 403, "{what}: {body}");
        assert!(
            !body.contains(&token),
            "{what}: the refusal shows the token"
        );
    }
    assert_eq!(
        dead_letter_ids(&i),
        vec![id],
        "a refused replay changed the dead letters"
    );

    // the browser part
    let (chromium, driver, python) = match browser() {
        Ok(b) => b,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("the status page's browser test is required under CI: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED the browser part of the status page test: {why}");
            return;
        }
    };
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/ui_browser.py");
    let mut c = std::process::Command::new(python);
    c.arg(script)
        .arg(ghboot_bin())
        .arg(i.state_dir())
        .arg(&push)
        .arg(&poison)
        .arg(&shots)
        .env("GHBOOT_TEST_CHROMIUM", chromium)
        .env("GHBOOT_TEST_CHROMEDRIVER", driver)
        // selenium must not try to download a browser or driver (no network here)
        .env("SE_OFFLINE", "true")
        .env("XDG_CONFIG_HOME", i.dir.path().join("config"))
        .env("GHBOOT_STATE_DIR", i.state_dir())
        .env("HOME", i.dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("run ui_browser.py");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{url}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("ui_browser.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "in Chromium: {stdout}\n{}\n(screenshots in {})",
        String::from_utf8_lossy(&out.stderr),
        shots.display()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    eprintln!(
        "status page in Chromium: {seen}; screenshots in {}",
        shots.display()
    );
    let replayed: u64 = seen["dead_letter"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("the dead letter the browser replayed");
    assert!(
        !dead_letter_ids(&i).contains(&replayed),
        "dead letter {replayed} is still listed after Replay"
    );
    for f in [
        "1-stages-1280x800.png",
        "2-delivery-1280x800.png",
        "4-replayed-1280x800.png",
        "5-phone-390.png",
    ] {
        assert!(shots.join(f).exists(), "screenshot {f}");
    }
}
