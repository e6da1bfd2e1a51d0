/*
 * test_fault.c: every allocation of a session fails in turn.
 *
 * Sessions (each a small but complete life of a runtime, from
 * ac_runtime_new to ac_runtime_free):
 *   echo      a TCP and a Unix listener, connections on both loops (one
 *             handed from loop 0 to loop 1), frames small and large (the
 *             partial-input path), 2 MiB replies (watermarks, soft limit,
 *             waiting for writability), shared buffers, heartbeats, a
 *             loop timer, loop-to-loop overflow, and from another thread
 *             ac_send, ac_tell, ac_send_buf, ac_handle_info, ac_watch, a
 *             registry entry and two group publishes; a close by the
 *             peer, by ac_close, a flushing close with 2 MiB queued, and
 *             the stop;
 *   slow      the overflow retry of an idle loop, a flushing close to a
 *             peer that reads nothing (linger), a stop with such a peer
 *             (grace): timers that only matter when something is slow;
 *   outbound  ac_connect by name, a reconnect, a pool.
 *
 * The sweep runs a session clean to count its allocation attempts (K: the
 * library's own and, through ac__fault_hook_libevent, libevent's), then
 * again for every N in 1..K (plus a margin) with attempt N failing, each
 * in a fresh child process so that a crash or a hang names its N; then
 * again with every attempt from N on failing (out of memory for good).
 * Each run must keep every promise: no crash and no hang; every call
 * returns 0 or an AC_E* code; each connection works or is closed (the
 * client sees every echo, or EOF); every message a call accepted arrives
 * or is counted as dropped; every on_open has one on_close; an accepted
 * watch runs once; and after ac_runtime_free every live count, ours and
 * libevent's, is zero.
 *
 * To chase one run: AC_FAULT_SESSION=name AC_FAULT_N=n (AC_FAULT_PERSIST=1
 * for the persistent kind; AC_FAULT_TRACE=1 prints the stack of each
 * injected failure: resolve it with addr2line -e tests/test_fault).
 * AC_FAULT_SESSION alone sweeps one session; AC_FAULT_VERBOSE=1 prints
 * every run.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "testhelp.h"

#ifndef AC_FAULT_INJECTION

int main(void)
{
	printf("test_fault: SKIP: the allocation failure hook is not compiled "
	       "in (configure --enable-fault-injection)\n");
	return 77; /* SKIP for automake's test driver */
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#define LD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STEP_MS 3000      /* longest wait for one step of a session */
#define CHILD_MS 20000    /* a child slower than this has hung */
#define BIG (100 * 1024)  /* a frame larger than one read */

static uint64_t cur_n;
static int cur_persist;
static const char *session_name(void);

/* A broken promise: say which, for which N, and end the child. */
static void broken(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void broken(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s N=%llu%s: ", session_name(),
		(unsigned long long)cur_n, cur_persist ? " (and later)" : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

#define REQUIRE(cond, ...)                                                    \
	do {                                                                  \
		if (!(cond))                                                  \
			broken(__VA_ARGS__);                                    \
	} while (0)

/* One of the library's codes (the table in actorconn.h names them). */
static bool known_code(int r)
{
	return r == 0 || strcmp(ac_err_name(r), "AC_E???") != 0;
}

/* 0 or one of the library's codes, nothing else. */
static void code_ok(const char *what, int r)
{
	REQUIRE(known_code(r), "%s returned %d, not 0 or an AC_E* code", what,
		r);
}

/* ---- the server's side --------------------------------------------------- */

#define MAXC 8
static int64_t opened, closed_n;           /* atomic */
static int64_t close_count[MAXC];          /* atomic */
static int reasons[MAXC];
static ac_handle_t handles[MAXC];          /* atomic */
static bool is_unix[MAXC];
static int64_t watch_runs, watch_reason;   /* atomic */
static int64_t app_failures;               /* writes refused: we aborted */
static ac_group_t *grp;

static int idx(ac_conn_t *c) { return (int)(intptr_t)ac_conn_data(c); }

static void opened_one(ac_conn_t *c, bool unix_peer)
{
	int64_t i = __atomic_fetch_add(&opened, 1, __ATOMIC_ACQ_REL);

	REQUIRE(i < MAXC, "too many connections");
	ac_conn_set_data(c, (void *)(intptr_t)i);
	is_unix[i] = unix_peer;
	/* Release: a reader that sees the handle sees is_unix. */
	__atomic_store_n(&handles[i], ac_conn_handle(c), __ATOMIC_RELEASE);
}

static void on_open_plain(ac_conn_t *c)
{
	opened_one(c, false);
}

static void on_open_unix(ac_conn_t *c)
{
	opened_one(c, true);
}

static void tick(ac_conn_t *c, void *arg) {}
static void tick_plain(void *arg) {}

static void on_open_tcp(ac_conn_t *c)
{
	ac_timer_t *t;

	opened_one(c, false);
	/* Owned things that must die with the connection. */
	errno = 0;
	t = ac_conn_timer(c, 60000, 1, tick, NULL);
	REQUIRE(t || errno == ENOMEM, "ac_conn_timer: errno %d", errno);
	if (grp)
		code_ok("ac_group_join", ac_group_join(grp, c));
}

/* A write the library refused: the application gives up on the
 * connection, as a real one would. */
static void refused(ac_conn_t *c, const char *what, int r)
{
	code_ok(what, r);
	__atomic_fetch_add(&app_failures, 1, __ATOMIC_RELAXED);
	ac_conn_close(c, AC_CLOSE_ABORT);
}

static void write_len32(ac_conn_t *c, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)len);
	int r;

	if ((r = ac_conn_write(c, &n, 4)) || (r = ac_conn_write(c, data, len)))
		refused(c, "ac_conn_write", r);
}

#define BULK (2u << 20)   /* output well past the socket buffers */
#define CHUNK (64u << 10)
static unsigned char chunk[CHUNK];

static int64_t bulks; /* atomic: "bulk" frames queued */

static void on_drain(ac_conn_t *c) {}

/* "bulk": 2 MiB as one frame, written a chunk at a time (output goes
 * over out_high and the soft limit, and waits for writability); "bulk-
 * close" then closes with AC_CLOSE_FLUSH (linger); "buf": a shared
 * buffer; anything else is echoed. */
static void on_frame_tcp(ac_conn_t *c, const void *data, size_t len)
{
	bool bulk = len == 4 && !memcmp(data, "bulk", 4);
	bool bulk_close = len == 10 && !memcmp(data, "bulk-close", 10);
	int r;

	if (bulk || bulk_close) {
		uint32_t n = htonl(BULK);
		if ((r = ac_conn_write(c, &n, 4))) {
			refused(c, "ac_conn_write", r);
			return;
		}
		for (unsigned i = 0; i < BULK / CHUNK; i++)
			if ((r = ac_conn_write(c, chunk, CHUNK))) {
				refused(c, "ac_conn_write", r);
				return;
			}
		if (bulk_close)
			ac_conn_close(c, AC_CLOSE_FLUSH);
		else
			__atomic_fetch_add(&bulks, 1, __ATOMIC_RELEASE);
		return;
	}
	if (len == 3 && !memcmp(data, "buf", 3)) {
		ac_buf_t *b = ac_buf_new("\0\0\0\x06shared", 10);
		if (!b) {
			REQUIRE(errno == ENOMEM, "ac_buf_new: errno %d", errno);
			refused(c, "ac_buf_new", AC_ENOMEM);
			return;
		}
		if ((r = ac_conn_write_buf(c, b)))
			refused(c, "ac_conn_write_buf", r);
		ac_buf_unref(b);
		return;
	}
	write_len32(c, data, len);
}

static void on_frame_line(ac_conn_t *c, const void *data, size_t len)
{
	int r;

	if ((r = ac_conn_write(c, data, len)) || (r = ac_conn_write(c, "\n", 1)))
		refused(c, "ac_conn_write", r);
}

