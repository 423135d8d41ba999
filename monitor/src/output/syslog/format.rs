//! Syslog framing: RFC 5424 and RFC 3164 messages around the JSON record, with every
//! attacker-controlled value escaped so that no input can forge a second message, a second
//! record or a structured-data element.
//!
//! Hand-written on purpose: the crates we looked at fall short here. `syslog` (rust-syslog)
//! only escapes structured-data values in its newest releases, writes header fields as given
//! (a space or newline in a host name breaks the header) and owns a blocking transport;
//! `syslog-fmt` has no RFC 3164 and does not sanitize header fields either. Framing is a few
//! dozen lines; the escaping rules are what matters, and they are tested below.

use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Local, SecondsFormat, Utc};

use super::fit::fit_json;
use crate::output::output_record::OutputRecord;

/// `--syslog-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG` with structured data.
    #[default]
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG` (no HOSTNAME on the local socket).
    Rfc3164,
}

impl SyslogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SyslogFormat::Rfc5424 => "rfc5424",
            SyslogFormat::Rfc3164 => "rfc3164",
        }
    }
}

impl FromStr for SyslogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rfc5424" | "5424" => Ok(SyslogFormat::Rfc5424),
            "rfc3164" | "3164" | "bsd" => Ok(SyslogFormat::Rfc3164),
            _ => Err(format!(
                "unknown syslog format `{s}`; expected rfc5424 or rfc3164"
            )),
        }
    }
}

impl std::fmt::Display for SyslogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Syslog facility (RFC 5424 table 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    AuthPriv,
    Ftp,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

const FACILITIES: [(Facility, &str); 20] = [
    (Facility::Kern, "kern"),
    (Facility::User, "user"),
    (Facility::Mail, "mail"),
    (Facility::Daemon, "daemon"),
    (Facility::Auth, "auth"),
    (Facility::Syslog, "syslog"),
    (Facility::Lpr, "lpr"),
    (Facility::News, "news"),
    (Facility::Uucp, "uucp"),
    (Facility::Cron, "cron"),
    (Facility::AuthPriv, "authpriv"),
    (Facility::Ftp, "ftp"),
    (Facility::Local0, "local0"),
    (Facility::Local1, "local1"),
    (Facility::Local2, "local2"),
    (Facility::Local3, "local3"),
    (Facility::Local4, "local4"),
    (Facility::Local5, "local5"),
    (Facility::Local6, "local6"),
    (Facility::Local7, "local7"),
];

impl Facility {
    /// The numeric code (PRI = code * 8 + severity). Codes 12..=15 are unused by name.
    pub fn code(self) -> u8 {
        match self {
            Facility::Kern => 0,
            Facility::User => 1,
            Facility::Mail => 2,
            Facility::Daemon => 3,
            Facility::Auth => 4,
            Facility::Syslog => 5,
            Facility::Lpr => 6,
            Facility::News => 7,
            Facility::Uucp => 8,
            Facility::Cron => 9,
            Facility::AuthPriv => 10,
            Facility::Ftp => 11,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }

    pub fn as_str(self) -> &'static str {
        FACILITIES
            .iter()
            .find(|(f, _)| *f == self)
            .map(|(_, n)| *n)
            .unwrap_or("user")
    }
}

impl FromStr for Facility {
    type Err = String;
    /// A name (`authpriv`, `local3`, `security` is `auth`) or a code.
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        let name = if lower == "security" { "auth" } else { &lower };
        if let Some((f, _)) = FACILITIES.iter().find(|(_, n)| *n == name) {
            return Ok(*f);
        }
        if let Ok(code) = name.parse::<u8>()
            && let Some((f, _)) = FACILITIES.iter().find(|(f, _)| f.code() == code)
        {
            return Ok(*f);
        }
        Err(format!(
            "unknown syslog facility `{s}`; expected kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0..local7 or their code"
        ))
    }
}

impl std::fmt::Display for Facility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Largest structured-data PARAM-VALUE in bytes (before escaping). Values are for
/// filtering on the collector; the JSON message holds the full text.
pub const SD_VALUE_MAX: usize = 128;

/// Checks an SD-ID: 1..=32 PRINTUSASCII characters except `=`, SP, `]`, `"`; a private one
/// has the form `name@PEN`.
pub fn check_sd_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 32 {
        return Err(format!("`{id}` must be 1 to 32 characters long"));
    }
    if !id
        .bytes()
        .all(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"'))
    {
        return Err(format!(
            "`{id}` may hold only printable ASCII without `=`, `]`, `\"` or spaces"
        ));
    }
    match id.split_once('@') {
        Some((name, pen))
            if !name.is_empty() && pen.bytes().all(|b| b.is_ascii_digit()) && !pen.is_empty() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{id}` must have the form name@ENTERPRISE-NUMBER, like monitor@32473"
        )),
    }
}

/// Builds syslog messages for one output. Holds the sanitized header parts.
#[derive(Clone, Debug)]
pub(crate) struct Framer {
    format: SyslogFormat,
    /// RFC 3164 on the local socket leaves HOSTNAME out, as glibc's syslog(3) does; the
    /// daemon fills it in (and would read a hostname as the tag).
    local: bool,
    facility: u8,
    hostname: String,
    app_name: String,
    tag: String,
    procid: String,
    sd_id: String,
    max_message: usize,
}

/// What framing did to a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Framed {
    /// The JSON was shortened to fit `max_message`.
    pub truncated: bool,
}

impl Framer {
    pub fn new(
        format: SyslogFormat,
        local: bool,
        facility: Facility,
        hostname: &str,
        app_name: &str,
        sd_id: &str,
        max_message: usize,
    ) -> Self {
        Framer {
            format,
            local,
            facility: facility.code(),
            hostname: header_field(hostname, 255),
            app_name: header_field(app_name, 48),
            tag: tag_3164(app_name),
            procid: std::process::id().to_string(),
            sd_id: sd_id.to_string(),
            max_message,
        }
    }

    pub fn format(&self) -> SyslogFormat {
        self.format
    }

    /// Appends one complete syslog message (no transport framing) for `rec` to `out`.
    /// The message never exceeds `max_message` bytes and holds no byte below 0x20.
    pub fn frame(&self, rec: &OutputRecord, out: &mut Vec<u8>) -> Framed {
        let start = out.len();
        let pri = self.facility as u32 * 8 + rec.syslog_severity() as u32;
        let mut head = String::with_capacity(256);
        match self.format {
            SyslogFormat::Rfc5424 => {
                // RFC 5424 allows at most six fractional digits.
                let ts = DateTime::<Utc>::from_timestamp_nanos(rec.timestamp().0)
                    .to_rfc3339_opts(SecondsFormat::Micros, true);
                let _ = write!(
                    head,
                    "<{pri}>1 {ts} {} {} {} {} ",
                    self.hostname,
                    self.app_name,
                    self.procid,
                    rec.kind().as_str()
                );
                self.structured_data(rec, &mut head);
                head.push(' ');
            }
            SyslogFormat::Rfc3164 => {
                // Traditionally local time, day padded with a space ("Nov  3").
                let ts = DateTime::<Utc>::from_timestamp_nanos(rec.timestamp().0)
                    .with_timezone(&Local)
                    .format("%b %e %H:%M:%S");
                let _ = write!(head, "<{pri}>{ts} ");
                if !self.local {
                    head.push_str(&self.hostname);
                    head.push(' ');
                }
                let _ = write!(head, "{}[{}]: ", self.tag, self.procid);
            }
        }
        out.extend_from_slice(head.as_bytes());
        let budget = self.max_message.saturating_sub(head.len());
        let json = rec.json();
        let mut framed = Framed::default();
        if json.len() <= budget {
            out.extend_from_slice(json.as_bytes());
        } else {
            out.extend_from_slice(fit_json(json, budget).as_bytes());
            framed.truncated = true;
        }
        // serde_json escapes every control character and the header is sanitized, so this
        // finds nothing; it is the last line of defence against a forged line.
        let msg = &mut out[start..];
        debug_assert!(
            !msg.iter().any(|b| *b < 0x20),
            "control byte in syslog message"
        );
        for b in msg.iter_mut().filter(|b| **b < 0x20) {
            *b = b' ';
        }
        framed
    }

    /// `[monitor@32473 kind=".." level=".." ...]`. Parameters that would make the element
    /// larger than a quarter of the message are left out, so the JSON keeps its room.
    fn structured_data(&self, rec: &OutputRecord, out: &mut String) {
        let cap = self.max_message / 4;
        let start = out.len();
        out.push('[');
        out.push_str(&self.sd_id);
        let param = |name: &str, value: &str, out: &mut String| {
            let mark = out.len();
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape_sd_value(value, SD_VALUE_MAX, out);
            out.push('"');
            if out.len() - start + 1 > cap {
                out.truncate(mark);
            }
        };
        param("kind", rec.kind().as_str(), out);
        if let Some(level) = rec.level() {
            param("level", level.as_str(), out);
            param("severity", &level.severity().to_string(), out);
        }
        if let Some(id) = rec.rule_id() {
            param("rule_id", id, out);
        }
        if !rec.techniques().is_empty() {
            param("technique", &rec.techniques().join(","), out);
        }
        if let Some(p) = rec.process() {
            param("pid", &p.pid.to_string(), out);
            if let Some(name) = &p.name {
                param("process", name, out);
            }
            if let Some(exe) = &p.executable {
                param("executable", exe, out);
            }
        }
        if let Some(d) = rec.destination() {
            param("dst_ip", &d.ip.to_string(), out);
            param("dst_port", &d.port.to_string(), out);
            param("transport", d.transport.as_str(), out);
        }
        out.push(']');
    }
}

/// A header field (HOSTNAME, APP-NAME): PRINTUSASCII only, at most `max` characters, `-`
/// (NILVALUE) when empty. Anything else becomes `_`.
pub(crate) fn header_field(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// RFC 3164 TAG: letters, digits and `._-/`, at most 32 characters.
pub(crate) fn tag_3164(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(32)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push_str("monitor");
    }
    out
}

/// Writes `value` as an RFC 5424 PARAM-VALUE body: `"`, `\` and `]` get a backslash (RFC
/// 5424 section 6.3.3). Control characters, which the RFC allows but which would let a
/// value break a receiver's line, are written as the text `\xNN` (`\u{NNNN}` beyond ASCII),
/// the same convention `record::text_from_bytes` uses for invalid UTF-8; their backslash is
/// escaped like any other. At most `max` bytes of `value` are used, cut at a character
/// boundary and marked with `...`.
pub(crate) fn escape_sd_value(value: &str, max: usize, out: &mut String) {
    let mut used = 0;
    for c in value.chars() {
        used += c.len_utf8();
        if used > max {
            out.push_str("...");
            return;
        }
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Line and paragraph separators and bidirectional overrides: not control characters to
/// Rust, but they break lines in some viewers or reorder what an analyst reads.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Facility;

    #[test]
    fn sd_values_escape_specials_and_controls() {
        let mut s = String::new();
        escape_sd_value("a\"b\\c]d\ne\0f\u{85}g\u{202e}h[", 128, &mut s);
        assert_eq!(
            s,
            "a\\\"b\\\\c\\]d\\\\x0ae\\\\x00f\\\\u{0085}g\\\\u{202e}h["
        );
        let mut s = String::new();
        escape_sd_value(&"é".repeat(100), 9, &mut s);
        assert_eq!(s, "éééé...");
    }

    #[test]
    fn header_fields_are_printable_ascii() {
        assert_eq!(header_field("my host\n", 255), "my_host_");
        assert_eq!(header_field("", 255), "-");
        assert_eq!(header_field("hôte", 255), "h_te");
        assert_eq!(header_field(&"a".repeat(300), 255).len(), 255);
        assert_eq!(tag_3164("mon itor[1]:"), "mon_itor_1__");
    }

    #[test]
    fn facilities_parse_by_name_and_code() {
        assert_eq!("authpriv".parse::<Facility>().unwrap().code(), 10);
        assert_eq!("LOCAL7".parse::<Facility>().unwrap(), Facility::Local7);
        assert_eq!("4".parse::<Facility>().unwrap(), Facility::Auth);
        assert_eq!("security".parse::<Facility>().unwrap(), Facility::Auth);
        assert!("13".parse::<Facility>().is_err());
        assert!("local8".parse::<Facility>().unwrap_err().contains("local0"));
        for (f, n) in FACILITIES {
            assert_eq!(n.parse::<Facility>().unwrap(), f);
            assert_eq!(f.to_string(), n);
        }
    }

    #[test]
    fn sd_id_is_checked() {
        assert!(check_sd_id("monitor@32473").is_ok());
        assert!(check_sd_id("monitor").is_err());
        assert!(check_sd_id("mon itor@1").is_err());
        assert!(check_sd_id("a]@1").is_err());
        assert!(check_sd_id(&format!("{}@1", "a".repeat(40))).is_err());
    }
}
