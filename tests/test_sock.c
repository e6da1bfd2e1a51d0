/* test_sock.c: socket control and sockets made elsewhere. The socket
 * options read back with getsockopt on accepted and outbound sockets,
 * and options out of range refused; half-close (the queued output, then
 * EOF, while the connection keeps reading); the gathered write, all or
 * nothing; adopting connected sockets and refusing what is not one, the
 * descriptor left as it was; listening on inherited sockets; systemd's
 * LISTEN_FDS, and the example servers started with it. */
#include "testhelp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

/* What the runtime logged, for the "says why" checks. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[8192];

static void capture_log(int level, const char *msg, void *arg)
{
	pthread_mutex_lock(&log_mu);
	strncat(log_text, msg, sizeof(log_text) - strlen(log_text) - 2);
	strcat(log_text, "\n");
	pthread_mutex_unlock(&log_mu);
}

static bool logged(const char *what)
{
	bool yes;

	pthread_mutex_lock(&log_mu);
	yes = strstr(log_text, what) != NULL;
	pthread_mutex_unlock(&log_mu);
	return yes;
}

static ac_runtime_t *new_rt(int loops, bool start)
{
	ac_config_t cfg = {.loops = loops, .log = capture_log};
	ac_runtime_t *rt = ac_runtime_new(&cfg);

	ck_assert_ptr_nonnull(rt);
	if (start)
		ck_assert_int_eq(ac_runtime_start(rt), 0);
	return rt;
}

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	ck_assert_msg(getsockopt(fd, level, name, &v, &len) == 0,
		      "getsockopt: %s", strerror(errno));
	return v;
}

/* A listening socket, made here as an inheriting process gets it:
 * TCP on 127.0.0.1 (port in *port), or Unix at path. */
