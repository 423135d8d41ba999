//! `monitor rules test`: the built-in rules pass their samples, a rule changed under its
//! samples fails naming the sample, and an invalid sample is exit 2 naming file and line.

#[path = "fixtures/rules/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn monitor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monitor"))
        .args(args)
        .output()
        .expect("run monitor")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A copy of the repository's rules/ (with samples) in a fresh directory.
fn copy_rules(tag: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dst = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &dst);
            } else {
                std::fs::copy(&p, &dst).unwrap();
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("rules-samples-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy(&support::repo_rules_dir(), &dir);
    dir
}

#[test]
fn builtin_rules_pass_their_samples_strictly() {
    let o = monitor(&["rules", "test", "--strict"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for id in [
        "a15ce2a2-d60b-4b3f-98ec-13a85ec9311c",
        "5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok\t") && l.contains(id) && l.contains(", 0 failed")),
            "{out}"
        );
    }
    // The same files from disk agree.
    let dir = support::repo_rules_dir();
    let o = monitor(&[
        "rules",
        "test",
        "--strict",
        "--rules",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_changed_rule_fails_naming_the_sample() {
    let dir = copy_rules("mutated");
    let rule = dir.join("t1571_non_standard_port.yml");
    let yaml = std::fs::read_to_string(&rule).unwrap();
    // 8088 leaves the known C2 ports: curl -> 8088 drops from tier 3 (high) to 2 (medium).
    assert_eq!(yaml.matches("            - 8088\n").count(), 1);
    std::fs::write(
        &rule,
        yaml.replace("            - 8088\n", "            - 8089\n"),
    )
    .unwrap();
    let o = monitor(&["rules", "test", "--rules", dir.to_str().unwrap()]);
    let all = text(&o);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(
        all.contains("FAILED\t5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a"),
        "{all}"
    );
    assert!(
        all.contains(
            "t1571_non_standard_port.jsonl:1: expected match at level high, got alert at level \
             medium: curl beaconing to 8088"
        ),
        "{all}"
    );
    assert!(
        all.contains("ok\ta15ce2a2-d60b-4b3f-98ec-13a85ec9311c"),
        "{all}"
    );
}

#[test]
fn missing_and_invalid_samples() {
    let dir = copy_rules("missing");
    std::fs::remove_file(dir.join("samples/t1043_commonly_used_port.jsonl")).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let o = monitor(&["rules", "test", "--rules", &d]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a rule without samples warns: {}",
        text(&o)
    );
    assert!(text(&o).contains("warning:"), "{}", text(&o));
    assert!(text(&o).contains("a15ce2a2-d60b-4b3f-98ec-13a85ec9311c has no samples"));
    let o = monitor(&["rules", "test", "--strict", "--rules", &d]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "--strict makes it an error: {}",
        text(&o)
    );

    let samples = dir.join("samples/t1571_non_standard_port.jsonl");
    let mut s = std::fs::read_to_string(&samples).unwrap();
    s.push_str(
        "{\"expect\":\"match\",\"note\":\"x\",\"event\":{\"event\":{\"kind\":\"event\"}}}\n",
    );
    let bad_line = s.lines().count();
    std::fs::write(&samples, s).unwrap();
    let o = monitor(&["rules", "test", "--rules", &d]);
    let all = text(&o);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(
        all.contains(&format!(
            "t1571_non_standard_port.jsonl:{bad_line}: `event`: missing field"
        )),
        "{all}"
    );
}
