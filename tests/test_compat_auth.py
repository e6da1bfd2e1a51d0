#!/usr/bin/env python3
"""test_compat_auth.py: actorconn-broker beside redis-server for what
clients send on connect: AUTH with --requirepass and with an ACL file
(NOAUTH, WRONGPASS, users, per-user channels and commands, NOPERM),
HELLO 2 and 3, RESP3 pushes, CLIENT REPLY, SELECT, RESET, INFO sections
and COMMAND's reply shapes; and where they meet MULTI and the sharded
commands: refusals inside a transaction, permissions checked again at
EXEC, ACL rules on the shard commands and on WATCH's keys, COMMAND INFO
of the transaction and shard commands; CONFIG's ACL categories, its
asynchronous SET's place inside EXEC, and COMMAND INFO of its
subcommands. Each conversation goes to both servers and
the replies are compared; where the broker differs on purpose, its reply
is asserted on its own (see actorconn-broker(1), DIFFERENCES FROM
REDIS). Then real clients: redis-cli (-a, --user/--pass, its help from
COMMAND DOCS) and redis-py (password and db, an ACL user, NOPERM, RESP3
where the installed redis-py has it), against both servers.
"""

import hashlib
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sidebyside  # noqa: E402
from sidebyside import Pair  # noqa: E402

PW = "s3cret pass"  # a space in it: passwords are bulk strings

ACL = """
user default on >defpw ~* &* +@all
user alice on >apw ~* &news.* &alerts +@all
user carol off >cpw ~* &* +@all
user dave on nopass &* +@pubsub +ping
user erin on #%s ~* &* +@all
user frank on >fpw ~* +@all
user gina on >gpw ~* &* +@all -publish -client|kill
""" % hashlib.sha256(b"epw").hexdigest()


# For transactions and the shard commands.
ACL_TX = """
user default on >defpw ~* &* +@all
user alice on >apw ~* &news.* &alerts +@all
user tx on >tpw ~* &* -@all +multi +exec +discard +publish +ping
user noexec on >npw ~* &* -@all +multi +publish
user shard on >spw &shard.* +@pubsub
user fast on >fpw ~* &* -@all +@fast
user slow on >slpw ~* &* -@all +@slow
user trans on >trpw ~* &* -@all +@transaction +spublish
user keys on >kpw ~k* %R~r* %W~w* &* +@all
user nokeys on >nkpw &* +@all
"""


def acl_file(text=ACL):
    f = tempfile.NamedTemporaryFile("w", suffix=".acl", delete=False)
    f.write(text)
    f.close()
    return f.name


def hello_norm(replies):
    """HELLO's version and id differ by design: blanked."""
    out = []
    for r in replies:
        kind, items = ("map", r[1]) if isinstance(r, tuple) and \
            r[0] == "map" else (None, r)
        if isinstance(items, list) and b"version" in items[::2]:
            items = list(items)
            for k in (b"version", b"id"):
                items[items.index(k) + 1] = b"?"
            r = (kind, items) if kind else items
        out.append(r)
    return out


def info_fields(text):
    if isinstance(text, tuple):  # RESP3 verbatim
        text = text[1][4:]
    return dict(l.split(":", 1) for l in text.decode().split("\r\n")
                if l and not l.startswith("#"))


def info_sections(text):
    if isinstance(text, tuple):
        text = text[1][4:]
    return [l[2:] for l in text.decode().split("\r\n") if l.startswith("# ")]


def client_field(line, name):
    if isinstance(line, tuple):
        line = line[1][4:]
    for kv in line.decode().split():
        k, _, v = kv.partition("=")
        if k == name:
            return v
    raise KeyError(name)


# ---- AUTH --------------------------------------------------------------------


def requirepass_noauth_and_auth():
    args = ["--requirepass", PW]
    with Pair(broker_args=args, redis_args=args) as p:
        a, b = p.conns()
        # Every command but AUTH, HELLO, QUIT and RESET: NOAUTH; an
        # unknown command and a wrong arity are reported first.
        for cmd in (["PING"], ["SUBSCRIBE", "ch"], ["PSUBSCRIBE", "p*"],
                    ["PUBLISH", "ch", "m"], ["ECHO", "x"], ["CLIENT", "ID"],
                    ["SELECT", "1"], ["INFO"], ["COMMAND", "COUNT"],
                    ["NOSUCH", "x"], ["PUBLISH", "ch"]):
            p.same(a, b, cmd)
        p.same(a, b, ["HELLO", "3"])  # NOAUTH HELLO must be called ...
        p.same(a, b, ["HELLO", "2", "AUTH", "default", "wrong"])
        p.same(a, b, ["AUTH", "wrong"])
        p.same(a, b, ["AUTH", "default", "wrong"])
        p.same(a, b, ["AUTH", "nosuch", PW])
        p.same(a, b, ["AUTH", "a", "b", "c"])  # syntax error
        p.same(a, b, ["PING"])
        p.same(a, b, ["AUTH", PW])
        p.same(a, b, ["PING"], ["AUTH", "default", PW], ["ECHO", "in"])
        # RESET logs out where a password is needed.
        p.same(a, b, ["RESET"], ["PING"], ["AUTH", PW], ["PING"])
        # The failures are counted: 4 wrong passwords or users (Redis
        # 7.2's field; 7.0 has only ACL LOG).
        b.send(["INFO", "stats"])
        assert info_fields(b.read())["acl_access_denied_auth"] == "4"
        # QUIT before AUTH.
        a2, b2 = p.conns()
        p.same(a2, b2, ["QUIT"])
        assert a2.closed() and b2.closed()
        # HELLO with AUTH and SETNAME at once, in RESP3.
        a3, b3 = p.conns()
        p.same(a3, b3, ["HELLO", "3", "AUTH", "default", PW, "SETNAME", "n3"],
               norm=hello_norm)
        p.same(a3, b3, ["CLIENT", "GETNAME"])
        # A SETNAME before a failing AUTH stays, as in Redis.
        a4, b4 = p.conns()
        p.same(a4, b4, ["HELLO", "2", "SETNAME", "early", "AUTH", "default",
                        "bad"])
        p.same(a4, b4, ["AUTH", PW], ["CLIENT", "GETNAME"])


