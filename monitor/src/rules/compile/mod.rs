//! Rule documents to a compiled `RuleSet`: every selection becomes tests shared across
//! rules (memoized by a key), every condition a `Cond` over those tests, and each field's
//! patterns of all rules one string set. The parts: `rule` (a rule document's header and
//! detection), `selection` (conditions and selections), `values` (one `Field|modifiers:
//! values` entry to a test), `extension` (the `monitor:` key). Reading files is `load`,
//! list files `lists`, the condition language `condition`.
//!
//! Loading is all-or-nothing per rule: a rule with any construct this engine does not
//! implement is an error naming the file, line, rule and construct, never a rule that
//! quietly matches less than its author wrote.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use super::condition::Cond;
use super::correlation::{self, CorrelationRule};
use super::error::RuleError;
use super::field::Field;
use super::limits::{Budget, Limits};
use super::lists::Lists;
use super::load::Source;
use super::matcher::{Test, TestId, Tests};
use super::strset::{PatternSpec, StringSet};
use super::yaml::{self, Node, NodeKind, Pos};
use crate::record::{ConnectionRecord, Level, RuleMeta};

mod extension;
mod rule;
mod selection;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use extension::parse_duration;
pub(crate) use rule::technique_id;

/// `value`, or the first `when` that holds (monitor extension).
#[derive(Debug)]
pub(crate) struct Case<T> {
    pub when: Option<Cond>,
    pub value: T,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub fields: Vec<Field>,
    pub window_ns: i64,
}

/// Which records a rule evaluates on (`logsource.category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// Connection records (`network_connection`).
    NetworkConnection,
    /// DNS query records (`dns_query`).
    DnsQuery,
}

impl Category {
    /// Whether a record is one this category's rules evaluate on.
    #[inline]
    pub fn covers(self, rec: &ConnectionRecord) -> bool {
        (self == Category::DnsQuery) == rec.dns.is_some() && rec.life_action().for_rules()
    }
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub meta: Arc<RuleMeta>,
    /// Sigma's `name`: what correlation rules may refer to the rule by.
    pub sigma_name: Option<String>,
    /// The records the rule evaluates on.
    pub category: Category,
    pub level: Level,
    pub techniques: Arc<[String]>,
    pub tags: Vec<String>,
    pub status: Option<String>,
    pub falsepositives: Vec<String>,
    pub file: String,
    pub line: u32,
    pub condition: Cond,
    pub labels: Vec<(String, Vec<Case<String>>)>,
    pub risk: Vec<Case<u32>>,
    pub level_cases: Vec<Case<Level>>,
    pub group: Option<GroupSpec>,
    /// Tests the monitor cannot satisfy today, in line order.
    pub gaps: Vec<Gap>,
    pub explain: Explain,
}

/// What `monitor explain` shows of a rule: its condition as written and its selections,
/// each an OR of maps whose entries (AND) are compiled tests of the rule set. Explain
/// evaluates these same tests, so it cannot disagree with the engine.
#[derive(Debug, Default)]
pub(crate) struct Explain {
    /// The condition as written (a list of conditions joined by ` | `).
    pub condition: String,
    pub selections: Vec<ExplainSelection>,
}

#[derive(Debug)]
pub(crate) struct ExplainSelection {
    pub name: String,
    pub line: u32,
    pub maps: Vec<Vec<ExplainItem>>,
}

/// One `Field|modifiers: values` entry.
#[derive(Debug)]
pub(crate) struct ExplainItem {
    pub spec: String,
    pub field: Option<Field>,
    pub line: u32,
    /// The values as written (placeholders unexpanded), abridged.
    pub values: String,
    pub test: TestId,
}

