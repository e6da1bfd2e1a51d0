#!/usr/bin/env python3
"""test_compat_proto.py: actorconn-broker side by side with redis-server on
the protocol's details, its limits and pattern matching (issue 17).

Each test sends the same bytes to both servers and compares the replies
(parsed, so equal values are equal bytes); where the broker differs on
purpose, its own reply is asserted and the difference is in
actorconn-broker(1). What is checked:

  - limits: SUBSCRIBE with 10,000 channels (every reply, then a publish
    to the last one), an array of 1,048,577 elements taken (Redis 7 takes
    up to 2^31 - 1) and one of 2^31 refused with Redis's text; a declared
    huge count or bulk that does not arrive leaves the broker's resident
    memory where it was; a 20 MB PUBLISH reaches a subscriber;
    proto-max-bulk-len, default and set;
  - output limits: CONFIG GET and SET of client-output-buffer-limit as
    Redis formats and checks it; a subscriber over its hard limit is
    dropped, and the PUBLISH that drops it still counts it, as Redis
    does; a subscriber over its soft limit for longer than allowed is
    dropped, a shard subscriber (SSUBSCRIBE) as a subscriber; CONFIG
    GET and SET of the other parameters, and Redis's errors; CONFIG
    HELP, RESETSTAT, and GET as a map in RESP3;
  - pattern matching: a matrix of generated patterns and channels, each
    pattern PSUBSCRIBEd on both servers and each channel published, the
    receivers compared; PUBSUB CHANNELS with the same patterns;
  - before AUTH with a password: Redis's limits of 10 arguments and of
    16 KiB per argument;
  - protocol details: PING's arity, the multibulk errors of Redis's
    protocol.tcl, what Redis lets through, inline quoting as sdssplitargs
    splits it;
  - redis-py: SUBSCRIBE with 10,000 channels (skipped without redis-py).

Every socket has a timeout; the whole runs in well under a minute.
"""

import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sidebyside  # noqa: E402
from sidebyside import Pair  # noqa: E402


def cmd(*args):
    """One command as RESP bytes."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def same_closed(p, a, b, data, n=1):
    """Sends data, compares n replies, and checks that both close."""
    p.same_raw(a, b, data, n=n)
    assert a.closed() and b.closed(), "both should close after %r" % data


def vm_kb(pid, what):
    """VmRSS (resident) or VmSize (mapped) of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(what + ":"):
                return int(line.split()[1])
    raise RuntimeError("no " + what)


def read_all(conn, n):
    return [conn.read() for _ in range(n)]


# ---- limits ----------------------------------------------------------------


def test_subscribe_10000_channels():
    chans = ["ch:%05d" % i for i in range(10000)]
    with Pair() as p:
        a, b = p.conns()
        # One request, 10,001 elements: over the broker's old 4,095.
        p.same_raw(a, b, cmd("SUBSCRIBE", *chans), n=10000)
        pa, pb = p.conns()
        p.same(pa, pb, ["PUBLISH", chans[-1], "last"])
        p.compare(a, b, 1)
        p.same(pa, pb, ["PUBSUB", "NUMSUB", chans[0], chans[-1]])


def test_array_counts():
    with Pair() as p:
        # 2^31 elements: over Redis 7's INT_MAX.
        a, b = p.conns()
        same_closed(p, a, b, b"*2147483648\r\n")
        # 1,048,577 (Redis 6's limit plus one): taken, then ECHO's arity.
        a, b = p.conns()
        big = b"*1048577\r\n$4\r\nECHO\r\n" + b"$1\r\nx\r\n" * 1048576
        p.same_raw(a, b, big + cmd("PING"), n=2)
        # Negative and zero counts are empty requests.
        p.same_raw(a, b, b"*-10\r\n*0\r\n" + cmd("PING"))