static int listening_tcp(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static int listening_unix(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

/* A connected TCP pair over loopback: *client, and the accepted end. */
static int accepted_tcp(int *client)
{
	int port, lfd = listening_tcp(&port), fd;

	*client = th_connect_tcp("127.0.0.1", port);
	fd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(fd, 0);
	close(lfd);
	return fd;
}

static void unix_path(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/tmp/ac_sock_%s_%d", tag, (int)getpid());
}

/* fd is open, with exactly these file status and descriptor flags. */
static void assert_fd_as_it_was(int fd, int fl, int fdfl)
{
	ck_assert_int_eq(fcntl(fd, F_GETFL), fl);
	ck_assert_int_eq(fcntl(fd, F_GETFD), fdfl);
}

/* ---- what the connections saw ---------------------------------------------------- */

#define SLOTS 8
struct sockrec {
	int nodelay, keepalive, idle, intvl, cnt, user_timeout, sndbuf, rcvbuf;
};

static struct {
	int64_t opens, closes, frames; /* atomic */
	int64_t open_slot, close_slot; /* atomic: where the next one goes */
	struct sockrec rec[SLOTS];
	int64_t got[SLOTS];            /* atomic: rec[i] is written */
	int reasons[SLOTS];
	int loops[64];
	ac_handle_t handles[SLOTS];
	pthread_mutex_t in_mu;         /* loops may append at once */
	char in[256];                  /* what on_frame got, lines joined */
	size_t in_len;
	int64_t in_adopt_call;         /* atomic: inside ac_conn_adopt */
	int64_t open_during_call;      /* atomic: on_open ran inside it */
	/* half-close: what on_open writes before it shuts */
	size_t big;
	int after_write, second_shutdown, fd_in_close;
} S;

static void read_opts(int fd, struct sockrec *r)
{
	r->nodelay = getint(fd, IPPROTO_TCP, TCP_NODELAY);
	r->keepalive = getint(fd, SOL_SOCKET, SO_KEEPALIVE);
	r->idle = getint(fd, IPPROTO_TCP, TCP_KEEPIDLE);
	r->intvl = getint(fd, IPPROTO_TCP, TCP_KEEPINTVL);
	r->cnt = getint(fd, IPPROTO_TCP, TCP_KEEPCNT);
	r->user_timeout = getint(fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
	r->sndbuf = getint(fd, SOL_SOCKET, SO_SNDBUF);
	r->rcvbuf = getint(fd, SOL_SOCKET, SO_RCVBUF);
}

/* ud is the slot to record the socket's options in. */
static void rec_open(ac_conn_t *c)
{
	int slot = (int)(intptr_t)ac_conn_data(c);
	int fd = ac_conn_fd(c);

	ck_assert_int_ge(fd, 0);
	read_opts(fd, &S.rec[slot]);
	S.handles[slot] = ac_conn_handle(c);
	__atomic_store_n(&S.got[slot], 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&S.opens, 1, __ATOMIC_RELEASE);
}

/* Counts an open once its slot is written (S.opens: release). */
static void count_open(ac_conn_t *c)
{
	int64_t i = __atomic_fetch_add(&S.open_slot, 1, __ATOMIC_RELAXED);

	if (__atomic_load_n(&S.in_adopt_call, __ATOMIC_ACQUIRE))
		__atomic_store_n(&S.open_during_call, 1, __ATOMIC_RELEASE);
	if (i < 64)
		S.loops[i] = ac_loop_index();
	if (i < SLOTS)
		S.handles[i] = ac_conn_handle(c);
	__atomic_fetch_add(&S.opens, 1, __ATOMIC_RELEASE);
}

/* Appends a frame to S.in. */
static void keep_in(const void *data, size_t len)
{
	pthread_mutex_lock(&S.in_mu);
	if (S.in_len + len < sizeof(S.in)) {
		memcpy(S.in + S.in_len, data, len);
		S.in_len += len;
	}
	pthread_mutex_unlock(&S.in_mu);
}

/* Echoes a line, and keeps what it got. */
static void echo_line(ac_conn_t *c, const void *data, size_t len)
{
	/* Never a frame before on_open. */
	ck_assert_int_gt(__atomic_load_n(&S.opens, __ATOMIC_ACQUIRE), 0);
	keep_in(data, len);
	ck_assert_int_eq(ac_conn_write(c, data, len), 0);
	ck_assert_int_eq(ac_conn_write(c, "\n", 1), 0);
	__atomic_fetch_add(&S.frames, 1, __ATOMIC_RELEASE);
}

static void record_close(ac_conn_t *c, int reason)
{
	/* Two loops may close at once: each takes its own slot first, and
	 * counts itself only once the slot is written. */
	int64_t i = __atomic_fetch_add(&S.close_slot, 1, __ATOMIC_RELAXED);

	if (i < SLOTS)
		S.reasons[i] = reason;
	/* The socket is closed before on_close. */
	__atomic_store_n(&S.fd_in_close, ac_conn_fd(c), __ATOMIC_RELAXED);
	__atomic_fetch_add(&S.closes, 1, __ATOMIC_RELEASE);
}

static const ac_conn_cbs_t rec_cbs = {.on_open = rec_open,
				      .on_close = record_close};
static const ac_conn_cbs_t echo_cbs = {.on_open = count_open,
				       .on_frame = echo_line,
				       .on_close = record_close};

/* ---- options ------------------------------------------------------------------------ */

START_TEST(socket_options_read_back_on_accepted_and_outbound_sockets)
{
	ac_runtime_t *srv = new_rt(1, true), *cli = new_rt(1, true);
	ac_conn_opts_t so = {.nodelay = AC_OFF,
			     .keepalive_idle_s = 30,
			     .keepalive_intvl_s = 5,
			     .keepalive_cnt = 4,
			     .user_timeout_ms = 7000,
			     .sndbuf = 16384,
			     .rcvbuf = 24576,
			     .backlog = 7};
	ac_conn_opts_t co = {.keepalive = AC_ON,
			     .user_timeout_ms = 3000,
			     .sndbuf = 8192,
			     .rcvbuf = 12288};
	ac_listener_t *l, *dl;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	ac_handle_t h, dh;
	char addr[64];

	ck_assert_int_eq(ac_listen(srv, "127.0.0.1:0", &rec_cbs, &so,
				   (void *)(intptr_t)0, &l),
			 0);
	/* A listening socket's TCP_INFO holds its backlog in tcpi_sacked. */
	ck_assert_int_eq(getsockopt(l->fds[0], IPPROTO_TCP, TCP_INFO, &ti, &len),
			 0);
	ck_assert_int_eq(ti.tcpi_sacked, 7);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ac_listener_port(l));
	ck_assert_int_eq(ac_connect(cli, addr, &rec_cbs, &co,
				    (void *)(intptr_t)1, &h),
			 0);
	/* All defaults, on a second listener: TCP_NODELAY on, no keepalive,
	 * and the default backlog. */
	ck_assert_int_eq(ac_listen(srv, "127.0.0.1:0", &rec_cbs, NULL,
				   (void *)(intptr_t)2, &dl),
			 0);
	len = sizeof(ti);
	ck_assert_int_eq(getsockopt(dl->fds[0], IPPROTO_TCP, TCP_INFO, &ti,
				    &len),
			 0);
	ck_assert_uint_gt(ti.tcpi_sacked, 7);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ac_listener_port(dl));
	ck_assert_int_eq(ac_connect(cli, addr, &rec_cbs, NULL,
				    (void *)(intptr_t)3, &dh),
			 0);
	for (int i = 0; i < 4; i++)
		ck_assert(th_wait_ge(&S.got[i], 1, 5000));

	/* The listener's: set on the accepted socket. The kernel doubles
	 * the buffer sizes it is given. */
	ck_assert_int_eq(S.rec[0].nodelay, 0);
	ck_assert_int_eq(S.rec[0].keepalive, 1);
	ck_assert_int_eq(S.rec[0].idle, 30);
	ck_assert_int_eq(S.rec[0].intvl, 5);
	ck_assert_int_eq(S.rec[0].cnt, 4);
	ck_assert_int_eq(S.rec[0].user_timeout, 7000);
	ck_assert_int_eq(S.rec[0].sndbuf, 2 * 16384);
	ck_assert_int_eq(S.rec[0].rcvbuf, 2 * 24576);
	/* The outbound connection's. */
	ck_assert_int_eq(S.rec[1].nodelay, 1);
	ck_assert_int_eq(S.rec[1].keepalive, 1);
	ck_assert_int_eq(S.rec[1].user_timeout, 3000);
	ck_assert_int_eq(S.rec[1].sndbuf, 2 * 8192);
	ck_assert_int_eq(S.rec[1].rcvbuf, 2 * 12288);
	/* Defaults, both sides. */
	for (int i = 2; i < 4; i++) {
		ck_assert_int_eq(S.rec[i].nodelay, 1);
		ck_assert_int_eq(S.rec[i].keepalive, 0);
		ck_assert_int_eq(S.rec[i].user_timeout, 0);
	}
	ac_runtime_free(cli);
	ac_runtime_free(srv);
	th_assert_no_live_objects();
}
END_TEST

/* Unix sockets take the buffer sizes and skip the TCP options, which
 * would fail there: the connection opens. */
static void unix_open(ac_conn_t *c)
{
	int fd = ac_conn_fd(c);

	S.rec[0].sndbuf = getint(fd, SOL_SOCKET, SO_SNDBUF);
	__atomic_store_n(&S.got[0], 1, __ATOMIC_RELEASE);
}

START_TEST(unix_sockets_take_buffer_sizes_and_skip_tcp_options)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {.on_open = unix_open};
	ac_conn_opts_t o = {.nodelay = AC_ON,
			    .keepalive_idle_s = 10,
			    .user_timeout_ms = 1000,
			    .sndbuf = 32768};
	char path[108], addr[120];
	ac_listener_t *l;
	int fd;

	unix_path(path, sizeof(path), "opts");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	ck_assert_int_eq(ac_listen(rt, addr, &cbs, &o, NULL, &l), 0);
	fd = th_connect_unix(path);
	ck_assert(th_wait_ge(&S.got[0], 1, 5000));
	ck_assert_int_eq(S.rec[0].sndbuf, 2 * 32768);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(socket_options_out_of_range_are_refused_and_logged)
{
	static const struct {
		ac_conn_opts_t o;
		const char *why; /* in the log line */
	} bad[] = {
		{{.nodelay = 3}, "nodelay"},
		{{.keepalive = -1}, "keepalive"},
		{{.keepalive = AC_OFF, .keepalive_idle_s = 5}, "AC_OFF"},
		{{.keepalive_idle_s = 32768}, "keepalive_idle_s"},
		{{.keepalive_intvl_s = (unsigned)-1}, "keepalive_intvl_s"},
		{{.keepalive_cnt = 128}, "keepalive_cnt"},
		{{.user_timeout_ms = (unsigned)INT_MAX + 1u}, "user_timeout_ms"},
		{{.sndbuf = -1}, "sndbuf"},
		{{.rcvbuf = INT_MAX / 2 + 1}, "rcvbuf"},
		{{.backlog = -1}, "backlog"},
	};
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {0};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ac_pool_opts_t po = {.conn = bad[i].o};
		ac_listener_t *l = NULL;
		ac_handle_t h = 1;
		int sv[2], fl, fdfl;

		log_text[0] = '\0';
		ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &bad[i].o,
					   NULL, &l),
				 AC_EINVAL);
		ck_assert_msg(logged(bad[i].why), "case %zu: log '%s'", i,
			      log_text);
		ck_assert_int_eq(ac_connect(rt, "127.0.0.1:1", &cbs, &bad[i].o,
					    NULL, &h),
				 AC_EINVAL);
		ck_assert_uint_eq(h, AC_HANDLE_NONE);
		errno = 0;
		ck_assert_ptr_null(ac_pool_new(rt, "127.0.0.1:1", &po));
		ck_assert_int_eq(errno, EINVAL);
		/* Refused before the descriptor changes hands. */
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		fl = fcntl(sv[0], F_GETFL);
		fdfl = fcntl(sv[0], F_GETFD);
		ck_assert_int_eq(ac_conn_adopt(rt, sv[0], &cbs, &bad[i].o, NULL,
					       &h),
				 AC_EINVAL);
		assert_fd_as_it_was(sv[0], fl, fdfl);
		close(sv[0]);
		close(sv[1]);
	}
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- half-close -------------------------------------------------------------------- */

