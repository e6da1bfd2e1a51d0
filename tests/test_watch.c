/* test_watch.c: watchers fire exactly once, where asked, never after
 * ac_unwatch returns. */
#include "testhelp.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

struct seen {
	int64_t calls;
	int reason;
	int loop;
	ac_handle_t h;
};

static void record(ac_handle_t h, int reason, void *arg)
{
	struct seen *s = arg;

	s->reason = reason;
	s->loop = ac_loop_index();
	s->h = h;
	__atomic_fetch_add(&s->calls, 1, __ATOMIC_RELEASE);
}

START_TEST(watch_fires_once_with_the_close_reason_on_the_named_loop)
{
	struct seen a = {0}, b = {0};
	ac_handle_t h;
	uint64_t ida, idb;
	int fd;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	h = th_handle(0);
	/* Default from a foreign thread: loop 0. Named: loop 1. */
	ck_assert_int_eq(ac_watch(th_srv.rt, h, AC_LOOP_DEFAULT, record, &a, &ida), 0);
	ck_assert_int_eq(ac_watch(th_srv.rt, h, AC_LOOP(1), record, &b, &idb), 0);
	usleep(20000);
	ck_assert_int_eq(__atomic_load_n(&a.calls, __ATOMIC_ACQUIRE) +
			 __atomic_load_n(&b.calls, __ATOMIC_ACQUIRE),
			 0); /* watching keeps nothing */
	close(fd);
	ck_assert(th_wait_ge(&a.calls, 1, 5000));
	ck_assert(th_wait_ge(&b.calls, 1, 5000));
	usleep(20000);
	ck_assert_int_eq(__atomic_load_n(&a.calls, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(__atomic_load_n(&b.calls, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(a.reason, AC_EEOF);
	ck_assert_int_eq(a.loop, 0);
	ck_assert_int_eq(b.loop, 1);
	ck_assert_uint_eq(a.h, h);
	/* Fired: unwatching now says so, harmlessly. */
	ck_assert_int_eq(ac_unwatch(th_srv.rt, ida), AC_EALREADY);
	th_finish();
}
END_TEST

START_TEST(watching_a_stale_handle_fires_estale_soon)
{
	struct seen a = {0};
	ac_handle_t h;
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	h = th_handle(0);
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(ac_watch(th_srv.rt, h, AC_LOOP_DEFAULT, record, &a, NULL), 0);
	ck_assert(th_wait_ge(&a.calls, 1, 5000));
	ck_assert_int_eq(a.reason, AC_ESTALE);
	ck_assert_int_eq(ac_watch(th_srv.rt, AC_HANDLE_NONE, AC_LOOP_DEFAULT, record, &a,
				  NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_watch(th_srv.rt, h, AC_LOOP(7), record, &a, NULL), AC_EINVAL);
	th_finish();
}
END_TEST

START_TEST(unwatch_before_close_means_it_never_fires)
{
	struct seen a = {0};
	uint64_t id;
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert_int_eq(ac_watch(th_srv.rt, th_handle(0), AC_LOOP_DEFAULT, record, &a, &id), 0);
	ck_assert_int_eq(ac_unwatch(th_srv.rt, id), 0);
	ck_assert_int_eq(ac_unwatch(th_srv.rt, id), AC_EALREADY);
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	usleep(50000);
	ck_assert_int_eq(a.calls, 0);
	th_finish();
}
END_TEST

START_TEST(watches_left_at_stop_fire_with_the_shutdown_reason)
{
	struct seen a = {0};
	int fd;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert_int_eq(ac_watch(th_srv.rt, th_handle(0), AC_LOOP(1), record, &a, NULL), 0);
	usleep(20000);
	ac_runtime_stop(th_srv.rt, 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.reason, AC_ESHUTDOWN);
	close(fd);
	th_finish();
}
END_TEST

/* ---- the race: 100,000 watches against closes from another thread ------- */

#define BATCHES 10
#define CONNS 100
#define PER_CONN 100 /* 10 x 100 x 100 = 100,000 watches */

struct w {
	int64_t fired;    /* fn calls */
	int cancelled;    /* ac_unwatch returned 0 */
	int late;         /* fn ran after ac_unwatch said it was done */
};

static struct w ws[CONNS * PER_CONN];
static int64_t in_fn;

static void count(ac_handle_t h, int reason, void *arg)
{
	struct w *w = arg;

	__atomic_fetch_add(&in_fn, 1, __ATOMIC_ACQ_REL);
	/* Stay a little, so unwatchers do meet a running fn. */
	if ((w - ws) % 64 == 0)
		sched_yield();
	if (__atomic_load_n(&w->cancelled, __ATOMIC_ACQUIRE))
		w->late = 1;
	__atomic_fetch_add(&w->fired, 1, __ATOMIC_ACQ_REL);
	__atomic_fetch_sub(&in_fn, 1, __ATOMIC_ACQ_REL);
}

struct closer {
	ac_handle_t *hs;
	int64_t go;
};

static void *close_all(void *arg)
{
	struct closer *cl = arg;

	while (!__atomic_load_n(&cl->go, __ATOMIC_ACQUIRE))
		sched_yield();
	for (int i = 0; i < CONNS; i++) {
		int err = ac_close(th_srv.rt, cl->hs[i], AC_CLOSE_ABORT);
		ck_assert(err == 0 || err == AC_EAGAIN || err == AC_ESTALE);
		if (err == AC_EAGAIN)
			i--; /* mailbox full: try again */
	}
	return NULL;
}

START_TEST(watchers_fire_exactly_once_racing_close_and_never_after_unwatch)
{
	unsigned seed = 42;
	int64_t total_fired = 0, total_cancelled = 0;

	th_server_start(2, "127.0.0.1:0", NULL);
	for (int b = 0; b < BATCHES; b++) {
		int fds[CONNS];
		ac_handle_t hs[CONNS];
		struct closer cl = {hs, 0};
		pthread_t t;

		memset(ws, 0, sizeof(ws));
		for (int i = 0; i < CONNS; i++) {
			fds[i] = th_connect_tcp("127.0.0.1", th_srv.port);
			hs[i] = th_handle(b * CONNS + i);
		}
		pthread_create(&t, NULL, close_all, &cl);
		for (int i = 0; i < CONNS; i++)
			for (int k = 0; k < PER_CONN; k++) {
				struct w *w = &ws[i * PER_CONN + k];
				uint64_t id;
				int err;

				if (i == 0 && k == PER_CONN / 2)
					__atomic_store_n(&cl.go, 1, __ATOMIC_RELEASE);
				do
					err = ac_watch(th_srv.rt, hs[i], AC_LOOP(k % 2),
						       count, w, &id);
				while (err == AC_EAGAIN);
				ck_assert_int_eq(err, 0);
				if (rand_r(&seed) % 3)
					continue;
				/* Unwatch a third of them, at random moments
				 * of the race. */
				err = ac_unwatch(th_srv.rt, id);
				if (err == 0) {
					__atomic_store_n(&w->cancelled, 1,
							 __ATOMIC_RELEASE);
				} else {
					ck_assert_int_eq(err, AC_EALREADY);
					/* "After it returns, fn has run." */
					ck_assert_int_eq(__atomic_load_n(&w->fired,
									 __ATOMIC_ACQUIRE),
							 1);
				}
			}
		pthread_join(t, NULL);
		ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)((b + 1) * CONNS),
				  10000));
		/* Let every posted fire run, then check each watch. */
		for (int i = 0; i < 5000; i++) {
			int64_t pending = 0;
			for (int k = 0; k < CONNS * PER_CONN; k++)
				pending += !__atomic_load_n(&ws[k].cancelled,
							    __ATOMIC_ACQUIRE) &&
					   !__atomic_load_n(&ws[k].fired,
							    __ATOMIC_ACQUIRE);
			if (!pending && !__atomic_load_n(&in_fn, __ATOMIC_ACQUIRE))
				break;
			usleep(1000);
		}
		for (int k = 0; k < CONNS * PER_CONN; k++) {
			struct w *w = &ws[k];
			ck_assert_int_eq(w->late, 0);
			ck_assert_int_eq(w->fired, w->cancelled ? 0 : 1);
			total_fired += w->fired;
			total_cancelled += w->cancelled;
		}
		for (int i = 0; i < CONNS; i++)
			close(fds[i]);
	}
	ck_assert_int_eq(total_fired + total_cancelled,
			 BATCHES * CONNS * PER_CONN);
	ck_assert_int_gt(total_cancelled, 0);
	th_finish();
}
END_TEST

/* ---- a stale fire must not overwrite the running callback's firer ------------
 *
 * Regression: ac__watch_fire stored the thread's id in the slot's firer
 * before the compare-and-swap that claims the slot. A FIRE message for a
 * watch that was cancelled (its slot since reused) loses that CAS, but had
 * already overwritten the firer of the new watch's callback running on
 * another loop. Then (1) ac_unwatch on the stale firer's thread took
 * itself for the callback's thread and returned while the callback still
 * ran, and (2) a callback that unwatched itself saw another thread's id
 * and waited for itself for ever. The sequence is forced: loop 0 holds the
 * stale FIRE behind a gate until the new callback runs on loop 2.
 */

struct race {
	int gate, gated, slow_started, slow_release, slow_done;
	int unwatched, done_when_unwatch_returned, self_ret;
	uint64_t id1, id2;
	int self_unwatch; /* variant (2): the callback unwatches itself */
	int stale_seen;   /* loop 0 has processed the stale FIRE */
};
static struct race R;

static bool flag(void *p)
{
	return __atomic_load_n((int *)p, __ATOMIC_ACQUIRE) != 0;
}

static void gate_fn(void *arg)
{
	__atomic_store_n(&R.gated, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&R.gate, __ATOMIC_ACQUIRE))
		usleep(100);
}

static void noop_watch(ac_handle_t h, int reason, void *arg)
{
}

static void slow_watch(ac_handle_t h, int reason, void *arg)
{
	__atomic_store_n(&R.slow_started, 1, __ATOMIC_RELEASE);
	if (R.self_unwatch) {
		/* Once loop 0 has run the stale FIRE, unwatch ourselves. */
		ck_assert(th_wait(flag, &R.stale_seen, 10000));
		__atomic_store_n(&R.self_ret, ac_unwatch(th_srv.rt, R.id2),
				 __ATOMIC_RELEASE);
	} else {
		usleep(300000);
	}
	__atomic_store_n(&R.slow_done, 1, __ATOMIC_RELEASE);
}

/* On loop 0, after the stale FIRE (both came from loop 1, in order). */
static void after_stale(void *arg)
{
	if (!R.self_unwatch) {
		int err = ac_unwatch(th_srv.rt, R.id2);

		ck_assert_int_eq(err, AC_EALREADY);
		__atomic_store_n(&R.done_when_unwatch_returned,
				 __atomic_load_n(&R.slow_done, __ATOMIC_ACQUIRE),
				 __ATOMIC_RELEASE);
		__atomic_store_n(&R.unwatched, 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&R.stale_seen, 1, __ATOMIC_RELEASE);
}

/* On loop 1: queue after_stale for loop 0 behind the stale FIRE. */
static void relay(void *arg)
{
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), after_stale, NULL), 0);
}

