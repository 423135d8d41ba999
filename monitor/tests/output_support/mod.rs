//! Shared by the output tests: sample records, a real rsyslogd started per test, and a
//! strict RFC 5424 parser.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor::record::{
    Alert, ConnectionRecord, Detector, Endpoint, Level, ParentInfo, ProcessInfo, RuleMeta,
    Timestamp, Transport, text_from_bytes,
};

/// A connection by curl to the 8088 beacon test port; `seq` goes into the pid and the
/// command line so records can be told apart and ordered.
pub fn event(seq: u64) -> ConnectionRecord {
    ConnectionRecord {
        timestamp: Timestamp(1_790_000_000_000_000_000 + seq as i64 * 1_000_000),
        host_name: "h1".into(),
        process: Arc::new(ProcessInfo {
            pid: 10_000 + seq as u32,
            tid: None,
            name: Some("curl".into()),
            executable: Some("/usr/bin/curl".into()),
            command_line: Some(format!("curl -s http://203.0.113.7:8088/?seq={seq}")),
            args: vec![
                "curl".into(),
                "-s".into(),
                format!("http://203.0.113.7:8088/?seq={seq}"),
            ],
            parent: ParentInfo {
                pid: Some(1),
                name: Some("bash".into()),
                executable: Some("/usr/bin/bash".into()),
                command_line: None,
            },
            user_id: Some(0.into()),
            user_name: Some("root".into()),
            group_id: Some(0.into()),
            container_id: None,
            hashes: None,
            ancestors: Vec::new(),
        }),
        source: None,
        destination: Endpoint {
            ip: "203.0.113.7".parse().unwrap(),
            port: 8088,
        },
        transport: Transport::Tcp,
        partial: false,
        suppressed: 0,
        probe: None,
        dns_resolver: false,
        domain: None,
        domain_source: None,
        dns: None,
        connection_id: None,
        life: None,
    }
}

/// An alert on `ev`, labelled `case` (to find it again) and `seq`.
pub fn alert_on(ev: ConnectionRecord, case: &str, seq: u64, level: Level) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("case".to_string(), case.to_string());
    labels.insert("seq".to_string(), seq.to_string());
    Alert {
        timestamp: ev.timestamp,
        event: ev,
        rule: Arc::new(RuleMeta {
            id: "5f1c2c3a-8088-4a1b-9c2d-000000000001".into(),
            name: "Connection to non-standard port 8088".into(),
            description: "Outbound connection to a port commonly used by C2 frameworks".into(),
            reference: vec!["https://attack.mitre.org/techniques/T1571/".into()],
            ruleset: "builtin".into(),
        }),
        techniques: vec!["T1571".into(), "T1071.001".into()].into(),
        detector: Detector::Rule,
        level,
        risk_score: Some(73),
        labels,
        aggregate: None,
        beacon: None,
        correlation: None,
    }
}

pub fn alert(case: &str, seq: u64) -> Alert {
    alert_on(event(seq), case, seq, Level::High)
}

/// The attacker-controlled text of the injection tests: newline, CR, NUL, `]`, `"`, a
/// backslash, a forged syslog line and JSON record, and invalid UTF-8 (through the same
/// conversion capture uses).
pub fn hostile_command_line() -> String {
    let mut raw = b"python3 -c x\n<13>1 2026-01-01T00:00:00Z forged monitor - alert - {\"event\":{\"kind\":\"alert\"}}\r\0]\"\\ ] [x@1 a=\"b\"] ".to_vec();
    raw.extend_from_slice(b"\xff\xfe\xc3(\x80 end\n");
    text_from_bytes(&raw)
}

pub fn hostile_name() -> String {
    text_from_bytes(b"py\nth\r\0n]\"\\\xff")
}

pub fn hostile_event() -> ConnectionRecord {
    let mut ev = event(7);
    let p = Arc::make_mut(&mut ev.process);
    p.command_line = Some(hostile_command_line());
    p.name = Some(hostile_name());
    p.executable = Some(text_from_bytes(b"/tmp/x\n]\"\xff"));
    p.args = vec![hostile_command_line(), "\0\n".into()];
    ev
}

