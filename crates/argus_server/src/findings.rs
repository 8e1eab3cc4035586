//! The findings store: what the graph detectors found, where investigators read it
//! (`GET /v1/findings`). Findings are appended to `findings.ndjson` in the data directory, each line
//! with the log sequence number of the event that produced it and the `[graph]` epoch (its
//! fingerprint), synced after each event that made findings; the newest are kept in memory.
//!
//! Exactly once, across crashes and restarts. Findings are derived from events, with ids numbered in
//! the order found (`f-1`, `f-2`, …): the same events give the same findings with the same ids. A
//! finding is written after its event's log record; at start, findings whose event is beyond the
//! log's last record (the log lost it in a crash) are cut off, and the replay of the log then finds
//! again what was found after the last snapshot — a finding is kept only if its number is beyond the
//! last one on file for the same epoch. A new `[graph]` (another epoch) restarts the numbering: its
//! findings are kept beside the older ones.

use argus_engine::Finding;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One stored finding: the finding, the log record of its event, the graph epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub seq: u64,
    pub epoch: String,
    #[serde(flatten)]
    pub finding: Finding,
}

pub struct FindingsStore {
    path: PathBuf,
    file: File,
    /// Bytes of whole lines in the file.
    len: u64,
    epoch: String,
    recent: VecDeque<Stored>,
    cap: usize,
    last: u64,
    pub total: u64,
}

/// The findings in `findings.ndjson` of `dir` whose events are the log records `from..=to`, by
/// record (case intake reading records again: `core::intake_from_log`). Unreadable lines end the
/// read, as at open.
pub fn read_range(dir: &Path, from: u64, to: u64) -> std::collections::HashMap<u64, Vec<Finding>> {
    // By record: the graph epoch of its findings and them. A record replayed under a newer
    // `[graph]` has findings of both epochs on file; the later lines, the newer epoch's, are the
    // ones its event made last.
    let mut by: std::collections::HashMap<u64, (String, Vec<Finding>)> = Default::default();
    let Ok(f) = File::open(dir.join("findings.ndjson")) else {
        return Default::default();
    };
    for line in std::io::BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        let Ok(s) = serde_json::from_str::<Stored>(&line) else {
            break;
        };
        if (from..=to).contains(&s.seq) {
            let e = by.entry(s.seq).or_default();
            if e.0 != s.epoch {
                *e = (s.epoch, Vec::new());
            }
            e.1.push(s.finding);
        }
    }
    by.into_iter().map(|(seq, (_, f))| (seq, f)).collect()
}

