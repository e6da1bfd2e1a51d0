/*
 * actorconn-bench: benchmarks of libactorconn, each side by side with a
 * real alternative measured in the same run on the same machine.
 *
 *   actorconn-bench mailbox  micro: messages/s through the mailboxes
 *   actorconn-bench handle   micro: ns per weak-handle pin+unpin
 *   actorconn-bench ping     RESP PING load (reqload.c)
 *   actorconn-bench echo     len32 echo load (reqload.c)
 *   actorconn-bench fanout   RESP pub/sub delivery (fanout.c)
 *   actorconn-bench idle     a server's memory per idle connection (idle.c)
 *
 * Every figure is a median over --reps repetitions. The micro-benchmarks
 * alternate the library and its baseline within each repetition so that
 * drift on a shared machine hits both alike; the network subcommands
 * measure one server per run, and bench/run.sh (make bench) alternates the
 * servers. The program only prints: it asserts nothing about speed, but it
 * does check that the work was done (every message consumed, every pin
 * successful, every reply correct) and exits 1 if not.
 *
 * This file holds the subcommand table, the option parser, the table and
 * JSON writers, and the two micro-benchmarks, which link the library's
 * internals (internal.h) to time ac__pin/ac__unpin directly and to watch
 * the overflow lists.
 */
#include "internal.h"
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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
	{"pid", O_PID, V_COUNT, OFF(pid), INT_MAX, 0},
	{"probe", O_PROBE, V_PROBE, OFF(probe), 0, 0},
	{"per-process", O_PER_PROCESS, V_COUNT, OFF(per_process), 19000, 0},
};
#undef OFF
#define NOPTS ((int)(sizeof(optdefs) / sizeof(optdefs[0])))
#define OPT_VAL0 1000 /* getopt_long's val for optdefs[0]; clear of chars */

struct subcmd {
	const char *name;
	const char *args;    /* usage line after the name */
	const char *summary;
	unsigned accepts;    /* O_* bits */
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
	if ((sc->accepts & O_SERVER) && !o->server) {
		fprintf(stderr, PROG " %s: --server HOST:PORT is required\n",
			sc->name);
		return -1;
	}
	if ((sc->accepts & O_PID) && !o->pid) {
		fprintf(stderr, PROG " %s: --pid PID is required\n", sc->name);
		return -1;
	}
	if (!o->label)
		o->label = o->server;
	return 0;
}

/* ---- table output -------------------------------------------------------- */

void table_row(const struct col *cols, int ncols, const char *const *cells)
{
	for (int i = 0; i < ncols; i++) {
		if (cols[i].width)
			printf("%-*s", cols[i].width, cells[i]);
		else
			printf("%s", cells[i]);
	}
	putchar('\n');
}

void table_header(const struct col *cols, int ncols)
{
	const char *titles[16];

	for (int i = 0; i < ncols && i < 16; i++)
		titles[i] = cols[i].title;
	table_row(cols, ncols < 16 ? ncols : 16, titles);
}

void fmt_rate(char *buf, size_t n, double v)
{
	if (v >= 1e6)
		snprintf(buf, n, "%.2fM", v / 1e6);
	else
		snprintf(buf, n, "%.1fk", v / 1e3);
}

/* ---- JSON output ------------------------------------------------------------ */

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

int json_open(struct json *j, const char *path, const char *name)
{
	memset(j, 0, sizeof(*j));
	j->path = path;
	if (!(j->f = fopen(path, "w"))) {
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
		return -1;
	}
	fputc('{', j->f);
	json_string(j->f, name);
	fputs(": [", j->f);
	return 0;
}

void json_obj_begin(struct json *j)
{
	fputs(j->nobj++ ? ",\n  {" : "\n  {", j->f);
	j->nfield = 0;
}

static void json_key(struct json *j, const char *k)
{
	if (j->nfield++)
		fputs(", ", j->f);
	json_string(j->f, k);
	fputs(": ", j->f);
}

void json_str(struct json *j, const char *k, const char *v)
{
	json_key(j, k);
	json_string(j->f, v);
}

void json_int(struct json *j, const char *k, long long v)
{
	json_key(j, k);
	fprintf(j->f, "%lld", v);
}

/* JSON has no NaN or infinity: those become null. */
void json_num(struct json *j, const char *k, double v, int decimals)
{
	json_key(j, k);
	if (isfinite(v))
		fprintf(j->f, "%.*f", decimals, v);
	else
		fputs("null", j->f);
}

void json_obj_end(struct json *j)
{
	fputc('}', j->f);
}

