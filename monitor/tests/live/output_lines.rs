//! stdout and file outputs: one JSON object per line, flushed per line, appended, reopened
//! after rotation.

#[path = "../output_support/mod.rs"]
mod output_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use monitor::output::{OutputConfig, OutputHub, OutputRecord, OutputSpec};
use output_support::*;
use serde_json::json;

const CHILD_ENV: &str = "MONITOR_OUTPUT_STDOUT_CHILD";

fn stdout_records() -> Vec<OutputRecord> {
    vec![
        OutputRecord::from_alert(&alert("stdout", 1)),
        OutputRecord::from_event(&hostile_event()),
        OutputRecord::from_metric(json!({"@timestamp": "2026-11-23T10:00:00Z",
            "event": {"kind": "metric"}, "monitor": {"events": 3}})),
    ]
}

/// The child side: writes the first record, waits for the parent to have read it (a line on
/// stdin), then writes the rest.
async fn stdout_child() {
    let hub = OutputHub::open(&[OutputSpec::Stdout], &OutputConfig::default())
        .await
        .unwrap();
    let mut records = stdout_records().into_iter();
    hub.send(records.next().unwrap()).await;
    let go = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(go.trim(), "next");
    for r in records {
        hub.send(r).await;
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Runs this test binary again as the child (so the real stdout is a pipe we read), and
/// checks each record is one JSON line that arrives while the child is still running.
#[tokio::test]
async fn stdout_writes_each_record_as_one_flushed_json_line() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return stdout_child().await;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stdout_writes_each_record_as_one_flushed_json_line",
            "--nocapture",
            "--quiet",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the test binary as the stdout child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next_record = || loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a line from the child within 30 s");
        if line.starts_with('{') {
            return Some(line);
        }
        if line.contains("test result") || line.contains("FAILED") {
            panic!("child ended early: {line}");
        }
    };
    let expected = stdout_records();
    // The first record is readable while the child waits: flushed per line.
    let first = next_record().unwrap();
    assert_eq!(json_of(&first), json_of(expected[0].json()));
    child.stdin.take().unwrap().write_all(b"next\n").unwrap();
    let rest: Vec<String> = (0..2).map(|_| next_record().unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    for (line, rec) in rest.iter().zip(&expected[1..]) {
        assert_eq!(json_of(line), json_of(rec.json()));
    }
    let hostile: serde_json::Value = json_of(&rest[0]);
    assert_eq!(
        hostile["process"]["command_line"].as_str(),
        Some(hostile_command_line().as_str()),
        "the hostile command line is intact inside one line"
    );
    // Nothing else that looks like a record: the forged text stayed inside the string.
    let extra: Vec<String> = rx.try_iter().filter(|l| l.starts_with('{')).collect();
    assert!(extra.is_empty(), "{extra:?}");
}

#[tokio::test]
async fn file_output_appends_and_reopens_after_rotation() {
    let dir = tempdir();
    let path = dir.path().join("alerts.json");
    std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
    let hub = OutputHub::open(&[OutputSpec::File(path.clone())], &OutputConfig::default())
        .await
        .unwrap();
    for seq in 0..3 {
        hub.send(OutputRecord::from_alert(&alert("file", seq)))
            .await;
    }
    // logrotate: move the file, then SIGHUP.
    let rotated = dir.path().join("alerts.json.1");
    std::fs::rename(&path, &rotated).unwrap();
    hub.reopen_files();
    for seq in 3..5 {
        hub.send(OutputRecord::from_alert(&alert("file", seq)))
            .await;
    }
    let hostile = OutputRecord::from_event(&hostile_event());
    hub.send(hostile.clone()).await;
    hub.shutdown(Duration::from_secs(5)).await.unwrap();

    let seqs = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let v = json_of(l);
                v["labels"]["seq"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v["earlier"].as_bool().map(|_| "earlier".into()))
                    .unwrap_or_else(|| "event".into())
            })
            .collect()
    };
    assert_eq!(seqs(&rotated), ["earlier", "0", "1", "2"]);
    assert_eq!(seqs(&path), ["3", "4", "event"]);
    let last = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        json_of(last.lines().last().unwrap()),
        json_of(hostile.json())
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "not world-readable: {mode:o}");
}

