/*
 * test_threads.c: the thread rules are checked, not just written down.
 * Every "owner loop" or "a loop" call made from a plain thread or from
 * another loop returns AC_ETHREAD (or NULL with errno EPERM) and touches
 * nothing; ac_runtime_free refuses where it would free its own caller.
 *
 * Regression: before the checks, ac_conn_write from a plain thread
 * returned 0 and corrupted the heap, and ac_runtime_free inside a
 * callback returned and the process crashed. These tests hand a
 * connection pointer to the wrong thread on purpose.
 */
#include "testhelp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

static ac_conn_t *victim;     /* captured in on_open: misused below */
static ac_group_t *grp;
static int64_t joined;

static void capture(ac_conn_t *c)
{
	ck_assert_int_eq(ac_group_join(grp, c), 0);
	__atomic_store_n(&victim, c, __ATOMIC_RELEASE);
	__atomic_store_n(&joined, 1, __ATOMIC_RELEASE);
}

static void never_runs(void *arg)
{
	ck_abort_msg("a timer made from the wrong thread ran");
}

static void never_runs_c(ac_conn_t *c, void *arg)
{
	ck_abort_msg("a connection timer made from the wrong thread ran");
}

/* Every owner-loop call on victim, from the calling thread, which is not
 * victim's loop. Records nothing; asserts the refusals. */
static void misuse(ac_conn_t *c)
{
	ac_buf_t *b = ac_buf_new("buffered", 8);
	ac_conn_info_t info = {.fd = 12345};

	ck_assert_int_eq(ac_conn_write(c, "nope", 4), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_write_buf(c, b), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_writev(c, &(struct iovec){"nope", 4}, 1),
			 AC_ETHREAD);
	ck_assert_int_eq(ac_conn_shutdown(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_fd(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_close(c, AC_CLOSE_FLUSH), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_close(c, AC_CLOSE_ABORT), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_set_data(c, NULL), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_writable(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_out_bytes(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_reconnecting(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_read_stop(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_set_max_frame(c, 1), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_read_start(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_reading(c), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_set_label(c, "nope"), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_info(c, &info), AC_ETHREAD);
	ck_assert_int_eq(info.fd, 12345); /* untouched */
	ck_assert_int_eq(ac_group_join(grp, c), AC_ETHREAD);
	ck_assert_int_eq(ac_group_leave(grp, c), AC_ETHREAD);
	errno = 0;
	ck_assert_uint_eq(ac_conn_handle(c), AC_HANDLE_NONE);
	ck_assert_int_eq(errno, EPERM);
	errno = 0;
	ck_assert_ptr_null(ac_conn_data(c));
	ck_assert_int_eq(errno, EPERM);
	errno = 0;
	ck_assert_ptr_null(ac_conn_runtime(c));
	ck_assert_int_eq(errno, EPERM);
	errno = 0;
	ck_assert_ptr_null(ac_conn_timer(c, 10, 0, never_runs_c, NULL));
	ck_assert_int_eq(errno, EPERM);
	ac_buf_unref(b);
}

/* The connection is as it was: open, in its group, echoing, and nothing
 * the misuse tried reached the peer. */
static void assert_untouched(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char buf[8];

	ck_assert_int_eq(poll(&p, 1, 100), 0); /* no stray bytes, no EOF */
	ck_assert_uint_eq(ac_group_size(grp), 1);
	th_write_all(fd, "ping", 4);
	ck_assert(th_read_full(fd, buf, 4));
	ck_assert(memcmp(buf, "ping", 4) == 0);
	ck_assert_int_eq(__atomic_load_n(&th_srv.closed, __ATOMIC_ACQUIRE), 0);
}

/* A server on two loops with one connection, the victim, in grp; returns
 * the client's socket. */
static int victim_start(void)
{
	int fd;

	th_srv.on_open = capture;
	th_server_start(2, "127.0.0.1:0", NULL);
	grp = ac_group_new(th_srv.rt);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait_ge(&joined, 1, 5000));
	return fd;
}

/* Checks that the victim is untouched, then closes it and the server. */
static void victim_end(int fd)
{
	assert_untouched(fd);
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ac_group_free(grp);
	th_finish();
}

static void *plain_thread(void *arg)
{
	misuse(arg);
	errno = 0;
	ck_assert_ptr_null(ac_timer_start(th_srv.rt, 10, 0, never_runs, NULL));
	ck_assert_int_eq(errno, EPERM);
	return NULL;
}

START_TEST(conn_calls_from_a_plain_thread_return_ethread_and_touch_nothing)
{
	pthread_t t;
	int fd;

	fd = victim_start();
	/* From this test's own thread, then from a fresh one. */
	misuse(__atomic_load_n(&victim, __ATOMIC_ACQUIRE));
	ck_assert_int_eq(pthread_create(&t, NULL, plain_thread, victim), 0);
	pthread_join(t, NULL);
	victim_end(fd);
}
END_TEST

static int64_t other_done;

static void misuse_from_other_loop(void *arg)
{
	ac_timer_t *t;

	misuse(arg);
	/* This loop's own calls still work. */
	t = ac_timer_start(th_srv.rt, 60000, 0, never_runs, NULL);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(ac_timer_cancel(t), 0);
	__atomic_store_n(&other_done, 1, __ATOMIC_RELEASE);
}

START_TEST(conn_calls_from_another_loop_return_ethread)
{
	ac_conn_t *c;
	int fd;

	fd = victim_start();
	c = __atomic_load_n(&victim, __ATOMIC_ACQUIRE);
	/* The other loop: c's loop index is in its handle. */
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(1 - AC_HANDLE_LOOP(th_handle(0))),
				      misuse_from_other_loop, c),
			 0);
	ck_assert(th_wait_ge(&other_done, 1, 5000));
	victim_end(fd);
}
END_TEST

/* ---- timers are their loop's ---------------------------------------------- */

static ac_timer_t *loop_timer;
static int64_t timer_fired, timer_made;

static void count_fire(void *arg)
{
	__atomic_fetch_add(&timer_fired, 1, __ATOMIC_RELEASE);
}

static void make_timer(void *arg)
{
	loop_timer = ac_timer_start(th_srv.rt, 150, 0, count_fire, NULL);
	__atomic_store_n(&timer_made, 1, __ATOMIC_RELEASE);
}

START_TEST(timer_cancel_from_another_thread_is_ethread_and_the_timer_still_fires)
{
	th_server_start(1, "127.0.0.1:0", NULL);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), make_timer, NULL), 0);
	ck_assert(th_wait_ge(&timer_made, 1, 5000));
	ck_assert_ptr_nonnull(loop_timer);
	ck_assert_int_eq(ac_timer_cancel(loop_timer), AC_ETHREAD);
	ck_assert_int_eq(ac_timer_cancel(NULL), AC_EINVAL);
	ck_assert(th_wait_ge(&timer_fired, 1, 5000));
	th_finish();
}
END_TEST

/* ---- ac_runtime_free where it would free its own caller ----------------- */

static int64_t free_result = 1, post_ran;

static void free_from_callback(void *rt)
{
	__atomic_store_n(&free_result, ac_runtime_free(rt), __ATOMIC_RELEASE);
	__atomic_store_n(&post_ran, 1, __ATOMIC_RELEASE);
}

START_TEST(runtime_free_inside_a_callback_refuses_and_leaves_the_runtime_intact)
{
	char buf[4];
	int fd;

	th_server_start(2, "127.0.0.1:0", NULL);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(1), free_from_callback,
				      th_srv.rt),
			 0);
	ck_assert(th_wait_ge(&post_ran, 1, 5000));
	ck_assert_int_eq(free_result, AC_ETHREAD);
	/* Still whole: it accepts, echoes, and stops normally. */
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "abc", 3);
	ck_assert(th_read_full(fd, buf, 3));
	ck_assert_int_eq(ac_runtime_stop(th_srv.rt, 100), 0);
	close(fd);
	ck_assert_int_eq(ac_runtime_free(th_srv.rt), 0);
	th_assert_no_live_objects();
}
END_TEST

