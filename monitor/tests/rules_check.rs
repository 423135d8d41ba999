//! `monitor rules check` behaviour through the `check` API: 0 on valid rules, 2 on invalid
//! ones, and every error names the file, the line, the rule and the construct.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::path::PathBuf;

use monitor::rules::{RuleError, RuleSet, check};
use support::repo_rules_dir;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules")
}

#[test]
fn builtin_and_repository_rules_check_clean() {
    let r = check(&[]);
    assert!(r.is_ok(), "{:?}", r.errors);
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.rules.len(), 2);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let d = check(&[repo_rules_dir()]);
    assert_eq!(d.exit_code(), 0, "{:?}", d.errors);
    assert_eq!(d.rules.len(), 2);
}

/// (file, line, rule, construct, words of the message)
const CASES: &[(&str, u32, &str, &str, &str)] = &[
    (
        "unknown_modifier.yml",
        10,
        "inv-unknown-modifier",
        "modifier `contians`",
        "unknown modifier",
    ),
    (
        "base64_modifier.yml",
        9,
        "inv-base64",
        "modifier `base64offset`",
        "not supported",
    ),
    (
        "unknown_field.yml",
        9,
        "inv-unknown-field",
        "field `image`",
        "did you mean `Image`",
    ),
    (
        "unknown_selection.yml",
        10,
        "inv-condition",
        "condition",
        "`filter`",
    ),
    (
        "aggregation.yml",
        10,
        "inv-aggregation",
        "condition",
        "aggregation",
    ),
    (
        "keywords.yml",
        9,
        "inv-keywords",
        "keyword selection",
        "not supported",
    ),
    (
        "unknown_placeholder.yml",
        9,
        "inv-placeholder",
        "placeholder `%no_such_list%`",
        "no list",
    ),
    (
        "cidr_on_text.yml",
        9,
        "inv-cidr",
        "modifier `cidr`",
        "address fields",
    ),
    (
        "regex_lookbehind.yml",
        9,
        "inv-regex",
        "modifier `re`",
        "not a regular expression",
    ),
    (
        "monitor_unknown_key.yml",
        15,
        "inv-monitor",
        "monitor.throttle",
        "unknown",
    ),
    (
        "correlation.yml",
        4,
        "inv-correlation",
        "correlation",
        "not supported",
    ),
];

#[test]
fn each_unsupported_construct_is_an_error_naming_file_line_rule_and_construct() {
    for &(file, line, rule, construct, words) in CASES {
        let path = fixtures().join("invalid").join(file);
        let err = RuleSet::load(std::slice::from_ref(&path)).unwrap_err();
        match &err {
            RuleError::Rule {
                file: f,
                line: l,
                rule: r,
                construct: c,
                message,
            } => {
                assert!(f.ends_with(file), "{file}: file {f}");
                assert_eq!(*l, line, "{file}: {err}");
                assert_eq!(r, rule, "{file}: {err}");
                assert_eq!(c, construct, "{file}: {err}");
                assert!(message.contains(words), "{file}: {err}");
            }
            other => panic!("{file}: expected a rule error, got {other}"),
        }
        // The one-line form carries all of it too.
        let text = err.to_string();
        assert!(
            text.contains(&format!("{file}:{line}: rule {rule}: ")),
            "{text}"
        );
    }
}

#[test]
fn duplicate_keys_are_yaml_errors_with_the_line() {
    let path = fixtures().join("invalid/duplicate_key.yml");
    let err = RuleSet::load(&[path]).unwrap_err();
    assert!(matches!(err, RuleError::Yaml { line: 8, .. }), "{err}");
    assert!(err.to_string().contains("duplicate key `Image`"), "{err}");
}

#[test]
fn check_reports_every_error_of_a_directory_and_exits_2() {
    let r = check(&[fixtures().join("invalid")]);
    assert_eq!(r.exit_code(), 2);
    let files = std::fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .count();
    assert_eq!(r.errors.len(), files, "{:#?}", r.errors);
    for e in &r.errors {
        assert!(e.file().is_some() && e.line().is_some(), "{e}");
    }
    // Strict load fails with all of them, not only the first.
    let err = RuleSet::load(&[fixtures().join("invalid")]).unwrap_err();
    assert_eq!(err.errors().len(), files);
}

#[test]
fn other_log_sources_are_skipped_with_a_notice() {
    let r = RuleSet::load(&[fixtures().join("valid")]).unwrap();
    assert_eq!(r.rules.len(), 1);
    assert_eq!(r.rules.summaries()[0].id, "valid-curl-8088");
    assert_eq!(r.rules.summaries()[0].ruleset, "valid");
    assert_eq!(r.notices.len(), 1);
    assert!(
        r.notices[0].contains("valid-process-creation")
            && r.notices[0].contains("process_creation"),
        "{:?}",
        r.notices
    );
    assert_eq!(check(&[fixtures().join("valid")]).exit_code(), 0);
}

#[test]
fn missing_paths_and_empty_directories() {
    let missing = fixtures().join("no-such-dir");
    let r = check(std::slice::from_ref(&missing));
    assert_eq!(r.exit_code(), 2);
    assert!(r.errors[0].to_string().contains("no-such-dir"));
    let empty = std::env::temp_dir().join(format!("rules-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let rep = RuleSet::load(std::slice::from_ref(&empty)).unwrap();
    assert!(rep.rules.is_empty(), "an empty directory means no rules");
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn summaries_carry_what_rules_list_shows() {
    let s = RuleSet::load(&[fixtures().join("valid/curl_8088.yml")])
        .unwrap()
        .rules
        .summaries();
    assert_eq!(s[0].title, "curl to port 8088");
    assert_eq!(s[0].techniques, vec!["T1571"]);
    assert_eq!(s[0].line, 1);
    assert!(s[0].group.is_none());
}

#[test]
fn sigma_feature_errors_inline() {
    let bad = |detection: &str| {
        let text = support::rule_with(detection);
        RuleSet::from_texts(&[("inline.yml", &text)])
            .unwrap_err()
            .to_string()
    };
    assert!(bad("    sel:\n        Image|re|i|contains: x\n    condition: sel\n").contains("re"));
    assert!(bad("    sel:\n        Image|i: x\n    condition: sel\n").contains("follow `re`"));
    assert!(
        bad("    sel:\n        DestinationPort|gt: abc\n    condition: sel\n")
            .contains("not a number")
    );
    assert!(bad("    sel:\n        Image|gt: 5\n    condition: sel\n").contains("number field"));
    assert!(
        bad("    sel:\n        DestinationIp: 'localhost'\n    condition: sel\n")
            .contains("not an IP")
    );
    assert!(
        bad("    sel:\n        DestinationPort: http\n    condition: sel\n")
            .contains("whole number")
    );
    assert!(
        bad("    sel:\n        Initiated: maybe\n    condition: sel\n").contains("true or false")
    );
    assert!(
        bad("    sel:\n        Image: x\n    condition: 1 of nothing*\n")
            .contains("matches no selection")
    );
    assert!(bad("    sel:\n        Image: x\n    condition: sel and\n").contains("condition"));
    assert!(bad("    sel:\n        Image: x\n").contains("no `condition`"));
}
