/*
 * sock.c: socket options, and sockets the library did not make.
 *
 * Options: the socket fields of ac_conn_opts_t are checked when a
 * protocol is made (ac__proto_new) and set on each connection's socket
 * as it becomes ready (ac__conn_ready), whether it was accepted,
 * connected or adopted. The buffer sizes are also set before connect(2)
 * and listen(2): tcp(7) wants them there to shape the window offered in
 * the handshake.
 *
 * Adoption: ac_conn_adopt makes a connection of a connected socket on its
 * owner loop, as an accept does. Everything that can fail is done before
 * the descriptor changes hands, so an error leaves it the caller's, open
 * and as it was. On a loop the connection opens one loop turn later, from
 * a connection timer: no callback runs inside the call, and no frame is
 * read before on_open.
 *
 * Activation: ac_listen_fds reads systemd's LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES as sd_listen_fds(3) does; listener.c serves the
 * descriptors (ac_listen_fd).
 */
#include "sock.h"
#include "alloc.h"
#include "conn.h"
#include "ctlreq.h"
#include "loop.h"
#include "mailbox.h"
#include "runtime.h"
#include "timer.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Linux's bounds (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT):
 * past them setsockopt fails, so they are refused up front instead of on
 * every connection. */
#define AC__KEEPALIVE_MAX_S 32767u
#define AC__KEEPALIVE_MAX_CNT 127u

/* ---- options ------------------------------------------------------------------- */

static bool is_switch(int v)
{
	return v == 0 || v == AC_ON || v == AC_OFF;
}

static bool keepalive_tuned(const ac_conn_opts_t *o)
{
	return o->keepalive_idle_s || o->keepalive_intvl_s || o->keepalive_cnt;
}

int ac__sockopts_check(ac_runtime_t *rt, const ac_conn_opts_t *o)
{
	if (!is_switch(o->nodelay)) {
		ac__log(rt, AC_LOG_ERROR, "nodelay (%d) must be 0, AC_ON or AC_OFF",
			o->nodelay);
		return AC_EINVAL;
	}
	if (!is_switch(o->keepalive)) {
		ac__log(rt, AC_LOG_ERROR,
			"keepalive (%d) must be 0, AC_ON or AC_OFF", o->keepalive);
		return AC_EINVAL;
	}
	if (o->keepalive == AC_OFF && keepalive_tuned(o)) {
		ac__log(rt, AC_LOG_ERROR,
			"keepalive is AC_OFF, yet keepalive_idle_s, "
			"keepalive_intvl_s or keepalive_cnt is set");
		return AC_EINVAL;
	}
	if (o->keepalive_idle_s > AC__KEEPALIVE_MAX_S ||
	    o->keepalive_intvl_s > AC__KEEPALIVE_MAX_S) {
		ac__log(rt, AC_LOG_ERROR,
			"keepalive_idle_s (%u) and keepalive_intvl_s (%u) must "
			"be at most %u seconds",
			o->keepalive_idle_s, o->keepalive_intvl_s,
			AC__KEEPALIVE_MAX_S);
		return AC_EINVAL;
	}
	if (o->keepalive_cnt > AC__KEEPALIVE_MAX_CNT) {
		ac__log(rt, AC_LOG_ERROR,
			"keepalive_cnt (%u) must be at most %u probes",
			o->keepalive_cnt, AC__KEEPALIVE_MAX_CNT);
		return AC_EINVAL;
	}
	if (o->user_timeout_ms > INT_MAX) {
		ac__log(rt, AC_LOG_ERROR,
			"user_timeout_ms (%u) must be at most %d",
			o->user_timeout_ms, INT_MAX);
		return AC_EINVAL;
	}
#ifndef TCP_USER_TIMEOUT
	if (o->user_timeout_ms) {
		ac__log(rt, AC_LOG_ERROR,
			"user_timeout_ms: this system has no TCP_USER_TIMEOUT");
		return AC_ENOTSUP;
	}
#endif
	/* The kernel doubles what it is given, in an int. */
	if (o->sndbuf < 0 || o->sndbuf > INT_MAX / 2 || o->rcvbuf < 0 ||
	    o->rcvbuf > INT_MAX / 2) {
		ac__log(rt, AC_LOG_ERROR,
			"sndbuf (%d) and rcvbuf (%d) must be from 0 to %d bytes",
			o->sndbuf, o->rcvbuf, INT_MAX / 2);
		return AC_EINVAL;
	}
	if (o->backlog < 0) {
		ac__log(rt, AC_LOG_ERROR, "backlog (%d) is negative", o->backlog);
		return AC_EINVAL;
	}
	return 0;
}

static int set_int(int fd, int level, int name, int v)
{
	return setsockopt(fd, level, name, &v, sizeof(v)) ? -errno : 0;
}

int ac__sock_buffers(int fd, const ac_conn_opts_t *o)
{
	int err = 0;

	if (o->sndbuf)
		err = set_int(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf);
	if (!err && o->rcvbuf)
		err = set_int(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf);
	return err;
}

