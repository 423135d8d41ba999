//! The daemon's configuration: a TOML file (`--config`, documented with every default in
//! packaging/monitor.toml) overlaid by command-line flags, which win.
//!
//! Unknown keys are errors (`deny_unknown_fields`): a misspelt option must not be silently
//! ignored on a security tool.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use crate::cli::{ProbeArg, RunArgs, SyslogFormatArg};
use crate::detect::BeaconConfig;
use crate::output::{Facility, OutputConfig, OutputSpec, SyslogFormat, TlsSettings};
use crate::process::ProcessTableConfig;
use crate::rules::RuleSet;

/// The config file's shape. Every field is optional; defaults live in `RunConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    pub rules: Vec<PathBuf>,
    /// Load the built-in rule set as well as `rules`. Unset: only when no rule paths are
    /// given (so `rules = [...]` alone replaces the built-in set, as before).
    pub builtin_rules: Option<bool>,
    pub probe: Option<ProbeArg>,
    pub events: Option<bool>,
    pub outputs: Vec<String>,
    pub syslog_format: Option<SyslogFormatArg>,
    pub metrics_interval_secs: Option<u64>,
    pub metrics_listen: Option<SocketAddr>,
    pub ringbuf_bytes: Option<u32>,
    pub udp_suppress_ms: Option<u64>,
    /// Capture DNS answers (default true).
    pub dns: Option<bool>,
    /// Capture the connection lifecycle (default: as `events`; `--lifecycle`).
    pub lifecycle: Option<bool>,
    /// Seconds without a datagram after which a UDP flow is summarised (`--lifecycle`).
    pub udp_flow_idle_secs: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub user: Option<String>,
    pub shutdown_deadline_secs: Option<u64>,
    pub output: OutputSection,
    pub process: ProcessTableConfig,
    pub beacon: BeaconConfig,
}

/// The `[output]` table: syslog delivery settings. Each key left out keeps
/// `OutputConfig::default()` (documented there and in packaging/monitor.toml).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    pub facility: Option<String>,
    pub app_name: Option<String>,
    pub hostname: Option<String>,
    pub sd_id: Option<String>,
    pub local_socket: Option<PathBuf>,
    pub max_message_bytes: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: Option<u64>,
    pub spool_fsync_ms: Option<u64>,
    pub reconnect_min_ms: Option<u64>,
    pub reconnect_max_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    /// `[output.tls]`: for `syslog+tls://` and `syslog+relp+tls://`.
    pub tls: TlsSection,
}

/// The `[output.tls]` table. Relative paths are taken from the working directory.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// PEM CA certificate(s) for the collector's certificate; default the system store.
    pub ca: Option<PathBuf>,
    /// PEM client certificate (chain) and private key, both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name the collector's certificate must carry; default the output's HOST.
    pub server_name: Option<String>,
}

impl OutputSection {
    fn apply(self, mut c: OutputConfig) -> anyhow::Result<OutputConfig> {
        if let Some(f) = self.facility {
            c.facility = f
                .parse::<Facility>()
                .map_err(|e| anyhow!("[output] facility {f:?}: {e}"))?;
        }
        if let Some(v) = self.app_name {
            c.app_name = v;
        }
        if self.hostname.is_some() {
            c.hostname = self.hostname;
        }
        if let Some(v) = self.sd_id {
            c.sd_id = v;
        }
        if let Some(v) = self.local_socket {
            c.local_socket = v;
        }
        if let Some(v) = self.max_message_bytes {
            c.max_message_bytes = v;
        }
        if let Some(v) = self.queue_capacity {
            c.queue_capacity = v;
        }
        if let Some(v) = self.spool_dir {
            c.spool_dir = v;
        }
        if let Some(v) = self.spool_max_bytes {
            c.spool_max_bytes = v;
        }
        if let Some(v) = self.spool_fsync_ms {
            c.spool_fsync_interval = Duration::from_millis(v);
        }
        if let Some(v) = self.reconnect_min_ms {
            c.reconnect_min = Duration::from_millis(v);
        }
        if let Some(v) = self.reconnect_max_ms {
            c.reconnect_max = Duration::from_millis(v);
        }
        if let Some(v) = self.connect_timeout_ms {
            c.connect_timeout = Duration::from_millis(v);
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("[output.tls]: cert and key go together; give both or neither");
        }
        c.tls = TlsSettings {
            ca_file: self.tls.ca,
            cert_file: self.tls.cert,
            key_file: self.tls.key,
            server_name: self.tls.server_name,
        };
        Ok(c)
    }
}