static void on_message(ac_conn_t *c, int kind, void *payload)
{
	write_len32(c, payload, strlen(payload));
	free(payload);
}

static void on_close(ac_conn_t *c, int reason)
{
	int i = idx(c);

	reasons[i] = reason;
	__atomic_fetch_add(&close_count[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&closed_n, 1, __ATOMIC_RELEASE);
}

static void on_watch(ac_handle_t h, int reason, void *arg)
{
	__atomic_store_n(&watch_reason, reason, __ATOMIC_RELAXED);
	__atomic_fetch_add(&watch_runs, 1, __ATOMIC_RELEASE);
}

/* On loop 0: a one-shot timer whose function posts a burst to loop 1,
 * more than its ring holds, so the rest waits in the overflow list. */
#define BURST 150
static int64_t burst_accepted, burst_ran, burst_done; /* atomic */

static void burst_one(void *arg)
{
	__atomic_fetch_add(&burst_ran, 1, __ATOMIC_RELEASE);
}

static void burst_fire(void *arg)
{
	ac_runtime_t *rt = arg;

	for (int i = 0; i < BURST; i++) {
		int r = ac_loop_post(rt, AC_LOOP(1), burst_one, NULL);
		code_ok("ac_loop_post from a loop", r);
		REQUIRE(r != AC_EAGAIN, "a loop producer got AC_EAGAIN");
		if (r == 0)
			__atomic_fetch_add(&burst_accepted, 1, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&burst_done, 1, __ATOMIC_RELEASE);
}

/* On loop 1: stay busy until loop 0's burst is over, so that the ring
 * fills the same way in every run (bounded: 2 s). */
static void hold_until_burst_done(void *arg)
{
	for (uint64_t end = th_now_ms() + 2000;
	     !__atomic_load_n(&burst_done, __ATOMIC_ACQUIRE) && th_now_ms() < end;)
		sched_yield();
}

static void burst_start(void *arg)
{
	errno = 0;
	if (!ac_timer_start(arg, 5, 0, burst_fire, arg)) {
		REQUIRE(errno == ENOMEM, "ac_timer_start: errno %d", errno);
		__atomic_store_n(&burst_done, 1, __ATOMIC_RELEASE);
	}
}

static int64_t posted[2];
static void mark(void *p) { __atomic_store_n((int64_t *)p, 1, __ATOMIC_RELEASE); }

/* ---- the client's side (no Check asserts: this runs in a child) ---------- */

/* A client connection and what it has received. */
struct cli {
	int fd;
	bool closed; /* saw EOF or a reset */
	unsigned char *in;
	size_t len, cap;
};

/* fd: what th_dial_tcp or th_dial_unix returned. */
static void cli_open(struct cli *k, int fd)
{
	/* No loop could take the listening sockets (refused), or the one we
	 * reached gave its socket up (reset): the client is closed. */
	REQUIRE(fd >= 0 || fd == -ECONNREFUSED || fd == -ECONNRESET,
		"connect: %s", strerror(-fd));
	memset(k, 0, sizeof(*k));
	k->fd = fd < 0 ? -1 : fd;
	k->closed = fd < 0;
	k->cap = 4 * BIG;
	k->in = malloc(k->cap);
	REQUIRE(k->in, "malloc");
}

static void cli_free(struct cli *k)
{
	if (k->fd >= 0)
		close(k->fd);
	free(k->in);
	k->fd = -1;
	k->in = NULL;
}

/* Sends everything, or notices the server is gone. */
static void cli_send(struct cli *k, const void *p, size_t n)
{
	if (!k->closed && !th_send_all(k->fd, p, n))
		k->closed = true;
}

static void cli_send_len32(struct cli *k, const void *p, size_t n)
{
	uint32_t be = htonl((uint32_t)n);

	cli_send(k, &be, 4);
	cli_send(k, p, n);
}

/* Reads what is there, waiting up to ms for something; false on timeout. */
static bool cli_pump(struct cli *k, int ms)
{
	struct pollfd p = {.fd = k->fd, .events = POLLIN};
	ssize_t r;

	if (k->closed)
		return true;
	if (poll(&p, 1, ms) <= 0)
		return false;
	if (k->len == k->cap) {
		k->cap *= 2;
		k->in = realloc(k->in, k->cap);
		REQUIRE(k->in, "realloc");
	}
	r = recv(k->fd, k->in + k->len, k->cap - k->len, MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
		k->closed = true;
	else if (r > 0)
		k->len += (size_t)r;
	return true;
}

/* Takes one len32 frame off the input if complete. */
static bool cli_frame(struct cli *k, unsigned char **data, size_t *n)
{
	uint32_t be;
	static unsigned char *held;

	if (k->len < 4)
		return false;
	memcpy(&be, k->in, 4);
	*n = ntohl(be);
	if (k->len < 4 + *n)
		return false;
	free(held);
	held = malloc(*n + 1);
	REQUIRE(held, "malloc");
	memcpy(held, k->in + 4, *n);
	held[*n] = 0;
	memmove(k->in, k->in + 4 + *n, k->len - 4 - *n);
	k->len -= 4 + *n;
	*data = held;
	return true;
}

/* Takes one line off the input if complete. */
static bool cli_line(struct cli *k, char *out, size_t cap)
{
	unsigned char *nl = memchr(k->in, '\n', k->len);
	size_t n;

	if (!nl)
		return false;
	n = (size_t)(nl - k->in);
	REQUIRE(n < cap, "line too long");
	memcpy(out, k->in, n);
	out[n] = 0;
	memmove(k->in, nl + 1, k->len - n - 1);
	k->len -= n + 1;
	return true;
}

/* Whether the server has closed or reset the connection, without reading
 * what it sent (POLLRDHUP: its FIN has arrived). */
static bool peer_gone(struct cli *k)
{
	struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};

	return k->closed ||
	       (poll(&p, 1, 0) == 1 &&
		(p.revents & (POLLRDHUP | POLLHUP | POLLERR)));
}

/* The expect_* functions wait for a reply: true if it came, false if the
 * server closed the connection instead; a hang is a failure. Between two
 * looks at the input: false if the connection is closed, else reads more,
 * and fails the run STEP_MS after start. */
static bool cli_more(struct cli *k, uint64_t start, const char *what)
{
	if (k->closed)
		return false;
	REQUIRE(th_now_ms() < start + STEP_MS,
		"%s: %zu bytes of output, then nothing and no close within "
		"%d ms (hang)", what, k->len, STEP_MS);
	cli_pump(k, 10);
	return true;
}

/* The echo of a len32 frame. */
static bool expect_frame(struct cli *k, const void *want, size_t n,
			 const char *what)
{
	uint64_t start = th_now_ms();
	unsigned char *d;
	size_t got;

	do {
		if (cli_frame(k, &d, &got)) {
			REQUIRE(got == n && memcmp(d, want, n) == 0,
				"%s: wrong echo (%zu bytes)", what, got);
			return true;
		}
	} while (cli_more(k, start, what));
	return false;
}

/* The echo of a line, past any heartbeats. */
static bool expect_line(struct cli *k, const char *want, const char *what)
{
	uint64_t start = th_now_ms();
	char line[64];

	do {
		while (cli_line(k, line, sizeof(line)))
			if (strcmp(line, "ping")) { /* not a heartbeat */
				REQUIRE(strcmp(line, want) == 0,
					"%s: wrong echo '%s'", what, line);
				return true;
			}
	} while (cli_more(k, start, what));
	return false;
}

/* The 2 MiB frame of "bulk". */
static bool expect_bulk(struct cli *k, const char *what)
{
	uint64_t start = th_now_ms();
	unsigned char *d;
	size_t got;

	do {
		if (cli_frame(k, &d, &got)) {
			REQUIRE(got == BULK, "%s: %zu bytes", what, got);
			for (size_t i = 0; i < got; i++)
				REQUIRE(d[i] == chunk[i % CHUNK],
					"%s: wrong byte at %zu", what, i);
			return true;
		}
	} while (cli_more(k, start, what));
	return false;
}

/* The end of the connection (what comes before it no longer matters). */
static void expect_eof(struct cli *k, const char *what)
{
	REQUIRE(k->closed || th_wait_eof(k->fd, STEP_MS),
		"%s: still open after %d ms", what, STEP_MS);
	k->closed = true;
	k->len = 0;
}

static uint64_t dropped_now(ac_runtime_t *rt)
{
	ac_stats_t st;

	REQUIRE(ac_stats(rt, &st, NULL, 0) == 2, "ac_stats");
	return st.dropped;
}

static bool wait_ge(const int64_t *p, int64_t want)
{
	return th_wait_ge(p, want, STEP_MS);
}

/* ---- from another thread ------------------------------------------------- */

struct foreign {
	ac_runtime_t *rt;
	ac_registry_t *reg;
	ac_handle_t h;
	int accepted;   /* messages queued for h that the client must see */
	bool watched;
	const char *tags[8];
};

static void drop_payload(void *p) { free(p); }

/* 1 once the foreign thread has queued its publishes; hold_drain keeps
 * the connection's loop in its drain until then (1 s at most). */
static int publishes_queued; /* atomic */

static void hold_drain(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000 && !__atomic_load_n(&publishes_queued,
						     __ATOMIC_ACQUIRE); i++)
		usleep(1000);
}

static void *foreign_calls(void *arg)
{
	struct foreign *f = arg;
	ac_conn_info_t info;
	ac_buf_t *b;
	char *p;
	int r;

	code_ok("ac_handle_info", ac_handle_info(f->rt, f->h, &info));
	if ((r = ac_send(f->rt, f->h, "\0\0\0\x04sent", 8)) == 0)
		f->tags[f->accepted++] = "sent";
	code_ok("ac_send", r);
	REQUIRE(p = strdup("told"), "strdup");
	if ((r = ac_tell(f->rt, f->h, 1, p, drop_payload)) == 0)
		f->tags[f->accepted++] = "told";
	else
		free(p); /* refused: still ours */
	code_ok("ac_tell", r);
	errno = 0;
	if ((b = ac_buf_new("\0\0\0\x08sent-buf", 12))) {
		if ((r = ac_send_buf(f->rt, f->h, b)) == 0)
			f->tags[f->accepted++] = "sent-buf";
		code_ok("ac_send_buf", r);
		ac_buf_unref(b);
	} else {
		REQUIRE(errno == ENOMEM, "ac_buf_new: errno %d", errno);
	}
	r = ac_watch(f->rt, f->h, AC_LOOP_DEFAULT, on_watch, NULL, NULL);
	code_ok("ac_watch", r);
	f->watched = r == 0;
	if (f->reg)
		code_ok("ac_registry_put",
			ac_registry_put(f->reg, "k", 1, f->h, AC_REG_REPLACE));
	/* Two publishes in a row, which the loop writes together when one
	 * drain finds both (group.c, ac__group_fan_flush): the loop waits
	 * in hold_drain until both are queued, so that it does. */
	__atomic_store_n(&publishes_queued, 0, __ATOMIC_RELAXED);
	r = ac_loop_post(f->rt, AC_HANDLE_LOOP(f->h), hold_drain, NULL);
	code_ok("ac_loop_post", r);
	for (int i = 0; i < 2; i++) {
		static const char *const frame[2] = {"\0\0\0\x09published",
						     "\0\0\0\x0apublished2"};

		errno = 0;
		if (!(b = ac_buf_new(frame[i], 13 + (size_t)i))) {
			REQUIRE(errno == ENOMEM, "ac_buf_new: errno %d", errno);
			continue;
		}
		if (grp) {
			r = ac_group_publish(grp, b);
			REQUIRE(r >= 0 || known_code(r),
				"ac_group_publish returned %d", r);
			if (r > 0)
				f->tags[f->accepted++] = frame[i] + 4;
		}
		ac_buf_unref(b);
	}
	__atomic_store_n(&publishes_queued, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* ---- the session --------------------------------------------------------- */

static char path[64]; /* the Unix listener's */

static void session_echo(void)
{
	static const ac_conn_cbs_t tcp_cbs = {.on_open = on_open_tcp,
					      .on_frame = on_frame_tcp,
					      .on_message = on_message,
					      .on_drain = on_drain,
					      .on_close = on_close};
	static const ac_conn_cbs_t unix_cbs = {.on_open = on_open_unix,
					       .on_frame = on_frame_line,
					       .on_close = on_close};
	/* Owned timers (idle, write timeout, soft limit), so that their
	 * allocations are swept; none of them fires within a session. */
	const ac_conn_opts_t tcp_opts = {.framing = AC_FRAME_LEN32,
					 .idle_timeout_ms = 60000,
					 .write_timeout_ms = 60000,
					 .out_low = 16 << 10,
					 .out_high = 128 << 10,
					 .out_soft_limit = 256 << 10,
					 .out_hard_limit = 4 << 20};
	/* Heartbeats that do fire: the ping is written every 20 ms. */
	const ac_conn_opts_t unix_opts = {.framing = AC_FRAME_LINE,
					  .heartbeat_ms = 20,
					  .ping = "ping\n",
					  .ping_len = 5};
	ac_config_t cfg = {.loops = 2, .mailbox_capacity = 64};
	ac_listener_t *lt = NULL, *lu = NULL;
	ac_registry_t *reg;
	ac_runtime_t *rt;
	struct foreign f = {0};
	struct cli t = {.fd = -1}, t2 = {.fd = -1};
	struct cli u[2] = {{.fd = -1}, {.fd = -1}};
	char addr[80];
	static unsigned char big[BIG];
	bool tcp_ok = false, u_ok[2] = {false, false};
	uint64_t drops0 = 0;
	int r, lu_ok = 0;

	snprintf(addr, sizeof(addr), "unix:%s", path);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 13);

	errno = 0;
	if (!(rt = ac_runtime_new(&cfg))) {
		REQUIRE(errno == ENOMEM, "ac_runtime_new: errno %d", errno);
		goto counts;
	}
	errno = 0;
	grp = ac_group_new(rt);
	REQUIRE(grp || errno == ENOMEM, "ac_group_new: errno %d", errno);
	errno = 0;
	reg = ac_registry_new(rt);
	REQUIRE(reg || errno == ENOMEM, "ac_registry_new: errno %d", errno);
	r = ac_listen(rt, "127.0.0.1:0", &tcp_cbs, &tcp_opts, NULL, &lt);
	code_ok("ac_listen tcp", r);
	if (r)
		lt = NULL;
	r = ac_listen(rt, addr, &unix_cbs, &unix_opts, NULL, &lu);
	code_ok("ac_listen unix", r);
	lu_ok = r == 0;
	code_ok("ac_runtime_start", ac_runtime_start(rt));
	/* Both loops have taken their listening sockets (control operations
	 * run before the mailbox). */
	for (int i = 0; i < 2; i++) {
		r = ac_loop_post(rt, AC_LOOP(i), mark, &posted[i]);
		code_ok("ac_loop_post", r);
		if (r == 0)
			REQUIRE(wait_ge(&posted[i], 1), "post never ran");
	}

	/* TCP: echo a small frame and a large one, then messages from
	 * another thread. */
	if (lt) {
		cli_open(&t, th_dial_tcp("127.0.0.1", ac_listener_port(lt), 0));
		cli_send_len32(&t, "hello", 5);
		tcp_ok = expect_frame(&t, "hello", 5, "tcp small");
		if (tcp_ok) {
			cli_send_len32(&t, big, sizeof(big));
			tcp_ok = expect_frame(&t, big, sizeof(big), "tcp big");
		}
		if (tcp_ok) {
			cli_send_len32(&t, "bulk", 4);
			tcp_ok = expect_bulk(&t, "tcp bulk");
		}
		if (tcp_ok) {
			cli_send_len32(&t, "buf", 3);
			tcp_ok = expect_frame(&t, "shared", 6, "tcp buf");
		}
		if (tcp_ok) {
			pthread_t th;

			f.rt = rt;
			f.reg = reg;
			f.h = __atomic_load_n(&handles[0], __ATOMIC_ACQUIRE);
			REQUIRE(f.h != AC_HANDLE_NONE, "echoed but no handle");
			drops0 = dropped_now(rt);
			REQUIRE(pthread_create(&th, NULL, foreign_calls, &f) == 0,
				"pthread_create");
			pthread_join(th, NULL);
			/* Each accepted message arrives (in order), or is
			 * counted as dropped, or the connection was given up. */
			int got = 0, next = 0;
			uint64_t end = th_now_ms() + STEP_MS;
			for (;;) {
				unsigned char *data;
				size_t len;
				uint64_t dr;

				if (cli_frame(&t, &data, &len)) {
					while (next < f.accepted &&
					       strcmp((char *)data, f.tags[next]))
						next++;
					REQUIRE(next < f.accepted,
						"unexpected frame '%s'", data);
					next++;
					got++;
					continue;
				}
				dr = dropped_now(rt) - drops0;
				REQUIRE(got + dr <= (uint64_t)f.accepted,
					"%d accepted, %d arrived, %llu dropped",
					f.accepted, got, (unsigned long long)dr);
				if (got + dr == (uint64_t)f.accepted)
					break;
				if (t.closed) {
					tcp_ok = false;
					break;
				}
				REQUIRE(th_now_ms() < end,
					"%d messages accepted, %d arrived, %llu "
					"counted dropped, the rest lost (hang)",
					f.accepted, got, (unsigned long long)dr);
				cli_pump(&t, 5);
			}
		}
	}

	/* Unix: the first connection stays on loop 0, the second is handed
	 * to loop 1 through the mailbox. */
	if (lu_ok) {
		for (int i = 0; i < 2; i++) {
			cli_open(&u[i], th_dial_unix(path));
			cli_send(&u[i], "line\n", 5);
			u_ok[i] = expect_line(&u[i], "line", "unix echo");
		}
	}

	/* A loop timer, and loop 0 posting more to loop 1 than its ring
	 * holds: each accepted post runs once. */
	code_ok("ac_loop_post", ac_loop_post(rt, AC_LOOP(1), hold_until_burst_done, NULL));
	r = ac_loop_post(rt, AC_LOOP(0), burst_start, rt);
	code_ok("ac_loop_post", r);
	if (r == 0) {
		REQUIRE(wait_ge(&burst_done, 1), "burst never finished (hang)");
		REQUIRE(wait_ge(&burst_ran, burst_accepted),
			"%lld of %lld accepted posts ran (hang)",
			(long long)burst_ran, (long long)burst_accepted);
	}

	/* A flushing close with 2 MiB queued: all of it, then EOF. */
	if (lt) {
		cli_open(&t2, th_dial_tcp("127.0.0.1", ac_listener_port(lt), 0));
		cli_send_len32(&t2, "bulk-close", 10);
		if (expect_bulk(&t2, "tcp bulk-close"))
			expect_eof(&t2, "after bulk-close");
	}

	/* Endings: the peer closes one, ac_close another; TCP stays open for
	 * the stop. */
	if (u_ok[0]) {
		int64_t before = __atomic_load_n(&closed_n, __ATOMIC_ACQUIRE);
		close(u[0].fd);
		u[0].fd = -1;
		REQUIRE(wait_ge(&closed_n, before + 1),
			"peer closed, no on_close (hang)");
	}
	if (u_ok[1]) {
		/* The Unix connection still open. */
		for (int k = 0; k < opened; k++) {
			ac_handle_t h = __atomic_load_n(&handles[k],
							__ATOMIC_ACQUIRE);
			if (h && is_unix[k] && !close_count[k])
				code_ok("ac_close",
					ac_close(rt, h, AC_CLOSE_FLUSH));
		}
		expect_eof(&u[1], "after ac_close");
	}
	if (reg) {
		ac_handle_t h;
		code_ok("ac_registry_get", ac_registry_get(reg, "k", 1, &h));
	}
	if (grp) {
		ac_group_free(grp);
		grp = NULL;
	}
	r = ac_stats_prometheus(rt, NULL, 0);
	REQUIRE(r > 0 || r == AC_ENOMEM, "ac_stats_prometheus: %d", r);

	code_ok("ac_runtime_stop", ac_runtime_stop(rt, 1000));
	if (tcp_ok)
		expect_eof(&t, "tcp after stop");
	if (reg)
		ac_registry_free(reg);
	if (lt)
		ac_listener_close(lt);
	ac_runtime_free(rt);

counts:
	if (f.watched)
		REQUIRE(watch_runs == 1, "accepted watch ran %lld times",
			(long long)watch_runs);
	cli_free(&t);
	cli_free(&t2);
	cli_free(&u[0]);
	cli_free(&u[1]);
}

/*
 * The timers a connection or a loop needs only when something goes
 * slowly: the overflow retry of a loop that has nothing else to do, the
 * linger of a flushing close to a peer that does not read, and the grace
 * of a stop. None may be lost to a failed allocation, or something waits
 * for ever. Each runs on a loop with no other timer (a runtime of its
 * own), so arming it is what makes libevent grow its timer heap, and no
 * heartbeat or idle timer wakes the loop to mask a lost one.
 */
#define HUGE_MB 16 /* far more than the socket buffers hold */
static unsigned char mib[1 << 20];

static void on_frame_slow(ac_conn_t *c, const void *data, size_t len)
{
	bool close_after = len == 10 && !memcmp(data, "huge-close", 10);
	int r;

	for (int i = 0; i < HUGE_MB; i++)
		if ((r = ac_conn_write(c, mib, sizeof(mib)))) {
			refused(c, "ac_conn_write", r);
			return;
		}
	if (close_after)
		ac_conn_close(c, AC_CLOSE_FLUSH);
	__atomic_fetch_add(&bulks, 1, __ATOMIC_RELEASE);
}

static ac_listener_t *mute_l;

/* Another mute client of mute_l's runtime, which sends cmd; returns once
 * the command is handled. */
static void mute_again(ac_runtime_t *rt, const char *cmd, struct cli *k)
{
	int64_t want = __atomic_load_n(&bulks, __ATOMIC_ACQUIRE) + 1;

	/* A client that reads nothing, with a receive buffer too small for
	 * the kernel to take the output off the server's hands. */
	cli_open(k, th_dial_tcp("127.0.0.1", ac_listener_port(mute_l),
				 4096));
	cli_send_len32(k, cmd, strlen(cmd));
	/* Queued (or refused, which closes), or the connection is gone. */
	for (uint64_t end = th_now_ms() + STEP_MS;
	     __atomic_load_n(&bulks, __ATOMIC_ACQUIRE) < want && !peer_gone(k) &&
	     !__atomic_load_n(&app_failures, __ATOMIC_ACQUIRE);
	     usleep(1000))
		REQUIRE(th_now_ms() < end, "%s neither queued nor refused "
					   "(hang)", cmd);
}

/* One loop, one listener, one mute client that sends cmd; returns the
 * runtime (NULL if it could not be made) with the command handled. */
static ac_runtime_t *mute_peer(const char *cmd, struct cli *k,
			       unsigned linger_ms)
{
	static const ac_conn_cbs_t cbs = {.on_open = on_open_plain,
					  .on_frame = on_frame_slow,
					  .on_close = on_close};
	const ac_conn_opts_t o = {.framing = AC_FRAME_LEN32,
				  .linger_ms = linger_ms,
				  .out_hard_limit = 64 << 20,
				  .out_soft_limit = 64 << 20};
	ac_runtime_t *rt;
	int r;

	errno = 0;
	if (!(rt = ac_runtime_new(&(ac_config_t){.loops = 1}))) {
		REQUIRE(errno == ENOMEM, "ac_runtime_new: errno %d", errno);
		return NULL;
	}
	r = ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &mute_l);
	code_ok("ac_listen", r);
	if (r)
		mute_l = NULL;
	code_ok("ac_runtime_start", ac_runtime_start(rt));
	if (r == 0)
		mute_again(rt, cmd, k);
	return rt;
}

/* A flushing close of 16 MiB to a peer that reads nothing: over after
 * linger_ms. Part of the slow session, and swept on its own too. */
static void session_linger(void)
{
	struct cli a = {.fd = -1};
	ac_runtime_t *rt;

	if ((rt = mute_peer("huge-close", &a, 20))) {
		int64_t want = __atomic_load_n(&opened, __ATOMIC_ACQUIRE);
		for (uint64_t end = th_now_ms() + STEP_MS;
		     __atomic_load_n(&closed_n, __ATOMIC_ACQUIRE) < want;
		     usleep(1000))
			REQUIRE(th_now_ms() < end,
				"flushing close to a peer that does not read "
				"outlived its linger (hang)");
		ac_runtime_free(rt);
	}
	cli_free(&a);
}

static void session_slow(void)
{
	ac_config_t cfg = {.loops = 2, .mailbox_capacity = 64};
	struct cli b = {.fd = -1};
	ac_runtime_t *rt;
	int r;

	/* Loop 0 posts more to loop 1 than the ring holds, with nothing
	 * else to wake it: only its overflow retry timer moves the rest. */
	errno = 0;
	if ((rt = ac_runtime_new(&cfg))) {
		code_ok("ac_runtime_start", ac_runtime_start(rt));
		code_ok("ac_loop_post",
			ac_loop_post(rt, AC_LOOP(1), hold_until_burst_done, NULL));
		r = ac_loop_post(rt, AC_LOOP(0), burst_fire, rt);
		code_ok("ac_loop_post", r);
		if (r == 0) {
			REQUIRE(wait_ge(&burst_done, 1),
				"burst never finished (hang)");
			REQUIRE(wait_ge(&burst_ran, burst_accepted),
				"%lld of %lld accepted posts ran (hang)",
				(long long)burst_ran, (long long)burst_accepted);
		}
		ac_runtime_free(rt);
	} else {
		REQUIRE(errno == ENOMEM, "ac_runtime_new: errno %d", errno);
	}

	session_linger();

	/* 16 MiB for a peer that reads nothing, then a stop: over after the
	 * grace (the child's alarm catches a stop that never ends). */
	if ((rt = mute_peer("huge", &b, 20))) {
		code_ok("ac_runtime_stop", ac_runtime_stop(rt, 20));
		ac_runtime_free(rt);
	}
	cli_free(&b);
}

/*
 * Outbound connections and a pool, to a listener of the same runtime: an
 * ac_connect that says hello, is closed by the server, reconnects and
 * says hello again, then is closed with ac_close; a pool that lends a
 * connection for one request and is freed. Every accepted ac_connect
 * ends with exactly one final on_close, every attempt with one on_close,
 * every accepted acquire's callback runs exactly once.
 */
static int64_t ob_opens, ob_closes, ob_finals, ob_echoes; /* atomic */
static int64_t acq_cbs, acq_done, pool_echoes;             /* atomic */
static ac_pool_t *pool;

static void ob_open(ac_conn_t *c)
{
	uint32_t n = htonl(5);
	int r;

	__atomic_fetch_add(&ob_opens, 1, __ATOMIC_RELEASE);
	if ((r = ac_conn_write(c, &n, 4)) || (r = ac_conn_write(c, "hello", 5)))
		refused(c, "ac_conn_write", r);
}

static void ob_frame(ac_conn_t *c, const void *data, size_t len)
{
	REQUIRE(len == 5 && !memcmp(data, "hello", 5), "outbound: wrong echo");
	__atomic_fetch_add(&ob_echoes, 1, __ATOMIC_RELEASE);
}

static void ob_close(ac_conn_t *c, int reason)
{
	REQUIRE(known_code(reason), "outbound: reason %d", reason);
	__atomic_fetch_add(&ob_closes, 1, __ATOMIC_RELEASE);
	if (!ac_conn_reconnecting(c))
		__atomic_fetch_add(&ob_finals, 1, __ATOMIC_RELEASE);
}

static void pool_frame(ac_conn_t *c, const void *data, size_t len)
{
	__atomic_fetch_add(&pool_echoes, 1, __ATOMIC_RELEASE);
	code_ok("ac_pool_release", ac_pool_release(pool, c, AC_POOL_REUSE));
	__atomic_store_n(&acq_done, 1, __ATOMIC_RELEASE);
}

static void pool_close(ac_conn_t *c, int reason)
{
	/* Borrowed and closed before the echo: give it back, end the wait. */
	code_ok("ac_pool_release", ac_pool_release(pool, c, AC_POOL_DISCARD));
	__atomic_store_n(&acq_done, 1, __ATOMIC_RELEASE);
}

static void acquired(ac_conn_t *c, int err, void *arg)
{
	uint32_t n = htonl(4);
	int r;

	REQUIRE(__atomic_add_fetch(&acq_cbs, 1, __ATOMIC_ACQ_REL) == 1,
		"acquire callback ran twice");
	if (!c) {
		REQUIRE(err < 0 && known_code(err), "acquire: err %d", err);
		__atomic_store_n(&acq_done, 1, __ATOMIC_RELEASE);
		return;
	}
	REQUIRE(err == 0, "acquire: a connection and err %d", err);
	if ((r = ac_conn_write(c, &n, 4)) || (r = ac_conn_write(c, "pool", 4))) {
		code_ok("ac_conn_write", r);
		code_ok("ac_pool_release",
			ac_pool_release(pool, c, AC_POOL_DISCARD));
		__atomic_store_n(&acq_done, 1, __ATOMIC_RELEASE);
	}
}

static int64_t acquire_rc = 1; /* atomic: 1 until the post ran */

static void acquire_on_loop(void *arg)
{
	int r = ac_pool_acquire(pool, acquired, NULL);

	code_ok("ac_pool_acquire", r);
	if (r)
		__atomic_store_n(&acq_done, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&acquire_rc, r, __ATOMIC_RELEASE);
}

/* The outbound session, over TLS when srv_tls and cli_tls are given. */
static void outbound_body(ac_tls_t *srv_tls, ac_tls_t *cli_tls)
{
	static const ac_conn_cbs_t srv_cbs = {.on_open = on_open_plain,
					      .on_frame = on_frame_tcp,
					      .on_close = on_close};
	static const ac_conn_cbs_t ob_cbs = {.on_open = ob_open,
					     .on_frame = ob_frame,
					     .on_close = ob_close};
	const ac_conn_opts_t srv_opts = {.framing = AC_FRAME_LEN32,
					 .tls = srv_tls};
	const ac_conn_opts_t ob_opts = {.framing = AC_FRAME_LEN32,
					.tls = cli_tls,
					.connect_timeout_ms = 1000,
					.reconnect_min_ms = 10,
					.reconnect_max_ms = 40,
					.reconnect_max_attempts = 5};
	ac_pool_opts_t po = {.max_per_loop = 2,
			     .min_idle_per_loop = 1,
			     .acquire_timeout_ms = 1000,
			     .conn = {.framing = AC_FRAME_LEN32,
				      .tls = cli_tls,
				      .connect_timeout_ms = 1000},
			     .cbs = {.on_frame = pool_frame,
				     .on_close = pool_close}};
	ac_config_t cfg = {.loops = 2};
	ac_listener_t *l;
	ac_runtime_t *rt;
	ac_handle_t h;
	char addr[64], name[64];
	int r;

	errno = 0;
	if (!(rt = ac_runtime_new(&cfg))) {
		REQUIRE(errno == ENOMEM, "ac_runtime_new: errno %d", errno);
		return;
	}
	code_ok("ac_runtime_start", ac_runtime_start(rt));
	r = ac_listen(rt, "127.0.0.1:0", &srv_cbs, &srv_opts, NULL, &l);
	code_ok("ac_listen", r);
	if (r)
		goto stop;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ac_listener_port(l));
	for (int i = 0; i < 2; i++) {
		r = ac_loop_post(rt, AC_LOOP(i), mark, &posted[i]);
		code_ok("ac_loop_post", r);
		if (r == 0)
			REQUIRE(wait_ge(&posted[i], 1), "post never ran");
	}

	/* Hello, closed by the server, reconnect, hello again, close; by
	 * name, so that the resolver's allocations are swept too. */
	snprintf(name, sizeof(name), "localhost:%d", ac_listener_port(l));
	r = ac_connect(rt, name, &ob_cbs, &ob_opts, NULL, &h);
	code_ok("ac_connect", r);
	if (r == 0) {
		for (uint64_t end = th_now_ms() + STEP_MS;
		     !LD(ob_echoes) && !LD(ob_finals); usleep(1000))
			REQUIRE(th_now_ms() < end, "outbound: no echo and no "
						   "final close (hang)");
		if (!LD(ob_finals)) {
			/* The server's side of it closes: the client sees EOF
			 * and tries again. */
			for (int k = 0; k < opened; k++) {
				ac_handle_t sh_ = LD(handles[k]);
				if (sh_ && !LD(close_count[k]))
					code_ok("ac_close",
						ac_close(rt, sh_, AC_CLOSE_FLUSH));
			}
			for (uint64_t end = th_now_ms() + STEP_MS;
			     LD(ob_echoes) < 2 && !LD(ob_finals); usleep(1000))
				REQUIRE(th_now_ms() < end,
					"outbound: no second echo and no final "
					"close (hang)");
		}
		r = ac_close(rt, h, AC_CLOSE_FLUSH);
		REQUIRE(r == 0 || r == AC_ESTALE || r == AC_EAGAIN,
			"ac_close: %s", ac_err_name(r));
		if (r == 0 || r == AC_ESTALE)
			REQUIRE(wait_ge(&ob_finals, 1),
				"outbound: no final close (hang)");
	}

	/* One request through a pool. */
	errno = 0;
	if (!(pool = ac_pool_new(rt, addr, &po))) {
		REQUIRE(errno == ENOMEM, "ac_pool_new: errno %d", errno);
	} else {
		r = ac_loop_post(rt, AC_LOOP(0), acquire_on_loop, NULL);
		code_ok("ac_loop_post", r);
		if (r == 0)
			REQUIRE(wait_ge(&acq_done, 1),
				"pool: the acquire never ended (hang)");
		ac_pool_free(pool);
	}
stop:
	code_ok("ac_runtime_stop", ac_runtime_stop(rt, 1000));
	ac_runtime_free(rt);
	/* Exactly once, whatever failed. */
	if (r == 0 && LD(acquire_rc) == 0)
		REQUIRE(LD(acq_cbs) == 1, "acquire callback ran %lld times",
			(long long)LD(acq_cbs));
	if (cur_n == 0) /* the clean run did it all */
		REQUIRE(LD(ob_echoes) == 2 && LD(ob_finals) == 1 &&
				LD(pool_echoes) == 1,
			"clean run: %lld echoes, %lld final closes, %lld pool "
			"echoes",
			(long long)LD(ob_echoes), (long long)LD(ob_finals),
			(long long)LD(pool_echoes));
	REQUIRE(LD(ob_finals) <= 1, "outbound: %lld final closes",
		(long long)LD(ob_finals));
	REQUIRE(LD(ob_opens) <= LD(ob_closes),
		"outbound: %lld opens, %lld closes", (long long)LD(ob_opens),
		(long long)LD(ob_closes));
}

