//! Stage: where bootstrap and infrastructure state live. In dev, the local layout under the state dir.
use crate::engine::{Change, Ctx, Outputs, Stage, Verdict};
use crate::error::{fail, Kind};
use anyhow::Result;

pub struct StateBackend;

#[async_trait::async_trait]
impl Stage for StateBackend {
    fn name(&self) -> &'static str {
        "state-backend"
    }
    fn summary(&self) -> &'static str {
        "create the state dir layout and the Terraform backend and JetStream export"
    }
    async fn plan(&self, ctx: &mut Ctx) -> Result<Vec<Change>> {
        Ok(ctx
            .settings
            .layout
            .dirs()
            .into_iter()
            .filter(|(d, _, _)| !d.is_dir())
            .map(|(d, why, _)| {
                Change::new("state-backend", d.display().to_string(), "create").note(why)
            })
            .collect())
    }
    async fn verify(&self, ctx: &mut Ctx) -> Result<Verdict> {
        for (d, _, private) in ctx.settings.layout.dirs() {
            if !d.is_dir() {
                return Ok(Verdict::Drift(format!("{} is missing", d.display())));
            }
            if private && crate::platform::file_mode(&d).is_some_and(|m| m & 0o077 != 0) {
                return Ok(Verdict::Drift(format!(
                    "{} is readable by others",
                    d.display()
                )));
            }
        }
        if let Some(why) = crate::terraform::drift(&ctx.settings) {
            return Ok(Verdict::Drift(why));
        }
        Ok(Verdict::Holds)
    }
    async fn apply(&self, ctx: &mut Ctx) -> Result<Outputs> {
        for (d, _, private) in ctx.settings.layout.dirs() {
            let r = if private {
                crate::fsutil::create_private_dir(&d)
            } else {
                std::fs::create_dir_all(&d)
            };
            r.map_err(|e| {
                fail(
                    Kind::CantCreate,
                    format!("cannot create {}: {e}", d.display()),
                )
                .help("make the state dir writable, or pass --state-dir DIR")
            })?;
        }
        let mut out = crate::terraform::write(&ctx.settings).await?;
        out.insert("backend".into(), "local".into());
        out.insert(
            "dir".into(),
            ctx.settings.layout.root().display().to_string().into(),
        );
        out.insert(
            "summary".into(),
            format!("local state in {}", ctx.settings.layout.root().display()).into(),
        );
        Ok(out)
    }
}
