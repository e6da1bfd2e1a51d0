/* test_connect.c: outbound connections: every way of naming the peer, every
 * way an attempt can fail (each reaching on_close once, never hanging), and
 * reconnect with a back-off that grows and stays within its bounds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_timedjoin_np */
#endif
#include "testhelp.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* What the client side saw; one global per forked test. */
#define MAX_EVENTS 64
static struct {
	int64_t opens, closes, lines; /* atomic: events fully recorded */
	int64_t open_slot, close_slot; /* atomic: where the next one goes */
	int reasons[MAX_EVENTS];
	int reconnecting[MAX_EVENTS];
	uint64_t close_ms[MAX_EVENTS];
	ac_handle_t open_handles[MAX_EVENTS];
	int loops[MAX_EVENTS];
	const char *hello; /* written on open */
	int close_on_line; /* ac_conn_close after the first echoed line */
} cl;

/* Two loops may call back at once: each takes its own slot first, and
 * counts itself only once the slot is written. */
static void cl_open(ac_conn_t *c)
{
	int64_t i = __atomic_fetch_add(&cl.open_slot, 1, __ATOMIC_RELAXED);

	if (i < MAX_EVENTS) {
		cl.open_handles[i] = ac_conn_handle(c);
		cl.loops[i] = ac_loop_index();
	}
	if (cl.hello)
		ck_assert_int_eq(ac_conn_write(c, cl.hello, strlen(cl.hello)), 0);
	__atomic_fetch_add(&cl.opens, 1, __ATOMIC_RELEASE);
}

static void cl_frame(ac_conn_t *c, const void *data, size_t len)
{
	__atomic_fetch_add(&cl.lines, 1, __ATOMIC_RELEASE);
	if (cl.close_on_line)
		ac_conn_close(c, AC_CLOSE_FLUSH);
}

static void cl_close(ac_conn_t *c, int reason)
{
	int64_t i = __atomic_fetch_add(&cl.close_slot, 1, __ATOMIC_RELAXED);

	if (i < MAX_EVENTS) {
		cl.reasons[i] = reason;
		cl.reconnecting[i] = ac_conn_reconnecting(c);
		cl.close_ms[i] = th_now_ms();
	}
	/* Writes are refused from on_close on. */
	ck_assert_int_eq(ac_conn_write(c, "x", 1), AC_ESTATE);
	__atomic_fetch_add(&cl.closes, 1, __ATOMIC_RELEASE);
}

static const ac_conn_cbs_t cl_cbs = {
	.on_open = cl_open, .on_frame = cl_frame, .on_close = cl_close};

static ac_runtime_t *client_rt(int loops, const char *resolv_conf)
{
	ac_config_t cfg = {.loops = loops, .resolv_conf = resolv_conf};
	ac_runtime_t *rt = ac_runtime_new(&cfg);

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	return rt;
}

static ac_conn_opts_t line_opts(void)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	return o;
}

/* Connects to addr, says hello, expects the echo and closes: one open and
 * one close with reason 0, and the handle stale afterwards. */
static void echo_round_trip(const char *addr)
{
	ac_runtime_t *rt = client_rt(2, NULL);
	ac_conn_opts_t o = line_opts();
	ac_handle_t h;

	cl.hello = "hello\n";
	cl.close_on_line = 1;
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
	ck_assert(h != AC_HANDLE_NONE);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.opens, 1);
	ck_assert_int_eq(cl.lines, 1);
	ck_assert_int_eq(cl.reasons[0], 0);
	ck_assert_uint_eq(cl.open_handles[0], h);
	ck_assert_int_eq(ac_send(rt, h, "x", 1), AC_ESTALE);
	ac_runtime_free(rt);
}