/// A temporary directory under /tmp (short paths: unix socket paths are limited to 108
/// bytes).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mon-out-")
        .tempdir_in("/tmp")
        .expect("create a temporary directory in /tmp")
}

/// A real rsyslogd, with its own configuration, ports and files; the system's rsyslog and
/// /dev/log are not touched. Each input writes one JSON line per message to its own file,
/// with rsyslog's own parse of the message (and of RFC 5424 structured data, through
/// mmpstrucdata) next to the raw message.
pub struct Rsyslog {
    pub dir: PathBuf,
    pub udp_port: u16,
    pub tcp_port: u16,
    /// imuxsock socket with rsyslog's defaults for the system socket (special parser).
    pub unix_socket: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

pub fn rsyslogd_path() -> PathBuf {
    for p in [
        "/usr/sbin/rsyslogd",
        "/sbin/rsyslogd",
        "/usr/local/sbin/rsyslogd",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v rsyslogd"])
        .output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout).trim().into();
    }
    panic!(
        "rsyslogd not found: these tests need a real rsyslog. Install the Debian package \
         (`apt-get install -y rsyslog`); CI's script does this."
    );
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslog {
    pub fn start(dir: &Path) -> Rsyslog {
        let udp_port = free_udp_port();
        let tcp_port = free_tcp_port();
        let unix_socket = dir.join("log.sock");
        let conf = dir.join("rsyslog.conf");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        // maxMessageSize stays at rsyslog's default (8096 bytes), the limit the outputs'
        // default is built for.
        let text = format!(
            r#"
global(workDirectory="{work}")
module(load="imudp")
module(load="imtcp")
module(load="imuxsock" SysSock.Use="off")
module(load="mmpstrucdata")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="udp")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="tcp")
input(type="imuxsock" Socket="{sock}" ruleset="unix" RateLimit.Interval="0")
template(name="j" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="tag" name="syslogtag" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
  property(outname="parsed_sd" name="$!rfc5424-sd" format="jsonf")
}}
ruleset(name="udp") {{
  action(type="mmpstrucdata" sd_name.lowercase="off")
  action(type="omfile" file="{dir}/udp.log" template="j")
}}
ruleset(name="tcp") {{
  action(type="mmpstrucdata" sd_name.lowercase="off")
  action(type="omfile" file="{dir}/tcp.log" template="j")
}}
ruleset(name="unix") {{
  action(type="omfile" file="{dir}/unix.log" template="j")
}}
"#,
            work = work.display(),
            sock = unix_socket.display(),
            dir = dir.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let mut r = Rsyslog {
            dir: dir.to_path_buf(),
            udp_port,
            tcp_port,
            unix_socket,
            conf,
            child: None,
        };
        r.restart();
        r
    }

    /// Starts rsyslogd (again) with the same ports and files, and waits until every input
    /// listens.
    pub fn restart(&mut self) {
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
        loop {
            let tcp = TcpStream::connect(("127.0.0.1", self.tcp_port)).is_ok();
            let unix = std::os::unix::net::UnixDatagram::unbound()
                .and_then(|s| s.connect(&self.unix_socket))
                .is_ok();
            let udp = udp_listening(self.udp_port);
            if tcp && unix && udp {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let err =
                    std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default();
                panic!("rsyslogd exited at start ({status}): {err}");
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not open its inputs within 20 s (tcp {tcp}, unix {unix}, udp {udp})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops rsyslogd (SIGTERM) and waits for it to exit, so its sockets are closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on the pid of a child we started and have not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn file(&self, input: &str) -> PathBuf {
        self.dir.join(format!("{input}.log"))
    }

    /// The lines rsyslog wrote for `input` (`udp`, `tcp`, `unix`), parsed.
    ///
    /// omfile writes through a 4 KiB buffer, so a long line can be seen half-written while
    /// rsyslog is still flushing it: a last line without its newline is not complete yet
    /// and is left for the next read.
    pub fn lines(&self, input: &str) -> Vec<RsyslogLine> {
        let Ok(text) = std::fs::read_to_string(self.file(input)) else {
            return Vec::new();
        };
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => return Vec::new(),
        };
        complete
            .split('\n')
            .map(|l| {
                serde_json::from_str::<RsyslogLine>(l)
                    .unwrap_or_else(|e| panic!("rsyslog wrote a line that is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits until `input` has at least `n` lines whose message matches `keep`, and returns
    /// them (after a short pause for any extra ones).
    pub fn wait_lines(
        &self,
        input: &str,
        n: usize,
        timeout: Duration,
        keep: impl Fn(&RsyslogLine) -> bool,
    ) -> Vec<RsyslogLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let got: Vec<_> = self.lines(input).into_iter().filter(&keep).collect();
            if got.len() >= n {
                std::thread::sleep(Duration::from_millis(300));
                return self.lines(input).into_iter().filter(&keep).collect();
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog {input}: {} of {n} messages arrived within {timeout:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn udp_listening(port: u16) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/net/udp") else {
        return false;
    };
    let want = format!("0100007F:{port:04X}");
    text.lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
}

/// One message as rsyslog stored it.
#[derive(serde::Deserialize, Debug, Clone)]
pub struct RsyslogLine {
    pub pri: String,
    pub hostname: String,
    pub app: String,
    pub procid: String,
    pub msgid: String,
    pub tag: String,
    pub sd: String,
    pub msg: String,
    pub raw: String,
    #[serde(default)]
    pub parsed_sd: String,
}

impl RsyslogLine {
    /// The MSG as a JSON record (rsyslog keeps the space after `TAG:` in RFC 3164 MSG).
    pub fn record(&self) -> serde_json::Value {
        serde_json::from_str(self.msg.trim_start()).unwrap_or_else(|e| {
            panic!(
                "the syslog MSG is not one JSON record ({e}): {:?}",
                self.msg
            )
        })
    }

    pub fn label(&self, key: &str) -> Option<String> {
        let r: serde_json::Value = serde_json::from_str(self.msg.trim_start()).ok()?;
        r["labels"][key].as_str().map(str::to_string)
    }
}

/// A strictly parsed RFC 5424 message.
#[derive(Debug, PartialEq)]
pub struct Rfc5424 {
    pub pri: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    /// (SD-ID, [(name, unescaped value)])
    pub sd: Vec<(String, Vec<(String, String)>)>,
    pub msg: String,
}

fn sd_name(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 32 {
        return Err(format!("{what} `{s}` must be 1..32 characters"));
    }
    if !s
        .bytes()
        .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
    {
        return Err(format!("{what} `{s}` has a character RFC 5424 forbids"));
    }
    Ok(())
}

/// Parses `raw` as RFC 5424, rejecting anything the RFC does not allow (and a backslash in
/// a PARAM-VALUE that escapes nothing, which a correct sender never writes).
pub fn parse_rfc5424(raw: &str) -> Result<Rfc5424, String> {
    let rest = raw.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("PRI not closed")?;
    if pri.is_empty() || pri.len() > 3 || !pri.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("bad PRI {pri}"));
    }
    let pri: u8 = pri.parse().map_err(|_| "PRI out of range")?;
    if pri > 191 {
        return Err("PRI out of range".into());
    }
    let rest = rest.strip_prefix("1 ").ok_or("VERSION is not 1")?;
    let mut fields = rest.splitn(6, ' ');
    let mut next = |what: &str, max: usize| -> Result<String, String> {
        let f = fields.next().ok_or(format!("{what} missing"))?;
        if f.is_empty() || f.len() > max || !f.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(format!("{what} `{f}` is not 1..{max} PRINTUSASCII"));
        }
        Ok(f.to_string())
    };
    let timestamp = next("TIMESTAMP", 64)?;
    let hostname = next("HOSTNAME", 255)?;
    let app_name = next("APP-NAME", 48)?;
    let procid = next("PROCID", 128)?;
    let msgid = next("MSGID", 32)?;
    let rest = fields.next().ok_or("STRUCTURED-DATA missing")?;
    check_timestamp(&timestamp)?;

    let mut sd = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let msg_start = if rest.starts_with('-') {
        1
    } else {
        loop {
            match chars.next() {
                Some((_, '[')) => {}
                _ => return Err("SD-ELEMENT must start with [".into()),
            }
            let mut id = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == ' ' || c == ']' {
                    break;
                }
                id.push(c);
                chars.next();
            }
            sd_name(&id, "SD-ID")?;
            let mut params = Vec::new();
            loop {
                match chars.next() {
                    Some((_, ']')) => break,
                    Some((_, ' ')) => {}
                    other => return Err(format!("expected SP or ] after SD-ID, got {other:?}")),
                }
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some((_, '=')) => break,
                        Some((_, c)) => name.push(c),
                        None => return Err("PARAM-NAME not ended".into()),
                    }
                }
                sd_name(&name, "PARAM-NAME")?;
                if chars.next().map(|x| x.1) != Some('"') {
                    return Err("PARAM-VALUE must start with \"".into());
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\' | ']'))) => value.push(c),
                            other => return Err(format!("backslash escapes nothing: {other:?}")),
                        },
                        Some((_, '"')) => break,
                        Some((_, ']')) => return Err("unescaped ] in PARAM-VALUE".into()),
                        Some((_, c)) if c.is_control() => {
                            return Err(format!("control character {c:?} in PARAM-VALUE"));
                        }
                        Some((_, c)) => value.push(c),
                        None => return Err("PARAM-VALUE not closed".into()),
                    }
                }
                params.push((name, value));
            }
            sd.push((id, params));
            match chars.peek() {
                Some(&(_, '[')) => continue,
                _ => break,
            }
        }
        chars.peek().map_or(rest.len(), |&(i, _)| i)
    };
    let tail = &rest[msg_start..];
    let msg = if tail.is_empty() {
        String::new()
    } else {
        tail.strip_prefix(' ')
            .ok_or("no SP between STRUCTURED-DATA and MSG")?
            .to_string()
    };
    Ok(Rfc5424 {
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd,
        msg,
    })
}

