/* test_flow.c: read-side flow control (ac_conn_read_stop/_start), a proxy
 * that passes backpressure through, and the graceful drain. */
#include "testhelp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Sanitizers and valgrind run the relay with less data (same shape). */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define AC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define AC_SANITIZED 1
#endif
#endif

static int64_t frames, closes, last_reason, in_call, bad_nesting;
static ac_conn_t *only;        /* the one server connection (its loop's) */
static ac_handle_t only_h;

static void on_open_keep(ac_conn_t *c)
{
	only = c;
	__atomic_store_n(&only_h, ac_conn_handle(c), __ATOMIC_RELEASE);
}

static void on_close_note(ac_conn_t *c, int reason)
{
	(void)c;
	__atomic_store_n(&last_reason, reason, __ATOMIC_RELAXED);
	__atomic_fetch_add(&closes, 1, __ATOMIC_RELEASE);
}

/* Runs fn(only) on the connection's loop and waits for it. */
struct on_loop {
	int (*fn)(ac_conn_t *c);
	int rc;
	int64_t done;
};

static void run_on_loop(void *arg)
{
	struct on_loop *o = arg;

	__atomic_store_n(&in_call, 1, __ATOMIC_RELAXED);
	o->rc = o->fn(only);
	__atomic_store_n(&in_call, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
}

static int call_on_loop(ac_runtime_t *rt, int (*fn)(ac_conn_t *c))
{
	struct on_loop o = {fn, 0, 0};
	ac_handle_t h = __atomic_load_n(&only_h, __ATOMIC_ACQUIRE);

	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(AC_HANDLE_LOOP(h)),
				      run_on_loop, &o),
			 0);
	ck_assert(th_wait_ge(&o.done, 1, 5000));
	return o.rc;
}

static int read_start(ac_conn_t *c) { return ac_conn_read_start(c); }
static int read_stop(ac_conn_t *c) { return ac_conn_read_stop(c); }
static int reading(ac_conn_t *c) { return ac_conn_reading(c); }

static ac_runtime_t *serve(int loops, const ac_conn_cbs_t *cbs,
			   const ac_conn_opts_t *o, int *port)
{
	ac_config_t cfg = {.loops = loops};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	ac_listener_t *l;

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", cbs, o, NULL, &l), 0);
	*port = ac_listener_port(l);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	return rt;
}

/* ---- pause and resume ------------------------------------------------------ */

/* Pauses on the first frame: the frames read with it must wait. */
static void frame_pause_first(ac_conn_t *c, const void *d, size_t n)
{
	(void)d;
	(void)n;
	if (__atomic_load_n(&in_call, __ATOMIC_RELAXED))
		__atomic_fetch_add(&bad_nesting, 1, __ATOMIC_RELAXED);
	if (__atomic_fetch_add(&frames, 1, __ATOMIC_RELEASE) == 0)
		ck_assert_int_eq(ac_conn_read_stop(c), 0);
}

