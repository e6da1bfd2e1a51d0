/*
 * drain.c: ac_runtime_drain, the graceful end of a server's connections.
 *
 * A drain is one control operation per loop. On its loop it stops
 * accepting (the listening sockets close, so the kernel refuses new
 * connections instead of queueing them), fails the loop's pool waiters,
 * and tells every open connection through on_goaway, in which it may
 * still write; a connection without on_goaway is closed as
 * ac_conn_close(AC_CLOSE_FLUSH) would. Connections not yet open (an
 * outbound attempt, a TLS handshake) are closed with AC_ESHUTDOWN, and
 * those that open during the drain hear on_goaway right after on_open.
 * At the deadline what is left is closed with AC_ESHUTDOWN. The loop
 * counts as drained the first time it has no connection left; when the
 * last loop is, done runs there and ac_runtime_drain_wait returns. The
 * loops keep running (timers, posts) until ac_runtime_stop.
 */
#include "drain.h"

#include "alloc.h"
#include "conn.h"
#include "listener.h"
#include "pool.h"
#include "runtime.h"

#include <errno.h>
#include <time.h>

static void fire_done(ac_runtime_t *rt)
{
	int no = 0;

	if (rt->drain_done &&
	    __atomic_compare_exchange_n(&rt->drain_fired, &no, 1, false,
					__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		rt->drain_done(rt->drain_arg);
}

void ac__drain_loop_empty(ac__loop_t *loop)
{
	ac_runtime_t *rt = loop->rt;

	loop->drained = 1;
	if (loop->drain_ev)
		event_del(loop->drain_ev);
	if (__atomic_sub_fetch(&rt->drain_left, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pthread_mutex_lock(&rt->lock);
	pthread_cond_broadcast(&rt->drained);
	pthread_mutex_unlock(&rt->lock);
	fire_done(rt);
}

void ac__drain_stopped(ac_runtime_t *rt)
{
	if (!__atomic_load_n(&rt->draining, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&rt->lock);
	__atomic_store_n(&rt->drain_left, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&rt->drained);
	pthread_mutex_unlock(&rt->lock);
	fire_done(rt);
}

/* The deadline: close what is left. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	ac__loop_t *loop = arg;

	ac__loop_enter(loop);
	ac__loop_each_conn(loop, ac__conn_stop, 1);
	ac__loop_leave(loop);
}

/* Control operation: the drain on this loop. */
static void drain_op(ac__loop_t *loop, void *arg)
{
	ac_runtime_t *rt = loop->rt;
	unsigned ms = rt->drain_ms;

	if (loop->stopping || loop->draining)
		return; /* a stop got here first and closes everything */
	ac__loop_enter(loop);
	loop->draining = 1;
	ac__accept_close_all(loop);
	ac__pools_loop_stop(loop); /* waiters fail with AC_ESHUTDOWN */
	if (ms) {
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

		/* Without the timer (no memory) there is no deadline to wait
		 * for: close what is left now, as the deadline would. */
		if (!(loop->drain_ev = evtimer_new(loop->base, deadline_cb,
						   loop)) ||
		    evtimer_add(loop->drain_ev, &tv))
			ac__loop_each_conn(loop, ac__conn_stop, 1);
	}
	ac__loop_each_conn(loop, ac__conn_goaway, 0);
	ac__loop_leave(loop); /* counts the loop drained if it is empty */
}

AC_EXPORT int ac_runtime_drain(ac_runtime_t *rt, unsigned deadline_ms,
			       void (*done)(void *arg), void *arg)
{
	int no = 0;

	if (!rt)
		return AC_EINVAL;
	pthread_mutex_lock(&rt->lock);
	if (rt->state != AC__RT_RUNNING) {
		int st = rt->state;

		pthread_mutex_unlock(&rt->lock);
		return st == AC__RT_NEW ? AC_ESTATE : AC_ESHUTDOWN;
	}
	if (!__atomic_compare_exchange_n(&rt->draining, &no, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&rt->lock);
		return AC_EALREADY;
	}
	rt->drain_ms = deadline_ms;
	rt->drain_done = done;
	rt->drain_arg = arg;
	__atomic_store_n(&rt->drain_left, rt->nloops, __ATOMIC_RELEASE);
	/* Under the lock, so a stop cannot slip between the state check and
	 * the operations: they reach the loops before its own. */
	for (int i = 0; i < rt->nloops; i++) {
		ac__loop_t *loop = rt->loops[i];

		loop->drain_ctl.fn = drain_op;
		loop->drain_ctl.arg = NULL;
		ac__loop_ctl_node(loop, &loop->drain_ctl);
	}
	pthread_mutex_unlock(&rt->lock);
	return 0;
}

AC_EXPORT int ac_runtime_drain_wait(ac_runtime_t *rt, int timeout_ms)
{
	struct timespec until;
	int err = 0;

	if (!rt || timeout_ms < -1)
		return AC_EINVAL;
	if (ac__on_loop_of(rt))
		return AC_ETHREAD; /* it would wait for its own loop */
	if (!__atomic_load_n(&rt->draining, __ATOMIC_ACQUIRE))
		return AC_ESTATE;
	clock_gettime(CLOCK_MONOTONIC, &until); /* the condition's clock */
	if (timeout_ms > 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&rt->lock);
	while (__atomic_load_n(&rt->drain_left, __ATOMIC_ACQUIRE) > 0) {
		if (timeout_ms == 0) {
			err = AC_ETIMEDOUT;
			break;
		}
		if (timeout_ms < 0)
			pthread_cond_wait(&rt->drained, &rt->lock);
		else if (pthread_cond_timedwait(&rt->drained, &rt->lock,
						&until) == ETIMEDOUT &&
			 __atomic_load_n(&rt->drain_left,
					 __ATOMIC_ACQUIRE) > 0) {
			err = AC_ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&rt->lock);
	return err;
}