def auth_without_password():
    # An empty --requirepass is no password, as in Redis.
    with Pair(broker_args=["--requirepass", ""],
              redis_args=["--requirepass", ""]) as p:
        a, b = p.conns()
        p.same(a, b, ["AUTH", "x"])  # AUTH <password> called without ...
        p.same(a, b, ["AUTH", "default", "anything"])  # nopass: OK
        p.same(a, b, ["AUTH", "nosuch", "x"])
        p.same(a, b, ["HELLO", "2", "AUTH", "default", "x"], norm=hello_norm)


def aclfile_users_and_channels():
    path = acl_file()
    try:
        args = ["--aclfile", path]
        with Pair(broker_args=args, redis_args=args) as p:
            a, b = p.conns()
            p.same(a, b, ["PING"])  # the default user has a password
            p.same(a, b, ["AUTH", "defpw"], ["PING"])
            # alice: news.* and alerts only.
            p.same(a, b, ["AUTH", "alice", "apw"],
                   ["PUBLISH", "news.eu", "m"], ["PUBLISH", "alerts", "m"],
                   ["PUBLISH", "weather", "m"], ["PUBLISH", "news", "m"],
                   ["SUBSCRIBE", "weather"],
                   ["SUBSCRIBE", "news.eu", "weather"],  # all or nothing
                   ["PSUBSCRIBE", "news.e*"],  # not listed literally
                   ["PSUBSCRIBE", "*"])
            p.same(a, b, ["SUBSCRIBE", "news.eu", "alerts"], n=2)
            p.same(a, b, ["PSUBSCRIBE", "news.*"])  # listed literally
            p.same(a, b, ["SUBSCRIBE", "weather"])  # while subscribed
            p.same(a, b, ["UNSUBSCRIBE", "weather"])  # never refused
            p.same(a, b, ["RESET"])
            # carol is off; erin's password is a SHA-256 in the file.
            p.same(a, b, ["AUTH", "carol", "cpw"], ["AUTH", "erin", "epw"],
                   ["PUBLISH", "any", "m"])
            # frank: no & at all: no channel (Redis 7's resetchannels).
            p.same(a, b, ["AUTH", "frank", "fpw"], ["PUBLISH", "x", "m"],
                   ["PSUBSCRIBE", "x*"], ["ECHO", "e"])
            # gina: every command but PUBLISH and CLIENT KILL.
            p.same(a, b, ["AUTH", "gina", "gpw"], ["PUBLISH", "x", "m"],
                   ["CLIENT", "KILL", "ID", "999999"], ["CLIENT", "ID"],
                   norm=lambda rs: [r if not isinstance(r, int) else 0
                                    for r in rs])
            # dave: nopass, @pubsub and PING only.
            p.same(a, b, ["AUTH", "dave", "whatever"], ["PING"],
                   ["PUBLISH", "x", "m"], ["PUBSUB", "NUMPAT"],
                   ["ECHO", "x"], ["CLIENT", "ID"], ["INFO"],
                   ["SELECT", "0"])
            # HELLO and AUTH stay every user's.
            p.same(a, b, ["HELLO", "3", "AUTH", "alice", "apw"],
                   norm=hello_norm)
            p.same(a, b, ["PUBLISH", "weather", "m"])
            # Denials counted, as in Redis 7.2's INFO (7.0 has only ACL
            # LOG): auth: carol; commands: gina 2, dave 4; channels:
            # alice 7, frank 2, alice in RESP3 1.
            p.same(a, b, ["AUTH", "defpw"])
            b.send(["INFO", "stats"])
            f = info_fields(b.read())
            assert [f["acl_access_denied_" + k] for k in
                    ("auth", "cmd", "channel")] == ["1", "6", "10"], f
            # CLIENT LIST names the user.
            a5, b5 = p.conns()
            p.same(a5, b5, ["AUTH", "alice", "apw"])
            p.same(a5, b5, ["CLIENT", "INFO"],
                   norm=lambda rs: [client_field(r, "user") for r in rs])
            p.same(a, b, ["CLIENT", "KILL", "USER", "nosuch"],
                   ["CLIENT", "KILL", "USER", "alice"])
            assert a5.closed() and b5.closed()
    finally:
        os.unlink(path)


