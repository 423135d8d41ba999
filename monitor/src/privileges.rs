//! Least privilege for the daemon.
//!
//! Loading and attaching eBPF programs needs broad capabilities (checked up front by
//! `capture::check_capabilities`); reading the ring buffer afterwards needs none (the map is
//! already mapped and its fd open). So right after attaching the daemon keeps only what the
//! per-event path still uses:
//! - `CAP_SYS_PTRACE`: `readlink /proc/PID/exe` of processes of other users (ptrace access
//!   mode check);
//! - `CAP_DAC_READ_SEARCH`: read /proc entries and rule files regardless of mode bits.
//!
//! Everything else leaves the effective, permitted, inheritable, ambient and bounding sets,
//! and `no_new_privs` is set, so nothing the daemon might exec could regain them. With a
//! `user`, the daemon also switches to that user and its primary group (keeping the two
//! capabilities across the switch).

use anyhow::{Context as _, anyhow, bail};
use caps::{CapSet, Capability, CapsHashSet};

/// Capabilities kept after attach.
pub const KEPT_CAPS: &[Capability] = &[Capability::CAP_SYS_PTRACE, Capability::CAP_DAC_READ_SEARCH];

/// Drops every capability but `KEPT_CAPS`, optionally switching to `user`.
pub fn drop_after_attach(user: Option<&str>) -> anyhow::Result<()> {
    let keep: CapsHashSet = KEPT_CAPS.iter().copied().collect();
    // Bounding set first, while still holding CAP_SETPCAP (a uid change below clears the
    // effective set even with keep-caps).
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("clearing ambient capabilities")?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .context("clearing inheritable capabilities")?;
    if let Some(name) = user {
        switch_user(name)?;
    }
    // The kept ones are still permitted (keep-caps), so they can be made effective again.
    caps::set(None, CapSet::Effective, &keep).context("setting effective capabilities")?;
    caps::set(None, CapSet::Permitted, &keep).context("setting permitted capabilities")?;
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(anyhow!(std::io::Error::last_os_error())).context("setting no_new_privs");
    }
    tracing::info!(
        kept = %KEPT_CAPS.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        user = user.unwrap_or("(unchanged)"),
        "privileges dropped after attach"
    );
    Ok(())
}

fn switch_user(name: &str) -> anyhow::Result<()> {
    let cname = std::ffi::CString::new(name).context("user name contains a NUL byte")?;
    // SAFETY: getpwnam returns a pointer into static storage or NULL; we copy the ids out at once.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        bail!("user {name:?} does not exist (create it, or remove `user` from the config)");
    }
    // SAFETY: pw is non-null and points at a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // Keep permitted capabilities across the uid change; effective ones are restored below.
    // SAFETY: plain integer prctl/set*id calls.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(anyhow!(std::io::Error::last_os_error())).context("PR_SET_KEEPCAPS");
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(anyhow!(std::io::Error::last_os_error())).context("setgroups");
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(anyhow!(std::io::Error::last_os_error()))
                .with_context(|| format!("setresgid({gid})"));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(anyhow!(std::io::Error::last_os_error()))
                .with_context(|| format!("setresuid({uid})"));
        }
    }
    Ok(())
}
