//! JetStream topology as code (issue #4 fills this in): desired streams and buckets, reconciled.
pub mod subjects;

use crate::engine::{Change, Ctx};
use anyhow::Result;

/// What `apply` would change in JetStream.
pub async fn plan(_ctx: &mut Ctx) -> Result<Vec<Change>> {
    Ok(vec![])
}

/// Reconcile JetStream with the desired topology; returns a summary for the stage outputs.
pub async fn apply(_ctx: &mut Ctx) -> Result<serde_json::Value> {
    Ok(serde_json::json!({}))
}
