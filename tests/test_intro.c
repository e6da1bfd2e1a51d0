/* test_intro.c: introspection. A connection's facts on its owner loop
 * (ac_conn_info) and through a handle (ac_handle_info), labels, a loop's
 * connections (ac_loop_conns), every loop's (ac_runtime_conns), and the
 * way back from a handle (ac_handle_conn). */
#include "testhelp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- a line server and outbound clients, in one runtime ------------------ */

#define MAXC 64

static ac_runtime_t *rt;
static ac_listener_t *lst;
static int port;
static int srv_ud, cli_ud; /* their addresses tell the two kinds apart */
static int64_t srv_opened, srv_closed, cli_opened, cli_closed; /* atomic */
static int64_t srv_claimed, cli_claimed; /* atomic */
static ac_handle_t srv_h[MAXC], cli_h[MAXC];

/* Two loops may open connections at once: a slot is claimed first, and
 * the count says how many handles are stored (all of the first n once
 * it reaches the number of connections made). */
static void put_handle(ac_handle_t *tab, int64_t *count, ac_conn_t *c)
{
	int64_t i = __atomic_fetch_add(tab == srv_h ? &srv_claimed : &cli_claimed, 1,
			       __ATOMIC_RELAXED);
	ck_assert_int_lt(i, MAXC);
	__atomic_store_n(&tab[i], ac_conn_handle(c), __ATOMIC_RELAXED);
	/* Release: a reader that sees the count sees the handle. */
	__atomic_fetch_add(count, 1, __ATOMIC_RELEASE);
}

static void srv_open(ac_conn_t *c)
{
	put_handle(srv_h, &srv_opened, c);
}

/* Echoes each line, with its newline. */
static void srv_frame(ac_conn_t *c, const void *data, size_t len)
{
	ck_assert_int_eq(ac_conn_write(c, data, len), 0);
	ck_assert_int_eq(ac_conn_write(c, "\n", 1), 0);
}

static void srv_close(ac_conn_t *c, int reason)
{
	__atomic_fetch_add(&srv_closed, 1, __ATOMIC_RELAXED);
}

static void cli_open(ac_conn_t *c)
{
	put_handle(cli_h, &cli_opened, c);
}

static void cli_close(ac_conn_t *c, int reason)
{
	__atomic_fetch_add(&cli_closed, 1, __ATOMIC_RELAXED);
}

static const ac_conn_cbs_t srv_cbs = {.on_open = srv_open,
				      .on_frame = srv_frame,
				      .on_close = srv_close};
static const ac_conn_cbs_t cli_cbs = {.on_open = cli_open,
				      .on_close = cli_close};

/* A runtime of `loops` loops listening on addr (NULL: 127.0.0.1:0). */
static void start(int loops, const char *addr)
{
	ac_config_t cfg = {.loops = loops};
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};

	ck_assert((rt = ac_runtime_new(&cfg)) != NULL);
	ck_assert_int_eq(ac_listen(rt, addr ? addr : "127.0.0.1:0", &srv_cbs,
				   &o, &srv_ud, &lst), 0);
	port = addr ? 0 : ac_listener_port(lst);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
}

static void finish(void)
{
	ck_assert_int_eq(ac_runtime_free(rt), 0);
	th_assert_no_live_objects();
}

/* An outbound connection to addr owned by loop i. */
static ac_handle_t dial(const char *addr, int i, const ac_conn_opts_t *opts)
{
	ac_conn_opts_t o = opts ? *opts : (ac_conn_opts_t){0};
	ac_handle_t h;

	o.loop = AC_LOOP(i);
	ck_assert_int_eq(ac_connect(rt, addr, &cli_cbs, &o, &cli_ud, &h), 0);
	return h;
}

/* Under make check-valgrind everything is some 20 times slower: the
 * bounds on elapsed time and on the work done in a given time widen. */
static bool slow(void)
{
	const char *v = getenv("AC_VALGRIND");

	return v && *v;
}

/* The longest wait for anything a test waits for. */
static int wait_ms(void)
{
	return slow() ? 60000 : 5000;
}

static bool ge(int64_t *p, int64_t n)
{
	return th_wait_ge(p, n, wait_ms());
}

/* ---- running code on a loop --------------------------------------------------- */

struct onloop {
	void (*fn)(void *arg);
	void *arg;
	int done;
};

static void onloop_cb(void *p)
{
	struct onloop *o = p;

	o->fn(o->arg);
	__atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
}

/* Runs fn(arg) on loop i and waits for it. */
static void run_on(int i, void (*fn)(void *arg), void *arg)
{
	struct onloop o = {fn, arg, 0};
	uint64_t t0 = th_now_ms();

	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(i), onloop_cb, &o), 0);
	while (!__atomic_load_n(&o.done, __ATOMIC_ACQUIRE)) {
		ck_assert_uint_lt(th_now_ms() - t0, (uint64_t)wait_ms());
		usleep(200);
	}
}

