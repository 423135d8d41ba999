//! Reading rule and list files: paths given on the command line or in the config, walked
//! for `*.yml` / `*.yaml`, each file read under the size budget and checked to be UTF-8
//! text, so a hostile file is an error naming it (and its line) instead of a stall.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::error::RuleError;
use super::limits::Limits;

/// One rule or list file's text and where it came from.
pub(crate) struct Source {
    /// As shown in messages: the path, or `rules/<name>` for the built-in set.
    pub name: String,
    /// `rule.ruleset` for rules in this file.
    pub ruleset: String,
    pub text: String,
}

/// Reads rule paths: files as given, directories recursively for `*.yml` / `*.yaml`, in
/// name order so loads are deterministic.
pub(crate) fn read_paths(paths: &[PathBuf], limits: &Limits) -> (Vec<Source>, Vec<RuleError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut dirs = HashSet::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut dirs, &mut files, &mut errors),
            Ok(_) => files.push(p.clone()),
            Err(e) => errors.push(RuleError::Read {
                path: p.clone(),
                message: e.to_string(),
            }),
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for f in files {
        if !seen.insert(std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone())) {
            continue; // the same file through two --rules paths
        }
        match read_file(&f, limits.max_file_bytes) {
            Ok(text) => out.push(Source {
                name: f.display().to_string(),
                ruleset: ruleset_of(&f),
                text,
            }),
            Err(e) => errors.push(e),
        }
    }
    (out, errors)
}

/// One rule file's text. Reads at most one byte past the budget, so a huge file cannot
/// stall the load.
fn read_file(f: &Path, max_bytes: u64) -> Result<String, RuleError> {
    let read_err = |e: std::io::Error| RuleError::Read {
        path: f.to_path_buf(),
        message: e.to_string(),
    };
    // Opening a FIFO blocks until a writer comes, and a device may never end: only
    // regular files are rule files.
    if !std::fs::metadata(f).map_err(read_err)?.is_file() {
        return Err(RuleError::Read {
            path: f.to_path_buf(),
            message: "not a regular file".into(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(f)
        .and_then(|file| file.take(max_bytes + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > max_bytes {
        return Err(RuleError::Read {
            path: f.to_path_buf(),
            message: format!(
                "larger than the budget of {max_bytes} bytes for one rule file \
                 (rules/README.md, Limits)"
            ),
        });
    }
    decode(&f.display().to_string(), bytes)
}

/// Rule files are UTF-8 text. Anything else is refused with the line and byte offset of the
/// first byte that is not, and UTF-16/32 (common from Windows editors) is named by its byte
/// order mark, as a YAML parser would only report garbage there.
pub(crate) fn decode(file: &str, bytes: Vec<u8>) -> Result<String, RuleError> {
    let err = |line: u32, message: String| RuleError::File {
        file: file.to_string(),
        line,
        message,
    };
    let wide = match bytes.as_slice() {
        [0xFF, 0xFE, 0, 0, ..] => Some("UTF-32 (little-endian)"),
        [0, 0, 0xFE, 0xFF, ..] => Some("UTF-32 (big-endian)"),
        [0xFF, 0xFE, ..] => Some("UTF-16 (little-endian)"),
        [0xFE, 0xFF, ..] => Some("UTF-16 (big-endian)"),
        _ => None,
    };
    if let Some(enc) = wide {
        return Err(err(
            1,
            format!(
                "the file is {enc} text (byte order mark at byte offset 0); rule files must be \
                 UTF-8: convert it, e.g. `iconv -f UTF-16 -t UTF-8`"
            ),
        ));
    }
    let line_of =
        |b: &[u8], off: usize| 1 + b[..off].iter().filter(|&&c| c == b'\n').count() as u32;
    // NUL is valid UTF-8 but never YAML text; it is what UTF-16 without a byte order mark
    // looks like.
    if let Some(off) = bytes.iter().position(|&b| b == 0) {
        return Err(err(
            line_of(&bytes, off),
            format!(
                "NUL byte at byte offset {off}; rule files are UTF-8 text (is this UTF-16 \
                 without a byte order mark?)"
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let off = e.utf8_error().valid_up_to();
        let b = e.as_bytes();
        err(
            line_of(b, off),
            format!(
                "not UTF-8: byte 0x{:02x} at byte offset {off} does not begin a valid UTF-8 \
                 character; rule files must be UTF-8",
                b[off]
            ),
        )
    })
}

fn ruleset_of(file: &Path) -> String {
    file.parent()
        .and_then(|d| {
            std::fs::canonicalize(d)
                .ok()
                .or_else(|| Some(d.to_path_buf()))
        })
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "local".into())
}

/// Adds the rule files under `dir`. Each directory is read once (`seen` holds canonical
/// paths): two symlinks back to a parent made the walk exponential in the symlink depth.
fn walk(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<RuleError>,
) {
    if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(RuleError::Read {
                path: dir.to_path_buf(),
                message: e.to_string(),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, seen, files, errors);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            files.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn files_that_are_not_utf8_name_the_line_and_byte() {
        let e = decode("r.yml", b"title: x\nid: \xff\xfey\n".to_vec()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.yml:2: not UTF-8: byte 0xff at byte offset 13 does not begin a valid UTF-8 \
             character; rule files must be UTF-8"
        );
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("title: x\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let e = decode("w.yml", utf16).unwrap_err().to_string();
        assert!(
            e.starts_with("w.yml:1: the file is UTF-16 (little-endian) text"),
            "{e}"
        );
        let be: Vec<u8> = [0xFE, 0xFF, 0, b't'].to_vec();
        assert!(
            decode("b.yml", be)
                .unwrap_err()
                .to_string()
                .contains("UTF-16 (big-endian)")
        );
        let no_bom: Vec<u8> = "a: 1\n".encode_utf16().flat_map(u16::to_le_bytes).collect();
        let e = decode("n.yml", no_bom).unwrap_err().to_string();
        assert!(e.starts_with("n.yml:1: NUL byte at byte offset 1;"), "{e}");
        assert_eq!(decode("ok.yml", "é: 1\n".into()).unwrap(), "é: 1\n");
    }

    #[test]
    fn special_and_oversized_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let big = dir.path().join("big.yml");
        std::fs::write(&big, vec![b'#'; 101]).unwrap();
        let limits = Limits {
            max_file_bytes: 100,
            ..Limits::default()
        };
        let (sources, errors) = read_paths(&[dir.path().to_path_buf()], &limits);
        assert!(sources.is_empty());
        let e: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("big.yml: cannot read rules: larger than the budget of 100 bytes"),
            "{e:?}"
        );
        assert!(
            e[1].contains("fifo.yml: cannot read rules: not a regular file"),
            "{e:?}"
        );
    }

    #[test]
    fn symlinks_back_to_a_parent_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yml"), "lists:\n  a: [/x]\n").unwrap();
        for l in ["a", "b"] {
            std::os::unix::fs::symlink(dir.path(), dir.path().join(l)).unwrap();
        }
        let t = Instant::now();
        let (sources, errors) = read_paths(&[dir.path().to_path_buf()], &Limits::default());
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(sources.len(), 1);
    }
}
