/*
 * connect.c: outbound connections, with reconnect.
 *
 *   ac_connect ─► CONNECTING ──connected──► OPEN ──lost──┐
 *                   │  ▲  (name lookup,                   │
 *                   │  │   each address in turn,          ▼
 *                   │  │   connect_timeout_ms)        (finalize: on_close)
 *                   │  └──── WAITING ◄── back-off ◄───────┤ reconnect policy
 *                   └─failed──────────────────────────────┘ says again
 *
 * An outbound connection is an ordinary ac_conn_t with an ac__outbound
 * beside it. Its handle names the logical connection: the handle slot is
 * kept across attempts, and only the final close (the user closed it, the
 * runtime stopped, or the policy gave up) makes it stale. Each attempt ends
 * in ac__conn_finalize like any connection, so on_close runs exactly once
 * per attempt, after the callback that ended it has returned.
 *
 * Names are resolved on the owner loop with evdns (one evdns_base per loop,
 * made on first use); numeric and unix addresses need no lookup. Every step
 * runs on the owner loop, inside a library callback.
 */
#include "connect.h"
#include "ctlreq.h"
#include "addr.h"
#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "loop.h"
#include "runtime.h"
#include "sock.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/dns.h>

#define AC__DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define AC__DEFAULT_RECONNECT_MAX_MS 30000u

/* ---- targets -------------------------------------------------------------- */

/* Parses s without any lookup: a name is kept for evdns. */
int ac__target_parse(const char *s, struct ac__target *t)
{
	struct ac__addr a;
	char host[256];
	int port, err;

	memset(t, 0, sizeof(*t));
	if ((err = ac__addr_split(s, &a, host, sizeof(host), &port)))
		return err;
	if (a.family) {
		if (!(t->addr = ac__malloc(AC__K_OTHER, sizeof(*t->addr))))
			return AC_ENOMEM;
		*t->addr = a;
		return 0;
	}
	if (!(t->host = ac__strdup(host)))
		return AC_ENOMEM;
	snprintf(t->port, sizeof(t->port), "%d", port);
	return 0;
}

void ac__target_clear(struct ac__target *t)
{
	ac__free(AC__K_OTHER, t->addr);
	ac__free(AC__K_OTHER, t->host);
	memset(t, 0, sizeof(*t));
}

/* ---- back-off ----------------------------------------------------------------- */

/*
 * The wait before the next attempt after `failures` failed attempts in a
 * row (at least 1): d = min(max_ms, min_ms * 2^(failures - 1)), then a
 * uniform draw from [d/2, d] ("equal jitter": reconnecting clients spread
 * out, yet the wait still grows), never below min_ms.
 */
unsigned ac__backoff_ms(ac__loop_t *loop, unsigned min_ms, unsigned max_ms,
			unsigned failures)
{
	uint64_t d = min_ms, x;

	for (unsigned i = 1; i < failures && d < max_ms; i++)
		d <<= 1;
	if (d > max_ms)
		d = max_ms;
	/* xorshift64: jitter needs no quality, only no lock. */
	x = loop->rng ? loop->rng : 0x9e3779b97f4a7c15ull ^ (uint64_t)loop->index;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	loop->rng = x;
	d = d - d / 2 + x % (d / 2 + 1);
	return (unsigned)(d < min_ms ? min_ms : d);
}

/* ---- one attempt ------------------------------------------------------------ */

static void connect_cb(evutil_socket_t fd, short what, void *arg);
static void try_next(ac_conn_t *c);

/* The attempt failed: on to finalize, which decides about the next one. */
static void attempt_failed(ac_conn_t *c, int reason)
{
	ac__conn_fail(c, reason); /* still CONNECTING: takes reason */
}

/* The name a TLS client sends and checks the certificate against:
 * tls_name, else the host as given (a name, or a numeric address, which
 * the certificate must then list); none for a unix socket. */
