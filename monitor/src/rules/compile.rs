//! Sigma rule files (and the monitor's list files) to a compiled `RuleSet`.
//!
//! Length: 3,077 lines, far past the house limit: walking rule files, expanding lists,
//! compiling selections and the runtime `Cond` are still one file. Planned split (issue
//! #16): load / lists / condition / compile, each with its unit tests; not done yet.
//!
//! Loading is all-or-nothing per rule: a rule with any construct this engine does not
//! implement is an error naming the file, line, rule and construct, never a rule that
//! quietly matches less than its author wrote.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::condition::{self, CondAst, OfTarget};
use super::correlation::{self, CorrelationRule};
use super::error::RuleError;
use super::field::{Field, FieldKind};
use super::limits::{Budget, Limits};
use super::matcher::{self, CmpOp, IpSet, NumSet, Test, TestId, Tests};
use super::strset::{self, PatternSpec, StrMode, StringSet};
use super::yaml::{self, Node, NodeKind, Pos, Value};
use crate::record::ConnectionRecord;
use crate::record::{Level, RuleMeta};

/// One rule or list file's text and where it came from.
pub(crate) struct Source {
    /// As shown in messages: the path, or `rules/<name>` for the built-in set.
    pub name: String,
    /// `rule.ruleset` for rules in this file.
    pub ruleset: String,
    pub text: String,
}

/// A compiled condition over test ids.
#[derive(Debug)]
pub(crate) enum Cond {
    /// Known at load time (a test on a field the monitor never fills, `Initiated`).
    Const(bool),
    Test(TestId),
    And(Box<[Cond]>),
    Or(Box<[Cond]>),
    Not(Box<Cond>),
    AtLeast(u32, Box<[Cond]>),
}

impl Cond {
    pub fn eval(
        &self,
        tests: &Tests,
        rec: &crate::record::ConnectionRecord,
        s: &mut super::matcher::Scratch,
    ) -> bool {
        match self {
            Cond::Const(b) => *b,
            Cond::Test(id) => tests.eval(*id, rec, s),
            Cond::And(c) => c.iter().all(|c| c.eval_leaf(tests, rec, s)),
            Cond::Or(c) => c.iter().any(|c| c.eval_leaf(tests, rec, s)),
            Cond::Not(c) => !c.eval_leaf(tests, rec, s),
            Cond::AtLeast(n, c) => {
                let mut hits = 0;
                for x in c.iter() {
                    if x.eval_leaf(tests, rec, s) {
                        hits += 1;
                        if hits >= *n {
                            return true;
                        }
                    }
                }
                false
            }
        }
    }

    /// The outcome as far as the process's own fields decide it, `None` where it depends
    /// on fields of the event (destination, source, ...). Evaluates process tests the
    /// condition may have skipped.
    pub fn eval_process(
        &self,
        tests: &Tests,
        rec: &crate::record::ConnectionRecord,
        s: &mut super::matcher::Scratch,
    ) -> Option<bool> {
        match self {
            Cond::Const(b) => Some(*b),
            Cond::Test(id) => tests.process_only[*id as usize].then(|| tests.eval(*id, rec, s)),
            Cond::And(c) => {
                let mut known = true;
                for x in c.iter() {
                    match x.eval_process(tests, rec, s) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => known = false,
                    }
                }
                known.then_some(true)
            }
            Cond::Or(c) => {
                let mut known = true;
                for x in c.iter() {
                    match x.eval_process(tests, rec, s) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => known = false,
                    }
                }
                known.then_some(false)
            }
            Cond::Not(c) => c.eval_process(tests, rec, s).map(|b| !b),
            Cond::AtLeast(n, c) => {
                let (mut yes, mut unknown) = (0u32, 0u32);
                for x in c.iter() {
                    match x.eval_process(tests, rec, s) {
                        Some(true) => yes += 1,
                        Some(false) => {}
                        None => unknown += 1,
                    }
                }
                if yes >= *n {
                    Some(true)
                } else if yes + unknown < *n {
                    Some(false)
                } else {
                    None
                }
            }
        }
    }

    /// Most operands are tests: evaluate those in place and recurse only into subtrees.
    #[inline(always)]
    fn eval_leaf(
        &self,
        tests: &Tests,
        rec: &crate::record::ConnectionRecord,
        s: &mut super::matcher::Scratch,
    ) -> bool {
        match self {
            Cond::Test(id) => tests.eval(*id, rec, s),
            Cond::Const(b) => *b,
            other => other.eval(tests, rec, s),
        }
    }

    /// `and` inside `and` (and `or` inside `or`) become one level, and one-operand nodes
    /// their operand: selections pasted into conditions nest deeply otherwise.
    fn flatten(&mut self) {
        match self {
            Cond::And(c) | Cond::Or(c) | Cond::AtLeast(_, c) => {
                c.iter_mut().for_each(Cond::flatten)
            }
            Cond::Not(c) => c.flatten(),
            Cond::Test(_) | Cond::Const(_) => {}
        }
        let is_and = matches!(self, Cond::And(_));
        if let Cond::And(c) | Cond::Or(c) = self {
            let mut flat = Vec::with_capacity(c.len());
            for x in std::mem::take(c).into_vec() {
                match x {
                    Cond::And(inner) if is_and => flat.extend(inner.into_vec()),
                    Cond::Or(inner) if !is_and => flat.extend(inner.into_vec()),
                    x => flat.push(x),
                }
            }
            if flat.len() == 1 {
                *self = flat.pop().expect("one");
            } else {
                *c = flat.into_boxed_slice();
            }
        }
    }

    fn cost(&self, tests: &[Test]) -> u32 {
        match self {
            Cond::Const(_) => 0,
            Cond::Test(id) => tests[*id as usize].cost(tests),
            Cond::And(c) | Cond::Or(c) | Cond::AtLeast(_, c) => {
                c.iter().map(|c| c.cost(tests)).sum()
            }
            Cond::Not(c) => c.cost(tests),
        }
    }

    /// Sigma conditions have no side effects, so `and`/`or` operands may run in any
    /// order: cheap ones (port bitsets, address tables) first.
    /// Replaces tests whose outcome is known at load time by constants, and simplifies.
    pub fn fold(&mut self, tests: &[Test]) {
        match self {
            Cond::Test(id) => {
                if let Some(b) = tests[*id as usize].constant(tests) {
                    *self = Cond::Const(b);
                }
            }
            Cond::Not(c) => {
                c.fold(tests);
                if let Cond::Const(b) = **c {
                    *self = Cond::Const(!b);
                }
            }
            Cond::And(c) | Cond::Or(c) | Cond::AtLeast(_, c) => {
                c.iter_mut().for_each(|x| x.fold(tests));
            }
            Cond::Const(_) => {}
        }
        let folded = match self {
            Cond::And(c) => {
                if c.iter().any(|x| matches!(x, Cond::Const(false))) {
                    Some(Cond::Const(false))
                } else {
                    let rest: Vec<Cond> = std::mem::take(c)
                        .into_vec()
                        .into_iter()
                        .filter(|x| !matches!(x, Cond::Const(true)))
                        .collect();
                    Some(if rest.is_empty() {
                        Cond::Const(true)
                    } else {
                        Cond::And(rest.into_boxed_slice())
                    })
                }
            }
            Cond::Or(c) => {
                if c.iter().any(|x| matches!(x, Cond::Const(true))) {
                    Some(Cond::Const(true))
                } else {
                    let rest: Vec<Cond> = std::mem::take(c)
                        .into_vec()
                        .into_iter()
                        .filter(|x| !matches!(x, Cond::Const(false)))
                        .collect();
                    Some(if rest.is_empty() {
                        Cond::Const(false)
                    } else {
                        Cond::Or(rest.into_boxed_slice())
                    })
                }
            }
            _ => None,
        };
        if let Some(f) = folded {
            *self = f;
        }
    }

    fn order_by_cost(&mut self, tests: &[Test]) {
        self.fold(tests);
        self.flatten();
        let is_and = matches!(self, Cond::And(_));
        match self {
            Cond::And(c) | Cond::Or(c) => {
                for x in c.iter_mut() {
                    x.order_by_cost(tests);
                }
                // Expected cost before the operator is decided: cost over the chance that an
                // operand decides it (false for `and`, true for `or`). Selections rarely
                // hold and filters (`not ...`) nearly always do, so a filter goes after
                // positive tests of similar cost in an `and` and before them in an `or`.
                c.sort_by_cached_key(|x| {
                    let likely_true = matches!(x, Cond::Not(_));
                    x.cost(tests) * if likely_true == is_and { 10 } else { 1 }
                });
            }
            Cond::AtLeast(_, c) => c.iter_mut().for_each(|x| x.order_by_cost(tests)),
            Cond::Not(c) => c.order_by_cost(tests),
            Cond::Test(_) | Cond::Const(_) => {}
        }
    }
}

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

