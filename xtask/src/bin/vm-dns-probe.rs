//! Runs inside the VM test's guest (`cargo xtask vm`): a DNS server and, in a second
//! process, its client, so the guest check can see a DNS answer captured and attributed over
//! UDP and over TCP on every kernel and backend.
//!
//! `vm-dns-probe PORT` serves DNS on 127.0.0.1:53 (UDP and TCP), answering `A` for
//! `UDP_NAME` (127.0.0.2) and `TCP_NAME` (127.0.0.3), NXDOMAIN for anything else, and
//! listens on TCP at both answers' PORT. It then runs itself as `vm-dns-probe client PORT`,
//! which resolves `UDP_NAME` over UDP (a connected socket, `send`/`recv`) and `TCP_NAME` over
//! TCP (the way glibc's resolver does: one write, then `read(2)` of the 2-byte length and of
//! the message), checks each answer and connects to it. It prints `client=PID` and exits
//! non-zero on any failure. Messages are built and parsed with `simple-dns`.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::Duration;

use simple_dns::{
    CLASS, Packet, QCLASS, QTYPE, Question, RCODE, ResourceRecord, TYPE,
    rdata::{A, RData},
};

/// The names the client resolves, and the loopback addresses they stand for.
const UDP_NAME: &str = "udp.dns-probe.test";
const TCP_NAME: &str = "tcp.dns-probe.test";
const UDP_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const TCP_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 53);
const TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("client") => port(args.get(2)).and_then(client),
        Some(p) => port(Some(&p.to_string())).and_then(serve),
        None => Err("usage: vm-dns-probe PORT".to_string()),
    };
    if let Err(e) = result {
        eprintln!("vm-dns-probe: {e}");
        std::process::exit(1);
    }
}

fn port(arg: Option<&String>) -> Result<u16, String> {
    arg.and_then(|p| p.parse().ok())
        .ok_or_else(|| "usage: vm-dns-probe [client] PORT".to_string())
}

/// The server side: binds everything, then runs the client and reports its pid and status.
fn serve(port: u16) -> Result<(), String> {
    let udp = UdpSocket::bind(SERVER).map_err(|e| format!("binding udp {SERVER}: {e}"))?;
    let tcp = TcpListener::bind(SERVER).map_err(|e| format!("binding tcp {SERVER}: {e}"))?;
    for addr in [UDP_ADDR, TCP_ADDR] {
        let at = SocketAddr::from((addr, port));
        let listener = TcpListener::bind(at).map_err(|e| format!("binding tcp {at}: {e}"))?;
        // Accepts and closes: the client's connect only has to complete.
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
    }
    std::thread::spawn(move || serve_udp(&udp));
    std::thread::spawn(move || {
        for conn in tcp.incoming().flatten() {
            if let Err(e) = serve_tcp(conn) {
                eprintln!("vm-dns-probe: tcp server: {e}");
            }
        }
    });
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut child = Command::new(exe)
        .args(["client", &port.to_string()])
        .spawn()
        .map_err(|e| format!("starting the client: {e}"))?;
    println!("client={}", child.id());
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the client: {e}"))?;
    if !status.success() {
        return Err(format!("client failed: {status}"));
    }
    Ok(())
}

fn serve_udp(udp: &UdpSocket) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf) else {
            return;
        };
        match answer(&buf[..n]) {
            Ok(reply) => {
                let _ = udp.send_to(&reply, from);
            }
            Err(e) => eprintln!("vm-dns-probe: udp server: {e}"),
        }
    }
}

/// One query per connection, length-prefixed (RFC 1035 4.2.2).
fn serve_tcp(mut conn: TcpStream) -> Result<(), String> {
    conn.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut query).map_err(|e| e.to_string())?;
    let reply = answer(&query)?;
    let mut framed = u16::try_from(reply.len())
        .map_err(|_| "reply too long".to_string())?
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&reply);
    conn.write_all(&framed).map_err(|e| e.to_string())
}

/// The reply to one query: `A` for the two names, NXDOMAIN otherwise.
fn answer(query: &[u8]) -> Result<Vec<u8>, String> {
    let query = Packet::parse(query).map_err(|e| format!("bad query: {e}"))?;
    let mut reply = Packet::new_reply(query.id());
    let Some(question) = query.questions.first() else {
        return Err("query without a question".into());
    };
    reply.questions.push(question.clone());
    let name = question.qname.to_string().to_ascii_lowercase();
    let address = match name.trim_end_matches('.') {
        UDP_NAME => Some(UDP_ADDR),
        TCP_NAME => Some(TCP_ADDR),
        _ => None,
    };
    match address {
        Some(address) if question.qtype == QTYPE::TYPE(TYPE::A) => {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                300,
                RData::A(A {
                    address: u32::from(address),
                }),
            ));
        }
        Some(_) => {}
        None => *reply.rcode_mut() = RCODE::NameError,
    }
    reply.build_bytes_vec().map_err(|e| e.to_string())
}

/// The client side: resolves each name over its transport and connects to the answer.
fn client(port: u16) -> Result<(), String> {
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("udp: {e}"))?;
    udp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    udp.connect(SERVER)
        .map_err(|e| format!("udp connect: {e}"))?;
    udp.send(&query(0x5501, UDP_NAME)?)
        .map_err(|e| format!("udp send: {e}"))?;
    let mut buf = [0u8; 512];
    let n = udp.recv(&mut buf).map_err(|e| format!("udp recv: {e}"))?;
    let got = resolved(&buf[..n], UDP_NAME)?;
    expect(got, UDP_ADDR, UDP_NAME)?;
    connect(got, port)?;

    let mut tcp = TcpStream::connect_timeout(&SERVER, TIMEOUT).map_err(|e| format!("tcp: {e}"))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let q = query(0x5502, TCP_NAME)?;
    let mut framed = u16::try_from(q.len())
        .map_err(|_| "query too long".to_string())?
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&q);
    tcp.write_all(&framed)
        .map_err(|e| format!("tcp write: {e}"))?;
    // read(2), as glibc's res_send does (std's TcpStream reads with recv(2)).
    let mut reader = File::from(OwnedFd::from(tcp));
    let mut len = [0u8; 2];
    reader
        .read_exact(&mut len)
        .map_err(|e| format!("tcp read: {e}"))?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader
        .read_exact(&mut msg)
        .map_err(|e| format!("tcp read: {e}"))?;
    let got = resolved(&msg, TCP_NAME)?;
    expect(got, TCP_ADDR, TCP_NAME)?;
    connect(got, port)
}

fn query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut q = Packet::new_query(id);
    q.questions.push(Question::new(
        simple_dns::Name::new(name).map_err(|e| e.to_string())?,
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    q.build_bytes_vec().map_err(|e| e.to_string())
}

/// The first `A` record of a reply.
fn resolved(reply: &[u8], name: &str) -> Result<Ipv4Addr, String> {
    let reply = Packet::parse(reply).map_err(|e| format!("{name}: bad reply: {e}"))?;
    reply
        .answers
        .iter()
        .find_map(|rr| match &rr.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .ok_or_else(|| format!("{name}: no A record in the reply"))
}

fn expect(got: Ipv4Addr, want: Ipv4Addr, name: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{name} resolved to {got}, expected {want}"))
    }
}

fn connect(addr: Ipv4Addr, port: u16) -> Result<(), String> {
    let to = SocketAddr::from((addr, port));
    TcpStream::connect_timeout(&to, TIMEOUT)
        .map(drop)
        .map_err(|e| format!("connecting to {to}: {e}"))
}
