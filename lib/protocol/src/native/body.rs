//! Batch bodies: the category and producer tables, then the entries (docs/protocol.md,
//! "Batch body"); [`BatchBuilder`] writes them, [`decode_body`] and [`decode_body_grouped`]
//! read them. Every count and length is checked against the bytes present before anything is
//! allocated.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::{get_varint, put_varint, NativeError};
use crate::server::{CategoryGroup, Grouper};
use crate::thrift::Reader;
use scribe_ids::{EntryId, ProducerId, ProducerMap};

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub category: Bytes,
    pub message: Bytes,
    pub id: Option<EntryId>,
}

/// Smallest encoded entry: category index, producer index, message length (one byte each).
/// Also the fewest bytes of body per message, runs included: a body decodes to at most a
/// third as many messages as it has bytes, so what a decoded frame takes in memory stays a
/// bounded multiple of the frame, however short its lines (a builder sends a run whose lines
/// average under this line by line instead, see [`BatchBuilder::push_run`]).
const MIN_ENTRY: usize = 3;

/// Decodes a batch body into entries (categories and messages are slices of `body`).
pub fn decode_body(body: Bytes) -> Result<Vec<Entry>, NativeError> {
    let mut out = Vec::new();
    decode_with(body, |n, cats, c, item| {
        let Item::Message(message, id) = item else {
            return;
        };
        if out.capacity() == 0 {
            out.reserve_exact(n);
        }
        out.push(Entry {
            category: cats[c].clone(),
            message,
            id,
        })
    })?;
    Ok(out)
}

/// Decodes a batch body straight into its categories' groups, as
/// [`crate::server::group_by_category`] would group [`decode_body`]'s entries, without a
/// per-entry category handle (a refcount increment and decrement per line) or the
/// intermediate entries: this is the server's hot path. A category listed twice in the
/// body's table is still one group.
pub fn decode_body_grouped(body: Bytes) -> Result<Vec<CategoryGroup>, NativeError> {
    let mut grouper: Option<Grouper> = None;
    // Per table row, its group, found (by name) the first time an entry uses the row: at most
    // one hash per row, whatever the number of entries.
    let mut group_of: Vec<Option<usize>> = Vec::new();
    decode_with(body, |expected, cats, c, item| {
        let grouper = grouper.get_or_insert_with(|| Grouper::new(expected));
        if group_of.len() < cats.len() {
            group_of.resize(cats.len(), None);
        }
        let g = *group_of[c].get_or_insert_with(|| grouper.group_of(&cats[c]));
        match item {
            Item::Message(message, id) => grouper.push(g, message, id),
            Item::RunEnd(bytes, count) => grouper.note_run(g, bytes, count),
        }
    })?;
    Ok(grouper.map_or_else(Vec::new, |g| g.groups))
}

/// The first 4 bytes of a body in the layout with runs (docs/protocol.md, "Runs of lines"):
/// read as the category count of the first layout, they are a count no body can hold, so a
/// server that predates runs refuses such a body as malformed rather than misread it.
const RUNS_MARKER: u32 = u32::MAX;
/// The layout byte after [`RUNS_MARKER`].
const LAYOUT_RUNS: u8 = 2;

/// Whether `body` is in the layout with runs of lines, which only a server that announced
/// them in `WELCOME` reads (see [`crate::split::Limits::runs`]).
pub fn has_runs(body: &[u8]) -> bool {
    body.len() >= 4 && body[..4] == RUNS_MARKER.to_be_bytes()
}

/// A body's category table and producer rows ((id, next start) per row).
struct Tables {
    runs: bool,
    cats: Vec<Bytes>,
    prods: Vec<(ProducerId, u64)>,
}

fn read_tables(r: &mut Reader) -> Result<Tables, NativeError> {
    let mut ncat = r.read_i32()? as u32;
    let runs = ncat == RUNS_MARKER;
    if runs {
        let layout = r.read_u8()?;
        if layout != LAYOUT_RUNS {
            return Err(NativeError::Invalid(format!(
                "unknown body layout {layout}"
            )));
        }
        ncat = r.read_i32()? as u32;
    }
    let ncat = ncat as usize;
    // Every table row and entry takes bytes: a count the rest cannot hold is refused before
    // anything is allocated for it.
    if ncat.saturating_mul(2) > r.remaining() {
        return Err(too_many("categories", ncat, r.remaining()));
    }
    let mut cats = Vec::with_capacity(ncat);
    for _ in 0..ncat {
        let n = r.read_i16()? as u16 as usize;
        cats.push(r.read_raw(n)?);
    }
    let nprod = r.read_i32()? as u32 as usize;
    if nprod.saturating_mul(24) > r.remaining() {
        return Err(too_many("producer rows", nprod, r.remaining()));
    }
    let mut prods = Vec::with_capacity(nprod);
    for _ in 0..nprod {
        let id = r.read_raw(16)?;
        let base = r.read_i64()? as u64;
        let mut b = [0u8; 16];
        b.copy_from_slice(&id);
        prods.push((ProducerId(b), base));
    }
    Ok(Tables { runs, cats, prods })
}

