//! Strict YAML for rule and list files: a small tree that remembers where every node is.
//!
//! Built on `saphyr-parser`'s event stream (which carries a line and column for every
//! event) instead of a serde deserializer, because every rule error must name its line.
//! Stricter than YAML itself where rule files benefit:
//! - tabs in indentation are refused (SigmaHQ once shipped a tab-indented rule that lenient
//!   parsers read with a different structure than its author meant);
//! - duplicate keys are refused (YAML forbids them; many parsers keep the last silently);
//! - anchors, aliases and non-core tags are refused (no Sigma rule needs them, and they
//!   would make "what does this rule say" depend on distant lines).

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A position in a file: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl Pos {
    fn from_span(span: &Span) -> Self {
        Pos {
            line: span.start.line() as u32,
            column: span.start.col() as u32 + 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    /// Plain (unquoted, not a block): only these resolve to null, booleans and numbers.
    pub plain: bool,
}

/// A scalar resolved with the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn resolve(&self) -> Value<'_> {
        if !self.plain {
            return Value::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
            "true" | "True" | "TRUE" => return Value::Bool(true),
            "false" | "False" | "FALSE" => return Value::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Value::Float(f64::INFINITY);
            }
            "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
            _ => {}
        }
        if let Some(n) = parse_core_int(t) {
            return Value::Int(n);
        }
        if is_core_float(t)
            && let Ok(f) = t.parse::<f64>()
        {
            return Value::Float(f);
        }
        Value::Str(t)
    }
}

