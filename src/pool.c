/*
 * pool.c: per-loop pools of outbound connections.
 *
 * A pool is one sub-pool per loop. A sub-pool belongs to its loop the way
 * a connection does: only that loop touches it, so acquiring and releasing
 * take no lock, and a loop only ever hands out its own connections. Other
 * threads touch a pool only to create it, free it (both through control
 * operations queued to each loop) and read its counters.
 *
 * Acquires wait in a FIFO queue. Nothing is handed out inside
 * ac_pool_acquire: the sub-pool's serve event runs on the next loop turn and
 * matches waiters with idle connections in arrival order, starting
 * connects when there are more waiters than connections on the way. Each
 * waiter leaves the queue before its callback runs, which is how every
 * callback runs exactly once. A connection is in exactly one state:
 *
 *   CONNECTING ──on_open──► IDLE ◄──release(REUSE)── BUSY
 *        │                   │  ──serve────────────►  │
 *        │                   │ TTL, lifetime          │ release(DISCARD),
 *        ▼                   ▼                        ▼ closing, too old
 *      (gone)  ◄─on_close── CLOSING ◄─────────────────┘
 *
 * A failed connect fails every waiter of that loop with its reason (the
 * upstream is most likely down; better an error now than a timeout later)
 * and, if min_idle_per_loop asks for connections, refills after a
 * back-off that doubles up to reconnect_max_ms.
 */
#include "pool.h"
#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "connect.h"
#include "loop.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>

#define AC__POOL_MAX_PER_LOOP 8u
#define AC__POOL_ACQUIRE_MS 5000u
#define AC__POOL_MAX_WAITERS 1024u
#define AC__POOL_REFILL_MIN_MS 100u
#define AC__POOL_REFILL_MAX_MS 5000u
#define AC__POOL_SERVE_BUDGET 1024u /* hand-outs per serve event */
#define AC__POOL_SPARE_WAITERS 64u  /* waiter nodes kept for reuse */

enum { P_CONNECTING = 1, P_IDLE, P_BUSY, P_CLOSING, P_GONE };

struct ac__waiter {
	STAILQ_ENTRY(ac__waiter) next; /* one queue, or the spares */
	ac_pool_cb cb;
	void *arg;
	uint64_t deadline_ms;
	int err; /* set: fail with it (done list) */
};
STAILQ_HEAD(ac__wq, ac__waiter);
TAILQ_HEAD(ac__idleq, ac_conn_s);

struct ac__subpool {
	ac_pool_t *pool;
	ac__loop_t *loop;
	LIST_ENTRY(ac__subpool) on_loop;  /* loop->pools */
	struct ac__idleq idle;             /* most recently used first */
	/* Gauges and counters, owner-written with relaxed stores so that
	 * ac_pool_stats may read them from any thread. */
	uint64_t nidle, nbusy, nconnecting, nclosing, nwaiting;
	uint64_t connects, failures, timeouts;
	struct ac__wq waiters; /* FIFO */
	struct ac__wq done;    /* failed at once (AC_ELIMIT, AC_ESHUTDOWN) */
	struct ac__wq spare;   /* recycled waiter nodes */
	unsigned nspare;
	unsigned refill_failures;
	struct event *serve_ev, *wait_ev, *sweep_ev, *refill_ev;
	uint8_t started, linked, dying, finished;
	struct ac__ctl start_ctl, free_ctl;
};

struct ac_pool_s {
	ac_runtime_t *rt;
	ac_pool_opts_t opts; /* defaults resolved */
	ac_conn_cbs_t user;  /* the caller's callbacks */
	ac__proto_t *proto;  /* shared by every connection of the pool */
	struct ac__target target;
	int live_subs;       /* atomic: sub-pools not yet finished */
	int freed;           /* under rt->lock */
	LIST_ENTRY(ac_pool_s) link; /* rt->pools, under rt->lock */
	int nsubs;
	struct ac__subpool sub[];
};

