# shellcheck shell=bash
# servers.sh: what bench/run.sh (make bench) and bench/scale.sh (make
# bench-scale) share, sourced by both: a scratch directory, starting and
# stopping the servers on free loopback ports, and reading figures out of
# actorconn-bench's JSON.
#
# The sourcing script sets BUILD (the build directory), SRC (the source
# tree), OUT (where results go), MAXC (the client limit given to
# redis-server and memcached) and die(). Sourcing makes the scratch
# directory TMP under OUT and arranges that every server still running is
# stopped when the script exits, however it ends. The TLS servers (tbroker,
# tredis) need tls_certs to have run first.

# Scratch space under the build directory, not /tmp: other programs on a
# shared machine may clean /tmp while a run is going.
mkdir -p "$OUT"
TMP=$(mktemp -d "$OUT/run.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- servers ---------------------------------------------------------------------

# A TCP port in 20000..32767 (below the ephemeral range, where clients get
# theirs) that no socket on this machine uses now.
free_port() {
	local used p
	used=" $(tail -q -n +2 /proc/net/tcp /proc/net/tcp6 2>/dev/null |
		while read -r _ local _; do printf '%d ' "$((16#${local##*:}))"; done)"
	while :; do
		p=$((20000 + RANDOM % 12768))
		case $used in *" $p "*) ;; *) echo "$p"; return ;; esac
	done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME CMD...: starts a server in the background, its output in
# $TMP/NAME.log; CMD may contain @PORT, replaced by a free port, or use
# port 0 and print "listening on HOST:PORT". Sets SPID and SPORT. Tries
# another port if the server cannot start on the first.
start() {
	local name=$1; shift
	for _ in 1 2 3 4 5; do
		local port; port=$(free_port)
		local args=("${@//@PORT/$port}")
		# Empty the log here: the child opens it only after this
		# shell has gone on, and an earlier run's line must not be
		# read as this one's.
		: >"$TMP/$name.log"
		"${args[@]}" >>"$TMP/$name.log" 2>&1 &
		SPID=$!
		PIDS+=("$SPID")
		for _ in $(seq 1 100); do
			kill -0 "$SPID" 2>/dev/null || break
			# The whole line, port and all: a read may catch the
			# line half written.
			SPORT=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' \
				"$TMP/$name.log" | head -n 1)
			[ -z "$SPORT" ] || return 0
			case " $* " in *@PORT*)
				if port_open "$port"; then SPORT=$port; return 0; fi ;;
			esac
			sleep 0.1
		done
		kill -TERM "$SPID" 2>/dev/null || true
		wait "$SPID" 2>/dev/null || true
	done
	cat "$TMP/$name.log" >&2
	die "$name did not start"
}

# stop PID: stops a server that start started, and forgets it, so that
# cleanup never signals a pid that another process may have by then.
stop() {
	local p keep=()
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]+"${keep[@]}"}")
}

# The command line of each server, into CMD. redis-server and memcached get
# room for MAXC clients (their defaults are 10,000 and 1,024).
srv_cmd() {
	case $1 in
	broker) CMD=("$BUILD/actorconn-broker" --listen 127.0.0.1:0) ;;
	broker1) CMD=("$BUILD/actorconn-broker" --listen 127.0.0.1:0
		--threads 1) ;;
	brokerall) CMD=("$BUILD/actorconn-broker" --listen 127.0.0.1:0
		--threads "$(nproc)") ;;
	# The default broker without its wait after a large fan-out.
	brokernw) CMD=("$BUILD/actorconn-broker" --listen 127.0.0.1:0
		--fanout-wait 0) ;;
	redis) CMD=(redis-server --port @PORT --bind 127.0.0.1 --save ''
		--appendonly no --daemonize no --maxclients "$MAXC") ;;
	memcached) CMD=(memcached -p @PORT -U 0 -l 127.0.0.1 -c "$MAXC")
		# memcached refuses to run as root without -u.
		[ "$(id -u)" -ne 0 ] || CMD+=(-u root) ;;
	acecho) CMD=("$BUILD/actorconn-echo" --framing len32
		--listen 127.0.0.1:0) ;;
	# As many threads as actorconn-echo has loops by default (one per CPU
	# less one, at least one: ac_runtime_new(3)), like for like.
	epoll) CMD=("$BUILD/bench/epoll-echo" --listen 127.0.0.1:0
		--threads "$DEFAULT_LOOPS") ;;
	libevent) CMD=("$BUILD/bench/libevent-echo" --listen 127.0.0.1:0) ;;
	# A PING every HB_MS on every connection, the PONG echoed: by the
	# library, and by the raw epoll floor with as many threads as the
	# library has loops.
	hbacecho) CMD=("$BUILD/actorconn-echo" --framing len32
		--heartbeat "$HB_MS" --listen 127.0.0.1:0) ;;
	hbepoll) CMD=("$BUILD/bench/epoll-echo" --listen 127.0.0.1:0
		--threads "$DEFAULT_LOOPS" --heartbeat "$HB_MS") ;;
	# TLS only (no plaintext port), with the same certificate, key and
	# options by the same names; no client certificates asked for.
	tbroker) CMD=("$BUILD/actorconn-broker" --listen none --tls-port 0
		--tls-cert-file "$CERTS/server.pem"
		--tls-key-file "$CERTS/server.key" --tls-auth-clients no) ;;
	tredis) CMD=(redis-server --port 0 --tls-port @PORT --bind 127.0.0.1
		--tls-cert-file "$CERTS/server.pem"
		--tls-key-file "$CERTS/server.key" --tls-auth-clients no
		--save '' --appendonly no --daemonize no --maxclients "$MAXC") ;;
	# Two broker nodes joined through a redis-server of their own
	# (xredis, which must be up first): the xnode comparison.
	xredis) CMD=(redis-server --port @PORT --bind 127.0.0.1 --save ''
		--appendonly no --daemonize no) ;;
	xa | xb) CMD=("$BUILD/actorconn-broker" --listen 127.0.0.1:0
		--cluster "redis://127.0.0.1:${PORT[xredis]}") ;;
	esac
}
# The loops of a runtime with defaults, which the raw epoll server matches.
DEFAULT_LOOPS=$(($(nproc) > 1 ? $(nproc) - 1 : 1))
# The heartbeat servers' period, in ms: the soak's (tests/soak/soak.c).
HB_MS=1000

