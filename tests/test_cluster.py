#!/usr/bin/python3
"""test_cluster.py: actorconn-broker --cluster, several broker processes
sharing one channel space through Redis, with the real redis-cli as
subscriber and publisher.

- two and three brokers over one redis-server: every message published
  on one node reaches the subscribers of every node once, in the order it
  was published; PUBLISH's reply counts the publishing node's receivers;
  PUBSUB NUMSUB stays local; one Redis subscription per channel per node;
- a PSUBSCRIBE on one node gets a PUBLISH made on another once, and a
  channel subscriber beside it its own copy once;
- redis-server killed (SIGKILL) and restarted on its port mid-stream:
  local delivery goes on while it is down (the cross-node publishes are
  dropped and counted), cross-node delivery resumes once it is back,
  nothing comes twice;
- a node unsubscribes in Redis when its last local subscriber leaves
  (PUBSUB CHANNELS, NUMSUB and NUMPAT asked of redis-server), with
  --cluster-prefix, and a message published into Redis by another
  program reaches the node's subscribers as it was sent;
- a password in the url (escaped) reaches Redis, seeds given in two
  options, and the broker never prints it;
- a 3-master Redis Cluster (redis-cli --cluster create) and two brokers
  given one seed: many channels, each delivered once and in order, their
  shard subscriptions spread over more than one master (PUBSUB
  SHARDCHANNELS on each).

Everything is on loopback; every wait is bounded. Environment:
BROKER_BIN (default ./actorconn-broker), REDIS_SERVER and REDIS_CLI
(default: on PATH), AC_VALGRIND (the brokers run under it). Exits 77
(skipped) when redis-server or redis-cli is missing, or when
libactorconn was built without hiredis.
"""

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sidebyside import SLOW, Conn, free_port  # noqa: E402

BROKER = os.environ.get("BROKER_BIN", "./actorconn-broker")
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI") or shutil.which("redis-cli")
WRAP = os.environ.get("AC_VALGRIND", "").split()

# A wait ends as soon as its condition holds; these are only bounds.
WAIT = 20.0 * SLOW


