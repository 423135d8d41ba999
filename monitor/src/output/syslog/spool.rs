//! The on-disk spool of one syslog output: messages its receiver has not taken yet, kept in
//! order across outages and restarts.
//!
//! Layout of a spool directory:
//! - `lock`: held with `flock` while a monitor process uses the directory.
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: append-only segments, oldest first. Each record is
//!   `u32 length (LE) | u32 CRC-32 of the message (LE) | message`, where the message is the
//!   complete syslog message without transport framing.
//! - `cursor`: `SEQ OFFSET`, how far the oldest segment has been delivered. Replaced by
//!   rename after every delivered batch; fully delivered segments are deleted.
//!
//! Durability: records are written with `write(2)` at once, so a crash of the monitor loses
//! nothing spooled; the newest segment is fsync'ed every `spool_fsync_interval`, when a
//! segment is closed and at shutdown, so a power loss can lose up to that interval. The
//! cursor is not fsync'ed: after a crash, records delivered since its last write reach the
//! receiver again (a duplicate, never a loss). At start a torn record at the end of a
//! segment (a crash mid-write) is cut off, and the rest of a segment after a record whose
//! CRC does not match is dropped and counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const HEADER: u64 = 8;
/// No syslog message is near this; a larger length means a damaged record.
const MAX_RECORD: u32 = 16 * 1024 * 1024;

#[derive(Debug)]
pub(crate) enum SpoolOpenError {
    /// Another process holds the lock.
    Locked,
    Io(io::Error),
}

#[derive(Debug)]
pub(crate) enum AppendError {
    /// The spool holds `max_bytes` already.
    Full,
    Io(io::Error),
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    len: u64,
}

pub(crate) struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_max: u64,
    _lock: File,
    /// Oldest first.
    segments: VecDeque<Segment>,
    /// Delivered bytes of `segments[0]`.
    head_offset: u64,
    /// Append handle of the newest segment.
    tail: Option<File>,
    /// Records not yet delivered.
    records: u64,
    /// Bytes of all segment files, delivered part of the oldest included.
    bytes: u64,
    /// End positions (seq, offset) of the records the last `read_batch` returned.
    pending: Vec<(u64, u64)>,
    /// Written since the last fsync.
    dirty: bool,
    /// Records lost to damage found since the last `take_lost`.
    lost: u64,
}

fn seg_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

fn crc(msg: &[u8]) -> u32 {
    crc32fast::hash(msg)
}