static void shut_open(ac_conn_t *c)
{
	static char chunk[65536];

	memset(chunk, 'x', sizeof(chunk));
	for (size_t n = 0; n < S.big; n += sizeof(chunk))
		ck_assert_int_eq(ac_conn_write(c, chunk, sizeof(chunk)), 0);
	ck_assert_int_eq(ac_conn_write(c, "end\n", 4), 0);
	ck_assert_int_eq(ac_conn_shutdown(c), 0);
	S.after_write = ac_conn_write(c, "late", 4);
	S.second_shutdown = ac_conn_shutdown(c);
	/* Still open, the output queued. */
	ck_assert_int_ge(ac_conn_out_bytes(c), (ssize_t)S.big);
	count_open(c); /* what it saw is written */
}

static void shut_frame(ac_conn_t *c, const void *data, size_t len)
{
	keep_in(data, len);
	/* Reading goes on; writing stays refused. */
	ck_assert_int_eq(ac_conn_write(c, "x", 1), AC_ESTATE);
	__atomic_fetch_add(&S.frames, 1, __ATOMIC_RELEASE);
}

START_TEST(half_close_sends_the_queued_output_then_eof_and_keeps_reading)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {.on_open = shut_open,
			     .on_frame = shut_frame,
			     .on_close = record_close};
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	size_t got = 0;
	ac_listener_t *l;
	char buf[65536], tail[5] = {0};
	int fd;

	S.big = (size_t)2 << 20; /* more than the socket buffers hold */
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	fd = th_dial_tcp("127.0.0.1", ac_listener_port(l), 16384);
	ck_assert_int_ge(fd, 0);
	ck_assert(th_wait_ge(&S.opens, 1, 5000));
	/* Every byte queued before the shutdown, then the end of stream. */
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		got += (size_t)n;
		/* The last 4 bytes so far, which may span two reads. */
		for (ssize_t i = n > 4 ? n - 4 : 0; i < n; i++) {
			memmove(tail, tail + 1, 3);
			tail[3] = buf[i];
		}
	}
	ck_assert_uint_eq(got, S.big + 4);
	ck_assert_str_eq(tail, "end\n");
	ck_assert_int_eq(S.after_write, AC_ESTATE);
	ck_assert_int_eq(S.second_shutdown, 0);
	/* The peer may still send, and the connection reads it. */
	th_write_all(fd, "after\n", 6);
	ck_assert(th_wait_ge(&S.frames, 1, 5000));
	pthread_mutex_lock(&S.in_mu);
	ck_assert_int_eq(memcmp(S.in, "after", 5), 0);
	pthread_mutex_unlock(&S.in_mu);
	ck_assert_int_eq(__atomic_load_n(&S.closes, __ATOMIC_ACQUIRE), 0);
	/* Then the peer closes: the usual end. */
	close(fd);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], AC_EEOF);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* A shutdown with nothing queued: EOF at once; then ac_conn_close. */
static void shut_now_open(ac_conn_t *c)
{
	count_open(c);
	ck_assert_int_eq(ac_conn_shutdown(c), 0);
}

static void close_on_frame(ac_conn_t *c, const void *data, size_t len)
{
	__atomic_fetch_add(&S.frames, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(ac_conn_close(c, AC_CLOSE_FLUSH), 0);
	ck_assert_int_eq(ac_conn_shutdown(c), AC_ESTATE); /* closing */
}

START_TEST(half_close_with_nothing_queued_then_closed_by_this_side)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {.on_open = shut_now_open,
			     .on_frame = close_on_frame,
			     .on_close = record_close};
	ac_listener_t *l;
	char c;
	int fd;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, NULL, NULL, &l), 0);
	fd = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	ck_assert_int_eq(recv(fd, &c, 1, 0), 0); /* EOF, nothing before */
	th_write_all(fd, "x", 1);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], 0);
	ck_assert_int_eq(S.fd_in_close, AC_ESTATE);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

#ifdef AC_HAVE_OPENSSL
/* Under TLS: the server writes, shuts down (close_notify, then FIN), and
 * still reads what the client sends after it. */
static char certdir[64];
static int64_t tls_client_frames;

static void tls_srv_frame(ac_conn_t *c, const void *data, size_t len)
{
	if (len == 5 && !memcmp(data, "hello", 5)) {
		ck_assert_int_eq(ac_conn_write(c, "bye\n", 4), 0);
		ck_assert_int_eq(ac_conn_shutdown(c), 0);
		__atomic_fetch_add(&S.frames, 1, __ATOMIC_RELEASE);
	} else {
		shut_frame(c, data, len); /* counts it */
	}
}

static void tls_cli_open(ac_conn_t *c)
{
	ck_assert_int_eq(ac_conn_write(c, "hello\n", 6), 0);
}

static void tls_cli_frame(ac_conn_t *c, const void *data, size_t len)
{
	/* The server's bye, just before its close_notify: answered. */
	ck_assert_int_eq(ac_conn_write(c, "after\n", 6), 0);
	__atomic_fetch_add(&tls_client_frames, 1, __ATOMIC_RELEASE);
}

static int64_t tls_client_closes;
static int tls_client_reason;

static void tls_cli_close(ac_conn_t *c, int reason)
{
	tls_client_reason = reason;
	__atomic_fetch_add(&tls_client_closes, 1, __ATOMIC_RELEASE);
}