/* Owner only: field f of sp moves by n (which may be negative). */
#define SP_ADD(sp, f, n)                                                     \
	__atomic_store_n(&(sp)->f, (sp)->f + (uint64_t)(int64_t)(n),         \
			 __ATOMIC_RELAXED)

/* ... and with it the loop's statistic lf, summed over its pools. */
#define GAUGE(sp, f, lf, n)                                                  \
	do {                                                                 \
		SP_ADD(sp, f, n);                                            \
		AC__STAT_ADD((sp)->loop, lf, (int64_t)(n));                  \
	} while (0)

/* ---- small pieces ------------------------------------------------------------ */

static void wq_push(struct ac__wq *q, struct ac__waiter *w)
{
	STAILQ_INSERT_TAIL(q, w, next);
}

static struct ac__waiter *wq_pop(struct ac__wq *q)
{
	struct ac__waiter *w = STAILQ_FIRST(q);

	if (w)
		STAILQ_REMOVE_HEAD(q, next);
	return w;
}

static struct ac__waiter *waiter_new(struct ac__subpool *sp)
{
	struct ac__waiter *w = wq_pop(&sp->spare);

	if (w) {
		sp->nspare--;
		return w;
	}
	return ac__malloc(AC__K_POOL, sizeof(*w));
}

static void waiter_free(struct ac__subpool *sp, struct ac__waiter *w)
{
	if (sp->nspare < AC__POOL_SPARE_WAITERS) {
		STAILQ_INSERT_HEAD(&sp->spare, w, next);
		sp->nspare++;
		return;
	}
	ac__free(AC__K_POOL, w);
}

/* Runs w's callback and recycles w (it has left every queue). */
static void answer(struct ac__subpool *sp, struct ac__waiter *w,
		   ac_conn_t *c, int err)
{
	ac_pool_cb cb = w->cb;
	void *arg = w->arg;

	waiter_free(sp, w);
	cb(c, err, arg);
}

static void schedule(struct ac__subpool *sp)
{
	if (sp->serve_ev)
		event_active(sp->serve_ev, EV_TIMEOUT, 0);
}

static void idle_push(struct ac__subpool *sp, ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;

	ob->pstate = P_IDLE;
	ob->idle_ms = ac__mono_ms();
	/* The entry is in c->ob: the field argument is that path. */
	TAILQ_INSERT_HEAD(&sp->idle, c, ob->idle);
	GAUGE(sp, nidle, pool_idle, 1);
}

static void idle_remove(struct ac__subpool *sp, ac_conn_t *c)
{
	TAILQ_REMOVE(&sp->idle, c, ob->idle);
	GAUGE(sp, nidle, pool_idle, -1);
}

/* A borrowed connection comes back: the next borrower gets it reading,
 * whatever its last borrower left it as (ac_conn_read_stop). */
static void reuse(struct ac__subpool *sp, ac_conn_t *c)
{
	if (c->paused && ac_conn_read_start(c)) {
		c->ob->pstate = P_GONE; /* closing for want of memory */
		return;
	}
	idle_push(sp, c);
}

/* Takes c out of service: it is closing and will be gone at on_close. */
static void retire_conn(struct ac__subpool *sp, ac_conn_t *c, int how)
{
	c->ob->pstate = P_CLOSING;
	SP_ADD(sp, nclosing, 1);
	ac__conn_close(c, how);
}

static void fail_all(struct ac__subpool *sp, int err)
{
	struct ac__waiter *w;

	while ((w = wq_pop(&sp->waiters))) {
		GAUGE(sp, nwaiting, pool_waiting, -1);
		answer(sp, w, NULL, err);
	}
}

/* ---- connections ---------------------------------------------------------- */

