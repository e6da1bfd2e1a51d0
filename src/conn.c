/*
 * conn.c: a connection's life on its owner loop.
 *
 *   OPEN ──ac_conn_close(FLUSH)──► CLOSING ──output drained──► (finalize)
 *     │                               │linger/grace timer
 *     └──abort, error, EOF──────────► (finalize) ──► DEAD, retired
 *
 * Finalizing happens only in the outermost ac__loop_leave, after the
 * callback that closed the connection has returned (rule 5). It makes the
 * handle stale first, then closes the socket, calls on_close exactly once,
 * and retires the memory through ck_hp: the struct is freed only when no
 * hazard pointer holds it.
 *
 * Input: a read lands in the loop's scratch buffer and frames are decoded
 * straight from it; only an incomplete tail is copied into the
 * connection's own buffer, which is freed again once empty. An idle
 * connection therefore holds no input memory.
 *
 * Output: writes append to the output queue (outq.h) and queue the
 * connection for a flush at the end of the loop's turn (loop.c,
 * ac__loop_leave), so a burst of writes (pipelined replies, a drain of
 * many mailbox messages, a turn's publications) costs one sendmsg. The
 * queue holds no memory once empty. sendmsg with MSG_NOSIGNAL: a vanished
 * peer is an error code, never SIGPIPE.
 */
#define _GNU_SOURCE
#include "conn.h"
#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "connect.h"
#include "group.h"
#include "handle.h"
#include "runtime.h"
#include "sock.h"
#include "timer.h"
#include "tls.h"
#include "watch.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>



/* Idle memory per connection is a target (README, Performance): a field
 * added here must push something rarely used out to keep this true. */
_Static_assert(sizeof(struct ac_conn_s) <= 256,
	       "ac_conn_t outgrew its 256-byte size class");

/* ---- protocol objects --------------------------------------------------- */

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static size_t max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

/*
 * Output bounds. Fields left 0 take defaults that fit the ones set, so
 * setting out_high alone always works; settings that cannot work are
 * refused, saying why: on_drain needs out_low < out_high, a hard limit
 * below out_high would close a connection the watermarks still call
 * writable, and a soft limit above the hard one could never be reached.
 */
static int out_bounds(ac_runtime_t *rt, ac_conn_opts_t *o)
{
	if (!o->out_high)
		o->out_high = AC__DEFAULT_OUT_HIGH;
	if (!o->out_low)
		o->out_low = max_size(1, min_size(AC__DEFAULT_OUT_LOW,
						  o->out_high / 4));
	if (!o->out_hard_limit)
		o->out_hard_limit = max_size(AC__DEFAULT_OUT_HARD, o->out_high);
	if (!o->out_soft_limit)
		o->out_soft_limit = min_size(max_size(AC__DEFAULT_OUT_SOFT,
						      o->out_high),
					     o->out_hard_limit);
	if (o->out_low >= o->out_high) {
		ac__log(rt, AC_LOG_ERROR,
			"out_low (%zu) must be below out_high (%zu)",
			o->out_low, o->out_high);
		return AC_EINVAL;
	}
	if (o->out_hard_limit < o->out_high) {
		ac__log(rt, AC_LOG_ERROR,
			"out_hard_limit (%zu) must be at least out_high (%zu)",
			o->out_hard_limit, o->out_high);
		return AC_EINVAL;
	}
	if (o->out_soft_limit > o->out_hard_limit) {
		ac__log(rt, AC_LOG_ERROR,
			"out_soft_limit (%zu) is above out_hard_limit (%zu), "
			"where the connection is closed first",
			o->out_soft_limit, o->out_hard_limit);
		return AC_EINVAL;
	}
	return 0;
}

ac__proto_t *ac__proto_new(ac_runtime_t *rt, const ac_conn_cbs_t *cbs,
			   const ac_conn_opts_t *opts, void *ud, int role,
			   int *err)
{
	ac_conn_opts_t o = {0};
	ac__proto_t *p;

	if (opts)
		o = *opts;
	if (!ac__reserved_zero(o.reserved, sizeof(o.reserved)) ||
	    (cbs && !ac__reserved_zero(cbs->reserved, sizeof(cbs->reserved)))) {
		ac__log(rt, AC_LOG_ERROR, "%s: %s",
			ac__reserved_zero(o.reserved, sizeof(o.reserved))
				? "ac_conn_cbs_t"
				: "ac_conn_opts_t",
			AC__RESERVED_MSG);
		*err = AC_EINVAL;
		return NULL;
	}
	switch (o.framing) {
	case AC_FRAME_RAW:
		o.decode = ac_decode_raw;
		break;
	case AC_FRAME_LINE:
		o.decode = ac_decode_line;
		break;
	case AC_FRAME_LEN32:
		o.decode = ac_decode_len32;
		break;
	case AC_FRAME_CUSTOM:
		if (o.decode)
			break;
		ac__log(rt, AC_LOG_ERROR, "AC_FRAME_CUSTOM needs a decode function");
		*err = AC_EINVAL;
		return NULL;
	default:
		ac__log(rt, AC_LOG_ERROR, "unknown framing %d", o.framing);
		*err = AC_EINVAL;
		return NULL;
	}
	if (!o.max_frame)
		o.max_frame = AC__DEFAULT_MAX_FRAME;
	if (!o.linger_ms)
		o.linger_ms = AC__DEFAULT_LINGER_MS;
	if (!o.out_soft_ms)
		o.out_soft_ms = AC__DEFAULT_OUT_SOFT_MS;
	if ((*err = out_bounds(rt, &o)))
		return NULL;
	if ((*err = ac__sockopts_check(rt, &o)))
		return NULL;
	if (o.ping_len && !o.ping) {
		ac__log(rt, AC_LOG_ERROR, "ping_len is %zu but ping is NULL",
			o.ping_len);
		*err = AC_EINVAL;
		return NULL;
	}
	if (o.heartbeat_ms && !o.ping_len && !(cbs && cbs->on_heartbeat)) {
		ac__log(rt, AC_LOG_ERROR,
			"heartbeat_ms is set, but there is neither an "
			"on_heartbeat callback nor a ping payload to send");
		*err = AC_EINVAL;
		return NULL;
	}
#ifndef AC_HAVE_OPENSSL
	if (o.tls) {
		ac__log(rt, AC_LOG_ERROR, "TLS asked for, but built without OpenSSL");
		*err = AC_ENOTSUP;
		return NULL;
	}
#endif
	if (o.tls && ac__tls_is_server(o.tls) != (role == AC_TLS_SERVER)) {
		ac__log(rt, AC_LOG_ERROR, "%s",
			role == AC_TLS_SERVER
				? "a listener needs a TLS context made with role AC_TLS_SERVER"
				: "an outbound connection needs a TLS context made with role AC_TLS_CLIENT");
		*err = AC_EINVAL;
		return NULL;
	}
	if (!(p = ac__calloc(AC__K_OTHER, 1, sizeof(*p)))) {
		*err = AC_ENOMEM;
		return NULL;
	}
	if (o.tls_name && !(o.tls_name = p->tls_name = ac__strdup(o.tls_name))) {
		ac__free(AC__K_OTHER, p);
		*err = AC_ENOMEM;
		return NULL;
	}
	if (o.ping_len) {
		/* Our own copy: the caller's buffer need not outlive listen. */
		if (!(p->ping = ac__malloc(AC__K_OTHER, o.ping_len))) {
			ac__free(AC__K_OTHER, p->tls_name);
			ac__free(AC__K_OTHER, p);
			*err = AC_ENOMEM;
			return NULL;
		}
		memcpy(p->ping, o.ping, o.ping_len);
		o.ping = p->ping;
	}
	if (cbs)
		p->cbs = *cbs;
	p->opts = o;
	p->decode = o.decode;
	p->ud = ud;
	p->refs = 1;
	if (o.tls)
		ac__tls_ref(o.tls);
	return p;
}