START_TEST(half_close_under_tls_sends_close_notify_and_keeps_reading)
{
	ac_runtime_t *srv = new_rt(1, true), *cli = new_rt(1, true);
	char cert[128], key[128], ca[128], addr[64];
	ac_tls_opts_t sto = {.role = AC_TLS_SERVER, .cert_file = cert,
			     .key_file = key};
	ac_tls_opts_t cto = {.role = AC_TLS_CLIENT, .ca_file = ca};
	ac_conn_cbs_t scbs = {.on_frame = tls_srv_frame,
			      .on_close = record_close};
	ac_conn_cbs_t ccbs = {.on_open = tls_cli_open,
			      .on_frame = tls_cli_frame,
			      .on_close = tls_cli_close};
	ac_conn_opts_t so = {.framing = AC_FRAME_LINE};
	ac_conn_opts_t co = {.framing = AC_FRAME_LINE, .tls_name = "localhost"};
	ac_listener_t *l;
	ac_handle_t h;

	snprintf(cert, sizeof(cert), "%s/server.pem", certdir);
	snprintf(key, sizeof(key), "%s/server.key", certdir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
	ck_assert_ptr_nonnull(so.tls = ac_tls_new(&sto, NULL, 0));
	ck_assert_ptr_nonnull(co.tls = ac_tls_new(&cto, NULL, 0));
	ck_assert_int_eq(ac_listen(srv, "127.0.0.1:0", &scbs, &so, NULL, &l), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ac_listener_port(l));
	ck_assert_int_eq(ac_connect(cli, addr, &ccbs, &co, NULL, &h), 0);
	/* hello, then after: read by the server past its own shutdown. */
	ck_assert(th_wait_ge(&S.frames, 2, 5000));
	pthread_mutex_lock(&S.in_mu);
	ck_assert_int_eq(memcmp(S.in, "after", 5), 0);
	pthread_mutex_unlock(&S.in_mu);
	/* The client heard the end (the close_notify) and closed in turn. */
	ck_assert(th_wait_ge(&tls_client_closes, 1, 5000));
	ck_assert_int_eq(tls_client_reason, AC_EEOF);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], AC_EEOF);
	ac_runtime_free(cli);
	ac_runtime_free(srv);
	ac_tls_free(so.tls);
	ac_tls_free(co.tls);
	th_assert_no_live_objects();
}
END_TEST

/* Both ends of a socketpair, adopted under TLS: one as the server, one as
 * the client (the roles come from the contexts). */
static int64_t tls_adopt_lines;
static char tls_adopt_version[16];

static void tls_hello_open(ac_conn_t *c)
{
	ck_assert_int_eq(ac_conn_write(c, "hello\n", 6), 0);
}

static void tls_got_echo(ac_conn_t *c, const void *data, size_t len)
{
	ac_tls_info_t ti;

	ck_assert_int_eq(len, 5);
	ck_assert_int_eq(memcmp(data, "hello", 5), 0);
	ck_assert_int_eq(ac_conn_tls_info(c, &ti), 0);
	memcpy(tls_adopt_version, ti.version, sizeof(tls_adopt_version));
	__atomic_fetch_add(&tls_adopt_lines, 1, __ATOMIC_RELEASE);
	ac_conn_close(c, AC_CLOSE_FLUSH);
}

START_TEST(adopt_both_ends_of_a_socketpair_under_tls)
{
	ac_runtime_t *rt = new_rt(2, true);
	char cert[128], key[128], ca[128];
	ac_tls_opts_t sto = {.role = AC_TLS_SERVER, .cert_file = cert,
			     .key_file = key};
	ac_tls_opts_t cto = {.role = AC_TLS_CLIENT, .ca_file = ca};
	ac_conn_cbs_t ccbs = {.on_open = tls_hello_open,
			      .on_frame = tls_got_echo};
	ac_conn_opts_t so = {.framing = AC_FRAME_LINE, .loop = AC_LOOP(0)};
	ac_conn_opts_t co = {.framing = AC_FRAME_LINE, .loop = AC_LOOP(1),
			     .tls_name = "localhost"};
	ac_handle_t hs, hc;
	int sv[2];

	snprintf(cert, sizeof(cert), "%s/server.pem", certdir);
	snprintf(key, sizeof(key), "%s/server.key", certdir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", certdir);
	ck_assert_ptr_nonnull(so.tls = ac_tls_new(&sto, NULL, 0));
	ck_assert_ptr_nonnull(co.tls = ac_tls_new(&cto, NULL, 0));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(ac_conn_adopt(rt, sv[0], &echo_cbs, &so, NULL, &hs), 0);
	ck_assert_int_eq(ac_conn_adopt(rt, sv[1], &ccbs, &co, NULL, &hc), 0);
	ck_assert(th_wait_ge(&tls_adopt_lines, 1, 5000));
	ck_assert_str_eq(tls_adopt_version, "TLSv1.3");
	/* The client closed after the echo; the server heard it end. */
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], AC_EEOF);
	ac_runtime_free(rt);
	ac_tls_free(so.tls);
	ac_tls_free(co.tls);
	th_assert_no_live_objects();
}
END_TEST
#endif

/* ---- gathered write ------------------------------------------------------------------ */

static void writev_open(ac_conn_t *c)
{
	static const char big[40000];
	struct iovec ok[] = {{(void *)"one ", 4},
			     {NULL, 0},
			     {(void *)"two ", 4},
			     {(void *)"three\n", 6}};
	struct iovec nullbase[] = {{(void *)"a", 1}, {NULL, 1}};
	struct iovec wrap[] = {{(void *)"a", SIZE_MAX}, {(void *)"b", 2}};

	count_open(c);
	ck_assert_int_eq(ac_conn_writev(c, ok, 4), 0);
	ck_assert_int_eq(ac_conn_out_bytes(c), 14);
	/* Bad input: refused, nothing queued, the connection open. */
	ck_assert_int_eq(ac_conn_writev(c, ok, -1), AC_EINVAL);
	ck_assert_int_eq(ac_conn_writev(c, NULL, 1), AC_EINVAL);
	ck_assert_int_eq(ac_conn_writev(c, nullbase, 2), AC_EINVAL);
	ck_assert_int_eq(ac_conn_writev(c, wrap, 2), AC_EINVAL);
	ck_assert_int_eq(ac_conn_writev(NULL, ok, 1), AC_EINVAL);
	ck_assert_int_eq(ac_conn_writev(c, NULL, 0), 0);
	ck_assert_int_eq(ac_conn_out_bytes(c), 14);
	ck_assert_int_eq(ac_conn_writable(c), 1);
	if (!S.big)
		return;
	/* At the hard limit (64 KiB here): up to it exactly is queued;
	 * one byte over and nothing is, and the connection goes. */
	struct iovec fill[] = {{(void *)big, sizeof(big)},
			       {(void *)big, 65536 - 14 - sizeof(big) - 1}};
	struct iovec over[] = {{(void *)"y", 1}, {(void *)"z", 1}};

	ck_assert_int_eq(ac_conn_writev(c, fill, 2), 0);
	ck_assert_int_eq(ac_conn_out_bytes(c), 65535);
	ck_assert_int_eq(ac_conn_writev(c, over, 2), AC_ESLOW);
	ck_assert_int_eq(ac_conn_out_bytes(c), 65535);
	ck_assert_int_eq(ac_conn_writev(c, over, 1), AC_ESTATE); /* closing */
}

