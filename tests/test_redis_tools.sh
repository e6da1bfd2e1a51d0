#!/usr/bin/env bash
# test_redis_tools.sh: real Redis clients against actorconn-broker,
# unchanged: redis-benchmark's inline and multibulk PINGs, and redis-cli
# SUBSCRIBE/PUBLISH. Skipped (exit 77) when redis-tools is not installed.
set -u
bin=${BROKER_BIN:-./actorconn-broker}
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || {
	echo "SKIP: redis-tools not installed"; exit 77; }
out=$(mktemp)
# Under make check-valgrind, AC_VALGRIND is the valgrind command line.
# shellcheck disable=SC2086
${AC_VALGRIND:-} "$bin" --listen 127.0.0.1:0 >"$out" 2>&1 &
pid=$!
fail() { echo "FAIL: $*"; cat "$out"; kill "$pid" 2>/dev/null; exit 1; }
for _ in $(seq 600); do grep -q 'listening on' "$out" && break; sleep 0.05; done
port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$out")
[ -n "$port" ] || fail "no port"

bench=$(redis-benchmark -p "$port" -t ping_inline,ping_mbulk -n 20000 -q 2>&1 | tr '\r' '\n')
grep -qE '^PING_INLINE: [0-9.]+ requests per second' <<<"$bench" || fail "ping_inline: $bench"
grep -qE '^PING_MBULK: [0-9.]+ requests per second' <<<"$bench" || fail "ping_mbulk: $bench"

[ "$(redis-cli -p "$port" PING)" = "PONG" ] || fail "PING"
sub=$(mktemp)
timeout 5 redis-cli -p "$port" SUBSCRIBE news >"$sub" 2>&1 &
spid=$!
for _ in $(seq 100); do
	[ "$(redis-cli -p "$port" PUBSUB NUMSUB news | tail -1)" = "1" ] && break
	sleep 0.05
done
[ "$(redis-cli -p "$port" PUBLISH news 'hello from redis-cli')" = "1" ] || fail "PUBLISH count"
for _ in $(seq 100); do grep -q 'hello from redis-cli' "$sub" && break; sleep 0.05; done
kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
[ "$(sed -n 1,3p "$sub" | tr '\n' ' ')" = "subscribe news 1 " ] || fail "subscribe reply: $(cat "$sub")"
[ "$(sed -n 4,6p "$sub" | tr '\n' ' ')" = "message news hello from redis-cli " ] || fail "message: $(cat "$sub")"

kill -TERM "$pid"; wait "$pid" || fail "broker exit status $?"
rm -f "$out" "$sub"
echo "PASS: redis-benchmark and redis-cli against actorconn-broker"
