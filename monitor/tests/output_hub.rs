//! OutputHub without rsyslog: configuration errors, spool limit accounting, and the wire
//! framing read back by plain sockets (TCP octet counting, stream unix socket).

mod output_support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monitor::output::{OutputConfig, OutputError, OutputHub, OutputRecord, OutputSpec};
use output_support::*;

fn closed_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn bad_configuration_is_refused_naming_the_setting() {
    let dir = tempdir();
    let spec = || OutputSpec::SyslogTcp {
        host: "127.0.0.1".into(),
        port: 9,
    };
    let cfg = OutputConfig {
        spool_dir: dir.path().into(),
        max_message_bytes: 100,
        ..OutputConfig::default()
    };
    let e = OutputHub::open(&[spec()], &cfg).await.err().unwrap();
    assert!(e.to_string().contains("max_message_bytes"), "{e}");

    let cfg = OutputConfig {
        spool_dir: dir.path().into(),
        sd_id: "no-enterprise-number".into(),
        ..OutputConfig::default()
    };
    let e = OutputHub::open(&[spec()], &cfg).await.err().unwrap();
    assert!(e.to_string().contains("sd_id"), "{e}");

    let cfg = OutputConfig {
        spool_dir: dir.path().into(),
        ..OutputConfig::default()
    };
    let e = OutputHub::open(&[spec(), spec()], &cfg)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, OutputError::Duplicate(_)), "{e}");
    let e = OutputHub::open(&[], &cfg).await.err().unwrap();
    assert!(matches!(e, OutputError::NoOutputs), "{e}");

    // Two processes (here: two hubs) may not share a spool.
    let first = OutputHub::open(&[spec()], &cfg).await.unwrap();
    let e = OutputHub::open(&[spec()], &cfg).await.err().unwrap();
    assert!(matches!(e, OutputError::SpoolLocked { .. }), "{e}");
    first.shutdown(Duration::from_secs(1)).await.unwrap();

    let cfg = OutputConfig {
        spool_dir: "/proc/monitor-spool".into(),
        ..OutputConfig::default()
    };
    let e = OutputHub::open(&[spec()], &cfg).await.err().unwrap();
    assert!(e.to_string().contains("/proc/monitor-spool"), "{e}");
}

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuf {
    type Writer = LogBuf;
    fn make_writer(&'a self) -> LogBuf {
        self.clone()
    }
}

/// With the receiver down and the spool at its limit, new records are dropped, and that is
/// counted and logged; everything else is accounted for in memory or on disk.
#[tokio::test]
async fn a_full_spool_drops_new_records_and_reports_them() {
    let logs = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempdir();
    let cfg = OutputConfig {
        spool_dir: dir.path().into(),
        max_message_bytes: 2048,
        spool_max_bytes: 16 * 1024,
        queue_capacity: 4,
        ..OutputConfig::default()
    };
    let spec = OutputSpec::SyslogTcp {
        host: "127.0.0.1".into(),
        port: closed_tcp_port(),
    };
    let hub = OutputHub::open(&[spec], &cfg).await.unwrap();
    for seq in 0..200 {
        hub.send(OutputRecord::from_alert(&alert("full", seq)))
            .await;
    }
    let s = hub.stats().outputs[0].clone();
    assert_eq!(s.sent, 0);
    assert!(s.dropped > 0, "{s:?}");
    assert_eq!(s.queued + s.spooled + s.dropped, 200, "{s:?}");
    assert_eq!(s.spool_records, s.spooled);
    assert!(s.spool_bytes <= 16 * 1024, "{s:?}");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("ERROR") && text.contains("records dropped") && text.contains("is full"),
        "{text}"
    );
    hub.shutdown(Duration::from_millis(500)).await.unwrap();
}

/// TCP frames are RFC 6587 octet-counted (`LEN SP MSG`), read back here by a plain listener
/// and parsed strictly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_frames_are_octet_counted() {
    let dir = tempdir();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        conn.read_to_end(&mut all).unwrap();
        all
    });
    let cfg = OutputConfig {
        spool_dir: dir.path().into(),
        hostname: Some("framing".into()),
        ..OutputConfig::default()
    };
    let spec = OutputSpec::SyslogTcp {
        host: "127.0.0.1".into(),
        port,
    };
    let records: Vec<_> = (0..20)
        .map(|i| OutputRecord::from_alert(&alert("frames", i)))
        .chain([OutputRecord::from_event(&hostile_event())])
        .collect();
    let hub = OutputHub::open(&[spec], &cfg).await.unwrap();
    for r in &records {
        hub.send(r.clone()).await;
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
    let bytes = reader.join().unwrap();
    let mut rest = &bytes[..];
    let mut got = Vec::new();
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').expect("LEN SP");
        let len: usize = std::str::from_utf8(&rest[..sp])
            .unwrap()
            .parse()
            .expect("LEN is digits");
        assert!(rest[0] != b'0', "no leading zero");
        let msg = std::str::from_utf8(&rest[sp + 1..sp + 1 + len]).unwrap();
        got.push(parse_rfc5424(msg).unwrap_or_else(|e| panic!("{e}: {msg}")));
        rest = &rest[sp + 1 + len..];
    }
    assert_eq!(got.len(), records.len());
    for (m, r) in got.iter().zip(&records) {
        assert_eq!(json_of(&m.msg), json_of(r.json()));
        assert_eq!(m.hostname, "framing");
    }
}

/// A local daemon listening on a stream socket (syslog-ng's unix-stream) gets NUL-terminated
/// messages, as syslog(3) writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_local_socket_gets_nul_terminated_messages() {
    let dir = tempdir();
    let sock = dir.path().join("stream.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        conn.read_to_end(&mut all).unwrap();
        all
    });
    let cfg = OutputConfig {
        spool_dir: dir.path().join("spool"),
        local_socket: sock,
        ..OutputConfig::default()
    };
    let records: Vec<_> = (0..5)
        .map(|i| OutputRecord::from_alert(&alert("stream", i)))
        .collect();
    let hub = OutputHub::open(&[OutputSpec::Syslog], &cfg).await.unwrap();
    for r in &records {
        hub.send(r.clone()).await;
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
    let bytes = reader.join().unwrap();
    assert_eq!(bytes.last(), Some(&0));
    let msgs: Vec<&[u8]> = bytes[..bytes.len() - 1].split(|&b| b == 0).collect();
    assert_eq!(msgs.len(), 5);
    for (m, r) in msgs.iter().zip(&records) {
        let (_, host, tag, _, msg) = parse_rfc3164(std::str::from_utf8(m).unwrap(), false).unwrap();
        assert_eq!((host, tag.as_str()), (None, "monitor"));
        assert_eq!(json_of(&msg), json_of(r.json()));
    }
}