START_TEST(writev_queues_the_buffers_in_order_and_refuses_bad_input)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {.on_open = writev_open, .on_close = record_close};
	ac_listener_t *l;
	char buf[15] = {0};
	int fd;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, NULL, NULL, &l), 0);
	fd = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	ck_assert(th_read_full(fd, buf, 14));
	ck_assert_str_eq(buf, "one two three\n");
	ck_assert_int_eq(__atomic_load_n(&S.closes, __ATOMIC_ACQUIRE), 0);
	close(fd);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(writev_over_the_hard_limit_queues_nothing_and_closes_eslow)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {.on_open = writev_open, .on_close = record_close};
	ac_conn_opts_t o = {.out_high = 16384, .out_hard_limit = 65536};
	ac_listener_t *l;
	int fd;

	S.big = 1;
	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, &o, NULL, &l), 0);
	fd = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], AC_ESLOW);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- adopting connected sockets --------------------------------------------------- */

START_TEST(adopt_a_socketpair_end_from_a_control_thread)
{
	ac_runtime_t *rt = new_rt(2, true);
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE, .loop = AC_LOOP(1)};
	ac_conn_info_t info;
	ac_handle_t h;
	char buf[8] = {0};
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(ac_conn_adopt(rt, sv[0], &echo_cbs, &o, NULL, &h), 0);
	ck_assert(h != AC_HANDLE_NONE);
	ck_assert_int_eq(AC_HANDLE_LOOP(h), 1);
	/* The library's now: non-blocking and close-on-exec. */
	ck_assert(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	ck_assert(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	ck_assert(th_wait_ge(&S.opens, 1, 5000));
	ck_assert_int_eq(S.loops[0], 1);
	ck_assert_int_eq(ac_handle_info(rt, h, &info), 0);
	ck_assert_int_eq(info.family, AF_UNIX);
	th_write_all(sv[1], "hi\n", 3);
	ck_assert(th_read_full(sv[1], buf, 3));
	ck_assert_str_eq(buf, "hi\n");
	close(sv[1]);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], AC_EEOF);
	ck_assert_int_eq(ac_send(rt, h, "x", 1), AC_ESTALE);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* Adoption on a loop: on_open comes after the call, never inside it. */
static struct {
	ac_runtime_t *rt;
	int fd;
	int err;
	ac_handle_t h;
	int64_t done; /* atomic */
} A;

static void adopt_on_loop(void *arg)
{
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE,
			    .keepalive_idle_s = 60};

	__atomic_store_n(&S.in_adopt_call, 1, __ATOMIC_RELEASE);
	A.err = ac_conn_adopt(A.rt, A.fd, &echo_cbs, &o, NULL, &A.h);
	__atomic_store_n(&S.in_adopt_call, 0, __ATOMIC_RELEASE);
	/* Not yet open: writes through the handle would be dropped; the
	 * socket already has its options. */
	if (A.err == 0)
		ck_assert_int_eq(getint(A.fd, IPPROTO_TCP, TCP_KEEPIDLE), 60);
	__atomic_store_n(&A.done, 1, __ATOMIC_RELEASE);
}

