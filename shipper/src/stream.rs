//! Ships a byte stream (stdin) to an aggregator: reader thread → batcher → sender.
//!
//! Each line becomes one message *including* its `\n`, exactly as `scribe_cat` sent stdin, so a
//! Scribe server that adds nothing (Scribe's default) and scribed (which adds a newline only to
//! messages lacking one) both store the input byte for byte.
//!
//! The batcher encodes lines straight into the batch body that will be sent. Each line gets an
//! id: this run's random producer id and its byte range in the stream, so a batch sent again
//! after a lost acknowledgement is recognised by a native aggregator (exactly-once while this
//! process lives; a restarted `ship` reading stdin cannot know what its predecessor sent). A batch is
//! closed when it reaches `batch_lines` lines or `batch_bytes` bytes, or when its first line
//! has waited `linger` (so a steady trickle is still shipped promptly, not once 16k lines have
//! piled up). While the outbox waits for acknowledgements, the reader and batcher prepare the
//! next batches.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use scribe_archive::Category;
use scribe_protocol::{EntryId, ProducerId};
use tokio::sync::mpsc;

use crate::batch::{BatchBuf, BatchLimits};
use crate::lines::{self, ReadError};
use crate::outbox::{self, Batch, OutboxOptions, OutboxReport};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub category: Category,
    pub limits: BatchLimits,
    pub outbox: OutboxOptions,
}

/// What was shipped.
pub type ShipReport = OutboxReport;

#[derive(Debug, thiserror::Error)]
#[error("{cause}; {delivered} lines delivered, {undelivered} lines read but not delivered")]
pub struct ShipError {
    pub cause: String,
    pub delivered: u64,
    pub undelivered: u64,
}

/// Ships every line of `input`; returns once all were acknowledged `OK` (or, with a spool,
/// are safely in it and could not be delivered within the outbox's `give_up`).
pub async fn ship_stream<R: Read + Send + 'static>(
    input: R,
    opts: StreamOptions,
) -> Result<ShipReport, ShipError> {
    let (chunks, reader) = lines::spawn_reader(input, opts.limits.max_line, 8);
    let (batches_tx, batches_rx) = mpsc::channel::<Batch<()>>(4);
    let lines_batched = Arc::new(AtomicU64::new(0));
    let batcher = tokio::spawn(batch_lines(
        chunks,
        batches_tx,
        opts.category.clone(),
        opts.limits.clone(),
        lines_batched.clone(),
    ));

    let mut report = ShipReport::default();
    let sent = outbox::run(batches_rx, |()| {}, opts.outbox.clone(), &mut report).await;
    // Lines in the spool are safe: they count as delivered for what the caller may forget.
    let safe = |r: &ShipReport| r.lines_delivered.max(r.lines_spooled);
    if let Err(e) = sent {
        // Give up now: the batcher may be waiting for input that never comes (`tail -F`), and
        // the reader thread may be blocked in read(2). Neither is waited for; the process exit
        // ends the thread.
        batcher.abort();
        return Err(ShipError {
            cause: e.to_string(),
            delivered: report.lines_delivered,
            undelivered: lines_batched
                .load(Ordering::Acquire)
                .saturating_sub(safe(&report)),
        });
    }
    let batched = batcher.await;
    // The batcher ended because the input ended (or on a too-long line): the reader is done.
    let read = tokio::task::spawn_blocking(move || reader.join())
        .await
        .ok()
        .and_then(|r| r.ok());

    let lines_read = match &batched {
        Ok(Ok(n)) => *n,
        Ok(Err(BatchError::LineTooLong { line, .. })) => line - 1,
        _ => safe(&report),
    };
    let fail = |cause: String| ShipError {
        cause,
        delivered: report.lines_delivered,
        undelivered: lines_read.saturating_sub(safe(&report)),
    };
    match read {
        Some(Ok(_)) | None => {}
        Some(Err(ReadError::LineTooLong { max })) => {
            // The reader hands over whole lines only: the long one follows the last batched.
            let line = lines_read + 1;
            return Err(fail(format!(
                "line {line} is longer than --max-line ({max} bytes); nothing from it on was sent"
            )));
        }
        Some(Err(e)) => return Err(fail(e.to_string())),
    }
    match batched {
        Ok(Ok(_)) => Ok(report),
        Ok(Err(BatchError::LineTooLong { line, len })) => Err(fail(format!(
            "line {line} is {len} bytes, longer than --max-line ({} bytes); nothing from it on was sent",
            opts.limits.max_line
        ))),
        Err(e) => Err(fail(format!("batcher failed: {e}"))),
    }
}

#[derive(Debug)]
pub enum BatchError {
    LineTooLong { line: u64, len: usize },
}

