//! Process tracking: exec and exit, so user space can keep its process table current without
//! reading /proc per event.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_ktime_get_boot_ns,
            bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
        },
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use monitor_common::{
    ARGS_LEN, EXE_LEN, EXE_PATH_LEN, EXE_PATH_STEPS, ExecEvent, ExitEvent, ForkEvent,
    OFFSET_ABSENT, exe_flag, kind, stat,
};

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
    // SAFETY: `ev` points at the record just reserved, writable and sized for an
    // `ExecEvent` until it is submitted or discarded; the helpers take no pointers.
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
        (*ev).exe_flags = 0;
        (*ev).exe_path_len = 0;
        (*ev).exe_dev = 0;
        (*ev).exe_ctime_nsec = u32::MAX;
        (*ev).exe_ino = 0;
        (*ev).exe_size = 0;
        (*ev).exe_ctime_sec = 0;
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
        // SAFETY: the destination is the reserved record's `filename`, EXE_LEN bytes; the
        // source is read through the fault-handling probe-read path.
        let n = unsafe {
            bpf_probe_read_kernel_str(
                (&raw mut (*ev).filename).cast::<c_void>(),
                EXE_LEN as u32,
                src.cast::<c_void>(),
            )
        };
        if n > 0 {
            // SAFETY: a field of the reserved record, as above.
            unsafe { (*ev).filename_len = (n - 1) as u32 };
        } else {
            count(stat::READ_FAILED);
        }
    }
    if config!(task_valid) != 0 {
        // SAFETY: a helper without arguments; the pointer is only read through `read_at`.
        let task = unsafe { bpf_get_current_task() } as *const u8;
        if let Ok(parent) = read_at::<*const u8>(task, config!(task.real_parent))
            && let Ok(ppid) = read_at::<u32>(parent, config!(task.tgid))
        {
            // SAFETY: a field of the reserved record.
            unsafe { (*ev).ppid = ppid };
        }
        // SAFETY: as above.
        unsafe { (*ev).start_time_ns = task_start_time(task) };
        // Before argv: the path walk may scribble past `exe_path` into `args` (see
        // `exe_path_of`), which `read_argv` then overwrites.
        if config!(file_valid) != 0 {
            exe_path_of(task, ev);
        }
        read_argv(task, ev);
    }
    entry.submit(wakeup_flag());
    count(stat::EXECS);
    Ok(())
}

// The path walk masks offsets with `EXE_PATH_LEN - 1`.
const _: () = assert!(EXE_PATH_LEN.is_power_of_two() && EXE_PATH_LEN >= 256);

