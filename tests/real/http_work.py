"""Loopback HTTP workloads for tests/real/test_http_real.py (run by a uniquely named copy of Python).

    server PORTFILE [--tls CERT KEY]   Python's http.server (HTTP/1.1, keep-alive) on 127.0.0.1:
                                       /hello answers 200, anything else 404 (both with a body, so the
                                       connection stays open); writes its port to PORTFILE and serves
                                       until killed
    server PORTFILE --fork             the same, each connection answered by a forked child
    client PORT N_OK N_MISSING         http.client over one keep-alive connection: N_OK GET /hello,
                                       then N_MISSING GET /missing/<n>?token=secret
    pipeline PORT N                    N GET /pipe requests in one write (the last says Connection:
                                       close), then reads until the server closes
    split PORT                         one GET /split request written in three pieces
    binary PORT                        a binary message (not HTTP) to the same port
    tls PORT                           a TLS connection (certificate not checked) sending one GET
Each prints "done" at the end.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import socketserver
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Python's default (HTTP/1.0) closes after each response
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK between them

    def log_message(self, *args):
        pass

    def do_GET(self):
        ok = self.path in ("/hello", "/pipe", "/split")
        body = b"hello\n" if ok else b"not here\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ForkingServer(socketserver.ForkingMixIn, http.server.HTTPServer):
    pass


def server(portfile: str, tls: tuple[str, str] | None = None, fork: bool = False) -> None:
    srv = (ForkingServer if fork else http.server.HTTPServer)(("127.0.0.1", 0), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os

    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()


def client(port: int, n_ok: int, n_missing: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    got = {200: 0, 404: 0}
    for i in range(n_ok + n_missing):
        c.request("GET", "/hello" if i < n_ok else f"/missing/{i}?token=secret")
        r = c.getresponse()
        r.read()
        got[r.status] = got.get(r.status, 0) + 1
    c.close()
    assert got == {200: n_ok, 404: n_missing}, got


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


def pipeline(port: int, n: int) -> None:
    req = b"GET /pipe HTTP/1.1\r\nHost: a\r\n\r\n"
    last = b"GET /pipe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(req * (n - 1) + last)
        got = _read_all(s)
    assert got.count(b"HTTP/1.1 200 ") == n, got


def split(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (b"GET /spl", b"it HTTP/1.1\r\nHost: a\r\n", b"Connection: close\r\n\r\n"):
            s.sendall(piece)
            time.sleep(0.05)
        got = _read_all(s)
    assert got.startswith(b"HTTP/1.1 200 "), got


def binary(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\x00\x00\x00\x18\x01\x02BINARY-PROTO\xff\xfe\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        _read_all(s)


def tls(port: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    c.request("GET", "/hello")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"hello\n"
    c.close()


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd == "server":
        server(argv[1], (argv[3], argv[4]) if len(argv) > 2 and argv[2] == "--tls" else None, "--fork" in argv)
    elif cmd == "client":
        client(int(argv[1]), int(argv[2]), int(argv[3]))
    elif cmd == "pipeline":
        pipeline(int(argv[1]), int(argv[2]))
    elif cmd == "split":
        split(int(argv[1]))
    elif cmd == "binary":
        binary(int(argv[1]))
    elif cmd == "tls":
        tls(int(argv[1]))
    else:
        raise SystemExit(f"unknown command {cmd}")
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