/// Turns chunks of lines into batches of `category`, under a fresh producer id. Returns the
/// number of lines batched.
pub async fn batch_lines(
    mut chunks: mpsc::Receiver<lines::Chunk>,
    out: mpsc::Sender<Batch<()>>,
    category: Category,
    opts: BatchLimits,
    lines_batched: Arc<AtomicU64>,
) -> Result<u64, BatchError> {
    let cat = category.as_str().as_bytes();
    let producer = ProducerId::random();
    let mut offset = 0u64;
    let mut builder = BatchBuf::with_runs(&opts);
    let mut line_no = 0u64;
    // When the batch being built got its first line: no line waits longer than `linger` for
    // its batch to fill, however steady a trickle of input keeps arriving.
    let mut started = tokio::time::Instant::now();
    loop {
        let chunk = if builder.is_empty() {
            let c = chunks.recv().await;
            started = tokio::time::Instant::now();
            c
        } else {
            match tokio::time::timeout_at(started + opts.linger, chunks.recv()).await {
                Ok(c) => c,
                Err(_) => {
                    // The oldest line has waited `linger`: ship what we have.
                    if !send(&out, &mut builder, &opts).await {
                        return Ok(line_no);
                    }
                    continue;
                }
            }
        };
        let Some(chunk) = chunk else { break };
        let data = &chunk.data[..];
        // The chunk's whole lines go in runs, one entry per run, with no per-line work here
        // or in the encoding, when none of them can be over --max-line (the chunk is no
        // longer than that); else, and for a last line without a newline, line by line.
        let whole = memchr::memrchr(b'\n', data).map_or(0, |i| i + 1);
        let mut at = 0;
        if whole <= opts.max_line.saturating_add(1) {
            while at < whole {
                let (len, n) = builder.fit_run(&opts, cat, &data[at..whole]);
                if n == 0 {
                    if builder.is_empty() {
                        break; // a line over --batch-bytes: alone, below
                    }
                    if !send(&out, &mut builder, &opts).await {
                        return Ok(line_no);
                    }
                    started = tokio::time::Instant::now();
                    continue;
                }
                let id = EntryId {
                    producer,
                    start: offset,
                    end: offset + len as u64,
                };
                offset = id.end;
                builder.push_run(cat, &data[at..at + len], n, id);
                at += len;
                line_no += n as u64;
                lines_batched.store(line_no, Ordering::Release);
            }
        }
        for line in lines::split_lines(&data[at..]) {
            line_no += 1;
            let content = line.len() - usize::from(line.ends_with(b"\n"));
            if content > opts.max_line {
                // Ship everything before the bad line, then stop.
                send(&out, &mut builder, &opts).await;
                return Err(BatchError::LineTooLong {
                    line: line_no,
                    len: content,
                });
            }
            if builder.is_full_for(&opts, cat, line.len()) {
                if !send(&out, &mut builder, &opts).await {
                    return Ok(line_no);
                }
                started = tokio::time::Instant::now();
            }
            let id = EntryId {
                producer,
                start: offset,
                end: offset + line.len().max(1) as u64,
            };
            offset = id.end;
            builder.push(cat, line, Some(id));
            lines_batched.store(line_no, Ordering::Release);
        }
    }
    send(&out, &mut builder, &opts).await;
    Ok(line_no)
}

