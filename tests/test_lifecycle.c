/* test_lifecycle.c: timers, liveness, output bounds, limits, accept back-off. */
#include "testhelp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static ac_stats_t stats(void)
{
	ac_stats_t st;
	ck_assert_int_eq(ac_stats(th_srv.rt, &st, NULL, 0), ac_runtime_loops(th_srv.rt));
	return st;
}

/* ---- idle timeout ----------------------------------------------------------- */

START_TEST(slowloris_client_is_closed_at_the_idle_timeout)
{
	ac_conn_opts_t o = {.idle_timeout_ms = 400};
	uint64_t t0, took;
	int fd;

	th_server_start(1, "127.0.0.1:0", &o);
	t0 = th_now_ms();
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	/* Sends nothing at all. */
	ck_assert(th_wait_eof(fd, 5000));
	took = th_now_ms() - t0;
	ck_assert_msg(took >= 300 && took <= 500, "closed after %llu ms",
		      (unsigned long long)took);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ETIMEDOUT);
	ck_assert_uint_eq(stats().closed[AC_CR_TIMEOUT], 1);
	close(fd);
	th_finish();
}
END_TEST

START_TEST(bytes_received_restart_the_idle_clock)
{
	ac_conn_opts_t o = {.idle_timeout_ms = 300};
	char buf[1];
	int fd;

	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	for (int i = 0; i < 5; i++) { /* 5 x 150 ms: past 2x the timeout */
		usleep(150000);
		th_write_all(fd, "k", 1);
		ck_assert(th_read_full(fd, buf, 1));
	}
	ck_assert_int_eq(__atomic_load_n(&th_srv.closed, __ATOMIC_ACQUIRE), 0);
	ck_assert(th_wait_eof(fd, 5000));
	/* The peer sees EOF a moment before on_close records the reason. */
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ETIMEDOUT);
	close(fd);
	th_finish();
}
END_TEST

/* ---- heartbeats and timers ---------------------------------------------- */

static int64_t beats;

static void on_beat(ac_conn_t *c)
{
	__atomic_fetch_add(&beats, 1, __ATOMIC_RELAXED);
}

START_TEST(heartbeat_cadence_over_two_seconds)
{
	ac_conn_opts_t o = {.heartbeat_ms = 100};
	ac_conn_cbs_t cbs = {.on_heartbeat = on_beat};
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});
	ac_listener_t *l;
	int64_t n;
	int fd;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	fd = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	usleep(2050000);
	n = __atomic_load_n(&beats, __ATOMIC_RELAXED);
	ck_assert_msg(n >= 17 && n <= 21, "%lld beats in 2.05 s at 100 ms",
		      (long long)n);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* Heartbeats of connections opened at different moments share loop
 * wake-ups: each beat's time, by open order and round. */
#define HB_N 10
static uint64_t hb_open_us[HB_N], hb_beat_us[HB_N][2];
static int hb_opened, hb_beats[HB_N];

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void hb_on_open(ac_conn_t *c)
{
	int i = hb_opened++; /* one loop: no other thread */

	hb_open_us[i] = mono_us();
	ac_conn_set_data(c, (void *)(intptr_t)i);
}

