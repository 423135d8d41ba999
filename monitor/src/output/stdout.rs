//! `stdout`: JSON lines on standard output, flushed as soon as they are written, so
//! `monitor run | jq` and `| logger` see each record at once.

use std::fs::File;
use std::io;
use std::os::fd::AsFd as _;

use super::line::{LineTarget, PartialWrite, cut_line_bytes, truncate_cut_line, write_counted};

/// Writes through its own handle on file descriptor 1 rather than `io::stdout()`, whose
/// line buffer would blur how much of a failed write reached the file.
pub(crate) struct StdoutTarget {
    out: Option<File>,
}

impl StdoutTarget {
    pub fn new() -> Self {
        StdoutTarget { out: None }
    }
}

impl LineTarget for StdoutTarget {
    fn write_lines(&mut self, buf: &[u8]) -> Result<(), PartialWrite> {
        let failed = |error| PartialWrite { written: 0, error };
        let out = match &mut self.out {
            Some(f) => f,
            None => {
                let fd = io::stdout().as_fd().try_clone_to_owned().map_err(failed)?;
                self.out.insert(File::from(fd))
            }
        };
        let r = write_counted(out, buf);
        if let Err(e) = &r {
            // Standard output redirected to a file on a full disk: take back the part of a
            // record written, so the file ends with a whole one (a pipe cannot take it back).
            let partial = cut_line_bytes(buf, e.written);
            if partial > 0 {
                let _ = truncate_cut_line(out, partial);
            }
        }
        r
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}
