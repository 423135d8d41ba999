//! `monitor run`: the live daemon. Wires capture -> process enrichment -> pipeline -> outputs
//! and handles the signals operators use: SIGINT/SIGTERM stop (programs detached, queues
//! flushed or spooled), SIGHUP reloads the rules and reopens output files, SIGUSR1 writes a
//! metric record now.
//!
//! A reload compiles the new rules on a blocking-pool thread while this loop keeps draining
//! the ring buffer and evaluating with the old set: a large or hostile rule file can cost
//! the reload its compile-time budget, never lost events. The new set is swapped in between
//! two records when it is ready; a set that fails (or exceeds a budget, or panics) is
//! rejected, logged and counted (`rules_reload_failed`), and the old set stays.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use crate::capture::{Capture, CaptureConfig, RawEvent};
use crate::cli::{ProbeArg, RunArgs};
use crate::config::{RunConfig, load_rules_from};
use crate::metrics::{LossReporter, MetricsSnapshot, PrometheusServer, SharedMetrics};
use crate::output::{OutputHub, OutputRecord};
use crate::pipeline::Pipeline;
use crate::privileges;
use crate::process::ProcessTable;
use crate::record::Timestamp;
use crate::rules::RuleSet;

pub enum RunFailure {
    /// Bad usage, invalid rules or config: exit 2.
    Invalid(anyhow::Error),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for RunFailure {
    fn from(e: anyhow::Error) -> Self {
        RunFailure::Other(e)
    }
}

/// Daemon logs go to stderr (journald picks them up under systemd), never to the alert
/// outputs. `RUST_LOG` sets the level (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

pub fn run(args: RunArgs) -> Result<(), RunFailure> {
    // Fail at once, before anything else, when the programs cannot possibly load.
    crate::capture::check_capabilities().map_err(|e| RunFailure::Other(anyhow!(e)))?;
    let cfg = RunConfig::from_args(&args).map_err(RunFailure::Invalid)?;
    let rules = Arc::new(cfg.load_rules().map_err(RunFailure::Invalid)?);
    // One thread: capabilities are per thread in Linux, so the drop after attach must not
    // leave a worker thread holding them. Threads the runtime starts later (blocking pool)
    // inherit the reduced sets. The kernel does the capture work in the connecting
    // processes' context; user space is not CPU bound.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Rule reloads compile on the blocking pool: give them the main thread's stack, so
        // a set that loads at start-up also compiles in a reload.
        .thread_stack_size(8 << 20)
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(cfg, rules))
}