static void hb_on_beat(ac_conn_t *c)
{
	int i = (int)(intptr_t)ac_conn_data(c);

	if (hb_beats[i] < 2)
		hb_beat_us[i][hb_beats[i]] = mono_us();
	__atomic_fetch_add(&hb_beats[i], 1, __ATOMIC_RELEASE);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The wake-ups that ran round r's beats: one turn runs its beats back to
 * back (microseconds apart, a fraction of a millisecond under valgrind),
 * while beats of connections opened 4 ms apart that each woke the loop
 * would be 4 ms apart: more than 1.5 ms is another turn. */
static int hb_turns(int r)
{
	uint64_t t[HB_N];
	int turns = 1;

	for (int i = 0; i < HB_N; i++)
		t[i] = hb_beat_us[i][r];
	qsort(t, HB_N, sizeof(t[0]), cmp_u64);
	for (int i = 1; i < HB_N; i++)
		turns += t[i] - t[i - 1] > 1500;
	return turns;
}

static bool hb_two_rounds(void *arg)
{
	for (int i = 0; i < HB_N; i++)
		if (__atomic_load_n(&hb_beats[i], __ATOMIC_ACQUIRE) < 2)
			return false;
	return true;
}

START_TEST(heartbeats_of_connections_opened_apart_share_wakeups)
{
	/* 2 s: the heartbeats fall on a 20 ms grid (a hundredth). */
	ac_conn_opts_t o = {.heartbeat_ms = 2000};
	ac_conn_cbs_t cbs = {.on_open = hb_on_open, .on_heartbeat = hb_on_beat};
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});
	ac_listener_t *l;
	int fds[HB_N], grid_steps, r0, r1;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	/* One connection every 4 ms or so: one wake-up each, unbatched. */
	for (int i = 0; i < HB_N; i++) {
		fds[i] = th_connect_tcp("127.0.0.1", ac_listener_port(l));
		usleep(4000);
	}
	ck_assert(th_wait(hb_two_rounds, NULL, 10000));
	ac_runtime_stop(rt, 0);
	/* The grid steps the opening took, one more where it began, and one
	 * for the loop turns' times, which the grid counts from, lagging
	 * on_open's clock unevenly (by milliseconds under valgrind). */
	grid_steps = (int)((hb_open_us[HB_N - 1] - hb_open_us[0]) / 20000) + 3;
	r0 = hb_turns(0);
	r1 = hb_turns(1);
	ck_assert_msg(grid_steps < HB_N,
		      "opening %d connections took %.1f ms: too slow to tell",
		      HB_N, (hb_open_us[HB_N - 1] - hb_open_us[0]) / 1000.0);
	ck_assert_msg(r0 <= grid_steps && r1 <= grid_steps,
		      "%d connections opened over %.1f ms: first beats in %d "
		      "loop turns, second in %d (at most %d)",
		      HB_N, (hb_open_us[HB_N - 1] - hb_open_us[0]) / 1000.0, r0,
		      r1, grid_steps);
	for (int i = 0; i < HB_N; i++) {
		/* At the period (at most a grid step after it; on_open's
		 * clock reads a little after the turn's time the period
		 * counts from), then a period later (less the first beat's
		 * wait behind the others of its turn). */
		ck_assert_uint_ge(hb_beat_us[i][0] - hb_open_us[i], 1990000);
		ck_assert_uint_le(hb_beat_us[i][0] - hb_open_us[i], 2020000 + 300000);
		ck_assert_uint_ge(hb_beat_us[i][1] - hb_beat_us[i][0], 1950000);
		close(fds[i]);
	}
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(heartbeat_without_callback_writes_the_ping)
{
	ac_conn_opts_t o = {.heartbeat_ms = 50, .ping = "PING\n", .ping_len = 5};
	char buf[15];
	int fd;

	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_read_full(fd, buf, 15));
	ck_assert(memcmp(buf, "PING\nPING\nPING\n", 15) == 0);
	close(fd);
	th_finish();
}
END_TEST

static int64_t ticks;

static void tick(ac_conn_t *c, void *arg)
{
	ck_assert_ptr_eq(arg, &ticks);
	__atomic_fetch_add(&ticks, 1, __ATOMIC_RELAXED);
}

static void start_conn_timer(ac_conn_t *c)
{
	ck_assert_ptr_nonnull(ac_conn_timer(c, 10, 1, tick, &ticks));
}

START_TEST(connection_timer_stops_when_its_connection_closes)
{
	int64_t at_close;
	int fd;

	th_srv.on_open = start_conn_timer;
	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait_ge(&ticks, 5, 5000));
	ck_assert_uint_eq(stats().timers_live, 1);
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	at_close = __atomic_load_n(&ticks, __ATOMIC_RELAXED);
	usleep(100000);
	ck_assert_int_eq(__atomic_load_n(&ticks, __ATOMIC_RELAXED), at_close);
	ck_assert_uint_eq(stats().timers_live, 0);
	th_finish();
}
END_TEST

