/*
 * test_bridge.c: groups across nodes through Redis (ac_bridge_*).
 *
 * A "node" here is a runtime of its own with a listener whose
 * connections join the node's bridged group; two of them in one process
 * behave as two machines do, since nothing is shared between runtimes
 * but Redis. The tests start their own redis-server processes on free
 * loopback ports (Debian's redis-server package; the README's quick start
 * installs it), and look at Redis itself (PUBSUB NUMSUB, SHARDNUMSUB) to
 * see what the nodes subscribed.
 */
#define _GNU_SOURCE /* memmem */
#include "testhelp.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- redis-server, started and spoken to ---------------------------------- */

struct redis {
	pid_t pid;
	int port;
	char dir[64];
	const char *tls; /* a directory of tls_certs.sh's: serve TLS only */
};

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Whether port is free on loopback now. */
static bool port_free(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* A cluster node also listens on port + 10000 (its bus), which must be a
 * port too: drawn from 20000..29999, both free. */
static int cluster_port(void)
{
	for (int i = 0; i < 1000; i++) {
		int p = 20000 + (int)(random() % 10000);

		if (port_free(p) && port_free(p + 10000))
			return p;
	}
	ck_abort_msg("no free port pair for a cluster node");
	return -1;
}

static int dial(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Starts redis-server on r->port (chosen now unless set) in a directory
 * of its own; cluster makes it a cluster node. Returns when it answers. */
static void redis_start(struct redis *r, bool cluster)
{
	char port[16];

	if (!r->port)
		r->port = free_port();
	if (!r->dir[0]) {
		snprintf(r->dir, sizeof(r->dir), "/tmp/ac-bridge-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(r->dir));
	}
	snprintf(port, sizeof(port), "%d", r->port);
	r->pid = fork();
	ck_assert_int_ge(r->pid, 0);
	if (r->pid == 0) {
		if (chdir(r->dir))
			_exit(127);
		if (r->tls) {
			char cert[160], key[160], ca[160];

			snprintf(cert, sizeof(cert), "%s/server.pem", r->tls);
			snprintf(key, sizeof(key), "%s/server.key", r->tls);
			snprintf(ca, sizeof(ca), "%s/ca.pem", r->tls);
			execlp("redis-server", "redis-server", "--port", "0",
			       "--tls-port", port, "--tls-cert-file", cert,
			       "--tls-key-file", key, "--tls-ca-cert-file", ca,
			       "--tls-auth-clients", "no", "--bind",
			       "127.0.0.1", "--save", "", "--appendonly", "no",
			       "--logfile", "redis.log", (char *)NULL);
		}
		if (cluster)
			execlp("redis-server", "redis-server", "--port", port,
			       "--bind", "127.0.0.1", "--save", "",
			       "--appendonly", "no", "--logfile", "redis.log",
			       "--cluster-enabled", "yes",
			       "--cluster-config-file", "nodes.conf",
			       "--cluster-node-timeout", "1000",
			       (char *)NULL);
		else
			execlp("redis-server", "redis-server", "--port", port,
			       "--bind", "127.0.0.1", "--save", "",
			       "--appendonly", "no", "--logfile", "redis.log",
			       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int fd = dial(r->port);

		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	ck_abort_msg("redis-server did not start on port %d", r->port);
}

static void redis_kill(struct redis *r)
{
	if (r->pid > 0) {
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
	}
}

static void redis_remove(struct redis *r)
{
	char cmd[128];

	redis_kill(r);
	if (r->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", r->dir);
		ck_assert_int_eq(system(cmd), 0);
	}
}

/* Reads one RESP reply from fd into buf (whole, as text); its length. */
static size_t resp_read(int fd, char *buf, size_t cap);

static bool resp_complete(const char *p, size_t n, size_t *used)
{
	const char *end = memmem(p, n, "\r\n", 2);
	long long v;

	if (!end)
		return false;
	v = atoll(p + 1);
	*used = (size_t)(end - p) + 2;
	if (p[0] == '$') {
		if (v < 0)
			return true;
		*used += (size_t)v + 2;
		return *used <= n;
	}
	if (p[0] == '*') {
		for (long long i = 0; i < v; i++) {
			size_t u;

			if (!resp_complete(p + *used, n - *used, &u))
				return false;
			*used += u;
		}
	}
	return true;
}

static size_t resp_read(int fd, char *buf, size_t cap)
{
	size_t n = 0, used;

	while (!(n && resp_complete(buf, n, &used))) {
		struct pollfd pfd = {fd, POLLIN, 0};
		ssize_t k;

		ck_assert_msg(poll(&pfd, 1, 5000) == 1, "no reply from Redis");
		k = read(fd, buf + n, cap - n - 1);
		ck_assert_int_gt(k, 0);
		n += (size_t)k;
	}
	buf[n] = '\0';
	return n;
}

/* Sends the command (words separated by spaces) to Redis at port; the
 * reply's text in buf. */
static void redis_cmd(int port, char *buf, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void redis_cmd(int port, char *buf, size_t cap, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int fd = dial(port), n;

	ck_assert_int_ge(fd, 0);
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	memcpy(line + n, "\r\n", 2);
	ck_assert(th_send_all(fd, line, (size_t)n + 2));
	resp_read(fd, buf, cap);
	close(fd);
}

/* The subscriber count Redis has for channel ch (NUMSUB, or SHARDNUMSUB
 * with shard set): the last integer of the reply. */
static long numsub(int port, const char *ch, bool shard)
{
	char buf[512];
	const char *colon;

	redis_cmd(port, buf, sizeof(buf), "PUBSUB %s %s",
		  shard ? "SHARDNUMSUB" : "NUMSUB", ch);
	colon = strrchr(buf, ':');
	ck_assert_ptr_nonnull(colon);
	return atol(colon + 1);
}

/* ---- nodes ---------------------------------------------------------------- */

struct node {
	ac_runtime_t *rt;
	ac_listener_t *l;
	ac_group_t *g;
	ac_bridge_t *br;
	int port;
};

/* Members join on open and leave when they send "leave". */
static void member_open(ac_conn_t *c)
{
	struct node *n = ac_conn_data(c);

	ck_assert_int_eq(ac_group_join(n->g, c), 0);
}

static void member_frame(ac_conn_t *c, const void *data, size_t len)
{
	struct node *n = ac_conn_data(c);

	if (len == 5 && !memcmp(data, "leave", 5))
		ck_assert_int_eq(ac_group_leave(n->g, c), 0);
}

static const ac_conn_cbs_t member_cbs = {.on_open = member_open,
					 .on_frame = member_frame};

static char url[128];

/* A node of two loops whose group is bridged to chan through url, with
 * the bridge options bo (NULL: quick reconnects). */
static void node_start_with(struct node *n, const char *chan,
			    const ac_bridge_opts_t *opts)
{
	ac_config_t cfg = {.loops = 2};
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	ac_bridge_opts_t bo = {.retry_min_ms = 50, .retry_max_ms = 200};

	if (opts)
		bo = *opts;
	ck_assert_ptr_nonnull(n->rt = ac_runtime_new(&cfg));
	ck_assert_ptr_nonnull(n->g = ac_group_new(n->rt));
	ck_assert_int_eq(ac_bridge_new(n->rt, url, &bo, &n->br), 0);
	ck_assert_int_eq(ac_group_bridge(n->g, n->br, chan, strlen(chan)), 0);
	ck_assert_int_eq(ac_runtime_start(n->rt), 0);
	ck_assert_int_eq(ac_listen(n->rt, "127.0.0.1:0", &member_cbs, &o, n,
				   &n->l), 0);
	n->port = ac_listener_port(n->l);
}

static void node_start(struct node *n, const char *chan)
{
	node_start_with(n, chan, NULL);
}

static void node_stop(struct node *n)
{
	ac_group_free(n->g);
	ac_bridge_free(n->br);
	ck_assert_int_eq(ac_runtime_stop(n->rt, 1000), 0);
	ck_assert_int_eq(ac_runtime_free(n->rt), 0);
}

static bool size_is(struct node *n, size_t want)
{
	for (int i = 0; i < 500; i++) {
		if (ac_group_size(n->g) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* Waits until the bridge's figure at offset reaches want. */
#define STAT_GE(br, field, want) stat_ge(br, offsetof(ac_bridge_stats_t, field), want)

static bool stat_ge(ac_bridge_t *br, size_t off, uint64_t want)
{
	for (int i = 0; i < 1000; i++) {
		ac_bridge_stats_t st;

		ck_assert_int_eq(ac_bridge_stats(br, &st), 0);
		if (*(uint64_t *)((char *)&st + off) >= want)
			return true;
		usleep(10000);
	}
	return false;
}

static bool numsub_is(int port, const char *ch, bool shard, long want)
{
	for (int i = 0; i < 500; i++) {
		if (numsub(port, ch, shard) == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* Reads a line from fd within ms; false on timeout. */
static bool read_line(int fd, char *buf, size_t cap, int ms)
{
	size_t n = 0;

	while (n < cap - 1) {
		struct pollfd pfd = {fd, POLLIN, 0};
		char c;

		if (poll(&pfd, 1, ms) != 1 || read(fd, &c, 1) != 1)
			return false;
		if (c == '\n') {
			buf[n] = '\0';
			return true;
		}
		buf[n++] = c;
	}
	return false;
}

struct pubarg {
	struct node *n;
	const char *tag;
	int from, count;
	int pace_us; /* a pause after every 10 publishes; 0: none */
};

static void *publish_range(void *arg)
{
	struct pubarg *p = arg;
	char msg[64];

	for (int i = p->from; i < p->from + p->count; i++) {
		int len = snprintf(msg, sizeof(msg), "%s %d\n", p->tag, i);
		ac_buf_t *b = ac_buf_new(msg, (size_t)len);

		ck_assert_int_ge(ac_group_publish(p->n->g, b), 0);
		ac_buf_unref(b);
		if (p->pace_us && i % 10 == 9)
			usleep((useconds_t)p->pace_us);
	}
	return NULL;
}

/* Reads lines from fd until want[] of each tag arrived (or a timeout):
 * each tag's numbers must come once each, in order, starting at start[]. */
static void expect_in_order(int fd, const char *const *tags, const int *start,
			    const int *count, int ntags)
{
	int next[4];
	int left = 0;
	char line[64];

	for (int t = 0; t < ntags; t++) {
		next[t] = start[t];
		left += count[t];
	}
	while (left > 0) {
		char tag[16];
		int seq, t;

		ck_assert_msg(read_line(fd, line, sizeof(line), 5000),
			      "%d messages missing", left);
		ck_assert_int_eq(sscanf(line, "%15s %d", tag, &seq), 2);
		for (t = 0; t < ntags && strcmp(tag, tags[t]); t++)
			;
		ck_assert_int_lt(t, ntags);
		ck_assert_msg(seq == next[t], "%s: got %d, expected %d", tag,
			      seq, next[t]);
		next[t]++;
		left--;
	}
}

static void expect_silence(int fd, int ms)
{
	char line[64];

	ck_assert_msg(!read_line(fd, line, sizeof(line), ms),
		      "unexpected message '%s'", line);
}

/* ---- tests ---------------------------------------------------------------- */

static struct redis R;

static void redis_setup(void)
{
	memset(&R, 0, sizeof(R));
	redis_start(&R, false);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", R.port);
}

static void redis_teardown(void)
{
	redis_remove(&R);
}

#define PER_NODE 3
#define N_MSG 500

START_TEST(publish_reaches_members_on_every_node_once_in_publisher_order)
{
	struct node a = {0}, b = {0};
	int fa[PER_NODE], fb[PER_NODE];
	struct pubarg pa = {&a, "A", 0, N_MSG}, pb = {&b, "B", 0, N_MSG};
	const char *tags[] = {"A", "B"};
	const int start[] = {0, 0}, count[] = {N_MSG, N_MSG};
	pthread_t ta, tb;
	ac_bridge_stats_t st;

	node_start(&a, "room");
	node_start(&b, "room");
	for (int i = 0; i < PER_NODE; i++) {
		fa[i] = th_connect_tcp("127.0.0.1", a.port);
		fb[i] = th_connect_tcp("127.0.0.1", b.port);
	}
	ck_assert(size_is(&a, PER_NODE) && size_is(&b, PER_NODE));
	/* One Redis subscription per node, however many members. */
	ck_assert(numsub_is(R.port, "room", false, 2));

	pthread_create(&ta, NULL, publish_range, &pa);
	pthread_create(&tb, NULL, publish_range, &pb);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	for (int i = 0; i < PER_NODE; i++) {
		expect_in_order(fa[i], tags, start, count, 2);
		expect_in_order(fb[i], tags, start, count, 2);
	}
	for (int i = 0; i < PER_NODE; i++) {
		expect_silence(fa[i], i ? 0 : 300);
		expect_silence(fb[i], 0);
	}
	/* Each node saw its own publishes come back, and skipped them. */
	ck_assert(STAT_GE(a.br, own_skipped, N_MSG));
	ck_assert_int_eq(ac_bridge_stats(a.br, &st), 0);
	ck_assert_uint_eq(st.mode, AC_BRIDGE_SINGLE);
	ck_assert_uint_eq(st.published, N_MSG);
	ck_assert_uint_eq(st.received, N_MSG);
	ck_assert_uint_eq(st.own_skipped, N_MSG);
	ck_assert_uint_eq(st.dropped_down + st.dropped_full, 0);
	ck_assert_uint_eq(st.channels, 1);
	for (int i = 0; i < PER_NODE; i++) {
		close(fa[i]);
		close(fb[i]);
	}
	node_stop(&a);
	node_stop(&b);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(node_is_subscribed_only_while_it_has_members)
{
	struct node a = {0};
	int f1, f2;

	node_start(&a, "lobby");
	ck_assert(STAT_GE(a.br, links_up, 2));
	usleep(100000);
	ck_assert_int_eq(numsub(R.port, "lobby", false), 0);

	f1 = th_connect_tcp("127.0.0.1", a.port);
	ck_assert(numsub_is(R.port, "lobby", false, 1));
	f2 = th_connect_tcp("127.0.0.1", a.port);
	ck_assert(size_is(&a, 2));
	usleep(100000);
	ck_assert_int_eq(numsub(R.port, "lobby", false), 1);

	th_write_all(f1, "leave\n", 6);
	ck_assert(size_is(&a, 1));
	usleep(100000);
	ck_assert_int_eq(numsub(R.port, "lobby", false), 1);
	close(f2); /* the last member goes by closing */
	ck_assert(size_is(&a, 0));
	ck_assert(numsub_is(R.port, "lobby", false, 0));
	close(f1);
	node_stop(&a);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(redis_restart_local_delivery_goes_on_remote_resumes_no_duplicates)
{
	struct node a = {0}, b = {0};
	struct pubarg p1 = {&a, "A", 0, 100}, p2 = {&a, "A", 100, 100},
		      p3 = {&a, "A", 200, 100};
	const char *tags[] = {"A"};
	int fa, fb, start[1], count[1] = {100};
	ac_bridge_stats_t st;

	node_start(&a, "news");
	node_start(&b, "news");
	fa = th_connect_tcp("127.0.0.1", a.port);
	fb = th_connect_tcp("127.0.0.1", b.port);
	ck_assert(numsub_is(R.port, "news", false, 2));
	publish_range(&p1);
	start[0] = 0;
	expect_in_order(fa, tags, start, count, 1);
	expect_in_order(fb, tags, start, count, 1);

	/* Redis goes away: A's own members still get A's publishes; B's
	 * do not, and A counts what it could not send. */
	redis_kill(&R);
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(ac_bridge_stats(a.br, &st), 0);
		if (st.links_up == 0)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(st.links_up, 0);
	publish_range(&p2);
	start[0] = 100;
	expect_in_order(fa, tags, start, count, 1);
	ck_assert(STAT_GE(a.br, dropped_down, 100));
	expect_silence(fb, 300);

	/* Back on the same port: both nodes reconnect and subscribe again;
	 * what was dropped stays dropped, nothing comes twice. */
	redis_start(&R, false);
	ck_assert(numsub_is(R.port, "news", false, 2));
	ck_assert(STAT_GE(a.br, links_up, 2));
	publish_range(&p3);
	start[0] = 200;
	expect_in_order(fa, tags, start, count, 1);
	expect_in_order(fb, tags, start, count, 1);
	expect_silence(fb, 300);
	expect_silence(fa, 0);
	close(fa);
	close(fb);
	node_stop(&a);
	node_stop(&b);
	th_assert_no_live_objects();
}
END_TEST

#define BIG 4096

START_TEST(stalled_redis_bounds_what_is_queued_and_blocks_no_loop)
{
	struct node a = {0};
	ac_bridge_opts_t bo = {.max_queued = 64 * 1024, .retry_min_ms = 50};
	static char msg[BIG];
	ac_bridge_stats_t st;
	int fa;

	node_start_with(&a, "bulk", &bo);
	fa = th_connect_tcp("127.0.0.1", a.port);
	ck_assert(numsub_is(R.port, "bulk", false, 1));
	/* Redis stops reading (a stalled server, not a closed one): the
	 * node's own members still get everything, at once; what would
	 * pass max_queued toward Redis is dropped and counted. */
	kill(R.pid, SIGSTOP);
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\n';
	for (int i = 0; i < 200; i++) {
		ac_buf_t *b = ac_buf_new(msg, sizeof(msg));

		ck_assert_int_eq(ac_group_publish(a.g, b), 1);
		ac_buf_unref(b);
	}
	for (int i = 0; i < 200; i++) {
		char line[BIG + 8];
		size_t n = th_recv_frame(fa, AC_FRAME_LINE, line, sizeof(line), 0);

		ck_assert_uint_eq(n, BIG - 1);
	}
	ck_assert(STAT_GE(a.br, dropped_full, 1));
	ck_assert_int_eq(ac_bridge_stats(a.br, &st), 0);
	ck_assert_uint_eq(st.published + st.dropped_full, 200);
	/* Each written publish is a payload and a header: a bound of 64 KiB
	 * holds at most 64 KiB / (4 KiB + its header) of them. */
	ck_assert_uint_le(st.published, 64 * 1024 / BIG);
	kill(R.pid, SIGCONT);
	close(fa);
	node_stop(&a);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(password_in_the_url_and_a_wrong_one)
{
	struct node a = {0}, b = {0};
	char buf[256], good[160], bad[160];
	int fa, fb;
	const char *tags[] = {"A"};
	const int start[] = {0}, count[] = {10};
	struct pubarg p = {&a, "A", 0, 10};
	ac_bridge_stats_t st;

	redis_cmd(R.port, buf, sizeof(buf), "CONFIG SET requirepass s3cret");
	ck_assert_str_eq(buf, "+OK\r\n");
	snprintf(good, sizeof(good), "redis://:s3cret@127.0.0.1:%d", R.port);
	snprintf(bad, sizeof(bad), "redis://default:wrong@127.0.0.1:%d", R.port);
	strcpy(url, good);
	node_start(&a, "auth");
	node_start(&b, "auth");
	fa = th_connect_tcp("127.0.0.1", a.port);
	fb = th_connect_tcp("127.0.0.1", b.port);
	ck_assert(size_is(&a, 1) && size_is(&b, 1));
	ck_assert(STAT_GE(b.br, channels, 1));
	ck_assert(STAT_GE(a.br, links_up, 2));
	usleep(100000); /* the subscription confirmed at Redis */
	publish_range(&p);
	expect_in_order(fb, tags, start, count, 1);
	close(fa);
	close(fb);
	node_stop(&a);
	node_stop(&b);

	strcpy(url, bad);
	node_start(&a, "auth");
	ck_assert(STAT_GE(a.br, errors, 1)); /* AUTH refused, logged */
	ck_assert_int_eq(ac_bridge_stats(a.br, &st), 0);
	ck_assert_uint_eq(st.channels, 0);
	node_stop(&a);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(rediss_links_over_tls_with_the_context_given)
{
	struct redis t = {0};
	struct node a = {0}, b = {0};
	char certs[128], ca[160];
	ac_tls_t *tls;
	ac_bridge_opts_t bo = {.retry_min_ms = 50};
	struct pubarg p = {&a, "A", 0, 20};
	const char *tags[] = {"A"};
	const int start[] = {0}, count[] = {20};
	int fb;

	ck_assert(th_tls_certs(certs, sizeof(certs)));
	snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
	tls = ac_tls_new(&(ac_tls_opts_t){.role = AC_TLS_CLIENT, .ca_file = ca},
			 NULL, 0);
	if (!tls && errno == ENOTSUP) { /* built --without-openssl */
		th_tls_certs_remove(certs);
		return;
	}
	ck_assert_ptr_nonnull(tls);
	t.tls = certs;
	redis_start(&t, false);
	snprintf(url, sizeof(url), "rediss://127.0.0.1:%d", t.port);
	bo.tls = tls;
	node_start_with(&a, "secure", &bo);
	node_start_with(&b, "secure", &bo);
	ac_tls_free(tls); /* the bridges hold their own references */
	fb = th_connect_tcp("127.0.0.1", b.port);
	ck_assert(size_is(&b, 1));
	ck_assert(STAT_GE(b.br, channels, 1));
	ck_assert(STAT_GE(a.br, links_up, 2));
	usleep(200000); /* the subscription confirmed at Redis */
	publish_range(&p);
	expect_in_order(fb, tags, start, count, 1);
	close(fb);
	node_stop(&a);
	node_stop(&b);
	redis_remove(&t);
	th_tls_certs_remove(certs);
	th_assert_no_live_objects();
}
END_TEST

/* ---- the channel API: ac_bridge_subscribe and on_message ---------------- */

static pthread_mutex_t got_lock = PTHREAD_MUTEX_INITIALIZER;
static char got[16][96];
static int ngot;

static void on_message(int kind, const void *pat, size_t plen,
		       const void *chan, size_t clen, ac_buf_t *payload,
		       void *arg)
{
	ck_assert_ptr_eq(arg, &got);
	pthread_mutex_lock(&got_lock);
	if (ngot < 16)
		snprintf(got[ngot++], sizeof(got[0]), "%d %.*s %.*s %.*s",
			 kind, (int)plen, plen ? (const char *)pat : "",
			 (int)clen, (const char *)chan,
			 (int)ac_buf_len(payload),
			 (const char *)ac_buf_data(payload));
	pthread_mutex_unlock(&got_lock);
}

static bool ngot_ge(void *n)
{
	bool ok;

	pthread_mutex_lock(&got_lock);
	ok = ngot >= (int)(intptr_t)n;
	pthread_mutex_unlock(&got_lock);
	return ok;
}

START_TEST(subscribe_counts_names_patterns_and_raw_messages)
{
	ac_runtime_t *rt;
	ac_bridge_t *br;
	ac_bridge_opts_t o = {.on_message = on_message, .arg = &got,
			      .prefix = "app:"};
	char buf[256];
	ac_buf_t *b;

	ngot = 0;
	ck_assert_ptr_nonnull(rt = ac_runtime_new(&(ac_config_t){.loops = 2}));
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_bridge_new(rt, url, &o, &br), 0);
	ck_assert_int_eq(ac_bridge_subscribe(br, AC_BRIDGE_CHANNEL, "news", 4), 0);
	ck_assert_int_eq(ac_bridge_subscribe(br, AC_BRIDGE_CHANNEL, "news", 4), 0);
	ck_assert_int_eq(ac_bridge_subscribe(br, AC_BRIDGE_PATTERN, "n*", 2), 0);
	ck_assert(numsub_is(R.port, "app:news", false, 1));
	ck_assert(STAT_GE(br, patterns, 1));

	/* A message from another program, without an envelope, comes as it
	 * is: once for the channel, once for the pattern (as Redis would
	 * deliver it to a client subscribed both ways). */
	redis_cmd(R.port, buf, sizeof(buf), "PUBLISH app:news hello");
	ck_assert_str_eq(buf, ":2\r\n"); /* the channel and the pattern */
	ck_assert(th_wait(ngot_ge, (void *)2, 5000));
	pthread_mutex_lock(&got_lock);
	ck_assert_int_eq(ngot, 2);
	ck_assert_msg((!strcmp(got[0], "0  news hello") &&
		   !strcmp(got[1], "1 n* news hello")) ||
		  (!strcmp(got[1], "0  news hello") &&
		   !strcmp(got[0], "1 n* news hello")),
		  "got '%s' and '%s'", got[0], got[1]);
	pthread_mutex_unlock(&got_lock);

	/* This node's own publish goes to Redis with its envelope, and
	 * does not come back to it. */
	b = ac_buf_new("mine", 4);
	ck_assert_int_eq(ac_bridge_publish(br, "news", 4, b), 0);
	ac_buf_unref(b);
	ck_assert(STAT_GE(br, own_skipped, 2)); /* channel and pattern */
	ck_assert_int_eq(ngot, 2);

	/* Counted per name: the second unsubscribe ends it. */
	ck_assert_int_eq(ac_bridge_unsubscribe(br, AC_BRIDGE_CHANNEL, "news", 4), 0);
	usleep(100000);
	ck_assert_int_eq(numsub(R.port, "app:news", false), 1);
	ck_assert_int_eq(ac_bridge_unsubscribe(br, AC_BRIDGE_CHANNEL, "news", 4), 0);
	ck_assert(numsub_is(R.port, "app:news", false, 0));
	ck_assert_int_eq(ac_bridge_unsubscribe(br, AC_BRIDGE_CHANNEL, "news", 4),
			 AC_ENOENT);
	ck_assert_int_eq(ac_bridge_unsubscribe(br, AC_BRIDGE_PATTERN, "n*", 2), 0);
	ac_bridge_free(br);
	ck_assert_int_eq(ac_runtime_stop(rt, 1000), 0);
	ck_assert_int_eq(ac_runtime_free(rt), 0);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(bad_arguments_are_refused_and_change_nothing)
{
	ac_runtime_t *rt;
	ac_bridge_t *br, *none = NULL;
	ac_group_t *g, *g2;
	ac_bridge_opts_t o = {0};
	ac_buf_t *b = ac_buf_new("x", 1);
	static const char *bad[] = {"", "http://x:1", "redis://", "redis://h:",
				    "redis://h:12x", "redis://[::1", "redis://h:1/3",
				    "redis://u:%zz@h:1"};

	ck_assert_ptr_nonnull(rt = ac_runtime_new(&(ac_config_t){.loops = 2}));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(ac_bridge_new(rt, bad[i], NULL, &br) == AC_EADDR,
			      "url '%s'", bad[i]);
	ck_assert_int_eq(ac_bridge_new(rt, "rediss://127.0.0.1:1", NULL, &br),
			 AC_EINVAL); /* TLS without a context */
	o.reserved[3] = 1;
	ck_assert_int_eq(ac_bridge_new(rt, url, &o, &br), AC_EINVAL);
	o.reserved[3] = 0;
	o.loop = 1; /* a raw index, not AC_LOOP(1) */
	ck_assert_int_eq(ac_bridge_new(rt, url, &o, &br), AC_EINVAL);
	o.loop = AC_LOOP(1);
	o.mode = 7;
	ck_assert_int_eq(ac_bridge_new(rt, url, &o, &br), AC_EINVAL);
	o.mode = AC_BRIDGE_AUTO;
	ck_assert_int_eq(ac_bridge_new(NULL, url, &o, &br), AC_EINVAL);

	ck_assert_int_eq(ac_bridge_new(rt, url, &o, &br), 0);
	ck_assert_ptr_nonnull(g = ac_group_new(rt));
	ck_assert_ptr_nonnull(g2 = ac_group_new(rt));
	ck_assert_int_eq(ac_group_bridge(g, br, "c", 1), 0);
	ck_assert_int_eq(ac_group_bridge(g, br, "d", 1), AC_EEXIST);
	ck_assert_int_eq(ac_group_bridge(g2, br, "c", 1), AC_EEXIST);
	ck_assert_int_eq(ac_group_bridge(g2, NULL, "c", 1), AC_EINVAL);
	ck_assert_int_eq(ac_group_bridge(g2, br, NULL, 1), AC_EINVAL);
	/* No on_message: names cannot be subscribed. */
	ck_assert_int_eq(ac_bridge_subscribe(br, AC_BRIDGE_CHANNEL, "c", 1),
			 AC_EINVAL);
	ck_assert_int_eq(ac_bridge_publish(br, "c", 1, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_bridge_publish(none, "c", 1, b), AC_EINVAL);
	ck_assert_int_eq(ac_bridge_stats(br, NULL), AC_EINVAL);

	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_group_bridge(g2, br, "e", 1), 0);
	ck_assert_int_eq(ac_runtime_stop(rt, 1000), 0);
	ck_assert_int_eq(ac_bridge_publish(br, "c", 1, b), AC_ESHUTDOWN);
	ck_assert_int_eq(ac_bridge_new(rt, url, &o, &br), AC_ESHUTDOWN);
	ac_group_free(g);
	ac_group_free(g2);
	ac_buf_unref(b);
	/* br is not freed by the test: ac_runtime_free frees it. */
	ck_assert_int_eq(ac_runtime_free(rt), 0);
	th_assert_no_live_objects();
}
END_TEST

/* ---- a Redis Cluster of three masters ------------------------------------- */

#define NCH 12

static struct redis C[3];

static void cluster_setup(void)
{
	char cmd[512], buf[4096];
	int n = 0;

	memset(C, 0, sizeof(C));
	srandom((unsigned)getpid());
	for (int i = 0; i < 3; i++) {
		C[i].port = cluster_port();
		redis_start(&C[i], true);
	}
	n = snprintf(cmd, sizeof(cmd), "redis-cli --cluster create");
	for (int i = 0; i < 3; i++)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n,
			      " 127.0.0.1:%d", C[i].port);
	snprintf(cmd + n, sizeof(cmd) - (size_t)n,
		 " --cluster-replicas 0 --cluster-yes >/dev/null 2>&1");
	ck_assert_int_eq(system(cmd), 0);
	for (int i = 0; i < 3; i++) {
		int tries;

		for (tries = 0; tries < 500; tries++) {
			redis_cmd(C[i].port, buf, sizeof(buf), "CLUSTER INFO");
			if (strstr(buf, "cluster_state:ok"))
				break;
			usleep(20000);
		}
		ck_assert_int_lt(tries, 500);
	}
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", C[0].port);
}

static void cluster_teardown(void)
{
	for (int i = 0; i < 3; i++)
		redis_remove(&C[i]);
}

/* The index in C of the master that serves channel name now: the one
 * that answers a key command on it instead of redirecting. */
static int owner_of(const char *name)
{
	char buf[256];

	for (int i = 0; i < 3; i++) {
		redis_cmd(C[i].port, buf, sizeof(buf), "EXISTS %s", name);
		if (buf[0] == ':')
			return i;
	}
	ck_abort_msg("no master serves %s", name);
	return -1;
}

static void node_id(int i, char *id, size_t cap)
{
	char buf[256];
	char *p;

	redis_cmd(C[i].port, buf, sizeof(buf), "CLUSTER MYID");
	p = strstr(buf, "\r\n") + 2;
	snprintf(id, cap, "%.*s", (int)(strstr(p, "\r\n") - p), p);
}

/* Moves channel name's slot from master from to master to, as a
 * resharding does (no keys to migrate). */
static void move_slot_of(const char *name, int from, int to)
{
	char buf[512], src[64], dst[64];
	long slot;

	redis_cmd(C[0].port, buf, sizeof(buf), "CLUSTER KEYSLOT %s", name);
	slot = atol(buf + 1);
	node_id(from, src, sizeof(src));
	node_id(to, dst, sizeof(dst));
	redis_cmd(C[to].port, buf, sizeof(buf),
		  "CLUSTER SETSLOT %ld IMPORTING %s", slot, src);
	redis_cmd(C[from].port, buf, sizeof(buf),
		  "CLUSTER SETSLOT %ld MIGRATING %s", slot, dst);
	redis_cmd(C[to].port, buf, sizeof(buf), "CLUSTER SETSLOT %ld NODE %s",
		  slot, dst);
	redis_cmd(C[from].port, buf, sizeof(buf),
		  "CLUSTER SETSLOT %ld NODE %s", slot, dst);
	for (int i = 0; i < 3; i++)
		if (i != from && i != to)
			redis_cmd(C[i].port, buf, sizeof(buf),
				  "CLUSTER SETSLOT %ld NODE %s", slot, dst);
}

static void *publish_on(void *arg)
{
	return publish_range(arg);
}

START_TEST(cluster_spreads_channels_over_masters_and_follows_a_moved_slot)
{
	struct node a[NCH], b[NCH];
	int fb[NCH];
	char name[NCH][16];
	int owners[3] = {0, 0, 0}, used = 0, from, to;
	const char *tags[] = {"A"};
	int start[1] = {0}, count[1] = {50};
	ac_bridge_stats_t st;

	/* One node pair per channel keeps the test simple: each pair
	 * bridges one group. */
	for (int i = 0; i < NCH; i++) {
		snprintf(name[i], sizeof(name[i]), "ch%d", i);
		memset(&a[i], 0, sizeof(a[i]));
		memset(&b[i], 0, sizeof(b[i]));
		node_start(&a[i], name[i]);
		node_start(&b[i], name[i]);
		fb[i] = th_connect_tcp("127.0.0.1", b[i].port);
		owners[owner_of(name[i])]++;
	}
	for (int i = 0; i < 3; i++)
		used += owners[i] > 0;
	ck_assert_int_ge(used, 2); /* the channels spread */
	for (int i = 0; i < NCH; i++) {
		int o = owner_of(name[i]);

		ck_assert(numsub_is(C[o].port, name[i], true, 1));
	}
	for (int i = 0; i < NCH; i++) {
		struct pubarg p = {&a[i], "A", 0, 50};

		publish_on(&p);
	}
	for (int i = 0; i < NCH; i++)
		expect_in_order(fb[i], tags, start, count, 1);
	ck_assert_int_eq(ac_bridge_stats(a[0].br, &st), 0);
	ck_assert_uint_eq(st.mode, AC_BRIDGE_CLUSTER);
	ck_assert_uint_eq(st.nodes, 3);

	/* The slot of ch0 moves: B's subscription follows it (Redis
	 * unsubscribes it at the old master), and A's publishes follow
	 * MOVED. */
	from = owner_of(name[0]);
	to = (from + 1) % 3;
	move_slot_of(name[0], from, to);
	ck_assert(numsub_is(C[to].port, name[0], true, 1));
	{
		/* Paced, so that new publishes keep coming while the old
		 * master's MOVED replies come back: they must still arrive
		 * in order. */
		struct pubarg p = {&a[0], "A", 50, 1000, 100};

		start[0] = 50;
		count[0] = 1000;
		publish_on(&p);
		expect_in_order(fb[0], tags, start, count, 1);
	}
	ck_assert(STAT_GE(a[0].br, redirects, 1));
	expect_silence(fb[0], 200);
	for (int i = 0; i < NCH; i++) {
		close(fb[i]);
		node_stop(&a[i]);
		node_stop(&b[i]);
	}
	th_assert_no_live_objects();
}
END_TEST

/* Whether Redis at port says role:master (INFO replication). */
static bool is_master(int port)
{
	char buf[2048];

	redis_cmd(port, buf, sizeof(buf), "INFO replication");
	return strstr(buf, "role:master") != NULL;
}

/* What a node's bridge saw, for a failure message. */
static void print_bridge(const char *who, struct node *n)
{
	ac_bridge_stats_t st;

	if (ac_bridge_stats(n->br, &st))
		return;
	fprintf(stderr,
		"%s: mode %llu nodes %llu links_up %llu channels %llu "
		"published %llu received %llu dropped_down %llu connects %llu "
		"disconnects %llu redirects %llu refreshes %llu errors %llu\n",
		who, (unsigned long long)st.mode, (unsigned long long)st.nodes,
		(unsigned long long)st.links_up,
		(unsigned long long)st.channels,
		(unsigned long long)st.published,
		(unsigned long long)st.received,
		(unsigned long long)st.dropped_down,
		(unsigned long long)st.connects,
		(unsigned long long)st.disconnects,
		(unsigned long long)st.redirects,
		(unsigned long long)st.refreshes,
		(unsigned long long)st.errors);
}

START_TEST(cluster_master_lost_its_replica_takes_over_and_delivery_resumes)
{
	struct node a = {0}, b = {0};
	struct redis d = {0};
	char cmd[256], buf[2048], id[64];
	const char *tags[] = {"A"};
	int start[1] = {0}, count[1] = {20}, o, fb, seq = 20, tries;

	o = owner_of("fo");
	node_id(o, id, sizeof(id));
	d.port = cluster_port();
	redis_start(&d, true);
	snprintf(cmd, sizeof(cmd),
		 "redis-cli --cluster add-node 127.0.0.1:%d 127.0.0.1:%d "
		 "--cluster-slave --cluster-master-id %s >/dev/null 2>&1",
		 d.port, C[o].port, id);
	ck_assert_int_eq(system(cmd), 0);
	for (tries = 0; tries < 500; tries++) {
		redis_cmd(d.port, buf, sizeof(buf), "INFO replication");
		if (strstr(buf, "master_link_status:up"))
			break;
		usleep(20000);
	}
	ck_assert_int_lt(tries, 500);

	node_start(&a, "fo");
	node_start(&b, "fo");
	fb = th_connect_tcp("127.0.0.1", b.port);
	ck_assert(numsub_is(C[o].port, "fo", true, 1));
	{
		struct pubarg p = {&a, "A", 0, 20};

		publish_range(&p);
		expect_in_order(fb, tags, start, count, 1);
	}

	/* The master dies; its replica is promoted after the cluster's node
	 * timeout. The nodes find the new master by themselves (no MOVED
	 * reaches them: their links to the dead one are down) and carry
	 * on; what was published meanwhile is lost, nothing twice. */
	redis_kill(&C[o]);
	for (tries = 0; tries < 1000 && !is_master(d.port); tries++)
		usleep(20000);
	ck_assert_msg(is_master(d.port), "the replica was not promoted");
	for (tries = 0; tries < 200; tries++, seq++) {
		char line[64], msg[32];
		int n = snprintf(msg, sizeof(msg), "A %d\n", seq);
		ac_buf_t *m = ac_buf_new(msg, (size_t)n);

		ac_group_publish(a.g, m);
		ac_buf_unref(m);
		if (read_line(fb, line, sizeof(line), 100)) {
			int v;

			ck_assert_int_eq(sscanf(line, "A %d", &v), 1);
			ck_assert_int_le(v, seq);
			seq = v + 1;
			break;
		}
	}
	if (tries == 200) { /* say why: the bridges' figures, the cluster's */
		print_bridge("publishing node", &a);
		print_bridge("subscribed node", &b);
		redis_cmd(d.port, buf, sizeof(buf), "CLUSTER NODES");
		fprintf(stderr, "CLUSTER NODES from the promoted replica:\n%s\n",
			buf);
	}
	ck_assert_int_lt(tries, 200);
	/* Anything still on its way from the probing publishes arrives in
	 * order before the next range; take it. */
	for (;;) {
		char line[64];
		int v;

		if (!read_line(fb, line, sizeof(line), 300))
			break;
		ck_assert_int_eq(sscanf(line, "A %d", &v), 1);
		ck_assert_int_eq(v, seq);
		seq++;
	}
	{
		struct pubarg p = {&a, "A", 1000, 20};

		start[0] = 1000;
		publish_range(&p);
		expect_in_order(fb, tags, start, count, 1);
	}
	ck_assert(numsub_is(d.port, "fo", true, 1));
	close(fb);
	node_stop(&a);
	node_stop(&b);
	redis_remove(&d);
	th_assert_no_live_objects();
}
END_TEST

static Suite *bridge_suite(void)
{
	Suite *s = suite_create("bridge");
	TCase *tc = tcase_create("single");
	TCase *tcc = tcase_create("cluster");

	tcase_add_checked_fixture(tc, redis_setup, redis_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, publish_reaches_members_on_every_node_once_in_publisher_order);
	tcase_add_test(tc, node_is_subscribed_only_while_it_has_members);
	tcase_add_test(tc, redis_restart_local_delivery_goes_on_remote_resumes_no_duplicates);
	tcase_add_test(tc, stalled_redis_bounds_what_is_queued_and_blocks_no_loop);
	tcase_add_test(tc, password_in_the_url_and_a_wrong_one);
	tcase_add_test(tc, rediss_links_over_tls_with_the_context_given);
	tcase_add_test(tc, subscribe_counts_names_patterns_and_raw_messages);
	tcase_add_test(tc, bad_arguments_are_refused_and_change_nothing);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tcc, cluster_setup, cluster_teardown);
	tcase_set_timeout(tcc, 120);
	tcase_add_test(tcc, cluster_spreads_channels_over_masters_and_follows_a_moved_slot);
	tcase_add_test(tcc, cluster_master_lost_its_replica_takes_over_and_delivery_resumes);
	suite_add_tcase(s, tcc);
	return s;
}

int main(void)
{
	ac_runtime_t *rt;
	ac_bridge_t *br;

	/* Built --without-hiredis: bridging is refused, as documented. */
	rt = ac_runtime_new(&(ac_config_t){.loops = 1});
	if (ac_bridge_new(rt, "redis://127.0.0.1:6379", NULL, &br) ==
	    AC_ENOTSUP) {
		ac_runtime_free(rt);
		printf("test_bridge: built without hiredis: ac_bridge_new "
		       "returns AC_ENOTSUP; nothing else to test\n");
		return 0;
	}
	ac_bridge_free(br);
	ac_runtime_free(rt);
	if (system("redis-server --version >/dev/null 2>&1") != 0) {
		printf("test_bridge: FAIL: redis-server not installed "
		       "(Debian package redis-server)\n");
		return 1;
	}
	return th_run(bridge_suite());
}