struct infoq {
	ac_handle_t h;
	ac_conn_info_t info;
	int rc;
};

static void info_cb(void *p)
{
	struct infoq *q = p;
	ac_conn_t *c = ac_handle_conn(rt, q->h);

	q->rc = c ? ac_conn_info(c, &q->info) : -errno;
}

/* h's facts as its owner loop reads them. */
static ac_conn_info_t owner_info(ac_handle_t h)
{
	struct infoq q = {.h = h};

	run_on(AC_HANDLE_LOOP(h), info_cb, &q);
	ck_assert_int_eq(q.rc, 0);
	return q.info;
}

static int port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET
		       ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
		       : -1;
}

/* ---- facts on the owner loop ------------------------------------------------------ */

START_TEST(owner_info_describes_both_ends_of_a_tcp_connection)
{
	ac_conn_info_t s, c;
	char want[64];

	start(1, NULL);
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	dial(want, 0, NULL);
	ck_assert(ge(&srv_opened, 1) && ge(&cli_opened, 1));
	s = owner_info(srv_h[0]);
	c = owner_info(cli_h[0]);

	ck_assert_uint_eq(s.handle, srv_h[0]);
	ck_assert_uint_eq(c.handle, cli_h[0]);
	ck_assert_int_eq(s.loop, 0);
	ck_assert_int_eq(s.family, AF_INET);
	ck_assert_int_eq(c.family, AF_INET);
	/* The server's local address is the listener's; each end's local
	 * address is the other's peer. */
	ck_assert_str_eq(s.local_str, want);
	ck_assert_str_eq(c.peer_str, want);
	ck_assert_int_eq(port_of(&s.local), port);
	ck_assert_int_eq(s.local_len, sizeof(struct sockaddr_in));
	ck_assert_str_eq(s.peer_str, c.local_str);
	ck_assert_int_eq(port_of(&s.peer), port_of(&c.local));
	ck_assert_int_ne(port_of(&c.local), port);
	/* Whose connection it is, the socket, no credentials over TCP. */
	ck_assert_ptr_eq(s.ud, &srv_ud);
	ck_assert_ptr_eq(c.ud, &cli_ud);
	ck_assert_int_ge(s.fd, 0);
	ck_assert_int_ge(c.fd, 0);
	ck_assert_int_ne(s.fd, c.fd);
	ck_assert_int_eq(s.peer_pid, -1);
	ck_assert_int_eq(s.peer_uid, -1);
	ck_assert_int_eq(s.peer_gid, -1);
	ck_assert_str_eq(s.label, "");
	ck_assert_uint_eq(s.out_queued, 0);
	ck_assert_uint_gt(s.opened_ms, 1600000000000ull);
	ck_assert_uint_le(s.idle_ms, s.age_ms);
	ck_assert_uint_lt(s.age_ms, (uint64_t)wait_ms());
	/* The reserved tail is zeroed, by either call, whatever was there. */
	memset(&c, 0xa5, sizeof(c));
	ck_assert_int_eq(ac_handle_info(rt, srv_h[0], &c), 0);
	for (size_t k = 0; k < sizeof(s.reserved) / sizeof(s.reserved[0]); k++)
		ck_assert_uint_eq(s.reserved[k] | c.reserved[k], 0);
	finish();
}
END_TEST

START_TEST(unix_socket_info_reports_path_and_peer_credentials)
{
	char path[108], addr[128];
	ac_conn_info_t s, c, any;
	int fd;

	snprintf(path, sizeof(path), "/tmp/ac-intro-%d.sock", (int)getpid());
	unlink(path);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	start(1, addr);
	fd = th_connect_unix(path); /* a plain socket of this process */
	dial(addr, 0, NULL);        /* and one of the library's */
	ck_assert(ge(&srv_opened, 2) && ge(&cli_opened, 1));
	for (int i = 0; i < 2; i++) {
		s = owner_info(srv_h[i]);
		ck_assert_int_eq(s.family, AF_UNIX);
		ck_assert_str_eq(s.peer_str, "unix");
		ck_assert_str_eq(s.local_str, addr);
		ck_assert_int_eq(s.local.ss_family, AF_UNIX);
		ck_assert_int_eq(s.peer_pid, getpid());
		ck_assert_int_eq(s.peer_uid, getuid());
		ck_assert_int_eq(s.peer_gid, getgid());
	}
	/* The client's own end is unnamed; its peer is this process too. */
	c = owner_info(cli_h[0]);
	ck_assert_int_eq(c.family, AF_UNIX);
	ck_assert_str_eq(c.local_str, "unix");
	ck_assert_int_eq(c.peer_pid, getpid());
	ck_assert_int_eq(c.peer_uid, getuid());
	/* Through a handle: the shared facts, and no more. */
	ck_assert_int_eq(ac_handle_info(rt, srv_h[0], &any), 0);
	ck_assert_int_eq(any.family, AF_UNIX);
	ck_assert_str_eq(any.peer_str, "unix");
	ck_assert_uint_eq(any.handle, srv_h[0]);
	ck_assert_int_eq(any.local_len, 0);
	ck_assert_int_eq(any.fd, -1);
	ck_assert_int_eq(any.peer_pid, -1);
	ck_assert_ptr_null(any.ud);
	close(fd);
	finish();
	unlink(path);
}
END_TEST

