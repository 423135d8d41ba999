//! Sockets to a syslog receiver: the local daemon's unix socket (datagram, or stream as a
//! fallback), UDP, TCP with RFC 6587 octet counting, TLS with the same framing (RFC 5425),
//! and RELP sessions over TCP or TLS (see [`super::relp`]).

use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use tokio_rustls::client::TlsStream;

use super::relp::{self, Session};
use super::tls::TlsClient;

/// Where one syslog output sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Unix(PathBuf),
    Udp {
        host: String,
        port: u16,
    },
    Tcp {
        host: String,
        port: u16,
    },
    /// RFC 5425: octet-counted frames over TLS.
    Tls {
        host: String,
        port: u16,
        tls: TlsClient,
    },
    /// RELP, over TLS when `tls` is set.
    Relp {
        host: String,
        port: u16,
        tls: Option<TlsClient>,
    },
}

impl Target {
    /// Opens a connection. Host names are resolved on every attempt, so a receiver that
    /// moves is followed.
    pub async fn connect(&self, timeout: Duration) -> io::Result<Connection> {
        match self {
            Target::Unix(path) => {
                let dgram = UnixDatagram::unbound()?;
                match dgram.connect(path) {
                    Ok(()) => Ok(Connection::UnixDgram(dgram)),
                    // The socket is a stream socket (syslog-ng's unix-stream, for one).
                    Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                        Ok(Connection::UnixStream(UnixStream::connect(path).await?))
                    }
                    Err(e) => Err(e),
                }
            }
            Target::Udp { host, port } => {
                let mut last = None;
                for addr in tokio::net::lookup_host((host.as_str(), *port)).await? {
                    let bind = if addr.is_ipv4() {
                        "0.0.0.0:0"
                    } else {
                        "[::]:0"
                    };
                    let sock = UdpSocket::bind(bind).await?;
                    match sock.connect(addr).await {
                        Ok(()) => return Ok(Connection::Udp(sock)),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| no_address(host)))
            }
            Target::Tcp { host, port } => {
                Ok(Connection::Tcp(connect_tcp(host, *port, timeout).await?))
            }
            Target::Tls { host, port, tls } => {
                let tcp = connect_tcp(host, *port, timeout).await?;
                let stream =
                    with_timeout(timeout, host, *port, tls.handshake(tcp, host, *port)).await?;
                Ok(Connection::Tls(Box::new(stream)))
            }
            Target::Relp { host, port, tls } => {
                let tcp = connect_tcp(host, *port, timeout).await?;
                let stream: Box<dyn relp::Stream> = match tls {
                    Some(tls) => Box::new(
                        with_timeout(timeout, host, *port, tls.handshake(tcp, host, *port)).await?,
                    ),
                    None => Box::new(tcp),
                };
                let session = Session::open(stream, timeout, relp::ANSWER_TIMEOUT)
                    .await
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("opening a RELP session with {host}:{port}: {e}"),
                        )
                    })?;
                Ok(Connection::Relp(Box::new(session)))
            }
        }
    }
}

async fn with_timeout<T>(
    timeout: Duration,
    host: &str,
    port: u16,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the TLS handshake with {host}:{port} took longer than {timeout:?}"),
        )),
    }
}

/// A TCP connection to the first address of `host` that answers.
async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} took longer than {timeout:?}"),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| no_address(host)))
}

fn no_address(host: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("`{host}` resolves to no address"),
    )
}

pub(crate) enum Connection {
    UnixDgram(UnixDatagram),
    /// NUL-terminated messages, as glibc's syslog(3) writes to a stream socket.
    UnixStream(UnixStream),
    Udp(UdpSocket),
    /// RFC 6587 octet counting: `LEN SP MSG`.
    Tcp(TcpStream),
    /// RFC 5425: the same framing over TLS.
    Tls(Box<TlsStream<TcpStream>>),
    /// A RELP session: a message is sent once the collector acknowledged it.
    Relp(Box<Session>),
}

/// Largest datagram the outputs send (UDP's limit is 65,507 bytes of payload over IPv4).
pub(crate) const MAX_DATAGRAM: usize = 65_000;

/// How far `send_batch` got.
#[derive(Default)]
pub(crate) struct Sent {
    /// Messages done with, from the start of the batch: handed to the kernel whole, or
    /// refused as too large.
    pub count: usize,
    /// Of those, datagrams the socket refused as too large (EMSGSIZE: a local socket with a
    /// small buffer). Retrying cannot help; they are dropped and counted.
    pub too_big: usize,
    /// Why it stopped early.
    pub error: Option<io::Error>,
}

