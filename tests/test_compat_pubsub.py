#!/usr/bin/env python3
"""test_compat_pubsub.py: MULTI/EXEC/DISCARD and sharded pub/sub
(SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB SHARDCHANNELS/SHARDNUMSUB),
side by side with redis-server: each conversation goes to both, and the
replies and the messages subscribers receive are compared.

What a subscriber has NOT received is shown with a marker: another
connection publishes a marker message, and the subscriber's next message
must be the marker, on both servers. A message published by a queued
command before the marker would come first.

Then where they meet RESP3 and the client's state: shard channels for a
RESP3 client (pushes, HELLO 2 moving its subscriptions, CLIENT REPLY
OFF), INFO's pubsubshard_channels, and CLIENT LIST's fields of a client
in a transaction, in RESP3, on a database, as a user.

redis-py (Debian's python3-redis) drives pipeline() with and without a
transaction when it is installed; its sharded pub/sub API is used when
the version has it, and skipped otherwise.
"""

import os
import socket
import sys
import time

# Debian's python3-redis lives in the system interpreter; a python3
# first on PATH (pyenv, a virtualenv) may not have it.
try:
    import redis  # noqa: F401
except ImportError:
    if (os.path.exists("/usr/bin/python3") and
            os.path.realpath(sys.executable) !=
            os.path.realpath("/usr/bin/python3") and
            not os.environ.get("COMPAT_PUBSUB_REEXEC")):
        os.environ["COMPAT_PUBSUB_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    redis = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sidebyside  # noqa: E402
from sidebyside import SLOW, Conn, Pair  # noqa: E402

EXECABORT = ("err", b"EXECABORT Transaction discarded because of previous "
             b"errors.")


def subscribed(p, what, *names):
    """A connection to each server, subscribed with what (SUBSCRIBE,
    PSUBSCRIBE, SSUBSCRIBE) to names, the replies compared."""
    a, b = p.conns()
    p.same(a, b, [what] + list(names), n=len(names))
    return a, b


def marker(p, sa, sb, channel, text, shard=False):
    """Publishes text on channel from a fresh connection to each server
    and asserts that it is the next thing sa and sb receive."""
    a, b = p.conns()
    p.same(a, b, ["SPUBLISH" if shard else "PUBLISH", channel, text])
    got = p.compare(sa, sb, 1, what="marker " + text)[0]
    assert got[-1] == text.encode(), "not the marker: %r" % (got,)
    a.close()
    b.close()


def sorted_reply(r):
    """Channel lists sorted: each server lists them in its own order."""
    return [sorted(x) if isinstance(x, list) and
            all(isinstance(e, bytes) for e in x) else x for x in r]


# ---- MULTI / EXEC / DISCARD ---------------------------------------------------

def test_publish_in_multi_delivers_only_at_exec():
    with Pair() as p:
        sa, sb = subscribed(p, "SUBSCRIBE", "tx")
        pa, pb = subscribed(p, "PSUBSCRIBE", "t*")
        a, b = p.conns()
        p.same(a, b, ["MULTI"], ["PUBLISH", "tx", "one"],
               ["PUBLISH", "tx", "two"], ["PUBLISH", "other", "x"])
        # Queued, not run: the marker comes first to both subscribers.
        marker(p, sa, sb, "tx", "before-exec")
        p.compare(pa, pb, 1)  # the pattern's copy of the marker
        assert p.same(a, b, ["EXEC"])[0] == [2, 2, 0]
        for text in (b"one", b"two"):
            assert p.compare(sa, sb, 1)[0] == [b"message", b"tx", text]
            assert p.compare(pa, pb, 1)[0] == [b"pmessage", b"t*", b"tx",
                                               text]
        marker(p, sa, sb, "tx", "after-exec")


def test_discard_delivers_nothing():
    with Pair() as p:
        sa, sb = subscribed(p, "SUBSCRIBE", "tx")
        a, b = p.conns()
        p.same(a, b, ["MULTI"], ["PUBLISH", "tx", "never"],
               ["SPUBLISH", "tx", "never"], ["DISCARD"])
        p.same(a, b, ["EXEC"])  # ERR EXEC without MULTI
        marker(p, sa, sb, "tx", "after-discard")
        # The connection is out of MULTI: a PUBLISH runs at once.
        p.same(a, b, ["PUBLISH", "tx", "now"])
        p.compare(sa, sb, 1)


def test_execabort_after_a_refused_command_delivers_nothing():
    with Pair() as p:
        sa, sb = subscribed(p, "SUBSCRIBE", "tx")
        a, b = p.conns()
        for bad in (["NOSUCH", "x"], ["PUBLISH", "tx"], ["PUBSUB", "NOSUCH"],
                    ["PUBSUB", "NUMPAT", "x"], ["CLIENT", "KILL"],
                    ["CONFIG", "GET"], ["SUBSCRIBE"]):
            r = p.same(a, b, ["MULTI"], ["PUBLISH", "tx", "never"], bad,
                       ["PUBLISH", "tx", "never"], ["EXEC"])
            assert r[-1] == EXECABORT, r
        marker(p, sa, sb, "tx", "after-abort")


def test_transaction_errors():
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["EXEC"], ["DISCARD"], ["MULTI", "x"], ["EXEC", "x"],
               ["DISCARD", "x"], ["WATCH"], ["UNWATCH", "x"])
        # Nested MULTI and WATCH inside MULTI are errors that leave the
        # transaction going; the queue runs.
        p.same(a, b, ["MULTI"], ["MULTI"], ["WATCH", "k"], ["PING"],
               ["ECHO", "e"], ["EXEC"])
        # A wrong EXEC aborts, a wrong DISCARD flags.
        p.same(a, b, ["MULTI"], ["PING"], ["EXEC", "x"], ["EXEC"])
        p.same(a, b, ["MULTI"], ["DISCARD", "x"], ["PING"], ["EXEC"])
        # Errors that only running finds are replies in EXEC's array.
        p.same(a, b, ["MULTI"], ["PUBSUB", "CHANNELS", "a", "b"],
               ["PUBSUB", "SHARDCHANNELS", "a", "b"], ["CLIENT", "NOSUCH"],
               ["EXEC"])
        p.same(a, b, ["MULTI"], ["PUBSUB", "CHANNELS", "a", "b"],
               ["PING"], ["PUBSUB", "NUMSUB", "a"],
               ["PUBSUB", "SHARDNUMSUB", "a"], ["PUBSUB", "NUMPAT"],
               ["EXEC"])
        p.same(a, b, ["MULTI"], ["EXEC"])  # an empty array
        # RESET ends the transaction at once; QUIT is not queued either.
        p.same(a, b, ["MULTI"], ["PUBLISH", "x", "y"], ["RESET"], ["EXEC"])
        p.same(a, b, ["MULTI"], ["PING"], ["QUIT"])
        assert a.closed() and b.closed()


