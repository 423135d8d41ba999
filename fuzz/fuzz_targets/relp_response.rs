//! The RELP client (monitor/src/output/syslog/relp.rs) against a hostile collector: the
//! input is everything the server sends before it hangs up. Frame parsing must never
//! panic, read out of bounds or take more than it was given; a session must end with a
//! count of acknowledged messages no larger than the batch and the `rsp 200` answers sent,
//! never hang (the server's end of the stream ends it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (msgs, server) = match data.split_first() {
        Some((n, rest)) => (usize::from(*n % 200), rest),
        None => return,
    };
    monitor::fuzzing::relp_parse_all(server);
    monitor::fuzzing::relp_session(server, msgs);
});
