//! The writer thread behind `stdout` and `file:PATH`: JSON lines, written in order, flushed
//! as soon as the queue is empty.
//!
//! A thread rather than a task: writes to a pipe or a disk block, and a reader that stops
//! reading (`monitor run | less`) must hold up the pipeline (backpressure) rather than an
//! async worker thread.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::output_record::OutputRecord;
use super::{LogEvery, OutputError, SinkStats};

/// A write that failed after `written` bytes of the buffer went out.
pub(crate) struct PartialWrite {
    pub written: usize,
    pub error: io::Error,
}

/// The bytes at the end of `buf[..written]` after its last line feed: the start of a line a
/// failed write left in its destination.
pub(crate) fn cut_line_bytes(buf: &[u8], written: usize) -> u64 {
    let done = &buf[..written.min(buf.len())];
    let whole = memchr::memrchr(b'\n', done).map_or(0, |i| i + 1);
    (done.len() - whole) as u64
}

/// Takes the last `partial` bytes off a regular file a failed write left them in, so it
/// ends with a whole record. `Ok(false)` when `file` is no regular file (a pipe, a device:
/// nothing can be taken back) or was written elsewhere than at its end.
pub(crate) fn truncate_cut_line(file: &std::fs::File, partial: u64) -> io::Result<bool> {
    use std::io::Seek as _;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(false);
    }
    let mut f = file;
    let pos = f.stream_position()?;
    if pos != meta.len() || pos < partial {
        return Ok(false);
    }
    file.set_len(pos - partial)?;
    f.seek(io::SeekFrom::Start(pos - partial))?;
    Ok(true)
}

/// Writes all of `buf`, counting what went out before an error.
pub(crate) fn write_counted(w: &mut impl io::Write, buf: &[u8]) -> Result<(), PartialWrite> {
    let mut written = 0;
    while written < buf.len() {
        match w.write(&buf[written..]) {
            Ok(0) => {
                return Err(PartialWrite {
                    written,
                    error: io::ErrorKind::WriteZero.into(),
                });
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(PartialWrite { written, error }),
        }
    }
    w.flush().map_err(|error| PartialWrite { written, error })
}

/// Where lines go.
pub(crate) trait LineTarget: Send + 'static {
    /// Writes and flushes `buf` (whole lines).
    fn write_lines(&mut self, buf: &[u8]) -> Result<(), PartialWrite>;
    /// Reopens the destination (files: SIGHUP after log rotation).
    fn reopen(&mut self) -> io::Result<()>;
}

pub(crate) enum LineMsg {
    /// A record and the reopen generation current when it was sent.
    Record(OutputRecord, u64),
    /// Several records, in order, sent together (one queue slot, one wake-up of the
    /// writer thread).
    Records(Vec<OutputRecord>, u64),
    /// Reopen now if the generation is newer than the open file's.
    Reopen(u64),
}

pub(crate) struct LineSink {
    name: String,
    tx: mpsc::Sender<LineMsg>,
    counters: Arc<Counters>,
    /// Fires when the writer thread has written everything and ended.
    done: Option<oneshot::Receiver<()>>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    /// The last write error, for the message of a replay that lost records.
    last_error: std::sync::Mutex<Option<String>>,
}

/// Lines written with one write call at most (when that many are queued).
const WRITE_BATCH_BYTES: usize = 256 * 1024;

impl LineSink {
    pub fn start(
        name: String,
        target: Box<dyn LineTarget>,
        capacity: usize,
    ) -> Result<LineSink, OutputError> {
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let (done_tx, done) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("output-{}", short(&name)))
            .spawn({
                let counters = counters.clone();
                let name = name.clone();
                move || {
                    write_loop(name, target, rx, counters);
                    let _ = done_tx.send(());
                }
            })
            .map_err(|source| OutputError::Thread {
                output: name.clone(),
                source,
            })?;
        Ok(LineSink {
            name,
            tx,
            counters,
            done: Some(done),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues `rec`, waiting while the queue is full.
    pub async fn send(&self, rec: OutputRecord, generation: u64) {
        if self
            .tx
            .send(LineMsg::Record(rec, generation))
            .await
            .is_err()
        {
            // The writer thread is gone (it only ends when the hub closes it, or by a panic).
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(output = %self.name, "output writer has stopped; record dropped");
        }
    }

    /// Queues `recs` as one message (one slot of the queue), waiting while the queue is full.
    pub async fn send_all(&self, recs: Vec<OutputRecord>, generation: u64) {
        let n = recs.len() as u64;
        if n == 0 {
            return;
        }
        if self
            .tx
            .send(LineMsg::Records(recs, generation))
            .await
            .is_err()
        {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            tracing::error!(output = %self.name, dropped = n, "output writer has stopped; records dropped");
        }
    }

    /// Asks the thread to reopen; if its queue is full, the next record carries the new
    /// generation anyway.
    pub fn reopen(&self, generation: u64) {
        let _ = self.tx.try_send(LineMsg::Reopen(generation));
    }

    pub fn stats(&self) -> SinkStats {
        SinkStats {
            output: self.name.clone(),
            sent: self.counters.sent.load(Ordering::Relaxed),
            queued: (self.tx.max_capacity() - self.tx.capacity()) as u64,
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
            last_error: self
                .counters
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ..SinkStats::default()
        }
    }

    /// The counters, readable after `shutdown` has consumed the sink.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            name: self.name.clone(),
            counters: self.counters.clone(),
        }
    }

