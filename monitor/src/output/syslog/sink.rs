//! One syslog output: a bounded in-memory queue, the on-disk spool behind it, and the task
//! that delivers both, in order, to the receiver.
//!
//! Order: the memory queue always holds older records than the spool. A record goes to
//! memory while the spool is empty and memory has room, otherwise to the end of the spool;
//! the delivery task sends memory first, then the spool from its start. A batch that fails
//! goes back to the front of where it came from.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::format::Framer;
use super::spool::{AppendError, Spool};
use super::transport::{Connection, Target};
use crate::output::output_record::OutputRecord;
use crate::output::{LogEvery, OutputConfig, OutputError, SinkStats};

/// Messages per batch: large enough to amortize the liveness check and the cursor write,
/// small enough that a batch cut by the deadline is little to resend.
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// Extra time, after the deadline, that `shutdown` waits for the task to notice it.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long the task waits for the answer to a RELP `close` when it stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct SyslogSink {
    shared: Arc<Shared>,
    framer: Framer,
    fsync_each: bool,
    deadline: watch::Sender<Option<Instant>>,
    task: Option<JoinHandle<()>>,
}

/// A syslog output's counters, also after shutdown.
pub(crate) struct SyslogStatsHandle(Arc<Shared>);

impl SyslogStatsHandle {
    pub fn stats(&self) -> SinkStats {
        let shared = &self.0;
        let q = shared.lock();
        SinkStats {
            output: shared.name.clone(),
            sent: shared.sent.load(Ordering::Relaxed),
            queued: (q.mem.len() + q.in_flight) as u64,
            spooled: shared.spooled.load(Ordering::Relaxed),
            spool_records: q.spool.records(),
            spool_bytes: q.spool.bytes(),
            dropped: shared.dropped.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
            truncated: shared.truncated.load(Ordering::Relaxed),
            last_error: None,
        }
    }
}

struct Shared {
    name: String,
    queue: Mutex<Queue>,
    wake: Notify,
    sent: AtomicU64,
    spooled: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    truncated: AtomicU64,
    drop_log: LogEvery,
}

struct Queue {
    mem: VecDeque<Vec<u8>>,
    cap: usize,
    /// Records taken from `mem` by the delivery task and not yet settled.
    in_flight: usize,
    spool: Spool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    Mem,
    Spool,
}

#[derive(Clone)]
struct Timing {
    reconnect_min: Duration,
    reconnect_max: Duration,
    connect_timeout: Duration,
    fsync_interval: Duration,
}