START_TEST(connect_numeric_ipv4_echoes_and_closes_once)
{
	struct up u = {0};

	up_start(&u, 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", u.port);
	echo_round_trip(addr);
	up_stop(&u);
	th_assert_no_live_objects();
}
END_TEST

/*
 * A DNS server on loopback, for resolv_conf: it answers every A query with
 * 127.0.0.1 after delay_ms (AAAA: no address), or, with nxdomain, every
 * query with "no such name".
 */
struct fakedns {
	int fd, port;
	pthread_t thread;
	int delay_ms;
	int nxdomain;
	int64_t queries;
	char conf[64]; /* the resolv.conf that names it */
};

static void *dns_main(void *arg)
{
	struct fakedns *d = arg;
	unsigned char q[512];

	for (;;) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(d->fd, q, sizeof(q) - 16, 0,
				     (struct sockaddr *)&from, &flen);
		size_t end = 12;
		int qtype;

		if (n < 12)
			break; /* shutdown() ends the thread */
		__atomic_fetch_add(&d->queries, 1, __ATOMIC_RELAXED);
		while (end < (size_t)n && q[end]) /* the question's name */
			end += (size_t)q[end] + 1;
		if (end + 5 > (size_t)n)
			continue;
		qtype = q[end + 1] << 8 | q[end + 2];
		end += 5; /* root label, type, class */
		if (d->delay_ms)
			usleep((useconds_t)d->delay_ms * 1000);
		q[2] |= 0x80;              /* QR: a response */
		q[3] = (q[3] & 0x70) | 0x80; /* RA, RCODE 0 */
		memset(q + 6, 0, 6);       /* no answer, authority, extra */
		if (d->nxdomain) {
			q[3] |= 3; /* RCODE 3: no such name */
		} else if (qtype == 1) {
			static const unsigned char rr[16] = {
				0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
				127, 0, 0, 1}; /* the name above, A, IN, 60 s */
			memcpy(q + end, rr, sizeof(rr));
			end += sizeof(rr);
			q[7] = 1; /* one answer */
		}
		sendto(d->fd, q, end, 0, (struct sockaddr *)&from, flen);
	}
	return NULL;
}

static void dns_start(struct fakedns *d)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	FILE *f;

	d->fd = socket(AF_INET, SOCK_DGRAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(d->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(d->fd, (struct sockaddr *)&a, &len);
	d->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&d->thread, NULL, dns_main, d), 0);
	snprintf(d->conf, sizeof(d->conf), "/tmp/ac-resolv-%d.conf",
		 (int)getpid());
	ck_assert_ptr_nonnull(f = fopen(d->conf, "w"));
	fprintf(f, "nameserver 127.0.0.1:%d\n", d->port);
	fclose(f);
}

static void dns_stop(struct fakedns *d)
{
	shutdown(d->fd, SHUT_RDWR);
	pthread_join(d->thread, NULL);
	close(d->fd);
	unlink(d->conf);
}

static int64_t ticks;

static void tick(void *arg)
{
	__atomic_fetch_add(&ticks, 1, __ATOMIC_RELAXED);
}

static void start_ticking(void *arg)
{
	ck_assert_ptr_nonnull(ac_timer_start(arg, 10, 1, tick, NULL));
}

/*
 * The name is not in /etc/hosts: it goes to a DNS server that takes
 * 300 ms to answer. The loop that resolves it keeps running meanwhile
 * (a 10 ms timer on it ticks on), then the connection opens and echoes.
 * (Regression: this test used to resolve "localhost", which evdns answers
 * from /etc/hosts before it returns, so it proved nothing about blocking.)
 */
