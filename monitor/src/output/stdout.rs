//! `stdout`: JSON lines on standard output, flushed as soon as they are written, so
//! `monitor run | jq` and `| logger` see each record at once.

use std::io;

use super::line::{LineTarget, PartialWrite, write_counted};

pub(crate) struct StdoutTarget;

impl LineTarget for StdoutTarget {
    fn write_lines(&mut self, buf: &[u8]) -> Result<(), PartialWrite> {
        write_counted(&mut io::stdout().lock(), buf)
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}
