#!/usr/bin/env bash
# test_echo.sh: actorconn-echo as a user runs it: it listens, echoes lines,
# serves Prometheus metrics over HTTP, and exits 0 on SIGTERM.
set -u
bin=${ECHO_BIN:-./actorconn-echo}
out=$(mktemp)
# Port 0 for both: the echo server says which ports it got (a port picked
# here could be taken by then).
# Under make check-valgrind, AC_VALGRIND is the valgrind command line.
# shellcheck disable=SC2086
${AC_VALGRIND:-} "$bin" --listen "127.0.0.1:0" --metrics "127.0.0.1:0" --framing line >"$out" 2>&1 &
pid=$!
fail() { echo "FAIL: $*"; cat "$out"; kill "$pid" 2>/dev/null; rm -f "$out"; exit 1; }

for _ in $(seq 600); do grep -q 'listening on' "$out" && break; sleep 0.05; done
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out")
mport=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$out")
[ -n "$port" ] && [ "$port" != 0 ] || fail "no listening line"
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

kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
rm -f "$out"
echo "PASS: echo, metrics, clean stop"
