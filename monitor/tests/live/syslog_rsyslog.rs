//! Syslog outputs against a real rsyslogd (Debian's `rsyslog` package), started by each test
//! on loopback ports and a unix socket in a temporary directory.

#[path = "../output_support/mod.rs"]
mod output_support;

use std::path::Path;
use std::time::Duration;

use monitor::output::{OutputConfig, OutputHub, OutputRecord, OutputSpec, SyslogFormat};
use monitor::record::Level;
use output_support::*;
use serde_json::{Value, json};

fn config(spool: &Path, rs: &Rsyslog) -> OutputConfig {
    OutputConfig {
        hostname: Some("testhost".into()),
        local_socket: rs.unix_socket.clone(),
        spool_dir: spool.to_path_buf(),
        reconnect_max: Duration::from_millis(500),
        ..OutputConfig::default()
    }
}

fn udp(rs: &Rsyslog) -> OutputSpec {
    OutputSpec::SyslogUdp {
        host: "127.0.0.1".into(),
        port: rs.udp_port,
    }
}

fn tcp(rs: &Rsyslog) -> OutputSpec {
    OutputSpec::SyslogTcp {
        host: "127.0.0.1".into(),
        port: rs.tcp_port,
    }
}

const WAIT: Duration = Duration::from_secs(30);
const AUTHPRIV: u8 = 10;

fn metric(case: &str) -> Value {
    json!({
        "@timestamp": "2026-11-23T10:00:00.25Z",
        "event": {"kind": "metric"},
        "host": {"hostname": "h1"},
        "monitor": {"metric": {"case": case, "events": 12}},
    })
}