static void stale_fire_scenario(int self_unwatch)
{
	enum { N = 64 };
	int fds[N], a = -1, b = -1, n = 0;
	ac_handle_t h[N];

	memset(&R, 0, sizeof(R));
	R.self_unwatch = self_unwatch;
	th_server_start(3, "127.0.0.1:0", NULL);
	/* One at a time, so fds[i] is connection i, until two are on
	 * loop 1 (the kernel spreads them over the loops). */
	while (n < N && b < 0) {
		fds[n] = th_connect_tcp("127.0.0.1", th_srv.port);
		h[n] = th_handle(n);
		if (AC_HANDLE_LOOP(h[n]) == 1)
			*(a < 0 ? &a : &b) = n;
		n++;
	}
	ck_assert_msg(a >= 0 && b >= 0, "two connections on loop 1");
	/* W1 runs on loop 0; its connection is loop 1's. */
	ck_assert_int_eq(ac_watch(th_srv.rt, h[a], AC_LOOP(0), noop_watch, NULL, &R.id1),
			 0);
	usleep(50000);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), gate_fn, NULL), 0);
	ck_assert(th_wait(flag, &R.gated, 5000)); /* loop 0 is held */
	close(fds[a]); /* loop 1 posts FIRE(W1) to the gated loop 0 */
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	usleep(50000);
	ck_assert_int_eq(ac_unwatch(th_srv.rt, R.id1), 0); /* FIRE now stale */
	/* W2 reuses the slot and runs on loop 2. */
	ck_assert_int_eq(ac_watch(th_srv.rt, h[b], AC_LOOP(2), slow_watch, NULL, &R.id2),
			 0);
	ck_assert_uint_eq((uint32_t)R.id2, (uint32_t)R.id1);
	usleep(50000);
	close(fds[b]);
	ck_assert(th_wait(flag, &R.slow_started, 5000));
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(1), relay, NULL), 0);
	usleep(50000);
	__atomic_store_n(&R.gate, 1, __ATOMIC_RELEASE);
	ck_assert(th_wait(flag, &R.slow_done, 10000));
	for (int i = 0; i < n; i++)
		if (i != a && i != b)
			close(fds[i]);
}