/// Everything `monitor run` needs, after merging file and flags.
#[derive(Debug)]
pub struct RunConfig {
    pub rules: Vec<PathBuf>,
    /// The built-in set is loaded too (always true when `rules` is empty and the config
    /// does not say `builtin_rules = false`).
    pub builtin_rules: bool,
    pub probe: ProbeArg,
    pub events: bool,
    pub outputs: Vec<OutputSpec>,
    pub output: OutputConfig,
    pub metrics_interval: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub ringbuf_bytes: u32,
    pub udp_suppress: Duration,
    pub dns: bool,
    pub lifecycle: bool,
    pub udp_flow_idle: Duration,
    pub poll_interval: Duration,
    pub user: Option<String>,
    pub shutdown_deadline: Duration,
    pub process: ProcessTableConfig,
    pub beacon: BeaconConfig,
}

/// Defaults, with the reason for each.
pub mod defaults {
    /// 4 MiB holds ~35,000 connect events (or ~4,800 exec records): over a second of a
    /// connect storm at one core's maximum rate, against a 10 ms poll, and no loss in the
    /// benchmark's loss-threshold trials. The kernel maps it twice into the daemon (16 MiB of
    /// RSS at 8 MiB), so it is the largest fixed part of the daemon's memory.
    pub const RINGBUF_BYTES: u32 = 4 << 20;
    /// One event per (process, destination, port) per second is enough for every rule and
    /// for the beacon detector (which coalesces sends closer than 1 s anyway).
    pub const UDP_SUPPRESS_MS: u64 = 1000;
    /// A UDP flow silent this long is summarised (its socket still open): long enough that
    /// a request and its answers, or a stream with pauses, stay one flow (conntrack keeps an
    /// answered UDP flow 120 s, NetFlow's inactive timeout is 15 s), short enough that a
    /// socket kept open for hours reports its traffic within a minute of a pause.
    pub const UDP_FLOW_IDLE_SECS: u64 = 60;
    /// Wake-ups are batched in the kernel; user space also polls this often so a quiet trickle
    /// of events is never older than this when it is processed.
    pub const POLL_INTERVAL_MS: u64 = 10;
    /// A metric record a minute is cheap in a SIEM and fine-grained enough to see loss.
    pub const METRICS_INTERVAL_SECS: u64 = 60;
    /// systemd's default stop timeout is 90 s; stay well inside it.
    pub const SHUTDOWN_DEADLINE_SECS: u64 = 10;
}