void ac__proto_ref(ac__proto_t *p)
{
	__atomic_fetch_add(&p->refs, 1, __ATOMIC_RELAXED);
}

void ac__proto_unref(ac__proto_t *p)
{
	/* Acq-rel: every holder's last use happens before the free. */
	if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		ac__tls_unref(p->opts.tls);
		ac__free(AC__K_OTHER, p->tls_name);
		ac__free(AC__K_OTHER, p->ping);
		ac__free(AC__K_OTHER, p);
	}
}

/* ---- queues of deferred work --------------------------------------------- */

static void queue_close(ac_conn_t *c)
{
	ac__loop_t *loop = c->loop;

	if (c->close_queued)
		return;
	c->close_queued = 1;
	STAILQ_INSERT_TAIL(&loop->closing, c, closing);
}

static void queue_flush(ac_conn_t *c)
{
	if (c->flush_queued)
		return;
	c->flush_queued = 1;
	STAILQ_INSERT_TAIL(&c->loop->flushing, c, flushing);
	c->loop->nflushing++;
}

/* Plaintext queued and not yet sent: under TLS, also what is encrypted
 * and waiting on the socket. The output bounds measure this. */
static size_t out_len(const ac_conn_t *c)
{
	return c->out.bytes + (AC__UNLIKELY(c->tls) ? ac__tls_unsent(c) : 0);
}

/* ---- callbacks from libevent ------------------------------------------- */

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(evutil_socket_t fd, short what, void *arg);

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;

	ac__loop_enter(loop);
	ac__conn_fail(c, c->reason); /* keeps the first reason */
	ac__loop_leave(loop);
}

/* ---- what only some connections need --------------------------------------- */

/* c's aux, made on first need; NULL without memory. */
static struct ac__conn_aux *aux(ac_conn_t *c)
{
	if (!c->aux)
		c->aux = ac__calloc(AC__K_OTHER, 1, sizeof(*c->aux));
	return c->aux;
}

/* ---- liveness timers ------------------------------------------------------ */

/* A liveness timer ran out: close c with reason, in a library callback. */
static void expire(ac_conn_t *c, int reason)
{
	ac__loop_t *loop = c->loop;

	ac__loop_enter(loop);
	ac__conn_fail(c, reason);
	ac__loop_leave(loop);
}

static void idle_cb(evutil_socket_t fd, short what, void *c)
{
	expire(c, AC_ETIMEDOUT);
}

static void wto_cb(evutil_socket_t fd, short what, void *c)
{
	expire(c, AC_EWTIMEDOUT);
}

/* Armed when output went over the soft limit and disarmed when it came
 * back under: still over after out_soft_ms. */
static void soft_cb(evutil_socket_t fd, short what, void *c)
{
	expire(c, AC_ESLOW);
}

/* (Re)arms one of c's timer events for ms, making it on first use. */
static int arm(ac_conn_t *c, struct event **ev, unsigned ms, short flags,
	       event_callback_fn cb)
{
	struct timeval fallback;

	if (!*ev && !(*ev = event_new(c->loop->base, -1, flags, cb, c)))
		return AC_ENOMEM;
	return event_add(*ev, ac__loop_timeout(c->loop, ms, &fallback))
		       ? AC_ENOMEM
		       : 0;
}

/*
 * Heartbeats are batched: a loop wakes once for all the connections whose
 * heartbeat falls due together, not once per connection. The loop's
 * timers are precise (loop.c), so heartbeats armed at different moments
 * would each wake it; `actorconn-bench heartbeat` measured 1.8 wake-ups
 * and 2.7 context switches per round trip (5,000 connections, 1 s), and
 * 64 us of server CPU per round trip against the raw epoll server's 25.
 * So heartbeats fall on a grid of hb_grid_us (a hundredth of the period,
 * 1 to 100 ms), the same instants for every connection of the loop: the
 * first at the first grid point a period after the connection opened,
 * each later one at the grid point nearest to a period after the loop
 * turn that ran the last. Rounding to the nearest keeps the cadence (a
 * turn runs less than half a step late) and gathers again connections
 * whose turns differed by a little. The cost: the first heartbeat comes
 * up to one grid step after the period.
 */
static void hb_cb(evutil_socket_t fd, short what, void *arg);

static uint64_t hb_grid_us(unsigned ms)
{
	unsigned g = ms / 100;

	return 1000 * (uint64_t)(g < 1 ? 1 : g > 100 ? 100 : g);
}

/* Owner loop: arms c's next heartbeat a period from this loop turn's time,
 * on the grid: the first grid point from there (first), or the nearest. */
static int hb_arm(ac_conn_t *c, unsigned ms, bool first)
{
	struct timeval now, tv;
	uint64_t grid = hb_grid_us(ms), now_us, due_us;

	if (!c->hb_ev && !(c->hb_ev = event_new(c->loop->base, -1, 0, hb_cb, c)))
		return AC_ENOMEM;
	/* The turn's time is the base every timer added in the turn counts
	 * from, so connections armed in any turn land on the same
	 * instants. */
	event_base_gettimeofday_cached(c->loop->base, &now);
	now_us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_usec;
	due_us = now_us + (uint64_t)ms * 1000 + (first ? grid - 1 : grid / 2);
	due_us -= due_us % grid;
	tv.tv_sec = (time_t)((due_us - now_us) / 1000000);
	tv.tv_usec = (suseconds_t)((due_us - now_us) % 1000000);
	return event_add(c->hb_ev, &tv) ? AC_ENOMEM : 0;
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;
	const ac__proto_t *p = c->proto;

	ac__loop_enter(loop);
	if (c->state == AC__C_OPEN) {
		if (hb_arm(c, p->opts.heartbeat_ms, false))
			ac__conn_fail(c, AC_ENOMEM);
		else if (p->cbs.on_heartbeat)
			p->cbs.on_heartbeat(c);
		else if (p->opts.ping_len)
			ac__conn_write(c, p->opts.ping, p->opts.ping_len);
	}
	ac__loop_leave(loop);
}

static void disarm(struct event *ev)
{
	if (ev)
		event_del(ev);
}

/* ---- open ------------------------------------------------------------------ */

/*
 * Takes a place under the runtime's and the listener's max_conns. Returns
 * false when either is full (nothing taken).
 */
