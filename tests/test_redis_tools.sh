#!/usr/bin/env bash
# test_redis_tools.sh: real Redis clients against actorconn-broker,
# unchanged: redis-benchmark's inline and multibulk PINGs, redis-cli
# SUBSCRIBE/PUBLISH, CLIENT LIST and CLIENT KILL (and redis-py's
# client_list() when python3-redis is installed). Then the same clients with --tls against --tls-port:
# PING, SUBSCRIBE/PUBLISH across the TLS and plain listeners, a short
# redis-benchmark, a plaintext client refused, certificates reloaded on
# SIGHUP, and --tls-auth-clients yes (mutual TLS). Skipped (exit 77) when
# redis-tools is not installed; the TLS part alone is skipped, saying so,
# when redis-cli has no --tls, there is no openssl command, or the build
# has no OpenSSL.
set -u
bin=${BROKER_BIN:-./actorconn-broker}
srcdir=${ABS_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || {
	echo "SKIP: redis-tools not installed"; exit 77; }
tmp=$(mktemp -d)
out=$tmp/out
pid=
spid=
cleanup() {
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$out"; exit 1; }

# start ARGS...: runs the broker with ARGS; sets pid, and port and tport
# to the plain and TLS ports it printed (empty without that listener).
start() {
	# Emptied first: the broker's own truncation may come after the
	# first look for its line, which must not find the last broker's.
	: >"$out"
	# Under make check-valgrind, AC_VALGRIND is the valgrind command line.
	# Two loops, not the default (one on two CPUs): connections land on
	# both, so replies and messages cross loops.
	# shellcheck disable=SC2086
	${AC_VALGRIND:-} "$bin" --threads 2 "$@" >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 600); do grep -q 'listening on' "$out" && break; sleep 0.05; done
	grep -q 'listening on' "$out" || fail "no listening line"
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
	tport=$(sed -n 's/.* tls:127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
}

# stop: SIGTERM, which must end the broker with status 0.
stop() {
	kill -TERM "$pid"
	wait "$pid" || fail "broker exit status $?"
	pid=
}

# pubsub ARGS...: redis-cli ARGS SUBSCRIBE news must receive what
# redis-cli "${pubargs[@]}" PUBLISHes there (pubargs set by the caller).
pubsub() {
	local sub=$tmp/sub
	timeout 5 redis-cli "$@" SUBSCRIBE news >"$sub" 2>&1 &
	spid=$!
	for _ in $(seq 100); do
		[ "$(redis-cli "${pubargs[@]}" PUBSUB NUMSUB news | tail -1)" = "1" ] && break
		sleep 0.05
	done
	[ "$(redis-cli "${pubargs[@]}" PUBLISH news 'hello from redis-cli')" = "1" ] ||
		fail "PUBLISH count ($*)"
	for _ in $(seq 100); do grep -q 'hello from redis-cli' "$sub" && break; sleep 0.05; done
	kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
	spid=
	[ "$(sed -n 1,3p "$sub" | tr '\n' ' ')" = "subscribe news 1 " ] ||
		fail "subscribe reply ($*): $(cat "$sub")"
	[ "$(sed -n 4,6p "$sub" | tr '\n' ' ')" = "message news hello from redis-cli " ] ||
		fail "message ($*): $(cat "$sub")"
}

start --listen 127.0.0.1:0
[ -n "$port" ] || fail "no port"

bench=$(redis-benchmark -p "$port" -t ping_inline,ping_mbulk -n 20000 -q 2>&1 | tr '\r' '\n')
grep -qE '^PING_INLINE: [0-9.]+ requests per second' <<<"$bench" || fail "ping_inline: $bench"
grep -qE '^PING_MBULK: [0-9.]+ requests per second' <<<"$bench" || fail "ping_mbulk: $bench"

[ "$(redis-cli -p "$port" PING)" = "PONG" ] || fail "PING"
pubargs=(-p "$port")
pubsub -p "$port"

# CLIENT LIST and CLIENT KILL as redis-cli shows them: a subscriber is
# listed (flags=P, sub=1) beside the asker, and killed by its address.
timeout 10 redis-cli -p "$port" SUBSCRIBE news >/dev/null 2>&1 &
spid=$!
for _ in $(seq 100); do
	[ "$(redis-cli -p "$port" PUBSUB NUMSUB news | tail -1)" = "1" ] && break
	sleep 0.05
done
list=$(redis-cli -p "$port" CLIENT LIST)
[ "$(grep -c '^id=' <<<"$list")" = 2 ] || fail "CLIENT LIST: $list"
grep -qE "^id=[0-9]+ addr=127\.0\.0\.1:[0-9]+ laddr=127\.0\.0\.1:$port fd=[0-9]+ name= age=[0-9]+ idle=[0-9]+ flags=P db=0 sub=1 psub=0 .* cmd=subscribe user=default redir=-1 resp=2$" <<<"$list" ||
	fail "CLIENT LIST subscriber line: $list"
grep -q ' flags=N .* cmd=client|list ' <<<"$list" || fail "CLIENT LIST asker line: $list"
saddr=$(sed -n 's/.* addr=\([^ ]*\) .* flags=P .*/\1/p' <<<"$list")
[ "$(redis-cli -p "$port" CLIENT KILL "$saddr")" = "OK" ] || fail "CLIENT KILL $saddr"
for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$spid" 2>/dev/null && fail "the killed subscriber is still connected"
wait "$spid" 2>/dev/null
spid=
[ "$(redis-cli -p "$port" CLIENT KILL "$saddr")" = "ERR No such client" ] ||
	fail "CLIENT KILL of a client gone"
[ "$(redis-cli -p "$port" CLIENT KILL ADDR "$saddr")" = "0" ] || fail "CLIENT KILL ADDR"
[ "$(redis-cli -p "$port" CLIENT KILL ID 1 SKIPME yes)" = "0" ] || fail "CLIENT KILL ID"
# redis-py, where installed, parses the list with its own parser.
for py in python3 /usr/bin/python3; do
	"$py" -c 'import redis' 2>/dev/null || continue
	"$py" - "$port" <<'PY' >"$tmp/py" 2>&1 || fail "redis-py: $(cat "$tmp/py")"
import sys, redis
port = sys.argv[1]
r = redis.Redis(port=int(port))
r.client_setname("py-client")
clients = r.client_list()
me = [c for c in clients if c["name"] == "py-client"]
assert len(me) == 1, clients
c = me[0]
assert c["laddr"] == "127.0.0.1:" + port, c
assert int(c["id"]) == r.client_id(), (c, r.client_id())
for k in ("addr", "fd", "age", "idle", "flags", "db", "sub", "psub", "cmd"):
    assert k in c, (k, c)
assert r.client_getname() == "py-client"
other = redis.Redis(port=int(port))
other.ping()
assert r.client_kill_filter(_id=other.client_id()) == 1
PY
	echo "redis-py: client_list() parses CLIENT LIST"
	break
done
stop
echo "PASS: redis-benchmark and redis-cli against actorconn-broker, CLIENT LIST and KILL"

# ---- TLS ---------------------------------------------------------------------
redis-cli --help 2>&1 | grep -q -- '--tls' || {
	echo "SKIP: TLS: this redis-cli has no --tls"; exit 0; }
command -v openssl >/dev/null || {
	echo "SKIP: TLS: no openssl command to make certificates with"; exit 0; }
# A build without OpenSSL must refuse the TLS options, and say why.
"$bin" --tls-port 0 --tls-cert-file "$tmp/none.pem" --tls-key-file "$tmp/none.key" \
	--tls-auth-clients no >"$out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "a missing certificate: exit status $rc"
if grep -q 'built without OpenSSL' "$out"; then
	echo "SKIP: TLS: $(cat "$out")"
	exit 0
fi
grep -q "TLS: $tmp/none.pem" "$out" || fail "a missing certificate is not named"
# Mutual TLS, the default as in Redis, needs the CA.
"$bin" --tls-port 0 --tls-cert-file "$tmp/none.pem" --tls-key-file "$tmp/none.key" \
	>"$out" 2>&1 && fail "--tls-auth-clients yes without a CA accepted"
grep -q 'needs --tls-ca-cert-file' "$out" || fail "no reason for refusing yes without a CA"

certs=$tmp/certs
sh "$srcdir/tests/tls_certs.sh" "$certs" || fail "tls_certs.sh"
ca=$certs/ca.pem
# The broker reads its certificate from copies, so that SIGHUP can be
# shown other files.
cp "$certs/server.pem" "$tmp/live.pem"
cp "$certs/server.key" "$tmp/live.key"

# served: the SHA-256 fingerprint of the certificate the TLS port serves.
served() {
	openssl s_client -connect "127.0.0.1:$tport" -CAfile "$ca" </dev/null 2>/dev/null |
		openssl x509 -noout -fingerprint -sha256
}
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1"; }

start --listen 127.0.0.1:0 --tls-port 0 --tls-cert-file "$tmp/live.pem" \
	--tls-key-file "$tmp/live.key" --tls-ca-cert-file "$ca" --tls-auth-clients no
[ -n "$port" ] && [ -n "$tport" ] || fail "no plain and TLS ports"
grep -q 'TLS client certificates not asked for' "$out" || fail "no TLS line"
tls=(--tls --cacert "$ca" -p "$tport")
[ "$(redis-cli "${tls[@]}" PING)" = "PONG" ] || fail "TLS PING"
# A TLS subscriber hears a plain publisher, and the other way round: one
# broker behind both listeners.
pubargs=(-p "$port")
pubsub "${tls[@]}"
pubargs=("${tls[@]}")
pubsub -p "$port"
bench=$(redis-benchmark --tls --cacert "$ca" -p "$tport" -t ping -n 2000 -q 2>&1 | tr '\r' '\n')
grep -qE '^PING_INLINE: [0-9.]+ requests per second' <<<"$bench" || fail "TLS ping_inline: $bench"
grep -qE '^PING_MBULK: [0-9.]+ requests per second' <<<"$bench" || fail "TLS ping_mbulk: $bench"
# Plaintext on the TLS port is not a handshake; a client that does not
# trust the CA stops at the handshake.
[ "$(timeout 5 redis-cli -p "$tport" PING 2>/dev/null)" != "PONG" ] || fail "plaintext PING on the TLS port"
[ "$(timeout 5 redis-cli --tls --cacert "$certs/ca2.pem" -p "$tport" PING 2>/dev/null)" != "PONG" ] ||
	fail "TLS PING trusting another CA"

# SIGHUP: new files are served from the next handshake on; files that
# do not make a context (a key of another certificate) change nothing.
[ "$(served)" = "$(fingerprint "$certs/server.pem")" ] || fail "served certificate"
cp "$certs/server2.pem" "$tmp/live.pem"
cp "$certs/server2.key" "$tmp/live.key"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q 'TLS certificates reloaded' "$out" && break; sleep 0.05; done
grep -q 'TLS certificates reloaded' "$out" || fail "no reload"
[ "$(served)" = "$(fingerprint "$certs/server2.pem")" ] || fail "served certificate after reload"
cp "$certs/server.key" "$tmp/live.key"
kill -HUP "$pid"
for _ in $(seq 100); do grep -q 'TLS reload failed' "$out" && break; sleep 0.05; done
grep -q 'TLS reload failed, keeping the old certificates' "$out" || fail "no failed reload"
[ "$(served)" = "$(fingerprint "$certs/server2.pem")" ] || fail "served certificate after a failed reload"
[ "$(redis-cli "${tls[@]}" PING)" = "PONG" ] || fail "TLS PING after reloads"
stop

# Mutual TLS (--tls-auth-clients yes by default), TLS only, on an
# address of its own.
start --listen none --tls-listen 127.0.0.1:0 --tls-cert-file "$certs/server.pem" \
	--tls-key-file "$certs/server.key" --tls-ca-cert-file "$ca"
[ -z "$port" ] && [ -n "$tport" ] || fail "--listen none: $(cat "$out")"
grep -q 'TLS client certificates required' "$out" || fail "no mutual TLS line"
tls=(--tls --cacert "$ca" -p "$tport")
[ "$(redis-cli "${tls[@]}" --cert "$certs/client.pem" --key "$certs/client.key" PING)" = "PONG" ] ||
	fail "mutual TLS PING"
[ "$(timeout 5 redis-cli "${tls[@]}" PING 2>/dev/null)" != "PONG" ] ||
	fail "PING without a client certificate"
[ "$(timeout 5 redis-cli "${tls[@]}" --cert "$certs/rogue.pem" --key "$certs/rogue.key" PING 2>/dev/null)" != "PONG" ] ||
	fail "PING with a client certificate of another CA"
stop
echo "PASS: redis-cli and redis-benchmark over TLS, reload, mutual TLS"