fn number(f: &Finding) -> u64 {
    f.id.strip_prefix("f-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl FindingsStore {
    /// Opens (or creates) `findings.ndjson` in `dir` for graph epoch `epoch`, keeping the newest `cap`
    /// in memory. A torn or unreadable tail (a crash mid-write) is cut off, and so are the last
    /// findings whose event is beyond `log_last`, the log's last record.
    pub fn open(
        dir: &Path,
        cap: usize,
        epoch: &str,
        log_last: u64,
    ) -> std::io::Result<FindingsStore> {
        let path = dir.join("findings.ndjson");
        let mut kept: Vec<(Stored, u64)> = Vec::new();
        if let Ok(f) = File::open(&path) {
            let mut r = std::io::BufReader::new(f);
            let mut line = Vec::new();
            let mut at = 0u64;
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                match serde_json::from_slice::<Stored>(&line) {
                    Ok(s) => {
                        at += n as u64;
                        kept.push((s, at));
                    }
                    Err(e) => {
                        tracing::warn!("findings.ndjson: unreadable line cut off: {e}");
                        break;
                    }
                }
            }
        }
        // Findings of events the log does not hold were written just before a crash: their events
        // will not be replayed, so neither will they.
        while kept.last().is_some_and(|(s, _)| s.seq > log_last) {
            kept.pop();
        }
        let len = kept.last().map_or(0, |(_, at)| *at);
        let last = kept
            .iter()
            .filter(|(s, _)| s.epoch == epoch)
            .map(|(s, _)| number(&s.finding))
            .max()
            .unwrap_or(0);
        let total = kept.len() as u64;
        let recent: VecDeque<Stored> = kept
            .into_iter()
            .rev()
            .take(cap)
            .map(|(s, _)| s)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let mut file = argus_engine::engine::owner_only(
            OpenOptions::new().create(true).write(true).truncate(false),
        )
        .open(&path)?;
        if file.metadata()?.len() != len {
            file.set_len(len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(len))?;
        Ok(FindingsStore {
            path,
            file,
            len,
            epoch: epoch.to_string(),
            recent,
            cap,
            last,
            total,
        })
    }

    /// Erasure: renames values (old token → new pseudonym of the same length) in the file and in
    /// memory. The file is rewritten into a temporary file, synced and renamed over it. The number of
    /// occurrences renamed.
    pub fn rename(
        &mut self,
        map: &std::collections::HashMap<String, String>,
    ) -> std::io::Result<usize> {
        let mut bytes = std::fs::read(&self.path)?;
        let n = argus_engine::engine::replace_all(&mut bytes, map);
        if n > 0 {
            let tmp = self.path.with_extension("rewrite");
            let mut f = argus_engine::engine::private_file(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            let mut file = argus_engine::engine::owner_only(
                OpenOptions::new().create(true).write(true).truncate(false),
            )
            .open(&self.path)?;
            file.seek(SeekFrom::Start(self.len))?;
            self.file = file;
        }
        let swap = |s: &mut String| {
            if let Some(x) = map.iter().find(|(o, _)| s.contains(o.as_str())) {
                *s = s.replace(x.0.as_str(), x.1);
            }
        };
        for st in &mut self.recent {
            st.finding.accounts.iter_mut().for_each(swap);
            st.finding.objects.iter_mut().for_each(swap);
        }
        Ok(n)
    }

    /// Stores the findings of the event at log record `seq` not stored yet. On a write error the file
    /// is cut back to its last whole line and the error returned (the findings stay in memory).
    pub fn add(&mut self, seq: u64, found: Vec<Finding>) -> std::io::Result<()> {
        let new: Vec<Stored> = found
            .into_iter()
            .filter(|f| number(f) > self.last)
            .map(|finding| Stored {
                seq,
                epoch: self.epoch.clone(),
                finding,
            })
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for s in &new {
            serde_json::to_writer(&mut buf, s)?;
            buf.push(b'\n');
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|_| self.file.sync_data());
        match &written {
            Ok(()) => self.len += buf.len() as u64,
            Err(_) => {
                // No torn line may stay for the next write to glue onto.
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
            }
        }
        for s in new {
            self.last = self.last.max(number(&s.finding));
            self.total += 1;
            if self.recent.len() == self.cap {
                self.recent.pop_front();
            }
            self.recent.push_back(s);
        }
        written.map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }

    /// The newest findings first, at most `limit`, optionally of one detector or naming one account.
    pub fn query(
        &self,
        limit: usize,
        detector: Option<&str>,
        account: Option<&str>,
    ) -> Vec<&Stored> {
        self.recent
            .iter()
            .rev()
            .filter(|s| detector.is_none_or(|d| s.finding.detector == d))
            .filter(|s| account.is_none_or(|a| s.finding.accounts.iter().any(|x| x == a)))
            .take(limit)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(n: u64, acc: &str) -> Finding {
        Finding {
            id: format!("f-{n}"),
            detector: "cluster".into(),
            time: "t".into(),
            accounts: vec![acc.into()],
            objects: vec![],
            density: 1.0,
            confirmed: 0,
        }
    }

    fn ids(s: &FindingsStore) -> Vec<String> {
        s.query(100, None, None)
            .iter()
            .map(|x| x.finding.id.clone())
            .collect()
    }

    #[test]
    fn stores_once_survives_reopen_and_cuts_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FindingsStore::open(dir.path(), 2, "e1", 0).unwrap();
        s.add(10, vec![f(1, "a"), f(2, "b")]).unwrap();
        s.add(11, vec![f(2, "b"), f(3, "c")]).unwrap(); // f-2 again (a replay): stored once
        assert_eq!(ids(&s), ["f-3", "f-2"]);
        assert_eq!(s.query(10, None, Some("b")).len(), 1);
        drop(s);
        // A torn write at the end (cut inside a multi-byte character) is cut off on open.
        let p = dir.path().join("findings.ndjson");
        let mut file = OpenOptions::new().append(true).open(&p).unwrap();
        file.write_all(
            "{\"seq\":12,\"epoch\":\"e1\",\"id\":\"f-4\",\"detector\":\"caf\u{e9}"
                .as_bytes()
                .split_last()
                .unwrap()
                .1,
        )
        .unwrap();
        drop(file);
        let mut s = FindingsStore::open(dir.path(), 10, "e1", 100).unwrap();
        assert_eq!((s.total, ids(&s).len()), (3, 3));
        s.add(12, vec![f(3, "c"), f(4, "d")]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<Stored>(l).is_ok()));
    }

    /// Findings of events beyond the log's end (lost in a crash) are cut off, so that the replay's
    /// findings — numbered again from there — are stored; a new epoch numbers from 1 beside the old.
    #[test]
    fn findings_beyond_the_log_are_cut_and_epochs_restart_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FindingsStore::open(dir.path(), 100, "e1", 0).unwrap();
        s.add(5, vec![f(1, "a")]).unwrap();
        s.add(9, vec![f(2, "lost")]).unwrap();
        drop(s);
        // The log holds records up to 7: f-2's event is gone.
        let mut s = FindingsStore::open(dir.path(), 100, "e1", 7).unwrap();
        assert_eq!(ids(&s), ["f-1"]);
        s.add(8, vec![f(2, "replayed")]).unwrap();
        assert_eq!(s.query(1, None, None)[0].finding.accounts, ["replayed"]);
        drop(s);
        // Another [graph]: numbering restarts, the old findings stay.
        let mut s = FindingsStore::open(dir.path(), 100, "e2", 100).unwrap();
        s.add(20, vec![f(1, "new")]).unwrap();
        assert_eq!(s.total, 3);
        assert_eq!(s.query(1, None, None)[0].epoch, "e2");
    }
}
