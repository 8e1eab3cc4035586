//! `argus versions`: the policy versions a server keeps in its store (the cases' database: the
//! data directory's `cases.db`, or `--database`), listed, or one exported back to a policy
//! directory (`policies/*.toml`, `policies/lists/*.toml`) for the files-in-git way of working.

use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The server's data directory (its store is `cases.db` there).
    #[arg(long, default_value = "argus-data")]
    data_dir: PathBuf,
    /// The store's URL instead (`postgres://…`; also ARGUS_CASES_DATABASE).
    #[arg(long)]
    database: Option<String>,
    /// Export this version (a number, or `active`) into --out.
    #[arg(long)]
    export: Option<String>,
    /// The policy directory to write (created; files in it with the same names are replaced).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let url = super::store_url(&a.data_dir, a.database.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = argus_lifecycle::Store::open(&url).await?;
        match &a.export {
            None => {
                for v in store.list(None, 500).await? {
                    println!(
                        "{:>5}  {:<9} {:<8} {:<12} {}{}",
                        v.label,
                        v.status,
                        v.origin,
                        v.author,
                        v.message,
                        v.emergency
                            .as_deref()
                            .map(|e| format!("  [emergency: {e}]"))
                            .unwrap_or_default()
                    );
                }
            }
            Some(which) => {
                let Some(out) = &a.out else {
                    anyhow::bail!("--export needs --out DIR");
                };
                let v = if which == "active" {
                    store
                        .active()
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no active version"))?
                } else {
                    let id: i64 = which.trim_start_matches('v').parse().map_err(|_| {
                        anyhow::anyhow!("--export {which}: a version number or `active`")
                    })?;
                    store.get(id).await?
                };
                for (name, text) in v.files.unwrap_or_default() {
                    // Names are a file name or `lists/<file name>`: nothing else is written.
                    let rel = PathBuf::from(&name);
                    let ok = rel
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)))
                        && rel.components().count() <= 2
                        && (rel.components().count() == 1 || name.starts_with("lists/"));
                    if !ok {
                        anyhow::bail!("version {}: refusing to write file `{name}`", v.label);
                    }
                    let path = out.join(&rel);
                    if let Some(d) = path.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    std::fs::write(&path, text)?;
                    println!("wrote {}", path.display());
                }
                eprintln!("exported {} ({}, digest {})", v.label, v.status, v.digest);
            }
        }
        Ok(())
    })
}