impl RunConfig {
    pub fn from_args(args: &RunArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_config_file(path)?,
            None => ConfigFile::default(),
        };
        Self::merge(file, args)
    }

    fn merge(file: ConfigFile, args: &RunArgs) -> anyhow::Result<Self> {
        let output_specs = if !args.outputs.is_empty() {
            args.outputs.clone()
        } else if !file.outputs.is_empty() {
            file.outputs.clone()
        } else {
            vec!["stdout".to_string()]
        };
        let outputs = output_specs
            .iter()
            .map(|s| {
                s.parse::<OutputSpec>()
                    .map_err(|e| anyhow!("output {s:?}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut output = file.output.apply(OutputConfig::default())?;
        if let Some(f) = args.syslog_format.or(file.syslog_format) {
            output.syslog_format = Some(match f {
                SyslogFormatArg::Rfc5424 => SyslogFormat::Rfc5424,
                SyslogFormatArg::Rfc3164 => SyslogFormat::Rfc3164,
            });
        }
        let ringbuf_bytes = args
            .ringbuf_bytes
            .or(file.ringbuf_bytes)
            .unwrap_or(defaults::RINGBUF_BYTES);
        if !ringbuf_bytes.is_power_of_two() || ringbuf_bytes < 4096 {
            bail!("ring buffer size {ringbuf_bytes} must be a power of two of at least 4096 bytes");
        }
        if let Some(addr) = args.metrics_listen.or(file.metrics_listen)
            && !addr.ip().is_loopback()
        {
            bail!(
                "--metrics-listen {addr}: the metrics endpoint has no authentication, so it only listens on a loopback address"
            );
        }
        let rules = if args.rules.rules.is_empty() {
            file.rules
        } else {
            args.rules.rules.clone()
        };
        Ok(RunConfig {
            builtin_rules: builtin_rules(file.builtin_rules, &rules),
            rules,
            probe: args.probe.or(file.probe).unwrap_or(ProbeArg::Auto),
            events: args.events || file.events.unwrap_or(false),
            outputs,
            output,
            metrics_interval: Duration::from_secs(
                args.metrics_interval
                    .or(file.metrics_interval_secs)
                    .unwrap_or(defaults::METRICS_INTERVAL_SECS),
            ),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            ringbuf_bytes,
            udp_suppress: Duration::from_millis(
                args.udp_suppress_ms
                    .or(file.udp_suppress_ms)
                    .unwrap_or(defaults::UDP_SUPPRESS_MS),
            ),
            dns: !args.no_dns && file.dns.unwrap_or(true),
            // `--events` asks for every record, lifecycle ones included (the interface's
            // promise); alone, `--lifecycle` adds them for rules and detectors. An explicit
            // `lifecycle = false` in the file keeps them off with events.
            lifecycle: args.lifecycle
                || file
                    .lifecycle
                    .unwrap_or(args.events || file.events.unwrap_or(false)),
            udp_flow_idle: Duration::from_secs(
                file.udp_flow_idle_secs
                    .unwrap_or(defaults::UDP_FLOW_IDLE_SECS)
                    .max(1),
            ),
            poll_interval: Duration::from_millis(
                file.poll_interval_ms
                    .unwrap_or(defaults::POLL_INTERVAL_MS)
                    .max(1),
            ),
            user: args.user.clone().or(file.user),
            shutdown_deadline: Duration::from_secs(
                file.shutdown_deadline_secs
                    .unwrap_or(defaults::SHUTDOWN_DEADLINE_SECS),
            ),
            process: file.process,
            beacon: file.beacon,
        })
    }

    /// Loads the configured rules: the rule paths, and the built-in set unless the config
    /// turns it off.
    pub fn load_rules(&self) -> anyhow::Result<RuleSet> {
        load_rules_from(&self.rules, self.builtin_rules)
    }
}

/// Whether the built-in set is loaded beside `paths`: as `builtin_rules` says, and when it
/// is unset only if there are no paths (a `rules` list alone replaces the built-in set).
pub fn builtin_rules(setting: Option<bool>, paths: &[PathBuf]) -> bool {
    setting.unwrap_or(paths.is_empty())
}

/// The rules of `paths`, plus the built-in set when `builtin`, with notices and warnings
/// logged. A free function so a reload can run it on another thread. Any error in any file
/// fails the whole load (naming file and line), so a reload keeps the previous set.
pub fn load_rules_from(paths: &[PathBuf], builtin: bool) -> anyhow::Result<RuleSet> {
    if paths.is_empty() && builtin {
        return RuleSet::builtin().map_err(|e| anyhow!("built-in rules: {e}"));
    }
    if paths.is_empty() {
        tracing::warn!(
            "builtin_rules = false and no rule paths: no Sigma rules are active (the beacon \
             detector still runs)"
        );
    }
    let report = if builtin {
        RuleSet::load_with_builtin(paths)
    } else {
        RuleSet::load(paths)
    }
    .map_err(|e| anyhow!("{e}"))?;
    for n in &report.notices {
        tracing::info!("{n}");
    }
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    Ok(report.rules)
}

pub fn read_config_file(path: &Path) -> anyhow::Result<ConfigFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    // toml's error Display includes the line and column and a caret under the culprit.
    toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// This host's name, for `host.hostname`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    crate::record::text_from_bytes(&buf[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["monitor", "run"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).cmd {
            crate::cli::Command::Run(a) => a,
            _ => unreachable!("parsed a run command"),
        }
    }

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let file: ConfigFile = toml::from_str(
            "probe = \"tracepoint\"\nevents = true\nudp_suppress_ms = 250\noutputs = [\"stdout\"]\n",
        )
        .unwrap();
        let cfg = RunConfig::merge(file, &args(&["--probe", "kprobe"])).unwrap();
        assert_eq!(cfg.probe, ProbeArg::Kprobe);
        assert!(cfg.events);
        assert_eq!(cfg.udp_suppress, Duration::from_millis(250));
        assert_eq!(cfg.ringbuf_bytes, defaults::RINGBUF_BYTES);
    }

    #[test]
    fn lifecycle_follows_events_unless_the_file_says_otherwise() {
        let merge = |file: &str, flags: &[&str]| {
            RunConfig::merge(toml::from_str(file).unwrap(), &args(flags)).unwrap()
        };
        assert!(!merge("", &[]).lifecycle);
        assert!(merge("", &["--events"]).lifecycle);
        assert!(merge("events = true\n", &[]).lifecycle);
        assert!(merge("", &["--lifecycle"]).lifecycle);
        assert!(!merge("", &["--lifecycle"]).events);
        assert!(!merge("lifecycle = false\n", &["--events"]).lifecycle);
        assert!(merge("lifecycle = false\n", &["--lifecycle"]).lifecycle);
    }

    #[test]
    fn the_shipped_config_file_parses_and_matches_the_defaults() {
        let text = include_str!("../../packaging/monitor.toml");
        let file: ConfigFile = toml::from_str(text).expect("packaging/monitor.toml parses");
        let mut cfg = RunConfig::merge(file, &args(&[])).unwrap();
        let defaults = RunConfig::merge(ConfigFile::default(), &args(&[])).unwrap();
        // The package settings, marked as such in the file: the operator's rule directory
        // beside the built-in rules, the local syslog socket, the spool in the unit's
        // state directory.
        assert_eq!(cfg.rules, vec![PathBuf::from("/etc/monitor/rules.d")]);
        assert!(cfg.builtin_rules);
        assert!(matches!(cfg.outputs.as_slice(), [OutputSpec::Syslog]));
        assert_eq!(cfg.output.spool_dir, PathBuf::from("/var/lib/monitor"));
        cfg.output.spool_dir = defaults.output.spool_dir.clone();
        // Everything else documents the defaults.
        assert_eq!(cfg.ringbuf_bytes, defaults.ringbuf_bytes);
        assert_eq!(cfg.udp_suppress, defaults.udp_suppress);
        assert_eq!(cfg.poll_interval, defaults.poll_interval);
        assert_eq!(cfg.metrics_interval, defaults.metrics_interval);
        assert_eq!(
            cfg.output, defaults.output,
            "[output] documents the defaults"
        );
        assert_eq!(
            cfg.process, defaults.process,
            "[process] documents the defaults"
        );
        assert_eq!(
            cfg.beacon, defaults.beacon,
            "[beacon] documents the defaults"
        );
    }

    #[test]
    fn builtin_rules_default_to_on_only_without_rule_paths() {
        let merge = |text: &str, flags: &[&str]| {
            let file: ConfigFile = toml::from_str(text).unwrap();
            RunConfig::merge(file, &args(flags)).unwrap()
        };
        let cfg = merge("", &[]);
        assert!(cfg.rules.is_empty() && cfg.builtin_rules);
        // A rules list alone replaces the built-in set (as before `builtin_rules`).
        assert!(!merge("rules = [\"/r\"]\n", &[]).builtin_rules);
        assert!(!merge("", &["--rules", "/r"]).builtin_rules);
        // Said explicitly, it decides, also for `--rules` given on the command line.
        let cfg = merge(
            "rules = [\"/r\"]\nbuiltin_rules = true\n",
            &["--rules", "/x"],
        );
        assert_eq!(cfg.rules, vec![PathBuf::from("/x")]);
        assert!(cfg.builtin_rules);
        assert!(!merge("builtin_rules = false\n", &[]).builtin_rules);
    }

    /// The package's layout: an operator rule directory beside the built-in set. An empty
    /// directory gives the built-in rules; an operator rule adds to them; a broken one
    /// fails the whole load naming its file and line (so a reload keeps the old set).
    #[test]
    fn operator_rules_load_beside_the_builtin_set() {
        let builtin = RuleSet::builtin().unwrap().len();
        let dir = std::env::temp_dir().join(format!("monitor-rules-d-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("README"), "not a rule file\n").unwrap();
        let paths = vec![dir.clone()];
        assert_eq!(load_rules_from(&paths, true).unwrap().len(), builtin);
        assert_eq!(load_rules_from(&paths, false).unwrap().len(), 0);
        std::fs::write(
            dir.join("local.yml"),
            "title: Local test rule\nid: 0b6d1c8e-3f0a-4c55-9d8e-7a1f2e3d4c5b\n\
             logsource:\n    category: network_connection\n    product: linux\n\
             detection:\n    sel:\n        DestinationPort: 7\n    condition: sel\n\
             level: low\n",
        )
        .unwrap();
        assert_eq!(load_rules_from(&paths, true).unwrap().len(), builtin + 1);
        assert_eq!(load_rules_from(&paths, false).unwrap().len(), 1);
        std::fs::write(
            dir.join("broken.yml"),
            "title: Broken\nlogsource:\n    category: network_connection\n\
             detection:\n    sel:\n        DestinationPort|bogus: 7\n    condition: sel\n",
        )
        .unwrap();
        let err = load_rules_from(&paths, true).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(err.contains("broken.yml:6"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = toml::from_str::<ConfigFile>("prob = \"auto\"\n").unwrap_err();
        assert!(err.to_string().contains("prob"), "{err}");
        let err = RunConfig::merge(ConfigFile::default(), &args(&["--ringbuf-bytes", "5000"]))
            .unwrap_err();
        assert!(err.to_string().contains("power of two"), "{err}");
        let err = RunConfig::merge(
            ConfigFile::default(),
            &args(&["--metrics-listen", "0.0.0.0:9100"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
