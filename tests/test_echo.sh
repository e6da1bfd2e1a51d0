#!/usr/bin/env bash
# test_echo.sh: actorconn-echo as a user runs it: it listens, echoes lines,
# serves Prometheus metrics over HTTP, and exits 0 on SIGTERM; with
# --heartbeat it pings every connection, and a bad period is refused. Then with
# --tls-cert: openssl s_client gets its line back through TLS, a plaintext
# client is closed, and --tls-verify-client refuses a client without a
# certificate. The TLS part is skipped, saying so, when the build has no
# OpenSSL or there is no openssl command to make certificates with.
set -u
bin=${ECHO_BIN:-./actorconn-echo}
srcdir=${ABS_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
out=$tmp/out
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$out"; exit 1; }

# start ARGS...: runs the echo server with ARGS on port 0 (the server says
# which port it got: a port picked here could be taken by then); sets pid
# and port.
start() {
	# Under make check-valgrind, AC_VALGRIND is the valgrind command line.
	# Emptied first: the server's own truncation may come after the
	# first look for its line, which must not find the last server's.
	: >"$out"
	# Two loops, not the default (one on two CPUs).
	# shellcheck disable=SC2086
	${AC_VALGRIND:-} "$bin" --listen "127.0.0.1:0" --threads 2 "$@" >"$out" 2>&1 &
	pid=$!
	for _ in $(seq 600); do grep -q 'listening on' "$out" && break; sleep 0.05; done
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out")
	[ -n "$port" ] && [ "$port" != 0 ] || fail "no listening line"
}

# stop: SIGTERM, which must end the server with status 0.
stop() {
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
}

start --metrics "127.0.0.1:0" --framing line
mport=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$out")
[ -n "$mport" ] && [ "$mport" != 0 ] || fail "no metrics line"

exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connect"
printf 'hello\n' >&3
IFS= read -r -t 5 line <&3 || fail "no echo"
[ "$line" = "hello" ] || fail "echoed '$line'"
exec 3<&-

exec 4<>"/dev/tcp/127.0.0.1/$mport" || fail "connect metrics"
printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&4
body=$(timeout 5 cat <&4)
exec 4<&-
grep -q '^HTTP/1.0 200 OK' <<<"$body" || fail "no 200"
grep -q '^# TYPE actorconn_conns_accepted_total counter' <<<"$body" || fail "no TYPE line"
grep -qE '^actorconn_conns_accepted_total\{loop="[0-9]+"\} [1-9]' <<<"$body" || fail "accepted not counted"
stop
echo "PASS: echo, metrics, clean stop"

# ---- heartbeat -----------------------------------------------------------------
# A period out of 1..3600000 ms, or not a number, is refused with status 1.
for bad in 0 3600001 -5 12x ''; do
	"$bin" --heartbeat "$bad" >"$out" 2>&1
	rc=$?
	[ "$rc" -eq 1 ] || fail "--heartbeat '$bad': exit status $rc"
	grep -q 'actorconn-echo: bad --heartbeat' "$out" ||
		fail "--heartbeat '$bad': no message"
done

# Every 200 ms a len32 "PING" frame: two of them in well under 2 s, and
# nothing else on a connection that sends nothing.
start --framing len32 --heartbeat 200
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connect"
got=$(timeout 2 head -c 16 <&3 | od -An -tx1 | tr -d ' \n')
exec 3<&-
[ "$got" = "0000000450494e470000000450494e47" ] ||
	fail "heartbeat: got '$got', not two PING frames within 2 s"
stop
echo "PASS: heartbeat pings, bad periods refused"

# ---- TLS ---------------------------------------------------------------------
if ! command -v openssl >/dev/null; then
	echo "SKIP: TLS: no openssl command to make certificates with"
	exit 0
fi
# A build without OpenSSL must refuse the TLS options, and say why.
"$bin" --tls-cert "$tmp/none.pem" --tls-key "$tmp/none.key" >"$out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "a missing certificate: exit status $rc"
if grep -q 'built without OpenSSL' "$out"; then
	echo "SKIP: TLS: $(cat "$out")"
	exit 0
fi
grep -q "TLS: $tmp/none.pem" "$out" || fail "a missing certificate is not named"

certs=$tmp/certs
sh "$srcdir/tests/tls_certs.sh" "$certs" || fail "tls_certs.sh"

# tls_echo LINE ARGS...: sends LINE through openssl s_client with ARGS and
# prints what comes back. The input stays open until the echo is in, or
# s_client has given up, or 5 seconds have passed; then its end makes
# s_client close.
tls_echo() {
	local line=$1 reply=$tmp/reply spid
	shift
	rm -f "$tmp/in"
	mkfifo "$tmp/in"
	: >"$reply"
	timeout 10 openssl s_client -quiet -no_ign_eof -connect "127.0.0.1:$port" \
		-verify_return_error "$@" <"$tmp/in" >"$reply" 2>"$tmp/s_client.err" &
	spid=$!
	exec 5>"$tmp/in"
	printf '%s\n' "$line" >&5
	for _ in $(seq 100); do
		grep -qF "$line" "$reply" && break
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.05
	done
	exec 5>&-
	wait "$spid"
	cat "$reply"
}

start --framing line --tls-cert "$certs/server.pem" --tls-key "$certs/server.key"
grep -q 'line framing, TLS)' "$out" || fail "no TLS in the listening line"
[ "$(tls_echo 'hello over tls' -CAfile "$certs/ca.pem")" = "hello over tls" ] ||
	fail "TLS echo: $(cat "$tmp/s_client.err")"
# A client that does not trust the server's CA stops at the handshake.
[ -z "$(tls_echo 'untrusted' -CAfile "$certs/ca2.pem")" ] || fail "ca2 trusted"
# A plaintext client is closed: the bytes are not a TLS handshake.
exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connect"
printf 'hello\n' >&3
timeout 5 cat <&3 >"$tmp/plain" 2>/dev/null
rc=$?
exec 3<&-
[ "$rc" -ne 124 ] || fail "a plaintext client was not closed"
! grep -q hello "$tmp/plain" || fail "a plaintext client got its echo"
stop

start --framing line --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" \
	--tls-ca "$certs/ca.pem" --tls-verify-client
grep -q 'TLS with client certificates)' "$out" || fail "no mutual TLS in the listening line"
[ "$(tls_echo 'mutual' -CAfile "$certs/ca.pem" -cert "$certs/client.pem" \
	-key "$certs/client.key")" = "mutual" ] || fail "mutual TLS echo: $(cat "$tmp/s_client.err")"
[ -z "$(tls_echo 'no certificate' -CAfile "$certs/ca.pem")" ] ||
	fail "echo without a client certificate"
[ -z "$(tls_echo 'rogue' -CAfile "$certs/ca.pem" -cert "$certs/rogue.pem" \
	-key "$certs/rogue.key")" ] || fail "echo with a certificate of another CA"
stop
echo "PASS: TLS echo, plaintext refused, client certificates"
