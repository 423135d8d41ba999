//! `stdout`: JSON lines on standard output, flushed as soon as they are written, so
//! `monitor run | jq` and `| logger` see each record at once.

use std::io::{self, Write};

use super::line::LineTarget;

pub(crate) struct StdoutTarget;

impl LineTarget for StdoutTarget {
    fn write_lines(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(buf)?;
        out.flush()
    }

    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}
