#!/usr/bin/env bash
# scale.sh: `make bench-scale`. How actorconn-broker and redis-server scale,
# in three sweeps; every point starts a fresh server of each kind in turn and
# measures it with actorconn-bench, given the server's pid:
#
#   idle         idle connections, 1,000 to 19,000 (actorconn-bench idle,
#                which spreads them over processes of at most 15,000: a
#                process may hold 20,000 descriptors)
#   subscribers  fanout subscribers, 10 to 10,000; one publisher, 64 B
#   size         fanout message size, 16 B to 64 KiB; SCALE_SIZE_SUBSCRIBERS
#                subscribers (100)
#
# Against each it plots three figures, one PNG per sweep with a panel for
# each figure, log scales on both axes (gnuplot, bench/scale.gp):
#
#   memory per connection  idle: the server's VmRSS growth over the idle
#                          connections. fanout: its growth from before the
#                          connections open to the end of the measured
#                          window, over all of them (output buffers in it)
#   server CPU per op      user + system time of the server, all threads:
#                          idle, per connection accepted and answered once
#                          (one PING); fanout, per delivery in the window
#   p99 latency            idle: a new connection's first round trip
#                          (connect to PONG); fanout: publish to delivery
#
# It writes, under the build directory, bench/results/scale-idle.png,
# scale-subscribers.png and scale-size.png, the figures in scale.csv (one
# line per sweep, point and server) and scale.json (the same, the settings
# and every run's own JSON), and scale.log (every table the runs printed).
#
# Not part of make bench or make check. Each fanout point takes
# BENCH_WARMUP + BENCH_SECONDS and a second or two to connect and drain; an
# idle point the time to open the connections and for memory to settle (6 s
# of idling at least, more while a server trims its idle clients: about 14 s
# for redis-server). With the defaults the whole sweep takes about 4.5
# minutes on 2 cores (19 points, 38 runs: 258 s), about 12 with
# BENCH_REPS=3 (733 s). Like make bench it installs nothing: it checks for
# redis-server and gnuplot.
#
# fanout keeps SCALE_WINDOW messages in flight (--pipeline; make bench uses
# 64): few enough that the p99 is a message's own fan-out time rather than
# a queue of others, and that 8 messages of 64 KiB stay within the
# broker's 1 MiB soft output limit per subscriber.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS          measured seconds of each fanout point [3]
#   BENCH_WARMUP           warm-up seconds before each [1]
#   BENCH_REPS             runs per point and server; figures are medians [1]
#   BENCH_THREADS          load generator threads [1]
#   SCALE_POINTS           keep N points of each sweep (at least 2): its
#                          first, its last and evenly between [all]
#   SCALE_ONLY             the sweeps to run, of: idle subscribers size [all]
#   SCALE_SERVERS          of: broker, broker1 (--threads 1), brokernw
#                          (--fanout-wait 0), redis [broker redis]
#   SCALE_IDLE             idle connections [1000 2000 5000 10000 19000]
#   SCALE_SUBSCRIBERS      subscribers [10 30 100 300 1000 3000 10000]
#   SCALE_SIZES            message bytes [16 64 256 1024 4096 16384 65536]
#   SCALE_SIZE_SUBSCRIBERS subscribers of the size sweep [100]
#   SCALE_WINDOW           fanout messages in flight [8]
#   BENCH_BUILDDIR         where the programs are built [.]
#   BENCH_SRCDIR           the source tree [this script's ../]
#
# The smallest run: SCALE_POINTS=2 BENCH_SECONDS=1 BENCH_WARMUP=0 make
# bench-scale (6 points, 12 runs, about a minute).

# The lists above are split into words on purpose; they are checked to be
# numbers before any use.
# shellcheck disable=SC2086
set -euo pipefail

