/*
 * actorconn-bench: benchmarks of libactorconn, each side by side with a
 * real alternative measured in the same run on the same machine.
 *
 *   actorconn-bench mailbox  micro: messages/s through the mailboxes
 *   actorconn-bench handle   micro: ns per weak-handle pin+unpin
 *   actorconn-bench work     micro: empty work items through the worker
 *                            pool, round trip and items/s (work.c)
 *   actorconn-bench ping     RESP PING load (reqload.c)
 *   actorconn-bench echo     len32 echo load (reqload.c)
 *   actorconn-bench fanout   RESP pub/sub delivery (fanout.c)
 *   actorconn-bench idle     a server's memory per idle connection (idle.c)
 *   actorconn-bench heartbeat  a server's CPU per heartbeat round trip
 *                            (heartbeat.c)
 *   actorconn-bench handshake  TLS handshakes/s, full or resumed
 *                            (handshake.c; built with OpenSSL only)
 *
 * ping, echo, fanout and idle speak TLS with --tls CAFILE (tls.c), when
 * built with OpenSSL.
 *
 * Every figure is a median over --reps repetitions. The micro-benchmarks
 * alternate the library and its baseline within each repetition so that
 * drift on a shared machine hits both alike; the network subcommands
 * measure one server per run, and bench/run.sh (make bench) alternates the
 * servers. The program only prints: it asserts nothing about speed, but it
 * does check that the work was done (every message consumed, every pin
 * successful, every reply correct) and exits 1 if not.
 *
 * This file holds the subcommand table, the option parser and the small
 * helpers every subcommand uses. The table and JSON writers are in
 * report.c; the two micro-benchmarks, which link the library's internals
 * (internal.h), in mailbox.c and handle.c.
 */
#include "config.h"
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small shared helpers ------------------------------------------------ */

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

ac_runtime_t *bench_runtime(int loops)
{
	ac_config_t cfg = {.loops = loops, .mailbox_capacity = MB_CAPACITY};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	int err;

	if (!rt)
		die("ac_runtime_new: %s", strerror(errno));
	if ((err = ac_runtime_start(rt)))
		die("ac_runtime_start: %s", ac_strerror(err));
	return rt;
}

/* ---- another process, from /proc -------------------------------------------- */