struct sendq {
	ac_handle_t h;
	int rc[3];
};

static void writes_cb(void *p)
{
	struct sendq *q = p;
	ac_conn_t *c = ac_handle_conn(rt, q->h);
	ac_buf_t *b = ac_buf_new("buf\n", 4);

	q->rc[0] = ac_conn_write(c, "w\n", 2);
	q->rc[1] = ac_conn_write(c, "", 0); /* empty: not a frame */
	q->rc[2] = ac_conn_write_buf(c, b);
	ac_buf_unref(b);
}

START_TEST(frames_and_bytes_are_counted_both_ways)
{
	ac_conn_info_t s, any;
	struct sendq q;
	char buf[64];
	int fd;

	start(1, NULL);
	fd = th_connect_tcp("127.0.0.1", port);
	th_write_all(fd, "a\nbb\nccc\n", 9);
	ck_assert(th_read_full(fd, buf, 9));
	ck_assert(ge(&srv_opened, 1));
	/* Each echoed line is two writes; then ac_send, and three owner
	 * writes of which one is empty. */
	ck_assert_int_eq(ac_send(rt, srv_h[0], "s\n", 2), 0);
	ck_assert(th_read_full(fd, buf, 2));
	q.h = srv_h[0];
	run_on(0, writes_cb, &q);
	ck_assert_int_eq(q.rc[0], 0);
	ck_assert_int_eq(q.rc[1], 0);
	ck_assert_int_eq(q.rc[2], 0);
	ck_assert(th_read_full(fd, buf, 6));
	s = owner_info(srv_h[0]);
	ck_assert_uint_eq(s.frames_in, 3);
	ck_assert_uint_eq(s.frames_out, 6 + 1 + 2);
	ck_assert_uint_eq(s.bytes_in, 9);
	ck_assert_uint_eq(s.bytes_out, 9 + 2 + 6);
	/* The same counts from any thread. */
	ck_assert_int_eq(ac_handle_info(rt, srv_h[0], &any), 0);
	ck_assert_uint_eq(any.frames_in, 3);
	ck_assert_uint_eq(any.frames_out, 9);
	ck_assert_uint_eq(any.bytes_out, 17);
	close(fd);
	finish();
}
END_TEST

START_TEST(idle_grows_while_silent_and_only_reads_reset_it)
{
	ac_conn_info_t a, b;
	char buf[8];
	int fd;

	start(1, NULL);
	fd = th_connect_tcp("127.0.0.1", port);
	ck_assert(ge(&srv_opened, 1));
	usleep(300 * 1000);
	a = owner_info(srv_h[0]);
	ck_assert_uint_ge(a.idle_ms, 250);
	ck_assert_uint_lt(a.idle_ms, (uint64_t)wait_ms());
	/* Writing to the peer is not activity of the peer. */
	ck_assert_int_eq(ac_send(rt, srv_h[0], "x\n", 2), 0);
	ck_assert(th_read_full(fd, buf, 2));
	usleep(100 * 1000);
	ck_assert_int_eq(ac_handle_info(rt, srv_h[0], &b), 0);
	ck_assert_uint_ge(b.idle_ms, a.idle_ms + 50);
	ck_assert_uint_ge(b.age_ms, b.idle_ms);
	/* A read is. */
	th_write_all(fd, "y\n", 2);
	ck_assert(th_read_full(fd, buf, 2));
	b = owner_info(srv_h[0]);
	ck_assert_uint_lt(b.idle_ms, slow() ? 2000 : 200);
	ck_assert_uint_ge(b.age_ms, 400);
	close(fd);
	finish();
}
END_TEST

/* ---- labels ----------------------------------------------------------------------------- */

struct labelq {
	ac_handle_t h;
	int rc[6];
	char seen[4][AC_LABEL_MAX + 1];
};

