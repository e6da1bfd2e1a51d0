/*
 * timer.c: loop timers and connection-owned timers.
 *
 * Timers of the same duration share one libevent common timeout per loop:
 * libevent keeps them in a FIFO queue behind a single heap entry, so adding,
 * re-arming and removing one is O(1) however many there are (19,000
 * connections with the same idle timeout cost one heap entry).
 *
 * Every timer is on its loop's list, so none outlives the runtime; a
 * connection's timers are also on its own list and are cancelled when it
 * closes, so none outlives its connection (rule 6).
 */
#include "timer.h"
#include "alloc.h"
#include "conn.h"
#include "loop.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>

const struct timeval *ac__loop_timeout(ac__loop_t *loop, unsigned ms,
				       struct timeval *fallback)
{
	const struct timeval *tv;

	fallback->tv_sec = ms / 1000;
	fallback->tv_usec = (ms % 1000) * 1000;
	for (int i = 0; i < loop->ncommon; i++)
		if (loop->common[i].ms == ms)
			return loop->common[i].tv;
	/* libevent allows 256 per base; a few distinct durations cover real
	 * use, and the rest fall back to the plain heap. */
	if (loop->ncommon == (int)(sizeof(loop->common) / sizeof(loop->common[0])) ||
	    !(tv = event_base_init_common_timeout(loop->base, fallback)))
		return fallback;
	loop->common[loop->ncommon].ms = ms;
	loop->common[loop->ncommon].tv = tv;
	loop->ncommon++;
	return tv;
}

static void timer_free(ac_timer_t *t)
{
	ac__loop_t *loop = t->loop;

	if (t->ev)
		event_free(t->ev);
	LIST_REMOVE(t, on_loop);
	if (t->conn)
		LIST_REMOVE(t, on_conn);
	AC__STAT_ADD(loop, timers_live, -1);
	ac__free(AC__K_TIMER, t);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	ac_timer_t *t = arg;
	ac__loop_t *loop = t->loop;

	ac__loop_enter(loop);
	t->firing = 1;
	if (t->conn)
		t->cfn(t->conn, t->arg);
	else
		t->fn(t->arg);
	t->firing = 0;
	/* fn may have cancelled its own timer: that only marked it. */
	if (!t->repeat || t->cancelled)
		timer_free(t);
	ac__loop_leave(loop);
}

static ac_timer_t *timer_new(ac__loop_t *loop, unsigned ms, int repeat)
{
	ac_timer_t *t = ac__calloc(AC__K_TIMER, 1, sizeof(*t));
	const struct timeval *tv;

	if (!t) {
		errno = ENOMEM;
		return NULL;
	}
	t->loop = loop;
	t->repeat = repeat != 0;
	tv = ac__loop_timeout(loop, ms, &t->tv);
	if (!(t->ev = event_new(loop->base, -1, t->repeat ? EV_PERSIST : 0,
				timer_cb, t)) ||
	    event_add(t->ev, tv)) {
		if (t->ev)
			event_free(t->ev);
		ac__free(AC__K_TIMER, t);
		errno = ENOMEM;
		return NULL;
	}
	LIST_INSERT_HEAD(&loop->timers, t, on_loop);
	AC__STAT_ADD(loop, timers_live, 1);
	return t;
}

/* A repeating timer of period 0 would run its fn on every loop turn,
 * spinning the loop: refused, and said why. */
static bool period_ok(ac__loop_t *loop, unsigned ms, int repeat)
{
	if (repeat && ms == 0) {
		ac__log(loop->rt, AC_LOG_ERROR,
			"a repeating timer needs a period above 0 ms");
		errno = EINVAL;
		return false;
	}
	return true;
}

AC_EXPORT ac_timer_t *ac_timer_start(ac_runtime_t *rt, unsigned ms,
				     int repeat, void (*fn)(void *arg),
				     void *arg)
{
	ac__loop_t *loop = ac__tls_loop;
	ac_timer_t *t;

	if (!rt || !fn) {
		errno = EINVAL;
		return NULL;
	}
	if (!ac__on_loop_of(rt)) {
		errno = EPERM;
		return NULL;
	}
	if (!period_ok(loop, ms, repeat))
		return NULL;
	if ((t = timer_new(loop, ms, repeat))) {
		t->fn = fn;
		t->arg = arg;
	}
	return t;
}

AC_EXPORT ac_timer_t *ac_conn_timer(ac_conn_t *c, unsigned ms, int repeat,
				    void (*fn)(ac_conn_t *c, void *arg),
				    void *arg)
{
	ac_timer_t *t;

	if (!c || !fn) {
		errno = EINVAL;
		return NULL;
	}
	if (!ac__is_owner(c)) {
		errno = EPERM;
		return NULL;
	}
	if (!period_ok(c->loop, ms, repeat))
		return NULL;
	if (c->state == AC__C_DEAD || c->close_queued) {
		errno = EPIPE;
		return NULL;
	}
	if (!(t = timer_new(c->loop, ms, repeat)))
		return NULL;
	t->cfn = fn;
	t->arg = arg;
	t->conn = c;
	LIST_INSERT_HEAD(&c->timers, t, on_conn);
	return t;
}

static void timer_cancel(ac_timer_t *t)
{
	if (t->cancelled)
		return;
	if (t->firing) {
		/* Inside its own fn: stop it re-firing; timer_cb frees it. */
		t->cancelled = 1;
		event_del(t->ev);
		return;
	}
	timer_free(t);
}

AC_EXPORT int ac_timer_cancel(ac_timer_t *t)
{
	if (!t)
		return AC_EINVAL;
	/* t->loop never changes: reading it from another loop is safe. */
	if (!ac__tls_loop || t->loop != ac__tls_loop)
		return AC_ETHREAD;
	timer_cancel(t);
	return 0;
}

/* Owner loop, before on_close: the connection's timers go with it. */
void ac__timers_cancel_conn(ac_conn_t *c)
{
	ac_timer_t *t, *next;

	for (t = LIST_FIRST(&c->timers); t; t = next) {
		next = LIST_NEXT(t, on_conn);
		timer_cancel(t);
	}
}

/* Control thread, after the loop exited: free what nobody cancelled. */
void ac__timers_free_loop(ac__loop_t *loop)
{
	while (!LIST_EMPTY(&loop->timers))
		timer_free(LIST_FIRST(&loop->timers));
}
