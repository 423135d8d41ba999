//! The backends' attach steps for the connect hooks (`try_*`, one per backend) and the
//! attach primitives every hook uses (fentry, kprobe, raw and classic tracepoints, cgroup
//! programs), each leaving nothing loaded when it fails.

use std::fs::File;

use aya::{
    Ebpf,
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, FEntry, KProbe,
        ProgramError, RawTracePoint, TracePoint,
    },
};

use super::{Failure, FirstDatagramPlan, HookPlan, HostSupport, TracepointPlan};
use crate::capture::error::one_line;

pub(super) fn kernel(program: &'static str) -> impl FnOnce(ProgramError) -> Failure {
    move |error| Failure::Kernel { program, error }
}

pub(super) fn program_mut<'a, T>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut T, Failure>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    let found = ebpf.program_mut(program).ok_or(Failure::Missing(program))?;
    found.try_into().map_err(|_| Failure::Missing(program))
}

pub(super) fn try_fentry(
    ebpf: &mut Ebpf,
    plan: &HookPlan,
    host: &HostSupport,
) -> Result<(), Failure> {
    let btf = host
        .aya_btf
        .as_ref()
        .map_err(|e| Failure::Unsupported(e.clone()))?;
    host.sock
        .as_ref()
        .map_err(|e| Failure::Unsupported(e.clone()))?;
    let program: &mut FEntry = program_mut(ebpf, plan.fentry)?;
    program
        .load(plan.kernel_fn, btf)
        .map_err(kernel(plan.fentry))?;
    if let Err(error) = program.attach() {
        unload_quietly(program.unload(), plan.fentry);
        return Err(kernel(plan.fentry)(error));
    }
    Ok(())
}

pub(super) fn try_kprobe(
    ebpf: &mut Ebpf,
    plan: &HookPlan,
    host: &HostSupport,
) -> Result<(), Failure> {
    host.sock
        .as_ref()
        .map_err(|e| Failure::Unsupported(e.clone()))?;
    let program: &mut KProbe = program_mut(ebpf, plan.kprobe)?;
    program.load().map_err(kernel(plan.kprobe))?;
    if let Err(error) = program.attach(plan.kernel_fn, 0) {
        unload_quietly(program.unload(), plan.kprobe);
        return Err(kernel(plan.kprobe)(error));
    }
    Ok(())
}

/// The hook's tracepoints, or why it has none.
fn tracepoint_plan(plan: &HookPlan) -> Result<&TracepointPlan, Failure> {
    plan.tracepoint
        .as_ref()
        .ok_or_else(|| Failure::Unsupported(format!("no tracepoint program for {}", plan.hook)))
}

pub(super) fn try_raw_tracepoint(
    ebpf: &mut Ebpf,
    plan: &HookPlan,
    host: &HostSupport,
) -> Result<(), Failure> {
    let tp = tracepoint_plan(plan)?;
    host.raw_tracepoint
        .as_ref()
        .map_err(|e| Failure::Unsupported(e.clone()))?;
    attach_raw_tracepoint(ebpf, tp.raw_program, tp.name)
}

