//! What `down --purge` and `reset` may delete: only a directory ghboot made (its marker: a valid ghboot state
//! file), and there only the paths of ghboot's layout. Anything else in it is someone else's: refuse, naming
//! it, and delete nothing (`--force` overrides, for a dir the operator knows is disposable).

use crate::error::{fail, Kind};
use crate::layout::Layout;
use crate::state::StateFile;
use anyhow::Result;
use std::path::PathBuf;

/// Top-level entries ghboot creates in a state dir (see `Layout`, the container modes' files, the local
/// `.github` repository of self-management). A new top-level path must be added here, or purge refuses it.
pub const OWNED: &[&str] = &[
    "state.json",
    "lock",
    "run",
    "logs",
    "nats",
    "secrets",
    "github",
    "terraform",
    "kubernetes",
    "repos.json",
    "repos.lock",
];

/// Written into every `ghboot render --out DIR`: a rendered dir inside a state dir is ghboot's too.
pub const RENDER_MARKER: &str = ".ghboot-render";

/// Leftovers of ghboot's own atomic writes and write probes (`.NAME.tmp.PID.RAND`, `.write-probe.PID`).
fn is_own_leftover(name: &str) -> bool {
    name.starts_with('.') && (name.contains(".tmp.") || name.starts_with(".write-probe."))
}

/// The paths to delete to purge `layout`'s dir: every entry when it is ghboot's, else an error (exit 65)
/// naming why and the first foreign entry. With `force`, every entry, whoever made it.
pub fn owned_paths(layout: &Layout, force: bool) -> Result<Vec<PathBuf>> {
    let root = layout.root();
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| {
            fail(Kind::Data, format!("cannot read {}: {e}", root.display()))
                .help("check its permissions")
        })?
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    entries.sort();
    if force || entries.is_empty() {
        return Ok(entries.into_iter().map(|(_, p)| p).collect());
    }
    let refuse = |why: String| -> anyhow::Error {
        fail(Kind::Data, why)
            .help(format!(
                "nothing was removed; if {} is really disposable, pass --force",
                root.display()
            ))
            .into()
    };
    // The marker: a state file ghboot wrote (versioned, with its timestamps); `{}` or another tool's file
    // of the same name is not one.
    match StateFile::load(layout) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(refuse(format!(
                "{} has no ghboot state file (state.json): not a ghboot state dir; not removing it",
                root.display()
            )))
        }
        Err(e) => {
            return Err(refuse(format!(
                "{} is not a ghboot state file ({}); not removing {}",
                layout.state_file().display(),
                crate::error::find_failure(&e)
                    .map(|f| f.message.clone())
                    .unwrap_or_else(|| format!("{e:#}")),
                root.display()
            )))
        }
    }
    if let Some((_, p)) = entries.iter().find(|(n, p)| {
        !OWNED.contains(&n.as_str())
            && !is_own_leftover(n)
            && !p.join(RENDER_MARKER).is_file()
            && !crate::ui::context::only_own_contexts_under(layout, p)
    }) {
        return Err(refuse(format!(
            "{} holds {}, which ghboot did not make; not removing anything",
            root.display(),
            p.display()
        )));
    }
    Ok(entries.into_iter().map(|(_, p)| p).collect())
}

/// Delete what [`owned_paths`] allows, then the dir itself (only if that left it empty).
pub fn purge(layout: &Layout, force: bool) -> Result<()> {
    let paths = owned_paths(layout, force)?;
    crate::ui::context::remove_for(layout);
    let cant = |p: &std::path::Path, e: std::io::Error| -> anyhow::Error {
        fail(
            Kind::CantCreate,
            format!("cannot remove {}: {e}", p.display()),
        )
        .help("check its permissions")
        .into()
    };
    for p in paths {
        let r = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        r.map_err(|e| cant(&p, e))?;
    }
    std::fs::remove_dir(layout.root()).map_err(|e| cant(layout.root(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(state: Option<&[u8]>, files: &[&str]) -> (tempfile::TempDir, Layout) {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("sd");
        std::fs::create_dir(&root).expect("mkdir");
        let layout = Layout::new(root.clone());
        match state {
            Some(b) => std::fs::write(layout.state_file(), b).expect("write"),
            None => {
                let mut st = StateFile::new();
                st.save(&layout).expect("save");
            }
        }
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, "p").expect("write");
        }
        (t, layout)
    }

    fn code(e: &anyhow::Error) -> u8 {
        crate::error::exit_code_of(e)
    }

    #[test]
    fn a_foreign_state_json_is_refused_and_nothing_removed() {
        for content in [&b"{}"[..], b"{\"version\": 4, \"serial\": 1}", b"not json"] {
            let (_t, l) = dir_with(Some(content), &["mine.txt"]);
            let e = purge(&l, false).expect_err("must refuse");
            assert_eq!(code(&e), 65);
            assert!(format!("{e:#}").contains("state.json"), "{e:#}");
            assert_eq!(std::fs::read(l.state_file()).expect("kept"), content);
            assert!(l.root().join("mine.txt").exists());
        }
    }

    #[test]
    fn a_foreign_file_beside_a_valid_state_is_named_and_kept() {
        let (_t, l) = dir_with(None, &["logs/nats.log", "zz-mine.txt"]);
        let e = purge(&l, false).expect_err("must refuse");
        assert_eq!(code(&e), 65);
        assert!(format!("{e}").contains("zz-mine.txt"), "{e}");
        assert!(l.root().join("zz-mine.txt").exists());
        assert!(l.root().join("logs/nats.log").exists());
        purge(&l, true).expect("--force removes it");
        assert!(!l.root().exists());
    }

    #[test]
    fn a_ghboot_dir_is_removed_whole() {
        let (_t, l) = dir_with(
            None,
            &["logs/nats.log", "nats/n0/jetstream/x", "secrets/s", "lock"],
        );
        purge(&l, false).expect("purge");
        assert!(!l.root().exists());
    }

    #[test]
    fn a_dir_ghboot_rendered_into_the_state_dir_is_ours_but_another_dir_is_not() {
        let marker = format!("k8s/{RENDER_MARKER}");
        let (_t, l) = dir_with(None, &[marker.as_str(), "k8s/00-ns.yaml", "mine/notes.txt"]);
        let e = purge(&l, false).expect_err("mine/ is foreign");
        assert!(format!("{e}").contains("mine"), "{e}");
        assert!(l.root().join("k8s/00-ns.yaml").exists());
        std::fs::remove_dir_all(l.root().join("mine")).expect("rm");
        purge(&l, false).expect("a rendered dir goes with the instance");
        assert!(!l.root().exists());
    }
}