static int start_one(struct ac__subpool *sp)
{
	ac_pool_t *p = sp->pool;
	ac_conn_t *c;
	int err;

	if (!(c = ac__connect_new(sp->loop, p->proto, &p->target, &err)))
		return err;
	c->ob->sp = sp;
	c->ob->pstate = P_CONNECTING;
	SP_ADD(sp, nconnecting, 1);
	ac__connect_attempt(c);
	return 0;
}

/* The loop is stopping or draining: the pool lends and makes nothing more. */
static bool ending(const ac__loop_t *loop)
{
	return loop->stopping || loop->draining;
}

/* Starts the connects that waiters and min_idle_per_loop call for, within
 * max_per_loop. */
static void refill(struct ac__subpool *sp)
{
	const ac_pool_opts_t *o = &sp->pool->opts;
	uint64_t have = sp->nidle + sp->nconnecting;
	uint64_t total = have + sp->nbusy + sp->nclosing;
	uint64_t want = 0;
	int err;

	if (sp->dying || ending(sp->loop))
		return;
	/* Backing off after failures: waiters may still try, min_idle not. */
	if (o->min_idle_per_loop > have &&
	    !evtimer_pending(sp->refill_ev, NULL))
		want = o->min_idle_per_loop - have;
	if (sp->nwaiting > have && sp->nwaiting - have > want)
		want = sp->nwaiting - have;
	if (total + want > o->max_per_loop)
		want = total < o->max_per_loop ? o->max_per_loop - total : 0;
	while (want--)
		if ((err = start_one(sp))) {
			fail_all(sp, err);
			return;
		}
}

static void arm_wait(struct ac__subpool *sp)
{
	struct ac__waiter *first = STAILQ_FIRST(&sp->waiters);
	uint64_t now = ac__mono_ms(), ms;
	struct timeval tv;

	if (!first) {
		event_del(sp->wait_ev);
		return;
	}
	ms = first->deadline_ms > now ? first->deadline_ms - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	event_add(sp->wait_ev, &tv);
}

/* The most recently used idle connection with no heartbeat reply still
 * due: a borrower must never read the pool's PONG as its own reply. One
 * whose reply is due is served when it arrives (pool_on_frame). */
static ac_conn_t *first_ready(struct ac__subpool *sp)
{
	ac_conn_t *c;

	TAILQ_FOREACH(c, &sp->idle, ob->idle)
		if (!c->ob->ping_due)
			break;
	return c;
}

static void serve(struct ac__subpool *sp)
{
	struct ac__waiter *w;
	ac_conn_t *c;
	unsigned budget = AC__POOL_SERVE_BUDGET;

	while ((w = wq_pop(&sp->done)))
		answer(sp, w, NULL, w->err);
	while (!STAILQ_EMPTY(&sp->waiters) && (c = first_ready(sp)) && budget--) {
		idle_remove(sp, c);
		if (c->state != AC__C_OPEN) {
			/* Flushing towards a close (the peer hung up with
			 * output pending): never hand it out. */
			retire_conn(sp, c, AC_CLOSE_FLUSH);
			continue;
		}
		w = wq_pop(&sp->waiters);
		GAUGE(sp, nwaiting, pool_waiting, -1);
		c->ob->pstate = P_BUSY;
		GAUGE(sp, nbusy, pool_busy, 1);
		answer(sp, w, c, 0);
	}
	if (sp->dying)
		return;
	if (!STAILQ_EMPTY(&sp->waiters) && first_ready(sp))
		schedule(sp); /* budget spent: let I/O run first */
	refill(sp);
	arm_wait(sp);
}

static void serve_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ac__subpool *sp = arg;
	ac__loop_t *loop = sp->loop;

	ac__loop_enter(loop);
	serve(sp);
	ac__loop_leave(loop);
}

