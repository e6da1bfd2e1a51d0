#!/usr/bin/env bash
# run.sh: `make bench`. Runs every comparison of libactorconn against a real
# alternative in one run on this machine, prints one table of ratios, and
# writes bench/results/latest.json and latest.png (under the build
# directory). It installs nothing: it checks that redis-server, memcached
# and gnuplot are there and names the Debian packages if not.
#
# Every server starts on a free loopback port and is stopped on exit, however
# the script ends. Each comparison runs BENCH_REPS times, the servers taking
# turns within a repetition (in alternating order), and the table shows
# medians. The load generator (actorconn-bench) and the servers share the
# machine's cores; every server of a comparison gets the same client
# settings. Nothing is pinned to a core (see actorconn-bench(1)).
#
# Every run is given its server's pid, so besides throughput and latency
# it reports the server's CPU time (user + system, all threads) per
# operation in its measured window: per request (ping, echo), per delivery
# (fanout), per connection accepted and answered once (idle), per TLS
# connection accepted, handshaken, answered once and closed (handshake).
# fanout runs actorconn-broker twice, with its default loops (one per core
# less one: one on two cores) and with a loop on every core (--threads
# $(nproc)), so that the table shows what the last core adds or costs
# when the clients share the machine.
#
# heartbeat is the server speaking first: actorconn-echo and the raw epoll
# server (bench/epoll-echo) each write a len32 PING every second on each of
# 5,000 connections (actorconn-bench heartbeat), which answer with a PONG
# that the server echoes. Its figure is the server's CPU per round trip,
# the library's against the floor of the system calls and wake-ups alone;
# and whether every heartbeat came, round trips/s against the expected
# 5,000. Its runs are longer than the others by default (BENCH_HB_SECONDS,
# BENCH_HB_WARMUP): 5,000 round trips a second are few for CPU time read
# in 10 ms ticks.
#
# xnode is fanout across machines, on this one: two actorconn-broker nodes
# joined with --cluster through a redis-server of their own, the 1,000
# subscribers split between the nodes (actorconn-bench fanout
# --sub-server2) and the publisher on the first, against the same load on
# one redis-server. Half the deliveries then cross Redis (node A, Redis,
# node B). Its rows have no server CPU: three processes serve it. Without
# a broker that has --cluster it is left out, and the script says why.
#
# The TLS rows compare actorconn-broker and redis-server, each listening on
# a TLS port only, with the same certificate (tests/tls_certs.sh, made
# into the scratch directory for the run) and the same client, OpenSSL's,
# in actorconn-bench (--tls): ping and fanout as above over TLS, new
# connections per second with a full handshake and resuming a session by
# ticket (actorconn-bench handshake), and memory per idle TLS connection.
# Their runs are shorter than the others (BENCH_TLS_SECONDS), and the
# idle one, which makes 10,000 full handshakes a server, runs
# BENCH_TLS_IDLE_REPS times, so that they add about two minutes to make
# bench. Without OpenSSL, the openssl command or a redis-server with
# TLS, they are left out, and the script says why.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS     measured seconds per network run [5]
#   BENCH_WARMUP      warm-up seconds before each network run [1]
#   BENCH_REPS        repetitions of every comparison, at least 1 [3]
#   BENCH_THREADS     load generator threads [1]
#   BENCH_IDLE_CONNS  connections of the idle-memory comparisons [10000]
#   BENCH_TLS_SECONDS measured seconds of a TLS run, at most BENCH_SECONDS [2]
#   BENCH_TLS_WARMUP  its warm-up, at most BENCH_WARMUP [0.5]
#   BENCH_TLS_IDLE_REPS  repetitions of the TLS idle comparison [1]
#   BENCH_HB_SECONDS  measured seconds of a heartbeat run, best a whole
#                     number of heartbeats [5]
#   BENCH_HB_WARMUP   its warm-up [2]
#   BENCH_ONLY        run only these groups, space separated, of:
#                     micro ping fanout xnode idle echo heartbeat tls
#                     handshake tls-idle [all]
#   BENCH_BUILDDIR    where the programs are built [.]
#   BENCH_SRCDIR      the source tree (for chart.gp) [this script's ../]
set -euo pipefail