/// What [`decode_with`] hands over.
enum Item {
    /// A message and its id.
    Message(Bytes, Option<EntryId>),
    /// The end of a run of lines: its bytes and how many messages (lines) it was.
    RunEnd(Bytes, usize),
}

/// The decoder both of the above share: checks the tables and counts, then calls `entry` for
/// each message, in order, with the number of entries (known to be plausible by then: room to
/// make), the category table, the message's row in it, and the message with its id. A run of
/// lines is as many messages as it has lines, then an [`Item::RunEnd`].
fn decode_with(
    body: Bytes,
    mut entry: impl FnMut(usize, &[Bytes], usize, Item),
) -> Result<(), NativeError> {
    // Messages this body may still decode to (see [`MIN_ENTRY`]).
    let mut budget = body.len() / MIN_ENTRY;
    let mut r = Reader::new(body);
    let Tables {
        runs,
        cats,
        mut prods,
    } = read_tables(&mut r)?;
    let n = r.read_i32()? as u32 as usize;
    if n > r.remaining() / MIN_ENTRY {
        return Err(too_many("entries", n, r.remaining()));
    }
    for _ in 0..n {
        let mut c = get_varint(&mut r)?;
        let run = runs && c & 1 == 1;
        if runs {
            c >>= 1;
        }
        let category = usize::try_from(c)
            .ok()
            .filter(|&c| c < cats.len())
            .ok_or_else(|| NativeError::Invalid(format!("category index {c} out of range")))?;
        let p = get_varint(&mut r)?;
        let row = match p {
            0 => None,
            p => Some(
                usize::try_from(p - 1)
                    .ok()
                    .and_then(|p| prods.get_mut(p))
                    .ok_or_else(|| {
                        NativeError::Invalid(format!("producer index {p} out of range"))
                    })?,
            ),
        };
        if run {
            let len = get_varint(&mut r)?;
            let lines = r.read_raw(usize::try_from(len).unwrap_or(usize::MAX))?;
            let mut count = 0;
            split_run(lines.clone(), row, &mut budget, |line, id| {
                count += 1;
                entry(n, &cats, category, Item::Message(line, id));
            })?;
            entry(n, &cats, category, Item::RunEnd(lines, count));
            continue;
        }
        let id = match row {
            None => None,
            Some(row) => {
                let span = get_varint(&mut r)?;
                let start = row.1;
                let end = start
                    .checked_add(span)
                    .filter(|_| span > 0)
                    .ok_or_else(|| {
                        NativeError::Invalid("empty or overflowing entry range".into())
                    })?;
                row.1 = end;
                Some(EntryId {
                    producer: row.0,
                    start,
                    end,
                })
            }
        };
        let len = get_varint(&mut r)?;
        let message = r.read_raw(usize::try_from(len).unwrap_or(usize::MAX))?;
        budget = budget.saturating_sub(1);
        entry(n, &cats, category, Item::Message(message, id));
    }
    if r.remaining() > 0 {
        return Err(NativeError::Invalid(format!(
            "{} bytes after the last entry",
            r.remaining()
        )));
    }
    Ok(())
}

/// Calls `line` for each line of a run (each with its `\n`) and, with a producer row, the
/// line's id: the run covers `[start, start + its length)` of the row's sequence space, each
/// line its own bytes of it. The row's next start moves past the run. Each line takes one
/// from `budget`; a run with more lines than are left is refused before they are handed on.
fn split_run(
    lines: Bytes,
    row: Option<&mut (ProducerId, u64)>,
    budget: &mut usize,
    mut line: impl FnMut(Bytes, Option<EntryId>),
) -> Result<(), NativeError> {
    if lines.last() != Some(&b'\n') {
        return Err(NativeError::Invalid(
            "a run of lines is empty or does not end in a newline".into(),
        ));
    }
    let id = match row.as_deref() {
        Some(&(producer, start)) => {
            let end = start.checked_add(lines.len() as u64);
            let end = end.ok_or_else(|| NativeError::Invalid("overflowing run range".into()))?;
            Some(EntryId {
                producer,
                start,
                end,
            })
        }
        None => None,
    };
    for (one, one_id) in scribe_ids::run_lines(&lines, id) {
        *budget = budget.checked_sub(1).ok_or_else(|| {
            NativeError::Invalid(format!(
                "more lines than a body may carry (one per {MIN_ENTRY} bytes)"
            ))
        })?;
        line(lines.slice_ref(one), one_id);
    }
    if let Some(row) = row {
        row.1 += lines.len() as u64;
    }
    Ok(())
}

