/* test_conn.c: servers, framing, writes, closes, messages. */
#include "testhelp.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static const char *unix_path(void)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/ac-test-%d.sock", (int)getpid());
	return path;
}

/* ---- echo over each transport and framing ------------------------------ */

static void echo_roundtrips(int framing, int fd)
{
	char buf[300];

	for (int i = 1; i <= 100; i++) {
		char msg[300];
		size_t len = (size_t)(i * 3 % 250) + 1, n;

		for (size_t k = 0; k < len; k++)
			msg[k] = (char)('a' + (i + k) % 26);
		th_send_frame(fd, framing, msg, len);
		n = th_recv_frame(fd, framing, buf, sizeof(buf), len);
		ck_assert_uint_eq(n, len);
		ck_assert(memcmp(buf, msg, len) == 0);
	}
}

static void echo_test(int framing, bool use_unix)
{
	ac_conn_opts_t o = {.framing = framing};
	char addr[80];
	int fds[4];

	if (use_unix)
		snprintf(addr, sizeof(addr), "unix:%s", unix_path());
	else
		snprintf(addr, sizeof(addr), "127.0.0.1:0");
	th_server_start(2, addr, &o);
	/* Several clients: Unix ones are handed out round-robin, TCP ones
	 * spread by the kernel; each must echo correctly on its loop. */
	for (int i = 0; i < 4; i++)
		fds[i] = use_unix ? th_connect_unix(unix_path())
				  : th_connect_tcp("127.0.0.1", th_srv.port);
	for (int i = 0; i < 4; i++)
		echo_roundtrips(framing, fds[i]);
	if (use_unix) {
		/* Round robin over 2 loops: both loops own connections. */
		int on[2] = {0, 0};
		for (int i = 0; i < 4; i++)
			on[AC_HANDLE_LOOP(th_handle(i))]++;
		ck_assert_int_eq(on[0], 2);
		ck_assert_int_eq(on[1], 2);
	}
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	ck_assert(th_wait(th_closed_ge, (void *)4, 5000));
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(th_srv.reasons[i], AC_EEOF);
		ck_assert_int_eq(th_srv.close_count[i], 1);
	}
	th_finish();
	if (use_unix)
		ck_assert_int_ne(access(unix_path(), F_OK), 0); /* unlinked */
}

START_TEST(echo_tcp_raw) { echo_test(AC_FRAME_RAW, false); }
END_TEST
START_TEST(echo_tcp_line) { echo_test(AC_FRAME_LINE, false); }
END_TEST
START_TEST(echo_tcp_len32) { echo_test(AC_FRAME_LEN32, false); }
END_TEST
START_TEST(echo_unix_raw) { echo_test(AC_FRAME_RAW, true); }
END_TEST
START_TEST(echo_unix_line) { echo_test(AC_FRAME_LINE, true); }
END_TEST
START_TEST(echo_unix_len32) { echo_test(AC_FRAME_LEN32, true); }
END_TEST

START_TEST(echo_ipv6_loopback)
{
	th_server_start(1, "[::1]:0", &(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	int fd = th_connect_tcp("::1", th_srv.port);
	echo_roundtrips(AC_FRAME_LINE, fd);
	close(fd);
	th_finish();
}
END_TEST

START_TEST(frames_split_across_reads_and_coalesced_in_one_read)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LEN32};
	unsigned char big[3 * (4 + 10)];
	char buf[16];
	int fd;

	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	/* Three frames in one write. */
	for (int i = 0; i < 3; i++) {
		unsigned char *p = big + i * 14;
		p[0] = p[1] = p[2] = 0;
		p[3] = 10;
		memset(p + 4, '0' + i, 10);
	}
	th_write_all(fd, big, sizeof(big));
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LEN32, buf, 16, 0), 10);
		ck_assert_int_eq(buf[0], '0' + i);
	}
	/* One frame dribbled a byte at a time. */
	for (size_t i = 0; i < 14; i++) {
		th_write_all(fd, big + i, 1);
		usleep(2000);
	}
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LEN32, buf, 16, 0), 10);
	ck_assert_int_eq(buf[9], '0');
	close(fd);
	th_finish();
}
END_TEST