async fn run_async(cfg: RunConfig, rules: Arc<RuleSet>) -> Result<(), RunFailure> {
    let capture_cfg = CaptureConfig {
        probe: match cfg.probe {
            ProbeArg::Auto => crate::capture::ProbeChoice::Auto,
            ProbeArg::Fentry => crate::capture::ProbeChoice::Fentry,
            ProbeArg::Kprobe => crate::capture::ProbeChoice::Kprobe,
            ProbeArg::Tracepoint => crate::capture::ProbeChoice::Tracepoint,
        },
        ringbuf_bytes: cfg.ringbuf_bytes,
        udp_suppress: cfg.udp_suppress,
        poll_interval: cfg.poll_interval,
        exclude_tgid: std::process::id(),
        dns: cfg.dns,
        lifecycle: cfg.lifecycle,
        udp_flow_idle: cfg.udp_flow_idle,
    };
    // Attach first, so that nothing starting from here on is missed: processes already running
    // are learned from /proc below, and new ones arrive as exec events queued in the ring
    // buffer meanwhile.
    let mut capture = Capture::start(&capture_cfg).context("starting capture")?;
    // Capture logs each hook's backend, and why better ones were skipped, as it attaches.
    // Programs are attached and the ring buffer is mapped: shed what is no longer needed,
    // before any output is opened or any other thread exists.
    privileges::drop_after_attach(cfg.user.as_deref()).context("dropping privileges")?;

    let host: Arc<str> = crate::config::hostname().into();
    let mut table = ProcessTable::new(cfg.process.clone());
    let scanned = table
        .scan_proc()
        .context("reading /proc for the processes already running")?;
    tracing::info!(processes = scanned, "process table primed from /proc");

    let hub = OutputHub::open(&cfg.outputs, &cfg.output)
        .await
        .map_err(|e| RunFailure::Invalid(anyhow!("opening outputs: {e}")))?;

    let metrics = SharedMetrics::default();
    let _prometheus = match cfg.metrics_listen {
        Some(addr) => Some(
            PrometheusServer::start(addr, metrics.clone())
                .await
                .map_err(|e| RunFailure::Invalid(anyhow!("--metrics-listen {addr}: {e}")))?,
        ),
        None => None,
    };

    let mut pipeline = Pipeline::new(rules, cfg.beacon.clone(), cfg.events);
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
    let mut clock = tokio::time::interval(Duration::from_secs(1));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let metrics_every = (cfg.metrics_interval > Duration::ZERO).then_some(cfg.metrics_interval);
    let mut next_metrics = metrics_every.map(|d| Instant::now() + d);

    let mut reload: Option<JoinHandle<anyhow::Result<RuleSet>>> = None;
    // A SIGHUP while a reload compiles: the files may have changed after it read them, so
    // one more reload follows it.
    let mut reload_again = false;
    let mut reloads = ReloadCounters::default();

    let mut batch: Vec<RawEvent> = Vec::with_capacity(4096);
    let mut pending: Vec<OutputRecord> = Vec::with_capacity(64);
    let mut loss = LossReporter::default();
    let mut dns_stats = crate::dns::DnsStats::default();
    tracing::info!(rules = pipeline_rule_count(&cfg), "monitor running");
    loop {
        tokio::select! {
            r = capture.read_batch(&mut batch) => {
                r.context("reading the ring buffer")?;
                table.apply_hashes();
                for ev in batch.drain(..) {
                    match ev {
                        RawEvent::Connect(c) => {
                            let ts = capture.timestamp_of(c.ktime_ns);
                            let rec = table.enrich(&c, ts, &host);
                            pipeline.process(&rec, &mut |e| pending.push(e.to_output()));
                        }
                        RawEvent::Exec(e) => table.on_exec(&e),
                        RawEvent::Exit(e) => table.on_exit(&e),
                        RawEvent::Fork(f) => table.on_fork(&f),
                        RawEvent::Dns(d) => {
                            let ts = capture.timestamp_of(d.ktime_ns);
                            if let Some(rec) =
                                crate::dns::record_of(&d, ts, &mut table, &host, &mut dns_stats)
                            {
                                pipeline.process(&rec, &mut |e| pending.push(e.to_output()));
                            }
                        }
                        RawEvent::Life(l) => {
                            let ts = capture.timestamp_of(l.ktime_ns);
                            let rec = crate::lifecycle::record_of(&l, ts, &mut table, &host);
                            pipeline.process(&rec, &mut |e| pending.push(e.to_output()));
                        }
                    }
                }
                for r in pending.drain(..) {
                    hub.send(r).await;
                }
            }
            _ = clock.tick() => {
                pipeline.advance(Timestamp::now(), &mut |e| pending.push(e.to_output()));
                log_clock_steps(&mut pipeline);
                for r in pending.drain(..) {
                    hub.send(r).await;
                }
                let mut snap = MetricsSnapshot::collect(&capture, &table, &pipeline, &hub);
                snap.dns = dns_stats;
                let snap = reloads.apply(snap);
                if let Some(rec) = loss.check(&snap, &host, Timestamp::now()) {
                    tracing::warn!(
                        lost = %rec["monitor"]["lost"],
                        total = snap.ringbuf_lost,
                        "ring buffer full: events lost in the kernel (raise --ringbuf-bytes)"
                    );
                    hub.send(OutputRecord::from_metric(rec)).await;
                }
                if let Some(d) = snap.output_dropped_new(&metrics) {
                    tracing::error!(dropped = d, "alerts dropped: spool limit reached");
                }
                metrics.update(snap);
                if let (Some(every), Some(at)) = (metrics_every, next_metrics)
                    && Instant::now() >= at
                {
                    next_metrics = Some(at + every);
                    hub.send(OutputRecord::from_metric(metrics.record(&host))).await;
                }
            }
            _ = sigusr1.recv() => {
                let mut snap = MetricsSnapshot::collect(&capture, &table, &pipeline, &hub);
                snap.dns = dns_stats;
                metrics.update(reloads.apply(snap));
                hub.send(OutputRecord::from_metric(metrics.record(&host))).await;
            }
            _ = sighup.recv() => {
                hub.reopen_files();
                if reload.is_some() {
                    reload_again = true;
                    tracing::info!("SIGHUP: a reload is still compiling; another follows it");
                } else {
                    reload = Some(start_reload(&cfg));
                }
            }
            done = async { reload.as_mut().expect("guarded by the branch condition").await },
                if reload.is_some() =>
            {
                reload = None;
                match done {
                    Ok(Ok(new)) => {
                        reloads.reloaded += 1;
                        tracing::info!(rules = new.len(), "SIGHUP: rules reloaded");
                        pipeline.set_rules(Arc::new(new));
                    }
                    Ok(Err(e)) => {
                        reloads.failed += 1;
                        tracing::error!(
                            error = %format!("{e:#}"),
                            "SIGHUP: new rules rejected; the previous set stays active"
                        );
                    }
                    // The compiling thread panicked: a bug, but the daemon goes on.
                    Err(e) => {
                        reloads.failed += 1;
                        tracing::error!(
                            error = %e,
                            "SIGHUP: compiling the new rules failed; new rules rejected; the \
                             previous set stays active"
                        );
                    }
                }
                if std::mem::take(&mut reload_again) {
                    reload = Some(start_reload(&cfg));
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    tracing::info!("stopping: detaching programs");
    // Detach first so the kernel stops producing; then close windows and flush.
    drop(capture);
    pipeline.finish(&mut |e| pending.push(e.to_output()));
    for r in pending.drain(..) {
        hub.send(r).await;
    }
    hub.shutdown(cfg.shutdown_deadline)
        .await
        .map_err(|e| anyhow!("flushing outputs: {e}"))?;
    Ok(())
}

/// Live, a time more than `MAX_CLOCK_STEP` from the event clock comes from a wall-clock
/// step (kernel times are monotonic, converted with the current wall-clock offset).
fn log_clock_steps(pipeline: &mut Pipeline) {
    for j in pipeline.take_clock_jumps() {
        tracing::warn!(
            from = %j.from.to_rfc3339(),
            to = %j.to.to_rfc3339(),
            "wall clock stepped by more than 1 h and stayed: the event clock follows"
        );
    }
    let outliers = pipeline.take_outliers();
    if let Some(first) = outliers.first() {
        tracing::warn!(
            records = outliers.len(),
            time = %first.time.to_rfc3339(),
            "wall clock stepped by more than 1 h and back: records stamped in between left out of detection"
        );
    }
}

/// Rule reloads since start, for the metric records.
#[derive(Default)]
struct ReloadCounters {
    reloaded: u64,
    failed: u64,
}

impl ReloadCounters {
    fn apply(&self, mut s: MetricsSnapshot) -> MetricsSnapshot {
        s.rules_reloaded = self.reloaded;
        s.rules_reload_failed = self.failed;
        s
    }
}

/// Compiles the configured rules on a blocking-pool thread.
fn start_reload(cfg: &RunConfig) -> JoinHandle<anyhow::Result<RuleSet>> {
    tracing::info!("SIGHUP: compiling the new rules; the current set stays active meanwhile");
    let (paths, builtin) = (cfg.rules.clone(), cfg.builtin_rules);
    tokio::task::spawn_blocking(move || load_rules_from(&paths, builtin))
}

fn pipeline_rule_count(cfg: &RunConfig) -> String {
    let paths = cfg.rules.iter().map(|p| p.display().to_string());
    let builtin = cfg.builtin_rules.then(|| "built-in".to_string());
    builtin
        .into_iter()
        .chain(paths)
        .collect::<Vec<_>>()
        .join(",")
}