pub(super) fn attach_raw_tracepoint(
    ebpf: &mut Ebpf,
    program: &'static str,
    name: &str,
) -> Result<(), Failure> {
    let raw: &mut RawTracePoint = program_mut(ebpf, program)?;
    raw.load().map_err(kernel(program))?;
    if let Err(error) = raw.attach(name) {
        unload_quietly(raw.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(())
}

/// The classic tracepoint.
pub(super) fn try_tracepoint(
    ebpf: &mut Ebpf,
    plan: &HookPlan,
    host: &HostSupport,
) -> Result<(), Failure> {
    let tp = tracepoint_plan(plan)?;
    host.tcp_tracepoint
        .as_ref()
        .map_err(|e| Failure::Unsupported(e.clone()))?;
    attach_tracepoint(ebpf, tp.program, tp.category, tp.name)
}

/// The hook's cgroup programs on the cgroup v2 root: all or none.
pub(super) fn try_cgroup(
    ebpf: &mut Ebpf,
    plan: &HookPlan,
    host: &HostSupport,
) -> Result<(), Failure> {
    let programs = plan.cgroup;
    let root = host
        .cgroup_root
        .as_ref()
        .map_err(|e| Failure::Unsupported(e.clone()))?;
    // Leave nothing half attached: the hook is all or nothing.
    attach_cgroups(ebpf, &programs, root)?;
    if let Some(first) = &plan.first_datagram
        && let Err(failure) = attach_first_datagram(ebpf, first, host, root)
    {
        unload_cgroups(ebpf, &programs);
        return Err(failure);
    }
    Ok(())
}

/// The first-datagram program, once for both UDP hooks: the raw tracepoint, else egress.
fn attach_first_datagram(
    ebpf: &mut Ebpf,
    plan: &FirstDatagramPlan,
    host: &HostSupport,
    root: &File,
) -> Result<(), Failure> {
    if program_mut::<RawTracePoint>(ebpf, plan.raw_program)?
        .fd()
        .is_ok()
    {
        return Ok(());
    }
    let raw = match &host.raw_tracepoint {
        Ok(()) => attach_raw_tracepoint(ebpf, plan.raw_program, plan.tracepoint),
        Err(why) => Err(Failure::Unsupported(why.clone())),
    };
    match raw {
        Ok(()) => {
            tracing::debug!(
                program = plan.raw_program,
                "UDP first datagrams by send call"
            );
            Ok(())
        }
        Err(failure) => {
            let egress = attach_cgroup_skb_egress(ebpf, plan.egress_program, root);
            if egress.is_ok() {
                tracing::info!(
                    program = plan.egress_program,
                    reason = %failure.one_line(),
                    "UDP first datagrams by cgroup_skb egress (runs on every sent packet)"
                );
            }
            egress
        }
    }
}

/// A `cgroup_skb` egress program on the root, once: a second hook sharing it finds it
/// already loaded (and attached, since it is unloaded whenever its attach fails).
fn attach_cgroup_skb_egress(
    ebpf: &mut Ebpf,
    program: &'static str,
    root: &File,
) -> Result<(), Failure> {
    let prog: &mut CgroupSkb = program_mut(ebpf, program)?;
    if prog.fd().is_ok() {
        return Ok(());
    }
    prog.load().map_err(kernel(program))?;
    if let Err(error) = prog.attach(
        root,
        CgroupSkbAttachType::Egress,
        CgroupAttachMode::default(),
    ) {
        unload_quietly(prog.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(())
}

pub(super) fn attach_tracepoint(
    ebpf: &mut Ebpf,
    program: &'static str,
    category: &str,
    name: &str,
) -> Result<(), Failure> {
    let tp: &mut TracePoint = program_mut(ebpf, program)?;
    tp.load().map_err(kernel(program))?;
    if let Err(error) = tp.attach(category, name) {
        unload_quietly(tp.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(())
}

pub(super) fn attach_cgroup(
    ebpf: &mut Ebpf,
    program: &'static str,
    root: &File,
) -> Result<(), Failure> {
    let prog: &mut CgroupSockAddr = program_mut(ebpf, program)?;
    prog.load().map_err(kernel(program))?;
    // The default mode: AllowMultiple makes bpf_link_create fail with EINVAL, and links
    // coexist with other programs on the same cgroup anyway.
    if let Err(error) = prog.attach(root, CgroupAttachMode::default()) {
        unload_quietly(prog.unload(), program);
        return Err(kernel(program)(error));
    }
    Ok(())
}

/// Unloading a program that failed to attach; a failure here is only worth a warning since
/// the program is not attached anywhere.
pub(super) fn unload_quietly(result: Result<(), ProgramError>, program: &str) {
    if let Err(e) = result {
        tracing::warn!(program, error = %one_line(&e), "unloading an unattached program failed");
    }
}

/// `sock_addr` programs on the cgroup root, all or none.
pub(super) fn attach_cgroups(
    ebpf: &mut Ebpf,
    programs: &[&'static str],
    root: &File,
) -> Result<(), Failure> {
    for (i, &program) in programs.iter().enumerate() {
        if let Err(failure) = attach_cgroup(ebpf, program, root) {
            unload_cgroups(ebpf, &programs[..i]);
            return Err(failure);
        }
    }
    Ok(())
}

/// Unloads (detaches) `sock_addr` programs that `attach_cgroups` attached.
pub(super) fn unload_cgroups(ebpf: &mut Ebpf, programs: &[&'static str]) {
    for &program in programs {
        if let Ok(p) = program_mut::<CgroupSockAddr>(ebpf, program) {
            unload_quietly(p.unload(), program);
        }
    }
}
