//! The org `.github` templates: where they come from (embedded in the binary, a repository's own
//! `templates/`, or an override dir), rendering with minijinja, and the manifest that records what was
//! generated so that `check` and `clean` know which files are ghboot's and which are hand-written.

use crate::error::{fail, Kind};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The templates built into the binary (the `templates/` dir of ghboot's source tree), so that one binary
/// works anywhere. Paths are relative to `templates/`; the output path is the same without `.j2`.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        ".github/workflows/ci.yml.j2",
        include_str!("../../templates/.github/workflows/ci.yml.j2"),
    ),
    (
        ".github/workflows/regenerate.yml.j2",
        include_str!("../../templates/.github/workflows/regenerate.yml.j2"),
    ),
    (
        ".github/ISSUE_TEMPLATE/bug_report.md.j2",
        include_str!("../../templates/.github/ISSUE_TEMPLATE/bug_report.md.j2"),
    ),
    (
        ".github/ISSUE_TEMPLATE/feature_request.md.j2",
        include_str!("../../templates/.github/ISSUE_TEMPLATE/feature_request.md.j2"),
    ),
    (
        ".github/pull_request_template.md.j2",
        include_str!("../../templates/.github/pull_request_template.md.j2"),
    ),
    (
        ".github/CODEOWNERS.j2",
        include_str!("../../templates/.github/CODEOWNERS.j2"),
    ),
    (
        "Taskfile.yml.j2",
        include_str!("../../templates/Taskfile.yml.j2"),
    ),
];

/// Where the manifest of generated files lives, relative to the repository root.
pub const MANIFEST: &str = ".github/.ghboot-manifest.json";
/// The directory of a repository that holds its own templates (a push touching it triggers regeneration).
pub const TEMPLATES_DIR: &str = "templates";
/// What a commit made by the controller carries, so that its own push never triggers a regeneration.
pub const SKIP_MARKER: &str = "[skip-regen]";
/// ghboot's GitHub repository (owner/name): its releases hold the prebuilt binaries (bootstrap/install.sh
/// names the same), and generated workflows use its action, `<repository>/bootstrap/action@v<version>`.
pub const GHBOOT_REPOSITORY: &str = "ghboot/ghboot";
/// actions/checkout in generated workflows, pinned by commit (a tag can be moved; a commit cannot).
const CHECKOUT: (&str, &str) = ("34e114876b0b11c390a56381ad16ebd13914f8d5", "v4.3.1");

/// What every template sees as `ghboot`: this binary's release and where its action lives.
fn ghboot_globals() -> minijinja::Value {
    minijinja::Value::from_serialize(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "repository": GHBOOT_REPOSITORY,
        "action": format!("{GHBOOT_REPOSITORY}/bootstrap/action"),
        "checkout_sha": CHECKOUT.0,
        "checkout_tag": CHECKOUT.1,
    }))
}

/// Where the templates of one rendering come from.
#[derive(Debug, Clone)]
pub enum Source {
    Embedded,
    Dir(PathBuf),
}

impl Source {
    /// An explicit override dir, else the repository's own `templates/`, else the embedded set.
    pub fn resolve(repo: &Path, override_dir: Option<&Path>) -> Source {
        match override_dir {
            Some(d) => Source::Dir(d.to_path_buf()),
            None if repo.join(TEMPLATES_DIR).is_dir() => Source::Dir(repo.join(TEMPLATES_DIR)),
            None => Source::Embedded,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Source::Embedded => "the templates built into ghboot".into(),
            Source::Dir(d) => d.display().to_string(),
        }
    }
    /// (path relative to the template root, text) of every `*.j2` file, sorted.
    pub fn load(&self) -> Result<Vec<(String, String)>> {
        match self {
            Source::Embedded => Ok(EMBEDDED
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect()),
            Source::Dir(root) => {
                if !root.is_dir() {
                    return Err(fail(Kind::NoInput, format!("template dir {} does not exist", root.display()))
                        .help("pass an existing --templates DIR, or leave it out to use the built-in templates")
                        .into());
                }
                let mut out = Vec::new();
                walk(root, root, &mut out)?;
                out.sort();
                Ok(out)
            }
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() && path.extension().is_some_and(|e| e == "j2") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join("/");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                fail(
                    Kind::Data,
                    format!("cannot read template {}: {e}", path.display()),
                )
            })?;
            out.push((rel, text));
        }
    }
    Ok(())
}