START_TEST(a_pause_holds_back_frames_already_read)
{
	ac_conn_cbs_t cbs = {.on_open = on_open_keep,
			     .on_frame = frame_pause_first,
			     .on_close = on_close_note};
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	int port, fd;
	ac_runtime_t *rt = serve(1, &cbs, &o, &port);

	fd = th_connect_tcp("127.0.0.1", port);
	th_write_all(fd, "a\nb\nc\n", 6); /* one segment, one read */
	ck_assert(th_wait_ge(&frames, 1, 5000));
	usleep(200 * 1000);
	ck_assert_int_eq(__atomic_load_n(&frames, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(call_on_loop(rt, reading), 0);
	ck_assert_int_eq(call_on_loop(rt, read_stop), 0); /* twice: fine */
	/* Resuming delivers b and c from the loop, not inside the call. */
	ck_assert_int_eq(call_on_loop(rt, read_start), 0);
	ck_assert(th_wait_ge(&frames, 3, 5000));
	ck_assert_int_eq(bad_nesting, 0);
	ck_assert_int_eq(call_on_loop(rt, reading), 1);
	ck_assert_int_eq(call_on_loop(rt, read_start), 0); /* harmless */
	/* And reading goes on from the socket. */
	th_write_all(fd, "d\n", 2);
	ck_assert(th_wait_ge(&frames, 4, 5000));
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

static void open_paused(ac_conn_t *c)
{
	on_open_keep(c);
	ck_assert_int_eq(ac_conn_read_stop(c), 0);
}

static int64_t got_bytes;

static void frame_count(ac_conn_t *c, const void *d, size_t n)
{
	(void)c;
	(void)d;
	__atomic_fetch_add(&got_bytes, (int64_t)n, __ATOMIC_RELEASE);
}

START_TEST(a_paused_connection_pushes_back_on_its_peer)
{
	ac_conn_cbs_t cbs = {.on_open = open_paused, .on_frame = frame_count,
			     .on_close = on_close_note};
	static char chunk[65536];
	int port, fd;
	int64_t sent = 0;
	ac_runtime_t *rt = serve(1, &cbs, NULL, &port);
	ac_stats_t st;

	fd = th_connect_tcp("127.0.0.1", port);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* The peer can write only what the kernels buffer, then stalls. */
	for (int idle = 0; idle < 50;) {
		ssize_t n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);

		if (n > 0) {
			sent += n;
			idle = 0;
		} else {
			ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
			idle++;
			usleep(2000);
		}
		ck_assert_int_lt(sent, (int64_t)64 << 20);
	}
	ck_assert_int_eq(__atomic_load_n(&got_bytes, __ATOMIC_ACQUIRE), 0);
	ck_assert_int_eq(ac_stats(rt, &st, NULL, 0), 1);
	ck_assert_uint_eq(st.bytes_in, 0);
	/* Resumed, every byte arrives. */
	ck_assert_int_eq(call_on_loop(rt, read_start), 0);
	ck_assert(th_wait_ge(&got_bytes, sent, 10000));
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(silence_while_paused_is_not_idleness)
{
	ac_conn_cbs_t cbs = {.on_open = open_paused, .on_frame = frame_count,
			     .on_close = on_close_note};
	ac_conn_opts_t o = {.idle_timeout_ms = 100};
	int port, fd;
	uint64_t t0;
	ac_runtime_t *rt = serve(1, &cbs, &o, &port);

	fd = th_connect_tcp("127.0.0.1", port);
	usleep(400 * 1000); /* four idle timeouts, paused */
	ck_assert_int_eq(__atomic_load_n(&closes, __ATOMIC_ACQUIRE), 0);
	t0 = th_now_ms();
	ck_assert_int_eq(call_on_loop(rt, read_start), 0);
	/* Resumed, the clock starts from zero: closed after about 100 ms. */
	ck_assert(th_wait_ge(&closes, 1, 5000));
	ck_assert_int_eq(last_reason, AC_ETIMEDOUT);
	ck_assert_uint_ge(th_now_ms() - t0, 80);
	ck_assert(th_wait_eof(fd, 5000));
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

static int64_t close_rc = 1, foreign_rc = 1;

static void close_tries_pause(ac_conn_t *c, int reason)
{
	__atomic_store_n(&close_rc, ac_conn_read_stop(c) == AC_ESTATE &&
					    ac_conn_read_start(c) == AC_ESTATE &&
					    ac_conn_reading(c) == 0
				    ? 0
				    : -1,
			 __ATOMIC_RELAXED);
	on_close_note(c, reason);
}

START_TEST(pause_refuses_the_wrong_thread_and_a_closed_connection)
{
	ac_conn_cbs_t cbs = {.on_open = on_open_keep,
			     .on_close = close_tries_pause};
	int port, fd;
	ac_runtime_t *rt = serve(1, &cbs, NULL, &port);

	ck_assert_int_eq(ac_conn_read_stop(NULL), AC_EINVAL);
	ck_assert_int_eq(ac_conn_read_start(NULL), AC_EINVAL);
	ck_assert_int_eq(ac_conn_reading(NULL), AC_EINVAL);
	fd = th_connect_tcp("127.0.0.1", port);
	while (!__atomic_load_n(&only_h, __ATOMIC_ACQUIRE))
		usleep(1000);
	/* This thread is not the owner: refused, nothing touched. */
	foreign_rc = ac_conn_read_stop(only);
	ck_assert_int_eq(foreign_rc, AC_ETHREAD);
	ck_assert_int_eq(ac_conn_read_start(only), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_reading(only), AC_ETHREAD);
	ck_assert_int_eq(call_on_loop(rt, reading), 1);
	close(fd);
	ck_assert(th_wait_ge(&closes, 1, 5000));
	ck_assert_int_eq(close_rc, 0);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- a proxy: backpressure from a slow receiver to a fast sender ---------- */

/*
 * Client -> [A] proxy [B] -> receiver. A's frames are written to B; when
 * B's output passes out_high, A stops reading, and B's on_drain resumes
 * it. The receiver reads slowly, so without the pause B's output would
 * grow until the slow-consumer limit closed it.
 */
struct relay {
	ac_conn_t *a, *b;
	int backpressure;
	size_t max_out;
	int64_t pauses;
	int b_reason;
};

static struct relay R;
static char recv_addr[64];
static int64_t relay_done;

static void b_open(ac_conn_t *c)
{
	R.b = c;
	ac_conn_read_start(R.a); /* A waited for its upstream */
}

static void b_drain(ac_conn_t *c)
{
	(void)c;
	if (R.a)
		ac_conn_read_start(R.a);
}

static void b_close(ac_conn_t *c, int reason)
{
	(void)c;
	R.b = NULL;
	R.b_reason = reason;
	if (R.a)
		ac_conn_close(R.a, AC_CLOSE_ABORT);
	__atomic_store_n(&relay_done, 1, __ATOMIC_RELEASE);
}

static void a_open(ac_conn_t *c)
{
	ac_conn_cbs_t up = {.on_open = b_open, .on_drain = b_drain,
			    .on_close = b_close};
	ac_handle_t h;

	R.a = c;
	ck_assert_int_eq(ac_conn_read_stop(c), 0);
	ck_assert_int_eq(ac_connect(ac_conn_runtime(c), recv_addr, &up, NULL,
				    NULL, &h),
			 0);
}

static void a_frame(ac_conn_t *c, const void *d, size_t n)
{
	ssize_t q;

	if (!R.b || ac_conn_write(R.b, d, n))
		return;
	q = ac_conn_out_bytes(R.b);
	if ((size_t)q > R.max_out)
		R.max_out = (size_t)q;
	if (R.backpressure && !ac_conn_writable(R.b)) {
		ac_conn_read_stop(c);
		__atomic_fetch_add(&R.pauses, 1, __ATOMIC_RELEASE);
	}
}

static void a_close(ac_conn_t *c, int reason)
{
	(void)c;
	(void)reason;
	R.a = NULL;
	if (R.b)
		ac_conn_close(R.b, AC_CLOSE_FLUSH);
}

/* The pattern: 8-byte words, word k = k * golden ratio. */
static void fill(uint64_t *w, size_t nwords, uint64_t first)
{
	for (size_t i = 0; i < nwords; i++)
		w[i] = (first + i) * 0x9E3779B97F4A7C15ull;
}

struct ends {
	unsigned nap_us; /* the receiver's pause after each 64 KiB */
	int lfd;
	int port;
	int64_t total;
	int64_t received;
	int ok;
};

static void *sender(void *arg)
{
	struct ends *e = arg;
	static uint64_t buf[1 << 17]; /* 1 MiB */
	int fd = th_dial_tcp("127.0.0.1", e->port, 0);
	int64_t off = 0;

	if (fd < 0)
		return NULL;
	while (off < e->total) {
		fill(buf, sizeof(buf) / 8, (uint64_t)off / 8);
		if (!th_send_all(fd, buf, sizeof(buf)))
			break;
		off += (int64_t)sizeof(buf);
	}
	close(fd);
	return NULL;
}

/* Reads slowly (64 KiB, then a nap) and checks every byte. */
static void *receiver(void *arg)
{
	struct ends *e = arg;
	static uint64_t want[8192], got[8192];
	int fd = accept(e->lfd, NULL, NULL);
	int64_t off = 0;
	size_t have = 0;

	e->ok = fd >= 0;
	/* First a stall, so that the receiver is the bottleneck however
	 * fast each side runs in this build: read nothing until the proxy
	 * has paused its client (or the relay failed), up to 30 s. */
	for (int i = 0; i < 30000 &&
			!__atomic_load_n(&R.pauses, __ATOMIC_ACQUIRE) &&
			!__atomic_load_n(&relay_done, __ATOMIC_ACQUIRE);
	     i++)
		usleep(1000);
	while (fd >= 0) {
		ssize_t n = recv(fd, (char *)got + have, sizeof(got) - have, 0);

		if (n <= 0)
			break;
		have += (size_t)n;
		if (have == sizeof(got)) {
			fill(want, 8192, (uint64_t)off / 8);
			if (memcmp(want, got, sizeof(got)) != 0)
				e->ok = 0;
			off += (int64_t)have;
			have = 0;
			__atomic_store_n(&e->received, off, __ATOMIC_RELAXED);
			usleep(e->nap_us);
		}
	}
	off += (int64_t)have; /* a short tail is a failure below */
	__atomic_store_n(&e->received, off, __ATOMIC_RELEASE);
	if (fd >= 0)
		close(fd);
	return NULL;
}

static long max_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void relay(int backpressure, int64_t total, struct ends *e)
{
	ac_conn_cbs_t cbs = {.on_open = a_open, .on_frame = a_frame,
			     .on_close = a_close};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	pthread_t ts, tr;
	int port;
	ac_runtime_t *rt;

	memset(&R, 0, sizeof(R));
	R.backpressure = backpressure;
	e->total = total;
	e->lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(e->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(e->lfd, 4), 0);
	getsockname(e->lfd, (struct sockaddr *)&sa, &len);
	snprintf(recv_addr, sizeof(recv_addr), "127.0.0.1:%d",
		 ntohs(sa.sin_port));
	rt = serve(1, &cbs, NULL, &port);
	e->port = port;
	pthread_create(&tr, NULL, receiver, e);
	pthread_create(&ts, NULL, sender, e);
	pthread_join(ts, NULL);
	ck_assert(th_wait_ge(&relay_done, 1, 120000));
	pthread_join(tr, NULL);
	close(e->lfd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}

START_TEST(a_proxy_relays_a_gigabyte_in_bounded_memory)
{
	struct ends e = {.nap_us = 150}; /* at most 400 MiB/s */
	int64_t mib = 1024;
	const char *env = getenv("AC_PROXY_MIB");
	long rss0 = max_rss_kib();
	uint64_t t0 = th_now_ms(), ms;

	/* Slower builds get a slower receiver, so that it stays the
	 * bottleneck, and less data. */
#ifdef AC_SANITIZED
	mib = 64;
	e.nap_us = 5000; /* 12.8 MiB/s */
#endif
	if (getenv("AC_VALGRIND") && *getenv("AC_VALGRIND")) {
		mib = 16;
		e.nap_us = 20000; /* 3.2 MiB/s */
	}
	if (env && atoi(env) > 0)
		mib = atoi(env);
	relay(1, mib << 20, &e);
	ms = th_now_ms() - t0;
	printf("proxy: %lld MiB relayed in %.2f s (%.0f MiB/s); %lld pauses; "
	       "at most %zu KiB queued toward the receiver; peak RSS "
	       "%ld MiB (%+ld MiB over the test's start)\n",
	       (long long)mib, ms / 1000.0, mib * 1000.0 / (ms ? ms : 1),
	       (long long)R.pauses, R.max_out >> 10, max_rss_kib() >> 10,
	       (max_rss_kib() - rss0) >> 10);
	ck_assert(e.ok);
	ck_assert_int_eq(e.received, mib << 20);
	ck_assert_int_eq(R.b_reason, 0); /* B closed by the proxy, flushed */
	ck_assert_int_gt(R.pauses, 0);
	/* Bounded: B's queue stays within out_high (256 KiB) plus one
	 * read of A (64 KiB), far below the 8 MiB slow-consumer limit. */
	ck_assert_uint_le(R.max_out, (256u + 64u) << 10);
	/* Sanitizers keep freed memory in quarantine, and valgrind has its
	 * own heap: the process's RSS means something only without them. */
#ifndef AC_SANITIZED
	if (mib == 1024)
		ck_assert_int_lt(max_rss_kib() - rss0, 64 << 10);
#endif
}
END_TEST

/* The same relay ignoring backpressure: the receiver is dropped as a slow
 * consumer, which is what the pause prevents. */
START_TEST(without_the_pause_the_receiver_is_dropped_as_slow)
{
	struct ends e = {.nap_us = 5000}; /* 12.8 MiB/s */

	relay(0, (int64_t)64 << 20, &e);
	ck_assert_int_eq(R.b_reason, AC_ESLOW);
	ck_assert_int_lt(e.received, (int64_t)64 << 20);
	ck_assert_uint_gt(R.max_out, (size_t)1 << 20);
}
END_TEST

/* ---- graceful drain ---------------------------------------------------------- */

static int64_t goaways, done_calls, done_on_loop = -2;

static void goaway_bye(ac_conn_t *c)
{
	__atomic_fetch_add(&goaways, 1, __ATOMIC_RELAXED);
	ck_assert_int_eq(ac_conn_write(c, "bye\n", 4), 0);
	ck_assert_int_eq(ac_conn_close(c, AC_CLOSE_FLUSH), 0);
}

static void goaway_ignore(ac_conn_t *c)
{
	(void)c;
	__atomic_fetch_add(&goaways, 1, __ATOMIC_RELAXED);
}

static void drained(void *arg)
{
	__atomic_store_n(&done_on_loop, ac_loop_index(), __ATOMIC_RELAXED);
	__atomic_fetch_add((int64_t *)arg, 1, __ATOMIC_RELEASE);
}

static int refused(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno == ECONNREFUSED;
	close(fd);
	return r;
}

START_TEST(a_drain_says_goodbye_and_refuses_newcomers)
{
	ac_conn_cbs_t cbs = {.on_goaway = goaway_bye,
			     .on_close = on_close_note};
	ac_listener_t *l2;
	int port, fd[4];
	char buf[4];
	ac_runtime_t *rt = serve(2, &cbs, NULL, &port);
	ac_stats_t st;

	ck_assert_int_eq(ac_runtime_drain_wait(rt, 0), AC_ESTATE);
	for (int i = 0; i < 4; i++)
		fd[i] = th_connect_tcp("127.0.0.1", port);
	for (int i = 0; i < 100; i++) {
		ac_stats(rt, &st, NULL, 0);
		if (st.conns_open == 4)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(st.conns_open, 4);
	ck_assert_int_eq(ac_runtime_drain(rt, 5000, drained, &done_calls), 0);
	ck_assert_int_eq(ac_runtime_drain(rt, 5000, drained, &done_calls),
			 AC_EALREADY);
	for (int i = 0; i < 4; i++) {
		ck_assert(th_read_full(fd[i], buf, 4));
		ck_assert(memcmp(buf, "bye\n", 4) == 0);
		ck_assert(th_wait_eof(fd[i], 5000));
		close(fd[i]);
	}
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 5000), 0);
	ck_assert(th_wait_ge(&done_calls, 1, 5000));
	ck_assert_int_eq(goaways, 4);
	ck_assert_int_ge(done_on_loop, 0); /* on a loop */
	/* Drained: nobody is accepted any more, and no listener opens. */
	ck_assert(refused(port));
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, NULL, NULL, &l2),
			 AC_ESHUTDOWN);
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.conns_open, 0);
	ck_assert_uint_eq(st.closed[AC_CR_LOCAL], 4);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(ac_runtime_drain(rt, 0, NULL, NULL), AC_ESHUTDOWN);
	ck_assert_int_eq(done_calls, 1);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(the_deadline_closes_what_is_left)
{
	ac_conn_cbs_t cbs = {.on_goaway = goaway_ignore,
			     .on_close = on_close_note};
	int port, fd;
	uint64_t t0;
	ac_runtime_t *rt = serve(1, &cbs, NULL, &port);

	fd = th_connect_tcp("127.0.0.1", port);
	usleep(50 * 1000);
	t0 = th_now_ms();
	ck_assert_int_eq(ac_runtime_drain(rt, 300, NULL, NULL), 0);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 0), AC_ETIMEDOUT);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 100), AC_ETIMEDOUT);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, -1), 0);
	ck_assert_uint_ge(th_now_ms() - t0, 250);
	ck_assert_int_eq(goaways, 1);
	ck_assert_int_eq(last_reason, AC_ESHUTDOWN);
	ck_assert(th_wait_eof(fd, 5000));
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* Without on_goaway a connection closes as AC_CLOSE_FLUSH would: what it
 * had queued still reaches the peer. */