START_TEST(large_frame_echoes_through_partial_writes)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LEN32};
	size_t len = 1u << 20; /* exactly the default max_frame */
	char *msg = malloc(len), *got = malloc(len);
	int fd;

	for (size_t i = 0; i < len; i++)
		msg[i] = (char)(i * 7);
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_send_frame(fd, AC_FRAME_LEN32, msg, len);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LEN32, got, len, 0), len);
	ck_assert(memcmp(msg, got, len) == 0);
	close(fd);
	free(msg);
	free(got);
	th_finish();
}
END_TEST

/* A line decoder that leaves, as its note, how far it has looked, and
 * records the note each call brought (the calls run on the one loop). */
static size_t notes[64];
static int nnotes; /* atomic */

static int decode_noting(const void *buf, size_t len, size_t max_frame,
			 ac_frame_t *f)
{
	int i = __atomic_load_n(&nnotes, __ATOMIC_RELAXED);
	const char *nl;

	if (i < 64)
		notes[i] = f->resume;
	__atomic_store_n(&nnotes, i + 1, __ATOMIC_RELEASE);
	ck_assert_uint_le(f->resume, len); /* a note on this very input */
	nl = memchr((const char *)buf + f->resume, '\n', len - f->resume);
	if (!nl) {
		f->resume = len;
		return 0;
	}
	f->len = (size_t)(nl - (const char *)buf);
	f->consumed = f->len + 1;
	return 1;
}

static void echo_line(ac_conn_t *c, const void *data, size_t len)
{
	ac_conn_write(c, data, len);
	ac_conn_write(c, "\n", 1);
}

START_TEST(a_decoder_gets_its_note_back_until_input_is_consumed)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_CUSTOM,
			    .decode = decode_noting};
	const char *pieces[] = {"abc", "def", "\ngh", "i\n"};
	char buf[16];
	int fd, n;

	th_srv.on_frame = echo_line;
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	for (int i = 0; i < 4; i++) {
		int before = __atomic_load_n(&nnotes, __ATOMIC_ACQUIRE);

		th_write_all(fd, pieces[i], strlen(pieces[i]));
		/* One read each: wait for its decoder calls. */
		for (int t = 0; t < 5000 &&
				__atomic_load_n(&nnotes, __ATOMIC_ACQUIRE) == before;
		     t++)
			usleep(1000);
		usleep(20000);
	}
	n = (int)read(fd, buf, sizeof(buf));
	while (n < 11 && n > 0) {
		int m = (int)read(fd, buf + n, sizeof(buf) - (size_t)n);
		if (m <= 0)
			break;
		n += m;
	}
	ck_assert_int_eq(n, 11);
	ck_assert(memcmp(buf, "abcdef\nghi\n", 11) == 0);
	/* "abc": nothing yet, note 3; "abcdef": starts at 3, note 6;
	 * "abcdef\ngh": starts at 6, a line; then "gh" starts afresh and
	 * leaves 2; "ghi\n" starts at 2. */
	ck_assert_int_eq(__atomic_load_n(&nnotes, __ATOMIC_ACQUIRE), 5);
	ck_assert_uint_eq(notes[0], 0);
	ck_assert_uint_eq(notes[1], 3);
	ck_assert_uint_eq(notes[2], 6);
	ck_assert_uint_eq(notes[3], 0);
	ck_assert_uint_eq(notes[4], 2);
	close(fd);
	th_finish();
}
END_TEST

/* ---- limits and errors --------------------------------------------------- */

static void oversized(int framing)
{
	ac_conn_opts_t o = {.framing = framing, .max_frame = 64};
	char junk[200];
	int fd;

	memset(junk, 'x', sizeof(junk));
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_send_frame(fd, framing, junk, 65);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EFRAME);
	ck_assert_int_eq(th_srv.frames, 0);
	close(fd);
	th_finish();
}

START_TEST(oversized_len32_frame_closes_with_eframe) { oversized(AC_FRAME_LEN32); }
END_TEST
START_TEST(oversized_line_closes_with_eframe) { oversized(AC_FRAME_LINE); }
END_TEST