BUILD=${BENCH_BUILDDIR:-$(pwd)}
SRC=${BENCH_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
DUR=${BENCH_SECONDS:-3}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-1}
THREADS=${BENCH_THREADS:-1}
POINTS=${SCALE_POINTS:-0}
ONLY=${SCALE_ONLY:-idle subscribers size}
SERVERS=${SCALE_SERVERS:-broker redis}
IDLE_LIST=${SCALE_IDLE:-1000 2000 5000 10000 19000}
SUBS_LIST=${SCALE_SUBSCRIBERS:-10 30 100 300 1000 3000 10000}
SIZE_LIST=${SCALE_SIZES:-16 64 256 1024 4096 16384 65536}
SIZE_SUBS=${SCALE_SIZE_SUBSCRIBERS:-100}
WINDOW=${SCALE_WINDOW:-8}
OUT=$BUILD/bench/results
BENCH=$BUILD/actorconn-bench

die() { echo "make bench-scale: $*" >&2; exit 1; }

# ---- settings and what must be there -------------------------------------------

count() { case $1 in '' | *[!0-9]*) return 1 ;; esac; [ "$1" -gt 0 ]; }
count "$REPS" || die "BENCH_REPS must be a positive integer"
[ "$POINTS" = 0 ] || { count "$POINTS" && [ "$POINTS" -ge 2 ]; } ||
	die "SCALE_POINTS must be an integer of at least 2"
for v in $IDLE_LIST $SUBS_LIST $SIZE_LIST $SIZE_SUBS $WINDOW; do
	count "$v" || die "'$v' is not a positive integer"
done
for s in $SERVERS; do
	case $s in broker | broker1 | brokernw | redis) ;; *) die "unknown server '$s' in SCALE_SERVERS" ;; esac
done
for w in $ONLY; do
	case $w in idle | subscribers | size) ;; *) die "unknown sweep '$w' in SCALE_ONLY" ;; esac
done
largest() { printf '%s\n' "$@" | sort -n | tail -n 1; }
max_idle=$(largest $IDLE_LIST)
max_subs=$(largest $SUBS_LIST "$SIZE_SUBS")
[ "$max_idle" -le 19000 ] || die "at most 19000 idle connections (a server holds at most 20,000 descriptors)"
[ "$(largest $SIZE_LIST)" -le 1048576 ] || die "messages of at most 1 MiB"

missing=
for p in redis-server:redis-server gnuplot:gnuplot-nox; do
	command -v "${p%%:*}" >/dev/null 2>&1 || missing="$missing ${p#*:}"
done
[ -z "$missing" ] || die "missing programs; install the Debian packages with:
	apt-get install -y$missing"
for f in actorconn-bench actorconn-broker; do
	[ -x "$BUILD/$f" ] || die "$BUILD/$f is not built (run make bench-scale from the build directory)"
done

# The servers and the load generator (10,000 subscribers in one process)
# need descriptors; the soft limit is often 1,024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$(largest "$max_idle" "$max_subs")
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((need + 100)) ] ||
	die "the descriptor limit, $(ulimit -n), is too low for $need connections"

# Scratch directory, servers, figures: see servers.sh.
MAXC=$((need + 100))
# shellcheck source=bench/servers.sh
. "$SRC/bench/servers.sh"
# Names without spaces for the chart's key, and a colour per server that
# is the same in every chart.
declare -A SHORT=([broker]=actorconn-broker [broker1]=actorconn-broker-1-loop
	[brokernw]=actorconn-broker-no-wait [redis]=redis-server)
declare -A COLOUR=([broker]='#1f77b4' [broker1]='#2ca02c' [brokernw]='#ff7f0e'
	[redis]='#d62728')

