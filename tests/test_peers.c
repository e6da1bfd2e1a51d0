/*
 * test_peers.c: peers that misbehave. A reset in the middle of a large
 * write, a half-close (with a peer that keeps reading, and one that
 * does not), connections that vanish before sending a byte, garbage on a
 * length-prefixed server, frames of exactly max_frame bytes and one byte
 * more. Each ends with the documented close reason (actorconn(7),
 * LIFECYCLE, BOUNDS AND DEFAULTS) and no live object left.
 *
 * test_conn.c already has the oversized frame and the line-framing
 * limits with a small max_frame, and a vanishing peer that only has to
 * end as AC_ECONNRESET or AC_EEOF; these pin down the rest.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "testhelp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static ac_stats_t stats(void)
{
	ac_stats_t st;

	ck_assert_int_eq(ac_stats(th_srv.rt, &st, NULL, 0),
			 ac_runtime_loops(th_srv.rt));
	return st;
}

/* ---- a reset in the middle of a large write --------------------------------- */

#define LARGE (16u << 20) /* more than the socket buffers hold */
static unsigned char mib[1 << 20];
static int64_t queued; /* atomic: large replies queued */

static void reply_large(ac_conn_t *c, const void *data, size_t len)
{
	for (unsigned i = 0; i < LARGE / sizeof(mib); i++)
		ck_assert_int_eq(ac_conn_write(c, mib, sizeof(mib)), 0);
	__atomic_fetch_add(&queued, 1, __ATOMIC_RELEASE);
}

/* Reads up to n bytes (or to EOF); returns what it read. */
static size_t read_some(int fd, size_t n)
{
	static char buf[65536];
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf, n - got < sizeof(buf) ? n - got
								 : sizeof(buf),
				 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* A client with a small receive buffer (no autotuning): the kernel
 * cannot take a large reply off the server's hands. */
static int connect_small_window(int port)
{
	int fd = th_dial_tcp("127.0.0.1", port, 65536);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static void reset(int fd)
{
	struct linger lg = {1, 0}; /* close sends RST, not FIN */

	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
			 0);
	close(fd);
}

START_TEST(reset_in_the_middle_of_a_large_write_closes_with_ereset)
{
	/* Twenty times: the reason must not depend on which of read and
	 * write sees the reset first. */
	enum { ROUNDS = 20 };
	ac_conn_info_t info;

	th_srv.on_frame = reply_large;
	th_server_start(2, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LEN32,
					  .out_hard_limit = 64 << 20,
					  .out_soft_limit = 64 << 20});
	for (int i = 0; i < ROUNDS; i++) {
		int fd = connect_small_window(th_srv.port);

		th_send_frame(fd, AC_FRAME_LEN32, "go", 2);
		/* A quarter of the reply has arrived: the write is under way
		 * (and cannot have finished: the rest does not fit in the
		 * socket buffers). */
		ck_assert_uint_eq(read_some(fd, LARGE / 4), LARGE / 4);
		ck_assert_int_eq(ac_handle_info(th_srv.rt, th_handle(i), &info), 0);
		ck_assert_uint_lt(info.bytes_out, LARGE);
		reset(fd);
		ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)(i + 1), 5000));
		ck_assert_msg(th_srv.reasons[i] == AC_ECONNRESET,
			      "round %d: closed with %s", i,
			      ac_err_name(th_srv.reasons[i]));
		ck_assert_int_eq(th_srv.close_count[i], 1);
	}
	ck_assert_uint_eq(stats().closed[AC_CR_RESET], ROUNDS);
	ck_assert_int_eq(queued, ROUNDS);
	th_finish();
}
END_TEST

/* ---- half-close --------------------------------------------------------------- */

/*
 * The documented behaviour (actorconn(7)): end of input is the end of the
 * connection. On EOF reading stops, and output already queued, including
 * the replies on_frame wrote for the last frames, is still sent, within
 * linger_ms; then the connection closes with AC_EEOF. A half-closed peer
 * cannot keep a connection open to receive more: messages that arrive
 * after the EOF are dropped and counted.
 */