START_TEST(frame_at_limit_is_delivered)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LEN32, .max_frame = 64};
	char msg[64], buf[64];
	int fd;

	memset(msg, 'y', sizeof(msg));
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_send_frame(fd, AC_FRAME_LEN32, msg, 64);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LEN32, buf, 64, 0), 64);
	close(fd);
	th_finish();
}
END_TEST

/* A connection's own max_frame: small until a "login" line, then the
 * listener's again, from the very next frame of the same read. */
static void open_small(ac_conn_t *c)
{
	ck_assert_int_eq(ac_conn_set_max_frame(c, 8), 0);
}

static void login_lifts(ac_conn_t *c, const void *data, size_t len)
{
	if (len == 5 && memcmp(data, "login", 5) == 0)
		ck_assert_int_eq(ac_conn_set_max_frame(c, 0), 0);
	th_echo(c, data, len);
}

START_TEST(a_connection_max_frame_holds_until_lifted)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE, .max_frame = 1024};
	char buf[64];
	int fd;

	th_srv.on_open = open_small;
	th_srv.on_frame = login_lifts;
	th_server_start(1, "127.0.0.1:0", &o);
	/* Lifted by the first frame, the second (one read with it) passes
	 * the listener's bound, not the connection's. */
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "login\n0123456789abc\n", 20);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LINE, buf, sizeof(buf), 0),
			  5);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LINE, buf, sizeof(buf), 0),
			  13);
	close(fd);
	/* Not lifted: a line over 8 bytes closes with AC_EFRAME (an abort,
	 * so the short line's echo comes first, on its own). */
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "short\n", 6);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LINE, buf, sizeof(buf), 0),
			  5);
	th_write_all(fd, "0123456789abc\n", 14);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)2, 5000));
	ck_assert_int_eq(th_srv.reasons[1], AC_EFRAME);
	close(fd);
	ck_assert_int_eq(ac_conn_set_max_frame(NULL, 1), AC_EINVAL);
	th_finish();
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});
	ac_conn_cbs_t cbs = {0};
	ac_listener_t *l;

	ck_assert_int_eq(ac_listen(rt, "nonsense", &cbs, NULL, NULL, &l), AC_EADDR);
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:99999", &cbs, NULL, NULL, &l),
			 AC_EADDR);
	ck_assert_int_eq(ac_listen(rt, "[::1:80", &cbs, NULL, NULL, &l), AC_EADDR);
	ck_assert_int_eq(ac_listen(rt, "unix:", &cbs, NULL, NULL, &l), AC_EADDR);
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs,
				   &(ac_conn_opts_t){.framing = 42}, NULL, &l),
			 AC_EINVAL);
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs,
				   &(ac_conn_opts_t){.framing = AC_FRAME_CUSTOM},
				   NULL, &l),
			 AC_EINVAL);
	ck_assert_int_eq(ac_listen(rt, NULL, &cbs, NULL, NULL, &l), AC_EINVAL);
	ck_assert_ptr_null(ac_runtime_new(&(ac_config_t){.loops = 257}));
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(listen_on_a_path_that_is_not_a_socket_is_eaddrinuse_and_keeps_the_file)
{
	ac_listener_t *l2;
	ac_conn_cbs_t cbs = {0};

	th_server_start(1, "127.0.0.1:0", NULL);
	/* A stale socket file is replaced, but a regular file never is. */
	FILE *f = fopen("/tmp/ac-test-notasocket", "w");
	fclose(f);
	ck_assert_int_eq(ac_listen(th_srv.rt, "unix:/tmp/ac-test-notasocket",
				   &cbs, NULL, NULL, &l2),
			 -EADDRINUSE);
	ck_assert_int_eq(access("/tmp/ac-test-notasocket", F_OK), 0);
	unlink("/tmp/ac-test-notasocket");
	th_finish();
}
END_TEST

START_TEST(listen_on_a_port_in_use_is_eaddrinuse_despite_reuseport)
{
	ac_runtime_t *rt2 = ac_runtime_new(&(ac_config_t){.loops = 2});
	ac_conn_cbs_t cbs = {0};
	ac_listener_t *l2;
	char addr[32];

	/* Regression: with SO_REUSEPORT alone, a second listener of the same
	 * user on the same port succeeded and silently took half of the
	 * first one's connections. */
	th_server_start(2, "127.0.0.1:0", NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_srv.port);
	/* The system's errno comes back as the return value. */
	ck_assert_int_eq(ac_listen(rt2, addr, &cbs, NULL, NULL, &l2), -EADDRINUSE);
	ck_assert_int_eq(ac_listen(th_srv.rt, addr, &cbs, NULL, NULL, &l2),
			 -EADDRINUSE);
	ac_runtime_free(rt2);
	th_finish();
}
END_TEST

