/* test_group.c: shared buffers and broadcast groups. */
#include "testhelp.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ac_group_t *grp;

static void join_group(ac_conn_t *c)
{
	ck_assert_int_eq(ac_group_join(grp, c), 0);
	ck_assert_int_eq(ac_group_join(grp, c), AC_EEXIST);
}

static bool size_is(void *n)
{
	return ac_group_size(grp) == (size_t)(intptr_t)n;
}

/* A server on two loops whose connections all join grp. */
static void start_group_server(const ac_conn_opts_t *o)
{
	th_srv.on_open = join_group;
	th_server_start(2, "127.0.0.1:0", o);
	grp = ac_group_new(th_srv.rt);
}

/* That server and n clients in fds, returned once all n are members. */
static void start_members(const ac_conn_opts_t *o, int *fds, int n)
{
	start_group_server(o);
	for (int i = 0; i < n; i++)
		fds[i] = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(size_is, (void *)(intptr_t)n, 5000));
}

#define MEMBERS 8
#define MAX_MEMBERS 64
#define MESSAGES 1000

/* How many members the publish test has: MEMBERS or a few more. */
static int members;

/* That server and at least MEMBERS members, on both loops. The
 * kernel spreads TCP connections over the loops' SO_REUSEPORT sockets by
 * a hash of their ports, so eight in a row land on one loop once in 128
 * runs: clients keep coming, one at a time, until both loops have one. */
static int start_members_on_both_loops(const ac_conn_opts_t *o, int *fds)
{
	int on[2] = {0, 0};
	int n = 0;

	start_group_server(o);
	while (n < MEMBERS || !on[0] || !on[1]) {
		ck_assert_int_lt(n, MAX_MEMBERS);
		fds[n] = th_connect_tcp("127.0.0.1", th_srv.port);
		on[AC_HANDLE_LOOP(th_handle(n))]++; /* opened in dial order */
		n++;
	}
	ck_assert(th_wait(size_is, (void *)(intptr_t)n, 5000));
	return n;
}

struct publisher {
	int id;
	int64_t refused;
};

static void *publish_all(void *arg)
{
	struct publisher *p = arg;
	char msg[64];

	for (int i = 0; i < MESSAGES; i++) {
		int n = snprintf(msg, sizeof(msg), "p%d:%d\n", p->id, i);
		ac_buf_t *b = ac_buf_new(msg, (size_t)n);
		int got = ac_group_publish(grp, b);

		ck_assert_int_eq(got, members);
		ac_buf_unref(b); /* the group keeps its own references */
	}
	return NULL;
}

START_TEST(publish_from_foreign_threads_reaches_every_member_once_in_order)
{
	struct publisher pubs[2] = {{0, 0}, {1, 0}};
	pthread_t t[2];
	int fds[MAX_MEMBERS];

	members = start_members_on_both_loops(
		&(ac_conn_opts_t){.framing = AC_FRAME_LINE}, fds);

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, publish_all, &pubs[i]);
	/* Every member gets every message once; each publisher's in order. */
	for (int k = 0; k < members; k++) {
		int next[2] = {0, 0};
		char line[64];

		for (int i = 0; i < 2 * MESSAGES; i++) {
			int p, seq;
			size_t n = th_recv_frame(fds[k], AC_FRAME_LINE, line,
						 sizeof(line) - 1, 0);
			line[n] = 0;
			ck_assert_int_eq(sscanf(line, "p%d:%d", &p, &seq), 2);
			ck_assert_int_eq(seq, next[p]);
			next[p]++;
		}
		ck_assert_int_eq(next[0], MESSAGES);
		ck_assert_int_eq(next[1], MESSAGES);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < members; i++)
		close(fds[i]);
	ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)members, 5000));
	ck_assert_uint_eq(ac_group_size(grp), 0);
	ac_group_free(grp);
	th_finish();
}
END_TEST

START_TEST(members_that_close_leave_by_themselves)
{
	int fds[4];
	ac_buf_t *b = ac_buf_new("x\n", 2);

	start_members(NULL, fds, 4);
	close(fds[0]);
	close(fds[1]);
	ck_assert(th_wait(size_is, (void *)2, 5000));
	ck_assert_int_eq(ac_group_publish(grp, b), 2);
	char got[2];
	ck_assert(th_read_full(fds[2], got, 2));
	ck_assert(th_read_full(fds[3], got, 2));
	ac_buf_unref(b);
	close(fds[2]);
	close(fds[3]);
	ck_assert(th_wait(size_is, (void *)0, 5000));
	ck_assert_int_eq(ac_group_publish(grp, b = ac_buf_new("y", 1)), 0);
	ac_buf_unref(b);
	ac_group_free(grp);
	th_finish();
}
END_TEST

