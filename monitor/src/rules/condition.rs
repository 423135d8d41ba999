//! Sigma condition expressions: `sel and not 1 of filter_*`, with Sigma's precedence
//! (`not` binds tighter than `and`, which binds tighter than `or`).

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

    fn not(&mut self) -> Result<CondAst, CondError> {
        if self.peek() == Some(&Tok::Not) {
            self.i += 1;
            return Ok(CondAst::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<CondAst, CondError> {
        let Some(tok) = self.peek().cloned() else {
            return self.err("condition ends where a selection name was expected");
        };
        match tok {
            Tok::LParen => {
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("missing `)`");
                }
                self.i += 1;
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

pub(crate) fn parse(s: &str) -> Result<CondAst, CondError> {
    let toks = tokenize(s)?;
    let mut p = P {
        toks,
        i: 0,
        len: s.len(),
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

/// Sigma selection-name pattern with `*` wildcards. Greedy, going back only to the last
/// `*` (which then takes one more byte): at most pattern × name steps. Trying every split
/// at every `*` was exponential in their number (`1 of ***…x` hung the loader).
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen, and where in the name the pattern after it is being tried.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if p.get(pi) == Some(&b'*') {
            star = Some((pi, ni));
            pi += 1;
        } else if p.get(pi) == Some(&n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            star = Some((sp, sn + 1));
            pi = sp + 1;
            ni = sn + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CondAst {
        CondAst::Ident(s.into())
    }

    #[test]
    fn precedence_not_and_or() {
        assert_eq!(
            parse("a or b and not c").unwrap(),
            CondAst::Or(vec![
                id("a"),
                CondAst::And(vec![id("b"), CondAst::Not(Box::new(id("c")))])
            ])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            CondAst::And(vec![CondAst::Or(vec![id("a"), id("b")]), id("c")])
        );
    }

    #[test]
    fn quantifiers() {
        assert_eq!(
            parse("selection and not 1 of filter_*").unwrap(),
            CondAst::And(vec![
                id("selection"),
                CondAst::Not(Box::new(CondAst::Of {
                    min: Some(1),
                    pattern: OfTarget::Pattern("filter_*".into())
                }))
            ])
        );
        assert_eq!(
            parse("all of them").unwrap(),
            CondAst::Of {
                min: None,
                pattern: OfTarget::Them
            }
        );
    }

    #[test]
    fn errors_have_offsets() {
        let e = parse("a and (b or c").unwrap_err();
        assert!(e.message.contains(")"));
        let e = parse("a | count() > 5").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(parse("a b").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn wildcard_names() {
        assert!(name_matches("filter_*", "filter_main_x"));
        assert!(name_matches("sel*", "sel"));
        assert!(!name_matches("sel*", "xsel"));
        assert!(name_matches("*_img", "selection_img"));
    }
}
