/* test_pool.c: connection pools: bounds, FIFO waiters, timeouts, a back end
 * that dies and comes back, exactly-once callbacks over 100,000 cycles, and
 * freeing with connections still borrowed. */
#include "testhelp.h"
#include "upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_IDS 200000

static ac_runtime_t *rt;
static ac_pool_t *pool;
static struct up up;

/* Acquire results by acquire id. */
static struct {
	int64_t n;                /* callbacks so far (atomic) */
	int order[64];            /* ids in callback order */
	int err[64];
	ac_conn_t *conn[64];
	int64_t frames;           /* user on_frame calls */
	int64_t user_closes;      /* user on_close calls */
	uint64_t at_ms[64];
} got;

static void on_acq(ac_conn_t *c, int err, void *arg)
{
	int id = (int)(intptr_t)arg;
	int64_t i = __atomic_load_n(&got.n, __ATOMIC_RELAXED);

	ck_assert_int_eq(ac_loop_index() >= 0, 1);
	ck_assert(!c == (err != 0));
	if (i < 64)
		got.order[i] = id;
	if (id < 64) {
		got.err[id] = err;
		got.conn[id] = c;
		got.at_ms[id] = th_now_ms();
	}
	__atomic_fetch_add(&got.n, 1, __ATOMIC_RELEASE);
}

/* Runs fn(arg) on loop `loop` and waits for it to return. */
static int64_t ran;
struct call {
	void (*fn)(void *);
	void *arg;
};
static void call_tramp(void *arg)
{
	struct call *c = arg;
	c->fn(c->arg);
	__atomic_fetch_add(&ran, 1, __ATOMIC_RELEASE);
}
static void on_loop(int loop, void (*fn)(void *), void *arg)
{
	struct call c = {fn, arg};
	int64_t want = __atomic_load_n(&ran, __ATOMIC_ACQUIRE) + 1;

	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(loop), call_tramp, &c), 0);
	ck_assert(th_wait_ge(&ran, want, 10000));
}

static void acquire_ids(void *arg) /* "a-b": ids a .. b-1 */
{
	int a, b;

	sscanf(arg, "%d-%d", &a, &b);
	for (int id = a; id < b; id++)
		ck_assert_int_eq(
			ac_pool_acquire(pool, on_acq, (void *)(intptr_t)id), 0);
}

/* On the loop: acquires ids "a-b", then waits until n acquire callbacks
 * in all have come. */
static void acquire_on(int loop, const char *ids, int64_t n)
{
	on_loop(loop, acquire_ids, (void *)ids);
	ck_assert(th_wait_ge(&got.n, n, 5000));
}

static int release_how = AC_POOL_REUSE;
static void release_id(void *arg)
{
	int id = (int)(intptr_t)arg;
	ck_assert_int_eq(ac_pool_release(pool, got.conn[id], release_how), 0);
}

static void user_frame(ac_conn_t *c, const void *d, size_t n)
{
	__atomic_fetch_add(&got.frames, 1, __ATOMIC_RELEASE);
}
static void user_close(ac_conn_t *c, int reason)
{
	/* Releasing from inside on_close is allowed, and a no-op. */
	ck_assert_int_eq(ac_pool_release(pool, c, AC_POOL_REUSE), 0);
	__atomic_fetch_add(&got.user_closes, 1, __ATOMIC_RELEASE);
}

static void start(int loops, ac_pool_opts_t *o)
{
	ac_config_t cfg = {.loops = loops};
	char addr[64];

	if (!up.running)
		up_start(&up, up.port);
	rt = ac_runtime_new(&cfg);
	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", up.port);
	o->conn.framing = AC_FRAME_LINE;
	o->cbs.on_frame = user_frame;
	o->cbs.on_close = user_close;
	ck_assert_ptr_nonnull(pool = ac_pool_new(rt, addr, o));
}