impl SyslogSink {
    /// Opens the spool (`spool_dir`) and starts the delivery task. Must run inside a tokio
    /// runtime. The receiver need not be up: records queue and spool until it is.
    pub fn start(
        name: String,
        target: Target,
        framer: Framer,
        cfg: &OutputConfig,
        spool_dir: &std::path::Path,
    ) -> Result<SyslogSink, OutputError> {
        let spool = Spool::open(spool_dir, cfg.spool_max_bytes).map_err(|e| match e {
            super::spool::SpoolOpenError::Locked => OutputError::SpoolLocked {
                output: name.clone(),
                dir: spool_dir.to_path_buf(),
            },
            super::spool::SpoolOpenError::Io(source) => OutputError::Spool {
                output: name.clone(),
                dir: spool_dir.to_path_buf(),
                source,
            },
        })?;
        if !spool.is_empty() {
            tracing::info!(
                output = %name,
                records = spool.records(),
                spool = %spool_dir.display(),
                "records spooled by an earlier run are delivered first"
            );
        }
        let shared = Arc::new(Shared {
            name,
            queue: Mutex::new(Queue {
                mem: VecDeque::with_capacity(cfg.queue_capacity.min(4096)),
                cap: cfg.queue_capacity,
                in_flight: 0,
                spool,
            }),
            wake: Notify::new(),
            sent: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            drop_log: LogEvery::new(Duration::from_secs(10)),
        });
        let (deadline, deadline_rx) = watch::channel(None);
        let timing = Timing {
            reconnect_min: cfg.reconnect_min,
            reconnect_max: cfg.reconnect_max,
            connect_timeout: cfg.connect_timeout,
            fsync_interval: cfg.spool_fsync_interval,
        };
        let task = tokio::spawn(deliver(shared.clone(), target, timing, deadline_rx));
        Ok(SyslogSink {
            shared,
            framer,
            fsync_each: cfg.spool_fsync_interval.is_zero(),
            deadline,
            task: Some(task),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Frames `rec` and queues it (memory, or the spool when memory is full or the spool is
    /// not empty). Never waits on the receiver. A record the spool cannot take is dropped,
    /// counted and logged.
    pub fn push(&self, rec: &OutputRecord) {
        let mut msg = Vec::with_capacity(rec.json().len() + 320);
        if self.framer.frame(rec, &mut msg).truncated {
            self.shared.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let mut q = self.shared.lock();
        if q.spool.is_empty() && q.mem.len() < q.cap {
            q.mem.push_back(msg);
        } else {
            match q.spool.append(&msg) {
                Ok(()) => {
                    self.shared.spooled.fetch_add(1, Ordering::Relaxed);
                    if self.fsync_each
                        && let Err(e) = q.spool.sync()
                    {
                        self.shared.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(output = %self.shared.name, error = %e, "cannot fsync the spool");
                    }
                }
                Err(AppendError::Full) => {
                    let dir = q.spool.dir().display().to_string();
                    drop(q);
                    self.shared
                        .record_drop(1, &format!("the spool at {dir} is full"));
                    return;
                }
                Err(AppendError::Io(e)) => {
                    let dir = q.spool.dir().display().to_string();
                    drop(q);
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .record_drop(1, &format!("cannot write the spool at {dir}: {e}"));
                    return;
                }
            }
        }
        drop(q);
        self.shared.wake.notify_one();
    }

    pub fn stats(&self) -> SinkStats {
        self.stats_handle().stats()
    }

    /// The counters, readable after `shutdown` has consumed the sink.
    pub fn stats_handle(&self) -> SyslogStatsHandle {
        SyslogStatsHandle(self.shared.clone())
    }

    /// Delivers what is queued and spooled until `deadline`, then writes whatever is still
    /// in memory to the front of the spool for the next start.
    pub async fn shutdown(mut self, deadline: Instant) -> Result<(), OutputError> {
        let _ = self.deadline.send(Some(deadline));
        self.shared.wake.notify_one();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout_at(deadline + STOP_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        let mut q = self.shared.lock();
        let lost = std::mem::take(&mut q.in_flight);
        let rest: Vec<Vec<u8>> = q.mem.drain(..).collect();
        let result = q.spool.push_front(&rest).and_then(|()| q.spool.sync());
        let (records, dir) = (q.spool.records(), q.spool.dir().display().to_string());
        drop(q);
        if lost > 0 {
            self.shared
                .record_drop(lost as u64, "the delivery task had to be stopped mid-batch");
        }
        match result {
            Ok(()) => {
                self.shared
                    .spooled
                    .fetch_add(rest.len() as u64, Ordering::Relaxed);
                if records > 0 {
                    tracing::info!(
                        output = %self.shared.name,
                        records,
                        spool = %dir,
                        "undelivered records stay in the spool and are sent first at the next start"
                    );
                }
                Ok(())
            }
            Err(e) => {
                self.shared.record_drop(
                    rest.len() as u64,
                    &format!("cannot write the spool at {dir} at shutdown: {e}"),
                );
                Err(OutputError::Shutdown {
                    output: self.shared.name.clone(),
                    detail: format!(
                        "{} queued records could not be spooled to {dir}: {e}",
                        rest.len()
                    ),
                })
            }
        }
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        // Dropped without shutdown (an error path): stop delivering; what is spooled stays.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves consistent data (every step is complete or
        // not started), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_drop(&self, n: u64, why: &str) {
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(since) = self.drop_log.ready(n) {
            tracing::error!(
                output = %self.name,
                dropped = since,
                dropped_total = total,
                "records dropped: {why}"
            );
        }
    }

    /// Takes the next batch: memory first, then the spool.
    fn take_batch(&self, batch: &mut Vec<Vec<u8>>) -> Option<Source> {
        let mut q = self.lock();
        let lost = q.spool.take_lost();
        if lost > 0 {
            drop(q);
            self.record_drop(lost, "spool records were damaged");
            q = self.lock();
        }
        if !q.mem.is_empty() {
            let mut bytes = 0;
            while let Some(m) = q.mem.pop_front() {
                bytes += m.len();
                batch.push(m);
                if batch.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
                    break;
                }
            }
            q.in_flight = batch.len();
            return Some(Source::Mem);
        }
        if q.spool.is_empty() {
            return None;
        }
        match q.spool.read_batch(BATCH_RECORDS, BATCH_BYTES, batch) {
            Ok(()) if !batch.is_empty() => Some(Source::Spool),
            Ok(()) => None,
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(output = %self.name, spool = %q.spool.dir().display(), error = %e,
                    "cannot read the spool; retrying");
                batch.clear();
                None
            }
        }
    }

    /// The first `done` messages of `batch` are finished with (delivered, or dropped as too
    /// large); the rest go back where they came from, at the front.
    fn settle(&self, source: Source, batch: &mut Vec<Vec<u8>>, done: usize) {
        let mut q = self.lock();
        match source {
            Source::Mem => {
                for m in batch.drain(done..).rev() {
                    q.mem.push_front(m);
                }
                q.in_flight = 0;
            }
            Source::Spool => {
                if let Err(e) = q.spool.commit(done) {
                    // The records went out; at worst they are sent again after a restart.
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(output = %self.name, error = %e, "cannot update the spool cursor");
                }
            }
        }
        batch.clear();
    }

    fn backlog(&self) -> (usize, u64) {
        let q = self.lock();
        (q.mem.len() + q.in_flight, q.spool.records())
    }
}

/// Runs `fut` unless the shutdown deadline passes first (`None` then).
async fn until_deadline<F: std::future::Future>(
    fut: F,
    deadline: &mut watch::Receiver<Option<Instant>>,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let at = *deadline.borrow_and_update();
        let sleep = async {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            out = &mut fut => return Some(out),
            () = sleep => return None,
            changed = deadline.changed() => {
                if changed.is_err() {
                    return None; // the sink is gone
                }
            }
        }
    }
}

/// The delivery task. At the end a RELP session is closed (`close`), briefly: whatever is
/// unacknowledged is already back in memory or the spool.
async fn deliver(
    shared: Arc<Shared>,
    target: Target,
    timing: Timing,
    deadline: watch::Receiver<Option<Instant>>,
) {
    let mut conn: Option<Connection> = None;
    deliver_until_done(&shared, &target, &timing, deadline, &mut conn).await;
    if let Some(mut c) = conn {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, c.close()).await;
    }
}

/// Delivers until everything is sent at shutdown or the deadline passes.
async fn deliver_until_done(
    shared: &Arc<Shared>,
    target: &Target,
    timing: &Timing,
    mut deadline: watch::Receiver<Option<Instant>>,
    conn: &mut Option<Connection>,
) {
    let mut backoff = timing.reconnect_min;
    let mut down_since: Option<Instant> = None;
    let down_log = LogEvery::new(Duration::from_secs(60));
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut scratch: Vec<u8> = Vec::new();
    let mut next_sync = Instant::now() + timing.fsync_interval;
    let failed = |shared: &Shared,
                  what: &str,
                  e: &std::io::Error,
                  down_since: &mut Option<Instant>| {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        down_since.get_or_insert_with(Instant::now);
        if down_log.ready(1).is_some() {
            let (queued, spooled) = shared.backlog();
            tracing::warn!(
                output = %shared.name,
                error = %e,
                queued,
                spooled,
                "{what}; records wait in memory, then in the spool, and are sent in order when the receiver is back"
            );
        }
    };
    loop {
        let shutting_down = deadline.borrow_and_update().is_some();
        if !timing.fsync_interval.is_zero() && Instant::now() >= next_sync {
            next_sync = Instant::now() + timing.fsync_interval;
            let handle = shared.lock().spool.sync_handle();
            if let Some(h) = handle
                && let Ok(Err(e)) = tokio::task::spawn_blocking(move || h.sync_data()).await
            {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(output = %shared.name, error = %e, "cannot fsync the spool");
            }
        }
        let Some(source) = shared.take_batch(&mut batch) else {
            if shutting_down {
                return; // everything delivered
            }
            // With fsync after every write there is no timer to wait for.
            let periodic = !timing.fsync_interval.is_zero();
            let sleep = async {
                if periodic {
                    tokio::time::sleep_until(next_sync).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                () = shared.wake.notified() => {}
                _ = deadline.changed() => {}
                () = sleep => {}
            }
            continue;
        };
        if conn.as_mut().is_some_and(Connection::peer_closed) {
            *conn = None;
            down_since.get_or_insert_with(Instant::now);
            tracing::info!(output = %shared.name, "the receiver closed the connection; reconnecting");
        }
        if conn.is_none() {
            match until_deadline(target.connect(timing.connect_timeout), &mut deadline).await {
                None => {
                    shared.settle(source, &mut batch, 0);
                    return;
                }
                Some(Ok(c)) => *conn = Some(c),
                Some(Err(e)) => {
                    shared.settle(source, &mut batch, 0);
                    failed(
                        shared,
                        "cannot reach the syslog receiver",
                        &e,
                        &mut down_since,
                    );
                    if shutting_down {
                        return; // no waiting for a receiver that is down: spool it
                    }
                    if until_deadline(tokio::time::sleep(backoff), &mut deadline)
                        .await
                        .is_none()
                    {
                        return;
                    }
                    backoff = (backoff * 2).min(timing.reconnect_max);
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let Some(sent) = until_deadline(c.send_batch(&batch, &mut scratch), &mut deadline).await
        else {
            // Cut by the deadline: nothing of this batch counts as sent (a stream receiver
            // may have got part of it; it is sent again at the next start).
            shared.settle(source, &mut batch, 0);
            return;
        };
        let ok = sent.count - sent.too_big;
        shared.settle(source, &mut batch, sent.count);
        shared.sent.fetch_add(ok as u64, Ordering::Relaxed);
        if sent.too_big > 0 {
            shared.record_drop(
                sent.too_big as u64,
                "the socket refused messages as too large (EMSGSIZE); lower max_message_bytes",
            );
        }
        // Reset only after a batch went out whole: a UDP send succeeds just before the
        // error the receiver's ICMP causes, and resetting then would retry (and lose a
        // datagram) every `reconnect_min` for as long as the receiver is down.
        if ok > 0 && sent.error.is_none() {
            backoff = timing.reconnect_min;
            if let Some(since) = down_since.take() {
                let (queued, spooled) = shared.backlog();
                tracing::info!(
                    output = %shared.name,
                    down_for = ?since.elapsed(),
                    queued,
                    spooled,
                    "syslog receiver reachable again; delivering the backlog in order"
                );
                down_log.reset();
            }
        }
        if let Some(e) = sent.error {
            *conn = None;
            failed(
                shared,
                "sending to the syslog receiver failed",
                &e,
                &mut down_since,
            );
            if shutting_down {
                return;
            }
            if until_deadline(tokio::time::sleep(backoff), &mut deadline)
                .await
                .is_none()
            {
                return;
            }
            backoff = (backoff * 2).min(timing.reconnect_max);
        }
    }
}
