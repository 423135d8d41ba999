//! The rule loader and compiler on arbitrary YAML: `RuleSet::from_texts` must return Ok or
//! Err, never panic, overflow the stack or run for long (the runner's `-timeout`). A rule
//! set that loads is run on a few records.
//!
//! A NUL byte splits the input into files, so list files and the rules that expand their
//! lists can come from one input.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use monitor::rules::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let names: Vec<String> = (0..text.split('\0').count())
        .map(|i| format!("fuzz/{i}.yml"))
        .collect();
    let files: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(text.split('\0'))
        .collect();
    if let Ok(report) = RuleSet::from_texts(&files) {
        common::run_rules(report.rules);
    }
});
