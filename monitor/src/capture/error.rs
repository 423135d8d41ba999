//! `CaptureError`, and one-line descriptions of aya's errors for start-up logs.

use std::{io, path::PathBuf};

use aya::programs::ProgramError;

/// Why the capture could not start or stopped working. Every variant names what failed (the
/// program, map, file) and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "live capture needs root, or the capabilities {missing} (CAP_BPF, CAP_PERFMON and \
         CAP_NET_ADMIN, or CAP_SYS_ADMIN alone); run the monitor as root"
    )]
    NotPrivileged { missing: String },

    #[error("reading this process's capabilities failed: {0}")]
    Capabilities(String),

    #[error("Capture::start must run inside a tokio runtime with I/O enabled")]
    NoRuntime,

    #[error("tracefs is not mounted and mounting it at {path} failed: {source}; mount it with `mount -t tracefs none {path}`", path = .path.display())]
    TracefsMount { path: PathBuf, source: io::Error },

    #[error("tracepoint {tracepoint}: {reason}")]
    TracepointFormat { tracepoint: String, reason: String },

    #[error(
        "no cgroup v2 hierarchy found in /proc/self/mountinfo (needed by the UDP cgroup programs); mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`"
    )]
    NoCgroup2,

    #[error("opening the cgroup v2 root {path}: {source}", path = .path.display())]
    CgroupOpen { path: PathBuf, source: io::Error },

    #[error("kernel BTF: {0}")]
    Btf(String),

    #[error("loading the eBPF object failed: {0}")]
    Object(String),

    #[error("eBPF program {program} is missing from the object or has an unexpected type")]
    MissingProgram { program: &'static str },

    #[error("eBPF program {program}: {detail}")]
    Program {
        program: &'static str,
        detail: String,
    },

    #[error(
        "hook {hook}: the {backend} backend was requested (--probe {backend}) but cannot be used: {reason}"
    )]
    BackendUnavailable {
        hook: &'static str,
        backend: &'static str,
        reason: String,
    },

    #[error("eBPF map {map}: {detail}")]
    Map { map: &'static str, detail: String },

    #[error("reading the ring buffer: {0}")]
    Ring(#[source] io::Error),

    #[error("after shutdown the kernel still holds the monitor's programs (ids {ids:?})")]
    StillLoaded { ids: Vec<u32> },
}

/// How many trailing verifier-log lines an error carries: the verifier's verdict is at the end.
const VERIFIER_TAIL_LINES: usize = 12;

/// One line for `HookStatus::skipped`, e.g. `ProgramError::LoadError { io_error: EPERM }`.
pub fn one_line(err: &ProgramError) -> String {
    match err {
        ProgramError::LoadError { io_error, .. } => {
            format!(
                "ProgramError::LoadError {{ io_error: {} }}",
                errno_text(io_error)
            )
        }
        ProgramError::SyscallError(e) => format!(
            "ProgramError::SyscallError {{ call: {}, io_error: {} }}",
            e.call,
            errno_text(&e.io_error)
        ),
        ProgramError::KProbeError(aya::programs::kprobe::KProbeError::FileError {
            filename,
            io_error,
        }) => format!(
            "KProbeError::FileError {{ filename: {}, io_error: {} }}",
            filename.display(),
            errno_text(io_error)
        ),
        other => flatten(&error_chain(other)),
    }
}

/// The full story for a `CaptureError`: the error chain, plus the verifier log's last lines
/// when the kernel refused to load the program.
pub fn detailed(err: &ProgramError) -> String {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &lines[lines.len().saturating_sub(VERIFIER_TAIL_LINES)..];
            if tail.is_empty() {
                format!(
                    "BPF_PROG_LOAD failed: {} (no verifier output)",
                    errno_text(io_error)
                )
            } else {
                format!(
                    "BPF_PROG_LOAD failed: {}; verifier log (last {} lines): {}",
                    errno_text(io_error),
                    tail.len(),
                    tail.join(" | ")
                )
            }
        }
        other => one_line(other),
    }
}

/// `Display` of an error and its sources, joined with ": ".
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn flatten(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `EPERM (Operation not permitted)` for OS errors; the error's text otherwise.
pub fn errno_text(err: &io::Error) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let text = io::Error::from_raw_os_error(code).to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    match errno_name(code) {
        Some(name) => format!("{name} ({text})"),
        None => format!("errno {code} ({text})"),
    }
}

/// Symbolic names of the errnos the BPF syscalls return.
fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        // Kernel-internal ENOTSUPP, which BPF returns for unsupported features.
        524 => "ENOTSUPP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_names_the_errno() {
        let e = io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(errno_text(&e), "EPERM (Operation not permitted)");
        let e = io::Error::from_raw_os_error(4095);
        assert!(
            errno_text(&e).starts_with("errno 4095"),
            "{}",
            errno_text(&e)
        );
    }

    #[test]
    fn one_line_describes_a_kprobe_file_error() {
        let err = ProgramError::KProbeError(aya::programs::kprobe::KProbeError::FileError {
            filename: "/sys/bus/event_source/devices/kprobe/type".into(),
            io_error: io::Error::from_raw_os_error(libc::ENOENT),
        });
        let line = one_line(&err);
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(
                "KProbeError::FileError { filename: /sys/bus/event_source/devices/kprobe/type, \
                 io_error: ENOENT"
            ),
            "{line}"
        );
    }

    #[test]
    fn error_chain_joins_sources_once() {
        let inner = io::Error::other("inner cause");
        let outer = io::Error::other(inner);
        assert_eq!(error_chain(&outer), "inner cause");
    }
}