def test_a_declared_size_is_not_memory():
    """Counts and lengths that are announced but never come: no reply,
    and the broker's resident memory stays where it was (it grows with
    the bytes that arrive, never with what a header says)."""
    with Pair() as p:
        if os.environ.get("AC_VALGRIND"):
            return  # the pid is valgrind's
        probe = p.broker_conn()
        probe.send(["PING"])
        assert probe.read() == b"PONG"
        with open("/proc/%d/comm" % p.broker.pid) as f:
            assert "actorconn" in f.read()  # not a wrapper's shell
        rss, size = vm_kb(p.broker.pid, "VmRSS"), vm_kb(p.broker.pid, "VmSize")
        held = []
        for i in range(100):
            a, b = p.conns()
            held += [a, b]
            data = (b"*2147483647\r\n" + cmd("PING")[4:]) if i % 2 else \
                   b"*2\r\n$7\r\nPUBLISH\r\n$536870912\r\nabc"
            a.send_raw(data)
            b.send_raw(data)
        time.sleep(0.1)
        for c in held:  # a second read, where a buffer would grow
            c.send_raw(cmd("PING")[4:])
        probe.send(["PING"])
        assert probe.read() == b"PONG"
        time.sleep(0.3)
        # Neither touched (RSS) nor reserved (VmSize: 50 bulks of 512
        # MiB taken at their word would be 25 GiB of it).
        grew = vm_kb(p.broker.pid, "VmRSS") - rss
        assert grew < 16 * 1024, "RSS grew by %d KiB" % grew
        grew = vm_kb(p.broker.pid, "VmSize") - size
        assert grew < 256 * 1024, "VmSize grew by %d KiB" % grew
        print("  100 announced requests: RSS %+d KiB, VmSize %+d KiB" % (
            vm_kb(p.broker.pid, "VmRSS") - rss,
            vm_kb(p.broker.pid, "VmSize") - size))
        for c in held:  # nothing came back, and all are still open
            c.sock.setblocking(False)
            try:
                got = c.sock.recv(100)
                raise AssertionError("an incomplete request got %r" % got)
            except BlockingIOError:
                pass


def test_a_20mb_publish_reaches_its_subscriber():
    msg = bytes(random.Random(7).getrandbits(8) for _ in range(1 << 16))
    msg = msg * 320  # 20 MiB
    with Pair() as p:
        subs = p.conns()
        for s in subs:
            s.send(["SUBSCRIBE", "big"])
            assert s.read() == [b"subscribe", b"big", 1]
        pubs = p.conns()
        for s in pubs:
            s.sock.settimeout(30)
            s.send(["PUBLISH", "big", msg])
        for s, sub in zip(pubs, subs):
            assert s.read() == 1
            sub.sock.settimeout(30)
            got = sub.read()
            assert got[:2] == [b"message", b"big"] and got[2] == msg, \
                "the 20 MiB message came back changed"


def test_bulk_length_limits():
    with Pair() as p:
        a, b = p.conns()
        same_closed(p, a, b, b"*2\r\n$4\r\nECHO\r\n$536870913\r\n")
        a, b = p.conns()
        p.same(a, b, ["CONFIG", "SET", "proto-max-bulk-len", "1mb"])
        p.same(a, b, ["CONFIG", "GET", "proto-max-bulk-len"])
        p.same(a, b, ["ECHO", "x" * (1 << 20)])
        same_closed(p, a, b, b"*2\r\n$4\r\nECHO\r\n$1048577\r\n")
        a, b = p.conns()
        p.same(a, b, ["CONFIG", "SET", "proto-max-bulk-len", "512mb"])


# ---- output limits and CONFIG --------------------------------------------------


def sorted_pairs(r):
    """A CONFIG GET reply as sorted (name, value) pairs: Redis's order is
    its hash table's."""
    return sorted(zip(r[0::2], r[1::2]))


def config_get(p, a, b, *names):
    a.send(["CONFIG", "GET", *names])
    b.send(["CONFIG", "GET", *names])
    ra, rb = sorted_pairs(a.read()), sorted_pairs(b.read())
    assert ra == rb, "CONFIG GET %r:\n  redis:  %r\n  broker: %r" % (
        names, ra, rb)
    return rb