/// Room [`BatchBuilder::with_capacity`] keeps for the tables: one category of the longest
/// name scribed takes and a few dozen producer rows (`ship --follow` has one per file).
const HEADROOM: usize = 1024;

/// A body's tables and entry count, as they precede the entries.
fn write_tables(
    out: &mut impl BufMut,
    runs: bool,
    cats: &[Bytes],
    prods: &[(ProducerId, u64, u64)],
    count: u32,
) {
    if runs {
        out.put_u32(RUNS_MARKER);
        out.put_u8(LAYOUT_RUNS);
    }
    out.put_u32(cats.len() as u32);
    for c in cats {
        out.put_u16(c.len() as u16);
        out.put_slice(c);
    }
    out.put_u32(prods.len() as u32);
    for (id, base, _) in prods {
        out.put_slice(&id.0);
        out.put_u64(*base);
    }
    out.put_u32(count);
}

/// Where [`BatchBuilder::push`] puts an entry; `None`: a new table row.
struct Slot {
    category: Option<usize>,
    row: Option<usize>,
}

/// An id's end as encoded: a range is at least one long.
fn span_end(id: &EntryId) -> u64 {
    id.end.max(id.start.saturating_add(1))
}

fn span(id: &EntryId) -> u64 {
    span_end(id) - id.start
}

/// Bytes [`put_varint`] writes for `v`.
fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

fn too_many(what: &str, n: usize, bytes: usize) -> NativeError {
    NativeError::Invalid(format!("{n} {what} cannot fit in {bytes} bytes"))
}

