/* testhelp.c: see testhelp.h. */
#include "testhelp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void set_timeout(int fd)
{
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int th_dial_tcp(const char *host, int port, int rcvbuf)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int fd, one = 1, err;

	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		len = sizeof(*a);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	/* Before connecting: the window is agreed in the handshake. */
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		err = errno;
		close(fd);
		return -err;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int th_dial_unix(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

int th_connect_tcp(const char *host, int port)
{
	int fd = th_dial_tcp(host, port, 0);

	ck_assert_msg(fd >= 0, "connect %s:%d: %s", host, port, strerror(-fd));
	set_timeout(fd);
	return fd;
}

int th_connect_unix(const char *path)
{
	int fd = th_dial_unix(path);

	ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(-fd));
	set_timeout(fd);
	return fd;
}

/* All len bytes through send (out) or recv, again after EINTR; false at
 * end of file or on an error, errno saying which. */
static bool xfer_all(int fd, char *p, size_t len, bool out)
{
	while (len) {
		ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL)
				: recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool th_send_all(int fd, const void *buf, size_t len)
{
	return xfer_all(fd, (char *)buf, len, true); /* send only reads it */
}

void th_write_all(int fd, const void *buf, size_t len)
{
	ck_assert_msg(th_send_all(fd, buf, len), "send: %s", strerror(errno));
}

bool th_read_full(int fd, void *buf, size_t len)
{
	return xfer_all(fd, buf, len, false);
}

bool th_wait_eof(int fd, int ms)
{
	uint64_t end = th_now_ms() + (uint64_t)ms;
	char buf[4096];

	while (th_now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
	return false;
}

uint64_t th_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool th_wait(bool (*pred)(void *), void *arg, int ms)
{
	uint64_t end = th_now_ms() + (uint64_t)ms;

	while (!pred(arg)) {
		if (th_now_ms() >= end)
			return pred(arg);
		usleep(1000);
	}
	return true;
}

bool th_wait_ge(const int64_t *p, int64_t want, int ms)
{
	uint64_t end = th_now_ms() + (uint64_t)ms;

	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) < want) {
		if (th_now_ms() >= end)
			return false;
		usleep(1000);
	}
	return true;
}

void th_assert_no_live_objects(void)
{
	ac_debug_counts_t d;

	ac_debug_counts(&d);
	ck_assert_int_eq(d.conns, 0);
	ck_assert_int_eq(d.handles, 0);
	ck_assert_int_eq(d.messages, 0);
	ck_assert_int_eq(d.listeners, 0);
	ck_assert_int_eq(d.timers, 0);
	ck_assert_int_eq(d.watches, 0);
	ck_assert_int_eq(d.registry, 0);
	ck_assert_int_eq(d.buffers, 0);
	ck_assert_int_eq(d.groups, 0);
	ck_assert_int_eq(d.pools, 0);
	ck_assert_int_eq(d.other, 0);
	ck_assert_int_eq(d.tls, 0);
	ck_assert_int_eq(d.work, 0);
}

int th_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- the recording server --------------------------------------------- */

struct th_server th_srv;

static int conn_index(ac_conn_t *c)
{
	return (int)(intptr_t)ac_conn_data(c);
}

void th_echo(ac_conn_t *c, const void *data, size_t len)
{
	if (th_srv.framing == AC_FRAME_LEN32) {
		uint32_t n = htonl((uint32_t)len);
		ck_assert_int_eq(ac_conn_write(c, &n, 4), 0);
		ck_assert_int_eq(ac_conn_write(c, data, len), 0);
	} else if (th_srv.framing == AC_FRAME_LINE) {
		ck_assert_int_eq(ac_conn_write(c, data, len), 0);
		ck_assert_int_eq(ac_conn_write(c, "\n", 1), 0);
	} else {
		ck_assert_int_eq(ac_conn_write(c, data, len), 0);
	}
}

static void srv_open(ac_conn_t *c)
{
	int64_t i = __atomic_fetch_add(&th_srv.opened, 1, __ATOMIC_ACQ_REL);

	ck_assert_int_lt(i, TH_MAX_CONNS);
	ac_conn_set_data(c, (void *)(intptr_t)i);
	__atomic_store_n(&th_srv.handles[i], ac_conn_handle(c),
			 __ATOMIC_RELEASE);
	if (th_srv.on_open)
		th_srv.on_open(c);
}

static void srv_frame(ac_conn_t *c, const void *data, size_t len)
{
	__atomic_fetch_add(&th_srv.frames, 1, __ATOMIC_RELAXED);
	if (th_srv.on_frame)
		th_srv.on_frame(c, data, len);
	else
		th_echo(c, data, len);
}

static void srv_close(ac_conn_t *c, int reason)
{
	int i = conn_index(c);

	th_srv.reasons[i] = reason;
	__atomic_fetch_add(&th_srv.close_count[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&th_srv.closed, 1, __ATOMIC_RELEASE);
}

void th_server_start(int loops, const char *addr, const ac_conn_opts_t *opts)
{
	th_server_start_cfg(&(ac_config_t){.loops = loops}, addr, opts);
}

void th_server_start_cfg(const ac_config_t *cfg, const char *addr,
			 const ac_conn_opts_t *opts)
{
	ac_conn_cbs_t cbs = {.on_open = srv_open,
			     .on_frame = srv_frame,
			     .on_message = th_srv.on_message,
			     .on_drain = th_srv.on_drain,
			     .on_close = srv_close};

	th_srv.framing = opts ? opts->framing : AC_FRAME_RAW;
	th_srv.rt = ac_runtime_new(cfg);
	ck_assert_ptr_nonnull(th_srv.rt);
	ck_assert_int_eq(ac_listen(th_srv.rt, addr, &cbs, opts, NULL,
				   &th_srv.l),
			 0);
	th_srv.port = ac_listener_port(th_srv.l);
	ck_assert_int_eq(ac_runtime_start(th_srv.rt), 0);
}

bool th_opened_ge(void *n)
{
	return __atomic_load_n(&th_srv.opened, __ATOMIC_ACQUIRE) >=
	       (int64_t)(intptr_t)n;
}

bool th_closed_ge(void *n)
{
	return __atomic_load_n(&th_srv.closed, __ATOMIC_ACQUIRE) >=
	       (int64_t)(intptr_t)n;
}

void th_finish(void)
{
	ac_runtime_free(th_srv.rt);
	th_assert_no_live_objects();
}

ac_handle_t th_handle(int i)
{
	uint64_t end = th_now_ms() + 5000;
	ac_handle_t h;

	while (!(h = __atomic_load_n(&th_srv.handles[i], __ATOMIC_ACQUIRE)) &&
	       th_now_ms() < end)
		usleep(1000);
	ck_assert_msg(h != AC_HANDLE_NONE, "connection %d never opened", i);
	return h;
}

void th_send_frame(int fd, int f, const void *data, size_t len)
{
	if (f == AC_FRAME_LEN32) {
		uint32_t n = htonl((uint32_t)len);
		th_write_all(fd, &n, 4);
	}
	th_write_all(fd, data, len);
	if (f == AC_FRAME_LINE)
		th_write_all(fd, "\n", 1);
}

size_t th_recv_frame(int fd, int f, void *buf, size_t cap, size_t want)
{
	if (f == AC_FRAME_LEN32) {
		uint32_t n;
		ck_assert(th_read_full(fd, &n, 4));
		n = ntohl(n);
		ck_assert_uint_le(n, cap);
		ck_assert(th_read_full(fd, buf, n));
		return n;
	}
	if (f == AC_FRAME_LINE) {
		size_t n = 0;
		char ch;
		for (;;) {
			ck_assert(th_read_full(fd, &ch, 1));
			if (ch == '\n')
				return n;
			ck_assert_uint_lt(n, cap);
			((char *)buf)[n++] = ch;
		}
	}
	ck_assert_uint_le(want, cap);
	ck_assert(th_read_full(fd, buf, want));
	return want;
}

bool th_tls_certs(char *dir, size_t len)
{
	const char *top = getenv("ABS_TOP_SRCDIR");
	char cmd[512];

	snprintf(dir, len, "/tmp/ac-certs.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return false;
	}
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/tls_certs.sh' '%s'",
		 top ? top : ".", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "could not make the test certificates (is the "
				"openssl command installed?)\n");
		return false;
	}
	return true;
}

void th_tls_certs_remove(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}