BUILD=${BENCH_BUILDDIR:-$(pwd)}
SRC=${BENCH_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
DUR=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_THREADS:-1}
IDLE_N=${BENCH_IDLE_CONNS:-10000}
TLS_GROUPS="tls handshake tls-idle"
ONLY=${BENCH_ONLY:-micro ping fanout xnode idle echo heartbeat $TLS_GROUPS}
# The smaller of each pair: a short make bench shortens the TLS runs too.
TLS_DUR=$(awk -v a="$DUR" -v b="${BENCH_TLS_SECONDS:-2}" 'BEGIN { print (a < b ? a : b) }')
TLS_WARM=$(awk -v a="$WARM" -v b="${BENCH_TLS_WARMUP:-0.5}" 'BEGIN { print (a < b ? a : b) }')
TLS_IDLE_REPS=${BENCH_TLS_IDLE_REPS:-1}
HB_DUR=${BENCH_HB_SECONDS:-5}
HB_WARM=${BENCH_HB_WARMUP:-2}
HB_CONNS=5000
OUT=$BUILD/bench/results
BENCH=$BUILD/actorconn-bench

die() { echo "make bench: $*" >&2; exit 1; }

# ---- what must be there ------------------------------------------------------

missing=
for p in redis-server:redis-server memcached:memcached gnuplot:gnuplot-nox; do
	command -v "${p%%:*}" >/dev/null 2>&1 || missing="$missing ${p#*:}"
done
[ -z "$missing" ] || die "missing programs; install the Debian packages with:
	apt-get install -y$missing"
for f in actorconn-bench actorconn-broker actorconn-echo bench/epoll-echo \
	bench/libevent-echo; do
	[ -x "$BUILD/$f" ] || die "$BUILD/$f is not built (run make bench from the build directory)"
done
case $REPS in '' | *[!0-9]* | 0) die "BENCH_REPS must be a positive integer" ;; esac
case $TLS_IDLE_REPS in '' | *[!0-9]* | 0)
	die "BENCH_TLS_IDLE_REPS must be a positive integer" ;;
esac

# Scratch directory, servers, figures: see servers.sh.
MAXC=$((IDLE_N + 100))
# shellcheck source=bench/servers.sh
. "$SRC/bench/servers.sh"

