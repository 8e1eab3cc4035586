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
    #[error("event log damaged in {path} at byte {offset}: {why}. Argus refuses to start rather than cut or skip acknowledged events: restore the file from a backup (docs/server.md, \"Damage to the data directory\", lists each case)")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
    #[error("event log has a gap: {path} starts at record {first}, but {previous} ends at record {}, so records {expected} to {} are missing (a segment file was deleted, renamed or replaced). Acknowledged events would be lost, so Argus refuses to start. Restore the missing segment from a backup; do not rename or move segment files", expected - 1, first - 1)]
    Gap {
        path: PathBuf,
        expected: u64,
        first: u64,
        previous: PathBuf,
    },
    #[error("event log incomplete: {head} names {segment} as the newest segment, but it is missing (the newest segment present starts at record {present}); the acknowledged events in it would be lost, so Argus refuses to start. Restore the segment from a backup")]
    MissingNewest {
        head: PathBuf,
        segment: PathBuf,
        present: u64,
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

/// The file that names the newest segment's first sequence number, rewritten (atomically) at every
/// rotation: a deleted newest segment is then a detected gap, not a silently shorter log.
const HEAD_FILE: &str = "HEAD";

fn read_head(dir: &Path) -> Result<Option<u64>, WalError> {
    let path = dir.join(HEAD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => s.trim().parse().map(Some).map_err(|_| WalError::Corrupt {
            path,
            offset: 0,
            why: format!("`{}` is not a sequence number", s.trim()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(WalError::Io { path, source }),
    }
}

fn write_head(dir: &Path, first: u64) -> Result<(), WalError> {
    let path = dir.join(HEAD_FILE);
    let tmp = dir.join("HEAD.tmp");
    argus_engine::engine::private_file(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{first}\n").as_bytes())
                .and_then(|_| f.sync_all())
        })
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(io_err(&path))?;
    sync_dir(dir)
}

/// A new segment, readable by its owner only, opened for appending.
fn new_segment_file(path: &Path) -> io::Result<File> {
    argus_engine::engine::owner_only(OpenOptions::new().create(true).append(true)).open(path)
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
    Ok(decode_ref(buf)?.map(|(seq, kind, payload, used)| {
        (
            Record {
                seq,
                kind,
                payload: payload.to_vec(),
            },
            used,
        )
    }))
}

/// A record borrowed from a buffer: `(sequence number, kind, payload, bytes used)`.
pub type RecordRef<'a> = (u64, u8, &'a [u8], usize);

/// [`decode`] without copying the payload: `(sequence number, kind, payload, bytes used)`.
pub fn decode_ref(buf: &[u8]) -> Result<Option<RecordRef<'_>>, String> {
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
    Ok(Some((seq, body[8], &body[BODY_HEAD..], HEADER + len)))
}

/// Whether a valid record (one that decodes, with a sequence number after `last_seq`) starts anywhere
/// after the bad one at `off`. A torn tail (a crash part-way through the last write, or a tail the
/// file system filled with zeros) can only be at the very end: damage followed by valid-looking
/// records is corruption in the middle, and cutting there would drop acknowledged records. Every
/// offset is tried, not only the one the damaged length points to, because the length itself may be
/// what was damaged.
fn valid_record_after(bytes: &[u8], off: usize, last_seq: u64) -> bool {
    let max_seq = last_seq.saturating_add((bytes.len() / (HEADER + BODY_HEAD)) as u64 + 1);
    (off + 1..bytes.len().saturating_sub(HEADER + BODY_HEAD - 1)).any(|p| {
        let len = u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]) as usize;
        if !(BODY_HEAD..=MAX_RECORD).contains(&len) || p + HEADER + len > bytes.len() {
            return false;
        }
        let seq = u64::from_le_bytes(
            bytes[p + HEADER..p + HEADER + 8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        // Cheap filters first; the checksum only for a plausible header.
        seq > last_seq && seq <= max_seq && matches!(decode(&bytes[p..]), Ok(Some(_)))
    })
}

/// Segment file names in `dir`: `wal-<20 digits>.log` parsed to their first sequence number. A file
/// that starts with `wal-` and ends with `.log` but has another name is refused, not ignored.
fn segment_names(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut firsts = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        match digits.parse::<u64>() {
            Ok(first) if digits.len() == 20 && first > 0 => firsts.push(first),
            _ => {
                return Err(WalError::Corrupt {
                    path: e.path(),
                    offset: 0,
                    why: "a file named like a log segment whose name is not `wal-<first sequence number, 20 digits>.log`; remove it if it is not Argus's".into(),
                })
            }
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Reads a log without changing it (a running server may be appending to it): every complete record
/// in order. Damage in an older segment and gaps between segments are errors; an incomplete record
/// at the end of the newest segment (a write in progress) ends the read.
pub struct LogReader {
    dir: PathBuf,
    firsts: Vec<u64>,
    next_seg: usize,
    bytes: Vec<u8>,
    off: usize,
    expect: Option<u64>,
    newest: bool,
}

impl LogReader {
    pub fn open(dir: &Path) -> Result<LogReader, WalError> {
        Ok(LogReader {
            dir: dir.to_path_buf(),
            firsts: segment_names(dir)?,
            next_seg: 0,
            bytes: Vec::new(),
            off: 0,
            expect: None,
            newest: false,
        })
    }

    /// Skips the segments that end before record `seq`: the next record read is the first of the
    /// segment holding `seq` (or of an earlier one). Call before reading.
    pub fn skip_to(&mut self, seq: u64) {
        if self.next_seg == 0 && self.bytes.is_empty() {
            let i = self.firsts.partition_point(|&f| f <= seq);
            self.next_seg = i.saturating_sub(1);
        }
    }

    /// The first record number of the oldest segment (0 for an empty log).
    pub fn first_seq(&self) -> u64 {
        self.firsts.first().copied().unwrap_or(0)
    }

    /// The next complete record, or `None` at the end.
    pub fn read_next(&mut self) -> Result<Option<Record>, WalError> {
        Ok(self.read_next_ref()?.map(|(seq, kind, payload)| Record {
            seq,
            kind,
            payload: payload.to_vec(),
        }))
    }

    /// [`read_next`](Self::read_next) without copying: `(sequence number, kind, payload)`, the
    /// payload borrowed from the segment read in memory.
    #[allow(clippy::type_complexity)]
    pub fn read_next_ref(&mut self) -> Result<Option<(u64, u8, &[u8])>, WalError> {
        loop {
            if self.off < self.bytes.len() {
                let path = || segment_path(&self.dir, self.firsts[self.next_seg - 1]);
                match decode_ref(&self.bytes[self.off..]) {
                    Ok(Some((seq, _, _, used))) => {
                        if self.expect.is_some_and(|e| e != seq) {
                            return Err(WalError::Corrupt {
                                path: path(),
                                offset: self.off as u64,
                                why: format!(
                                    "record with sequence number {} where {} was expected",
                                    seq,
                                    self.expect.unwrap_or(0)
                                ),
                            });
                        }
                        self.expect = Some(seq + 1);
                        let at = self.off;
                        self.off += used;
                        // The record's parts by offset (decode checked the length and checksum).
                        let kind = self.bytes.get(at + HEADER + 8).copied().unwrap_or(0);
                        let payload = self
                            .bytes
                            .get(at + HEADER + BODY_HEAD..at + used)
                            .unwrap_or(&[]);
                        return Ok(Some((seq, kind, payload)));
                    }
                    Ok(None) => {}
                    Err(_) if self.newest => return Ok(None),
                    Err(why) => {
                        return Err(WalError::Corrupt {
                            path: path(),
                            offset: self.off as u64,
                            why,
                        })
                    }
                }
            }
            let Some(&first) = self.firsts.get(self.next_seg) else {
                return Ok(None);
            };
            if self.expect.is_some_and(|e| e != first) {
                return Err(WalError::Gap {
                    path: segment_path(&self.dir, first),
                    expected: self.expect.unwrap_or(0),
                    first,
                    previous: segment_path(&self.dir, self.firsts[self.next_seg - 1]),
                });
            }
            let path = segment_path(&self.dir, first);
            self.bytes.clear();
            File::open(&path)
                .and_then(|mut f| {
                    // One allocation of the segment's size, not a doubling series of copies.
                    let len = f.metadata().map_or(0, |m| m.len() as usize);
                    self.bytes.reserve(len);
                    f.read_to_end(&mut self.bytes)
                })
                .map_err(io_err(&path))?;
            self.off = 0;
            self.next_seg += 1;
            self.newest = self.next_seg == self.firsts.len();
        }
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`, calling `visit` for every record in order, and truncates a
    /// torn tail of the newest segment.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        fsync: Fsync,
        visit: impl FnMut(Loc, Record),
    ) -> Result<(Wal, OpenReport), WalError> {
        Self::open_keeping(dir, segment_bytes, fsync, 0, visit)
    }

    /// [`open`](Self::open), knowing that the log held every record up to `kept` (a snapshot
    /// restored covers it): a damaged record at or below it is not a torn write but the loss of an
    /// acknowledged event, and is refused, the segment left as it was, instead of cut.
    pub fn open_keeping(
        dir: &Path,
        segment_bytes: u64,
        fsync: Fsync,
        kept: u64,
        mut visit: impl FnMut(Loc, Record),
    ) -> Result<(Wal, OpenReport), WalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let firsts = segment_names(dir)?;
        // Before anything is read or cut: a HEAD that names a newer segment than the newest present
        // means the newest segment is gone.
        let head = read_head(dir)?;
        let newest_first = firsts.last().copied().unwrap_or(0);
        if let Some(h) = head.filter(|&h| h > newest_first) {
            return Err(WalError::MissingNewest {
                head: dir.join(HEAD_FILE),
                segment: segment_path(dir, h),
                present: newest_first,
            });
        }
        let mut report = OpenReport {
            segments: firsts.len(),
            ..Default::default()
        };
        let mut segments: Vec<Segment> = Vec::new();
        let mut last_seq = 0u64;
        let mut tail_len = 0u64;
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(dir, first);
            let newest = i + 1 == firsts.len();
            // Segments are continuous: each starts right after the one before it (the oldest may
            // start anywhere: retention deletes whole segments from the front).
            if let Some(prev) = segments.last() {
                if first != prev.last + 1 {
                    return Err(WalError::Gap {
                        path,
                        expected: prev.last + 1,
                        first,
                        previous: prev.path.clone(),
                    });
                }
            }
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(io_err(&path))?;
            let mut off = 0usize;
            let mut seg_last = first - 1;
            loop {
                match decode(&bytes[off..]) {
                    Ok(None) => break,
                    Ok(Some((rec, _))) if rec.seq != seg_last + 1 => {
                        let why = format!("record with sequence number {} where {} was expected (a record is missing or the segment is misnamed)", rec.seq, seg_last + 1);
                        return Err(WalError::Corrupt {
                            path,
                            offset: off as u64,
                            why,
                        });
                    }
                    Ok(Some((rec, used))) => {
                        seg_last = rec.seq;
                        last_seq = rec.seq;
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
                    Err(why) if newest && seg_last < kept => {
                        let why = format!(
                            "{why}, where record {} was expected: a snapshot covers records up to {kept}, so the log held them (acknowledged events, not a torn write)",
                            seg_last + 1
                        );
                        return Err(WalError::Corrupt {
                            path,
                            offset: off as u64,
                            why,
                        });
                    }
                    Err(why) if newest && !valid_record_after(&bytes, off, seg_last) => {
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
                        let why = if newest {
                            format!(
                                "{why}, and valid records follow it (so it is not a torn write)"
                            )
                        } else {
                            format!("{why} in a segment that is not the newest (only the newest can end in a torn write)")
                        };
                        return Err(WalError::Corrupt {
                            path,
                            offset: off as u64,
                            why,
                        });
                    }
                }
            }
            if newest {
                tail_len = off as u64;
            }
            last_seq = last_seq.max(seg_last);
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
            new_segment_file(&path).map_err(io_err(&path))?;
            sync_dir(dir)?;
            segments.push(Segment {
                first: 1,
                last: 0,
                path,
                closed: None,
            });
        }
        if head != segments.last().map(|s| s.first) {
            write_head(dir, segments.last().map_or(1, |s| s.first))?;
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
        let f = new_segment_file(&path).map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        write_head(&self.dir, first)?;
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

    /// Rewrites records in place (erasure): the open segment is closed first (when it holds
    /// records), then every segment whose records `f` changes is written again — each record
    /// re-encoded with its CRC, into a temporary file that is synced and renamed over the segment.
    /// `f` must keep a payload's length, so that every record stays where the decision index says.
    /// Returns the records changed.
    pub fn rewrite(
        &mut self,
        mut f: impl FnMut(u64, u8, &mut [u8]) -> bool,
    ) -> Result<u64, WalError> {
        if self.len > 0 {
            self.rotate()?;
        }
        let mut changed = 0;
        let closed: Vec<PathBuf> = self
            .segments
            .iter()
            .filter(|s| s.closed.is_some())
            .map(|s| s.path.clone())
            .collect();
        for path in closed {
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let mut out = Vec::with_capacity(bytes.len());
            let mut at = 0;
            let mut here = 0;
            while at < bytes.len() {
                let (seq, kind, payload, used) = match decode_ref(&bytes[at..]) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(why) => {
                        return Err(WalError::Corrupt {
                            path,
                            offset: at as u64,
                            why,
                        })
                    }
                };
                let mut p = payload.to_vec();
                if f(seq, kind, &mut p) {
                    here += 1;
                }
                debug_assert_eq!(p.len(), payload.len());
                encode(seq, kind, &p, &mut out);
                at += used;
            }
            out.extend_from_slice(&bytes[at..]);
            if here == 0 {
                continue;
            }
            changed += here;
            let tmp = path.with_extension("rewrite");
            argus_engine::engine::private_file(&tmp)
                .and_then(|mut t| t.write_all(&out).and_then(|_| t.sync_all()))
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(io_err(&path))?;
            sync_dir(&self.dir)?;
        }
        Ok(changed)
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
        // Only from the front, and only while each deletion succeeds: the log stays continuous.
        let now = SystemTime::now();
        let mut gone = Vec::new();
        while let Some(s) = self.segments.first().filter(|_| self.segments.len() > 1) {
            let old = s
                .closed
                .is_some_and(|c| now.duration_since(c).unwrap_or_default() >= retention);
            if !(old && s.last <= covered && std::fs::remove_file(&s.path).is_ok()) {
                break;
            }
            gone.push(s.first);
            self.segments.remove(0);
        }
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