static void finish(void)
{
	ac_pool_free(pool);
	ac_runtime_free(rt);
	up_stop(&up);
	th_assert_no_live_objects();
}

static ac_pool_stats_t stats(void)
{
	ac_pool_stats_t s;
	ck_assert_int_eq(ac_pool_stats(pool, &s), 0);
	return s;
}

static bool idle_is(void *want)
{
	return stats().idle == (uint64_t)(intptr_t)want;
}

START_TEST(pool_never_exceeds_max_per_loop_and_serves_waiters_fifo)
{
	ac_pool_opts_t o = {.max_per_loop = 2};

	start(1, &o);
	acquire_on(0, "0-6", 2);
	usleep(100000);
	ck_assert_int_eq(got.n, 2);
	ck_assert_int_eq(got.order[0], 0);
	ck_assert_int_eq(got.order[1], 1);
	ac_pool_stats_t s = stats();
	ck_assert_uint_eq(s.busy, 2);
	ck_assert_uint_eq(s.waiting, 4);
	ck_assert_uint_eq(s.connects, 2);
	/* Each release serves the oldest waiter. */
	for (int id = 0; id < 4; id++) {
		on_loop(0, release_id, (void *)(intptr_t)id);
		ck_assert(th_wait_ge(&got.n, 3 + id, 5000));
		ck_assert_int_eq(got.order[2 + id], 2 + id);
		ck_assert_int_eq(got.err[2 + id], 0);
	}
	s = stats();
	ck_assert_uint_eq(s.connects, 2); /* reused, never a third */
	ck_assert_int_eq(__atomic_load_n(&up.accepted, __ATOMIC_RELAXED), 2);
	ck_assert_uint_eq(s.waiting, 0);
	finish();
}
END_TEST

START_TEST(acquire_times_out_when_nothing_frees_up)
{
	ac_pool_opts_t o = {.max_per_loop = 1, .acquire_timeout_ms = 150};
	uint64_t t0;

	start(1, &o);
	acquire_on(0, "0-1", 1);
	t0 = th_now_ms();
	acquire_on(0, "1-2", 2);
	ck_assert_int_eq(got.err[1], AC_ETIMEDOUT);
	ck_assert_ptr_null(got.conn[1]);
	ck_assert_uint_ge(got.at_ms[1] - t0, 140);
	ck_assert_uint_eq(stats().timeouts, 1);
	finish();
}
END_TEST

START_TEST(too_many_waiters_get_elimit)
{
	ac_pool_opts_t o = {.max_per_loop = 1, .max_waiters = 2};

	start(1, &o);
	acquire_on(0, "0-1", 1);
	acquire_on(0, "1-4", 2);
	usleep(50000);
	ck_assert_int_eq(got.n, 2);
	ck_assert_int_eq(got.order[1], 3);
	ck_assert_int_eq(got.err[3], AC_ELIMIT);
	ck_assert_uint_eq(stats().waiting, 2);
	finish();
}
END_TEST

START_TEST(dead_upstream_fails_waiters_fast_and_the_pool_refills)
{
	ac_pool_opts_t o = {.max_per_loop = 4, .min_idle_per_loop = 2,
			    .acquire_timeout_ms = 5000};
	ac_stats_t st;
	uint64_t t0;

	o.conn.reconnect_min_ms = 20;
	o.conn.reconnect_max_ms = 100;
	start(2, &o);
	ck_assert(th_wait(idle_is, (void *)4, 5000)); /* 2 per loop */
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.pool_idle, 4);

	/* The back end dies: idle connections go, waiters fail with the
	 * connect error long before their timeout. */
	up_stop(&up);
	ck_assert(th_wait(idle_is, (void *)0, 5000));
	t0 = th_now_ms();
	acquire_on(1, "0-3", 3);
	for (int id = 0; id < 3; id++) {
		ck_assert_int_eq(got.err[id], -ECONNREFUSED);
		ck_assert_uint_lt(got.at_ms[id] - t0, 1000);
	}
	ck_assert_uint_ge(stats().failures, 1);
	ck_assert_uint_eq(stats().waiting, 0);

	/* It comes back: both loops refill to min_idle by themselves. */
	up_start(&up, up.port);
	ck_assert(th_wait(idle_is, (void *)4, 5000));
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.pool_idle, 4);
	ck_assert_uint_ge(st.pool_failures, 1);
	finish();
}
END_TEST

