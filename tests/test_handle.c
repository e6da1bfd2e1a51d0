/* test_handle.c: weak handles go stale, never resolve a recycled slot, and
 * pinning races with closing without touching freed memory. */
#include "testhelp.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

START_TEST(handle_goes_stale_on_close)
{
	ac_conn_info_t info;
	ac_handle_t h;
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	h = th_handle(0);
	ck_assert_int_eq(ac_handle_info(th_srv.rt, h, &info), 0);
	ck_assert_int_eq(ac_send(th_srv.rt, h, "x", 1), 0);
	/* Read it: closing with unread data would make the kernel send a
	 * reset, and the reason would be AC_ECONNRESET. */
	char x;
	ck_assert(th_read_full(fd, &x, 1));
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EEOF);
	ck_assert_int_eq(ac_handle_info(th_srv.rt, h, &info), AC_ESTALE);
	ck_assert_int_eq(ac_send(th_srv.rt, h, "x", 1), AC_ESTALE);
	ck_assert_int_eq(ac_tell(th_srv.rt, h, 1, NULL, NULL), AC_ESTALE);
	ck_assert_int_eq(ac_close(th_srv.rt, h, AC_CLOSE_ABORT), AC_ESTALE);
	th_finish();
}
END_TEST

START_TEST(recycled_slot_never_resolves_old_handle)
{
	ac_conn_info_t info;
	ac_handle_t old, fresh;
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	old = th_handle(0);
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));

	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)2, 5000));
	fresh = th_handle(1);
	/* Same loop, same slot, next generation. */
	ck_assert_uint_eq(ac__handle_slot(old), ac__handle_slot(fresh));
	ck_assert_uint_ne(old, fresh);
	ck_assert_int_eq(ac_handle_info(th_srv.rt, old, &info), AC_ESTALE);
	ck_assert_int_eq(ac_send(th_srv.rt, old, "x", 1), AC_ESTALE);
	ck_assert_int_eq(ac_handle_info(th_srv.rt, fresh, &info), 0);
	close(fd);
	th_finish();
}
END_TEST

START_TEST(invalid_handles_are_refused)
{
	ac_conn_info_t info;
	ac_handle_t bogus_loop = ac__handle_make(200, 0, 1);
	ac_handle_t bogus_slot = ac__handle_make(0, 12345, 1);

	th_server_start(1, "127.0.0.1:0", NULL);
	ck_assert_int_eq(ac_send(th_srv.rt, AC_HANDLE_NONE, "x", 1), AC_EINVAL);
	ck_assert_int_eq(ac_send(th_srv.rt, bogus_loop, "x", 1), AC_ESTALE);
	ck_assert_int_eq(ac_send(th_srv.rt, bogus_slot, "x", 1), AC_ESTALE);
	ck_assert_int_eq(ac_handle_info(th_srv.rt, bogus_slot, &info),
			 AC_ESTALE);
	ck_assert_int_eq(ac_handle_info(th_srv.rt, AC_HANDLE_NONE, &info),
			 AC_ESTALE);
	ck_assert_int_eq(ac_close(th_srv.rt, bogus_loop, 7), AC_EINVAL);
	th_finish();
}
END_TEST

START_TEST(handle_info_reports_peer_owner_and_bytes)
{
	ac_conn_info_t info;
	char buf[5];
	int fd;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "hello", 5);
	ck_assert(th_read_full(fd, buf, 5));
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	/* The peer can see the echo a moment before the owner loop records
	 * the bytes it wrote: poll until the counters catch up. */
	for (int i = 0; i < 5000; i++) {
		ck_assert_int_eq(ac_handle_info(th_srv.rt, th_handle(0), &info), 0);
		if (info.bytes_out == 5)
			break;
		usleep(1000);
	}
	ck_assert_int_eq(info.loop, AC_HANDLE_LOOP(th_handle(0)));
	ck_assert_int_eq(info.family, AF_INET);
	ck_assert_uint_eq(info.bytes_in, 5);
	ck_assert_uint_eq(info.bytes_out, 5);
	ck_assert_msg(strncmp(info.peer_str, "127.0.0.1:", 10) == 0, "%s",
		      info.peer_str);
	ck_assert_uint_gt(info.opened_ms, 1600000000000ull);
	close(fd);
	th_finish();
}
END_TEST