def wait_for(pred, what, timeout=WAIT):
    """Polls pred until it returns a true value, which it returns;
    fails after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def wait_port(port, proc, what):
    def up():
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    wait_for(up, "%s on port %d" % (what, port))


def command(port, *args):
    """One command to the server on port over a fresh connection; its
    reply, parsed (sidebyside.Conn)."""
    c = Conn(port, timeout=5.0 * SLOW)
    try:
        c.send(list(args))
        return c.read()
    finally:
        c.close()


def command_auth(port, password, *args):
    """command, after AUTH password on the same connection."""
    c = Conn(port, timeout=5.0 * SLOW)
    try:
        c.send(["AUTH", password], list(args))
        assert c.read() == b"OK"
        return c.read()
    finally:
        c.close()


def try_command(port, *args):
    """command, or None while the server cannot be reached."""
    try:
        return command(port, *args)
    except (OSError, EOFError):
        return None


class Procs:
    """The processes of one test, ended when it ends."""

    def __init__(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="test_cluster.")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        for p in reversed(self.procs):
            p.end()
        shutil.rmtree(self.tmp, ignore_errors=True)
        # A broker that ended badly (under valgrind: an error it found)
        # fails the test, unless it failed already.
        if exc_type is None:
            for p in self.procs:
                p.check()
        return False

    def add(self, p):
        self.procs.append(p)
        return p


class Redis:
    """A redis-server of the test's own, on a free port, keeping nothing
    on disk; cluster=True makes it a Redis Cluster node."""

    def __init__(self, procs, cluster=False, extra=()):
        self.extra = list(extra)
        self.port = free_port()
        self.dir = os.path.join(procs.tmp, "redis-%d" % self.port)
        os.mkdir(self.dir)
        self.cluster = cluster
        self.bus_port = free_port() if cluster else 0
        self.proc = None
        self.start()
        procs.add(self)

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no"] + self.extra
        if self.cluster:
            # The bus port on a free port too: the default, port +
            # 10000, may be taken or past 65535.
            args += ["--cluster-enabled", "yes", "--cluster-config-file",
                     "nodes.conf", "--cluster-node-timeout", "5000",
                     "--cluster-port", str(self.bus_port)]
        self.proc = subprocess.Popen(args, cwd=self.dir,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "redis-server")

    def kill(self):
        """SIGKILL: no goodbye to its clients."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cmd(self, *args):
        if "--requirepass" in self.extra:
            pw = self.extra[self.extra.index("--requirepass") + 1]
            return command_auth(self.port, pw, *args)
        return command(self.port, *args)

    def numsub(self, channel):
        return self.cmd("PUBSUB", "NUMSUB", channel)[1]

    def end(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def check(self):
        pass


class Broker:
    """actorconn-broker --threads 2 --cluster URL on a free port."""

    def __init__(self, procs, url, *extra):
        self.port = free_port()
        # Files: a broker never blocks on them.
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            WRAP + [BROKER, "--listen", "127.0.0.1:%d" % self.port,
                    "--threads", "2", "--cluster", url] + list(extra),
            stdout=self.out, stderr=self.err)
        procs.add(self)
        wait_port(self.port, self.proc, "actorconn-broker")

    def stdout(self):
        self.out.seek(0)
        return self.out.read().decode(errors="replace")

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def info(self):
        """INFO bridge, as a dict of str to str."""
        text = command(self.port, "INFO", "bridge")
        return dict(line.split(":", 1)
                    for line in text.decode().split("\r\n")[1:] if line)

    def figure(self, name):
        return int(self.info()["bridge_" + name])

    def wait_links(self, mode, nodes=1):
        """Until the bridge knows its mode and has both its links up to
        each of its nodes (one that publishes, one subscribed)."""
        def ready():
            i = self.info()
            return (i["bridge_mode"] == mode and
                    int(i["bridge_nodes"]) == nodes and
                    int(i["bridge_links_up"]) == 2 * nodes)
        wait_for(ready, "the bridge of the broker on %d: %s, %d links up"
                 % (self.port, mode, nodes))

    def end(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def check(self):
        # SIGTERM ends the broker with status 0.
        if self.proc.returncode != 0:
            raise AssertionError("actorconn-broker exited with %d:\n%s"
                                 % (self.proc.returncode,
                                    self.stderr()[-4000:]))


class CliSub:
    """redis-cli SUBSCRIBE (or PSUBSCRIBE) names: a real subscriber,
    read line by line (redis-cli prints each element of a push on a
    line of its own when its output is not a terminal)."""

    def __init__(self, procs, port, what, *names):
        self.proc = subprocess.Popen(
            [REDIS_CLI, "-p", str(port), what] + list(names),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        procs.add(self)
        for name in names:
            got = [self._line() for _ in range(3)]
            assert got[:2] == [what.lower(), name], got

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip(b"\n").decode(errors="replace"))
        self.lines.put(None)

    def _line(self):
        try:
            line = self.lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("redis-cli printed nothing for %d s"
                                 % WAIT)
        if line is None:
            raise AssertionError("redis-cli ended")
        return line

    def message(self):
        """The next message: (channel, payload), or (pattern, channel,
        payload) for a pmessage."""
        kind = self._line()
        if kind == "message":
            return (self._line(), self._line())
        assert kind == "pmessage", "not a message: %r" % kind
        return (self._line(), self._line(), self._line())

    def until(self, last, limit):
        """The messages up to and including the first whose payload is
        last; at most limit of them."""
        got = []
        while not got or got[-1][-1] != last:
            assert len(got) < limit, "no %r in %d messages: %r" % (
                last, limit, got[-5:])
            got.append(self.message())
        return got

    def end(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def check(self):
        pass


def sub_conn(port, what, *names):
    """A subscriber over a plain RESP connection (sidebyside.Conn),
    confirmed."""
    c = Conn(port, timeout=WAIT)
    c.send([what] + list(names))
    for name in names:
        got = c.read()
        assert got[:2] == [what.lower().encode(), name.encode()], got
    return c


def conn_until(c, last, limit):
    """A Conn subscriber's messages up to the one whose payload is last,
    as tuples of str without the kind."""
    got = []
    while not got or got[-1][-1] != last:
        assert len(got) < limit, "no %r in %d messages" % (last, limit)
        m = c.read()
        assert m[0] in (b"message", b"pmessage"), m
        got.append(tuple(x.decode() for x in m[1:]))
    return got


def cli_publish(port, pairs):
    """redis-cli fed one PUBLISH per (channel, payload) on its standard
    input, run one after another on one connection; their replies, as
    ints."""
    script = "".join("PUBLISH %s %s\n" % cp for cp in pairs)
    r = subprocess.run([REDIS_CLI, "-p", str(port)], input=script.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=WAIT)
    out = r.stdout.decode().split()
    assert r.returncode == 0 and len(out) == len(pairs), r.stdout[-500:]
    return [int(x) for x in out]


# ---- one redis-server -------------------------------------------------------------

def nodes_deliver_once_in_order(nnodes):
    n = 1000
    with Procs() as ps:
        redis = Redis(ps)
        url = "redis://127.0.0.1:%d" % redis.port
        nodes = [Broker(ps, url) for _ in range(nnodes)]
        for b in nodes:
            b.wait_links("single")
        a, b = nodes[0], nodes[1]
        # A redis-cli subscriber on every node, the publishing one (b)
        # included; a second member on a.
        subs = [CliSub(ps, node.port, "SUBSCRIBE", "news") for node in nodes]
        extra = sub_conn(a.port, "SUBSCRIBE", "news")
        # One subscription in Redis per node, not per member.
        wait_for(lambda: redis.numsub("news") == nnodes,
                 "PUBSUB NUMSUB news == %d on redis-server" % nnodes)

        sent = ["m%d" % i for i in range(n)] + ["end"]
        replies = cli_publish(b.port, [("news", m) for m in sent])
        # b's own subscriber only: its receivers, as one Redis counts.
        assert replies == [1] * len(sent), replies
        want = [("news", m) for m in sent]
        for s in subs:
            assert s.until("end", len(sent) + 1) == want
        assert conn_until(extra, "end", len(sent) + 1) == want

        assert redis.numsub("news") == nnodes
        # PUBSUB NUMSUB is this node's: 2 members on a, 1 on b.
        assert command(a.port, "PUBSUB", "NUMSUB", "news") == [b"news", 2]
        assert command(b.port, "PUBSUB", "NUMSUB", "news") == [b"news", 1]
        # Redis echoed each of b's publishes back to b, which skipped
        # them: that is why b's subscriber got each once.
        wait_for(lambda: b.figure("own_skipped") == len(sent),
                 "b's bridge_own_skipped == %d" % len(sent))
        assert b.figure("published") == len(sent)
        for node in nodes[2:] + [a]:
            assert node.figure("received") == len(sent)
            assert node.figure("own_skipped") == 0
        extra.close()


def test_two_nodes_deliver_once_in_order():
    nodes_deliver_once_in_order(2)


def test_three_nodes_deliver_once_in_order():
    nodes_deliver_once_in_order(3)


def test_psubscribe_gets_a_publish_of_another_node_once():
    with Procs() as ps:
        redis = Redis(ps)
        url = "redis://127.0.0.1:%d" % redis.port
        a, b = Broker(ps, url), Broker(ps, url)
        a.wait_links("single")
        b.wait_links("single")
        psub = CliSub(ps, a.port, "PSUBSCRIBE", "news.*")
        sub = CliSub(ps, a.port, "SUBSCRIBE", "news.x")
        wait_for(lambda: redis.cmd("PUBSUB", "NUMPAT") == 1 and
                 redis.numsub("news.x") == 1,
                 "a's pattern and channel on redis-server")
        sent = [("news.x", "x%d" % i) for i in range(20)]
        sent += [("news.y", "y0"), ("other", "o0"), ("news.x", "end")]
        assert cli_publish(b.port, sent) == [0] * len(sent)
        # The pattern subscriber: a pmessage for each match, once; the
        # channel subscriber: its channel's messages, once, and no
        # pmessage (its node delivers the two subscriptions apart).
        assert psub.until("end", 30) == [
            ("news.*", ch, m) for ch, m in sent if ch.startswith("news.")]
        assert sub.until("end", 30) == [
            (ch, m) for ch, m in sent if ch == "news.x"]
        assert a.figure("patterns") == 1 and a.figure("channels") == 1


def stream(port, channel, payloads, replies):
    """Publishes payloads on channel over one connection, each after the
    reply to the last, a little apart; the replies go to replies. Run in
    a thread, while the test kills Redis."""
    c = Conn(port, timeout=WAIT)
    for m in payloads:
        c.send(["PUBLISH", channel, m])
        replies.append(c.read())
        time.sleep(0.002)
    c.close()


def conn_messages(c, n):
    return [tuple(x.decode() for x in c.read()[1:]) for _ in range(n)]


def test_redis_killed_and_restarted_mid_stream():
    n, k = 50, 400
    with Procs() as ps:
        redis = Redis(ps)
        url = "redis://127.0.0.1:%d" % redis.port
        a, b = Broker(ps, url), Broker(ps, url)
        a.wait_links("single")
        b.wait_links("single")
        far = CliSub(ps, a.port, "SUBSCRIBE", "ks")
        near = sub_conn(b.port, "SUBSCRIBE", "ks")
        wait_for(lambda: redis.numsub("ks") == 2, "NUMSUB ks == 2")

        # A stream of publishes on b; Redis is killed once a has had
        # the first n of them, with more on their way.
        flow = ["p%d" % i for i in range(k)]
        replies = []
        t = threading.Thread(target=stream, args=(b.port, "ks", flow, replies),
                             daemon=True)
        t.start()
        assert [far.message() for _ in range(n)] == [
            ("ks", m) for m in flow[:n]]
        redis.kill()
        t.join(WAIT)
        assert not t.is_alive() and replies == [1] * k
        # b's own subscriber has had every one, Redis or not.
        assert conn_messages(near, k) == [("ks", m) for m in flow]
        for node in (a, b):
            wait_for(lambda: node.figure("links_up") == 0,
                     "the links of the broker on %d down" % node.port)

        # Redis down: b's own subscriber gets each at once; the publishes
        # for the other nodes are dropped and counted, never held.
        dropped = b.figure("dropped_down")
        down = [("ks", "d%d" % i) for i in range(n)]
        assert cli_publish(b.port, down) == [1] * n
        assert conn_messages(near, n) == down
        wait_for(lambda: b.figure("dropped_down") - dropped == n,
                 "b's bridge_dropped_down + %d" % n)

        redis.start()  # the same port, empty: the nodes resubscribe
        wait_for(lambda: try_command(redis.port, "PUBSUB", "NUMSUB",
                                     "ks") == [b"ks", 2],
                 "both nodes subscribed again")
        b.wait_links("single")
        after = [("ks", "r%d" % i) for i in range(n)] + [("ks", "end")]
        assert cli_publish(b.port, after) == [1] * (n + 1)
        # On a: the rest of the stream up to the kill, in order, each at
        # most once (those in flight then may be lost), none of the time
        # Redis was down, then everything after the restart, once.
        got = far.until("end", 2 * k)
        cut = len(got) - len(after)
        assert got[cut:] == after, got[-len(after) - 3:]
        idx = [int(m[1:]) for _, m in got[:cut] if m.startswith("p")]
        assert len(idx) == cut, got[:cut]
        assert idx == sorted(set(idx)) and all(i >= n for i in idx), idx
        assert conn_until(near, "end", 3 * n) == after
        for node in (a, b):
            assert node.figure("connects") >= 4  # 2 links, twice
            assert node.figure("disconnects") >= 2
        near.close()


def test_last_local_subscriber_gone_unsubscribes_in_redis():
    with Procs() as ps:
        redis = Redis(ps)
        url = "redis://127.0.0.1:%d" % redis.port
        a = Broker(ps, url, "--cluster-prefix", "app:")
        a.wait_links("single")
        assert redis.cmd("PUBSUB", "CHANNELS") == []
        one = sub_conn(a.port, "SUBSCRIBE", "lone")
        two = sub_conn(a.port, "SUBSCRIBE", "lone")
        pat = sub_conn(a.port, "PSUBSCRIBE", "lo*")
        wait_for(lambda: redis.cmd("PUBSUB", "CHANNELS") == [b"app:lone"] and
                 redis.cmd("PUBSUB", "NUMPAT") == 1,
                 "app:lone and a pattern on redis-server")
        assert redis.numsub("app:lone") == 1

        # One member leaves: the node stays subscribed. A message that
        # another program publishes into Redis shows it, and comes as it
        # was sent, under the name without the prefix.
        one.send(["UNSUBSCRIBE", "lone"])
        assert one.read() == [b"unsubscribe", b"lone", 0]
        raw = "raw \x00AC1 not an envelope"
        # Redis counts the node's two subscriptions: channel and pattern.
        assert redis.cmd("PUBLISH", "app:lone", raw) == 2
        assert conn_until(two, raw, 1) == [("lone", raw)]
        assert conn_until(pat, raw, 1) == [("lo*", "lone", raw)]
        assert redis.numsub("app:lone") == 1

        # The last member goes (its connection closes): the node
        # unsubscribes.
        two.close()
        wait_for(lambda: redis.cmd("PUBSUB", "CHANNELS") == [] and
                 redis.numsub("app:lone") == 0,
                 "app:lone gone from redis-server")
        assert redis.cmd("PUBSUB", "NUMPAT") == 1
        pat.send(["PUNSUBSCRIBE", "lo*"])
        assert pat.read() == [b"punsubscribe", b"lo*", 0]
        wait_for(lambda: redis.cmd("PUBSUB", "NUMPAT") == 0,
                 "the pattern gone from redis-server")
        assert a.figure("channels") == 0 and a.figure("patterns") == 0

        # INFO: the Bridge section is a default one with --cluster, and
        # Redis's Cluster section still says the broker is no cluster
        # node. CONFIG RESETSTAT zeroes the counters, not the gauges.
        info = command(a.port, "INFO")
        assert b"\r\n# Bridge\r\nbridge_enabled:1\r\n" in info, info
        assert b"\r\ncluster_enabled:0\r\n" in info, info
        # The raw message came twice from Redis: for the channel and
        # for the pattern.
        assert a.figure("received") == 2 and a.figure("connects") == 2
        assert command(a.port, "CONFIG", "RESETSTAT") == b"OK"
        assert a.figure("received") == 0 and a.figure("connects") == 0
        assert a.figure("links_up") == 2
        one.close()
        pat.close()


def test_password_in_the_url_is_used_and_not_shown():
    with Procs() as ps:
        redis = Redis(ps, extra=["--requirepass", "s3cr%t"])
        # Two seeds in two options; the first one's password (escaped,
        # as a url needs) applies to both.
        url = "redis://:s3cr%%25t@127.0.0.1:%d" % free_port()
        a = Broker(ps, url, "--cluster", "127.0.0.1:%d" % redis.port)
        b = Broker(ps, "redis://:s3cr%%25t@127.0.0.1:%d" % redis.port)
        a.wait_links("single")
        b.wait_links("single")
        sub = CliSub(ps, a.port, "SUBSCRIBE", "pw")
        wait_for(lambda: redis.numsub("pw") == 1, "a subscribed")
        assert cli_publish(b.port, [("pw", "hello")]) == [0]
        assert sub.message() == ("pw", "hello")
        for node in (a, b):
            assert "s3cr" not in node.stdout() + node.stderr()
        assert ("channels bridged through redis://127.0.0.1:%d,127.0.0.1:%d"
                % (int(url.rsplit(":", 1)[1]), redis.port)) in a.stdout()


# ---- a Redis Cluster -------------------------------------------------------------

def test_redis_cluster_spreads_channels_over_masters():
    nchan, rounds = 48, 3
    with Procs() as ps:
        masters = [Redis(ps, cluster=True) for _ in range(3)]
        r = subprocess.run(
            [REDIS_CLI, "--cluster", "create"] +
            ["127.0.0.1:%d" % m.port for m in masters] +
            ["--cluster-replicas", "0", "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=WAIT)
        assert r.returncode == 0, r.stdout[-2000:]
        for m in masters:
            wait_for(lambda: b"cluster_state:ok" in m.cmd("CLUSTER", "INFO"),
                     "cluster_state:ok on %d" % m.port)
        url = "redis://127.0.0.1:%d" % masters[0].port  # one seed
        a, b = Broker(ps, url), Broker(ps, url)
        a.wait_links("cluster", 3)
        b.wait_links("cluster", 3)

        chans = ["ch%d" % i for i in range(nchan)]
        sub = CliSub(ps, a.port, "SUBSCRIBE", *chans)

        def spread():
            return [len(m.cmd("PUBSUB", "SHARDCHANNELS")) for m in masters]
        wait_for(lambda: sum(spread()) == nchan,
                 "%d shard channels over the masters" % nchan)
        per_master = spread()
        assert sum(1 for k in per_master if k) > 1, per_master
        # Each on the master that serves its slot.
        slots = masters[0].cmd("CLUSTER", "SLOTS")
        for m in masters:
            for ch in m.cmd("PUBSUB", "SHARDCHANNELS"):
                slot = m.cmd("CLUSTER", "KEYSLOT", ch)
                owner = [s for s in slots if s[0] <= slot <= s[1]][0]
                assert owner[2][1] == m.port, (ch, slot, owner)

        sent = [(ch, "%s.%d" % (ch, k)) for k in range(rounds) for ch in chans]
        sent += [(ch, "end") for ch in chans]
        assert cli_publish(b.port, sent) == [0] * len(sent)
        got = {ch: [] for ch in chans}
        ends = 0
        for _ in range(len(sent)):
            ch, m = sub.message()
            got[ch].append(m)
            ends += m == "end"
        assert ends == nchan
        # Each channel's messages once, in the order published (channels
        # on different masters interleave as they will).
        for ch in chans:
            assert got[ch] == ["%s.%d" % (ch, k) for k in range(rounds)] + [
                "end"], (ch, got[ch])
        assert a.figure("channels") == nchan
        assert a.figure("received") == len(sent)
        assert b.figure("published") == len(sent)


def skip_without_bridge():
    """Exits 77 when this libactorconn has no hiredis: a broker given
    --cluster then says so and exits 1."""
    port = free_port()
    p = subprocess.Popen(
        [BROKER, "--listen", "127.0.0.1:%d" % port, "--cluster",
         "redis://127.0.0.1:%d" % free_port()],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, p, "actorconn-broker")
    except RuntimeError:
        err = p.stderr.read().decode(errors="replace")
        if "without hiredis" in err:
            print("SKIP: libactorconn built without hiredis")
            sys.exit(77)
        raise RuntimeError("actorconn-broker --cluster: " + err)
    p.terminate()
    p.wait(10 * SLOW)


def main(tests):
    if not REDIS_SERVER or not REDIS_CLI:
        print("SKIP: redis-server or redis-cli not installed")
        sys.exit(77)
    skip_without_bridge()
    failed = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
            print("PASS: %s (%.1f s)" % (t.__name__,
                                         time.monotonic() - start))
        except Exception as e:  # report every test, then fail
            failed += 1
            print("FAIL: %s: %s: %s" % (t.__name__, type(e).__name__, e))
            # Where: a bare assert says nothing else.
            print("".join(traceback.format_tb(e.__traceback__)[-2:]),
                  end="")
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main([
        test_two_nodes_deliver_once_in_order,
        test_three_nodes_deliver_once_in_order,
        test_psubscribe_gets_a_publish_of_another_node_once,
        test_redis_killed_and_restarted_mid_stream,
        test_last_local_subscriber_gone_unsubscribes_in_redis,
        test_password_in_the_url_is_used_and_not_shown,
        test_redis_cluster_spreads_channels_over_masters,
    ])