impl Connection {
    /// For stream sockets: whether the receiver has closed or reset the connection. Checked
    /// before each batch so messages are not written into a connection that is already
    /// dead (the kernel would accept them and they would be lost).
    pub fn peer_closed(&mut self) -> bool {
        let fd = match self {
            Connection::Tcp(s) => s.as_raw_fd(),
            // The socket carries TLS records (session tickets, the close_notify alert), so
            // the check reads through rustls: a close_notify or the end of the stream is a
            // close; a ticket is not data and leaves the connection open.
            Connection::Tls(s) => return tls_peer_closed(s),
            Connection::UnixStream(s) => s.as_raw_fd(),
            // Between batches nothing is outstanding, so anything the server says (only
            // `serverclose` is allowed then) or an end of stream ends the session.
            Connection::Relp(s) => return s.has_unsolicited(),
            Connection::UnixDgram(_) | Connection::Udp(_) => return false,
        };
        let mut byte = [0u8; 1];
        loop {
            // SAFETY: recv into a local one-byte buffer on a descriptor this connection
            // owns; MSG_PEEK leaves any data in place, MSG_DONTWAIT never blocks.
            let n = unsafe {
                libc::recv(
                    fd,
                    byte.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                return true; // orderly shutdown by the receiver
            }
            if n > 0 {
                // Receivers do not talk back; there is data but the connection is alive.
                return false;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return false,
                io::ErrorKind::Interrupted => continue,
                _ => return true,
            }
        }
    }

    /// Sends `msgs` in order and reports how many went out whole. A stream message cut by
    /// an error counts as not sent (it is sent again after reconnecting).
    pub async fn send_batch(&mut self, msgs: &[Vec<u8>], scratch: &mut Vec<u8>) -> Sent {
        match self {
            Connection::UnixDgram(s) => send_datagrams(msgs, |m| s.send(m)).await,
            Connection::Udp(s) => send_datagrams(msgs, |m| s.send(m)).await,
            Connection::Tcp(s) => {
                let ends = octet_counted(msgs, scratch);
                write_counted(s, scratch, &ends).await
            }
            Connection::Tls(s) => {
                let ends = octet_counted(msgs, scratch);
                let mut sent = write_counted(s.as_mut(), scratch, &ends).await;
                // rustls buffers: only what is flushed to the socket has left.
                if sent.error.is_none()
                    && let Err(e) = s.flush().await
                {
                    sent.count = 0;
                    sent.error = Some(e);
                }
                sent
            }
            Connection::Relp(s) => s.send_batch(msgs, scratch).await,
            Connection::UnixStream(s) => {
                scratch.clear();
                let mut ends = Vec::with_capacity(msgs.len());
                for m in msgs {
                    scratch.extend_from_slice(m);
                    scratch.push(0);
                    ends.push(scratch.len());
                }
                write_counted(s, scratch, &ends).await
            }
        }
    }
}

/// Reads what the collector sent on a TLS output, without waiting: true when it closed
/// (close_notify, end of stream, an error). Collectors send no data on this transport;
/// anything that arrives is dropped.
fn tls_peer_closed(s: &mut TlsStream<TcpStream>) -> bool {
    use tokio::io::AsyncRead;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 512];
    loop {
        let mut buf = tokio::io::ReadBuf::new(&mut byte);
        match std::pin::Pin::new(&mut *s).poll_read(&mut cx, &mut buf) {
            std::task::Poll::Pending => return false,
            std::task::Poll::Ready(Ok(())) if buf.filled().is_empty() => return true,
            std::task::Poll::Ready(Ok(())) => continue,
            std::task::Poll::Ready(Err(_)) => return true,
        }
    }
}

/// RFC 6587 octet counting of `msgs` into `scratch`; the end of each frame.
fn octet_counted(msgs: &[Vec<u8>], scratch: &mut Vec<u8>) -> Vec<usize> {
    scratch.clear();
    let mut ends = Vec::with_capacity(msgs.len());
    for m in msgs {
        scratch.extend_from_slice(m.len().to_string().as_bytes());
        scratch.push(b' ');
        scratch.extend_from_slice(m);
        ends.push(scratch.len());
    }
    ends
}

impl Connection {
    /// Ends a RELP session politely (`close`); other connections are just dropped.
    pub async fn close(&mut self) {
        if let Connection::Relp(s) = self {
            let _ = s.close().await;
        }
    }
}

/// Writes `buf` and counts the messages (ending at `ends`) written completely.
async fn write_counted<W: AsyncWriteExt + Unpin>(w: &mut W, buf: &[u8], ends: &[usize]) -> Sent {
    let mut written = 0;
    let mut error = None;
    while written < buf.len() {
        match w.write(&buf[written..]).await {
            Ok(0) => {
                error = Some(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the receiver stopped accepting data",
                ));
                break;
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Sent {
        count: ends.iter().take_while(|&&end| end <= written).count(),
        too_big: 0,
        error,
    }
}

/// Sends each message as one datagram, in order, until an error. A datagram the kernel
/// refuses as too large (EMSGSIZE) cannot succeed on a retry: it counts as handled and as
/// `too_big`, so one oversized record never blocks the ones behind it.
async fn send_datagrams<'a, F, Fut>(msgs: &'a [Vec<u8>], mut send: F) -> Sent
where
    F: FnMut(&'a [u8]) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<usize>>,
{
    let mut sent = Sent::default();
    for m in msgs {
        match send(m).await {
            Ok(_) => sent.count += 1,
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                sent.count += 1;
                sent.too_big += 1;
            }
            Err(e) => {
                sent.error = Some(e);
                break;
            }
        }
    }
    sent
}
