//! The `monitor` binary's commands that need no privileges: `rules check`, `rules list`,
//! `replay`, and the exit codes INTERFACE.md fixes (0 ok, 2 invalid input, 1 other).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn monitor(args: &[&str]) -> Output {
    Command::new(MONITOR)
        .args(args)
        .output()
        .expect("run the monitor binary")
}

fn monitor_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(MONITOR)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the monitor binary");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn event(ts: &str, exe: &str, ip: &str, port: u16) -> String {
    let name = exe.rsplit('/').next().unwrap();
    format!(
        r#"{{"@timestamp":"{ts}","event":{{"kind":"event"}},"host":{{"hostname":"h"}},"process":{{"pid":4242,"name":"{name}","executable":"{exe}","command_line":"{name} x","args":["{name}","x"],"parent":{{"pid":1,"name":"bash","executable":"/usr/bin/bash"}}}},"user":{{"id":"0","name":"root"}},"destination":{{"ip":"{ip}","port":{port}}},"network":{{"transport":"tcp","type":"ipv4"}}}}"#
    )
}

#[test]
fn rules_check_accepts_the_default_set_and_the_repository_rules() {
    let out = monitor(&["rules", "check"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let rules_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let out = monitor(&["rules", "check", "--rules", rules_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
}

#[test]
fn rules_check_rejects_the_broken_sigma_file_with_file_and_line() {
    let broken = shared()
        .join("sigma-linux-network/broken/net_connection_lnx_localtonet_tunnel_tab_indent.yml");
    assert!(
        broken.exists(),
        "conformance data missing: {}",
        broken.display()
    );
    let out = monitor(&["rules", "check", "--rules", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("net_connection_lnx_localtonet_tunnel_tab_indent.yml:"),
        "error must name the file: {err}"
    );
    // The tab sits on line 27 of that file.
    assert!(err.contains(":27"), "error must name the line: {err}");
}

#[test]
fn rules_check_loads_every_sigmahq_rule_unmodified() {
    let dir = shared().join("sigma-linux-network");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let out = monitor(&["rules", "check", "--rules", path.to_str().unwrap()]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn rules_list_names_the_default_rules() {
    let out = monitor(&["rules", "list"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("T1571") || listing.to_lowercase().contains("non-standard"),
        "{listing}"
    );
    assert!(
        listing.contains("T1043") || listing.to_lowercase().contains("commonly used"),
        "{listing}"
    );
}

#[test]
fn replay_error_names_the_line_and_keeps_what_came_before() {
    let good = event(
        "2026-11-23T10:00:00Z",
        "/usr/bin/nc.openbsd",
        "203.0.113.7",
        4444,
    );
    let input = format!(
        "{good}\n{{\"@timestamp\":\"2026-11-23T10:00:01Z\",\"destination\":{{\"ip\":\"203.0.113.7\"}}}}\n{good}\n"
    );
    let out = monitor_stdin(&["replay", "-"], &input);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("destination.port"), "{err}");
    // The alert for line 1 was delivered, whole.
    let stdout = text(&out.stdout);
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is whole JSON"))
        .collect();
    assert!(
        alerts.iter().any(|a| a["event"]["kind"] == "alert"),
        "alert for the first line: {stdout}"
    );

    let out = monitor_stdin(&["replay", "-"], "this is not json\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn replay_is_deterministic_and_uses_event_time() {
    // A grouped T1571 hit and a beacon: ten check-ins 60 s apart from 2020 (no wall clock).
    let mut input = String::new();
    for i in 0..10 {
        let ts = format!("2020-01-01T00:{:02}:00Z", i);
        input.push_str(&event(&ts, "/usr/bin/curl", "203.0.113.7", 8088));
        input.push('\n');
    }
    let a = monitor_stdin(&["replay"], &input);
    let b = monitor_stdin(&["replay"], &input);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    assert_eq!(a.stdout, b.stdout, "same input, same output");
    let out = text(&a.stdout);
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!recs.is_empty(), "curl beaconing to 8088 must alert");
    for r in &recs {
        let ts = r["@timestamp"].as_str().unwrap();
        assert!(
            ts.starts_with("2020-01-01T"),
            "alert time comes from events: {ts}"
        );
    }
    assert!(
        recs.iter().any(|r| r["monitor"]["detector"] == "beacon"),
        "a perfect 60 s beacon is detected: {out}"
    );
    assert!(
        recs.iter().any(|r| r["threat"]["technique"]["id"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "T1571")
            && r["monitor"]["level"] == "high"),
        "curl to 8088 is T1571 high: {out}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let out = monitor(&["run", "--probe", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    let out = monitor(&["replay", "--output", "carrier-pigeon://x"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = monitor(&["replay", "/nonexistent/input.jsonl"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/input.jsonl"));
}

#[test]
fn run_without_capabilities_fails_at_once_naming_them() {
    // Drop every capability for the child with setpriv (util-linux, always on Debian), so
    // this checks the message even when the test itself runs as root.
    let setpriv = Path::new("/usr/bin/setpriv");
    assert!(
        setpriv.exists(),
        "setpriv (util-linux) is needed for this test"
    );
    let out = Command::new(setpriv)
        .args([
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            MONITOR,
            "run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("CAP_BPF") && err.contains("CAP_PERFMON"),
        "{err}"
    );
}
