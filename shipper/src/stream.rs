//! Ships a byte stream (stdin) to an aggregator: reader thread → batcher → sender.
//!
//! Each line becomes one message *including* its `\n`, exactly as `scribe_cat` sent stdin, so a
//! Scribe server that adds nothing (Scribe's default) and scribed (which adds a newline only to
//! messages lacking one) both store the input byte for byte.
//!
//! The batcher encodes lines straight into the Thrift `Log` call that will be sent. A batch is
//! closed when it reaches `batch_lines` lines or `batch_bytes` bytes, or when no input arrived
//! for `linger` (so a slow trickle is still shipped promptly). While the sender waits for
//! acknowledgements, the reader and batcher prepare the next batches; to scribed, up to
//! `window` batches are in flight (see [`PipelinedSender`] for why that is safe only there).

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use scribe_archive::Category;
use scribe_protocol::client::{ClientOptions, PipelinedSender};
use scribe_protocol::frame::LOG_ENVELOPE_OVERHEAD;
use scribe_protocol::scribe::ENTRY_OVERHEAD;
use scribe_protocol::{HeaderStyle, LogBatchBuilder};
use tokio::sync::mpsc;

use crate::lines::{self, ReadError};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Aggregator address, `host:port`.
    pub to: String,
    pub category: Category,
    /// Longest line accepted, in bytes, not counting its newline.
    pub max_line: usize,
    pub batch_lines: usize,
    pub batch_bytes: usize,
    pub linger: Duration,
    /// Give up when no batch was acknowledged for this long.
    pub timeout: Duration,
    /// Most batches in flight (used only with a scribed that agreed to close the connection
    /// after `TRY_LATER`; otherwise 1).
    pub window: usize,
    pub client: ClientOptions,
}

/// What was shipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipReport {
    pub lines_delivered: u64,
    pub bytes_delivered: u64,
    pub batches: u64,
    pub retries: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("{cause}; {delivered} lines delivered, {undelivered} lines read but not delivered")]
pub struct ShipError {
    pub cause: String,
    pub delivered: u64,
    pub undelivered: u64,
}

struct Batch {
    call: Bytes,
    lines: u64,
    bytes: u64,
}

/// Ships every line of `input`; returns once all were acknowledged `OK`.
pub async fn ship_stream<R: Read + Send + 'static>(
    input: R,
    opts: StreamOptions,
) -> Result<ShipReport, ShipError> {
    let (chunks, reader) = lines::spawn_reader(input, opts.max_line, 8);
    let (batches_tx, mut batches_rx) = mpsc::channel::<Batch>(4);
    let lines_batched = Arc::new(AtomicU64::new(0));
    let batcher = tokio::spawn(batch_lines(
        chunks,
        batches_tx,
        opts.clone(),
        lines_batched.clone(),
    ));

    let mut sender = PipelinedSender::new(
        opts.to.clone(),
        opts.client.clone(),
        opts.window,
        opts.timeout,
    );
    let mut report = ShipReport::default();
    let mut send_error = None;
    let mut input_done = false;
    loop {
        // Fill the window: wait for a batch only when nothing is in flight.
        while sender.has_room() && !input_done {
            let next = if sender.in_flight() == 0 {
                batches_rx.recv().await
            } else {
                match batches_rx.try_recv() {
                    Ok(b) => Some(b),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                }
            };
            match next {
                Some(b) => sender.send(b.call, (b.lines, b.bytes)).await,
                None => input_done = true,
            }
        }
        if sender.in_flight() == 0 {
            if input_done {
                break;
            }
            continue;
        }
        match sender.next_ack().await {
            Ok((lines, bytes)) => {
                report.lines_delivered += lines;
                report.bytes_delivered += bytes;
                report.batches += 1;
            }
            Err(e) => {
                send_error = Some(e.to_string());
                break;
            }
        }
    }
    report.retries = sender.retries;
    if let Some(cause) = send_error {
        // Give up now: the batcher may be waiting for input that never comes (`tail -F`), and
        // the reader thread may be blocked in read(2). Neither is waited for; the process exit
        // ends the thread.
        batcher.abort();
        return Err(ShipError {
            cause,
            delivered: report.lines_delivered,
            undelivered: lines_batched
                .load(Ordering::Acquire)
                .saturating_sub(report.lines_delivered),
        });
    }
    drop(batches_rx);
    let batched = batcher.await;
    // The batcher ended because the input ended (or on a too-long line): the reader is done.
    let read = tokio::task::spawn_blocking(move || reader.join())
        .await
        .ok()
        .and_then(|r| r.ok());

    let lines_read = match &batched {
        Ok(Ok(n)) => *n,
        Ok(Err(BatchError::LineTooLong { line, .. })) => line - 1,
        _ => report.lines_delivered,
    };
    let fail = |cause: String| ShipError {
        cause,
        delivered: report.lines_delivered,
        undelivered: lines_read.saturating_sub(report.lines_delivered),
    };
    match read {
        Some(Ok(_)) | None => {}
        Some(Err(ReadError::LineTooLong { line, max })) => {
            return Err(fail(format!(
                "line {line} is longer than --max-line ({max} bytes); nothing from it on was sent"
            )))
        }
        Some(Err(e)) => return Err(fail(e.to_string())),
    }
    match batched {
        Ok(Ok(_)) => Ok(report),
        Ok(Err(BatchError::LineTooLong { line, len })) => Err(fail(format!(
            "line {line} is {len} bytes, longer than --max-line ({} bytes); nothing from it on was sent",
            opts.max_line
        ))),
        Err(e) => Err(fail(format!("batcher failed: {e}"))),
    }
}