static const char *tls_name(ac_conn_t *c, char *buf, size_t len)
{
	const struct ac__target *t = c->ob->t;

	if (c->proto->tls_name)
		return c->proto->tls_name;
	if (t->host)
		return t->host;
	if (ac__addr_host(t->addr, buf, len) == 0)
		return buf;
	return NULL;
}

static void established(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	char name[INET6_ADDRSTRLEN];
	int err;

	event_del(ob->cto_ev);
	event_free(c->wev);
	c->wev = NULL;
	if (ob->ai) {
		evutil_freeaddrinfo(ob->ai);
		ob->ai = ob->ai_next = NULL;
	}
	/* Sets the facts of this attempt; under TLS, checks the name. */
	if ((err = ac__conn_ready(c, tls_name(c, name, sizeof(name))))) {
		attempt_failed(c, err);
		return;
	}
	ac__conn_start(c); /* on_open now, or after the handshake */
}

/* Starts a non-blocking connect to one address. Returns 0 when under way
 * (connect_cb will say how it went), else the errno. */
static int start_connect(ac_conn_t *c, const struct sockaddr *sa,
			 socklen_t len)
{
	int fd = socket(sa->sa_family,
			SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int e;

	if (fd < 0)
		return errno;
	/* Buffer sizes before the handshake, which announces the window
	 * (the rest of the options wait for ac__conn_ready). */
	if ((e = -ac__sock_buffers(fd, &c->proto->opts))) {
		close(fd);
		return e;
	}
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		/* A unix socket with a full backlog says EAGAIN: for a
		 * client that is a refusal, not a retry hint. */
		e = errno;
		close(fd);
		return e;
	}
	/* Connected or in progress: writability says which. Even an
	 * immediate success goes through connect_cb, so on_open never runs
	 * inside the call that started the attempt. */
	c->fd = fd;
	if (!(c->wev = event_new(c->loop->base, fd, EV_WRITE, connect_cb, c)) ||
	    event_add(c->wev, NULL)) {
		if (c->wev)
			event_free(c->wev);
		c->wev = NULL;
		close(fd);
		c->fd = -1;
		return ENOMEM;
	}
	return 0;
}

/* Tries the attempt's addresses in order until one is under way. */
static void try_next(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	int e;

	if (ob->t->addr) {
		if (ob->fixed_left) { /* the one fixed address */
			ob->fixed_left = 0;
			e = start_connect(c, (struct sockaddr *)&ob->t->addr->ss,
					  ob->t->addr->len);
			if (e == 0)
				return;
			ob->last_errno = e;
		}
	} else {
		while (ob->ai_next) {
			struct evutil_addrinfo *ai = ob->ai_next;

			ob->ai_next = ai->ai_next;
			e = start_connect(c, ai->ai_addr,
					  (socklen_t)ai->ai_addrlen);
			if (e == 0)
				return;
			ob->last_errno = e;
		}
	}
	/* The last address's errno says why (ECONNREFUSED, ...). */
	attempt_failed(c, ob->last_errno ? -ob->last_errno : AC_ENAME);
}

static void connect_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;
	socklen_t len = sizeof(int);
	int e = 0;

	ac__loop_enter(loop);
	if (c->state == AC__C_CONNECTING) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
			e = errno;
		if (e == 0) {
			established(c);
		} else {
			/* This address failed; the next one may not. */
			event_free(c->wev);
			c->wev = NULL;
			close(c->fd);
			c->fd = -1;
			c->ob->last_errno = e;
			try_next(c);
		}
	}
	ac__loop_leave(loop);
}

static void cto_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;

	ac__loop_enter(loop);
	if (c->state == AC__C_CONNECTING)
		attempt_failed(c, AC_ETIMEDOUT);
	ac__loop_leave(loop);
}