def broker_refuses_bad_acl_options():
    """Deliberate: --requirepass with --aclfile (Redis drops the password
    when the file has no default user), and a file with an error."""
    bin_ = os.environ.get("BROKER_BIN", "./actorconn-broker")
    path = acl_file()
    bad = tempfile.NamedTemporaryFile("w", suffix=".acl", delete=False)
    bad.write("user x on >p +@nosuchcat\n")
    bad.close()
    try:
        for args in (["--requirepass", "p", "--aclfile", path],
                     ["--aclfile", bad.name],
                     ["--aclfile", "/nonexistent/acl"]):
            r = subprocess.run([bin_, "--listen", "127.0.0.1:0"] + args,
                               capture_output=True, timeout=10)
            assert r.returncode == 1, (args, r)
            assert b"actorconn-broker:" in r.stderr, r.stderr
    finally:
        os.unlink(path)
        os.unlink(bad.name)


# ---- with MULTI and the shard commands -----------------------------------------


def transactions_and_permissions():
    """A refused command inside MULTI, NOAUTH or NOPERM, flags the
    transaction and EXEC aborts; a refused EXEC answers EXECABORT with
    its reason; EXEC checks each queued command again, as an AUTH queued
    before it may have changed the user."""
    path = acl_file(ACL_TX)
    try:
        args = ["--aclfile", path]
        with Pair(broker_args=args, redis_args=args) as p:
            a, b = p.conns()
            # Not logged in: MULTI is refused, EXEC aborts with NOAUTH.
            p.same(a, b, ["MULTI"], ["PUBLISH", "c", "m"], ["EXEC"],
                   ["DISCARD"], ["WATCH", "k"])
            p.same(a, b, ["AUTH", "defpw"])
            # alice inside MULTI: a channel she may not use.
            p.same(a, b, ["AUTH", "alice", "apw"], ["MULTI"],
                   ["PUBLISH", "news.x", "queued"],
                   ["PUBLISH", "weather", "m"], ["EXEC"])
            for bad in (["SUBSCRIBE", "news.a", "weather"],
                        ["SSUBSCRIBE", "weather"],
                        ["SPUBLISH", "weather", "m"],
                        ["PSUBSCRIBE", "news.*x"]):
                r = p.same(a, b, ["MULTI"], ["SPUBLISH", "news.x", "q"],
                           bad, ["EXEC"])
                assert r[-1][0] == "err" and \
                    r[-1][1].startswith(b"EXECABORT"), r
            # tx: MULTI, EXEC, PUBLISH and PING only.
            p.same(a, b, ["AUTH", "tx", "tpw"], ["MULTI"],
                   ["PUBLISH", "c", "m"], ["PING"], ["EXEC"])
            p.same(a, b, ["MULTI"], ["ECHO", "x"], ["PUBLISH", "c", "m"],
                   ["EXEC"])
            p.same(a, b, ["MULTI"], ["CLIENT", "ID"], ["DISCARD"],
                   ["EXEC"])
            # noexec may queue but not run: EXEC's own refusal.
            p.same(a, b, ["AUTH", "noexec", "npw"], ["MULTI"],
                   ["PUBLISH", "c", "m"], ["EXEC"], ["DISCARD"], ["EXEC"])
            # An AUTH queued inside MULTI changes the user for the
            # commands after it: checked again at EXEC.
            p.same(a, b, ["AUTH", "defpw"], ["MULTI"],
                   ["AUTH", "alice", "apw"], ["PUBLISH", "weather", "m"],
                   ["PUBLISH", "news.x", "m"], ["SPUBLISH", "alerts", "m"],
                   ["SUBSCRIBE", "news.a", "weather"], ["EXEC"])
            p.same(a, b, ["RESET"], ["AUTH", "defpw"], ["MULTI"],
                   ["AUTH", "dave", "x"], ["AUTH", "shard", "spw"],
                   ["ECHO", "x"], ["SPUBLISH", "shard.1", "m"],
                   ["SPUBLISH", "other", "m"], ["EXEC"])
            p.same(a, b, ["RESET"], ["AUTH", "defpw"], ["MULTI"],
                   ["HELLO", "2", "AUTH", "alice", "apw"],
                   ["PUBLISH", "weather", "m"], ["EXEC"],
                   norm=hello_norm_deep)
            # HELLO 3 inside MULTI: the replies after it, in EXEC's
            # array and after it, are RESP3's.
            p.same(a, b, ["RESET"], ["AUTH", "defpw"], ["MULTI"],
                   ["HELLO", "3"], ["CLIENT", "GETNAME"], ["PING"],
                   ["EXEC"], ["CLIENT", "GETNAME"], norm=hello_norm_deep)
            # RESET inside MULTI ends it, and logs out.
            p.same(a, b, ["MULTI"], ["RESET"], ["EXEC"], ["AUTH", "defpw"],
                   ["EXEC"])
            # Counted: refused commands and channels, inside MULTI and at
            # EXEC alike (Redis 7.2's fields; 7.0 has ACL LOG).
            b.send(["INFO", "stats"])
            f = info_fields(b.read())
            assert [f["acl_access_denied_" + k] for k in
                    ("cmd", "channel")] == ["6", "9"], f
    finally:
        os.unlink(path)


