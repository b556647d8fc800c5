#!/usr/bin/env python3
"""Opens and holds idle SMTP connections, for perf/memory.sh. Standard library only.

  idle_conns.py HOST:PORT

Reads commands on stdin, one per line, and answers each with one line on stdout:
  plain N   open N connections: banner, EHLO, then idle
  tls N     open N connections: banner, EHLO, STARTTLS, TLS handshake, EHLO again, then idle
  check     how many of the held connections are still open (peer has not closed them)
  close     close everything
  quit      close everything and exit
Answers: "ok plain=P tls=T failed=F secs=S [first error]" (totals held so far).

Everything is non-blocking on one selector; at most BATCH connections are being set up at
a time, so the server's listen backlog never overflows.
"""
import selectors
import socket
import ssl
import sys
import time

BATCH = 400
TIMEOUT = 60.0


class Conn:
    __slots__ = ("sock", "tls", "state", "buf", "raw", "deadline")

    def __init__(self, sock, tls):
        self.sock = sock
        self.tls = tls
        self.state = "connect"
        self.buf = b""
        self.raw = sock
        self.deadline = time.monotonic() + TIMEOUT


def final_reply(buf):
    """The code of the last complete reply in buf if it ends a multi-line reply, else None."""
    if not buf.endswith(b"\r\n"):
        return None
    last = buf[:-2].split(b"\r\n")[-1]
    if len(last) >= 4 and last[3:4] == b" ":
        return last[:3]
    if len(last) == 3:
        return last
    return None


class Holder:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.sel = selectors.DefaultSelector()
        self.held = {"plain": [], "tls": []}
        self.failed = 0
        self.first_error = ""
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def fail(self, c, why):
        self.failed += 1
        if not self.first_error:
            self.first_error = why
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def start(self, tls):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(self.addr)
        c = Conn(s, tls)
        self.sel.register(s, selectors.EVENT_WRITE, c)
        return c

    def send(self, c, data):
        # Small commands on a fresh socket: the send buffer always has room.
        c.sock.send(data)

    def step(self, c, events):
        """Advance one connection; returns True when it is idle and done."""
        if c.state == "connect":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect")
            c.state = "banner"
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
            return False
        if c.state == "handshake":
            try:
                c.sock.do_handshake()
            except ssl.SSLWantReadError:
                self.sel.modify(c.sock, selectors.EVENT_READ, c)
                return False
            except ssl.SSLWantWriteError:
                self.sel.modify(c.sock, selectors.EVENT_WRITE, c)
                return False
            c.state = "ehlo2"
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
            self.send(c, b"EHLO idle.test\r\n")
            return False
        try:
            data = c.sock.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        if not data:
            raise OSError("closed by server in state " + c.state)
        c.buf += data
        code = final_reply(c.buf)
        if code is None:
            return False
        reply = c.buf
        c.buf = b""
        if c.state == "banner":
            if code != b"220":
                raise OSError("banner: " + reply.decode(errors="replace").strip())
            c.state = "ehlo"
            self.send(c, b"EHLO idle.test\r\n")
        elif c.state == "ehlo":
            if code != b"250":
                raise OSError("EHLO: " + reply.decode(errors="replace").strip())
            if not c.tls:
                return True
            c.state = "starttls"
            self.send(c, b"STARTTLS\r\n")
        elif c.state == "starttls":
            if code != b"220":
                raise OSError("STARTTLS: " + reply.decode(errors="replace").strip())
            self.sel.unregister(c.sock)
            c.sock = self.ctx.wrap_socket(c.raw, server_hostname=None,
                                          do_handshake_on_connect=False)
            c.state = "handshake"
            self.sel.register(c.sock, selectors.EVENT_WRITE, c)
        elif c.state == "ehlo2":
            if code != b"250":
                raise OSError("EHLO after TLS: " + reply.decode(errors="replace").strip())
            return True
        return False

    def open(self, n, tls):
        t0 = time.monotonic()
        todo, active = n, 0
        while todo or active:
            while todo and active < BATCH:
                try:
                    self.start(tls)
                    active += 1
                except OSError as e:
                    self.failed += 1
                    self.first_error = self.first_error or f"socket: {e}"
                todo -= 1
            for key, ev in self.sel.select(timeout=1.0):
                c = key.data
                try:
                    if self.step(c, ev):
                        self.sel.unregister(c.sock)
                        self.held["tls" if c.tls else "plain"].append(c.sock)
                        active -= 1
                except (OSError, ssl.SSLError) as e:
                    self.fail(c, f"{type(e).__name__}: {e}")
                    active -= 1
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                c = key.data
                if now > c.deadline:
                    self.fail(c, "timeout in state " + c.state)
                    active -= 1
        return time.monotonic() - t0

    def check(self):
        """Closes and drops held connections the server has closed (readable = EOF or data)."""
        sel = selectors.DefaultSelector()
        for kind in self.held:
            for s in self.held[kind]:
                sel.register(s, selectors.EVENT_READ, kind)
        dead = set()
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                if s.recv(4096) or True:  # EOF, or a reply such as 421: the session is over
                    dead.add(s)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass  # only TLS records without application data (e.g. a session ticket)
            except OSError:
                dead.add(s)
        sel.close()
        for kind in self.held:
            keep = []
            for s in self.held[kind]:
                if s in dead:
                    s.close()
                else:
                    keep.append(s)
            self.held[kind] = keep
        return len(dead)

    def close(self):
        for kind in self.held:
            for s in self.held[kind]:
                s.close()
            self.held[kind] = []

    def status(self, extra=""):
        return (f"ok plain={len(self.held['plain'])} tls={len(self.held['tls'])} "
                f"failed={self.failed}{extra}" + (f" first_error={self.first_error!r}"
                                                  if self.first_error else ""))


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    h = Holder(host, int(port))
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        cmd = parts[0]
        if cmd in ("plain", "tls"):
            secs = h.open(int(parts[1]), cmd == "tls")
            print(h.status(f" secs={secs:.1f}"), flush=True)
        elif cmd == "check":
            dead = h.check()
            print(h.status(f" closed_by_server={dead}"), flush=True)
        elif cmd == "close":
            h.close()
            print(h.status(), flush=True)
        elif cmd == "quit":
            h.close()
            print("bye", flush=True)
            return
        else:
            print(f"error unknown command {cmd}", flush=True)


if __name__ == "__main__":
    main()