impl Spool {
    /// Opens (creating it `0700`) the spool directory, takes its lock, checks every segment
    /// and positions at the first undelivered record.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Spool, SpoolOpenError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(SpoolOpenError::Io)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(dir.join("lock"))
            .map_err(SpoolOpenError::Io)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                SpoolOpenError::Locked
            } else {
                SpoolOpenError::Io(e)
            });
        }
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir).map_err(SpoolOpenError::Io)? {
            let entry = entry.map_err(SpoolOpenError::Io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            } else if let Some(stem) = name.strip_suffix(".seg")
                && stem.len() == 20
                && let Ok(seq) = stem.parse::<u64>()
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let cursor = read_cursor(dir);
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_max: (max_bytes / 16).clamp(64 * 1024, 4 * 1024 * 1024),
            _lock: lock,
            segments: VecDeque::new(),
            head_offset: 0,
            tail: None,
            records: 0,
            bytes: 0,
            pending: Vec::new(),
            dirty: false,
            lost: 0,
        };
        for seq in seqs {
            let path = dir.join(seg_name(seq));
            if cursor.is_some_and(|(cseq, _)| seq < cseq) {
                fs::remove_file(&path).map_err(SpoolOpenError::Io)?;
                continue;
            }
            let start = match cursor {
                Some((cseq, off)) if cseq == seq => off,
                _ => 0,
            };
            let (count, valid_end, file_len) =
                scan_segment(&path, start).map_err(SpoolOpenError::Io)?;
            if valid_end < file_len {
                tracing::warn!(
                    segment = %path.display(),
                    discarded_bytes = file_len - valid_end,
                    "spool segment ends in a damaged or incomplete record (crash or disk error); cutting it off"
                );
                spool.lost += 1;
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(valid_end))
                    .map_err(SpoolOpenError::Io)?;
            }
            if spool.segments.is_empty() {
                spool.head_offset = start.min(valid_end);
            }
            spool.records += count;
            spool.bytes += valid_end;
            spool.segments.push_back(Segment {
                seq,
                len: valid_end,
            });
        }
        if spool.records == 0 {
            spool.clear().map_err(SpoolOpenError::Io)?;
        } else {
            spool.drop_delivered_head().map_err(SpoolOpenError::Io)?;
            if let Some(last) = spool.segments.back()
                && last.len < spool.segment_max
            {
                spool.tail =
                    Some(open_append(&dir.join(seg_name(last.seq))).map_err(SpoolOpenError::Io)?);
            }
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records not delivered yet.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes not delivered yet.
    pub fn bytes(&self) -> u64 {
        self.bytes - self.head_offset
    }

    /// Records found damaged (and dropped) since the last call.
    pub fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    /// Appends one message at the end.
    pub fn append(&mut self, msg: &[u8]) -> Result<(), AppendError> {
        let size = HEADER + msg.len() as u64;
        if self.bytes + size > self.max_bytes {
            return Err(AppendError::Full);
        }
        let need_new = match (self.tail.as_ref(), self.segments.back()) {
            (Some(_), Some(last)) => last.len > 0 && last.len + size > self.segment_max,
            _ => true,
        };
        if need_new {
            self.rotate().map_err(AppendError::Io)?;
        }
        let mut rec = Vec::with_capacity(size as usize);
        rec.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc(msg).to_le_bytes());
        rec.extend_from_slice(msg);
        let tail = self.tail.as_mut().expect("rotate opened a tail");
        if let Err(e) = tail.write_all(&rec) {
            // A short write leaves a torn record; cut it so the segment stays readable.
            let last = self.segments.back().expect("tail has a segment");
            let _ = tail.set_len(last.len);
            return Err(AppendError::Io(e));
        }
        let last = self.segments.back_mut().expect("tail has a segment");
        last.len += size;
        self.bytes += size;
        self.records += 1;
        self.dirty = true;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(old) = self.tail.take()
            && self.dirty
        {
            old.sync_data()?;
        }
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let path = self.dir.join(seg_name(seq));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        self.segments.push_back(Segment { seq, len: 0 });
        self.tail = Some(file);
        Ok(())
    }

    /// Reads up to `max_records` undelivered messages (stopping once `max_bytes` are read)
    /// into `out`, oldest first, without marking them delivered: `commit` does that.
    pub fn read_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> io::Result<()> {
        self.pending.clear();
        let mut bytes = 0;
        let mut damaged = None;
        'segments: for (i, seg) in self.segments.iter().enumerate() {
            let mut offset = if i == 0 { self.head_offset } else { 0 };
            if offset >= seg.len {
                continue;
            }
            let mut file = File::open(self.dir.join(seg_name(seg.seq)))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut r = BufReader::with_capacity(64 * 1024, file);
            while offset < seg.len {
                if out.len() >= max_records || bytes >= max_bytes {
                    break 'segments;
                }
                match read_record(&mut r, seg.len - offset)? {
                    Some(msg) => {
                        offset += HEADER + msg.len() as u64;
                        bytes += msg.len();
                        out.push(msg);
                        self.pending.push((seg.seq, offset));
                    }
                    None => {
                        damaged = Some((seg.seq, offset));
                        break 'segments;
                    }
                }
            }
        }
        if let Some((seq, at)) = damaged
            && self.pending.is_empty()
        {
            // Damage at the very start of what is left: drop the rest of that segment now
            // (records before it in this batch are delivered first).
            self.cut_damaged(seq, at)?;
            return self.read_batch(max_records, max_bytes, out);
        }
        Ok(())
    }

    fn cut_damaged(&mut self, seq: u64, at: u64) -> io::Result<()> {
        let path = self.dir.join(seg_name(seq));
        tracing::error!(
            segment = %path.display(),
            offset = at,
            "spool segment is damaged (changed outside the monitor, or a disk error); dropping the rest of it"
        );
        OpenOptions::new().write(true).open(&path)?.set_len(at)?;
        for s in self.segments.iter_mut().filter(|s| s.seq == seq) {
            self.bytes -= s.len - at;
            s.len = at;
        }
        // The number of records in the dropped part is unknown: recount what is left.
        let mut records = 0;
        for (i, s) in self.segments.iter().enumerate() {
            let start = if i == 0 { self.head_offset } else { 0 };
            records += scan_segment(&self.dir.join(seg_name(s.seq)), start)?.0;
        }
        self.lost += self.records.saturating_sub(records).max(1);
        self.records = records;
        if self.records == 0 {
            self.clear()
        } else {
            self.drop_delivered_head()
        }
    }

    /// Marks the first `n` records of the last `read_batch` delivered.
    pub fn commit(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let (seq, end) = self.pending[n - 1];
        self.pending.clear();
        self.records -= n as u64;
        while self.segments.front().is_some_and(|s| s.seq < seq) {
            self.remove_head_segment()?;
        }
        self.head_offset = end;
        if self.records == 0 {
            return self.clear();
        }
        self.drop_delivered_head()?;
        write_cursor(&self.dir, self.segments[0].seq, self.head_offset)
    }

    /// Deletes the oldest segment while it is fully delivered and not the only one.
    fn drop_delivered_head(&mut self) -> io::Result<()> {
        while self.segments.len() > 1 && self.head_offset >= self.segments[0].len {
            self.remove_head_segment()?;
        }
        Ok(())
    }

    fn remove_head_segment(&mut self) -> io::Result<()> {
        let s = self.segments.pop_front().expect("a head segment");
        self.bytes -= s.len;
        self.head_offset = 0;
        if self.segments.is_empty() {
            self.tail = None;
        }
        match fs::remove_file(self.dir.join(seg_name(s.seq))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Everything delivered: remove all files but the lock.
    fn clear(&mut self) -> io::Result<()> {
        self.tail = None;
        while !self.segments.is_empty() {
            self.remove_head_segment()?;
        }
        self.head_offset = 0;
        self.bytes = 0;
        self.records = 0;
        self.dirty = false;
        self.pending.clear();
        match fs::remove_file(self.dir.join("cursor")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Puts `msgs` (older than everything spooled) in front of the spool. Used at shutdown
    /// for what was still queued in memory. May exceed `max_bytes` by their size rather
    /// than lose them.
    pub fn push_front(&mut self, msgs: &[Vec<u8>]) -> io::Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        if self.is_empty() {
            for m in msgs {
                self.append_unbounded(m)?;
            }
            return self.sync();
        }
        // New head file: the messages, then the undelivered rest of the current head. The
        // cursor is set to its start before the rename, so a crash in between resends the
        // delivered part of the old head (duplicates) rather than skipping anything.
        let head = &self.segments[0];
        let path = self.dir.join(seg_name(head.seq));
        let tmp = self.dir.join(format!("{}.tmp", seg_name(head.seq)));
        let mut out = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut added = 0u64;
        for m in msgs {
            out.write_all(&(m.len() as u32).to_le_bytes())?;
            out.write_all(&crc(m).to_le_bytes())?;
            out.write_all(m)?;
            added += HEADER + m.len() as u64;
        }
        let mut old = File::open(&path)?;
        old.seek(SeekFrom::Start(self.head_offset))?;
        let copied = io::copy(&mut old.take(head.len - self.head_offset), &mut out)?;
        out.sync_data()?;
        write_cursor(&self.dir, head.seq, 0)?;
        fs::rename(&tmp, &path)?;
        let old_len = head.len;
        let new_len = added + copied;
        self.bytes = self.bytes - old_len + new_len;
        self.segments[0].len = new_len;
        self.head_offset = 0;
        self.records += msgs.len() as u64;
        if self.segments.len() == 1 {
            // The tail handle still points at the replaced file.
            self.tail = Some(open_append(&path)?);
        }
        self.sync()
    }

    fn append_unbounded(&mut self, msg: &[u8]) -> io::Result<()> {
        let max = self.max_bytes;
        self.max_bytes = u64::MAX;
        let r = self.append(msg);
        self.max_bytes = max;
        match r {
            Ok(()) => Ok(()),
            Err(AppendError::Io(e)) => Err(e),
            Err(AppendError::Full) => unreachable!("no limit"),
        }
    }

    /// fsyncs the newest segment if anything was written since the last sync.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            if let Some(t) = &self.tail {
                t.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// A handle for syncing outside the caller's lock, when there is something to sync.
    pub fn sync_handle(&mut self) -> Option<File> {
        if !self.dirty {
            return None;
        }
        let h = self.tail.as_ref()?.try_clone().ok()?;
        self.dirty = false;
        Some(h)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).open(path)
}

/// One record of at most `left` bytes, or `None` when what follows is not a whole, intact
/// record.
fn read_record(r: &mut impl Read, left: u64) -> io::Result<Option<Vec<u8>>> {
    if left < HEADER {
        return Ok(None);
    }
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes"));
    let sum = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
    if len > MAX_RECORD || HEADER + len as u64 > left {
        return Ok(None);
    }
    let mut msg = vec![0u8; len as usize];
    r.read_exact(&mut msg)?;
    Ok((crc(&msg) == sum).then_some(msg))
}

/// Counts intact records from `start`; returns (records, end of the last intact one, file
/// length).
fn scan_segment(path: &Path, start: u64) -> io::Result<(u64, u64, u64)> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    if start >= file_len {
        return Ok((0, file_len.min(start), file_len));
    }
    file.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut offset = start;
    let mut count = 0;
    while offset < file_len {
        match read_record(&mut r, file_len - offset)? {
            Some(msg) => {
                offset += HEADER + msg.len() as u64;
                count += 1;
            }
            None => break,
        }
    }
    Ok((count, offset, file_len))
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(dir.join("cursor")).ok()?;
    let mut it = text.split_whitespace();
    let seq = it.next()?.parse().ok()?;
    let off = it.next()?.parse().ok()?;
    Some((seq, off))
}

fn write_cursor(dir: &Path, seq: u64, offset: u64) -> io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    fs::write(&tmp, format!("{seq} {offset}\n"))?;
    fs::rename(tmp, dir.join("cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Vec<u8> {
        format!("<134>1 - - - - - - {{\"n\":{i}}}").into_bytes()
    }

    fn drain(s: &mut Spool, batch: usize) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let mut out = Vec::new();
            s.read_batch(batch, usize::MAX, &mut out).unwrap();
            if out.is_empty() {
                return all;
            }
            s.commit(out.len()).unwrap();
            all.extend(out);
        }
    }

    #[test]
    fn keeps_order_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        // segment_max is 64 KiB here: this spans several segments.
        for i in 0..5000 {
            s.append(&msg(i)).unwrap();
        }
        assert_eq!(s.records(), 5000);
        assert!(s.segments.len() > 1);
        let mut out = Vec::new();
        s.read_batch(700, usize::MAX, &mut out).unwrap();
        s.commit(500).unwrap(); // 200 read but not delivered
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.records(), 4500);
        let all = drain(&mut s, 333);
        assert_eq!(all.len(), 4500);
        for (k, m) in all.iter().enumerate() {
            assert_eq!(m, &msg(500 + k));
        }
        assert!(s.is_empty());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["lock".to_string()], "only the lock is left");
    }

    #[test]
    fn enforces_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 64 * 1024).unwrap();
        let big = vec![b'x'; 1000];
        let mut n = 0;
        loop {
            match s.append(&big) {
                Ok(()) => n += 1,
                Err(AppendError::Full) => break,
                Err(AppendError::Io(e)) => panic!("{e}"),
            }
        }
        assert_eq!(n, 64 * 1024 / 1008);
        assert!(s.bytes() <= 64 * 1024);
        // Delivering makes room again.
        let mut out = Vec::new();
        s.read_batch(n, usize::MAX, &mut out).unwrap();
        s.commit(n).unwrap();
        assert!(s.append(&big).is_ok());
    }

    #[test]
    fn push_front_goes_before_a_partly_delivered_head() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 10..20 {
            s.append(&msg(i)).unwrap();
        }
        let mut out = Vec::new();
        s.read_batch(3, usize::MAX, &mut out).unwrap();
        s.commit(3).unwrap(); // 10, 11, 12 delivered
        s.push_front(&[msg(1), msg(2)]).unwrap();
        s.append(&msg(20)).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        let got = drain(&mut s, 4);
        let want: Vec<_> = [1, 2].into_iter().chain(13..21).map(msg).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn torn_tail_is_cut_and_damage_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..3 {
            s.append(&msg(i)).unwrap();
        }
        let seg = dir.path().join(seg_name(s.segments[0].seq));
        drop(s);
        // A crash mid-write: half a header.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[9, 0, 0]).unwrap();
        drop(f);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.records(), 3);
        assert_eq!(s.take_lost(), 1);
        s.append(&msg(3)).unwrap();
        assert_eq!(drain(&mut s, 10), (0..4).map(msg).collect::<Vec<_>>());

        // A flipped byte inside a record: that record and the rest of its segment go.
        for i in 0..3 {
            s.append(&msg(i)).unwrap();
        }
        let seg = dir.path().join(seg_name(s.segments[0].seq));
        drop(s);
        let mut bytes = fs::read(&seg).unwrap();
        let second = HEADER as usize + msg(0).len() + HEADER as usize + 2;
        bytes[second] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.records(), 1);
        assert_eq!(drain(&mut s, 10), vec![msg(0)]);
    }

    #[test]
    fn a_second_process_cannot_take_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Spool::open(dir.path(), 1 << 20).unwrap();
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(SpoolOpenError::Locked)
        ));
    }
}