fn check_timestamp(ts: &str) -> Result<(), String> {
    // FULL-DATE "T" TIME with at most 6 fractional digits and Z or an offset.
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let ok = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !ok {
        return Err(format!("TIMESTAMP `{ts}` is not RFC 3339"));
    }
    let mut rest = &ts[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 6 {
            return Err(format!("TIMESTAMP `{ts}` needs 1..6 fractional digits"));
        }
        rest = &frac[n..];
    }
    if rest == "Z" || (rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-'))) {
        Ok(())
    } else {
        Err(format!("TIMESTAMP `{ts}` has no valid time zone"))
    }
}

/// Parses `<PRI>Mmm dd hh:mm:ss [HOST ]TAG[PID]: MSG`; `with_host` says whether HOSTNAME
/// is there.
pub fn parse_rfc3164(
    raw: &str,
    with_host: bool,
) -> Result<(u8, Option<String>, String, String, String), String> {
    let rest = raw.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("PRI not closed")?;
    let pri: u8 = pri.parse().map_err(|_| format!("bad PRI {pri}"))?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if rest.len() < 16 || !MONTHS.contains(&&rest[..3]) || &rest[15..16] != " " {
        return Err(format!("bad TIMESTAMP in {raw:?}"));
    }
    let mut rest = &rest[16..];
    let host = if with_host {
        let (h, r) = rest.split_once(' ').ok_or("no HOSTNAME")?;
        rest = r;
        Some(h.to_string())
    } else {
        None
    };
    let (tag, msg) = rest.split_once(": ").ok_or("no `TAG: `")?;
    let (name, pid) = tag
        .strip_suffix(']')
        .and_then(|t| t.split_once('['))
        .ok_or("TAG has no [PID]")?;
    Ok((
        pri,
        host,
        name.to_string(),
        pid.to_string(),
        msg.to_string(),
    ))
}

/// The JSON of `rec` as a `Value`, for exact comparison with what arrived.
pub fn json_of(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap()
}

/// `json_of` without `event.id` (which it asserts is there): for records made by another
/// process, whose ids are its own.
pub fn json_without_id(line: &str) -> serde_json::Value {
    let mut v = json_of(line);
    let id = v["event"]
        .as_object_mut()
        .and_then(|e| e.remove("id"))
        .unwrap_or_else(|| panic!("no event.id in {line}"));
    assert_eq!(id.as_str().map(str::len), Some(32), "{id}");
    v
}
