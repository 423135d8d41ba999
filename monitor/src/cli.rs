//! Command line, as README.md documents it. Every `run` option can also come from
//! the config file (`--config`); a flag given on the command line wins.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "monitor",
    version,
    about = "eBPF connection monitor: outbound TCP connects and UDP sends, Sigma rules and beaconing detection, ECS JSON alerts"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

/// The clap definition of the whole command line, for the man pages and shell completions
/// the Debian package ships (monitor/examples/gen_docs.rs, run by `cargo xtask deb`).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Capture live (as root), evaluate the rules and detectors, deliver alerts.
    Run(RunArgs),
    /// Run the same rules and detectors on recorded events (JSON lines), by event time.
    Replay(ReplayArgs),
    /// Validate or list rules.
    Rules {
        #[command(subcommand)]
        cmd: RulesCommand,
    },
    /// Show why each rule matches an event or not: selections, condition, values compared.
    Explain(ExplainArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Only this rule (by id).
    #[arg(long = "rule", value_name = "ID")]
    pub rule: Option<String>,
    /// The explanation as JSON, for tools.
    #[arg(long)]
    pub json: bool,
    /// An event as `monitor run --events` writes it: FILE (line 1), FILE:LINE (1-based),
    /// or `-` for one JSON line on stdin.
    #[arg(value_name = "FILE[:LINE]", default_value = "-")]
    pub event: String,
}

#[derive(Subcommand, Debug)]
pub enum RulesCommand {
    /// Load and compile the rules; report errors (exit 2) and warnings.
    Check(RulesArgs),
    /// List the rules that would be active.
    List(RulesArgs),
    /// Replay each rule's sample events (DIR/samples/RULE.jsonl) and check that those
    /// that must match do and the near misses do not: exit 1 when one disagrees.
    Test(RulesTestArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct RulesTestArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// A rule without samples is an error, not a warning.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RulesArgs {
    /// A rule file, or a directory read recursively for *.yml / *.yaml. Repeatable. Default:
    /// the rule set built into the binary.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeArg {
    Auto,
    Fentry,
    Kprobe,
    Tracepoint,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormatArg {
    Rfc5424,
    Rfc3164,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Config file (TOML); flags override it. See packaging/monitor.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Probe backend for every hook; `auto` picks the best that loads, per hook.
    #[arg(long, value_enum)]
    pub probe: Option<ProbeArg>,
    /// Also emit every connection event, not only alerts.
    #[arg(long)]
    pub events: bool,
    /// stdout | file:PATH | syslog | syslog+udp://HOST:PORT | syslog+tcp://HOST:PORT |
    /// syslog+tls://HOST:PORT | syslog+relp://HOST:PORT | syslog+relp+tls://HOST:PORT
    /// (TLS settings: [output.tls] in --config). Repeatable.
    #[arg(long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Syslog message format (default: RFC 5424 over the network, RFC 3164 on /dev/log,
    /// which is what local syslog daemons parse there).
    #[arg(long, value_enum)]
    pub syslog_format: Option<SyslogFormatArg>,
    /// Seconds between metric records (0: only on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    pub metrics_interval: Option<u64>,
    /// Serve Prometheus text metrics on this loopback address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    #[arg(long, value_name = "BYTES")]
    pub ringbuf_bytes: Option<u32>,
    /// Repeat UDP sends to one destination within this many milliseconds are suppressed in
    /// the kernel (counted on the next event).
    #[arg(long, value_name = "MS")]
    pub udp_suppress_ms: Option<u64>,
    /// Drop to this user after the programs are attached.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Do not capture DNS answers (no `destination.domain`, no DNS query records).
    #[arg(long)]
    pub no_dns: bool,
    /// Capture the connection lifecycle: each TCP connect's outcome, closes with duration
    /// and bytes, accepts, and TCP and UDP listening sockets (README, "Lifecycle records").
    /// On with `--events` unless the config file says `lifecycle = false`.
    #[arg(long)]
    pub lifecycle: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Config file (TOML) of the live run: its `rules` (unless --rules is given) and its
    /// `[beacon]` settings and allowlist apply, so a replay raises what the run raised.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output specs, as for `run`. Repeatable; default stdout.
    #[arg(long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Syslog message format (default: RFC 5424 over the network, RFC 3164 on /dev/log).
    #[arg(long, value_enum)]
    pub syslog_format: Option<SyslogFormatArg>,
    /// Also write every replayed event.
    #[arg(long)]
    pub events: bool,
    /// JSON lines file, or `-` for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub input: String,
}