/// Values as written, at most a few of them: enough to recognize the entry.
fn render_values(v: &Node) -> String {
    const SHOWN: usize = 6;
    let one = |n: &Node| match n.as_scalar() {
        Some(s) => s.text.clone(),
        None => format!("({})", n.kind_name()),
    };
    match &v.kind {
        NodeKind::Seq(items) => {
            let mut out: Vec<String> = items.iter().take(SHOWN).map(one).collect();
            if items.len() > SHOWN {
                out.push(format!("... {} more", items.len() - SHOWN));
            }
            format!("[{}]", out.join(", "))
        }
        _ => one(v),
    }
}

/// A test the monitor cannot satisfy today, with the line of its field, for the warnings
/// of `rules check` and loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Gap {
    /// A field the monitor never fills (`Field::never_filled`).
    Unfilled(u32, Field),
}

impl Gap {
    pub fn line(self) -> u32 {
        match self {
            Gap::Unfilled(l, _) => l,
        }
    }
}

/// Everything a load produced.
pub(crate) struct Compiled {
    pub rules: Vec<Rule>,
    pub correlations: Vec<CorrelationRule>,
    pub tests: Tests,
    pub notices: Vec<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<RuleError>,
}

/// Where a rule is, for its errors.
#[derive(Clone)]
struct Ctx<'a> {
    file: &'a str,
    rule: String,
}

impl Ctx<'_> {
    fn err(&self, pos: Pos, construct: impl Into<String>, message: impl Into<String>) -> RuleError {
        RuleError::Rule {
            file: self.file.to_string(),
            line: pos.line,
            rule: self.rule.clone(),
            construct: construct.into(),
            message: message.into(),
        }
    }
}

struct Compiler {
    tests: Vec<Test>,
    test_keys: HashMap<String, TestId>,
    /// Per field: patterns in string-set order, and their index.
    patterns: BTreeMap<Field, (Vec<PatternSpec>, HashMap<String, u32>)>,
    lists: Lists,
    /// `re` patterns compiled while checking them, for the string sets.
    regexes: HashMap<String, regex_automata::meta::Regex>,
    budget: Budget,
}

impl Compiler {
    fn new(limits: Limits) -> Compiler {
        Compiler {
            tests: Vec::new(),
            test_keys: HashMap::new(),
            patterns: BTreeMap::new(),
            lists: Lists::default(),
            regexes: HashMap::new(),
            budget: Budget::start(limits),
        }
    }
}

const KNOWN_TOP_KEYS: &[&str] = &[
    "title",
    "id",
    "name",
    "related",
    "taxonomy",
    "status",
    "description",
    "license",
    "references",
    "author",
    "date",
    "modified",
    "tags",
    "logsource",
    "detection",
    "fields",
    "falsepositives",
    "level",
    "scope",
    "monitor",
];

pub(crate) fn compile(sources: &[Source]) -> Compiled {
    compile_with(sources, Limits::default())
}

