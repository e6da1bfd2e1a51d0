/* test_runtime.c: lifecycle, stop under load, thread rules, counters. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_getaffinity_np */
#endif
#include "testhelp.h"

#include <sched.h>

#include <pthread.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The header says what a program was compiled against; ac_version what
 * it runs with. Built together, they agree, and the string is the
 * package's version. */
START_TEST(version_at_run_time_matches_the_header)
{
	char want[32];

	ck_assert_uint_eq(ac_version(), AC_VERSION_HEX);
	ck_assert_uint_eq(ac_version() >> 16, AC_VERSION_MAJOR);
	ck_assert_uint_eq((ac_version() >> 8) & 0xff, AC_VERSION_MINOR);
	ck_assert_uint_eq(ac_version() & 0xff, AC_VERSION_PATCH);
	snprintf(want, sizeof(want), "%d.%d.%d", AC_VERSION_MAJOR,
		 AC_VERSION_MINOR, AC_VERSION_PATCH);
	ck_assert_str_eq(ac_version_string(), want);
	ck_assert_str_eq(ac_version_string(), PACKAGE_VERSION);
}
END_TEST

/* Reserved tails are where later fields go (actorconn(7), "GROWING
 * STRUCTURES"): an input struct with anything there is refused, so that
 * garbage can never be read as a later version's setting. */
static int logged;

static void count_log(int level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	if (strstr(msg, "reserved fields are not zero"))
		logged++;
}

START_TEST(reserved_fields_must_be_zero)
{
	ac_config_t cfg = {.loops = 1, .log = count_log};
	ac_conn_opts_t o = {0};
	ac_conn_cbs_t cbs = {0};
	ac_pool_opts_t po = {0};
	ac_tls_opts_t to = {.role = AC_TLS_CLIENT};
	ac_listener_t *l;
	ac_handle_t h;
	ac_runtime_t *rt;
	char why[160];

	cfg.reserved[6] = 1; /* the last */
	errno = 0;
	ck_assert_ptr_null(ac_runtime_new(&cfg));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(logged, 1);
	cfg.reserved[6] = 0;
	ck_assert_ptr_nonnull(rt = ac_runtime_new(&cfg));
	ck_assert_int_eq(ac_runtime_start(rt), 0);

	o.reserved[0] = 1;
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l),
			 AC_EINVAL);
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cbs, &o, NULL, &h),
			 AC_EINVAL);
	o.reserved[0] = 0;
	cbs.reserved[3] = (void (*)(void))count_log;
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l),
			 AC_EINVAL);
	cbs.reserved[3] = NULL;
	po.reserved[2] = 5;
	errno = 0;
	ck_assert_ptr_null(ac_pool_new(rt, "127.0.0.1:1", &po));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(logged, 5);
	to.reserved[1] = 1;
	errno = 0;
	ck_assert_ptr_null(ac_tls_new(&to, why, sizeof(why)));
	ck_assert(errno == EINVAL || errno == ENOTSUP);
	/* Zeroed, all of them work. */
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(new_and_free_without_start_leaves_nothing)
{
	ac_runtime_t *rt = ac_runtime_new(NULL);
	ac_listener_t *l;
	ac_conn_cbs_t cbs = {0};

	ck_assert_ptr_nonnull(rt);
	/* A listener made before start and never closed is freed too. */
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, NULL, NULL, &l), 0);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* The loops a runtime made with defaults has, while this thread may run
 * on the CPUs of set. */
static int default_loops_on(const cpu_set_t *set)
{
	ac_runtime_t *rt;
	int n;

	ck_assert_int_eq(sched_setaffinity(0, sizeof(*set), set), 0);
	ck_assert_ptr_nonnull(rt = ac_runtime_new(NULL));
	n = ac_runtime_loops(rt);
	ac_runtime_free(rt);
	return n;
}

START_TEST(default_loops_leave_one_cpu)
{
	cpu_set_t all, one;
	int first = -1, n;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	n = CPU_COUNT(&all);
	for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
		if (CPU_ISSET(c, &all))
			first = c;
	/* One for each CPU this thread may use, less one, at least one. */
	ck_assert_int_eq(default_loops_on(&all), n > 1 ? n - 1 : 1);
	CPU_ZERO(&one);
	CPU_SET(first, &one);
	ck_assert_int_eq(default_loops_on(&one), 1);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(all), &all), 0);
	th_assert_no_live_objects();
}
END_TEST

static int64_t cpus_seen[2] = {-1, -1}, loops_reported;

/* On loop i: the one CPU the loop may run on, or -2 when it may run on
 * several. */
