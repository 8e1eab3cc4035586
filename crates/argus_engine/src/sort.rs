//! `argus replay --sort`: input that is not in time order, sorted before the engine sees it, in
//! bounded memory. Events are decoded, buffered up to a limit, sorted by (time, record number) and,
//! past the limit, spilled to temporary files as sorted runs that are merged at the end (an external
//! merge sort). At most [`MAX_RUNS`] runs are open at once: past that, they are merged into one, so
//! open files and read buffers stay bounded whatever the input's size. Records the decoder refuses
//! are reported as they are read. Sorting is stable: events with the same time keep their input order.

use crate::replay::{Numbered, Records, ReplayError};
use argus_event::{Decoder, Event};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Seek, Write};

/// Runs kept open at once before they are merged into one.
const MAX_RUNS: usize = 64;
/// Read and write buffer of each run.
const RUN_BUFFER: usize = 64 << 10;

/// One run spilled to a temporary file: `(record number, event)` pairs in bincode, sorted.
struct Run {
    r: BufReader<std::fs::File>,
    left: u64,
}

impl Run {
    fn next(&mut self) -> Result<Option<(u64, Event)>, ReplayError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        bincode::deserialize_from(&mut self.r)
            .map(Some)
            .map_err(|e| ReplayError::Mapping(format!("reading a sort run back: {e}")))
    }
}

/// Writes sorted `(record number, event)` pairs to a temporary file and opens it for reading.
fn write_run(
    items: impl Iterator<Item = Result<(u64, Event), ReplayError>>,
) -> Result<Run, ReplayError> {
    let mut f = tempfile::tempfile()?;
    let mut n = 0u64;
    {
        let mut w = BufWriter::with_capacity(RUN_BUFFER, &mut f);
        for item in items {
            bincode::serialize_into(&mut w, &item?)
                .map_err(|e| ReplayError::Mapping(format!("writing a sort run: {e}")))?;
            n += 1;
        }
        w.flush()?;
    }
    f.rewind()?;
    Ok(Run {
        r: BufReader::with_capacity(RUN_BUFFER, f),
        left: n,
    })
}

/// The k-way merge of sorted runs, by (time, record number).
struct Merge {
    runs: Vec<Run>,
    heap: BinaryHeap<Reverse<((i64, u64), usize)>>,
    heads: Vec<Option<Event>>,
}

impl Merge {
    fn new(mut runs: Vec<Run>) -> Result<Merge, ReplayError> {
        let mut heap = BinaryHeap::new();
        let mut heads = Vec::with_capacity(runs.len());
        for (i, r) in runs.iter_mut().enumerate() {
            let head = r.next()?;
            if let Some((line, ev)) = &head {
                heap.push(Reverse(((ev.time, *line), i)));
            }
            heads.push(head.map(|(_, ev)| ev));
        }
        Ok(Merge { runs, heap, heads })
    }
}

impl Iterator for Merge {
    type Item = Result<(u64, Event), ReplayError>;
    fn next(&mut self) -> Option<Self::Item> {
        let Reverse(((_, line), i)) = self.heap.pop()?;
        let ev = self.heads[i].take()?;
        match self.runs[i].next() {
            Ok(next) => {
                if let Some((l, e)) = &next {
                    self.heap.push(Reverse(((e.time, *l), i)));
                }
                self.heads[i] = next.map(|(_, e)| e);
                Some(Ok((line, ev)))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

enum Phase {
    Reading,
    /// Everything fitted in memory: the sorted buffer, newest last (popped from the end).
    Memory(Vec<(u64, Event)>),
    /// The runs on disk, merged.
    Merging(Merge),
}

/// Records in time order (see the module documentation).
pub(crate) struct SortedRecords<'a> {
    inner: Box<dyn Records + 'a>,
    limit: usize,
    buf: Vec<(u64, Event)>,
    runs: Vec<Run>,
    phase: Phase,
}

impl<'a> SortedRecords<'a> {
    /// Sorts `inner`'s events, holding at most `limit` of them in memory at once.
    pub fn new(inner: Box<dyn Records + 'a>, limit: usize) -> Self {
        SortedRecords {
            inner,
            limit: limit.max(1),
            buf: Vec::new(),
            runs: Vec::new(),
            phase: Phase::Reading,
        }
    }

    fn sort_buf(&mut self) {
        // Stable by record number within a time (the record numbers grow).
        self.buf.sort_unstable_by_key(|(line, ev)| (ev.time, *line));
    }

    fn spill(&mut self) -> Result<(), ReplayError> {
        self.sort_buf();
        let run = write_run(self.buf.drain(..).map(Ok))?;
        self.runs.push(run);
        if self.runs.len() >= MAX_RUNS {
            let runs = std::mem::take(&mut self.runs);
            let merged = write_run(Merge::new(runs)?)?;
            self.runs.push(merged);
        }
        Ok(())
    }
}

impl Records for SortedRecords<'_> {
    fn next(&mut self, dec: &Decoder) -> Result<Option<Numbered>, ReplayError> {
        if let Phase::Reading = self.phase {
            while let Some((line, decoded)) = self.inner.next(dec)? {
                match decoded {
                    Ok(ev) => {
                        self.buf.push((line, ev));
                        if self.buf.len() >= self.limit {
                            self.spill()?;
                        }
                    }
                    // Refused by the decoder: reported now, in record order.
                    Err(r) => return Ok(Some((line, Err(r)))),
                }
            }
            if self.runs.is_empty() {
                self.sort_buf();
                let mut all = std::mem::take(&mut self.buf);
                all.reverse();
                self.phase = Phase::Memory(all);
            } else {
                if !self.buf.is_empty() {
                    self.spill()?;
                }
                self.phase = Phase::Merging(Merge::new(std::mem::take(&mut self.runs))?);
            }
        }
        match &mut self.phase {
            Phase::Reading => Ok(None),
            Phase::Memory(v) => Ok(v.pop().map(|(line, ev)| (line, Ok(ev)))),
            Phase::Merging(m) => match m.next() {
                None => Ok(None),
                Some(r) => r.map(|(line, ev)| Some((line, Ok(ev)))),
            },
        }
    }
}