# pick N VALUES...: all of them if N is 0 or covers them, else N of them:
# the first, the last and evenly between.
pick() {
	local n=$1 i; shift
	local v=("$@")
	if [ "$n" -eq 0 ] || [ "$n" -ge ${#v[@]} ]; then echo "$@"; return; fi
	for ((i = 0; i < n; i++)); do
		printf '%s ' "${v[$(((i * (${#v[@]} - 1) + (n - 1) / 2) / (n - 1)))]}"
	done
	echo
}

# ---- the runs --------------------------------------------------------------------

RUN_LOG=$TMP/runs.log
: >"$RUN_LOG"

# run SWEEP X SERVER TAG: one run against a fresh SERVER, its JSON in
# $TMP/TAG.json. A server keeps memory that earlier connections used, so
# every memory figure needs a new one.
run() {
	local sweep=$1 x=$2 s=$3 tag=$4 rc=0
	up "$s"
	local common=(--server "127.0.0.1:${PORT[$s]}" --pid "${PID[$s]}"
		--label "${LABEL[$s]}" --json "$TMP/$tag.json")
	local fanout=("$BENCH" fanout "${common[@]}" --publishers 1
		--pipeline "$WINDOW" --duration "$DUR" --warmup "$WARM"
		--threads "$THREADS")
	case $sweep in
	idle) "$BENCH" idle "${common[@]}" --connections "$x" --probe resp ;;
	subscribers) "${fanout[@]}" --subscribers "$x" --size 64 ;;
	size) "${fanout[@]}" --subscribers "$SIZE_SUBS" --size "$x" ;;
	esac >>"$RUN_LOG" 2>&1 || rc=$?
	down "$s"
	if [ "$rc" -ne 0 ]; then
		tail -n 5 "$RUN_LOG" >&2
		die "$sweep $x against ${LABEL[$s]} failed"
	fi
	printf '.'
}

declare -A XS=([idle]="$(pick "$POINTS" $IDLE_LIST)"
	[subscribers]="$(pick "$POINTS" $SUBS_LIST)"
	[size]="$(pick "$POINTS" $SIZE_LIST)")
# shellcheck disable=SC2206 # word splitting is meant
FWD=($SERVERS)
REV=()
for ((i = ${#FWD[@]} - 1; i >= 0; i--)); do REV+=("${FWD[$i]}"); done

start_s=$(date +%s)
echo "make bench-scale: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg);" \
	"servers: $SERVERS; fanout ${DUR} s after ${WARM} s warm-up, window $WINDOW;" \
	"$REPS run(s) per point"
k=0
for sweep in idle subscribers size; do
	case " $ONLY " in *" $sweep "*) ;; *) continue ;; esac
	printf '%-12s' "$sweep"
	for x in ${XS[$sweep]}; do
		for r in $(seq 1 "$REPS"); do
			# The servers take turns, in alternating order.
			k=$((k + 1))
			if [ $((k % 2)) -eq 1 ]; then set -- "${FWD[@]}"; else set -- "${REV[@]}"; fi
			for s in "$@"; do run "$sweep" "$x" "$s" "$sweep-$x-$s-$r"; done
		done
	done
	echo
done

# ---- figures: table, CSV, JSON, charts -------------------------------------------

CSV=$OUT/scale.csv
echo "sweep,x,server,bytes_per_conn,server_cpu_us_per_op,p50_us,p99_us,deliveries_per_s" >"$CSV"
for sweep in idle subscribers size; do
	case " $ONLY " in *" $sweep "*) ;; *) continue ;; esac
	for s in $SERVERS; do
		: >"$TMP/plot-$sweep-$s.dat"
		for x in ${XS[$sweep]}; do
			g="$TMP/$sweep-$x-$s-*.json"
			mem=$(med bytes_per_conn "$g")
			cpu=$(med server_cpu_us_per_op "$g")
			p50=$(med p50_us "$g")
			p99=$(med p99_us "$g")
			rate=$(med deliveries_per_s "$g")
			echo "$sweep,$x,$s,$mem,$cpu,$p50,$p99,$rate" >>"$CSV"
			printf '%s\t%s\t%s\t%s\n' "$x" "$mem" "$cpu" "$p99" \
				>>"$TMP/plot-$sweep-$s.dat"
		done
	done
done

wall=$(($(date +%s) - start_s))

# The table, one block per sweep.
echo
echo "medians of $REPS run(s); B/conn: server memory per connection; CPU us/op: server CPU"
echo "per connection (idle) or delivery (fanout); p99: first reply (idle) or delivery (fanout)"
fmt='%-12s %8s  %-28s %10s %10s %10s %12s\n'
# shellcheck disable=SC2059
printf "$fmt" sweep x server B/conn "CPU us/op" "p99 us" deliveries/s
tail -n +2 "$CSV" | while IFS=, read -r sweep x s mem cpu _ p99 rate; do
	# shellcheck disable=SC2059
	printf "$fmt" "$sweep" "$x" "${LABEL[$s]}" \
		"$(awk -v v="$mem" 'BEGIN { if (v == "-") print v; else printf "%.0f\n", v }')" \
		"$cpu" "$p99" "$rate"
