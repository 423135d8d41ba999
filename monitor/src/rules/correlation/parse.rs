//! A `correlation:` document to a `CorrelationRule`, in two steps: `parse` reads the document
//! (its own errors), `resolve` binds the rules and aliases it names once every rule of the
//! load is compiled.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Bounds, CorrelationRule, Kind};
use crate::record::{Level, RuleMeta};
use crate::rules::compile::{Rule, parse_duration, technique_id};
use crate::rules::error::RuleError;
use crate::rules::field::Field;
use crate::rules::limits::Limits;
use crate::rules::load::Source;
use crate::rules::yaml::{Node, NodeKind, Pos, Value};

/// Top-level keys of a correlation document (specification v2, plus `tags`, which
/// SigmaHQ's correlations carry for ATT&CK).
const TOP_KEYS: &[&str] = &[
    "title",
    "id",
    "name",
    "status",
    "description",
    "author",
    "references",
    "date",
    "modified",
    "taxonomy",
    "correlation",
    "falsepositives",
    "level",
    "generate",
    "tags",
    "license",
    "related",
];

/// A parsed correlation whose rule references and aliases are not bound yet.
pub(crate) struct Pending {
    pub file: String,
    pub line: u32,
    /// `id`, else the title (as rule ids are).
    pub label: String,
    pub name: Option<String>,
    pub meta: Arc<RuleMeta>,
    pub level: Level,
    pub techniques: Vec<String>,
    pub tags: Vec<String>,
    pub status: Option<String>,
    pub falsepositives: Vec<String>,
    pub kind: Kind,
    pub rules: Vec<(String, Pos)>,
    pub group_by: Vec<(String, Pos)>,
    pub aliases: Vec<Alias>,
    pub value_names: Vec<(String, Pos)>,
    pub timespan_ns: i64,
    pub timespan: String,
    pub bounds: Bounds,
    pub generate: bool,
    pub fingerprint: String,
}

/// One `aliases` entry: its name and, per rule name, the field it stands for.
#[derive(Debug)]
pub(crate) struct Alias {
    name: String,
    pos: Pos,
    /// (rule name, field name, line of the field)
    fields: Vec<(String, String, Pos)>,
}

struct Ctx<'a> {
    file: &'a str,
    rule: String,
}

impl Ctx<'_> {
    fn err(&self, pos: Pos, construct: &str, message: impl Into<String>) -> RuleError {
        RuleError::Rule {
            file: self.file.to_string(),
            line: pos.line,
            rule: self.rule.clone(),
            construct: construct.to_string(),
            message: message.into(),
        }
    }
}

fn strings(n: Option<&Node>) -> Vec<(String, Pos)> {
    match n.map(|n| (&n.kind, n.pos)) {
        Some((NodeKind::Seq(items), _)) => items
            .iter()
            .filter_map(|i| i.as_text().map(|t| (t.to_string(), i.pos)))
            .collect(),
        Some((NodeKind::Scalar(s), pos)) if !s.text.is_empty() => vec![(s.text.clone(), pos)],
        _ => Vec::new(),
    }
}

fn boolean(ctx: &Ctx, n: &Node, what: &str) -> Result<bool, RuleError> {
    match n.as_scalar().map(|s| s.resolve()) {
        Some(Value::Bool(b)) => Ok(b),
        _ => Err(ctx.err(n.pos, what, "must be true or false")),
    }
}

