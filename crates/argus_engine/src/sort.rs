//! `argus replay --sort`: input that is not in time order, sorted before the engine sees it, in
//! bounded memory. Events are decoded, buffered up to a limit, sorted by (time, record number) and,
//! past the limit, spilled to temporary files as sorted runs that are merged at the end (an external
//! merge sort). Records the decoder refuses are reported as they are read. Sorting is stable: events
//! with the same time keep their input order.

use crate::replay::{Numbered, Records, ReplayError};
use argus_event::{Decoder, Event};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufReader, BufWriter, Seek, Write};

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

enum Phase {
    Reading,
    /// Everything fitted in memory: the sorted buffer, newest last (popped from the end).
    Memory(Vec<(u64, Event)>),
    /// The runs and, per run, its head: a heap of ((time, record), run).
    Merging(
        Vec<Run>,
        BinaryHeap<Reverse<((i64, u64), usize)>>,
        Vec<Option<Event>>,
    ),
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
        let mut f = tempfile::tempfile()?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, &mut f);
            for item in &self.buf {
                bincode::serialize_into(&mut w, item)
                    .map_err(|e| ReplayError::Mapping(format!("writing a sort run: {e}")))?;
            }
            w.flush()?;
        }
        f.rewind()?;
        self.runs.push(Run {
            r: BufReader::with_capacity(1 << 20, f),
            left: self.buf.len() as u64,
        });
        self.buf.clear();
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
                let mut runs = std::mem::take(&mut self.runs);
                let mut heap = BinaryHeap::new();
                let mut heads = Vec::with_capacity(runs.len());
                for (i, r) in runs.iter_mut().enumerate() {
                    let head = r.next()?;
                    if let Some((line, ev)) = &head {
                        heap.push(Reverse(((ev.time, *line), i)));
                    }
                    heads.push(head.map(|(_, ev)| ev));
                }
                self.phase = Phase::Merging(runs, heap, heads);
            }
        }
        match &mut self.phase {
            Phase::Reading => Ok(None),
            Phase::Memory(v) => Ok(v.pop().map(|(line, ev)| (line, Ok(ev)))),
            Phase::Merging(runs, heap, heads) => {
                let Some(Reverse(((_, line), i))) = heap.pop() else {
                    return Ok(None);
                };
                let ev = heads[i].take();
                let next = runs[i].next()?;
                if let Some((l, e)) = &next {
                    heap.push(Reverse(((e.time, *l), i)));
                }
                heads[i] = next.map(|(_, e)| e);
                Ok(ev.map(|ev| (line, Ok(ev))))
            }
        }
    }
}
