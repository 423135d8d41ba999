//! Budgets for a rule set (rules/README.md, "Limits").
//!
//! Rule files come from operators, and a reload must never take the daemon down: every
//! dimension along which a file could make loading overflow a stack, exhaust memory or take
//! minutes is bounded, and going past a bound is an ordinary load error naming the file and
//! line. The bounds are far above what real rules use (SigmaHQ's largest conditions nest a
//! few levels; its longest values are a few hundred bytes).

use std::time::{Duration, Instant};

use super::error::RuleError;

/// The budgets one load runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Size of one rule or list file.
    pub max_file_bytes: u64,
    /// Nesting of YAML collections, of parentheses and `not` in a condition, and of lists
    /// including lists.
    pub max_depth: usize,
    /// Values one `%name%` placeholder expands to.
    pub max_list_values: usize,
    /// Bytes in one value (string, wildcard or regular expression).
    pub max_value_bytes: usize,
    /// Bytes in one condition (the parser holds a token per word).
    pub max_condition_bytes: usize,
    /// Values of one `Field|modifiers:` entry, after placeholder expansion.
    pub max_values_per_field: usize,
    /// Values plus condition operands, over the whole set.
    pub max_compiled_items: usize,
    /// Bytes of value text, over the whole set.
    pub max_compiled_bytes: usize,
    /// Wall time for compiling the whole set.
    pub max_compile_time: Duration,
    /// The largest count a correlation condition may test: each of its groups keeps up to
    /// that many events or values.
    pub max_correlation_count: u64,
    /// Rules one correlation may name.
    pub max_correlation_rules: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 << 20,
            max_depth: 64,
            max_list_values: 100_000,
            max_value_bytes: 4096,
            max_condition_bytes: 64 << 10,
            max_values_per_field: 100_000,
            max_compiled_items: 2_000_000,
            max_compiled_bytes: 32 << 20,
            max_compile_time: Duration::from_secs(20),
            max_correlation_count: 1_000,
            max_correlation_rules: 64,
        }
    }
}

/// A running load: its deadline and what it has used so far.
#[derive(Debug)]
pub(crate) struct Budget {
    pub limits: Limits,
    deadline: Instant,
    items: usize,
    bytes: usize,
}

impl Budget {
    pub fn start(limits: Limits) -> Budget {
        // A deadline too far away to represent means no deadline.
        let deadline = Instant::now()
            .checked_add(limits.max_compile_time)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        Budget {
            limits,
            deadline,
            items: 0,
            bytes: 0,
        }
    }

    /// `Err` with the message once the compile-time budget is spent.
    pub fn check_time(&self) -> Result<(), String> {
        if Instant::now() >= self.deadline {
            return Err(self.deadline_message());
        }
        Ok(())
    }

    fn deadline_message(&self) -> String {
        format!(
            "compiling the rule set took longer than its budget of {} s; stopped here \
             (rules/README.md, Limits)",
            self.limits.max_compile_time.as_secs_f64()
        )
    }

    /// Whether `e` is the error `check_time` gave.
    pub fn is_deadline(&self, e: &RuleError) -> bool {
        matches!(e, RuleError::Rule { message, .. } if *message == self.deadline_message())
    }

    /// Accounts for `items` compiled values or condition operands and `bytes` of value
    /// text; `Err` when the whole set goes past its budget.
    pub fn add(&mut self, items: usize, bytes: usize) -> Result<(), String> {
        self.items = self.items.saturating_add(items);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.items > self.limits.max_compiled_items {
            return Err(format!(
                "the rule set grows past {} compiled values and condition operands here \
                 (rules/README.md, Limits)",
                self.limits.max_compiled_items
            ));
        }
        if self.bytes > self.limits.max_compiled_bytes {
            return Err(format!(
                "the rule set grows past {} bytes of values here (rules/README.md, Limits)",
                self.limits.max_compiled_bytes
            ));
        }
        Ok(())
    }
}