START_TEST(slow_member_is_dropped_while_the_others_receive)
{
	/* 256 KiB hard limit; 4 MiB published; one member never reads. */
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE, .out_hard_limit = 256 << 10,
			    .out_soft_limit = 256 << 10};
	static char chunk[16 << 10];
	int fast[3], slow;
	pthread_t dummy;
	(void)dummy;

	memset(chunk, 'z', sizeof(chunk) - 1);
	chunk[sizeof(chunk) - 1] = '\n';
	start_members(&o, fast, 3);
	/* A receive buffer too small to take the output off the server. */
	slow = th_dial_tcp("127.0.0.1", th_srv.port, 4096);
	ck_assert_int_ge(slow, 0);
	ck_assert(th_wait(size_is, (void *)4, 5000));

	ac_buf_t *b = ac_buf_new(chunk, sizeof(chunk));
	static char sink[16 << 10];
	for (int i = 0; i < 256; i++) {
		ck_assert_int_ge(ac_group_publish(grp, b), 3);
		/* The fast members keep up. */
		for (int k = 0; k < 3; k++)
			ck_assert(th_read_full(fast[k], sink, sizeof(sink)));
	}
	ac_buf_unref(b);
	ck_assert(th_wait(size_is, (void *)3, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	int slow_idx = -1;
	for (int i = 0; i < 4; i++)
		if (__atomic_load_n(&th_srv.close_count[i], __ATOMIC_RELAXED))
			slow_idx = i;
	ck_assert_int_ge(slow_idx, 0);
	ck_assert_int_eq(th_srv.reasons[slow_idx], AC_ESLOW);
	for (int k = 0; k < 3; k++)
		close(fast[k]);
	close(slow);
	ac_group_free(grp);
	th_finish();
}
END_TEST

START_TEST(send_buf_shares_one_buffer_and_frees_it)
{
	char got[5];
	int fds[3];
	ac_buf_t *b = ac_buf_new("hello", 5);

	th_server_start(2, "127.0.0.1:0", NULL);
	for (int i = 0; i < 3; i++)
		fds[i] = th_connect_tcp("127.0.0.1", th_srv.port);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ac_send_buf(th_srv.rt, th_handle(i), b), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert(th_read_full(fds[i], got, 5));
		ck_assert(memcmp(got, "hello", 5) == 0);
	}
	ck_assert_uint_eq(ac_buf_len(b), 5);
	ck_assert(memcmp(ac_buf_data(b), "hello", 5) == 0);
	ac_buf_unref(b);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	ck_assert_int_eq(ac_send_buf(th_srv.rt, AC_HANDLE_NONE, b), AC_EINVAL);
	th_finish();
}
END_TEST

START_TEST(group_freed_with_members_and_messages_in_flight_leaks_nothing)
{
	int fds[4];

	start_members(NULL, fds, 4);
	for (int i = 0; i < 100; i++) {
		ac_buf_t *b = ac_buf_new("m", 1);
		ck_assert_int_eq(ac_group_publish(grp, b), 4);
		ac_buf_unref(b);
	}
	ac_group_free(grp); /* members stay connected */
	char got[100];
	for (int i = 0; i < 4; i++)
		ck_assert(th_read_full(fds[i], got, 100));
	ck_assert(!th_wait_eof(fds[0], 50));
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	th_finish();
}
END_TEST

/* ---- consecutive publishes, written together ---------------------------- */

static int held;     /* atomic: the loop is inside hold_loop */
static int released; /* atomic: hold_loop may return */

/* Posted to a loop: keeps it in one drain of its foreign ring until the
 * test has queued what it means that drain to find. */
