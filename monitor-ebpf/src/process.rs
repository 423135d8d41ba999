//! Process tracking: exec and exit, so user space can keep its process table current without
//! reading /proc per event.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_ktime_get_boot_ns,
            bpf_probe_read_kernel_str, bpf_probe_read_user,
        },
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{ARGS_LEN, EXE_LEN, ExecEvent, ExitEvent, OFFSET_ABSENT, kind, stat};

use crate::{
    emit::{count, finish, wakeup_flag},
    kernel::{current_start_time, read_at, task_start_time},
    maps::{EVENTS, config},
};

/// `sched:sched_process_exec`, `TP_PROTO(struct task_struct *p, pid_t old_pid,
/// struct linux_binprm *bprm)`. Runs in the task that exec'd once the new image is in place:
/// `current->mm` is the new mm, and its argv area holds the new arguments.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn proc_tp_sched_process_exec(ctx: TracePointContext) -> u32 {
    finish(
        &ctx,
        "proc_tp_sched_process_exec",
        try_proc_tp_sched_process_exec(&ctx),
    )
}

fn try_proc_tp_sched_process_exec(ctx: &TracePointContext) -> Result<(), i64> {
    // 840 bytes: too big for the 512-byte BPF stack, so it is filled in place.
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_EXEC);
        return Ok(());
    };
    let ev = entry.as_mut_ptr();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // Ring-buffer memory is not zeroed: set every scalar; the arrays are only meaningful up
    // to their `*_len`, which user space honours.
    unsafe {
        (*ev).kind = kind::EXEC;
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).ktime_ns = bpf_ktime_get_boot_ns();
        (*ev).ppid = 0;
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).filename_len = 0;
        (*ev).start_time_ns = 0;
        (*ev).cgroup_id = bpf_get_current_cgroup_id();
        (*ev).args_len = 0;
        (*ev).args_truncated = 0;
        (*ev).comm = match bpf_get_current_comm() {
            Ok(comm) => comm,
            Err(_) => {
                count(stat::READ_FAILED);
                [0; 16]
            }
        };
    }
    // The path the kernel resolved, from the tracepoint's `__data_loc char[] filename`: a u32
    // whose low 16 bits are the string's offset from the start of the record.
    let tp = ctx.as_ptr() as *const u8;
    if let Ok(loc) = read_at::<u32>(tp, config!(tp.exec_filename)) {
        let src = tp.wrapping_add((loc & 0xffff) as usize);
        // Returns the length including the NUL, or a negative error.
        let n = unsafe {
            bpf_probe_read_kernel_str(
                (&raw mut (*ev).filename).cast::<c_void>(),
                EXE_LEN as u32,
                src.cast::<c_void>(),
            )
        };
        if n > 0 {
            unsafe { (*ev).filename_len = (n - 1) as u32 };
        } else {
            count(stat::READ_FAILED);
        }
    }
    if config!(task_valid) != 0 {
        let task = unsafe { bpf_get_current_task() } as *const u8;
        if let Ok(parent) = read_at::<*const u8>(task, config!(task.real_parent))
            && let Ok(ppid) = read_at::<u32>(parent, config!(task.tgid))
        {
            unsafe { (*ev).ppid = ppid };
        }
        unsafe { (*ev).start_time_ns = task_start_time(task) };
        read_argv(task, ev);
    }
    entry.submit(wakeup_flag());
    count(stat::EXECS);
    Ok(())
}

/// Copies the first `ARGS_LEN` bytes of `mm->arg_start..arg_end` (NUL-separated argv).
#[inline(always)]
fn read_argv(task: *const u8, ev: *mut ExecEvent) {
    let Ok(mm) = read_at::<*const u8>(task, config!(task.mm)) else {
        return;
    };
    let (Ok(start), Ok(end)) = (
        read_at::<u64>(mm, config!(task.mm_arg_start)),
        read_at::<u64>(mm, config!(task.mm_arg_end)),
    ) else {
        return;
    };
    if end <= start {
        return;
    }
    let total = end - start;
    let len = if total > ARGS_LEN as u64 {
        unsafe { (*ev).args_truncated = 1 };
        ARGS_LEN as u32
    } else {
        total as u32
    };
    // The bound above is what lets the verifier accept a variable-size read.
    let rc = unsafe {
        bpf_probe_read_user(
            (&raw mut (*ev).args).cast::<c_void>(),
            len,
            start as *const c_void,
        )
    };
    if rc == 0 {
        unsafe { (*ev).args_len = len };
    } else {
        count(stat::READ_FAILED);
    }
}

/// `sched:sched_process_exit`, `TP_PROTO(struct task_struct *p, bool group_dead)` (older
/// kernels: `(struct task_struct *p)`). Runs in the exiting thread. Reports the process's end:
/// when `group_dead` exists, on the last thread; otherwise when the thread-group leader exits.
#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn proc_tp_sched_process_exit(ctx: TracePointContext) -> u32 {
    finish(
        &ctx,
        "proc_tp_sched_process_exit",
        try_proc_tp_sched_process_exit(&ctx),
    )
}

fn try_proc_tp_sched_process_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let group_dead = config!(tp.exit_group_dead);
    if group_dead != OFFSET_ABSENT {
        if read_at::<u8>(ctx.as_ptr() as *const u8, group_dead)? == 0 {
            return Ok(());
        }
    } else if tgid != pid_tgid as u32 {
        return Ok(());
    }
    let Some(mut entry) = EVENTS.reserve::<ExitEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_EXIT);
        return Ok(());
    };
    entry.write(ExitEvent {
        kind: kind::EXIT,
        tgid,
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        start_time_ns: current_start_time(),
    });
    entry.submit(wakeup_flag());
    count(stat::EXITS);
    Ok(())
}
