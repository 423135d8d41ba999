//! The capabilities live capture needs, checked up front so a non-root run fails at once with
//! a message naming them (instead of an EPERM from deep inside the loader).

use caps::{CapSet, Capability};

use super::error::CaptureError;

/// CAP_SYS_ADMIN alone, or CAP_BPF (load), CAP_PERFMON (tracing programs, kernel reads) and
/// CAP_NET_ADMIN (cgroup sock_addr programs).
pub fn check() -> Result<(), CaptureError> {
    let effective = caps::read(None, CapSet::Effective)
        .map_err(|e| CaptureError::Capabilities(e.to_string()))?;
    missing(|cap| effective.contains(&cap))
}

fn missing(has: impl Fn(Capability) -> bool) -> Result<(), CaptureError> {
    if has(Capability::CAP_SYS_ADMIN) {
        return Ok(());
    }
    let missing: Vec<String> = [
        Capability::CAP_BPF,
        Capability::CAP_PERFMON,
        Capability::CAP_NET_ADMIN,
    ]
    .into_iter()
    .filter(|cap| !has(*cap))
    .map(|cap| cap.to_string())
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CaptureError::NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_admin_alone_is_enough() {
        assert!(missing(|c| c == Capability::CAP_SYS_ADMIN).is_ok());
    }

    #[test]
    fn the_three_narrow_capabilities_are_enough() {
        let granted = [
            Capability::CAP_BPF,
            Capability::CAP_PERFMON,
            Capability::CAP_NET_ADMIN,
        ];
        assert!(missing(|c| granted.contains(&c)).is_ok());
    }

    #[test]
    fn names_exactly_what_is_missing() {
        let err = missing(|c| c == Capability::CAP_BPF)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CAP_PERFMON, CAP_NET_ADMIN"), "{err}");
        assert!(err.contains("run the monitor as root"), "{err}");
        let err = missing(|_| false).unwrap_err().to_string();
        assert!(err.contains("CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN"), "{err}");
    }
}
