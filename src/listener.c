/*
 * listener.c: accepting connections.
 *
 * A TCP listener opens one SO_REUSEPORT socket per loop, all bound to the
 * same address: the kernel spreads connections over them and each loop
 * owns what it accepts, with no hand-off. A Unix listener has one socket,
 * accepted on loop 0, which hands connections out round-robin through the
 * mailboxes (an ADOPT message carrying the descriptor); so has a listener
 * on an inherited socket (ac_listen_fd), TCP or Unix: one socket that
 * every loop watched would wake them all for each connection.
 *
 * References on a listener: the user's (dropped by ac_listener_close or
 * ac_runtime_free), one per accept entry a loop holds, one per control
 * operation in flight, and one per ADOPT message in flight. The last one
 * closes the sockets and frees it. Connections never point at the
 * listener, only at its refcounted proto, so they may outlive it.
 */
#include "listener.h"
#include "addr.h"
#include "alloc.h"
#include "conn.h"
#include "runtime.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define AC__ACCEPT_BATCH 64 /* accepts per readiness event */
#define AC__BACKOFF_MIN_MS 100u
#define AC__BACKOFF_MAX_MS 1000u

static void listener_ref(ac_listener_t *l)
{
	__atomic_fetch_add(&l->refs, 1, __ATOMIC_RELAXED);
}

static void listener_destroy(ac_listener_t *l)
{
	ac_runtime_t *rt = l->rt;

	if (l->linked) {
		pthread_mutex_lock(&rt->lock);
		LIST_REMOVE(l, link);
		pthread_mutex_unlock(&rt->lock);
	}
	for (int i = 0; l->fds && i < l->nfds; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	if (l->path) {
		unlink(l->path);
		ac__free(AC__K_OTHER, l->path);
	}
	ac__free(AC__K_OTHER, l->fds);
	ac__free(AC__K_OTHER, l->ops);
	ac__free(AC__K_OTHER, l->close_ops);
	ac__proto_unref(l->proto);
	ac__free(AC__K_LISTENER, l);
}

void ac__listener_unref(ac_listener_t *l)
{
	/* Acq-rel: every holder's last use happens before the free. */
	if (__atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) == 0)
		listener_destroy(l);
}

/* ---- accepting, on a loop ------------------------------------------------- */

static void hand_out(ac__loop_t *loop, ac_listener_t *l, int fd)
{
	ac_runtime_t *rt = loop->rt;
	int dest = (int)(l->rr++ % (unsigned)rt->nloops);
	struct ac__msg m = {.kind = AC__MSG_ADOPT, .i = fd, .b = l};

	if (dest == loop->index) {
		ac__conn_open(loop, fd, l->proto);
		return;
	}
	listener_ref(l); /* for the message in flight */
	if (ac__mailbox_put(rt, dest, &m)) {
		close(fd);
		ac__listener_unref(l);
	}
}

/* ADOPT: a descriptor handed out by the loop that accepted it. */
void ac__listener_deliver_adopt(ac__loop_t *loop, struct ac__msg *m)
{
	ac_listener_t *l = m->b;

	ac__conn_open(loop, m->i, l->proto);
	ac__listener_unref(l);
}

/* Its loop is gone: so is the connection. */
void ac__listener_settle_adopt(ac__loop_t *loop, struct ac__msg *m)
{
	close(m->i);
	ac__listener_unref(m->b);
}

static void backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ac__accept *e = arg;
	ac__loop_t *loop = ac__tls_loop;

	ac__loop_enter(loop);
	if (!loop->stopping && e->ev)
		event_add(e->ev, NULL); /* try again; failing doubles the wait */
	ac__loop_leave(loop);
}

/*
 * accept() is out of descriptors or memory. With a level-triggered poller
 * the pending connection would wake us again at once, forever: stop
 * watching the socket for a while instead (100 ms, doubling to 1 s),
 * say so once per pause, and resume by ourselves.
 */