START_TEST(connect_by_name_resolves_without_blocking_the_loop)
{
	struct fakedns d = {.delay_ms = 300};
	struct up u = {0};
	ac_runtime_t *rt;
	ac_conn_opts_t o = line_opts();
	char addr[64];
	ac_handle_t h;
	int64_t before;

	up_start(&u, 0);
	dns_start(&d);
	rt = client_rt(1, d.conf);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), start_ticking, rt), 0);
	usleep(30000);
	snprintf(addr, sizeof(addr), "slow-name.test:%d", u.port);
	cl.hello = "hello\n";
	cl.close_on_line = 1;
	before = __atomic_load_n(&ticks, __ATOMIC_RELAXED);
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
	ck_assert(th_wait_ge(&cl.opens, 1, 5000));
	/* 300 ms of resolution at a 10 ms period, with slack for a busy
	 * machine: a blocked loop would have ticked once or twice. */
	ck_assert_int_ge(__atomic_load_n(&ticks, __ATOMIC_RELAXED) - before,
			 10);
	ck_assert_int_ge(__atomic_load_n(&d.queries, __ATOMIC_RELAXED), 1);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.lines, 1);
	ck_assert_int_eq(cl.reasons[0], 0);
	ac_runtime_free(rt);
	dns_stop(&d);
	up_stop(&u);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(connect_to_unix_and_ipv6_listeners)
{
	char path[64], addr[96];

	snprintf(path, sizeof(path), "/tmp/ac-connect-%d.sock", (int)getpid());
	unlink(path);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	th_server_start(1, addr, NULL);
	cl.hello = "unix\n";
	{
		ac_runtime_t *rt = client_rt(1, NULL);
		ac_conn_opts_t o = {.framing = AC_FRAME_RAW};
		ac_handle_t h;

		cl.close_on_line = 1;
		ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
		ck_assert(th_wait_ge(&cl.closes, 1, 5000));
		ck_assert_int_eq(cl.opens, 1);
		ck_assert_int_eq(cl.reasons[0], 0);
		ac_runtime_free(rt);
	}
	th_finish();

	/* IPv6 loopback, when the machine has it. */
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
				 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool v6 = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	if (!v6)
		return;
	memset(&cl, 0, sizeof(cl));
	th_server_start(1, "[::1]:0", NULL);
	snprintf(addr, sizeof(addr), "[::1]:%d", th_srv.port);
	cl.hello = "six\n";
	cl.close_on_line = 1;
	{
		ac_runtime_t *rt = client_rt(1, NULL);
		ac_conn_opts_t o = {.framing = AC_FRAME_RAW};
		ac_conn_info_t info;
		ac_handle_t h;

		ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
		ck_assert(th_wait_ge(&cl.opens, 1, 5000));
		if (ac_handle_info(rt, h, &info) == 0)
			ck_assert_int_eq(info.family, AF_INET6);
		ck_assert(th_wait_ge(&cl.closes, 1, 5000));
		ck_assert_int_eq(cl.reasons[0], 0);
		ac_runtime_free(rt);
	}
	th_finish();
}
END_TEST

/* ac_connect to a loopback port where nothing listens: every attempt is
 * refused. Returns the handle. */
static ac_handle_t connect_refused(ac_runtime_t *rt, const ac_conn_opts_t *o)
{
	char addr[64];
	ac_handle_t h;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", up_free_port());
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, o, NULL, &h), 0);
	return h;
}