wants() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# TLS: left out, saying why, when it cannot be measured here; an error if
# BENCH_ONLY asked for it.
TLS_NOTE=
wants_tls=0
for g in $TLS_GROUPS; do if wants "$g"; then wants_tls=1; fi; done
if [ "$wants_tls" -eq 1 ]; then
	TLS_NOTE=$(tls_missing)
	if [ -n "$TLS_NOTE" ]; then
		[ -z "${BENCH_ONLY:-}" ] || die "no TLS rows: $TLS_NOTE"
		ONLY=" $ONLY "
		for g in $TLS_GROUPS; do ONLY=${ONLY// $g / }; done
		wants_tls=0
	else
		tls_certs
	fi
fi

# xnode likewise, without a broker that has --cluster.
XNODE_NOTE=
if wants xnode; then
	XNODE_NOTE=$(xnode_missing)
	if [ -n "$XNODE_NOTE" ]; then
		[ -z "${BENCH_ONLY:-}" ] || die "no xnode rows: $XNODE_NOTE"
		ONLY=" $ONLY "
		ONLY=${ONLY// xnode / }
	fi
fi

RUN_LOG=$TMP/runs.log
# net CMD NAME TAG ARGS...: one run of actorconn-bench CMD against server
# NAME (and its pid, for its CPU time), its JSON in $TMP/TAG.json; the
# table goes to the log.
net() {
	local cmd=$1 name=$2 tag=$3; shift 3
	"$BENCH" "$cmd" --server "127.0.0.1:${PORT[$name]}" --pid "${PID[$name]}" \
		--label "${LABEL[$name]}" --duration "$DUR" --warmup "$WARM" \
		--threads "$THREADS" --json "$TMP/$tag.json" "$@" >>"$RUN_LOG" \
		|| die "actorconn-bench $cmd against ${LABEL[$name]} failed (see above)"
	printf '.'
}

# order A B REP: "A B" on odd repetitions, "B A" on even ones.
order() { if [ $(($3 % 2)) -eq 1 ]; then echo "$1 $2"; else echo "$2 $1"; fi; }

# tnet CMD NAME TAG ARGS...: net over TLS, in the TLS runs' window.
tnet() {
	DUR=$TLS_DUR WARM=$TLS_WARM net "$@" --tls "$CERTS/ca.pem"
}

start_s=$(date +%s)
echo "make bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg);" \
	"${DUR} s runs after ${WARM} s warm-up, $REPS repetitions, $THREADS client thread(s)"
if [ "$wants_tls" -eq 1 ]; then
	echo "make bench: TLS runs of ${TLS_DUR} s after ${TLS_WARM} s warm-up;" \
		"TLS idle $TLS_IDLE_REPS repetition(s)"
elif [ -n "$TLS_NOTE" ]; then
	echo "make bench: no TLS rows: $TLS_NOTE"
fi
[ -z "$XNODE_NOTE" ] || echo "make bench: no xnode rows: $XNODE_NOTE"
if wants heartbeat; then
	echo "make bench: heartbeat runs of ${HB_DUR} s after ${HB_WARM} s warm-up," \
		"$HB_CONNS connections, a PING every $HB_MS ms"
fi

# ---- micro-benchmarks ------------------------------------------------------------
if wants micro; then
	printf 'micro-benchmarks '
	"$BENCH" mailbox --reps "$REPS" --json "$TMP/mailbox.json" >>"$RUN_LOG" ||
		die "actorconn-bench mailbox failed"
	printf '.'
	"$BENCH" handle --reps "$REPS" --json "$TMP/handle.json" >>"$RUN_LOG" ||
		die "actorconn-bench handle failed"
	echo .
fi

# ---- ping and fanout: actorconn-broker vs redis-server ---------------------------
# fanout also runs the broker with a loop on every core, and without its
# wait after a large fan-out: four servers take turns.
if wants ping || wants fanout; then
	up broker
	up redis
	if wants fanout; then up brokerall; up brokernw; fi
	if wants ping; then
		printf 'ping '
		for r in $(seq 1 "$REPS"); do
			for p in 1 16; do
				for s in $(order broker redis "$r"); do
					net ping "$s" "ping-$s-p$p-$r" \
						--connections 50 --pipeline "$p"
				done
			done
		done
		echo
	fi
	if wants fanout; then
		printf 'fanout '
		for r in $(seq 1 "$REPS"); do
			set -- broker brokerall brokernw redis
			[ $((r % 2)) -eq 1 ] || set -- redis brokernw brokerall broker
			for s in "$@"; do
				net fanout "$s" "fanout-$s-$r" --subscribers 1000 \
					--publishers 1 --size 64
			done
		done
		echo
		down brokerall
		down brokernw
	fi
	down broker
	down redis
fi

# ---- xnode: two broker nodes over one Redis vs one redis-server ------------------
# The same client settings as fanout; the nodes' Redis is their own, so
# the redis-server compared with carries nothing else.
if wants xnode; then
	up xredis
	up xa
	up xb
	up redis
	printf 'xnode '
	for r in $(seq 1 "$REPS"); do
		for s in $(order xa redis "$r"); do
			if [ "$s" = xa ]; then
				set -- --sub-server2 "127.0.0.1:${PORT[xb]}"
			else
				set --
			fi
			net fanout "$s" "xnode-$s-$r" --subscribers 1000 \
				--publishers 1 --size 64 "$@"
		done
	done
	echo
	down xa
	down xb
	down xredis
	down redis
fi

# ---- idle memory: a fresh server for every run ------------------------------------
# A server that has held connections keeps the memory for the next ones, so
# each measurement starts a new process.
if wants idle; then
	printf 'idle '
	for r in $(seq 1 "$REPS"); do
		for s in broker redis memcached; do
			up "$s"
			probe=resp
			[ "$s" != memcached ] || probe=memcache
			"$BENCH" idle --server "127.0.0.1:${PORT[$s]}" \
				--pid "${PID[$s]}" --label "${LABEL[$s]}" \
				--connections "$IDLE_N" --probe "$probe" \
				--json "$TMP/idle-$s-$r.json" >>"$RUN_LOG" ||
				die "actorconn-bench idle against ${LABEL[$s]} failed"
			down "$s"
			printf '.'
		done
	done
	echo
fi

# ---- echo: actorconn-echo vs the raw epoll and libevent baselines ------------------
if wants echo; then
	up acecho
	up epoll
	up libevent
	printf 'echo '
	for r in $(seq 1 "$REPS"); do
		for p in 1 16; do
			set -- acecho epoll libevent
			[ $((r % 2)) -eq 1 ] || set -- libevent epoll acecho
			for s in "$@"; do
				net echo "$s" "echo-$s-p$p-$r" --connections 100 \
					--pipeline "$p" --size 64
			done
		done
	done
	echo
	down acecho
	down epoll
	down libevent
fi

# ---- heartbeat: actorconn-echo vs the raw epoll floor -----------------------------
# The servers ping (every HB_MS, servers.sh) and the client answers; the
# client opens its connections over one period before the warm-up.
if wants heartbeat; then
	up hbacecho
	up hbepoll
	printf 'heartbeat '
	for r in $(seq 1 "$REPS"); do
		for s in $(order hbacecho hbepoll "$r"); do
			DUR=$HB_DUR WARM=$HB_WARM net heartbeat "$s" "hb-$s-$r" \
				--connections "$HB_CONNS" --heartbeat "$HB_MS"
		done
	done
	echo
	down hbacecho
	down hbepoll
fi

# ---- TLS: actorconn-broker vs redis-server, each on a TLS port only -----------------
# The same client for both: actorconn-bench with --tls, which verifies the
# server's certificate. ping and fanout as above; then new connections, each
# a handshake and one PING: full handshakes, and resuming the session of a
# first connection (TLS 1.3 tickets; the broker resumes by ticket only).
if wants tls || wants handshake; then
	up tbroker
	up tredis
	if wants tls; then
		printf 'tls ping '
		for r in $(seq 1 "$REPS"); do
			for p in 1 16; do
				for s in $(order tbroker tredis "$r"); do
					tnet ping "$s" "tls-ping-$s-p$p-$r" \
						--connections 50 --pipeline "$p"
				done
			done
		done
		echo
		printf 'tls fanout '
		for r in $(seq 1 "$REPS"); do
			for s in $(order tbroker tredis "$r"); do
				tnet fanout "$s" "tls-fanout-$s-$r" \
					--subscribers 1000 --publishers 1 --size 64
			done
		done
		echo
	fi
	if wants handshake; then
		printf 'handshake '
		for r in $(seq 1 "$REPS"); do
			for m in no yes; do
				for s in $(order tbroker tredis "$r"); do
					tnet handshake "$s" "hs-$m-$s-$r" \
						--resume "$m" --connections 16
				done
			done
		done
		echo
	fi
	down tbroker
	down tredis
fi

# Idle TLS connections: a fresh server for every run, as for idle. Each
# connection makes a full handshake, which costs the client about as much
# CPU as the server: the connections come from one process per core.
if wants tls-idle; then
	printf 'tls idle '
	per=$(((IDLE_N + $(nproc) - 1) / $(nproc)))
	[ "$per" -le 15000 ] || per=15000
	for r in $(seq 1 "$TLS_IDLE_REPS"); do
		for s in $(order tbroker tredis "$r"); do
			up "$s"
			"$BENCH" idle --server "127.0.0.1:${PORT[$s]}" \
				--pid "${PID[$s]}" --label "${LABEL[$s]}" \
				--connections "$IDLE_N" --per-process "$per" \
				--tls "$CERTS/ca.pem" \
				--json "$TMP/tls-idle-$s-$r.json" >>"$RUN_LOG" ||
				die "actorconn-bench idle --tls against ${LABEL[$s]} failed"
			down "$s"
			printf '.'
		done
	done
	echo
fi

# ---- the table ----------------------------------------------------------------------
# Every ratio reads "higher is better for libactorconn": a rate is
# actorconn / alternative, a cost (latency, bytes, ns, server CPU)
# alternative / actorconn. A target row compares with a fixed figure from
# the issue. A row whose id ends in _cpu is the servers' CPU per operation
# (the chart colours those).

ROWS=$TMP/rows.tsv
: >"$ROWS"
# row ID SHORT LABEL ACTORCONN ALTERNATIVE UNIT KIND TARGET
# SHORT names the bar in the chart; KIND: rate (ratio a/b) or cost (ratio
# b/a); TARGET: a ratio or "-".
row() {
	local id=$1 short=$2 label=$3 a=$4 b=$5 unit=$6 kind=$7 target=$8
	local ratio met=-
	ratio=$(awk -v a="$a" -v b="$b" -v k="$kind" 'BEGIN {
		if (a == "-" || b == "-" || a + 0 == 0 || b + 0 == 0) { print "-"; exit }
		printf "%.3f\n", k == "rate" ? a / b : b / a }')
	if [ "$target" != - ] && [ "$ratio" != - ]; then
		met=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r >= t ? "yes" : "no") }')
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$label" "$a" "$b" \
		"$unit" "$ratio" "$target" "$met" "$short" >>"$ROWS"
}