static void wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ac__subpool *sp = arg;
	ac__loop_t *loop = sp->loop;
	uint64_t now = ac__mono_ms();
	struct ac__waiter *w;

	ac__loop_enter(loop);
	/* One acquire timeout for all: deadlines rise along the queue. */
	while ((w = STAILQ_FIRST(&sp->waiters)) && w->deadline_ms <= now) {
		wq_pop(&sp->waiters);
		GAUGE(sp, nwaiting, pool_waiting, -1);
		SP_ADD(sp, timeouts, 1);
		answer(sp, w, NULL, AC_ETIMEDOUT);
	}
	if (!sp->dying)
		arm_wait(sp);
	ac__loop_leave(loop);
}

/* Idle connections past their TTL (above min_idle) or lifetime close. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ac__subpool *sp = arg;
	const ac_pool_opts_t *o = &sp->pool->opts;
	ac__loop_t *loop = sp->loop;
	uint64_t now = ac__mono_ms();
	ac_conn_t *c, *prev;

	ac__loop_enter(loop);
	/* Least recently used first. */
	for (c = TAILQ_LAST(&sp->idle, ac__idleq); c; c = prev) {
		struct ac__outbound *ob = c->ob;
		bool old = o->max_lifetime_ms &&
			   now - ob->born_ms >= o->max_lifetime_ms;
		bool stale = o->idle_ttl_ms &&
			     now - ob->idle_ms >= o->idle_ttl_ms &&
			     sp->nidle > o->min_idle_per_loop;

		prev = TAILQ_PREV(c, ac__idleq, ob->idle);
		if (old || stale) {
			idle_remove(sp, c);
			retire_conn(sp, c, AC_CLOSE_ABORT);
		}
	}
	schedule(sp); /* refill what the lifetime took */
	ac__loop_leave(loop);
}

static void refill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ac__subpool *sp = arg;

	ac__loop_enter(sp->loop);
	refill(sp);
	ac__loop_leave(sp->loop);
}

/* ---- the pool's connection callbacks ------------------------------------- */

static void pool_on_open(ac_conn_t *c)
{
	struct ac__subpool *sp = c->ob->sp;

	SP_ADD(sp, nconnecting, -1);
	SP_ADD(sp, connects, 1);
	AC__STAT_ADD(sp->loop, pool_connects, 1);
	sp->refill_failures = 0;
	c->ob->born_ms = ac__mono_ms();
	if (sp->dying) { /* freed while this one was connecting */
		retire_conn(sp, c, AC_CLOSE_ABORT);
		return;
	}
	idle_push(sp, c);
	schedule(sp);
}

static void maybe_finish(struct ac__subpool *sp);

static void pool_on_close(ac_conn_t *c, int reason)
{
	struct ac__outbound *ob = c->ob;
	struct ac__subpool *sp = ob->sp;
	ac_pool_t *p = sp->pool;
	int state = ob->pstate;

	ob->pstate = P_GONE; /* a release from the user's on_close is a no-op */
	switch (state) {
	case P_CONNECTING:
		SP_ADD(sp, nconnecting, -1);
		SP_ADD(sp, failures, 1);
		AC__STAT_ADD(sp->loop, pool_failures, 1);
		fail_all(sp, reason ? reason : AC_ESHUTDOWN); /* 0: closed by the pool */
		if (p->opts.min_idle_per_loop && !sp->dying &&
		    !ending(sp->loop)) {
			unsigned ms = ac__backoff_ms(
				sp->loop, p->opts.conn.reconnect_min_ms,
				p->opts.conn.reconnect_max_ms,
				++sp->refill_failures);
			struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
			evtimer_add(sp->refill_ev, &tv);
		}
		break;
	case P_IDLE:
		idle_remove(sp, c);
		break;
	case P_BUSY:
		GAUGE(sp, nbusy, pool_busy, -1);
		if (p->user.on_close)
			p->user.on_close(c, reason);
		break;
	case P_CLOSING:
		SP_ADD(sp, nclosing, -1);
		break;
	}
	if (sp->dying)
		maybe_finish(sp);
	else
		schedule(sp); /* refill, serve */
}

