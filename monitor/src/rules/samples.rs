//! `monitor rules test`: every rule ships sample events that must match and near misses
//! that must not, replayed through the same engine `monitor run` uses.
//!
//! Layout: the samples of rule file `DIR/foo.yml` are `DIR/samples/foo.jsonl`, one JSON
//! object a line:
//! `{"expect": "match"|"no-match", "note": "...", "level": "high", "rule": "ID", "event": {...}}`
//! (`level` and `rule` optional; `event` is a record as `monitor run --events` writes it).
//! A correlation rule's sample gives `events` instead: a list of records run in order
//! through one engine (windows closed at the end), and the rule must alert (or not) on them.
//! The loader reads only `*.yml` / `*.yaml`, so it never mistakes samples for rules.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compile;
use super::error::RuleError;
use super::load::{self, Source};
use super::{RuleEngine, builtin, limits};
use crate::record::{ConnectionRecord, Level};

/// Samples files are small; a bound keeps a stray large file from stalling the command.
const MAX_SAMPLES_BYTES: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{0}")]
    Rules(#[from] RuleError),
    #[error("{file}: cannot read samples: {message}")]
    Read { file: String, message: String },
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
}

/// What a sample expects of its rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    /// The rule alerts at once on the event; at `Some(level)` when the sample names one.
    Match(Option<Level>),
    NoMatch,
}

/// One sample line.
#[derive(Clone, Debug)]
pub struct Sample {
    pub file: String,
    pub line: usize,
    pub expect: Expect,
    pub note: String,
    /// Only this rule of the file; else every rule of the file.
    pub rule: Option<String>,
    /// One record (`event`), or a series (`events`, for correlation rules).
    pub events: Vec<ConnectionRecord>,
}

/// A sample that disagreed with its rule.
#[derive(Clone, Debug)]
pub struct SampleFailure {
    pub file: String,
    pub line: usize,
    pub note: String,
    pub expected: String,
    /// What the rule did: `no alert`, or the alert and its level.
    pub got: String,
}

/// The samples of one rule.
#[derive(Clone, Debug)]
pub struct RuleSamples {
    pub id: String,
    pub file: String,
    pub passed: usize,
    pub failed: Vec<SampleFailure>,
}

/// The result of `monitor rules test`.
#[derive(Debug, Default)]
pub struct SampleReport {
    pub rules: Vec<RuleSamples>,
    /// Invalid rules or samples: exit 2.
    pub errors: Vec<SampleError>,
    /// Rules without samples (errors with `--strict`).
    pub unsampled: Vec<String>,
    /// Samples files no rule file claims, such as those of a renamed rule (errors with
    /// `--strict`).
    pub orphans: Vec<String>,
}

impl SampleReport {
    /// 2 for invalid rules or samples, 1 when a sample disagrees (or, with `strict`, a rule
    /// has none), else 0.
    pub fn exit_code(&self, strict: bool) -> i32 {
        if !self.errors.is_empty() {
            2
        } else if self.rules.iter().any(|r| !r.failed.is_empty())
            || (strict && !(self.unsampled.is_empty() && self.orphans.is_empty()))
        {
            1
        } else {
            0
        }
    }
}

/// Control characters as escapes, so a value from an event or a sample cannot forge
/// output lines or move the terminal's cursor.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A rule or list source and the text of its samples, if it has any.
struct WithSamples {
    source: Source,
    samples: Option<(String, String)>,
}