/* 100,000 acquire/release cycles over two loops. */
static uint8_t *fired;       /* per acquire id: callbacks seen */
static int64_t cycles_done;  /* atomic */
static int next_id[2];
#define CYCLES_PER_LOOP 50000

static void cycle_cb(ac_conn_t *c, int err, void *arg);
static void cycle_acquire(int loop)
{
	int id = loop * CYCLES_PER_LOOP + next_id[loop]++;
	ck_assert_int_eq(
		ac_pool_acquire(pool, cycle_cb, (void *)(intptr_t)id), 0);
}
static void cycle_cb(ac_conn_t *c, int err, void *arg)
{
	int id = (int)(intptr_t)arg, loop = ac_loop_index();

	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(fired[id]++, 0); /* exactly once */
	ck_assert_int_eq(AC_HANDLE_LOOP(ac_conn_handle(c)), loop);
	/* Every 1000th is thrown away, so the pool also reconnects. */
	ck_assert_int_eq(ac_pool_release(pool, c,
					 id % 1000 == 999 ? AC_POOL_DISCARD
							  : AC_POOL_REUSE),
			 0);
	__atomic_fetch_add(&cycles_done, 1, __ATOMIC_RELEASE);
	if (next_id[loop] < CYCLES_PER_LOOP)
		cycle_acquire(loop);
}
static void cycle_start(void *arg)
{
	int loop = ac_loop_index();
	/* Four chains per loop keep four connections busy at once. */
	for (int k = 0; k < 4; k++)
		cycle_acquire(loop);
	(void)arg;
}

START_TEST(every_acquire_calls_back_exactly_once_over_100000_cycles)
{
	ac_pool_opts_t o = {.max_per_loop = 3};

	fired = calloc(2 * CYCLES_PER_LOOP, 1);
	start(2, &o);
	on_loop(0, cycle_start, NULL);
	on_loop(1, cycle_start, NULL);
	ck_assert(th_wait_ge(&cycles_done, 2 * CYCLES_PER_LOOP, 60000));
	usleep(50000);
	ck_assert_int_eq(cycles_done, 2 * CYCLES_PER_LOOP);
	for (int i = 0; i < 2 * CYCLES_PER_LOOP; i++)
		ck_assert_int_eq(fired[i], 1);
	ac_pool_stats_t s = stats();
	ck_assert_uint_eq(s.busy, 0);
	ck_assert_uint_eq(s.waiting, 0);
	ck_assert_uint_le(s.idle, 6);
	/* 3 per loop to start with, plus one per discard at most. */
	ck_assert_uint_le(s.connects, 6 + 2 * CYCLES_PER_LOOP / 1000);
	ck_assert_uint_ge(s.connects, 2 * CYCLES_PER_LOOP / 1000);
	finish();
	free(fired);
}
END_TEST

static void close_then_release(void *arg)
{
	ac_conn_t *c = got.conn[0];
	ac_conn_close(c, AC_CLOSE_ABORT);
	ck_assert_int_eq(ac_pool_release(pool, c, AC_POOL_REUSE), 0);
}

