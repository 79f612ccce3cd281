//! `--terraform-backend local|s3|gcs`: the state-backend stage writes, under `<state-dir>/terraform/`, a
//! Terraform backend configuration and an export of the JetStream topology as resources of the official
//! JetStream provider (`nats-io/jetstream`: `jetstream_stream`, `jetstream_kv_bucket`), for teams that run
//! NATS with Terraform. When `terraform` is installed, the files are formatted (which parses them) and
//! `terraform init -backend=false` + `terraform validate` run; a provider that cannot be downloaded (no
//! registry, air-gapped) is reported, not fatal.

use crate::config::Settings;
use crate::config::TerraformBackend;
use crate::engine::Outputs;
use crate::error::{fail, Kind};
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn dir(s: &Settings) -> PathBuf {
    s.layout.terraform_dir()
}

/// One exported resource: its provider type, Terraform name and attributes (in order).
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub kind: &'static str,
    pub name: String,
    pub attrs: Vec<(String, serde_json::Value)>,
}

fn enum_str<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// The desired JetStream topology (`topology::desired`: names, subjects, limits, replicas) as provider
/// resources, with the provider's attribute names and units (seconds, bytes).
pub fn resources(s: &Settings) -> Result<Vec<Resource>> {
    use crate::topology::desired::{desired, ResourceKind};
    let d = desired(s)?;
    Ok(d.resources
        .iter()
        .map(|r| {
            let c = &r.config;
            let description = c.description.clone().unwrap_or_default();
            match r.kind {
                ResourceKind::Stream => Resource {
                    kind: "jetstream_stream",
                    name: r.name.to_lowercase(),
                    attrs: vec![
                        ("name".into(), c.name.clone().into()),
                        ("description".into(), description.into()),
                        ("subjects".into(), serde_json::json!(c.subjects)),
                        ("storage".into(), enum_str(&c.storage)),
                        ("retention".into(), enum_str(&c.retention)),
                        ("discard".into(), enum_str(&c.discard)),
                        ("max_age".into(), c.max_age.as_secs().into()),
                        ("max_bytes".into(), c.max_bytes.into()),
                        ("max_msgs".into(), c.max_messages.into()),
                        (
                            "duplicate_window".into(),
                            c.duplicate_window.as_secs().into(),
                        ),
                        ("replicas".into(), c.num_replicas.into()),
                    ],
                },
                ResourceKind::Bucket => Resource {
                    kind: "jetstream_kv_bucket",
                    name: format!("kv_{}", r.name.to_lowercase()),
                    attrs: vec![
                        ("name".into(), r.name.clone().into()),
                        ("description".into(), description.into()),
                        ("history".into(), c.max_messages_per_subject.max(1).into()),
                        ("ttl".into(), c.max_age.as_secs().into()),
                        ("max_bucket_size".into(), c.max_bytes.into()),
                        (
                            "max_value_size".into(),
                            i64::from(c.max_message_size).into(),
                        ),
                        ("replicas".into(), c.num_replicas.into()),
                    ],
                },
            }
        })
        .collect())
}

fn hcl_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(hcl_value).collect::<Vec<_>>().join(", ")
        ),
        // JSON string escapes are HCL's, except `${` and `%{` which start templates in HCL
        serde_json::Value::String(s) => serde_json::to_string(s)
            .unwrap_or_default()
            .replace("${", "$${")
            .replace("%{", "%%{"),
        other => other.to_string(),
    }
}

/// `key = value` lines with the `=` aligned the way `terraform fmt` aligns them.
fn attrs(indent: usize, kv: &[(String, String)]) -> String {
    let w = kv.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    kv.iter()
        .map(|(k, v)| format!("{}{k:<w$} = {v}\n", " ".repeat(indent)))
        .collect()
}

fn backend_block(s: &Settings) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let key = format!("ghboot/{}/terraform.tfstate", s.org);
    let (kind, kv): (&str, Vec<(String, String)>) = match s.terraform_backend {
        TerraformBackend::Local => (
            "local",
            vec![(
                "path".into(),
                hcl_value(&s.layout.terraform_state_file().to_string_lossy().into()),
            )],
        ),
        TerraformBackend::S3 => {
            let mut kv = vec![("key".to_string(), hcl_value(&key.clone().into()))];
            match env("GHBOOT_TF_BUCKET") {
                Some(b) => kv.insert(0, ("bucket".into(), hcl_value(&b.into()))),
                None => notes.push(
                    "set GHBOOT_TF_BUCKET, or pass -backend-config=bucket=NAME to terraform init"
                        .into(),
                ),
            }
            match env("AWS_REGION").or(env("AWS_DEFAULT_REGION")) {
                Some(r) => kv.push(("region".into(), hcl_value(&r.into()))),
                None => notes.push(
                    "set AWS_REGION, or pass -backend-config=region=REGION to terraform init"
                        .into(),
                ),
            }
            ("s3", kv)
        }
        TerraformBackend::Gcs => {
            let mut kv = vec![(
                "prefix".to_string(),
                hcl_value(&format!("ghboot/{}", s.org).into()),
            )];
            match env("GHBOOT_TF_BUCKET") {
                Some(b) => kv.insert(0, ("bucket".into(), hcl_value(&b.into()))),
                None => notes.push(
                    "set GHBOOT_TF_BUCKET, or pass -backend-config=bucket=NAME to terraform init"
                        .into(),
                ),
            }
            ("gcs", kv)
        }
    };
    let mut t = String::from("# Generated by ghboot (state-backend stage). Where Terraform keeps its state for this instance.\n");
    t.push_str("terraform {\n  required_version = \">= 1.3\"\n\n  required_providers {\n    jetstream = {\n      source = \"nats-io/jetstream\"\n    }\n  }\n\n");
    t.push_str(&format!("  backend \"{kind}\" {{\n"));
    t.push_str(&attrs(4, &kv));
    t.push_str("  }\n}\n");
    (t, notes)
}

