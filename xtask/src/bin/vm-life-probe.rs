//! Runs inside the VM test's guest (`cargo xtask vm`) for the lifecycle records
//! (`--lifecycle`): binds a UDP socket to 127.0.0.1:UDP_PORT (a UDP listen), listens on
//! 127.0.0.1:TCP_PORT (a TCP listen), connects to it and exchanges a known number of bytes
//! each way with the accepted end (a connect with its result, an accept, and both ends'
//! closes after an orderly shutdown), connects to 127.0.0.1:CLOSED_PORT where nothing
//! listens (refused), and to UNROUTED (no route in the guest: the kernel fails the connect
//! before sending anything). Then UDP flows: socket A (unconnected, `sendto`/`recvfrom`)
//! and socket B (connected, `send`/`recv`) each send `UDP_SIZES` to the bound socket, which
//! answers each datagram with `UDP_REPLY` bytes; all three close. Prints `pid=P
//! client_port=C sent=N received=M refused=E unrouted=E udp_a=PORT udp_b=PORT udp_sent=N
//! udp_received=M datagrams=K` for `vm/life.rs` to check the records against.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// Bytes the client sends, and the accepted end sends back.
const CLIENT_BYTES: usize = 3000;
const SERVER_BYTES: usize = 1500;
/// TEST-NET-1: the guest has only `lo`, so there is no route to it.
const UNROUTED: &str = "192.0.2.1:80";
/// Datagrams each UDP client sends, and the size of each answer.
const UDP_SIZES: [usize; 3] = [100, 200, 300];
const UDP_REPLY: usize = 50;

fn main() {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let &[tcp_port, closed_port, udp_port] = args.as_slice() else {
        eprintln!("usage: vm-life-probe TCP_PORT CLOSED_PORT UDP_PORT");
        std::process::exit(2);
    };
    match run(tcp_port, closed_port, udp_port) {
        Ok(line) => println!("pid={} {line}", std::process::id()),
        Err(e) => {
            println!("pid={} error={e}", std::process::id());
            std::process::exit(1);
        }
    }
}

fn run(tcp_port: u16, closed_port: u16, udp_port: u16) -> std::io::Result<String> {
    let local = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Some(Duration::from_secs(5));
    let udp = UdpSocket::bind(local(udp_port))?;
    udp.set_read_timeout(timeout)?;
    let listener = TcpListener::bind(local(tcp_port))?;
    let server = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(timeout)?;
        let mut got = vec![0u8; CLIENT_BYTES];
        conn.read_exact(&mut got)?;
        conn.write_all(&[b's'; SERVER_BYTES])?;
        // The client's FIN, then ours: an orderly close on both ends.
        let rest = conn.read_to_end(&mut Vec::new())?;
        Ok(CLIENT_BYTES + rest)
    });
    let mut client = TcpStream::connect_timeout(&local(tcp_port), Duration::from_secs(5))?;
    client.set_read_timeout(timeout)?;
    let client_port = client.local_addr()?.port();
    client.write_all(&[b'c'; CLIENT_BYTES])?;
    let mut got = vec![0u8; SERVER_BYTES];
    client.read_exact(&mut got)?;
    client.shutdown(Shutdown::Write)?;
    let rest = client.read_to_end(&mut Vec::new())?;
    drop(client);
    let server_got = server
        .join()
        .map_err(|_| std::io::Error::other("the accepting thread panicked"))??;
    if server_got != CLIENT_BYTES || rest != 0 {
        return Err(std::io::Error::other(format!(
            "the accepted end read {server_got} bytes, the client {rest} after the reply"
        )));
    }
    // Blocking connects: each fails at once (a reset on loopback, no route).
    let errno = |target: SocketAddr| match TcpStream::connect(target) {
        Ok(_) => "connected".to_string(),
        Err(e) => e.raw_os_error().map_or("none".into(), |n| n.to_string()),
    };
    let refused = errno(local(closed_port));
    let unrouted = errno(UNROUTED.parse().expect("a socket address"));
    let (udp_a, udp_b) = udp_flows(udp, local(udp_port))?;
    let udp_sent: usize = UDP_SIZES.iter().sum();
    Ok(format!(
        "client_port={client_port} sent={CLIENT_BYTES} received={SERVER_BYTES} \
         refused={refused} unrouted={unrouted} udp_a={udp_a} udp_b={udp_b} \
         udp_sent={udp_sent} udp_received={} datagrams={}",
        UDP_REPLY * UDP_SIZES.len(),
        UDP_SIZES.len()
    ))
}

/// Socket A sends with `sendto` and reads with `recvfrom`, socket B is connected and uses
/// `send`/`recv` (no address in the call); `server` answers every datagram. Every socket
/// is closed on return. The two clients' local ports.
fn udp_flows(server: UdpSocket, to: SocketAddr) -> std::io::Result<(u16, u16)> {
    let timeout = Some(Duration::from_secs(5));
    let a = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let b = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    b.connect(to)?;
    let mut buf = vec![0u8; 2048];
    for client in [&a, &b] {
        client.set_read_timeout(timeout)?;
        for n in UDP_SIZES {
            if client.peer_addr().is_ok() {
                client.send(&vec![b'u'; n])?;
            } else {
                client.send_to(&vec![b'u'; n], to)?;
            }
            let (got, from) = server.recv_from(&mut buf)?;
            if got != n {
                return Err(std::io::Error::other(format!(
                    "the server read {got} of {n}"
                )));
            }
            server.send_to(&[b'r'; UDP_REPLY], from)?;
            let got = if client.peer_addr().is_ok() {
                client.recv(&mut buf)?
            } else {
                client.recv_from(&mut buf)?.0
            };
            if got != UDP_REPLY {
                return Err(std::io::Error::other(format!(
                    "a client read {got} of {UDP_REPLY}"
                )));
            }
        }
    }
    let ports = (a.local_addr()?.port(), b.local_addr()?.port());
    drop((a, b, server));
    Ok(ports)
}
