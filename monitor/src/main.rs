//! `monitor`: entry point. Parses the command line, runs the command, and maps failures to
//! the documented exit codes: 0 success, 2 bad usage / invalid rules / invalid input,
//! 1 anything else. Every error names what was wrong and where.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Parser as _;

use monitor::cli::{
    Cli, Command, ExplainArgs, ReplayArgs, RulesArgs, RulesCommand, SyslogFormatArg,
};
use monitor::daemon;
use monitor::output::{OutputSpec, SyslogFormat};
use monitor::rules::RuleSet;

/// A failure and the exit code it maps to.
enum Failure {
    /// Bad usage, invalid rules, invalid input: exit 2.
    Invalid(anyhow::Error),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    daemon::init_logging();
    let result = match cli.cmd {
        Command::Rules { cmd } => rules_command(cmd),
        Command::Replay(args) => replay_command(args),
        Command::Explain(args) => explain_command(args),
        Command::Run(args) => daemon::run(args).map_err(|e| match e {
            daemon::RunFailure::Invalid(e) => Failure::Invalid(e),
            daemon::RunFailure::Other(e) => Failure::Other(e),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(e)) => {
            eprintln!("monitor: error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("monitor: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Loads `--rules` (or the built-in set), printing notices and warnings to stderr.
fn load_rules(args: &RulesArgs) -> Result<RuleSet, Failure> {
    if args.rules.is_empty() {
        return RuleSet::builtin()
            .map_err(|e| Failure::Other(anyhow!("the built-in rule set does not load: {e}")));
    }
    let report = RuleSet::load(&args.rules).map_err(|e| Failure::Invalid(anyhow!("{e}")))?;
    for n in &report.notices {
        eprintln!("monitor: notice: {n}");
    }
    for w in &report.warnings {
        eprintln!("monitor: warning: {w}");
    }
    Ok(report.rules)
}

fn rules_command(cmd: RulesCommand) -> Result<(), Failure> {
    match cmd {
        RulesCommand::Check(args) => {
            // `check` collects every error (not only the first) and the warnings about
            // fields the monitor never fills.
            let report = monitor::rules::check(&args.rules);
            for n in &report.notices {
                eprintln!("monitor: notice: {n}");
            }
            for w in &report.warnings {
                eprintln!("monitor: warning: {w}");
            }
            for e in &report.errors {
                eprintln!("monitor: error: {e}");
            }
            if report.errors.is_empty() {
                println!("{} rules OK", report.rules.len());
                Ok(())
            } else {
                Err(Failure::Invalid(anyhow!(
                    "{} rule error(s); {} rules loaded",
                    report.errors.len(),
                    report.rules.len()
                )))
            }
        }
        RulesCommand::Test(args) => rules_test(&args.rules.rules, args.strict),
        RulesCommand::List(args) => {
            let rules = load_rules(&args)?;
            println!("ID\tLEVEL\tTECHNIQUES\tGROUPED\tTITLE\tSOURCE");
            for s in rules.summaries() {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}:{}",
                    s.id,
                    s.level.as_str(),
                    s.techniques.join(","),
                    match (&s.group, &s.correlation) {
                        (Some(_), _) => "yes",
                        (None, Some((kind, _))) => kind.as_str(),
                        (None, None) if s.silent => "correlated",
                        (None, None) => "no",
                    },
                    s.title,
                    s.file,
                    s.line
                );
            }
            Ok(())
        }
    }
}

/// `monitor rules test`: per rule, samples passed and the failures with their notes.
fn rules_test(paths: &[std::path::PathBuf], strict: bool) -> Result<(), Failure> {
    use monitor::rules::escape_control as esc;
    let report = monitor::rules::test_samples(paths);
    for e in &report.errors {
        eprintln!("monitor: error: {}", esc(&e.to_string()));
    }
    let kind = if strict { "error" } else { "warning" };
    for w in report.unsampled.iter().chain(&report.orphans) {
        eprintln!("monitor: {kind}: {}", esc(w));
    }
    for r in &report.rules {
        let verdict = if r.failed.is_empty() { "ok" } else { "FAILED" };
        println!(
            "{verdict}\t{}\t{} passed, {} failed\t{}",
            esc(&r.id),
            r.passed,
            r.failed.len(),
            esc(&r.file)
        );
        for f in &r.failed {
            println!(
                "  {}:{}: expected {}, got {}: {}",
                esc(&f.file),
                f.line,
                f.expected,
                f.got,
                esc(&f.note)
            );
        }
    }
    match report.exit_code(strict) {
        0 => Ok(()),
        2 => Err(Failure::Invalid(anyhow!(
            "{} error(s) in rules or samples",
            report.errors.len()
        ))),
        _ => Err(Failure::Other(anyhow!(
            "{} sample(s) disagree with their rules{}",
            report.rules.iter().map(|r| r.failed.len()).sum::<usize>(),
            if strict && !(report.unsampled.is_empty() && report.orphans.is_empty()) {
                format!(
                    "; {} rule(s) without samples, {} samples file(s) of no rule",
                    report.unsampled.len(),
                    report.orphans.len()
                )
            } else {
                String::new()
            }
        ))),
    }
}

/// Reads the event `monitor explain` names: `-` (the first non-empty line of stdin), FILE
/// (line 1) or FILE:LINE. Returns the line and where it came from, for errors.
fn explain_input(spec: &str) -> Result<(String, String), Failure> {
    if spec == "-" {
        let stdin = std::io::stdin();
        for (i, line) in stdin.lock().lines().enumerate() {
            let line = line.context("reading stdin")?;
            if !line.trim().is_empty() {
                return Ok((line, format!("stdin:{}", i + 1)));
            }
        }
        return Err(Failure::Invalid(anyhow!(
            "stdin: no event (expected one JSON line)"
        )));
    }
    // FILE:LINE, unless FILE itself (with the colon) exists.
    let (path, line_no) = match spec.rsplit_once(':') {
        Some((p, n)) if !std::path::Path::new(spec).exists() => {
            let n: usize =
                n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    Failure::Invalid(anyhow!("{spec}: LINE must be a number from 1"))
                })?;
            (p, n)
        }
        _ => (spec, 1),
    };
    let f = std::fs::File::open(path)
        .with_context(|| format!("opening {path}"))
        .map_err(Failure::Invalid)?;
    let line = std::io::BufReader::new(f)
        .lines()
        .nth(line_no - 1)
        .ok_or_else(|| Failure::Invalid(anyhow!("{path}: has no line {line_no}")))?
        .with_context(|| format!("reading {path}"))
        .map_err(Failure::Invalid)?;
    Ok((line, format!("{path}:{line_no}")))
}

/// `monitor explain`: the rules' verdicts on one event, as a tree or JSON.
fn explain_command(args: ExplainArgs) -> Result<(), Failure> {
    let rules = load_rules(&args.rules)?;
    let (line, at) = explain_input(&args.event)?;
    let rec = monitor::record::ConnectionRecord::from_json_line(&line)
        .map_err(|e| Failure::Invalid(anyhow!("{at}: {e}")))?
        .ok_or_else(|| {
            Failure::Invalid(anyhow!(
                "{at}: not a connection record (event.kind is not `event`)"
            ))
        })?;
    let ex = rules.explain(&rec, args.rule.as_deref()).ok_or_else(|| {
        let id = args.rule.as_deref().unwrap_or("");
        let esc = monitor::rules::escape_control;
        // A correlation is decided over many events, not one: point at its rules.
        match rules
            .summaries()
            .into_iter()
            .find(|s| s.id == id)
            .and_then(|s| s.correlation)
        {
            Some((kind, ids)) => Failure::Invalid(anyhow!(
                "--rule {}: a {} correlation rule, decided over many events; explain the \
                 rules it correlates: {}",
                esc(id),
                kind.as_str(),
                esc(&ids.join(", "))
            )),
            None => Failure::Invalid(anyhow!("--rule {}: no such rule in the set", esc(id))),
        }
    })?;
    if args.json {
        println!("{}", monitor::rules::explain_json(&ex));
    } else {
        print!("{}", monitor::rules::explain_text(&ex));
    }
    Ok(())
}

fn syslog_format(f: SyslogFormatArg) -> SyslogFormat {
    match f {
        SyslogFormatArg::Rfc5424 => SyslogFormat::Rfc5424,
        SyslogFormatArg::Rfc3164 => SyslogFormat::Rfc3164,
    }
}

fn parse_outputs(specs: &[String]) -> Result<Vec<OutputSpec>, Failure> {
    if specs.is_empty() {
        return Ok(vec![OutputSpec::Stdout]);
    }
    specs
        .iter()
        .map(|s| {
            s.parse::<OutputSpec>()
                .map_err(|e| Failure::Invalid(anyhow!("--output {s:?}: {e}")))
        })
        .collect()
}

fn replay_command(args: ReplayArgs) -> Result<(), Failure> {
    let setup = monitor::replay::Setup::from_args(&args).map_err(Failure::Invalid)?;
    let rules = if setup.builtin == setup.rules.rules.is_empty() {
        load_rules(&setup.rules)?
    } else {
        monitor::config::load_rules_from(&setup.rules.rules, setup.builtin)
            .map_err(Failure::Invalid)?
    };
    let rules = Arc::new(rules);
    let specs = parse_outputs(&args.outputs)?;
    let syslog_format = args.syslog_format.map(syslog_format);
    monitor::replay::run(&args, rules, setup.beacon, &specs, syslog_format).map_err(|e| match e {
        daemon::RunFailure::Invalid(e) => Failure::Invalid(e),
        daemon::RunFailure::Other(e) => Failure::Other(e),
    })
}