static void label_cb(void *p)
{
	struct labelq *q = p;
	ac_conn_t *c = ac_handle_conn(rt, q->h);
	char name[AC_LABEL_MAX + 2];
	ac_conn_info_t i;

	memset(name, 'n', AC_LABEL_MAX);
	name[AC_LABEL_MAX] = 0;
	q->rc[0] = ac_conn_set_label(c, name); /* the longest */
	name[0] = 'X';                         /* copied: no effect */
	ac_conn_info(c, &i);
	snprintf(q->seen[0], sizeof(q->seen[0]), "%s", i.label);
	memset(name, 'm', AC_LABEL_MAX + 1);
	name[AC_LABEL_MAX + 1] = 0;
	q->rc[1] = ac_conn_set_label(c, name); /* one byte too many */
	ac_conn_info(c, &i);
	snprintf(q->seen[1], sizeof(q->seen[1]), "%s", i.label);
	q->rc[2] = ac_conn_set_label(c, "worker-7");
	ac_conn_info(c, &i);
	snprintf(q->seen[2], sizeof(q->seen[2]), "%s", i.label);
	q->rc[3] = ac_conn_set_label(c, NULL);
	ac_conn_info(c, &i);
	snprintf(q->seen[3], sizeof(q->seen[3]), "%s", i.label);
	q->rc[4] = ac_conn_set_label(c, "");
	q->rc[5] = ac_conn_set_label(NULL, "x");
}

START_TEST(labels_are_copied_bounded_and_cleared)
{
	struct labelq q = {0};
	char longest[AC_LABEL_MAX + 1];
	ac_conn_info_t any;
	int fd;

	start(1, NULL);
	fd = th_connect_tcp("127.0.0.1", port);
	ck_assert(ge(&srv_opened, 1));
	q.h = srv_h[0];
	run_on(0, label_cb, &q);
	memset(longest, 'n', AC_LABEL_MAX);
	longest[AC_LABEL_MAX] = 0;
	ck_assert_int_eq(q.rc[0], 0);
	ck_assert_str_eq(q.seen[0], longest);
	ck_assert_int_eq(q.rc[1], AC_EINVAL);
	ck_assert_str_eq(q.seen[1], longest); /* the old label stays */
	ck_assert_int_eq(q.rc[2], 0);
	ck_assert_str_eq(q.seen[2], "worker-7");
	ck_assert_int_eq(q.rc[3], 0);
	ck_assert_str_eq(q.seen[3], "");
	ck_assert_int_eq(q.rc[4], 0); /* clearing twice is harmless */
	ck_assert_int_eq(q.rc[5], AC_EINVAL);
	ck_assert_int_eq(ac_handle_info(rt, srv_h[0], &any), 0);
	ck_assert_str_eq(any.label, ""); /* the owner's alone */
	close(fd);
	finish();
}
END_TEST

static void label_set_cb(void *p)
{
	struct labelq *q = p;

	q->rc[0] = ac_conn_set_label(ac_handle_conn(rt, q->h), "upstream-a");
}

static void abort_cb(void *p)
{
	ac_conn_close(ac_handle_conn(rt, *(ac_handle_t *)p), AC_CLOSE_ABORT);
}