def test_watch_never_aborts_without_keys():
    with Pair() as p:
        sa, sb = subscribed(p, "SUBSCRIBE", "w")
        a, b = p.conns()
        p.same(a, b, ["WATCH", "k1", "k2"], ["WATCH", "k1"], ["UNWATCH"],
               ["WATCH", "k3"], ["MULTI"], ["PUBLISH", "w", "watched"],
               ["UNWATCH"], ["EXEC"])
        p.compare(sa, sb, 1)


def test_subscribe_inside_multi():
    with Pair() as p:
        a, b = p.conns()
        # Redis 7.0 runs SUBSCRIBE inside EXEC and refuses SSUBSCRIBE
        # there; a PING after the SUBSCRIBE is answered in subscribed
        # mode. The EXEC array counts commands, not the replies of a
        # multi-channel SUBSCRIBE: the bytes are compared as they come.
        p.same(a, b, ["MULTI"], ["SSUBSCRIBE", "s"], ["SUBSCRIBE", "c1"],
               ["PING"], ["PSUBSCRIBE", "p*"], ["EXEC"])
        p.same(a, b, ["MULTI"], ["PING"], ["UNSUBSCRIBE"], ["PUNSUBSCRIBE"],
               ["PING"])
        a, b = p.conns()
        p.same(a, b, ["MULTI"], ["SUBSCRIBE", "c1", "c2"], ["PING"],
               ["EXEC"], n=3)  # *2, two subscribe replies, pong
        p.compare(a, b, 1)


