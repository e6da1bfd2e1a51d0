/* test_connect.c: outbound connections: every way of naming the peer, every
 * way an attempt can fail (each reaching on_close once, never hanging), and
 * reconnect with a back-off that grows and stays within its bounds. */
#include "testhelp.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

START_TEST(connect_by_name_resolves_localhost_without_blocking)
{
	struct up u = {0};
	char addr[64];

	up_start(&u, 0);
	snprintf(addr, sizeof(addr), "localhost:%d", u.port);
	echo_round_trip(addr);
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

START_TEST(connect_refused_reaches_on_close_once_with_econnect)
{
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	char addr[64];
	ac_handle_t h;
	ac_stats_t st;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", up_free_port());
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
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

/* Fills the backlog of a listener that never accepts (struct up with
 * backlog_only): further SYNs are dropped, so a connect to it hangs. */
static void fill_backlog(int port, int fill[4])
{
	for (int i = 0; i < 4; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons((uint16_t)port)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50000);
}

START_TEST(connect_timeout_fires_when_the_peer_never_answers)
{
	/* A listener whose backlog is full drops further SYNs: the connect
	 * hangs until our timeout. */
	struct up u = {.backlog_only = 1};
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	int fill[4];
	char addr[64];
	ac_handle_t h;
	uint64_t t0;

	up_start(&u, 0);
	fill_backlog(u.port, fill);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", u.port);
	o.connect_timeout_ms = 300;
	t0 = th_now_ms();
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.opens, 0);
	ck_assert_int_eq(cl.reasons[0], AC_ETIMEDOUT);
	ck_assert_uint_ge(cl.close_ms[0] - t0, 290);
	ck_assert_uint_lt(cl.close_ms[0] - t0, 3000);
	ac_runtime_free(rt);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	up_stop(&u);
	th_assert_no_live_objects();
}
END_TEST

/* A DNS server that answers every query with NXDOMAIN ("no such name"). */
struct nxdomain {
	int fd, port;
	pthread_t thread;
	int64_t queries;
};

static void *nx_main(void *arg)
{
	struct nxdomain *d = arg;
	unsigned char q[512];

	for (;;) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(d->fd, q, sizeof(q), 0,
				     (struct sockaddr *)&from, &flen);
		if (n < 12)
			break; /* shutdown() ends the thread */
		q[2] |= 0x80;               /* QR: a response */
		q[3] = (q[3] & 0x70) | 0x83; /* RA, RCODE 3: NXDOMAIN */
		memset(q + 6, 0, 6);        /* no answer, authority, extra */
		sendto(d->fd, q, (size_t)n, 0, (struct sockaddr *)&from, flen);
		__atomic_fetch_add(&d->queries, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

START_TEST(unknown_name_reaches_on_close_with_ename)
{
	struct nxdomain d = {0};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	char conf[64], line[64];
	FILE *f;

	d.fd = socket(AF_INET, SOCK_DGRAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(d.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(d.fd, (struct sockaddr *)&a, &len);
	d.port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&d.thread, NULL, nx_main, &d), 0);
	snprintf(conf, sizeof(conf), "/tmp/ac-resolv-%d.conf", (int)getpid());
	snprintf(line, sizeof(line), "nameserver 127.0.0.1:%d\n", d.port);
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fputs(line, f);
	fclose(f);

	ac_runtime_t *rt = client_rt(1, conf);
	ac_conn_opts_t o = line_opts();
	ac_handle_t h;

	o.connect_timeout_ms = 5000;
	ck_assert_int_eq(ac_connect(rt, "no-such-host.invalid:80", &cl_cbs, &o,
				    NULL, &h),
			 0);
	ck_assert(th_wait_ge(&cl.closes, 1, 5000));
	ck_assert_int_eq(cl.opens, 0);
	ck_assert_int_eq(cl.reasons[0], AC_ENAME);
	ck_assert_int_ge(__atomic_load_n(&d.queries, __ATOMIC_RELAXED), 1);
	ac_runtime_free(rt);
	shutdown(d.fd, SHUT_RDWR);
	pthread_join(d.thread, NULL);
	close(d.fd);
	unlink(conf);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(reconnect_backoff_grows_and_stays_within_bounds)
{
	ac_runtime_t *rt = client_rt(1, NULL);
	ac_conn_opts_t o = line_opts();
	const unsigned lo = 20, hi = 160, attempts = 7;
	char addr[64];
	ac_handle_t h;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", up_free_port());
	o.reconnect_min_ms = lo;
	o.reconnect_max_ms = hi;
	o.reconnect_max_attempts = attempts;
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
	ck_assert(th_wait_ge(&cl.closes, attempts, 10000));
	usleep(hi * 2 * 1000);
	/* One on_close per attempt; every one but the last says another
	 * attempt follows; then the handle is stale. */
	ck_assert_int_eq(cl.closes, attempts);
	ck_assert_int_eq(cl.opens, 0);
	for (unsigned i = 0; i < attempts; i++) {
		ck_assert_int_eq(cl.reasons[i], -ECONNREFUSED);
		ck_assert_int_eq(cl.reconnecting[i], i + 1 < attempts);
	}
	ck_assert_int_eq(ac_send(rt, h, "x", 1), AC_ESTALE);
	/* The wait after failure n is drawn from [d/2, d], d = min(hi,
	 * lo * 2^(n-1)), and never below lo. The refusal itself takes well
	 * under a millisecond on loopback; allow 40 ms of scheduling. */
	for (unsigned n = 1; n < attempts; n++) {
		uint64_t d = lo << (n - 1), gap;
		if (d > hi)
			d = hi;
		uint64_t floor = d / 2 > lo ? d / 2 : lo;
		gap = cl.close_ms[n] - cl.close_ms[n - 1];
		ck_assert_msg(gap + 2 >= floor && gap <= d + 40,
			      "wait %u: %llu ms, expected [%llu, %llu]", n,
			      (unsigned long long)gap,
			      (unsigned long long)floor,
			      (unsigned long long)d);
	}
	/* It grows: the later waits are longer than the first. */
	ck_assert_uint_gt(cl.close_ms[attempts - 1] - cl.close_ms[attempts - 2],
			  cl.close_ms[1] - cl.close_ms[0]);
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
	char addr[64];
	ac_handle_t h;

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", up_free_port());
	o.reconnect_min_ms = 5000; /* a long wait to interrupt */
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h), 0);
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
	struct up u = {.backlog_only = 1};
	ac_runtime_t *rt = client_rt(2, NULL);
	ac_conn_opts_t o = line_opts();
	char addr[64];
	int fill[4];
	ac_handle_t h[8];

	up_start(&u, 0);
	fill_backlog(u.port, fill);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", u.port);
	o.reconnect_min_ms = 10;
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h[i]),
				 0);
	usleep(50000);
	ck_assert_int_eq(ac_runtime_stop(rt, 100), 0);
	ck_assert_int_eq(cl.closes, 8);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(cl.reasons[i], AC_ESHUTDOWN);
		ck_assert_int_eq(cl.reconnecting[i], 0);
	}
	ck_assert_int_eq(ac_connect(rt, addr, &cl_cbs, &o, NULL, &h[0]),
			 AC_ESHUTDOWN);
	ac_runtime_free(rt);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	up_stop(&u);
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
	ck_assert_int_eq(ac_loop_post(rt, 0, connect_from_loop, addr), 0);
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

int main(void)
{
	Suite *s = suite_create("connect");
	TCase *tc = tcase_create("connect");

	tcase_add_test(tc, connect_numeric_ipv4_echoes_and_closes_once);
	tcase_add_test(tc, connect_by_name_resolves_localhost_without_blocking);
	tcase_add_test(tc, connect_to_unix_and_ipv6_listeners);
	tcase_add_test(tc, connect_refused_reaches_on_close_once_with_econnect);
	tcase_add_test(tc, connect_timeout_fires_when_the_peer_never_answers);
	tcase_add_test(tc, unknown_name_reaches_on_close_with_ename);
	tcase_add_test(tc, reconnect_backoff_grows_and_stays_within_bounds);
	tcase_add_test(tc, reconnect_keeps_the_handle_across_a_server_restart);
	tcase_add_test(tc, closing_while_waiting_to_reconnect_is_final);
	tcase_add_test(tc,
		       stopping_the_runtime_ends_pending_connects_with_eshutdown);
	tcase_add_test(tc, connect_argument_and_thread_errors);
	suite_add_tcase(s, tc);
	return th_run(s);
}
