/*
 * intro.c: introspection. A connection's facts (ac_conn_info on the owner
 * loop, ac__info_shared for ac_handle_info through a pin), a loop's
 * connections (ac_loop_conns), every loop's (ac_runtime_conns), and the
 * way back from a handle to the connection on its owner loop.
 *
 * What other threads may read is what the owner writes with atomic
 * stores into the connection itself: the facts under their sequence
 * count, and the counters. The rest (addresses of the socket itself,
 * credentials, the label in aux, the output queue) is read only by the
 * owner, when asked: nothing is stored for it, so a connection nobody
 * inspects pays nothing.
 *
 * ac_runtime_conns hops from loop to loop as a control operation
 * (loop.h): pushing one cannot fail, so once the call has returned 0
 * nothing can lose the visit on its way, and a loop that has exited runs
 * it on the thread that settles the stop, which is how done learns of
 * the stop.
 */
#define _GNU_SOURCE
#include "addr.h"
#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "handle.h"
#include "runtime.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/un.h>

/* ---- facts ------------------------------------------------------------------ */

void ac__info_shared(const ac_conn_t *c, ac_conn_info_t *out)
{
	struct ac__facts_copy f;
	uint64_t now = ac__wall_ms(), last;

	ac__facts_get(c, &f);
	memset(out, 0, sizeof(*out));
	out->loop = AC_HANDLE_LOOP(c->handle);
	out->handle = c->handle; /* never changes while c is reachable */
	out->family = f.family;
	out->opened_ms = f.opened_ms;
	out->bytes_in = __atomic_load_n(&c->bytes_in, __ATOMIC_RELAXED);
	out->bytes_out = __atomic_load_n(&c->bytes_out, __ATOMIC_RELAXED);
	out->frames_in = __atomic_load_n(&c->frames_in, __ATOMIC_RELAXED);
	out->frames_out = __atomic_load_n(&c->frames_out, __ATOMIC_RELAXED);
	last = __atomic_load_n(&c->last_read_ms, __ATOMIC_RELAXED);
	/* Wall clocks may step back: durations never go below zero. */
	out->age_ms = now > f.opened_ms ? now - f.opened_ms : 0;
	out->idle_ms = now > last ? now - last : 0;
	if (out->idle_ms > out->age_ms)
		out->idle_ms = out->age_ms; /* read before this attempt */
	if (f.family == AF_UNIX) {
		snprintf(out->peer_str, sizeof(out->peer_str), "unix");
	} else if (f.peer_len) {
		out->peer_len = f.peer_len;
		memcpy(&out->peer, &f.peer, f.peer_len);
		ac__addr_format((const struct sockaddr *)&f.peer, f.peer_len,
				out->peer_str, sizeof(out->peer_str));
	}
	out->fd = -1;
	out->peer_pid = out->peer_uid = out->peer_gid = -1;
}

/* A unix socket's name: "unix:/path", or "unix" when unnamed. */
static void unix_str(const struct sockaddr_un *sun, socklen_t len, char *buf,
		     size_t n)
{
	size_t off = offsetof(struct sockaddr_un, sun_path);

	if (len > off && sun->sun_path[0])
		snprintf(buf, n, "unix:%.*s", (int)(len - off), sun->sun_path);
	else
		snprintf(buf, n, "unix");
}

/* c's own address, read from its socket. */
static void local_addr(const ac_conn_t *c, ac_conn_info_t *out)
{
	socklen_t len = sizeof(out->local);

	if (c->fd < 0 ||
	    getsockname(c->fd, (struct sockaddr *)&out->local, &len) != 0)
		return;
	out->local_len = len;
	if (out->local.ss_family == AF_UNIX)
		unix_str((const struct sockaddr_un *)&out->local, len,
			 out->local_str, sizeof(out->local_str));
	else
		ac__addr_format((const struct sockaddr *)&out->local, len,
				out->local_str, sizeof(out->local_str));
}

AC_EXPORT int ac_conn_info(const ac_conn_t *c, ac_conn_info_t *out)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (!out)
		return AC_EINVAL;
	ac__info_shared(c, out);
	out->out_queued = (uint64_t)ac_conn_out_bytes(c);
	out->fd = c->fd;
	out->ud = c->proto ? c->proto->ud : NULL;
	if (c->aux && c->aux->label)
		snprintf(out->label, sizeof(out->label), "%s", c->aux->label);
	local_addr(c, out);
	if (out->family == AF_UNIX && c->fd >= 0) {
		struct ucred cr;
		socklen_t len = sizeof(cr);

		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
			out->peer_pid = cr.pid;
			out->peer_uid = cr.uid;
			out->peer_gid = cr.gid;
		}
	}
	return 0;
}

/* ---- a loop's connections ------------------------------------------------------ */