def test_config_get_and_set():
    with Pair() as p:
        a, b = p.conns()
        config_get(p, a, b, "client-output-buffer-limit")
        config_get(p, a, b, "*buffer*", "proto-max-bulk-len", "databases",
                   "appendonly", "save", "timeout", "maxmemory",
                   "maxmemory-policy", "notify-keyspace-events", "nosuch")
        config_get(p, a, b, "CLIENT-output-buffer-LIMIT")
        config_get(p, a, b, "*BUFFER-L?M[h-j]T")
        # What the broker has: every name but maxclients and port has
        # Redis's value; those two are its own.
        b.send(["CONFIG", "GET", "*"])
        mine = dict(sorted_pairs(b.read()))
        assert mine[b"port"] == str(p.bport).encode()
        assert int(mine[b"maxclients"]) > 0
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "pubsub 32mb 8mb 60 replica 1 2 3"])
        config_get(p, a, b, "client-output-buffer-limit")
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "normal 0 0 0 slave 268435456 67108864 60"])
        config_get(p, a, b, "client-output-buffer-limit")
        for value in ["pubsub 1 2", "master 1 2 3", "pubsub 1x 2 3",
                      "pubsub 1 2 -3", "pubsub  1 2 3", "nobody 1 2 3",
                      "", "PUBSUB 32MB 8Mb 60"]:
            p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                          value])
        config_get(p, a, b, "client-output-buffer-limit")
        for args in [["proto-max-bulk-len", "1k"],
                     ["proto-max-bulk-len", "abc"],
                     ["client-query-buffer-limit", "100"],
                     ["client-query-buffer-limit", "1gb"],
                     ["databases", "3"], ["nosuch", "1"], ["a"],
                     ["a", "b", "c"],
                     ["proto-max-bulk-len", "2mb", "proto-max-bulk-len",
                      "3mb"],
                     ["nosuch", "1", "databases", "2"],
                     ["databases", "2", "nosuch", "1"],
                     ["proto-max-bulk-len", "x", "databases", "2"],
                     ["save", ""], ["appendonly", "no"],
                     ["notify-keyspace-events", ""],
                     ["proto-max-bulk-len", "512mb",
                      "client-query-buffer-limit", "1gb"]]:
            p.same(a, b, ["CONFIG", "SET", *args])
        for args in [["GET"], ["FOO"], ["REWRITE"], ["HELP", "x"],
                     ["GET", "nosuch", "none"], ["HELP"], ["RESETSTAT", "x"],
                     ["RESETSTAT"]]:
            p.same(a, b, ["CONFIG", *args])
        # After RESETSTAT, INFO counts from zero: this INFO is the one
        # command since (the CONFIG reply above was read first).
        b.send(["INFO", "stats"])
        assert b"total_commands_processed:1\r\n" in b.read()
        # RESP3: a map, as Redis 7 answers.
        p.same(a, b, ["HELLO", "3"], norm=lambda rs: [
            r[0] if isinstance(r, tuple) else r for r in rs])
        p.same(a, b, ["CONFIG", "GET", "proto-max-bulk-len"],
               ["CONFIG", "GET", "nosuch"])
        a.send(["CONFIG", "GET", "*buffer*", "timeout"])
        b.send(["CONFIG", "GET", "*buffer*", "timeout"])
        ra, rb = a.read(), b.read()
        assert ra[0] == rb[0] == "map" and sorted_pairs(ra[1]) == \
            sorted_pairs(rb[1]), (ra, rb)
        # Redis's values the broker has no use for and cannot change.
        b.send(["CONFIG", "SET", "appendonly", "yes"])
        assert b.read() == ("err", b"ERR CONFIG SET failed (possibly "
                            b"related to argument 'appendonly') - can't "
                            b"set immutable config")
        b.send(["CONFIG", "SET", "timeout", "5"])
        assert b.read()[0] == "err"


