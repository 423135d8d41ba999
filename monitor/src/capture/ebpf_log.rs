//! Forwards the kernel programs' aya-log records to `tracing`.

use tracing::level_filters::LevelFilter;

/// The `log::Log` aya-log writes into; each record becomes a `tracing` event with target
/// `monitor::ebpf`.
pub struct TracingLog;

impl log::Log for TracingLog {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: "monitor::ebpf", "{message}"),
            log::Level::Warn => tracing::warn!(target: "monitor::ebpf", "{message}"),
            log::Level::Info => tracing::info!(target: "monitor::ebpf", "{message}"),
            log::Level::Debug => tracing::debug!(target: "monitor::ebpf", "{message}"),
            log::Level::Trace => tracing::trace!(target: "monitor::ebpf", "{message}"),
        }
    }

    fn flush(&self) {}
}

/// aya-log's `AYA_LOG_LEVEL` for the current tracing level (1 error .. 5 trace, 0 off), so
/// disabled levels cost nothing in the kernel.
pub fn kernel_log_level() -> u8 {
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}
