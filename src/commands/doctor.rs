use crate::cli::GlobalArgs;
use crate::stages::prerequisites::checks;
use anyhow::Result;

pub async fn run(g: &GlobalArgs) -> Result<u8> {
    let (mut settings, _) = super::maybe_instance(g)?;
    crate::deploy::auto::resolve(&mut settings).await;
    let all = checks(&settings);
    let failed = all.iter().filter(|c| !c.ok).count();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": failed == 0, "checks": all}))?
        );
    } else {
        let w = all.iter().map(|c| c.name.len()).max().unwrap_or(5);
        println!("{:<w$}  {:<4}  DETAIL", "CHECK", "OK");
        for c in &all {
            println!(
                "{:<w$}  {:<4}  {}",
                c.name,
                if c.ok { "ok" } else { "FAIL" },
                c.detail
            );
            if let Some(r) = &c.remedy {
                println!("{:<w$}        fix: {r}", "");
            }
        }
        println!();
        println!(
            "{}",
            if failed == 0 {
                format!("all {} checks passed", all.len())
            } else {
                format!("{failed} of {} checks failed", all.len())
            }
        );
    }
    Ok(if failed == 0 {
        0
    } else {
        all.iter()
            .find(|c| !c.ok)
            .and_then(|c| c.kind)
            .map(|k| k.code())
            .unwrap_or(1)
    })
}