/// The built-in rules with their embedded samples, or the files `paths` name with the
/// samples next to them.
fn sources(paths: &[PathBuf]) -> (Vec<WithSamples>, Vec<SampleError>) {
    if paths.is_empty() {
        let out = builtin::FILES
            .iter()
            .zip(builtin::sources())
            .map(|((name, _), source)| WithSamples {
                source,
                samples: builtin::samples_of(name)
                    .map(|(n, t)| (format!("rules/{n} (built in)"), t.to_string())),
            })
            .collect();
        return (out, Vec::new());
    }
    let (srcs, errs) = load::read_paths(paths, &limits::Limits::default());
    let mut errors: Vec<SampleError> = errs.into_iter().map(SampleError::from).collect();
    let mut out = Vec::new();
    for source in srcs {
        let path = samples_path(Path::new(&source.name));
        let samples = match path {
            Some(p) if p.is_file() => match read_samples(&p) {
                Ok(t) => Some((p.display().to_string(), t)),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            _ => None,
        };
        out.push(WithSamples { source, samples });
    }
    (out, errors)
}

/// `*.jsonl` files in the `samples/` directories next to the loaded files that belong to
/// none of them.
fn orphans(with: &[WithSamples]) -> Vec<String> {
    let claimed: std::collections::HashSet<PathBuf> = with
        .iter()
        .filter_map(|w| samples_path(Path::new(&w.source.name)))
        .collect();
    let dirs: std::collections::BTreeSet<PathBuf> = claimed
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && !claimed.contains(p))
            .collect();
        found.sort();
        out.extend(found.into_iter().map(|p| {
            format!(
                "{}: samples of no loaded rule file (expected {} next to {})",
                p.display(),
                p.file_stem()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
                    + ".yml",
                d.display()
            )
        }));
    }
    out
}

/// `DIR/foo.yml` -> `DIR/samples/foo.jsonl`.
pub fn samples_path(rule_file: &Path) -> Option<PathBuf> {
    let stem = rule_file.file_stem()?;
    let mut name = stem.to_os_string();
    name.push(".jsonl");
    Some(rule_file.parent()?.join("samples").join(name))
}