/// Reads rule paths: files as given, directories recursively for `*.yml` / `*.yaml`, in
/// name order so loads are deterministic.
pub(crate) fn read_paths(paths: &[PathBuf], limits: &Limits) -> (Vec<Source>, Vec<RuleError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut dirs = HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut dirs, &mut files, &mut errors),
            Ok(_) => files.push(p.clone()),
            Err(e) => errors.push(RuleError::Read {
                path: p.clone(),
                message: e.to_string(),
            }),
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for f in files {
        if !seen.insert(std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone())) {
            continue; // the same file through two --rules paths
        }
        match read_file(&f, limits.max_file_bytes) {
            Ok(text) => out.push(Source {
                name: f.display().to_string(),
                ruleset: ruleset_of(&f),
                text,
            }),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// One rule file's text. Reads at most one byte past the budget, so a huge file cannot
/// stall the load.
fn read_file(f: &Path, max_bytes: u64) -> Result<String, RuleError> {
    let read_err = |e: std::io::Error| RuleError::Read {
        path: f.to_path_buf(),
        message: e.to_string(),
    };
    // Opening a FIFO blocks until a writer comes, and a device may never end: only
    // regular files are rule files.
    if !std::fs::metadata(f).map_err(read_err)?.is_file() {
        return Err(RuleError::Read {
            path: f.to_path_buf(),
            message: "not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(f)
        .and_then(|file| file.take(max_bytes + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > max_bytes {
        return Err(RuleError::Read {
            path: f.to_path_buf(),
            message: format!(
                "larger than the budget of {max_bytes} bytes for one rule file \
                 (rules/README.md, Limits)"
            ),
        });
    }
    decode(&f.display().to_string(), bytes)
}

/// Rule files are UTF-8 text. Anything else is refused with the line and byte offset of the
/// first byte that is not, and UTF-16/32 (common from Windows editors) is named by its byte
/// order mark, as a YAML parser would only report garbage there.
pub(crate) fn decode(file: &str, bytes: Vec<u8>) -> Result<String, RuleError> {
    let err = |line: u32, message: String| RuleError::File {
        file: file.to_string(),
        line,
        message,
    };
    let wide = match bytes.as_slice() {
        [0xFF, 0xFE, 0, 0, ..] => Some("UTF-32 (little-endian)"),
        [0, 0, 0xFE, 0xFF, ..] => Some("UTF-32 (big-endian)"),
        [0xFF, 0xFE, ..] => Some("UTF-16 (little-endian)"),
        [0xFE, 0xFF, ..] => Some("UTF-16 (big-endian)"),
        _ => None,
    };
    if let Some(enc) = wide {
        return Err(err(
            1,
            format!(
                "the file is {enc} text (byte order mark at byte offset 0); rule files must be \
                 UTF-8: convert it, e.g. `iconv -f UTF-16 -t UTF-8`"
            ),
        ));
    }
    let line_of =
        |b: &[u8], off: usize| 1 + b[..off].iter().filter(|&&c| c == b'\n').count() as u32;
    // NUL is valid UTF-8 but never YAML text; it is what UTF-16 without a byte order mark
    // looks like.
    if let Some(off) = bytes.iter().position(|&b| b == 0) {
        return Err(err(
            line_of(&bytes, off),
            format!(
                "NUL byte at byte offset {off}; rule files are UTF-8 text (is this UTF-16 \
                 without a byte order mark?)"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let off = e.utf8_error().valid_up_to();
        let b = e.as_bytes();
        err(
            line_of(b, off),
            format!(
                "not UTF-8: byte 0x{:02x} at byte offset {off} does not begin a valid UTF-8 \
                 character; rule files must be UTF-8",
                b[off]
            ),
        )
    })
}

fn ruleset_of(file: &Path) -> String {
    file.parent()
        .and_then(|d| {
            std::fs::canonicalize(d)
                .ok()
                .or_else(|| Some(d.to_path_buf()))
        })
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "local".into())
}

/// Adds the rule files under `dir`. Each directory is read once (`seen` holds canonical
/// paths): two symlinks back to a parent made the walk exponential in the symlink depth.
fn walk(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<RuleError>,
) {
    if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(RuleError::Read {
                path: dir.to_path_buf(),
                message: e.to_string(),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, seen, files, errors);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            files.push(p);
        }
    }
}

/// A named list from a list file.
struct ListDef {
    values: Vec<Node>,
}

/// A list's expansion size and include height (1 for a list that includes none), memoized:
/// lists including each other twice per level double per level, and the size is known
/// before any value is copied.
#[derive(Clone, Copy)]
struct ListShape {
    size: usize,
    height: usize,
}

/// One list on the way down while sizing: its includes, and the next one to visit.
struct SizeFrame {
    name: String,
    includes: Vec<String>,
    next: usize,
    size: usize,
    height: usize,
}

/// A rule value after placeholder expansion.
#[derive(Clone, Debug)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64, String),
    Str(String),
}

impl Val {
    fn from_node(n: &Node) -> Option<Val> {
        let s = n.as_scalar()?;
        Some(match s.resolve() {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(b),
            Value::Int(i) => Val::Int(i),
            // Kept as written too: on a text field `1.10` is the text `1.10`.
            Value::Float(f) => Val::Float(f, s.text.clone()),
            Value::Str(t) => Val::Str(t.to_string()),
        })
    }

    /// Bytes of the value's text, without building it.
    fn text_len(&self) -> usize {
        match self {
            Val::Float(_, t) | Val::Str(t) => t.len(),
            Val::Null => 0,
            // Bounded and small: only for the budget.
            Val::Bool(_) | Val::Int(_) => 8,
        }
    }

    /// The value as text (numbers and booleans as written in YAML 1.2 core form).
    fn text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Bool(b) => Some(b.to_string()),
            Val::Int(i) => Some(i.to_string()),
            Val::Float(_, t) => Some(t.clone()),
            Val::Str(s) => Some(s.clone()),
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Mods {
    mode: Option<StrMode>,
    all: bool,
    re: bool,
    re_i: bool,
    re_m: bool,
    re_s: bool,
    cidr: bool,
    cmp: Option<CmpOp>,
    exists: bool,
    cased: bool,
    expand: bool,
}

/// What resolving one condition needs besides the tree.
struct Resolve<'a> {
    ctx: &'a Ctx<'a>,
    text: &'a str,
    pos: Pos,
    sel: &'a [(String, Pos, Option<Cond>)],
    index: &'a HashMap<&'a str, usize>,
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
    lists: HashMap<String, Vec<ListDef>>,
    list_shapes: HashMap<String, ListShape>,
    /// Lists already expanded for a placeholder, for the next rule that uses them.
    expanded: HashMap<String, Arc<Vec<Val>>>,
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
            lists: HashMap::new(),
            list_shapes: HashMap::new(),
            expanded: HashMap::new(),
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
                if let Err(e) = c.add_lists(src, &doc) {
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

fn is_placeholder_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// `Some(name)` when the list entry is a whole-value include, `%name%`.
fn include_of(n: &Node) -> Option<&str> {
    match n.as_scalar()?.resolve() {
        Value::Str(t) => match find_placeholder(t) {
            Some(("", inner, "")) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

/// The chain of lists that went past the depth budget, shortened in the middle.
fn too_deep(path: &[SizeFrame], child: &str, max_depth: usize) -> String {
    let mut names: Vec<&str> = path.iter().map(|f| f.name.as_str()).collect();
    names.push(child);
    let chain = if names.len() > 8 {
        format!(
            "{} -> ... -> {}",
            names[..3].join(" -> "),
            names[names.len() - 3..].join(" -> ")
        )
    } else {
        names.join(" -> ")
    };
    format!(
        "lists include each other more than {max_depth} levels deep: {chain} \
         (rules/README.md, Limits)"
    )
}

/// Names for a message: all of them when few, else the first ones and a count.
fn name_list(names: &[&str]) -> String {
    const SHOWN: usize = 20;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    }
}

/// A condition for a message: at most 200 characters of it.
fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]).into(),
        None => text.into(),
    }
}

/// Splits `pre%name%post` (one placeholder).
fn find_placeholder(s: &str) -> Option<(&str, &str, &str)> {
    let start = s.find('%')?;
    let len = s[start + 1..].find('%')?;
    let name = &s[start + 1..start + 1 + len];
    if !is_placeholder_name(name) {
        return None;
    }
    Some((&s[..start], name, &s[start + 2 + len..]))
}

impl Compiler {
    fn add_lists(&mut self, src: &Source, doc: &Node) -> Result<(), RuleError> {
        let yaml_err = |pos: Pos, message: String| RuleError::Yaml {
            file: src.name.clone(),
            line: pos.line,
            column: pos.column,
            message,
        };
        for (k, _) in doc.as_map().unwrap_or_default() {
            if k.as_text() != Some("lists") {
                return Err(yaml_err(
                    k.pos,
                    format!(
                        "unknown key `{}` in a list file (a list file has only `lists:`)",
                        k.as_text().unwrap_or("")
                    ),
                ));
            }
        }
        let lists = doc.get("lists").expect("checked by caller");
        let Some(entries) = lists.as_map() else {
            return Err(yaml_err(
                lists.pos,
                "`lists` must map list names to lists of values".into(),
            ));
        };
        for (k, v) in entries {
            let name = k.as_text().unwrap_or("");
            if !is_placeholder_name(name) {
                return Err(yaml_err(
                    k.pos,
                    format!("list name `{name}` may hold only letters, digits, `_`, `-`, `.`"),
                ));
            }
            let values = match &v.kind {
                NodeKind::Seq(items) => items.clone(),
                _ if v.is_null() => Vec::new(),
                _ => {
                    return Err(yaml_err(
                        v.pos,
                        format!("list `{name}` must be a YAML list (use [] for an empty one)"),
                    ));
                }
            };
            for item in &values {
                if item.as_scalar().is_none() {
                    return Err(yaml_err(
                        item.pos,
                        format!(
                            "list `{name}` may hold only scalar values, not {}",
                            item.kind_name()
                        ),
                    ));
                }
            }
            self.lists
                .entry(name.to_string())
                .or_default()
                .push(ListDef { values });
        }
        Ok(())
    }

    /// The `%name%` includes of list `name`, in order (`None`: no such list).
    fn list_includes(&self, name: &str) -> Option<Vec<String>> {
        let defs = self.lists.get(name)?;
        Some(
            defs.iter()
                .flat_map(|d| d.values.iter())
                .filter_map(|n| include_of(n).map(str::to_string))
                .collect(),
        )
    }

    fn no_such_list(&self, name: &str) -> String {
        let mut known: Vec<&str> = self.lists.keys().map(|s| s.as_str()).collect();
        known.sort();
        format!(
            "no list named `{name}` (lists loaded: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                name_list(&known)
            }
        )
    }

    /// How many values list `name` expands to, and how deeply it includes other lists;
    /// refuses cycles, unknown lists and nesting past the budget. Iterative, so a chain of
    /// thousands of lists cannot overflow the stack, and memoized, so sizes that double per
    /// level are computed in time linear in the number of lists.
    fn list_shape(&mut self, name: &str) -> Result<ListShape, String> {
        if let Some(&s) = self.list_shapes.get(name) {
            return Ok(s);
        }
        let max_depth = self.budget.limits.max_depth;
        let frame = |c: &Compiler, name: &str| -> Result<SizeFrame, String> {
            let includes = c.list_includes(name).ok_or_else(|| c.no_such_list(name))?;
            // List files hold only scalars (`add_lists`): every entry is a value or an include.
            let own = c.lists[name].iter().map(|d| d.values.len()).sum::<usize>() - includes.len();
            Ok(SizeFrame {
                name: name.to_string(),
                includes,
                next: 0,
                size: own,
                height: 1,
            })
        };
        let mut path = vec![frame(self, name)?];
        let mut steps = 0u32;
        loop {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(1024) {
                self.budget.check_time()?;
            }
            let top = path.last_mut().expect("not empty until returned");
            if top.next < top.includes.len() {
                let child = top.includes[top.next].clone();
                top.next += 1;
                if path.iter().any(|f| f.name == child) {
                    let mut cycle: Vec<&str> = path.iter().map(|f| f.name.as_str()).collect();
                    cycle.push(&child);
                    return Err(format!(
                        "lists refer to each other in a cycle: {}",
                        cycle.join(" -> ")
                    ));
                }
                let depth = path.len();
                match self.list_shapes.get(&child) {
                    Some(s) if depth + s.height > max_depth => {
                        return Err(too_deep(&path, &child, max_depth));
                    }
                    Some(s) => {
                        let s = *s;
                        let top = path.last_mut().expect("not empty");
                        top.size = top.size.saturating_add(s.size);
                        top.height = top.height.max(s.height + 1);
                    }
                    None if depth >= max_depth => return Err(too_deep(&path, &child, max_depth)),
                    None => {
                        let f = frame(self, &child)?;
                        path.push(f);
                    }
                }
                continue;
            }
            let done = path.pop().expect("not empty");
            let shape = ListShape {
                size: done.size,
                height: done.height,
            };
            self.list_shapes.insert(done.name, shape);
            match path.last_mut() {
                Some(parent) => {
                    parent.size = parent.size.saturating_add(shape.size);
                    parent.height = parent.height.max(shape.height + 1);
                }
                None => return Ok(shape),
            }
        }
    }

    /// The values of list `name`, with whole-value `%other%` references expanded, at most
    /// the budget's count.
    fn list_values(&mut self, name: &str) -> Result<Arc<Vec<Val>>, String> {
        if let Some(v) = self.expanded.get(name) {
            return Ok(v.clone());
        }
        let shape = self.list_shape(name)?;
        let max = self.budget.limits.max_list_values;
        if shape.size > max {
            return Err(format!(
                "list `{name}` expands to {} values, more than the budget of {max} \
                 (rules/README.md, Limits)",
                if shape.size == usize::MAX {
                    "too many".to_string()
                } else {
                    shape.size.to_string()
                }
            ));
        }
        // Depth-first with an explicit stack, in the order the values are written; lists
        // that expand to nothing are not entered (however often they are included).
        let mut out = Vec::with_capacity(shape.size);
        let mut stack: Vec<(&[ListDef], usize, usize)> = vec![(&self.lists[name], 0, 0)];
        let mut steps = 0u32;
        while let Some(top) = stack.last_mut() {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(1024) {
                self.budget.check_time()?;
            }
            let (defs, d, v) = *top;
            let Some(def) = defs.get(d) else {
                stack.pop();
                continue;
            };
            let Some(n) = def.values.get(v) else {
                *top = (defs, d + 1, 0);
                continue;
            };
            *top = (defs, d, v + 1);
            if let Some(inner) = include_of(n) {
                if self.list_shapes.get(inner).is_some_and(|s| s.size > 0) {
                    stack.push((&self.lists[inner], 0, 0));
                }
                continue;
            }
            if let Some(val) = Val::from_node(n) {
                out.push(val);
            }
        }
        let out = Arc::new(out);
        self.expanded.insert(name.to_string(), out.clone());
        Ok(out)
    }

    fn rule(
        &mut self,
        src: &Source,
        doc: &Node,
        notices: &mut Vec<String>,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Rule>, Vec<RuleError>> {
        let title = doc
            .get("title")
            .and_then(|t| t.as_text())
            .map(str::to_string);
        let id = doc.get("id").and_then(|t| t.as_text()).map(str::to_string);
        let label = match (&id, &title) {
            (Some(id), _) => id.clone(),
            (None, Some(t)) => format!("title {t:?}"),
            (None, None) => "(no id, no title)".into(),
        };
        let ctx = Ctx {
            file: &src.name,
            rule: label.clone(),
        };
        let one = |e: RuleError| vec![e];

        if let Some(f) = doc.get("filter")
            && doc.get("detection").is_none()
        {
            return Err(one(ctx.err(
                f.pos,
                "filter",
                "Sigma filter documents are not supported; put exclusions in the rule's \
                 detection or in a list (rules/README.md)",
            )));
        }
        if let Some(a) = doc.get("action") {
            return Err(one(ctx.err(
                a.pos,
                "action",
                "Sigma rule collections (`action: global/reset/repeat`) are not supported; \
                 write each rule as its own document",
            )));
        }
        let Some(title) = title else {
            return Err(one(ctx.err(doc.pos, "title", "a rule needs a `title`")));
        };
        let Some(logsource) = doc.get("logsource") else {
            return Err(one(ctx.err(
                doc.pos,
                "logsource",
                "a rule needs a `logsource`",
            )));
        };
        let category = logsource.get("category").and_then(|n| n.as_text());
        let product = logsource.get("product").and_then(|n| n.as_text());
        let service = logsource.get("service").and_then(|n| n.as_text());
        let rule_category = match category {
            Some("network_connection") => Some(Category::NetworkConnection),
            Some("dns_query") => Some(Category::DnsQuery),
            _ => None,
        };
        let Some(rule_category) =
            rule_category.filter(|_| matches!(product, None | Some("linux")) && service.is_none())
        else {
            notices.push(format!(
                "{}:{}: rule {label}: skipped: log source (category {}, product {}{}) is not \
                 Linux network_connection or dns_query",
                src.name,
                logsource.pos.line,
                category.unwrap_or("none"),
                product.unwrap_or("none"),
                service
                    .map(|s| format!(", service {s}"))
                    .unwrap_or_default(),
            ));
            return Ok(None);
        };
        let id = match id {
            Some(id) => id,
            None => {
                warnings.push(format!(
                    "{}:{}: rule {label}: no `id`; alerts will carry the title as rule.id",
                    src.name, doc.pos.line
                ));
                title.clone()
            }
        };
        for (k, _) in doc.as_map().unwrap_or_default() {
            let key = k.as_text().unwrap_or("");
            if !KNOWN_TOP_KEYS.contains(&key) {
                warnings.push(format!(
                    "{}:{}: rule {label}: top-level key `{key}` is not a Sigma or monitor key; \
                     the monitor does not use it",
                    src.name, k.pos.line
                ));
            }
        }
        let level = match doc.get("level") {
            Some(n) => match n.as_text().and_then(Level::parse) {
                Some(l) => l,
                None => {
                    return Err(one(ctx.err(
                        n.pos,
                        "level",
                        format!(
                            "`{}` is not a Sigma level (informational, low, medium, high, \
                             critical)",
                            n.as_text().unwrap_or("?")
                        ),
                    )));
                }
            },
            None => {
                warnings.push(format!(
                    "{}:{}: rule {label}: no `level`; using medium",
                    src.name, doc.pos.line
                ));
                Level::Medium
            }
        };
        let strings = |key: &str| -> Vec<String> {
            match doc.get(key).map(|n| &n.kind) {
                Some(NodeKind::Seq(items)) => items
                    .iter()
                    .filter_map(|i| i.as_text().map(str::to_string))
                    .collect(),
                Some(NodeKind::Scalar(s)) if !s.text.is_empty() => vec![s.text.clone()],
                _ => Vec::new(),
            }
        };
        let tags = strings("tags");
        let mut techniques: Vec<String> = Vec::new();
        for t in &tags {
            if let Some(rest) = t
                .strip_prefix("attack.t")
                .or_else(|| t.strip_prefix("attack.T"))
                && let Some(tid) = technique_id(rest)
                && !techniques.contains(&tid)
            {
                techniques.push(tid);
            }
        }
        let meta = Arc::new(RuleMeta {
            id: id.clone(),
            name: title.clone(),
            description: doc
                .get("description")
                .and_then(|n| n.as_text())
                .unwrap_or("")
                .trim()
                .to_string(),
            reference: strings("references"),
            ruleset: src.ruleset.clone(),
        });

        let Some(detection) = doc.get("detection") else {
            return Err(one(ctx.err(
                doc.pos,
                "detection",
                "a rule needs a `detection`",
            )));
        };
        let Some(det) = detection.as_map() else {
            return Err(one(ctx.err(
                detection.pos,
                "detection",
                "`detection` must map selection names to field conditions",
            )));
        };
        let mut errors = Vec::new();
        let mut selections: Vec<(String, Pos, Option<Cond>)> = Vec::new();
        let mut condition_node = None;
        let mut gaps = Vec::new();
        let mut maps = Vec::new();
        let mut explain_sel = Vec::new();
        for (k, v) in det {
            let name = k.as_text().unwrap_or("");
            match name {
                "condition" => condition_node = Some(v),
                "timeframe" => errors.push(ctx.err(
                    k.pos,
                    "timeframe",
                    "`timeframe` belongs to aggregation conditions, which are not supported; \
                     use `monitor.window`",
                )),
                _ => match self.selection(&ctx, v, &mut gaps, &mut maps) {
                    Ok(c) => {
                        selections.push((name.to_string(), k.pos, Some(c)));
                        explain_sel.push(ExplainSelection {
                            name: name.to_string(),
                            line: k.pos.line,
                            maps: std::mem::take(&mut maps),
                        });
                    }
                    Err(mut e) => {
                        errors.append(&mut e);
                        selections.push((name.to_string(), k.pos, None));
                    }
                },
            }
        }
        let Some(condition_node) = condition_node else {
            errors.push(ctx.err(detection.pos, "condition", "`detection` has no `condition`"));
            return Err(errors);
        };
        let mut used = vec![false; selections.len()];
        let conditions: Vec<(&str, Pos)> = match &condition_node.kind {
            NodeKind::Scalar(s) => vec![(s.text.as_str(), condition_node.pos)],
            NodeKind::Seq(items) => items
                .iter()
                .map(|i| (i.as_text().unwrap_or(""), i.pos))
                .collect(),
            NodeKind::Map(_) => {
                errors.push(ctx.err(condition_node.pos, "condition", "must be text"));
                return Err(errors);
            }
        };
        let condition_text = conditions
            .iter()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
            .join(" | ");
        let mut alternatives = Vec::new();
        for (text, pos) in conditions {
            match self.condition(&ctx, text, pos, &mut selections, &mut used) {
                Ok(c) => alternatives.push(c),
                Err(e) => errors.push(e),
            }
        }

        let mut labels = Vec::new();
        let mut risk = Vec::new();
        let mut level_cases = Vec::new();
        let mut group = None;
        if let Some(m) = doc.get("monitor") {
            match self.monitor_ext(&ctx, m, &mut selections, &mut used) {
                Ok(ext) => {
                    labels = ext.labels;
                    risk = ext.risk;
                    level_cases = ext.level;
                    group = ext.group;
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for (i, (name, pos, _)) in selections.iter().enumerate() {
            if !used[i] {
                warnings.push(format!(
                    "{}:{}: rule {label}: selection `{name}` is not used by the condition",
                    src.name, pos.line
                ));
            }
        }
        gaps.sort_by_key(|g| (g.line(), *g));
        gaps.dedup();
        let condition = if alternatives.len() == 1 {
            alternatives.pop().expect("one")
        } else {
            Cond::Or(alternatives.into_boxed_slice())
        };
        let falsepositives = strings("falsepositives");
        let status = doc
            .get("status")
            .and_then(|n| n.as_text())
            .map(str::to_string);
        Ok(Some(Rule {
            meta,
            sigma_name: doc
                .get("name")
                .and_then(|n| n.as_text())
                .map(str::to_string),
            category: rule_category,
            level,
            techniques: techniques.into(),
            tags,
            status,
            falsepositives,
            file: src.name.clone(),
            line: doc.pos.line,
            condition,
            labels,
            risk,
            level_cases,
            group,
            gaps,
            explain: Explain {
                condition: condition_text,
                selections: explain_sel,
            },
        }))
    }

    fn condition(
        &mut self,
        ctx: &Ctx,
        text: &str,
        pos: Pos,
        selections: &mut [(String, Pos, Option<Cond>)],
        used: &mut [bool],
    ) -> Result<Cond, RuleError> {
        let max = self.budget.limits.max_condition_bytes;
        if text.len() > max {
            return Err(ctx.err(
                pos,
                "condition",
                format!(
                    "a condition of {} bytes, longer than the budget of {max} (rules/README.md, \
                     Limits)",
                    text.len()
                ),
            ));
        }
        let ast = condition::parse(text, self.budget.limits.max_depth).map_err(|e| {
            ctx.err(
                pos,
                "condition",
                format!(
                    "{} at character {} of `{}`",
                    e.message,
                    e.offset,
                    excerpt(text)
                ),
            )
        })?;
        // Names to selections, hashed: a condition may name selections many times.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(selections.len());
        for (i, (n, _, _)) in selections.iter().enumerate() {
            index.entry(n.as_str()).or_insert(i);
        }
        let r = Resolve {
            ctx,
            text,
            pos,
            sel: selections,
            index: &index,
        };
        self.resolve(&r, &ast, used)
    }

    fn resolve(
        &mut self,
        r: &Resolve,
        ast: &CondAst,
        used: &mut [bool],
    ) -> Result<Cond, RuleError> {
        let (ctx, text, pos, sel) = (r.ctx, r.text, r.pos, r.sel);
        self.budget
            .check_time()
            .map_err(|m| ctx.err(pos, "condition", m))?;
        Ok(match ast {
            CondAst::Ident(name) => {
                let Some(&i) = r.index.get(name.as_str()) else {
                    let known: Vec<&str> = sel.iter().map(|(n, _, _)| n.as_str()).collect();
                    return Err(ctx.err(
                        pos,
                        "condition",
                        format!(
                            "`{name}` in `{}` is not a selection of this rule (selections: {})",
                            excerpt(text),
                            name_list(&known)
                        ),
                    ));
                };
                used[i] = true;
                self.selection_ref(ctx, pos, sel, i)?
            }
            CondAst::Not(inner) => Cond::Not(Box::new(self.resolve(r, inner, used)?)),
            CondAst::And(items) => Cond::And(
                items
                    .iter()
                    .map(|a| self.resolve(r, a, used))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_boxed_slice(),
            ),
            CondAst::Or(items) => Cond::Or(
                items
                    .iter()
                    .map(|a| self.resolve(r, a, used))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_boxed_slice(),
            ),
            CondAst::Of { min, pattern } => {
                let idx: Vec<usize> = sel
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _, _))| match pattern {
                        // Sigma: `them` leaves out selections whose names start with `_`.
                        OfTarget::Them => !n.starts_with('_'),
                        OfTarget::Pattern(p) => condition::name_matches(p, n),
                    })
                    .map(|(i, _)| i)
                    .collect();
                if idx.is_empty() {
                    return Err(ctx.err(
                        pos,
                        "condition",
                        format!(
                            "`{}` in `{}` matches no selection of this rule",
                            match pattern {
                                OfTarget::Them => "them".to_string(),
                                OfTarget::Pattern(p) => p.clone(),
                            },
                            excerpt(text)
                        ),
                    ));
                }
                let items: Vec<Cond> = idx
                    .iter()
                    .map(|&i| {
                        used[i] = true;
                        self.selection_ref(ctx, pos, sel, i)
                    })
                    .collect::<Result<_, _>>()?;
                match min {
                    None => Cond::And(items.into_boxed_slice()),
                    Some(1) => Cond::Or(items.into_boxed_slice()),
                    Some(n) => Cond::AtLeast(*n, items.into_boxed_slice()),
                }
            }
        })
    }

    /// A selection used in a condition. Selections are trees over shared (memoized) test
    /// ids, so using one twice costs a clone of a few ids, not a second evaluation; the
    /// clones still count against the set's budget (`1 of them` a thousand times over a
    /// thousand selections is a million operands).
    fn selection_ref(
        &mut self,
        ctx: &Ctx,
        pos: Pos,
        sel: &[(String, Pos, Option<Cond>)],
        i: usize,
    ) -> Result<Cond, RuleError> {
        Ok(match &sel[i].2 {
            Some(c) => {
                self.budget
                    .add(cond_size(c), 0)
                    .map_err(|m| ctx.err(pos, "condition", m))?;
                clone_cond(c)
            }
            // The selection had errors (already reported); any stand-in will do.
            None => Cond::Or(Box::new([])),
        })
    }

    fn selection(
        &mut self,
        ctx: &Ctx,
        node: &Node,
        gaps: &mut Vec<Gap>,
        maps: &mut Vec<Vec<ExplainItem>>,
    ) -> Result<Cond, Vec<RuleError>> {
        match &node.kind {
            NodeKind::Map(entries) => self.selection_map(ctx, node.pos, entries, gaps, maps),
            NodeKind::Seq(items)
                if !items.is_empty() && items.iter().all(|i| i.as_map().is_some()) =>
            {
                let mut alts = Vec::new();
                let mut errors = Vec::new();
                for i in items {
                    match self.selection_map(ctx, i.pos, i.as_map().expect("checked"), gaps, maps) {
                        Ok(c) => alts.push(c),
                        Err(mut e) => errors.append(&mut e),
                    }
                }
                if errors.is_empty() {
                    Ok(Cond::Or(alts.into_boxed_slice()))
                } else {
                    Err(errors)
                }
            }
            NodeKind::Seq(items) if items.iter().all(|i| i.as_scalar().is_some()) => {
                Err(vec![ctx.err(
                    node.pos,
                    "keyword selection",
                    "keyword (full-text) selections are not supported: connection records have \
                     no message text; test a named field such as CommandLine",
                )])
            }
            _ => Err(vec![ctx.err(
                node.pos,
                "selection",
                format!(
                    "a selection is a mapping of fields to values, or a list of such mappings; \
                     this is {}",
                    node.kind_name()
                ),
            )]),
        }
    }

    fn selection_map(
        &mut self,
        ctx: &Ctx,
        pos: Pos,
        entries: &[(Node, Node)],
        gaps: &mut Vec<Gap>,
        maps: &mut Vec<Vec<ExplainItem>>,
    ) -> Result<Cond, Vec<RuleError>> {
        if entries.is_empty() {
            return Err(vec![ctx.err(pos, "selection", "empty selection")]);
        }
        let mut items = Vec::new();
        let mut errors = Vec::new();
        let mut explained = Vec::new();
        for (k, v) in entries {
            match self.item(ctx, k, v, gaps) {
                Ok(id) => {
                    items.push(Cond::Test(id));
                    let spec = k.as_text().unwrap_or("");
                    explained.push(ExplainItem {
                        spec: spec.to_string(),
                        field: Field::from_name(spec.split('|').next().unwrap_or("")),
                        line: k.pos.line,
                        values: render_values(v),
                        test: id,
                    });
                }
                Err(e) => errors.push(e),
            }
        }
        maps.push(explained);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one")
        } else {
            Cond::And(items.into_boxed_slice())
        })
    }

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

    /// One `Field|modifiers: value(s)` entry to a test.
    fn item(
        &mut self,
        ctx: &Ctx,
        key: &Node,
        value: &Node,
        gaps: &mut Vec<Gap>,
    ) -> Result<TestId, RuleError> {
        let spec = key.as_text().unwrap_or("");
        let mut parts = spec.split('|');
        let name = parts.next().unwrap_or("");
        if name.is_empty() {
            return Err(ctx.err(
                key.pos,
                format!("`{spec}`"),
                "keyword (full-text) matching is not supported; name a field",
            ));
        }
        let Some(field) = Field::from_name(name) else {
            let hint = match Field::suggest(name) {
                Some(s) => format!(" (did you mean `{s}`? field names are case-sensitive)"),
                None => format!(
                    "; fields: {}",
                    super::field::FIELD_NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(ctx.err(
                key.pos,
                format!("field `{name}`"),
                format!("unknown field{hint}"),
            ));
        };
        if field.never_filled() {
            gaps.push(Gap::Unfilled(key.pos.line, field));
        }
        let mods = parse_mods(ctx, key.pos, spec, parts)?;

        // Values, with placeholders expanded.
        let raw: Vec<&Node> = match &value.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            NodeKind::Scalar(_) => vec![value],
            NodeKind::Map(_) => {
                return Err(ctx.err(
                    value.pos,
                    format!("`{spec}`"),
                    "a field's value is a scalar or a list of scalars, not a mapping",
                ));
            }
        };
        let mut values: Vec<(Val, Pos)> = Vec::new();
        for n in raw {
            let Some(v) = Val::from_node(n) else {
                return Err(ctx.err(
                    n.pos,
                    format!("`{spec}`"),
                    format!("list items must be scalars, not {}", n.kind_name()),
                ));
            };
            if mods.expand {
                let Val::Str(s) = &v else {
                    values.push((v, n.pos));
                    continue;
                };
                let Some((pre, list, post)) = find_placeholder(s) else {
                    return Err(ctx.err(
                        n.pos,
                        "modifier `expand`",
                        format!("value `{s}` has no `%name%` placeholder to expand"),
                    ));
                };
                let items = self
                    .list_values(list)
                    .map_err(|m| ctx.err(n.pos, format!("placeholder `%{list}%`"), m))?;
                // Checked before copying: a value list of many large placeholders.
                if values.len().saturating_add(items.len())
                    > self.budget.limits.max_values_per_field
                {
                    return Err(self.too_many_values(ctx, n.pos, spec));
                }
                for item in items.iter() {
                    let v = if pre.is_empty() && post.is_empty() {
                        item.clone()
                    } else {
                        Val::Str(format!("{pre}{}{post}", item.text().unwrap_or_default()))
                    };
                    values.push((v, n.pos));
                }
            } else {
                values.push((v, n.pos));
            }
            if values.len() > self.budget.limits.max_values_per_field {
                return Err(self.too_many_values(ctx, n.pos, spec));
            }
        }
        let construct = format!("`{spec}`");
        let mut bytes = 0usize;
        for (v, p) in &values {
            let len = v.text_len();
            if len > self.budget.limits.max_value_bytes {
                return Err(ctx.err(
                    *p,
                    construct,
                    format!(
                        "a value of {len} bytes, longer than the budget of {} (rules/README.md, \
                         Limits)",
                        self.budget.limits.max_value_bytes
                    ),
                ));
            }
            bytes += len;
        }
        self.budget
            .add(values.len(), bytes)
            .and_then(|()| self.budget.check_time())
            .map_err(|m| ctx.err(value.pos, &construct, m))?;
        self.values_test(ctx, &construct, field, mods, &values, value.pos)
    }

    fn too_many_values(&self, ctx: &Ctx, pos: Pos, spec: &str) -> RuleError {
        ctx.err(
            pos,
            format!("`{spec}`"),
            format!(
                "more than {} values for one field (after expanding placeholders; \
                 rules/README.md, Limits)",
                self.budget.limits.max_values_per_field
            ),
        )
    }

    fn values_test(
        &mut self,
        ctx: &Ctx,
        construct: &str,
        field: Field,
        mods: Mods,
        values: &[(Val, Pos)],
        pos: Pos,
    ) -> Result<TestId, RuleError> {
        if values.is_empty() {
            return Ok(self.intern("never".into(), Test::Never));
        }
        let kind = field.kind();
        if mods.exists {
            let b = match values {
                [(Val::Bool(b), _)] => b,
                [(Val::Str(s), _)] if s.eq_ignore_ascii_case("true") => &true,
                [(Val::Str(s), _)] if s.eq_ignore_ascii_case("false") => &false,
                _ => return Err(ctx.err(pos, construct, "`exists` takes `true` or `false`")),
            };
            return Ok(self.intern(
                format!("exists|{field:?}|{b}"),
                Test::Exists { field, present: *b },
            ));
        }
        if let Some(op) = mods.cmp {
            if kind != FieldKind::Number {
                return Err(ctx.err(
                    pos,
                    construct,
                    format!(
                        "numeric comparison needs a number field; {} is not one",
                        field.ecs_name()
                    ),
                ));
            }
            let mut ids = Vec::new();
            for (v, p) in values {
                let n = match v {
                    Val::Int(i) => *i as f64,
                    Val::Float(f, _) => *f,
                    Val::Str(s) => s
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| ctx.err(*p, construct, format!("`{s}` is not a number")))?,
                    _ => return Err(ctx.err(*p, construct, "comparison needs a number")),
                };
                ids.push(self.intern(
                    format!("cmp|{field:?}|{op:?}|{n}"),
                    Test::Compare {
                        field,
                        op,
                        value: n,
                    },
                ));
            }
            return Ok(self.combine(ids, mods.all));
        }

        // One part per value, then merged by kind (one string-set pattern list, one number
        // set, one address table) unless `all` needs them separately.
        let mut patterns: Vec<u32> = Vec::new();
        let mut numbers: Vec<u64> = Vec::new();
        let mut ips = IpSet::default();
        let mut ip_keys: Vec<String> = Vec::new();
        let mut others: Vec<TestId> = Vec::new();
        let mut all_parts: Vec<TestId> = Vec::new();
        let string_mods = mods.mode.is_some() || mods.re;
        for (v, p) in values {
            // Per value: a value may compile a regular expression.
            self.budget
                .check_time()
                .map_err(|m| ctx.err(*p, construct, m))?;
            if let Val::Null = v {
                let id = self.intern(format!("null|{field:?}"), Test::Null { field });
                others.push(id);
                all_parts.push(id);
                continue;
            }
            let text = v.text().unwrap_or_default();
            match kind {
                FieldKind::Bool => {
                    let b = match v {
                        Val::Bool(b) => *b,
                        Val::Str(s) if s.eq_ignore_ascii_case("true") => true,
                        Val::Str(s) if s.eq_ignore_ascii_case("false") => false,
                        _ => {
                            return Err(ctx.err(
                                *p,
                                construct,
                                format!("this field is true or false; `{text}` can never match"),
                            ));
                        }
                    };
                    if string_mods || mods.cidr {
                        return Err(ctx.err(
                            *p,
                            construct,
                            "string and cidr modifiers do not apply to a true/false field",
                        ));
                    }
                    let id = self.intern(
                        format!("bool|{field:?}|{b}"),
                        Test::Bool { field, value: b },
                    );
                    others.push(id);
                    all_parts.push(id);
                    continue;
                }
                FieldKind::Ip if mods.cidr => {
                    let Some((ip, len)) = matcher::parse_cidr(&text) else {
                        return Err(ctx.err(
                            *p,
                            "modifier `cidr`",
                            format!("`{text}` is not a network (a.b.c.d/n or x:y::/n)"),
                        ));
                    };
                    if mods.all {
                        let mut one = IpSet::default();
                        one.insert(ip, len);
                        one.finish();
                        all_parts.push(self.intern(
                            format!("ip|{field:?}|{ip}/{len}"),
                            Test::Addresses { field, set: one },
                        ));
                    }
                    ips.insert(ip, len);
                    ip_keys.push(format!("{ip}/{len}"));
                    continue;
                }
                FieldKind::Ip if !string_mods && !has_wildcard(&text) => {
                    let Ok(ip) = text.trim().parse::<IpAddr>() else {
                        return Err(ctx.err(
                            *p,
                            construct,
                            format!(
                                "`{text}` is not an IP address; for text matching use a \
                                 wildcard or a modifier (startswith, contains, re)"
                            ),
                        ));
                    };
                    let len = if ip.is_ipv4() { 32 } else { 128 };
                    if mods.all {
                        let mut one = IpSet::default();
                        one.insert(ip, len);
                        one.finish();
                        all_parts.push(self.intern(
                            format!("ip|{field:?}|{ip}/{len}"),
                            Test::Addresses { field, set: one },
                        ));
                    }
                    ips.insert(ip, len);
                    ip_keys.push(format!("{ip}/{len}"));
                    continue;
                }
                FieldKind::Number if !string_mods && !has_wildcard(&text) => {
                    let n = match v {
                        Val::Int(i) if *i >= 0 => *i as u64,
                        Val::Str(s) => s.trim().parse::<u64>().map_err(|_| {
                            ctx.err(
                                *p,
                                construct,
                                format!(
                                    "`{s}` is not a whole number; for text matching use a \
                                     wildcard or a modifier"
                                ),
                            )
                        })?,
                        Val::Float(f, _) if f.fract() == 0.0 && *f >= 0.0 => *f as u64,
                        _ => {
                            return Err(ctx.err(
                                *p,
                                construct,
                                format!("`{text}` can never equal a {}", field.ecs_name()),
                            ));
                        }
                    };
                    if mods.all {
                        all_parts.push(self.intern(
                            format!("num|{field:?}|{n}"),
                            Test::Numbers {
                                field,
                                set: NumSet::new(vec![n]),
                            },
                        ));
                    }
                    numbers.push(n);
                    continue;
                }
                _ => {}
            }
            if mods.cidr {
                return Err(ctx.err(
                    *p,
                    "modifier `cidr`",
                    format!(
                        "`cidr` applies to address fields; {} is not one",
                        field.ecs_name()
                    ),
                ));
            }
            let pat = if mods.re {
                let re = matcher::regex_pattern(&text, mods.re_i, mods.re_m, mods.re_s);
                // Compiled once per distinct expression, however many rules use it.
                if !self.regexes.contains_key(&re) {
                    match strset::check_regex(&re) {
                        Ok(r) => {
                            self.regexes.insert(re.clone(), r);
                        }
                        Err(e) => {
                            return Err(ctx.err(
                                *p,
                                "modifier `re`",
                                format!(
                                    "`{text}` is not a regular expression this engine supports: \
                                     {e}"
                                ),
                            ));
                        }
                    }
                }
                PatternSpec::Regex(re)
            } else {
                PatternSpec::Wildcard {
                    value: text.clone(),
                    mode: mods.mode.unwrap_or(StrMode::Exact),
                    cased: mods.cased,
                }
            };
            let pid = self.pattern(field, pat);
            patterns.push(pid);
            if mods.all {
                all_parts.push(self.intern(
                    format!("pat|{field:?}|{pid}|any"),
                    Test::Patterns {
                        field,
                        patterns: Box::new([pid]),
                        all: false,
                        mask_from: 0,
                        mask: Box::new([]),
                    },
                ));
            }
        }

        if mods.all {
            // Every value: for patterns one test with `all` (each pattern by any element
            // of a list field); the rest one test each.
            let mut ids: Vec<TestId> = Vec::new();
            let mut pats_done = false;
            for id in all_parts {
                if matches!(self.tests[id as usize], Test::Patterns { .. }) {
                    if !pats_done {
                        pats_done = true;
                        let mut sorted = patterns.clone();
                        sorted.sort_unstable();
                        sorted.dedup();
                        ids.push(self.intern(
                            format!("pat|{field:?}|{sorted:?}|all"),
                            Test::Patterns {
                                field,
                                patterns: sorted.into_boxed_slice(),
                                all: true,
                                mask_from: 0,
                                mask: Box::new([]),
                            },
                        ));
                    }
                } else {
                    ids.push(id);
                }
            }
            return Ok(self.combine(ids, true));
        }
        let mut ids = others;
        if !patterns.is_empty() {
            patterns.sort_unstable();
            patterns.dedup();
            ids.push(self.intern(
                format!("pat|{field:?}|{patterns:?}|any"),
                Test::Patterns {
                    field,
                    patterns: patterns.into_boxed_slice(),
                    all: false,
                    mask_from: 0,
                    mask: Box::new([]),
                },
            ));
        }
        if !numbers.is_empty() {
            numbers.sort_unstable();
            numbers.dedup();
            let key = format!("num|{field:?}|{numbers:?}");
            ids.push(self.intern(
                key,
                Test::Numbers {
                    field,
                    set: NumSet::new(numbers),
                },
            ));
        }
        if !ip_keys.is_empty() {
            ips.finish();
            ip_keys.sort();
            ip_keys.dedup();
            ids.push(self.intern(
                format!("ip|{field:?}|{}", ip_keys.join(",")),
                Test::Addresses { field, set: ips },
            ));
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(self.combine(ids, false))
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

    fn monitor_ext(
        &mut self,
        ctx: &Ctx,
        node: &Node,
        sel: &mut [(String, Pos, Option<Cond>)],
        used: &mut [bool],
    ) -> Result<Ext, Vec<RuleError>> {
        let mut ext = Ext::default();
        let Some(entries) = node.as_map() else {
            return Err(vec![ctx.err(node.pos, "monitor", "must be a mapping")]);
        };
        let mut errors = Vec::new();
        let mut window = None;
        // A window with an error is reported as such, not again as missing.
        let mut window_given = false;
        let mut group_fields = None;
        for (k, v) in entries {
            let key = k.as_text().unwrap_or("");
            let r: Result<(), RuleError> = (|| {
                match key {
                    "group_by" => {
                        let NodeKind::Seq(items) = &v.kind else {
                            return Err(ctx.err(
                                v.pos,
                                "monitor.group_by",
                                "must be a list of field names",
                            ));
                        };
                        let mut fields = Vec::new();
                        for i in items {
                            let name = i.as_text().unwrap_or("");
                            let f = Field::from_name(name).ok_or_else(|| {
                                ctx.err(
                                    i.pos,
                                    "monitor.group_by",
                                    format!("unknown field `{name}`"),
                                )
                            })?;
                            fields.push(f);
                        }
                        group_fields = Some(fields);
                    }
                    "window" => {
                        window_given = true;
                        let t = v.as_text().unwrap_or("");
                        window = Some(
                            parse_duration(t).map_err(|m| ctx.err(v.pos, "monitor.window", m))?,
                        );
                    }
                    "labels" => {
                        let Some(m) = v.as_map() else {
                            return Err(ctx.err(
                                v.pos,
                                "monitor.labels",
                                "must map label names to values",
                            ));
                        };
                        for (lk, lv) in m {
                            let name = lk.as_text().unwrap_or("").to_string();
                            if name.is_empty()
                                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                            {
                                return Err(ctx.err(
                                    lk.pos,
                                    "monitor.labels",
                                    format!(
                                        "label name `{name}` may hold only letters, digits and `_`"
                                    ),
                                ));
                            }
                            let cases = self.cases(ctx, lv, "monitor.labels", sel, used, |n| {
                                n.as_text()
                                    .map(str::to_string)
                                    .ok_or("a label value is text")
                            })?;
                            ext.labels.push((name, cases));
                        }
                    }
                    "risk_score" => {
                        ext.risk =
                            self.cases(ctx, v, "monitor.risk_score", sel, used, |n| {
                                match n.as_scalar().map(|s| s.resolve()) {
                                    Some(Value::Int(i)) if (0..=100).contains(&i) => Ok(i as u32),
                                    _ => Err("a risk score is a whole number from 0 to 100"),
                                }
                            })?;
                    }
                    "level" => {
                        ext.level = self.cases(ctx, v, "monitor.level", sel, used, |n| {
                            n.as_text()
                                .and_then(Level::parse)
                                .ok_or("a level is informational, low, medium, high or critical")
                        })?;
                    }
                    other => {
                        return Err(ctx.err(
                            k.pos,
                            format!("monitor.{other}"),
                            "unknown monitor extension key (known: group_by, window, labels, \
                             risk_score, level)",
                        ));
                    }
                }
                Ok(())
            })();
            if let Err(e) = r {
                errors.push(e);
            }
        }
        match (group_fields, window) {
            (Some(fields), Some(w)) => {
                ext.group = Some(GroupSpec {
                    fields,
                    window_ns: w,
                })
            }
            (None, None) => {}
            (Some(_), None) if window_given => {}
            _ => errors.push(ctx.err(
                node.pos,
                "monitor.group_by",
                "`group_by` and `window` go together",
            )),
        }
        if errors.is_empty() {
            Ok(ext)
        } else {
            Err(errors)
        }
    }

    /// A constant, or a list of `{when: CONDITION, value: X}` with an optional last
    /// `{value: X}` default; the first `when` that holds wins.
    fn cases<T>(
        &mut self,
        ctx: &Ctx,
        node: &Node,
        construct: &str,
        sel: &mut [(String, Pos, Option<Cond>)],
        used: &mut [bool],
        value: impl Fn(&Node) -> Result<T, &'static str>,
    ) -> Result<Vec<Case<T>>, RuleError> {
        match &node.kind {
            NodeKind::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(m) = item.as_map() else {
                        return Err(ctx.err(
                            item.pos,
                            construct,
                            "each case is `{when: ..., value: ...}`",
                        ));
                    };
                    for (k, _) in m {
                        if !matches!(k.as_text(), Some("when" | "value")) {
                            return Err(ctx.err(
                                k.pos,
                                construct,
                                format!(
                                    "unknown key `{}` in a case (when, value)",
                                    k.as_text().unwrap_or("")
                                ),
                            ));
                        }
                    }
                    let Some(vn) = item.get("value") else {
                        return Err(ctx.err(item.pos, construct, "a case needs a `value`"));
                    };
                    let v = value(vn).map_err(|m| ctx.err(vn.pos, construct, m))?;
                    let when = match item.get("when") {
                        Some(w) => {
                            let text = w.as_text().unwrap_or("");
                            Some(self.condition(ctx, text, w.pos, sel, used)?)
                        }
                        None if i + 1 != items.len() => {
                            return Err(ctx.err(
                                item.pos,
                                construct,
                                "only the last case may leave out `when` (it is the default)",
                            ));
                        }
                        None => None,
                    };
                    out.push(Case { when, value: v });
                }
                Ok(out)
            }
            NodeKind::Scalar(_) => Ok(vec![Case {
                when: None,
                value: value(node).map_err(|m| ctx.err(node.pos, construct, m))?,
            }]),
            NodeKind::Map(_) => Err(ctx.err(node.pos, construct, "a value or a list of cases")),
        }
    }
}

#[derive(Default)]
struct Ext {
    labels: Vec<(String, Vec<Case<String>>)>,
    risk: Vec<Case<u32>>,
    level: Vec<Case<Level>>,
    group: Option<GroupSpec>,
}

/// `NNNN` or `NNNN.NNN` (after `attack.t`) to the ATT&CK id `TNNNN` / `TNNNN.NNN`: a
/// sub-technique keeps its suffix, so alerts name what the rule's author tagged.
pub(crate) fn technique_id(rest: &str) -> Option<String> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('.') {
        None if digits(rest, 4) => Some(format!("T{rest}")),
        Some((t, sub)) if digits(t, 4) && digits(sub, 3) => Some(format!("T{t}.{sub}")),
        _ => None,
    }
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// The longest `monitor.window`: a year is far past any grouping need, and far below the
/// ~292 years an `i64` of nanoseconds holds.
const MAX_WINDOW_SECS: i64 = 365 * 86_400;

/// `30s`, `10m`, `1h`, `1d` to nanoseconds.
pub(crate) fn parse_duration(t: &str) -> Result<i64, String> {
    let t = t.trim();
    let bad = || format!("`{t}` is not a duration (for example 30s, 10m, 1h, 1d)");
    let unit = t.chars().last().ok_or_else(bad)?;
    // The unit may be any character: cut at its boundary, not one byte back.
    let n: i64 = t[..t.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(bad)?;
    let unit_secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if secs <= MAX_WINDOW_SECS => Ok(secs * 1_000_000_000),
        _ => Err(format!(
            "`{t}` is longer than the longest window, 365d (rules/README.md, Limits)"
        )),
    }
}

fn parse_mods<'a>(
    ctx: &Ctx,
    pos: Pos,
    spec: &str,
    parts: impl Iterator<Item = &'a str>,
) -> Result<Mods, RuleError> {
    let mut m = Mods::default();
    let err =
        |construct: String, msg: &str| ctx.err(pos, construct, format!("{msg} (in `{spec}`)"));
    for p in parts {
        let c = || format!("modifier `{p}`");
        match p {
            "contains" | "startswith" | "endswith" => {
                if m.mode.is_some() || m.re || m.cidr {
                    return Err(err(
                        c(),
                        "only one of contains, startswith, endswith, re, cidr",
                    ));
                }
                m.mode = Some(match p {
                    "contains" => StrMode::Contains,
                    "startswith" => StrMode::StartsWith,
                    _ => StrMode::EndsWith,
                });
            }
            "all" => m.all = true,
            "re" => {
                if m.mode.is_some() || m.cidr {
                    return Err(err(
                        c(),
                        "`re` does not combine with contains/startswith/endswith/cidr",
                    ));
                }
                m.re = true;
            }
            "i" | "m" | "s" => {
                if !m.re {
                    return Err(err(c(), "the `i`, `m`, `s` flags follow `re`"));
                }
                match p {
                    "i" => m.re_i = true,
                    "m" => m.re_m = true,
                    _ => m.re_s = true,
                }
            }
            "cidr" => {
                if m.mode.is_some() || m.re {
                    return Err(err(c(), "`cidr` does not combine with string modifiers"));
                }
                m.cidr = true;
            }
            "lt" | "lte" | "gt" | "gte" => {
                m.cmp = Some(match p {
                    "lt" => CmpOp::Lt,
                    "lte" => CmpOp::Lte,
                    "gt" => CmpOp::Gt,
                    _ => CmpOp::Gte,
                });
            }
            "exists" => m.exists = true,
            "cased" => m.cased = true,
            "expand" => m.expand = true,
            "base64" | "base64offset" | "utf16le" | "utf16be" | "utf16" | "wide" => {
                return Err(err(
                    c(),
                    "not supported: it encodes values for Windows event text; Linux command \
                     lines here are plain text",
                ));
            }
            "windash" => {
                return Err(err(
                    c(),
                    "not supported: Windows command-line dash variants do not apply to Linux",
                ));
            }
            "fieldref" => {
                return Err(err(c(), "not supported: comparing two fields of one event"));
            }
            "" => return Err(err("modifier".into(), "empty modifier (`||`)")),
            _ => return Err(err(c(), "unknown modifier")),
        }
    }
    let exclusive = [
        m.exists,
        m.cmp.is_some(),
        m.mode.is_some() || m.re || m.cidr,
    ];
    if exclusive.iter().filter(|&&x| x).count() > 1 {
        return Err(err(
            "modifiers".into(),
            "`exists`, numeric comparisons and string/cidr modifiers do not combine",
        ));
    }
    if m.cased && (m.re || m.cidr || m.cmp.is_some() || m.exists) {
        return Err(err(
            "modifier `cased`".into(),
            "`cased` applies to plain string matching",
        ));
    }
    Ok(m)
}

/// Nodes in a condition tree (recursive: trees are at most the depth budget plus the few
/// levels of a selection).
fn cond_size(c: &Cond) -> usize {
    match c {
        Cond::Const(_) | Cond::Test(_) => 1,
        Cond::Not(x) => 1 + cond_size(x),
        Cond::And(x) | Cond::Or(x) | Cond::AtLeast(_, x) => {
            1 + x.iter().map(cond_size).sum::<usize>()
        }
    }
}

/// Conditions are small trees of ids; cloning one for a second use is cheap.
fn clone_cond(c: &Cond) -> Cond {
    match c {
        Cond::Const(b) => Cond::Const(*b),
        Cond::Test(i) => Cond::Test(*i),
        Cond::And(x) => Cond::And(x.iter().map(clone_cond).collect()),
        Cond::Or(x) => Cond::Or(x.iter().map(clone_cond).collect()),
        Cond::Not(x) => Cond::Not(Box::new(clone_cond(x))),
        Cond::AtLeast(n, x) => Cond::AtLeast(*n, x.iter().map(clone_cond).collect()),
    }
}

#[cfg(test)]
mod tests {
    //! Hostile input (issue #18): each case failed before the budgets, by aborting (stack
    //! overflow, allocation failure), panicking, taking seconds to minutes, or loading a
    //! rule that silently did not work.
    use std::time::{Duration, Instant};

    use super::*;

    fn src(name: &str, text: String) -> Source {
        Source {
            name: name.into(),
            ruleset: "t".into(),
            text,
        }
    }

    /// A rule with `detection` (indented under `detection:`) and `extra` top-level keys.
    fn rule(detection: &str, extra: &str) -> String {
        format!(
            "title: hostile\nid: hostile-1\nlevel: low\nlogsource:\n  category: \
             network_connection\n  product: linux\ndetection:\n{detection}{extra}"
        )
    }

    /// The errors of compiling `sources` under `limits`, and how long it took.
    fn errors_with(sources: &[Source], limits: Limits) -> (Vec<String>, Duration) {
        let t = Instant::now();
        let c = compile_with(sources, limits);
        let took = t.elapsed();
        // What `rules check` does next with a failed set: it must not panic either.
        let _ = crate::rules::RuleSet::new(c.rules, c.tests, c.correlations);
        (c.errors.iter().map(|e| e.to_string()).collect(), took)
    }

    fn errors(sources: &[Source]) -> Vec<String> {
        let (e, took) = errors_with(sources, Limits::default());
        assert!(took < Duration::from_secs(2), "took {took:?}: {e:?}");
        e
    }

    fn one_error(sources: &[Source], words: &str) -> String {
        let e = errors(sources);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].contains(words), "`{words}` not in: {}", e[0]);
        e.into_iter().next().expect("one")
    }

    #[test]
    fn technique_tags_keep_their_sub_technique() {
        assert_eq!(technique_id("1059"), Some("T1059".to_string()));
        assert_eq!(technique_id("1059.004"), Some("T1059.004".to_string()));
        for bad in [
            "105",
            "10590",
            "1059.04",
            "1059.0041",
            "1059.",
            "abcd",
            "1059.004.1",
        ] {
            assert_eq!(technique_id(bad), None, "{bad}");
        }
    }

    fn list_rule() -> Source {
        src(
            "r.yml",
            rule(
                "  sel:\n    Image|endswith|expand: '%l0%'\n  condition: sel\n",
                "",
            ),
        )
    }

    #[test]
    fn a_long_chain_of_lists_is_refused_without_recursion() {
        // 30,000 lists each including the previous one overflowed the stack.
        let mut lists = String::from("lists:\n  l29999: [/x]\n");
        for i in (0..29_999).rev() {
            lists.push_str(&format!("  l{i}: ['%l{}%', /y{i}]\n", i + 1));
        }
        let e = one_error(
            &[src("lists.yml", lists), list_rule()],
            "more than 64 levels deep",
        );
        assert!(
            e.starts_with("r.yml:9: rule hostile-1: placeholder `%l0%`"),
            "{e}"
        );
        assert!(e.contains("l0 -> l1 -> l2 -> ... ->"), "{e}");
    }

    #[test]
    fn lists_that_double_per_level_are_refused_before_expanding() {
        // Each list including the previous one twice: 771 bytes, 2^31 values.
        let mut lists = String::from("lists:\n  l30: [/a]\n");
        for i in (0..30).rev() {
            lists.push_str(&format!("  l{i}: ['%l{n}%', '%l{n}%']\n", n = i + 1));
        }
        let e = one_error(&[src("lists.yml", lists), list_rule()], "1073741824 values");
        assert!(e.contains("more than the budget of 100000"), "{e}");
        assert!(e.starts_with("r.yml:9:"), "{e}");
        // Lists that double per level but expand to nothing are not walked 2^30 times.
        let mut lists = String::from("lists:\n  l30: []\n  l0: ['%l1%', /v]\n");
        for i in (1..30).rev() {
            lists.push_str(&format!("  l{i}: ['%l{n}%', '%l{n}%']\n", n = i + 1));
        }
        let e = errors(&[src("lists.yml", lists), list_rule()]);
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn list_cycles_are_still_named() {
        let lists = "lists:\n  l0: ['%l1%']\n  l1: [/a, '%l2%']\n  l2: ['%l1%']\n".to_string();
        one_error(
            &[src("lists.yml", lists), list_rule()],
            "cycle: l0 -> l1 -> l2 -> l1",
        );
    }

    #[test]
    fn expanded_lists_keep_their_order_and_values() {
        let lists = "lists:\n  l0: [/a, '%l1%', /d]\n  l1: [/b, '%l2%']\n  l2: [/c]\n  l3: [/e]\n"
            .to_string();
        let mut c = Compiler::new(Limits::default());
        c.add_lists(
            &src("lists.yml", lists.clone()),
            &yaml::parse(&lists, 64).unwrap()[0],
        )
        .unwrap();
        let v: Vec<String> = c
            .list_values("l0")
            .unwrap()
            .iter()
            .filter_map(Val::text)
            .collect();
        assert_eq!(v, ["/a", "/b", "/c", "/d"]);
    }

    #[test]
    fn deep_conditions_are_errors_with_file_and_line() {
        let parens = format!("{}sel{}", "(".repeat(20_000), ")".repeat(20_000));
        let e = one_error(
            &[src(
                "r.yml",
                rule(
                    &format!("  sel:\n    Image: /x\n  condition: {parens}\n"),
                    "",
                ),
            )],
            "nested deeper than 64 levels",
        );
        assert!(e.starts_with("r.yml:10: rule hostile-1: condition:"), "{e}");
        assert!(e.len() < 1000, "the message quotes an excerpt: {e}");
        let nots = format!("{}sel", "not ".repeat(10_000));
        one_error(
            &[src(
                "r.yml",
                rule(&format!("  sel:\n    Image: /x\n  condition: {nots}\n"), ""),
            )],
            "nested deeper than 64 levels",
        );
        // 200,000 `not`s: past the length budget before any parsing.
        let nots = format!("{}sel", "not ".repeat(200_000));
        one_error(
            &[src(
                "r.yml",
                rule(&format!("  sel:\n    Image: /x\n  condition: {nots}\n"), ""),
            )],
            "a condition of 800003 bytes, longer than the budget of 65536",
        );
    }

    #[test]
    fn of_patterns_with_many_stars_resolve_quickly() {
        // YAML keys are at most 1024 characters.
        let name = format!("{}c", "a".repeat(1_000));
        let det = format!(
            "  {name}:\n    Image: /x\n  condition: 1 of {}*b\n",
            "*a".repeat(10)
        );
        one_error(&[src("r.yml", rule(&det, ""))], "matches no selection");
    }

    #[test]
    fn window_with_a_non_ascii_unit_is_an_error_not_a_panic() {
        let det = "  sel:\n    Image: /x\n  condition: sel\n";
        for (w, words) in [
            ("'1é'", "`1é` is not a duration"),
            ("'é'", "`é` is not a duration"),
            ("''", "is not a duration"),
            ("200000d", "longer than the longest window, 365d"),
            ("9223372036854775807s", "longer than the longest window"),
        ] {
            let e = one_error(
                &[src(
                    "r.yml",
                    rule(
                        det,
                        &format!("monitor:\n  group_by: [Image]\n  window: {w}\n"),
                    ),
                )],
                words,
            );
            assert!(
                e.starts_with("r.yml:13: rule hostile-1: monitor.window:"),
                "{e}"
            );
        }
        assert_eq!(parse_duration("365d"), Ok(365 * 86_400 * 1_000_000_000));
        assert_eq!(parse_duration("90s"), Ok(90_000_000_000));
    }

    #[test]
    fn long_values_are_refused_and_values_at_the_budget_compile_quickly() {
        let det = |v: &str| format!("  sel:\n    CommandLine|contains: '{v}'\n  condition: sel\n");
        let e = one_error(
            &[src("r.yml", rule(&det(&"ab".repeat(25_000)), ""))],
            "a value of 50000 bytes, longer than the budget of 4096",
        );
        assert!(e.starts_with("r.yml:9:"), "{e}");
        assert!(errors(&[src("r.yml", rule(&det(&"ab".repeat(2048)), ""))]).is_empty());
    }

    #[test]
    fn many_values_for_one_field_compile_in_linear_time() {
        // 20,000 `contains` values took 4 s (a linear search per value for its key).
        let mut det = String::from("  sel:\n    CommandLine|contains:\n");
        for i in 0..20_000 {
            det.push_str(&format!("      - 'v{i}x'\n"));
        }
        det.push_str("  condition: sel\n");
        assert_eq!(
            errors(&[src("r.yml", rule(&det, ""))]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_compile_deadline_stops_a_load_with_file_and_line() {
        let det = "  sel:\n    Image: /x\n  condition: sel\n";
        let limits = Limits {
            max_compile_time: Duration::ZERO,
            ..Limits::default()
        };
        let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("r.yml:1: compiling the rule set took longer"),
            "{e:?}"
        );
    }

    #[test]
    fn the_compiled_size_budget_counts_values_and_condition_operands() {
        let det = "  sel:\n    Image: [/a, /b, /c]\n  condition: sel or sel or sel\n";
        let limits = |n| Limits {
            max_compiled_items: n,
            ..Limits::default()
        };
        let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(5));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("r.yml:10: rule hostile-1: condition: the rule set grows past 5"),
            "{e:?}"
        );
        let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(2));
        assert!(
            e[0].contains("r.yml:9: rule hostile-1: `Image`: the rule set grows past 2"),
            "{e:?}"
        );
        // The test's mask over the string set (one word) counts too.
        let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(6));
        assert_eq!(
            e,
            [
                "all rules, field process.executable: the rule set grows past 6 compiled values \
              and condition operands here (rules/README.md, Limits)"
            ]
        );
        let (e, _) = errors_with(&[src("r.yml", rule(det, ""))], limits(7));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn values_per_field_are_counted_after_expansion() {
        let mut lists = String::from("lists:\n  big:\n");
        for i in 0..60_000 {
            lists.push_str(&format!("    - /v{i}\n"));
        }
        let det = "  sel:\n    Image|endswith|expand: ['%big%', '%big%']\n  condition: sel\n";
        one_error(
            &[src("lists.yml", lists), src("r.yml", rule(det, ""))],
            "more than 100000 values for one field",
        );
    }

    #[test]
    fn files_that_are_not_utf8_name_the_line_and_byte() {
        let e = decode("r.yml", b"title: x\nid: \xff\xfey\n".to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.yml:2: not UTF-8: byte 0xff at byte offset 13 does not begin a valid UTF-8 \
             character; rule files must be UTF-8"
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("title: x\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let e = decode("w.yml", utf16).unwrap_err().to_string();
        assert!(
            e.starts_with("w.yml:1: the file is UTF-16 (little-endian) text"),
            "{e}"
        );
        let be: Vec<u8> = [0xFE, 0xFF, 0, b't'].to_vec();
        assert!(
            decode("b.yml", be)
                .unwrap_err()
                .to_string()
                .contains("UTF-16 (big-endian)")
        );
        let no_bom: Vec<u8> = "a: 1\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let e = decode("n.yml", no_bom).unwrap_err().to_string();
        assert!(e.starts_with("n.yml:1: NUL byte at byte offset 1;"), "{e}");
        assert_eq!(decode("ok.yml", "é: 1\n".into()).unwrap(), "é: 1\n");
    }

    #[test]
    fn a_selection_of_many_maps_compiles_in_linear_time_and_space() {
        // Maps of two fields: each test's mask spanned the whole string set (tests x
        // patterns words: 700 MB at 50,000 maps), and the rule index re-sorted its anchor
        // once per map.
        let mut det = String::from("  sel:\n");
        for i in 0..5_000 {
            det.push_str(&format!("    - Image: /x{i}\n      User: u{i}\n"));
        }
        det.push_str("  condition: sel\n");
        let t = Instant::now();
        let c = compile_with(&[src("r.yml", rule(&det, ""))], Limits::default());
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let words: usize = c
            .tests
            .tests
            .iter()
            .map(|t| match t {
                Test::Patterns { mask, .. } => mask.len(),
                _ => 0,
            })
            .sum();
        assert!(words <= 2 * c.tests.tests.len(), "{words} mask words");
        let set = crate::rules::RuleSet::new(c.rules, c.tests, c.correlations);
        assert_eq!(set.len(), 1);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn the_deadline_stops_a_long_run_of_regular_expressions_promptly() {
        // 3,000 `re` values took 27 s in a debug build, with no deadline check inside.
        let mut det = String::from("  sel:\n    CommandLine|re:\n");
        for i in 0..3_000 {
            det.push_str(&format!("      - 'a{i}.*b[0-9]+c'\n"));
        }
        det.push_str("  condition: sel\n");
        let limits = Limits {
            max_compile_time: Duration::from_millis(300),
            ..Limits::default()
        };
        let (e, took) = errors_with(&[src("r.yml", rule(&det, ""))], limits);
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("r.yml:"), "{e:?}");
        assert!(
            e[0].contains("took longer than its budget of 0.3 s"),
            "{e:?}"
        );
    }

    #[test]
    fn special_and_oversized_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let big = dir.path().join("big.yml");
        std::fs::write(&big, vec![b'#'; 101]).unwrap();
        let limits = Limits {
            max_file_bytes: 100,
            ..Limits::default()
        };
        let (sources, errors) = read_paths(&[dir.path().to_path_buf()], &limits);
        assert!(sources.is_empty());
        let e: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("big.yml: cannot read rules: larger than the budget of 100 bytes"),
            "{e:?}"
        );
        assert!(
            e[1].contains("fifo.yml: cannot read rules: not a regular file"),
            "{e:?}"
        );
    }

    #[test]
    fn symlinks_back_to_a_parent_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yml"), "lists:\n  a: [/x]\n").unwrap();
        for l in ["a", "b"] {
            std::os::unix::fs::symlink(dir.path(), dir.path().join(l)).unwrap();
        }
        let t = Instant::now();
        let (sources, errors) = read_paths(&[dir.path().to_path_buf()], &Limits::default());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(sources.len(), 1);
    }
}
