//! One `Field|modifiers: value(s)` entry to a test: modifiers checked, placeholders
//! expanded from lists, values checked against the field's kind and the budgets, and the
//! values merged by kind (one pattern list, one number set, one address table).

use std::net::IpAddr;

use super::{Compiler, Ctx, Gap};
use crate::rules::error::RuleError;
use crate::rules::field::{Field, FieldKind};
use crate::rules::lists::{Val, find_placeholder};
use crate::rules::matcher::{self, CmpOp, IpSet, NumSet, Test, TestId};
use crate::rules::strset::{self, PatternSpec, StrMode};
use crate::rules::yaml::{Node, NodeKind, Pos};

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

impl Compiler {
    /// One `Field|modifiers: value(s)` entry to a test.
    pub(super) fn item(
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
                    crate::rules::field::FIELD_NAMES
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
                    .lists
                    .values(list, &self.budget)
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
        if mods.exists {
            return self.exists_test(ctx, construct, field, values, pos);
        }
        if let Some(op) = mods.cmp {
            return self.compare_test(ctx, construct, field, op, mods.all, values, pos);
        }
        // One part per value, then merged by kind (one string-set pattern list, one number
        // set, one address table) unless `all` needs them separately.
        let mut parts = Parts::default();
        for (v, p) in values {
            // Per value: a value may compile a regular expression.
            self.budget
                .check_time()
                .map_err(|m| ctx.err(*p, construct, m))?;
            self.value_part(ctx, construct, field, mods, v, *p, &mut parts)?;
        }
        Ok(if mods.all {
            self.all_values(field, parts)
        } else {
            self.any_value(field, parts)
        })
    }

    /// `Field|exists: true/false`.
    fn exists_test(
        &mut self,
        ctx: &Ctx,
        construct: &str,
        field: Field,
        values: &[(Val, Pos)],
        pos: Pos,
    ) -> Result<TestId, RuleError> {
        let b = match values {
            [(Val::Bool(b), _)] => b,
            [(Val::Str(s), _)] if s.eq_ignore_ascii_case("true") => &true,
            [(Val::Str(s), _)] if s.eq_ignore_ascii_case("false") => &false,
            _ => return Err(ctx.err(pos, construct, "`exists` takes `true` or `false`")),
        };
        Ok(self.intern(
            format!("exists|{field:?}|{b}"),
            Test::Exists { field, present: *b },
        ))
    }