def test_publish_to_itself_inside_exec():
    """A difference: the broker delivers a message through the
    channel's group, from the loop's mailbox, so a client's message to
    itself comes after the EXEC's replies; Redis writes it into the
    array, before the PUBLISH's reply."""
    with Pair() as p:
        a, b = p.conns()
        cmds = [["MULTI"], ["SUBSCRIBE", "me"], ["PUBLISH", "me", "self"],
                ["EXEC"]]
        a.send(*cmds)
        b.send(*cmds)
        assert [a.read() for _ in range(4)][3] == [
            [b"subscribe", b"me", 1], [b"message", b"me", b"self"]]
        assert a.read() == 1  # the PUBLISH's reply, after the array
        assert [b.read() for _ in range(4)][3] == [
            [b"subscribe", b"me", 1], 1]
        assert b.read() == [b"message", b"me", b"self"]


def test_subscribed_client_cannot_start_a_transaction():
    with Pair() as p:
        for kind in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"):
            a, b = subscribed(p, kind, "x")
            p.same(a, b, ["MULTI"], ["EXEC"], ["DISCARD"], ["WATCH", "k"],
                   ["UNWATCH"], ["PING"])


def test_client_list_inside_exec_keeps_order():
    """CLIENT LIST is answered after a round of the broker's loops: an
    EXEC that holds one waits for it, and the replies stay in order."""
    with Pair() as p:
        a, b = p.conns()
        cmds = [["MULTI"], ["PING"], ["CLIENT", "LIST"], ["ECHO", "mid"],
                ["CLIENT", "KILL", "ID", "999999"], ["CLIENT", "INFO"],
                ["EXEC"], ["ECHO", "after"]]
        a.send(*cmds)
        b.send(*cmds)
        ra = [a.read() for _ in cmds]
        rb = [b.read() for _ in cmds]
        for r in (ra, rb):
            assert r[:6] == [b"OK"] + [b"QUEUED"] * 5, r
            assert r[7] == b"after", r
            ex = r[6]
            assert len(ex) == 5 and ex[0] == b"PONG" and ex[2] == b"mid" \
                and ex[3] == 0, ex
            for line in (ex[1], ex[4]):
                assert b" flags=x " in line and b" multi=5 " in line, line


def test_client_kill_of_itself_inside_exec():
    """Both servers close the client after the CLIENT KILL's reply, an
    unfinished EXEC array. A difference: Redis still runs the commands
    queued after it (here a PUBLISH, delivered), the broker does not."""
    with Pair() as p:
        sa, sb = subscribed(p, "SUBSCRIBE", "k")
        got = []
        for c in p.conns():
            c.send(["CLIENT", "ID"])
            me = c.read()
            c.send(["MULTI"], ["CLIENT", "KILL", "ID", me, "SKIPME", "no"],
                   ["PUBLISH", "k", "after-kill"], ["EXEC"], ["PING"])
            data = b""
            c.sock.settimeout(5)
            while True:
                d = c.sock.recv(65536)
                if not d:
                    break
                data += d
            got.append(data)
        assert got[0] == got[1] == (b"+OK\r\n+QUEUED\r\n+QUEUED\r\n"
                                    b"*2\r\n:1\r\n"), got
        assert sa.read() == [b"message", b"k", b"after-kill"]
        b = p.broker_conn()
        b.send(["PUBLISH", "k", "marker"])
        assert b.read() == 1
        assert sb.read() == [b"message", b"k", b"marker"]


def test_queue_bound():
    """--max-queued: the command that would go over it is refused with
    -OOM and the transaction aborts (Redis has no such bound)."""
    with Pair(broker_args=["--max-queued", "300"], redis=False) as p:
        s = p.broker_conn()
        s.send(["SUBSCRIBE", "q"])
        s.read()
        c = p.broker_conn()
        c.send(["MULTI"], ["PUBLISH", "q", "x" * 100],
               ["PUBLISH", "q", "y" * 200], ["PUBLISH", "q", "z"], ["EXEC"])
        r = [c.read() for _ in range(5)]
        assert r[:2] == [b"OK", b"QUEUED"], r
        assert r[2][0] == "err" and r[2][1].startswith(b"OOM "), r
        assert r[3] == b"QUEUED" and r[4] == EXECABORT, r
        # Not a lasting state: the next transaction fits again.
        c.send(["MULTI"], ["PUBLISH", "q", "fits"], ["EXEC"])
        assert [c.read() for _ in range(3)] == [b"OK", b"QUEUED", [1]]
        assert s.read() == [b"message", b"q", b"fits"]