START_TEST(an_outbound_connection_keeps_its_label_across_reconnects)
{
	ac_conn_opts_t o = {.reconnect_min_ms = 10, .reconnect_max_ms = 50};
	struct labelq q = {0};
	ac_conn_info_t i;
	char addr[64];
	ac_handle_t h;

	start(1, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	h = dial(addr, 0, &o);
	ck_assert(ge(&cli_opened, 1) && ge(&srv_opened, 1));
	q.h = h;
	run_on(0, label_set_cb, &q);
	ck_assert_int_eq(q.rc[0], 0);
	/* The server drops it; the client comes back under the same
	 * handle, label and all. */
	run_on(0, abort_cb, &srv_h[0]);
	ck_assert(ge(&cli_closed, 1) && ge(&cli_opened, 2));
	ck_assert_uint_eq(cli_h[1], h);
	i = owner_info(h);
	ck_assert_str_eq(i.label, "upstream-a");
	finish();
}
END_TEST

/* ---- a loop's connections ----------------------------------------------------------------- */

struct walk {
	int calls;
	ac_handle_t seen[MAXC];
	int close_every; /* close every n-th visited; 0: none */
};

static void walk_fn(ac_conn_t *c, void *arg)
{
	struct walk *w = arg;
	ac_conn_info_t i;

	ck_assert_int_lt(w->calls, MAXC);
	w->seen[w->calls++] = ac_conn_handle(c);
	if (w->close_every && w->calls % w->close_every == 0) {
		ck_assert_int_eq(ac_conn_close(c, AC_CLOSE_ABORT), 0);
		/* Still readable after the close: on_close has not run. */
		ck_assert_int_eq(ac_conn_info(c, &i), 0);
		ck_assert_uint_eq(i.handle, ac_conn_handle(c));
	}
}

struct walkq {
	struct walk w;
	int rc;
};

static void walk_cb(void *p)
{
	struct walkq *q = p;

	q->rc = ac_loop_conns(rt, walk_fn, &q->w);
}

static bool seen(const struct walk *w, ac_handle_t h)
{
	for (int i = 0; i < w->calls; i++)
		if (w->seen[i] == h)
			return true;
	return false;
}

static void walk_null_cb(void *p)
{
	struct walkq *q = p;

	q->rc = ac_loop_conns(rt, NULL, NULL);
}

START_TEST(loop_conns_visits_every_connection_and_fn_may_close_them)
{
	struct walkq q = {0};
	int fd[6];

	start(1, NULL);
	for (int i = 0; i < 6; i++)
		fd[i] = th_connect_tcp("127.0.0.1", port);
	ck_assert(ge(&srv_opened, 6));
	q.w.close_every = 2;
	run_on(0, walk_cb, &q);
	ck_assert_int_eq(q.rc, 6);
	ck_assert_int_eq(q.w.calls, 6);
	for (int i = 0; i < 6; i++)
		ck_assert(seen(&q.w, srv_h[i]));
	/* Three closed under the walk; the next walk sees the others. */
	ck_assert(ge(&srv_closed, 3));
	memset(&q, 0, sizeof(q));
	run_on(0, walk_cb, &q);
	ck_assert_int_eq(q.rc, 3);
	ck_assert_int_eq(__atomic_load_n(&srv_closed, __ATOMIC_RELAXED), 3);
	/* From a thread that is not a loop, or without fn: refused. */
	ck_assert_int_eq(ac_loop_conns(rt, walk_fn, &q.w), AC_ETHREAD);
	ck_assert_int_eq(ac_loop_conns(NULL, walk_fn, &q.w), AC_EINVAL);
	run_on(0, walk_null_cb, &q);
	ck_assert_int_eq(q.rc, AC_EINVAL);
	for (int i = 0; i < 6; i++)
		close(fd[i]);
	finish();
}
END_TEST

/* ---- every loop's connections -------------------------------------------------------------- */

struct gather {
	int busy;      /* a visit in progress: visits must never overlap */
	int overlap;
	int asker, inside; /* asking loop; in ac_runtime_conns there (atomic) */
	int inline_calls;  /* fn or done run from inside the call */
	int calls, by_loop[2], wrong_loop;
	int done_calls, done_err, done_loop;
	ac_handle_t requester;
	int requester_live, requester_errno;
	int rc;
	int finished; /* atomic */
};

static void gather_fn(ac_conn_t *c, void *arg)
{
	struct gather *g = arg;
	int here = ac_loop_index();

	if (__atomic_exchange_n(&g->busy, 1, __ATOMIC_ACQ_REL))
		g->overlap++;
	if (__atomic_load_n(&g->inside, __ATOMIC_RELAXED) && here == g->asker)
		g->inline_calls++;
	if (here != AC_HANDLE_LOOP(ac_conn_handle(c)))
		g->wrong_loop++;
	g->calls++;
	if (here >= 0 && here < 2)
		g->by_loop[here]++;
	__atomic_store_n(&g->busy, 0, __ATOMIC_RELEASE);
}

static void gather_done(int err, void *arg)
{
	struct gather *g = arg;
	ac_conn_t *c;

	g->done_calls++;
	g->done_err = err;
	if (__atomic_load_n(&g->inside, __ATOMIC_RELAXED) &&
	    ac_loop_index() == g->asker)
		g->inline_calls++;
	g->done_loop = ac_loop_index();
	if (g->requester) {
		errno = 0;
		c = ac_handle_conn(rt, g->requester);
		g->requester_live = c != NULL;
		g->requester_errno = errno;
	}
	__atomic_store_n(&g->finished, 1, __ATOMIC_RELEASE);
}

static bool finished(void *g)
{
	return __atomic_load_n(&((struct gather *)g)->finished,
			       __ATOMIC_ACQUIRE);
}

/* On a loop: gather from every loop, for the first outbound connection
 * this loop owns (the requester), which closes at once if asked. */
struct askq {
	struct gather *g;
	int loop;    /* the loop choice */
	int close;   /* close the requester right after asking */
};

static void ask_cb(void *p)
{
	struct askq *a = p;
	ac_conn_t *c = NULL;

	for (int i = 0; i < MAXC && !c; i++)
		if (cli_h[i] && AC_HANDLE_LOOP(cli_h[i]) == ac_loop_index())
			c = ac_handle_conn(rt, cli_h[i]);
	ck_assert_ptr_nonnull(c);
	a->g->requester = ac_conn_handle(c);
	a->g->asker = ac_loop_index();
	__atomic_store_n(&a->g->inside, 1, __ATOMIC_RELAXED);
	a->g->rc = ac_runtime_conns(rt, a->loop, gather_fn, gather_done, a->g);
	__atomic_store_n(&a->g->inside, 0, __ATOMIC_RELAXED);
	if (a->close)
		ac_conn_close(c, AC_CLOSE_ABORT);
}

/* Two loops, 4 outbound connections on each to a listener on both: 16
 * connections, 8 or more on each loop. */
static void two_loops_of_conns(void)
{
	char addr[64];

	start(2, NULL);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	for (int i = 0; i < 8; i++)
		dial(addr, i % 2, NULL);
	ck_assert(ge(&cli_opened, 8) && ge(&srv_opened, 8));
}

START_TEST(runtime_conns_gathers_every_loop_and_answers_on_the_caller)
{
	struct gather g = {0}, g1 = {0}, gf = {0};
	struct askq a = {&g, AC_LOOP_ALL, 0};

	two_loops_of_conns();
	/* From a connection's loop, for that connection. */
	run_on(1, ask_cb, &a);
	ck_assert_int_eq(g.rc, 0);
	ck_assert(th_wait(finished, &g, wait_ms()));
	ck_assert_int_eq(g.done_calls, 1);
	ck_assert_int_eq(g.done_err, 0);
	ck_assert_int_eq(g.done_loop, 1);
	ck_assert_int_eq(g.calls, 16);
	ck_assert_int_ge(g.by_loop[0], 4);
	ck_assert_int_ge(g.by_loop[1], 4);
	ck_assert_int_eq(g.overlap, 0);
	ck_assert_int_eq(g.wrong_loop, 0);
	ck_assert_int_eq(g.inline_calls, 0);
	ck_assert(g.requester_live);

	/* One loop only. */
	a.g = &g1;
	a.loop = AC_LOOP(0);
	run_on(1, ask_cb, &a);
	ck_assert(th_wait(finished, &g1, wait_ms()));
	ck_assert_int_eq(g1.calls, g.by_loop[0]);
	ck_assert_int_eq(g1.by_loop[1], 0);
	ck_assert_int_eq(g1.done_loop, 1);

	/* From a thread that is not a loop: done on the last loop. */
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP_ALL, gather_fn,
					  gather_done, &gf), 0);
	ck_assert(th_wait(finished, &gf, wait_ms()));
	ck_assert_int_eq(gf.calls, 16);
	ck_assert_int_eq(gf.done_loop, 1);
	ck_assert_int_eq(gf.done_err, 0);
	finish();
}
END_TEST