def test_a_publish_counts_the_subscriber_it_drops():
    """A subscriber over its hard limit is dropped by the PUBLISH that
    takes it there, which still counts it, as Redis counts it."""
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "pubsub 1mb 0 0"])
        subs = p.conns()
        for s in subs:
            s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.send(["SUBSCRIBE", "slow"])
            assert s.read() == [b"subscribe", b"slow", 1]
        # Over the limit at once: both count it, and drop it.
        p.same(a, b, ["PUBLISH", "slow", "x" * (2 << 20)])
        for s in subs:
            assert s.closed(5), "the slow subscriber was not dropped"
        for s in (a, b):
            for _ in range(200):
                s.send(["PUBSUB", "NUMSUB", "slow"])
                if s.read()[1] == 0:
                    break
                time.sleep(0.01)
        p.same(a, b, ["PUBLISH", "slow", "gone"])
        # Under the limit, a subscriber that reads keeps up.
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "pubsub 32mb 8mb 60"])
        subs = p.conns()
        for s in subs:
            s.send(["SUBSCRIBE", "fine"])
            s.read()
        p.same(a, b, ["PUBLISH", "fine", "x" * (2 << 20)])
        p.compare(*subs, 1)


def test_a_shard_subscriber_is_in_the_pubsub_class():
    """SSUBSCRIBE puts a client in the pubsub class, as SUBSCRIBE does:
    the pubsub limits drop it, the normal class's (none) would not."""
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "pubsub 1mb 0 0"])
        subs = p.conns()
        for s in subs:
            s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.send(["SSUBSCRIBE", "slow"])
            assert s.read() == [b"ssubscribe", b"slow", 1]
        p.same(a, b, ["SPUBLISH", "slow", "x" * (2 << 20)])
        for s in subs:
            assert s.closed(5), "the slow shard subscriber was not dropped"
        # Unsubscribed again, it is back in the normal class.
        subs = p.conns()
        for s in subs:
            s.send(["SSUBSCRIBE", "gone"], ["SUNSUBSCRIBE"], ["ECHO", "x"])
            assert [s.read() for _ in range(3)] == [
                [b"ssubscribe", b"gone", 1], [b"sunsubscribe", b"gone", 0],
                b"x"]
            s.send(["ECHO", "x" * (2 << 20)])
            assert s.read() == b"x" * (2 << 20)
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "pubsub 32mb 8mb 60"])


def test_a_subscriber_over_its_soft_limit_too_long_is_dropped():
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["CONFIG", "SET", "client-output-buffer-limit",
                      "pubsub 0 1mb 1"])
        subs = p.conns()
        for s in subs:
            s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.send(["SUBSCRIBE", "soft"])
            s.read()
        # Far more than the kernel's buffers take in: most of it stays
        # queued, over the soft limit.
        p.same(a, b, ["PUBLISH", "soft", "x" * (16 << 20)])
        # Redis looks at the soft limit in whole seconds, as output is
        # added and from its cron; the broker's timer runs out after one
        # second. Both have dropped the subscriber after two. (Reading
        # the subscriber's socket to its end would take long: the
        # kernel's buffers hold megabytes for a 4 KiB window.)
        time.sleep(2.2)
        p.same(a, b, ["PUBLISH", "soft", "again"])
        r = p.same(a, b, ["PUBSUB", "NUMSUB", "soft"])
        assert r == [[b"soft", 0]], "the subscriber stayed: %r" % r
        b.send(["INFO"])
        assert b"slow_consumers_closed:1\r\n" in b.read()


# ---- pattern matching --------------------------------------------------------


def glob_cases():
    """Patterns and channels over the characters that matter to the
    matcher, with Redis's corner cases among them."""
    rnd = random.Random(17)
    pchars = "ab*?[]^-\\"
    cchars = "ab[]^-\\*"
    pats = {"*", "**", "?", "[", "[^", "[]", "[]a]", "[^]a]", "[a-]",
            "[a-]b", "[b-a]", "[\\]]", "[\\-a]", "a\\", "\\*", "[ab",
            "a[b", "a*", "*a", "a?b", "[^a]", "[a\\", "[a-\\]", "*[",
            "[-a]", "[a-b-]"}
    while len(pats) < 70:
        pats.add("".join(rnd.choice(pchars)
                         for _ in range(rnd.randint(1, 5))))
    chans = {"", "a", "b", "[", "]", "^", "-", "\\", "*", "_", "`", "ab",
             "ba", "a]", "[ab", "a[b", "a\\"}
    while len(chans) < 60:
        chans.add("".join(rnd.choice(cchars)
                          for _ in range(rnd.randint(1, 4))))
    return sorted(pats), sorted(chans)