# ---- sharded pub/sub ----------------------------------------------------------

def test_ssubscribe_conversation():
    with Pair() as p:
        sa, sb = p.conns()
        # Channels of different cluster slots in one SSUBSCRIBE: a single
        # node does not check.
        p.same(sa, sb, ["SSUBSCRIBE", "a", "b", "{x}y", "a"], n=4)
        p.same(sa, sb, ["SUBSCRIBE", "a"], ["PSUBSCRIBE", "z*"],
               ["PING"], ["PING", "hi"])
        a, b = p.conns()
        assert p.same(a, b, ["SPUBLISH", "a", "m1"])[0] == 1
        assert p.compare(sa, sb, 1)[0] == [b"smessage", b"a", b"m1"]
        p.same(a, b, ["SPUBLISH", "nobody", "m"], ["SPUBLISH", "{x}y", "m2"])
        p.compare(sa, sb, 1)
        p.same(sa, sb, ["SUNSUBSCRIBE", "a", "zz"], n=2)
        p.same(sa, sb, ["SUNSUBSCRIBE", "b"])
        p.same(sa, sb, ["SUNSUBSCRIBE"])  # the last one, {x}y
        p.same(sa, sb, ["SUNSUBSCRIBE"])  # none left: a nil name
        p.same(sa, sb, ["PING"], ["UNSUBSCRIBE"], ["PUNSUBSCRIBE"], ["PING"])
        p.same(sa, sb, ["SSUBSCRIBE"], ["SPUBLISH", "a"], ["SPUBLISH"],
               ["SUNSUBSCRIBE", "never"])


def test_shard_channels_are_a_namespace_apart():
    with Pair() as p:
        ca, cb = subscribed(p, "SUBSCRIBE", "ns")
        pa, pb = subscribed(p, "PSUBSCRIBE", "n*")
        sa, sb = subscribed(p, "SSUBSCRIBE", "ns")
        a, b = p.conns()
        # SPUBLISH reaches the shard subscriber only; PUBLISH the others.
        assert p.same(a, b, ["SPUBLISH", "ns", "sharded"])[0] == 1
        assert p.same(a, b, ["PUBLISH", "ns", "plain"])[0] == 2
        assert p.compare(ca, cb, 1)[0] == [b"message", b"ns", b"plain"]
        assert p.compare(pa, pb, 1)[0] == [b"pmessage", b"n*", b"ns",
                                           b"plain"]
        assert p.compare(sa, sb, 1)[0] == [b"smessage", b"ns", b"sharded"]
        marker(p, sa, sb, "ns", "shard-marker", shard=True)
        marker(p, ca, cb, "ns", "plain-marker")
        p.compare(pa, pb, 1)
        p.same(a, b, ["PUBSUB", "NUMSUB", "ns"],
               ["PUBSUB", "SHARDNUMSUB", "ns"], ["PUBSUB", "NUMPAT"])


def test_pubsub_shardchannels_and_shardnumsub():
    with Pair() as p:
        a, b = p.conns()
        p.same(a, b, ["PUBSUB", "SHARDCHANNELS"], ["PUBSUB", "SHARDNUMSUB"])
        s1a, s1b = subscribed(p, "SSUBSCRIBE", "news.1", "news.2", "sport")
        s2a, s2b = subscribed(p, "SSUBSCRIBE", "news.1")
        subscribed(p, "SUBSCRIBE", "plain.1", "news.3")
        p.same(a, b, ["PUBSUB", "SHARDCHANNELS"],
               ["PUBSUB", "SHARDCHANNELS", "news.*"],
               ["PUBSUB", "shardchannels", "nomatch*"],
               ["PUBSUB", "CHANNELS"], norm=sorted_reply)
        p.same(a, b, ["PUBSUB", "SHARDNUMSUB", "news.1", "news.2", "news.3",
                      "plain.1", "none"],
               ["PUBSUB", "NUMSUB", "news.1", "news.3"],
               ["PUBSUB", "SHARDCHANNELS", "a", "b"])
        p.same(s2a, s2b, ["SUNSUBSCRIBE", "news.1"])
        p.same(s1a, s1b, ["SUNSUBSCRIBE", "sport"])
        p.same(a, b, ["PUBSUB", "SHARDCHANNELS"],
               ["PUBSUB", "SHARDNUMSUB", "news.1", "sport"],
               norm=sorted_reply)


