/*
 * mailbox.c: the `mailbox` subcommand, messages per second through the
 * library's mailboxes (loop to loop, and from a foreign thread) against
 * a mutex-protected queue woken through an eventfd. It links the
 * library's internals (internal.h) to watch the overflow lists.
 */
#include "internal.h"
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/*
 * Both sides run the same consume() on the consuming thread, so they differ
 * only in how a message gets there. The consumer state is global because
 * ac_loop_post's argument is NULL, as a real fire-and-forget post would be.
 */

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
	long long wakeups; /* eventfd writes that woke the consumer (the
			      library's: its consumer loop's mailbox_wakeups) */
};

/* The consumer loop's wake-ups so far: ac_stats, mailbox_wakeups. */
static long long loop_wakeups(ac_runtime_t *rt, int loop)
{
	ac_stats_t total, per[2];

	if (ac_stats(rt, &total, per, 2) <= loop)
		die("ac_stats: no loop %d", loop);
	return (long long)per[loop].mailbox_wakeups;
}

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
		if ((err = ac_loop_post(p->rt, AC_LOOP(1), consume, NULL))) {
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
	else if ((err = ac_loop_post(p->rt, AC_LOOP(0), produce, p)))
		consumer_signal(err);
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
	if ((err = ac_loop_post(p.rt, AC_LOOP(0), produce, &p)))
		report_error("loop -> loop", err);
	if ((err = consumer_wait())) {
		if (err == MB_STALLED)
			stalled("actorconn loop -> loop",
				__atomic_load_n(&p.sent, __ATOMIC_RELAXED));
		report_error("loop -> loop", err);
	}
	r.rate = (double)n / (g_cons.end - p.start);
	r.wakeups = loop_wakeups(p.rt, 1);
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
		int err = ac_loop_post(p->rt, AC_LOOP(0), consume, NULL);

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
	r.wakeups = loop_wakeups(p.rt, 0);
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
	long long wakeups;   /* eventfd writes */
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
		if (was_empty) {
			if (write(q->efd, &one, sizeof(one)) < 0 &&
			    errno != EAGAIN)
				die("eventfd write: %s", strerror(errno));
			q->wakeups++;
		}
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
	r.wakeups = q->wakeups;
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
	long long ac_wakeups, base_wakeups;
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
		printf(", %lld wake-ups; mutex+eventfd: %lld full-queue "
		       "retries, %lld wake-ups\n", cs[i].ac_wakeups,
		       cs[i].base_retries, cs[i].base_wakeups);
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
		json_int(j, "actorconn_wakeups", cs[i].ac_wakeups);
		json_int(j, "baseline_retries", cs[i].base_retries);
		json_int(j, "baseline_wakeups", cs[i].base_wakeups);
		json_obj_end(j);
	}
	return json_close(j);
}

int cmd_mailbox(const struct opts *o)
{
	struct mb_case cs[] = {
		{.path = "loop -> loop", .kind = MB_LOOP, .batch = 1},
		{.path = "loop -> loop", .kind = MB_LOOP, .batch = 64},
		{.path = "foreign -> loop", .kind = MB_FOREIGN, .batch = 1},
	};
	const int ncase = (int)(sizeof(cs) / sizeof(cs[0]));
	double ac[MAX_REPS], base[MAX_REPS], prod[MAX_REPS];
	long long ac_n[MAX_REPS], base_n[MAX_REPS];
	long long ac_w[MAX_REPS], base_w[MAX_REPS];
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
			ac_w[r] = a.wakeups;
			base_w[r] = b.wakeups;
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
		cs[c].ac_wakeups = median_ll(ac_w, o->reps);
		cs[c].base_wakeups = median_ll(base_w, o->reps);
	}
	mb_print(cs, ncase, o);
	if (o->json && mb_json(cs, ncase, &j))
		return 1;
	return 0;
}