#[derive(Debug)]
enum BatchError {
    LineTooLong { line: u64, len: usize },
}

/// Turns chunks of lines into encoded `Log` calls. Returns the number of lines batched.
async fn batch_lines(
    mut chunks: mpsc::Receiver<lines::Chunk>,
    out: mpsc::Sender<Batch>,
    opts: StreamOptions,
    lines_batched: Arc<AtomicU64>,
) -> Result<u64, BatchError> {
    let cat = opts.category.as_str().as_bytes();
    let mut builder = new_builder(&opts);
    let mut batch_bytes = 0u64;
    let mut line_no = 0u64;
    loop {
        let chunk = if builder.is_empty() {
            chunks.recv().await
        } else {
            match tokio::time::timeout(opts.linger, chunks.recv()).await {
                Ok(c) => c,
                Err(_) => {
                    // No input for `linger`: ship what we have.
                    let b = std::mem::replace(&mut builder, new_builder(&opts));
                    if !send(&out, b, std::mem::take(&mut batch_bytes)).await {
                        return Ok(line_no);
                    }
                    continue;
                }
            }
        };
        let Some(chunk) = chunk else { break };
        for line in lines::split_lines(&chunk.data) {
            line_no += 1;
            let content = line.len() - usize::from(line.ends_with(b"\n"));
            if content > opts.max_line {
                // Ship everything before the bad line, then stop.
                send(&out, builder, batch_bytes).await;
                return Err(BatchError::LineTooLong {
                    line: line_no,
                    len: content,
                });
            }
            let entry = line.len() + cat.len() + ENTRY_OVERHEAD;
            if !builder.is_empty()
                && (builder.len() >= opts.batch_lines
                    || builder.encoded_len() + entry > opts.batch_bytes)
            {
                let b = std::mem::replace(&mut builder, new_builder(&opts));
                if !send(&out, b, std::mem::take(&mut batch_bytes)).await {
                    return Ok(line_no);
                }
            }
            builder.push(cat, line);
            batch_bytes += line.len() as u64;
            lines_batched.store(line_no, Ordering::Release);
        }
    }
    send(&out, builder, batch_bytes).await;
    Ok(line_no)
}

fn new_builder(opts: &StreamOptions) -> LogBatchBuilder {
    // Unversioned headers, as Scribe's own network store sends: every Scribe server accepts them.
    LogBatchBuilder::new(HeaderStyle::Unversioned, opts.batch_bytes.min(1 << 20))
}

/// Sends a non-empty batch; false when the sender has stopped.
async fn send(out: &mpsc::Sender<Batch>, builder: LogBatchBuilder, bytes: u64) -> bool {
    if builder.is_empty() {
        return true;
    }
    let lines = builder.len() as u64;
    let call = builder.finish();
    out.send(Batch { call, lines, bytes }).await.is_ok()
}

/// Largest line that fits one frame of `max_frame` bytes with a category of any valid length.
pub fn max_line_for_frame(max_frame: usize) -> usize {
    max_frame.saturating_sub(LOG_ENVELOPE_OVERHEAD + scribe_archive::category::MAX_CATEGORY_LEN + 1)
}
