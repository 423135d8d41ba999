//! List files (`lists:` documents): named lists of values that rules use through Sigma's
//! `expand` modifier (`Image|endswith|expand: '%script_interpreters%'`). Lists may include
//! other lists (`%name%` as a whole value); sizes and include depth are computed without
//! recursion and before any value is copied, so a hostile list file cannot overflow the
//! stack or exhaust memory.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{RuleError, name_list};
use super::limits::Budget;
use super::load::Source;
use super::yaml::{Node, NodeKind, Pos, Value};

/// The lists of a load, and what was computed from them for the rules that use them.
#[derive(Default)]
pub(super) struct Lists {
    defs: HashMap<String, Vec<ListDef>>,
    shapes: HashMap<String, ListShape>,
    /// Lists already expanded for a placeholder, for the next rule that uses them.
    expanded: HashMap<String, Arc<Vec<Val>>>,
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
pub(super) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64, String),
    Str(String),
}

impl Val {
    pub(super) fn from_node(n: &Node) -> Option<Val> {
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
    pub(super) fn text_len(&self) -> usize {
        match self {
            Val::Float(_, t) | Val::Str(t) => t.len(),
            Val::Null => 0,
            // Bounded and small: only for the budget.
            Val::Bool(_) | Val::Int(_) => 8,
        }
    }

    /// The value as text (numbers and booleans as written in YAML 1.2 core form).
    pub(super) fn text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Bool(b) => Some(b.to_string()),
            Val::Int(i) => Some(i.to_string()),
            Val::Float(_, t) => Some(t.clone()),
            Val::Str(s) => Some(s.clone()),
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

/// Splits `pre%name%post` (one placeholder).
pub(super) fn find_placeholder(s: &str) -> Option<(&str, &str, &str)> {
    let start = s.find('%')?;
    let len = s[start + 1..].find('%')?;
    let name = &s[start + 1..start + 1 + len];
    if !is_placeholder_name(name) {
        return None;
    }
    Some((&s[..start], name, &s[start + 2 + len..]))
}

impl Lists {
    pub(super) fn add(&mut self, src: &Source, doc: &Node) -> Result<(), RuleError> {
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
            self.defs
                .entry(name.to_string())
                .or_default()
                .push(ListDef { values });
        }
        Ok(())
    }

    /// The `%name%` includes of list `name`, in order (`None`: no such list).
    fn includes(&self, name: &str) -> Option<Vec<String>> {
        let defs = self.defs.get(name)?;
        Some(
            defs.iter()
                .flat_map(|d| d.values.iter())
                .filter_map(|n| include_of(n).map(str::to_string))
                .collect(),
        )
    }

    fn missing(&self, name: &str) -> String {
        let mut known: Vec<&str> = self.defs.keys().map(|s| s.as_str()).collect();
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
    fn shape(&mut self, name: &str, budget: &Budget) -> Result<ListShape, String> {
        if let Some(&s) = self.shapes.get(name) {
            return Ok(s);
        }
        let max_depth = budget.limits.max_depth;
        let frame = |c: &Lists, name: &str| -> Result<SizeFrame, String> {
            let includes = c.includes(name).ok_or_else(|| c.missing(name))?;
            // List files hold only scalars (`add_lists`): every entry is a value or an include.
            let own = c.defs[name].iter().map(|d| d.values.len()).sum::<usize>() - includes.len();
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
                budget.check_time()?;
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
                match self.shapes.get(&child) {
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
            self.shapes.insert(done.name, shape);
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
    pub(super) fn values(&mut self, name: &str, budget: &Budget) -> Result<Arc<Vec<Val>>, String> {
        if let Some(v) = self.expanded.get(name) {
            return Ok(v.clone());
        }
        let shape = self.shape(name, budget)?;
        let max = budget.limits.max_list_values;
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
        let mut stack: Vec<(&[ListDef], usize, usize)> = vec![(&self.defs[name], 0, 0)];
        let mut steps = 0u32;
        while let Some(top) = stack.last_mut() {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(1024) {
                budget.check_time()?;
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
                if self.shapes.get(inner).is_some_and(|s| s.size > 0) {
                    stack.push((&self.defs[inner], 0, 0));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::limits::Limits;
    use crate::rules::yaml;

    #[test]
    fn expanded_lists_keep_their_order_and_values() {
        let lists = "lists:\n  l0: [/a, '%l1%', /d]\n  l1: [/b, '%l2%']\n  l2: [/c]\n  l3: [/e]\n"
            .to_string();
        let mut lists_of = Lists::default();
        lists_of
            .add(
                &Source {
                    name: "lists.yml".into(),
                    ruleset: "t".into(),
                    text: lists.clone(),
                },
                &yaml::parse(&lists, 64).unwrap()[0],
            )
            .unwrap();
        let v: Vec<String> = lists_of
            .values("l0", &Budget::start(Limits::default()))
            .unwrap()
            .iter()
            .filter_map(Val::text)
            .collect();
        assert_eq!(v, ["/a", "/b", "/c", "/d"]);
    }
}