int ac__sockopts_apply(int fd, int family, const ac_conn_opts_t *o)
{
	int err;

	if ((err = ac__sock_buffers(fd, o)))
		return err;
	if (family != AF_INET && family != AF_INET6)
		return 0; /* the rest is TCP's */
	if (o->nodelay == AC_OFF) {
		if ((err = set_int(fd, IPPROTO_TCP, TCP_NODELAY, 0)))
			return err;
	} else if ((err = set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1)) &&
		   o->nodelay == AC_ON) {
		/* Small frames go out at once: the library already batches a
		 * callback's writes into one send. Asked for, a failure is
		 * an error; by default it stays best effort. */
		return err;
	}
	if (o->keepalive == AC_OFF)
		return set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 0);
	if (o->keepalive == AC_ON || keepalive_tuned(o)) {
		if ((err = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1)) ||
		    (o->keepalive_idle_s &&
		     (err = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE,
				    (int)o->keepalive_idle_s))) ||
		    (o->keepalive_intvl_s &&
		     (err = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL,
				    (int)o->keepalive_intvl_s))) ||
		    (o->keepalive_cnt &&
		     (err = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT,
				    (int)o->keepalive_cnt))))
			return err;
	}
#ifdef TCP_USER_TIMEOUT
	if (o->user_timeout_ms &&
	    (err = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
			   (int)o->user_timeout_ms)))
		return err;
#endif
	return 0;
}

/* ---- descriptors ----------------------------------------------------------------- */

int ac__sock_kind(int fd, bool listening, int *family)
{
	struct sockaddr_storage ss;
	struct stat st;
	socklen_t len;
	int type, acc;

	if (fd < 0)
		return -EBADF;
	if (fstat(fd, &st))
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len))
		return -errno;
	if (type != SOCK_STREAM)
		return AC_EINVAL;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6 &&
	    ss.ss_family != AF_UNIX)
		return AC_EINVAL;
	len = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len))
		return -errno;
	if ((acc != 0) != listening)
		return AC_EINVAL;
	len = sizeof(ss);
	if (!listening && getpeername(fd, (struct sockaddr *)&ss, &len))
		return -errno; /* -ENOTCONN */
	*family = ss.ss_family;
	return 0;
}

int ac__sock_own(int fd, int *fl, int *fdfl)
{
	int err;

	if ((*fl = fcntl(fd, F_GETFL)) < 0 || (*fdfl = fcntl(fd, F_GETFD)) < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, *fl | O_NONBLOCK) == 0 &&
	    fcntl(fd, F_SETFD, *fdfl | FD_CLOEXEC) == 0)
		return 0;
	err = -errno;
	ac__sock_restore(fd, *fl, *fdfl);
	return err;
}

void ac__sock_restore(int fd, int fl, int fdfl)
{
	fcntl(fd, F_SETFL, fl);
	fcntl(fd, F_SETFD, fdfl);
}

/* ---- ac_conn_adopt ------------------------------------------------------------- */

/* Owner loop, one turn after an adoption on the loop: the connection
 * opens (or starts its handshake) now, outside the call that adopted it. */
static void adopted_start(ac_conn_t *c, void *arg)
{
	if (c->state != AC__C_ADOPTING)
		return;
	c->state = c->tls ? AC__C_HANDSHAKE : AC__C_OPEN;
	if (event_add(c->rev, NULL)) {
		ac__conn_fail(c, AC_ENOMEM);
		return;
	}
	ac__conn_start(c);
}

/*
 * Owner loop: fd becomes a connection of proto. later: the call came
 * from this loop, so the open waits for the next turn. Returns 0 (the
 * connection owns fd) or an error, with fd untouched.
 */
static int adopt_here(ac__loop_t *loop, ac__proto_t *proto, int fd,
		      bool later, ac_handle_t *out)
{
	ac_conn_t *c;
	int err, fl, fdfl;

	if (loop->stopping)
		return AC_ESHUTDOWN;
	if (!(c = ac__conn_new(loop, proto, &err)))
		return err;
	if (!ac__conn_take_place(c)) {
		err = AC_ELIMIT;
		goto discard;
	}
	if (later && !ac_conn_timer(c, 0, 0, adopted_start, NULL)) {
		err = AC_ENOMEM;
		goto discard;
	}
	if ((err = ac__sock_own(fd, &fl, &fdfl)))
		goto discard;
	c->fd = fd;
	if ((err = ac__conn_ready(c, proto->tls_name))) {
		c->fd = -1; /* still the caller's */
		ac__sock_restore(fd, fl, fdfl);
		goto discard;
	}
	AC__STAT_ADD(loop, accepted, 1);
	*out = c->handle;
	if (!later) {
		ac__conn_start(c);
		return 0;
	}
	/* Nothing is read, and nothing of the handshake done, before the
	 * timer opens it; writes are refused until then. */
	event_del(c->rev);
	c->state = AC__C_ADOPTING;
	return 0;
discard:
	ac__timers_cancel_conn(c);
	ac__conn_discard(c);
	return err;
}

