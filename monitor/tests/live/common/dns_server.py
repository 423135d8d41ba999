# A DNS server for the live DNS tests (monitor/tests/live_dns.rs), UDP and TCP.
#
#   dns_server.py zone ZONE.json ADDR... : answers from the zone on port 53 of each ADDR
#   dns_server.py forward UPSTREAM ADDR  : a stub: relays UDP queries to UPSTREAM:53
#
# ZONE.json: {"name": {"A": ["a.b.c.d"], "AAAA": ["x::y"], "CNAME": "target"},
#             "name2": {"malformed": "truncated" | "loop" | "biglabel"}}
# Names are compared lowercase. A CNAME's target is answered from the zone in the same
# message. Unknown names get NXDOMAIN. Prints "ready" once every socket is bound.

import json
import socket
import struct
import sys
import threading


def wire(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def question(query):
    i = 12
    labels = []
    while query[i] != 0:
        n = query[i]
        labels.append(query[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
    return ".".join(labels).lower(), qtype, query[12:i + 5]


def rr(name, rtype, rdata, ttl=60):
    return wire(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def answer(zone, query):
    ident, flags = struct.unpack("!HH", query[:4])
    name, qtype, qraw = question(query)
    entry = zone.get(name)
    if entry is None:
        return struct.pack("!HHHHHH", ident, 0x8183 | (flags & 0x0100), 1, 0, 0, 0) + qraw
    bad = entry.get("malformed")
    if bad:
        # An A answer for the name, then broken so that no parser can use it.
        good = rr(name, 1, bytes([203, 0, 113, 99]))
        header = struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0)
        if bad == "truncated":
            return header + qraw + good[: len(good) - 3]
        if bad == "loop":
            # The answer's owner name is a compression pointer to itself.
            at = 12 + len(qraw)
            return header + qraw + struct.pack("!H", 0xC000 | at) + good[len(wire(name)):]
        if bad == "biglabel":
            # A 100-byte label: the length byte's top bits (01) are reserved.
            return header + qraw + bytes([100]) + b"a" * 100 + b"\0" + good[len(wire(name)):]
    rrs = []
    target = name
    if "CNAME" in entry:
        target = entry["CNAME"].lower()
        rrs.append(rr(name, 5, wire(target)))
    final = zone.get(target, entry)
    if qtype == 1:
        for ip in final.get("A", []):
            rrs.append(rr(target, 1, socket.inet_pton(socket.AF_INET, ip)))
    if qtype == 28:
        for ip in final.get("AAAA", []):
            rrs.append(rr(target, 28, socket.inet_pton(socket.AF_INET6, ip)))
    header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100), 1, len(rrs), 0, 0)
    return header + qraw + b"".join(rrs)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve_udp(sock, respond):
    while True:
        query, peer = sock.recvfrom(4096)
        try:
            reply = respond(query)
        except Exception as e:  # a malformed query: no answer
            print(f"udp: {e}", file=sys.stderr)
            continue
        if reply:
            sock.sendto(reply, peer)


def serve_tcp(sock, respond):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=tcp_conn, args=(conn, respond), daemon=True).start()


def tcp_conn(conn, respond):
    try:
        while True:
            head = conn.recv(2)
            if len(head) < 2:
                break
            n = struct.unpack("!H", head)[0]
            query = b""
            while len(query) < n:
                more = conn.recv(n - len(query))
                if not more:
                    return
                query += more
            reply = respond(query)
            conn.sendall(struct.pack("!H", len(reply)) + reply)
    except Exception as e:
        print(f"tcp: {e}", file=sys.stderr)
    finally:
        conn.close()


def bind(addr, kind):
    s = socket.socket(family(addr), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 53))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    return s


def forwarder(upstream):
    def respond(query):
        s = socket.socket(family(upstream), socket.SOCK_DGRAM)
        s.settimeout(3)
        try:
            s.sendto(query, (upstream, 53))
            return s.recv(4096)
        finally:
            s.close()

    return respond


def main():
    mode = sys.argv[1]
    if mode == "zone":
        with open(sys.argv[2]) as f:
            zone = {k.lower(): v for k, v in json.load(f).items()}
        addrs = sys.argv[3:]
        respond = lambda q: answer(zone, q)
    else:
        respond = forwarder(sys.argv[2])
        addrs = sys.argv[3:]
    threads = []
    for addr in addrs:
        u = bind(addr, socket.SOCK_DGRAM)
        t = bind(addr, socket.SOCK_STREAM)
        threads.append(threading.Thread(target=serve_udp, args=(u, respond), daemon=True))
        threads.append(threading.Thread(target=serve_tcp, args=(t, respond), daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


main()
