//! `monitor rules check` behaviour through the `check` API: 0 on valid rules, 2 on invalid
//! ones, and every error names the file, the line, the rule and the construct. Hostile rule
//! files (issue #18) go through the binary, since what they broke was the process: a stack
//! overflow (exit 134), a panic (101) or an allocation failure.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    // Seven detection rules (two of them the bases of the T1046 correlations) and two
    // correlation rules.
    assert_eq!(r.rules.len(), 9);
    assert_eq!(
        r.rules.iter().filter(|s| s.correlation.is_some()).count(),
        2
    );
    assert_eq!(r.rules.iter().filter(|s| s.silent).count(), 2);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let d = check(&[repo_rules_dir()]);
    assert_eq!(d.exit_code(), 0, "{:?}", d.errors);
    assert_eq!(d.rules.len(), 9);
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
        "type value_sum",
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

const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");

/// A network_connection rule with `detection` (indented under `detection:`, so its first
/// line is line 9) and `extra` top-level keys after it.
fn hostile_rule(detection: &str, extra: &str) -> String {
    format!(
        "title: hostile\nid: hostile-1\nlevel: low\nlogsource:\n  category: \
         network_connection\n  product: linux\ndetection:\n{detection}{extra}"
    )
}

/// Runs the monitor binary with `args`, killed after ten seconds and limited to 4 GiB of
/// address space: a regression then fails the test instead of swapping the machine (the
/// list explosion of issue #18 allocated without bound). Returns the exit code (`None` when
/// killed by a signal), stderr and the time it took.
fn run_bounded(args: &[&str], dir: &Path) -> (Option<i32>, String, Duration) {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(MONITOR);
    cmd.args(args)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t.elapsed();
    (status.code(), reader.join().unwrap(), took)
}

/// Writes `files` into a fresh directory, then runs `monitor rules check --rules DIR` and
/// `monitor replay --rules DIR` (empty input) on it: both exit 2 within two seconds, with
/// `expect` (file name, line and message words) on stderr.
fn rejected_by_check_and_replay(files: &[(&str, Vec<u8>)], expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    for args in [
        &["rules", "check", "--rules"][..],
        &["replay", "--rules"][..],
    ] {
        let (code, err, took) = run_bounded(args, dir.path());
        assert_eq!(code, Some(2), "{args:?}:\n{err}");
        for words in expect {
            assert!(err.contains(words), "{args:?}: `{words}` not in:\n{err}");
        }
        assert!(took < Duration::from_secs(2), "{args:?} took {took:?}");
    }
}

fn at(dir_file: &str, line: u32) -> String {
    format!("{dir_file}:{line}: ")
}

#[test]
fn deep_nesting_is_exit_2_not_a_stack_overflow() {
    let det = |cond: &str| format!("  sel:\n    Image: /x\n  condition: {cond}\n");
    let parens = format!("{}sel{}", "(".repeat(20_000), ")".repeat(20_000));
    rejected_by_check_and_replay(
        &[("parens.yml", hostile_rule(&det(&parens), "").into_bytes())],
        &[&at("parens.yml", 10), "nested deeper than 64 levels"],
    );
    let nots = format!("{}sel", "not ".repeat(10_000));
    rejected_by_check_and_replay(
        &[("nots.yml", hostile_rule(&det(&nots), "").into_bytes())],
        &[&at("nots.yml", 10), "nested deeper than 64 levels"],
    );
    let nots = format!("{}sel", "not ".repeat(200_000));
    rejected_by_check_and_replay(
        &[("nots.yml", hostile_rule(&det(&nots), "").into_bytes())],
        &[&at("nots.yml", 10), "longer than the budget of 65536"],
    );
    let flow = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    rejected_by_check_and_replay(
        &[("yaml.yml", format!("lists:\n  x: {flow}\n").into_bytes())],
        &["yaml.yml:2:", "nested deeper than 64 levels"],
    );
    // 30,000 lists, each including the previous one.
    let mut lists = String::from("lists:\n  l29999: [/x]\n");
    for i in (0..29_999).rev() {
        lists.push_str(&format!("  l{i}: ['%l{}%']\n", i + 1));
    }
    let uses = "  sel:\n    Image|endswith|expand: '%l0%'\n  condition: sel\n";
    rejected_by_check_and_replay(
        &[
            ("lists.yml", lists.into_bytes()),
            ("rule.yml", hostile_rule(uses, "").into_bytes()),
        ],
        &[&at("rule.yml", 9), "more than 64 levels deep"],
    );
}

#[test]
fn list_placeholder_explosion_is_exit_2_not_an_allocation_failure() {
    // Each list including the previous one twice: 771 bytes, 2^31 values.
    let mut lists = String::from("lists:\n  l30: [/a]\n");
    for i in (0..30).rev() {
        lists.push_str(&format!("  l{i}: ['%l{n}%', '%l{n}%']\n", n = i + 1));
    }
    let uses = "  sel:\n    Image|endswith|expand: '%l0%'\n  condition: sel\n";
    rejected_by_check_and_replay(
        &[
            ("lists.yml", lists.into_bytes()),
            ("rule.yml", hostile_rule(uses, "").into_bytes()),
        ],
        &[&at("rule.yml", 9), "expands to 1073741824 values"],
    );
}

#[test]
fn bad_windows_are_exit_2_with_the_line() {
    let det = "  sel:\n    Image: /x\n  condition: sel\n";
    let with_window = |w: &str| {
        hostile_rule(
            det,
            &format!("monitor:\n  group_by: [Image]\n  window: {w}\n"),
        )
        .into_bytes()
    };
    // A non-ASCII unit panicked (slicing inside a character).
    rejected_by_check_and_replay(
        &[("unit.yml", with_window("'1é'"))],
        &[&at("unit.yml", 13), "`1é` is not a duration"],
    );
    // 200000d loaded, with a window that wrapped negative.
    rejected_by_check_and_replay(
        &[("long.yml", with_window("200000d"))],
        &[&at("long.yml", 13), "longer than the longest window, 365d"],
    );
}