START_TEST(a_connection_closed_while_borrowed_never_returns)
{
	ac_pool_opts_t o = {.max_per_loop = 1};

	start(1, &o);
	acquire_on(0, "0-1", 1);
	ac_conn_t *first = got.conn[0];
	on_loop(0, close_then_release, NULL);
	usleep(50000);
	ck_assert_uint_eq(stats().idle, 0);
	ck_assert_uint_eq(stats().busy, 0);
	acquire_on(0, "1-2", 2);
	ck_assert_int_eq(got.err[1], 0);
	ck_assert_uint_eq(stats().connects, 2); /* a new one */
	(void)first;

	/* The peer hangs up on a borrowed connection: the user's on_close
	 * runs (and may release, harmlessly); the pool forgets it. */
	up_stop(&up);
	ck_assert(th_wait_ge(&got.user_closes, 1, 5000));
	ck_assert_uint_eq(stats().busy, 0);
	finish();
}
END_TEST

static void say_hi(void *arg)
{
	ck_assert_int_eq(ac_conn_write(got.conn[0], "hi\n", 3), 0);
}

START_TEST(frames_reach_the_user_only_on_borrowed_connections)
{
	static const char ping[] = "PING\n";
	ac_pool_opts_t o = {.max_per_loop = 1, .min_idle_per_loop = 1};

	o.conn.heartbeat_ms = 20;
	o.conn.ping = ping;
	o.conn.ping_len = 5;
	start(1, &o);
	ck_assert(th_wait(idle_is, (void *)1, 5000));
	usleep(150000);
	/* heartbeats went out and came back */
	ck_assert_int_ge(__atomic_load_n(&up.lines, __ATOMIC_RELAXED), 3);
	ck_assert_int_eq(got.frames, 0);
	/* Borrowed, it sends no pings and never hears a PONG, not even
	 * one to a ping sent just before it was lent. */
	for (int i = 0; i < 20; i++) {
		memset(&got, 0, sizeof(got));
		acquire_on(0, "0-1", 1);
		usleep(60000);
		ck_assert_int_eq(got.frames, 0);
		on_loop(0, say_hi, NULL);
		ck_assert(th_wait_ge(&got.frames, 1, 5000));
		usleep(10000);
		ck_assert_int_eq(got.frames, 1);
		on_loop(0, release_id, (void *)0);
		usleep(i * 1000); /* land at varied points of the cadence */
	}
	finish();
}
END_TEST

START_TEST(idle_ttl_and_max_lifetime_close_connections)
{
	ac_pool_opts_t o = {.max_per_loop = 2, .idle_ttl_ms = 100};

	start(1, &o);
	acquire_on(0, "0-1", 1);
	on_loop(0, release_id, (void *)0);
	ck_assert_uint_eq(stats().idle, 1);
	ck_assert(th_wait(idle_is, (void *)0, 2000)); /* past its TTL */
	finish();

	memset(&got, 0, sizeof(got));
	ac_pool_opts_t l = {.max_per_loop = 2, .min_idle_per_loop = 1,
			    .max_lifetime_ms = 100};
	start(1, &l);
	ck_assert(th_wait(idle_is, (void *)1, 5000));
	usleep(600000);
	/* Replaced as it aged, and min_idle kept. */
	ck_assert_uint_ge(stats().connects, 3);
	ck_assert(th_wait(idle_is, (void *)1, 2000));
	finish();
}
END_TEST

START_TEST(freeing_fails_waiters_and_waits_for_borrowed_connections)
{
	ac_pool_opts_t o = {.max_per_loop = 1};
	ac_debug_counts_t d;

	start(1, &o);
	acquire_on(0, "0-2", 1);
	ac_pool_free(pool);
	ck_assert(th_wait_ge(&got.n, 2, 5000));
	ck_assert_int_eq(got.err[1], AC_ESHUTDOWN);
	ac_debug_counts(&d);
	ck_assert_int_gt(d.pools, 0); /* connection 0 is still borrowed */
	/* Giving it back closes it, and the pool's memory goes. */
	on_loop(0, release_id, (void *)0);
	ck_assert(th_wait_ge(&up.accepted, 1, 1000));
	for (int i = 0; i < 500; i++) {
		ac_debug_counts(&d);
		if (d.pools == 0)
			break;
		usleep(2000);
	}
	ck_assert_int_eq(d.pools, 0);
	ac_runtime_free(rt);
	up_stop(&up);
	th_assert_no_live_objects();
}
END_TEST