static void hold_loop(void *arg)
{
	(void)arg;
	__atomic_store_n(&held, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 5000 && !__atomic_load_n(&released, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
}

/* One loop, members in fds; the loop held until hold_release. */
static void hold_start(void)
{
	__atomic_store_n(&held, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&released, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), hold_loop, NULL), 0);
	for (int i = 0; i < 5000 && !__atomic_load_n(&held, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert(__atomic_load_n(&held, __ATOMIC_ACQUIRE));
}

static void hold_release(void)
{
	__atomic_store_n(&released, 1, __ATOMIC_RELEASE);
}

static void publish_line(const char *fmt, int i)
{
	char msg[128];
	int n = snprintf(msg, sizeof(msg), fmt, i);
	ac_buf_t *b = ac_buf_new(msg, (size_t)n);

	ck_assert_int_ge(ac_group_publish(grp, b), 1);
	ac_buf_unref(b);
}

static void expect_line(int fd, const char *fmt, int i)
{
	char want[128], line[128];
	int n = snprintf(want, sizeof(want), fmt, i);
	size_t got = th_recv_frame(fd, AC_FRAME_LINE, line, sizeof(line) - 1, 0);

	/* th_recv_frame leaves the newline out. */
	ck_assert_uint_eq(got, (size_t)n - 1);
	ck_assert(memcmp(line, want, got) == 0);
}

static ac_stats_t stats_now(void)
{
	ac_stats_t t;

	ck_assert_int_eq(ac_stats(th_srv.rt, &t, NULL, 0), 1);
	return t;
}

/* 100-byte lines: 20 of them are past the size up to which a member's
 * copy is made, so the batch is also referenced, not copied. */
#define DOTS10 ".........."
#define LINE100                                                               \
	"m%03d" DOTS10 DOTS10 DOTS10 DOTS10 DOTS10 DOTS10 DOTS10 DOTS10 DOTS10 \
	".....\n"
#define BATCH 20

START_TEST(consecutive_publishes_go_to_each_member_together_in_order)
{
	int fds[4];
	ac_stats_t before, after;

	th_srv.on_open = join_group;
	th_server_start(1, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	grp = ac_group_new(th_srv.rt);
	for (int i = 0; i < 4; i++)
		fds[i] = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(size_is, (void *)4, 5000));
	ck_assert_int_eq(snprintf(NULL, 0, LINE100, 0), 100);

	/* One drain finds BATCH publishes, then a send to member 0, then
	 * BATCH more: two batches, the send between them. */
	before = stats_now();
	hold_start();
	for (int i = 0; i < BATCH; i++)
		publish_line(LINE100, i);
	ck_assert_int_eq(ac_send(th_srv.rt, th_handle(0), "send\n", 5), 0);
	for (int i = BATCH; i < 2 * BATCH; i++)
		publish_line(LINE100, i);
	hold_release();
	for (int k = 0; k < 4; k++) {
		for (int i = 0; i < 2 * BATCH; i++) {
			if (k == 0 && i == BATCH)
				expect_line(fds[k], "send\n", 0);
			expect_line(fds[k], LINE100, i);
		}
	}
	after = stats_now();
	ck_assert_uint_eq(after.group_publishes - before.group_publishes,
			  2 * BATCH);
	ck_assert_uint_eq(after.group_batches - before.group_batches, 2);
	/* A frame per publish and member, one for the send. */
	ck_assert_uint_eq(after.writes - before.writes, 4 * 2 * BATCH + 1);
	ck_assert_uint_eq(after.dropped, before.dropped);

	/* Small ones: the batch is copied into each member's output. */
	before = after;
	hold_start();
	for (int i = 0; i < BATCH; i++)
		publish_line("s%d\n", i);
	hold_release();
	for (int k = 0; k < 4; k++)
		for (int i = 0; i < BATCH; i++)
			expect_line(fds[k], "s%d\n", i);
	after = stats_now();
	ck_assert_uint_eq(after.group_publishes - before.group_publishes, BATCH);
	ck_assert_uint_eq(after.group_batches - before.group_batches, 1);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	ck_assert(th_wait(size_is, (void *)0, 5000));
	ac_group_free(grp);
	th_finish();
}
END_TEST

START_TEST(a_batch_past_a_members_hard_limit_queues_what_fits_one_by_one)
{
	/* 1,000 bytes of output at most: 10 of the 100-byte lines. */
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE, .out_high = 800,
			    .out_low = 100, .out_soft_limit = 1000,
			    .out_hard_limit = 1000};
	ac_stats_t before, after;
	int fd;

	th_srv.on_open = join_group;
	th_server_start(1, "127.0.0.1:0", &o);
	grp = ac_group_new(th_srv.rt);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(size_is, (void *)1, 5000));

	before = stats_now();
	hold_start();
	for (int i = 0; i < BATCH; i++)
		publish_line(LINE100, i);
	hold_release();
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_ESLOW);
	after = stats_now();
	/* As written one at a time: ten are queued, the eleventh fails the
	 * member, and it and the nine after it are dropped. */
	ck_assert_uint_eq(after.writes - before.writes, 10);
	ck_assert_uint_eq(after.dropped - before.dropped, BATCH - 10);
	ck_assert_uint_eq(after.group_batches - before.group_batches, 1);
	close(fd);
	ac_group_free(grp);
	th_finish();
}
END_TEST

/* ---- waiting after a large fan-out (ac_config_t.fanout_wait_us) ---------- */

static int turned; /* atomic: a post ran */

static void mark_turned(void *arg)
{
	(void)arg;
	__atomic_store_n(&turned, 1, __ATOMIC_RELEASE);
}

/* The loop has passed the end of the turn that wrote the last publish:
 * a post to it has run since. */
