//! Executable hashes on records: off the event path, and never an old content's.

use super::*;

/// The executable's SHA-256 arrives from the worker after the first records and is on every
/// record built after it; children forked later inherit it.
#[test]
fn executable_hashes_arrive_off_the_event_path() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("table-hash-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prog");
    std::fs::write(&file, b"abc").unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    let kernel_dev = (libc::major(meta.dev()) << 20) | libc::minor(meta.dev());

    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let pid = impossible_pid() + 500;
    let start = 9_500_000_000;
    let mut ev = resolved_exec(
        pid,
        1,
        start,
        b"/tmp/whatever",
        file.as_os_str().as_bytes(),
        0,
        b"prog\0",
    );
    ev.exe_dev = kernel_dev;
    ev.exe_ino = meta.ino();
    t.on_exec(&ev);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let rec = loop {
        t.apply_hashes();
        let rec = enrich(&mut t, &connect_v4(pid, start, [203, 0, 113, 9], 443));
        if rec.process.hashes.is_some() || std::time::Instant::now() > deadline {
            break rec;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(rec.process.sha256(), Some(sha));
    assert_eq!(
        rec.process.hashes.as_deref(),
        Some(format!("SHA256={sha}").as_str())
    );
    t.on_fork(&fork_event(pid + 1, start + 1, pid, start));
    let child = enrich(
        &mut t,
        &connect_v4(pid + 1, start + 1, [203, 0, 113, 9], 443),
    );
    assert_eq!(child.process.sha256(), Some(sha));
    assert!(t.stats().hashes_computed >= 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file rewritten in place keeps its device and inode: the next exec of it must not carry
/// the hash of the old content, even on its first record, and gets the new one.
#[test]
fn a_file_rewritten_in_place_never_carries_its_old_hash() {
    use std::os::unix::fs::MetadataExt;
    let dir = std::env::temp_dir().join(format!("table-rehash-{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("prog");
    std::fs::write(&file, b"abc").unwrap();
    let mut t = ProcessTable::new(ProcessTableConfig::default());
    let base = impossible_pid() + 700;
    let start = 9_700_000_000;
    // The exec record as the kernel writes it: path, device, inode, size and ctime.
    let exec = |t: &mut ProcessTable, pid: u32, start: u64| {
        let meta = std::fs::metadata(&file).unwrap();
        let mut ev = resolved_exec(
            pid,
            1,
            start,
            b"/x",
            file.as_os_str().as_bytes(),
            0,
            b"prog\0",
        );
        ev.exe_dev = (libc::major(meta.dev()) << 20) | libc::minor(meta.dev());
        ev.exe_ino = meta.ino();
        ev.exe_size = meta.len();
        ev.exe_ctime_sec = meta.ctime() as u64;
        ev.exe_ctime_nsec = meta.ctime_nsec() as u32;
        t.on_exec(&ev);
    };
    let hashed = |t: &mut ProcessTable, pid: u32, start: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            t.apply_hashes();
            let rec = enrich(t, &connect_v4(pid, start, [203, 0, 113, 9], 443));
            if rec.process.hashes.is_some() || std::time::Instant::now() > deadline {
                return rec.process.sha256().map(str::to_string);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    exec(&mut t, base, start);
    assert_eq!(hashed(&mut t, base, start).as_deref(), Some(abc));
    // The same content again: known at once, on the first record.
    exec(&mut t, base + 1, start + 1);
    let first = enrich(
        &mut t,
        &connect_v4(base + 1, start + 1, [203, 0, 113, 9], 443),
    );
    assert_eq!(first.process.sha256(), Some(abc));
    assert!(t.stats().hashes_known >= 1);
    // Rewritten in place (same inode), same size: the ctime differs.
    let ino = std::fs::metadata(&file).unwrap().ino();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&file, b"abd").unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino);
    exec(&mut t, base + 2, start + 2);
    let first = enrich(
        &mut t,
        &connect_v4(base + 2, start + 2, [203, 0, 113, 9], 443),
    );
    assert_ne!(first.process.sha256(), Some(abc), "the old content's hash");
    let abd = "a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9";
    assert_eq!(hashed(&mut t, base + 2, start + 2).as_deref(), Some(abd));
    std::fs::remove_dir_all(&dir).unwrap();
}