static void report_affinity(void *arg)
{
	int i = (int)(intptr_t)arg, only = -1, n = 0;
	cpu_set_t set;

	CPU_ZERO(&set);
	ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof(set),
						&set),
			 0);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set)) {
			only = c;
			n++;
		}
	__atomic_store_n(&cpus_seen[i], n == 1 ? only : -2, __ATOMIC_RELAXED);
	__atomic_fetch_add(&loops_reported, 1, __ATOMIC_RELEASE);
}

START_TEST(start_twice_is_estate_and_pinning_works)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 2, .pin_cpus = 1});
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_runtime_start(rt), AC_ESTATE);
	/* Pinned: loop i may run on CPU i mod CPUs, and on no other. */
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(i), report_affinity,
					      (void *)(intptr_t)i),
				 0);
	ck_assert(th_wait_ge(&loops_reported, 2, 5000));
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(cpus_seen[i], i % ncpu);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

static int64_t stop_result = 1;

static void stop_from_loop(void *arg)
{
	__atomic_store_n(&stop_result, ac_runtime_stop(arg, 0),
			 __ATOMIC_RELEASE);
}

START_TEST(stop_from_a_loop_is_ethread)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});

	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), stop_from_loop, rt), 0);
	for (int i = 0; i < 5000 && __atomic_load_n(&stop_result, __ATOMIC_ACQUIRE) == 1; i++)
		usleep(1000);
	ck_assert_int_eq(stop_result, AC_ETHREAD);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- stop with traffic in flight --------------------------------------- */

#define CLIENTS 16
#define SENDERS 4

static void *client(void *arg)
{
	int fd = th_connect_tcp("127.0.0.1", th_srv.port);
	char buf[4096];

	memset(buf, 'c', sizeof(buf));
	/* Write and read until the server goes away under us. */
	for (;;) {
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) <= 0)
			break;
		if (recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(fd);
	return NULL;
}

static int64_t sends_ok;

static void *sender(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	/* ac_send from foreign threads to live and closing handles until the
	 * runtime refuses. */
	for (;;) {
		int64_t n = __atomic_load_n(&th_srv.opened, __ATOMIC_ACQUIRE);
		ac_handle_t h = n ? th_handle(rand_r(&seed) % n)
				  : AC_HANDLE_NONE;
		int err = ac_send(th_srv.rt, h, "from-sender", 11);

		if (err == AC_ESHUTDOWN)
			break;
		if (err == 0)
			__atomic_fetch_add(&sends_ok, 1, __ATOMIC_RELAXED);
		else
			ck_assert_msg(err == AC_ESTALE || err == AC_EAGAIN ||
					      err == AC_EINVAL,
				      "%s", ac_err_name(err));
	}
	return NULL;
}

START_TEST(stop_with_traffic_in_flight_leaves_counters_at_zero)
{
	pthread_t c[CLIENTS], s[SENDERS];
	ac_debug_counts_t d;
	ac_stats_t st;
	int64_t dropped_before;

	ac_debug_counts(&d);
	dropped_before = d.dropped;
	th_server_start(2, "127.0.0.1:0", NULL);
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&c[i], NULL, client, NULL);
	ck_assert(th_wait(th_opened_ge, (void *)CLIENTS, 10000));
	for (int i = 0; i < SENDERS; i++)
		pthread_create(&s[i], NULL, sender, (void *)(uintptr_t)(i + 1));
	usleep(300000); /* let traffic build up */
	ck_assert_int_eq(ac_runtime_stop(th_srv.rt, 200), 0);
	for (int i = 0; i < SENDERS; i++)
		pthread_join(s[i], NULL);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(c[i], NULL);
	ck_assert_int_eq(th_srv.closed, th_srv.opened);
	for (int i = 0; i < CLIENTS; i++) {
		ck_assert_int_eq(th_srv.close_count[i], 1);
		ck_assert_int_eq(th_srv.reasons[i], AC_ESHUTDOWN);
	}
	ck_assert_int_gt(sends_ok, 0);
	/* Every send the stop kept from its connection was counted, in the
	 * runtime's statistics and in the process-wide count, and every
	 * message copy is freed (th_assert_no_live_objects: messages 0). */
	ac_stats(th_srv.rt, &st, NULL, 0);
	ck_assert_uint_le(st.dropped_shutdown, st.dropped);
	ac_runtime_free(th_srv.rt);
	ac_debug_counts(&d);
	/* ac_runtime_free settles once more what raced into a mailbox just
	 * as the stop settled it: at most one send per sender thread (its
	 * next call saw the stop). */
	ck_assert_int_ge(d.dropped - dropped_before, (int64_t)st.dropped);
	ck_assert_int_le(d.dropped - dropped_before,
			 (int64_t)st.dropped + SENDERS);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(stop_flushes_pending_output_within_grace)
{
	char buf[6];
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	ck_assert_int_eq(ac_send(th_srv.rt, th_handle(0), "bye!\n", 5), 0);
	ck_assert_int_eq(ac_runtime_stop(th_srv.rt, 1000), 0);
	/* What was accepted before the stop reached the peer, then EOF. */
	ck_assert(th_read_full(fd, buf, 5));
	ck_assert(memcmp(buf, "bye!\n", 5) == 0);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ESHUTDOWN);
	close(fd);
	ac_runtime_free(th_srv.rt);
	th_assert_no_live_objects();
}
END_TEST