/* Owner loop, inside a library callback: fn for each live connection. */
static int each_conn(ac__loop_t *loop, void (*fn)(ac_conn_t *c, void *arg),
		     void *arg)
{
	int n = 0;

	/* The handle table is the list of connections (ac__loop_each_conn);
	 * nslots is read each time round, since fn may open one. */
	for (uint32_t i = 0; i < loop->htab.nslots; i++) {
		ac_conn_t *c = ac__htab_slot(&loop->htab, i)->conn;

		if (c && c->state != AC__C_DEAD) {
			fn(c, arg);
			n++;
		}
	}
	return n;
}

AC_EXPORT int ac_loop_conns(ac_runtime_t *rt,
			    void (*fn)(ac_conn_t *c, void *arg), void *arg)
{
	ac__loop_t *loop = ac__tls_loop;
	int n;

	if (!rt || !fn)
		return AC_EINVAL;
	if (!ac__on_loop_of(rt))
		return AC_ETHREAD;
	/* A bracket of our own: whatever fn closes is finalized only at the
	 * outermost leave, so no connection goes while we walk the table. */
	ac__loop_enter(loop);
	n = each_conn(loop, fn, arg);
	ac__loop_leave(loop);
	return n;
}

/* ---- every loop's connections ------------------------------------------------- */

struct ac__visit {
	struct ac__ctl node; /* the hop in flight; one at a time */
	ac_runtime_t *rt;
	void (*fn)(ac_conn_t *c, void *arg);
	void (*done)(int err, void *arg);
	void *arg;
	int next, last; /* loops still to visit: next .. last */
	int home;       /* where done runs; -1: the last loop visited */
	bool visited;   /* every loop has been: only done is left */
};

static void visit_end(struct ac__visit *v, int err)
{
	if (v->done)
		v->done(err, v->arg);
	ac__free(AC__K_OTHER, v);
}

/* A control operation: on loop `loop`, or on the thread settling its
 * stop once it has exited. */
static void visit_cb(ac__loop_t *loop, void *arg)
{
	struct ac__visit *v = arg;
	ac_runtime_t *rt = v->rt;

	if (ac__tls_loop != loop) {
		visit_end(v, AC_ESHUTDOWN); /* the loop has exited */
		return;
	}
	if (!v->visited) {
		each_conn(loop, v->fn, v->arg);
		if (v->next < v->last) {
			ac__loop_ctl_node(rt->loops[++v->next], &v->node);
			return;
		}
		v->visited = true;
		if (v->home >= 0 && v->home != loop->index) {
			ac__loop_ctl_node(rt->loops[v->home], &v->node);
			return;
		}
	}
	visit_end(v, 0);
}

AC_EXPORT int ac_runtime_conns(ac_runtime_t *rt, int loop,
			       void (*fn)(ac_conn_t *c, void *arg),
			       void (*done)(int err, void *arg), void *arg)
{
	struct ac__visit *v;
	bool on_loop;
	int i;

	if (!rt || !fn)
		return AC_EINVAL;
	on_loop = ac__on_loop_of(rt);
	if (loop == AC_LOOP_ALL)
		i = -2;
	else if ((i = ac__loop_choice(rt, loop)) == AC_EINVAL)
		return AC_EINVAL;
	if (i == -1) { /* AC_LOOP_DEFAULT */
		if (!on_loop)
			return AC_EINVAL;
		i = ac__tls_loop->index;
	}
	if (ac__rt_state(rt) == AC__RT_STOPPED)
		return AC_ESHUTDOWN;
	if (!(v = ac__calloc(AC__K_OTHER, 1, sizeof(*v))))
		return AC_ENOMEM;
	v->node.fn = visit_cb;
	v->node.arg = v;
	v->rt = rt;
	v->fn = fn;
	v->done = done;
	v->arg = arg;
	v->next = i == -2 ? 0 : i;
	v->last = i == -2 ? rt->nloops - 1 : i;
	v->home = on_loop ? ac__tls_loop->index : -1;
	/* Even the calling loop is visited from its next drain cycle, never
	 * from inside this call. */
	ac__loop_ctl_node(rt->loops[v->next], &v->node);
	return 0;
}

/* ---- from a handle back to its connection ------------------------------------- */

AC_EXPORT ac_conn_t *ac_handle_conn(ac_runtime_t *rt, ac_handle_t h)
{
	ac_conn_t *c;

	if (!rt || h == AC_HANDLE_NONE) {
		errno = EINVAL;
		return NULL;
	}
	if (!ac__on_loop_of(rt) || AC_HANDLE_LOOP(h) != ac__tls_loop->index) {
		errno = EPERM;
		return NULL;
	}
	if (!(c = ac__handle_local(ac__tls_loop, h)) || c->state == AC__C_DEAD) {
		errno = ESTALE;
		return NULL;
	}
	return c;
}