static void open_write_big(ac_conn_t *c)
{
	static char big[200000];

	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(ac_conn_write(c, big, sizeof(big)), 0);
}

START_TEST(without_goaway_a_drain_flushes_and_closes)
{
	ac_conn_cbs_t cbs = {.on_open = open_write_big,
			     .on_close = on_close_note};
	static char buf[200000];
	int port, fd;
	ac_runtime_t *rt = serve(1, &cbs, NULL, &port);

	fd = th_dial_tcp("127.0.0.1", port, 4096); /* a slow reader */
	ck_assert_int_ge(fd, 0);
	usleep(100 * 1000);
	ck_assert_int_eq(ac_runtime_drain(rt, 5000, NULL, NULL), 0);
	ck_assert(th_read_full(fd, buf, sizeof(buf)));
	ck_assert(th_wait_eof(fd, 5000));
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 5000), 0);
	ck_assert_int_eq(last_reason, 0);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

static void wait_on_loop(void *arg)
{
	*(int *)arg = ac_runtime_drain_wait(ac_conn_runtime(only), 0);
}

START_TEST(drain_errors_and_a_stop_that_comes_first)
{
	ac_conn_cbs_t cbs = {.on_open = on_open_keep,
			     .on_goaway = goaway_ignore,
			     .on_close = on_close_note};
	ac_runtime_t *fresh = ac_runtime_new(NULL);
	int port, fd, rc = 1;
	ac_runtime_t *rt;

	ck_assert_int_eq(ac_runtime_drain(NULL, 0, NULL, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_drain_wait(NULL, 0), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_drain(fresh, 0, NULL, NULL), AC_ESTATE);
	ac_runtime_free(fresh);

	rt = serve(1, &cbs, NULL, &port);
	fd = th_connect_tcp("127.0.0.1", port);
	while (!__atomic_load_n(&only_h, __ATOMIC_ACQUIRE))
		usleep(1000);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, -2), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_drain(rt, 0, drained, &done_calls), 0);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), wait_on_loop, &rc), 0);
	ck_assert(th_wait_ge(&goaways, 1, 5000));
	/* No deadline and a connection that stays: the stop ends it, and
	 * done still runs, once, here. */
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 50), AC_ETIMEDOUT);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(rc, AC_ETHREAD);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 0), 0);
	ck_assert_int_eq(done_calls, 1);
	ck_assert_int_eq(done_on_loop, -1);
	ck_assert_int_eq(last_reason, AC_ESHUTDOWN);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* Outbound connections and pools drain too: an idle pooled connection
 * closes and is not replaced, and a reconnecting one stops. */
