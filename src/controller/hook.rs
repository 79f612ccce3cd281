pub async fn run(_g: &crate::cli::GlobalArgs, _hook: &str, _dir: &std::path::Path) -> anyhow::Result<u8> {
    Ok(0)
}