/* ---- the storm ------------------------------------------------------------ *
 * 4 threads pin random handles from a shared table while another thread
 * keeps opening connections and closing them through their handles. Every
 * successful pin checks a canary: the pinned connection still names the
 * handle it was pinned through. Freed connections are poisoned before they
 * are released (ac__hp_destroy_cb), and under ASan any touch of freed
 * memory aborts. */

#define STORM_PINNERS 4
#define STORM_PINS 1000000 /* in total, at least */
#define STORM_CLOSES 2000  /* connections closed underneath, at least */

static int64_t pins_total, pins_ok, canary_bad, churn_done;

static void *pinner(void *arg)
{
	ac_runtime_t *rt = th_srv.rt;
	ck_hp_record_t *rec = ac__hp_record(rt);
	unsigned seed = (unsigned)(uintptr_t)arg;
	int64_t n = 0, ok = 0;

	while (!__atomic_load_n(&churn_done, __ATOMIC_ACQUIRE) ||
	       n < STORM_PINS / STORM_PINNERS) {
		int64_t opened = __atomic_load_n(&th_srv.opened, __ATOMIC_ACQUIRE);
		ac_handle_t h;
		ac_conn_t *c;

		if (opened == 0)
			continue;
		h = __atomic_load_n(&th_srv.handles[rand_r(&seed) % opened],
				    __ATOMIC_ACQUIRE);
		if ((c = ac__pin(rt, rec, h))) {
			if (c->handle != h || c->loop->rt != rt)
				__atomic_fetch_add(&canary_bad, 1,
						   __ATOMIC_RELAXED);
			ok++;
			ac__unpin(rec);
		}
		n++;
	}
	__atomic_fetch_add(&pins_total, n, __ATOMIC_RELAXED);
	__atomic_fetch_add(&pins_ok, ok, __ATOMIC_RELAXED);
	return NULL;
}

START_TEST(pin_versus_close_storm_never_touches_freed_memory)
{
	pthread_t t[STORM_PINNERS];

	th_server_start(2, "127.0.0.1:0", NULL);
	for (int i = 0; i < STORM_PINNERS; i++)
		pthread_create(&t[i], NULL, pinner, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < STORM_CLOSES; i++) {
		int fd = th_connect_tcp("127.0.0.1", th_srv.port);

		ck_assert(th_wait(th_opened_ge, (void *)(intptr_t)(i + 1), 5000));
		/* Close from this (foreign) thread through the handle, while
		 * the pinners hammer it; the client side then goes too. */
		ck_assert_int_eq(ac_close(th_srv.rt, th_handle(i),
					  i % 2 ? AC_CLOSE_ABORT : AC_CLOSE_FLUSH),
				 0);
		ck_assert(th_wait_eof(fd, 5000));
		close(fd);
		if (i + 1 >= TH_MAX_CONNS)
			break;
	}
	__atomic_store_n(&churn_done, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < STORM_PINNERS; i++)
		pthread_join(t[i], NULL);
	ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)STORM_CLOSES, 5000));
	ck_assert_int_ge(pins_total, STORM_PINS);
	ck_assert_int_gt(pins_ok, 0);
	ck_assert_int_eq(canary_bad, 0);
	for (int i = 0; i < STORM_CLOSES; i++) {
		ck_assert_int_eq(th_srv.close_count[i], 1);
		ck_assert_int_eq(th_srv.reasons[i], 0);
	}
	th_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("handle");
	TCase *tc = tcase_create("handle");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, handle_goes_stale_on_close);
	tcase_add_test(tc, recycled_slot_never_resolves_old_handle);
	tcase_add_test(tc, invalid_handles_are_refused);
	tcase_add_test(tc, handle_info_reports_peer_owner_and_bytes);
	tcase_add_test(tc, pin_versus_close_storm_never_touches_freed_memory);
	suite_add_tcase(s, tc);
	return th_run(s);
}