def test_mixed_subscriptions_on_one_connection():
    with Pair() as p:
        a, b = p.conns()
        # The counts: channels and patterns together, shard channels
        # apart; subscribed mode lasts while any is left.
        p.same(a, b, ["SUBSCRIBE", "c"], ["SSUBSCRIBE", "s1", "s2"],
               ["PSUBSCRIBE", "p*"], ["SUBSCRIBE", "c2"], n=5)
        p.same(a, b, ["UNSUBSCRIBE", "c"], ["PUNSUBSCRIBE", "p*"],
               ["SUNSUBSCRIBE", "s1"], ["UNSUBSCRIBE", "c2"], ["PING"],
               ["PUBLISH", "x", "y"], ["SPUBLISH", "x", "y"])
        pa, pb = p.conns()
        p.same(pa, pb, ["SPUBLISH", "s2", "still"])
        p.compare(a, b, 1)
        p.same(a, b, ["SUNSUBSCRIBE"], ["PING"], ["SPUBLISH", "s2", "me"])


def test_reset_and_quit_drop_shard_subscriptions():
    with Pair() as p:
        a, b = subscribed(p, "SSUBSCRIBE", "r1", "r2")
        c, d = p.conns()
        p.same(a, b, ["RESET"], ["PING"])
        p.same(c, d, ["PUBSUB", "SHARDNUMSUB", "r1", "r2"],
               ["PUBSUB", "SHARDCHANNELS"])
        a, b = subscribed(p, "SSUBSCRIBE", "q1")
        p.same(a, b, ["QUIT"])
        assert a.closed() and b.closed()
        # The close is seen by each server in its own time: ask each
        # until it has, then both once more side by side.
        for conn in (c, d):
            deadline = time.time() + 5 * SLOW
            while True:
                conn.send(["PUBSUB", "SHARDNUMSUB", "q1"])
                r = conn.read()
                if r == [b"q1", 0] or time.time() > deadline:
                    break
                time.sleep(0.02)
            assert r == [b"q1", 0], r
        p.same(c, d, ["PUBSUB", "SHARDNUMSUB", "q1"])


def test_client_list_shows_shard_subscriptions():
    with Pair(redis=False) as p:
        c = p.broker_conn()
        c.send(["CLIENT", "SETNAME", "shard-sub"], ["SSUBSCRIBE", "a", "b"])
        assert [c.read() for _ in range(3)][0] == b"OK"
        q = p.broker_conn()
        q.send(["CLIENT", "LIST", "TYPE", "pubsub"])
        lines = [l for l in q.read().split(b"\n") if b"name=shard-sub" in l]
        assert len(lines) == 1, lines
        assert b" flags=P " in lines[0] and b" sub=0 psub=0 ssub=2 " \
            in lines[0], lines


# ---- with RESP3, INFO and CLIENT LIST --------------------------------------------

def no_hello_details(replies):
    """HELLO's version and id differ by design: blanked."""
    out = []
    for r in replies:
        items = r[1] if isinstance(r, tuple) and r[0] == "map" else r
        if isinstance(items, list) and b"version" in items[::2]:
            r = "HELLO"
        out.append(r)
    return out