if wants ping; then
	for p in 1 16; do
		a=$(med requests_per_s "$TMP/ping-broker-p$p-*.json")
		b=$(med requests_per_s "$TMP/ping-redis-p$p-*.json")
		row "ping_p${p}_rps" "ping P=$p req/s" "ping C=50 P=$p req/s: broker vs redis" "$a" "$b" "req/s" rate 1.2
		a=$(med p99_us "$TMP/ping-broker-p$p-*.json")
		b=$(med p99_us "$TMP/ping-redis-p$p-*.json")
		row "ping_p${p}_p99" "ping P=$p p99" "ping C=50 P=$p p99: broker vs redis" "$a" "$b" "us" cost 1.0
		a=$(med server_cpu_us_per_op "$TMP/ping-broker-p$p-*.json")
		b=$(med server_cpu_us_per_op "$TMP/ping-redis-p$p-*.json")
		row "ping_p${p}_cpu" "ping P=$p CPU/req" "ping C=50 P=$p server CPU us/op: broker vs redis" "$a" "$b" "us" cost -
	done
fi
# busy GLOB: the median over the files GLOB names of the share of the
# measured window the server spent on a CPU, in percent. A server near
# 100% turns as fast as it can: what it writes per turn is then what the
# client sent it meanwhile, so its CPU per operation follows the client.
busy() {
	local f v=
	# shellcheck disable=SC2086
	for f in $(files $1); do
		v="$v $(awk -v c="$(num "$f" server_cpu_ms)" \
			-v d="$(num "$f" duration_s)" \
			'BEGIN { if (c != "" && d > 0) printf "%.1f\n", c / (d * 10) }')"
	done
	# shellcheck disable=SC2086
	median $v
}

