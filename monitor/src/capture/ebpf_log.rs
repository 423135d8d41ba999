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
    aya_log_level(LevelFilter::current())
}

fn aya_log_level(filter: LevelFilter) -> u8 {
    match filter {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use log::Log as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn kernel_log_records_become_tracing_events() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            TracingLog.log(
                &log::Record::builder()
                    .level(log::Level::Warn)
                    .args(format_args!(
                        "udp_kprobe_udp_sendmsg: kernel read failed (-14)"
                    ))
                    .build(),
            );
            TracingLog.log(
                &log::Record::builder()
                    .level(log::Level::Trace)
                    .args(format_args!("filtered out"))
                    .build(),
            );
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("WARN"), "{text}");
        assert!(text.contains("monitor::ebpf"), "{text}");
        assert!(
            text.contains("udp_kprobe_udp_sendmsg: kernel read failed (-14)"),
            "{text}"
        );
        assert!(!text.contains("filtered out"), "{text}");
    }

    #[test]
    fn tracing_levels_map_to_aya_log_levels() {
        assert_eq!(aya_log_level(LevelFilter::OFF), 0);
        assert_eq!(aya_log_level(LevelFilter::ERROR), 1);
        assert_eq!(aya_log_level(LevelFilter::INFO), 3);
        assert_eq!(aya_log_level(LevelFilter::DEBUG), 4);
        assert_eq!(aya_log_level(LevelFilter::TRACE), 5);
    }
}
