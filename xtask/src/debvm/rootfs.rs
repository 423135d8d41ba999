//! The guest's Debian 12 root file system: debootstrap from Debian's archive, a few files
//! for the test (fstab, the check unit), made into an ext4 image without mounting
//! (`mkfs.ext4 -d`). Cached under `target/debvm/rootfs-KEY/`, KEY a hash of everything that
//! goes into it (suite, mirror, package list, the baked-in files), with the kernel and
//! initramfs Debian's own packages installed in it; the downloaded packages are kept in
//! `target/debvm/debs/` for the next build.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the guest needs beyond `--variant=minbase`: systemd as init, Debian's cloud kernel
/// (its initramfs loads virtio_blk), rsyslog, the beacon programs (curl, python3), bpftool
/// for the detach check, ip for the test address, procps (/bin/kill, the unit's reload).
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "rsyslog",
    "curl",
    "python3",
    "bpftool",
    "iproute2",
    "procps",
];
const CHECK_UNIT: &str = include_str!("../../debvm/debvm-check.service");
/// The root disk is vda, the payload (debs and scripts, `debvm.rs`) vdb.
const FSTAB: &str = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n\
                     /dev/vdb /payload ext4 ro,nofail 0 0\n";
/// Units that would only cost time in a short-lived guest under emulation, and the serial
/// getty (the console belongs to the checks).
const MASKED: &[&str] = &[
    "serial-getty@ttyS0.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "logrotate.timer",
];
/// Bump when the configuration below changes in a way the key does not see.
const LAYOUT: u32 = 1;

/// The cached image and the kernel and initramfs to boot it with.
pub struct RootFs {
    pub image: PathBuf,
    pub vmlinuz: PathBuf,
    pub initrd: PathBuf,
}

pub fn ensure(cache: &Path) -> Result<RootFs> {
    let dir = cache.join(format!("rootfs-{:016x}", key()));
    let rootfs = RootFs {
        image: dir.join("root.ext4"),
        vmlinuz: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
    };
    if [&rootfs.image, &rootfs.vmlinuz, &rootfs.initrd]
        .iter()
        .all(|p| p.is_file())
    {
        eprintln!("debvm: cached root file system {}", dir.display());
        return Ok(rootfs);
    }
    let t = Instant::now();
    let tree = cache.join(format!("rootfs-{:016x}.tree", key()));
    for d in [&tree, &dir] {
        if d.exists() {
            fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
    }
    let debs = cache.join("debs");
    fs::create_dir_all(&debs)?;
    eprintln!(
        "debvm: debootstrap {SUITE} into {} (a few minutes, once per package list)",
        tree.display()
    );
    let st = Command::new("debootstrap")
        .args(["--variant=minbase", "--merged-usr"])
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(format!("--cache-dir={}", debs.display()))
        .arg(SUITE)
        .arg(&tree)
        .arg(MIRROR)
        .status()
        .context("running debootstrap (apt-get install debootstrap)")?;
    ensure!(
        st.success(),
        "debootstrap failed ({st}); see {}/debootstrap/debootstrap.log",
        tree.display()
    );
    configure(&tree)?;
    fs::create_dir_all(&dir)?;
    let boot = tree.join("boot");
    for (prefix, dest) in [
        ("vmlinuz-", &rootfs.vmlinuz),
        ("initrd.img-", &rootfs.initrd),
    ] {
        let src = fs::read_dir(&boot)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .with_context(|| format!("no {}{prefix}* after debootstrap", boot.display()))?;
        fs::copy(&src, dest).with_context(|| format!("copying {}", src.display()))?;
    }
    let partial = dir.join("root.ext4.partial");
    // Sparse: about 0.5 GiB is used; the rest is room for the test's writes (which go to a
    // qemu snapshot, not to this file).
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "debvm-root", "-d"])
        .arg(&tree)
        .arg(&partial)
        .arg("1536M")
        .status()
        .context("running mkfs.ext4")?;
    ensure!(
        st.success(),
        "mkfs.ext4 -d {} failed ({st})",
        tree.display()
    );
    fs::rename(&partial, &rootfs.image)?;
    fs::remove_dir_all(&tree)?;
    eprintln!(
        "debvm: root file system image {} ready in {:.0} s",
        rootfs.image.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(rootfs)
}

/// The files the test adds to the bootstrapped tree.
fn configure(tree: &Path) -> Result<()> {
    let etc = tree.join("etc");
    fs::write(etc.join("fstab"), FSTAB)?;
    fs::write(etc.join("hostname"), "debvm\n")?;
    fs::create_dir_all(tree.join("payload"))?;
    let units = etc.join("systemd/system");
    fs::write(units.join("debvm-check.service"), CHECK_UNIT)?;
    let wants = units.join("multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    symlink(
        Path::new("/etc/systemd/system/debvm-check.service"),
        &wants.join("debvm-check.service"),
    )?;
    for unit in MASKED {
        symlink(Path::new("/dev/null"), &units.join(unit))?;
    }
    Ok(())
}

fn symlink(target: &Path, link: &Path) -> Result<()> {
    let _ = fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

/// FNV-1a over everything that decides the image's contents: a stable cache key.
fn key() -> u64 {
    let text = format!(
        "{LAYOUT}\n{SUITE}\n{MIRROR}\n{}\n{CHECK_UNIT}\n{FSTAB}\n{}",
        PACKAGES.join(","),
        MASKED.join(",")
    );
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