if wants fanout; then
	# Each figure of redis-server against the broker with its defaults,
	# with a loop on every core, and without the fan-out wait.
	f=$TMP/fanout
	rate=$(med deliveries_per_s "$f-redis-*.json")
	p99=$(med p99_us "$f-redis-*.json")
	cpu=$(med server_cpu_us_per_op "$f-redis-*.json")
	row fanout_rate "fanout msg/s" "fanout S=1000 64 B msg/s: broker vs redis" \
		"$(med deliveries_per_s "$f-broker-*.json")" "$rate" "msg/s" rate -
	row fanout_p99 "fanout p99" "fanout S=1000 p99: broker vs redis" \
		"$(med p99_us "$f-broker-*.json")" "$p99" "us" cost 1.0
	row fanout_cpu "fanout CPU/msg" "fanout S=1000 server CPU us/op: broker vs redis" \
		"$(med server_cpu_us_per_op "$f-broker-*.json")" "$cpu" "us" cost 2.0
	row fanout_busy "fanout CPU busy" "fanout S=1000 server on a CPU, % of the window: broker vs redis" \
		"$(busy "$f-broker-*.json")" "$(busy "$f-redis-*.json")" "%" cost -
	# fanout_rows ID SHORT LABEL SERVER: another broker's three rows.
	fanout_rows() {
		row "fanout_$1_rate" "fanout $2 msg/s" "fanout S=1000 64 B msg/s: broker $3 vs redis" \
			"$(med deliveries_per_s "$f-$4-*.json")" "$rate" "msg/s" rate -
		row "fanout_$1_p99" "fanout $2 p99" "fanout S=1000 p99: broker $3 vs redis" \
			"$(med p99_us "$f-$4-*.json")" "$p99" "us" cost -
		row "fanout_$1_cpu" "fanout $2 CPU/msg" "fanout S=1000 server CPU us/op: broker $3 vs redis" \
			"$(med server_cpu_us_per_op "$f-$4-*.json")" "$cpu" "us" cost -
	}
	n=$(nproc)
	fanout_rows all "$n loops" "$n loops" brokerall
	fanout_rows nw "no wait" "--fanout-wait 0" brokernw
	row fanout_nw_busy "fanout no wait CPU busy" "fanout S=1000 server on a CPU, % of the window: broker --fanout-wait 0 vs redis" \
		"$(busy "$f-brokernw-*.json")" "$(busy "$f-redis-*.json")" "%" cost -
fi
if wants xnode; then
	f=$TMP/xnode
	row xnode_rate "xnode msg/s" "xnode S=1000 64 B msg/s: 2 brokers+redis vs redis" \
		"$(med deliveries_per_s "$f-xa-*.json")" \
		"$(med deliveries_per_s "$f-redis-*.json")" "msg/s" rate -
	row xnode_p99 "xnode p99" "xnode S=1000 p99: 2 brokers+redis vs redis" \
		"$(med p99_us "$f-xa-*.json")" "$(med p99_us "$f-redis-*.json")" "us" cost -
