//! `argus audit verify | export`: the audit log in a server's store (the data directory's
//! `cases.db`, or `--database`). `verify` walks the hash chain and exits with status 1 at the first
//! record that breaks it; it prints the head (sequence and hash), which an operator keeps elsewhere
//! to detect later that newest records were cut. `export` writes the records as NDJSON.

use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Clone)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Clone)]
enum What {
    /// Check the hash chain from the first record to the newest.
    Verify(Store),
    /// Write the records as NDJSON (one JSON object per line), oldest first.
    Export {
        #[command(flatten)]
        store: Store,
        /// Only records after this sequence.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// The file to write (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Clone)]
struct Store {
    /// The server's data directory (its store is `cases.db` there).
    #[arg(long, default_value = "argus-data")]
    data_dir: PathBuf,
    /// The store's URL instead (`postgres://…`; also ARGUS_CASES_DATABASE).
    #[arg(long)]
    database: Option<String>,
}

impl Store {
    async fn open(&self) -> anyhow::Result<argus_cases::audit::Audit> {
        let url = super::store_url(&self.data_dir, self.database.as_deref())?;
        Ok(argus_cases::audit::Audit::open(&url).await?)
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match a.what {
            What::Verify(s) => {
                let v = s.open().await?.verify().await?;
                let head = v
                    .head
                    .as_ref()
                    .map_or("none (the log is empty)".to_string(), |(seq, h)| {
                        format!("record {seq}, hash {h}")
                    });
                let from = v.anchor.map_or(String::new(), |a| {
                    format!(" (records up to {a} were pruned by retention; verified from there)")
                });
                match &v.broken {
                    None => {
                        println!("audit log verified: {} records; head: {head}{from}", v.records);
                        Ok(())
                    }
                    Some((seq, why)) => {
                        println!(
                            "audit log BROKEN at record {seq}: {why} ({} records read; head: {head})",
                            v.records
                        );
                        std::process::exit(1);
                    }
                }
            }
            What::Export { store, after, out } => {
                let audit = store.open().await?;
                let mut w: Box<dyn Write> = match &out {
                    Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                    None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                };
                let mut after = after;
                let mut n = 0u64;
                loop {
                    let page = audit.page(after, 10_000).await?;
                    let Some(last) = page.last() else { break };
                    after = last.seq;
                    for r in &page {
                        serde_json::to_writer(&mut w, r)?;
                        w.write_all(b"\n")?;
                        n += 1;
                    }
                }
                w.flush()?;
                eprintln!("argus audit export: {n} records");
                Ok(())
            }
        }
    })
}