# Each server's port and pid while it runs (up), and its name in output.
# shellcheck disable=SC2034
declare -A PORT PID LABEL=([broker]=actorconn-broker
	[broker1]="actorconn-broker --threads 1"
	[brokerall]="actorconn-broker --threads $(nproc)"
	[brokernw]="actorconn-broker --fanout-wait 0" [redis]=redis-server
	[memcached]=memcached [acecho]=actorconn-echo [epoll]=epoll-echo
	[libevent]=libevent-echo [hbacecho]="actorconn-echo --heartbeat $HB_MS"
	[hbepoll]="epoll-echo --heartbeat $HB_MS" [tbroker]="actorconn-broker TLS"
	[tredis]="redis-server TLS" [xredis]="redis-server (xnode's)"
	[xa]="2 x actorconn-broker --cluster" [xb]="actorconn-broker --cluster B")
up() {
	srv_cmd "$1"
	start "$1" "${CMD[@]}"
	# shellcheck disable=SC2034 # read by the sourcing script
	PORT[$1]=$SPORT
	PID[$1]=$SPID
}
down() { stop "${PID[$1]}"; }

# ---- TLS ---------------------------------------------------------------------------

# tls_missing: why TLS cannot be measured here, or nothing if it can:
# actorconn-bench built with OpenSSL (it then has a handshake subcommand;
# actorconn-broker comes from the same configure), the openssl command to
# make certificates, and a redis-server built with TLS (Debian's links
# libssl; a build without TLS does not).
tls_missing() {
	if ! "$BUILD/actorconn-bench" handshake --help >/dev/null 2>&1; then
		echo "actorconn-bench was built without OpenSSL (configure --without-openssl)"
	elif ! command -v openssl >/dev/null 2>&1; then
		echo "no openssl command to make certificates (Debian package openssl)"
	elif ! ldd "$(command -v redis-server)" 2>/dev/null | grep -q libssl; then
		echo "redis-server was built without TLS"
	fi
}

# tls_certs: test certificates into CERTS=$TMP/certs (tests/tls_certs.sh:
# a CA, and an EC P-256 server certificate for 127.0.0.1), made fresh for
# the run and removed with TMP: no key outlives it.
tls_certs() {
	CERTS=$TMP/certs
	sh "$SRC/tests/tls_certs.sh" "$CERTS" ||
		die "tests/tls_certs.sh could not make test certificates"
}

# xnode_missing: why the cross-node comparison cannot run here, or nothing
# if it can: actorconn-broker must have --cluster. (If a broker cannot
# start with it, up stops the run and shows the broker's output.)
xnode_missing() {
	"$BUILD/actorconn-broker" --help 2>&1 | grep -q -e '--cluster' ||
		echo "actorconn-broker has no --cluster option"
}

# ---- figures -------------------------------------------------------------------

# num FILE KEY [LINE-PATTERN]: the number after "KEY": on the first line of
# FILE that matches LINE-PATTERN (our JSON has one object per line).
num() {
	grep -F -- "${3:-\"$2\"}" "$1" | head -n 1 |
		sed -n "s/.*\"$2\": \\(-\\{0,1\\}[0-9.][0-9.e+-]*\\).*/\\1/p"
}

# median VALUES...: "-" if there are none.
median() {
	[ $# -gt 0 ] || { echo -; return; }
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The values of KEY over every repetition's JSON file matching GLOB.
collect() {
	local key=$1 pat=$2 f; shift 2
	for f in "$@"; do num "$f" "$key" "$pat"; done
}

files() { local g; for g in "$@"; do [ -e "$g" ] && echo "$g"; done; }
# med KEY GLOB [PATTERN]: the median of KEY over the files GLOB names.
med() {
	local key=$1 glob=$2 pat=${3:-}
	# shellcheck disable=SC2046,SC2086
	median $(collect "$key" "$pat" $(files $glob))
}