/* A one-loop server with one client that never reads, and 16 MiB queued
 * for it: a stop's flushing close cannot drain it. Returns the client's
 * socket. */
static int start_with_a_peer_that_never_reads(void)
{
	static char chunk[1 << 16];
	/* Limits above what we queue: this is about the grace, not AC_ESLOW. */
	ac_conn_opts_t o = {.out_hard_limit = 64 << 20,
			    .out_soft_limit = 64 << 20};
	int fd;

	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	for (int i = 0; i < 256; i++) {
		int err = ac_send(th_srv.rt, th_handle(0), chunk,
				  sizeof(chunk));
		ck_assert(err == 0 || err == AC_EAGAIN);
	}
	return fd;
}

START_TEST(grace_expiry_aborts_a_peer_that_never_reads)
{
	int fd = start_with_a_peer_that_never_reads();
	uint64_t t0;

	t0 = th_now_ms();
	ck_assert_int_eq(ac_runtime_stop(th_srv.rt, 200), 0);
	ck_assert_uint_lt(th_now_ms() - t0, 5000);
	ck_assert_int_eq(th_srv.close_count[0], 1);
	ck_assert_int_eq(th_srv.reasons[0], AC_ESHUTDOWN);
	close(fd);
	ac_runtime_free(th_srv.rt);
	th_assert_no_live_objects();
}
END_TEST

static int64_t abort_posted;

static void abort_conn0(void *arg)
{
	/* From the loop, to itself: runs at the end of this turn. */
	ck_assert_int_eq(ac_close(th_srv.rt, th_handle(0), AC_CLOSE_ABORT), 0);
	__atomic_store_n(&abort_posted, 1, __ATOMIC_RELAXED);
}

static void arm_abort(void *arg)
{
	ck_assert_ptr_nonnull(ac_timer_start(th_srv.rt, 100, 0, abort_conn0,
					     NULL));
}

/*
 * Bug: a stop whose last connection was closed by a message the loop sent
 * itself (run between two turns of the event loop) lost the break it
 * asked for, and the loop waited out the whole grace before exiting.
 */