def config_permissions_and_order():
    """CONFIG is in Redis 7's categories (@admin @slow @dangerous, HELP
    @slow only): a user with +@pubsub gets NOPERM for each subcommand.
    CONFIG SET's reply, which waits until every loop has the new limits,
    keeps its place inside EXEC's array and before the replies after it,
    CLIENT REPLY SKIP included. In RESP3, CONFIG GET is a map."""
    path = acl_file(ACL_TX)
    try:
        args = ["--aclfile", path]
        with Pair(broker_args=args, redis_args=args) as p:
            cmds = [["CONFIG", "GET", "timeout"],
                    ["CONFIG", "SET", "client-output-buffer-limit",
                     "pubsub 32mb 8mb 60"],
                    ["CONFIG", "HELP"], ["CONFIG", "RESETSTAT"],
                    ["CONFIG", "REWRITE"]]
            for user, pw in (("shard", "spw"), ("fast", "fpw"),
                             ("slow", "slpw")):
                a, b = p.conns()
                p.same(a, b, ["AUTH", user, pw], *cmds)
            a, b = p.conns()
            p.same(a, b, ["AUTH", "defpw"], ["MULTI"], ["PUBLISH", "c", "m"],
                   cmds[1], ["PING"], ["CONFIG", "GET", "proto-max-bulk-len"],
                   cmds[1], ["EXEC"], ["PING", "after"])
            # SKIP: no reply to the CONFIG SET, the PING's comes next.
            p.same(a, b, ["CLIENT", "REPLY", "SKIP"], cmds[1],
                   ["PING", "next"], n=1)
            p.same(a, b, ["HELLO", "3"], norm=hello_norm)
            p.same(a, b, ["CONFIG", "GET", "timeout"],
                   ["CONFIG", "GET", "*max-bulk*"],
                   ["MULTI"], cmds[1], ["CONFIG", "GET", "timeout"],
                   ["EXEC"])
    finally:
        os.unlink(path)


def shard_commands_and_acl():
    """Channel rules (&) apply to SSUBSCRIBE and SPUBLISH as to
    SUBSCRIBE and PUBLISH; SUNSUBSCRIBE is never refused; the shard and
    transaction commands are in Redis 7's categories."""
    path = acl_file(ACL_TX)
    try:
        args = ["--aclfile", path]
        with Pair(broker_args=args, redis_args=args) as p:
            a, b = p.conns()
            p.same(a, b, ["AUTH", "shard", "spw"],
                   ["SPUBLISH", "shard.1", "m"], ["SPUBLISH", "other", "m"],
                   ["SSUBSCRIBE", "shard.1", "other"],
                   ["PUBSUB", "SHARDCHANNELS"],
                   ["PUBSUB", "SHARDNUMSUB", "shard.1"],
                   ["MULTI"], ["PUBLISH", "shard.1", "m"], ["ECHO", "x"])
            p.same(a, b, ["SSUBSCRIBE", "shard.1", "shard.2"], n=2)
            p.same(a, b, ["SUNSUBSCRIBE", "other", "shard.1"],
                   ["SUNSUBSCRIBE"], n=3)
            for user, pw in (("fast", "fpw"), ("slow", "slpw"),
                             ("trans", "trpw")):
                a, b = p.conns()
                cmds = [["AUTH", user, pw], ["MULTI"], ["WATCH", "k"],
                        ["UNWATCH"], ["DISCARD"], ["SPUBLISH", "s", "m"],
                        ["PUBSUB", "SHARDNUMSUB", "s"], ["PUBLISH", "s", "m"],
                        ["EXEC"], ["DISCARD"]]
                p.same(a, b, *cmds)
                p.same(a, b, ["SSUBSCRIBE", "s"])
                p.same(a, b, ["SUNSUBSCRIBE", "t"])
    finally:
        os.unlink(path)


def watch_keys_and_acl():
    """WATCH is the one command with keys: the key patterns (~, %R~,
    %W~) apply to it, and a refused WATCH inside MULTI flags it."""
    path = acl_file(ACL_TX)
    try:
        args = ["--aclfile", path]
        with Pair(broker_args=args, redis_args=args) as p:
            a, b = p.conns()
            p.same(a, b, ["AUTH", "keys", "kpw"], ["WATCH", "k1"],
                   ["WATCH", "r1", "w1"], ["WATCH", "k1", "x"],
                   ["WATCH", "x"], ["UNWATCH"])
            p.same(a, b, ["AUTH", "nokeys", "nkpw"], ["WATCH", "k"],
                   ["MULTI"], ["WATCH", "k"], ["PUBLISH", "c", "m"],
                   ["EXEC"], ["SPUBLISH", "c", "m"])
            b.send(["INFO", "stats"])
            assert info_fields(b.read())["acl_access_denied_key"] == "4"
    finally:
        os.unlink(path)
    # A key pattern after ~* is an error, as in Redis.
    bin_ = os.environ.get("BROKER_BIN", "./actorconn-broker")
    for line in ("user x on ~* ~a", "user x on %X~a", "user x on %RR~a"):
        bad = acl_file(line + "\n")
        try:
            r = subprocess.run([bin_, "--listen", "127.0.0.1:0",
                                "--aclfile", bad], capture_output=True,
                               timeout=10)
            assert r.returncode == 1 and b"actorconn-broker:" in r.stderr, \
                (line, r)
        finally:
            os.unlink(bad)


def hello_norm_deep(replies):
    """hello_norm, also for a HELLO reply inside EXEC's array."""
    return [hello_norm(r) if isinstance(r, list) and
            any(isinstance(x, (list, tuple)) for x in r) else r
            for r in hello_norm(replies)]


# ---- HELLO and RESP3 ---------------------------------------------------------