/// Batches (`send_all`, what replay of a file uses) reach every line output whole and in
/// order, mixed with single records, with a queue of one slot that makes the sender wait.
#[tokio::test]
async fn batches_reach_every_line_output_in_order() {
    let dir = tempdir();
    let paths = [dir.path().join("a.json"), dir.path().join("b.json")];
    let specs: Vec<OutputSpec> = paths.iter().cloned().map(OutputSpec::File).collect();
    let cfg = OutputConfig {
        line_queue_capacity: 1,
        ..OutputConfig::default()
    };
    let hub = OutputHub::open(&specs, &cfg).await.unwrap();
    let mut seq = 0u64;
    for round in 0..50u64 {
        let batch: Vec<OutputRecord> = (0..round % 7)
            .map(|i| OutputRecord::from_alert(&alert("batch", seq + i)))
            .collect();
        seq += batch.len() as u64;
        hub.send_all(batch).await;
        hub.send(OutputRecord::from_alert(&alert("one", seq))).await;
        seq += 1;
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
    let want: Vec<String> = (0..seq).map(|s| s.to_string()).collect();
    for p in &paths {
        let got: Vec<String> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| json_of(l)["labels"]["seq"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "{}", p.display());
    }
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_fails_at_start_naming_it() {
    let err = OutputHub::open(
        &[OutputSpec::File("/nonexistent-dir/alerts.json".into())],
        &OutputConfig::default(),
    )
    .await
    .err()
    .expect("opening fails");
    let text = err.to_string();
    assert!(text.contains("/nonexistent-dir/alerts.json"), "{text}");
    assert!(text.contains("No such file"), "{text}");
}

/// Unmounts the test's tmpfs when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that fills up: the file output counts what it could not write, the line cut by
/// the full disk is ended before the next records, and writing resumes once there is room.
/// Needs root, to mount a small tmpfs.
#[tokio::test]
async fn a_full_disk_costs_records_but_not_the_file_format() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root: it mounts a 256 KiB tmpfs to fill up"
    );
    let dir = tempdir();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(status.success(), "mount -t tmpfs failed: {status}");
    let _mount = Mount(mnt.clone());
    // Leave about 12 KiB free: room for some records, not for all 40.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 256 * 1024 - 12 * 1024]).unwrap();

    let path = mnt.join("alerts.json");
    let hub = OutputHub::open(&[OutputSpec::File(path.clone())], &OutputConfig::default())
        .await
        .unwrap();
    for seq in 0..40 {
        hub.send(OutputRecord::from_alert(&alert("full-disk", seq)))
            .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let s = hub.stats().outputs[0].clone();
        if s.sent + s.dropped == 40 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        stats.sent > 0 && stats.dropped > 0 && stats.errors > 0,
        "{stats:?}"
    );

    std::fs::remove_file(&filler).unwrap();
    for seq in 100..105 {
        hub.send(OutputRecord::from_alert(&alert("full-disk", seq)))
            .await;
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let parsed: Vec<Option<serde_json::Value>> =
        lines.iter().map(|l| serde_json::from_str(l).ok()).collect();
    let broken = parsed.iter().filter(|p| p.is_none()).count();
    assert!(
        broken <= 1,
        "at most the one line the full disk cut: {lines:?}"
    );
    let seqs: Vec<String> = parsed
        .iter()
        .flatten()
        .map(|v| v["labels"]["seq"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seqs.len() as u64, stats.sent + 5, "{seqs:?}");
    assert_eq!(&seqs[seqs.len() - 5..], ["100", "101", "102", "103", "104"]);
    let want: Vec<String> = (0..stats.sent).map(|s| s.to_string()).collect();
    assert_eq!(&seqs[..stats.sent as usize], want.as_slice());
}