int json_close(struct json *j)
{
	int bad;

	fputs("\n]}\n", j->f);
	bad = ferror(j->f);
	if (fclose(j->f) || bad) {
		fprintf(stderr, PROG ": writing %s failed\n", j->path);
		return -1;
	}
	return 0;
}

/* ==== mailbox ================================================================
 *
 * Both sides run the same consume() on the consuming thread, so they differ
 * only in how a message gets there. The consumer state is global because
 * ac_loop_post's argument is NULL, as a real fire-and-forget post would be.
 */

#define MB_CAPACITY 4096u /* the library's default ring; the baseline's too */
#define MB_STALL_S 10     /* no progress for this long: messages were lost */

static struct consumer {
	long long count;  /* the consuming thread's own; stored relaxed so
			     that main can watch progress */
	long long n;      /* target */
	double end;       /* when count reached n */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;         /* under mu: count reached n, or err set */
	int err;          /* under mu: a producer failed */
} AC__ALIGNED g_cons;

static void consumer_init(void)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&g_cons.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g_cons.cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void consumer_reset(long long n)
{
	g_cons.count = 0;
	g_cons.n = n;
	g_cons.end = 0;
	g_cons.done = 0;
	g_cons.err = 0;
}

static void consumer_signal(int err)
{
	pthread_mutex_lock(&g_cons.mu);
	g_cons.done = 1;
	if (err && !g_cons.err)
		g_cons.err = err;
	pthread_cond_signal(&g_cons.cv);
	pthread_mutex_unlock(&g_cons.mu);
}

static void consume(void *arg)
{
	long long c = g_cons.count + 1;

	__atomic_store_n(&g_cons.count, c, __ATOMIC_RELAXED);
	if (AC__UNLIKELY(c == g_cons.n)) {
		g_cons.end = now_s();
		consumer_signal(0);
	}
}

#define MB_STALLED 1 /* consumer_wait: no progress */

/*
 * Waits for the consumer to finish. Returns 0, MB_STALLED after MB_STALL_S
 * seconds without progress (lost messages would look like that), or the
 * producer's error (an AC_E* code).
 */
static int consumer_wait(void)
{
	long long last = -1;
	int idle = 0, err;

	pthread_mutex_lock(&g_cons.mu);
	while (!g_cons.done) {
		struct timespec ts;
		long long c;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&g_cons.cv, &g_cons.mu, &ts);
		if (g_cons.done)
			break;
		c = __atomic_load_n(&g_cons.count, __ATOMIC_RELAXED);
		if (c != last) {
			last = c;
			idle = 0;
		} else if (++idle >= MB_STALL_S) {
			pthread_mutex_unlock(&g_cons.mu);
			return MB_STALLED;
		}
	}
	err = g_cons.err;
	pthread_mutex_unlock(&g_cons.mu);
	return err;
}

/* The result of one timed run. */
struct run {
	double rate;       /* messages per second */
	long long retries; /* foreign EAGAIN, or baseline full-queue waits */
	long long peak;    /* loop producer: longest overflow list seen */
	double produced;   /* loop producer: share of the run spent before the
			      last message was posted (0..1) */
};

static void stalled(const char *what, long long sent)
{
	long long c = __atomic_load_n(&g_cons.count, __ATOMIC_RELAXED);
	ac_debug_counts_t dc;

	ac_debug_counts(&dc);
	die("%s: no progress for %d s: consumed %lld of %lld (producer sent "
	    "%lld; live library messages %lld); messages were lost or the "
	    "consumer is stuck",
	    what, MB_STALL_S, c, g_cons.n, sent, (long long)dc.messages);
}

/* After a run: exactly n consumed, no more (a duplicate would show here). */
static void check_count(const char *what)
{
	long long c = __atomic_load_n(&g_cons.count, __ATOMIC_RELAXED);

	if (c != g_cons.n)
		die("%s: consumed %lld messages, expected %lld", what, c,
		    g_cons.n);
}

/* ---- actorconn: loop -> loop --------------------------------------------- */

struct loop_producer {
	ac_runtime_t *rt;
	long long n;
	long long sent; /* stored relaxed: read by main in a stall report */
	int batch;
	double start, done; /* first and last producer callback */
	long long peak;
};

/*
 * On loop 0: posts one batch to loop 1, then re-posts itself so that the
 * loop returns to its drain cycle between batches, as a real actor would.
 * The library sends its deferred wake-ups when the outermost library
 * callback ends, which here is the drain cycle running up to 1024 of
 * these callbacks back to back, so loop 1 hears of up to 1024 * batch
 * messages at once.
 */