static void pause_accepting(ac__loop_t *loop, struct ac__accept *e, int err)
{
	struct timeval tv;

	e->backoff_ms = e->backoff_ms ? e->backoff_ms * 2 : AC__BACKOFF_MIN_MS;
	if (e->backoff_ms > AC__BACKOFF_MAX_MS)
		e->backoff_ms = AC__BACKOFF_MAX_MS;
	tv.tv_sec = e->backoff_ms / 1000;
	tv.tv_usec = (e->backoff_ms % 1000) * 1000;
	if (!e->backoff_ev &&
	    !(e->backoff_ev = evtimer_new(loop->base, backoff_cb, e)))
		return; /* cannot pause: keep accepting rather than stop */
	event_del(e->ev);
	evtimer_add(e->backoff_ev, &tv);
	AC__STAT_ADD(loop, accept_pauses, 1);
	ac__log(loop->rt, AC_LOG_WARN,
		"loop %d: accept: %s; pausing this listener for %u ms",
		loop->index, strerror(err), e->backoff_ms);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct ac__accept *e = arg;
	ac_listener_t *l = e->l;
	ac__loop_t *loop = ac__tls_loop;

	ac__loop_enter(loop);
	for (int i = 0; i < AC__ACCEPT_BATCH && !loop->stopping; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			int err = errno;
			if (err == EINTR || err == ECONNABORTED)
				continue;
			if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
			    err == ENOMEM)
				pause_accepting(loop, e, err);
			else if (err != EAGAIN && err != EWOULDBLOCK)
				ac__log(loop->rt, AC_LOG_ERROR,
					"loop %d: accept: %s", loop->index,
					strerror(err));
			break;
		}
		e->backoff_ms = 0;
		if (l->hand_out)
			hand_out(loop, l, fd);
		else
			ac__conn_open(loop, fd, l->proto);
	}
	ac__loop_leave(loop);
}

static void drop_entry(struct ac__accept *e)
{
	ac__event_free(&e->ev);
	ac__event_free(&e->backoff_ev);
	ac__listener_unref(e->l);
}

/* Closes an entry's listening socket: the kernel refuses what would have
 * queued on it (and, over SO_REUSEPORT, sends it to the sockets left). */
static void close_socket(struct ac__accept *e)
{
	/* Each loop writes its own slot only: other loops close theirs at
	 * the same time. */
	close(e->fd);
	e->l->fds[e->idx] = -1; /* read only by listener_destroy */
}

/*
 * The loop could not take its socket (out of memory): close it now. Left
 * open, it would go on listening with nobody accepting, and the kernel
 * would keep queueing connections on it (SO_REUSEPORT spreads them over
 * every socket of the port) that would hang until the listener closed.
 * Closed, its queued connections are reset, new ones go to the other
 * loops' sockets, or are refused if none is left.
 */
static void give_up_socket(ac__loop_t *loop, struct ac__accept *e)
{
	ac_listener_t *l = e->l;

	close_socket(e);
	ac__log(loop->rt, AC_LOG_ERROR,
		"loop %d: out of memory: this loop does not accept for the "
		"listener on port %d",
		loop->index, l->port);
}

/* Control operation: start serving an accept entry on this loop. */
static void accept_add_op(ac__loop_t *loop, void *arg)
{
	struct ac__accept *e = arg;

	if (loop->stopping || !loop->base) {
		drop_entry(e);
		return;
	}
	if (loop->draining) { /* ac_listen raced ac_runtime_drain */
		close_socket(e);
		drop_entry(e);
		return;
	}
	if (!(e->ev = event_new(loop->base, e->fd, EV_READ | EV_PERSIST,
				accept_cb, e)) ||
	    event_add(e->ev, NULL)) {
		give_up_socket(loop, e);
		drop_entry(e);
		return;
	}
	SLIST_INSERT_HEAD(&loop->accepts, e, next);
}

/* Control operation: stop serving listener arg on this loop. */
static void accept_remove_op(ac__loop_t *loop, void *arg)
{
	ac_listener_t *l = arg;

	struct ac__accept *e, *next;

	for (e = SLIST_FIRST(&loop->accepts); e; e = next) {
		next = SLIST_NEXT(e, next);
		if (e->l == l) {
			SLIST_REMOVE(&loop->accepts, e, ac__accept, next);
			drop_entry(e);
		}
	}
	ac__listener_unref(l); /* the operation's own reference */
}

