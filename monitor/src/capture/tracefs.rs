//! tracefs: make sure it is mounted, and read classic tracepoints' field offsets from their
//! `format` files (a stable, self-describing layout, unlike kernel structs).

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use monitor_common::{OFFSET_ABSENT, TracepointOffsets};

use super::error::CaptureError;

/// Where tracefs lives, in the order aya looks for it.
const MOUNT_POINTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Returns the tracefs directory, mounting tracefs at /sys/kernel/tracing if it is nowhere.
/// Must run before aya's first tracepoint attach, which looks once and caches the answer.
pub fn ensure_mounted() -> Result<PathBuf, CaptureError> {
    if let Some(found) = MOUNT_POINTS.iter().map(Path::new).find(|p| is_populated(p)) {
        return Ok(found.to_path_buf());
    }
    let target = PathBuf::from(MOUNT_POINTS[0]);
    let c_target = CString::new(MOUNT_POINTS[0]).expect("no NUL in a constant");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"none".as_ptr(),
            c_target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(CaptureError::TracefsMount {
            path: target,
            source: io::Error::last_os_error(),
        });
    }
    tracing::info!(path = %target.display(), "mounted tracefs");
    Ok(target)
}

fn is_populated(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// The fields of one tracepoint's record.
#[derive(Debug)]
pub struct TracepointFormat {
    tracepoint: String,
    /// (name, offset, size)
    fields: Vec<(String, u32, u32)>,
}

impl TracepointFormat {
    pub fn read(tracefs: &Path, category: &str, name: &str) -> Result<Self, CaptureError> {
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let tracepoint = format!("{category}:{name}");
        let text = fs::read_to_string(&path).map_err(|e| CaptureError::TracepointFormat {
            tracepoint: tracepoint.clone(),
            reason: format!("reading {}: {e}", path.display()),
        })?;
        Self::parse(&tracepoint, &text)
    }

    /// Parses lines like `\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;`.
    pub fn parse(tracepoint: &str, text: &str) -> Result<Self, CaptureError> {
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut decl = None;
            let mut offset = None;
            let mut size = None;
            for (i, part) in rest.split(';').map(str::trim).enumerate() {
                if i == 0 {
                    decl = Some(part);
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse::<u32>().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse::<u32>().ok();
                }
            }
            let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) else {
                return Err(CaptureError::TracepointFormat {
                    tracepoint: tracepoint.to_string(),
                    reason: format!("unparsable field line `{line}`"),
                });
            };
            // The name is the declaration's last word, without an array suffix.
            let name = decl
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or(decl)
                .split('[')
                .next()
                .unwrap_or("");
            fields.push((name.to_string(), offset, size));
        }
        if fields.is_empty() {
            return Err(CaptureError::TracepointFormat {
                tracepoint: tracepoint.to_string(),
                reason: "no fields in the format file".to_string(),
            });
        }
        Ok(TracepointFormat {
            tracepoint: tracepoint.to_string(),
            fields,
        })
    }

    /// Offset of `field`, which must be `size` bytes wide.
    pub fn offset(&self, field: &str, size: u32) -> Result<u32, CaptureError> {
        self.optional_offset(field, size)?
            .ok_or_else(|| CaptureError::TracepointFormat {
                tracepoint: self.tracepoint.clone(),
                reason: format!("no field `{field}`"),
            })
    }

    /// Offset of `field` if the kernel has it.
    pub fn optional_offset(&self, field: &str, size: u32) -> Result<Option<u32>, CaptureError> {
        match self.fields.iter().find(|(name, _, _)| name == field) {
            None => Ok(None),
            Some((_, offset, actual)) if *actual == size => Ok(Some(*offset)),
            Some((_, _, actual)) => Err(CaptureError::TracepointFormat {
                tracepoint: self.tracepoint.clone(),
                reason: format!("field `{field}` is {actual} bytes wide, the program reads {size}"),
            }),
        }
    }
}

/// `sock:inet_sock_set_state` fields (the TCP fallback), written into `offsets`.
pub fn sock_state_offsets(
    tracefs: &Path,
    offsets: &mut TracepointOffsets,
) -> Result<(), CaptureError> {
    let f = TracepointFormat::read(tracefs, "sock", "inet_sock_set_state")?;
    offsets.sk_oldstate = f.offset("oldstate", 4)?;
    offsets.sk_newstate = f.offset("newstate", 4)?;
    offsets.sk_sport = f.offset("sport", 2)?;
    offsets.sk_dport = f.offset("dport", 2)?;
    offsets.sk_family = f.offset("family", 2)?;
    offsets.sk_protocol = f.offset("protocol", 2)?;
    offsets.sk_saddr = f.offset("saddr", 4)?;
    offsets.sk_daddr = f.offset("daddr", 4)?;
    offsets.sk_saddr_v6 = f.offset("saddr_v6", 16)?;
    offsets.sk_daddr_v6 = f.offset("daddr_v6", 16)?;
    Ok(())
}

/// `sched:sched_process_exec` and `sched:sched_process_exit` fields, written into `offsets`.
pub fn process_offsets(
    tracefs: &Path,
    offsets: &mut TracepointOffsets,
) -> Result<(), CaptureError> {
    let exec = TracepointFormat::read(tracefs, "sched", "sched_process_exec")?;
    // `__data_loc char[] filename`: a u32 locator, not the string.
    offsets.exec_filename = exec.offset("filename", 4)?;
    let exit = TracepointFormat::read(tracefs, "sched", "sched_process_exit")?;
    offsets.exit_group_dead = exit
        .optional_offset("group_dead", 1)?
        .unwrap_or(OFFSET_ABSENT);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOCK_FORMAT: &str = "name: inet_sock_set_state
ID: 2287
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;
\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;

print fmt: \"family=%s\", REC->family
";

    #[test]
    fn parses_names_offsets_and_sizes() {
        let f = TracepointFormat::parse("sock:inet_sock_set_state", SOCK_FORMAT).unwrap();
        assert_eq!(f.offset("oldstate", 4).unwrap(), 16);
        assert_eq!(f.offset("dport", 2).unwrap(), 26);
        assert_eq!(f.offset("daddr_v6", 16).unwrap(), 56);
        assert_eq!(f.offset("skaddr", 8).unwrap(), 8);
        assert_eq!(f.optional_offset("group_dead", 1).unwrap(), None);
    }

    #[test]
    fn rejects_missing_fields_and_wrong_widths() {
        let f = TracepointFormat::parse("sock:inet_sock_set_state", SOCK_FORMAT).unwrap();
        let err = f.offset("newstate", 4).unwrap_err().to_string();
        assert!(
            err.contains("sock:inet_sock_set_state") && err.contains("newstate"),
            "{err}"
        );
        let err = f.offset("dport", 4).unwrap_err().to_string();
        assert!(err.contains("2 bytes wide"), "{err}");
        let err = TracepointFormat::parse("x:y", "name: y\nformat:\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no fields"), "{err}");
    }

    #[test]
    #[cfg_attr(
        not(feature = "host-tests"),
        ignore = "needs root (mounts tracefs): cargo test --features host-tests, as root"
    )]
    fn reads_the_running_kernels_formats() {
        let tracefs = ensure_mounted().expect("tracefs (this test runs as root)");
        let mut offsets = monitor_common::KernelConfig::UNSET.tp;
        sock_state_offsets(&tracefs, &mut offsets).unwrap();
        process_offsets(&tracefs, &mut offsets).unwrap();
        assert!(offsets.sk_newstate > offsets.sk_oldstate);
        assert!(offsets.exec_filename >= 8);
    }
}