/// Compiles under the given budgets; going past one is an error of the load.
pub(crate) fn compile_with(sources: &[Source], limits: Limits) -> Compiled {
    let mut c = Compiler::new(limits);
    let mut out = Compiled {
        rules: Vec::new(),
        correlations: Vec::new(),
        tests: Tests::default(),
        notices: Vec::new(),
        warnings: Vec::new(),
        errors: Vec::new(),
    };

    // Parse every file first: list files must be known before any rule expands them.
    let mut rule_docs: Vec<(&Source, Node)> = Vec::new();
    let mut pending: Vec<correlation::Pending> = Vec::new();
    for src in sources {
        if let Err(message) = c.budget.check_time() {
            out.errors.push(RuleError::File {
                file: src.name.clone(),
                line: 1,
                message,
            });
            return out;
        }
        let docs = match yaml::parse(&src.text, c.budget.limits.max_depth) {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(RuleError::Yaml {
                    file: src.name.clone(),
                    line: e.pos.line,
                    column: e.pos.column,
                    message: e.message,
                });
                continue;
            }
        };
        if docs.is_empty() {
            out.warnings
                .push(format!("{}: empty file, no rules in it", src.name));
        }
        for doc in docs {
            if doc.as_map().is_none() {
                out.errors.push(RuleError::Yaml {
                    file: src.name.clone(),
                    line: doc.pos.line,
                    column: doc.pos.column,
                    message: format!(
                        "a rule file holds a mapping (title, logsource, detection, ...), not {}",
                        doc.kind_name()
                    ),
                });
                continue;
            }
            if doc.get("lists").is_some() && doc.get("detection").is_none() {
                if let Err(e) = c.lists.add(src, &doc) {
                    out.errors.push(e);
                }
            } else if doc.get("correlation").is_some() {
                match correlation::parse(src, &doc, &c.budget.limits, &mut out.warnings) {
                    Ok(p) => pending.push(p),
                    Err(mut e) => out.errors.append(&mut e),
                }
            } else {
                rule_docs.push((src, doc));
            }
        }
    }

    let mut ids: HashMap<String, (String, u32)> = HashMap::new();
    for (src, doc) in &rule_docs {
        // Between rules, and inside the loops a single rule can make long (values,
        // list expansion, condition operands).
        if let Err(message) = c.budget.check_time() {
            out.errors.push(RuleError::File {
                file: src.name.clone(),
                line: doc.pos.line,
                message,
            });
            // Rules compiled so far refer to tests not handed out; none is kept.
            out.rules.clear();
            return out;
        }
        match c.rule(src, doc, &mut out.notices, &mut out.warnings) {
            Ok(Some(rule)) => {
                if let Some((f, l)) = ids.get(&rule.meta.id) {
                    out.errors.push(RuleError::Rule {
                        file: rule.file.clone(),
                        line: rule.line,
                        rule: rule.meta.id.clone(),
                        construct: "id".into(),
                        message: format!(
                            "the same id is already used by the rule at {f}:{l}; rule ids must \
                             be unique so alerts say which rule fired"
                        ),
                    });
                    continue;
                }
                ids.insert(rule.meta.id.clone(), (rule.file.clone(), rule.line));
                out.rules.push(rule);
            }
            Ok(None) => {}
            Err(mut e) => {
                if c.budget.check_time().is_err() {
                    // Out of time in this rule: the first error that says so names where
                    // compiling stopped; what followed it is not worth reporting.
                    let cut = e
                        .iter()
                        .position(|x| c.budget.is_deadline(x))
                        .map_or(e.len(), |i| i + 1);
                    e.truncate(cut);
                    out.errors.append(&mut e);
                    out.rules.clear();
                    return out;
                }
                out.errors.append(&mut e);
            }
        }
    }

    resolve_correlations(pending, &mut out, &mut ids);

    // One string set per field over every rule's patterns.
    let mut tests = Tests {
        tests: std::mem::take(&mut c.tests),
        ..Tests::default()
    };
    for (field, (patterns, _)) in std::mem::take(&mut c.patterns) {
        let budget = &c.budget;
        // The build checks the deadline first and between regular expressions.
        let built = StringSet::build(field, &patterns, &c.regexes, &|| budget.check_time());
        if let Err(message) = budget.check_time() {
            out.errors.push(RuleError::Set {
                what: format!("all rules, field {}", field.ecs_name()),
                message,
            });
            out.rules.clear();
            return out;
        }
        match built {
            Ok(a) => {
                tests.set_of[field as usize] = Some(tests.sets.len() as u16);
                tests.sets.push(a);
            }
            Err(e) => out.errors.push(RuleError::Read {
                path: PathBuf::from(format!("(all rules, field {})", field.ecs_name())),
                message: format!(
                    "the combined patterns of this field do not compile: {e}; split or simplify \
                     the largest lists"
                ),
            }),
        }
    }
    for t in &mut tests.tests {
        if let Test::Patterns {
            field,
            patterns,
            mask_from,
            mask,
            ..
        } = t
            && tests.set_of[*field as usize].is_some()
        {
            let lo = patterns.iter().min().map_or(0, |&p| p >> 6);
            let hi = patterns.iter().max().map_or(0, |&p| p >> 6);
            // Spans count against the set's size: patterns far apart in one test (each
            // test sharing the first pattern and adding a new one) would otherwise cost
            // tests x patterns.
            if let Err(message) = c.budget.add((hi - lo + 1) as usize, 0) {
                // Past the budget already (an error of the rule that went past it): that
                // one error says it.
                if out.errors.is_empty() {
                    out.errors.push(RuleError::Set {
                        what: format!("all rules, field {}", field.ecs_name()),
                        message,
                    });
                }
                out.rules.clear();
                return out;
            }
            let mut m = vec![0u64; (hi - lo + 1) as usize];
            for &p in patterns.iter() {
                m[((p >> 6) - lo) as usize] |= 1 << (p & 63);
            }
            *mask_from = lo;
            *mask = m.into_boxed_slice();
        }
    }
    for r in &mut out.rules {
        r.condition.order_by_cost(&tests.tests);
        for (_, cases) in &mut r.labels {
            cases
                .iter_mut()
                .filter_map(|c| c.when.as_mut())
                .for_each(|w| w.fold(&tests.tests));
        }
        for c in r.risk.iter_mut().filter_map(|c| c.when.as_mut()) {
            c.fold(&tests.tests);
        }
        for c in r.level_cases.iter_mut().filter_map(|c| c.when.as_mut()) {
            c.fold(&tests.tests);
        }
    }
    out.tests = tests;
    out
}