static void next_turn(void)
{
	__atomic_store_n(&turned, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), mark_turned, NULL),
			 0);
	for (int i = 0; i < 5000 && !__atomic_load_n(&turned, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
	ck_assert(__atomic_load_n(&turned, __ATOMIC_ACQUIRE));
}

/* Publishes `count` lines to n members in fds, which one drain of the
 * loop finds together, and reads them on each. */
static void publish_to(int *fds, int n, int count)
{
	hold_start();
	for (int i = 0; i < count; i++)
		publish_line("w%d\n", i);
	hold_release();
	for (int k = 0; k < n; k++)
		for (int i = 0; i < count; i++)
			expect_line(fds[k], "w%d\n", i);
}

#define WAIT_MEMBERS AC_FANOUT_WAIT_MEMBERS

/* A server of cfg's with WAIT_MEMBERS members in fds. */
static void wait_members_start(const ac_config_t *cfg, int *fds)
{
	th_srv.on_open = join_group;
	th_server_start_cfg(cfg, "127.0.0.1:0",
			    &(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	grp = ac_group_new(th_srv.rt);
	for (int i = 0; i < WAIT_MEMBERS; i++)
		fds[i] = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(size_is, (void *)WAIT_MEMBERS, 5000));
}

/* Closes the n members left and frees the server. */
static void wait_members_finish(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
	ck_assert(th_wait(size_is, (void *)0, 5000));
	ac_group_free(grp);
	th_finish();
}

START_TEST(a_loop_waits_after_a_large_fanout_when_configured)
{
	ac_config_t cfg = {.loops = 1, .fanout_wait_us = 20000};
	int fds[WAIT_MEMBERS];
	ac_stats_t st;

	/* A wait past the maximum is refused. */
	cfg.fanout_wait_us = AC_FANOUT_WAIT_MAX + 1;
	errno = 0;
	ck_assert_ptr_null(ac_runtime_new(&cfg));
	ck_assert_int_eq(errno, EINVAL);
	cfg.fanout_wait_us = 20000;

	wait_members_start(&cfg, fds);

	/* One publish at a time: no wait. */
	publish_to(fds, WAIT_MEMBERS, 1);
	next_turn();
	ck_assert_uint_eq(stats_now().fanout_waits, 0);

	/* Two joined, to 64 members: the loop waits once, at most
	 * fanout_wait_us. */
	publish_to(fds, WAIT_MEMBERS, 2);
	next_turn();
	st = stats_now();
	ck_assert_uint_eq(st.fanout_waits, 1);
	ck_assert_uint_ge(st.fanout_wait_us, 1);
	ck_assert_uint_le(st.fanout_wait_us, 20000);

	/* A full stage: they come faster than the loop writes them, and a
	 * wait would only leave it idle. */
	publish_to(fds, WAIT_MEMBERS, AC__FAN_MAX);
	next_turn();
	ck_assert_uint_eq(stats_now().fanout_waits, 1);

	/* To 63: it does not. */
	close(fds[WAIT_MEMBERS - 1]);
	ck_assert(th_wait(size_is, (void *)(WAIT_MEMBERS - 1), 5000));
	publish_to(fds, WAIT_MEMBERS - 1, 2);
	next_turn();
	ck_assert_uint_eq(stats_now().fanout_waits, 1);
	wait_members_finish(fds, WAIT_MEMBERS - 1);
}
END_TEST

START_TEST(a_loop_never_waits_by_default)
{
	int fds[WAIT_MEMBERS];

	wait_members_start(&(ac_config_t){.loops = 1}, fds);
	publish_to(fds, WAIT_MEMBERS, 2);
	next_turn();
	ck_assert_uint_eq(stats_now().fanout_waits, 0);
	ck_assert_uint_eq(stats_now().fanout_wait_us, 0);
	wait_members_finish(fds, WAIT_MEMBERS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("group");
	TCase *tc = tcase_create("group");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, publish_from_foreign_threads_reaches_every_member_once_in_order);
	tcase_add_test(tc, members_that_close_leave_by_themselves);
	tcase_add_test(tc, slow_member_is_dropped_while_the_others_receive);
	tcase_add_test(tc, send_buf_shares_one_buffer_and_frees_it);
	tcase_add_test(tc, group_freed_with_members_and_messages_in_flight_leaks_nothing);
	tcase_add_test(tc, consecutive_publishes_go_to_each_member_together_in_order);
	tcase_add_test(tc, a_batch_past_a_members_hard_limit_queues_what_fits_one_by_one);
	tcase_add_test(tc, a_loop_waits_after_a_large_fanout_when_configured);
	tcase_add_test(tc, a_loop_never_waits_by_default);
	suite_add_tcase(s, tc);
	return th_run(s);
}
