//! The `monitor` binary's commands that need no privileges: `rules check`, `rules list`,
//! `replay`, and the documented exit codes (0 ok, 2 invalid input, 1 other).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MONITOR: &str = env!("CARGO_BIN_EXE_monitor");

/// The conformance data (SigmaHQ rules, copied into the repository with their licence).
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
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

/// A recording of connects and their close records (`run --events --lifecycle`): a beacon
/// whose timing is too noisy for the timing alone (every interval within a factor of three,
/// not of two) but whose payload is constant is reported, with the size fields; the same
/// connects without their close lines (an old recording) are not.
#[test]
fn replay_of_connects_and_closes_reports_the_constant_payload_beacon_with_its_sizes() {
    let factors = [
        0.5, 1.5, 1.0, 1.3, 0.7, 1.2, 0.8, 1.1, 0.9, 1.45, 0.55, 1.0, 1.35, 0.6, 1.05,
    ];
    let at = |secs: f64| {
        let ms = (secs * 1000.0).round() as u64;
        format!(
            "2020-01-01T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut t = 0.0;
    let (mut with_closes, mut connects_only) = (String::new(), String::new());
    for (i, f) in std::iter::once(&0.0).chain(&factors).enumerate() {
        t += 60.0 * f;
        let connect = event(&at(t), "/usr/bin/python3", "203.0.113.7", 8088).replacen(
            r#""event":{"kind":"event"}"#,
            &format!(
                r#""event":{{"kind":"event"}},"monitor":{{"connection_id":"{:x}"}}"#,
                i + 1
            ),
            1,
        );
        let close = event(&at(t + 0.3), "/usr/bin/python3", "203.0.113.7", 8088)
            .replacen(
                r#""event":{"kind":"event"}"#,
                &format!(
                    r#""event":{{"kind":"event","action":"close","duration":300000000}},"monitor":{{"connection_id":"{:x}"}},"source":{{"ip":"192.0.2.10","port":40000,"bytes":480,"packets":4}}"#,
                    i + 1
                ),
                1,
            )
            .replacen(r#""port":8088}"#, r#""port":8088,"bytes":220,"packets":3}"#, 1);
        for text in [&mut with_closes, &mut connects_only] {
            text.push_str(&connect);
            text.push('\n');
        }
        with_closes.push_str(&close);
        with_closes.push('\n');
    }
    let beacons = |input: &str| -> Vec<serde_json::Value> {
        let out = monitor_stdin(&["replay"], input);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        json_lines(&out.stdout)
            .into_iter()
            .filter(|r| r["monitor"]["detector"] == "beacon")
            .collect()
    };
    let sized = beacons(&with_closes);
    assert_eq!(sized.len(), 1, "{sized:?}");
    let b = &sized[0]["monitor"]["beacon"];
    assert_eq!(b["connections"], 15, "{b}");
    assert_eq!(b["median_bytes"], 480.0, "{b}");
    assert_eq!(b["size_jitter"], 0.0, "{b}");
    assert_eq!(b["sizes"], 13, "{b}");
    assert!(b["size_score"].as_f64().unwrap() > 0.99, "{b}");
    assert!(beacons(&connects_only).is_empty());
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

// ---- hostile input and lost output (issue #18) ----------------------------------------

fn fixture_8088() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/beacon_8088.jsonl")
}

/// The fixture's lines with `extra` inserted after line `after`.
fn fixture_with(after: usize, extra: &str) -> String {
    let text = std::fs::read_to_string(fixture_8088()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(after, extra);
    lines.join("\n") + "\n"
}

/// Line `n` (1-based) of the fixture with its `@timestamp` replaced.
fn fixture_line_at(n: usize, ts: &str) -> String {
    let text = std::fs::read_to_string(fixture_8088()).unwrap();
    let line = text.lines().nth(n - 1).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let old = v["@timestamp"].as_str().unwrap();
    line.replace(old, ts)
}

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    text(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is whole JSON"))
        .collect()
}

#[test]
fn replay_refuses_a_first_line_whose_timestamp_is_nul_bytes() {
    // Fault 8: accepted as 1970-01-01 (exit 0, an alert) on line 1, refused on line 2.
    let good = event(
        "2026-11-23T10:00:00Z",
        "/usr/bin/nc.openbsd",
        "203.0.113.7",
        4444,
    );
    let bad = good.replace("2026-11-23T10:00", &"\0".repeat(16));
    for (input, line) in [
        (format!("{bad}\n{good}\n"), "line 1"),
        (format!("{good}\n{bad}\n"), "line 2"),
    ] {
        let out = monitor_stdin(&["replay"], &input);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(line), "{}", text(&out.stderr));
        for rec in json_lines(&out.stdout) {
            assert!(
                rec["@timestamp"].as_str().unwrap().starts_with("2026-"),
                "{rec}"
            );
        }
    }
}

#[test]
fn replay_refuses_timestamps_outside_the_accepted_years() {
    // Fault 9: years 1000 and 9999 were rewritten to 2262-04-11T23:47:16.854775807Z, exit 0.
    let fixture = replay_fixture(&fixture_with(0, ""));
    for ts in ["1000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
        let input = fixture_with(10, &fixture_line_at(10, ts));
        let out = monitor_stdin(&["replay"], &input);
        assert_eq!(out.status.code(), Some(2), "{ts}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("line 11") && err.contains(ts), "{err}");
        assert!(
            !text(&out.stdout).contains("2262-"),
            "{}",
            text(&out.stdout)
        );
        // The alerts of the lines before it went out: the two first T1571 alerts, then the
        // summaries of their windows, closed at the last good line.
        let recs = json_lines(&out.stdout);
        assert_eq!(recs.len(), 4, "{}", text(&out.stdout));
        assert_eq!(recs[..2], fixture[..2]);
        for r in &recs[2..] {
            assert_eq!(r["@timestamp"], "2026-11-23T06:03:34.405445590Z", "{r}");
        }
    }
}

/// `recs` with `event.id` taken out, to compare the records of different inputs.
fn without_event_ids(mut recs: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    for r in &mut recs {
        if let Some(e) = r.get_mut("event").and_then(|e| e.as_object_mut()) {
            assert!(
                e.remove("id").is_some_and(|id| id.is_string()),
                "every record has event.id"
            );
        }
    }
    recs
}

/// Replays `input`, expecting exit 0; its output records.
fn replay_fixture(input: &str) -> Vec<serde_json::Value> {
    let out = monitor_stdin(&["replay"], input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    json_lines(&out.stdout)
}

#[test]
fn one_record_far_from_its_neighbours_cannot_switch_detection_off() {
    // Fault 9, by design before: one far-future record moved event time past every window,
    // removing both beacon alerts and splitting the grouping.
    let original = replay_fixture(&fixture_with(0, ""));
    let beacons = |recs: &[serde_json::Value]| {
        recs.iter()
            .filter(|r| r["monitor"]["detector"] == "beacon")
            .count()
    };
    let summaries = |recs: &[serde_json::Value]| {
        recs.iter()
            .filter(|r| r["monitor"].get("aggregate").is_some())
            .count()
    };
    assert_eq!(beacons(&original), 2);
    assert_eq!(summaries(&original), 2, "one group per process");
    for ts in [
        "2199-01-01T00:00:00Z",
        "2026-11-23T08:00:00Z",
        "1971-01-01T00:00:00Z",
        "2026-11-23T04:00:00Z",
    ] {
        for at in [0, 10, 20] {
            let input = fixture_with(at, &fixture_line_at(10, ts));
            let out = monitor_stdin(&["replay"], &input);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            // event.id derives from the first input record, which the inserted line may be.
            assert_eq!(
                without_event_ids(json_lines(&out.stdout)),
                without_event_ids(original.clone()),
                "{ts} as line {}: the same alerts as without it",
                at + 1
            );
            let err = text(&out.stderr);
            assert!(
                err.contains(&format!("line {}:", at + 1)) && err.contains("left out of detection"),
                "the outlier is reported with its line: {err}"
            );
            assert!(err.contains("1 records left out"), "{err}");
        }
    }
}

#[test]
fn replay_refuses_unicode_whitespace_around_a_line() {
    // Fault 10: U+00A0, U+2028, U+3000, NEL, VT and FF were trimmed off and the line read.
    let good = event(
        "2026-11-23T10:00:00Z",
        "/usr/bin/nc.openbsd",
        "203.0.113.7",
        4444,
    );
    for ws in ["\u{a0}", "\u{2028}", "\u{3000}", "\u{85}", "\u{b}", "\u{c}"] {
        for input in [
            format!("{good}\n{ws}{good}\n"),
            format!("{good}\n{good}{ws}\n"),
            format!("{good}\n{ws}\n"),
        ] {
            let out = monitor_stdin(&["replay"], &input);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{input:?}: {}",
                text(&out.stderr)
            );
            assert!(
                text(&out.stderr).contains("line 2"),
                "{}",
                text(&out.stderr)
            );
        }
    }
}

/// Opens /dev/full for writing.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

#[test]
fn replay_to_a_full_stdout_exits_1_naming_the_records_lost() {
    // Fault 11: `> /dev/full` exited 0 with one log line.
    let fixture = fixture_8088();
    let out = Command::new(MONITOR)
        .args(["replay", fixture.to_str().unwrap()])
        .stdout(dev_full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("6 records could not be written") && err.contains("stdout: 6 lost"),
        "{err}"
    );
}

#[test]
fn replay_to_an_unwritable_output_file_exits_1_naming_the_records_lost() {
    let fixture = fixture_8088();
    let out = monitor(&[
        "replay",
        "--events",
        "--output",
        "file:/dev/full",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("26 records could not be written") && err.contains("file:/dev/full: 26 lost"),
        "{err}"
    );
}

#[test]
fn an_output_file_that_fills_up_ends_with_a_whole_record() {
    // Fault 11: a write cut short by a full disk left half a record at the end of the file,
    // for `--output file:` and for standard output redirected to a file alike. The
    // file-size limit stands in for the full disk (a short write, then EFBIG).
    use std::os::unix::process::CommandExt as _;
    let fixture = fixture_8088();
    let limit: u64 = 10_000;
    for to_stdout in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut cmd = Command::new(MONITOR);
        cmd.args(["replay", "--events"]);
        if to_stdout {
            cmd.stdout(std::fs::File::create(&path).unwrap());
        } else {
            cmd.args(["--output", &format!("file:{}", path.display())]);
        }
        cmd.arg(&fixture).stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stdout {to_stdout}: {err}");
        let written = std::fs::read(&path).unwrap();
        assert!(!written.is_empty() && written.len() as u64 <= limit);
        assert_eq!(
            written.last(),
            Some(&b'\n'),
            "stdout {to_stdout}: ends with a whole record"
        );
        let whole = json_lines(&written).len();
        assert!(
            err.contains(&format!("{} records could not be written", 26 - whole)),
            "stdout {to_stdout}: {whole} written: {err}"
        );
    }
}

#[test]
fn replayed_alerts_carry_the_probe_and_ids_as_given() {
    let recs = replay_fixture(&fixture_with(0, ""));
    for r in &recs {
        assert_eq!(r["monitor"]["probe"], "tracepoint", "{r}");
    }
    let line = event("2026-11-23T10:00:00Z", "/usr/bin/curl", "203.0.113.7", 8088)
        .replace(
            r#""user":{"id":"0","name":"root"}"#,
            r#""user":{"id":"S-1-5-18","name":"SYSTEM"},"group":{"id":"007"}"#,
        )
        .replace(
            r#""network":{"#,
            r#""monitor":{"enrichment":"full","probe":"cgroup"},"network":{"#,
        );
    let out = monitor_stdin(&["replay", "--events"], &format!("{line}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let recs = json_lines(&out.stdout);
    assert!(recs.iter().any(|r| r["event"]["kind"] == "alert"));
    for r in &recs {
        assert_eq!(r["user"]["id"], "S-1-5-18", "{r}");
        assert_eq!(r["group"]["id"], "007", "{r}");
        assert_eq!(r["monitor"]["probe"], "cgroup", "{r}");
    }
}

#[test]
fn replay_takes_the_live_runs_config_beacon_allowlist_and_rejects_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture_8088();
    let beacons = |out: &Output| {
        json_lines(&out.stdout)
            .iter()
            .filter(|v| v["monitor"]["detector"] == "beacon")
            .count()
    };
    let plain = monitor(&["replay", fixture.to_str().unwrap()]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert_eq!(beacons(&plain), 2, "curl and python3 beacon in the fixture");

    // The operator allowlisted curl to 8088 in the run's config: replay with it agrees.
    let cfg = dir.path().join("monitor.toml");
    std::fs::write(
        &cfg,
        "[beacon]\n[[beacon.allow]]\nexecutable = \"/usr/bin/curl\"\nport = 8088\nreason = \"test\"\n",
    )
    .unwrap();
    let allowed = monitor(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert_eq!(beacons(&allowed), 1, "python3 only");

    std::fs::write(&cfg, "[beacon]\nmin_connections = 1\n").unwrap();
    let bad = monitor(&[
        "replay",
        "--config",
        cfg.to_str().unwrap(),
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = text(&bad.stderr);
    assert!(
        err.contains("monitor.toml") && err.contains("min_connections"),
        "{err}"
    );
}

/// The package's layout: `rules = [rules.d]` with `builtin_rules = true` loads the operator's
/// rules beside the built-in set; the same `rules` without it replaces the built-in set.
/// `replay --config` decides as `run` does.
#[test]
fn replay_config_loads_operator_rules_beside_the_builtin_set() {
    let dir = tempfile::tempdir().unwrap();
    let rules_d = dir.path().join("rules.d");
    std::fs::create_dir(&rules_d).unwrap();
    std::fs::write(
        rules_d.join("local.yml"),
        "title: Operator rule on 8088\nid: 9d1c1a52-6a0e-4b8e-8f0b-3c2d7e5f4a61\n\
         logsource:\n    category: network_connection\n    product: linux\n\
         detection:\n    sel:\n        DestinationPort: 8088\n    condition: sel\nlevel: low\n",
    )
    .unwrap();
    let fixture = fixture_8088();
    let rule_ids = |config: &str| {
        let cfg = dir.path().join("monitor.toml");
        std::fs::write(&cfg, config).unwrap();
        let out = monitor(&[
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            fixture.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut ids: Vec<String> = json_lines(&out.stdout)
            .iter()
            .filter(|v| v["monitor"]["detector"] == "rule")
            .filter_map(|v| v["rule"]["id"].as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let rules = format!("rules = [{:?}]\n", rules_d.to_str().unwrap());
    const LOCAL: &str = "9d1c1a52-6a0e-4b8e-8f0b-3c2d7e5f4a61";
    const T1571: &str = "5e084fc2-22bb-4e3d-a8f4-8f75414a6e3a";
    let both = rule_ids(&format!("{rules}builtin_rules = true\n"));
    assert!(
        both.iter().any(|i| i == LOCAL) && both.iter().any(|i| i == T1571),
        "{both:?}"
    );
    assert_eq!(rule_ids(&rules), vec![LOCAL.to_string()]);
}
