//! Sigma rules for connection records: loading, compiling, evaluating, grouping, and the
//! default rule set (the repository's `rules/`, built into the binary).
//!
//! # Why an engine of our own and not rsigma
//! The issue suggested starting from `rsigma-parser` / `rsigma-eval` 0.23. They were
//! checked first and not used, because three requirements are out of their reach without
//! replacing most of them:
//! - **Errors with lines.** rsigma-parser reads rules through a serde YAML deserializer,
//!   which drops positions: only condition-string errors carry a location, and an unknown
//!   modifier or field cannot be reported with its line. It also accepted the tab-indented
//!   SigmaHQ file. Here YAML is read from `saphyr-parser`'s event stream, so every node has
//!   its line, and tabs, duplicate keys and aliases are refused (`yaml.rs`).
//! - **Typed fields.** rsigma-eval's `Event` trait looks fields up by name
//!   (`get_field(&str)`) on every evaluation. Here field names resolve once, at load, to
//!   `field::Field`, and evaluation reads the `ConnectionRecord` directly.
//! - **Cost independent of rule count.** Here all string tests of all rules on one field
//!   form one string set, matched with a single case-insensitive Aho-Corasick pass that
//!   runs at most once per event and verifies only the candidates it finds; ports are
//!   bitsets, networks are per-prefix-length tables, tests shared by rules are evaluated
//!   once per event (memoized), tests on fields never filled fold to constants at load,
//!   and nothing allocates per evaluation (`matcher.rs`, `strset.rs`). A rule index picks
//!   the rules an event can match from destination ports and string anchors (`index.rs`).
//! - **Per-process work done once.** Events of one process share its `Arc<ProcessInfo>`;
//!   string-set outcomes on process fields, the index's anchors from them, and which rules
//!   the process can never match are kept per process (`matcher::ProcessCache`), so a
//!   process's later events cost a port lookup and the rules still open for it.
//!
//! Sigma correlation rules (specification v2: event_count, value_count, temporal,
//! temporal_ordered) are evaluated on the stream (`correlation/`); the grouping with a
//! window summary the seeds need is the `monitor.group_by` extension (`engine.rs`,
//! rules/README.md, which says why the specification cannot carry it).
//!
//! Every load runs under budgets (`limits.rs`, rules/README.md "Limits"): nesting, list
//! expansion, value and condition length, values per field, compiled size and compile
//! time. No rule file can overflow a stack, exhaust memory or stall a reload; going past a
//! budget is a load error naming the file and line.
//!
//! # Extensions to Sigma (all ignored by plain Sigma tools; see rules/README.md)
//! - `monitor:` top-level key: `group_by` + `window`, `labels`, `risk_score`, `level`, with
//!   per-match cases (`- when: CONDITION` / `value: X`).
//! - List files (`lists:` documents) whose lists rules use through Sigma's own `expand`
//!   modifier: `Image|endswith|expand: '%script_interpreters%'`.

mod builtin;
mod compile;
mod condition;
mod correlation;
mod engine;
mod error;
mod explain;
mod field;
mod index;
mod limits;
mod lists;
mod load;
mod matcher;
mod samples;
mod strset;
mod yaml;

use std::path::PathBuf;

pub use compile::GroupSpec;
pub use correlation::{
    Kind as CorrelationKind, MAX_ALERT_VALUES, MAX_GROUPS as MAX_CORRELATION_GROUPS,
};
pub use engine::{MAX_AGGREGATE_IPS, MAX_AGGREGATE_PORTS, MAX_OPEN_GROUPS, RuleEngine};
pub use error::RuleError;
pub use explain::{
    ItemExplanation, RuleExplanation, SelectionExplanation, explain_json, explain_text,
};
pub use field::{FIELD_NAMES, Field};
pub use samples::{
    Expect, RuleSamples, Sample, SampleError, SampleFailure, SampleReport, escape_control,
    samples_path, test as test_samples,
};

use crate::record::Level;
use compile::{Compiled, Rule};
use matcher::Tests;

/// The name `rule.ruleset` carries for the built-in rules.
pub const BUILTIN_RULESET: &str = "default";

/// A compiled, immutable set of rules. Share it with `Arc`; each `RuleEngine` keeps its own
/// per-event scratch space and grouping state.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    tests: Tests,
    index: index::RuleIndex,
    correlations: Vec<correlation::CorrelationRule>,
    /// Per rule: the correlations (index, position of the rule in its `rules`) it feeds.
    feeds: Vec<Vec<(u16, u8)>>,
    /// Per rule: no alert of its own (every correlation naming it has `generate: false`).
    silent: Vec<bool>,
}