static void session_outbound(void)
{
	outbound_body(NULL, NULL);
}

/*
 * The outbound session over TLS: handshakes on both sides, a reconnect
 * that resumes its session, a pool's TLS connection. The contexts are
 * made before the numbering starts (child()), so the sweep covers what
 * connections allocate, OpenSSL's share included, not the one-time
 * loading of certificates.
 */
static ac_tls_t *tls_srv, *tls_cli;
static char certdir[64];

static void session_tls(void)
{
	ac_debug_counts_t d;

	outbound_body(tls_srv, tls_cli);
	ac_tls_free(tls_srv);
	ac_tls_free(tls_cli);
	ac_debug_counts(&d);
	REQUIRE(d.tls == 0, "leak: %lld TLS objects", (long long)d.tls);
}

static void make_tls_contexts(void)
{
	char cert[128], key[128], ca[128], why[256];
	ac_tls_opts_t so = {.role = AC_TLS_SERVER, .cert_file = cert,
			    .key_file = key};
	ac_tls_opts_t co = {.role = AC_TLS_CLIENT, .ca_file = ca};

	snprintf(cert, sizeof(cert), "%s/server.pem", certdir);
	snprintf(key, sizeof(key), "%s/server.key", certdir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
	tls_srv = ac_tls_new(&so, why, sizeof(why));
	REQUIRE(tls_srv, "ac_tls_new: %s", why);
	tls_cli = ac_tls_new(&co, why, sizeof(why));
	REQUIRE(tls_cli, "ac_tls_new: %s", why);
}

/* Regression sessions, swept on their own (see below); session_linger is
 * above. */

/* A peer that reads nothing, its output lingering for 10 s, seven loop
 * timers (with the linger timer they fill libevent's first timer heap, so
 * arming the grace timer grows it), and a stop with a grace of 20 ms. */
static int64_t timers_started; /* atomic */

static void seven_timers(void *rt)
{
	for (unsigned i = 0; i < 7; i++) {
		errno = 0;
		REQUIRE(ac_timer_start(rt, 60000 + i, 0, tick_plain, NULL) ||
				errno == ENOMEM,
			"ac_timer_start: errno %d", errno);
	}
	__atomic_store_n(&timers_started, 1, __ATOMIC_RELEASE);
}

static void session_grace(void)
{
	struct cli k = {.fd = -1};
	ac_runtime_t *rt;
	uint64_t t0;

	if (!(rt = mute_peer("huge", &k, 10000)))
		return;
	if (ac_loop_post(rt, AC_LOOP(0), seven_timers, rt) == 0)
		REQUIRE(wait_ge(&timers_started, 1), "post never ran");
	t0 = th_now_ms();
	code_ok("ac_runtime_stop", ac_runtime_stop(rt, 20));
	REQUIRE(th_now_ms() - t0 < 2000,
		"a stop with a grace of 20 ms took %llu ms",
		(unsigned long long)(th_now_ms() - t0));
	ac_runtime_free(rt);
	cli_free(&k);
}

static void (*const sessions[])(void) = {session_echo, session_slow,
					 session_outbound, session_tls,
					 session_linger, session_grace};
static const char *const session_names[] = {"echo", "slow", "outbound",
					    "tls", "linger", "grace"};
#define NSESSIONS 4 /* the sweep's; the others are regressions' */
#define S_TLS 3
#define S_LINGER 4
#define S_GRACE 5
static int cur_session;

static const char *session_name(void)
{
	return session_names[cur_session];
}

/* Runs one session in this (child) process with attempt n failing, then
 * checks what every session promises, and reports its attempts. */
static void child(int which, uint64_t n, int persist, int report_fd)
{
	ac_debug_counts_t d;

	cur_session = which;
	cur_n = n;
	cur_persist = persist;
	snprintf(path, sizeof(path), "/tmp/ac-fault-%d.sock", (int)getpid());
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (unsigned char)(i * 7 + 1);
	/* A hang ends as SIGALRM, with the default action: the handler
	 * inherited from Check's test process would kill its whole group. */
	signal(SIGALRM, SIG_DFL);
	alarm(CHILD_MS / 1000);
	if (which == S_TLS)
		make_tls_contexts();
	ac__fault_fail_nth(n, persist);
	sessions[which]();
	unlink(path);

	REQUIRE(burst_ran == burst_accepted, "%lld posts accepted, %lld ran",
		(long long)burst_accepted, (long long)burst_ran);
	/* Every on_open got exactly one on_close. */
	REQUIRE(__atomic_load_n(&closed_n, __ATOMIC_ACQUIRE) == opened,
		"%lld opened, %lld closed", (long long)opened,
		(long long)closed_n);
	for (int i = 0; i < opened; i++) {
		REQUIRE(close_count[i] == 1, "connection %d: %lld on_close", i,
			(long long)close_count[i]);
		REQUIRE(reasons[i] <= 0 && known_code(reasons[i]),
			"connection %d: reason %d", i, reasons[i]);
	}
	ac_debug_counts(&d);
	REQUIRE(d.conns == 0 && d.handles == 0 && d.messages == 0 &&
			d.listeners == 0 && d.timers == 0 && d.watches == 0 &&
			d.registry == 0 && d.buffers == 0 && d.groups == 0 &&
			d.other == 0,
		"leak: conns %lld handles %lld messages %lld listeners %lld "
		"timers %lld watches %lld registry %lld buffers %lld groups "
		"%lld other %lld",
		(long long)d.conns, (long long)d.handles, (long long)d.messages,
		(long long)d.listeners, (long long)d.timers,
		(long long)d.watches, (long long)d.registry,
		(long long)d.buffers, (long long)d.groups, (long long)d.other);
	/* libevent's own objects went with the runtime too. */
	REQUIRE(ac__fault_libevent_live() == 0,
		"leak: %lld libevent allocations not freed",
		(long long)ac__fault_libevent_live());
	if (report_fd >= 0) {
		uint64_t v[2] = {ac__fault_attempts(), ac__fault_failures()};
		REQUIRE(write(report_fd, v, sizeof(v)) == sizeof(v), "report");
	}
	_exit(0);
}

/* ---- the sweep ----------------------------------------------------------- */

struct outcome {
	int status;        /* 0: kept every promise */
	uint64_t attempts; /* allocation attempts in the run */
	uint64_t failures; /* of which failed */
};

static struct outcome run_one(int which, uint64_t n, int persist)
{
	struct outcome o = {1, 0, 0};
	uint64_t v[2], end;
	int p[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		child(which, n, persist, p[1]);
	}
	close(p[1]);
	/* The child's own alarm goes first; this is the backstop. */
	end = th_now_ms() + CHILD_MS + 5000;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (th_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(1000);
	}
	if (WIFSIGNALED(st))
		fprintf(stderr, "%s N=%llu%s: %s\n", session_names[which],
			(unsigned long long)n, persist ? " (and later)" : "",
			WTERMSIG(st) == SIGALRM || WTERMSIG(st) == SIGKILL
				? "hung (killed after the time limit)"
				: strsignal(WTERMSIG(st)));
	else if (WEXITSTATUS(st) == 0 && read(p[0], v, sizeof(v)) == sizeof(v))
		o = (struct outcome){0, v[0], v[1]};
	close(p[0]);
	return o;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* One sweep of one session: N from 1 up to k (the clean runs' attempts)
 * plus a margin, since thread timing (heartbeats, partial writes) moves a
 * few attempts between runs; every stride-th N, from first. */
static int sweep(int which, int persist, uint64_t k, uint64_t first,
		 uint64_t stride)
{
	uint64_t last = k + k / 10 + 10, injected = 0, t0 = th_now_ms();
	int bad = 0;

	for (uint64_t n = first; n <= last; n += stride) {
		struct outcome o = run_one(which, n, persist);

		bad += o.status != 0;
		injected += o.failures > 0;
		if (env("AC_FAULT_VERBOSE"))
			printf("%s N=%llu%s: %s, %llu attempts, %llu failed\n",
			       session_names[which], (unsigned long long)n,
			       persist ? " (and later)" : "",
			       o.status ? "BROKEN" : "ok",
			       (unsigned long long)o.attempts,
			       (unsigned long long)o.failures);
	}
	printf("fault sweep, %s session%s: N = %llu..%llu step %llu, failure "
	       "injected in %llu runs, %d broken, %.1f s\n",
	       session_names[which],
	       persist ? ", N and every later attempt failing" : "",
	       (unsigned long long)first, (unsigned long long)last,
	       (unsigned long long)stride, (unsigned long long)injected, bad,
	       (double)(th_now_ms() - t0) / 1000.0);
	return bad;
}

/* Both sweeps of a session, up to the largest of three clean runs. */
#define TLS_RUNS 400 /* runs of each TLS sweep */

static int sweep_session(int which)
{
	uint64_t k = 0, first = 1, stride = 1;
	int bad = 0;

	for (int i = 0; i < 3; i++) {
		struct outcome clean = run_one(which, 0, 0);

		ck_assert_msg(clean.status == 0,
			      "the %s session fails without faults",
			      session_names[which]);
		ck_assert_uint_eq(clean.failures, 0);
		if (clean.attempts > k)
			k = clean.attempts;
	}
	/* The TLS session makes thousands of attempts (OpenSSL's): it is
	 * sampled, every stride-th attempt from a random first one, so that
	 * runs over time cover them all; AC_FAULT_STRIDE=1 sweeps them all
	 * (hours). */
	if (which == S_TLS) {
		stride = env("AC_FAULT_STRIDE")
				 ? strtoull(env("AC_FAULT_STRIDE"), NULL, 10)
				 : k / TLS_RUNS + 1;
		if (!stride)
			stride = 1;
		first = env("AC_FAULT_FIRST")
				? strtoull(env("AC_FAULT_FIRST"), NULL, 10)
				: 1 + (uint64_t)getpid() % stride;
	}
	printf("fault sweep, %s session: a clean run makes up to %llu "
	       "allocation attempts\n",
	       session_names[which], (unsigned long long)k);
	if (stride > 1)
		printf("fault sweep, %s session: every %lluth from N = %llu "
		       "(AC_FAULT_FIRST=%llu AC_FAULT_STRIDE=%llu repeats "
		       "this)\n",
		       session_names[which], (unsigned long long)stride,
		       (unsigned long long)first, (unsigned long long)first,
		       (unsigned long long)stride);
	if (!env("AC_FAULT_PERSIST"))
		bad += sweep(which, 0, k, first, stride);
	bad += sweep(which, 1, k, first, stride);
	return bad;
}

START_TEST(every_allocation_failure_in_a_session_is_handled)
{
	int bad = 0;

	if (env("AC_FAULT_N")) {
		/* One run, to chase a failure: AC_FAULT_SESSION=echo|slow. */
		const char *name = env("AC_FAULT_SESSION");
		uint64_t n = strtoull(env("AC_FAULT_N"), NULL, 10);
		int persist = env("AC_FAULT_PERSIST") != NULL, which = 0;
		struct outcome o;

		for (int i = 0; name && i < (int)(sizeof(sessions) /
						   sizeof(sessions[0]));
		     i++)
			if (!strcmp(name, session_names[i]))
				which = i;
		o = run_one(which, n, persist);
		printf("%s N=%llu: %s, %llu attempts, %llu failed\n",
		       session_names[which], (unsigned long long)n,
		       o.status ? "BROKEN" : "ok",
		       (unsigned long long)o.attempts,
		       (unsigned long long)o.failures);
		ck_assert_int_eq(o.status, 0);
		return;
	}
	for (int which = 0; which < NSESSIONS; which++) {
		const char *only = env("AC_FAULT_SESSION");

#ifndef AC_HAVE_OPENSSL
		if (which == S_TLS)
			continue; /* built without TLS */
#endif
		if (!only || !strcmp(only, session_names[which]))
			bad += sweep_session(which);
	}
	ck_assert_msg(bad == 0, "%d runs broke a promise (see above)", bad);
}
END_TEST

/* ---- regressions ----------------------------------------------------------- */

/*
 * Bug: a loop that could not make the accept event for its SO_REUSEPORT
 * socket dropped it but left the socket listening, so the kernel kept
 * giving it about half of the connections, which then hung unaccepted.
 * Now the socket is closed: every connection reaches the other loop.
 * (Loop 1 is out of memory from the start here.)
 */
START_TEST(loop_that_cannot_take_a_listening_socket_closes_it_instead_of_hanging_connections)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LEN32};
	char buf[8];

	ac__fault_only_loop(1);
	ac__fault_fail_nth(1, 1);
	th_server_start(2, "127.0.0.1:0", &o);
	/* Control operations run before the mailbox: once this post has run,
	 * loop 1 has tried to take its socket. */
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(1), mark, &posted[1]), 0);
	ck_assert(th_wait_ge(&posted[1], 1, 5000));
	for (int i = 0; i < 32; i++) {
		int fd = th_connect_tcp("127.0.0.1", th_srv.port);
		th_send_frame(fd, AC_FRAME_LEN32, "ping", 4);
		ck_assert_msg(th_recv_frame(fd, AC_FRAME_LEN32, buf, sizeof(buf), 0) == 4,
			      "connection %d: no echo", i);
		close(fd);
	}
	ck_assert_uint_ge(ac__fault_failures(), 1);
	ck_assert(th_wait(th_closed_ge, (void *)32, 5000));
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(AC_HANDLE_LOOP(th_handle(i)), 0);
	ac__fault_fail_nth(0, 0);
	ac__fault_only_loop(-1);
	th_finish();
}
END_TEST