static void produce(void *arg)
{
	struct loop_producer *p = arg;
	long long k = p->n - p->sent;
	int err;

	if (p->sent == 0)
		p->start = now_s();
	if (k > p->batch)
		k = p->batch;
	for (long long i = 0; i < k; i++) {
		if ((err = ac_loop_post(p->rt, 1, consume, NULL))) {
			consumer_signal(err);
			return;
		}
	}
	__atomic_store_n(&p->sent, p->sent + k, __ATOMIC_RELAXED);
	/* Messages that found the ring full wait in this loop's overflow
	 * list; its length says how far the producer outran the consumer. */
	if ((long long)ac__tls_loop->ovf_count > p->peak)
		p->peak = ac__tls_loop->ovf_count;
	if (p->sent == p->n)
		p->done = now_s();
	else if ((err = ac_loop_post(p->rt, 0, produce, p)))
		consumer_signal(err);
}

static ac_runtime_t *bench_runtime(int loops)
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

static void report_error(const char *what, int err)
{
	die("%s: a post failed: %s (%s)", what, ac_err_name(err),
	    ac_strerror(err));
}

static struct run ac_loop_to_loop(long long n, int batch)
{
	struct loop_producer p = {.n = n, .batch = batch};
	struct run r = {0};
	int err;

	consumer_reset(n);
	p.rt = bench_runtime(2);
	if ((err = ac_loop_post(p.rt, 0, produce, &p)))
		report_error("loop -> loop", err);
	if ((err = consumer_wait())) {
		if (err == MB_STALLED)
			stalled("actorconn loop -> loop",
				__atomic_load_n(&p.sent, __ATOMIC_RELAXED));
		report_error("loop -> loop", err);
	}
	r.rate = (double)n / (g_cons.end - p.start);
	ac_runtime_stop(p.rt, 0);
	/* The last producer callback may still have been running when the
	 * consumer finished: read its figures after the loops are joined. */
	r.peak = p.peak;
	r.produced = (p.done - p.start) / (g_cons.end - p.start);
	ac_runtime_free(p.rt);
	check_count("actorconn loop -> loop");
	return r;
}

/* ---- actorconn: foreign thread -> loop ----------------------------------- */

struct foreign_producer {
	ac_runtime_t *rt;
	long long n;
	long long sent;    /* atomic: read by main in a stall report */
	long long retries;
	double start;
};

static void *foreign_main(void *arg)
{
	struct foreign_producer *p = arg;

	p->start = now_s();
	for (long long i = 0; i < p->n;) {
		int err = ac_loop_post(p->rt, 0, consume, NULL);

		if (AC__LIKELY(err == 0)) {
			__atomic_store_n(&p->sent, ++i, __ATOMIC_RELAXED);
		} else if (err == AC_EAGAIN) {
			/* Ring full: give the loop the CPU (two cores, and
			 * the machine is shared), then try again. */
			p->retries++;
			sched_yield();
		} else {
			consumer_signal(err);
			break;
		}
	}
	return NULL;
}

static struct run ac_foreign_to_loop(long long n)
{
	struct foreign_producer p = {.n = n};
	struct run r = {0};
	pthread_t th;
	int err;

	consumer_reset(n);
	p.rt = bench_runtime(1);
	if ((err = pthread_create(&th, NULL, foreign_main, &p)))
		die("pthread_create: %s", strerror(err));
	if ((err = consumer_wait())) {
		if (err == MB_STALLED)
			stalled("actorconn foreign -> loop",
				__atomic_load_n(&p.sent, __ATOMIC_RELAXED));
		report_error("foreign -> loop", err);
	}
	pthread_join(th, NULL);
	r.rate = (double)n / (g_cons.end - p.start);
	r.retries = p.retries;
	ac_runtime_stop(p.rt, 0);
	ac_runtime_free(p.rt);
	check_count("actorconn foreign -> loop");
	return r;
}

/* ---- baseline: mutex-protected ring + eventfd -------------------------------
 * The classic design (memcached's connection queues, Envoy's dispatcher
 * post()): a locked queue, and an eventfd written only on the empty ->
 * non-empty transition, so a busy consumer is not woken again.
 */
struct item {
	void (*fn)(void *);
	void *arg;
};

struct mq {
	pthread_mutex_t mu;
	unsigned head, tail; /* free-running; tail - head items queued */
	struct item slots[MB_CAPACITY];
	int efd;
	long long n;         /* items to carry */
	int batch;           /* items pushed per lock acquisition */
	long long retries;   /* producer found the queue full */
	long long sent;      /* atomic: for a stall report */
	double start;
};

