//! `--output SPEC` values.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use thiserror::Error;

/// Where records go: `stdout` | `file:PATH` | `syslog` | `syslog+udp://HOST:PORT` |
/// `syslog+tcp://HOST:PORT` | `syslog+tls://HOST:PORT` | `syslog+relp://HOST:PORT` |
/// `syslog+relp+tls://HOST:PORT`. An IPv6 HOST is written in brackets:
/// `[2001:db8::1]:514`. TLS settings (CA, client certificate) are `[output.tls]` in the
/// config file, shared by the TLS outputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OutputSpec {
    Stdout,
    File(PathBuf),
    /// The local syslog daemon's socket (`OutputConfig::local_socket`, `/dev/log`).
    Syslog,
    SyslogUdp {
        host: String,
        port: u16,
    },
    SyslogTcp {
        host: String,
        port: u16,
    },
    /// RFC 5425: octet-counted frames over TLS.
    SyslogTls {
        host: String,
        port: u16,
    },
    /// RELP (rsyslog's imrelp), over TLS when `tls`.
    SyslogRelp {
        host: String,
        port: u16,
        tls: bool,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid output `{spec}`: {reason}; expected stdout, file:PATH, syslog, syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT, syslog+relp://HOST:PORT or syslog+relp+tls://HOST:PORT"
)]
pub struct OutputSpecError {
    pub spec: String,
    pub reason: String,
}

impl FromStr for OutputSpec {
    type Err = OutputSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| OutputSpecError {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        if s == "stdout" {
            return Ok(OutputSpec::Stdout);
        }
        if s == "syslog" {
            return Ok(OutputSpec::Syslog);
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(err("the file path is empty"));
            }
            return Ok(OutputSpec::File(PathBuf::from(path)));
        }
        const SCHEMES: [&str; 5] = [
            "syslog+tcp://",
            "syslog+udp://",
            "syslog+tls://",
            "syslog+relp://",
            "syslog+relp+tls://",
        ];
        let Some((scheme, rest)) = SCHEMES
            .iter()
            .find_map(|p| s.strip_prefix(p).map(|rest| (*p, rest)))
        else {
            return Err(err("unknown output kind"));
        };
        let (host, port) = parse_host_port(rest).map_err(|r| err(&r))?;
        Ok(match scheme {
            "syslog+tcp://" => OutputSpec::SyslogTcp { host, port },
            "syslog+udp://" => OutputSpec::SyslogUdp { host, port },
            "syslog+tls://" => OutputSpec::SyslogTls { host, port },
            "syslog+relp://" => OutputSpec::SyslogRelp {
                host,
                port,
                tls: false,
            },
            _ => OutputSpec::SyslogRelp {
                host,
                port,
                tls: true,
            },
        })
    }
}

fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let s = s.strip_suffix('/').unwrap_or(s);
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs a closing `]`")?;
        let port = after
            .strip_prefix(':')
            .ok_or("the port is missing (HOST:PORT)")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` in brackets is not an IPv6 address"));
        }
        (host, port)
    } else {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or("the port is missing (HOST:PORT)")?;
        if host.contains(':') {
            return Err("write an IPv6 address in brackets: [2001:db8::1]:514".into());
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    if port == 0 {
        return Err("port 0 is not a destination".into());
    }
    Ok((host.to_string(), port))
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host_port = |f: &mut fmt::Formatter<'_>, scheme: &str, host: &str, port: u16| {
            if host.contains(':') {
                write!(f, "{scheme}://[{host}]:{port}")
            } else {
                write!(f, "{scheme}://{host}:{port}")
            }
        };
        match self {
            OutputSpec::Stdout => f.write_str("stdout"),
            OutputSpec::File(p) => write!(f, "file:{}", p.display()),
            OutputSpec::Syslog => f.write_str("syslog"),
            OutputSpec::SyslogUdp { host, port } => host_port(f, "syslog+udp", host, *port),
            OutputSpec::SyslogTcp { host, port } => host_port(f, "syslog+tcp", host, *port),
            OutputSpec::SyslogTls { host, port } => host_port(f, "syslog+tls", host, *port),
            OutputSpec::SyslogRelp { host, port, tls } => host_port(
                f,
                if *tls {
                    "syslog+relp+tls"
                } else {
                    "syslog+relp"
                },
                host,
                *port,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_prints_it_back() {
        for (s, want) in [
            ("stdout", OutputSpec::Stdout),
            (
                "file:/var/log/monitor.json",
                OutputSpec::File("/var/log/monitor.json".into()),
            ),
            ("syslog", OutputSpec::Syslog),
            (
                "syslog+udp://127.0.0.1:514",
                OutputSpec::SyslogUdp {
                    host: "127.0.0.1".into(),
                    port: 514,
                },
            ),
            (
                "syslog+tcp://logs.example.org:6514",
                OutputSpec::SyslogTcp {
                    host: "logs.example.org".into(),
                    port: 6514,
                },
            ),
            (
                "syslog+tls://logs.example.org:6514",
                OutputSpec::SyslogTls {
                    host: "logs.example.org".into(),
                    port: 6514,
                },
            ),
            (
                "syslog+relp://127.0.0.1:2514",
                OutputSpec::SyslogRelp {
                    host: "127.0.0.1".into(),
                    port: 2514,
                    tls: false,
                },
            ),
            (
                "syslog+relp+tls://[2001:db8::1]:2514",
                OutputSpec::SyslogRelp {
                    host: "2001:db8::1".into(),
                    port: 2514,
                    tls: true,
                },
            ),
            (
                "syslog+tcp://[2001:db8::1]:514",
                OutputSpec::SyslogTcp {
                    host: "2001:db8::1".into(),
                    port: 514,
                },
            ),
        ] {
            let got: OutputSpec = s.parse().unwrap();
            assert_eq!(got, want, "{s}");
            assert_eq!(got.to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_specs_with_a_reason() {
        for (s, reason) in [
            ("stderr", "unknown output kind"),
            ("file:", "the file path is empty"),
            ("syslog+tcp://127.0.0.1", "the port is missing"),
            ("syslog+udp://127.0.0.1:0", "port 0"),
            ("syslog+udp://127.0.0.1:99999", "not a port number"),
            ("syslog+tcp://2001:db8::1:514", "in brackets"),
            ("syslog+tcp://[2001:db8::1:514", "closing"),
            ("syslog+tcp://:514", "the host is empty"),
            ("syslog+tcp://a b:514", "not a host name"),
            ("syslog+http://h:1", "unknown output kind"),
            ("syslog+relps://h:1", "unknown output kind"),
            ("syslog+relp://h", "the port is missing"),
        ] {
            let e = s.parse::<OutputSpec>().unwrap_err();
            assert!(e.reason.contains(reason), "{s}: {e}");
            assert!(e.to_string().contains("expected stdout"), "{e}");
        }
    }
}