/*
 * A control thread's adoption, run on the owner loop while the caller
 * waits. As connect.c's request: the caller waits with a timeout and,
 * once the runtime is stopped (every loop has exited), abandons the
 * request, which then runs only where the mailboxes are settled, off any
 * loop, and leaves fd alone there. Under the mutex exactly one side sees
 * the other's mark and frees the request.
 */
struct ac__adopt_req {
	struct ac__ctlreq q; /* the waiting protocol (ctlreq.h) */
	ac__proto_t *proto;
	int fd;
};

static void areq_free(struct ac__adopt_req *r)
{
	ac__proto_unref(r->proto);
	ac__ctlreq_destroy(&r->q);
	ac__free(AC__K_OTHER, r);
}

static void areq_run(void *arg)
{
	struct ac__adopt_req *r = arg;
	ac__loop_t *loop = ac__tls_loop;
	ac_handle_t h = AC_HANDLE_NONE;
	int err = loop && !loop->stopping
			  ? adopt_here(loop, r->proto, r->fd, false, &h)
			  : AC_ESHUTDOWN;

	if (!ac__ctlreq_answer(&r->q, err, h))
		areq_free(r); /* abandoned: only off-loop, nothing adopted */
}

static int adopt_from_control(ac_runtime_t *rt, int target,
			      ac__proto_t *proto, int fd, ac_handle_t *out)
{
	struct ac__adopt_req *r = ac__calloc(AC__K_OTHER, 1, sizeof(*r));
	struct ac__msg m = {.kind = AC__MSG_POST};
	bool abandoned;
	int err;

	if (!r)
		return AC_ENOMEM;
	ac__ctlreq_init(&r->q);
	r->proto = proto;
	r->fd = fd;
	ac__proto_ref(proto); /* the request's own */
	m.a.fn = areq_run;
	m.b = r;
	if ((err = ac__mailbox_put(rt, target, &m))) {
		areq_free(r);
		return err;
	}
	err = ac__ctlreq_wait(rt, &r->q, out, &abandoned);
	if (!abandoned) /* else areq_run frees it, off-loop */
		areq_free(r);
	return err;
}

AC_EXPORT int ac_conn_adopt(ac_runtime_t *rt, int fd, const ac_conn_cbs_t *cbs,
			    const ac_conn_opts_t *opts, void *ud,
			    ac_handle_t *out)
{
	ac__loop_t *self = ac__tls_loop;
	ac_conn_opts_t o = {0};
	ac__proto_t *proto;
	int err, target, family, role = AC_TLS_SERVER;

	if (!rt || !out)
		return AC_EINVAL;
	*out = AC_HANDLE_NONE;
	if (opts)
		o = *opts;
	if ((err = ac__ctlreq_target(rt, o.loop, &target)))
		return err;
	if ((err = ac__sock_kind(fd, false, &family)))
		return err;
	/* A listener's limit means nothing here (its other fields are
	 * checked, and ignored, as ac_connect does). */
	o.max_conns = 0;
	if (o.tls && !ac__tls_is_server(o.tls))
		role = AC_TLS_CLIENT;
	if (!(proto = ac__proto_new(rt, cbs, &o, ud, role, &err)))
		return err;
	if (self)
		err = adopt_here(self, proto, fd, true, out);
	else
		err = adopt_from_control(rt, target, proto, fd, out);
	ac__proto_unref(proto); /* the connection holds its own */
	if (err)
		*out = AC_HANDLE_NONE;
	return err;
}

/* ---- systemd socket activation -------------------------------------------------- */

/* A whole decimal number from s, at most max; -1 if s is not one. */
static long long decimal(const char *s, long long max)
{
	char *end;
	long long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno || *end || v > max ? -1 : v;
}

AC_EXPORT int ac_listen_fds(int unset_environment, char *names, size_t len)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	const char *names_s = getenv("LISTEN_FDNAMES");
	long long pid, n = 0;
	int err = 0;

	if (!names_s)
		names_s = "";
	/* Checked first, so that a retry with more room finds the
	 * environment as it was. */
	if (names && strlen(names_s) >= len)
		return -ERANGE;
	if (!pid_s || !fds_s)
		goto done; /* not activated */
	if ((pid = decimal(pid_s, INT_MAX)) <= 0 ||
	    (n = decimal(fds_s, INT_MAX - 3)) < 0) {
		n = 0;
		err = AC_EINVAL;
		goto done;
	}
	if (pid != (long long)getpid()) {
		n = 0; /* our parent's, passed on by mistake */
		goto done;
	}
	for (int fd = 3; fd < 3 + (int)n; fd++) {
		int fl = fcntl(fd, F_GETFD);

		if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
			err = -errno;
			break;
		}
	}
done:
	if (names)
		strcpy(names, n && !err ? names_s : "");
	if (unset_environment) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
	return err ? err : (int)n;
}