static int64_t once_ran, repeat_ran, cancelled_ran, started;
static ac_timer_t *repeating;

static void once_fn(void *arg) { __atomic_fetch_add(&once_ran, 1, __ATOMIC_RELAXED); }
static void cancelled_fn(void *arg) { cancelled_ran++; }

static void repeat_fn(void *arg)
{
	if (__atomic_add_fetch(&repeat_ran, 1, __ATOMIC_RELAXED) == 3)
		ac_timer_cancel(repeating); /* from inside its own fn */
}

static void start_timers(void *arg)
{
	ac_runtime_t *rt = arg;
	ac_timer_t *t;

	ck_assert_ptr_nonnull(ac_timer_start(rt, 20, 0, once_fn, NULL));
	ck_assert_ptr_nonnull(repeating = ac_timer_start(rt, 10, 1, repeat_fn, NULL));
	ck_assert_ptr_nonnull(t = ac_timer_start(rt, 10, 0, cancelled_fn, NULL));
	ac_timer_cancel(t);
	/* A timer left running is freed when the runtime stops. */
	ck_assert_ptr_nonnull(ac_timer_start(rt, 60000, 1, cancelled_fn, NULL));
	__atomic_store_n(&started, 1, __ATOMIC_RELEASE);
}

START_TEST(loop_timers_fire_cancel_and_stop_with_the_runtime)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});

	errno = 0;
	ck_assert_ptr_null(ac_timer_start(rt, 10, 0, once_fn, NULL));
	ck_assert_int_eq(errno, EPERM); /* not on a loop */
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), start_timers, rt), 0);
	ck_assert(th_wait_ge(&started, 1, 5000));
	ck_assert(th_wait_ge(&once_ran, 1, 5000));
	ck_assert(th_wait_ge(&repeat_ran, 3, 5000));
	usleep(100000);
	ck_assert_int_eq(__atomic_load_n(&once_ran, __ATOMIC_RELAXED), 1);
	ck_assert_int_eq(__atomic_load_n(&repeat_ran, __ATOMIC_RELAXED), 3);
	ck_assert_int_eq(cancelled_ran, 0);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- output bounds ------------------------------------------------------------ */

static size_t max_out;
static int write_err;

#define CHUNK (64 << 10)

static void pour(ac_conn_t *c, void *arg)
{
	static char chunk[CHUNK];

	/* Keep writing to a peer that never reads, watching the queue. */
	for (int i = 0; i < 4; i++) {
		int err = ac_conn_write(c, chunk, sizeof(chunk));
		size_t q = ac_conn_out_bytes(c);

		if (q > max_out)
			max_out = q;
		if (err) {
			write_err = err;
			return;
		}
	}
}

static void start_pouring(ac_conn_t *c)
{
	ck_assert_ptr_nonnull(ac_conn_timer(c, 1, 1, pour, NULL));
}

START_TEST(slow_consumer_is_closed_with_eslow_at_the_hard_limit)
{
	ac_conn_opts_t o = {.out_hard_limit = 1 << 20,
			    .out_soft_limit = 1 << 20};
	int fd;

	th_srv.on_open = start_pouring;
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_closed_ge, (void *)1, 10000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ESLOW);
	ck_assert_int_eq(write_err, AC_ESLOW);
	/* Queued output never went past the hard limit plus one write. */
	ck_assert_uint_le(max_out, (1u << 20) + CHUNK);
	ck_assert_uint_eq(stats().closed[AC_CR_SLOW], 1);
	close(fd);
	th_finish();
}
END_TEST

/* Loopback sockets absorb a few MiB into kernel buffers: queue far more
 * than that, so that output really stays queued. */
#define BIG (16 << 20)
static char big[BIG];

static void write_once(ac_conn_t *c)
{
	ck_assert_int_eq(ac_conn_write(c, big, BIG), 0);
}