/// Which record of a case a message holds: the alert's seq label, the event's pid, or the
/// metric's case.
fn case_of(l: &RsyslogLine) -> Option<String> {
    let r: Value = serde_json::from_str(l.msg.trim_start()).ok()?;
    if let Some(c) = r["labels"]["case"].as_str() {
        return Some(c.to_string());
    }
    if let Some(c) = r["monitor"]["metric"]["case"].as_str() {
        return Some(c.to_string());
    }
    r["process"]["command_line"]
        .as_str()
        .map(|c| format!("cmd:{c}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_and_format_arrives_and_parses() {
    let dir = tempdir();
    let rs = Rsyslog::start(dir.path());
    let pid = std::process::id().to_string();
    let cases = [
        ("udp-5424", udp(&rs), Some(SyslogFormat::Rfc5424), "udp"),
        ("udp-3164", udp(&rs), Some(SyslogFormat::Rfc3164), "udp"),
        ("tcp-5424", tcp(&rs), Some(SyslogFormat::Rfc5424), "tcp"),
        ("tcp-3164", tcp(&rs), Some(SyslogFormat::Rfc3164), "tcp"),
        // The local socket's default: RFC 3164 without HOSTNAME, read by imuxsock's default
        // parser.
        ("unix-default", OutputSpec::Syslog, None, "unix"),
    ];
    for (i, (case, spec, format, input)) in cases.into_iter().enumerate() {
        let mut cfg = config(&dir.path().join("spool").join(case), &rs);
        cfg.syslog_format = format;
        let hub = OutputHub::open(&[spec], &cfg).await.unwrap();
        let critical = alert_on(event(1), case, 1, Level::Critical);
        let medium = alert_on(event(2), case, 2, Level::Medium);
        let mut ev = event(100 + i as u64);
        std::sync::Arc::make_mut(&mut ev.process).command_line = Some(format!("event of {case}"));
        let sent = [
            (OutputRecord::from_alert(&critical), 2u8, "alert"),
            (OutputRecord::from_alert(&medium), 4, "alert"),
            (OutputRecord::from_event(&ev), 6, "event"),
            (OutputRecord::from_metric(metric(case)), 6, "metric"),
        ];
        for (r, _, _) in &sent {
            hub.send(r.clone()).await;
        }
        let stats = hub.stats();
        hub.shutdown(Duration::from_secs(10)).await.unwrap();
        let event_key = format!("cmd:event of {case}");
        let lines = rs.wait_lines(input, 4, WAIT, |l| {
            case_of(l).is_some_and(|c| c == case || c == event_key)
        });
        assert_eq!(
            lines.len(),
            4,
            "{case}: exactly the four records: {lines:#?}"
        );
        assert_eq!(stats.outputs[0].truncated, 0);

        for (line, (rec, severity, kind)) in lines.iter().zip(&sent) {
            // The MSG is the very record stdout would print.
            assert_eq!(line.record(), json_of(rec.json()), "{case}: {}", line.msg);
            assert_eq!(line.pri, (AUTHPRIV * 8 + severity).to_string(), "{case}");
            assert_eq!(line.app, "monitor", "{case}");
            assert_eq!(line.procid, pid, "{case}");
            assert!(
                !line.raw.contains(['\n', '\r', '\0']),
                "{case}: {:?}",
                line.raw
            );
            match format.unwrap_or(SyslogFormat::Rfc3164) {
                SyslogFormat::Rfc5424 => {
                    let m = parse_rfc5424(&line.raw).unwrap_or_else(|e| {
                        panic!("{case}: not strict RFC 5424 ({e}): {}", line.raw)
                    });
                    assert_eq!(m.hostname, "testhost");
                    assert_eq!(line.hostname, "testhost");
                    assert_eq!(m.msgid, *kind);
                    assert_eq!(line.msgid, *kind);
                    assert_eq!(json_of(&m.msg), json_of(rec.json()));
                    assert_eq!(m.sd.len(), 1);
                    let (id, params) = &m.sd[0];
                    assert_eq!(id, "monitor@32473");
                    let get =
                        |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                    assert_eq!(get("kind"), Some(*kind));
                    if *kind == "alert" {
                        assert_eq!(get("rule_id"), Some("5f1c2c3a-8088-4a1b-9c2d-000000000001"));
                        assert_eq!(get("technique"), Some("T1571,T1071.001"));
                        assert_eq!(
                            get("level"),
                            Some(if *severity == 2 { "critical" } else { "medium" })
                        );
                        assert_eq!(
                            get("severity"),
                            Some(if *severity == 2 { "99" } else { "47" })
                        );
                    }
                    if *kind != "metric" {
                        assert_eq!(get("process"), Some("curl"));
                        assert_eq!(get("executable"), Some("/usr/bin/curl"));
                        assert_eq!(get("dst_ip"), Some("203.0.113.7"));
                        assert_eq!(get("dst_port"), Some("8088"));
                        assert_eq!(get("transport"), Some("tcp"));
                        assert!(get("pid").is_some());
                    } else {
                        assert_eq!(params.len(), 1, "a metric has only kind: {params:?}");
                    }
                    // rsyslog's own structured-data parser reads the same parameters.
                    let theirs: Value = serde_json::from_str(&line.parsed_sd).unwrap_or_else(|e| {
                        panic!("{case}: mmpstrucdata output {:?}: {e}", line.parsed_sd)
                    });
                    let ours: serde_json::Map<String, Value> = params
                        .iter()
                        .map(|(n, v)| (n.clone(), Value::from(v.as_str())))
                        .collect();
                    assert_eq!(theirs, json!({ "monitor@32473": ours }), "{case}");
                }
                SyslogFormat::Rfc3164 => {
                    let with_host = input != "unix";
                    let (p, host, tag, tpid, msg) = parse_rfc3164(&line.raw, with_host)
                        .unwrap_or_else(|e| panic!("{case}: not RFC 3164 ({e}): {}", line.raw));
                    assert_eq!(p, AUTHPRIV * 8 + severity);
                    if with_host {
                        assert_eq!(host.as_deref(), Some("testhost"));
                        assert_eq!(line.hostname, "testhost");
                    }
                    assert_eq!(tag, "monitor");
                    assert_eq!(tpid, pid);
                    assert_eq!(json_of(&msg), json_of(rec.json()));
                }
            }
        }
    }
}

/// The fault test: rsyslog stops, 1,000 alerts are raised, rsyslog comes back: all
/// 1,000 arrive exactly once, in order, over TCP and over the unix socket, with most of them
/// passing through the on-disk spool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_back_every_alert_arrives_once_in_order() {
    let dir = tempdir();
    let mut rs = Rsyslog::start(dir.path());
    let mut cfg = config(&dir.path().join("spool"), &rs);
    cfg.queue_capacity = 100; // the other 900 go through the spool
    let hub = OutputHub::open(&[tcp(&rs), OutputSpec::Syslog], &cfg)
        .await
        .unwrap();
    let seq_of = |l: &RsyslogLine| l.label("seq").map(|s| s.parse::<u64>().unwrap());
    let is_case = |l: &RsyslogLine| l.label("case").as_deref() == Some("fault");

    for seq in 0..10 {
        hub.send(OutputRecord::from_alert(&alert("fault", seq)))
            .await;
    }
    rs.wait_lines("tcp", 10, WAIT, is_case);
    rs.wait_lines("unix", 10, WAIT, is_case);

    rs.stop();
    for seq in 10..1010 {
        hub.send(OutputRecord::from_alert(&alert("fault", seq)))
            .await;
    }
    // Let delivery fail and retry for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = hub.stats();
    for s in &during.outputs {
        assert!(
            s.spooled >= 800,
            "{}: most records went to the spool: {s:?}",
            s.output
        );
        assert!(s.errors > 0, "{}: failures were seen: {s:?}", s.output);
        assert_eq!(s.dropped, 0);
    }
    rs.restart();
    for input in ["tcp", "unix"] {
        let lines = rs.wait_lines(input, 1010, Duration::from_secs(60), is_case);
        let seqs: Vec<u64> = lines.iter().filter_map(seq_of).collect();
        assert_eq!(
            seqs,
            (0..1010).collect::<Vec<_>>(),
            "{input}: every alert exactly once, in order"
        );
    }
    let after = hub.stats();
    for s in &after.outputs {
        assert_eq!(s.sent, 1010, "{s:?}");
        assert_eq!((s.queued, s.spool_records, s.dropped), (0, 0, 0), "{s:?}");
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
    // Delivered spool segments are removed.
    for out in ["syslog+tcp_127.0.0.1_", "syslog"] {
        for d in std::fs::read_dir(dir.path().join("spool")).unwrap() {
            let d = d.unwrap();
            if d.file_name().to_string_lossy().starts_with(out) {
                let names: Vec<_> = std::fs::read_dir(d.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
                assert_eq!(names, vec!["lock".to_string()], "{:?}", d.path());
            }
        }
    }
}

/// UDP is best effort, and the test says how much: while the receiver is down, each lost
/// datagram shows up as one send error (the ICMP error comes back on the next send), the
/// failed ones are spooled or kept and re-sent, so what arrives is in order, without
/// duplicates, and at most `errors` records are missing. (The backlog is kept small here:
/// a receiver's socket buffer can also overflow, which no sender can see.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_across_an_outage_loses_at_most_one_datagram_per_error() {
    let dir = tempdir();
    let mut rs = Rsyslog::start(dir.path());
    let cfg = config(&dir.path().join("spool"), &rs);
    let hub = OutputHub::open(&[udp(&rs)], &cfg).await.unwrap();
    let is_case = |l: &RsyslogLine| l.label("case").as_deref() == Some("udp-outage");
    let seqs = |rs: &Rsyslog| -> Vec<u64> {
        rs.lines("udp")
            .iter()
            .filter(|l| is_case(l))
            .map(|l| l.label("seq").unwrap().parse().unwrap())
            .collect()
    };
    for seq in 0..10 {
        hub.send(OutputRecord::from_alert(&alert("udp-outage", seq)))
            .await;
    }
    rs.wait_lines("udp", 10, WAIT, is_case);
    rs.stop();
    for seq in 10..60 {
        hub.send(OutputRecord::from_alert(&alert("udp-outage", seq)))
            .await;
        if seq % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = hub.stats().outputs[0].clone();
    rs.restart();
    hub.send(OutputRecord::from_alert(&alert("udp-outage", 60)))
        .await;
    let deadline = std::time::Instant::now() + WAIT;
    let got = loop {
        let got = seqs(&rs);
        if got.last() == Some(&60) {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} arrived: {got:?} {:?}",
            got.len(),
            hub.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicates: {got:?}"
    );
    let s = hub.stats().outputs[0].clone();
    let missing = 61 - got.len() as u64;
    assert!(during.errors > 0 && during.queued > 0, "{during:?}");
    assert!(
        missing >= 1,
        "a datagram sent into the outage is lost: {got:?}"
    );
    assert!(
        missing <= s.errors,
        "{missing} lost but only {} errors: {s:?}",
        s.errors
    );
    // Backoff grows while the receiver stays down (100 ms doubling to 500 ms here), so a
    // 2.5 s outage costs a handful of datagrams, not one per 100 ms.
    assert!(s.errors <= 10, "{s:?}");
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// SIGTERM with the receiver down: the queue goes to the spool, and the next start sends it
/// first, before the new records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_spools_the_queue_and_next_start_sends_it_first() {
    let dir = tempdir();
    let mut rs = Rsyslog::start(dir.path());
    rs.stop();
    let cfg = config(&dir.path().join("spool"), &rs);
    let specs = [tcp(&rs)];
    let hub = OutputHub::open(&specs, &cfg).await.unwrap();
    for seq in 0..50 {
        hub.send(OutputRecord::from_alert(&alert("restart", seq)))
            .await;
    }
    let s = hub.stats();
    assert_eq!(s.outputs[0].queued, 50, "{s:?}");
    let started = std::time::Instant::now();
    hub.shutdown(Duration::from_secs(3)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a receiver that is down does not hold up shutdown"
    );
    let spool: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    assert_eq!(spool.len(), 1, "the queue is in the spool: {spool:?}");

    rs.restart();
    let hub = OutputHub::open(&specs, &cfg).await.unwrap();
    for seq in 50..60 {
        hub.send(OutputRecord::from_alert(&alert("restart", seq)))
            .await;
    }
    let is_case = |l: &RsyslogLine| l.label("case").as_deref() == Some("restart");
    let lines = rs.wait_lines("tcp", 60, WAIT, is_case);
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l.label("seq").unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs, (0..60).collect::<Vec<_>>());
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Records larger than rsyslog's default limit (8096 bytes) arrive whole, as valid JSON, shortened and
/// marked; the file output keeps the full record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_arrive_as_valid_shortened_json() {
    let dir = tempdir();
    let rs = Rsyslog::start(dir.path());
    let cfg = config(&dir.path().join("spool"), &rs);
    let file = dir.path().join("full.json");
    let mut ev = event(1);
    let long = format!("curl http://203.0.113.7:8088/{}", "A\"]\\\n".repeat(20_000));
    let p = std::sync::Arc::make_mut(&mut ev.process);
    p.command_line = Some(long.clone());
    p.args = (0..3000).map(|i| format!("arg{i}")).collect();
    let a = alert_on(ev, "big", 1, Level::High);
    let rec = OutputRecord::from_alert(&a);
    assert!(rec.json().len() > 100_000);
    let specs = [
        udp(&rs),
        tcp(&rs),
        OutputSpec::Syslog,
        OutputSpec::File(file.clone()),
    ];
    let hub = OutputHub::open(&specs, &cfg).await.unwrap();
    hub.send(rec.clone()).await;
    let stats = hub.stats();
    hub.shutdown(Duration::from_secs(10)).await.unwrap();
    for s in &stats.outputs[..3] {
        assert_eq!(s.truncated, 1, "{s:?}");
    }
    for input in ["udp", "tcp", "unix"] {
        // A fresh rsyslog: a cut message would show up as a second line.
        let lines = rs.wait_lines(input, 1, WAIT, |_| true);
        assert_eq!(lines.len(), 1, "{input}: {lines:#?}");
        let l = &lines[0];
        assert!(l.raw.len() <= 8000, "{input}: {} bytes", l.raw.len());
        let r = l.record();
        assert_eq!(r["monitor"]["truncated"], true, "{input}");
        assert_eq!(r["monitor"]["original_bytes"], rec.json().len() as u64);
        assert_eq!(r["rule"]["id"], "5f1c2c3a-8088-4a1b-9c2d-000000000001");
        assert_eq!(r["labels"]["case"], "big");
        let cl = r["process"]["command_line"].as_str().unwrap();
        assert!(
            cl.starts_with("curl http://203.0.113.7:8088/A\"]\\\n"),
            "{input}"
        );
        assert!(cl.ends_with('…'));
        if input != "unix" {
            parse_rfc5424(&l.raw).unwrap();
        }
    }
    let full = std::fs::read_to_string(&file).unwrap();
    assert_eq!(json_of(full.trim_end()), json_of(rec.json()));
}

/// A hostile command line and process name (newline, CR, NUL, `]`, `"`, backslash, a forged
/// syslog line and JSON record, invalid UTF-8): every output holds exactly one well-formed
/// record per record sent, with the text intact inside the JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_process_text_cannot_forge_lines_or_records() {
    let dir = tempdir();
    let rs = Rsyslog::start(dir.path());
    let ev = hostile_event();
    let a = alert_on(ev.clone(), "inject", 1, Level::Critical);
    let records = [OutputRecord::from_alert(&a), OutputRecord::from_event(&ev)];
    let file = dir.path().join("out.json");

    for format in [SyslogFormat::Rfc5424, SyslogFormat::Rfc3164] {
        let mut cfg = config(&dir.path().join("spool").join(format.as_str()), &rs);
        cfg.syslog_format = Some(format);
        let mut specs = vec![udp(&rs), tcp(&rs)];
        if format == SyslogFormat::Rfc3164 {
            specs.push(OutputSpec::Syslog);
            specs.push(OutputSpec::File(file.clone()));
        }
        let hub = OutputHub::open(&specs, &cfg).await.unwrap();
        for r in &records {
            hub.send(r.clone()).await;
        }
        hub.shutdown(Duration::from_secs(10)).await.unwrap();
    }

    let check = |what: &str, rec: &Value, original: &OutputRecord| {
        assert_eq!(rec, &json_of(original.json()), "{what}");
        assert_eq!(
            rec["process"]["command_line"].as_str(),
            Some(hostile_command_line().as_str()),
            "{what}: the text survives intact"
        );
        assert_eq!(
            rec["process"]["name"].as_str(),
            Some(hostile_name().as_str())
        );
    };
    for (input, per_format) in [("udp", 2), ("tcp", 2), ("unix", 1)] {
        // A fresh rsyslog: everything in the file is ours, so forged lines would show.
        let lines = rs.wait_lines(input, 2 * per_format, WAIT, |_| true);
        assert_eq!(lines.len(), 2 * per_format, "{input}: {lines:#?}");
        for (i, l) in lines.iter().enumerate() {
            assert!(
                !l.raw.bytes().any(|b| b < 0x20),
                "{input}: control byte on the wire: {:?}",
                l.raw
            );
            check(input, &l.record(), &records[i % 2]);
            if l.raw
                .split_once('>')
                .is_some_and(|(_, r)| r.starts_with("1 "))
            {
                let m = parse_rfc5424(&l.raw)
                    .unwrap_or_else(|e| panic!("{input}: invalid RFC 5424 ({e}): {}", l.raw));
                let (_, params) = &m.sd[0];
                let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                // Control characters and invalid bytes are `\xNN` text; specials are escaped
                // on the wire and come back as themselves.
                assert_eq!(
                    get("process").as_deref(),
                    Some("py\\x0ath\\x0d\\x00n]\"\\\\xff")
                );
                assert_eq!(get("executable").as_deref(), Some("/tmp/x\\x0a]\"\\xff"));
                let theirs: Value = serde_json::from_str(&l.parsed_sd).unwrap();
                assert_eq!(
                    theirs["monitor@32473"]["process"],
                    "py\\x0ath\\x0d\\x00n]\"\\\\xff"
                );
            }
        }
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "file: one line per record: {text:?}");
    for (l, r) in lines.iter().zip(&records) {
        check("file", &json_of(l), r);
    }
}

/// One output failing (a file on a full disk) does not stop the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_output_does_not_stop_the_others() {
    let dir = tempdir();
    let rs = Rsyslog::start(dir.path());
    let cfg = config(&dir.path().join("spool"), &rs);
    let good = dir.path().join("good.json");
    let specs = [
        OutputSpec::File("/dev/full".into()),
        tcp(&rs),
        OutputSpec::File(good.clone()),
    ];
    let hub = OutputHub::open(&specs, &cfg).await.unwrap();
    for seq in 0..5 {
        hub.send(OutputRecord::from_alert(&alert("failing", seq)))
            .await;
    }
    let lines = rs.wait_lines("tcp", 5, WAIT, |l| {
        l.label("case").as_deref() == Some("failing")
    });
    assert_eq!(lines.len(), 5);
    // Let the file writers finish.
    let deadline = std::time::Instant::now() + WAIT;
    while hub.stats().outputs.iter().any(|s| s.sent + s.dropped < 5) {
        assert!(std::time::Instant::now() < deadline, "{:?}", hub.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = hub.stats();
    assert_eq!(s.outputs[0].output, "file:/dev/full");
    assert_eq!((s.outputs[0].sent, s.outputs[0].dropped), (0, 5), "{s:?}");
    assert!(s.outputs[0].errors > 0);
    assert_eq!(s.outputs[1].sent, 5);
    assert_eq!((s.outputs[2].sent, s.outputs[2].dropped), (5, 0));
    assert_eq!(s.dropped(), 5);
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(std::fs::read_to_string(&good).unwrap().lines().count(), 5);
}