def test_glob_matrix():
    """70 patterns x 60 channels: who receives what, and PUBSUB
    CHANNELS, the same on both servers."""
    pats, chans = glob_cases()
    with Pair() as p:
        subs = p.conns()
        for s in subs:
            s.send_raw(cmd("PSUBSCRIBE", *pats))
            read_all(s, len(pats))
        pa, pb = p.conns()
        for ch in chans:
            ra, rb = [], []
            pa.send(["PUBLISH", ch, "m"])
            pb.send(["PUBLISH", ch, "m"])
            na, nb = pa.read(), pb.read()
            for s, n, got in ((subs[0], na, ra), (subs[1], nb, rb)):
                for m in read_all(s, n):
                    got.append(m[1])
            assert (na, sorted(ra)) == (nb, sorted(rb)), \
                "channel %r: redis %r, broker %r" % (ch, sorted(ra),
                                                     sorted(rb))
        # PUBSUB CHANNELS and NUMPAT, every channel subscribed.
        cs = p.conns()
        for s in cs:
            s.send_raw(cmd("SUBSCRIBE", *chans))
            read_all(s, len(chans))
        for pat in pats:
            pa.send(["PUBSUB", "CHANNELS", pat])
            pb.send(["PUBSUB", "CHANNELS", pat])
            ra, rb = sorted(pa.read()), sorted(pb.read())
            assert ra == rb, "PUBSUB CHANNELS %r: redis %r, broker %r" % (
                pat, ra, rb)
        p.same(pa, pb, ["PUBSUB", "NUMPAT"])


# ---- protocol details --------------------------------------------------------


def test_unauthenticated_limits():
    """Before AUTH, with a password required: more than 10 arguments, or
    an argument over 16 KiB, is Redis's protocol error and a close, at
    the header, before the rest of the request is sent: an unknown client
    cannot make either server hold more than about 160 KiB."""
    args = ["--requirepass", "pw"]
    with Pair(broker_args=args, redis_args=args) as p:
        for full, err in [
                (cmd(*["a"] * 11), b"multibulk length"),
                (cmd("ECHO", "x" * 16385), b"bulk length"),
                (cmd("AUTH", "x" * 16385), b"bulk length")]:
            head = (full[:full.index(b"\r\n", full.index(b"$", 6)) + 2]
                    if err == b"bulk length" else full[:5])
            a, b = p.conns()
            want = ("err", b"ERR Protocol error: unauthenticated " + err)
            assert p.same_raw(a, b, head) == [want], err
            assert a.closed() and b.closed()
        # At the limits, and after AUTH, both take the command; after
        # RESET the client is a stranger again.
        a, b = p.conns()
        p.same(a, b, ["ECHO", "x" * 16384], ["AUTH", "pw"],
               ["ECHO", "x" * 16385], ["PUBLISH", "c", "m"],
               ["SUBSCRIBE", *"abcdefghijk"], n=15)
        p.same(a, b, ["RESET"])
        want = ("err", b"ERR Protocol error: unauthenticated multibulk "
                b"length")
        assert p.same_raw(a, b, cmd(*["a"] * 11)[:5]) == [want]
        assert a.closed() and b.closed()
    # Without a password nothing is refused.
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["SUBSCRIBE", *"abcdefghijk"], n=11)


def test_ping_arity():
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["PING"], ["PING", "x"], ["PING", "x", "y"],
               ["PING", "x", "y", "z"])
        p.same(a, b, ["SUBSCRIBE", "c"])
        p.same(a, b, ["PING"], ["PING", "x"], ["PING", "x", "y"])


def test_multibulk_errors():
    """protocol.tcl's cases, and more: the reply, then the close."""
    cases = [b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
                 b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n",
                 b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n",
                 b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n",
                 b"*1\r\nfoo\r\n", b"*1\r\n\r\n", b"*1\r\n\n\r\n",
                 b"*1\r\n:1\r\n", b"*x\r\n", b"*\r\n", b"*01\r\n",
                 b"*1\r\n$01\r\nx\r\n", b"*1\r\n$-0\r\n",
                 b"*3000000000\r\n"]
    with Pair() as p:
        for data in cases:
            a, b = p.conns()
            same_closed(p, a, b, data)