def hello_forms():
    with Pair() as p:
        a, b = p.conns()
        for cmd in (["HELLO"], ["HELLO", "2"], ["HELLO", "3"], ["HELLO"],
                    ["HELLO", "4"], ["HELLO", "1"], ["HELLO", "x"],
                    ["HELLO", "03"], ["HELLO", "-3"], ["HELLO", "3", "FOO"],
                    ["HELLO", "3", "SETNAME"], ["HELLO", "3", "AUTH", "u"],
                    ["HELLO", "3", "SETNAME", "bad name"],
                    ["HELLO", "2", "SETNAME", "py"], ["CLIENT", "GETNAME"],
                    ["HELLO", "2"]):
            p.same(a, b, cmd, norm=hello_norm)
        # RESP3 forms of the broker's replies: nulls, maps, verbatim.
        p.same(a, b, ["HELLO", "3"], norm=hello_norm)
        p.same(a, b, ["CLIENT", "SETNAME", "x"], ["CLIENT", "GETNAME"],
               ["CONFIG", "GET", "appendonly"], ["PUBSUB", "NUMSUB", "a"],
               ["PUBSUB", "CHANNELS"], ["PUBSUB", "NUMPAT"], ["ECHO", "e"],
               ["COMMAND", "INFO", "nosuch"], ["COMMAND", "DOCS", "nosuch"])
        p.same(a, b, ["CLIENT", "INFO"], norm=lambda rs: [
            (r[0], client_field(r, "resp")) for r in rs])
        p.same(a, b, ["INFO", "server"], norm=lambda rs: [
            (r[0], r[1][:4]) for r in rs])


def resp3_pushes():
    with Pair() as p:
        a, b = p.conns()
        pa, pb = p.conns()
        p.same(a, b, ["HELLO", "3"], norm=hello_norm)
        p.same(a, b, ["UNSUBSCRIBE"], ["PUNSUBSCRIBE"])  # null channel
        p.same(a, b, ["SUBSCRIBE", "c1", "c2"], n=2)
        p.same(a, b, ["PSUBSCRIBE", "c*"])
        # In RESP3 a subscriber runs every command.
        p.same(a, b, ["PING"], ["PING", "x"], ["ECHO", "e"],
               ["PUBSUB", "NUMSUB", "c1"], ["CLIENT", "GETNAME"])
        p.same(pa, pb, ["PUBLISH", "c1", "hello"])
        p.compare(a, b, 2)  # message, pmessage
        # A RESP2 subscriber of the same channel gets arrays.
        a2, b2 = p.conns()
        p.same(a2, b2, ["SUBSCRIBE", "c1"])
        p.same(pa, pb, ["PUBLISH", "c1", "both"])
        p.compare(a, b, 2)
        p.compare(a2, b2, 1)
        # HELLO 2 while subscribed: the next messages are arrays.
        p.same(a, b, ["HELLO", "2"], norm=hello_norm)
        p.same(pa, pb, ["PUBLISH", "c2", "now2"])
        p.compare(a, b, 2)
        p.same(a, b, ["PING"])  # RESP2 subscribed: the pong array
        # In the order of each server's tables: compared as sets.
        p.same(a, b, ["UNSUBSCRIBE"], n=2, norm=lambda rs: sorted(
            r[1] for r in rs))
        p.same(a, b, ["PUNSUBSCRIBE"])
        # A RESP3 client that publishes to its own channel: the broker
        # replies to PUBLISH first and then delivers; Redis the other
        # way round (documented). Both arrive.
        c = p.broker_conn()
        c.send(["HELLO", "3"])
        c.read()
        c.send(["SUBSCRIBE", "me"])
        assert c.read() == ("push", [b"subscribe", b"me", 1])
        c.send(["PUBLISH", "me", "self"])
        got = [c.read(), c.read()]
        assert 1 in got and ("push", [b"message", b"me", b"self"]) in got, got


def client_reply():
    with Pair() as p:
        a, b = p.conns()
        pa, pb = p.conns()
        p.same(a, b, ["CLIENT", "REPLY", "OFF"], ["PING"], ["ECHO", "x"],
               ["NOSUCH"], ["CLIENT", "REPLY", "ON"], n=1)
        p.same(a, b, ["CLIENT", "REPLY", "SKIP"], ["ECHO", "skipped"],
               ["ECHO", "seen"], n=1)
        p.same(a, b, ["CLIENT", "REPLY", "BAD"])
        # CLIENT LIST and KILL answer later, from every loop: silenced too.
        p.same(a, b, ["CLIENT", "REPLY", "SKIP"], ["CLIENT", "LIST"],
               ["ECHO", "after"], n=1)
        p.same(a, b, ["CLIENT", "REPLY", "OFF"], ["CLIENT", "LIST"],
               ["CLIENT", "KILL", "ID", "12345"], ["CLIENT", "REPLY", "ON"],
               n=1)
        # Subscribe confirmations and messages are pushes: delivered
        # under OFF, in RESP2 and in RESP3.
        for proto in ("2", "3"):
            p.same(a, b, ["HELLO", proto], norm=hello_norm)
            p.same(a, b, ["CLIENT", "REPLY", "OFF"], ["SUBSCRIBE", "r"], n=1)
            p.same(pa, pb, ["PUBLISH", "r", "m" + proto])
            p.compare(a, b, 1)
            p.same(a, b, ["PING"], ["UNSUBSCRIBE"], n=1)
            p.same(a, b, ["CLIENT", "REPLY", "ON"], ["PING"])


