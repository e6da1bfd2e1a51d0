"""sidebyside.py: the same RESP conversation with redis-server and with
actorconn-broker, replies compared.

A test script imports it:

    from sidebyside import Pair, Conn
    with Pair(broker_args=["--requirepass", "pw"],
              redis_args=["--requirepass", "pw"]) as p:
        a, b = p.conns()                  # one connection to each server
        p.same(a, b, ["AUTH", "pw"])      # sends, reads one reply from
                                          # each, asserts they are equal
        p.same_raw(a, b, b"PING\\r\\n")   # raw bytes (inline commands)

Replies are parsed (RESP2 and RESP3) into Python values: bytes for
strings, int, None, lists, ("push", [...]) for pushes, ("map", [k, v,
...]) for maps, ("set", [...]), ("err", b"message") for errors, so that
a mismatch prints readably. Equal values mean byte-for-byte equal
replies, except where a caller passes a `norm` function (a reply that
names a port, say).

Environment: BROKER_BIN (default ./actorconn-broker), REDIS_SERVER
(default redis-server on PATH). A script exits 77 (skipped) when
redis-server is missing.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# Under make check-valgrind (AC_VALGRIND set) the broker runs under
# valgrind, some 20 times slower: every wait is longer.
SLOW = 6 if os.environ.get("AC_VALGRIND", "").strip() else 1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ProtocolError(Exception):
    pass


class Conn:
    """A blocking RESP connection with a reply parser."""

    # A read waits this long for a reply: ample for a sanitizer build (a
    # wait ends as soon as the reply comes).
    def __init__(self, port, timeout=15.0 * SLOW):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, *cmds):
        """Each cmd a list of str/bytes arguments, sent as multibulk."""
        out = []
        for cmd in cmds:
            out.append(b"*%d\r\n" % len(cmd))
            for a in cmd:
                if isinstance(a, str):
                    a = a.encode()
                elif isinstance(a, int):
                    a = str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        """One reply, parsed."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return ("err", rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t in (b"*", b">", b"~", b"%"):
            n = int(rest)
            if n < 0:
                return None
            if t == b"%":
                n *= 2
            items = [self.read() for _ in range(n)]
            if t == b"*":
                return items
            return ({b">": "push", b"~": "set", b"%": "map"}[t], items)
        if t == b"_":
            return None
        if t == b"#":
            return ("bool", rest == b"t")
        if t == b",":
            return ("double", rest)
        if t == b"(":
            return ("big", rest)
        if t in (b"!", b"="):
            return ("verbatim" if t == b"=" else "err",
                    self._exact(int(rest)))
        raise ProtocolError("unexpected reply type %r in %r" % (t, line))

    def closed(self, wait=2.0):
        """True if the peer closes within wait seconds (reading on)."""
        self.sock.settimeout(wait)
        try:
            while True:
                if not self.sock.recv(1 << 16):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


def _wait_port(port, proc, what):
    for _ in range(400 * SLOW):
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.025)
    raise RuntimeError("%s did not listen on %d" % (what, port))


class Pair:
    """redis-server and actorconn-broker, started side by side."""

    def __init__(self, broker_args=(), redis_args=(), redis=True):
        self.broker_args = list(broker_args)
        self.redis_args = list(redis_args)
        self.want_redis = redis
        self.procs = []
        self.conns_made = []

    def __enter__(self):
        bin_ = os.environ.get("BROKER_BIN", "./actorconn-broker")
        self.bport = free_port()
        wrap = os.environ.get("AC_VALGRIND", "").split()
        # A file, not a pipe: a broker that logs much never blocks.
        self.errlog = tempfile.TemporaryFile()
        self.broker = subprocess.Popen(
            # Two loops, not the default (one on two CPUs): clients
            # land on both, so messages cross loops, as in production.
            wrap + [bin_, "--listen", "127.0.0.1:%d" % self.bport,
                    "--threads", "2"] + self.broker_args,
            stdout=subprocess.DEVNULL, stderr=self.errlog)
        self.procs.append(self.broker)
        _wait_port(self.bport, self.broker, "actorconn-broker")
        if self.want_redis:
            rs = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
            self.rport = free_port()
            self.redis = subprocess.Popen(
                [rs, "--port", str(self.rport), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no"]
                + self.redis_args,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(self.redis)
            _wait_port(self.rport, self.redis, "redis-server")
        return self

    def __exit__(self, exc_type, *exc):
        for c in self.conns_made:
            try:
                c.close()
            except OSError:
                pass
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # SIGTERM ends the broker with status 0; anything else (under
        # valgrind: an error it found) fails the test, unless the test
        # failed already.
        if exc_type is None and self.broker.returncode != 0:
            self.errlog.seek(0)
            err = self.errlog.read().decode(errors="replace")
            raise AssertionError("actorconn-broker exited with %d:\n%s"
                                 % (self.broker.returncode, err[-4000:]))
        return False

    def conns(self):
        """A new connection to redis-server and one to the broker."""
        a, b = Conn(self.rport), Conn(self.bport)
        self.conns_made += [a, b]
        return a, b

    def broker_conn(self):
        c = Conn(self.bport)
        self.conns_made.append(c)
        return c

    def same(self, a, b, *cmds, n=None, norm=None):
        """Sends cmds to both, reads n replies (one per command by
        default) from each, and asserts they are equal; returns them."""
        a.send(*cmds)
        b.send(*cmds)
        return self.compare(a, b, len(cmds) if n is None else n, norm,
                            cmds)

    def same_raw(self, a, b, data, n=1, norm=None):
        a.send_raw(data)
        b.send_raw(data)
        return self.compare(a, b, n, norm, data)

    def compare(self, a, b, n, norm=None, what=None):
        ra = [a.read() for _ in range(n)]
        rb = [b.read() for _ in range(n)]
        if norm:
            ra, rb = norm(ra), norm(rb)
        if ra != rb:
            raise AssertionError("replies differ for %r:\n  redis:  %r\n"
                                 "  broker: %r" % (what, ra, rb))
        return ra


def main(tests):
    """Runs each test function (a Pair-using callable) and reports; exits
    77 when redis-server is missing, 1 on a failure."""
    if not (os.environ.get("REDIS_SERVER") or shutil.which("redis-server")):
        print("SKIP: redis-server not installed")
        sys.exit(77)
    failed = 0
    for t in tests:
        try:
            t()
            print("PASS: %s" % t.__name__)
        except Exception as e:  # report every test, then fail
            failed += 1
            print("FAIL: %s: %s" % (t.__name__, e))
    sys.exit(1 if failed else 0)