START_TEST(unwatch_waits_for_a_callback_whose_firer_a_stale_fire_overwrote)
{
	stale_fire_scenario(0);
	ck_assert(th_wait(flag, &R.unwatched, 5000));
	ck_assert_msg(R.done_when_unwatch_returned,
		      "ac_unwatch returned while the callback still ran");
	th_finish();
}
END_TEST

START_TEST(callback_unwatching_itself_returns_at_once_after_a_stale_fire)
{
	/* The old code waited for ever here: Check's timeout fails it. */
	stale_fire_scenario(1);
	ck_assert_int_eq(R.self_ret, AC_EALREADY);
	th_finish();
}
END_TEST

START_TEST(unwatch_of_an_id_never_issued_is_einval)
{
	uint64_t id;
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert_int_eq(ac_watch(th_srv.rt, th_handle(0), AC_LOOP_DEFAULT, noop_watch,
				  NULL, &id),
			 0);
	/* The same slot, a generation not yet issued; and a slot no table
	 * segment holds. */
	ck_assert_int_eq(ac_unwatch(th_srv.rt, id + (1ull << 32)), AC_EINVAL);
	ck_assert_int_eq(ac_unwatch(th_srv.rt, (1ull << 32) | 0xfffffff0u),
			 AC_EINVAL);
	ck_assert_int_eq(ac_unwatch(th_srv.rt, id), 0);
	close(fd);
	th_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("watch");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, watch_fires_once_with_the_close_reason_on_the_named_loop);
	tcase_add_test(tc, watching_a_stale_handle_fires_estale_soon);
	tcase_add_test(tc, unwatch_before_close_means_it_never_fires);
	tcase_add_test(tc, watches_left_at_stop_fire_with_the_shutdown_reason);
	tcase_add_test(tc, watchers_fire_exactly_once_racing_close_and_never_after_unwatch);
	tcase_add_test(tc, unwatch_waits_for_a_callback_whose_firer_a_stale_fire_overwrote);
	tcase_add_test(tc, callback_unwatching_itself_returns_at_once_after_a_stale_fire);
	tcase_add_test(tc, unwatch_of_an_id_never_issued_is_einval);
	suite_add_tcase(s, tc);
	return th_run(s);
}