fn read_samples(p: &Path) -> Result<String, SampleError> {
    use std::io::Read as _;
    let err = |message: String| SampleError::Read {
        file: p.display().to_string(),
        message,
    };
    let f = std::fs::File::open(p).map_err(|e| err(e.to_string()))?;
    let mut bytes = Vec::new();
    f.take(MAX_SAMPLES_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > MAX_SAMPLES_BYTES {
        return Err(err(format!("larger than {MAX_SAMPLES_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8: {e}")))
}

/// Parses a samples file: one JSON object a line; blank lines are skipped.
pub fn parse_samples(file: &str, text: &str) -> Result<Vec<Sample>, Vec<SampleError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_sample(line) {
            Ok((expect, note, rule, events)) => out.push(Sample {
                file: file.to_string(),
                line: i + 1,
                expect,
                note,
                rule,
                events,
            }),
            Err(message) => errors.push(SampleError::Line {
                file: file.to_string(),
                line: i + 1,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

type Parsed = (Expect, String, Option<String>, Vec<ConnectionRecord>);

/// Most records one sample's `events` may hold (a correlation needs at most a few hundred).
const MAX_SAMPLE_EVENTS: usize = 10_000;

fn parse_event(event: &serde_json::Value, what: &str) -> Result<ConnectionRecord, String> {
    if !event.is_object() {
        return Err(format!("`{what}` must be a JSON object"));
    }
    ConnectionRecord::from_json_line(&event.to_string())
        .map_err(|e| format!("`{what}`: {e}"))?
        .ok_or_else(|| format!("`{what}` is not a connection record (event.kind must be `event`)"))
}

fn parse_sample(line: &str) -> Result<Parsed, String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "expect" | "note" | "level" | "rule" | "event" | "events"
        ) {
            return Err(format!(
                "unknown key `{}` (keys: expect, note, level, rule, event, events)",
                escape_control(k)
            ));
        }
    }
    let text = |k: &str| -> Result<Option<String>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{k}` must be a string")),
        }
    };
    let level = match text("level")? {
        None => None,
        Some(l) => Some(
            Level::parse(&l).ok_or_else(|| format!("unknown level `{}`", escape_control(&l)))?,
        ),
    };
    let expect = match text("expect")?.as_deref() {
        Some("match") => Expect::Match(level),
        Some("no-match") if level.is_none() => Expect::NoMatch,
        Some("no-match") => return Err("`level` applies to `expect: match` only".into()),
        Some(x) => {
            return Err(format!(
                "`expect` is `match` or `no-match`, not `{}`",
                escape_control(x)
            ));
        }
        None => return Err("missing `expect` (`match` or `no-match`)".into()),
    };
    let note = text("note")?.ok_or("missing `note`: say what the sample shows")?;
    let rule = text("rule")?;
    let events = match (obj.get("event"), obj.get("events")) {
        (Some(e), None) => vec![parse_event(e, "event")?],
        (None, Some(serde_json::Value::Array(list)))
            if !list.is_empty() && list.len() <= MAX_SAMPLE_EVENTS =>
        {
            list.iter()
                .enumerate()
                .map(|(i, e)| parse_event(e, &format!("events[{i}]")))
                .collect::<Result<Vec<_>, _>>()?
        }
        (None, Some(_)) => {
            return Err(format!(
                "`events` must be a list of 1 to {MAX_SAMPLE_EVENTS} records"
            ));
        }
        (Some(_), Some(_)) => return Err("give `event` or `events`, not both".into()),
        (None, None) => return Err("missing `event` (or `events`, a series)".into()),
    };
    Ok((expect, note, rule, events))
}

/// Runs the samples of the rules `paths` name (the built-in set when empty).
pub fn test(paths: &[PathBuf]) -> SampleReport {
    let (with, mut errors) = sources(paths);
    let srcs: Vec<Source> = with
        .iter()
        .map(|w| Source {
            name: w.source.name.clone(),
            ruleset: w.source.ruleset.clone(),
            text: w.source.text.clone(),
        })
        .collect();
    let mut c = compile::compile(&srcs);
    errors.extend(c.errors.drain(..).map(SampleError::from));
    let mut report = SampleReport {
        errors,
        orphans: if paths.is_empty() {
            Vec::new() // the embedded samples are checked by builtin.rs's tests
        } else {
            orphans(&with)
        },
        ..SampleReport::default()
    };
    if !report.errors.is_empty() {
        return report;
    }
    let set = Arc::new(super::report(c, Vec::new()).rules);
    let mut by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let summaries = set.summaries();
    // Rules that only feed correlations raise no alert: their samples are the
    // correlation's.
    for s in summaries.iter().filter(|s| !s.silent) {
        by_file
            .entry(s.file.as_str())
            .or_default()
            .push(s.id.clone());
    }
    for w in &with {
        let Some(ids) = by_file.get(w.source.name.as_str()) else {
            continue; // a list file, or a file of skipped rules
        };
        let samples = match &w.samples {
            None => {
                for id in ids {
                    report.unsampled.push(format!(
                        "{}: rule {id} has no samples (expected in {})",
                        w.source.name,
                        samples_path(Path::new(&w.source.name))
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    ));
                }
                continue;
            }
            Some((name, text)) => match parse_samples(name, text) {
                Ok(s) => s,
                Err(mut e) => {
                    report.errors.append(&mut e);
                    continue;
                }
            },
        };
        let mut results: Vec<RuleSamples> = ids
            .iter()
            .map(|id| RuleSamples {
                id: id.clone(),
                file: w.source.name.clone(),
                passed: 0,
                failed: Vec::new(),
            })
            .collect();
        for s in &samples {
            if let Some(r) = &s.rule
                && !ids.contains(r)
            {
                report.errors.push(SampleError::Line {
                    file: s.file.clone(),
                    line: s.line,
                    message: format!("rule `{}` is not in {}", escape_control(r), w.source.name),
                });
                continue;
            }
            // A fresh engine per sample: grouping state of one sample must not hide the
            // next one's alert, and for one event only the immediate alert counts. A series
            // (a correlation's sample) runs to its end, windows closed.
            let mut engine = RuleEngine::new(Arc::clone(&set));
            let mut alerts = Vec::new();
            for e in &s.events {
                engine.process(e, &mut alerts);
            }
            if s.events.len() > 1 {
                engine.finish(&mut alerts);
            }
            for r in results.iter_mut() {
                if s.rule.as_ref().is_some_and(|x| *x != r.id) {
                    continue;
                }
                let fired = alerts.iter().find(|a| a.rule.id == r.id);
                let ok = match (&s.expect, fired) {
                    (Expect::NoMatch, None) => true,
                    (Expect::Match(None), Some(_)) => true,
                    (Expect::Match(Some(l)), Some(a)) => a.level == *l,
                    _ => false,
                };
                if ok {
                    r.passed += 1;
                } else {
                    r.failed.push(SampleFailure {
                        file: s.file.clone(),
                        line: s.line,
                        note: s.note.clone(),
                        expected: match &s.expect {
                            Expect::Match(None) => "match".into(),
                            Expect::Match(Some(l)) => format!("match at level {}", l.as_str()),
                            Expect::NoMatch => "no match".into(),
                        },
                        got: match fired {
                            Some(a) => format!("alert at level {}", a.level.as_str()),
                            None => "no alert".into(),
                        },
                    });
                }
            }
        }
        report.rules.append(&mut results);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"kind":"event"},"host":{"hostname":"h1"},"process":{"pid":1,"executable":"/usr/bin/curl"},"destination":{"ip":"203.0.113.7","port":8088},"network":{"transport":"tcp"}}"#;

    #[test]
    fn sample_lines_parse_and_errors_name_the_line() {
        let text = format!(
            "{{\"expect\":\"match\",\"level\":\"high\",\"note\":\"n\",\"event\":{EVENT}}}\n\n\
             {{\"expect\":\"maybe\",\"note\":\"n\",\"event\":{EVENT}}}\n\
             {{\"expect\":\"no-match\",\"note\":\"n\",\"evnt\":{EVENT}}}\n\
             {{\"expect\":\"no-match\",\"event\":{EVENT}}}\n\
             not json\n"
        );
        let errs = parse_samples("s.jsonl", &text).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:#?}");
        assert!(msgs[0].starts_with("s.jsonl:3: `expect`"), "{}", msgs[0]);
        assert!(
            msgs[1].starts_with("s.jsonl:4: unknown key `evnt`"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[2].starts_with("s.jsonl:5: missing `note`"),
            "{}",
            msgs[2]
        );
        assert!(
            msgs[3].starts_with("s.jsonl:6: not a JSON object"),
            "{}",
            msgs[3]
        );
        let ok = parse_samples("s.jsonl", text.lines().next().unwrap()).unwrap();
        assert_eq!(ok[0].expect, Expect::Match(Some(Level::High)));
        assert_eq!(ok[0].events[0].destination.port, 8088);
    }

    #[test]
    fn samples_sit_in_a_samples_directory_next_to_the_rule() {
        assert_eq!(
            samples_path(Path::new("rules/t1043_commonly_used_port.yml")),
            Some(PathBuf::from(
                "rules/samples/t1043_commonly_used_port.jsonl"
            ))
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_control("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        assert!(matches!(escape_control("plain é"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_builtin_rules_pass_their_samples_strictly() {
        let r = test(&[]);
        assert!(r.errors.is_empty(), "{:#?}", r.errors);
        assert!(r.unsampled.is_empty(), "{:#?}", r.unsampled);
        assert_eq!(r.rules.len(), 7);
        for rule in &r.rules {
            assert!(rule.failed.is_empty(), "{rule:#?}");
            assert!(rule.passed >= 7, "{rule:#?}");
        }
        assert_eq!(r.exit_code(true), 0);
    }
}