/* The same for a Unix listener, which has one socket, on loop 0: a client
 * is refused rather than left hanging. */
START_TEST(unix_listener_whose_loop_cannot_take_it_refuses_connections)
{
	char sock[64], addr[80];

	snprintf(sock, sizeof(sock), "/tmp/ac-fault-r-%d.sock", (int)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	ac__fault_only_loop(0);
	ac__fault_fail_nth(1, 1);
	th_server_start(2, addr, NULL);
	ck_assert_int_eq(ac_loop_post(th_srv.rt, AC_LOOP(0), mark, &posted[0]), 0);
	ck_assert(th_wait_ge(&posted[0], 1, 5000));
	ck_assert_int_eq(th_dial_unix(sock), -ECONNREFUSED);
	ac__fault_fail_nth(0, 0);
	ac__fault_only_loop(-1);
	th_finish();
	ck_assert_int_eq(th_srv.opened, 0);
}
END_TEST

/*
 * Bug: a loop whose ring to another loop was full put the message in its
 * overflow list and then armed the retry timer without checking; when
 * arming failed (libevent grows its timer heap), the message stayed in
 * the list until something else happened on that loop, for ever on an
 * idle one. Now the post is refused with AC_ENOMEM instead. Loop 0 posts
 * one message more than the ring to loop 1 holds; the first attempt on
 * loop 0 (the overflow node) succeeds, the second (the timer heap) fails.
 */
static int64_t warm, overflow_rc = 1, ran_posts, accepted_posts;

static void count_ran(void *arg)
{
	__atomic_fetch_add(&ran_posts, 1, __ATOMIC_RELEASE);
}

/* On loop 1: stay busy until loop 0 has posted (bounded: 2 s). */
static int64_t holding;
static void hold(void *arg)
{
	__atomic_store_n(&holding, 1, __ATOMIC_RELEASE);
	for (uint64_t end = th_now_ms() + 2000;
	     __atomic_load_n(&overflow_rc, __ATOMIC_ACQUIRE) == 1 &&
	     th_now_ms() < end;)
		sched_yield();
}

static void warm_ring(void *rt)
{
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(1), mark, &warm), 0);
}