static void reply_one_mib(ac_conn_t *c, const void *data, size_t len)
{
	uint32_t n = htonl(sizeof(mib));

	ck_assert_int_eq(ac_conn_write(c, &n, 4), 0);
	ck_assert_int_eq(ac_conn_write(c, mib, sizeof(mib)), 0);
	__atomic_fetch_add(&queued, 1, __ATOMIC_RELEASE);
}

START_TEST(half_closed_peer_gets_every_reply_then_eof)
{
	static char got[1 << 20];
	int fd;

	for (size_t i = 0; i < sizeof(mib); i++)
		mib[i] = (unsigned char)(i * 31 + 7);
	th_srv.on_frame = reply_one_mib;
	th_server_start(1, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LEN32});
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	/* Three requests and the FIN in one go: the EOF arrives while 3 MiB
	 * of replies are queued. */
	for (int i = 0; i < 3; i++)
		th_send_frame(fd, AC_FRAME_LEN32, "req", 3);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LEN32, got,
						sizeof(got), 0),
				  sizeof(mib));
		ck_assert(memcmp(got, mib, sizeof(mib)) == 0);
	}
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EEOF);
	ck_assert_int_eq(th_srv.close_count[0], 1);
	ck_assert_int_eq(th_srv.frames, 3);
	close(fd);
	th_finish();
}
END_TEST

START_TEST(half_closed_peer_that_stops_reading_is_closed_after_linger_ms)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LEN32,
			    .linger_ms = 300,
			    .out_hard_limit = 64 << 20,
			    .out_soft_limit = 64 << 20};
	ac_stats_t st;
	uint64_t t0;
	int fd, r;

	th_srv.on_frame = reply_large;
	th_server_start(1, "127.0.0.1:0", &o);
	/* A small receive window: the server's output stays queued. */
	fd = connect_small_window(th_srv.port);
	th_send_frame(fd, AC_FRAME_LEN32, "go", 2);
	ck_assert(th_wait_ge(&queued, 1, 5000));
	t0 = th_now_ms();
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	/* While it lingers the handle is still live, but the connection
	 * takes no more: a send is accepted and counted as dropped. */
	usleep(50000);
	ck_assert_int_eq(th_srv.closed, 0);
	r = ac_send(th_srv.rt, th_handle(0), "late", 4);
	ck_assert_msg(r == 0 || r == AC_ESTALE, "%s", ac_err_name(r));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_msg(th_now_ms() - t0 >= 250 && th_now_ms() - t0 < 2000,
		      "closed %llu ms after the EOF, linger 300 ms",
		      (unsigned long long)(th_now_ms() - t0));
	/* The first reason stands: the peer's EOF, not the linger. */
	ck_assert_int_eq(th_srv.reasons[0], AC_EEOF);
	st = stats();
	ck_assert_uint_eq(st.closed[AC_CR_EOF], 1);
	if (r == 0)
		ck_assert_uint_eq(st.dropped, 1);
	close(fd);
	th_finish();
}
END_TEST

/* ---- connect and vanish ------------------------------------------------------ */

START_TEST(peers_that_connect_and_vanish_get_open_and_one_close)
{
	enum { EACH = 50 };
	ac_stats_t st;

	th_server_start(2, "127.0.0.1:0", NULL);
	/* Half close politely (FIN), half reset; none sends a byte. */
	for (int i = 0; i < 2 * EACH; i++) {
		int fd = th_connect_tcp("127.0.0.1", th_srv.port);
		if (i % 2)
			reset(fd);
		else
			close(fd);
	}
	/* Every connection the server accepted ends, once. A reset that
	 * reaches the backlog before accept() may be refused by the kernel
	 * (ECONNABORTED) and never open; all the FIN ones open. */
	for (uint64_t end = th_now_ms() + 5000; th_now_ms() < end; usleep(1000)) {
		st = stats();
		if (st.accepted >= EACH && st.closed[AC_CR_EOF] +
						   st.closed[AC_CR_RESET] ==
					   st.accepted)
			break;
	}
	usleep(100000); /* stragglers */
	st = stats();
	/* Acquire: every on_close counted so far has written its reason. */
	int64_t closed = __atomic_load_n(&th_srv.closed, __ATOMIC_ACQUIRE);
	int64_t opened = __atomic_load_n(&th_srv.opened, __ATOMIC_ACQUIRE);
	ck_assert_int_eq(opened, (int64_t)st.accepted);
	ck_assert_int_eq(closed, opened);
	ck_assert_uint_ge(st.accepted, EACH);
	ck_assert_uint_eq(st.closed[AC_CR_EOF] + st.closed[AC_CR_RESET],
			  st.accepted);
	ck_assert_uint_ge(st.closed[AC_CR_EOF], EACH);
	for (int i = 0; i < opened; i++) {
		ck_assert_int_eq(__atomic_load_n(&th_srv.close_count[i],
						 __ATOMIC_RELAXED),
				 1);
		ck_assert(th_srv.reasons[i] == AC_EEOF ||
			  th_srv.reasons[i] == AC_ECONNRESET);
	}
	ck_assert_uint_eq(st.frames_in, 0);
	ck_assert_uint_eq(st.conns_open, 0);
	th_finish();
}
END_TEST