fi
if wants idle; then
	a=$(med bytes_per_conn "$TMP/idle-broker-*.json")
	b=$(med bytes_per_conn "$TMP/idle-redis-*.json")
	c=$(med bytes_per_conn "$TMP/idle-memcached-*.json")
	row idle_redis "idle vs redis" "idle $IDLE_N conns B/conn: broker vs redis" "$a" "$b" "B" cost -
	row idle_memcached "idle vs memcached" "idle $IDLE_N conns B/conn: broker vs memcached" "$a" "$c" "B" cost -
	row idle_target "idle vs 512 B" "idle B/conn: broker vs 512 B target" "$a" 512 "B" cost 1.0
	# Per connection accepted and answered once (the probe).
	a=$(med server_cpu_us_per_op "$TMP/idle-broker-*.json")
	b=$(med server_cpu_us_per_op "$TMP/idle-redis-*.json")
	c=$(med server_cpu_us_per_op "$TMP/idle-memcached-*.json")
	row idle_redis_cpu "idle CPU/conn vs redis" "idle $IDLE_N conns server CPU us/op: broker vs redis" "$a" "$b" "us" cost -
	row idle_memcached_cpu "idle CPU/conn vs memcached" "idle $IDLE_N conns server CPU us/op: broker vs memcached" "$a" "$c" "us" cost -
fi
if wants echo; then
	for p in 1 16; do
		a=$(med requests_per_s "$TMP/echo-acecho-p$p-*.json")
		b=$(med requests_per_s "$TMP/echo-epoll-p$p-*.json")
		c=$(med requests_per_s "$TMP/echo-libevent-p$p-*.json")
		row "echo_p${p}_epoll" "echo P=$p vs epoll" "echo C=100 P=$p req/s: actorconn vs raw epoll" "$a" "$b" "req/s" rate 0.9
		row "echo_p${p}_libevent" "echo P=$p vs libevent" "echo C=100 P=$p req/s: actorconn vs libevent 1 thread" "$a" "$c" "req/s" rate 1.2
		a=$(med server_cpu_us_per_op "$TMP/echo-acecho-p$p-*.json")
		b=$(med server_cpu_us_per_op "$TMP/echo-epoll-p$p-*.json")
		c=$(med server_cpu_us_per_op "$TMP/echo-libevent-p$p-*.json")
		row "echo_p${p}_epoll_cpu" "echo P=$p CPU vs epoll" "echo C=100 P=$p server CPU us/op: actorconn vs raw epoll" "$a" "$b" "us" cost -
		row "echo_p${p}_libevent_cpu" "echo P=$p CPU vs libevent" "echo C=100 P=$p server CPU us/op: actorconn vs libevent" "$a" "$c" "us" cost -
	done
fi
if wants heartbeat; then
	f=$TMP/hb
	row heartbeat_cpu "heartbeat CPU vs epoll" \
		"heartbeat C=$HB_CONNS $((HB_MS / 1000)) s srv CPU us/op: actorconn vs raw epoll" \
		"$(med server_cpu_us_per_op "$f-hbacecho-*.json")" \
		"$(med server_cpu_us_per_op "$f-hbepoll-*.json")" "us" cost -
	# Every heartbeat on time: the rate the period and connections give.
	row heartbeat_rate "heartbeat rt/s vs expected" \
		"heartbeat C=$HB_CONNS $((HB_MS / 1000)) s round trips/s: actorconn vs expected" \
		"$(med round_trips_per_s "$f-hbacecho-*.json")" \
		"$((HB_CONNS * 1000 / HB_MS))" "rt/s" rate -
fi
if wants tls; then
	for p in 1 16; do
		f=$TMP/tls-ping
		row "tls_ping_p${p}_rps" "TLS ping P=$p req/s" "TLS ping C=50 P=$p req/s: broker vs redis" \
			"$(med requests_per_s "$f-tbroker-p$p-*.json")" \
			"$(med requests_per_s "$f-tredis-p$p-*.json")" "req/s" rate -
		row "tls_ping_p${p}_p99" "TLS ping P=$p p99" "TLS ping C=50 P=$p p99: broker vs redis" \
			"$(med p99_us "$f-tbroker-p$p-*.json")" \
			"$(med p99_us "$f-tredis-p$p-*.json")" "us" cost -
		row "tls_ping_p${p}_cpu" "TLS ping P=$p CPU/req" "TLS ping C=50 P=$p server CPU us/op: broker vs redis" \
			"$(med server_cpu_us_per_op "$f-tbroker-p$p-*.json")" \
			"$(med server_cpu_us_per_op "$f-tredis-p$p-*.json")" "us" cost -
	done
	f=$TMP/tls-fanout
	row tls_fanout_rate "TLS fanout msg/s" "TLS fanout S=1000 64 B msg/s: broker vs redis" \
		"$(med deliveries_per_s "$f-tbroker-*.json")" \
		"$(med deliveries_per_s "$f-tredis-*.json")" "msg/s" rate -
	row tls_fanout_p99 "TLS fanout p99" "TLS fanout S=1000 p99: broker vs redis" \
		"$(med p99_us "$f-tbroker-*.json")" "$(med p99_us "$f-tredis-*.json")" "us" cost -
	row tls_fanout_cpu "TLS fanout CPU/msg" "TLS fanout S=1000 server CPU us/op: broker vs redis" \
		"$(med server_cpu_us_per_op "$f-tbroker-*.json")" \
		"$(med server_cpu_us_per_op "$f-tredis-*.json")" "us" cost -
