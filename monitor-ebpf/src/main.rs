#![no_std]
#![no_main]

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

/// `sock:inet_sock_set_state`: placeholder until the capture programs land.
#[tracepoint]
pub fn tcp_tp_inet_sock_set_state(ctx: TracePointContext) -> u32 {
    match try_tcp_tp_inet_sock_set_state(ctx) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn try_tcp_tp_inet_sock_set_state(_ctx: TracePointContext) -> Result<(), i64> {
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