/* ---- garbage ------------------------------------------------------------------------ */

START_TEST(http_request_to_a_len32_server_closes_with_eframe)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd;

	th_server_start(1, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LEN32});
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	/* "GET " is a length of 1,195,725,856: over the 1 MiB default. */
	th_write_all(fd, req, sizeof(req) - 1);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EFRAME);
	ck_assert_int_eq(th_srv.frames, 0);
	ck_assert_uint_eq(stats().closed[AC_CR_FRAME], 1);
	close(fd);
	th_finish();
}
END_TEST

/*
 * Streams of random frames, with lengths mostly within max_frame, some
 * over it, and random bytes for payload, sent in random pieces: the
 * server delivers exactly the frames the decoder finds before the first
 * bad length, then closes with AC_EFRAME; a stream with no bad length
 * stays open until the client closes it (AC_EEOF). (No echo: an AC_EFRAME
 * close is an abort, which discards replies still queued.)
 */
static void count_only(ac_conn_t *c, const void *data, size_t len) {}

START_TEST(random_len32_streams_deliver_the_good_frames_then_eframe)
{
	enum { STREAMS = 40, MAX = 1000 };
	static unsigned char stream[64 << 10];
	unsigned seed = 12345;
	int64_t want_frames = 0;

	th_srv.on_frame = count_only;
	th_server_start(2, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LEN32,
					  .max_frame = MAX});
	for (int s = 0; s < STREAMS; s++) {
		size_t len = 0, pos = 0, good = 0;
		bool bad = false;
		int fd;

		/* Build the stream frame by frame. */
		while (len + 4 + MAX + 8 < sizeof(stream)) {
			uint32_t n = rand_r(&seed) % 50 == 0
					     ? MAX + 1 + (uint32_t)rand_r(&seed)
					     : (uint32_t)rand_r(&seed) % (MAX + 1);
			uint32_t be = htonl(n);

			memcpy(stream + len, &be, 4);
			len += 4;
			if (n > MAX)
				break; /* nothing after it matters */
			for (uint32_t k = 0; k < n; k++)
				stream[len++] = (unsigned char)rand_r(&seed);
		}
		/* What the decoder makes of it. */
		while (pos < len) {
			ac_frame_t f;
			int r = ac_decode_len32(stream + pos, len - pos, MAX, &f);
			if (r == AC_EFRAME) {
				bad = true;
				break;
			}
			ck_assert_int_eq(r, 1);
			pos += f.consumed;
			good++;
		}
		want_frames += (int64_t)good;
		fd = th_connect_tcp("127.0.0.1", th_srv.port);
		for (size_t off = 0; off < len;) {
			size_t piece = 1 + (size_t)rand_r(&seed) % 9000;
			if (piece > len - off)
				piece = len - off;
			if (send(fd, stream + off, piece, MSG_NOSIGNAL) <= 0)
				break; /* closed after the bad length */
			off += piece;
		}
		if (bad) {
			ck_assert(th_wait_eof(fd, 5000));
			ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)(s + 1),
					  5000));
			ck_assert_int_eq(th_srv.reasons[s], AC_EFRAME);
		} else {
			/* Everything arrived before the FIN: wait for it. */
			ck_assert(th_wait_ge(&th_srv.frames, want_frames, 5000));
			close(fd);
			ck_assert(th_wait(th_closed_ge, (void *)(intptr_t)(s + 1),
					  5000));
			ck_assert_int_eq(th_srv.reasons[s], AC_EEOF);
		}
		close(fd);
		ck_assert_int_eq(__atomic_load_n(&th_srv.frames, __ATOMIC_RELAXED),
				 want_frames);
	}
	th_finish();
}
END_TEST