/* ---- closing inside callbacks --------------------------------------------- */

static void close_on_quit(ac_conn_t *c, const void *data, size_t len)
{
	if (len == 4 && memcmp(data, "quit", 4) == 0) {
		ac_conn_write(c, "bye\n", 4);
		ac_conn_close(c, AC_CLOSE_FLUSH);
		/* Still inside the callback: the connection is closing but its
		 * memory is valid, writes are refused, close is idempotent. */
		ck_assert_int_eq(ac_conn_write(c, "x", 1), AC_ESTATE);
		ac_conn_close(c, AC_CLOSE_FLUSH);
		ck_assert_int_eq(th_srv.close_count[(intptr_t)ac_conn_data(c)], 0);
		return;
	}
	th_echo(c, data, len);
}

START_TEST(close_inside_on_frame_flushes_and_stops_frames)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	char buf[16];
	int fd;

	th_srv.on_frame = close_on_quit;
	th_server_start(1, "127.0.0.1:0", &o);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	/* Frames after "quit" in the same read must not be delivered. */
	th_write_all(fd, "a\nquit\nb\nc\n", 11);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LINE, buf, 16, 0), 1);
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LINE, buf, 16, 0), 3);
	ck_assert(memcmp(buf, "bye", 3) == 0);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.frames, 2);
	ck_assert_int_eq(th_srv.reasons[0], 0);
	ck_assert_int_eq(th_srv.close_count[0], 1);
	close(fd);
	th_finish();
}
END_TEST

static void abort_in_open(ac_conn_t *c)
{
	ac_conn_close(c, AC_CLOSE_ABORT);
}

START_TEST(close_inside_on_open_still_gets_one_on_close)
{
	int fd;

	th_srv.on_open = abort_in_open;
	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.close_count[0], 1);
	ck_assert_int_eq(th_srv.reasons[0], 0);
	close(fd);
	th_finish();
}
END_TEST

/* ---- peers that vanish --------------------------------------------------- */

static void flood(ac_conn_t *c, const void *data, size_t len)
{
	static char chunk[65536];

	/* Answer every frame with 8 MiB the peer never reads. */
	for (int i = 0; i < 128; i++)
		if (ac_conn_write(c, chunk, sizeof(chunk)))
			break;
}

START_TEST(peer_vanishing_mid_write_is_an_error_not_sigpipe)
{
	int fd;

	/* Default SIGPIPE disposition: a write without MSG_NOSIGNAL would
	 * kill this test process. */
	signal(SIGPIPE, SIG_DFL);
	th_srv.on_frame = flood;
	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, "go", 2);
	usleep(50000);
	/* Reset: unread data plus SO_LINGER 0. */
	struct linger lg = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_msg(th_srv.reasons[0] == AC_ECONNRESET ||
			      th_srv.reasons[0] == AC_EEOF,
		      "reason %s", ac_err_name(th_srv.reasons[0]));
	th_finish();
}
END_TEST

/* ---- messages from other threads ------------------------------------------ */

static int64_t told, dropped_payloads;

static void on_message(ac_conn_t *c, int kind, void *payload)
{
	ck_assert_int_eq(kind, 7);
	ac_conn_write(c, payload, strlen(payload));
	free(payload);
	__atomic_fetch_add(&told, 1, __ATOMIC_RELEASE);
}

static void drop_payload(void *p)
{
	free(p);
	__atomic_fetch_add(&dropped_payloads, 1, __ATOMIC_RELEASE);
}