#[test]
fn files_that_are_not_utf8_are_exit_2_with_line_and_byte() {
    let mut latin1 = hostile_rule("  sel:\n    Image: /x\n  condition: sel\n", "").into_bytes();
    latin1.extend_from_slice(b"description: caf");
    let offset = format!("byte 0xe9 at byte offset {}", latin1.len());
    latin1.extend_from_slice(b"\xe9\n");
    rejected_by_check_and_replay(
        &[("latin1.yml", latin1)],
        &[&at("latin1.yml", 11), &offset, "not UTF-8"],
    );
    let text = hostile_rule("  sel:\n    Image: /x\n  condition: sel\n", "");
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    rejected_by_check_and_replay(
        &[("utf16.yml", utf16)],
        &[
            &at("utf16.yml", 1),
            "UTF-16 (little-endian)",
            "byte offset 0",
        ],
    );
}

#[test]
fn hostile_sizes_compile_quickly_or_are_refused() {
    // 50 kB literal: 15 s of automaton building before.
    let long = format!(
        "  sel:\n    CommandLine|contains: '{}'\n  condition: sel\n",
        "ab".repeat(25_000)
    );
    rejected_by_check_and_replay(
        &[("long.yml", hostile_rule(&long, "").into_bytes())],
        &[&at("long.yml", 9), "longer than the budget of 4096"],
    );
    // `1 of *a*a*...*b` against a long selection name: exponential matching before.
    let stars = format!(
        "  {}c:\n    Image: /x\n  condition: 1 of {}*b\n",
        "a".repeat(1_000), // YAML keys are at most 1024 characters
        "*a".repeat(10)
    );
    rejected_by_check_and_replay(
        &[("stars.yml", hostile_rule(&stars, "").into_bytes())],
        &[&at("stars.yml", 10), "matches no selection"],
    );
    // 20,000 `contains` values (4 s before, 30,000 took 15 s) and 20,000 keys in one
    // mapping (30,000 took 3.4 s): quadratic, so seconds more in this debug build.
    let mut many = String::from("  sel:\n    CommandLine|contains:\n");
    for i in 0..20_000 {
        many.push_str(&format!("      - 'v{i}x'\n"));
    }
    many.push_str("  condition: sel\n");
    accepted_quickly("many.yml", hostile_rule(&many, ""));
    let mut keys = String::from("lists:\n");
    for i in 0..20_000 {
        keys.push_str(&format!("  k{i}: [/v]\n"));
    }
    accepted_quickly("keys.yml", keys);
}

/// `monitor rules check` accepts `text` as file `name`, within two seconds.
fn accepted_quickly(name: &str, text: String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), text).unwrap();
    let (code, err, took) = run_bounded(&["rules", "check", "--rules"], dir.path());
    assert_eq!(code, Some(0), "{name}: {err}");
    assert!(took < Duration::from_secs(2), "{name} took {took:?}");
}

#[test]
fn every_real_rule_is_inside_the_budgets() {
    let shared = support::sigmahq_rules_dir();
    let mut paths = vec![repo_rules_dir(), fixtures().join("valid")];
    for e in std::fs::read_dir(&shared).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yml") {
            paths.push(p);
        }
    }
    let r = check(&paths);
    assert!(r.is_ok(), "{:#?}", r.errors);
    assert!(r.rules.len() > 5, "{}", r.rules.len());
}

/// Warnings about tests the monitor cannot satisfy cite the line of the field, not of the
/// rule. `Initiated: false` is no gap: accepts and listens are inbound (`--lifecycle`).
#[test]
fn gap_warnings_cite_the_line_of_the_field() {
    let text = support::rule_with(
        "    selection:\n        DestinationPort: 443\n    inbound:\n        Initiated: 'false'\n    \
         named:\n        SourceHostname: 'a.example'\n    condition: selection or inbound or named\n",
    );
    // rule_with puts `detection:` on line 7, so the selections start on line 8.
    let rep = RuleSet::from_texts(&[("gaps.yml", &text)]).unwrap();
    assert_eq!(rep.warnings.len(), 1, "{:#?}", rep.warnings);
    assert!(
        rep.warnings[0].starts_with("gaps.yml:13: rule test-1:")
            && rep.warnings[0].contains("SourceHostname (source.domain)"),
        "{}",
        rep.warnings[0]
    );
    // Inbound-only rules, `Initiated: true` and `Initiated|exists: false` are no gap.
    let fine = support::rule_with(
        "    a:\n        Initiated: true\n    b:\n        Initiated|exists: false\n    \
         c:\n        Initiated:\n            - 'FALSE'\n    condition: a or b or c\n",
    );
    let rep = RuleSet::from_texts(&[("fine.yml", &fine)]).unwrap();
    assert!(rep.warnings.is_empty(), "{:#?}", rep.warnings);
}

/// The same warnings through the binary's `rules check`, which still exits 0.
#[test]
fn rules_check_warns_about_source_hostname_and_inbound() {
    let dir = std::env::temp_dir().join(format!("rules-gaps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = support::rule_with(
        "    selection:\n        SourceHostname: 'a.example'\n        Initiated: false\n    \
         condition: selection\n",
    );
    std::fs::write(dir.join("gaps.yml"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(["rules", "check", "--rules"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("gaps.yml:9: rule test-1: tests SourceHostname"),
        "{err}"
    );
    assert!(!err.contains("Initiated"), "{err}");
}