/// Builds a batch body. Entries of one producer that continue where its previous entry in
/// the batch ended share one producer-table row; a jump (a restart from a checkpoint, a
/// resent range) starts a new row for the same id.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    /// Bytes kept free at the front of `entries` for the tables, so that [`Self::finish`]
    /// writes them in front of the entries instead of copying the entries behind them.
    head: usize,
    cats: Vec<Bytes>,
    cat_index: HashMap<Bytes, usize>,
    /// (id, base, where its next entry must start to continue this row).
    prods: Vec<(ProducerId, u64, u64)>,
    /// Each producer's newest row.
    prod_index: ProducerMap<usize>,
    entries: BytesMut,
    /// Entries on the wire (a run of lines is one).
    count: u32,
    /// Messages (a run of lines is as many as it has lines).
    messages: usize,
    message_bytes: u64,
    /// The layout with runs of lines ([`Self::with_runs`]).
    runs: bool,
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        let mut entries = BytesMut::with_capacity(HEADROOM + bytes);
        entries.put_bytes(0, HEADROOM);
        BatchBuilder {
            head: HEADROOM,
            entries,
            ..Default::default()
        }
    }

    /// A builder of a body in the layout with runs of lines ([`Self::push_run`]), which only
    /// a server that announced runs reads; a client sending it to any other converts it
    /// first (`split::split_native`).
    pub fn with_runs(bytes: usize) -> BatchBuilder {
        BatchBuilder {
            runs: true,
            ..BatchBuilder::with_capacity(bytes)
        }
    }

    /// Whether this builder writes the layout with runs ([`Self::with_runs`]).
    pub fn has_runs_layout(&self) -> bool {
        self.runs
    }

    /// Appends one entry. Categories longer than 65,535 bytes are cut there (no server
    /// accepts such names anyway; scribed's limit is 200).
    pub fn push(&mut self, category: &[u8], message: &[u8], id: Option<EntryId>) {
        self.put_entry(category, message, id, false);
        self.messages += 1;
    }

    /// Appends a run of whole lines of one category as one entry: `lines` holds one or more
    /// lines, each ending in `\n`, and `id`, if any, covers exactly its bytes
    /// (`id.end - id.start == lines.len()`); the server makes each line a message with its own
    /// part of the range. The run is encoded with no per-line work, which is the point: `ship`
    /// hands over what it read as it read it. `line_count` is how many lines `lines` holds.
    ///
    /// Without [`Self::with_runs`], if `lines` or `id` is not as described, or if the lines
    /// average under 3 bytes (a body carries at most one message per 3 bytes, so a frame of
    /// empty lines cannot make a server hold 70 times its size), the lines are pushed one by
    /// one instead (each with its part of `id`), so the body is the same
    /// messages either way.
    pub fn push_run(
        &mut self,
        category: &[u8],
        lines: &[u8],
        line_count: usize,
        id: Option<EntryId>,
    ) {
        let whole = scribe_ids::is_whole_run(lines, id)
            && line_count.saturating_mul(MIN_ENTRY) <= lines.len();
        if self.runs && whole {
            self.put_entry(category, lines, id, true);
            self.messages += line_count;
            return;
        }
        for (line, line_id) in scribe_ids::run_lines(lines, id) {
            self.push(category, line, line_id);
        }
    }

    /// Encodes one entry: a message, or with `run` a run of lines (whose span is its length).
    fn put_entry(&mut self, category: &[u8], message: &[u8], id: Option<EntryId>, run: bool) {
        let category = &category[..category.len().min(u16::MAX as usize)];
        let slot = self.locate(category, id);
        let c = slot.category.unwrap_or_else(|| {
            let c = Bytes::copy_from_slice(category);
            self.cats.push(c.clone());
            self.cat_index.insert(c, self.cats.len() - 1);
            self.cats.len() - 1
        });
        let c = if self.runs {
            (c as u64) << 1 | u64::from(run)
        } else {
            c as u64
        };
        put_varint(&mut self.entries, c);
        match (id, slot.row) {
            (Some(id), row) => {
                let end = span_end(&id);
                let row = row.unwrap_or_else(|| {
                    self.prods.push((id.producer, id.start, id.start));
                    let r = self.prods.len() - 1;
                    self.prod_index.insert(id.producer, r);
                    r
                });
                self.prods[row].2 = end;
                put_varint(&mut self.entries, row as u64 + 1);
                if !run {
                    put_varint(&mut self.entries, end - id.start);
                }
            }
            (None, _) => put_varint(&mut self.entries, 0),
        }
        put_varint(&mut self.entries, message.len() as u64);
        self.entries.put_slice(message);
        self.count += 1;
        self.message_bytes += message.len() as u64;
    }

    /// What [`Self::encoded_len`] would be after pushing this entry: how a caller cutting
    /// batches to a size limit asks before it pushes (see [`crate::split`]).
    pub fn encoded_len_with(
        &self,
        category: &[u8],
        message_len: usize,
        id: Option<EntryId>,
    ) -> usize {
        let category = &category[..category.len().min(u16::MAX as usize)];
        let slot = self.locate(category, id);
        let (cat_index, cat_table) = match slot.category {
            Some(c) => (c, 0),
            None => (self.cats.len(), 2 + category.len()),
        };
        let id_len = match (id, slot.row) {
            (None, _) => 1,
            (Some(id), Some(row)) => varint_len(row as u64 + 1) + varint_len(span(&id)),
            (Some(id), None) => {
                24 + varint_len(self.prods.len() as u64 + 1) + varint_len(span(&id))
            }
        };
        self.encoded_len()
            + cat_table
            + varint_len((cat_index as u64) << u8::from(self.runs))
            + id_len
            + varint_len(message_len as u64)
            + message_len
    }

    /// Where an entry would go: its category's index and its producer row, if they exist
    /// (entries of one producer share a row while each starts where the last ended).
    fn locate(&self, category: &[u8], id: Option<EntryId>) -> Slot {
        // Most batches hold one category: check the last one before hashing.
        let category = match self.cats.last() {
            Some(last) if &last[..] == category => Some(self.cats.len() - 1),
            _ => self.cat_index.get(category).copied(),
        };
        // Likewise the newest row (a row is its producer's newest while it is the last one).
        if let (Some(id), Some(last)) = (id, self.prods.last()) {
            if last.0 == id.producer && last.2 == id.start {
                let row = Some(self.prods.len() - 1);
                return Slot { category, row };
            }
        }
        let row = id.and_then(|id| {
            self.prod_index
                .get(&id.producer)
                .copied()
                .filter(|&r| self.prods[r].2 == id.start)
        });
        Slot { category, row }
    }

    /// Messages so far (a run counts its lines).
    pub fn len(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Sum of message lengths so far.
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes
    }

    /// About how long the body will be.
    pub fn encoded_len(&self) -> usize {
        self.entries.len() - self.head + self.tables_len()
    }

    /// Bytes of the category and producer tables and the entry count.
    fn tables_len(&self) -> usize {
        let marker = if self.runs { 5 } else { 0 };
        marker + self.cats.iter().map(|c| c.len() + 2).sum::<usize>() + 24 * self.prods.len() + 12
    }

    /// The finished body: the tables written into the room left in front of the entries
    /// (a builder from [`Self::with_capacity`] whose tables fit it), else a copy.
    pub fn finish(self) -> Bytes {
        let tables = self.tables_len();
        if tables <= self.head {
            let mut body = self.entries;
            let at = self.head - tables;
            write_tables(
                &mut &mut body[at..self.head],
                self.runs,
                &self.cats,
                &self.prods,
                self.count,
            );
            let _ = body.split_to(at);
            return body.freeze();
        }
        let mut out = BytesMut::with_capacity(self.encoded_len());
        write_tables(&mut out, self.runs, &self.cats, &self.prods, self.count);
        out.put_slice(&self.entries[self.head..]);
        out.freeze()
    }
}

#[cfg(test)]
mod tests;
