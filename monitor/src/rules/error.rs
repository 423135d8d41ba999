//! Rule loading errors. Each names the file and line, the rule (by id, or by title when it
//! has no id) and the construct at fault, and says what to do where that is not obvious.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("{}: cannot read rules: {message}", path.display())]
    Read { path: PathBuf, message: String },

    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: String,
        line: u32,
        column: u32,
        message: String,
    },

    #[error("{file}:{line}: rule {rule}: {construct}: {message}")]
    Rule {
        file: String,
        line: u32,
        /// The rule's `id`, or `title "..."` when it has none.
        rule: String,
        /// What is at fault: `modifier 'base64'`, `field 'Foo'`, `condition`, ...
        construct: String,
        message: String,
    },

    /// About a file as a whole or a line of it, not one rule: its encoding, a budget it
    /// exceeds (rules/README.md, Limits).
    #[error("{file}:{line}: {message}")]
    File {
        file: String,
        line: u32,
        message: String,
    },

    /// About the set as a whole, past the rules (its combined string sets): a budget the
    /// set exceeds when it is assembled.
    #[error("{what}: {message}")]
    Set { what: String, message: String },

    #[error("{}", many(.0))]
    Many(Vec<RuleError>),
}

fn many(errors: &[RuleError]) -> String {
    let mut s = format!("{} errors in rules:", errors.len());
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

impl RuleError {
    /// Every single error this one holds.
    pub fn errors(&self) -> Vec<&RuleError> {
        match self {
            RuleError::Many(v) => v.iter().flat_map(|e| e.errors()).collect(),
            e => vec![e],
        }
    }

    /// The file it is about.
    pub fn file(&self) -> Option<String> {
        match self {
            RuleError::Read { path, .. } => Some(path.display().to_string()),
            RuleError::Yaml { file, .. }
            | RuleError::Rule { file, .. }
            | RuleError::File { file, .. } => Some(file.clone()),
            RuleError::Set { .. } | RuleError::Many(_) => None,
        }
    }

    /// The line it is about.
    pub fn line(&self) -> Option<u32> {
        match self {
            RuleError::Yaml { line, .. }
            | RuleError::Rule { line, .. }
            | RuleError::File { line, .. } => Some(*line),
            _ => None,
        }
    }

    pub(crate) fn from_list(mut errors: Vec<RuleError>) -> Option<RuleError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(RuleError::Many(errors)),
        }
    }
}

/// Names for a message: all of them when few, else the first ones and a count.
pub(super) fn name_list(names: &[&str]) -> String {
    const SHOWN: usize = 20;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, and {} more",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    }
}

/// A condition for a message: at most 200 characters of it.
pub(super) fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]).into(),
        None => text.into(),
    }
}
