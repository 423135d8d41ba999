//! `monitor replay`: the input opened (mapped when it is a regular file), its records
//! through the pipeline, alerts (and with `--events` the records) to the outputs, in
//! batches when the input never blocks.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use super::ReplaySource;
use super::mapped::MappedFile;
use crate::cli::{ReplayArgs, RulesArgs};
use crate::daemon::RunFailure;
use crate::detect::BeaconConfig;
use crate::output::{OutputConfig, OutputHub, OutputRecord, OutputSpec, SyslogFormat};
use crate::pipeline::{Pipeline, PipelineCounters};
use crate::rules::RuleSet;

/// What a replay takes from `--config` (the live run's config file) and `--rules`.
pub struct Setup {
    /// The rules to load: `--rules`, else the config file's, else none (the built-in set).
    pub rules: RulesArgs,
    /// Whether the built-in set loads beside `rules` (the config's `builtin_rules`, as in
    /// `run`: the package's config loads it plus /etc/monitor/rules.d; unset, rule paths
    /// replace the built-in set).
    pub builtin: bool,
    pub beacon: BeaconConfig,
}

impl Setup {
    /// The live run's config: its rules and beacon settings, checked as `run` checks them.
    pub fn from_args(args: &ReplayArgs) -> anyhow::Result<Setup> {
        let (config_rules, builtin_rules, beacon): (Vec<PathBuf>, Option<bool>, BeaconConfig) =
            match &args.config {
                Some(path) => {
                    let file = crate::config::read_config_file(path)?;
                    file.beacon
                        .validate()
                        .map_err(|e| anyhow!("{}: [beacon] {e}", path.display()))?;
                    (file.rules, file.builtin_rules, file.beacon)
                }
                None => (Vec::new(), None, BeaconConfig::default()),
            };
        let rules = if args.rules.rules.is_empty() {
            RulesArgs {
                rules: config_rules,
            }
        } else {
            args.rules.clone()
        };
        let builtin = crate::config::builtin_rules(builtin_rules, &rules.rules);
        Ok(Setup {
            rules,
            builtin,
            beacon,
        })
    }
}

/// Records a replay of a regular file hands to the outputs at once.
const REPLAY_FILE_BATCH: usize = 128;