static int64_t stop_in_settle = 1;

static void stop_and_free_from_settle(void *rt)
{
	/* Runs on the stopping thread, inside ac_runtime_stop's settle. */
	ck_assert_int_eq(ac_loop_index(), -1);
	__atomic_store_n(&stop_in_settle, ac_runtime_stop(rt, 0),
			 __ATOMIC_RELEASE);
	__atomic_store_n(&free_result, ac_runtime_free(rt), __ATOMIC_RELEASE);
}

START_TEST(runtime_free_from_a_callback_the_stop_runs_is_ethread)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});

	/* Posted before start: the stop of a never-started runtime runs it
	 * on this thread. */
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), stop_and_free_from_settle, rt), 0);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(stop_in_settle, AC_ETHREAD);
	ck_assert_int_eq(free_result, AC_ETHREAD);
	ck_assert_int_eq(ac_runtime_free(rt), 0);
	ck_assert_int_eq(ac_runtime_free(NULL), 0);
	th_assert_no_live_objects();
}
END_TEST

/* ---- calls that need a loop ------------------------------------------------ */

static void never_acquired(ac_conn_t *c, int err, void *arg)
{
	ck_abort_msg("an acquire refused for its thread called back");
}

static void never_visited(ac_conn_t *c, void *arg)
{
	ck_abort_msg("a walk refused for its thread visited");
}

START_TEST(loop_only_calls_from_a_plain_thread_are_refused)
{
	ac_pool_t *pool;
	ac_runtime_t *other;

	th_server_start(1, "127.0.0.1:0", NULL);
	pool = ac_pool_new(th_srv.rt, "127.0.0.1:1", NULL);
	ck_assert_ptr_nonnull(pool);
	ck_assert_int_eq(ac_pool_acquire(pool, never_acquired, NULL),
			 AC_ETHREAD);
	ck_assert_int_eq(ac_loop_conns(th_srv.rt, never_visited, NULL),
			 AC_ETHREAD);
	errno = 0;
	ck_assert_ptr_null(ac_handle_conn(th_srv.rt, ac__handle_make(0, 0, 1)));
	ck_assert_int_eq(errno, EPERM);
	errno = 0;
	ck_assert_ptr_null(ac_timer_start(th_srv.rt, 5, 0, never_runs, NULL));
	ck_assert_int_eq(errno, EPERM);
	/* A loop of another runtime is not a loop of this one either. */
	other = ac_runtime_new(&(ac_config_t){.loops = 1});
	ck_assert_ptr_nonnull(other);
	errno = 0;
	ck_assert_ptr_null(ac_timer_start(other, 5, 0, never_runs, NULL));
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ac_runtime_free(other), 0);
	ac_pool_free(pool);
	th_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
		       conn_calls_from_a_plain_thread_return_ethread_and_touch_nothing);
	tcase_add_test(tc, conn_calls_from_another_loop_return_ethread);
	tcase_add_test(tc,
		       timer_cancel_from_another_thread_is_ethread_and_the_timer_still_fires);
	tcase_add_test(tc,
		       runtime_free_inside_a_callback_refuses_and_leaves_the_runtime_intact);
	tcase_add_test(tc, runtime_free_from_a_callback_the_stop_runs_is_ethread);
	tcase_add_test(tc, loop_only_calls_from_a_plain_thread_are_refused);
	suite_add_tcase(s, tc);
	return th_run(s);
}