START_TEST(connect_refused_reaches_on_close_once_with_econnect)
{
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	ac_handle_t h = connect_refused(rt, &o);
	ac_stats_t st;

	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	usleep(50000);
	ck_assert_int_eq(cl.closes, 1);
	ck_assert_int_eq(cl.opens, 0);
	ck_assert_int_eq(cl.reasons[0], -ECONNREFUSED); /* the errno itself */
	ck_assert_int_eq(cl.reconnecting[0], 0);
	ck_assert_int_eq(ac_send(rt, h, "x", 1), AC_ESTALE);
	ac_stats(rt, &st, NULL, 0);
	ck_assert_uint_eq(st.closed[AC_CR_CONNECT], 1);
	ck_assert_uint_eq(st.connected, 0);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* A peer that never answers: a listener that never accepts, its backlog
 * filled, so that further SYNs are dropped and a connect to it hangs. */
struct silent_peer {
	struct up u;
	int fill[4];
	char addr[64];
};

static void silent_start(struct silent_peer *p)
{
	p->u = (struct up){.backlog_only = 1};
	up_start(&p->u, 0);
	for (int i = 0; i < 4; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons((uint16_t)p->u.port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		p->fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(p->fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50000);
	snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%d", p->u.port);
}

static void silent_stop(struct silent_peer *p)
{
	for (int i = 0; i < 4; i++)
		close(p->fill[i]);
	up_stop(&p->u);
}

START_TEST(connect_timeout_fires_when_the_peer_never_answers)
{
	/* The connect hangs until our timeout. */
	struct silent_peer p;
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	ac_handle_t h;
	uint64_t t0;

	silent_start(&p);
	o.connect_timeout_ms = 300;
	t0 = th_now_ms();
	ck_assert_int_eq(ac_connect(rt, p.addr, &cl_cbs, &o, NULL, &h), 0);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.opens, 0);
	ck_assert_int_eq(cl.reasons[0], AC_ETIMEDOUT);
	ck_assert_uint_ge(cl.close_ms[0] - t0, 290);
	ck_assert_uint_lt(cl.close_ms[0] - t0, 3000);
	ac_runtime_free(rt);
	silent_stop(&p);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(unknown_name_reaches_on_close_with_ename)
{
	struct fakedns d = {.nxdomain = 1};
	ac_runtime_t *rt;
	ac_conn_opts_t o = line_opts();
	ac_handle_t h;

	dns_start(&d);
	rt = client_rt(1, d.conf);
	o.connect_timeout_ms = 5000;
	ck_assert_int_eq(ac_connect(rt, "no-such-host.invalid:80", &cl_cbs, &o,
				    NULL, &h),
			 0);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.opens, 0);
	ck_assert_int_eq(cl.reasons[0], AC_ENAME);
	ck_assert_int_ge(__atomic_load_n(&d.queries, __ATOMIC_RELAXED), 1);
	ac_runtime_free(rt);
	dns_stop(&d);
	th_assert_no_live_objects();
}
END_TEST

/*
 * The back-off is a pure function of (min, max, failures) and the loop's
 * jitter state, so its bounds are checked on it directly, over many
 * draws, not against wall-clock windows on a shared machine: after n
 * failures d = min(max, min * 2^(n-1)), and the wait is drawn from
 * [d/2, d], never below min.
 */
START_TEST(backoff_draws_stay_within_bounds_and_grow)
{
	ac__loop_t *loop = aligned_alloc(AC__CACHELINE, sizeof(*loop));
	const unsigned lo = 20, hi = 1000;
	double prev_mean = 0;

	ck_assert_ptr_nonnull(loop);
	memset(loop, 0, sizeof(*loop));
	for (unsigned n = 1; n <= 10; n++) {
		uint64_t d = lo, sum = 0;
		unsigned least = ~0u, most = 0;

		for (unsigned i = 1; i < n && d < hi; i++)
			d <<= 1;
		if (d > hi)
			d = hi;
		for (int k = 0; k < 2000; k++) {
			unsigned w = ac__backoff_ms(loop, lo, hi, n);

			ck_assert_uint_ge(w, lo);
			ck_assert_uint_ge(w, d / 2);
			ck_assert_uint_le(w, d);
			least = w < least ? w : least;
			most = w > most ? w : most;
			sum += w;
		}
		/* Jittered: the draws spread over most of [max(d/2, min),
		 * d] (for n = 1 that is the single value min). */
		if (d / 2 >= lo) {
			ck_assert_uint_le(least, d / 2 + d / 8);
			ck_assert_uint_ge(most, d - d / 8);
		}
		/* Growing until the cap; level after it. */
		if (d < hi)
			ck_assert(sum / 2000.0 > prev_mean * 1.5);
		prev_mean = sum / 2000.0;
	}
	/* min == max: always exactly that. */
	for (int k = 0; k < 100; k++)
		ck_assert_uint_eq(ac__backoff_ms(loop, 50, 50, 3), 50);
	free(loop);
}
END_TEST

/* The policy, end to end: one on_close per failed attempt, every one but
 * the last saying another follows, then the handle is stale. */
START_TEST(reconnect_gives_up_after_max_attempts)
{
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	const unsigned attempts = 5;
	ac_handle_t h;

	o.reconnect_min_ms = 5;
	o.reconnect_max_ms = 20;
	o.reconnect_max_attempts = attempts;
	h = connect_refused(rt, &o);
	ck_assert(th_wait_ge(&cl.closes, attempts, 10000));
	usleep(100000); /* no further attempt comes */
	ck_assert_int_eq(cl.closes, attempts);
	ck_assert_int_eq(cl.opens, 0);
	for (unsigned i = 0; i < attempts; i++) {
		ck_assert_int_eq(cl.reasons[i], -ECONNREFUSED);
		ck_assert_int_eq(cl.reconnecting[i], i + 1 < attempts);
		if (i)
			ck_assert_uint_ge(cl.close_ms[i], cl.close_ms[i - 1]);
	}
	ck_assert_int_eq(ac_send(rt, h, "x", 1), AC_ESTALE);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

static bool up_open_ge1(void *u)
{
	return __atomic_load_n(&((struct up *)u)->open, __ATOMIC_RELAXED) >= 1;
}

START_TEST(reconnect_keeps_the_handle_across_a_server_restart)
{
	struct up u = {0};
	ac_runtime_t *rt = client_rt(2, NULL);
	ac_conn_opts_t o = line_opts();
	char addr[64];
	ac_handle_t h;
	ac_debug_counts_t dc;

	up_start(&u, 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", u.port);
	o.reconnect_min_ms = 10;
	o.reconnect_max_ms = 50;
	o.loop = AC_LOOP(1);
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
	ck_assert_int_eq(AC_HANDLE_LOOP(h), 1);
	ck_assert(th_wait_ge(&cl.opens, 1, 5000));
	ck_assert(th_wait(up_open_ge1, &u, 5000));
	ck_assert_int_eq(ac_send(rt, h, "one\n", 4), 0);
	ck_assert(th_wait_ge(&cl.lines, 1, 5000));

	/* The back end goes away: EOF, then refusals while it is down. */
	up_stop(&u);
	ck_assert(th_wait_ge(&cl.closes, 3, 5000));
	ck_assert_int_eq(cl.reasons[0], AC_EEOF);
	ck_assert_int_eq(cl.reconnecting[0], 1);
	ck_assert_int_eq(cl.reasons[1], -ECONNREFUSED);
	/* Meanwhile the handle is still live, and sends are dropped. */
	ac_debug_counts(&dc);
	int64_t dropped = dc.dropped;
	ck_assert_int_eq(ac_send(rt, h, "lost\n", 5), 0);
	usleep(20000);
	ac_debug_counts(&dc);
	ck_assert_int_eq(dc.dropped, dropped + 1);

	/* It comes back on the same port: same handle, a new on_open. */
	up_start(&u, u.port);
	ck_assert(th_wait_ge(&cl.opens, 2, 5000));
	ck_assert_uint_eq(cl.open_handles[1], h);
	ck_assert_int_eq(cl.loops[0], 1);
	ck_assert_int_eq(cl.loops[1], 1);
	ck_assert_int_eq(ac_send(rt, h, "two\n", 4), 0);
	ck_assert(th_wait_ge(&cl.lines, 2, 5000));

	/* Closing it by handle is final. */
	int64_t before = __atomic_load_n(&cl.closes, __ATOMIC_ACQUIRE);
	ck_assert_int_eq(ac_close(rt, h, AC_CLOSE_FLUSH), 0);
	ck_assert(th_wait_ge(&cl.closes, before + 1, 5000));
	ck_assert_int_eq(cl.reasons[before], 0);
	ck_assert_int_eq(cl.reconnecting[before], 0);
	ck_assert_int_eq(ac_send(rt, h, "x", 1), AC_ESTALE);
	ac_runtime_free(rt);
	up_stop(&u);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(closing_while_waiting_to_reconnect_is_final)
{
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	ac_handle_t h;

	o.reconnect_min_ms = 5000; /* a long wait to interrupt */
	h = connect_refused(rt, &o);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.reconnecting[0], 1);
	ck_assert_int_eq(ac_close(rt, h, AC_CLOSE_ABORT), 0);
	ck_assert(th_wait_ge(&cl.closes, 2, 2000));
	ck_assert_int_eq(cl.reasons[1], 0);
	ck_assert_int_eq(cl.reconnecting[1], 0);
	ck_assert_int_eq(ac_close(rt, h, AC_CLOSE_ABORT), AC_ESTALE);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(stopping_the_runtime_ends_pending_connects_with_eshutdown)
{
	struct silent_peer p;
	ac_runtime_t *rt = client_rt(2, NULL);
	ac_conn_opts_t o = line_opts();
	ac_handle_t h[8];

	silent_start(&p);
	o.reconnect_min_ms = 10;
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(ac_connect(rt, p.addr, &cl_cbs, &o, NULL,
					    &h[i]),
				 0);
	usleep(50000);
	ck_assert_int_eq(ac_runtime_stop(rt, 100), 0);
	ck_assert_int_eq(cl.closes, 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(cl.reasons[i], AC_ESHUTDOWN);
		ck_assert_int_eq(cl.reconnecting[i], 0);
	}
	ck_assert_int_eq(ac_connect(rt, p.addr, &cl_cbs, &o, NULL, &h[0]),
			 AC_ESHUTDOWN);
	ac_runtime_free(rt);
	silent_stop(&p);
	th_assert_no_live_objects();
}
END_TEST

static ac_runtime_t *g_rt;
static int64_t g_done;
static int g_err_other, g_err_self;

static void connect_from_loop(void *arg)
{
	ac_conn_opts_t o = line_opts();
	ac_handle_t h;

	/* Loop 0 may not create loop 1's connections... */
	o.loop = AC_LOOP(1);
	g_err_other = ac_connect(g_rt, (const char *)arg, &cl_cbs, &o, NULL, &h);
	/* ...but its own, by default. */
	o.loop = 0;
	g_err_self = ac_connect(g_rt, (const char *)arg, &cl_cbs, &o, NULL, &h);
	if (g_err_self == 0 && AC_HANDLE_LOOP(h) != 0)
		g_err_self = -999;
	__atomic_store_n(&g_done, 1, __ATOMIC_RELEASE);
}

START_TEST(connect_argument_and_thread_errors)
{
	ac_config_t cfg = {.loops = 2};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	ac_conn_opts_t o = line_opts();
	static char addr[64];
	ac_handle_t h = 1;
	struct up u = {0};

	/* Before start: not yet. */
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cl_cbs, &o, NULL, &h),
			 AC_ESTATE);
	ck_assert_uint_eq(h, AC_HANDLE_NONE);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_connect(NULL, "127.0.0.1:1", &cl_cbs, &o, NULL, &h),
			 AC_EINVAL);
	ck_assert_int_eq(ac_connect(rt, NULL, &cl_cbs, &o, NULL, &h), AC_EINVAL);
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1", &cl_cbs, &o, NULL, &h),
			 AC_EADDR);
	ck_assert_int_eq(ac_connect(rt, "[::1:80", &cl_cbs, &o, NULL, &h),
			 AC_EADDR);
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:99999", &cl_cbs, &o, NULL,
				    &h),
			 AC_EADDR);
	o.loop = AC_LOOP(2); /* only loops 0 and 1 */
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cl_cbs, &o, NULL, &h),
			 AC_EINVAL);
	o.loop = 0;
	o.framing = 99;
	ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cl_cbs, &o, NULL, &h),
			 AC_EINVAL);
	usleep(20000);
	ck_assert_int_eq(cl.closes, 0); /* no error ever calls back */

	up_start(&u, 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", u.port);
	g_rt = rt;
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), connect_from_loop, addr), 0);
	ck_assert(th_wait_ge(&g_done, 1, 5000));
	ck_assert_int_eq(g_err_other, AC_ETHREAD);
	ck_assert_int_eq(g_err_self, 0);
	ck_assert(th_wait_ge(&cl.opens, 1, 5000));
	ac_runtime_free(rt);
	ck_assert_int_eq(cl.closes, 1);
	ck_assert_int_eq(cl.reasons[0], AC_ESHUTDOWN);
	up_stop(&u);
	th_assert_no_live_objects();
}
END_TEST