/// Replays `args.input` through `rules` and the beacon detector into `specs`.
pub fn run(
    args: &ReplayArgs,
    rules: Arc<RuleSet>,
    beacon: BeaconConfig,
    specs: &[OutputSpec],
    syslog_format: Option<SyslogFormat>,
) -> Result<(), RunFailure> {
    // Records waiting before they are handed to the outputs. A regular file is read without
    // blocking, so its records go out in batches, one writer wake-up per batch instead of
    // per record (a third of replay's time went to those wake-ups); from a pipe each goes
    // out as soon as it is found, since the next read may wait for a long time.
    let (reader, name, batch): (Box<dyn BufRead>, String, usize) = if args.input == "-" {
        (Box::new(std::io::stdin().lock()), "<stdin>".to_string(), 1)
    } else {
        let f = std::fs::File::open(&args.input)
            .with_context(|| format!("opening {}", args.input))
            .map_err(RunFailure::Invalid)?;
        match MappedFile::new(f) {
            Ok(mapped) => (Box::new(mapped), args.input.clone(), REPLAY_FILE_BATCH),
            // A FIFO or device given as FILE: read it the ordinary way.
            Err(f) => (
                Box::new(std::io::BufReader::with_capacity(1 << 16, f)),
                args.input.clone(),
                1,
            ),
        }
    };
    let defaults = OutputConfig::default();
    let cfg = OutputConfig {
        syslog_format,
        // A batch takes one slot of a writer's queue: the same bound on records held.
        line_queue_capacity: (defaults.line_queue_capacity / batch).max(1),
        ..defaults
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let hub = OutputHub::open(specs, &cfg)
            .await
            .map_err(|e| RunFailure::Invalid(anyhow!("opening outputs: {e}")))?;
        let mut source = ReplaySource::new(reader, name.clone());
        let mut pipeline = Pipeline::new(rules, beacon, args.events);
        let mut pending: Vec<OutputRecord> = Vec::new();
        let mut failure = None;
        let mut time_report = TimeReport::default();
        let mut first = true;
        loop {
            match source.next_record() {
                Ok(Some(rec)) => {
                    if first {
                        // Deterministic event.id: the same input gives the same ids.
                        first = false;
                        let mut json = Vec::new();
                        rec.write_json(&mut json);
                        crate::output::event_id::start_deterministic(&json);
                    }
                    pipeline
                        .process_tagged(&rec, source.line(), &mut |e| pending.push(e.to_output()));
                    time_report.collect(&name, &mut pipeline);
                }
                Ok(None) => break,
                Err(e) => {
                    // What was read before the bad line is still delivered, whole.
                    failure = Some(RunFailure::Invalid(anyhow!(e)));
                    break;
                }
            }
            if pending.len() >= batch {
                hub.send_all(std::mem::take(&mut pending)).await;
            }
        }
        pipeline.finish(&mut |e| pending.push(e.to_output()));
        time_report.collect(&name, &mut pipeline);
        time_report.summary(&name, pipeline.counters());
        hub.send_all(pending).await;
        let stats = hub
            .close(std::time::Duration::from_secs(10))
            .await
            .map_err(|e| RunFailure::Other(anyhow!("delivering outputs: {e}")))?;
        // A replay whose output is incomplete must not look like a clean one.
        let lost = stats.dropped();
        if lost > 0 {
            let per_output: Vec<String> = stats
                .outputs
                .iter()
                .filter(|s| s.dropped > 0)
                .map(|s| match &s.last_error {
                    Some(e) => format!("{}: {} lost ({e})", s.output, s.dropped),
                    None => format!("{}: {} lost", s.output, s.dropped),
                })
                .collect();
            if let Some(RunFailure::Invalid(e) | RunFailure::Other(e)) = &failure {
                eprintln!("monitor: error: {e:#}");
            }
            return Err(RunFailure::Other(anyhow!(
                "{lost} records could not be written ({})",
                per_output.join("; ")
            )));
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    })
}

/// Records of a replay left out of detection for their time, and clock jumps: each logged
/// with its line (the first `TimeReport::LISTED`), then counted in a summary at the end.
#[derive(Default)]
struct TimeReport {
    listed: u64,
}

impl TimeReport {
    /// Warnings listed one by one; a hostile file could hold millions.
    const LISTED: u64 = 20;

    fn collect(&mut self, input: &str, pipeline: &mut Pipeline) {
        for o in pipeline.take_outliers() {
            self.listed += 1;
            if self.listed <= Self::LISTED {
                let clock = o
                    .clock
                    .map_or_else(|| "unset".to_string(), |c| c.to_rfc3339());
                tracing::warn!(
                    "{input}: line {}: @timestamp {} is more than 1 h from the event clock ({clock}) and nothing after it agrees: record left out of detection",
                    o.tag,
                    o.time.to_rfc3339()
                );
            }
        }
        for j in pipeline.take_clock_jumps() {
            self.listed += 1;
            if self.listed <= Self::LISTED {
                tracing::warn!(
                    "{input}: line {}: event time jumps from {} to {} and the records after agree: the event clock follows",
                    j.tag,
                    j.from.to_rfc3339(),
                    j.to.to_rfc3339()
                );
            }
        }
    }

    fn summary(&self, input: &str, counters: &PipelineCounters) {
        if counters.time_outliers > 0 || counters.clock_jumps > 0 {
            tracing::warn!(
                events = counters.events,
                alerts = counters.alerts,
                time_outliers = counters.time_outliers,
                clock_jumps = counters.clock_jumps,
                "{input}: replay done; {} records left out of detection for their time, {} clock jumps followed",
                counters.time_outliers,
                counters.clock_jumps
            );
        }
    }
}