    /// Closes the queue and waits (until `deadline`) for the thread to write what is left.
    /// A writer still blocked then is left behind (it cannot be interrupted), so a reader
    /// that stopped reading cannot hold up exit.
    pub async fn shutdown(self, deadline: tokio::time::Instant) -> Result<(), OutputError> {
        let LineSink { name, tx, done, .. } = self;
        let queued = tx.max_capacity() - tx.capacity();
        drop(tx);
        let Some(done) = done else { return Ok(()) };
        match tokio::time::timeout_at(deadline, done).await {
            Ok(_) => Ok(()),
            Err(_) => Err(OutputError::Shutdown {
                output: name,
                detail: format!(
                    "about {queued} records were still queued; the writer is blocked (a reader that stopped reading, or a hung disk)"
                ),
            }),
        }
    }
}

/// A line output's counters after shutdown (nothing is queued any more).
pub(crate) struct StatsHandle {
    name: String,
    counters: Arc<Counters>,
}

impl StatsHandle {
    pub fn stats(&self) -> SinkStats {
        let c = &self.counters;
        SinkStats {
            output: self.name.clone(),
            sent: c.sent.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            last_error: c
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ..SinkStats::default()
        }
    }
}

fn short(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect()
}

fn write_loop(
    name: String,
    mut target: Box<dyn LineTarget>,
    mut rx: mpsc::Receiver<LineMsg>,
    counters: Arc<Counters>,
) {
    let error_log = LogEvery::new(Duration::from_secs(10));
    let mut generation = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    // End offset of each line in `buf`, to count the lines a failed write still wrote.
    let mut lines: Vec<usize> = Vec::new();
    let flush = |target: &mut Box<dyn LineTarget>, buf: &mut Vec<u8>, lines: &mut Vec<usize>| {
        if buf.is_empty() {
            return;
        }
        match target.write_lines(buf) {
            Ok(()) => {
                counters
                    .sent
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
            }
            Err(PartialWrite { written, error }) => {
                let whole = lines.iter().take_while(|&&end| end <= written).count();
                let lost = (lines.len() - whole) as u64;
                counters.sent.fetch_add(whole as u64, Ordering::Relaxed);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                counters.dropped.fetch_add(lost, Ordering::Relaxed);
                *counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
                if let Some(n) = error_log.ready(lost) {
                    tracing::error!(output = %name, %error, dropped = n,
                        "cannot write output; records dropped for this output (the others go on)");
                }
            }
        }
        buf.clear();
        lines.clear();
    };
    let reopen = |target: &mut Box<dyn LineTarget>| {
        if let Err(e) = target.reopen() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(output = %name, error = %e, "cannot reopen output");
        }
    };
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        // Take everything already queued, then write it with one call and flush.
        while let Some(msg) = next.take() {
            match msg {
                LineMsg::Record(rec, g) => {
                    if g > generation {
                        flush(&mut target, &mut buf, &mut lines);
                        reopen(&mut target);
                        generation = g;
                    }
                    buf.extend_from_slice(rec.json().as_bytes());
                    buf.push(b'\n');
                    lines.push(buf.len());
                }
                LineMsg::Records(recs, g) => {
                    if g > generation {
                        flush(&mut target, &mut buf, &mut lines);
                        reopen(&mut target);
                        generation = g;
                    }
                    for rec in recs {
                        buf.extend_from_slice(rec.json().as_bytes());
                        buf.push(b'\n');
                        lines.push(buf.len());
                    }
                }
                LineMsg::Reopen(g) => {
                    if g > generation {
                        flush(&mut target, &mut buf, &mut lines);
                        reopen(&mut target);
                        generation = g;
                    }
                }
            }
            if buf.len() < WRITE_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut target, &mut buf, &mut lines);
    }
}
