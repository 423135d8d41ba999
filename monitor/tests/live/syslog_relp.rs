//! Acknowledged and encrypted delivery against a real rsyslogd (root; Debian packages
//! `rsyslog`, `rsyslog-relp`, `rsyslog-gnutls`, `openssl`, `curl`):
//! - `syslog+relp://` while rsyslog is killed with SIGKILL mid-stream and restarted 5 s
//!   later: every alert arrives, in order; duplicates only from the unacknowledged window
//!   and with the same `event.id`.
//! - The monitor stopped (SIGTERM) while rsyslog is down: the spool survives the restart
//!   and is delivered once both are back.
//! - `syslog+tls://` (imtcp, gtls driver) and `syslog+relp+tls://` (imrelp, TLS with a
//!   client certificate), with a CA made by the test: delivered; with the wrong CA:
//!   refused with an error naming the output, the alerts kept in the spool.

mod common;
#[path = "../output_support/mod.rs"]
mod output_support;

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::MonitorProcess;
use common::records::{is_alert, str_field};
use common::{require_program, require_root, send_signal};
use monitor::output::{OutputConfig, OutputHub, OutputRecord, OutputSpec, TlsSettings};
use output_support::{alert, rsyslogd_path};
use serde_json::Value;

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real rsyslogd with one input (`input`, a config line with `{port}`), writing each
/// message's MSG (the JSON record) as one line to `msgs.log`. The ruleset's queue is
/// `Direct` and omfile flushes per batch, so what rsyslog acknowledges is in the file: the
/// configuration README gives for RELP.
struct Collector {
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Collector {
    fn start(dir: &Path, global: &str, input: &str) -> Collector {
        let port = free_tcp_port();
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        let input = input.replace("{port}", &port.to_string());
        let text = format!(
            r#"
global(workDirectory="{work}" {global})
{input}
template(name="m" type="string" string="%msg%\n")
ruleset(name="r" queue.type="Direct") {{
  action(type="omfile" file="{dir}/msgs.log" template="m" flushOnTXEnd="on" asyncWriting="off")
}}
"#,
            work = work.display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let mut c = Collector {
            dir: dir.to_path_buf(),
            conf,
            port,
            child: None,
        };
        c.restart();
        c
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is already running");
        let child = Command::new(rsyslogd_path())
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslogd.stderr")).unwrap())
            .spawn()
            .expect("start rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited at start ({status}): {}",
                    std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not listen on {} within 20 s: {}",
                self.port,
                std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` and waits for rsyslogd to exit.
    fn stop_with(&mut self, signal: libc::c_int) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), signal);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The records rsyslog wrote, in order (a last line without its newline is not
    /// complete yet and is left out).
    fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("msgs.log")).unwrap_or_default();
        let Some(end) = text.rfind('\n') else {
            return Vec::new();
        };
        text[..end]
            .split('\n')
            .map(|l| {
                serde_json::from_str(l.trim_start()).unwrap_or_else(|e| {
                    panic!("rsyslog wrote a line that is not a record ({e}): {l}")
                })
            })
            .collect()
    }

    /// Waits until `done` holds for the records of rule `rule_id`.
    fn wait_rule(
        &self,
        rule_id: &str,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let got: Vec<Value> = self
                .records()
                .into_iter()
                .filter(|r| str_field(r, "rule.id") == Some(rule_id))
                .collect();
            if done(&got) {
                return got;
            }
            assert!(
                start.elapsed() < limit,
                "rsyslog: {what} did not happen within {limit:?}; {} records of {rule_id} arrived",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop_with(libc::SIGTERM);
    }
}

fn relp_input() -> &'static str {
    r#"module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="{port}" ruleset="r")"#
}

fn event_id(r: &Value) -> String {
    str_field(r, "event.id")
        .unwrap_or_else(|| panic!("a record without event.id: {r}"))
        .to_string()
}

/// An ungrouped rule: every curl connect to `port` is one alert.
fn curl_rule(id: &str, port: u16) -> String {
    format!(
        "title: RELP test rule {id}\nid: {id}\nstatus: test\nlevel: high\nlogsource:\n    category: network_connection\n    product: linux\ndetection:\n    selection:\n        Image|endswith: '/curl'\n        DestinationPort: {port}\n    condition: selection\n"
    )
}

/// `n` connect attempts by curl to 127.0.0.1:`port` (nothing listens: the connect is what
/// the monitor sees), `gap` apart.
fn curls(port: u16, n: usize, gap: Duration) {
    let curl = require_program(&["/usr/bin/curl"], "curl");
    for _ in 0..n {
        Command::new(&curl)
            .args(["-s", "-o", "/dev/null", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .status()
            .unwrap();
        std::thread::sleep(gap);
    }
}

/// `monitor run` with `rules_dir`, stdout (the reference: what the pipeline produced, in
/// order) and `output`, spooling to `spool`.
fn start_monitor(dir: &Path, rules_dir: &Path, spool: &Path, output: &str) -> MonitorProcess {
    let config = dir.join("monitor.toml");
    std::fs::write(
        &config,
        format!(
            "shutdown_deadline_secs = 3\n[output]\nspool_dir = \"{}\"\nreconnect_min_ms = 50\nreconnect_max_ms = 500\nconnect_timeout_ms = 2000\nspool_fsync_ms = 0\n",
            spool.display()
        ),
    )
    .unwrap();
    MonitorProcess::start(&[
        "--config".into(),
        config.display().to_string(),
        "--probe".into(),
        "tracepoint".into(),
        "--rules".into(),
        rules_dir.display().to_string(),
        "--output".into(),
        "stdout".into(),
        "--output".into(),
        output.into(),
    ])
}

#[test]
fn relp_collector_killed_mid_stream_loses_no_alert() {
    require_root("syslog_relp");
    let dir = common::TempDir::new("relp-kill");
    let mut rs = Collector::start(&dir.join("rsyslog"), "", relp_input());
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let target_port = free_tcp_port();
    let rule_id = "relp-kill-0001";
    std::fs::write(rules.join("r.yml"), curl_rule(rule_id, target_port)).unwrap();
    let mut m = start_monitor(
        dir.path(),
        &rules,
        &dir.join("spool"),
        &format!("syslog+relp://127.0.0.1:{}", rs.port),
    );

    const N: usize = 300;
    let traffic = std::thread::spawn(move || curls(target_port, N, Duration::from_millis(10)));
    rs.wait_rule(rule_id, Duration::from_secs(60), "100 alerts", |r| {
        r.len() >= 100
    });
    rs.stop_with(libc::SIGKILL);
    let at_kill = rs
        .records()
        .into_iter()
        .filter(|r| str_field(r, "rule.id") == Some(rule_id))
        .count();
    std::thread::sleep(Duration::from_secs(5));
    rs.restart();
    traffic.join().unwrap();

    let sent = m.wait_until(Duration::from_secs(60), |recs| {
        recs.iter()
            .filter(|r| is_alert(r) && str_field(r, "rule.id") == Some(rule_id))
            .count()
            >= N
    });
    let sent: Vec<String> = sent
        .iter()
        .filter(|r| is_alert(r) && str_field(r, "rule.id") == Some(rule_id))
        .map(event_id)
        .collect();
    assert_eq!(sent.len(), N, "the monitor raised one alert per connect");
    let got = rs.wait_rule(rule_id, Duration::from_secs(60), "all 300 alerts", |r| {
        let ids: std::collections::HashSet<String> = r.iter().map(event_id).collect();
        ids.len() >= N
    });

    // In order and complete: the first copies, in arrival order, are exactly what the
    // monitor raised.
    let mut first: HashMap<String, (usize, &Value)> = HashMap::new();
    let mut order = Vec::new();
    let mut duplicates = Vec::new();
    for (i, r) in got.iter().enumerate() {
        let id = event_id(r);
        match first.get(&id) {
            None => {
                first.insert(id.clone(), (i, r));
                order.push(id);
            }
            Some(&(at, original)) => {
                assert_eq!(
                    r, original,
                    "a resent alert is the same record, same event.id"
                );
                duplicates.push((at, i));
            }
        }
    }
    assert_eq!(order, sent, "every alert arrived, in the order raised");
    // Duplicates only from the window: written before the kill (rsyslog stored them and
    // died before its acknowledgement reached the monitor), the copy after the restart.
    assert!(
        duplicates.len() <= 128,
        "at most a window (128) is resent: {}",
        duplicates.len()
    );
    for (at, again) in &duplicates {
        assert!(
            *at < at_kill && *again >= at_kill,
            "a duplicate outside the crash window: first at {at}, again at {again}, {at_kill} stored before the kill"
        );
    }
    let (status, _) = m.stop(Duration::from_secs(30));
    assert!(status.success(), "monitor exit: {status}; {}", m.stderr());
    eprintln!(
        "relp kill test: {at_kill} stored before SIGKILL, {} duplicates after the restart",
        duplicates.len()
    );
}

#[test]
fn monitor_restarted_while_rsyslog_is_down_delivers_the_spool_later() {
    require_root("syslog_relp");
    let dir = common::TempDir::new("relp-restart");
    let mut rs = Collector::start(&dir.join("rsyslog"), "", relp_input());
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let target_port = free_tcp_port();
    let rule_id = "relp-restart-0001";
    std::fs::write(rules.join("r.yml"), curl_rule(rule_id, target_port)).unwrap();
    let spool = dir.join("spool");
    let output = format!("syslog+relp://127.0.0.1:{}", rs.port);

    let mut m = start_monitor(dir.path(), &rules, &spool, &output);
    curls(target_port, 1, Duration::ZERO);
    rs.wait_rule(rule_id, Duration::from_secs(30), "the first alert", |r| {
        !r.is_empty()
    });
    rs.stop_with(libc::SIGTERM);
    const N: usize = 20;
    curls(target_port, N, Duration::from_millis(20));
    let raised = m.wait_until(Duration::from_secs(30), |recs| {
        recs.iter()
            .filter(|r| is_alert(r) && str_field(r, "rule.id") == Some(rule_id))
            .count()
            > N
    });
    let raised: Vec<String> = raised
        .iter()
        .filter(|r| is_alert(r) && str_field(r, "rule.id") == Some(rule_id))
        .map(event_id)
        .collect();
    let (status, _) = m.stop(Duration::from_secs(30));
    assert!(status.success(), "monitor exit: {status}; {}", m.stderr());
    let stderr = m.stderr();
    drop(m);
    // The spool holds the undelivered alerts for the next start.
    let spool_files: Vec<PathBuf> = std::fs::read_dir(&spool)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert!(
        !spool_files.is_empty(),
        "the spool holds the alerts after the stop; monitor log:\n{stderr}"
    );

    rs.restart();
    let m2 = start_monitor(dir.path(), &rules, &spool, &output);
    let got = rs.wait_rule(
        rule_id,
        Duration::from_secs(60),
        "the spooled alerts",
        |r| r.len() > N,
    );
    let got: Vec<String> = got.iter().map(event_id).collect();
    assert_eq!(
        got, raised,
        "every alert once, in order, across the restart"
    );
    drop(m2);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with the
/// openssl command line; and a second CA that signed nothing here.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let openssl = require_program(&["/usr/bin/openssl"], "openssl");
    let out = Command::new(openssl)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=monitor test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "subjectAltName=DNS:monitor-client\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{ext}"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    Pki {
        ca: dir.join("ca.pem"),
        other_ca: dir.join("other-ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    }
}

/// The tracing log of this test binary, to check the errors the outputs log.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogWriter(writer.clone()))
            .init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        std::io::stderr().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tls_config(spool: &Path, tls: TlsSettings) -> OutputConfig {
    OutputConfig {
        hostname: Some("testhost".into()),
        spool_dir: spool.to_path_buf(),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(300),
        connect_timeout: Duration::from_secs(3),
        tls,
        ..OutputConfig::default()
    }
}

async fn deliver_and_check(
    spec: OutputSpec,
    rs: &Collector,
    spool: &Path,
    tls: TlsSettings,
    case: &str,
) {
    let hub = OutputHub::open(std::slice::from_ref(&spec), &tls_config(spool, tls))
        .await
        .unwrap();
    let recs: Vec<OutputRecord> = (0..20)
        .map(|i| OutputRecord::from_alert(&alert(case, i)))
        .collect();
    for r in &recs {
        hub.send(r.clone()).await;
    }
    let start = Instant::now();
    let want: Vec<Value> = recs
        .iter()
        .map(|r| serde_json::from_str(r.json()).unwrap())
        .collect();
    loop {
        let got: Vec<Value> = rs
            .records()
            .into_iter()
            .filter(|r| str_field(r, "labels.case") == Some(case))
            .collect();
        if got.len() >= want.len() {
            assert_eq!(got, want, "{spec}: every record once, in order");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{spec}: {} of 20 records arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.shutdown(Duration::from_secs(5)).await.unwrap();
}

async fn wrong_ca_is_refused_and_spooled(
    spec: OutputSpec,
    rs: &Collector,
    spool: &Path,
    tls: TlsSettings,
    case: &str,
) {
    let log = captured_log();
    let hub = OutputHub::open(std::slice::from_ref(&spec), &tls_config(spool, tls))
        .await
        .unwrap();
    for i in 0..5 {
        hub.send(OutputRecord::from_alert(&alert(case, i))).await;
    }
    let start = Instant::now();
    loop {
        let s = &hub.stats().outputs[0];
        if s.errors >= 2 {
            assert_eq!(
                s.sent, 0,
                "{spec}: nothing goes to a collector the CA does not vouch for"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{spec}: no failure seen: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = hub.close(Duration::from_secs(2)).await.unwrap();
    let s = &stats.outputs[0];
    assert_eq!(
        (s.sent, s.dropped, s.spool_records),
        (0, 0, 5),
        "{spec}: kept in the spool: {s:?}"
    );
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("output={spec}")) && l.contains("TLS handshake"))
        .unwrap_or_else(|| {
            panic!("{spec}: no log line names the output and the TLS failure:\n{text}")
        });
    assert!(
        line.contains("UnknownIssuer") || line.contains("invalid peer certificate"),
        "{spec}: the error says why: {line}"
    );
    assert!(
        rs.records()
            .iter()
            .all(|r| str_field(r, "labels.case") != Some(case)),
        "{spec}: nothing arrived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_relp_over_tls_deliver_and_a_wrong_ca_is_refused() {
    require_root("syslog_relp");
    let _ = captured_log();
    let dir = common::TempDir::new("tls");
    let pki = make_pki(&dir.join("pki"));
    // imtcp with the gtls driver (RFC 5425), anonymous clients.
    let tls_rs = Collector::start(
        &dir.join("rs-tls"),
        &format!(
            r#"DefaultNetstreamDriverCAFile="{}" DefaultNetstreamDriverCertFile="{}" DefaultNetstreamDriverKeyFile="{}""#,
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        ),
        r#"module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="r" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")"#,
    );
    // imrelp over TLS, requiring a client certificate from the same CA.
    let relp_rs = Collector::start(
        &dir.join("rs-relp"),
        "",
        &format!(
            r#"module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="{{port}}" ruleset="r" tls="on" tls.cacert="{}" tls.mycert="{}" tls.myprivkey="{}" tls.authmode="certvalid")"#,
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        ),
    );
    let good = TlsSettings {
        ca_file: Some(pki.ca.clone()),
        cert_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
        server_name: None,
    };
    let wrong = TlsSettings {
        ca_file: Some(pki.other_ca.clone()),
        ..good.clone()
    };
    let tls_spec = OutputSpec::SyslogTls {
        host: "127.0.0.1".into(),
        port: tls_rs.port,
    };
    let relp_spec = OutputSpec::SyslogRelp {
        host: "127.0.0.1".into(),
        port: relp_rs.port,
        tls: true,
    };
    deliver_and_check(
        tls_spec.clone(),
        &tls_rs,
        &dir.join("spool-ok"),
        good.clone(),
        "tls-ok",
    )
    .await;
    deliver_and_check(
        relp_spec.clone(),
        &relp_rs,
        &dir.join("spool-ok"),
        good,
        "relp-tls-ok",
    )
    .await;
    wrong_ca_is_refused_and_spooled(
        tls_spec,
        &tls_rs,
        &dir.join("spool-bad"),
        wrong.clone(),
        "tls-bad",
    )
    .await;
    wrong_ca_is_refused_and_spooled(
        relp_spec,
        &relp_rs,
        &dir.join("spool-bad"),
        wrong,
        "relp-tls-bad",
    )
    .await;
}