START_TEST(output_over_the_soft_limit_for_too_long_is_eslow)
{
	ac_conn_opts_t o = {.out_soft_limit = 1 << 20, .out_soft_ms = 300,
			    .out_hard_limit = 64 << 20};
	uint64_t t0 = th_now_ms();
	int fd;

	th_srv.on_open = write_once;
	th_server_start(1, "127.0.0.1:0", &o);
	/* Tiny receive buffer, never read: most of 16 MiB stays queued. */
	fd = th_dial_tcp("127.0.0.1", th_srv.port, 4096);
	ck_assert_int_ge(fd, 0);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_uint_ge(th_now_ms() - t0, 250);
	ck_assert_int_eq(th_srv.reasons[0], AC_ESLOW);
	close(fd);
	th_finish();
}
END_TEST

static int set_unbounded = 1, set_lowered = 1, set_bad[3];

/* Room for BIG at once, against the listener's 1 MiB; then a limit the
 * queued output is over. */
static void unbound_then_lower(ac_conn_t *c)
{
	set_bad[0] = ac_conn_set_out_limits(c, 1 << 10, 1 << 10, 0);
	set_bad[1] = ac_conn_set_out_limits(c, 2 << 20, 4 << 20, 0);
	set_bad[2] = ac_conn_set_out_limits(NULL, SIZE_MAX, 0, 0);
	__atomic_store_n(&set_unbounded,
			 ac_conn_set_out_limits(c, SIZE_MAX, SIZE_MAX, 0),
			 __ATOMIC_RELEASE);
	ck_assert_int_eq(ac_conn_write(c, big, BIG), 0);
	__atomic_store_n(&set_lowered,
			 ac_conn_set_out_limits(c, 1 << 20, 1 << 20, 0),
			 __ATOMIC_RELEASE);
}

START_TEST(own_output_limits_replace_the_listeners_at_once)
{
	ac_conn_opts_t o = {.out_hard_limit = 1 << 20,
			    .out_soft_limit = 1 << 20};
	int fd;

	th_srv.on_open = unbound_then_lower;
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_dial_tcp("127.0.0.1", th_srv.port, 4096);
	ck_assert_int_ge(fd, 0);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	/* Below out_high (256 KiB), soft over hard, no connection. */
	ck_assert_int_eq(set_bad[0], AC_EINVAL);
	ck_assert_int_eq(set_bad[1], AC_EINVAL);
	ck_assert_int_eq(set_bad[2], AC_EINVAL);
	ck_assert_int_eq(__atomic_load_n(&set_unbounded, __ATOMIC_ACQUIRE), 0);
	ck_assert_int_eq(__atomic_load_n(&set_lowered, __ATOMIC_ACQUIRE),
			 AC_ESLOW);
	ck_assert_int_eq(th_srv.reasons[0], AC_ESLOW);
	ck_assert_int_eq(ac_conn_set_out_limits((ac_conn_t *)&o, SIZE_MAX,
						0, 0),
			 AC_ETHREAD);
	close(fd);
	th_finish();
}
END_TEST

static void soft_after_the_fact(ac_conn_t *c)
{
	ck_assert_int_eq(ac_conn_write(c, big, BIG), 0);
	ck_assert_int_eq(ac_conn_set_out_limits(c, 64 << 20, 1 << 20, 300), 0);
}

START_TEST(own_soft_limit_starts_its_clock_on_output_already_queued)
{
	ac_conn_opts_t o = {.out_hard_limit = 64 << 20,
			    .out_soft_limit = 64 << 20};
	uint64_t t0 = th_now_ms();
	int fd;

	th_srv.on_open = soft_after_the_fact;
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_dial_tcp("127.0.0.1", th_srv.port, 4096);
	ck_assert_int_ge(fd, 0);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_uint_ge(th_now_ms() - t0, 250);
	ck_assert_int_eq(th_srv.reasons[0], AC_ESLOW);
	close(fd);
	th_finish();
}
END_TEST

static int64_t drained, writable_after_write = -1;