/// The values templates see.
#[derive(Debug, Clone, Serialize)]
pub struct Vars {
    pub org: String,
    pub branch: String,
    pub bot: Bot,
    /// The `[controller]` table of ghboot.toml, as is.
    pub controller: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bot {
    pub name: String,
    pub email: String,
}

/// Output path (relative, `/`-separated) -> full content, header included.
pub type Rendered = BTreeMap<String, String>;

pub fn render(source: &Source, vars: &Vars) -> Result<Rendered> {
    let templates = source.load()?;
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    env.set_keep_trailing_newline(true);
    env.add_global("ghboot", ghboot_globals());
    for (name, text) in &templates {
        env.add_template_owned(name.clone(), text.clone())
            .map_err(|e| {
                fail(Kind::Data, format!("template {name} does not parse: {e}"))
                    .help("fix the template's syntax")
            })?;
    }
    let ctx = minijinja::Value::from_serialize(vars);
    let mut out = Rendered::new();
    for (name, _) in &templates {
        let target = name.trim_end_matches(".j2").to_string();
        check_target(&target)?;
        let tmpl = env.get_template(name)?;
        let body = tmpl.render(&ctx).map_err(|e| {
            fail(Kind::Data, format!("template {name} does not render: {e}"))
                .help("fix the template")
        })?;
        let body = if body.ends_with('\n') {
            body
        } else {
            format!("{body}\n")
        };
        out.insert(
            target.clone(),
            with_header(&target, &format!("{TEMPLATES_DIR}/{name}"), &body),
        );
    }
    Ok(out)
}

/// Output paths stay inside the repository and out of `.git/`, `templates/` and the manifest.
fn check_target(target: &str) -> Result<()> {
    let p = Path::new(target);
    let bad = p.components().any(|c| !matches!(c, Component::Normal(_)))
        || target.starts_with(".git/")
        || target.starts_with(&format!("{TEMPLATES_DIR}/"))
        || target == MANIFEST;
    if bad {
        return Err(fail(
            Kind::Data,
            format!("template output path {target:?} is not allowed"),
        )
        .help("templates render to paths inside the repository, outside .git/ and templates/")
        .into());
    }
    Ok(())
}

/// The "generated" header in the comment syntax of the file type.
pub fn with_header(target: &str, template: &str, body: &str) -> String {
    let text = format!("Generated by ghboot from {template}. Do not edit: change the template, then run `ghboot generate`.");
    let file = target.rsplit('/').next().unwrap_or(target);
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "md" | "markdown" | "html" | "htm" | "xml" | "svg" => {
            let header = format!("<!-- {text} -->\n");
            // Front matter (issue templates) must stay the first thing in the file.
            if let Some(rest) = body.strip_prefix("---\n") {
                if let Some(end) = rest.find("\n---\n") {
                    let (fm, after) = rest.split_at(end + 5);
                    return format!("---\n{fm}{header}{after}");
                }
            }
            format!("{header}{body}")
        }
        "json" => body.to_string(),
        "js" | "ts" | "rs" | "go" | "java" | "c" | "h" | "cpp" => format!("// {text}\n{body}"),
        _ => format!("# {text}\n{body}"),
    }
}

pub fn sha256(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))
}

/// `.github/.ghboot-manifest.json`: which files ghboot wrote, and their content hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub generated_by: String,
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    pub fn of(rendered: &Rendered) -> Manifest {
        Manifest {
            generated_by: "ghboot".into(),
            files: rendered
                .iter()
                .map(|(p, c)| (p.clone(), sha256(c.as_bytes())))
                .collect(),
        }
    }
    pub fn load(repo: &Path) -> Result<Option<Manifest>> {
        let path = repo.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(b) => {
                let m: Manifest = serde_json::from_slice(&b).map_err(|e| {
                    fail(
                        Kind::Data,
                        format!("manifest {} is not valid: {e}", path.display()),
                    )
                    .help("restore it from git, or delete it and run `ghboot generate`")
                })?;
                for p in m.files.keys() {
                    check_target(p)?;
                }
                Ok(Some(m))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(Kind::Data, format!("cannot read {}: {e}", path.display())).into()),
        }
    }
    pub fn text(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string_pretty(self).unwrap_or_default()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Would be created.
    Missing,
    /// Exists with other content.
    Differs,
    /// Generated earlier, no template produces it any more.
    Stale,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub path: String,
    pub kind: DiffKind,
}