def test_resp3_shard_pushes():
    """Redis 7 sends a RESP3 client its ssubscribe, sunsubscribe and
    smessage as pushes; HELLO 2 turns them back into arrays."""
    with Pair() as p:
        a, b = p.conns()
        r2a, r2b = subscribed(p, "SSUBSCRIBE", "s1")  # a RESP2 one
        pa, pb = p.conns()
        p.same(a, b, ["HELLO", "3"], ["SUNSUBSCRIBE"],
               ["SSUBSCRIBE", "s1", "s2"], ["SUBSCRIBE", "c"], n=5,
               norm=no_hello_details)
        # Any command while subscribed, in RESP3.
        p.same(a, b, ["PING"], ["PUBSUB", "SHARDNUMSUB", "s1", "s2"],
               ["SPUBLISH", "nobody", "m"])
        assert p.same(pa, pb, ["SPUBLISH", "s1", "both"])[0] == 2
        assert p.compare(a, b, 1)[0] == ("push", [b"smessage", b"s1",
                                                  b"both"])
        assert p.compare(r2a, r2b, 1)[0] == [b"smessage", b"s1", b"both"]
        # SPUBLISH and PUBLISH stay apart in RESP3 too.
        p.same(pa, pb, ["PUBLISH", "s1", "plain"], ["PUBLISH", "c", "c1"])
        assert p.compare(a, b, 1)[0] == ("push", [b"message", b"c", b"c1"])
        # CLIENT REPLY OFF: pushes still come.
        p.same(a, b, ["CLIENT", "REPLY", "OFF"], ["SSUBSCRIBE", "s3"],
               ["PING"], n=1)
        p.same(pa, pb, ["SPUBLISH", "s3", "off"])
        p.compare(a, b, 1)
        p.same(a, b, ["CLIENT", "REPLY", "ON"], ["SUNSUBSCRIBE", "s3"],
               n=2)
        # HELLO 2 moves the shard subscriptions to RESP2's group.
        p.same(a, b, ["HELLO", "2"], norm=no_hello_details)
        assert p.same(pa, pb, ["SPUBLISH", "s2", "now2"])[0] == 1
        assert p.compare(a, b, 1)[0] == [b"smessage", b"s2", b"now2"]
        p.same(a, b, ["SUNSUBSCRIBE", "s2"], ["SUNSUBSCRIBE"],
               ["UNSUBSCRIBE"], ["PING"], n=4)
        # Back to RESP3 (no longer subscribed), then RESET: every kind
        # of subscription goes, and the protocol is RESP2 again.
        p.same(a, b, ["HELLO", "3"], ["SSUBSCRIBE", "r"],
               ["PSUBSCRIBE", "r*"], ["RESET"], ["PING"],
               norm=no_hello_details)
        p.same(pa, pb, ["PUBSUB", "SHARDNUMSUB", "r"], ["PUBSUB", "NUMPAT"],
               ["SPUBLISH", "r", "gone"])
        # Inside EXEC in RESP3: SSUBSCRIBE refused, SPUBLISH runs.
        p.same(a, b, ["HELLO", "3"], ["MULTI"], ["SSUBSCRIBE", "m"],
               ["SPUBLISH", "s1", "in-exec"], ["EXEC"],
               norm=no_hello_details)
        assert p.compare(r2a, r2b, 1)[0] == [b"smessage", b"s1", b"in-exec"]


def test_info_pubsubshard_channels():
    with Pair() as p:
        def stats(c):
            c.send(["INFO", "stats"])
            r = c.read()
            text = r[1][4:] if isinstance(r, tuple) else r
            return [l for l in text.split(b"\r\n") if l.startswith(b"pubsub")]
        a, b = p.conns()
        assert stats(a) == stats(b)
        subscribed(p, "SSUBSCRIBE", "x", "y", "z")
        subscribed(p, "SSUBSCRIBE", "x")
        subscribed(p, "SUBSCRIBE", "x")
        subscribed(p, "PSUBSCRIBE", "x*")
        sa, sb = stats(a), stats(b)
        assert sa == sb == [b"pubsub_channels:1", b"pubsub_patterns:1",
                            b"pubsubshard_channels:3"], (sa, sb)
        p.same(a, b, ["HELLO", "3"], norm=no_hello_details)
        assert stats(a) == stats(b)


def test_client_list_fields_in_redis_order():
    """Both sides' fields (db, ssub, multi, user, resp; the P and x
    flags) in Redis 7.0's order and with its values."""
    keep = ("name", "flags", "db", "sub", "psub", "ssub", "multi", "cmd",
            "user", "resp")

    def fields(r):
        text = r[1][4:] if isinstance(r, tuple) else r
        return [kv.split("=", 1)[0] + ("=" + kv.split("=", 1)[1]
                                       if kv.split("=", 1)[0] in keep
                                       else "")
                for kv in text.decode().split()]
    with Pair() as p:
        a, b = p.conns()
        ra = p.same(a, b, ["CLIENT", "INFO"], norm=lambda rs: [
            fields(r) for r in rs])
        assert "multi=-1" in ra[0] and "flags=N" in ra[0], ra
        p.same(a, b, ["HELLO", "3", "SETNAME", "nm"], ["SELECT", "5"],
               ["SSUBSCRIBE", "x", "y"], ["SUBSCRIBE", "z"], ["MULTI"],
               ["PUBLISH", "a", "b"], ["PING"], ["CLIENT", "INFO"], n=9,
               norm=no_hello_details)
        r = p.same(a, b, ["EXEC"], norm=lambda rs: [
            fields(x) if not isinstance(x, (list, int)) else x
            for x in rs[0]])
        assert "multi=3" in r[2] and "flags=Px" in r[2] and \
            "ssub=2" in r[2] and "resp=3" in r[2], r
        p.same(a, b, ["CLIENT", "INFO"], norm=lambda rs: [
            fields(r) for r in rs])