static void resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop;

	/* Cancelled: c may already be gone, so do not look at it. */
	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return;
	}
	loop = c->loop;
	ac__loop_enter(loop);
	c->ob->dns = NULL;
	c->ob->resolving = 0;
	if (c->state != AC__C_CONNECTING) {
		if (res)
			evutil_freeaddrinfo(res);
	} else if (result != 0 || !res) {
		if (res)
			evutil_freeaddrinfo(res);
		attempt_failed(c, result == EVUTIL_EAI_MEMORY ? AC_ENOMEM
							       : AC_ENAME);
	} else {
		c->ob->ai = c->ob->ai_next = res;
		c->ob->last_errno = 0;
		try_next(c);
	}
	ac__loop_leave(loop);
}

static struct evdns_base *loop_dns(ac__loop_t *loop)
{
	const char *conf = loop->rt->resolv_conf;

	if (loop->dns)
		return loop->dns;
	/* Reads the resolver configuration and /etc/hosts once per loop. A
	 * missing file leaves evdns with its defaults. */
	if (!(loop->dns = evdns_base_new(loop->base, 0)))
		return NULL;
	evdns_base_resolv_conf_parse(loop->dns, DNS_OPTIONS_ALL,
				     conf ? conf : "/etc/resolv.conf");
	return loop->dns;
}

