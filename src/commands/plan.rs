use crate::cli::GlobalArgs;
use crate::engine::{self, Ctx, Role};
use crate::state::StateFile;
use crate::ui::Reporter;
use anyhow::Result;

pub async fn run(g: &GlobalArgs) -> Result<u8> {
    let (mut settings, state) = super::maybe_instance(g)?;
    crate::deploy::auto::resolve(&mut settings).await;
    super::validate_config(&settings)?;
    let mut ctx = Ctx {
        settings,
        state: state.unwrap_or_else(StateFile::new),
        role: Role::Client,
        reporter: Reporter::quiet(),
        nats: None,
    };
    let plans = engine::plan(&mut ctx, &crate::stages::all()).await?;
    let pending: usize = plans
        .iter()
        .map(|(_, p)| p.as_ref().map(|c| c.len()).unwrap_or(0))
        .sum();
    if g.json {
        let stages: Vec<serde_json::Value> = plans
            .iter()
            .map(|(name, p)| match p {
                Ok(changes) => serde_json::json!({"stage": name, "changes": changes}),
                Err(reason) => serde_json::json!({"stage": name, "changes": [], "skipped": reason}),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"changes_pending": pending, "stages": stages})
            )?
        );
    } else {
        for (name, p) in &plans {
            match p {
                Err(reason) => println!("{name}: not run ({reason})"),
                Ok(c) if c.is_empty() => println!("{name}: no changes"),
                Ok(changes) => {
                    println!("{name}:");
                    for c in changes {
                        println!("  {:<8} {}", c.action, c.resource);
                        if let Some(n) = &c.note {
                            println!("           ({n})");
                        }
                        // one row per field, `field: from -> to`, arrows aligned
                        let w = c
                            .fields
                            .iter()
                            .map(|f| f.field.len() + 1)
                            .max()
                            .unwrap_or(0);
                        let fw = c.fields.iter().map(|f| f.from.len()).max().unwrap_or(0);
                        for f in &c.fields {
                            let field = format!("{}:", f.field);
                            println!("           {field:<w$} {:<fw$} -> {}", f.from, f.to);
                        }
                    }
                }
            }
        }
        println!();
        println!(
            "{}",
            if pending == 0 {
                "No changes. The instance matches the configuration.".to_string()
            } else {
                format!("{pending} change(s) pending; `ghboot up` applies them.")
            }
        );
    }
    Ok(if pending == 0 {
        0
    } else {
        crate::error::Kind::Changes.code()
    })
}