START_TEST(pools_and_reconnects_end_with_a_drain)
{
	ac_conn_cbs_t cbs = {.on_close = on_close_note};
	ac_conn_cbs_t none = {0};
	ac_conn_opts_t ro = {.reconnect_min_ms = 50};
	ac_pool_opts_t po = {.min_idle_per_loop = 2};
	ac_pool_stats_t ps;
	ac_handle_t h;
	char addr[64];
	int port;
	ac_runtime_t *rt = serve(2, &none, NULL, &port);
	ac_pool_t *p;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	ck_assert_ptr_nonnull(p = ac_pool_new(rt, addr, &po));
	for (int i = 0; i < 500; i++) {
		ac_pool_stats(p, &ps);
		if (ps.idle == 4)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(ps.idle, 4);
	/* Nobody listens on port 1: this one keeps reconnecting. */
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cbs, &ro, NULL, &h), 0);
	ck_assert_int_eq(ac_runtime_drain(rt, 0, NULL, NULL), 0);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 5000), 0);
	ac_pool_stats(p, &ps);
	ck_assert_uint_eq(ps.idle + ps.busy + ps.connecting, 0);
	usleep(200 * 1000); /* no refill, no reconnect */
	ac_pool_stats(p, &ps);
	ck_assert_uint_eq(ps.idle + ps.connecting, 0);
	ac_pool_free(p);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* An outbound connection whose peer leaves during a drain does not come
 * back: the drain would otherwise wait for ever (no deadline here). */