static void resolve(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	struct evutil_addrinfo hints = {0};
	struct evdns_base *dns = loop_dns(c->loop);
	struct evdns_getaddrinfo_request *req;

	if (!dns) {
		attempt_failed(c, AC_ENOMEM);
		return;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* The callback may run before evdns_getaddrinfo returns (a hosts
	 * file answer): `resolving` tells whether the request is still out. */
	ob->resolving = 1;
	req = evdns_getaddrinfo(dns, ob->t->host, ob->t->port, &hints,
				resolved_cb, c);
	if (ob->resolving)
		ob->dns = req;
}

/* Owner loop, inside a callback: starts the next attempt. */
void ac__connect_attempt(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	const ac_conn_opts_t *o = &c->proto->opts;
	unsigned ms = o->connect_timeout_ms ? o->connect_timeout_ms
					    : AC__DEFAULT_CONNECT_TIMEOUT_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	c->state = AC__C_CONNECTING;
	c->reason = 0;
	ob->last_errno = 0;
	ob->ai_next = NULL;
	ob->fixed_left = 1;
	if (!ac__conn_take_place(c)) {
		attempt_failed(c, AC_ELIMIT);
		return;
	}
	if (evtimer_add(ob->cto_ev, &tv)) {
		attempt_failed(c, AC_ENOMEM);
		return;
	}
	if (ob->t->host)
		resolve(c);
	else
		try_next(c);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;

	ac__loop_enter(loop);
	if (c->state == AC__C_WAITING)
		ac__connect_attempt(c);
	ac__loop_leave(loop);
}

ac_conn_t *ac__connect_new(ac__loop_t *loop, ac__proto_t *proto,
			   const struct ac__target *t, int *err)
{
	struct ac__outbound *ob;
	ac_conn_t *c;

	if (loop->stopping) {
		*err = AC_ESHUTDOWN;
		return NULL;
	}
	if (!(ob = ac__calloc(AC__K_OTHER, 1, sizeof(*ob)))) {
		*err = AC_ENOMEM;
		return NULL;
	}
	if (!(c = ac__conn_new(loop, proto, err))) {
		ac__free(AC__K_OTHER, ob);
		return NULL;
	}
	c->ob = ob;
	c->state = AC__C_CONNECTING;
	if (t->addr) /* the peer is known before the first connect */
		ac__facts_set(c, t->addr->family,
			      t->addr->family == AF_UNIX
				      ? NULL
				      : (struct sockaddr *)&t->addr->ss,
			      t->addr->family == AF_UNIX ? 0 : t->addr->len,
			      ac__wall_ms());
	ob->t = t;
	if (!(ob->cto_ev = evtimer_new(loop->base, cto_cb, c)) ||
	    !(ob->retry_ev = evtimer_new(loop->base, retry_cb, c))) {
		/* Nobody has heard of c yet: undo, no on_close. */
		if (ob->cto_ev)
			event_free(ob->cto_ev);
		ac__free(AC__K_OTHER, ob);
		c->ob = NULL;
		ac__conn_discard(c);
		*err = AC_ENOMEM;
		return NULL;
	}
	return c;
}

/* ---- the end of an attempt --------------------------------------------------- */

/* begin_close of a connection that is connecting or waiting: stop what is
 * under way; finalize does the rest. */
void ac__outbound_close(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;

	event_del(ob->retry_ev);
	event_del(ob->cto_ev);
	if (c->wev)
		event_del(c->wev);
}

/* Finalize, first thing: will c try again? If so the back-off is armed. */
bool ac__outbound_again(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	const ac_conn_opts_t *o = &c->proto->opts;
	unsigned ms;
	struct timeval tv;

	if (!c->is_open)
		ob->failures++;
	/* A draining loop makes no new attempts: the drain waits for its
	 * connections to end, not to come back. */
	if (ob->stop || c->loop->stopping || c->loop->draining ||
	    !o->reconnect_min_ms ||
	    c->reason == 0 || c->reason == AC_ESHUTDOWN ||
	    (o->reconnect_max_attempts &&
	     ob->failures >= o->reconnect_max_attempts))
		return false;
	ms = ac__backoff_ms(c->loop, o->reconnect_min_ms,
			    o->reconnect_max_ms ? o->reconnect_max_ms
						: AC__DEFAULT_RECONNECT_MAX_MS,
			    ob->failures ? ob->failures : 1);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return evtimer_add(ob->retry_ev, &tv) == 0;
}

/* Finalize: what one attempt holds beyond the socket and its events. */
void ac__outbound_end_attempt(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;

	event_del(ob->cto_ev);
	if (ob->dns) {
		struct evdns_getaddrinfo_request *req = ob->dns;
		ob->dns = NULL;
		ob->resolving = 0;
		evdns_getaddrinfo_cancel(req);
	}
	if (ob->ai) {
		evutil_freeaddrinfo(ob->ai);
		ob->ai = ob->ai_next = NULL;
	}
}

/* Finalize, the final close: the rest goes. */
void ac__outbound_free(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;

	event_free(ob->retry_ev);
	event_free(ob->cto_ev);
	ac__tls_forget_session(c);
	if (ob->own) {
		ac__target_clear(ob->own);
		ac__free(AC__K_OTHER, ob->own);
	}
	ac__free(AC__K_OTHER, ob);
	c->ob = NULL;
}

/* ---- ac_connect ------------------------------------------------------------------ */

/*
 * A control thread's request to connect on a loop. The caller waits for
 * the loop to answer, but a request posted just as the runtime stops may
 * not run until ac_runtime_free settles the mailboxes again, and the
 * caller must not wait for that (it may be the thread that will call
 * ac_runtime_free). So the caller waits with a timeout and, once the
 * runtime is stopped, abandons the request: under the mutex, exactly one
 * side sees the other's mark and owns the cleanup. The request is on the
 * heap for that reason.
 */
struct ac__creq {
	struct ac__ctlreq q; /* the waiting protocol (ctlreq.h) */
	ac__proto_t *proto;
	struct ac__target *t; /* taken over by the connection on success */
};

/* Frees r; with own_t, also the target, which nobody took over. */
static void creq_free(struct ac__creq *r, bool own_t)
{
	if (own_t) {
		ac__target_clear(r->t);
		ac__free(AC__K_OTHER, r->t);
	}
	ac__proto_unref(r->proto); /* the request's own reference */
	ac__ctlreq_destroy(&r->q);
	ac__free(AC__K_OTHER, r);
}

/* On the owner loop: make the connection and start its first attempt.
 * Takes t over on success. */
static int connect_here(ac__loop_t *loop, ac__proto_t *proto,
			struct ac__target *t, ac_handle_t *out)
{
	int err;
	ac_conn_t *c = ac__connect_new(loop, proto, t, &err);

	if (!c)
		return err;
	c->ob->own = t;
	*out = c->handle;
	ac__connect_attempt(c);
	return 0;
}

/*
 * Posted by a control thread; runs on the loop, or on the stopping thread
 * (ac__tls_loop NULL) if the runtime stopped first. The caller abandons
 * only once the runtime is STOPPED, that is after every loop exited, so
 * while this runs on a loop it cannot be abandoned; on the stopping
 * thread it connects nothing.
 */
static void creq_run(void *arg)
{
	struct ac__creq *r = arg;
	ac__loop_t *loop = ac__tls_loop;
	ac_handle_t h = AC_HANDLE_NONE;
	int err = loop && !loop->stopping
			  ? connect_here(loop, r->proto, r->t, &h)
			  : AC_ESHUTDOWN;

	if (!ac__ctlreq_answer(&r->q, err, h))
		creq_free(r, err != 0); /* abandoned: only off-loop, err set */
}

/*
 * The control thread's side: post the request and wait for the loop. On
 * return *tp is NULL when the request kept the target (it was taken over
 * by the connection, or abandoned with the request).
 */
static int connect_from_control(ac_runtime_t *rt, int target,
				ac__proto_t *proto, struct ac__target **tp,
				ac_handle_t *out)
{
	struct ac__creq *r = ac__calloc(AC__K_OTHER, 1, sizeof(*r));
	bool abandoned;
	int err;

	if (!r)
		return AC_ENOMEM;
	ac__ctlreq_init(&r->q);
	r->proto = proto;
	r->t = *tp;
	ac__proto_ref(proto); /* the request's own */
	/* creq_run runs exactly once, on the loop or when the runtime's
	 * mailboxes are settled after the stop. */
	if ((err = ac_loop_post(rt, AC_LOOP(target), creq_run, r))) {
		creq_free(r, false);
		return err;
	}
	err = ac__ctlreq_wait(rt, &r->q, out, &abandoned);
	if (abandoned) {
		/* The request runs only at the next settle (ac_runtime_free),
		 * which this caller may be the one to call; it frees itself
		 * and the target then. */
		*tp = NULL;
		return err;
	}
	if (err == 0)
		*tp = NULL; /* the connection's now */
	creq_free(r, false);
	return err;
}

AC_EXPORT int ac_connect(ac_runtime_t *rt, const char *addr,
			 const ac_conn_cbs_t *cbs, const ac_conn_opts_t *opts,
			 void *ud, ac_handle_t *out)
{
	ac__loop_t *self = ac__tls_loop;
	struct ac__target *t = NULL;
	ac__proto_t *proto = NULL;
	int err, target;

	if (!rt || !addr || !out)
		return AC_EINVAL;
	*out = AC_HANDLE_NONE;
	if ((err = ac__ctlreq_target(rt, opts ? opts->loop : AC_LOOP_DEFAULT,
				     &target)))
		return err;

	if (!(t = ac__calloc(AC__K_OTHER, 1, sizeof(*t))))
		return AC_ENOMEM;
	if ((err = ac__target_parse(addr, t)))
		goto fail;
	if (!(proto = ac__proto_new(rt, cbs, opts, ud, AC_TLS_CLIENT, &err)))
		goto fail;

	if (self) {
		if ((err = connect_here(self, proto, t, out)) == 0)
			t = NULL; /* the connection's now */
	} else {
		err = connect_from_control(rt, target, proto, &t, out);
	}
fail:
	ac__proto_unref(proto); /* a connection holds its own */
	if (t) {
		ac__target_clear(t);
		ac__free(AC__K_OTHER, t);
	}
	if (err)
		*out = AC_HANDLE_NONE;
	return err;
}