static bool take_place(ac_runtime_t *rt, ac__proto_t *p)
{
	unsigned lmax = p->opts.max_conns;

	if (rt->max_conns &&
	    __atomic_add_fetch(&rt->nconns, 1, __ATOMIC_RELAXED) > rt->max_conns) {
		__atomic_sub_fetch(&rt->nconns, 1, __ATOMIC_RELAXED);
		return false;
	}
	if (lmax && __atomic_add_fetch(&p->nconns, 1, __ATOMIC_RELAXED) > lmax) {
		__atomic_sub_fetch(&p->nconns, 1, __ATOMIC_RELAXED);
		if (rt->max_conns)
			__atomic_sub_fetch(&rt->nconns, 1, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

/* Undoes a take_place that succeeded. */
static void leave_place(ac_runtime_t *rt, ac__proto_t *p)
{
	if (rt->max_conns)
		__atomic_sub_fetch(&rt->nconns, 1, __ATOMIC_RELAXED);
	if (p->opts.max_conns)
		__atomic_sub_fetch(&p->nconns, 1, __ATOMIC_RELAXED);
}

static void give_place(ac_conn_t *c)
{
	if (c->counted) {
		c->counted = 0;
		leave_place(c->loop->rt, c->proto);
	}
}

/* ---- facts --------------------------------------------------------------- */

void ac__facts_set(ac_conn_t *c, int family, const struct sockaddr *peer,
		   socklen_t len, uint64_t opened_ms)
{
	struct ac__facts *f = &c->facts;
	uint64_t w[4] = {0, 0, 0, 0};

	if (peer && len <= sizeof(w))
		memcpy(w, peer, len);
	ck_sequence_write_begin(&f->seq);
	__atomic_store_n(&f->family, (uint16_t)family, __ATOMIC_RELAXED);
	__atomic_store_n(&f->opened_ms, opened_ms, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		__atomic_store_n(&f->peer[i], w[i], __ATOMIC_RELAXED);
	ck_sequence_write_end(&f->seq);
	/* A new attempt is not idle: its clock starts now. */
	__atomic_store_n(&c->last_read_ms, opened_ms, __ATOMIC_RELAXED);
}

void ac__facts_get(const ac_conn_t *c, struct ac__facts_copy *out)
{
	const struct ac__facts *f = &c->facts;
	uint64_t w[4];
	unsigned v;

	do {
		v = ck_sequence_read_begin(&f->seq);
		out->family = __atomic_load_n(&f->family, __ATOMIC_RELAXED);
		out->opened_ms = __atomic_load_n(&f->opened_ms, __ATOMIC_RELAXED);
		for (int i = 0; i < 4; i++)
			w[i] = __atomic_load_n(&f->peer[i], __ATOMIC_RELAXED);
	} while (ck_sequence_read_retry(&f->seq, v));
	memset(&out->peer, 0, sizeof(out->peer));
	out->peer_len = out->family == AF_INET    ? sizeof(struct sockaddr_in)
			: out->family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : 0;
	memcpy(&out->peer, w, out->peer_len);
}

/* Owner loop: takes c's place under max_conns; false when full. */
bool ac__conn_take_place(ac_conn_t *c)
{
	if (!c->counted && take_place(c->loop->rt, c->proto))
		c->counted = 1;
	return c->counted;
}

/*
 * Owner loop. A connection object without a socket: allocated, given a
 * handle slot, on the loop's list and published, so its handle is live
 * from here on. NULL with *err set on failure.
 */
ac_conn_t *ac__conn_new(ac__loop_t *loop, ac__proto_t *proto, int *err)
{
	ac_conn_t *c;
	uint32_t idx, gen;

	if (!(c = ac__calloc(AC__K_CONN, 1, sizeof(*c)))) {
		*err = AC_ENOMEM;
		return NULL;
	}
	if ((*err = ac__htab_alloc(&loop->htab, &idx, &gen))) {
		ac__free(AC__K_CONN, c);
		return NULL;
	}
	c->loop = loop;
	c->fd = -1;
	c->proto = proto;
	c->data = proto->ud;
	c->handle = ac__handle_make(loop->index, idx, gen);
	ac__outq_init(&c->out);
	/* Not yet published: no reader can race this first write. */
	ac__facts_set(c, AF_UNSPEC, NULL, 0, ac__wall_ms());
	ac__proto_ref(proto);
	loop->nconns++;
	AC__STAT_SET(loop, handles_live, loop->htab.live);
	/* Release: a thread that sees c in the slot sees its facts. */
	__atomic_store_n(&ac__htab_slot(&loop->htab, idx)->conn, c,
			 __ATOMIC_RELEASE);
	return c;
}

static void aux_free(ac_conn_t *c);

static void unlink_conn(ac_conn_t *c)
{
	c->loop->nconns--;
}

void ac__loop_each_conn(ac__loop_t *loop, void (*fn)(ac_conn_t *c, int arg),
			int arg)
{
	/* The handle table is the list of connections: a slot holds its
	 * connection from ac__conn_new to finalize. */
	for (uint32_t i = 0; i < loop->htab.nslots; i++) {
		ac_conn_t *c = ac__htab_slot(&loop->htab, i)->conn;
		if (c && c->state != AC__C_DEAD)
			fn(c, arg);
	}
}

/* Retired connections end here, once no hazard pointer holds them. The
 * memory is poisoned first, so a use after free is loud even without a
 * sanitizer (the pin tests check the connection's handle field, which
 * poisoning makes wrong). */
static void conn_destroy(struct ac__hpobj *o)
{
	memset(o, 0xdd, sizeof(ac_conn_t));
	ac__free(AC__K_CONN, o);
}

/* Owner loop: undoes ac__conn_new for a connection nobody has heard of.
 * Another thread may have pinned it already, so it is retired, not
 * freed. */
void ac__conn_discard(ac_conn_t *c)
{
	ac__loop_t *loop = c->loop;

	c->state = AC__C_DEAD;
	ac__htab_release(&loop->htab, ac__handle_slot(c->handle));
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	aux_free(c);
	unlink_conn(c);
	give_place(c);
	AC__STAT_SET(loop, handles_live, loop->htab.live);
	ac__proto_unref(c->proto);
	c->proto = NULL;
	ac__hp_retire(&loop->ctx.hp, &c->hp, conn_destroy);
}

/*
 * Owner loop. c->fd is a connected socket: records the peer and starts
 * reading; under TLS, makes the handshake's state (name: what a client
 * sends and checks). AC_ENOMEM or AC_ETLS with nothing left armed.
 */
int ac__conn_ready(ac_conn_t *c, const char *name)
{
	ac__loop_t *loop = c->loop;
	ac_tls_t *tls = c->proto->opts.tls;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int family = AF_UNIX, err;

	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		family = ss.ss_family;
	/* An outbound connection gets its facts again on each attempt. */
	ac__facts_set(c, family, family == AF_UNIX ? NULL : (struct sockaddr *)&ss,
		      family == AF_UNIX ? 0 : len, ac__wall_ms());
	/* TCP_NODELAY by default, and what the options ask for. */
	if ((err = ac__sockopts_apply(c->fd, family, &c->proto->opts)))
		return err;
	c->wshut = AC__WSHUT_NO; /* each attempt's socket starts whole */
	if (!(c->rev = event_new(loop->base, c->fd, EV_READ | EV_PERSIST,
				 read_cb, c)) ||
	    event_add(c->rev, NULL)) {
		ac__event_free(&c->rev);
		return AC_ENOMEM;
	}
	if (tls) {
		err = aux(c) ? ac__tls_start(c, tls, name) : AC_ENOMEM;
		if (err) {
			ac__event_free(&c->rev);
			return err;
		}
		c->tls = 1;
		c->state = AC__C_HANDSHAKE;
	}
	return 0;
}

/* Owner loop: c is connected and, under TLS, through its handshake: the
 * liveness timers start and the user hears of it. */
static void conn_opened(ac_conn_t *c)
{
	ac__loop_t *loop = c->loop;
	const ac__proto_t *proto = c->proto;

	if ((proto->opts.idle_timeout_ms &&
	     arm(c, &c->idle_ev, proto->opts.idle_timeout_ms, 0, idle_cb)) ||
	    (proto->opts.heartbeat_ms &&
	     hb_arm(c, proto->opts.heartbeat_ms, true))) {
		ac__conn_fail(c, AC_ENOMEM);
		return;
	}
	c->state = AC__C_OPEN;
	c->is_open = 1;
	loop->nopen++;
	AC__STAT_SET(loop, conns_open, loop->nopen);
	if (c->ob) {
		c->ob->failures = 0;
		AC__STAT_ADD(loop, connected, 1);
	}
	if (proto->cbs.on_open)
		proto->cbs.on_open(c);
	if (AC__UNLIKELY(loop->draining))
		ac__conn_goaway(c, 0); /* opened during a drain */
}

/* One step of c's TLS handshake, after readiness (or to begin). */
static void handshake(ac_conn_t *c)
{
	int r = ac__tls_step(c);

	if (r < 0) {
		ac__conn_fail(c, r);
		return;
	}
	queue_flush(c); /* the records it wrote */
	if (r == 1)
		conn_opened(c);
}

void ac__conn_start(ac_conn_t *c)
{
	if (c->state == AC__C_HANDSHAKE)
		handshake(c); /* a client's ClientHello goes out now */
	else
		conn_opened(c);
}

int ac__conn_open(ac__loop_t *loop, int fd, ac__proto_t *proto)
{
	ac_conn_t *c;
	int err;

	if (loop->stopping) {
		close(fd);
		return AC_ESHUTDOWN;
	}
	if (!take_place(loop->rt, proto)) {
		/* Over max_conns: accepted and closed at once, never left to
		 * rot in the backlog. */
		/* Counted before closing: once the peer sees the close, the
		 * statistics already show why. */
		AC__STAT_ADD(loop, rejected, 1);
		AC__STAT_ADD(loop, closed[AC_CR_LIMIT], 1);
		close(fd);
		return AC_ELIMIT;
	}
	if (!(c = ac__conn_new(loop, proto, &err))) {
		close(fd);
		leave_place(loop->rt, proto);
		return err;
	}
	c->counted = 1;
	c->fd = fd;
	if ((err = ac__conn_ready(c, NULL))) {
		ac__conn_discard(c);
		return err;
	}
	AC__STAT_ADD(loop, accepted, 1);
	ac__conn_start(c);
	return 0;
}

/* ---- close ----------------------------------------------------------------- */

static void stop_reading(ac_conn_t *c)
{
	if (c->rev)
		event_del(c->rev);
}

/* Begin closing with reason; FLUSH keeps pending output going out. */
static void begin_close(ac_conn_t *c, int how, int reason)
{
	if (c->state == AC__C_DEAD)
		return;
	/* Closed by this side, or shutdown: an outbound connection stops
	 * reconnecting, even if it already failed in this callback. */
	if (c->ob && (reason == 0 || reason == AC_ESHUTDOWN))
		c->ob->stop = 1;
	if (c->close_queued)
		return;
	if (c->state == AC__C_CONNECTING || c->state == AC__C_WAITING) {
		c->reason = reason;
		c->state = AC__C_CLOSING;
		ac__outbound_close(c);
		queue_close(c);
		return;
	}
	if (c->state == AC__C_OPEN || c->state == AC__C_HANDSHAKE)
		c->reason = reason;
	/* A flushing close sends what is queued and, under TLS, a
	 * close_notify after it. */
	if (how == AC_CLOSE_FLUSH &&
	    (out_len(c) > 0 || (c->tls && ac__tls_notify_due(c)))) {
		unsigned ms = c->proto->opts.linger_ms;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

		struct ac__conn_aux *x;

		if (c->state == AC__C_CLOSING)
			return; /* already flushing */
		if ((x = aux(c)) && !x->linger_ev)
			x->linger_ev = evtimer_new(c->loop->base, linger_cb, c);
		/* Without the linger timer (out of memory) a peer that never
		 * reads would hold the close open for ever: close now. */
		if (x && x->linger_ev && evtimer_add(x->linger_ev, &tv) == 0) {
			c->state = AC__C_CLOSING;
			stop_reading(c);
			queue_flush(c);
			return;
		}
	}
	c->state = AC__C_CLOSING;
	stop_reading(c);
	queue_close(c);
}

/* The drain reached c: an open connection hears on_goaway (or, without
 * one, is closed as by ac_conn_close(AC_CLOSE_FLUSH)); one that is not
 * open yet is closed with AC_ESHUTDOWN. */
void ac__conn_goaway(ac_conn_t *c, int unused)
{
	(void)unused;
	if (c->state != AC__C_OPEN) {
		begin_close(c, AC_CLOSE_ABORT, AC_ESHUTDOWN);
		return;
	}
	if (c->proto->cbs.on_goaway)
		c->proto->cbs.on_goaway(c);
	else
		begin_close(c, AC_CLOSE_FLUSH, 0);
}

void ac__conn_fail(ac_conn_t *c, int reason)
{
	begin_close(c, AC_CLOSE_ABORT, reason);
}

/* The stop sequence, for ac__loop_each_conn: flush first, then abort. */
void ac__conn_stop(ac_conn_t *c, int abort)
{
	begin_close(c, abort ? AC_CLOSE_ABORT : AC_CLOSE_FLUSH, AC_ESHUTDOWN);
}

void ac__conn_close(ac_conn_t *c, int how)
{
	begin_close(c, how, 0);
}

AC_EXPORT int ac_conn_close(ac_conn_t *c, int how)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (how != AC_CLOSE_FLUSH && how != AC_CLOSE_ABORT)
		return AC_EINVAL;
	begin_close(c, how, 0);
	return 0;
}

/* Finalize: aux's timers go with the attempt, before the socket closes;
 * its TLS state stays for on_close. */
static void aux_stop(ac_conn_t *c)
{
	struct ac__conn_aux *x = c->aux;

	if (!x)
		return;
	ac__event_free(&x->linger_ev);
	ac__event_free(&x->wto_ev);
	ac__event_free(&x->soft_ev);
	ac__tls_detach(c);
}

/* Then the rest of aux; an outbound connection that will try again
 * keeps the struct while it holds a label, limits or a max_frame of its
 * own, which
 * follow the logical connection as its handle does. */
static void aux_end(ac_conn_t *c, bool keep_label)
{
	struct ac__conn_aux *x = c->aux;

	if (!x)
		return;
	aux_stop(c);
	ac__tls_end(c);
	c->tls = 0;
	if (keep_label && (x->label || x->own_limits || x->max_frame))
		return; /* its events are freed and NULL, its TLS state gone */
	ac__free(AC__K_OTHER, x->label);
	ac__free(AC__K_OTHER, x);
	c->aux = NULL;
}

static void aux_free(ac_conn_t *c)
{
	aux_end(c, false);
}

/* The statistics' index for c's close: a TLS handshake that did not
 * finish counts as a TLS failure, and an outbound attempt that failed
 * before it opened as a connect failure, whatever their codes. */
static int close_index(const ac_conn_t *c)
{
	bool failed = !c->is_open && c->reason != 0 &&
		      c->reason != AC_ESHUTDOWN && c->reason != AC_ELIMIT;

	if (failed && c->tls)
		return AC_CR_TLS;
	if (failed && c->ob)
		return AC_CR_CONNECT;
	return ac_close_reason_index(c->reason);
}

/* Outermost leave only. */
void ac__conn_finalize(ac_conn_t *c)
{
	ac__loop_t *loop = c->loop;
	struct event **evs[] = {&c->rev, &c->wev, &c->idle_ev, &c->hb_ev};
	/* An outbound connection that will try again keeps its handle and
	 * its watchers: they follow the logical connection. */
	bool again = c->ob && ac__outbound_again(c);
	int cr = close_index(c);
	/* An accepted connection whose TLS handshake never finished was
	 * never opened: its user hears nothing. */
	bool heard = c->is_open || c->ob;

	/* 1. The handle goes stale before anything is torn down. */
	if (!again) {
		c->state = AC__C_DEAD;
		ac__htab_release(&loop->htab, ac__handle_slot(c->handle));
	}
	/* 2. Owned timers, the socket and its events: nothing of this
	 * connection can fire after this (rule 6). */
	ac__timers_cancel_conn(c);
	for (unsigned i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		ac__event_free(evs[i]);
	aux_stop(c);
	if (c->ob)
		ac__outbound_end_attempt(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->is_open) {
		c->is_open = 0;
		loop->nopen--;
	}
	give_place(c);
	if (!again)
		unlink_conn(c);
	AC__STAT_ADD(loop, closed[cr], 1);
	AC__STAT_SET(loop, conns_open, loop->nopen);
	AC__STAT_SET(loop, handles_live, loop->htab.live);
	/* 3. The user hears of it, exactly once per connection (per attempt
	 * for an outbound one); then groups and, at the end, the watchers. */
	if (again) {
		c->state = AC__C_WAITING; /* ac_conn_reconnecting is true */
		c->close_queued = 0;
	}
	if (heard && c->proto->cbs.on_close)
		c->proto->cbs.on_close(c, c->reason);
	ac__groups_conn_closed(c); /* after on_close: it may leave by itself */
	aux_end(c, again);
	/* 4. Buffers, then the memory itself, once no pin holds it. */
	ac__outq_clear(&c->out);
	ac__free(AC__K_OTHER, c->in);
	c->in = NULL;
	if (again) {
		c->need = 0;
		c->paused = 0;
		c->undelivered = 0;
		c->above_high = 0;
		c->writing = 0;
		return;
	}
	ac__watch_conn_closed(c);
	if (c->ob)
		ac__outbound_free(c);
	ac__proto_unref(c->proto);
	c->proto = NULL;
	ac__hp_retire(&loop->ctx.hp, &c->hp, conn_destroy);
	AC__STAT_SET(loop, hp_pending, loop->ctx.hp.n_pending);
}

AC_EXPORT int ac_conn_reconnecting(const ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	return c->state == AC__C_WAITING && !c->close_queued;
}

/* ---- write ---------------------------------------------------------------- */

/* c's output limits: its own (ac_conn_set_out_limits) or its
 * protocol's. */
static size_t hard_limit(const ac_conn_t *c)
{
	return AC__UNLIKELY(c->aux && c->aux->own_limits)
		       ? c->aux->out_hard
		       : c->proto->opts.out_hard_limit;
}

static size_t soft_limit(const ac_conn_t *c)
{
	return AC__UNLIKELY(c->aux && c->aux->own_limits)
		       ? c->aux->out_soft
		       : c->proto->opts.out_soft_limit;
}

/* Output is over the soft limit: the clock starts unless it runs.
 * AC_ENOMEM (c failed) if it cannot. */
static int soft_start(ac_conn_t *c)
{
	unsigned ms = c->aux && c->aux->own_limits ? c->aux->out_soft_ms
						   : c->proto->opts.out_soft_ms;

	if ((!c->aux || !c->aux->soft_ev ||
	     !evtimer_pending(c->aux->soft_ev, NULL)) &&
	    (!aux(c) || arm(c, &c->aux->soft_ev, ms, 0, soft_cb))) {
		ac__conn_fail(c, AC_ENOMEM);
		return AC_ENOMEM;
	}
	return 0;
}

/* Output went up to `len` bytes: watermarks and the soft limit. */
static void output_grew(ac_conn_t *c, size_t len)
{
	const ac_conn_opts_t *o = &c->proto->opts;

	if (len > o->out_high)
		c->above_high = 1;
	if (len > soft_limit(c))
		soft_start(c);
}

/* Output fell to `len` bytes. */
static void output_shrank(ac_conn_t *c, size_t len)
{
	const ac__proto_t *p = c->proto;

	if (c->aux && len <= soft_limit(c))
		disarm(c->aux->soft_ev);
	if (c->above_high && len < p->opts.out_low) {
		c->above_high = 0;
		if (p->cbs.on_drain && c->state == AC__C_OPEN)
			p->cbs.on_drain(c);
	}
}

AC_EXPORT int ac_conn_set_max_frame(ac_conn_t *c, size_t max_frame)
{
	struct ac__conn_aux *x;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (c->state == AC__C_CLOSING || c->state == AC__C_DEAD)
		return AC_ESTATE;
	if (!max_frame && !c->aux)
		return 0; /* the protocol's already */
	if (!(x = aux(c)))
		return AC_ENOMEM;
	x->max_frame = max_frame;
	/* The input held may decide differently now: decode it again, from
	 * its start (the decoder's note was taken under the old bound). */
	c->need = 0;
	if (c->in)
		c->in->resume = 0;
	return 0;
}

AC_EXPORT int ac_conn_set_out_limits(ac_conn_t *c, size_t hard, size_t soft,
				     unsigned soft_ms)
{
	struct ac__conn_aux *x;
	size_t len;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (c->state == AC__C_CLOSING || c->state == AC__C_DEAD)
		return AC_ESTATE;
	/* The rules of ac_conn_opts_t, said the same way (out_bounds). */
	if (hard < c->proto->opts.out_high) {
		ac__log(c->loop->rt, AC_LOG_ERROR,
			"out_hard_limit (%zu) must be at least out_high (%zu)",
			hard, c->proto->opts.out_high);
		return AC_EINVAL;
	}
	if (soft > hard) {
		ac__log(c->loop->rt, AC_LOG_ERROR,
			"out_soft_limit (%zu) is above out_hard_limit (%zu), "
			"where the connection is closed first",
			soft, hard);
		return AC_EINVAL;
	}
	if (!(x = aux(c)))
		return AC_ENOMEM;
	x->out_hard = hard;
	x->out_soft = soft;
	x->out_soft_ms = soft_ms;
	x->own_limits = true;
	/* What is queued already, judged by the new limits. A timer that
	 * runs keeps its deadline, as a write over the limit would. */
	len = out_len(c);
	if (len > hard) {
		ac__conn_fail(c, AC_ESLOW);
		return AC_ESLOW;
	}
	if (len > soft)
		return soft_start(c);
	disarm(x->soft_ev);
	return 0;
}

/*
 * Owner loop: checks that len more bytes may be queued on c. Returns 0,
 * AC_ESTATE, or AC_ESLOW (then c is being closed): queued output never
 * passes the hard limit.
 */
int ac__conn_out_reserve(ac_conn_t *c, size_t len)
{
	size_t hard = hard_limit(c);

	if (c->state != AC__C_OPEN || c->wshut)
		return AC_ESTATE;
	/* out_len never passes hard: the subtraction cannot wrap, and a
	 * huge len cannot wrap the sum. */
	if (len > hard - out_len(c)) {
		ac__conn_fail(c, AC_ESLOW);
		return AC_ESLOW;
	}
	return 0;
}

/* Owner loop: bytes were queued on c, `frames` writes' worth. */
static void out_added(ac_conn_t *c, unsigned frames)
{
	__atomic_store_n(&c->frames_out, c->frames_out + frames,
			 __ATOMIC_RELAXED);
	AC__STAT_ADD(c->loop, writes, frames);
	output_grew(c, out_len(c));
	queue_flush(c);
}

/* Owner loop: bytes were queued on c (one write: a frame out). */
void ac__conn_out_added(ac_conn_t *c)
{
	out_added(c, 1);
}

/* Owner loop (checked by the callers). */
int ac__conn_write(ac_conn_t *c, const void *buf, size_t len)
{
	int err;

	if ((err = ac__conn_out_reserve(c, len)) || !len)
		return err;
	if (ac__outq_write(&c->out, buf, len))
		return AC_ENOMEM;
	ac__conn_out_added(c);
	return 0;
}

/* Owner loop: queues ch, an ac_send payload, as it is. 0, or an error
 * (then the caller still owns ch). */
static int conn_send_chunk(ac_conn_t *c, struct ac__chunk *ch)
{
	int err;

	if ((err = ac__conn_out_reserve(c, ch->len)))
		return err;
	if (!ch->len) {
		ac__chunk_free(ch);
		return 0;
	}
	ac__outq_append(&c->out, ch);
	ac__conn_out_added(c);
	return 0;
}

AC_EXPORT int ac_conn_write(ac_conn_t *c, const void *buf, size_t len)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (!buf && len)
		return AC_EINVAL;
	return ac__conn_write(c, buf, len);
}

/*
 * Up to this size a shared buffer is copied into the output, not
 * referenced. A reference costs a chunk of its own (an allocation and an
 * iovec entry per message) plus two atomic operations on a count every
 * loop shares; copying 512 bytes is cheaper, and small messages to the
 * same connection then share one chunk and one iovec. Measured with
 * actorconn-bench fanout (1,000 subscribers, 64-byte messages): about
 * 1.4x the deliveries per second of referencing.
 */
#define AC__BUF_COPY_MAX 512u

/* Owner loop (checked by the callers). */
int ac__conn_write_buf(ac_conn_t *c, ac_buf_t *b)
{
	int err;

	if (b->len <= AC__BUF_COPY_MAX)
		return ac__conn_write(c, b->data, b->len);
	if ((err = ac__conn_out_reserve(c, b->len)) || !b->len)
		return err;
	if (ac__outq_ref(&c->out, b))
		return AC_ENOMEM;
	ac__conn_out_added(c);
	return 0;
}

/*
 * Owner loop: `all` holds the n buffers of b[] back to back (a group's
 * publishes, group.c). When all of it fits under c's hard limit it is
 * queued as one write of n frames: one copy or one reference, and one
 * visit to c, instead of n. Otherwise each b[i] goes as ac__conn_write_buf
 * would write it, so the same prefix is queued and the same frame fails c.
 * Returns how many of the n were not queued.
 */
unsigned ac__conn_write_batch(ac_conn_t *c, ac_buf_t *all, ac_buf_t *const *b,
			      unsigned n)
{
	unsigned lost = 0;

	if (AC__LIKELY(c->state == AC__C_OPEN && !c->wshut &&
		       all->len <= hard_limit(c) - out_len(c))) {
		if (all->len <= AC__BUF_COPY_MAX
			    ? ac__outq_write(&c->out, all->data, all->len)
			    : ac__outq_ref(&c->out, all))
			return n;
		out_added(c, n);
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		if (ac__conn_write_buf(c, b[i]))
			lost++;
	return lost;
}

AC_EXPORT int ac_conn_write_buf(ac_conn_t *c, ac_buf_t *b)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (!b)
		return AC_EINVAL;
	return ac__conn_write_buf(c, b);
}

AC_EXPORT int ac_conn_writable(const ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	return c->state == AC__C_OPEN && !c->above_high;
}

AC_EXPORT ssize_t ac_conn_out_bytes(const ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	return (ssize_t)out_len(c);
}

static void arm_write(ac_conn_t *c)
{
	if (!c->wev) {
		c->wev = event_new(c->loop->base, c->fd, EV_WRITE | EV_PERSIST,
				   write_cb, c);
		if (!c->wev) {
			ac__conn_fail(c, AC_ENOMEM);
			return;
		}
	}
	if (!c->writing && event_add(c->wev, NULL) == 0) {
		c->writing = 1;
		/* Output is stuck on the socket: the write timeout runs from
		 * here, and is re-armed by every write that makes progress. */
		if (c->proto->opts.write_timeout_ms &&
		    (!aux(c) || arm(c, &c->aux->wto_ev,
				    c->proto->opts.write_timeout_ms, 0, wto_cb)))
			ac__conn_fail(c, AC_ENOMEM);
	}
}

static void disarm_write(ac_conn_t *c)
{
	if (c->writing) {
		event_del(c->wev);
		c->writing = 0;
		if (c->aux)
			disarm(c->aux->wto_ev);
	}
}

/* w bytes left for the socket. */
static void sent_bytes(ac_conn_t *c, size_t w)
{
	__atomic_store_n(&c->bytes_out, c->bytes_out + (uint64_t)w,
			 __ATOMIC_RELAXED);
	AC__STAT_ADD(c->loop, bytes_out, w);
	if (c->writing && c->aux && c->aux->wto_ev)
		arm(c, &c->aux->wto_ev, c->proto->opts.write_timeout_ms, 0,
		    wto_cb); /* progress: the timeout starts over */
	output_shrank(c, out_len(c));
}

/* Sends queued output until done (0), the socket is full (AC_EAGAIN), or
 * it fails (a close reason). */
static int flush_plain(ac_conn_t *c)
{
	while (out_len(c) > 0) {
		bool full;
		ssize_t w = ac__outq_send(&c->out, c->fd, &full);

		if (w < 0)
			return (int)w;
		sent_bytes(c, (size_t)w);
		if (full)
			return AC_EAGAIN; /* wait for writability */
	}
	return 0;
}

/* The same under TLS: encrypts, sends, and once closing ends with a
 * close_notify. */
static int flush_tls(ac_conn_t *c)
{
	size_t sent = 0;
	int err = ac__tls_flush(c, c->state == AC__C_CLOSING || c->wshut,
				&sent);

	if (sent)
		sent_bytes(c, sent);
	return err;
}

/* The output queued before ac_conn_shutdown is out (under TLS, its
 * close_notify too): the peer reads the end of the stream now. */
static void shut_write(ac_conn_t *c)
{
	c->wshut = AC__WSHUT_DONE;
	/* ENOTCONN: the peer is gone already, which reading will tell. */
	if (shutdown(c->fd, SHUT_WR) && errno != ENOTCONN)
		ac__conn_fail(c, -errno);
}

/* Writes as much pending output as the socket takes. Owner loop. */
void ac__conn_flush(ac_conn_t *c)
{
	int err;

	if (c->state == AC__C_DEAD || c->close_queued)
		return;
	err = AC__UNLIKELY(c->tls) ? flush_tls(c) : flush_plain(c);
	if (err && err != AC_EAGAIN) {
		ac__conn_fail(c, err);
		return;
	}
	if (c->close_queued)
		return; /* on_drain closed it */
	if (err == AC_EAGAIN) {
		arm_write(c);
		return;
	}
	/* All written: the queue holds no memory now, as the input buffer
	 * does not once empty, so an idle connection holds neither. */
	disarm_write(c);
	if (c->state == AC__C_CLOSING)
		queue_close(c);
	else if (c->wshut == AC__WSHUT_ASKED)
		shut_write(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;

	ac__loop_enter(loop);
	ac__conn_flush(c);
	ac__loop_leave(loop);
}

AC_EXPORT int ac_conn_writev(ac_conn_t *c, const struct iovec *iov,
			     int iovcnt)
{
	size_t total = 0;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (iovcnt < 0 || (!iov && iovcnt))
		return AC_EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if ((!iov[i].iov_base && iov[i].iov_len) ||
		    iov[i].iov_len > SIZE_MAX - total)
			return AC_EINVAL;
		total += iov[i].iov_len;
	}
	/* All or nothing: the total is reserved, then copied in one go. */
	if ((err = ac__conn_out_reserve(c, total)) || !total)
		return err;
	if (ac__outq_writev(&c->out, iov, total))
		return AC_ENOMEM;
	ac__conn_out_added(c);
	return 0;
}

AC_EXPORT int ac_conn_shutdown(ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (c->state != AC__C_OPEN)
		return AC_ESTATE;
	if (c->wshut)
		return 0; /* shutting twice is harmless, as closing is */
	/* Writes are refused from here on; the flush at the end of this
	 * callback sends what is queued, then shuts the write side. */
	c->wshut = AC__WSHUT_ASKED;
	queue_flush(c);
	return 0;
}

AC_EXPORT int ac_conn_fd(const ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	return c->fd >= 0 ? c->fd : AC_ESTATE;
}

/* ---- read ------------------------------------------------------------------- */

/*
 * Decodes and delivers every complete frame in p[0, n). Returns the bytes
 * consumed, or -1 when the connection failed. Stops early if a callback
 * closed the connection. *resume: in, the decoder's note on p (0 if
 * none); out, its note on the tail left, or 0.
 */
static ssize_t dispatch(ac_conn_t *c, const unsigned char *p, size_t n,
			size_t *resume)
{
	const ac__proto_t *pr = c->proto;
	size_t pos = 0, note = *resume;

	c->need = 0;
	*resume = 0;
	while (pos < n && c->state == AC__C_OPEN && !c->paused) {
		ac_frame_t f = {0, 0, 0, 0, note};
		/* Read again for each frame: on_frame may have changed it
		 * (ac_conn_set_max_frame). */
		size_t max_frame = AC__UNLIKELY(c->aux && c->aux->max_frame)
					   ? c->aux->max_frame
					   : pr->opts.max_frame;
		int r = pr->decode(p + pos, n - pos, max_frame, &f);

		if (r == 0) {
			c->need = f.need; /* counted from p + pos: the tail */
			*resume = f.resume; /* so is the note */
			break;
		}
		note = 0; /* the next frame starts afresh */
		if (r < 0 || f.consumed == 0 || f.consumed > n - pos ||
		    f.off + f.len > f.consumed) {
			ac__conn_fail(c, AC_EFRAME);
			return -1;
		}
		AC__STAT_ADD(c->loop, frames_in, 1);
		__atomic_store_n(&c->frames_in, c->frames_in + 1,
				 __ATOMIC_RELAXED);
		if (pr->cbs.on_frame)
			pr->cbs.on_frame(c, p + pos + f.off, f.len);
		pos += f.consumed;
	}
	/* A pause inside on_frame holds the rest back until resumed. */
	if (pos < n && c->paused)
		c->undelivered = 1;
	return (ssize_t)pos;
}

/* Keeps the unconsumed tail p[0, n), and the decoder's note on it, for
 * the next read. */
static int keep_tail(ac_conn_t *c, const unsigned char *p, size_t n,
		     size_t resume)
{
	struct ac__inbuf *in = c->in;

	if (in) {
		if (in->data != p) /* p points into it: compact in place */
			memmove(in->data, p, n);
	} else {
		size_t cap = n < 4096 ? 4096 : n;

		if (!(in = ac__realloc(AC__K_OTHER, NULL, sizeof(*in) + cap)))
			return AC_ENOMEM;
		memcpy(in->data, p, n);
		in->cap = cap;
		c->in = in;
	}
	in->len = n;
	in->resume = resume;
	return 0;
}

/* Makes room for at least one more read chunk, or for `need` bytes. */
static int grow_input(ac_conn_t *c)
{
	struct ac__inbuf *in = c->in;
	size_t want = in->len + AC__READ_CHUNK;

	if (c->need > want)
		want = c->need;
	if (in->cap >= want)
		return 0;
	if (!(in = ac__realloc(AC__K_OTHER, in, sizeof(*in) + want)))
		return AC_ENOMEM;
	in->cap = want;
	c->in = in;
	return 0;
}

/* A read ended the stream (0) or failed (a close reason). */
static void on_read_end(ac_conn_t *c, ssize_t n)
{
	if (n == 0) {
		/* Orderly EOF: what we still owe the peer goes out first. */
		begin_close(c, AC_CLOSE_FLUSH, AC_EEOF);
	} else if (n != AC_EAGAIN) {
		ac__conn_fail(c, (int)n); /* -ECONNRESET is AC_ECONNRESET */
	}
}

void ac__conn_got_bytes(ac_conn_t *c, size_t n)
{
	struct timeval now;

	__atomic_store_n(&c->bytes_in, c->bytes_in + (uint64_t)n,
			 __ATOMIC_RELAXED);
	/* The idle clock (ac_conn_info): libevent's time of this loop turn,
	 * cached, so a read costs no clock call. */
	event_base_gettimeofday_cached(c->loop->base, &now);
	__atomic_store_n(&c->last_read_ms,
			 (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000,
			 __ATOMIC_RELAXED);
	AC__STAT_ADD(c->loop, bytes_in, n);
	if (c->idle_ev &&
	    arm(c, &c->idle_ev, c->proto->opts.idle_timeout_ms, 0, idle_cb))
		ac__conn_fail(c, AC_ENOMEM); /* restarts the idle clock */
}

/* Up to len bytes of c's input: >0, 0 at the end of the stream, or a
 * close reason (AC_EAGAIN: nothing now). *more: TLS holds more that no
 * readiness event will announce. */
static ssize_t conn_recv(ac_conn_t *c, void *buf, size_t len, bool *more)
{
	ssize_t n;

	if (AC__UNLIKELY(c->tls)) {
		n = ac__tls_recv(c, buf, len, more);
		if (ac__tls_has_output(c))
			queue_flush(c); /* TLS answered something */
		return n;
	}
	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		ac__conn_got_bytes(c, (size_t)n);
	else if (n < 0)
		n = errno == EAGAIN || errno == EWOULDBLOCK ? AC_EAGAIN : -errno;
	return n;
}

/* Decodes and delivers the frames in c->in, keeping the tail. */
static void deliver_held(ac_conn_t *c)
{
	struct ac__inbuf *in = c->in;
	size_t resume = in->resume;
	ssize_t used = dispatch(c, in->data, in->len, &resume);

	if (used < 0 || c->state != AC__C_OPEN)
		return;
	in->len -= (size_t)used;
	if (in->len == 0) {
		/* Drop the buffer: idle connections hold no input memory. */
		ac__free(AC__K_OTHER, in);
		c->in = NULL;
	} else {
		keep_tail(c, in->data + used, in->len, resume);
	}
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_conn_t *c = arg;
	ac__loop_t *loop = c->loop;
	struct ac__inbuf *in;
	ssize_t n, used;
	bool more = false;

	ac__loop_enter(loop);
	if (c->state == AC__C_HANDSHAKE)
		handshake(c); /* and, once done, on to read what follows */
	if (c->state != AC__C_OPEN || c->paused)
		goto out;
	if (AC__UNLIKELY(c->undelivered)) {
		/* Resumed: the frames a pause held back come first; the
		 * socket, level-triggered, calls again if it has more. */
		c->undelivered = 0;
		deliver_held(c);
		goto out;
	}
	if (!c->in) {
		/* Fast path: decode straight from the loop's scratch. */
		n = conn_recv(c, loop->scratch, AC__READ_CHUNK, &more);
		if (n <= 0) {
			on_read_end(c, n);
			goto out;
		}
		size_t resume = 0;

		used = dispatch(c, loop->scratch, (size_t)n, &resume);
		if (used >= 0 && used < n && c->state == AC__C_OPEN &&
		    keep_tail(c, loop->scratch + used, (size_t)(n - used),
			      resume))
			ac__conn_fail(c, AC_ENOMEM);
		goto out;
	}
	if (grow_input(c)) {
		ac__conn_fail(c, AC_ENOMEM);
		goto out;
	}
	in = c->in;
	n = conn_recv(c, in->data + in->len, in->cap - in->len, &more);
	if (n <= 0) {
		on_read_end(c, n);
		goto out;
	}
	in->len += (size_t)n;
	if (c->need && in->len < c->need)
		goto out; /* the decoder said: not before `need` bytes */
	deliver_held(c);
out:
	/* Decrypted input waits inside TLS: read again, after the other
	 * events of this turn. */
	if (more && c->state == AC__C_OPEN && !c->paused)
		event_active(c->rev, EV_READ, 1);
	ac__loop_leave(loop);
}

/* ---- read flow control ------------------------------------------------------ */

AC_EXPORT int ac_conn_read_stop(ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (c->state != AC__C_OPEN)
		return AC_ESTATE;
	if (c->paused)
		return 0;
	c->paused = 1;
	event_del(c->rev);
	/* Silence while paused is ours, not the peer's: the idle clock
	 * stops, and starts again from zero on resume. */
	disarm(c->idle_ev);
	return 0;
}

AC_EXPORT int ac_conn_read_start(ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (c->state != AC__C_OPEN)
		return AC_ESTATE;
	if (!c->paused)
		return 0;
	if (event_add(c->rev, NULL) ||
	    (c->idle_ev &&
	     arm(c, &c->idle_ev, c->proto->opts.idle_timeout_ms, 0, idle_cb))) {
		ac__conn_fail(c, AC_ENOMEM);
		return AC_ENOMEM;
	}
	c->paused = 0;
	/* Frames a pause held back, and input TLS holds, are read from the
	 * loop, never inside this call. */
	if (c->undelivered || c->tls)
		event_active(c->rev, EV_READ, 1);
	return 0;
}

AC_EXPORT int ac_conn_reading(const ac_conn_t *c)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	return c->state == AC__C_OPEN && !c->paused;
}

/* ---- messages from other threads ---------------------------------------- */

/* The live, open connection a message names, or NULL: a message may
 * arrive after its connection closed, or its slot was reused. */
static ac_conn_t *open_target(ac__loop_t *loop, const struct ac__msg *m)
{
	ac_conn_t *c = ac__handle_local(loop, m->h);

	return c && c->state == AC__C_OPEN ? c : NULL;
}

/* SEND: the payload arrives as a chunk and joins the output as it is. */
void ac__conn_deliver_send(ac__loop_t *loop, struct ac__msg *m)
{
	ac_conn_t *c = open_target(loop, m);

	if (!c || conn_send_chunk(c, m->b)) {
		ac__chunk_free(m->b);
		ac__count_dropped();
	}
}

void ac__conn_settle_send(ac__loop_t *loop, struct ac__msg *m)
{
	ac__chunk_free(m->b);
	ac__count_dropped_settled(loop);
}

void ac__conn_deliver_sendbuf(ac__loop_t *loop, struct ac__msg *m)
{
	ac_conn_t *c = open_target(loop, m);

	if (!c || ac__conn_write_buf(c, m->b))
		ac__count_dropped();
	ac_buf_unref(m->b); /* the message's reference */
}

void ac__conn_settle_sendbuf(ac__loop_t *loop, struct ac__msg *m)
{
	ac_buf_unref(m->b);
	ac__count_dropped_settled(loop);
}

/* The callee owns the payload: on_message, or drop() exactly once. */
void ac__conn_deliver_tell(ac__loop_t *loop, struct ac__msg *m)
{
	ac_conn_t *c = open_target(loop, m);

	if (c && c->proto->cbs.on_message) {
		c->proto->cbs.on_message(c, m->i, m->b);
		return;
	}
	if (m->a.fn)
		m->a.fn(m->b);
	ac__count_dropped();
}

void ac__conn_settle_tell(ac__loop_t *loop, struct ac__msg *m)
{
	if (m->a.fn)
		m->a.fn(m->b);
	ac__count_dropped_settled(loop);
}

void ac__conn_deliver_close(ac__loop_t *loop, struct ac__msg *m)
{
	ac_conn_t *c = ac__handle_local(loop, m->h);

	if (c)
		ac__conn_close(c, m->i);
}

/* ---- accessors ---------------------------------------------------------- */

/*
 * Accessors that return a value rather than an error code say "wrong
 * thread" the constructors' way: their empty value, with errno EPERM.
 */
static bool owner_or_errno(const ac_conn_t *c)
{
	if (!c) {
		errno = EINVAL;
		return false;
	}
	if (!ac__is_owner(c)) {
		errno = EPERM;
		return false;
	}
	return true;
}

AC_EXPORT ac_handle_t ac_conn_handle(const ac_conn_t *c)
{
	return owner_or_errno(c) ? c->handle : AC_HANDLE_NONE;
}

AC_EXPORT void *ac_conn_data(const ac_conn_t *c)
{
	return owner_or_errno(c) ? c->data : NULL;
}

AC_EXPORT int ac_conn_set_data(ac_conn_t *c, void *data)
{
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	c->data = data;
	return 0;
}

AC_EXPORT ac_runtime_t *ac_conn_runtime(const ac_conn_t *c)
{
	return owner_or_errno(c) ? c->loop->rt : NULL;
}

/* Owner loop. The label lives in aux: most connections never get one. */
AC_EXPORT int ac_conn_set_label(ac_conn_t *c, const char *label)
{
	size_t n = label ? strlen(label) : 0;
	struct ac__conn_aux *x;
	char *copy = NULL;
	int err;

	if ((err = ac__owner_check(c)))
		return err;
	if (n > AC_LABEL_MAX)
		return AC_EINVAL;
	if (n && !(copy = ac__malloc(AC__K_OTHER, n + 1)))
		return AC_ENOMEM;
	if (n)
		memcpy(copy, label, n + 1);
	if (!(x = n ? aux(c) : c->aux)) {
		ac__free(AC__K_OTHER, copy);
		return n ? AC_ENOMEM : 0; /* clearing what was never set */
	}
	ac__free(AC__K_OTHER, x->label);
	x->label = copy;
	return 0;
}