def select_and_reset():
    args = ["--requirepass", PW]
    with Pair(broker_args=args, redis_args=args) as p:
        a, b = p.conns()
        pa, pb = p.conns()
        p.same(pa, pb, ["AUTH", PW], ["SELECT", "0"])
        p.same(a, b, ["AUTH", PW])
        for db in ("0", "15", "16", "-1", "abc", "1.5", "99999999999", "3"):
            p.same(a, b, ["SELECT", db])
        p.same(a, b, ["CLIENT", "INFO"],
               norm=lambda rs: [client_field(r, "db") for r in rs])
        # Channels are not per database: db 3 hears db 0's publish.
        p.same(a, b, ["SUBSCRIBE", "s"])
        p.same(pa, pb, ["PUBLISH", "s", "across"])
        p.compare(a, b, 1)
        # RESET: subscriptions, protocol, name, db, user, reply mode.
        p.same(a, b, ["RESET"])
        p.same(a, b, ["HELLO", "3", "AUTH", "default", PW, "SETNAME", "n"],
               norm=hello_norm)
        p.same(a, b, ["SUBSCRIBE", "s"], ["PSUBSCRIBE", "s*"],
               ["SELECT", "5"], ["CLIENT", "REPLY", "SKIP"], ["RESET"],
               n=3)
        p.same(pa, pb, ["PUBLISH", "s", "gone"])
        p.same(a, b, ["PING"])  # NOAUTH again, and no message before it
        p.same(a, b, ["AUTH", PW], ["CLIENT", "GETNAME"])
        p.same(a, b, ["CLIENT", "INFO"], norm=lambda rs: [
            [client_field(r, f) for f in ("db", "resp", "sub", "psub",
                                          "name")] for r in rs])


# ---- INFO and COMMAND ----------------------------------------------------------


def info_sections_and_fields():
    with Pair() as p:
        a, b = p.conns()
        for args in ([], ["server"], ["clients"], ["stats"], ["SERVER"],
                     ["default"], ["all"], ["everything"],
                     ["server", "clients"], ["clients", "server"],
                     ["server", "nosuch"], ["nosuch"], ["keyspace"],
                     ["modules"], ["cpu", "memory", "replication"]):
            p.same(a, b, ["INFO"] + args,
                   norm=lambda rs: [info_sections(r) for r in rs])
        a.send(["INFO"])
        b.send(["INFO"])
        ra, rb = info_fields(a.read()), info_fields(b.read())
        for f in ("redis_version", "redis_mode", "tcp_port",
                  "uptime_in_seconds", "connected_clients", "pubsub_channels",
                  "pubsub_patterns", "total_commands_processed",
                  "process_id", "run_id", "role", "loading",
                  "used_memory"):
            assert f in ra and f in rb, f
        assert rb["tcp_port"] == str(p.bport) and rb["redis_mode"] == \
            "standalone" and rb["role"] == "master", rb
        p.same(a, b, ["SUBSCRIBE", "i1", "i2"], ["PSUBSCRIBE", "i*"], n=3)
        c, d = p.conns()
        p.same(c, d, ["INFO", "stats"], norm=lambda rs: [
            (info_fields(r)["pubsub_channels"],
             info_fields(r)["pubsub_patterns"]) for r in rs])


def command_shapes():
    with Pair() as p:
        a, b = p.conns()
        b.send(["COMMAND"])
        table = b.read()
        names = [e[0].decode() for e in table]
        b.send(["COMMAND", "COUNT"])
        assert b.read() == len(names)  # the broker's own count
        a.send(["COMMAND", "COUNT"])
        assert isinstance(a.read(), int)
        for proto in ("2", "3"):
            p.same(a, b, ["HELLO", proto], norm=hello_norm)
            for name in names:
                a.send(["COMMAND", "INFO", name])
                b.send(["COMMAND", "INFO", name])
                [ra], [rb] = a.read(), b.read()
                assert ra is not None, name  # a Redis command
                subs_a = {s[0]: s for s in strip_sets(ra[9])}
                subs_b = {s[0]: s for s in strip_sets(rb[9])}
                # Everything but the subcommands: equal. A container
                # lists only the broker's subcommands, each as Redis'.
                assert ra[:9] == rb[:9], (name, ra[:9], rb[:9])
                for k, v in subs_b.items():
                    assert subs_a.get(k) == v, (k, subs_a.get(k), v)
                    p.same(a, b, ["COMMAND", "INFO", k.decode()])
                # DOCS: Redis' arguments, since and group; the broker's
                # own summaries.
                a.send(["COMMAND", "DOCS", name])
                b.send(["COMMAND", "DOCS", name])
                da, db_ = a.read(), b.read()
                if proto == "3":
                    da, db_ = da[1], db_[1]
                assert db_[0] == name.encode(), db_
                ea, eb = docs_dict(da[1]), docs_dict(db_[1])
                check_docs(name, ea, eb)
            p.same(a, b, ["COMMAND", "INFO", "nosuch", "ping"],
                   ["COMMAND", "DOCS", "nosuch"], ["COMMAND", "COUNT", "x"],
                   ["COMMAND", "NOSUCH"])
            # The transaction and shard commands, whole, byte for byte.
            # CONFIG and its subcommands, as Redis 7.0 has them.
            p.same(a, b, ["COMMAND", "INFO", "config|get", "config|set",
                          "config|help", "config|rewrite",
                          "config|resetstat"])
            a.send(["COMMAND", "INFO", "config"])
            b.send(["COMMAND", "INFO", "config"])
            [ra], [rb] = a.read(), b.read()
            subs_a = sorted(map(repr, strip_sets(ra[9])))
            subs_b = sorted(map(repr, strip_sets(rb[9])))
            assert ra[:9] == rb[:9] and subs_a == subs_b, (ra, rb)
            p.same(a, b, ["COMMAND", "INFO", "multi", "exec", "discard",
                          "watch", "unwatch", "ssubscribe", "sunsubscribe",
                          "spublish", "pubsub|shardchannels",
                          "pubsub|shardnumsub", "PUBSUB|SHARDNUMSUB"])
        # COMMAND LIST: names Redis has too; FILTERBY ACLCAT as Redis'.
        p.same(a, b, ["HELLO", "2"], norm=hello_norm)
        a.send(["COMMAND", "LIST"])
        b.send(["COMMAND", "LIST"])
        la, lb = set(a.read()), set(b.read())
        assert lb <= la, lb - la
        a.send(["COMMAND", "LIST", "FILTERBY", "ACLCAT", "pubsub"])
        b.send(["COMMAND", "LIST", "FILTERBY", "ACLCAT", "pubsub"])
        assert set(b.read()) == set(a.read()) & lb
        for cat in ("transaction", "fast", "slow"):
            a.send(["COMMAND", "LIST", "FILTERBY", "ACLCAT", cat])
            b.send(["COMMAND", "LIST", "FILTERBY", "ACLCAT", cat])
            assert set(b.read()) == set(a.read()) & lb, cat
        p.same(a, b, ["COMMAND", "LIST", "FILTERBY", "NOSUCH", "x"])