/// Resolves `task->mm->exe_file` to the path `/proc/PID/exe` shows, as the kernel's `d_path`
/// does: up the dentries to the mount's root, across to the mount point in the parent mount,
/// until the mount that is its own parent (the root of the mount tree, not the process's
/// chroot). The path is written right to left, ending at the end of `exe_path`; the walk
/// takes at most `EXE_PATH_STEPS` steps (components plus mount crossings). One that stops
/// early leaves the components it got and sets `TRUNCATED`. Also fills `exe_dev`, `exe_ino`,
/// and the `DELETED` and `PSEUDO` flags (the ` (deleted)` suffix is user space's to add).
#[inline(always)]
fn exe_path_of(task: *const u8, ev: *mut ExecEvent) {
    let Ok(mm) = read_at::<*const u8>(task, config!(task.mm)) else {
        return;
    };
    let Ok(file) = read_at::<*const u8>(mm, config!(file.mm_exe_file)) else {
        return;
    };
    if file.is_null() {
        return;
    }
    let (Ok(vfsmnt), Ok(leaf)) = (
        read_at::<*const u8>(file, config!(file.f_path_mnt)),
        read_at::<*const u8>(file, config!(file.f_path_dentry)),
    ) else {
        return;
    };
    if let Ok(inode) = read_at::<*const u8>(file, config!(file.f_inode))
        && !inode.is_null()
    {
        if let Ok(ino) = read_at::<u64>(inode, config!(file.i_ino)) {
            // SAFETY: the record is reserved and this program's alone until submitted.
            unsafe { (*ev).exe_ino = ino };
        }
        if let Ok(sb) = read_at::<*const u8>(inode, config!(file.i_sb))
            && let Ok(dev) = read_at::<u32>(sb, config!(file.s_dev))
        {
            // SAFETY: as above.
            unsafe { (*ev).exe_dev = dev };
        }
        exe_version_of(inode, ev);
    }
    let mount_mnt = config!(file.mount_mnt) as usize;
    let mut mnt = vfsmnt.wrapping_sub(mount_mnt);
    let mut dentry = leaf;
    let mut flags = exe_flag::RESOLVED;
    // `d_unlinked`: unhashed and not its own parent.
    if let (Ok(pprev), Ok(parent)) = (
        read_at::<u64>(leaf, config!(file.d_hash_pprev)),
        read_at::<*const u8>(leaf, config!(file.d_parent)),
    ) && pprev == 0
        && parent != leaf
    {
        flags |= exe_flag::DELETED;
    }
    // The path occupies `exe_path[pos..]`. `pos` lives in the record (`exe_path_len` holds it
    // until the end), not in a register: loaded back, it is an unknown value to the verifier,
    // bounded by the checks and masks below, so paths through the loop that differ only in
    // it are pruned as equivalent. Kept in a register, its exact value makes every path
    // distinct and the program too large to verify (a million instructions).
    // SAFETY: only the address of a field of the reserved record is taken.
    let pos_slot = unsafe { &raw mut (*ev).exe_path_len };
    // SAFETY: a field of the reserved record, this program's alone until submitted.
    unsafe { core::ptr::write_volatile(pos_slot, EXE_PATH_LEN as u32) };
    let mut done = false;
    for step in 0..EXE_PATH_STEPS {
        // SAFETY: as above.
        let pos = unsafe { core::ptr::read_volatile(pos_slot) };
        let Ok(root) =
            read_at::<*const u8>(mnt.wrapping_add(mount_mnt), config!(file.vfsmount_root))
        else {
            break;
        };
        if dentry == root {
            let Ok(parent_mnt) = read_at::<*const u8>(mnt, config!(file.mount_parent)) else {
                break;
            };
            if parent_mnt == mnt {
                done = true;
                break;
            }
            let Ok(mountpoint) = read_at::<*const u8>(mnt, config!(file.mount_mountpoint)) else {
                break;
            };
            dentry = mountpoint;
            mnt = parent_mnt;
            continue;
        }
        let Ok(parent) = read_at::<*const u8>(dentry, config!(file.d_parent)) else {
            break;
        };
        let is_pseudo = parent == dentry;
        if is_pseudo && step != 0 {
            // Disconnected from its mount's root: `d_path` gives up on those too.
            break;
        }
        let (Ok(len), Ok(name)) = (
            read_at::<u32>(dentry, config!(file.d_name_len)),
            read_at::<*const u8>(dentry, config!(file.d_name_name)),
        ) else {
            break;
        };
        // NAME_MAX is 255; `len + 1` must fit before `pos` with the '/'.
        if len == 0 || len > 255 || len + 1 > pos {
            break;
        }
        let start = pos - len;
        // The verifier needs the mask on the register it is given; without `black_box` LLVM
        // drops it, knowing `len <= 255` from the check above.
        let size = core::hint::black_box(len) & 0xff;
        // SAFETY: `exe_path` lies inside the reserved record, followed by `args`. `start & 511`
        // is at most 511 and `size` at most 255, so the write ends at most 766 bytes into
        // `exe_path`, inside the record (the verifier checks exactly that); the checks above
        // keep it inside `exe_path` itself.
        let rc = unsafe {
            bpf_probe_read_kernel(
                (&raw mut (*ev).exe_path)
                    .cast::<u8>()
                    .wrapping_add((start & (EXE_PATH_LEN as u32 - 1)) as usize)
                    .cast::<c_void>(),
                size,
                name.cast::<c_void>(),
            )
        };
        if rc != 0 {
            count(stat::READ_FAILED);
            break;
        }
        let slash = start - 1;
        // SAFETY: `slash` is below `EXE_PATH_LEN` (checked above), the mask says so to the
        // verifier; the record is this program's alone until submitted.
        unsafe {
            (*ev).exe_path[(slash & (EXE_PATH_LEN as u32 - 1)) as usize] = b'/';
            core::ptr::write_volatile(pos_slot, slash);
        }
        if is_pseudo {
            flags |= exe_flag::PSEUDO;
            done = true;
            break;
        }
        dentry = parent;
    }
    if !done {
        flags |= exe_flag::TRUNCATED;
        count(stat::EXE_PATH_TRUNCATED);
    }
    // SAFETY: as above.
    let mut pos = unsafe { core::ptr::read_volatile(pos_slot) }.min(EXE_PATH_LEN as u32);
    if pos == EXE_PATH_LEN as u32 && done {
        // The file is its mount tree's root itself (cannot be an executable, but say "/").
        pos -= 1;
        // SAFETY: index `EXE_PATH_LEN - 1`.
        unsafe { (*ev).exe_path[EXE_PATH_LEN - 1] = b'/' };
    }
    // SAFETY: the record is reserved and this program's alone until submitted.
    unsafe {
        (*ev).exe_path_len = EXE_PATH_LEN as u32 - pos;
        (*ev).exe_flags = flags;
    }
}