fi
if wants handshake; then
	for m in no yes; do
		k=full
		[ "$m" = no ] || k=resumed
		f=$TMP/hs-$m
		row "tls_handshake_${k}_rate" "TLS $k handshake/s" "TLS handshakes C=16 $k conn/s: broker vs redis" \
			"$(med handshakes_per_s "$f-tbroker-*.json")" \
			"$(med handshakes_per_s "$f-tredis-*.json")" "conn/s" rate -
		row "tls_handshake_${k}_cpu" "TLS $k handshake CPU" "TLS handshakes $k server CPU us/conn: broker vs redis" \
			"$(med server_cpu_us_per_op "$f-tbroker-*.json")" \
			"$(med server_cpu_us_per_op "$f-tredis-*.json")" "us" cost -
	done
fi
if wants tls-idle; then
	f=$TMP/tls-idle
	row tls_idle "TLS idle vs redis" "TLS idle $IDLE_N conns B/conn: broker vs redis" \
		"$(med bytes_per_conn "$f-tbroker-*.json")" \
		"$(med bytes_per_conn "$f-tredis-*.json")" "B" cost -
	# Per connection accepted, handshaken and answered once.
	row tls_idle_cpu "TLS idle CPU/conn" "TLS idle $IDLE_N conns server CPU us/op: broker vs redis" \
		"$(med server_cpu_us_per_op "$f-tbroker-*.json")" \
		"$(med server_cpu_us_per_op "$f-tredis-*.json")" "us" cost -
fi
if wants micro; then
	m=$TMP/mailbox.json
	for b in 1 64; do
		pat="\"path\": \"loop -> loop\", \"batch\": $b,"
		a=$(num "$m" actorconn_msgs_per_s "$pat")
		c=$(num "$m" baseline_msgs_per_s "$pat")
		t=-
		[ "$b" -ne 64 ] || t=10
		row "mailbox_loop_b$b" "mailbox batch $b" "mailbox loop->loop batch $b msg/s: vs mutex+eventfd" "$a" "$c" "msg/s" rate "$t"
	done
	a=$(num "$m" actorconn_msgs_per_s '"batch": 64,')
	row mailbox_target "mailbox vs 20M/s" "mailbox loop->loop batch 64 msg/s: vs 20M target" "$a" 20000000 "msg/s" rate 1.0
	pat='"path": "foreign -> loop"'
	a=$(num "$m" actorconn_msgs_per_s "$pat")
	c=$(num "$m" baseline_msgs_per_s "$pat")
	row mailbox_foreign "mailbox foreign" "mailbox foreign->loop msg/s: vs mutex+eventfd" "$a" "$c" "msg/s" rate -
	h=$TMP/handle.json
	for t in 1 2; do
		a=$(num "$h" actorconn_ns "\"threads\": $t,")
		c=$(num "$h" mutex_ns "\"threads\": $t,")
		row "handle_t$t" "handle ${t}T vs mutex" "handle pin+unpin $t thread(s) ns: vs mutex+refcount" "$a" "$c" "ns" cost -
	done
	a=$(num "$h" actorconn_ns '"threads": 1,')
	row handle_target "handle vs 10 ns" "handle pin+unpin 1 thread ns: vs 10 ns target" "$a" 10 "ns" cost 1.0
fi

wall=$(($(date +%s) - start_s))

# Figures as people read them: 1.23M, 456.7k, 890.
human() {
	awk -v v="$1" 'BEGIN {
		if (v == "-") print "-"
		else if (v >= 1e6) printf "%.2fM\n", v / 1e6
		else if (v >= 1e4) printf "%.1fk\n", v / 1e3
		else if (v >= 100) printf "%.0f\n", v
		else if (v >= 1) printf "%.2f\n", v
		else printf "%.3f\n", v }'
}