/// Binds the correlations of a load to its rules. Their ids share the rules' namespace.
fn resolve_correlations(
    pending: Vec<correlation::Pending>,
    out: &mut Compiled,
    ids: &mut HashMap<String, (String, u32)>,
) {
    let mut names: HashMap<String, (String, u32)> = HashMap::new();
    for p in &pending {
        names.insert(p.meta.id.clone(), (p.file.clone(), p.line));
        if let Some(n) = &p.name {
            names.insert(n.clone(), (p.file.clone(), p.line));
        }
    }
    for p in pending {
        if let Some((f, l)) = ids.get(&p.meta.id) {
            out.errors.push(RuleError::Rule {
                file: p.file.clone(),
                line: p.line,
                rule: p.label.clone(),
                construct: "id".into(),
                message: format!(
                    "the same id is already used by the rule at {f}:{l}; rule ids must be \
                     unique so alerts say which rule fired"
                ),
            });
            continue;
        }
        ids.insert(p.meta.id.clone(), (p.file.clone(), p.line));
        match correlation::resolve(p, &out.rules, &names) {
            Ok(c) => out.correlations.push(c),
            Err(mut e) => out.errors.append(&mut e),
        }
    }
}

impl Compiler {
    fn intern(&mut self, key: String, test: Test) -> TestId {
        if let Some(&id) = self.test_keys.get(&key) {
            return id;
        }
        let id = self.tests.len() as TestId;
        self.tests.push(test);
        self.test_keys.insert(key, id);
        id
    }

    fn pattern(&mut self, field: Field, p: PatternSpec) -> u32 {
        let (list, index) = self.patterns.entry(field).or_default();
        let key = format!("{p:?}");
        if let Some(&i) = index.get(&key) {
            return i;
        }
        let i = list.len() as u32;
        list.push(p);
        index.insert(key, i);
        i
    }

    fn combine(&mut self, mut ids: Vec<TestId>, all: bool) -> TestId {
        if ids.len() == 1 {
            return ids[0];
        }
        ids.sort_unstable();
        ids.dedup();
        let key = format!("{}|{ids:?}", if all { "allof" } else { "anyof" });
        let test = if all {
            Test::AllOf(ids.into_boxed_slice())
        } else {
            Test::AnyOf(ids.into_boxed_slice())
        };
        self.intern(key, test)
    }
}