START_TEST(runtime_conns_done_learns_that_the_requester_closed)
{
	struct gather g = {0};
	struct askq a = {&g, AC_LOOP_ALL, 1};

	two_loops_of_conns();
	run_on(0, ask_cb, &a);
	ck_assert(th_wait(finished, &g, wait_ms()));
	ck_assert_int_eq(g.done_err, 0);
	ck_assert_int_eq(g.done_loop, 0);
	ck_assert(!g.requester_live);
	ck_assert_int_eq(g.requester_errno, ESTALE);
	finish();
}
END_TEST

static int64_t never_calls; /* atomic */

static void never_fn(ac_conn_t *c, void *arg)
{
	__atomic_fetch_add(&never_calls, 1, __ATOMIC_RELAXED);
}

static void never_done(int err, void *arg)
{
	__atomic_fetch_add(&never_calls, 100, __ATOMIC_RELAXED);
}

static void default_loop_cb(void *p)
{
	struct gather *g = p;

	g->rc = ac_runtime_conns(rt, AC_LOOP_DEFAULT, gather_fn, gather_done, g);
}

START_TEST(runtime_conns_refuses_bad_arguments_and_ends_with_the_runtime)
{
	struct gather g = {0}, gd = {0};
	ac_config_t cfg = {.loops = 2};

	two_loops_of_conns();
	ck_assert_int_eq(ac_runtime_conns(NULL, AC_LOOP_ALL, never_fn,
					  never_done, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP_ALL, NULL, never_done,
					  NULL), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_conns(rt, 1, never_fn, never_done, NULL),
			 AC_EINVAL); /* a raw index */
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP(2), never_fn,
					  never_done, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_conns(rt, -2, never_fn, never_done, NULL),
			 AC_EINVAL);
	/* AC_LOOP_DEFAULT: the calling loop; off-loop there is none. */
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP_DEFAULT, never_fn,
					  never_done, NULL), AC_EINVAL);
	run_on(1, default_loop_cb, &gd);
	ck_assert_int_eq(gd.rc, 0);
	ck_assert(th_wait(finished, &gd, wait_ms()));
	ck_assert_int_eq(gd.by_loop[0], 0);
	ck_assert_int_ge(gd.by_loop[1], 4);
	ck_assert_int_eq(gd.done_loop, 1);
	/* done may be NULL. */
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP_ALL, never_fn, NULL,
					  NULL), 0);
	ck_assert(th_wait_ge(&never_calls, 16, wait_ms()));
	usleep(20 * 1000);
	ck_assert_int_eq(__atomic_load_n(&never_calls, __ATOMIC_RELAXED), 16);
	/* Stopped: refused, and nothing runs. */
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	__atomic_store_n(&never_calls, 0, __ATOMIC_RELAXED);
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP_ALL, never_fn,
					  never_done, NULL), AC_ESHUTDOWN);
	finish();
	ck_assert_int_eq(__atomic_load_n(&never_calls, __ATOMIC_RELAXED), 0);

	/* Asked of a runtime that never ran: done hears of the stop, on
	 * the stopping thread, and fn never runs. */
	ck_assert((rt = ac_runtime_new(&cfg)) != NULL);
	ck_assert_int_eq(ac_runtime_conns(rt, AC_LOOP_ALL, gather_fn,
					  gather_done, &g), 0);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(g.done_calls, 1);
	ck_assert_int_eq(g.done_err, AC_ESHUTDOWN);
	ck_assert_int_eq(g.done_loop, -1);
	ck_assert_int_eq(g.calls, 0);
	finish();
}
END_TEST