/// Every file whose content is not what the templates produce (the manifest included).
pub fn diff(repo: &Path, rendered: &Rendered) -> Result<Vec<Diff>> {
    let mut out = Vec::new();
    let new_manifest = Manifest::of(rendered);
    let mut want: Vec<(String, String)> = rendered
        .iter()
        .map(|(p, c)| (p.clone(), c.clone()))
        .collect();
    want.push((MANIFEST.to_string(), new_manifest.text()));
    for (path, content) in &want {
        match std::fs::read(repo.join(path)) {
            Ok(have) if have == content.as_bytes() => {}
            Ok(_) => out.push(Diff {
                path: path.clone(),
                kind: DiffKind::Differs,
            }),
            Err(_) => out.push(Diff {
                path: path.clone(),
                kind: DiffKind::Missing,
            }),
        }
    }
    if let Some(old) = Manifest::load(repo)? {
        for path in old.files.keys().filter(|p| !rendered.contains_key(*p)) {
            if repo.join(path).exists() {
                out.push(Diff {
                    path: path.clone(),
                    kind: DiffKind::Stale,
                });
            }
        }
    }
    Ok(out)
}

/// What `write` did.
#[derive(Debug, Default, Serialize)]
pub struct Written {
    pub written: Vec<String>,
    pub removed: Vec<String>,
    /// Stale generated files left in place because they were edited by hand.
    pub kept: Vec<String>,
}

/// Bring the repository to what the templates produce. Never overwrites a file ghboot did not write (not in
/// the manifest and without a ghboot header) unless `force`.
pub fn write(repo: &Path, rendered: &Rendered, force: bool) -> Result<Written> {
    let old = Manifest::load(repo)?.unwrap_or_default();
    let mut done = Written::default();
    for (path, content) in rendered {
        let full = repo.join(path);
        match std::fs::read(&full) {
            Ok(have) if have == content.as_bytes() => continue,
            Ok(have) if !force && !old.files.contains_key(path) && !looks_generated(&have) => {
                return Err(fail(Kind::Data, format!("{path} exists and was not generated by ghboot; not overwriting it"))
                    .help("move it away (or pass --force to replace it), then run `ghboot generate` again")
                    .into());
            }
            _ => {}
        }
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        crate::fsutil::write_atomic(&full, content.as_bytes())
            .with_context(|| format!("cannot write {}", full.display()))?;
        done.written.push(path.clone());
    }
    for (path, hash) in old.files.iter().filter(|(p, _)| !rendered.contains_key(*p)) {
        let full = repo.join(path);
        match std::fs::read(&full) {
            Ok(have) if &sha256(&have) == hash => {
                std::fs::remove_file(&full)
                    .with_context(|| format!("cannot remove {}", full.display()))?;
                prune_empty_dirs(repo, &full);
                done.removed.push(path.clone());
            }
            Ok(_) => done.kept.push(path.clone()),
            Err(_) => {}
        }
    }
    let manifest = Manifest::of(rendered);
    let mpath = repo.join(MANIFEST);
    if std::fs::read(&mpath).ok().as_deref() != Some(manifest.text().as_bytes()) {
        if let Some(parent) = mpath.parent() {
            std::fs::create_dir_all(parent)?;
        }
        crate::fsutil::write_atomic(&mpath, manifest.text().as_bytes())?;
        done.written.push(MANIFEST.to_string());
    }
    Ok(done)
}

fn looks_generated(content: &[u8]) -> bool {
    let head: Vec<u8> = content.iter().take(2048).copied().collect();
    String::from_utf8_lossy(&head).contains("Generated by ghboot from")
}

/// What `clean` did.
#[derive(Debug, Default, Serialize)]
pub struct Cleaned {
    pub removed: Vec<String>,
    /// Listed in the manifest but edited since: left in place.
    pub kept: Vec<String>,
    pub manifest_found: bool,
}