static int64_t off_loop_checked;
static void release_elsewhere(void *arg)
{
	/* Loop 1 may not release loop 0's connection. */
	ck_assert_int_eq(ac_pool_release(pool, got.conn[0], AC_POOL_REUSE),
			 AC_ETHREAD);
	off_loop_checked = 1;
}

START_TEST(pool_argument_and_thread_errors)
{
	ac_pool_opts_t o = {.max_per_loop = 1};

	start(2, &o);
	errno = 0;
	ck_assert_ptr_null(ac_pool_new(rt, "nonsense", &o));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(ac_pool_new(NULL, "127.0.0.1:1", &o));
	ac_pool_opts_t bad = {.max_per_loop = 1, .min_idle_per_loop = 2};
	ck_assert_ptr_null(ac_pool_new(rt, "127.0.0.1:1", &bad));
	/* Not a loop: an error, and the callback never runs. */
	ck_assert_int_eq(ac_pool_acquire(pool, on_acq, NULL), AC_ETHREAD);
	ck_assert_int_eq(ac_pool_acquire(NULL, on_acq, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_pool_stats(NULL, NULL), AC_EINVAL);
	acquire_on(0, "0-1", 1);
	on_loop(1, release_elsewhere, NULL);
	ck_assert_int_eq(off_loop_checked, 1);
	ck_assert_int_eq(ac_pool_release(pool, NULL, 0), AC_EINVAL);
	usleep(20000);
	ck_assert_int_eq(got.n, 1);
	finish();
}
END_TEST

START_TEST(stopping_the_runtime_fails_waiters_and_frees_leftover_pools)
{
	ac_pool_opts_t o = {.max_per_loop = 1, .min_idle_per_loop = 1};
	char text[16384];

	start(2, &o);
	ck_assert(th_wait(idle_is, (void *)2, 5000));
	ck_assert_int_gt(ac_stats_prometheus(rt, text, sizeof(text)), 0);
	ck_assert_ptr_nonnull(strstr(text, "actorconn_pool_idle{loop=\"0\"} 1"));
	ck_assert_ptr_nonnull(strstr(text, "actorconn_pool_connects_total"));
	acquire_on(0, "0-3", 1); /* one served, two waiting */
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(got.n, 3);
	ck_assert_int_eq(got.err[1], AC_ESHUTDOWN);
	ck_assert_int_eq(got.err[2], AC_ESHUTDOWN);
	/* No ac_pool_free: ac_runtime_free takes the pool with it. */
	ac_runtime_free(rt);
	up_stop(&up);
	th_assert_no_live_objects();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("pool");

	tcase_add_test(tc,
		       pool_never_exceeds_max_per_loop_and_serves_waiters_fifo);
	tcase_add_test(tc, acquire_times_out_when_nothing_frees_up);
	tcase_add_test(tc, too_many_waiters_get_elimit);
	tcase_add_test(tc, dead_upstream_fails_waiters_fast_and_the_pool_refills);
	tcase_add_test(tc,
		       every_acquire_calls_back_exactly_once_over_100000_cycles);
	tcase_add_test(tc, a_connection_closed_while_borrowed_never_returns);
	tcase_add_test(tc, frames_reach_the_user_only_on_borrowed_connections);
	tcase_add_test(tc, idle_ttl_and_max_lifetime_close_connections);
	tcase_add_test(tc,
		       freeing_fails_waiters_and_waits_for_borrowed_connections);
	tcase_add_test(tc, pool_argument_and_thread_errors);
	tcase_add_test(tc,
		       stopping_the_runtime_fails_waiters_and_frees_leftover_pools);
	suite_add_tcase(s, tc);
	return th_run(s);
}
