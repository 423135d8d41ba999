# Listeners for the end-to-end tests, run inside the test host's network namespace.
#
# Usage: listeners.py SPEC...   with SPEC one of
#   http:PORT                  HTTP (http.server), any path answers 200
#   https:PORT:CERT:KEY        the same over TLS (handshake in the connection's thread, so a
#                              client that connects and never speaks blocks nobody)
#   tcp:PORT                   accepts, reads until the client closes or 5 s pass, closes
#   dns:PORT                   UDP DNS responder: A queries get 203.0.113.7, others NOERROR
#                              with no answer
# Every socket binds to the IPv6 wildcard with IPV6_V6ONLY off, so one listener serves every
# IPv4 and IPv6 address of the namespace. Prints "ready" once every socket is bound.

import http.server
import socket
import ssl
import struct
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    # Idle clients (a bare TCP connect) are dropped after this many seconds.
    timeout = 5
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, fmt, *args):
        pass


class DualStackHTTPServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    tls = None

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def finish_request(self, request, client_address):
        request.settimeout(5)
        if self.tls is not None:
            request = self.tls.wrap_socket(request, server_side=True)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        # Clients that connect and leave (nc -z, a bare connect, a refused TLS handshake)
        # are expected; nothing to report.
        pass


def serve_http(port, tls=None):
    srv = DualStackHTTPServer(("::", port), Handler)
    srv.tls = tls
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def serve_tcp(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(128)

    def drain(conn):
        conn.settimeout(5)
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        conn.close()

    def loop():
        while True:
            conn, _ = s.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def dns_answer(query):
    if len(query) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount < 1:
        return None
    # Walk the first question's name to find its end.
    i = 12
    while i < len(query) and query[i] != 0:
        i += 1 + query[i]
    end = i + 5
    if end > len(query):
        return None
    qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
    question = query[12:end]
    rd = flags & 0x0100
    answers = b""
    ancount = 0
    if qtype == 1:
        # Name pointer to the question, type A, class IN, TTL 60, 203.0.113.7.
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + bytes([203, 0, 113, 7])
        ancount = 1
    header = struct.pack("!HHHHHH", ident, 0x8080 | rd, 1, ancount, 0, 0)
    return header + question + answers


def serve_dns(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))

    def loop():
        while True:
            data, peer = s.recvfrom(4096)
            reply = dns_answer(data)
            if reply is not None:
                try:
                    s.sendto(reply, peer)
                except OSError:
                    pass

    threading.Thread(target=loop, daemon=True).start()


def main(specs):
    for spec in specs:
        kind, _, rest = spec.partition(":")
        if kind == "http":
            serve_http(int(rest))
        elif kind == "https":
            port, cert, key = rest.split(":", 2)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            serve_http(int(port), ctx)
        elif kind == "tcp":
            serve_tcp(int(rest))
        elif kind == "dns":
            serve_dns(int(rest))
        else:
            sys.exit("unknown listener spec: " + spec)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