/// Remove exactly the files the manifest lists (and that are unchanged since), then the manifest. A file
/// not in the manifest is never touched, even in a directory ghboot writes into.
pub fn clean(repo: &Path) -> Result<Cleaned> {
    let Some(m) = Manifest::load(repo)? else {
        return Ok(Cleaned::default());
    };
    let mut done = Cleaned {
        manifest_found: true,
        ..Default::default()
    };
    for (path, hash) in &m.files {
        let full = repo.join(path);
        match std::fs::read(&full) {
            Ok(have) if &sha256(&have) == hash => {
                std::fs::remove_file(&full)
                    .with_context(|| format!("cannot remove {}", full.display()))?;
                prune_empty_dirs(repo, &full);
                done.removed.push(path.clone());
            }
            Ok(_) => done.kept.push(path.clone()),
            Err(_) => {}
        }
    }
    let mpath = repo.join(MANIFEST);
    std::fs::remove_file(&mpath).with_context(|| format!("cannot remove {}", mpath.display()))?;
    prune_empty_dirs(repo, &mpath);
    Ok(done)
}

/// Remove the parents of a removed file while they are empty, up to (not including) the repository root.
fn prune_empty_dirs(repo: &Path, removed: &Path) {
    let mut dir = removed.parent();
    while let Some(d) = dir {
        if d == repo || !d.starts_with(repo) {
            break;
        }
        if std::fs::remove_dir(d).is_err() {
            break; // not empty (or not ours to remove)
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            org: "acme".into(),
            branch: "main".into(),
            bot: Bot {
                name: "bot".into(),
                email: "bot@x".into(),
            },
            controller: serde_json::json!({}),
        }
    }

    #[test]
    fn embedded_templates_render_with_headers() {
        let r = render(&Source::Embedded, &vars()).expect("render");
        assert!(r.len() >= 5);
        for (path, content) in &r {
            assert!(
                content.contains("Generated by ghboot from templates/"),
                "{path}"
            );
        }
        let bug = &r[".github/ISSUE_TEMPLATE/bug_report.md"];
        assert!(bug.starts_with("---\n"), "front matter stays first: {bug}");
        assert!(r[".github/CODEOWNERS"].starts_with("# Generated"));
        assert!(r[".github/workflows/ci.yml"].contains("branches: [main]"));
    }

    #[test]
    fn regenerate_workflow_installs_this_release_before_calling_ghboot() {
        let r = render(&Source::Embedded, &vars()).expect("render");
        let wf = &r[".github/workflows/regenerate.yml"];
        let action = format!(
            "uses: {GHBOOT_REPOSITORY}/bootstrap/action@v{}",
            env!("CARGO_PKG_VERSION")
        );
        let install = wf.find(&action).expect("installs ghboot with the action");
        let call = wf.find("ghboot generate --repo").expect("calls ghboot");
        assert!(install < call, "{wf}");
        assert!(
            wf.contains("concurrency:") && wf.contains("[skip-regen]"),
            "{wf}"
        );
        assert!(wf.contains("head_commit.author.email != 'bot@x'"), "{wf}");
        assert!(!wf.contains("{{"), "unrendered template syntax: {wf}");
    }

    #[test]
    fn the_installer_names_the_same_repository() {
        let sh = include_str!("../../bootstrap/install.sh");
        let ps = include_str!("../../bootstrap/install.ps1");
        assert!(sh.contains(&format!("GHBOOT_REPOSITORY={GHBOOT_REPOSITORY}\n")));
        assert!(ps.contains(&format!("$Repository = '{GHBOOT_REPOSITORY}'")));
    }

    #[test]
    fn generate_check_clean_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path();
        std::fs::create_dir_all(repo.join(".github/workflows")).expect("mkdir");
        std::fs::write(repo.join(".github/workflows/mine.yml"), "mine").expect("write");
        let r = render(&Source::Embedded, &vars()).expect("render");
        assert!(!diff(repo, &r).expect("diff").is_empty());
        write(repo, &r, false).expect("write");
        assert!(diff(repo, &r).expect("diff").is_empty());
        assert!(
            write(repo, &r, false).expect("again").written.is_empty(),
            "idempotent"
        );
        clean(repo).expect("clean");
        assert_eq!(
            std::fs::read_to_string(repo.join(".github/workflows/mine.yml")).expect("kept"),
            "mine"
        );
        assert!(!repo.join(MANIFEST).exists());
        assert!(!repo.join(".github/CODEOWNERS").exists());
    }

    #[test]
    fn refuses_to_overwrite_hand_written() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join(".github")).expect("mkdir");
        std::fs::write(dir.path().join(".github/CODEOWNERS"), "* @me\n").expect("write");
        let r = render(&Source::Embedded, &vars()).expect("render");
        assert!(write(dir.path(), &r, false).is_err());
    }
}