echo
echo "libactorconn vs alternatives: medians of $REPS; ratio > 1 favours libactorconn"
echo "(rates: actorconn / alternative; costs such as latency, bytes, ns, server CPU: alternative / actorconn)"
echo "(server CPU us/op: the server's user + system time in the measured window, per request, per"
echo " delivery (fanout), per connection accepted and answered once (idle), per connection"
echo " accepted, handshaken, answered once and closed (TLS handshake), per heartbeat round trip"
echo " (heartbeat: PING written, PONG read and echoed))"
if [ "$wants_tls" -eq 1 ]; then
	echo "(TLS rows: ${TLS_DUR} s runs, medians of $REPS; TLS idle: medians of $TLS_IDLE_REPS)"
elif [ -n "$TLS_NOTE" ]; then
	echo "(no TLS rows: $TLS_NOTE)"
fi
[ -z "$XNODE_NOTE" ] || echo "(no xnode rows: $XNODE_NOTE)"
# times R: "1.23x", or "-".
times() { if [ "$1" = - ]; then echo -; else printf '%.2fx\n' "$1"; fi; }
fmt='%-60s %10s %10s %-6s %7s %7s %s\n'
# shellcheck disable=SC2059
printf "$fmt" comparison actorconn other unit ratio target met
while IFS=$'\t' read -r id label a b unit ratio target met _; do
	# shellcheck disable=SC2059
	printf "$fmt" "$label" "$(human "$a")" "$(human "$b")" "$unit" \
		"$(times "$ratio")" "$(times "$target")" "$met"
done <"$ROWS"
echo "wall time: ${wall} s"

# ---- results: JSON and chart ----------------------------------------------------------
{
	printf '{"date": "%s", "host": {"cores": %s, "loadavg": "%s"},\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf ' "settings": {"seconds": %s, "warmup": %s, "reps": %s, "client_threads": %s, "idle_connections": %s,\n' \
		"$DUR" "$WARM" "$REPS" "$THREADS" "$IDLE_N"
	printf '  "heartbeat_seconds": %s, "heartbeat_warmup": %s, "heartbeat_connections": %s, "heartbeat_ms": %s,\n' \
		"$HB_DUR" "$HB_WARM" "$HB_CONNS" "$HB_MS"
	printf '  "tls_seconds": %s, "tls_warmup": %s, "tls_idle_reps": %s, "tls_missing": %s,\n' \
		"$TLS_DUR" "$TLS_WARM" "$TLS_IDLE_REPS" \
		"$(if [ -n "$TLS_NOTE" ]; then printf '"%s"' "$TLS_NOTE"; else echo null; fi)"
	printf '  "xnode_missing": %s},\n' \
		"$(if [ -n "$XNODE_NOTE" ]; then printf '"%s"' "$XNODE_NOTE"; else echo null; fi)"
	printf ' "wall_s": %s,\n "rows": [' "$wall"
	sep=
	while IFS=$'\t' read -r id label a b unit ratio target met short; do
		j() { if [ "$1" = - ]; then echo null; else echo "$1"; fi; }
		case $met in yes) m=true ;; no) m=false ;; *) m=null ;; esac
		printf '%s\n  {"id": "%s", "short": "%s", "comparison": "%s", "actorconn": %s, "alternative": %s, "unit": "%s", "ratio": %s, "target": %s, "met": %s}' \
			"$sep" "$id" "$short" "$label" "$(j "$a")" "$(j "$b")" "$unit" "$(j "$ratio")" "$(j "$target")" "$m"
		sep=,
	done <"$ROWS"
	printf '\n ],\n "runs": {'
	sep=
	for f in "$TMP"/*.json; do
		[ -e "$f" ] || continue
		printf '%s\n  "%s": %s' "$sep" "$(basename "$f" .json)" "$(tr '\n' ' ' <"$f")"
		sep=,
	done
	printf '\n }}\n'
} >"$OUT/latest.json"
cp "$RUN_LOG" "$OUT/latest.log"

awk -F'\t' '$6 != "-" { printf "%d\t%s\t%s\t%s\t%s\t%d\n", n++, $9, $6,
	($7 == "-" ? 0 : $7), ($8 == "yes" ? 1 : 0), ($1 ~ /_cpu$/) }' "$ROWS" >"$TMP/chart.dat"
if [ -s "$TMP/chart.dat" ]; then
	gnuplot -e "datafile='$TMP/chart.dat'; outfile='$OUT/latest.png'; subtitle='$(nproc) cores, medians of $REPS, $(date -u +%Y-%m-%d)'" \
		"$SRC/bench/chart.gp" || die "gnuplot failed"
fi
echo "wrote $OUT/latest.json, $OUT/latest.log and $OUT/latest.png"