/// Sends the batch being built, if it is not empty; false when the sender has stopped.
async fn send(out: &mpsc::Sender<Batch<()>>, builder: &mut BatchBuf, opts: &BatchLimits) -> bool {
    if builder.is_empty() {
        return true;
    }
    let (body, lines, bytes) = builder.take(opts);
    let batch = Batch {
        body,
        lines,
        bytes,
        tag: (),
    };
    out.send(batch).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use scribe_protocol::scribe::ENTRY_OVERHEAD;
    use std::time::Duration;

    #[tokio::test]
    async fn a_steady_trickle_is_shipped_within_the_linger() {
        let (chunk_tx, chunk_rx) = mpsc::channel(8);
        let (batch_tx, mut batch_rx) = mpsc::channel(8);
        let limits = BatchLimits {
            max_line: 1024,
            batch_lines: 16_384,
            batch_bytes: 1 << 20,
            linger: Duration::from_millis(50),
        };
        let batcher = spawn_batcher(chunk_rx, batch_tx, limits);
        // A line every 10 ms: input never pauses for 50 ms.
        let feeder = tokio::spawn(async move {
            for i in 0..100 {
                let data = Bytes::from(format!("line {i}\n"));
                chunk_tx.send(lines::Chunk { data }).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let first = tokio::time::timeout(Duration::from_millis(400), batch_rx.recv())
            .await
            .expect("a batch within a few lingers, not after 16k lines")
            .unwrap();
        assert!(first.lines >= 1 && first.lines < 100, "{}", first.lines);
        let mut total = first.lines;
        while let Some(b) = batch_rx.recv().await {
            total += b.lines;
        }
        feeder.await.unwrap();
        assert_eq!(total, 100);
        assert_eq!(batcher.await.unwrap().unwrap(), 100);
    }

    /// The batcher of category `c` on its own task.
    fn spawn_batcher(
        chunks: mpsc::Receiver<lines::Chunk>,
        batches: mpsc::Sender<Batch<()>>,
        limits: BatchLimits,
    ) -> tokio::task::JoinHandle<Result<u64, BatchError>> {
        let cat: Category = "c".parse().unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        tokio::spawn(batch_lines(chunks, batches, cat, limits, counter))
    }

    /// Feeds `input` in chunks of whole lines (as the reader does) through the batcher and
    /// returns the batches' decoded entries.
    async fn batches_of(
        input: &[u8],
        chunk: usize,
        limits: BatchLimits,
    ) -> Vec<Vec<scribe_protocol::native::Entry>> {
        let (chunk_tx, chunk_rx) = mpsc::channel(1024);
        let (batch_tx, mut batch_rx) = mpsc::channel(1024);
        let batcher = spawn_batcher(chunk_rx, batch_tx, limits);
        let mut at = 0;
        while at < input.len() {
            let end = (at + chunk).min(input.len());
            let end = memchr::memrchr(b'\n', &input[at..end]).map_or(input.len(), |i| at + i + 1);
            let data = Bytes::copy_from_slice(&input[at..end]);
            chunk_tx.send(lines::Chunk { data }).await.unwrap();
            at = end;
        }
        drop(chunk_tx);
        let mut out = Vec::new();
        while let Some(b) = batch_rx.recv().await {
            let entries = scribe_protocol::native::decode_body(b.body).unwrap();
            assert_eq!(b.lines as usize, entries.len());
            out.push(entries);
        }
        let lines = batcher.await.unwrap().unwrap();
        assert_eq!(lines as usize, out.iter().map(Vec::len).sum::<usize>());
        out
    }

    #[tokio::test]
    async fn runs_keep_every_line_its_id_and_the_batch_limits() {
        let mut rng = fastrand::Rng::with_seed(22);
        for round in 0..40 {
            let mut input = Vec::new();
            for _ in 0..rng.usize(1..400) {
                let len = match rng.u8(..10) {
                    0 => rng.usize(200..900), // longer than some batches
                    _ => rng.usize(0..40),
                };
                input.extend((0..len).map(|_| rng.alphanumeric() as u8));
                input.push(b'\n');
            }
            if rng.bool() {
                input.extend_from_slice(b"no newline at the end");
            }
            let limits = BatchLimits {
                max_line: if rng.bool() { 1 << 20 } else { 1000 },
                batch_lines: rng.usize(1..50),
                batch_bytes: rng.usize(1..3000),
                linger: Duration::from_secs(60),
            };
            let chunk = rng.usize(1..5000);
            let batches = batches_of(&input, chunk, limits.clone()).await;
            let mut offset = 0;
            let mut joined = Vec::new();
            for b in &batches {
                assert!(
                    !b.is_empty() && b.len() <= limits.batch_lines,
                    "round {round}"
                );
                let thrift: usize = b.iter().map(|e| e.message.len() + 1 + ENTRY_OVERHEAD).sum();
                assert!(
                    b.len() == 1 || thrift <= limits.batch_bytes,
                    "round {round}"
                );
                for e in b {
                    let id = e.id.unwrap();
                    assert_eq!(
                        (id.start, id.end),
                        (offset, offset + e.message.len() as u64)
                    );
                    offset = id.end;
                    joined.extend_from_slice(&e.message);
                }
            }
            assert_eq!(joined, input, "round {round}: every byte once, in order");
        }
    }

    #[tokio::test]
    async fn short_lines_are_cut_by_their_overhead_in_a_few_steps() {
        // 200k two-byte lines: as a Thrift call each costs 8 times its bytes, so a 1 MiB
        // batch takes a fraction of what a 1 MiB read holds.
        let input = b"x\n".repeat(200_000);
        let limits = BatchLimits {
            max_line: 1 << 20,
            batch_lines: 1 << 20,
            batch_bytes: 1 << 20,
            linger: Duration::from_secs(60),
        };
        let started = std::time::Instant::now();
        let batches = batches_of(&input, 1 << 20, limits).await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let per_line = 2 + 1 + ENTRY_OVERHEAD;
        for b in &batches {
            assert!(b.len() * per_line <= 1 << 20);
        }
        // Full batches but the last.
        for b in &batches[..batches.len() - 1] {
            assert!((b.len() + 1) * per_line > 1 << 20, "{}", b.len());
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 200_000);
    }
}
