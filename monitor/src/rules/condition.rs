//! Sigma condition expressions: `sel and not 1 of filter_*`, with Sigma's precedence
//! (`not` binds tighter than `and`, which binds tighter than `or`), parsed to a `CondAst`;
//! and `Cond`, the compiled condition over test ids that the engine evaluates.

use super::matcher::{Scratch, Test, TestId, Tests};
use crate::record::ConnectionRecord;

/// A parsed condition, before identifiers are resolved to selections.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CondAst {
    Ident(String),
    Not(Box<CondAst>),
    And(Vec<CondAst>),
    Or(Vec<CondAst>),
    /// `1 of X*`, `all of them`, `any of X`: at least `min` (None = all) of the matching
    /// selections.
    Of {
        min: Option<u32>,
        pattern: OfTarget,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OfTarget {
    Them,
    /// A selection name with `*` wildcards.
    Pattern(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    All,
    Any,
    Them,
    Number(u32),
    Word(String),
    Pipe,
}

/// A condition syntax error: what, and the 1-based character offset in the condition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CondError {
    pub offset: usize,
    pub message: String,
}

fn tokenize(s: &str) -> Result<Vec<(Tok, usize)>, CondError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (off, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => out.push((Tok::LParen, off)),
            ')' => out.push((Tok::RParen, off)),
            // Aggregations (`| count() by x > 5`) are refused by the parser; what follows
            // the pipe is not condition syntax, so stop here.
            '|' => {
                out.push((Tok::Pipe, off));
                break;
            }
            c if c.is_alphanumeric() || c == '_' || c == '*' || c == '-' || c == '.' => {
                let start = i;
                while i < chars.len() {
                    let c = chars[i].1;
                    if c.is_alphanumeric() || c == '_' || c == '*' || c == '-' || c == '.' {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let word: String = chars[start..i].iter().map(|&(_, c)| c).collect();
                let tok = match word.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "of" => Tok::Of,
                    "all" => Tok::All,
                    "any" => Tok::Any,
                    "them" => Tok::Them,
                    w if w.bytes().all(|b| b.is_ascii_digit()) => {
                        Tok::Number(w.parse().map_err(|_| CondError {
                            offset: off + 1,
                            message: format!("number `{w}` is too large"),
                        })?)
                    }
                    _ => Tok::Word(word),
                };
                out.push((tok, off));
                continue;
            }
            other => {
                return Err(CondError {
                    offset: off + 1,
                    message: format!("unexpected character `{other}`"),
                });
            }
        }
        i += 1;
    }
    Ok(out)
}