static void fill_ring_and_one_more(void *rt)
{
	int r = 0;

	/* A ring of 64 slots holds 64 messages: the 65th overflows. */
	for (int i = 0; i < 65; i++)
		if ((r = ac_loop_post(rt, AC_LOOP(1), count_ran, NULL)) == 0)
			accepted_posts++;
	__atomic_store_n(&overflow_rc, r, __ATOMIC_RELEASE);
}

START_TEST(overflow_whose_retry_timer_cannot_be_armed_is_refused_not_stranded)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 2,
							 .mailbox_capacity = 64});

	ck_assert_int_eq(ac_runtime_start(rt), 0);
	/* Loop 0's ring to loop 1 exists; loop 1 stays busy for a moment so
	 * the ring fills. */
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), warm_ring, rt), 0);
	ck_assert(th_wait_ge(&warm, 1, 5000));
	ac__fault_only_loop(0);
	ac__fault_fail_nth(2, 0);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(1), hold, NULL), 0);
	ck_assert(th_wait_ge(&holding, 1, 5000));
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), fill_ring_and_one_more, rt), 0);
	for (uint64_t end = th_now_ms() + 5000;
	     __atomic_load_n(&overflow_rc, __ATOMIC_ACQUIRE) == 1;
	     usleep(1000))
		ck_assert(th_now_ms() < end);
	ck_assert_uint_eq(ac__fault_failures(), 1);
	ck_assert_int_eq(overflow_rc, AC_ENOMEM);
	ck_assert(th_wait_ge(&ran_posts, accepted_posts, 5000));
	usleep(20000);
	ck_assert_int_eq(ran_posts, accepted_posts);
	ac__fault_fail_nth(0, 0);
	ac__fault_only_loop(-1);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/*
 * Bug: a flushing close whose linger timer could not be made or armed
 * (evtimer_new, or libevent growing its timer heap) went on flushing with
 * no time limit: to a peer that never read, the connection stayed open
 * for ever. Now it is closed at once instead. Found by the slow session;
 * the linger session sweeps every allocation of just that close.
 */
