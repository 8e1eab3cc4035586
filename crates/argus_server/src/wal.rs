//! The event log: append-only segment files of checksummed records, group-committed.
//!
//! A segment is `wal-<first sequence, 20 digits>.log`; a record is
//!
//! ```text
//! len: u32 LE | crc32(body): u32 LE | body = seq: u64 LE | kind: u8 | payload
//! ```
//!
//! Records are written to a buffer, and [`Wal::commit`] writes the buffer to the file and, depending on
//! the [`Fsync`] policy, `fdatasync`s it. The server acknowledges an event only after the commit that
//! contains it returned. On open, every segment is scanned: a torn or corrupt record at the end of the
//! newest segment (a crash in the middle of a write) is cut off; a bad record anywhere else is an error,
//! because acknowledged records would be lost.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Largest record accepted (a batch item is far smaller; this bounds what a corrupt length can ask for).
pub const MAX_RECORD: usize = 64 << 20;
const HEADER: usize = 8;
const BODY_HEAD: usize = 9;

/// When committed records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `fdatasync` on every commit, before any event of it is acknowledged: an acknowledged event
    /// survives a crash of the process, the kernel or the machine.
    Always,
    /// `fdatasync` at most once per interval: an acknowledged event survives a crash of the process
    /// (it is in the kernel's page cache); a power loss can lose the last interval.
    Interval(Duration),
    /// Never `fdatasync` (tests, benchmarks): survives a process crash only.
    Never,
}

impl Fsync {
    pub fn parse(s: &str) -> Option<Fsync> {
        match s {
            "always" => Some(Fsync::Always),
            "never" => Some(Fsync::Never),
            _ => {
                let ms = argus_event::time::parse_duration(s.strip_prefix("every ")?)?;
                (ms > 0).then(|| Fsync::Interval(Duration::from_millis(ms as u64)))
            }
        }
    }
}

/// Where a record lives: its segment (by first sequence number) and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u64,
    pub offset: u64,
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub kind: u8,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("event log I/O in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("event log corrupt in {path} at byte {offset}: {why} (valid records follow it, so cutting the log there would lose acknowledged records; restore the file or move it away)")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    /// Last sequence number in it (`first - 1` when empty).
    last: u64,
    path: PathBuf,
    /// When it stopped receiving records (`None`: the open segment).
    closed: Option<SystemTime>,
}

/// Summary of what [`Wal::open`] found.
#[derive(Debug, Default, Clone)]
pub struct OpenReport {
    pub segments: usize,
    pub records: u64,
    /// Bytes cut off the end of the newest segment (a torn write).
    pub truncated_bytes: u64,
}

pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    fsync: Fsync,
    segments: Vec<Segment>,
    out: BufWriter<File>,
    /// A second handle on the open segment, for syncing on another thread while appends go on.
    sync_file: Arc<File>,
    /// Reused to encode records.
    buf: Vec<u8>,
    /// Bytes in the open segment, including what is still buffered.
    len: u64,
    /// Bytes of the open segment already written to the file.
    written: u64,
    last_seq: u64,
    last_sync: Instant,
    unsynced: bool,
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("wal-{first:020}.log"))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Encodes one record.
pub fn encode(seq: u64, kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let len = (BODY_HEAD + payload.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record at the start of `buf`: `Ok(Some((record, bytes used)))`, `Ok(None)` at a clean
/// end, `Err(why)` for a torn or corrupt record.
pub fn decode(buf: &[u8]) -> Result<Option<(Record, usize)>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf.len() < HEADER {
        return Err("truncated header".into());
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if !(BODY_HEAD..=MAX_RECORD).contains(&len) {
        return Err(format!("impossible record length {len}"));
    }
    let Some(body) = buf.get(HEADER..HEADER + len) else {
        return Err("truncated record".into());
    };
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    let seq = u64::from_le_bytes(body[..8].try_into().map_err(|_| "short body")?);
    Ok(Some((
        Record {
            seq,
            kind: body[8],
            payload: body[BODY_HEAD..].to_vec(),
        },
        HEADER + len,
    )))
}

/// Whether a valid record follows the bad one at `off`: then the damage is not a torn tail (a crash
/// part-way through the last write) but corruption in the middle, and cutting there would drop
/// acknowledged records.
fn valid_record_after(bytes: &[u8], off: usize) -> bool {
    if bytes.len() < off + HEADER {
        return false;
    }
    let len =
        u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]) as usize;
    let next = off + HEADER + len;
    (BODY_HEAD..=MAX_RECORD).contains(&len)
        && next < bytes.len()
        && matches!(decode(&bytes[next..]), Ok(Some(_)))
}