/* ---- exactly max_frame, and one byte more ---------------------------------- */

/* Sends what the peer takes before it closes. */
static void send_tolerant(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		c += w;
		n -= (size_t)w;
	}
}

/* With the default max_frame (1 MiB), on one connection: the largest
 * frame is delivered (and echoed), the next, one byte longer, closes it.
 * (The over-long frame is sent only after the echo has arrived: an
 * AC_EFRAME close is an abort, which discards replies still queued.) */
static void at_limit_then_over(int framing)
{
	size_t max = 1u << 20;
	char *msg = malloc(max + 2), *got = malloc(max + 2);
	int fd;

	memset(msg, 'a', max + 1);
	th_server_start(1, "127.0.0.1:0", &(ac_conn_opts_t){.framing = framing});
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_send_frame(fd, framing, msg, max);
	ck_assert_uint_eq(th_recv_frame(fd, framing, got, max + 2, 0), max);
	ck_assert(memcmp(got, msg, max) == 0);
	/* The server may close (and reset) before it has all of it. */
	if (framing == AC_FRAME_LEN32) {
		uint32_t be = htonl((uint32_t)(max + 1));
		send_tolerant(fd, &be, 4);
	} else {
		msg[max + 1] = '\n';
	}
	send_tolerant(fd, msg, framing == AC_FRAME_LINE ? max + 2 : max + 1);
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EFRAME);
	ck_assert_int_eq(th_srv.frames, 1);
	close(fd);
	free(msg);
	free(got);
	th_finish();
}

START_TEST(len32_frame_of_max_frame_is_delivered_and_one_byte_more_is_eframe)
{
	at_limit_then_over(AC_FRAME_LEN32);
}
END_TEST

START_TEST(line_of_max_frame_is_delivered_and_one_byte_more_is_eframe)
{
	at_limit_then_over(AC_FRAME_LINE);
}
END_TEST

/* The line ending does not count: max_frame bytes and "\r\n" is a full
 * line, though the decoder sees max_frame + 2 bytes. */
START_TEST(line_of_max_frame_ended_by_crlf_is_delivered)
{
	enum { MAX = 64 };
	char line[MAX + 2], got[MAX + 2];
	int fd;

	memset(line, 'b', MAX);
	line[MAX] = '\r';
	line[MAX + 1] = '\n';
	th_server_start(1, "127.0.0.1:0",
			&(ac_conn_opts_t){.framing = AC_FRAME_LINE,
					  .max_frame = MAX});
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	th_write_all(fd, line, sizeof(line));
	ck_assert_uint_eq(th_recv_frame(fd, AC_FRAME_LINE, got, sizeof(got), 0),
			  MAX);
	/* One more byte before the "\r\n": too long. */
	th_write_all(fd, "c", 1);
	th_write_all(fd, line, sizeof(line));
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert(th_wait(th_closed_ge, (void *)1, 5000));
	ck_assert_int_eq(th_srv.reasons[0], AC_EFRAME);
	ck_assert_int_eq(th_srv.frames, 1);
	close(fd);
	th_finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("peers");
	TCase *tc = tcase_create("peers");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, reset_in_the_middle_of_a_large_write_closes_with_ereset);
	tcase_add_test(tc, half_closed_peer_gets_every_reply_then_eof);
	tcase_add_test(tc, half_closed_peer_that_stops_reading_is_closed_after_linger_ms);
	tcase_add_test(tc, peers_that_connect_and_vanish_get_open_and_one_close);
	tcase_add_test(tc, http_request_to_a_len32_server_closes_with_eframe);
	tcase_add_test(tc, random_len32_streams_deliver_the_good_frames_then_eframe);
	tcase_add_test(tc, len32_frame_of_max_frame_is_delivered_and_one_byte_more_is_eframe);
	tcase_add_test(tc, line_of_max_frame_is_delivered_and_one_byte_more_is_eframe);
	tcase_add_test(tc, line_of_max_frame_ended_by_crlf_is_delivered);
	suite_add_tcase(s, tc);
	return th_run(s);
}
