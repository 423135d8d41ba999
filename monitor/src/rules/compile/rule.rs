//! A rule document: its header (title, id, log source, level, tags) and its detection.

use std::sync::Arc;

use super::extension::Ext;
use super::{Category, Compiler, Ctx, Explain, ExplainSelection, Gap, KNOWN_TOP_KEYS, Rule};
use crate::record::{Level, RuleMeta};
use crate::rules::condition::Cond;
use crate::rules::error::RuleError;
use crate::rules::load::Source;
use crate::rules::yaml::{Node, NodeKind, Pos};

/// What a rule is, as opposed to what it matches.
struct Header {
    meta: Arc<RuleMeta>,
    category: Category,
    level: Level,
    techniques: Vec<String>,
    tags: Vec<String>,
}

/// A rule's detection and `monitor:` key, compiled.
struct Detection {
    condition: Cond,
    ext: Ext,
    gaps: Vec<Gap>,
    explain: Explain,
}

impl Compiler {
    /// A rule document to a rule; `None` for a rule of another log source (a notice).
    pub(super) fn rule(
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
            rule: label,
        };
        let Some(header) =
            header(src, doc, &ctx, title, id, notices, warnings).map_err(|e| vec![e])?
        else {
            return Ok(None);
        };
        let detection = self.detection(src, doc, &ctx, warnings)?;
        Ok(Some(Rule {
            meta: header.meta,
            sigma_name: doc
                .get("name")
                .and_then(|n| n.as_text())
                .map(str::to_string),
            category: header.category,
            level: header.level,
            techniques: header.techniques.into(),
            tags: header.tags,
            status: doc
                .get("status")
                .and_then(|n| n.as_text())
                .map(str::to_string),
            falsepositives: strings(doc, "falsepositives"),
            file: src.name.clone(),
            line: doc.pos.line,
            condition: detection.condition,
            labels: detection.ext.labels,
            risk: detection.ext.risk,
            level_cases: detection.ext.level,
            group: detection.ext.group,
            gaps: detection.gaps,
            explain: detection.explain,
        }))
    }

    /// `detection` (selections and conditions) and the `monitor:` key, whose cases refer to
    /// the same selections.
    fn detection(
        &mut self,
        src: &Source,
        doc: &Node,
        ctx: &Ctx,
        warnings: &mut Vec<String>,
    ) -> Result<Detection, Vec<RuleError>> {
        let Some(detection) = doc.get("detection") else {
            return Err(vec![ctx.err(
                doc.pos,
                "detection",
                "a rule needs a `detection`",
            )]);
        };
        let Some(det) = detection.as_map() else {
            return Err(vec![ctx.err(
                detection.pos,
                "detection",
                "`detection` must map selection names to field conditions",
            )]);
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
                _ => match self.selection(ctx, v, &mut gaps, &mut maps) {
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
            match self.condition(ctx, text, pos, &mut selections, &mut used) {
                Ok(c) => alternatives.push(c),
                Err(e) => errors.push(e),
            }
        }

        let mut ext = Ext::default();
        if let Some(m) = doc.get("monitor") {
            match self.monitor_ext(ctx, m, &mut selections, &mut used) {
                Ok(e) => ext = e,
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for (i, (name, pos, _)) in selections.iter().enumerate() {
            if !used[i] {
                warnings.push(format!(
                    "{}:{}: rule {}: selection `{name}` is not used by the condition",
                    src.name, ctx.rule, pos.line
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
        Ok(Detection {
            condition,
            ext,
            gaps,
            explain: Explain {
                condition: condition_text,
                selections: explain_sel,
            },
        })
    }
}

/// The header of a rule; `None` (with a notice) for a log source other than ours.
fn header(
    src: &Source,
    doc: &Node,
    ctx: &Ctx,
    title: Option<String>,
    id: Option<String>,
    notices: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Header>, RuleError> {
    let label = &ctx.rule;
    if let Some(f) = doc.get("filter")
        && doc.get("detection").is_none()
    {
        return Err(ctx.err(
            f.pos,
            "filter",
            "Sigma filter documents are not supported; put exclusions in the rule's \
             detection or in a list (rules/README.md)",
        ));
    }
    if let Some(a) = doc.get("action") {
        return Err(ctx.err(
            a.pos,
            "action",
            "Sigma rule collections (`action: global/reset/repeat`) are not supported; \
             write each rule as its own document",
        ));
    }
    let Some(title) = title else {
        return Err(ctx.err(doc.pos, "title", "a rule needs a `title`"));
    };
    let Some(logsource) = doc.get("logsource") else {
        return Err(ctx.err(doc.pos, "logsource", "a rule needs a `logsource`"));
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
                return Err(ctx.err(
                    n.pos,
                    "level",
                    format!(
                        "`{}` is not a Sigma level (informational, low, medium, high, \
                         critical)",
                        n.as_text().unwrap_or("?")
                    ),
                ));
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
    let tags = strings(doc, "tags");
    let techniques = techniques(&tags);
    let meta = Arc::new(RuleMeta {
        id: id.clone(),
        name: title.clone(),
        description: doc
            .get("description")
            .and_then(|n| n.as_text())
            .unwrap_or("")
            .trim()
            .to_string(),
        reference: strings(doc, "references"),
        ruleset: src.ruleset.clone(),
    });
    Ok(Some(Header {
        meta,
        category: rule_category,
        level,
        techniques,
        tags,
    }))
}

/// A key's text values: a list of strings, or one non-empty string.
fn strings(doc: &Node, key: &str) -> Vec<String> {
    match doc.get(key).map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items
            .iter()
            .filter_map(|i| i.as_text().map(str::to_string))
            .collect(),
        Some(NodeKind::Scalar(s)) if !s.text.is_empty() => vec![s.text.clone()],
        _ => Vec::new(),
    }
}

/// ATT&CK technique ids from `attack.tNNNN[.NNN]` tags, each once, in tag order.
fn techniques(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        if let Some(rest) = t
            .strip_prefix("attack.t")
            .or_else(|| t.strip_prefix("attack.T"))
            && let Some(tid) = technique_id(rest)
            && !out.contains(&tid)
        {
            out.push(tid);
        }
    }
    out
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