/* ---- the thread rules ---------------------------------------------------------------------- */

struct threadq {
	ac_handle_t other; /* a handle another loop owns */
	int info_rc, label_rc, perm_errno, none_errno;
	ac_conn_t *perm, *none;
};

static void wrong_loop_cb(void *p)
{
	struct threadq *q = p;

	errno = 0;
	q->perm = ac_handle_conn(rt, q->other);
	q->perm_errno = errno;
	errno = 0;
	q->none = ac_handle_conn(rt, AC_HANDLE_NONE);
	q->none_errno = errno;
}

struct conn_get {
	ac_handle_t h;
	ac_conn_t *c;
};

static void get_cb(void *p)
{
	struct conn_get *x = p;

	x->c = ac_handle_conn(rt, x->h);
}

START_TEST(owner_calls_refuse_other_threads_and_bad_arguments)
{
	struct threadq q = {0};
	struct conn_get cg = {AC_HANDLE_NONE, NULL};
	struct infoq iq = {0};
	ac_handle_t h0 = AC_HANDLE_NONE;
	ac_conn_info_t i;
	ac_conn_t *c;

	two_loops_of_conns();
	/* A client of loop 0 (cli_h is in the order they opened, which the
	 * loops decide). */
	for (int k = 0; k < 8 && h0 == AC_HANDLE_NONE; k++)
		if (AC_HANDLE_LOOP(cli_h[k]) == 0)
			h0 = cli_h[k];
	ck_assert_uint_ne(h0, AC_HANDLE_NONE);
	cg.h = h0;
	iq.h = h0;
	run_on(0, info_cb, &iq);
	ck_assert_int_eq(iq.rc, 0);
	errno = 0;
	ck_assert_ptr_null(ac_handle_conn(rt, h0));
	ck_assert_int_eq(errno, EPERM);
	ck_assert_ptr_null(ac_handle_conn(NULL, h0));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(ac_conn_info(NULL, &i), AC_EINVAL);
	ck_assert_int_eq(ac_conn_set_label(NULL, "x"), AC_EINVAL);
	/* On loop 1, a handle of loop 0. */
	q.other = h0;
	run_on(1, wrong_loop_cb, &q);
	ck_assert_ptr_null(q.perm);
	ck_assert_int_eq(q.perm_errno, EPERM);
	ck_assert_ptr_null(q.none);
	ck_assert_int_eq(q.none_errno, EINVAL);
	/* The pointer itself, taken on its loop, misused from here. */
	run_on(0, get_cb, &cg);
	c = cg.c;
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(ac_conn_info(c, &i), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_set_label(c, "x"), AC_ETHREAD);
	finish();
}
END_TEST

/* ---- ac_handle_info racing the owner (run under TSan) ---------------------------------------- */

#define READERS 3
#define WRITERS 4
#define STRESS_MS 1500

static int stress_stop; /* atomic */
static int64_t reads_ok, reads_stale, bad; /* atomic */

