//! The `monitor:` extension key of a rule: grouping (`group_by` + `window`), labels,
//! risk score and level, each a constant or cases chosen by a condition.

use super::{Case, Compiler, Ctx, GroupSpec};
use crate::record::Level;
use crate::rules::condition::Cond;
use crate::rules::error::RuleError;
use crate::rules::field::Field;
use crate::rules::yaml::{Node, NodeKind, Pos, Value};

impl Compiler {
    pub(super) fn monitor_ext(
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

/// What a rule's `monitor:` key sets.
#[derive(Default)]
pub(super) struct Ext {
    pub labels: Vec<(String, Vec<Case<String>>)>,
    pub risk: Vec<Case<u32>>,
    pub level: Vec<Case<Level>>,
    pub group: Option<GroupSpec>,
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