/// Reads one correlation document. Warnings (unknown top-level keys) go to `warnings`.
pub(crate) fn parse(
    src: &Source,
    doc: &Node,
    limits: &Limits,
    warnings: &mut Vec<String>,
) -> Result<Pending, Vec<RuleError>> {
    let text = |k: &str| doc.get(k).and_then(|n| n.as_text()).map(str::to_string);
    let title = text("title");
    let id = text("id");
    let label = id
        .clone()
        .or_else(|| title.as_ref().map(|t| format!("title {t:?}")))
        .unwrap_or_else(|| "(no id, no title)".into());
    let ctx = Ctx {
        file: &src.name,
        rule: label.clone(),
    };
    let one = |e| vec![e];
    let Some(title) = title else {
        return Err(one(ctx.err(
            doc.pos,
            "title",
            "a correlation rule needs a `title`",
        )));
    };
    for (k, _) in doc.as_map().unwrap_or_default() {
        let key = k.as_text().unwrap_or("");
        if key == "monitor" {
            return Err(one(ctx.err(
                k.pos,
                "monitor",
                "the `monitor:` extension (labels, risk score, grouping) is for detection \
                 rules, not correlation rules; a correlation alerts once per group and window",
            )));
        }
        if key == "detection" || key == "logsource" {
            return Err(one(ctx.err(
                k.pos,
                key,
                "a correlation rule has no `detection` or `logsource` of its own; it \
                 refers to rules that do (`correlation.rules`)",
            )));
        }
        if !TOP_KEYS.contains(&key) {
            warnings.push(format!(
                "{}:{}: rule {label}: top-level key `{key}` is not a Sigma correlation key; \
                 the monitor does not use it",
                src.name, k.pos.line
            ));
        }
    }
    let corr = doc.get("correlation").expect("a correlation document");
    let Some(entries) = corr.as_map() else {
        return Err(one(ctx.err(corr.pos, "correlation", "must be a mapping")));
    };
    let mut errors = Vec::new();
    let mut kind = None;
    let mut rules = Vec::new();
    let mut group_by = None;
    let mut timespan = None;
    let mut condition = None;
    let mut aliases = Vec::new();
    let mut generate = None;
    for (k, v) in entries {
        let key = k.as_text().unwrap_or("");
        match key {
            "type" => match v.as_text() {
                Some("event_count") => kind = Some(Kind::EventCount),
                Some("value_count") => kind = Some(Kind::ValueCount),
                Some("temporal") => kind = Some(Kind::Temporal),
                Some("temporal_ordered") => kind = Some(Kind::TemporalOrdered),
                Some(t @ ("value_sum" | "value_avg" | "value_percentile")) => errors.push(ctx.err(
                    v.pos,
                    &format!("type {t}"),
                    "metric correlations (value_sum, value_avg, value_percentile, \
                         specification 2.1) are not supported: connection records carry no \
                         numbers to sum but ports; use event_count or value_count",
                )),
                other => errors.push(ctx.err(
                    v.pos,
                    "type",
                    format!(
                        "`{}` is not a correlation type (event_count, value_count, temporal, \
                         temporal_ordered)",
                        other.unwrap_or("?")
                    ),
                )),
            },
            "rules" => {
                rules = strings(Some(v));
                if rules.is_empty() {
                    errors.push(ctx.err(v.pos, "rules", "must name at least one rule"));
                }
            }
            "group-by" => group_by = Some(strings(Some(v))),
            "timespan" => match v.as_text().map(parse_duration) {
                Some(Ok(ns)) => timespan = Some((ns, v.as_text().unwrap_or("").to_string())),
                Some(Err(m)) => errors.push(ctx.err(v.pos, "timespan", m)),
                None => errors.push(ctx.err(v.pos, "timespan", "must be text such as 60s")),
            },
            "condition" => condition = Some((k.pos, v)),
            "aliases" => match parse_aliases(&ctx, v) {
                Ok(a) => aliases = a,
                Err(e) => errors.push(e),
            },
            "generate" => match boolean(&ctx, v, "generate") {
                Ok(b) => generate = Some(b),
                Err(e) => errors.push(e),
            },
            _ => errors.push(ctx.err(
                k.pos,
                key,
                "not a key of a Sigma correlation (type, rules, group-by, timespan, \
                 condition, aliases, generate)",
            )),
        }
    }
    if let Some(g) = doc.get("generate") {
        match boolean(&ctx, g, "generate") {
            Ok(b) if generate.is_some_and(|x| x != b) => errors.push(ctx.err(
                g.pos,
                "generate",
                "given twice (top level and in `correlation`) with different values",
            )),
            Ok(b) => generate = Some(b),
            Err(e) => errors.push(e),
        }
    }
    let Some(kind) = kind else {
        if corr.get("type").is_none() {
            errors.push(ctx.err(corr.pos, "type", "`correlation` needs a `type`"));
        }
        return Err(errors);
    };
    if rules.is_empty()
        && !errors
            .iter()
            .any(|e| matches!(e, RuleError::Rule { construct, .. } if construct == "rules"))
    {
        errors.push(ctx.err(corr.pos, "rules", "`correlation` needs `rules`"));
    }
    if rules.len() > limits.max_correlation_rules {
        errors.push(ctx.err(
            corr.pos,
            "rules",
            format!(
                "names {} rules, more than {} (rules/README.md, Limits)",
                rules.len(),
                limits.max_correlation_rules
            ),
        ));
    }
    let group_by = group_by.unwrap_or_else(|| {
        errors.push(ctx.err(
            corr.pos,
            "group-by",
            "`correlation` needs `group-by` (the specification makes it mandatory)",
        ));
        Vec::new()
    });
    let (timespan_ns, timespan) = timespan.unwrap_or_else(|| {
        errors.push(ctx.err(corr.pos, "timespan", "`correlation` needs a `timespan`"));
        (1, String::new())
    });
    let (bounds, value_names) = match condition {
        Some((at, c)) => match parse_condition(&ctx, at, c, kind, limits) {
            Ok(x) => x,
            Err(mut e) => {
                errors.append(&mut e);
                return Err(errors);
            }
        },
        None => match kind {
            Kind::EventCount | Kind::ValueCount => {
                errors.push(ctx.err(
                    corr.pos,
                    "condition",
                    format!("a {} correlation needs a `condition`", kind.as_str()),
                ));
                return Err(errors);
            }
            // Every rule named must appear.
            Kind::Temporal | Kind::TemporalOrdered => (
                Bounds {
                    min: rules.len() as u64,
                    max: None,
                    neq: None,
                },
                Vec::new(),
            ),
        },
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let tags: Vec<String> = strings(doc.get("tags")).into_iter().map(|t| t.0).collect();
    let mut techniques = Vec::new();
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
    let level = match doc.get("level") {
        None => Level::Medium,
        Some(n) => n.as_text().and_then(Level::parse).ok_or_else(|| {
            one(ctx.err(
                n.pos,
                "level",
                "not a Sigma level (informational, low, medium, high, critical)",
            ))
        })?,
    };
    let id = id.unwrap_or_else(|| title.clone());
    let fingerprint = format!(
        "{kind:?}|{rules:?}|{group_by:?}|{aliases:?}|{value_names:?}|{timespan_ns}|{bounds:?}",
        rules = rules.iter().map(|r| &r.0).collect::<Vec<_>>(),
        group_by = group_by.iter().map(|r| &r.0).collect::<Vec<_>>(),
        aliases = aliases
            .iter()
            .map(|a| (
                &a.name,
                a.fields.iter().map(|(r, f, _)| (r, f)).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>(),
        value_names = value_names.iter().map(|r| &r.0).collect::<Vec<_>>(),
    );
    Ok(Pending {
        file: src.name.clone(),
        line: doc.pos.line,
        label,
        name: text("name"),
        meta: Arc::new(RuleMeta {
            id,
            name: title,
            description: text("description").unwrap_or_default().trim().to_string(),
            reference: strings(doc.get("references"))
                .into_iter()
                .map(|r| r.0)
                .collect(),
            ruleset: src.ruleset.clone(),
        }),
        level,
        techniques,
        tags,
        status: text("status"),
        falsepositives: strings(doc.get("falsepositives"))
            .into_iter()
            .map(|r| r.0)
            .collect(),
        kind,
        rules,
        group_by,
        aliases,
        value_names,
        timespan_ns,
        timespan,
        bounds,
        generate: generate.unwrap_or(false),
        fingerprint,
    })
}

fn parse_aliases(ctx: &Ctx, v: &Node) -> Result<Vec<Alias>, RuleError> {
    let Some(map) = v.as_map() else {
        return Err(ctx.err(
            v.pos,
            "aliases",
            "must map alias names to `rule name: field`",
        ));
    };
    let mut out = Vec::new();
    for (k, per_rule) in map {
        let alias = k.as_text().unwrap_or("").to_string();
        let Some(m) = per_rule.as_map() else {
            return Err(ctx.err(
                per_rule.pos,
                &format!("aliases.{alias}"),
                "must map rule names to field names",
            ));
        };
        let mut fields = Vec::new();
        for (r, f) in m {
            let Some(field) = f.as_text() else {
                return Err(ctx.err(f.pos, &format!("aliases.{alias}"), "a field name"));
            };
            fields.push((
                r.as_text().unwrap_or("").to_string(),
                field.to_string(),
                f.pos,
            ));
        }
        out.push(Alias {
            name: alias,
            pos: k.pos,
            fields,
        });
    }
    Ok(out)
}

type Condition = (Bounds, Vec<(String, Pos)>);

/// `at` is the line of the `condition` key (a mapping's own position is its first key's).
fn parse_condition(
    ctx: &Ctx,
    at: Pos,
    c: &Node,
    kind: Kind,
    limits: &Limits,
) -> Result<Condition, Vec<RuleError>> {
    let Some(map) = c.as_map() else {
        return Err(vec![ctx.err(
            at,
            "condition",
            "must be a mapping such as `gte: 10`",
        )]);
    };
    if kind == Kind::TemporalOrdered {
        return Err(vec![ctx.err(
            at,
            "condition",
            "a condition on temporal_ordered (a count of the rules in order) is not \
             supported: the whole sequence must appear; leave the condition out",
        )]);
    }
    let mut errors = Vec::new();
    let mut b = Bounds {
        min: 0,
        max: None,
        neq: None,
    };
    let mut fields = Vec::new();
    let mut any = false;
    for (k, v) in map {
        let key = k.as_text().unwrap_or("");
        if key == "field" {
            fields = strings(Some(v));
            if fields.is_empty() {
                errors.push(ctx.err(v.pos, "condition.field", "must name a field"));
            }
            continue;
        }
        let n = match v.as_scalar().map(|s| s.resolve()) {
            Some(Value::Int(n)) if n >= 0 => n as u64,
            _ => {
                errors.push(ctx.err(
                    v.pos,
                    &format!("condition.{key}"),
                    "must be a whole number, 0 or more",
                ));
                continue;
            }
        };
        if n > limits.max_correlation_count {
            errors.push(ctx.err(
                v.pos,
                &format!("condition.{key}"),
                format!(
                    "{n} is above {}, the largest count a correlation may test (each group \
                     keeps that many events; rules/README.md, Limits)",
                    limits.max_correlation_count
                ),
            ));
            continue;
        }
        any = true;
        match key {
            "gt" => b.min = b.min.max(n + 1),
            "gte" => b.min = b.min.max(n),
            "lt" if n == 0 => errors.push(ctx.err(v.pos, "condition.lt", "`lt: 0` never holds")),
            "lt" => b.max = Some(b.max.map_or(n - 1, |m| m.min(n - 1))),
            "lte" => b.max = Some(b.max.map_or(n, |m| m.min(n))),
            "eq" => {
                b.min = b.min.max(n);
                b.max = Some(b.max.map_or(n, |m| m.min(n)));
            }
            "neq" => b.neq = Some(n),
            _ => errors.push(ctx.err(
                k.pos,
                &format!("condition.{key}"),
                "not a correlation condition (gt, gte, lt, lte, eq, neq, field)",
            )),
        }
    }
    if !any && errors.is_empty() {
        errors.push(ctx.err(
            at,
            "condition",
            "needs a comparison (gt, gte, lt, lte, eq, neq)",
        ));
    }
    match (kind, fields.is_empty()) {
        (Kind::ValueCount, true) if errors.is_empty() => errors.push(ctx.err(
            at,
            "condition.field",
            "a value_count correlation needs `field`: the field whose distinct values count",
        )),
        (Kind::EventCount | Kind::Temporal, false) => errors.push(ctx.err(
            at,
            "condition.field",
            format!("`field` belongs to value_count, not {}", kind.as_str()),
        )),
        _ => {}
    }
    if b.max.is_some_and(|m| m < b.min) {
        errors.push(ctx.err(at, "condition", "the range is empty: it can never hold"));
    }
    if errors.is_empty() {
        Ok((b, fields))
    } else {
        Err(errors)
    }
}

/// Binds a pending correlation's rule references (by `id` or `name`) and fields. `rules` are
/// the load's compiled detection rules; `correlations` the ids and names of every
/// correlation in it (a correlation of correlations is refused by name).
pub(crate) fn resolve(
    p: Pending,
    rules: &[Rule],
    correlations: &HashMap<String, (String, u32)>,
) -> Result<CorrelationRule, Vec<RuleError>> {
    let ctx = Ctx {
        file: &p.file,
        rule: p.label.clone(),
    };
    let mut errors = Vec::new();
    let mut idx = Vec::new();
    for (r, pos) in &p.rules {
        if let Some((f, l)) = correlations.get(r) {
            errors.push(ctx.err(
                *pos,
                &format!("rules: {r}"),
                format!(
                    "refers to the correlation rule at {f}:{l}; chained correlations are not \
                     supported: refer to detection rules"
                ),
            ));
            continue;
        }
        match rules
            .iter()
            .position(|x| x.meta.id == *r || x.sigma_name.as_deref() == Some(r))
        {
            Some(i) if idx.contains(&i) => {
                errors.push(ctx.err(*pos, &format!("rules: {r}"), "named twice"))
            }
            Some(i) => idx.push(i),
            None => errors.push(ctx.err(
                *pos,
                &format!("rules: {r}"),
                "no loaded rule has this id or name (a rule for another log source is \
                 skipped, and cannot be correlated)",
            )),
        }
    }
    let field_of = |name: &str, pos: Pos, i: usize, errors: &mut Vec<RuleError>| -> Field {
        let rule_name = rules[i].sigma_name.as_deref();
        let written = p
            .aliases
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| {
                a.fields
                    .iter()
                    .find(|(r, _, _)| Some(r.as_str()) == rule_name || *r == rules[i].meta.id)
                    .map(|(_, f, fp)| (f.as_str(), *fp))
            })
            .unwrap_or((name, pos));
        match Field::from_name(written.0) {
            Some(f) => f,
            None => {
                let hint = Field::suggest(written.0)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                errors.push(ctx.err(
                    written.1,
                    &format!("field {}", written.0),
                    format!(
                        "unknown field for rule {}{hint}; an alias must name a field for \
                         every rule it is used with",
                        rules[i].meta.id
                    ),
                ));
                Field::HostName
            }
        }
    };
    for Alias {
        name: alias,
        pos,
        fields,
    } in &p.aliases
    {
        for (r, _, fpos) in fields {
            if !idx
                .iter()
                .any(|&i| rules[i].sigma_name.as_deref() == Some(r) || rules[i].meta.id == *r)
            {
                errors.push(ctx.err(
                    *fpos,
                    &format!("aliases.{alias}.{r}"),
                    "names a rule that `rules` does not list",
                ));
            }
        }
        if !p.group_by.iter().any(|(g, _)| g == alias)
            && !p.value_names.iter().any(|(g, _)| g == alias)
        {
            errors.push(ctx.err(
                *pos,
                &format!("aliases.{alias}"),
                "defined but not used in `group-by`",
            ));
        }
    }
    let group_fields: Vec<Vec<Field>> = idx
        .iter()
        .map(|&i| {
            p.group_by
                .iter()
                .map(|(g, pos)| field_of(g, *pos, i, &mut errors))
                .collect()
        })
        .collect();
    let value_fields: Vec<Vec<Field>> = idx
        .iter()
        .map(|&i| {
            p.value_names
                .iter()
                .map(|(g, pos)| field_of(g, *pos, i, &mut errors))
                .collect()
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    if p.kind == Kind::Temporal && p.bounds.min > idx.len() as u64 {
        return Err(vec![ctx.err(
            Pos {
                line: p.line,
                column: 1,
            },
            "condition",
            format!(
                "counts the rules that appeared, but names only {}; it can never hold",
                idx.len()
            ),
        )]);
    }
    Ok(CorrelationRule {
        meta: p.meta,
        level: p.level,
        techniques: p.techniques.into(),
        tags: p.tags,
        status: p.status,
        falsepositives: p.falsepositives,
        file: p.file,
        line: p.line,
        kind: p.kind,
        rule_ids: idx.iter().map(|&i| rules[i].meta.id.clone()).collect(),
        rules: idx,
        group_by: p.group_by.into_iter().map(|g| g.0).collect(),
        split_fields: group_fields
            .iter()
            .map(|fs| fs.iter().partition(|&&f| super::prefix::per_process(f)))
            .collect(),
        group_fields,
        value_names: p.value_names.into_iter().map(|g| g.0).collect(),
        value_fields,
        timespan_ns: p.timespan_ns,
        timespan: p.timespan,
        bounds: p.bounds,
        generate: p.generate,
        fingerprint: p.fingerprint,
    })
}