static void *reader(void *arg)
{
	uint64_t last_frames[MAXC] = {0};

	while (!__atomic_load_n(&stress_stop, __ATOMIC_ACQUIRE)) {
		int64_t n = __atomic_load_n(&srv_opened, __ATOMIC_ACQUIRE);

		for (int64_t k = 0; k < n && k < MAXC; k++) {
			ac_handle_t h = __atomic_load_n(&srv_h[k],
							__ATOMIC_RELAXED);
			ac_conn_info_t i;
			int rc = ac_handle_info(rt, h, &i);

			if (rc == AC_ESTALE) {
				__atomic_fetch_add(&reads_stale, 1,
						   __ATOMIC_RELAXED);
				continue;
			}
			/* A connection's counts only grow, and its facts
			 * are whole. */
			if (rc != 0 || i.handle != h ||
			    i.frames_in < last_frames[k] ||
			    i.family != AF_INET ||
			    strncmp(i.peer_str, "127.0.0.1:", 10) != 0)
				__atomic_fetch_add(&bad, 1, __ATOMIC_RELAXED);
			last_frames[k] = i.frames_in;
			__atomic_fetch_add(&reads_ok, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* A client that sends lines and reads the echoes, then closes and
 * reconnects, so readers also meet closed connections. */
static void *writer(void *arg)
{
	char buf[4096];

	while (!__atomic_load_n(&stress_stop, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&srv_opened, __ATOMIC_RELAXED) < MAXC - WRITERS) {
		int fd = th_dial_tcp("127.0.0.1", port, 0);

		if (fd < 0)
			break;
		/* Under valgrind fewer: the stress must see reconnects. */
		for (int r = 0; r < (slow() ? 10 : 200); r++) {
			if (!th_send_all(fd, "0123456789\nabc\n", 15) ||
			    !th_read_full(fd, buf, 15))
				break;
		}
		close(fd);
	}
	return NULL;
}

/* The owner keeps relabelling and reading its own connections' facts
 * while the readers pin them. */
static void relabel_fn(ac_conn_t *c, void *arg)
{
	ac_conn_info_t i;

	ac_conn_set_label(c, (*(int *)arg)++ % 2 ? "odd" : "even");
	ac_conn_info(c, &i);
}

static void relabel_tick(void *arg)
{
	static __thread int k; /* each loop its own */

	ac_loop_conns(rt, relabel_fn, &k);
}

START_TEST(handle_info_readers_race_the_owner_without_a_data_race)
{
	pthread_t r[READERS], w[WRITERS];
	uint64_t t0;

	start(2, NULL);
	for (int i = 0; i < READERS; i++)
		ck_assert_int_eq(pthread_create(&r[i], NULL, reader, NULL), 0);
	for (int i = 0; i < WRITERS; i++)
		ck_assert_int_eq(pthread_create(&w[i], NULL, writer, NULL), 0);
	t0 = th_now_ms();
	/* At least STRESS_MS, and on until the writers have reconnected
	 * (slow under valgrind), up to the longest wait. */
	while (th_now_ms() - t0 < STRESS_MS ||
	       (__atomic_load_n(&srv_opened, __ATOMIC_ACQUIRE) <= WRITERS &&
		th_now_ms() - t0 < (uint64_t)wait_ms())) {
		for (int l = 0; l < 2; l++)
			ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(l),
						      relabel_tick, NULL), 0);
		usleep(5000);
	}
	__atomic_store_n(&stress_stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	for (int i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);
	ck_assert_int_eq(bad, 0);
	ck_assert_int_gt(reads_ok, slow() ? 50 : 1000);
	ck_assert_int_gt(srv_opened, WRITERS);
	finish();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("intro");
	TCase *tc = tcase_create("intro");

	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, owner_info_describes_both_ends_of_a_tcp_connection);
	tcase_add_test(tc, unix_socket_info_reports_path_and_peer_credentials);
	tcase_add_test(tc, frames_and_bytes_are_counted_both_ways);
	tcase_add_test(tc, idle_grows_while_silent_and_only_reads_reset_it);
	tcase_add_test(tc, labels_are_copied_bounded_and_cleared);
	tcase_add_test(tc, an_outbound_connection_keeps_its_label_across_reconnects);
	tcase_add_test(tc, loop_conns_visits_every_connection_and_fn_may_close_them);
	tcase_add_test(tc, runtime_conns_gathers_every_loop_and_answers_on_the_caller);
	tcase_add_test(tc, runtime_conns_done_learns_that_the_requester_closed);
	tcase_add_test(tc, runtime_conns_refuses_bad_arguments_and_ends_with_the_runtime);
	tcase_add_test(tc, owner_calls_refuse_other_threads_and_bad_arguments);
	tcase_add_test(tc, handle_info_readers_race_the_owner_without_a_data_race);
	suite_add_tcase(s, tc);
	return th_run(s);
}
