//! Runs inside the VM test's guest (`cargo xtask vm`): forks a child that, without exec'ing,
//! makes a TCP connect and a UDP send to 127.0.0.1:PORT and to [::1]:PORT (both families on
//! every backend), then prints `parent=P child=C`. The
//! guest check expects the child's records to carry this program's executable and P as the
//! parent: the identity a forked child inherits, as pre-forking servers and subshells have.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("usage: vm-fork-probe PORT");
            std::process::exit(2);
        }
    };
    // SAFETY: the program is single-threaded here; the child only uses async-signal-safe
    // system calls through std's thin wrappers (socket, connect, sendto) and _exit.
    let child = unsafe { libc::fork() };
    match child {
        -1 => {
            eprintln!("fork: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
        0 => {
            let mut failed = false;
            for ip in [
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ] {
                let to = SocketAddr::new(ip, port);
                // Nothing listens: the connect is refused, which is still a connect attempt.
                let _ = TcpStream::connect_timeout(&to, Duration::from_secs(2));
                let sent =
                    UdpSocket::bind(SocketAddr::new(ip, 0)).and_then(|s| s.send_to(b"x", to));
                failed |= sent.is_err();
            }
            // SAFETY: _exit has no preconditions; it skips the parent's atexit handlers.
            unsafe { libc::_exit(i32::from(failed)) };
        }
        c => {
            let mut status = 0;
            // SAFETY: waits for our own child; `status` is a valid pointer.
            let waited = unsafe { libc::waitpid(c, &mut status, 0) };
            println!("parent={} child={c}", std::process::id());
            let ok = waited == c && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            std::process::exit(if ok { 0 } else { 1 });
        }
    }
}