/* ---- facts read while they change ---------------------------------------------
 *
 * Regression: an outbound connection rewrote its peer and opened time on
 * each reconnect with plain stores while other threads copied them under
 * a pin (ThreadSanitizer: data race in ac_handle_info). They are now
 * written and read under a sequence count, with atomic words.
 */
static void hang_up(ac_conn_t *c)
{
	ac_conn_close(c, AC_CLOSE_ABORT);
}

struct info_reader {
	ac_runtime_t *rt;
	ac_handle_t h;
	char want[64];
	int stop;
	int64_t reads;
};

static void *read_info(void *arg)
{
	struct info_reader *r = arg;
	uint64_t last = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		ac_conn_info_t in;
		int err = ac_handle_info(r->rt, r->h, &in);

		if (err == AC_ESTALE)
			break;
		ck_assert_int_eq(err, 0);
		/* The numeric peer is known from the start and never torn. */
		ck_assert_str_eq(in.peer_str, r->want);
		ck_assert_int_eq(in.family, AF_INET);
		ck_assert_uint_ge(in.opened_ms, last);
		last = in.opened_ms;
		__atomic_fetch_add(&r->reads, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

START_TEST(handle_info_while_an_outbound_connection_reconnects_reads_one_attempt)
{
	struct info_reader r = {0};
	ac_conn_opts_t o = {.framing = AC_FRAME_RAW,
			    .reconnect_min_ms = 1,
			    .reconnect_max_ms = 2};
	pthread_t t;
	char addr[64];

	th_srv.on_open = hang_up; /* every attempt opens, then ends */
	th_server_start(1, "127.0.0.1:0", NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_srv.port);
	snprintf(r.want, sizeof(r.want), "127.0.0.1:%d", th_srv.port);
	r.rt = client_rt(2, NULL);
	ck_assert_int_eq(ac_connect(r.rt, addr, &cl_cbs, &o, NULL, &r.h), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, read_info, &r), 0);
	ck_assert(th_wait_ge(&cl.opens, 20, 10000)); /* 20 attempts */
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	ck_assert_int_gt(r.reads, 0);
	ac_runtime_free(r.rt);
	th_finish();
}
END_TEST

/* ---- a control thread's ac_connect racing the stop ------------------------------
 *
 * Regression: a request posted just as the runtime stopped could land in a
 * mailbox after the stop had settled it; ac_connect then waited for a
 * reply that only ac_runtime_free would produce, and a caller that frees
 * the runtime after joining its threads waited for ever. Now the caller
 * gives up with AC_ESHUTDOWN once the runtime is stopped. The window is a
 * few instructions wide, so this stresses it many times, bounded in time;
 * every ac_connect must return within 5 s of the stop.
 */
static ac_runtime_t *race_rt;

static void *connect_until_shutdown(void *arg)
{
	ac_conn_cbs_t cbs = {0};

	for (;;) {
		ac_handle_t h;
		int err = ac_connect(race_rt, "127.0.0.1:1", &cbs, NULL, NULL, &h);

		if (err == AC_ESHUTDOWN)
			break;
		ck_assert_msg(err == 0 || err == AC_EAGAIN, "%s",
			      ac_err_name(err));
	}
	return NULL;
}

START_TEST(connect_racing_stop_always_returns)
{
	uint64_t deadline = th_now_ms() + 8000;

	for (int round = 0; round < 300 && th_now_ms() < deadline; round++) {
		pthread_t t[3];
		struct timespec ts;

		race_rt = ac_runtime_new(&(ac_config_t){.loops = 1});
		ck_assert_ptr_nonnull(race_rt);
		ck_assert_int_eq(ac_runtime_start(race_rt), 0);
		for (int k = 0; k < 3; k++)
			pthread_create(&t[k], NULL, connect_until_shutdown, NULL);
		usleep((useconds_t)(round % 5) * 200);
		ck_assert_int_eq(ac_runtime_stop(race_rt, 0), 0);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		for (int k = 0; k < 3; k++)
			ck_assert_msg(pthread_timedjoin_np(t[k], NULL, &ts) == 0,
				      "ac_connect still waiting 5 s after the "
				      "stop (round %d)",
				      round);
		ck_assert_int_eq(ac_runtime_free(race_rt), 0);
	}
	th_assert_no_live_objects();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("connect");
	TCase *tc = tcase_create("connect");

	tcase_add_test(tc, connect_numeric_ipv4_echoes_and_closes_once);
	tcase_add_test(tc, connect_by_name_resolves_without_blocking_the_loop);
	tcase_add_test(tc, connect_to_unix_and_ipv6_listeners);
	tcase_add_test(tc, connect_refused_reaches_on_close_once_with_econnect);
	tcase_add_test(tc, connect_timeout_fires_when_the_peer_never_answers);
	tcase_add_test(tc, unknown_name_reaches_on_close_with_ename);
	tcase_add_test(tc, backoff_draws_stay_within_bounds_and_grow);
	tcase_add_test(tc, reconnect_gives_up_after_max_attempts);
	tcase_add_test(tc, reconnect_keeps_the_handle_across_a_server_restart);
	tcase_add_test(tc, closing_while_waiting_to_reconnect_is_final);
	tcase_add_test(tc,
		       stopping_the_runtime_ends_pending_connects_with_eshutdown);
	tcase_add_test(tc, connect_argument_and_thread_errors);
	tcase_add_test(tc,
		       handle_info_while_an_outbound_connection_reconnects_reads_one_attempt);
	tcase_add_test(tc, connect_racing_stop_always_returns);
	suite_add_tcase(s, tc);
	return th_run(s);
}