START_TEST(a_drain_stops_reconnects)
{
	ac_conn_cbs_t none = {0};
	ac_conn_cbs_t cbs = {.on_goaway = goaway_ignore,
			     .on_close = on_close_note};
	ac_conn_opts_t ro = {.reconnect_min_ms = 20};
	ac_stats_t st = {0};
	ac_handle_t h;
	char addr[64];
	int port;
	ac_runtime_t *rt = serve(1, &none, NULL, &port);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	ck_assert_int_eq(ac_connect(rt, addr, &cbs, &ro, NULL, &h), 0);
	for (int i = 0; i < 500 && st.connected == 0; i++) {
		usleep(10000);
		ac_stats(rt, &st, NULL, 0);
	}
	ck_assert_uint_eq(st.connected, 1);
	/* The server side has no on_goaway: it closes, and the client's
	 * peer is gone. */
	ck_assert_int_eq(ac_runtime_drain(rt, 0, NULL, NULL), 0);
	ck_assert_int_eq(ac_runtime_drain_wait(rt, 5000), 0);
	ck_assert_int_eq(goaways, 1);
	ck_assert_int_eq(closes, 1);
	ck_assert_int_eq(last_reason, AC_EEOF);
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.connected, 1);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* A borrower that paused its connection gives it back; the next
 * borrower gets it reading. */
