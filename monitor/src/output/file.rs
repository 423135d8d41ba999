//! `file:PATH`: JSON lines appended to a file, reopened on SIGHUP so logrotate can move it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::line::{LineTarget, PartialWrite, cut_line_bytes, truncate_cut_line, write_counted};

/// Appends to `path`. The file is created `0640`: records hold command lines, which may
/// hold secrets. After a failed write the file is closed and opened again for the next
/// lines, so a path that comes back (a remounted disk, freed space) is written again. A
/// write that fails part-way through a record (disk full) takes that part back, so the file
/// ends with a whole record.
pub(crate) struct FileSink {
    path: PathBuf,
    file: Option<File>,
    /// The last write failed; the file may end inside a line.
    cut_line: bool,
}

impl FileSink {
    /// Opens `path` at once, so a wrong path fails at start-up, not at the first alert.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Some(open_append(path)?),
            cut_line: false,
        })
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl LineTarget for FileSink {
    fn write_lines(&mut self, buf: &[u8]) -> Result<(), PartialWrite> {
        let failed = |error| PartialWrite { written: 0, error };
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = open_append(&self.path).map_err(failed)?;
                self.file.insert(f)
            }
        };
        if self.cut_line {
            // An earlier write failed part-way (disk full): end that line first, so the
            // records after it stay whole lines.
            if !ends_with_newline(&self.path).map_err(failed)? {
                file.write_all(b"\n").map_err(failed)?;
            }
            self.cut_line = false;
        }
        // O_APPEND: each write lands at the end, even if another writer appends too.
        let r = write_counted(file, buf);
        if let Err(e) = &r {
            let partial = cut_line_bytes(buf, e.written);
            // If the cut cannot be taken back, the next write ends the line first.
            self.cut_line = partial > 0 && !truncate_cut_line(file, partial).unwrap_or(false);
            self.file = None;
        }
        r
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.file = None;
        self.file = Some(open_append(&self.path)?);
        Ok(())
    }
}

fn ends_with_newline(path: &Path) -> io::Result<bool> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}