START_TEST(stop_ends_when_a_loops_post_to_itself_closes_its_last_connection)
{
	int fd = start_with_a_peer_that_never_reads();
	uint64_t t0;

	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), arm_abort, NULL),
			 0);
	t0 = th_now_ms();
	ck_assert_int_eq(ac_runtime_stop(th_srv.rt, 20000), 0);
	ck_assert_int_eq(abort_posted, 1);
	ck_assert_uint_lt(th_now_ms() - t0, 10000);
	ck_assert_int_eq(th_srv.close_count[0], 1);
	close(fd);
	ac_runtime_free(th_srv.rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- options that cannot work are refused, saying why ------------------------ */

static char last_log[512];
static int64_t nlogs;

static void capture_log(int level, const char *msg, void *arg)
{
	snprintf(last_log, sizeof(last_log), "%s", msg);
	__atomic_fetch_add(&nlogs, 1, __ATOMIC_RELEASE);
}

/* ac_listen with opts: the code, and (when refused) the log line names
 * what is wrong. */
static void expect_listen(ac_runtime_t *rt, const ac_conn_opts_t *o,
			  const ac_conn_cbs_t *cbs, int want, const char *says)
{
	ac_listener_t *l;
	int err;

	last_log[0] = 0;
	err = ac_listen(rt, "127.0.0.1:0", cbs, o, NULL, &l);
	ck_assert_msg(err == want, "%s: got %s", says ? says : "accepted",
		      ac_err_name(err));
	if (err == 0)
		ac_listener_close(l);
	else
		ck_assert_msg(strstr(last_log, says), "log says '%s', not '%s'",
			      last_log, says);
}

static int64_t timer_checked;

static void never_fires(void *arg)
{
	ck_abort_msg("a refused timer ran");
}

static void zero_period_on_loop(void *arg)
{
	errno = 0;
	ck_assert_ptr_null(ac_timer_start(arg, 0, 1, never_fires, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(strstr(last_log, "repeating timer"));
	__atomic_store_n(&timer_checked, 1, __ATOMIC_RELEASE);
}

static void hb_cb(ac_conn_t *c)
{
}

START_TEST(options_that_cannot_work_are_refused_with_a_reason)
{
	ac_config_t cfg = {.loops = 1, .log = capture_log};
	ac_conn_cbs_t cbs = {0}, with_hb = {.on_heartbeat = hb_cb};
	ac_pool_opts_t po = {.conn = {.heartbeat_ms = 100}};
	ac_runtime_t *rt;

	/* A mailbox beyond the maximum is refused, not clamped. */
	cfg.mailbox_capacity = AC_MAILBOX_MAX + 1;
	errno = 0;
	ck_assert_ptr_null(ac_runtime_new(&cfg));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(strstr(last_log, "mailbox_capacity"));
	cfg.mailbox_capacity = 0;
	ck_assert_ptr_nonnull(rt = ac_runtime_new(&cfg));
	ck_assert_int_eq(ac_runtime_start(rt), 0);

	/* Watermarks: low below high, hard at or above high, soft at or
	 * below hard. Defaults fit what is set: out_high alone, below the
	 * default out_low, works. */
	expect_listen(rt, &(ac_conn_opts_t){.out_high = 16384}, &cbs, 0, NULL);
	expect_listen(rt, &(ac_conn_opts_t){.out_high = 1 << 20}, &cbs, 0, NULL);
	expect_listen(rt, &(ac_conn_opts_t){.out_low = 65536, .out_high = 65536},
		      &cbs, AC_EINVAL, "out_low");
	expect_listen(rt, &(ac_conn_opts_t){.out_low = 1 << 20}, &cbs,
		      AC_EINVAL, "out_low");
	expect_listen(rt, &(ac_conn_opts_t){.out_high = 1 << 20,
					   .out_hard_limit = 1 << 19},
		      &cbs, AC_EINVAL, "out_hard_limit");
	expect_listen(rt, &(ac_conn_opts_t){.out_soft_limit = 16 << 20},
		      &cbs, AC_EINVAL, "out_soft_limit");
	/* A heartbeat needs something to do. */
	expect_listen(rt, &(ac_conn_opts_t){.heartbeat_ms = 100}, &cbs,
		      AC_EINVAL, "heartbeat_ms");
	expect_listen(rt, &(ac_conn_opts_t){.heartbeat_ms = 100}, &with_hb, 0,
		      NULL);
	expect_listen(rt, &(ac_conn_opts_t){.heartbeat_ms = 100, .ping = "P",
					   .ping_len = 1},
		      &cbs, 0, NULL);
	expect_listen(rt, &(ac_conn_opts_t){.framing = 99}, &cbs, AC_EINVAL,
		      "framing");
	/* The same checks guard pools. */
	errno = 0;
	ck_assert_ptr_null(ac_pool_new(rt, "127.0.0.1:1", &po));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(strstr(last_log, "heartbeat_ms"));
	/* A repeating timer needs a period: 0 would spin the loop. */
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), zero_period_on_loop, rt), 0);
	ck_assert(th_wait_ge(&timer_checked, 1, 5000));
	ck_assert_int_eq(ac_runtime_free(rt), 0);
	th_assert_no_live_objects();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("runtime");
	TCase *tc = tcase_create("runtime");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, version_at_run_time_matches_the_header);
	tcase_add_test(tc, reserved_fields_must_be_zero);
	tcase_add_test(tc, new_and_free_without_start_leaves_nothing);
	tcase_add_test(tc, default_loops_leave_one_cpu);
	tcase_add_test(tc, start_twice_is_estate_and_pinning_works);
	tcase_add_test(tc, stop_from_a_loop_is_ethread);
	tcase_add_test(tc, stop_with_traffic_in_flight_leaves_counters_at_zero);
	tcase_add_test(tc, stop_flushes_pending_output_within_grace);
	tcase_add_test(tc, grace_expiry_aborts_a_peer_that_never_reads);
	tcase_add_test(tc, stop_ends_when_a_loops_post_to_itself_closes_its_last_connection);
	tcase_add_test(tc, options_that_cannot_work_are_refused_with_a_reason);
	suite_add_tcase(s, tc);
	return th_run(s);
}