static ac_pool_t *pool;
static int64_t borrows, reading_on_second = -1;

static void borrowed(ac_conn_t *c, int err, void *arg);

static void acquire_on_loop(void *arg)
{
	(void)arg;
	ck_assert_int_eq(ac_pool_acquire(pool, borrowed, NULL), 0);
}

static void borrowed(ac_conn_t *c, int err, void *arg)
{
	(void)arg;
	ck_assert_int_eq(err, 0);
	if (__atomic_fetch_add(&borrows, 1, __ATOMIC_RELEASE) == 0) {
		ck_assert_int_eq(ac_conn_read_stop(c), 0);
		ck_assert_int_eq(ac_pool_release(pool, c, AC_POOL_REUSE), 0);
		ck_assert_int_eq(ac_pool_acquire(pool, borrowed, NULL), 0);
		return;
	}
	__atomic_store_n(&reading_on_second, ac_conn_reading(c),
			 __ATOMIC_RELEASE);
	ac_pool_release(pool, c, AC_POOL_REUSE);
}

START_TEST(a_pooled_connection_comes_back_reading)
{
	ac_conn_cbs_t none = {0};
	ac_pool_opts_t po = {.max_per_loop = 1};
	ac_pool_stats_t ps;
	char addr[64];
	int port;
	ac_runtime_t *rt = serve(1, &none, NULL, &port);

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	ck_assert_ptr_nonnull(pool = ac_pool_new(rt, addr, &po));
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), acquire_on_loop, NULL),
			 0);
	ck_assert(th_wait_ge(&borrows, 2, 5000));
	ck_assert(th_wait_ge(&reading_on_second, 0, 5000));
	ck_assert_int_eq(reading_on_second, 1);
	ac_pool_stats(pool, &ps);
	ck_assert_uint_eq(ps.connects, 1); /* the same connection, twice */
	ac_pool_free(pool);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("flow");
	TCase *t = tcase_create("pause");

	tcase_set_timeout(t, 60);
	tcase_add_test(t, a_pause_holds_back_frames_already_read);
	tcase_add_test(t, a_paused_connection_pushes_back_on_its_peer);
	tcase_add_test(t, silence_while_paused_is_not_idleness);
	tcase_add_test(t, pause_refuses_the_wrong_thread_and_a_closed_connection);
	suite_add_tcase(s, t);
	t = tcase_create("proxy");
	tcase_set_timeout(t, 180);
	tcase_add_test(t, a_proxy_relays_a_gigabyte_in_bounded_memory);
	tcase_add_test(t, without_the_pause_the_receiver_is_dropped_as_slow);
	suite_add_tcase(s, t);
	t = tcase_create("drain");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, a_drain_says_goodbye_and_refuses_newcomers);
	tcase_add_test(t, the_deadline_closes_what_is_left);
	tcase_add_test(t, without_goaway_a_drain_flushes_and_closes);
	tcase_add_test(t, drain_errors_and_a_stop_that_comes_first);
	tcase_add_test(t, pools_and_reconnects_end_with_a_drain);
	tcase_add_test(t, a_drain_stops_reconnects);
	tcase_add_test(t, a_pooled_connection_comes_back_reading);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return th_run(suite());
}