/* A drain: this loop stops accepting for good. */
void ac__accept_close_all(ac__loop_t *loop)
{
	struct ac__accept *e;

	while ((e = SLIST_FIRST(&loop->accepts))) {
		SLIST_REMOVE_HEAD(&loop->accepts, next);
		close_socket(e);
		drop_entry(e);
	}
}

void ac__accept_drop_all(ac__loop_t *loop)
{
	struct ac__accept *e;

	while ((e = SLIST_FIRST(&loop->accepts))) {
		SLIST_REMOVE_HEAD(&loop->accepts, next);
		drop_entry(e);
	}
}

/* ---- the public calls ------------------------------------------------------ */

/* A listening socket for a at port; o: the listener's options (buffer
 * sizes, which accepted sockets inherit, and the backlog), or NULL for a
 * probe. */
static int open_socket(const struct ac__addr *a, int port, int reuseport,
		       const ac_conn_opts_t *o)
{
	struct sockaddr_storage ss = a->ss;
	int one = 1, fd;

	if (a->family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
	else if (a->family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_port =
			htons((uint16_t)port);
	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (a->family != AF_UNIX) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
			goto fail;
		if (a->family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
	}
	if (o && (errno = -ac__sock_buffers(fd, o)))
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, a->len) ||
	    listen(fd, o && o->backlog ? o->backlog : AC__BACKLOG))
		goto fail;
	return fd;
fail: {
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Removes a stale socket file, but never a file that is not a socket. */
static void unlink_stale(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
}

static int open_sockets(ac_listener_t *l, const struct ac__addr *a)
{
	const ac_conn_opts_t *o = &l->proto->opts;
	int port;

	if (a->family == AF_UNIX) {
		unlink_stale(a->path);
		if ((l->fds[0] = open_socket(a, 0, 0, o)) < 0)
			return -errno;
		if (!(l->path = ac__strdup(a->path)))
			return AC_ENOMEM;
		return 0;
	}
	port = ntohs(a->family == AF_INET
			     ? ((const struct sockaddr_in *)&a->ss)->sin_port
			     : ((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	/* SO_REUSEPORT would let us share a port another listener holds
	 * (same user) and silently split its connections with it: first
	 * make sure the port is free with a plain socket. */
	if (port) {
		int probe = open_socket(a, port, 0, NULL);
		if (probe < 0)
			return -errno;
		close(probe);
	}
	for (int i = 0; i < l->nfds; i++) {
		if ((l->fds[i] = open_socket(a, port, 1, o)) < 0)
			return -errno;
		if (i == 0 && port == 0 && (port = bound_port(l->fds[0])) < 0)
			return -errno;
	}
	l->port = port;
	return 0;
}

/* A listener with nfds sockets still to open (every fd -1) and the
 * operations to serve them; NULL with *err set on failure. */
static ac_listener_t *listener_new(ac_runtime_t *rt, int nfds,
				   const ac_conn_cbs_t *cbs,
				   const ac_conn_opts_t *opts, void *ud, int *err)
{
	ac_listener_t *l;

	if (!(l = ac__calloc(AC__K_LISTENER, 1, sizeof(*l)))) {
		*err = AC_ENOMEM;
		return NULL;
	}
	l->rt = rt;
	l->refs = 1;
	l->nfds = nfds;
	if (!(l->proto = ac__proto_new(rt, cbs, opts, ud, AC_TLS_SERVER, err)))
		goto fail;
	*err = AC_ENOMEM;
	if (!(l->fds = ac__malloc(AC__K_OTHER, sizeof(int) * (size_t)l->nfds)) ||
	    !(l->ops = ac__calloc(AC__K_OTHER, (size_t)l->nfds,
				  sizeof(*l->ops))) ||
	    !(l->close_ops = ac__calloc(AC__K_OTHER, (size_t)l->nfds,
					sizeof(*l->close_ops))))
		goto fail;
	for (int i = 0; i < l->nfds; i++)
		l->fds[i] = -1;
	*err = 0;
	return l;
fail:
	listener_destroy(l); /* not linked yet: only frees */
	return NULL;
}

/* l's sockets are open: it goes on the runtime's list and each socket to
 * its loop (the first loop for a single socket). Cannot fail: the
 * operations were allocated with l. */
static void listener_start(ac_listener_t *l)
{
	ac_runtime_t *rt = l->rt;

	pthread_mutex_lock(&rt->lock);
	LIST_INSERT_HEAD(&rt->listeners, l, link);
	l->linked = 1;
	pthread_mutex_unlock(&rt->lock);

	for (int i = 0; i < l->nfds; i++) {
		struct ac__accept_op *op = &l->ops[i];

		op->entry.l = l;
		op->entry.fd = l->fds[i];
		op->entry.idx = i;
		op->ctl.fn = accept_add_op;
		op->ctl.arg = &op->entry;
		listener_ref(l);
		ac__loop_ctl_node(rt->loops[i], &op->ctl);
	}
}

AC_EXPORT int ac_listen(ac_runtime_t *rt, const char *addr,
			const ac_conn_cbs_t *cbs, const ac_conn_opts_t *opts,
			void *ud, ac_listener_t **out)
{
	struct ac__addr a;
	ac_listener_t *l;
	int err = 0;

	if (!rt || !addr || !cbs || !out)
		return AC_EINVAL;
	if (ac__rt_state(rt) >= AC__RT_STOPPING ||
	    __atomic_load_n(&rt->draining, __ATOMIC_ACQUIRE))
		return AC_ESHUTDOWN;
	if ((err = ac__addr_parse(addr, &a)))
		return err;
	if (!(l = listener_new(rt, a.family == AF_UNIX ? 1 : rt->nloops, cbs,
			       opts, ud, &err)))
		return err;
	l->is_unix = l->hand_out = a.family == AF_UNIX;
	if ((err = open_sockets(l, &a))) {
		listener_destroy(l);
		return err;
	}
	listener_start(l);
	*out = l;
	return 0;
}

AC_EXPORT int ac_listen_fd(ac_runtime_t *rt, int fd, const ac_conn_cbs_t *cbs,
			   const ac_conn_opts_t *opts, void *ud,
			   ac_listener_t **out)
{
	ac_listener_t *l;
	int err, family, fl, fdfl;

	if (!rt || !cbs || !out)
		return AC_EINVAL;
	if (ac__rt_state(rt) >= AC__RT_STOPPING ||
	    __atomic_load_n(&rt->draining, __ATOMIC_ACQUIRE))
		return AC_ESHUTDOWN;
	if ((err = ac__sock_kind(fd, true, &family)))
		return err;
	if (!(l = listener_new(rt, 1, cbs, opts, ud, &err)))
		return err;
	/* Accepted on one loop and handed out; the socket file of a Unix
	 * one is not ours to remove (l->path stays NULL). */
	l->is_unix = family == AF_UNIX;
	l->hand_out = 1;
	if (!l->is_unix && (l->port = bound_port(fd)) < 0) {
		err = -errno;
		goto fail;
	}
	if ((err = ac__sock_own(fd, &fl, &fdfl)))
		goto fail;
	/* A new backlog for a socket that listens already: listen(2)
	 * again, last, as nothing can fail after it. The rest of the
	 * options reach each connection. */
	if (l->proto->opts.backlog && listen(fd, l->proto->opts.backlog)) {
		err = -errno;
		ac__sock_restore(fd, fl, fdfl);
		goto fail;
	}
	l->fds[0] = fd; /* the listener's from here on */
	listener_start(l);
	*out = l;
	return 0;
fail:
	listener_destroy(l); /* fds[0] is -1: fd stays the caller's */
	return err;
}

AC_EXPORT int ac_listener_port(const ac_listener_t *l)
{
	return l ? l->port : 0;
}

/* Drops the user's reference once, telling each loop to stop accepting. */
void ac__listener_release_user(ac_listener_t *l)
{
	if (__atomic_exchange_n(&l->user_closed, 1, __ATOMIC_ACQ_REL))
		return;
	for (int i = 0; i < l->nfds; i++) {
		struct ac__ctl *op = &l->close_ops[i];

		op->fn = accept_remove_op;
		op->arg = l;
		listener_ref(l);
		ac__loop_ctl_node(l->rt->loops[i], op);
	}
	ac__listener_unref(l);
}

AC_EXPORT void ac_listener_close(ac_listener_t *l)
{
	if (l)
		ac__listener_release_user(l);
}