static void *mq_producer(void *arg)
{
	struct mq *q = arg;
	const struct item it = {consume, NULL};
	uint64_t one = 1;

	q->start = now_s();
	for (long long sent = 0; sent < q->n;) {
		unsigned k = (unsigned)(q->n - sent < q->batch ? q->n - sent
							       : q->batch);
		unsigned space;
		bool was_empty;

		pthread_mutex_lock(&q->mu);
		space = MB_CAPACITY - (q->tail - q->head);
		if (space == 0) {
			pthread_mutex_unlock(&q->mu);
			q->retries++;
			sched_yield();
			continue;
		}
		if (k > space)
			k = space;
		was_empty = q->tail == q->head;
		for (unsigned i = 0; i < k; i++)
			q->slots[q->tail++ % MB_CAPACITY] = it;
		pthread_mutex_unlock(&q->mu);
		/* Only the first item into an empty queue needs a wake-up: a
		 * consumer that has not drained yet will see the rest. */
		if (was_empty && write(q->efd, &one, sizeof(one)) < 0 &&
		    errno != EAGAIN)
			die("eventfd write: %s", strerror(errno));
		sent += k;
		__atomic_store_n(&q->sent, sent, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *mq_consumer(void *arg)
{
	struct mq *q = arg;
	struct item *buf = malloc(sizeof(q->slots));
	struct pollfd pfd = {.fd = q->efd, .events = POLLIN};

	if (!buf)
		die("out of memory");
	while (__atomic_load_n(&g_cons.count, __ATOMIC_RELAXED) < q->n) {
		uint64_t v;
		unsigned k;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		/* Read the eventfd before draining: a push after our drain
		 * then finds the queue empty and writes it again. */
		if (read(q->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			die("eventfd read: %s", strerror(errno));
		pthread_mutex_lock(&q->mu);
		k = q->tail - q->head;
		for (unsigned i = 0; i < k; i++)
			buf[i] = q->slots[q->head++ % MB_CAPACITY];
		pthread_mutex_unlock(&q->mu);
		for (unsigned i = 0; i < k; i++)
			buf[i].fn(buf[i].arg);
	}
	free(buf);
	return NULL;
}

static struct run mq_run(long long n, int batch)
{
	struct mq *q;
	struct run r = {0};
	pthread_t prod, cons;
	int err;

	if (posix_memalign((void **)&q, AC__CACHELINE, sizeof(*q)))
		die("out of memory");
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	q->n = n;
	q->batch = batch;
	if ((q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		die("eventfd: %s", strerror(errno));
	consumer_reset(n);
	/* The consumer first: like an idle loop, it should be waiting in
	 * poll() when the first message arrives. */
	if ((err = pthread_create(&cons, NULL, mq_consumer, q)) ||
	    (err = pthread_create(&prod, NULL, mq_producer, q)))
		die("pthread_create: %s", strerror(err));
	if (consumer_wait())
		die("mutex+eventfd baseline: no progress for %d s: consumed "
		    "%lld of %lld (sent %lld)", MB_STALL_S,
		    __atomic_load_n(&g_cons.count, __ATOMIC_RELAXED), n,
		    __atomic_load_n(&q->sent, __ATOMIC_RELAXED));
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);
	r.rate = (double)n / (g_cons.end - q->start);
	r.retries = q->retries;
	check_count("mutex+eventfd baseline");
	close(q->efd);
	pthread_mutex_destroy(&q->mu);
	free(q);
	return r;
}

/* ---- the mailbox subcommand ---------------------------------------------- */

enum mb_path { MB_LOOP, MB_FOREIGN };

struct mb_case {
	const char *path;
	enum mb_path kind;
	int batch;
	/* medians over the reps */
	double ac_rate, base_rate;
	long long ac_retries, base_retries, ac_peak;
	double ac_produced;
};

static long long median_ll(long long *v, int n)
{
	double d[MAX_REPS];

	for (int i = 0; i < n; i++)
		d[i] = (double)v[i];
	return (long long)median(d, n);
}

static void mb_print(const struct mb_case *cs, int ncase,
		     const struct opts *o)
{
	static const struct col cols[] = {
		{"path", 27}, {"batch", 8}, {"actorconn", 15},
		{"mutex+eventfd", 16}, {"ratio", 0}};
	char b[4][32];

	printf("mailbox: messages/s (median of %d), N=%lld\n", o->reps,
	       o->messages);
	table_header(cols, 5);
	for (int i = 0; i < ncase; i++) {
		const char *cells[5] = {cs[i].path, b[0], b[1], b[2], b[3]};

		snprintf(b[0], sizeof(b[0]), "%d", cs[i].batch);
		fmt_rate(b[1], sizeof(b[1]), cs[i].ac_rate);
		fmt_rate(b[2], sizeof(b[2]), cs[i].base_rate);
		snprintf(b[3], sizeof(b[3]), "%.2fx",
			 cs[i].ac_rate / cs[i].base_rate);
		table_row(cols, 5, cells);
	}
	/* What explains the figures (medians, like the rates): how far a
	 * loop producer ran ahead into its overflow list, and how often a
	 * thread producer found the queue full. */
	printf("ratio = actorconn / mutex+eventfd; ring and queue: %u slots\n",
	       MB_CAPACITY);
	for (int i = 0; i < ncase; i++) {
		printf("  %-17s %-3d actorconn: ", cs[i].path, cs[i].batch);
		if (cs[i].kind == MB_LOOP)
			printf("overflow peak %lld, last post at %.0f%% of "
			       "the run", cs[i].ac_peak,
			       cs[i].ac_produced * 100);
		else
			printf("%lld AC_EAGAIN retries", cs[i].ac_retries);
		printf("; mutex+eventfd: %lld full-queue retries\n",
		       cs[i].base_retries);
	}
}

static int mb_json(const struct mb_case *cs, int ncase, struct json *j)
{
	for (int i = 0; i < ncase; i++) {
		json_obj_begin(j);
		json_str(j, "path", cs[i].path);
		json_int(j, "batch", cs[i].batch);
		json_num(j, "actorconn_msgs_per_s", cs[i].ac_rate, 0);
		json_num(j, "baseline_msgs_per_s", cs[i].base_rate, 0);
		json_num(j, "ratio", cs[i].ac_rate / cs[i].base_rate, 3);
		if (cs[i].kind == MB_LOOP) {
			json_int(j, "actorconn_overflow_peak", cs[i].ac_peak);
			json_num(j, "actorconn_produced_fraction",
				 cs[i].ac_produced, 3);
		} else {
			json_int(j, "actorconn_retries", cs[i].ac_retries);
		}
		json_int(j, "baseline_retries", cs[i].base_retries);
		json_obj_end(j);
	}
	return json_close(j);
}

static int cmd_mailbox(const struct opts *o)
{
	struct mb_case cs[] = {
		{.path = "loop -> loop", .kind = MB_LOOP, .batch = 1},
		{.path = "loop -> loop", .kind = MB_LOOP, .batch = 64},
		{.path = "foreign -> loop", .kind = MB_FOREIGN, .batch = 1},
	};
	const int ncase = (int)(sizeof(cs) / sizeof(cs[0]));
	double ac[MAX_REPS], base[MAX_REPS], prod[MAX_REPS];
	long long ac_n[MAX_REPS], base_n[MAX_REPS];
	struct json j;

	/* Open the output first: a bad path should not cost a whole run. */
	if (o->json && json_open(&j, o->json, "mailbox"))
		return 1;
	consumer_init();
	for (int c = 0; c < ncase; c++) {
		for (int r = 0; r < o->reps; r++) {
			struct run a, b;

			if (cs[c].kind == MB_LOOP) {
				a = ac_loop_to_loop(o->messages, cs[c].batch);
				ac_n[r] = a.peak;
				prod[r] = a.produced;
			} else {
				a = ac_foreign_to_loop(o->messages);
				ac_n[r] = a.retries;
			}
			b = mq_run(o->messages, cs[c].batch);
			ac[r] = a.rate;
			base[r] = b.rate;
			base_n[r] = b.retries;
		}
		cs[c].ac_rate = median(ac, o->reps);
		cs[c].base_rate = median(base, o->reps);
		if (cs[c].kind == MB_LOOP) {
			cs[c].ac_peak = median_ll(ac_n, o->reps);
			cs[c].ac_produced = median(prod, o->reps);
		} else {
			cs[c].ac_retries = median_ll(ac_n, o->reps);
		}
		cs[c].base_retries = median_ll(base_n, o->reps);
	}
	mb_print(cs, ncase, o);
	if (o->json && mb_json(cs, ncase, &j))
		return 1;
	return 0;
}

/* ==== handle =================================================================
 *
 * The cost of making a weak reference usable for a moment and letting go,
 * from threads that are not the owner: actorconn's hazard-pointer pin
 * against a locked refcount table and an atomic refcount. The threads all
 * use the same handle, the worst case for anything written on the way.
 */

#define H_SLOTS 64
#define H_SLOT 7 /* any slot: one that is not the first */
#define H_MAX_THREADS 2

/* Baseline 1: a table of {ptr, generation, refcount} under one mutex. */
struct mslot {
	void *ptr;
	uint32_t gen;
	long refs;
};

struct mtab {
	pthread_mutex_t mu;
	struct mslot slots[H_SLOTS];
};

/* Baseline 2: slots read without a lock; the object holds an atomic
 * refcount. (A safe version would re-check the generation after the
 * increment, and so costs at least this much.) */
struct aobj {
	int refs;
} AC__ALIGNED;

struct aslot {
	struct aobj *obj;
	uint32_t gen;
};

/* The handles all three sides use: slot in the high half, generation in the
 * low half, as in the library. */
static uint32_t h_slot(uint64_t h)
{
	return (uint32_t)(h >> 32) % H_SLOTS;
}

/* The pins are kept out of line: ac__pin is a call into the library, and
 * the baselines should pay for a call too. */
static __attribute__((noinline)) void *m_pin(struct mtab *t, uint64_t h)
{
	struct mslot *s;
	void *p = NULL;

	pthread_mutex_lock(&t->mu);
	s = &t->slots[h_slot(h)];
	if (s->gen == (uint32_t)h && s->ptr) {
		s->refs++;
		p = s->ptr;
	}
	pthread_mutex_unlock(&t->mu);
	return p;
}

static void m_unpin(struct mtab *t, uint64_t h)
{
	pthread_mutex_lock(&t->mu);
	t->slots[h_slot(h)].refs--;
	pthread_mutex_unlock(&t->mu);
}

static __attribute__((noinline)) struct aobj *a_pin(struct aslot *t,
						    uint64_t h)
{
	struct aslot *s = &t[h_slot(h)];
	struct aobj *o;

	if (__atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) != (uint32_t)h)
		return NULL;
	if (!(o = __atomic_load_n(&s->obj, __ATOMIC_ACQUIRE)))
		return NULL;
	__atomic_fetch_add(&o->refs, 1, __ATOMIC_ACQUIRE);
	return o;
}

static void a_unpin(struct aobj *o)
{
	__atomic_fetch_sub(&o->refs, 1, __ATOMIC_RELEASE);
}

enum h_kind { H_AC, H_MUTEX, H_ATOMIC, H_KINDS };

struct h_shared {
	ac_runtime_t *rt;
	ac_handle_t h;       /* a live connection's handle */
	struct mtab mt;
	struct aslot at[H_SLOTS];
	struct aobj obj;
	uint64_t bh;         /* the baselines' handle */
	pthread_barrier_t bar;
};

struct h_worker {
	struct h_shared *sh;
	enum h_kind kind;
	long long iters;
	double start, end;
	long long failed; /* pins that returned NULL */
	uintptr_t sum;    /* of the pinned pointers */
	pthread_t th;
} AC__ALIGNED;

static volatile uintptr_t h_sink; /* keeps the pinned pointers "used" */

static void *h_main(void *arg)
{
	struct h_worker *w = arg;
	struct h_shared *sh = w->sh;
	ck_hp_record_t *rec = NULL;
	uintptr_t sum = 0;
	long long failed = 0;

	/* A foreign thread's first call makes its hazard record: keep that
	 * allocation out of the timing. */
	if (w->kind == H_AC && !(rec = ac__hp_record(sh->rt)))
		die("ac__hp_record: out of memory");
	pthread_barrier_wait(&sh->bar);
	w->start = now_s();
	switch (w->kind) {
	case H_AC:
		for (long long i = 0; i < w->iters; i++) {
			ac_conn_t *c = ac__pin(sh->rt, rec, sh->h);
			failed += !c;
			sum += (uintptr_t)c;
			ac__unpin(rec);
		}
		break;
	case H_MUTEX:
		for (long long i = 0; i < w->iters; i++) {
			void *p = m_pin(&sh->mt, sh->bh);
			failed += !p;
			sum += (uintptr_t)p;
			if (p)
				m_unpin(&sh->mt, sh->bh);
		}
		break;
	default:
		for (long long i = 0; i < w->iters; i++) {
			struct aobj *o = a_pin(sh->at, sh->bh);
			failed += !o;
			sum += (uintptr_t)o;
			if (o)
				a_unpin(o);
			/* The compiler may not fuse consecutive
			 * increments and decrements across this. */
			__asm__ volatile("" ::: "memory");
		}
		break;
	}
	w->end = now_s();
	w->failed = failed;
	w->sum = sum;
	return NULL;
}

/* ns per pin+unpin as each thread sees it: the wall time of the whole run
 * over one thread's share of the iterations. */
static double h_run(struct h_shared *sh, enum h_kind kind, int nthreads,
		    long long n)
{
	static const char *const names[] = {"actorconn", "mutex+refcount",
					    "atomic refcount"};
	struct h_worker w[H_MAX_THREADS];
	double start = 0, end = 0;
	int err;

	pthread_barrier_init(&sh->bar, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct h_worker){.sh = sh, .kind = kind,
					 .iters = n / nthreads};
		if ((err = pthread_create(&w[i].th, NULL, h_main, &w[i])))
			die("pthread_create: %s", strerror(err));
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].th, NULL);
		h_sink += w[i].sum;
		if (w[i].failed)
			die("%s, %d threads: %lld of %lld pins failed on a "
			    "live handle",
			    names[kind], nthreads, w[i].failed, w[i].iters);
		if (i == 0 || w[i].start < start)
			start = w[i].start;
		if (i == 0 || w[i].end > end)
			end = w[i].end;
	}
	pthread_barrier_destroy(&sh->bar);
	return (end - start) * 1e9 / (double)(n / nthreads);
}

/* on_open stores the handle for the main thread, which is waiting for it. */
static ac_handle_t g_handle;

static void h_on_open(ac_conn_t *c)
{
	__atomic_store_n(&g_handle, ac_conn_handle(c), __ATOMIC_RELEASE);
}

/* Opens one connection to a fresh runtime; returns the client socket. */
static int h_connect(struct h_shared *sh)
{
	const ac_conn_cbs_t cbs = {.on_open = h_on_open};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	ac_listener_t *l;
	double deadline;
	int fd, err;

	sh->rt = bench_runtime(1);
	if ((err = ac_listen(sh->rt, "127.0.0.1:0", &cbs, NULL, NULL, &l)))
		die("ac_listen: %s", ac_strerror(err));
	sa.sin_port = htons((uint16_t)ac_listener_port(l));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect to 127.0.0.1:%d: %s", ac_listener_port(l),
		    strerror(errno));
	/* A generous bound: this is a hang check, not a measurement. */
	deadline = now_s() + 10;
	while (!(sh->h = __atomic_load_n(&g_handle, __ATOMIC_ACQUIRE))) {
		if (now_s() > deadline)
			die("handle: on_open did not run within 10 s of "
			    "connecting");
		usleep(1000);
	}
	return fd;
}

struct h_row {
	int threads;
	double ns[H_KINDS]; /* medians */
};

static void h_print(const struct h_row *rows, int nrows,
		    const struct opts *o)
{
	static const struct col cols[] = {{"threads", 10},
					  {"actorconn", 12},
					  {"mutex+refcount", 17},
					  {"atomic refcount", 0}};
	char b[4][32];

	printf("handle: pin+unpin, ns/op (median of %d), N=%lld\n", o->reps,
	       o->iterations);
	table_header(cols, 4);
	for (int i = 0; i < nrows; i++) {
		const char *cells[4] = {b[0], b[1], b[2], b[3]};

		snprintf(b[0], sizeof(b[0]), "%d", rows[i].threads);
		for (int k = 0; k < H_KINDS; k++)
			snprintf(b[k + 1], sizeof(b[k + 1]), "%.2f",
				 rows[i].ns[k]);
		table_row(cols, 4, cells);
	}
	printf("ns/op: per thread (wall time / iterations per thread); each "
	       "thread does N/threads\n");
}

static int h_json(const struct h_row *rows, int nrows, struct json *j)
{
	for (int i = 0; i < nrows; i++) {
		json_obj_begin(j);
		json_int(j, "threads", rows[i].threads);
		json_num(j, "actorconn_ns", rows[i].ns[H_AC], 3);
		json_num(j, "mutex_ns", rows[i].ns[H_MUTEX], 3);
		json_num(j, "atomic_ns", rows[i].ns[H_ATOMIC], 3);
		json_obj_end(j);
	}
	return json_close(j);
}

static int cmd_handle(const struct opts *o)
{
	struct h_shared *sh;
	struct h_row rows[H_MAX_THREADS];
	double v[H_KINDS][MAX_REPS];
	struct json j;
	int fd;

	if (o->json && json_open(&j, o->json, "handle"))
		return 1;
	if (posix_memalign((void **)&sh, AC__CACHELINE, sizeof(*sh)))
		die("out of memory");
	memset(sh, 0, sizeof(*sh));
	fd = h_connect(sh);

	/* The baselines name a live object in slot H_SLOT, generation 5. */
	sh->bh = ((uint64_t)H_SLOT << 32) | 5;
	pthread_mutex_init(&sh->mt.mu, NULL);
	sh->mt.slots[H_SLOT] = (struct mslot){.ptr = &sh->obj, .gen = 5};
	sh->at[H_SLOT] = (struct aslot){.obj = &sh->obj, .gen = 5};

	for (int t = 1; t <= H_MAX_THREADS; t++) {
		rows[t - 1].threads = t;
		for (int r = 0; r < o->reps; r++)
			for (int k = 0; k < H_KINDS; k++)
				v[k][r] = h_run(sh, (enum h_kind)k, t,
						o->iterations);
		for (int k = 0; k < H_KINDS; k++)
			rows[t - 1].ns[k] = median(v[k], o->reps);
	}
	if (sh->mt.slots[H_SLOT].refs || sh->obj.refs)
		die("baseline refcounts did not return to zero");

	close(fd);
	ac_runtime_stop(sh->rt, 0);
	ac_runtime_free(sh->rt);
	pthread_mutex_destroy(&sh->mt.mu);
	free(sh);

	h_print(rows, H_MAX_THREADS, o);
	if (o->json && h_json(rows, H_MAX_THREADS, &j))
		return 1;
	return 0;
}

/* ==== main ================================================================ */

#define NET_COMMON (O_SERVER | O_LABEL | O_DURATION | O_WARMUP | O_THREADS | \
		    O_REPS | O_JSON)