double proc_cpu_ms(long long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Field 2, the command name, is in parentheses and may hold spaces
	 * and parentheses itself: count from the last ')', which ends it.
	 * Field 3 (state) is then at p + 2; 4 to 13 are skipped. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			  "%llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

long long proc_rss_kib(long long pid)
{
	char path[64], line[256];
	long long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%lld/status", pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kib = strtoll(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

/* ---- options ----------------------------------------------------------------
 * One table for every subcommand: an option is a name, its O_* bit, how its
 * value is read, where it goes in struct opts, and its largest value. A
 * subcommand accepts the options whose bits it lists.
 */
enum vkind {
	V_COUNT,   /* positive integer; k, M, G multiply by powers of 1000 */
	V_SECONDS, /* a decimal number of seconds */
	V_STRING,
	V_PROBE,   /* resp | memcache | len32 | none */
	V_YESNO,   /* yes | no, into an int */
};

struct optdef {
	const char *name;
	unsigned bit;
	enum vkind kind;
	size_t off;     /* in struct opts */
	long long max;  /* V_COUNT, V_SECONDS: largest value accepted */
	int is_int;     /* V_COUNT: the field is an int, not a long long */
};

#define OFF(f) offsetof(struct opts, f)
static const struct optdef optdefs[] = {
	{"messages", O_MESSAGES, V_COUNT, OFF(messages), LLONG_MAX, 0},
	{"iterations", O_ITERATIONS, V_COUNT, OFF(iterations), LLONG_MAX, 0},
	{"reps", O_REPS, V_COUNT, OFF(reps), MAX_REPS, 1},
	{"json", O_JSON, V_STRING, OFF(json), 0, 0},
	{"server", O_SERVER, V_STRING, OFF(server), 0, 0},
	{"label", O_LABEL, V_STRING, OFF(label), 0, 0},
	/* One process holds at most about 20,000 descriptors; idle spreads
	 * its connections over processes, the others do not. */
	{"connections", O_CONNECTIONS, V_COUNT, OFF(connections), 1000000, 0},
	{"pipeline", O_PIPELINE, V_COUNT, OFF(pipeline), 4096, 0},
	{"duration", O_DURATION, V_SECONDS, OFF(duration), 3600, 0},
	{"warmup", O_WARMUP, V_SECONDS, OFF(warmup), 600, 0},
	{"threads", O_THREADS, V_COUNT, OFF(threads), 64, 1},
	/* actorconn-echo's default max_frame is 1 MiB. */
	{"size", O_SIZE, V_COUNT, OFF(size), 1 << 20, 0},
	{"subscribers", O_SUBSCRIBERS, V_COUNT, OFF(subscribers), 100000, 0},
	{"publishers", O_PUBLISHERS, V_COUNT, OFF(publishers), 1000, 0},
	/* The server's process: idle measures its memory; ping, echo,
	 * fanout, handshake and heartbeat its CPU time. */
	{"pid", O_PID, V_COUNT, OFF(pid), INT_MAX, 0},
	{"probe", O_PROBE, V_PROBE, OFF(probe), 0, 0},
	{"per-process", O_PER_PROCESS, V_COUNT, OFF(per_process), 19000, 0},
	/* fanout across two nodes of one service (actorconn-broker
	 * --cluster): half the subscribers on another address. */
	{"sub-server2", O_SUB_SERVER2, V_STRING, OFF(sub_server2), 0, 0},
	/* heartbeat: the period the server was started with, in ms (at most
	 * an hour, as actorconn-echo takes). */
	{"heartbeat", O_HEARTBEAT, V_COUNT, OFF(heartbeat), 3600000, 0},
#ifdef AC_HAVE_OPENSSL
	/* The CA file to verify the server's certificate against. */
	{"tls", O_TLS, V_STRING, OFF(tls), 0, 0},
	{"resume", O_RESUME, V_YESNO, OFF(resume), 0, 0},
#endif
};
#undef OFF
#define NOPTS ((int)(sizeof(optdefs) / sizeof(optdefs[0])))
#define OPT_VAL0 1000 /* getopt_long's val for optdefs[0]; clear of chars */

struct subcmd {
	const char *name;
	const char *args;    /* usage line after the name */
	const char *summary;
	unsigned accepts;    /* O_* bits */
	unsigned requires;   /* O_* bits of options that must be given */
	long long min_count; /* smallest --messages / --iterations */
	struct opts defaults;
	int (*run)(const struct opts *o);
};

/* A positive count; k, M and G multiply by powers of 1000. */
static int parse_count(const char *s, long long *out)
{
	char *end;
	long long v, mul = 1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1000; end++; break;
	case 'm': case 'M': mul = 1000000; end++; break;
	case 'g': case 'G': mul = 1000000000; end++; break;
	default: break;
	}
	if (*end || v <= 0 || v > LLONG_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* Stores optarg into the field d names; -1 if it is not a valid value. */
static int set_opt(const struct subcmd *sc, const struct optdef *d,
		   const char *arg, struct opts *o)
{
	char *field = (char *)o + d->off, *end;
	long long v;
	double s;

	switch (d->kind) {
	case V_COUNT:
		if (parse_count(arg, &v) || v > d->max)
			return -1;
		if ((d->bit & (O_MESSAGES | O_ITERATIONS)) && v < sc->min_count)
			return -1;
		if (d->is_int)
			*(int *)(void *)field = (int)v;
		else
			*(long long *)(void *)field = v;
		return 0;
	case V_SECONDS:
		errno = 0;
		s = strtod(arg, &end);
		/* --warmup may be 0; a run needs some time. */
		if (errno || end == arg || *end || !(s >= 0) || s > d->max ||
		    (d->bit == O_DURATION && s <= 0))
			return -1;
		*(double *)(void *)field = s;
		return 0;
	case V_STRING:
		*(const char **)(void *)field = arg;
		return 0;
	case V_PROBE:
		if (!strcmp(arg, "resp"))
			o->probe = PROBE_RESP;
		else if (!strcmp(arg, "memcache"))
			o->probe = PROBE_MEMCACHE;
		else if (!strcmp(arg, "len32"))
			o->probe = PROBE_LEN32;
		else if (!strcmp(arg, "none"))
			o->probe = PROBE_NONE;
		else
			return -1;
		return 0;
	case V_YESNO:
		if (strcmp(arg, "yes") && strcmp(arg, "no"))
			return -1;
		*(int *)(void *)field = !strcmp(arg, "yes");
		return 0;
	}
	return -1;
}

static int parse_opts(const struct subcmd *sc, int argc, char **argv,
		      struct opts *o)
{
	struct option long_opts[NOPTS + 2];
	int c, li;

	for (int i = 0; i < NOPTS; i++)
		long_opts[i] = (struct option){optdefs[i].name,
					       required_argument, NULL,
					       OPT_VAL0 + i};
	long_opts[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
	long_opts[NOPTS + 1] = (struct option){NULL, 0, NULL, 0};

	*o = sc->defaults;
	optind = 1;
	opterr = 0; /* our messages name the subcommand, not argv[0] */
	while ((c = getopt_long(argc, argv, ":h", long_opts, &li)) != -1) {
		const struct optdef *d;

		if (c == 'h')
			return 1;
		if (c == ':' || c == '?') {
			fprintf(stderr, PROG " %s: %s '%s'\n", sc->name,
				c == ':' ? "missing value for"
					 : "unknown option",
				argv[optind - 1]);
			return -1;
		}
		d = &optdefs[c - OPT_VAL0];
		if (!(sc->accepts & d->bit)) {
			fprintf(stderr, PROG " %s: --%s does not apply\n",
				sc->name, d->name);
			return -1;
		}
		if (set_opt(sc, d, optarg, o)) {
			fprintf(stderr, PROG " %s: bad value '%s' for --%s\n",
				sc->name, optarg, d->name);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, PROG " %s: unexpected argument '%s'\n",
			sc->name, argv[optind]);
		return -1;
	}
	if ((sc->requires & O_SERVER) && !o->server) {
		fprintf(stderr, PROG " %s: --server HOST:PORT is required\n",
			sc->name);
		return -1;
	}
	if ((sc->requires & O_PID) && !o->pid) {
		fprintf(stderr, PROG " %s: --pid PID is required\n", sc->name);
		return -1;
	}
	if ((sc->requires & O_TLS) && !o->tls) {
		fprintf(stderr, PROG " %s: --tls CAFILE is required\n",
			sc->name);
		return -1;
	}
	if (!o->label)
		o->label = o->server;
	return 0;
}

/* ---- the subcommands -------------------------------------------------------- */

/* --tls in the usage lines, where it is an option. */
#ifdef AC_HAVE_OPENSSL
#define TLS_USAGE "\n[--tls CAFILE]"
#else
#define TLS_USAGE ""
#endif

#define NET_COMMON (O_SERVER | O_LABEL | O_DURATION | O_WARMUP | O_THREADS | \
		    O_REPS | O_JSON | O_PID | O_TLS)

static const struct subcmd subcmds[] = {
	{"mailbox", "[--messages N] [--reps R] [--json FILE]",
	 "messages/s through the mailboxes vs a mutex+eventfd queue",
	 O_MESSAGES | O_REPS | O_JSON, 0, 1,
	 {.messages = 5000000, .reps = 3},
	 cmd_mailbox},
	{"handle", "[--iterations N] [--reps R] [--json FILE]",
	 "ns per weak-handle pin+unpin vs a locked and an atomic refcount",
	 O_ITERATIONS | O_REPS | O_JSON, 0, H_MAX_THREADS,
	 {.iterations = 20000000, .reps = 3},
	 cmd_handle},
	{"work", "[--iterations N] [--threads T] [--reps R] [--json FILE]",
	 "empty work items loop -> worker -> loop vs a thread per item",
	 O_ITERATIONS | O_THREADS | O_REPS | O_JSON, 0, 1,
	 {.iterations = 20000, .threads = 4, .reps = 3},
	 cmd_work},
	{"ping", "--server HOST:PORT [--connections C] [--pipeline P]\n"
		 "[--duration S] [--warmup S] [--threads T] [--reps R]\n"
		 "[--pid PID] [--label NAME] [--json FILE]" TLS_USAGE,
	 "RESP PING requests/s, latency, server CPU/request (--pid)",
	 NET_COMMON | O_CONNECTIONS | O_PIPELINE, O_SERVER, 1,
	 {.connections = 50, .pipeline = 1, .duration = 5, .warmup = 1,
	  .threads = 1, .reps = 1},
	 cmd_ping},
	{"echo", "--server HOST:PORT [--connections C] [--pipeline P]\n"
		 "[--size B] [--duration S] [--warmup S] [--threads T]\n"
		 "[--reps R] [--pid PID] [--label NAME] [--json FILE]" TLS_USAGE,
	 "len32 echo requests/s, latency, server CPU/request (--pid)",
	 NET_COMMON | O_CONNECTIONS | O_PIPELINE | O_SIZE, O_SERVER, 1,
	 {.connections = 100, .pipeline = 1, .size = 64, .duration = 5,
	  .warmup = 1, .threads = 1, .reps = 1},
	 cmd_echo},
	{"fanout", "--server HOST:PORT [--sub-server2 HOST:PORT]\n"
		   "[--subscribers S] [--publishers N]\n"
		   "[--pipeline W] [--size B] [--duration S] [--warmup S]\n"
		   "[--threads T] [--reps R] [--pid PID] [--label NAME]\n"
		   "[--json FILE]" TLS_USAGE,
	 "RESP pub/sub deliveries/s, latency, server CPU and memory (--pid)",
	 NET_COMMON | O_SUBSCRIBERS | O_PUBLISHERS | O_PIPELINE | O_SIZE |
		 O_SUB_SERVER2,
	 O_SERVER, 1,
	 {.subscribers = 1000, .publishers = 1, .pipeline = 64, .size = 64,
	  .duration = 5, .warmup = 1, .threads = 1, .reps = 1},
	 cmd_fanout},
	{"idle", "--server HOST:PORT --pid PID [--connections N]\n"
		 "[--probe resp|memcache|len32|none] [--per-process K]\n"
		 "[--label NAME] [--json FILE]" TLS_USAGE,
	 "a server's memory and CPU per idle connection",
	 O_SERVER | O_LABEL | O_JSON | O_PID | O_CONNECTIONS | O_PROBE |
		 O_PER_PROCESS | O_TLS, O_SERVER | O_PID, 1,
	 {.connections = 10000, .probe = PROBE_RESP, .per_process = 15000},
	 cmd_idle},
	/* No --tls: the servers compared, epoll-echo among them, are
	 * plaintext. */
	{"heartbeat", "--server HOST:PORT [--heartbeat MS] [--connections C]\n"
		      "[--duration S] [--warmup S] [--threads T] [--reps R]\n"
		      "[--pid PID] [--label NAME] [--json FILE]",
	 "heartbeat round trips/s and server CPU/round trip (--pid)",
	 (NET_COMMON & ~O_TLS) | O_CONNECTIONS | O_HEARTBEAT, O_SERVER, 1,
	 {.connections = 5000, .heartbeat = 1000, .duration = 5, .warmup = 2,
	  .threads = 1, .reps = 1},
	 cmd_heartbeat},
#ifdef AC_HAVE_OPENSSL
	{"handshake", "--server HOST:PORT --tls CAFILE [--resume yes|no]\n"
		      "[--connections C] [--duration S] [--warmup S]\n"
		      "[--threads T] [--reps R] [--pid PID] [--label NAME]\n"
		      "[--json FILE]",
	 "TLS connections/s, each a handshake and a PING, server CPU (--pid)",
	 NET_COMMON | O_CONNECTIONS | O_RESUME, O_SERVER | O_TLS, 1,
	 {.connections = 16, .duration = 5, .warmup = 1, .threads = 1,
	  .reps = 1},
	 cmd_handshake},
#endif
};
#define NSUBCMDS ((int)(sizeof(subcmds) / sizeof(subcmds[0])))

/* Prints a usage line of sc; its args wrap at each '\n', under the first. */
static void usage_line(FILE *f, const char *lead, const struct subcmd *sc)
{
	int indent = fprintf(f, "%s" PROG " %-9s ", lead, sc->name);

	for (const char *a = sc->args, *nl; *a; a = nl + 1) {
		if (!(nl = strchr(a, '\n'))) {
			fprintf(f, "%s\n", a);
			break;
		}
		fprintf(f, "%.*s\n%*s", (int)(nl - a), a, indent, "");
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage:\n");
	for (int i = 0; i < NSUBCMDS; i++)
		usage_line(f, "  ", &subcmds[i]);
	fprintf(f, "\n");
	for (int i = 0; i < NSUBCMDS; i++)
		fprintf(f, "  %-9s %s\n", subcmds[i].name, subcmds[i].summary);
	fprintf(f, "\nCounts accept k, M and G suffixes (powers of 1000); "
		   "S is in seconds.\nEach figure is the median of R runs; "
		   "--json FILE also writes the figures\nas JSON. "
#ifdef AC_HAVE_OPENSSL
		   "--tls CAFILE speaks TLS, verifying the server's "
		   "certificate\nagainst the CAs in CAFILE. "
#else
		   "Built without OpenSSL: no TLS. "
#endif
		   "See actorconn-bench(1).\n");
}

int main(int argc, char **argv)
{
	const struct subcmd *sc = NULL;
	struct opts o;
	int rc;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (int i = 0; i < NSUBCMDS; i++)
		if (!strcmp(argv[1], subcmds[i].name))
			sc = &subcmds[i];
	if (!sc) {
		fprintf(stderr, PROG ": unknown subcommand '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	/* The subcommand's arguments, with its name standing in for argv[0]. */
	rc = parse_opts(sc, argc - 1, argv + 1, &o);
	if (rc > 0) {
		usage_line(stdout, "usage: ", sc);
		return 0;
	}
	if (rc < 0) {
		usage_line(stderr, "usage: ", sc);
		return 2;
	}
	return sc->run(&o);
}