/// What loading produced besides the rules.
#[derive(Debug)]
pub struct LoadReport {
    pub rules: RuleSet,
    /// Rules skipped on purpose (other log sources).
    pub notices: Vec<String>,
    /// Loaded, but worth a look (a field the monitor never fills, an unused selection, ...).
    pub warnings: Vec<String>,
    /// With `load_lenient` only: the errors of the files and rules that were left out.
    pub skipped: Vec<RuleError>,
}

/// One rule, for `monitor rules list`.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSummary {
    pub id: String,
    pub title: String,
    pub level: Level,
    pub ruleset: String,
    pub file: String,
    pub line: u32,
    pub techniques: Vec<String>,
    pub tags: Vec<String>,
    pub status: Option<String>,
    pub falsepositives: Vec<String>,
    /// `Some` when the rule groups its alerts.
    pub group: Option<GroupSpec>,
    /// `Some` for a correlation rule: its type and the ids of the rules it correlates.
    pub correlation: Option<(CorrelationKind, Vec<String>)>,
    /// A rule that only feeds correlations (`generate: false`): it raises no alert itself.
    pub silent: bool,
}

/// The result of `monitor rules check`.
#[derive(Debug)]
pub struct CheckReport {
    /// Rules that loaded.
    pub rules: Vec<RuleSummary>,
    pub errors: Vec<RuleError>,
    pub warnings: Vec<String>,
    pub notices: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The documented exit status: 0 valid, 2 invalid rules.
    pub fn exit_code(&self) -> i32 {
        if self.is_ok() { 0 } else { 2 }
    }
}

impl RuleSet {
    /// The repository's `rules/`, embedded at build time.
    pub fn builtin() -> Result<RuleSet, RuleError> {
        let c = compile::compile(&builtin::sources());
        match RuleError::from_list(c.errors) {
            Some(e) => Err(e),
            None => Ok(RuleSet::new(c.rules, c.tests, c.correlations)),
        }
    }

    /// Loads rule files and directories (recursively, `*.yml` / `*.yaml`). Any error in
    /// any file fails the load, naming every error found.
    pub fn load(paths: &[PathBuf]) -> Result<LoadReport, RuleError> {
        let (sources, mut errors) = load::read_paths(paths, &limits::Limits::default());
        let mut c = compile::compile(&sources);
        errors.append(&mut c.errors);
        match RuleError::from_list(errors) {
            Some(e) => Err(e),
            None => Ok(report(c, Vec::new())),
        }
    }

    /// The built-in rules plus `paths`, as one set: for an operator who keeps the default
    /// rules and adds list files (exclusions) or rules of their own.
    pub fn load_with_builtin(paths: &[PathBuf]) -> Result<LoadReport, RuleError> {
        let (mut sources, mut errors) = load::read_paths(paths, &limits::Limits::default());
        let mut all = builtin::sources();
        all.append(&mut sources);
        let mut c = compile::compile(&all);
        errors.append(&mut c.errors);
        match RuleError::from_list(errors) {
            Some(e) => Err(e),
            None => Ok(report(c, Vec::new())),
        }
    }

    /// Like `load`, but files and rules with errors are left out (their errors in
    /// `LoadReport::skipped`) and the rest load: for operators who prefer running with
    /// the valid rules to not starting.
    pub fn load_lenient(paths: &[PathBuf]) -> LoadReport {
        let (sources, mut errors) = load::read_paths(paths, &limits::Limits::default());
        let mut c = compile::compile(&sources);
        errors.append(&mut c.errors);
        report(c, errors)
    }

    /// Loads rules and lists from text, as if each `(name, text)` were a file named `name`
    /// (ruleset `inline`): for tests and tools that hold rules in memory.
    pub fn from_texts(files: &[(&str, &str)]) -> Result<LoadReport, RuleError> {
        let sources: Vec<load::Source> = files
            .iter()
            .map(|(name, text)| load::Source {
                name: (*name).to_string(),
                ruleset: "inline".to_string(),
                text: (*text).to_string(),
            })
            .collect();
        let c = compile::compile(&sources);
        match RuleError::from_list(c.errors.clone()) {
            Some(e) => Err(e),
            None => Ok(report(c, Vec::new())),
        }
    }