static const struct subcmd subcmds[] = {
	{"mailbox", "[--messages N] [--reps R] [--json FILE]",
	 "messages/s through the mailboxes vs a mutex+eventfd queue",
	 O_MESSAGES | O_REPS | O_JSON, 1,
	 {.messages = 5000000, .reps = 3},
	 cmd_mailbox},
	{"handle", "[--iterations N] [--reps R] [--json FILE]",
	 "ns per weak-handle pin+unpin vs a locked and an atomic refcount",
	 O_ITERATIONS | O_REPS | O_JSON, H_MAX_THREADS,
	 {.iterations = 20000000, .reps = 3},
	 cmd_handle},
	{"ping", "--server HOST:PORT [--connections C] [--pipeline P]\n"
		 "[--duration S] [--warmup S] [--threads T] [--reps R]\n"
		 "[--label NAME] [--json FILE]",
	 "RESP PING requests/s and latency (actorconn-broker, redis-server)",
	 NET_COMMON | O_CONNECTIONS | O_PIPELINE, 1,
	 {.connections = 50, .pipeline = 1, .duration = 5, .warmup = 1,
	  .threads = 1, .reps = 1},
	 cmd_ping},
	{"echo", "--server HOST:PORT [--connections C] [--pipeline P]\n"
		 "[--size B] [--duration S] [--warmup S] [--threads T]\n"
		 "[--reps R] [--label NAME] [--json FILE]",
	 "len32 echo requests/s and latency (actorconn-echo, baselines)",
	 NET_COMMON | O_CONNECTIONS | O_PIPELINE | O_SIZE, 1,
	 {.connections = 100, .pipeline = 1, .size = 64, .duration = 5,
	  .warmup = 1, .threads = 1, .reps = 1},
	 cmd_echo},
	{"fanout", "--server HOST:PORT [--subscribers S] [--publishers N]\n"
		   "[--pipeline W] [--size B] [--duration S] [--warmup S]\n"
		   "[--threads T] [--reps R] [--label NAME] [--json FILE]",
	 "RESP pub/sub deliveries/s and publish-to-delivery latency",
	 NET_COMMON | O_SUBSCRIBERS | O_PUBLISHERS | O_PIPELINE | O_SIZE, 1,
	 {.subscribers = 1000, .publishers = 1, .pipeline = 64, .size = 64,
	  .duration = 5, .warmup = 1, .threads = 1, .reps = 1},
	 cmd_fanout},
	{"idle", "--server HOST:PORT --pid PID [--connections N]\n"
		 "[--probe resp|memcache|len32|none] [--per-process K]\n"
		 "[--label NAME] [--json FILE]",
	 "a server's resident memory per idle connection",
	 O_SERVER | O_LABEL | O_JSON | O_PID | O_CONNECTIONS | O_PROBE |
		 O_PER_PROCESS, 1,
	 {.connections = 10000, .probe = PROBE_RESP, .per_process = 15000},
	 cmd_idle},
};
#define NSUBCMDS ((int)(sizeof(subcmds) / sizeof(subcmds[0])))

/* Prints a usage line of sc; its args wrap at each '\n', under the first. */
static void usage_line(FILE *f, const char *lead, const struct subcmd *sc)
{
	int indent = fprintf(f, "%s" PROG " %-7s ", lead, sc->name);

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
		fprintf(f, "  %-8s %s\n", subcmds[i].name, subcmds[i].summary);
	fprintf(f, "\nCounts accept k, M and G suffixes (powers of 1000); "
		   "S is in seconds.\nEach figure is the median of R runs; "
		   "--json FILE also writes the figures\nas JSON. See "
		   "actorconn-bench(1).\n");
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