fn parse_core_int(t: &str) -> Option<i64> {
    if let Some(h) = t.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    if let Some(o) = t.strip_prefix("0o") {
        return i64::from_str_radix(o, 8).ok();
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(t: &str) -> bool {
    let b = t.strip_prefix(['-', '+']).unwrap_or(t).as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A plain or quoted string scalar's text (numbers and booleans too, as written).
    pub fn as_text(&self) -> Option<&str> {
        self.as_scalar().map(|s| s.text.as_str())
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value of `key` in a mapping (keys are unique: the parser refuses duplicates).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar(s) if s.resolve() == Value::Null)
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax problem, with where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

enum Building {
    Seq(Pos, Vec<Node>),
    /// Entries so far, a key waiting for its value, and the keys seen with their lines
    /// (hashed: a linear search per key made 30,000 keys take seconds).
    Map(Pos, Vec<(Node, Node)>, Option<Node>, HashMap<String, u32>),
}

/// Parses every document in `src`. An empty file yields no documents. Collections nest at
/// most `max_depth` levels: the tree is dropped, cloned and walked recursively.
pub(crate) fn parse(src: &str, max_depth: usize) -> Result<Vec<Node>, YamlError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Building> = Vec::new();
    let mut block_scalar_lines: Vec<(u32, u32)> = Vec::new();
    let mut parser = Parser::new_from_str(src);
    loop {
        let (ev, span) = match parser.next_event() {
            None => break,
            Some(Ok(x)) => x,
            Some(Err(e)) => {
                let pos = Pos {
                    line: e.marker().line() as u32,
                    column: e.marker().col() as u32 + 1,
                };
                // A tab in the indentation at or just after the failure is nearly always its
                // cause; say so rather than repeat the scanner's generic message.
                if let Some(tab) = first_tab_indent(src, &[], Some(pos.line + 1)) {
                    return Err(tab_error(tab, Some(e.info())));
                }
                // The scanner's own bound on flow nesting (`[[[...`), past ours.
                if e.info() == "recursion limit exceeded" {
                    return Err(depth_error(pos, max_depth));
                }
                return Err(YamlError {
                    pos,
                    message: format!("invalid YAML: {}", e.info()),
                });
            }
        };
        let pos = Pos::from_span(&span);
        let node = match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {
                continue;
            }
            Event::DocumentEnd => continue,
            Event::Alias(_) => {
                return Err(YamlError {
                    pos,
                    message: "YAML aliases (*name) are not supported in rule files; write the \
                              value out"
                        .into(),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                check_anchor_tag(pos, anchor, tag.as_deref())?;
                if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    block_scalar_lines.push((span.start.line() as u32, span.end.line() as u32));
                }
                Node {
                    pos,
                    kind: NodeKind::Scalar(Scalar {
                        text: match text {
                            Cow::Borrowed(s) => s.to_string(),
                            Cow::Owned(s) => s,
                        },
                        plain: style == ScalarStyle::Plain && tag.is_none(),
                    }),
                }
            }
            Event::SequenceStart(anchor, tag) => {
                check_anchor_tag(pos, anchor, tag.as_deref())?;
                check_depth(pos, stack.len(), max_depth)?;
                stack.push(Building::Seq(pos, Vec::new()));
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                check_anchor_tag(pos, anchor, tag.as_deref())?;
                check_depth(pos, stack.len(), max_depth)?;
                stack.push(Building::Map(pos, Vec::new(), None, HashMap::new()));
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Building::Seq(p, items)) => Node {
                    pos: p,
                    kind: NodeKind::Seq(items),
                },
                _ => unreachable!("saphyr emits balanced sequence events"),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Building::Map(p, entries, _, _)) => Node {
                    pos: p,
                    kind: NodeKind::Map(entries),
                },
                _ => unreachable!("saphyr emits balanced mapping events"),
            },
        };
        match stack.last_mut() {
            None => docs.push(node),
            Some(Building::Seq(_, items)) => items.push(node),
            Some(Building::Map(_, entries, pending, seen)) => match pending.take() {
                None => {
                    let Some(key) = node.as_scalar() else {
                        return Err(YamlError {
                            pos: node.pos,
                            message: "mapping keys must be plain text, not a list or mapping"
                                .into(),
                        });
                    };
                    if let Some(first) = seen.insert(key.text.clone(), node.pos.line) {
                        return Err(YamlError {
                            pos: node.pos,
                            message: format!(
                                "duplicate key `{}` (first at line {first}); YAML forbids \
                                 duplicate keys and parsers disagree on which one wins",
                                key.text
                            ),
                        });
                    }
                    *pending = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if let Some(tab) = first_tab_indent(src, &block_scalar_lines, None) {
        return Err(tab_error(tab, None));
    }
    Ok(docs)
}

fn check_depth(pos: Pos, open: usize, max_depth: usize) -> Result<(), YamlError> {
    if open >= max_depth {
        return Err(depth_error(pos, max_depth));
    }
    Ok(())
}

fn depth_error(pos: Pos, max_depth: usize) -> YamlError {
    YamlError {
        pos,
        message: format!(
            "lists and mappings nested deeper than {max_depth} levels (rules/README.md, Limits)"
        ),
    }
}

fn check_anchor_tag(
    pos: Pos,
    anchor: usize,
    tag: Option<&saphyr_parser::Tag>,
) -> Result<(), YamlError> {
    if anchor != 0 {
        return Err(YamlError {
            pos,
            message: "YAML anchors (&name) are not supported in rule files; write the value out"
                .into(),
        });
    }
    if let Some(t) = tag
        && !(t.is_yaml_core_schema() && t.suffix == "str")
    {
        return Err(YamlError {
            pos,
            message: format!(
                "YAML tag `{}{}` is not supported in rule files (only !!str)",
                t.handle, t.suffix
            ),
        });
    }
    Ok(())
}

fn tab_error(pos: Pos, scanner: Option<&str>) -> YamlError {
    let mut message =
        "tab character in indentation; YAML indentation must be spaces (replace the tab with \
         spaces)"
            .to_string();
    if let Some(s) = scanner {
        message.push_str(&format!(" [parser: {s}]"));
    }
    YamlError { pos, message }
}

/// The first line (before `until`, if given) whose leading whitespace holds a tab and which
/// has content, skipping lines inside block scalars (where a tab after the indentation is
/// content).
fn first_tab_indent(src: &str, block_lines: &[(u32, u32)], until: Option<u32>) -> Option<Pos> {
    for (i, line) in src.lines().enumerate() {
        let n = i as u32 + 1;
        if until.is_some_and(|u| n > u) {
            break;
        }
        if block_lines.iter().any(|&(s, e)| n > s && n <= e) {
            continue;
        }
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        if lead == line.len() {
            continue; // blank
        }
        if let Some(col) = line[..lead].find('\t') {
            return Some(Pos {
                line: n,
                column: col as u32 + 1,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_(src: &str) -> Result<Vec<Node>, YamlError> {
        parse(src, 64)
    }

    #[test]
    fn positions_and_core_schema() {
        let docs = parse_("a: 1\nb:\n  - 'true'\n  - true\n  - ~\nc: x\n").unwrap();
        let d = &docs[0];
        let b = d.get("b").unwrap();
        assert_eq!(b.pos.line, 3);
        let NodeKind::Seq(items) = &b.kind else {
            panic!()
        };
        assert_eq!(items[0].as_scalar().unwrap().resolve(), Value::Str("true"));
        assert_eq!(items[1].as_scalar().unwrap().resolve(), Value::Bool(true));
        assert_eq!(items[2].as_scalar().unwrap().resolve(), Value::Null);
        assert_eq!(items[2].pos.line, 5);
        assert_eq!(
            d.get("a").unwrap().as_scalar().unwrap().resolve(),
            Value::Int(1)
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse_("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
    }

    #[test]
    fn tab_indentation_is_refused_with_its_line() {
        let e = parse_("a:\n  b: 1\n\t\tc: 2\n").unwrap_err();
        assert_eq!(e.pos.line, 3, "{e:?}");
        assert!(e.message.contains("tab"), "{}", e.message);
    }

    #[test]
    fn tabs_inside_block_scalars_are_content() {
        let docs = parse_("d: |\n    x\n    \ty\ne: 1\n").unwrap();
        assert_eq!(docs[0].get("d").unwrap().as_text(), Some("x\n\ty\n"));
    }

    #[test]
    fn aliases_are_refused() {
        assert!(parse_("a: &x 1\nb: *x\n").is_err());
    }

    #[test]
    fn floats_and_ints() {
        let s = |t: &str| Scalar {
            text: t.into(),
            plain: true,
        };
        assert_eq!(s("1.5").resolve(), Value::Float(1.5));
        assert_eq!(s("-3").resolve(), Value::Int(-3));
        assert_eq!(s("1.2.3").resolve(), Value::Str("1.2.3"));
        assert_eq!(s("10.0.0.1").resolve(), Value::Str("10.0.0.1"));
        assert_eq!(s("0x1F").resolve(), Value::Int(31));
    }

    #[test]
    fn nesting_past_the_budget_is_refused_with_its_line() {
        let deep = format!("a:\n  {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let e = parse(&deep, 64).unwrap_err();
        assert_eq!(e.pos.line, 2, "{e:?}");
        assert!(e.message.contains("deeper than 64"), "{}", e.message);
        // Block style, which the scanner does not bound itself.
        let block = format!("a:\n  {}1\n", "- ".repeat(100_000));
        let e = parse(&block, 64).unwrap_err();
        assert_eq!(e.pos.line, 2, "{e:?}");
        assert!(e.message.contains("deeper than 64"), "{}", e.message);
        let ok = format!("{}1{}", "[".repeat(63), "]".repeat(63));
        assert!(parse(&format!("a: {ok}\n"), 64).is_ok());
    }

    #[test]
    fn many_keys_parse_in_linear_time() {
        // 30,000 keys in one mapping took 3.4 s: each key was compared with every earlier one.
        let mut src = String::new();
        for i in 0..30_000 {
            src.push_str(&format!("k{i}: v\n"));
        }
        src.push_str("k17: again\n");
        let t = std::time::Instant::now();
        let e = parse(&src, 64).unwrap_err();
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(e.pos.line, 30_001);
        assert!(e.message.contains("first at line 18"), "{}", e.message);
    }
}