impl Wal {
    /// Opens (or creates) the log in `dir`, calling `visit` for every record in order, and truncates a
    /// torn tail of the newest segment.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        fsync: Fsync,
        mut visit: impl FnMut(Loc, Record),
    ) -> Result<(Wal, OpenReport), WalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok())
            })
            .collect();
        firsts.sort_unstable();
        let mut report = OpenReport {
            segments: firsts.len(),
            ..Default::default()
        };
        let mut segments = Vec::new();
        let mut last_seq = 0u64;
        let mut tail_len = 0u64;
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(dir, first);
            let newest = i + 1 == firsts.len();
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_err(&path))?;
            let mut off = 0usize;
            let mut seg_last = first.saturating_sub(1);
            loop {
                match decode(&bytes[off..]) {
                    Ok(None) => break,
                    Ok(Some((rec, used))) => {
                        seg_last = rec.seq;
                        last_seq = last_seq.max(rec.seq);
                        report.records += 1;
                        visit(
                            Loc {
                                segment: first,
                                offset: off as u64,
                            },
                            rec,
                        );
                        off += used;
                    }
                    Err(why) if newest && !valid_record_after(&bytes, off) => {
                        tracing::warn!(path = %path.display(), offset = off, %why, "cutting a torn record off the end of the event log");
                        report.truncated_bytes = (bytes.len() - off) as u64;
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(io_err(&path))?;
                        f.set_len(off as u64)
                            .and_then(|_| f.sync_all())
                            .map_err(io_err(&path))?;
                        break;
                    }
                    Err(why) => {
                        return Err(WalError::Corrupt {
                            path,
                            offset: off as u64,
                            why,
                        })
                    }
                }
            }
            if newest {
                tail_len = off as u64;
            }
            let closed = if newest {
                None
            } else {
                std::fs::metadata(&path).and_then(|m| m.modified()).ok()
            };
            segments.push(Segment {
                first,
                last: seg_last,
                path,
                closed,
            });
        }
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            File::create(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            segments.push(Segment {
                first: 1,
                last: 0,
                path,
                closed: None,
            });
        }
        let open = segments.last().map(|s| s.path.clone()).unwrap_or_default();
        let f = OpenOptions::new()
            .append(true)
            .open(&open)
            .map_err(io_err(&open))?;
        let sync_file = Arc::new(f.try_clone().map_err(io_err(&open))?);
        let wal = Wal {
            sync_file,
            buf: Vec::with_capacity(4096),
            dir: dir.to_path_buf(),
            segment_bytes,
            fsync,
            segments,
            out: BufWriter::with_capacity(1 << 20, f),
            len: tail_len,
            written: tail_len,
            last_seq,
            last_sync: Instant::now(),
            unsynced: false,
        };
        Ok((wal, report))
    }

    /// Sequence number of the newest record (0 when empty).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Buffers a record with the next sequence number; it is durable only after [`commit`](Self::commit).
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> Result<(u64, Loc), WalError> {
        if self.len >= self.segment_bytes {
            self.rotate()?;
        }
        let seq = self.last_seq + 1;
        self.buf.clear();
        encode(seq, kind, payload, &mut self.buf);
        self.out
            .write_all(&self.buf)
            .map_err(|source| WalError::Io {
                path: self.open_path(),
                source,
            })?;
        let dir = &self.dir;
        let seg = self.segments.last_mut().ok_or_else(|| WalError::Io {
            path: dir.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        let loc = Loc {
            segment: seg.first,
            offset: self.len,
        };
        seg.last = seq;
        self.len += self.buf.len() as u64;
        self.last_seq = seq;
        Ok((seq, loc))
    }

    fn open_path(&self) -> PathBuf {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .unwrap_or_default()
    }

    /// Writes buffered records to the file and syncs them as the policy says. Returns whether it synced.
    pub fn commit(&mut self) -> Result<bool, WalError> {
        let path = self.open_path();
        self.out.flush().map_err(io_err(&path))?;
        if self.written != self.len {
            self.unsynced = true;
        }
        self.written = self.len;
        let due = match self.fsync {
            Fsync::Always => self.unsynced,
            Fsync::Interval(d) => self.unsynced && self.last_sync.elapsed() >= d,
            Fsync::Never => false,
        };
        if due {
            self.out.get_ref().sync_data().map_err(io_err(&path))?;
            self.last_sync = Instant::now();
            self.unsynced = false;
        }
        Ok(due)
    }

    /// Writes buffered records to the file without syncing, and returns the handle to sync them with
    /// (the core hands it to the syncer thread, which syncs while the core goes on appending).
    pub fn flush(&mut self) -> Result<Arc<File>, WalError> {
        let path = self.open_path();
        self.out.flush().map_err(io_err(&path))?;
        if self.written != self.len {
            self.unsynced = true;
        }
        self.written = self.len;
        Ok(self.sync_file.clone())
    }

    /// Under `every <interval>`: syncs what is written and not yet synced once the interval has
    /// passed, even when no new record arrives (the core calls it when idle).
    pub fn sync_if_due(&mut self) -> Result<bool, WalError> {
        match self.fsync {
            Fsync::Interval(d)
                if (self.unsynced || self.written != self.len) && self.last_sync.elapsed() >= d =>
            {
                self.sync().map(|_| true)
            }
            _ => Ok(false),
        }
    }

    pub fn policy(&self) -> Fsync {
        self.fsync
    }

    /// Forces everything written so far to disk (shutdown, snapshots).
    pub fn sync(&mut self) -> Result<(), WalError> {
        let path = self.open_path();
        self.out
            .flush()
            .and_then(|_| self.out.get_ref().sync_data())
            .map_err(io_err(&path))?;
        self.written = self.len;
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        self.sync()?;
        let first = self.last_seq + 1;
        let path = segment_path(&self.dir, first);
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        if let Some(s) = self.segments.last_mut() {
            s.closed = Some(SystemTime::now());
        }
        self.sync_file = Arc::new(f.try_clone().map_err(io_err(&path))?);
        self.segments.push(Segment {
            first,
            last: first - 1,
            path,
            closed: None,
        });
        self.out = BufWriter::with_capacity(1 << 20, f);
        self.len = 0;
        self.written = 0;
        Ok(())
    }

    /// Reads one record back (flushing the buffer first when it is in the open segment).
    pub fn read(&mut self, loc: Loc) -> Result<Record, WalError> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.first == loc.segment)
            .map(|s| s.path.clone());
        let Some(path) = seg else {
            return Err(WalError::Io {
                path: segment_path(&self.dir, loc.segment),
                source: io::ErrorKind::NotFound.into(),
            });
        };
        if Some(loc.segment) == self.segments.last().map(|s| s.first) && loc.offset >= self.written
        {
            self.out.flush().map_err(io_err(&path))?;
            self.written = self.len;
            self.unsynced = true;
        }
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(loc.offset)).map_err(io_err(&path))?;
        let mut head = [0u8; HEADER];
        f.read_exact(&mut head).map_err(io_err(&path))?;
        let len =
            (u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize).min(MAX_RECORD);
        let mut buf = head.to_vec();
        buf.resize(HEADER + len, 0);
        f.read_exact(&mut buf[HEADER..]).map_err(io_err(&path))?;
        match decode(&buf) {
            Ok(Some((r, _))) => Ok(r),
            Ok(None) => Err(WalError::Corrupt {
                path,
                offset: loc.offset,
                why: "empty".into(),
            }),
            Err(why) => Err(WalError::Corrupt {
                path,
                offset: loc.offset,
                why,
            }),
        }
    }

    /// Deletes closed segments whose records are all at or below `covered` (in a snapshot) and that were
    /// closed more than `retention` ago. Returns the first sequence numbers of the deleted segments.
    pub fn retain(&mut self, covered: u64, retention: Duration) -> Vec<u64> {
        let now = SystemTime::now();
        let mut gone = Vec::new();
        self.segments.retain(|s| {
            let old = s
                .closed
                .is_some_and(|c| now.duration_since(c).unwrap_or_default() >= retention);
            if old && s.last <= covered && std::fs::remove_file(&s.path).is_ok() {
                gone.push(s.first);
                return false;
            }
            true
        });
        gone
    }

    /// First sequence number still in the log.
    pub fn first_seq(&self) -> u64 {
        self.segments.first().map_or(1, |s| s.first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(dir: &Path) -> (Vec<Record>, OpenReport) {
        let mut v = Vec::new();
        let (_, r) = Wal::open(dir, 1 << 20, Fsync::Never, |_, rec| v.push(rec)).unwrap();
        (v, r)
    }

    #[test]
    fn append_commit_reopen_read() {
        let d = tempfile::tempdir().unwrap();
        let locs: Vec<Loc> = {
            let (mut w, _) = Wal::open(d.path(), 200, Fsync::Always, |_, _| {}).unwrap();
            let locs: Vec<Loc> = (0..50)
                .map(|i| w.append(1, format!("payload {i}").as_bytes()).unwrap().1)
                .collect();
            w.commit().unwrap();
            assert!(w.segment_count() > 1, "small segments rotate");
            assert_eq!(w.read(locs[7]).unwrap().payload, b"payload 7");
            locs
        };
        let (recs, rep) = collect(d.path());
        assert_eq!(recs.len(), 50);
        assert_eq!(rep.truncated_bytes, 0);
        assert!(recs
            .iter()
            .enumerate()
            .all(|(i, r)| r.seq == i as u64 + 1 && r.payload == format!("payload {i}").as_bytes()));
        let (mut w, _) = Wal::open(d.path(), 200, Fsync::Always, |_, _| {}).unwrap();
        assert_eq!(w.last_seq(), 50);
        assert_eq!(w.read(locs[49]).unwrap().payload, b"payload 49");
        assert_eq!(w.append(1, b"next").unwrap().0, 51);
    }

    #[test]
    fn torn_tail_is_cut_and_appending_continues() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(d.path(), 1 << 20, Fsync::Always, |_, _| {}).unwrap();
            for i in 0..10 {
                w.append(1, format!("r{i}").as_bytes()).unwrap();
            }
            w.commit().unwrap();
        }
        let path = segment_path(d.path(), 1);
        let full = std::fs::read(&path).unwrap();
        // Every possible torn length of the last record: the first nine survive, never a partial tenth.
        let last_start = full.len() - (HEADER + BODY_HEAD + 2);
        for cut in last_start..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (recs, rep) = collect(d.path());
            assert_eq!(recs.len(), 9, "cut at {cut}");
            assert_eq!(rep.truncated_bytes as usize, cut - last_start);
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, last_start);
        }
        // A flipped bit in the last record is also cut, and the log continues from seq 10.
        let mut bad = full.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let (mut w, _) = Wal::open(d.path(), 1 << 20, Fsync::Always, |_, _| {}).unwrap();
        assert_eq!(w.append(1, b"again").unwrap().0, 10);
        w.commit().unwrap();
        let (recs, _) = collect(d.path());
        assert_eq!(recs.last().unwrap().payload, b"again");
    }

    #[test]
    fn corruption_in_the_middle_of_the_newest_segment_is_an_error_not_a_cut() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(d.path(), 1 << 20, Fsync::Never, |_, _| {}).unwrap();
            for i in 0..10 {
                w.append(1, format!("record {i}").as_bytes()).unwrap();
            }
            w.commit().unwrap();
        }
        let path = segment_path(d.path(), 1);
        let mut b = std::fs::read(&path).unwrap();
        b[HEADER + BODY_HEAD + 2] ^= 0xff; // the first record's payload
        std::fs::write(&path, &b).unwrap();
        let e = Wal::open(d.path(), 1 << 20, Fsync::Never, |_, _| {})
            .err()
            .expect("must refuse");
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b, "nothing cut");
    }

    #[test]
    fn corruption_before_the_newest_segment_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(d.path(), 64, Fsync::Never, |_, _| {}).unwrap();
            for i in 0..20 {
                w.append(1, format!("record {i}").as_bytes()).unwrap();
            }
            w.commit().unwrap();
        }
        let path = segment_path(d.path(), 1);
        let mut b = std::fs::read(&path).unwrap();
        b[HEADER + 3] ^= 0xff;
        std::fs::write(&path, &b).unwrap();
        let e = Wal::open(d.path(), 64, Fsync::Never, |_, _| {})
            .err()
            .expect("must refuse");
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn retention_deletes_only_covered_closed_segments() {
        let d = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(d.path(), 64, Fsync::Never, |_, _| {}).unwrap();
        for i in 0..20 {
            w.append(1, format!("record {i}").as_bytes()).unwrap();
        }
        w.commit().unwrap();
        let before = w.segment_count();
        assert!(
            w.retain(0, Duration::ZERO).is_empty(),
            "nothing covered by a snapshot"
        );
        let gone = w.retain(10, Duration::ZERO);
        assert!(!gone.is_empty());
        assert!(w.first_seq() <= 11 && w.first_seq() > 1);
        assert_eq!(w.segment_count(), before - gone.len());
        let mut seqs = Vec::new();
        drop(w);
        Wal::open(d.path(), 64, Fsync::Never, |_, r| seqs.push(r.seq)).unwrap();
        assert_eq!(*seqs.last().unwrap(), 20);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn fsync_policies_parse() {
        assert_eq!(Fsync::parse("always"), Some(Fsync::Always));
        assert_eq!(Fsync::parse("never"), Some(Fsync::Never));
        assert_eq!(
            Fsync::parse("every 10ms"),
            Some(Fsync::Interval(Duration::from_millis(10)))
        );
        assert_eq!(Fsync::parse("sometimes"), None);
    }
}