struct P {
    toks: Vec<(Tok, usize)>,
    i: usize,
    len: usize,
    /// Open parentheses and `not`s around the current position. The parser recurses once
    /// per level, and so does everything that walks the tree later: bounded so that no
    /// condition can overflow a stack.
    depth: usize,
    max_depth: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(t, _)| t)
    }
    fn offset(&self) -> usize {
        self.toks
            .get(self.i)
            .map(|&(_, o)| o + 1)
            .unwrap_or(self.len + 1)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, CondError> {
        Err(CondError {
            offset: self.offset(),
            message: message.into(),
        })
    }

    fn or(&mut self) -> Result<CondAst, CondError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.i += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            CondAst::Or(items)
        })
    }

    fn and(&mut self) -> Result<CondAst, CondError> {
        let mut items = vec![self.not()?];
        while self.peek() == Some(&Tok::And) {
            self.i += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            CondAst::And(items)
        })
    }

    /// Enters one nesting level (`(` or `not`), failing past the budget.
    fn enter(&mut self) -> Result<(), CondError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return self.err(format!(
                "nested deeper than {} levels of parentheses and `not` (rules/README.md, Limits)",
                self.max_depth
            ));
        }
        Ok(())
    }

    fn not(&mut self) -> Result<CondAst, CondError> {
        if self.peek() == Some(&Tok::Not) {
            self.enter()?;
            self.i += 1;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(CondAst::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<CondAst, CondError> {
        let Some(tok) = self.peek().cloned() else {
            return self.err("condition ends where a selection name was expected");
        };
        match tok {
            Tok::LParen => {
                self.enter()?;
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("missing `)`");
                }
                self.i += 1;
                self.depth -= 1;
                Ok(e)
            }
            Tok::Number(_) | Tok::All | Tok::Any => {
                let min = match tok {
                    Tok::Number(0) => return self.err("`0 of` is not meaningful"),
                    Tok::Number(n) => Some(n),
                    Tok::Any => Some(1),
                    _ => None,
                };
                self.i += 1;
                if self.peek() != Some(&Tok::Of) {
                    return self.err("expected `of` (as in `1 of selection*`)");
                }
                self.i += 1;
                let pattern = match self.peek().cloned() {
                    Some(Tok::Them) => OfTarget::Them,
                    Some(Tok::Word(w)) => OfTarget::Pattern(w),
                    _ => {
                        return self.err("expected a selection name pattern or `them` after `of`");
                    }
                };
                self.i += 1;
                Ok(CondAst::Of { min, pattern })
            }
            Tok::Word(w) => {
                self.i += 1;
                Ok(CondAst::Ident(w))
            }
            Tok::Pipe => self.err(
                "aggregation expressions (`| count() ...`) are not supported; group alerts with \
                 the `monitor.group_by` extension (rules/README.md)",
            ),
            Tok::RParen => self.err("unexpected `)`"),
            Tok::And | Tok::Or => self.err("`and`/`or` needs a selection on its left"),
            Tok::Not => unreachable!("handled in not()"),
            Tok::Of => self.err("`of` needs `1`, `all` or `any` before it"),
            Tok::Them => self.err("`them` only follows `1 of` or `all of`"),
        }
    }
}

/// Parses a condition nested at most `max_depth` levels (parentheses and `not`).
pub(crate) fn parse(s: &str, max_depth: usize) -> Result<CondAst, CondError> {
    let toks = tokenize(s)?;
    let mut p = P {
        toks,
        i: 0,
        len: s.len(),
        depth: 0,
        max_depth,
    };
    let e = p.or()?;
    if p.i != p.toks.len() {
        return match p.peek() {
            Some(Tok::Pipe) => p.err(
                "aggregation expressions (`| count() ...`) are not supported; group alerts with \
                 the `monitor.group_by` extension (rules/README.md)",
            ),
            Some(Tok::RParen) => p.err("unbalanced `)`"),
            _ => p.err("expected `and`, `or` or the end of the condition"),
        };
    }
    Ok(e)
}

/// Sigma selection-name pattern with `*` wildcards.
///
/// Backtracks only to the last `*` seen, which is complete for `*`-only patterns (a later
/// star can absorb whatever an earlier one would have): O(pattern x name) at worst, where
/// trying every split at every star was exponential in the number of stars.
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i + 1, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            // The last star takes one more byte; retry the rest of the pattern after it.
            star = Some((si, sj + 1));
            i = si;
            j = sj + 1;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
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
    pub fn eval(&self, tests: &Tests, rec: &ConnectionRecord, s: &mut Scratch) -> bool {
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
        rec: &ConnectionRecord,
        s: &mut Scratch,
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
    fn eval_leaf(&self, tests: &Tests, rec: &ConnectionRecord, s: &mut Scratch) -> bool {
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

    pub(super) fn order_by_cost(&mut self, tests: &[Test]) {
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

/// Nodes in a condition tree (recursive: trees are at most the depth budget plus the few
/// levels of a selection).
pub(super) fn cond_size(c: &Cond) -> usize {
    match c {
        Cond::Const(_) | Cond::Test(_) => 1,
        Cond::Not(x) => 1 + cond_size(x),
        Cond::And(x) | Cond::Or(x) | Cond::AtLeast(_, x) => {
            1 + x.iter().map(cond_size).sum::<usize>()
        }
    }
}

/// Conditions are small trees of ids; cloning one for a second use is cheap.
pub(super) fn clone_cond(c: &Cond) -> Cond {
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
    use super::*;

    fn id(s: &str) -> CondAst {
        CondAst::Ident(s.into())
    }

    fn parse_(s: &str) -> Result<CondAst, CondError> {
        parse(s, 64)
    }

    #[test]
    fn precedence_not_and_or() {
        assert_eq!(
            parse_("a or b and not c").unwrap(),
            CondAst::Or(vec![
                id("a"),
                CondAst::And(vec![id("b"), CondAst::Not(Box::new(id("c")))])
            ])
        );
        assert_eq!(
            parse_("(a or b) and c").unwrap(),
            CondAst::And(vec![CondAst::Or(vec![id("a"), id("b")]), id("c")])
        );
    }

    #[test]
    fn quantifiers() {
        assert_eq!(
            parse_("selection and not 1 of filter_*").unwrap(),
            CondAst::And(vec![
                id("selection"),
                CondAst::Not(Box::new(CondAst::Of {
                    min: Some(1),
                    pattern: OfTarget::Pattern("filter_*".into())
                }))
            ])
        );
        assert_eq!(
            parse_("all of them").unwrap(),
            CondAst::Of {
                min: None,
                pattern: OfTarget::Them
            }
        );
    }

    #[test]
    fn errors_have_offsets() {
        let e = parse_("a and (b or c").unwrap_err();
        assert!(e.message.contains(")"));
        let e = parse_("a | count() > 5").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(parse_("a b").is_err());
        assert!(parse_("").is_err());
    }

    #[test]
    fn wildcard_names() {
        assert!(name_matches("filter_*", "filter_main_x"));
        assert!(name_matches("sel*", "sel"));
        assert!(!name_matches("sel*", "xsel"));
        assert!(name_matches("*_img", "selection_img"));
    }

    #[test]
    fn nesting_past_the_budget_is_an_error_not_a_stack_overflow() {
        // Issue #18: 20,000 parentheses and 200,000 `not`s aborted the process.
        let parens = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        let e = parse(&parens, 64).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{}", e.message);
        assert_eq!(
            e.offset, 65,
            "the offset points at the first level too deep"
        );
        let nots = format!("{}a", "not ".repeat(200_000));
        let e = parse(&nots, 64).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{}", e.message);
        // Exactly at the budget still parses.
        let ok = format!("{}a{}", "(".repeat(32), ")".repeat(32));
        assert_eq!(
            parse(&format!("{}{ok}", "not ".repeat(32)), 64).map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn wildcard_names_match_in_polynomial_time() {
        // `*a*a*...*b` against a long name of `a`s was exponential (10 stars: 21 s).
        let pattern = format!("{}*b", "*a".repeat(40));
        let name = "a".repeat(5_000);
        let t = std::time::Instant::now();
        assert!(!name_matches(&pattern, &name));
        assert!(name_matches(&pattern, &format!("{name}b")));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        assert!(name_matches("*", ""));
        assert!(name_matches("a**b", "ab"));
        assert!(name_matches("*_x_*", "sel_x_y"));
        assert!(!name_matches("*_x_*", "sel_x"));
        assert!(!name_matches("", "a"));
        assert!(name_matches("", ""));
    }
}