/// The JetStream topology file: provider (credentials from variables, never inline) and resources.
pub fn topology_tf(s: &Settings) -> Result<String> {
    let mut t = String::from(
        "# Generated by ghboot: the JetStream topology ghboot reconciles, as resources of the nats-io/jetstream\n\
         # provider. Import existing ones before applying, e.g.\n\
         #   terraform import jetstream_stream.NAME JETSTREAM_STREAM_NAME\n\
         #   terraform import jetstream_kv_bucket.NAME JETSTREAM_KV_NAME\n\n",
    );
    t.push_str("variable \"nats_url\" {\n  type        = string\n  description = \"NATS servers (`ghboot env` prints NATS_URL)\"\n}\n\n");
    t.push_str("variable \"nats_user\" {\n  type    = string\n  default = \"ghboot\"\n}\n\n");
    t.push_str("variable \"nats_password\" {\n  type      = string\n  sensitive = true\n}\n\n");
    t.push_str("provider \"jetstream\" {\n  servers  = var.nats_url\n  user     = var.nats_user\n  password = var.nats_password\n}\n");
    for r in resources(s)? {
        t.push_str(&format!("\nresource \"{}\" \"{}\" {{\n", r.kind, r.name));
        let kv: Vec<(String, String)> = r
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), hcl_value(v)))
            .collect();
        t.push_str(&attrs(2, &kv));
        t.push_str("}\n");
    }
    Ok(t)
}

async fn terraform(exe: &Path, dir: &Path, args: &[&str]) -> Result<String, String> {
    let run = tokio::process::Command::new(exe)
        .args(args)
        .current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(120), run).await {
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).to_string()),
        Ok(Ok(o)) => {
            let err = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            Err(err
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with('│')
                        && !l.starts_with('╷')
                        && !l.starts_with('╵')
                })
                .take(3)
                .collect::<Vec<_>>()
                .join(" "))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out after 120s".into()),
    }
}

fn files(s: &Settings) -> Result<[(&'static str, String); 2]> {
    Ok([
        ("backend.tf", backend_block(s).0),
        ("jetstream.tf", topology_tf(s)?),
    ])
}

/// Why the written files no longer match the settings (a changed backend, org, ...), if they do not.
pub fn drift(s: &Settings) -> Option<String> {
    let d = dir(s);
    let files = match files(s) {
        Ok(f) => f,
        Err(e) => return Some(format!("the topology cannot be exported: {e:#}")),
    };
    files.into_iter().find_map(|(name, content)| {
        (std::fs::read_to_string(d.join(name)).ok().as_deref() != Some(content.as_str()))
            .then(|| format!("terraform/{name} is missing or out of date"))
    })
}

/// Write the files (only when they change) and check them with terraform when it is installed.
pub async fn write(s: &Settings) -> Result<Outputs> {
    let d = dir(s);
    std::fs::create_dir_all(&d).map_err(|e| {
        fail(
            Kind::CantCreate,
            format!("cannot create {}: {e}", d.display()),
        )
        .help("make the state dir writable")
    })?;
    let (_, notes) = backend_block(s);
    let mut changed = false;
    for (name, content) in &files(s)? {
        let p = d.join(name);
        if std::fs::read_to_string(&p).ok().as_deref() != Some(content.as_str()) {
            crate::fsutil::write_atomic(&p, content.as_bytes())?;
            changed = true;
        }
    }
    let mut out = Outputs::new();
    out.insert(
        "terraform_backend".into(),
        s.terraform_backend.to_string().into(),
    );
    out.insert("terraform_dir".into(), d.display().to_string().into());
    out.insert("terraform_resources".into(), resources(s)?.len().into());
    if !notes.is_empty() {
        out.insert("terraform_notes".into(), notes.into());
    }
    let check = match which::which("terraform") {
        Err(_) => "terraform is not installed: files written, not validated".to_string(),
        Ok(_) if !changed => "unchanged since the last check".to_string(),
        Ok(tf) => match terraform(&tf, &d, &["fmt", "-check", "-no-color"]).await {
            Err(e) => {
                return Err(fail(
                    Kind::Error,
                    format!(
                        "terraform refuses the generated files in {}: {e}",
                        d.display()
                    ),
                )
                .help("report this as a ghboot bug; the files are left for inspection")
                .into())
            }
            Ok(_) => match terraform(
                &tf,
                &d,
                &["init", "-backend=false", "-input=false", "-no-color"],
            )
            .await
            {
                Err(e) => {
                    format!("parsed by terraform fmt; terraform init could not install the nats-io/jetstream provider, so validate did not run: {e}")
                }
                Ok(_) => match terraform(&tf, &d, &["validate", "-no-color"]).await {
                    Ok(_) => "terraform validate passed".to_string(),
                    Err(e) => {
                        return Err(fail(
                            Kind::Error,
                            format!("terraform validate fails on {}: {e}", d.display()),
                        )
                        .help("report this as a ghboot bug")
                        .into())
                    }
                },
            },
        },
    };
    out.insert("terraform_check".into(), check.into());
    Ok(out)
}