START_TEST(send_and_tell_from_foreign_thread_reach_the_peer)
{
	ac_handle_t h;
	char buf[32];
	int fd;

	th_srv.on_message = on_message;
	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	h = th_handle(0);
	ck_assert_int_eq(ac_send(th_srv.rt, h, "abc", 3), 0);
	ck_assert_int_eq(ac_tell(th_srv.rt, h, 7, strdup("def"), drop_payload),
			 0);
	/* Same producer, same order. */
	ck_assert(th_read_full(fd, buf, 6));
	ck_assert(memcmp(buf, "abcdef", 6) == 0);
	ck_assert_int_eq(told, 1);

	ck_assert_int_eq(ac_close(th_srv.rt, h, AC_CLOSE_FLUSH), 0);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	/* Refused after close: nothing runs, the caller keeps payload. */
	char *p = strdup("x");
	ck_assert_int_eq(ac_tell(th_srv.rt, h, 7, p, drop_payload), AC_ESTALE);
	free(p);
	close(fd);
	th_finish();
	ck_assert_int_eq(dropped_payloads, 0);
}
END_TEST

START_TEST(tell_without_on_message_is_dropped_once)
{
	int fd;

	th_server_start(1, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	ck_assert_int_eq(ac_tell(th_srv.rt, th_handle(0), 1, strdup("p"),
				 drop_payload),
			 0);
	ck_assert(th_wait_ge(&dropped_payloads, 1, 5000));
	close(fd);
	th_finish();
	ck_assert_int_eq(dropped_payloads, 1);
}
END_TEST

START_TEST(listener_close_stops_accepting_but_keeps_connections)
{
	char buf[4];
	int fd;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)1, 5000));
	ac_listener_close(th_srv.l);
	usleep(100000);
	/* New connections are refused... */
	ck_assert_int_eq(th_dial_tcp("127.0.0.1", th_srv.port, 0),
			 -ECONNREFUSED);
	/* ...and the open one still echoes. */
	th_write_all(fd, "ping", 4);
	ck_assert(th_read_full(fd, buf, 4));
	close(fd);
	th_finish();
}
END_TEST

/* ---- output waits for the end of the loop's turn ------------------------- */

#define TURN_MAX_CONNS 128
#define TURN_DEFER 64 /* connections whose output may wait (loop.c) */

static ac_conn_t *turn_conn[TURN_MAX_CONNS]; /* the loop's own: every
						connection seen */
static int turn_n;                            /* the loop's own */
static int64_t turn_queued;     /* atomic: earlier replies still queued,
				   summed over the frames */
static int64_t turn_queued_max; /* atomic: the most at one frame */
static int64_t turn_frames;     /* atomic */
static sem_t turn_gate, turn_entered;

static void turn_hold(void *arg)
{
	sem_post(&turn_entered);
	sem_wait(&turn_gate);
}

static void turn_reply(ac_conn_t *c, const void *data, size_t len)
{
	int64_t queued = 0;
	bool seen = false;

	for (int i = 0; i < turn_n; i++) {
		if (turn_conn[i] == c)
			seen = true;
		else if (ac_conn_out_bytes(turn_conn[i]) > 0)
			queued++;
	}
	__atomic_fetch_add(&turn_queued, queued, __ATOMIC_RELAXED);
	if (queued > turn_queued_max)
		__atomic_store_n(&turn_queued_max, queued, __ATOMIC_RELAXED);
	ac_conn_write(c, data, len);
	ac_conn_write(c, "\n", 1);
	if (!seen && turn_n < TURN_MAX_CONNS)
		turn_conn[turn_n++] = c;
	__atomic_fetch_add(&turn_frames, 1, __ATOMIC_RELEASE);
}

/* Connects n clients to a one-loop line server that answers through
 * turn_reply. */
static void turn_start(int *fd, int n)
{
	sem_init(&turn_gate, 0, 0);
	sem_init(&turn_entered, 0, 0);
	th_srv.on_frame = turn_reply;
	th_server_start(1, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LINE});
	for (int i = 0; i < n; i++)
		fd[i] = th_connect_tcp("127.0.0.1", th_srv.port);
	ck_assert(th_wait(th_opened_ge, (void *)(intptr_t)n, 5000));
}

/* One request from each of n clients, all sent while the loop is held,
 * so that its next poll finds them together; then every reply. */