/// The file's size and change time, which tell user space whether a hash it computed for
/// this inode is still the file's (a file rewritten in place keeps its inode). Left at "no
/// version" (`exe_ctime_nsec == u32::MAX`) unless all three read.
#[inline(always)]
fn exe_version_of(inode: *const u8, ev: *mut ExecEvent) {
    let (size_at, sec_at, nsec_at) = (
        config!(file.i_size),
        config!(file.i_ctime_sec),
        config!(file.i_ctime_nsec),
    );
    if size_at == OFFSET_ABSENT || sec_at == OFFSET_ABSENT || nsec_at == OFFSET_ABSENT {
        return;
    }
    if let (Ok(size), Ok(sec), Ok(nsec)) = (
        read_at::<u64>(inode, size_at),
        read_at::<u64>(inode, sec_at),
        read_at::<u32>(inode, nsec_at),
    ) {
        // SAFETY: the record is reserved and this program's alone until submitted.
        unsafe {
            (*ev).exe_size = size;
            (*ev).exe_ctime_sec = sec;
            // Linux 6.13+ keeps a flag in bit 31 (I_CTIME_QUERIED); nanoseconds fit in 30 bits.
            (*ev).exe_ctime_nsec = nsec & 0x3fff_ffff;
        }
    }
}

/// `sched_process_fork` as a raw tracepoint, `TP_PROTO(struct task_struct *parent,
/// struct task_struct *child)`. Runs in the forking task after the child is created, before
/// the child can run: its record is in the ring buffer ahead of anything the child does. The
/// classic tracepoint carries only the two pids, which cannot tell a new process from a new
/// thread; the child's `pid` and `tgid` can (threads are not reported).
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn proc_raw_tp_sched_process_fork(ctx: RawTracePointContext) -> u32 {
    finish(
        &ctx,
        "proc_raw_tp_sched_process_fork",
        try_proc_raw_tp_sched_process_fork(&ctx),
    )
}

fn try_proc_raw_tp_sched_process_fork(ctx: &RawTracePointContext) -> Result<(), i64> {
    if config!(task_valid) == 0 {
        return Ok(());
    }
    let child: *const u8 = ctx.arg(1);
    let tgid = read_at::<u32>(child, config!(task.tgid))?;
    if read_at::<u32>(child, config!(task.pid))? != tgid {
        return Ok(());
    }
    let ppid = read_at::<*const u8>(child, config!(task.real_parent))
        .and_then(|parent| read_at::<u32>(parent, config!(task.tgid)))
        .unwrap_or(0);
    // A new process is its own group leader.
    let start_time_ns = read_at::<u64>(child, config!(task.start_boottime)).unwrap_or(0);
    let Some(mut entry) = EVENTS.reserve::<ForkEvent>(0) else {
        count(stat::RINGBUF_FULL);
        count(stat::LOST_FORK);
        return Ok(());
    };
    entry.write(ForkEvent {
        kind: kind::FORK,
        tgid,
        // SAFETY: a helper without arguments.
        // SAFETY: a helper without arguments.
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        source_tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        ppid,
        start_time_ns,
        source_start_time_ns: current_start_time(),
    });
    entry.submit(wakeup_flag());
    count(stat::FORKS);
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
        // SAFETY: a field of the reserved record `ev` points at.
        unsafe { (*ev).args_truncated = 1 };
        ARGS_LEN as u32
    } else {
        total as u32
    };
    // The bound above is what lets the verifier accept a variable-size read.
    // SAFETY: the destination is the record's `args`, ARGS_LEN bytes, and `len` is at most
    // that; the user memory is read through the fault-handling probe-read path.
    let rc = unsafe {
        bpf_probe_read_user(
            (&raw mut (*ev).args).cast::<c_void>(),
            len,
            start as *const c_void,
        )
    };
    if rc == 0 {
        // SAFETY: a field of the reserved record.
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
        // SAFETY: a helper without arguments.
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
        start_time_ns: current_start_time(),
    });
    entry.submit(wakeup_flag());
    count(stat::EXITS);
    Ok(())
}
