/*
 * work.c: the `work` subcommand. Empty work items submitted from a loop
 * and completed on it through the worker pool (ac_work_submit): one at a
 * time, which is the submit-to-completion round trip, and many in
 * flight, which is the pool's throughput. The baseline is what a program
 * without a pool does: a thread per item (pthread_create), which runs
 * the item and posts its completion back to the loop (ac_loop_post).
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

enum { W_POOL, W_THREAD };

static struct wrun {
	ac_runtime_t *rt;
	int mode;
	long long n, in_flight;
	long long submitted, completed; /* loop 0 only */
	double t0, t1;
	int err;                        /* a submit failed */
	int finished;                   /* atomic */
	pthread_t *tids;                /* W_THREAD: by submit order */
	long long ntids;                /* atomic: published tids */
} W;

static int empty_work(void *arg)
{
	return 0;
}

static void submit_one(void);

static void completed(void)
{
	if (++W.completed == W.n) {
		W.t1 = now_s();
		__atomic_store_n(&W.finished, 1, __ATOMIC_RELEASE);
		return;
	}
	if (W.submitted < W.n)
		submit_one();
}

static void pool_done(ac_conn_t *c, int status, void *arg)
{
	if (status)
		W.err = status;
	completed();
}

static void thread_done(void *arg)
{
	completed();
}

static void *item_thread(void *arg)
{
	empty_work(arg);
	while (ac_loop_post(W.rt, AC_LOOP(0), thread_done, NULL) == AC_EAGAIN)
		sched_yield();
	return NULL;
}

/* On loop 0. */
static void submit_one(void)
{
	int err;

	W.submitted++;
	if (W.mode == W_POOL) {
		err = ac_work_submit(W.rt, 0, AC_HANDLE_NONE, empty_work,
				     pool_done, NULL, NULL);
	} else {
		err = -pthread_create(&W.tids[W.submitted - 1], NULL,
				      item_thread, NULL);
		if (!err)
			__atomic_store_n(&W.ntids, W.submitted,
					 __ATOMIC_RELEASE);
	}
	if (err) {
		W.err = err;
		W.t1 = now_s();
		__atomic_store_n(&W.finished, 1, __ATOMIC_RELEASE);
	}
}

static void start(void *arg)
{
	W.t0 = now_s();
	for (long long i = 0; i < W.in_flight && !W.err; i++)
		submit_one();
}

/* Items per second for n items, in_flight at a time. */
static double run(int mode, long long n, long long in_flight, int threads)
{
	ac_config_t cfg = {.loops = 1, .work_threads = threads,
			   .work_capacity = (unsigned)in_flight};
	long long joined = 0;
	int err;

	memset(&W, 0, sizeof(W));
	W.mode = mode;
	W.n = n;
	W.in_flight = in_flight;
	if (mode == W_THREAD && !(W.tids = calloc((size_t)n, sizeof(*W.tids))))
		die("out of memory");
	if (!(W.rt = ac_runtime_new(&cfg)))
		die("ac_runtime_new: %s", strerror(errno));
	if ((err = ac_runtime_start(W.rt)) ||
	    (err = ac_loop_post(W.rt, AC_LOOP(0), start, NULL)))
		die("start: %s", ac_strerror(err));
	/* A thread per item must be joined: this thread reaps them as they
	 * go, in order, which also keeps their number down. */
	while (!__atomic_load_n(&W.finished, __ATOMIC_ACQUIRE)) {
		if (mode == W_THREAD &&
		    joined < __atomic_load_n(&W.ntids, __ATOMIC_ACQUIRE))
			pthread_join(W.tids[joined++], NULL);
		else
			sleep_ms(1);
	}
	while (joined < __atomic_load_n(&W.ntids, __ATOMIC_ACQUIRE))
		pthread_join(W.tids[joined++], NULL);
	ac_runtime_free(W.rt);
	free(W.tids);
	if (W.err)
		die("work %s: %s", mode == W_POOL ? "submit" : "thread",
		    ac_strerror(W.err));
	return (double)n / (W.t1 - W.t0);
}

int cmd_work(const struct opts *o)
{
	static const long long flights[] = {1, 64};
	static const struct col cols[] = {
		{"in flight", 11}, {"actorconn", 12}, {"round trip", 12},
		{"thread/item", 13}, {"round trip", 12}, {"ratio", 0}};
	double ac[MAX_REPS], base[MAX_REPS], acr[2], baser[2];
	struct json j;

	if (o->json && json_open(&j, o->json, "work"))
		return 1;
	for (int f = 0; f < 2; f++) {
		for (int r = 0; r < o->reps; r++) {
			ac[r] = run(W_POOL, o->iterations, flights[f],
				    o->threads);
			base[r] = run(W_THREAD, o->iterations, flights[f],
				      o->threads);
		}
		acr[f] = median(ac, o->reps);
		baser[f] = median(base, o->reps);
	}
	printf("work: empty items from a loop and back, items/s (median of "
	       "%d), N=%lld, %d worker threads\n",
	       o->reps, o->iterations, o->threads);
	table_header(cols, 6);
	for (int f = 0; f < 2; f++) {
		char b[6][32];
		const char *cells[6] = {b[0], b[1], b[2], b[3], b[4], b[5]};

		snprintf(b[0], sizeof(b[0]), "%lld", flights[f]);
		fmt_rate(b[1], sizeof(b[1]), acr[f]);
		snprintf(b[2], sizeof(b[2]), "%.1f us",
			 1e6 * (double)flights[f] / acr[f]);
		fmt_rate(b[3], sizeof(b[3]), baser[f]);
		snprintf(b[4], sizeof(b[4]), "%.1f us",
			 1e6 * (double)flights[f] / baser[f]);
		snprintf(b[5], sizeof(b[5]), "%.2fx", acr[f] / baser[f]);
		table_row(cols, 6, cells);
	}
	printf("round trip = in flight / rate: submit on the loop to done on "
	       "the loop;\nratio = actorconn / thread per item "
	       "(pthread_create, then ac_loop_post back)\n");
	if (o->json) {
		for (int f = 0; f < 2; f++) {
			json_obj_begin(&j);
			json_int(&j, "in_flight", flights[f]);
			json_int(&j, "worker_threads", o->threads);
			json_num(&j, "actorconn_items_per_s", acr[f], 0);
			json_num(&j, "thread_per_item_items_per_s", baser[f], 0);
			json_obj_end(&j);
		}
		if (json_close(&j))
			return 1;
	}
	return 0;
}