done
echo "wall time: ${wall} s"

{
	printf '{"date": "%s", "host": {"cores": %s, "loadavg": "%s"},\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf ' "settings": {"seconds": %s, "warmup": %s, "reps": %s, "client_threads": %s, "window": %s, "size_sweep_subscribers": %s, "servers": "%s"},\n' \
		"$DUR" "$WARM" "$REPS" "$THREADS" "$WINDOW" "$SIZE_SUBS" "$SERVERS"
	printf ' "wall_s": %s,\n "points": [' "$wall"
	sep=
	j() { if [ "$1" = - ]; then echo null; else echo "$1"; fi; }
	while IFS=, read -r sweep x s mem cpu p50 p99 rate; do
		printf '%s\n  {"sweep": "%s", "x": %s, "server": "%s", "label": "%s", "bytes_per_conn": %s, "server_cpu_us_per_op": %s, "p50_us": %s, "p99_us": %s, "deliveries_per_s": %s}' \
			"$sep" "$sweep" "$x" "$s" "${LABEL[$s]}" "$(j "$mem")" "$(j "$cpu")" \
			"$(j "$p50")" "$(j "$p99")" "$(j "$rate")"
		sep=,
	done < <(tail -n +2 "$CSV")
	printf '\n ],\n "runs": {'
	sep=
	for f in "$TMP"/*.json; do
		[ -e "$f" ] || continue
		printf '%s\n  "%s": %s' "$sep" "$(basename "$f" .json)" "$(tr '\n' ' ' <"$f")"
		sep=,
	done
	printf '\n }}\n'
} >"$OUT/scale.json"
cp "$RUN_LOG" "$OUT/scale.log"

# chart SWEEP XLABEL XBASE XFORMAT MEMORY CPU LATENCY TITLE: one PNG with a
# panel for each figure, a line for each server (see scale.gp).
chart() {
	local sweep=$1 files='' titles='' colours='' s vars
	for s in $SERVERS; do
		files="$files $TMP/plot-$sweep-$s.dat"
		titles="$titles ${SHORT[$s]}"
		colours="$colours ${COLOUR[$s]}"
	done
	vars="files='$files'; titles='$titles'; colours='$colours'"
	vars="$vars; outfile='$OUT/scale-$sweep.png'; xlabel='$2'; xbase=$3"
	vars="$vars; xformat='$4'; memlabel='$5'; cpulabel='$6'; latlabel='$7'"
	vars="$vars; heading='$8'"
	gnuplot -e "$vars" "$SRC/bench/scale.gp" || die "gnuplot failed"
	echo "wrote $OUT/scale-$sweep.png"
}
sub="$(nproc) cores, medians of $REPS, $(date -u +%Y-%m-%d)"
who=
for s in $SERVERS; do who="$who${who:+ vs }${LABEL[$s]}"; done
case " $ONLY " in *" idle "*)
	chart idle "idle connections" 10 '%.0s%c' \
		"server memory per idle connection (bytes)" \
		"server CPU per connection accepted + one PING (us)" \
		"p99 first round trip, connect to PONG (us)" \
		"idle connections: $who; $sub" ;;
esac
case " $ONLY " in *" subscribers "*)
	chart subscribers "subscribers (one publisher, 64 B messages)" 10 '%.0s%c' \
		"server memory per connection under load (bytes)" \
		"server CPU per delivery (us)" \
		"p99 publish to delivery (us)" \
		"fanout subscribers: $who; window $WINDOW; $sub" ;;
esac
case " $ONLY " in *" size "*)
	chart size "message size (bytes; $SIZE_SUBS subscribers)" 4 '%.0b%B' \
		"server memory per connection under load (bytes)" \
		"server CPU per delivery (us)" \
		"p99 publish to delivery (us)" \
		"fanout message size: $who; window $WINDOW; $sub" ;;
esac
echo "wrote $CSV, $OUT/scale.json and $OUT/scale.log"