static void turn_round(const int *fd, int n)
{
	int64_t before = __atomic_load_n(&turn_frames, __ATOMIC_ACQUIRE);
	char buf[16];

	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), turn_hold, NULL),
			 0);
	sem_wait(&turn_entered);
	for (int i = 0; i < n; i++)
		th_write_all(fd[i], "ping\n", 5);
	usleep(100 * 1000); /* all of them in the loop's socket buffers */
	sem_post(&turn_gate);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_eq(th_recv_frame(fd[i], AC_FRAME_LINE, buf,
						sizeof(buf), 0),
				  4);
		ck_assert(memcmp(buf, "ping", 4) == 0);
	}
	ck_assert_int_eq(__atomic_load_n(&turn_frames, __ATOMIC_ACQUIRE),
			 before + n);
}

/*
 * The loop reads every connection its poll found ready before it writes to
 * any: a reply waits for the end of the turn. Four requests read in one
 * turn each find the replies to those before them still queued (0 + 1 +
 * 2 + 3); written at the end of each callback instead, they would find
 * none.
 */
START_TEST(replies_of_one_turn_are_written_when_the_turn_ends)
{
	int fd[4];

	turn_start(fd, 4);
	turn_round(fd, 4);
	ck_assert_int_eq(__atomic_load_n(&turn_queued, __ATOMIC_RELAXED),
			 0 + 1 + 2 + 3);
	for (int i = 0; i < 4; i++)
		close(fd[i]);
	th_finish();
}
END_TEST

/*
 * Each connection waiting for the end of the turn holds an output chunk,
 * so at most TURN_DEFER wait; past that the output goes when the callback
 * ends. With 100 requests in one turn a frame finds at most 63 earlier
 * replies queued, where unbounded the last would find 99. libevent polls
 * for 32 events at first and doubles that each time a poll fills it, so
 * the second round is read in one turn.
 */
START_TEST(a_turn_holds_the_output_of_at_most_64_connections)
{
	int fd[100];

	turn_start(fd, 100);
	for (int r = 0; r < 3; r++)
		turn_round(fd, 100);
	ck_assert_int_eq(__atomic_load_n(&turn_queued_max, __ATOMIC_RELAXED),
			 TURN_DEFER - 1);
	for (int i = 0; i < 100; i++)
		close(fd[i]);
	th_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("conn");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, echo_tcp_raw);
	tcase_add_test(tc, a_connection_max_frame_holds_until_lifted);
	tcase_add_test(tc, a_decoder_gets_its_note_back_until_input_is_consumed);
	tcase_add_test(tc, echo_tcp_line);
	tcase_add_test(tc, echo_tcp_len32);
	tcase_add_test(tc, echo_unix_raw);
	tcase_add_test(tc, echo_unix_line);
	tcase_add_test(tc, echo_unix_len32);
	tcase_add_test(tc, echo_ipv6_loopback);
	tcase_add_test(tc, frames_split_across_reads_and_coalesced_in_one_read);
	tcase_add_test(tc, large_frame_echoes_through_partial_writes);
	tcase_add_test(tc, oversized_len32_frame_closes_with_eframe);
	tcase_add_test(tc, oversized_line_closes_with_eframe);
	tcase_add_test(tc, frame_at_limit_is_delivered);
	tcase_add_test(tc, bad_arguments_are_refused);
	tcase_add_test(tc, listen_on_a_path_that_is_not_a_socket_is_eaddrinuse_and_keeps_the_file);
	tcase_add_test(tc, listen_on_a_port_in_use_is_eaddrinuse_despite_reuseport);
	tcase_add_test(tc, close_inside_on_frame_flushes_and_stops_frames);
	tcase_add_test(tc, replies_of_one_turn_are_written_when_the_turn_ends);
	tcase_add_test(tc, a_turn_holds_the_output_of_at_most_64_connections);
	tcase_add_test(tc, close_inside_on_open_still_gets_one_on_close);
	tcase_add_test(tc, peer_vanishing_mid_write_is_an_error_not_sigpipe);
	tcase_add_test(tc, send_and_tell_from_foreign_thread_reach_the_peer);
	tcase_add_test(tc, tell_without_on_message_is_dropped_once);
	tcase_add_test(tc, listener_close_stops_accepting_but_keeps_connections);
	suite_add_tcase(s, tc);
	return th_run(s);
}