static void on_drain(ac_conn_t *c)
{
	ck_assert(ac_conn_writable(c));
	ck_assert_uint_lt(ac_conn_out_bytes(c), 32 << 10);
	__atomic_fetch_add(&drained, 1, __ATOMIC_RELEASE);
}

static void burst(ac_conn_t *c)
{
	ck_assert_int_eq(ac_conn_write(c, big, BIG), 0);
	__atomic_store_n(&writable_after_write, ac_conn_writable(c),
			 __ATOMIC_RELEASE);
}

START_TEST(watermarks_flip_writable_and_on_drain_fires_once)
{
	ac_conn_opts_t o = {.out_high = 128 << 10, .out_low = 32 << 10,
			    .out_hard_limit = 64 << 20, .out_soft_limit = 64 << 20};
	ac_conn_cbs_t cbs = {.on_open = burst, .on_drain = on_drain};
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});
	static char sink[BIG];
	ac_listener_t *l;
	int fd;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	fd = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	ck_assert(th_wait_ge(&writable_after_write, 0, 5000));
	ck_assert_int_eq(writable_after_write, 0); /* 16 MiB > high */
	usleep(50000);
	ck_assert_int_eq(drained, 0); /* nothing read yet */
	ck_assert(th_read_full(fd, sink, sizeof(sink)));
	ck_assert(th_wait_ge(&drained, 1, 5000));
	usleep(50000);
	ck_assert_int_eq(drained, 1);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(stuck_output_is_closed_at_the_write_timeout)
{
	ac_conn_opts_t o = {.write_timeout_ms = 300, .out_hard_limit = 64 << 20,
			    .out_soft_limit = 64 << 20};
	uint64_t t0;
	int fd;

	th_srv.on_open = write_once;
	th_server_start(1, "127.0.0.1:0", &o);
	t0 = th_now_ms();
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_uint_ge(th_now_ms() - t0, 250);
	ck_assert_int_eq(th_srv.reasons[0], AC_EWTIMEDOUT);
	ck_assert_uint_eq(stats().closed[AC_CR_WTIMEOUT], 1);
	close(fd);
	th_finish();
}
END_TEST

/* ---- connection limits ---------------------------------------------------- */

static void limit_test(bool per_listener)
{
	ac_conn_opts_t o = {.max_conns = per_listener ? 2 : 0};
	ac_config_t cfg = {.loops = 2, .max_conns = per_listener ? 0 : 2};
	static const ac_conn_cbs_t cbs = {0};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	ac_listener_t *l;
	int fds[3];
	char c;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	for (int i = 0; i < 2; i++)
		fds[i] = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	usleep(100000);
	/* The third is accepted and closed at once, not left waiting. */
	fds[2] = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	ck_assert(th_wait_eof(fds[2], 2000));
	ck_assert_int_eq(recv(fds[0], &c, 1, MSG_DONTWAIT), -1); /* open */
	ac_stats_t st;
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.rejected, 1);
	ck_assert_uint_eq(st.conns_open, 2);
	/* A place frees up when one closes. */
	close(fds[0]);
	for (int i = 0; i < 2000; i++) {
		ac_stats(rt, &st, NULL, 0);
		if (st.conns_open == 1)
			break;
		usleep(1000);
	}
	close(fds[2]);
	fds[2] = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	th_write_all(fds[2], "x", 1);
	ck_assert(!th_wait_eof(fds[2], 200));
	for (int i = 1; i < 3; i++)
		close(fds[i]);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}

START_TEST(listener_max_conns_accepts_and_closes_the_excess) { limit_test(true); }
END_TEST
START_TEST(runtime_max_conns_accepts_and_closes_the_excess) { limit_test(false); }
END_TEST

/* ---- out of descriptors ------------------------------------------------------- */

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int64_t logged;

static void count_log(int level, const char *msg, void *arg)
{
	ck_assert_int_eq(level, AC_LOG_WARN);
	__atomic_fetch_add(&logged, 1, __ATOMIC_RELAXED);
}