    /// No rules at all.
    pub fn empty() -> RuleSet {
        RuleSet::new(Vec::new(), Tests::default(), Vec::new())
    }

    fn new(
        rules: Vec<Rule>,
        mut tests: Tests,
        correlations: Vec<correlation::CorrelationRule>,
    ) -> RuleSet {
        tests.find_process_only();
        let index = index::RuleIndex::build(&rules, &tests);
        let mut feeds = vec![Vec::new(); rules.len()];
        let mut silent = vec![false; rules.len()];
        let mut generated = vec![false; rules.len()];
        for (c, corr) in correlations.iter().enumerate() {
            for (pos, &r) in corr.rules.iter().enumerate() {
                feeds[r].push((c as u16, pos as u8));
                silent[r] = true;
                generated[r] |= corr.generate;
            }
        }
        for (s, g) in silent.iter_mut().zip(generated) {
            *s &= !g;
        }
        RuleSet {
            rules,
            tests,
            index,
            correlations,
            feeds,
            silent,
        }
    }

    /// Detection rules and correlation rules.
    pub fn len(&self) -> usize {
        self.rules.len() + self.correlations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.correlations.is_empty()
    }

    /// Correlation rules in the set.
    pub fn correlation_count(&self) -> usize {
        self.correlations.len()
    }

    pub fn summaries(&self) -> Vec<RuleSummary> {
        let corr = self.correlations.iter().map(|c| RuleSummary {
            id: c.meta.id.clone(),
            title: c.meta.name.clone(),
            level: c.level,
            ruleset: c.meta.ruleset.clone(),
            file: c.file.clone(),
            line: c.line,
            techniques: c.techniques.to_vec(),
            tags: c.tags.clone(),
            status: c.status.clone(),
            falsepositives: c.falsepositives.clone(),
            group: None,
            correlation: Some((c.kind, c.rule_ids.clone())),
            silent: false,
        });
        self.rules
            .iter()
            .zip(&self.silent)
            .map(|(r, &silent)| RuleSummary {
                id: r.meta.id.clone(),
                title: r.meta.name.clone(),
                level: r.level,
                ruleset: r.meta.ruleset.clone(),
                file: r.file.clone(),
                line: r.line,
                techniques: r.techniques.to_vec(),
                tags: r.tags.clone(),
                status: r.status.clone(),
                falsepositives: r.falsepositives.clone(),
                group: r.group.clone(),
                correlation: None,
                silent,
            })
            .chain(corr)
            .collect()
    }
}

/// The pipeline moves engines into tasks and shares rule sets between them.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<RuleSet>();
    send::<RuleEngine>();
};

fn report(c: Compiled, skipped: Vec<RuleError>) -> LoadReport {
    let mut warnings = c.warnings;
    for r in &c.rules {
        let what = if matches!(r.condition, condition::Cond::Const(false)) {
            "so the rule can never match"
        } else {
            "so this test never matches"
        };
        for g in &r.gaps {
            let why = match g {
                compile::Gap::Unfilled(_, f) => {
                    let sigma = FIELD_NAMES
                        .iter()
                        .find(|(_, x)| x == f)
                        .map(|(n, _)| *n)
                        .unwrap_or("?");
                    format!(
                        "tests {sigma} ({}), which the monitor never fills",
                        f.ecs_name()
                    )
                }
            };
            warnings.push(format!(
                "{}:{}: rule {}: {why}, {what}",
                r.file,
                g.line(),
                r.meta.id
            ));
        }
    }
    LoadReport {
        rules: RuleSet::new(c.rules, c.tests, c.correlations),
        notices: c.notices,
        warnings,
        skipped,
    }
}

/// Validates rules for `monitor rules check`: every error in every file (not only the
/// first), warnings and notices. No paths means the built-in set.
pub fn check(paths: &[PathBuf]) -> CheckReport {
    let (sources, mut errors) = if paths.is_empty() {
        (builtin::sources(), Vec::new())
    } else {
        load::read_paths(paths, &limits::Limits::default())
    };
    let mut c = compile::compile(&sources);
    errors.append(&mut c.errors);
    let rep = report(c, Vec::new());
    CheckReport {
        rules: rep.rules.summaries(),
        errors: errors
            .into_iter()
            .flat_map(|e| match e {
                RuleError::Many(v) => v,
                e => vec![e],
            })
            .collect(),
        warnings: rep.warnings,
        notices: rep.notices,
    }
}
