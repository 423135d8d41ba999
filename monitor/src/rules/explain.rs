//! `monitor explain`: why a rule did or did not match an event. Evaluates the rule set's
//! own compiled tests and condition (the engine's code, not a second matcher), so the
//! verdict is the engine's by construction.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::field::{Field, FieldKind, FieldValue};
use super::matcher::Scratch;
use super::samples::escape_control;
use super::{RuleEngine, RuleSet};
use crate::record::ConnectionRecord;

/// One entry of a selection: what the rule compares and what the event holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemExplanation {
    /// `Field|modifiers`, as written.
    pub spec: String,
    pub line: u32,
    /// The rule's values as written (abridged).
    pub rule_values: String,
    /// The event's value of the field (`null` when absent).
    pub event_value: Value,
    pub result: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SelectionExplanation {
    pub name: String,
    pub line: u32,
    pub result: bool,
    /// An OR of maps, each an AND of items.
    pub maps: Vec<Vec<ItemExplanation>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleExplanation {
    pub id: String,
    pub title: String,
    pub file: String,
    pub line: u32,
    pub condition: String,
    /// The condition's outcome: the engine's match.
    pub matched: bool,
    pub selections: Vec<SelectionExplanation>,
}

/// A field's value in the event, typed as JSON (addresses as text).
fn value_json(v: FieldValue<'_>) -> Value {
    match v {
        FieldValue::Missing => Value::Null,
        FieldValue::Text(t) => Value::from(t),
        FieldValue::List(l) => Value::from(l.to_vec()),
        FieldValue::Number(n) => Value::from(n),
        FieldValue::Ip(ip) => Value::from(ip.to_string()),
        FieldValue::Bool(b) => Value::from(b),
    }
}

/// The value as the tree shows it: strings quoted, addresses bare.
fn show(v: &Value, ip: bool) -> String {
    match v {
        Value::String(s) if ip => s.clone(),
        Value::String(s) => format!("\"{s}\""),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| show(x, false))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

impl RuleSet {
    /// Explains every rule (or only the rule `only` names) on `rec`. `None` when `only`
    /// names no rule of the set.
    pub fn explain(
        &self,
        rec: &ConnectionRecord,
        only: Option<&str>,
    ) -> Option<Vec<RuleExplanation>> {
        if let Some(id) = only
            && !self.rules.iter().any(|r| r.meta.id == id)
        {
            return None;
        }
        let mut s = Scratch::new(self.tests.tests.len(), &self.tests.sets, self.rules.len());
        s.reset();
        let out = self
            .rules
            .iter()
            .filter(|r| only.is_none_or(|id| r.meta.id == id))
            .map(|r| {
                let selections = r
                    .explain
                    .selections
                    .iter()
                    .map(|sel| {
                        let maps: Vec<Vec<ItemExplanation>> = sel
                            .maps
                            .iter()
                            .map(|m| {
                                m.iter()
                                    .map(|it| ItemExplanation {
                                        spec: it.spec.clone(),
                                        line: it.line,
                                        rule_values: it.values.clone(),
                                        event_value: it
                                            .field
                                            .map(|f| value_json(FieldValue::of(rec, f)))
                                            .unwrap_or(Value::Null),
                                        result: self.tests.eval(it.test, rec, &mut s),
                                    })
                                    .collect()
                            })
                            .collect();
                        SelectionExplanation {
                            name: sel.name.clone(),
                            line: sel.line,
                            result: maps.iter().any(|m| m.iter().all(|i| i.result)),
                            maps,
                        }
                    })
                    .collect();
                RuleExplanation {
                    id: r.meta.id.clone(),
                    title: r.meta.name.clone(),
                    file: r.file.clone(),
                    line: r.line,
                    condition: r.explain.condition.clone(),
                    // A rule never matches records of another category (a
                    // network_connection rule on a DNS query record), whatever its
                    // selections say.
                    matched: r.category.covers(rec) && r.condition.eval(&self.tests, rec, &mut s),
                    selections,
                }
            })
            .collect();
        Some(out)
    }
}

impl RuleEngine {
    /// Explains the engine's rules on `rec` (see `RuleSet::explain`).
    pub fn explain(
        &self,
        rec: &ConnectionRecord,
        only: Option<&str>,
    ) -> Option<Vec<RuleExplanation>> {
        self.rules().explain(rec, only)
    }
}

fn verdict(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// The indented tree a person reads. Every string from the rules or the event has its
/// control characters escaped.
pub fn explain_text(rules: &[RuleExplanation]) -> String {
    let e = |s: &str| escape_control(s).into_owned();
    let mut out = String::new();
    for r in rules {
        let _ = writeln!(
            out,
            "rule {} ({}) {}:{}: {}",
            e(&r.id),
            e(&r.title),
            e(&r.file),
            r.line,
            if r.matched { "MATCH" } else { "no match" }
        );
        let _ = writeln!(
            out,
            "  condition: {} -> {}",
            e(&r.condition),
            verdict(r.matched)
        );
        for sel in &r.selections {
            let _ = writeln!(
                out,
                "  {} {} (line {})",
                verdict(sel.result),
                e(&sel.name),
                sel.line
            );
            let several = sel.maps.len() > 1;
            for (k, m) in sel.maps.iter().enumerate() {
                let indent = if several {
                    let all = m.iter().all(|i| i.result);
                    let _ = writeln!(
                        out,
                        "    {} map {} of {} (or)",
                        verdict(all),
                        k + 1,
                        sel.maps.len()
                    );
                    "      "
                } else {
                    "    "
                };
                for i in m {
                    let _ = writeln!(
                        out,
                        "{indent}{} {}: {}  (line {}; event: {})",
                        verdict(i.result),
                        e(&i.spec),
                        e(&i.rule_values),
                        i.line,
                        e(&show(
                            &i.event_value,
                            i.spec
                                .split('|')
                                .next()
                                .and_then(Field::from_name)
                                .map(Field::kind)
                                == Some(FieldKind::Ip)
                        ))
                    );
                }
            }
        }
    }
    out
}

/// The same as JSON, for tools (serde_json escapes control characters).
pub fn explain_json(rules: &[RuleExplanation]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                json!({
                    "rule": {"id": r.id, "title": r.title, "file": r.file, "line": r.line},
                    "condition": r.condition,
                    "match": r.matched,
                    "selections": r.selections.iter().map(|s| json!({
                        "name": s.name,
                        "line": s.line,
                        "result": s.result,
                        "maps": s.maps.iter().map(|m| m.iter().map(|i| json!({
                            "field": i.spec,
                            "line": i.line,
                            "values": i.rule_values,
                            "event": i.event_value,
                            "result": i.result,
                        })).collect::<Vec<_>>()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::samples::parse_samples;
    use std::sync::Arc;

    /// On every sample of the built-in rules, explain's verdict is the engine's.
    #[test]
    fn explain_agrees_with_the_engine_on_the_builtin_samples() {
        let set = Arc::new(RuleSet::builtin().unwrap());
        let mut n = 0;
        for (name, text) in crate::rules::builtin::SAMPLES {
            for sample in parse_samples(name, text).unwrap() {
                let mut engine = RuleEngine::new(Arc::clone(&set));
                let event = &sample.events[sample.events.len() - 1];
                let fired = engine.matching_rule_ids(event);
                let ex = set.explain(event, None).unwrap();
                assert_eq!(ex.len(), set.len() - set.correlation_count());
                for r in &ex {
                    assert_eq!(r.matched, fired.contains(&r.id), "{name}:{}", sample.line);
                    n += 1;
                }
                // The tree names the condition and every selection.
                let t = explain_text(&ex);
                assert!(t.contains("condition: "), "{t}");
            }
        }
        assert!(n >= 40, "{n}");
    }

    #[test]
    fn event_values_are_escaped_in_the_tree_and_json() {
        let set = RuleSet::builtin().unwrap();
        let line = r#"{"@timestamp":"2026-11-23T10:00:00Z","event":{"kind":"event"},"host":{"hostname":"h1"},"process":{"pid":1,"executable":"/usr/bin/curl\n\u001b[2Jrule x MATCH"},"destination":{"ip":"203.0.113.7","port":8088},"network":{"transport":"tcp"}}"#;
        let rec = ConnectionRecord::from_json_line(line).unwrap().unwrap();
        let ex = set
            .explain(&rec, Some("5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a"))
            .unwrap();
        assert_eq!(ex.len(), 1);
        let t = explain_text(&ex);
        assert!(!t.contains('\u{1b}'), "{t}");
        assert!(t.contains("/usr/bin/curl\\n\\u{1b}[2J"), "{t}");
        assert_eq!(
            t.lines().filter(|l| l.starts_with("rule ")).count(),
            1,
            "{t}"
        );
        let j = explain_json(&ex).to_string();
        assert!(!j.contains('\u{1b}') && !j.contains('\n'), "{j}");
        assert!(set.explain(&rec, Some("no-such-rule")).is_none());
    }
}
