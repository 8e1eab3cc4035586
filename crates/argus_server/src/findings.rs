//! The findings store: what the graph detectors found, where investigators read it
//! (`GET /v1/findings`). Findings are appended to `findings.ndjson` in the data directory (synced
//! after each group) and the newest are kept in memory for queries.
//!
//! Findings are derived from events, with ids numbered in the order found (`f-1`, `f-2`, …): the same
//! events give the same findings with the same ids. So recovery needs no log of its own: after a crash
//! the replay of the event log finds again what was found after the last snapshot, and the store keeps
//! a finding only if its number is beyond the last one on file — each finding stored exactly once.

use argus_engine::Finding;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct FindingsStore {
    path: PathBuf,
    file: Option<File>,
    recent: VecDeque<Finding>,
    cap: usize,
    last: u64,
    pub total: u64,
}

fn number(f: &Finding) -> u64 {
    f.id.strip_prefix("f-").and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl FindingsStore {
    /// Opens (or creates) `findings.ndjson` in `dir`, keeping the newest `cap` in memory. A torn last
    /// line (a crash mid-write) is cut off.
    pub fn open(dir: &Path, cap: usize) -> std::io::Result<FindingsStore> {
        let path = dir.join("findings.ndjson");
        let mut recent = VecDeque::new();
        let mut last = 0;
        let mut total = 0;
        let mut good = 0u64;
        if let Ok(f) = File::open(&path) {
            let mut r = std::io::BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r.read_line(&mut line)?;
                if n == 0 || !line.ends_with('\n') {
                    break;
                }
                match serde_json::from_str::<Finding>(line.trim_end()) {
                    Ok(f) => {
                        last = last.max(number(&f));
                        total += 1;
                        if recent.len() == cap {
                            recent.pop_front();
                        }
                        recent.push_back(f);
                    }
                    Err(e) => {
                        tracing::warn!("findings.ndjson: unreadable line cut off: {e}");
                        break;
                    }
                }
                good += n as u64;
            }
        }
        let mut file = OpenOptions::new().create(true).append(false).write(true).truncate(false).open(&path)?;
        if file.metadata()?.len() != good {
            file.set_len(good)?;
        }
        file.seek(SeekFrom::Start(good))?;
        Ok(FindingsStore { path, file: Some(file), recent, cap, last, total })
    }

    /// Stores the findings not stored yet; `Err` when the file cannot be written (they stay in memory).
    pub fn add(&mut self, found: Vec<Finding>) -> std::io::Result<()> {
        let new: Vec<Finding> = found.into_iter().filter(|f| number(f) > self.last).collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for f in &new {
            serde_json::to_writer(&mut buf, f)?;
            buf.push(b'\n');
        }
        let written = match self.file.as_mut() {
            Some(file) => file.write_all(&buf).and_then(|_| file.sync_data()),
            None => Err(std::io::Error::other(format!("{} is not open", self.path.display()))),
        };
        for f in new {
            self.last = self.last.max(number(&f));
            self.total += 1;
            if self.recent.len() == self.cap {
                self.recent.pop_front();
            }
            self.recent.push_back(f);
        }
        written
    }

    /// The newest findings first, at most `limit`, optionally of one detector or naming one account.
    pub fn query(&self, limit: usize, detector: Option<&str>, account: Option<&str>) -> Vec<&Finding> {
        self.recent
            .iter()
            .rev()
            .filter(|f| detector.is_none_or(|d| f.detector == d))
            .filter(|f| account.is_none_or(|a| f.accounts.iter().any(|x| x == a)))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u64, acc: &str) -> Finding {
        Finding { id: format!("f-{n}"), detector: "cluster".into(), time: "t".into(), accounts: vec![acc.into()], objects: vec![], density: 1.0, confirmed: 0 }
    }

    #[test]
    fn stores_once_survives_reopen_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FindingsStore::open(dir.path(), 2).unwrap();
        s.add(vec![f(1, "a"), f(2, "b")]).unwrap();
        s.add(vec![f(2, "b"), f(3, "c")]).unwrap(); // f-2 again (a replay): stored once
        assert_eq!(s.query(10, None, None).iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["f-3", "f-2"]);
        assert_eq!(s.query(10, None, Some("b")).len(), 1);
        drop(s);
        // A torn write at the end is cut off on open.
        let p = dir.path().join("findings.ndjson");
        let mut file = OpenOptions::new().append(true).open(&p).unwrap();
        file.write_all(b"{\"id\":\"f-4\",\"detec").unwrap();
        drop(file);
        let mut s = FindingsStore::open(dir.path(), 10).unwrap();
        assert_eq!((s.total, s.query(10, None, None).len()), (3, 3));
        s.add(vec![f(3, "c"), f(4, "d")]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().all(|l| serde_json::from_str::<Finding>(l).is_ok()));
    }
}
