//! The Sigma condition parser (monitor/src/rules/condition.rs) and its resolution against
//! a fixed set of selections, through the loader: any condition string must load or be
//! refused as a condition error on the condition's line, never panic or hang. A condition
//! that loads is run on a few records.
#![no_main]

mod common;

use std::fmt::Write as _;

use libfuzzer_sys::fuzz_target;
use monitor::rules::{RuleError, RuleSet};

/// One rule whose selections the condition can name: plain names, names that `1 of sel*`
/// and `1 of filter_*` patterns pick, and `_hidden`, which `them` leaves out.
const RULE_HEAD: &str = "title: fuzz condition
id: fuzz-condition
logsource:
    category: network_connection
    product: linux
level: high
detection:
    selection:
        Image|endswith: /curl
    selection_port:
        DestinationPort: 8088
    sel2:
        Protocol: udp
    filter_main:
        User: root
    filter_optional_cmd:
        CommandLine|contains: beacon
    _hidden:
        DestinationIp: 203.0.113.7
    condition: \"";
/// The line of `condition:` above.
const CONDITION_LINE: u32 = 20;

/// `s` as the body of a YAML double-quoted scalar that reads back as exactly `s`: only
/// printable ASCII is written as is, so no character can end the scalar or the document.
fn yaml_quoted(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(condition) = std::str::from_utf8(data) else {
        return;
    };
    let mut rule = String::from(RULE_HEAD);
    yaml_quoted(condition, &mut rule);
    rule.push_str("\"\n");
    match RuleSet::from_texts(&[("fuzz/condition.yml", &rule)]) {
        Ok(report) => common::run_rules(report.rules),
        Err(e) => {
            for e in e.errors() {
                assert!(
                    matches!(e, RuleError::Rule { construct, line, .. }
                        if construct == "condition" && *line == CONDITION_LINE),
                    "not a condition error on line {CONDITION_LINE}: {e}\n{rule}"
                );
            }
        }
    }
});