def docs_dict(v):
    if isinstance(v, tuple):
        v = v[1]
    return dict(zip(v[::2], v[1::2]))


def strip_sets(v):
    """RESP3 maps and sets as plain lists, so that arguments compare."""
    if isinstance(v, tuple) and v[0] in ("map", "set"):
        return [strip_sets(x) for x in v[1]]
    if isinstance(v, list):
        return [strip_sets(x) for x in v]
    return v


def check_docs(name, ea, eb):
    for k in (b"summary", b"since", b"group", b"complexity"):
        assert k in eb, (name, k)
    assert ea[b"since"] == eb[b"since"] and ea[b"group"] == eb[b"group"], \
        (name, ea, eb)
    assert strip_sets(ea.get(b"arguments")) == \
        strip_sets(eb.get(b"arguments")), (name, ea.get(b"arguments"),
                                           eb.get(b"arguments"))
    if b"subcommands" in eb:
        sa = docs_dict(ea[b"subcommands"])
        for k, v in docs_dict(eb[b"subcommands"]).items():
            check_docs(k, docs_dict(sa[k]), docs_dict(v))


# ---- real clients --------------------------------------------------------------


def redis_cli():
    cli = shutil.which("redis-cli")
    if not cli:
        print("SKIP: redis_cli: redis-cli not installed")
        return
    path = acl_file()
    try:
        args = ["--aclfile", path]
        with Pair(broker_args=args, redis_args=args) as p:
            def run(port, *argv, stdin=None):
                r = subprocess.run([cli, "-p", str(port)] + list(argv),
                                   input=stdin, capture_output=True,
                                   timeout=20)
                return r.stdout + r.stderr
            for argv in (["-a", "defpw", "--no-auth-warning", "PING"],
                         ["--user", "alice", "--pass", "apw",
                          "--no-auth-warning", "PUBLISH", "news.x", "hi"],
                         ["--user", "alice", "--pass", "apw",
                          "--no-auth-warning", "PUBLISH", "weather", "hi"],
                         ["-a", "wrong", "--no-auth-warning", "PING"],
                         ["PING"],
                         ["-a", "defpw", "--no-auth-warning", "-n", "7",
                          "CLIENT", "INFO"],
                         ["-a", "defpw", "--no-auth-warning", "-3", "HELLO"]):
                ra, rb = run(p.rport, *argv), run(p.bport, *argv)
                if "CLIENT" in argv:  # db=7 in both
                    assert b" db=7 " in ra and b" db=7 " in rb, (ra, rb)
                elif "HELLO" in argv:
                    assert b"proto" in rb and b"3" in rb, rb
                else:
                    assert ra == rb, (argv, ra, rb)
            # A RESP3 subscriber (redis-cli -3) gets the same output.
            outs = []
            for port in (p.rport, p.bport):
                sub = subprocess.Popen(
                    [cli, "-p", str(port), "-3", "--user", "alice", "--pass",
                     "apw", "--no-auth-warning", "SUBSCRIBE", "alerts"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                out = b""
                try:
                    for _ in range(200):  # until it has subscribed
                        if run(port, "-a", "defpw", "--no-auth-warning",
                               "PUBLISH", "alerts", "fire") == b"1\n":
                            break
                        time.sleep(0.05)
                    end = time.time() + 20
                    while b"fire" not in out and time.time() < end:
                        if select.select([sub.stdout], [], [], 0.5)[0]:
                            out += os.read(sub.stdout.fileno(), 4096)
                finally:
                    sub.terminate()
                    sub.wait(10)
                outs.append(out)
            assert outs[0] == outs[1] and b"fire" in outs[1], outs
            # Interactive redis-cli reads COMMAND DOCS on start for its
            # help and hints: run it on a terminal (script(1)), a dumb
            # one so that its line editor asks the terminal nothing.
            script = shutil.which("script")
            if script:
                out = subprocess.run(
                    [script, "-qec", "%s -p %d -a defpw --no-auth-warning"
                     % (cli, p.bport), "/dev/null"],
                    input=b"help publish\nhelp @pubsub\nquit\n",
                    env=dict(os.environ, TERM="dumb"),
                    capture_output=True, timeout=20).stdout
                assert b"PUBLISH" in out and b"channel message" in out, out
                assert b"SUBSCRIBE" in out, out
    finally:
        os.unlink(path)


def redis_py():
    """redis-py against both servers, the same steps; run by the first
    python3 that has it (Debian's python3-redis is under /usr/bin)."""
    code = r'''
import sys, time, redis
port, acl, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def confirmed(ps, n):
    """Waits for n subscribe confirmations: then the server has them."""
    end = time.time() + 20
    while n and time.time() < end:
        m = ps.get_message(timeout=0.2)
        if m and m["type"] in ("subscribe", "psubscribe"):
            n -= 1
    assert n == 0, "subscriptions not confirmed"
def messages(ps, n):
    got, end = [], time.time() + 20
    while len(got) < n and time.time() < end:
        m = ps.get_message(timeout=0.2)
        if m and m["type"] in ("message", "pmessage"):
            got.append((m["channel"], m["data"]))
    return got
if acl == "-":
    r = redis.Redis(port=port, password=pw, db=3)
    assert r.ping()
    ps = r.pubsub()
    ps.subscribe("py")
    ps.psubscribe("p*")
    confirmed(ps, 2)
    assert r.publish("py", "hello") == 2
    assert sorted(messages(ps, 2)) == [(b"py", b"hello")] * 2
    ps.close()
    # Transactions are not the point here; a plain pipeline is.
    pl = r.pipeline(transaction=False)
    pl.publish("py", "a").echo("b")
    assert pl.execute() == [0, b"b"]
    # Which exception depends on the redis-py version; the text not.
    for kw, text in (({"password": "wrong"}, "WRONGPASS"), ({}, "uthentication")):
        try:
            redis.Redis(port=port, **kw).ping()
            raise SystemExit("%s accepted" % kw)
        except (redis.exceptions.AuthenticationError,
                redis.exceptions.ResponseError) as e:
            assert text in str(e), e
    if int(redis.__version__.split(".")[0]) >= 5:
        r3 = redis.Redis(port=port, password=pw, protocol=3)
        ps = r3.pubsub()
        ps.subscribe("py3")
        confirmed(ps, 1)
        assert r3.publish("py3", "x") == 1
        assert messages(ps, 1) == [(b"py3", b"x")]
        print("resp3")
else:
    r = redis.Redis(port=port, username="alice", password="apw")
    assert r.publish("news.a", "m") == 0
    try:
        r.publish("weather", "m")
        raise SystemExit("forbidden channel accepted")
    except redis.exceptions.NoPermissionError as e:
        assert "channels" in str(e), e
    ps = r.pubsub()
    try:
        ps.subscribe("weather")
        ps.get_message(timeout=2)
        raise SystemExit("forbidden subscribe accepted")
    except redis.exceptions.NoPermissionError:
        pass
    ps.close()
    ps = r.pubsub()
    ps.subscribe("news.a")
    confirmed(ps, 1)
    assert r.publish("news.a", "ok") == 1
    assert messages(ps, 1) == [(b"news.a", b"ok")]
print("ok", redis.__version__)
'''
    py = None
    for cand in (sys.executable, "python3", "/usr/bin/python3"):
        exe = shutil.which(cand) if not os.path.isabs(cand) else cand
        if exe and subprocess.run([exe, "-c", "import redis"],
                                  capture_output=True).returncode == 0:
            py = exe
            break
    if not py:
        print("SKIP: redis_py: redis-py not installed")
        return
    path = acl_file()
    try:
        for acl in ("-", path):
            args = ["--requirepass", PW] if acl == "-" else ["--aclfile", acl]
            with Pair(broker_args=args, redis_args=args) as p:
                for port in (p.rport, p.bport):
                    r = subprocess.run([py, "-c", code, str(port), acl, PW],
                                       capture_output=True, timeout=60)
                    assert r.returncode == 0, (port, r.stdout, r.stderr)
                    if b"resp3" not in r.stdout and acl == "-" and \
                            port == p.bport:
                        print("  (redis-py %s has no RESP3: protocol=3 "
                              "not tried)" % r.stdout.split()[-1].decode())
    finally:
        os.unlink(path)


if __name__ == "__main__":
    sidebyside.main([requirepass_noauth_and_auth, auth_without_password,
                     aclfile_users_and_channels,
                     broker_refuses_bad_acl_options,
                     transactions_and_permissions,
                     config_permissions_and_order, shard_commands_and_acl,
                     watch_keys_and_acl, hello_forms,
                     resp3_pushes, client_reply, select_and_reset,
                     info_sections_and_fields, command_shapes, redis_cli,
                     redis_py])