START_TEST(adopt_an_accepted_tcp_socket_on_a_loop_opens_after_the_call)
{
	ac_conn_info_t info;
	struct sockaddr_in me;
	socklen_t len = sizeof(me);
	char buf[8] = {0};
	int client;

	A.rt = new_rt(2, true);
	A.fd = accepted_tcp(&client);
	ck_assert_int_eq(getsockname(client, (struct sockaddr *)&me, &len), 0);
	/* Data already waiting is read only after on_open. */
	th_write_all(client, "early\n", 6);
	ck_assert_int_eq(ac_loop_post(A.rt, AC_LOOP(1), adopt_on_loop, NULL), 0);
	ck_assert(th_wait_ge(&A.done, 1, 5000));
	ck_assert_int_eq(A.err, 0);
	ck_assert_int_eq(AC_HANDLE_LOOP(A.h), 1); /* the calling loop */
	ck_assert(th_wait_ge(&S.frames, 1, 5000));
	ck_assert_int_eq(__atomic_load_n(&S.opens, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(S.open_during_call, 0);
	ck_assert(th_read_full(client, buf, 6));
	ck_assert_str_eq(buf, "early\n");
	ck_assert_int_eq(ac_handle_info(A.rt, A.h, &info), 0);
	ck_assert_int_eq(info.family, AF_INET);
	ck_assert_int_eq(((struct sockaddr_in *)&info.peer)->sin_port,
			 me.sin_port);
	close(client);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.reasons[0], AC_EEOF);
	ac_runtime_free(A.rt);
	th_assert_no_live_objects();
}
END_TEST

/* Each refused descriptor is left open and exactly as it was. */
static void assert_refused(ac_runtime_t *rt, int fd, int want)
{
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	ac_handle_t h = 1;

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(ac_conn_adopt(rt, fd, &echo_cbs, NULL, NULL, &h), want);
	ck_assert_uint_eq(h, AC_HANDLE_NONE);
	assert_fd_as_it_was(fd, fl, fdfl);
}

START_TEST(adopt_refuses_what_is_not_a_connected_stream_socket)
{
	ac_runtime_t *rt = new_rt(1, true);
	char path[] = "/tmp/ac_sock_fileXXXXXX";
	int p[2], file, port, lfd, udp, idle;
	char c = 0;

	/* A pipe: -ENOTSOCK, and it still works. */
	ck_assert_int_eq(pipe(p), 0);
	assert_refused(rt, p[0], -ENOTSOCK);
	assert_refused(rt, p[1], -ENOTSOCK);
	ck_assert_int_eq(write(p[1], "z", 1), 1);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'z');
	/* A regular file. */
	file = mkstemp(path);
	ck_assert_int_ge(file, 0);
	unlink(path);
	assert_refused(rt, file, -ENOTSOCK);
	/* A listening socket, a datagram socket, a socket not connected. */
	lfd = listening_tcp(&port);
	assert_refused(rt, lfd, AC_EINVAL);
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	assert_refused(rt, udp, AC_EINVAL);
	idle = socket(AF_INET, SOCK_STREAM, 0);
	assert_refused(rt, idle, -ENOTCONN);
	/* Not a descriptor at all. */
	ck_assert_int_eq(ac_conn_adopt(rt, -1, &echo_cbs, NULL, NULL,
				       &(ac_handle_t){0}),
			 -EBADF);
	ck_assert_int_eq(ac_conn_adopt(rt, 1000, &echo_cbs, NULL, NULL,
				       &(ac_handle_t){0}),
			 -EBADF);
	ck_assert_int_eq(ac_conn_adopt(rt, p[0], &echo_cbs, NULL, NULL, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_conn_adopt(NULL, p[0], &echo_cbs, NULL, NULL,
				       &(ac_handle_t){0}),
			 AC_EINVAL);
	close(p[0]);
	close(p[1]);
	close(file);
	close(lfd);
	close(udp);
	close(idle);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* From a loop of another runtime, or onto another loop: AC_ETHREAD. */
static void adopt_elsewhere(void *arg)
{
	int fl = fcntl(A.fd, F_GETFL);

	A.err = ac_conn_adopt(A.rt, A.fd, &echo_cbs, NULL, NULL, &A.h);
	ck_assert_int_eq(A.err, AC_ETHREAD); /* a loop of another runtime */
	ck_assert_int_eq(fcntl(A.fd, F_GETFL), fl);
	__atomic_store_n(&A.done, 1, __ATOMIC_RELEASE);
}

static void adopt_onto_other_loop(void *arg)
{
	ac_conn_opts_t o = {.loop = AC_LOOP(1)};
	int fl = fcntl(A.fd, F_GETFL);

	ck_assert_int_eq(ac_conn_adopt(A.rt, A.fd, &echo_cbs, &o, NULL, &A.h),
			 AC_ETHREAD);
	ck_assert_int_eq(fcntl(A.fd, F_GETFL), fl);
	__atomic_store_n(&A.done, 2, __ATOMIC_RELEASE);
}

START_TEST(adopt_from_the_wrong_thread_or_state_leaves_the_descriptor)
{
	ac_runtime_t *other = new_rt(1, true);
	ac_conn_opts_t bad_loop = {.loop = AC_LOOP(2)};
	int sv[2], fl, fdfl;
	ac_handle_t h;

	A.rt = new_rt(2, false);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	A.fd = sv[0];
	fl = fcntl(sv[0], F_GETFL);
	fdfl = fcntl(sv[0], F_GETFD);
	/* Not started yet. */
	ck_assert_int_eq(ac_conn_adopt(A.rt, sv[0], &echo_cbs, NULL, NULL, &h),
			 AC_ESTATE);
	ck_assert_int_eq(ac_runtime_start(A.rt), 0);
	ck_assert_int_eq(ac_conn_adopt(A.rt, sv[0], &echo_cbs, &bad_loop, NULL,
				       &h),
			 AC_EINVAL);
	ck_assert_int_eq(ac_loop_post(other, AC_LOOP(0), adopt_elsewhere, NULL), 0);
	ck_assert(th_wait_ge(&A.done, 1, 5000));
	ck_assert_int_eq(ac_loop_post(A.rt, AC_LOOP(0), adopt_onto_other_loop, NULL), 0);
	ck_assert(th_wait_ge(&A.done, 2, 5000));
	ck_assert_int_eq(ac_runtime_stop(A.rt, 0), 0);
	ck_assert_int_eq(ac_conn_adopt(A.rt, sv[0], &echo_cbs, NULL, NULL, &h),
			 AC_ESHUTDOWN);
	assert_fd_as_it_was(sv[0], fl, fdfl);
	ck_assert_int_eq(__atomic_load_n(&S.opens, __ATOMIC_ACQUIRE), 0);
	close(sv[0]);
	close(sv[1]);
	ac_runtime_free(A.rt);
	ac_runtime_free(other);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(adopt_over_the_runtime_limit_is_elimit_and_the_caller_keeps_it)
{
	ac_config_t cfg = {.loops = 1, .max_conns = 1};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	int a[2], b[2], fl, fdfl;
	ac_handle_t h;

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	ck_assert_int_eq(ac_conn_adopt(rt, a[0], &echo_cbs, NULL, NULL, &h), 0);
	fl = fcntl(b[0], F_GETFL);
	fdfl = fcntl(b[0], F_GETFD);
	ck_assert_int_eq(ac_conn_adopt(rt, b[0], &echo_cbs, NULL, NULL, &h),
			 AC_ELIMIT);
	assert_fd_as_it_was(b[0], fl, fdfl);
	/* The first one's place comes back when it closes. */
	close(a[1]);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(ac_conn_adopt(rt, b[0], &echo_cbs, NULL, NULL, &h), 0);
	close(b[1]);
	ck_assert(th_wait_ge(&S.closes, 2, 5000));
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ac_conn_fd's own rules. */
START_TEST(conn_fd_is_for_the_owner_loop_while_there_is_a_socket)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	int sv[2];
	ac_handle_t h;

	ck_assert_int_eq(ac_conn_fd(NULL), AC_EINVAL);
	ck_assert_int_eq(ac_conn_shutdown(NULL), AC_EINVAL);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(ac_conn_adopt(rt, sv[0], &echo_cbs, &o, NULL, &h), 0);
	ck_assert(th_wait_ge(&S.opens, 1, 5000));
	close(sv[1]);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ck_assert_int_eq(S.fd_in_close, AC_ESTATE);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* Wrong thread: the test's thread holds a connection pointer it must not
 * use; every call refuses it. */
static ac_conn_t *held;

static void hold_open(ac_conn_t *c)
{
	held = c;
	count_open(c);
}

START_TEST(owner_loop_calls_from_another_thread_are_ethread)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_cbs_t cbs = {.on_open = hold_open};
	struct iovec v = {(void *)"x", 1};
	int sv[2];
	ac_handle_t h;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(ac_conn_adopt(rt, sv[0], &cbs, NULL, NULL, &h), 0);
	ck_assert(th_wait_ge(&S.opens, 1, 5000));
	ck_assert_int_eq(ac_conn_fd(held), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_shutdown(held), AC_ETHREAD);
	ck_assert_int_eq(ac_conn_writev(held, &v, 1), AC_ETHREAD);
	close(sv[1]);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* Many threads adopt at once onto every loop, while the loops serve;
 * then more adopt while the runtime stops: each descriptor is the
 * library's (0) or still the caller's (an error), never lost nor closed
 * twice. */
#define ADOPTERS 4
#define PER_ADOPTER 64

struct adopter {
	ac_runtime_t *rt;
	bool stopping; /* a connection may be closed before it answers */
	pthread_t t;
};

static void *adopter(void *arg)
{
	struct adopter *a = arg;
	ac_runtime_t *rt = a->rt;
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};

	for (int i = 0; i < PER_ADOPTER; i++) {
		int sv[2];
		ac_handle_t h;
		char buf[4];
		int err;

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			return (void *)1;
		err = ac_conn_adopt(rt, sv[0], &echo_cbs, &o, NULL, &h);
		if (err == 0) {
			bool echoed = th_send_all(sv[1], "ab\n", 3) &&
				      th_read_full(sv[1], buf, 3) &&
				      !memcmp(buf, "ab\n", 3);

			if (!echoed && !a->stopping)
				return (void *)2;
		} else if (err == AC_ESHUTDOWN) {
			/* Still ours: open, and closed here. */
			if (fcntl(sv[0], F_GETFD) < 0)
				return (void *)3;
			close(sv[0]);
		} else {
			return (void *)4;
		}
		close(sv[1]);
	}
	return NULL;
}

static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

START_TEST(adopting_from_many_threads_while_serving_and_stopping)
{
	int before = open_fds();

	for (int round = 0; round < 2; round++) {
		ac_runtime_t *rt = new_rt(2, true);
		struct adopter a[ADOPTERS];

		for (int i = 0; i < ADOPTERS; i++) {
			a[i].rt = rt;
			a[i].stopping = round == 1;
			ck_assert_int_eq(pthread_create(&a[i].t, NULL, adopter,
							&a[i]),
					 0);
		}
		if (round == 1) {
			usleep(2000);
			ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
		}
		for (int i = 0; i < ADOPTERS; i++) {
			void *r;

			ck_assert_int_eq(pthread_join(a[i].t, &r), 0);
			ck_assert_ptr_null(r);
		}
		ac_runtime_free(rt);
	}
	ck_assert_int_eq(open_fds(), before);
	th_assert_no_live_objects();
}
END_TEST

/* ---- listening on inherited sockets ------------------------------------------------ */

START_TEST(listen_fd_serves_an_inherited_tcp_socket_on_every_loop)
{
	ac_runtime_t *rt = new_rt(2, true);
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE, .backlog = 5};
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	ac_listener_t *l;
	int port, lfd = listening_tcp(&port), fds[4];
	bool seen[2] = {false, false};

	ck_assert_int_eq(ac_listen_fd(rt, lfd, &echo_cbs, &o, NULL, &l), 0);
	ck_assert_int_eq(ac_listener_port(l), port);
	ck_assert(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	ck_assert(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(getsockopt(lfd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
	ck_assert_int_eq(ti.tcpi_sacked, 5);
	for (int i = 0; i < 4; i++) {
		char buf[3] = {0};

		fds[i] = th_connect_tcp("127.0.0.1", port);
		th_write_all(fds[i], "k\n", 2);
		ck_assert(th_read_full(fds[i], buf, 2));
		ck_assert_str_eq(buf, "k\n");
	}
	/* Handed out round robin from one socket: both loops served. */
	ck_assert(th_wait_ge(&S.opens, 4, 5000));
	for (int i = 0; i < 4; i++)
		seen[S.loops[i]] = true;
	ck_assert(seen[0] && seen[1]);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	ck_assert(th_wait_ge(&S.closes, 4, 5000));
	ac_listener_close(l);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(listen_fd_serves_an_inherited_unix_socket_and_leaves_its_file)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_opts_t o = {.framing = AC_FRAME_LINE};
	char path[108], buf[3] = {0};
	struct stat st;
	ac_listener_t *l;
	int lfd, fd;

	unix_path(path, sizeof(path), "inh");
	lfd = listening_unix(path);
	ck_assert_int_eq(ac_listen_fd(rt, lfd, &echo_cbs, &o, NULL, &l), 0);
	ck_assert_int_eq(ac_listener_port(l), 0);
	fd = th_connect_unix(path);
	th_write_all(fd, "u\n", 2);
	ck_assert(th_read_full(fd, buf, 2));
	ck_assert_str_eq(buf, "u\n");
	close(fd);
	ck_assert(th_wait_ge(&S.closes, 1, 5000));
	ac_listener_close(l);
	ac_runtime_free(rt);
	/* The listener closed the socket; the file is not its to remove. */
	ck_assert_int_eq(fcntl(lfd, F_GETFD), -1);
	ck_assert_int_eq(stat(path, &st), 0);
	unlink(path);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(listen_fd_refuses_what_is_not_a_listening_stream_socket)
{
	ac_runtime_t *rt = new_rt(1, true);
	ac_conn_opts_t bad = {.backlog = -1};
	int p[2], client, conn, udp, port, lfd, fl, fdfl;
	ac_listener_t *l = NULL;

	ck_assert_int_eq(pipe(p), 0);
	conn = accepted_tcp(&client);
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	struct {
		int fd, want;
	} cases[] = {{p[0], -ENOTSOCK}, {conn, AC_EINVAL}, {udp, AC_EINVAL}};
	for (size_t i = 0; i < 3; i++) {
		fl = fcntl(cases[i].fd, F_GETFL);
		fdfl = fcntl(cases[i].fd, F_GETFD);
		ck_assert_int_eq(ac_listen_fd(rt, cases[i].fd, &echo_cbs, NULL,
					      NULL, &l),
				 cases[i].want);
		assert_fd_as_it_was(cases[i].fd, fl, fdfl);
	}
	ck_assert_int_eq(ac_listen_fd(rt, -1, &echo_cbs, NULL, NULL, &l), -EBADF);
	/* Bad options: the socket stays the caller's, listening. */
	lfd = listening_tcp(&port);
	fl = fcntl(lfd, F_GETFL);
	fdfl = fcntl(lfd, F_GETFD);
	ck_assert_int_eq(ac_listen_fd(rt, lfd, &echo_cbs, &bad, NULL, &l),
			 AC_EINVAL);
	assert_fd_as_it_was(lfd, fl, fdfl);
	ck_assert_int_eq(ac_listen_fd(rt, lfd, NULL, NULL, NULL, &l), AC_EINVAL);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(ac_listen_fd(rt, lfd, &echo_cbs, NULL, NULL, &l),
			 AC_ESHUTDOWN);
	assert_fd_as_it_was(lfd, fl, fdfl);
	close(p[0]);
	close(p[1]);
	close(conn);
	close(client);
	close(udp);
	close(lfd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- systemd socket activation ------------------------------------------------------ */

/*
 * Runs in a child process (it moves descriptors onto 3 and 4, which Check
 * may be using in the test process): each case returns its number on
 * failure, 0 when all held.
 */
static int listen_fds_cases(void)
{
	char names[64];
	int a[2], b[2];

	/* Not activated: 0, nothing changed. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	if (ac_listen_fds(0, names, sizeof(names)) != 0 || names[0])
		return 1;
	/* Two descriptors at 3 and 4, named. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, a) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, b) || dup2(a[0], 3) != 3 ||
	    dup2(b[0], 4) != 4)
		return 2;
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	setenv("LISTEN_FDNAMES", "web:admin", 1);
	/* names too small: -ERANGE, and the environment as it was. */
	if (ac_listen_fds(1, names, 9) != -ERANGE || !getenv("LISTEN_PID"))
		return 3;
	if (ac_listen_fds(0, names, sizeof(names)) != 2 ||
	    strcmp(names, "web:admin"))
		return 4;
	if (!(fcntl(3, F_GETFD) & FD_CLOEXEC) || !(fcntl(4, F_GETFD) & FD_CLOEXEC))
		return 5;
	if (ac_listen_fds(1, NULL, 0) != 2 || getenv("LISTEN_PID") ||
	    getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES"))
		return 6;
	/* Another process's variables: 0, and unset all the same. */
	setenv("LISTEN_PID", "1", 1);
	setenv("LISTEN_FDS", "2", 1);
	if (ac_listen_fds(1, names, sizeof(names)) != 0 || names[0] ||
	    getenv("LISTEN_FDS"))
		return 7;
	/* Malformed. */
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "two", 1);
	if (ac_listen_fds(0, NULL, 0) != AC_EINVAL)
		return 8;
	setenv("LISTEN_FDS", "-1", 1);
	if (ac_listen_fds(0, NULL, 0) != AC_EINVAL)
		return 9;
	setenv("LISTEN_PID", "12x", 1);
	setenv("LISTEN_FDS", "1", 1);
	if (ac_listen_fds(0, NULL, 0) != AC_EINVAL)
		return 10;
	/* A descriptor that is not open. */
	close(4);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "2", 1);
	if (ac_listen_fds(1, NULL, 0) != -EBADF || getenv("LISTEN_FDS"))
		return 11;
	return 0;
}

START_TEST(listen_fds_follows_sd_listen_fds)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(listen_fds_cases());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) == 0, "case %d failed",
		      WEXITSTATUS(status));
}
END_TEST

/*
 * Starts bin with args as systemd would: the listening sockets a and b at
 * descriptors 3 and 4, LISTEN_FDS=2 and LISTEN_PID its own pid (exec
 * keeps it, libtool's wrapper script included: it execs the program).
 */
static pid_t activate(const char *bin, char *const args[], int a, int b)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char p[32];
		int null = open("/dev/null", O_WRONLY);
		/* Out of the way of 3 and 4 first. */
		int x = fcntl(a, F_DUPFD, 10), y = fcntl(b, F_DUPFD, 10);

		if (null < 0 || x < 0 || y < 0 || dup2(x, 3) != 3 ||
		    dup2(y, 4) != 4 || dup2(null, 1) != 1)
			_exit(126);
		snprintf(p, sizeof(p), "%d", (int)getpid());
		setenv("LISTEN_PID", p, 1);
		setenv("LISTEN_FDS", "2", 1);
		for (int fd = 5; fd < 1024; fd++)
			close(fd);
		execv(bin, args);
		_exit(127);
	}
	return pid;
}

static const char *program(const char *env, const char *name, char *buf,
			   size_t len)
{
	const char *dir = getenv("ABS_TOP_BUILDDIR");

	if (getenv(env))
		return getenv(env);
	snprintf(buf, len, "%s/%s", dir ? dir : ".", name);
	return buf;
}

static void stop_child(pid_t pid)
{
	int status;

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}

/* Sends req on fd and expects want back. */
static void ask(int fd, const char *req, const char *want)
{
	char buf[64] = {0};

	th_write_all(fd, req, strlen(req));
	ck_assert(th_read_full(fd, buf, strlen(want)));
	ck_assert_str_eq(buf, want);
}

START_TEST(socket_activation_starts_the_echo_server_and_the_broker)
{
	char bin[512], path[108];
	int port, tcp, unx, fd;
	pid_t pid;

	unix_path(path, sizeof(path), "act");
	tcp = listening_tcp(&port);
	unx = listening_unix(path);
	char *echo_args[] = {"actorconn-echo", "--framing", "line", "--threads",
			     "2", NULL};
	pid = activate(program("ECHO_BIN", "actorconn-echo", bin, sizeof(bin)),
		       echo_args, tcp, unx);
	fd = th_connect_tcp("127.0.0.1", port);
	ask(fd, "activated\n", "activated\n");
	close(fd);
	fd = th_connect_unix(path);
	ask(fd, "unix\n", "unix\n");
	close(fd);
	stop_child(pid);

	/* The sockets are still ours: the broker gets the same ones. */
	char *broker_args[] = {"actorconn-broker", "--threads", "2", NULL};
	pid = activate(program("BROKER_BIN", "actorconn-broker", bin,
			       sizeof(bin)),
		       broker_args, tcp, unx);
	fd = th_connect_tcp("127.0.0.1", port);
	ask(fd, "PING\r\n", "+PONG\r\n");
	close(fd);
	fd = th_connect_unix(path);
	ask(fd, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
	close(fd);
	stop_child(pid);
	close(tcp);
	close(unx);
	unlink(path);
}
END_TEST

static void reset(void)
{
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.in_mu, NULL);
	held = NULL;
	memset(&A, 0, sizeof(A));
	log_text[0] = '\0';
}

int main(void)
{
	Suite *s = suite_create("sock");
	TCase *tc = tcase_create("sock");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, reset, NULL);
	tcase_add_test(tc, socket_options_read_back_on_accepted_and_outbound_sockets);
	tcase_add_test(tc, unix_sockets_take_buffer_sizes_and_skip_tcp_options);
	tcase_add_test(tc, socket_options_out_of_range_are_refused_and_logged);
	tcase_add_test(tc, half_close_sends_the_queued_output_then_eof_and_keeps_reading);
	tcase_add_test(tc, half_close_with_nothing_queued_then_closed_by_this_side);
	tcase_add_test(tc, writev_queues_the_buffers_in_order_and_refuses_bad_input);
	tcase_add_test(tc, writev_over_the_hard_limit_queues_nothing_and_closes_eslow);
	tcase_add_test(tc, adopt_a_socketpair_end_from_a_control_thread);
	tcase_add_test(tc, adopt_an_accepted_tcp_socket_on_a_loop_opens_after_the_call);
	tcase_add_test(tc, adopt_refuses_what_is_not_a_connected_stream_socket);
	tcase_add_test(tc, adopt_from_the_wrong_thread_or_state_leaves_the_descriptor);
	tcase_add_test(tc, adopt_over_the_runtime_limit_is_elimit_and_the_caller_keeps_it);
	tcase_add_test(tc, conn_fd_is_for_the_owner_loop_while_there_is_a_socket);
	tcase_add_test(tc, owner_loop_calls_from_another_thread_are_ethread);
	tcase_add_test(tc, adopting_from_many_threads_while_serving_and_stopping);
	tcase_add_test(tc, listen_fd_serves_an_inherited_tcp_socket_on_every_loop);
	tcase_add_test(tc, listen_fd_serves_an_inherited_unix_socket_and_leaves_its_file);
	tcase_add_test(tc, listen_fd_refuses_what_is_not_a_listening_stream_socket);
	tcase_add_test(tc, listen_fds_follows_sd_listen_fds);
	tcase_add_test(tc, socket_activation_starts_the_echo_server_and_the_broker);
#ifdef AC_HAVE_OPENSSL
	/* The TLS tests need certificates, which need the openssl command;
	 * without it they are left out, saying so. */
	bool certs = th_tls_certs(certdir, sizeof(certdir));

	if (certs) {
		tcase_add_test(tc, half_close_under_tls_sends_close_notify_and_keeps_reading);
		tcase_add_test(tc, adopt_both_ends_of_a_socketpair_under_tls);
	} else {
		printf("test_sock: no certificates: the TLS tests are left out\n");
	}
	suite_add_tcase(s, tc);
	int rc = th_run(s);

	if (certs)
		th_tls_certs_remove(certdir);
	return rc;
#else
	suite_add_tcase(s, tc);
	return th_run(s);
#endif
}
