//! What a binary needs in the guest: its ELF program interpreter (none for a static binary)
//! and the shared libraries `ldd` resolves for it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, ensure};

/// The shared libraries `ldd` resolves for `bin`, and its program interpreter; empty for a
/// static binary.
pub fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let Some(interp) = elf_interpreter(bin)? else {
        return Ok(Vec::new());
    };
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd (package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "ldd {} failed ({}): {}{}",
        bin.display(),
        out.status,
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut libs = parse_ldd(&text).with_context(|| format!("ldd {}", bin.display()))?;
    libs.insert(PathBuf::from(interp));
    Ok(libs.into_iter().collect())
}

fn parse_ldd(text: &str) -> Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                ensure!(
                    !rest.starts_with("not found"),
                    "shared library {} not found",
                    name.trim()
                );
                rest
            }
            None => line,
        };
        // "path (0xaddress)"; the vDSO has no path.
        let path = target.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// The PT_INTERP path of a 64-bit little-endian ELF file, `None` when it has none (static).
pub fn elf_interpreter(p: &Path) -> Result<Option<String>> {
    let mut head = Vec::new();
    File::open(p)
        .with_context(|| format!("opening {}", p.display()))?
        .take(1 << 20)
        .read_to_end(&mut head)?;
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        head.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |o: usize| {
        head.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    ensure!(
        head.starts_with(b"\x7fELF\x02\x01"),
        "{} is not a 64-bit little-endian ELF file",
        p.display()
    );
    let bad = || format!("{}: truncated ELF program headers", p.display());
    let phoff = u64_at(0x20).with_context(bad)? as usize;
    let phentsize = u16_at(0x36).with_context(bad)? as usize;
    let phnum = u16_at(0x38).with_context(bad)? as usize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_INTERP: u32 = 3;
        if u32_at(ph).with_context(bad)? != PT_INTERP {
            continue;
        }
        let off = u64_at(ph + 8).with_context(bad)? as usize;
        let size = u64_at(ph + 32).with_context(bad)? as usize;
        let raw = head.get(off..off + size).with_context(bad)?;
        let s = raw.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(s).into_owned()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::host::BUSYBOX;

    #[test]
    fn ldd_output_parsing() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f00)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f01)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n";
        let libs: Vec<_> = parse_ldd(text).unwrap().into_iter().collect();
        assert_eq!(
            libs,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn elf_interpreter_of_real_binaries() {
        // busybox-static has no interpreter; ldd's target (a dynamic program) has one.
        let busybox = elf_interpreter(Path::new(BUSYBOX))
            .expect("this test reads /bin/busybox: apt-get install busybox-static");
        assert_eq!(busybox, None);
        let sh = elf_interpreter(Path::new("/bin/bash")).unwrap();
        assert!(sh.is_some_and(|i| i.contains("ld-linux")));
    }
}