START_TEST(emfile_pauses_the_listener_and_it_resumes_by_itself)
{
	/* Check runs each test in its own fork: lowering the limit here
	 * touches nothing else. */
	struct rlimit rl;
	ac_config_t cfg = {.loops = 1, .log = count_log};
	static const ac_conn_cbs_t cbs = {0};
	int spare[128], nspare = 0, client;
	ac_listener_t *l;
	ac_runtime_t *rt;
	ac_stats_t st;
	double cpu;

	/* The soft limit only: lowering the hard limit is not needed, and
	 * valgrind (make check-valgrind) refuses to change it. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 128;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	rt = ac_runtime_new(&cfg);
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, NULL, NULL, &l), 0);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	client = socket(AF_INET, SOCK_STREAM, 0); /* before running out */
	while (nspare < 128) {
		int fd = dup(0);
		if (fd < 0)
			break;
		spare[nspare++] = fd;
	}
	ck_assert_int_eq(errno, EMFILE);
	/* The kernel completes the handshake; accept() cannot take it. */
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)ac_listener_port(l)),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	ck_assert_int_eq(connect(client, (struct sockaddr *)&a, sizeof(a)), 0);
	cpu = cpu_seconds();
	sleep(1);
	cpu = cpu_seconds() - cpu;
	ck_assert_msg(cpu < 0.2, "spun: %.3f s of CPU in 1 s", cpu);
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_ge(st.accept_pauses, 2);
	ck_assert_uint_eq(st.accepted, 0);
	ck_assert_int_ge(__atomic_load_n(&logged, __ATOMIC_RELAXED), 2);
	/* Descriptors come back: the listener resumes without help. */
	for (int i = 0; i < 16; i++)
		close(spare[--nspare]);
	for (int i = 0; i < 3000; i++) {
		ac_stats(rt, &st, NULL, 0);
		if (st.accepted == 1)
			break;
		usleep(1000);
	}
	ck_assert_uint_eq(st.accepted, 1);
	while (nspare)
		close(spare[--nspare]);
	close(client);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");
	TCase *fdlimit = tcase_create("fdlimit");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, slowloris_client_is_closed_at_the_idle_timeout);
	tcase_add_test(tc, bytes_received_restart_the_idle_clock);
	tcase_add_test(tc, heartbeat_cadence_over_two_seconds);
	tcase_add_test(tc, heartbeat_without_callback_writes_the_ping);
	tcase_add_test(tc, heartbeats_of_connections_opened_apart_share_wakeups);
	tcase_add_test(tc, connection_timer_stops_when_its_connection_closes);
	tcase_add_test(tc, loop_timers_fire_cancel_and_stop_with_the_runtime);
	tcase_add_test(tc, slow_consumer_is_closed_with_eslow_at_the_hard_limit);
	tcase_add_test(tc, output_over_the_soft_limit_for_too_long_is_eslow);
	tcase_add_test(tc, own_output_limits_replace_the_listeners_at_once);
	tcase_add_test(tc, own_soft_limit_starts_its_clock_on_output_already_queued);
	tcase_add_test(tc, watermarks_flip_writable_and_on_drain_fires_once);
	tcase_add_test(tc, stuck_output_is_closed_at_the_write_timeout);
	tcase_add_test(tc, listener_max_conns_accepts_and_closes_the_excess);
	tcase_add_test(tc, runtime_max_conns_accepts_and_closes_the_excess);
	suite_add_tcase(s, tc);
	/* Tagged: make check-valgrind leaves it out (CK_EXCLUDE_TAGS). valgrind
	 * emulates RLIMIT_NOFILE itself: when accept() returns a descriptor
	 * over its limit it closes it and returns EMFILE, so the pending
	 * connection this test waits for is gone. */
	tcase_set_timeout(fdlimit, 60);
	tcase_set_tags(fdlimit, "fdlimit");
	tcase_add_test(fdlimit, emfile_pauses_the_listener_and_it_resumes_by_itself);
	suite_add_tcase(s, fdlimit);
	return th_run(s);
}
