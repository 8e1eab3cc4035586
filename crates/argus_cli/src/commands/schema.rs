//! `argus schema`: print event types and their fields.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    use std::io::Write;
    let cfg = super::load_config(a.config.as_deref())?;
    let mut w = std::io::stdout().lock();
    let mut out = Vec::new();
    for t in &cfg.schema.types {
        let fields: Vec<serde_json::Value> = t
            .fields
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "type": f.ty.name(), "entity": f.entity, "required": f.required, "pii": f.pii,
                    "derived": f.derived_from.is_some(), "label": f.label.is_some(),
                })
            })
            .collect();
        out.push(serde_json::json!({"type": t.name, "checkpoint": t.checkpoint, "actor": t.actor_kind, "internal": t.internal, "fields": fields}));
    }
    if a.json {
        writeln!(w, "{}", serde_json::to_string_pretty(&out)?)?;
        return Ok(());
    }
    for t in &cfg.schema.types {
        writeln!(
            w,
            "{}{}{}  (actor: {})",
            t.name,
            if t.checkpoint { "  [checkpoint]" } else { "" },
            if t.internal { "  [internal]" } else { "" },
            t.actor_kind
        )?;
        for f in &t.fields {
            let mut tags = Vec::new();
            if f.required {
                tags.push("required".to_string());
            }
            if f.pii {
                tags.push("pii→token".into());
            }
            if let Some(e) = &f.entity {
                tags.push(format!("entity:{e}"));
            }
            if f.derived_from.is_some() {
                tags.push("derived".into());
            }
            if f.label.is_some() {
                tags.push("delayed label".into());
            }
            writeln!(
                w,
                "    {:<28} {:<12} {}",
                f.name,
                f.ty.name(),
                tags.join(", ")
            )?;
        }
    }
    Ok(())
}
