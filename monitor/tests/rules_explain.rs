//! `monitor explain`: its verdict is the engine's on the SigmaHQ rules and the default
//! rules' samples, and the command reads FILE:LINE, stdin and --json.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use monitor::rules::{RuleEngine, RuleSet, explain_text};
use support::{ev, sigmahq_rules_dir};

fn sigmahq() -> Arc<RuleSet> {
    let dir = sigmahq_rules_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    Arc::new(RuleSet::load(&files).unwrap().rules)
}

#[test]
fn explain_agrees_with_the_engine_on_the_sigmahq_rules() {
    let set = sigmahq();
    let events = [
        ev().dst("203.0.113.7", 4444).build(),
        ev().dst("10.0.0.1", 4444).build(),
        ev().image("/usr/bin/bash").dst("203.0.113.7", 4242).build(),
        ev().image("/bin/bash").dst("10.0.0.1", 4242).build(),
        ev().image("/usr/bin/python3")
            .dst("169.254.169.254", 80)
            .build(),
        ev().image("/usr/bin/curl")
            .args(&["curl", "http://169.254.169.254/latest/meta-data/"])
            .dst("169.254.169.254", 80)
            .build(),
        ev().image("/usr/bin/xmrig").dst("203.0.113.7", 443).build(),
        ev().dst("2001:db8::7", 4444).build(),
    ];
    let mut matched = 0;
    for rec in &events {
        let fired = RuleEngine::new(Arc::clone(&set)).matching_rule_ids(rec);
        let ex = set.explain(rec, None).unwrap();
        assert_eq!(ex.len(), set.len());
        for r in &ex {
            assert_eq!(
                r.matched,
                fired.contains(&r.id),
                "{}\n{}",
                r.id,
                explain_text(&ex)
            );
            matched += usize::from(r.matched);
            // A match has a true selection behind it.
            if r.matched {
                assert!(
                    r.selections.iter().any(|s| s.result),
                    "{}",
                    explain_text(&ex)
                );
            }
        }
    }
    assert!(
        matched >= 3,
        "the events were chosen so some rules match: {matched}"
    );
}

fn monitor(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = c.stdin.take().unwrap();
    if let Some(s) = stdin {
        w.write_all(s.as_bytes()).unwrap();
    }
    drop(w);
    c.wait_with_output().unwrap()
}

const T1571: &str = "5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a";
const T1043: &str = "a15ce2a2-d60b-4b3f-98ec-13a85ec9311c";

/// The event of the first T1571 sample (curl to 8088: tier 3) and of its seventh (curl to
/// 443), as `monitor run --events` lines.
fn sample_events() -> (String, String) {
    let text = std::fs::read_to_string(
        support::repo_rules_dir().join("samples/t1571_non_standard_port.jsonl"),
    )
    .unwrap();
    let ev = |n: usize| {
        let v: serde_json::Value = serde_json::from_str(text.lines().nth(n).unwrap()).unwrap();
        v["event"].to_string()
    };
    (ev(0), ev(6))
}

#[test]
fn explain_command_reads_stdin_and_file_lines() {
    let (hit, miss) = sample_events();
    let o = monitor(&["explain", "--rule", T1571], Some(&format!("\n{hit}\n")));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.starts_with(&format!("rule {T1571} "))
            && out.lines().next().unwrap().ends_with("MATCH"),
        "{out}"
    );
    assert!(out.contains("  true known_c2_port (line "), "{out}");
    assert!(out.contains("event: 8088)"), "{out}");
    assert!(!out.contains(T1043), "--rule shows one rule: {out}");

    let dir = std::env::temp_dir().join(format!("explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    std::fs::write(&file, format!("{hit}\n{miss}\n")).unwrap();
    let f = file.to_str().unwrap();
    let o = monitor(&["explain", "--json", &format!("{f}:2")], None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules = j.as_array().unwrap();
    assert_eq!(rules.len(), 7, "every built-in detection rule: {j}");
    let t1571 = rules.iter().find(|r| r["rule"]["id"] == T1571).unwrap();
    assert_eq!(t1571["match"], false, "curl to 443 is no T1571: {j}");
    let std_port = t1571["selections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "standard_port")
        .unwrap();
    assert_eq!(std_port["result"], true);
    assert_eq!(std_port["maps"][0][0]["event"], 443);
    // FILE alone is line 1; a line past the end is an error naming it.
    let o = monitor(&["explain", "--json", f], None);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j.as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"]["id"] == T1571)
            .unwrap()["match"],
        true
    );
    let o = monitor(&["explain", &format!("{f}:9")], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no line 9"));
    // A record that does not parse names its line.
    std::fs::write(
        &file,
        format!("{hit}\n{{\"event\":{{\"kind\":\"event\"}}}}\n"),
    )
    .unwrap();
    let o = monitor(&["explain", &format!("{f}:2")], None);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("events.jsonl:2: missing field"), "{err}");
    // An unknown rule is usage error.
    let o = monitor(&["explain", "--rule", "nope"], Some(&hit));
    assert_eq!(o.status.code(), Some(2));
}