    /// `Field|lt/lte/gt/gte: N`: one comparison per value.
    #[allow(clippy::too_many_arguments)]
    fn compare_test(
        &mut self,
        ctx: &Ctx,
        construct: &str,
        field: Field,
        op: CmpOp,
        all: bool,
        values: &[(Val, Pos)],
        pos: Pos,
    ) -> Result<TestId, RuleError> {
        if field.kind() != FieldKind::Number {
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
        Ok(self.combine(ids, all))
    }

    /// One value into the parts of its kind (and, with `all`, a test of its own).
    #[allow(clippy::too_many_arguments)]
    fn value_part(
        &mut self,
        ctx: &Ctx,
        construct: &str,
        field: Field,
        mods: Mods,
        v: &Val,
        p: Pos,
        parts: &mut Parts,
    ) -> Result<(), RuleError> {
        // Per value: a value may compile a regular expression.
        self.budget
            .check_time()
            .map_err(|m| ctx.err(p, construct, m))?;
        if let Val::Null = v {
            let id = self.intern(format!("null|{field:?}"), Test::Null { field });
            parts.others.push(id);
            parts.all_parts.push(id);
            return Ok(());
        }
        let text = v.text().unwrap_or_default();
        let string_mods = mods.mode.is_some() || mods.re;
        match field.kind() {
            FieldKind::Bool => {
                let b = match v {
                    Val::Bool(b) => *b,
                    Val::Str(s) if s.eq_ignore_ascii_case("true") => true,
                    Val::Str(s) if s.eq_ignore_ascii_case("false") => false,
                    _ => {
                        return Err(ctx.err(
                            p,
                            construct,
                            format!("this field is true or false; `{text}` can never match"),
                        ));
                    }
                };
                if string_mods || mods.cidr {
                    return Err(ctx.err(
                        p,
                        construct,
                        "string and cidr modifiers do not apply to a true/false field",
                    ));
                }
                let id = self.intern(
                    format!("bool|{field:?}|{b}"),
                    Test::Bool { field, value: b },
                );
                parts.others.push(id);
                parts.all_parts.push(id);
                return Ok(());
            }
            FieldKind::Ip if mods.cidr => {
                let Some((ip, len)) = matcher::parse_cidr(&text) else {
                    return Err(ctx.err(
                        p,
                        "modifier `cidr`",
                        format!("`{text}` is not a network (a.b.c.d/n or x:y::/n)"),
                    ));
                };
                if mods.all {
                    let mut one = IpSet::default();
                    one.insert(ip, len);
                    one.finish();
                    parts.all_parts.push(self.intern(
                        format!("ip|{field:?}|{ip}/{len}"),
                        Test::Addresses { field, set: one },
                    ));
                }
                parts.ips.insert(ip, len);
                parts.ip_keys.push(format!("{ip}/{len}"));
                return Ok(());
            }
            FieldKind::Ip if !string_mods && !has_wildcard(&text) => {
                let Ok(ip) = text.trim().parse::<IpAddr>() else {
                    return Err(ctx.err(
                        p,
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
                    parts.all_parts.push(self.intern(
                        format!("ip|{field:?}|{ip}/{len}"),
                        Test::Addresses { field, set: one },
                    ));
                }
                parts.ips.insert(ip, len);
                parts.ip_keys.push(format!("{ip}/{len}"));
                return Ok(());
            }
            FieldKind::Number if !string_mods && !has_wildcard(&text) => {
                let n = match v {
                    Val::Int(i) if *i >= 0 => *i as u64,
                    Val::Str(s) => s.trim().parse::<u64>().map_err(|_| {
                        ctx.err(
                            p,
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
                            p,
                            construct,
                            format!("`{text}` can never equal a {}", field.ecs_name()),
                        ));
                    }
                };
                if mods.all {
                    parts.all_parts.push(self.intern(
                        format!("num|{field:?}|{n}"),
                        Test::Numbers {
                            field,
                            set: NumSet::new(vec![n]),
                        },
                    ));
                }
                parts.numbers.push(n);
                return Ok(());
            }
            _ => {}
        }
        if mods.cidr {
            return Err(ctx.err(
                p,
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
                            p,
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
        parts.patterns.push(pid);
        if mods.all {
            parts.all_parts.push(self.intern(
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
        Ok(())
    }

    /// `|all`: every value must match; for patterns one test with `all` (each pattern by
    /// any element of a list field), the rest one test each.
    fn all_values(&mut self, field: Field, parts: Parts) -> TestId {
        let mut ids: Vec<TestId> = Vec::new();
        let mut pats_done = false;
        for id in parts.all_parts {
            if matches!(self.tests[id as usize], Test::Patterns { .. }) {
                if !pats_done {
                    pats_done = true;
                    let mut sorted = parts.patterns.clone();
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
        self.combine(ids, true)
    }

    /// Any value matches: one test per kind, combined.
    fn any_value(&mut self, field: Field, parts: Parts) -> TestId {
        let mut ids = parts.others;
        if !parts.patterns.is_empty() {
            let mut patterns = parts.patterns;
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
        if !parts.numbers.is_empty() {
            let mut numbers = parts.numbers;
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
        if !parts.ip_keys.is_empty() {
            let (mut ips, mut ip_keys) = (parts.ips, parts.ip_keys);
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
        self.combine(ids, false)
    }
}

/// The tests of one entry's values, merged by kind as they are read.
#[derive(Default)]
struct Parts {
    patterns: Vec<u32>,
    numbers: Vec<u64>,
    ips: IpSet,
    ip_keys: Vec<String>,
    others: Vec<TestId>,
    /// With `all`: one test per value.
    all_parts: Vec<TestId>,
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
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