START_TEST(flushing_close_whose_linger_timer_cannot_be_armed_closes_at_once)
{
	ck_assert_int_eq(sweep_session(S_LINGER), 0);
}
END_TEST

/*
 * Bug: a stop whose grace timer could not be armed (libevent growing its
 * timer heap) let connections flush for as long as their own linger_ms,
 * not grace_ms. Now they are closed at once instead.
 */
START_TEST(stop_whose_grace_timer_cannot_be_armed_still_ends_within_the_grace)
{
	ck_assert_int_eq(sweep_session(S_GRACE), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault");
	TCase *tc = tcase_create("fault");
	int rc;

	/* Before any other libevent call: libevent's allocations are
	 * numbered and failed with the library's own. */
	ac__fault_hook_libevent();
	if (env("AC_FAULT_TRACE"))
		ac__fault_trace(1);
	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, every_allocation_failure_in_a_session_is_handled);
	tcase_add_test(tc, loop_that_cannot_take_a_listening_socket_closes_it_instead_of_hanging_connections);
	tcase_add_test(tc, unix_listener_whose_loop_cannot_take_it_refuses_connections);
	tcase_add_test(tc, overflow_whose_retry_timer_cannot_be_armed_is_refused_not_stranded);
	tcase_add_test(tc, flushing_close_whose_linger_timer_cannot_be_armed_closes_at_once);
	tcase_add_test(tc, stop_whose_grace_timer_cannot_be_armed_still_ends_within_the_grace);
	suite_add_tcase(s, tc);
	if (!th_tls_certs(certdir, sizeof(certdir)))
		return 99;
	rc = th_run(s);
	th_tls_certs_remove(certdir);
	return rc;
}

#endif /* AC_FAULT_INJECTION */
