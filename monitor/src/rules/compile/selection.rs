//! Conditions (resolved against a rule's selections) and selections (maps of field
//! entries, or lists of such maps).

use std::collections::HashMap;

use super::{Compiler, Ctx, ExplainItem, Gap, render_values};
use crate::rules::condition::{self, Cond, CondAst, OfTarget, clone_cond, cond_size};
use crate::rules::error::{RuleError, excerpt, name_list};
use crate::rules::field::Field;
use crate::rules::yaml::{Node, NodeKind, Pos};

/// What resolving one condition needs besides the tree.
struct Resolve<'a> {
    ctx: &'a Ctx<'a>,
    text: &'a str,
    pos: Pos,
    sel: &'a [(String, Pos, Option<Cond>)],
    index: &'a HashMap<&'a str, usize>,
}

impl Compiler {
    pub(super) fn condition(
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

    pub(super) fn selection(
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
}