# ---- redis-py --------------------------------------------------------------------

def redis_py_or_skip(what):
    if redis is None:
        print("SKIP: %s: python3-redis not installed" % what)
        return False
    return True


def test_redis_py_pipeline():
    """redis-py's pipeline() sends MULTI, the PUBLISHes and EXEC: each
    message reaches a subscriber once, in order, at EXEC."""
    if not redis_py_or_skip("pipeline()"):
        return
    with Pair() as p:
        results = []
        for port in (p.rport, p.bport):
            sub = Conn(port)
            p.conns_made.append(sub)
            sub.send(["SUBSCRIBE", "py"], ["SSUBSCRIBE", "py"])
            sub.read()
            sub.read()
            r = redis.Redis(port=port)
            out = []
            pipe = r.pipeline()  # transaction=True
            for i in range(5):
                pipe.publish("py", "t%d" % i)
            pipe.execute_command("SPUBLISH", "py", "sharded")
            out.append(pipe.execute())
            pipe = r.pipeline(transaction=False)
            for i in range(3):
                pipe.publish("py", "n%d" % i)
            out.append(pipe.execute())
            # A transaction that Redis refuses delivers nothing.
            pipe = r.pipeline()
            pipe.publish("py", "never")
            pipe.execute_command("NOSUCHCOMMAND")
            try:
                pipe.execute()
                out.append("no error")
            except redis.exceptions.ResponseError as e:
                out.append(str(e).split(":")[0])
            r.publish("py", "last")
            got = []
            while True:
                m = sub.read()
                got.append(m)
                if m[-1] == b"last":
                    break
            out.append(got)
            r.close()
            results.append(out)
        assert results[0] == results[1], results
        out = results[1]
        assert out[0] == [1, 1, 1, 1, 1, 1] and out[1] == [1, 1, 1], out
        assert [m[-1] for m in out[3]] == [
            b"t0", b"t1", b"t2", b"t3", b"t4", b"sharded", b"n0", b"n1",
            b"n2", b"last"], out


def test_redis_py_sharded():
    if not redis_py_or_skip("sharded pub/sub"):
        return
    if not (hasattr(redis.Redis, "spublish") and
            hasattr(redis.client.PubSub, "ssubscribe")):
        print("SKIP: redis-py %s has no spublish/ssubscribe"
              % redis.__version__)
        return
    with Pair() as p:
        results = []
        for port in (p.rport, p.bport):
            r = redis.Redis(port=port)
            ps = r.pubsub()
            ps.ssubscribe("sh")
            got = [ps.get_message(timeout=2)]
            n = r.spublish("sh", "hello")
            got.append(ps.get_sharded_message(timeout=2)
                       if hasattr(ps, "get_sharded_message")
                       else ps.get_message(timeout=2))
            results.append((n, got))
            ps.close()
            r.close()
        assert results[0] == results[1], results


if __name__ == "__main__":
    sidebyside.main([
        test_publish_in_multi_delivers_only_at_exec,
        test_discard_delivers_nothing,
        test_execabort_after_a_refused_command_delivers_nothing,
        test_transaction_errors,
        test_watch_never_aborts_without_keys,
        test_subscribe_inside_multi,
        test_publish_to_itself_inside_exec,
        test_subscribed_client_cannot_start_a_transaction,
        test_client_list_inside_exec_keeps_order,
        test_client_kill_of_itself_inside_exec,
        test_queue_bound,
        test_ssubscribe_conversation,
        test_shard_channels_are_a_namespace_apart,
        test_pubsub_shardchannels_and_shardnumsub,
        test_mixed_subscriptions_on_one_connection,
        test_reset_and_quit_drop_shard_subscriptions,
        test_client_list_shows_shard_subscriptions,
        test_resp3_shard_pushes,
        test_info_pubsubshard_channels,
        test_client_list_fields_in_redis_order,
        test_redis_py_pipeline,
        test_redis_py_sharded,
    ])