static void pool_on_frame(ac_conn_t *c, const void *data, size_t len)
{
	struct ac__outbound *ob = c->ob;

	if (ob->pstate == P_BUSY) {
		if (ob->sp->pool->user.on_frame)
			ob->sp->pool->user.on_frame(c, data, len);
		return;
	}
	/* Idle connections only hear heartbeat replies: not the user's. */
	if (ob->ping_due) {
		ob->ping_due = 0;
		if (!STAILQ_EMPTY(&ob->sp->waiters))
			schedule(ob->sp);
	}
}

/*
 * The health check. The user's on_heartbeat, if any, runs for every
 * connection. Otherwise only idle connections send the ping: a borrowed
 * connection's input belongs to its borrower, who must not see a PONG
 * it did not ask for. An idle connection whose reply is due is not lent
 * until the reply (one frame) arrives; idle_timeout_ms closes it if none
 * does.
 */
static void pool_on_heartbeat(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	const ac_pool_t *p = ob->sp->pool;

	if (p->user.on_heartbeat) {
		p->user.on_heartbeat(c);
	} else if (ob->pstate == P_IDLE && p->opts.conn.ping_len &&
		   ac__conn_write(c, p->proto->opts.ping,
				 p->opts.conn.ping_len) == 0) {
		ob->ping_due = 1;
	}
}

/* A drain: an idle connection closes; a borrowed one is its borrower's to
 * finish, as any connection is. */
static void pool_on_goaway(ac_conn_t *c)
{
	struct ac__outbound *ob = c->ob;
	const ac_pool_t *p = ob->sp->pool;

	if (ob->pstate == P_IDLE) {
		idle_remove(ob->sp, c);
		retire_conn(ob->sp, c, AC_CLOSE_ABORT);
	} else if (ob->pstate == P_BUSY && p->user.on_goaway)
		p->user.on_goaway(c);
	else if (ob->pstate == P_BUSY)
		ac__conn_close(c, AC_CLOSE_FLUSH);
}

/* ---- sub-pool life -------------------------------------------------------- */