def test_what_redis_lets_through():
    with Pair() as p:
        a, b = p.conns()
        # Whatever follows a line's CR, and a bulk's data, is skipped.
        p.same_raw(a, b, b"*1\r\n$4\r\nPINGxy*1\rX$4\rYPING\r\n", n=2)
        p.same_raw(a, b, b"\r\n\n" + cmd("PING"))  # empty lines
        p.same_raw(a, b, b"  \t \r\nPING\n")
        # A NUL before a line's end hides it: nothing until the limit.
        c, d = p.conns()
        for s in (c, d):
            s.send_raw(b"*1\r\n\x00\r\n")
            assert not s.closed(0.3)


def test_protocol_desync():
    """protocol.tcl's desync cases: a NUL, then a stream without line
    ends, until the 64 KiB limit gives the error."""
    with Pair() as p:
        for seq in [b"\x00", b"*\x00", b"$\x00"]:
            a, b = p.conns()
            same_closed(p, a, b, seq + b"payload" * 10000)


def test_inline_quoting():
    with Pair() as p:
        a, b = p.conns()
        for line in [b'ECHO "a\\x41\\n\\z\\""', b"ECHO 'it\\'s'",
                     b'ECHO "\\xff\\x00\\xZZ\\"\\\\"', b'ECHO ab"c d"',
                     b'ECHO ""', b"ECHO ''", b"ECHO a\x0bb",
                     b"ECHO '\\n\\x41'", b'ECHO "\\a\\b\\t\\r"',
                     b"ECHO a\rb", b"PING \"x y\"", b"\x0bPING",
                     b'ECHO "x"\x0b', b"ECHO 'a'\t"]:
            p.same_raw(a, b, line + b"\r\n")
        p.same_raw(a, b, b"PING\n")
        for line in [b'ECHO "a"b', b"ECHO 'a'b", b'ECHO "open',
                     b"ECHO 'open", b'ECHO "a\\"',
                     b'set """test-key""" test-value']:
            a, b = p.conns()
            same_closed(p, a, b, line + b"\r\nPING\r\n")


# ---- real clients ------------------------------------------------------------


def redis_py():
    try:
        import redis
    except ImportError:
        # Debian's python3-redis, when python3 is another interpreter.
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import redis
        except ImportError:
            return None
    return redis


def test_redis_py_subscribe_10000():
    redis = redis_py()
    if redis is None:
        print("SKIP: redis-py not installed")
        return
    chans = ["py:%05d" % i for i in range(10000)]
    with Pair(redis=False) as p:
        r = redis.Redis(port=p.bport, socket_timeout=60 * sidebyside.SLOW)
        ps = r.pubsub()
        ps.subscribe(*chans)
        seen = 0
        # Generous waits: they end as soon as the replies come, and a
        # sanitizer build of the broker takes seconds over 10,000.
        while seen < len(chans):
            m = ps.get_message(timeout=30 * sidebyside.SLOW)
            assert m is not None, "subscribe replies stopped at %d" % seen
            assert m["type"] == "subscribe"
            seen += 1
        assert r.publish(chans[-1], "hi") == 1
        m = ps.get_message(timeout=30 * sidebyside.SLOW)
        assert m["type"] == "message" and m["data"] == b"hi", m
        assert r.pubsub_numsub(chans[0]) == [(chans[0].encode(), 1)]
        ps.close()
        r.close()


if __name__ == "__main__":
    sidebyside.main([
        test_subscribe_10000_channels,
        test_array_counts,
        test_a_declared_size_is_not_memory,
        test_a_20mb_publish_reaches_its_subscriber,
        test_bulk_length_limits,
        test_config_get_and_set,
        test_a_publish_counts_the_subscriber_it_drops,
        test_a_shard_subscriber_is_in_the_pubsub_class,
        test_a_subscriber_over_its_soft_limit_too_long_is_dropped,
        test_glob_matrix,
        test_unauthenticated_limits,
        test_ping_arity,
        test_multibulk_errors,
        test_what_redis_lets_through,
        test_protocol_desync,
        test_inline_quoting,
        test_redis_py_subscribe_10000,
    ])