static void free_events(struct ac__subpool *sp)
{
	struct event **evs[] = {&sp->serve_ev, &sp->wait_ev, &sp->sweep_ev,
				&sp->refill_ev};

	for (unsigned i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		ac__event_free(evs[i]);
}

/* Owner loop (or the stopping thread, when it never ran): make the events,
 * join the loop's list, pre-connect. Idempotent. */
static void sub_start(ac__loop_t *loop, void *arg)
{
	struct ac__subpool *sp = arg;
	const ac_pool_opts_t *o = &sp->pool->opts;
	unsigned period = 0;

	if (sp->started)
		return;
	sp->started = 1;
	if (ac__tls_loop != loop || loop->stopping)
		return; /* too late: the pool stays empty */
	sp->serve_ev = event_new(loop->base, -1, 0, serve_cb, sp);
	sp->wait_ev = evtimer_new(loop->base, wait_cb, sp);
	sp->sweep_ev = event_new(loop->base, -1, EV_PERSIST, sweep_cb, sp);
	sp->refill_ev = evtimer_new(loop->base, refill_cb, sp);
	if (!sp->serve_ev || !sp->wait_ev || !sp->sweep_ev || !sp->refill_ev) {
		free_events(sp);
		ac__log(loop->rt, AC_LOG_ERROR,
			"pool: out of memory starting loop %d's sub-pool",
			loop->index);
		return; /* acquires then fail with AC_ENOMEM */
	}
	LIST_INSERT_HEAD(&loop->pools, sp, on_loop);
	sp->linked = 1;
	/* Sweep often enough that a connection outlives its TTL or lifetime
	 * by at most half of it (at most every second, at least every 10 ms). */
	if (o->idle_ttl_ms)
		period = o->idle_ttl_ms / 2;
	if (o->max_lifetime_ms && (!period || o->max_lifetime_ms / 2 < period))
		period = o->max_lifetime_ms / 2;
	if (period) {
		struct timeval tv;
		period = period < 10 ? 10 : period > 1000 ? 1000 : period;
		event_add(sp->sweep_ev,
			  ac__loop_timeout(loop, period, &tv));
	}
	refill(sp);
}

static void pool_destroy(ac_pool_t *p)
{
	ac__proto_unref(p->proto);
	ac__target_clear(&p->target);
	ac__free(AC__K_POOL, p);
}

/* The last connection of a dying sub-pool is gone: free what it holds. */
static void maybe_finish(struct ac__subpool *sp)
{
	struct ac__waiter *w;

	if (sp->finished || !sp->dying ||
	    sp->nidle + sp->nbusy + sp->nconnecting + sp->nclosing)
		return;
	sp->finished = 1;
	free_events(sp);
	while ((w = wq_pop(&sp->spare)))
		ac__free(AC__K_POOL, w);
	if (sp->linked) {
		LIST_REMOVE(sp, on_loop);
		sp->linked = 0;
	}
	/* Acq-rel: every sub-pool's last use happens before the free. */
	if (__atomic_sub_fetch(&sp->pool->live_subs, 1, __ATOMIC_ACQ_REL) == 0)
		pool_destroy(sp->pool);
}

/* Control operation for ac_pool_free, on the owner loop (or the stopping
 * thread: then the loop has closed every connection already). */
static void sub_free(ac__loop_t *loop, void *arg)
{
	struct ac__subpool *sp = arg;
	struct ac__waiter *w;

	sub_start(loop, sp); /* a no-op unless it never ran */
	sp->dying = 1;
	while ((w = wq_pop(&sp->done)))
		answer(sp, w, NULL, w->err);
	fail_all(sp, AC_ESHUTDOWN);
	while (!TAILQ_EMPTY(&sp->idle)) {
		ac_conn_t *c = TAILQ_FIRST(&sp->idle);
		idle_remove(sp, c);
		retire_conn(sp, c, AC_CLOSE_ABORT);
	}
	if (sp->wait_ev)
		event_del(sp->wait_ev);
	if (sp->sweep_ev)
		event_del(sp->sweep_ev);
	if (sp->refill_ev)
		event_del(sp->refill_ev);
	/* Connections still connecting go on; pool_on_open closes them. */
	maybe_finish(sp);
}

/* begin_stop: the loop is stopping; every connection is about to close. */
void ac__pools_loop_stop(ac__loop_t *loop)
{
	struct ac__subpool *sp;

	LIST_FOREACH(sp, &loop->pools, on_loop) {
		struct ac__waiter *w;

		while ((w = wq_pop(&sp->done)))
			answer(sp, w, NULL, w->err);
		fail_all(sp, AC_ESHUTDOWN);
		event_del(sp->wait_ev);
		event_del(sp->sweep_ev);
		event_del(sp->refill_ev);
	}
}

/* ---- public ---------------------------------------------------------------- */

AC_EXPORT ac_pool_t *ac_pool_new(ac_runtime_t *rt, const char *addr,
				 const ac_pool_opts_t *opts)
{
	ac_pool_opts_t o = {0};
	ac_conn_cbs_t cbs;
	ac_pool_t *p;
	int err, n;

	if (!rt || !addr) {
		errno = EINVAL;
		return NULL;
	}
	if (opts)
		o = *opts;
	if (!ac__reserved_zero(o.reserved, sizeof(o.reserved))) {
		ac__log(rt, AC_LOG_ERROR, "ac_pool_opts_t: %s", AC__RESERVED_MSG);
		errno = EINVAL;
		return NULL;
	}
	if (!o.max_per_loop)
		o.max_per_loop = AC__POOL_MAX_PER_LOOP;
	if (!o.acquire_timeout_ms)
		o.acquire_timeout_ms = AC__POOL_ACQUIRE_MS;
	if (!o.max_waiters)
		o.max_waiters = AC__POOL_MAX_WAITERS;
	if (!o.conn.reconnect_min_ms)
		o.conn.reconnect_min_ms = AC__POOL_REFILL_MIN_MS;
	if (!o.conn.reconnect_max_ms)
		o.conn.reconnect_max_ms = AC__POOL_REFILL_MAX_MS;
	if (o.min_idle_per_loop > o.max_per_loop) {
		ac__log(rt, AC_LOG_ERROR,
			"pool: min_idle_per_loop (%u) is above max_per_loop (%u)",
			o.min_idle_per_loop, o.max_per_loop);
		errno = EINVAL;
		return NULL;
	}
	/* The pool's own on_heartbeat stands in for the user's below, so
	 * this is checked here rather than by ac__proto_new. */
	if (o.conn.heartbeat_ms && !o.conn.ping_len && !o.cbs.on_heartbeat) {
		ac__log(rt, AC_LOG_ERROR,
			"pool: heartbeat_ms is set, but there is neither an "
			"on_heartbeat callback nor a ping payload to send");
		errno = EINVAL;
		return NULL;
	}
	n = rt->nloops;
	if (!(p = ac__calloc(AC__K_POOL, 1,
			     sizeof(*p) + (size_t)n * sizeof(p->sub[0])))) {
		errno = ENOMEM;
		return NULL;
	}
	p->rt = rt;
	p->opts = o;
	p->user = o.cbs;
	p->nsubs = n;
	p->live_subs = n;
	if ((err = ac__target_parse(addr, &p->target))) {
		ac__free(AC__K_POOL, p);
		errno = err == AC_ENOMEM ? ENOMEM : EINVAL;
		return NULL;
	}
	/* The pool paces refills itself: its connections never reconnect. */
	o.conn.reconnect_min_ms = 0;
	o.conn.loop = 0;
	cbs = o.cbs;
	cbs.on_open = pool_on_open;
	cbs.on_close = pool_on_close;
	cbs.on_frame = pool_on_frame;
	cbs.on_heartbeat = pool_on_heartbeat;
	cbs.on_goaway = pool_on_goaway;
	if (!(p->proto = ac__proto_new(rt, &cbs, &o.conn, o.ud, AC_TLS_CLIENT,
					 &err))) {
		ac__target_clear(&p->target);
		ac__free(AC__K_POOL, p);
		errno = err == AC_ENOMEM ? ENOMEM : EINVAL;
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		struct ac__subpool *sp = &p->sub[i];

		sp->pool = p;
		sp->loop = rt->loops[i];
		TAILQ_INIT(&sp->idle);
		STAILQ_INIT(&sp->waiters);
		STAILQ_INIT(&sp->done);
		STAILQ_INIT(&sp->spare);
		sp->start_ctl.fn = sub_start;
		sp->start_ctl.arg = sp;
		sp->free_ctl.fn = sub_free;
		sp->free_ctl.arg = sp;
	}
	pthread_mutex_lock(&rt->lock);
	LIST_INSERT_HEAD(&rt->pools, p, link);
	pthread_mutex_unlock(&rt->lock);
	for (int i = 0; i < n; i++)
		ac__loop_ctl_node(rt->loops[i], &p->sub[i].start_ctl);
	return p;
}

AC_EXPORT int ac_pool_acquire(ac_pool_t *p, ac_pool_cb cb, void *arg)
{
	ac__loop_t *loop = ac__tls_loop;
	struct ac__subpool *sp;
	struct ac__waiter *w;

	if (!p || !cb)
		return AC_EINVAL;
	if (!ac__on_loop_of(p->rt))
		return AC_ETHREAD;
	sp = &p->sub[loop->index];
	sub_start(loop, sp);
	if (!sp->serve_ev || !(w = waiter_new(sp)))
		return AC_ENOMEM;
	w->cb = cb;
	w->arg = arg;
	w->err = 0;
	if (sp->dying || ending(loop)) {
		w->err = AC_ESHUTDOWN;
	} else if (sp->nwaiting >= p->opts.max_waiters) {
		w->err = AC_ELIMIT;
	} else {
		w->deadline_ms = ac__mono_ms() + p->opts.acquire_timeout_ms;
		wq_push(&sp->waiters, w);
		GAUGE(sp, nwaiting, pool_waiting, 1);
		schedule(sp);
		return 0;
	}
	wq_push(&sp->done, w);
	schedule(sp);
	return 0;
}

AC_EXPORT int ac_pool_release(ac_pool_t *p, ac_conn_t *c, int how)
{
	struct ac__subpool *sp;
	uint64_t life;
	int err;

	/* c->loop never changes; the rest of c is the owner's to read. */
	if ((err = ac__owner_check(c)))
		return err;
	if (!p || (how != AC_POOL_REUSE && how != AC_POOL_DISCARD))
		return AC_EINVAL;
	if (!c->ob || !c->ob->sp || c->ob->sp->pool != p)
		return AC_EINVAL;
	sp = c->ob->sp;
	if (c->ob->pstate == P_GONE)
		return 0; /* closed while borrowed: already accounted for */
	if (c->ob->pstate != P_BUSY)
		return AC_EINVAL;
	GAUGE(sp, nbusy, pool_busy, -1);
	life = p->opts.max_lifetime_ms;
	if (how == AC_POOL_DISCARD || c->state != AC__C_OPEN || sp->dying ||
	    ending(sp->loop) ||
	    (life && ac__mono_ms() - c->ob->born_ms >= life))
		retire_conn(sp, c, AC_CLOSE_FLUSH);
	else
		reuse(sp, c);
	schedule(sp);
	return 0;
}

AC_EXPORT int ac_pool_stats(ac_pool_t *p, ac_pool_stats_t *out)
{
#define PLD(f) __atomic_load_n(&sp->f, __ATOMIC_RELAXED)
	if (!p || !out)
		return AC_EINVAL;
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < p->nsubs; i++) {
		const struct ac__subpool *sp = &p->sub[i];

		out->idle += PLD(nidle);
		out->busy += PLD(nbusy);
		out->connecting += PLD(nconnecting);
		out->waiting += PLD(nwaiting);
		out->connects += PLD(connects);
		out->failures += PLD(failures);
		out->timeouts += PLD(timeouts);
	}
	return 0;
#undef PLD
}

AC_EXPORT void ac_pool_free(ac_pool_t *p)
{
	ac_runtime_t *rt;
	int n;

	if (!p)
		return;
	rt = p->rt;
	pthread_mutex_lock(&rt->lock);
	if (p->freed) {
		pthread_mutex_unlock(&rt->lock);
		return;
	}
	p->freed = 1;
	LIST_REMOVE(p, link);
	pthread_mutex_unlock(&rt->lock);
	/* Each loop dissolves its own sub-pool, behind the start operation
	 * queued at creation. After the runtime stopped, ac_runtime_free's
	 * settle runs these. Once the last is queued its loop may free p at
	 * any moment: the count is read before. */
	n = p->nsubs;
	for (int i = 0; i < n; i++)
		ac__loop_ctl_node(rt->loops[i], &p->sub[i].free_ctl);
}

/* ac_runtime_free: pools the user never freed. */
void ac__pools_runtime_free(ac_runtime_t *rt)
{
	ac_pool_t *p;

	for (;;) {
		pthread_mutex_lock(&rt->lock);
		p = LIST_FIRST(&rt->pools);
		pthread_mutex_unlock(&rt->lock);
		if (!p)
			break;
		ac_pool_free(p);
	}
}
