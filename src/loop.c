/*
 * loop.c: one loop thread, its drain cycle and its stop sequence.
 *
 * Every libevent callback the library registers is bracketed by
 * ac__loop_enter/ac__loop_leave. User callbacks only ever run inside such a
 * bracket, so the outermost leave is the one place where deferred work is
 * done: connections closed during the callback are finalized (on_close runs
 * here, after the callback that closed them has returned), queued output is
 * flushed in one system call per connection, overflowed messages are
 * retried, and the deferred mailbox wake-ups are sent.
 */
#include "loop.h"
#include "outq.h"
#include "mpsc.h"
#include "spsc.h"
#include "alloc.h"
#include "clock.h"
#include "conn.h"
#include "drain.h"
#include "group.h"
#include "listener.h"
#include "pool.h"
#include "runtime.h"
#include "timer.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>

__thread ac__loop_t *ac__tls_loop;

/* Connections whose output may wait for the end of the turn: as many as
 * the output chunks a loop keeps for reuse (outq.c). */
#define AC__FLUSH_DEFER 64u

#define AC__RING_BATCH 1024u /* per ring per cycle: one busy producer
				cannot starve the others */

/* ---- deferred work ----------------------------------------------------- */

void ac__loop_enter(ac__loop_t *loop)
{
	loop->depth++;
}

void ac__loop_leave(ac__loop_t *loop)
{
	ac_conn_t *c;

	if (loop->depth > 1) {
		loop->depth--;
		return;
	}
	/* Outermost: depth stays 1 while we work, so anything the work
	 * triggers (on_close closing another connection, say) is deferred
	 * onto the same queues and picked up by this loop. */
	/*
	 * Output waits for the end of libevent's turn (after_turn), so that
	 * the loop reads every connection that poll found ready before it
	 * writes to any, as redis-server does: `actorconn-bench ping`, 50
	 * connections, P=1, six runs each taking turns, p99 427-462 us
	 * against 535-551 us writing at the end of each callback and
	 * redis-server's 499-511 us. Up to AC__FLUSH_DEFER connections: each
	 * holds an output chunk until it is flushed, and a turn that writes
	 * to thousands (heartbeats to 19,000 connections in `make soak`)
	 * raised the server's resident memory from 21 to 31 MiB; past that
	 * many, output goes when the callback ends, as before. Flush before
	 * finalizing: a finalized connection is retired and must not be on
	 * the flush list. Finalizing cannot queue its own flush (writes to a
	 * dead connection are refused), so one close at a time with a full
	 * flush in between keeps that true.
	 */
	if (!loop->in_turn || loop->nflushing >= AC__FLUSH_DEFER ||
	    !STAILQ_EMPTY(&loop->closing)) {
		for (;;) {
			if ((c = STAILQ_FIRST(&loop->flushing))) {
				STAILQ_REMOVE_HEAD(&loop->flushing, flushing);
				loop->nflushing--;
				c->flush_queued = 0;
				ac__conn_flush(c);
			} else if ((c = STAILQ_FIRST(&loop->closing))) {
				STAILQ_REMOVE_HEAD(&loop->closing, closing);
				ac__conn_finalize(c);
			} else {
				break;
			}
		}
	}
	if (loop->ovf_count)
		ac__mailbox_retry(loop);
	if (loop->nwake)
		ac__mailbox_flush_wakes(loop);
	loop->depth = 0;
	if (loop->stopping && loop->nconns == 0) {
		loop->quit = 1; /* may be between turns: see loop_main */
		event_base_loopbreak(loop->base);
	} else if (AC__UNLIKELY(loop->draining) && !loop->drained &&
		   loop->nconns == 0) {
		loop->depth = 1; /* done may call the library */
		ac__drain_loop_empty(loop);
		ac__loop_leave(loop);
	}
}

/* ---- control operations --------------------------------------------------
 *
 * A lock-free stack (ck_stack): any thread pushes with a compare-and-swap;
 * the loop takes the whole stack with one exchange, and only when a plain
 * load says it is not empty, so a drain cycle with no control work pays
 * nothing. Taken nodes are reversed into the order they were pushed.
 */

void ac__loop_ctl_node(ac__loop_t *loop, struct ac__ctl *node)
{
	ck_stack_push_upmc(&loop->ctl, &node->entry);
	ac__wake(loop);
}

/* Runs queued control operations; on the loop, or after it exited. */
void ac__loop_run_ctl(ac__loop_t *loop)
{
	ck_stack_entry_t *e, *next, *fifo = NULL;

	if (ck_pr_load_ptr(&loop->ctl.head) == NULL)
		return; /* the common case: one load */
	for (e = ck_stack_batch_pop_upmc(&loop->ctl); e; e = next) {
		next = e->next;
		e->next = fifo;
		fifo = e;
	}
	for (e = fifo; e; e = next) {
		struct ac__ctl *n = (struct ac__ctl *)e; /* entry is first */

		next = e->next; /* fn may free the node's owner */
		n->fn(loop, n->arg);
	}
}

/* ---- the drain cycle ----------------------------------------------------- */

#define AC__TAKE 64 /* messages copied out of a ring at a time */

/* What a drain left behind, and when the drain cycle must run again
 * without a wake-up (drain_cycle). */
#define AC__LEFT_BATCH 1u /* a ring's batch was spent: after the next poll */
#define AC__LEFT_CLAIM 2u /* a foreign claim not yet published: shortly */
#define AC__CLAIM_WAIT_US 5

/* A drain's consecutive publishes to one group are staged (group.c);
 * any other message first writes them, and so does the drain's end. */
static inline void dispatch(ac__loop_t *loop, struct ac__msg *m)
{
	if (AC__UNLIKELY(loop->fan.n) &&
	    (m->kind != AC__MSG_PUBLISH || m->a.p != loop->fan.g))
		ac__group_fan_flush(loop);
	ac__dispatch(loop, m);
}

static inline void dispatched(ac__loop_t *loop)
{
	if (loop->fan.n)
		ac__group_fan_flush(loop);
}

static void note_depth(ac__loop_t *loop, uint64_t depth)
{
	if (depth > loop->st.mailbox_max_depth)
		AC__STAT_SET(loop, mailbox_max_depth, depth);
}

/*
 * Dispatches up to about `batch` messages from a loop's ring; returns the
 * number dispatched. Messages run where they lie in the ring, and their
 * slots go back to the producer AC__TAKE at a time. A handler that posts
 * to this same ring cannot reach those slots: they are not released yet.
 */
static unsigned drain_spsc(ac__loop_t *loop, struct ac__spsc *r,
			   unsigned batch)
{
	unsigned got = 0;
	uint32_t n;

	while (got < batch && (n = ac__spsc_ready(r))) {
		if (!got) /* what was there when the drain began */
			note_depth(loop, n);
		if (n > AC__TAKE)
			n = AC__TAKE;
		for (uint32_t i = 0; i < n; i++)
			dispatch(loop, ac__spsc_at(r, i));
		ac__spsc_release(r, n);
		got += n;
	}
	dispatched(loop);
	return got;
}

/*
 * The same for the foreign threads' ring, which the loop then marks asleep
 * when it is empty (mpsc.h): its next producer wakes the loop. Adds to
 * *left when the ring must be drained again without a wake-up:
 * AC__LEFT_BATCH when the batch was spent, AC__LEFT_CLAIM when a producer
 * has claimed a slot and not yet published it (it saw the loop awake and
 * will not wake it; it publishes within a few instructions unless it is
 * preempted there).
 */
static unsigned drain_foreign(ac__loop_t *loop, struct ac__mpsc *r,
			      unsigned batch, unsigned *left)
{
	struct ac__msg m[AC__TAKE];
	unsigned got = 0, n;

	for (;;) {
		while (got < batch && (n = ac__mpsc_take(r, m, AC__TAKE))) {
			for (unsigned i = 0; i < n; i++)
				dispatch(loop, &m[i]);
			got += n;
		}
		if (got >= batch) {
			*left |= AC__LEFT_BATCH;
			break;
		}
		if (ac__mpsc_sleep(r))
			break;
		if (!ac__mpsc_at(r, 0)) { /* claimed, not yet published */
			*left |= AC__LEFT_CLAIM;
			break;
		}
		/* Published while we looked: take it. */
	}
	dispatched(loop);
	/* The depth is what this drain found published, not claim - head:
	 * the claim word is the line producers compare-and-swap for every
	 * message, and reading it at every drain took it from them (about
	 * 5% of `actorconn-bench mailbox` foreign -> loop). */
	note_depth(loop, got);
	return got;
}

/* Dispatches up to `batch` messages from each ring. Returns what it left
 * behind: AC__LEFT_* flags, 0 when every ring is empty. */
static unsigned drain(ac__loop_t *loop, unsigned batch)
{
	uint64_t got = 0;
	unsigned n, left = 0;

	for (int j = 0; j < loop->rt->nloops; j++) {
		/* Acquire pairs with the producer's release in ring_to. */
		struct ac__spsc *r =
			__atomic_load_n(&loop->in[j], __ATOMIC_ACQUIRE);

		if (r) {
			got += n = drain_spsc(loop, r, batch);
			if (n >= batch)
				left |= AC__LEFT_BATCH;
		}
	}
	got += drain_foreign(loop, loop->foreign, batch, &left);
	AC__STAT_ADD(loop, mailbox_received, got);
	return left;
}

/* Owner loop: again_cb (the drain cycle) in `us` microseconds; without
 * the memory for libevent's timer heap, at once through the wake-up event. */
static void arm_again(ac__loop_t *loop, long us)
{
	struct timeval tv = {0, us};

	if (evtimer_add(loop->again_ev, &tv))
		event_active(loop->wake_ev, EV_READ, 0); /* no memory */
}

/*
 * Owner loop: the drain cycle again in `us` microseconds, without the
 * eventfd; the caller has set wake_pending, so that producers skip the
 * eventfd write meanwhile. A later time never postpones an earlier one
 * already set.
 */
static void drain_after(ac__loop_t *loop, long us)
{
	if (!evtimer_pending(loop->again_ev, NULL))
		arm_again(loop, us);
}

/* The drain cycle, inside a library callback. */
static void drain_cycle(ac__loop_t *loop)
{
	unsigned left;

	/* Clear the flag, then a full fence, then drain: the consumer half of
	 * the protocol described in ac__wake. */
	__atomic_store_n(&loop->wake_pending, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	ac__loop_run_ctl(loop);
	left = drain(loop, AC__RING_BATCH);
	if (left) {
		/* Setting the flag spares producers the eventfd write until
		 * the loop comes back. */
		__atomic_store_n(&loop->wake_pending, 1, __ATOMIC_RELAXED);
		if (left & AC__LEFT_BATCH)
			/* Batch budget spent: let I/O run, then come back. */
			ac__loop_drain_soon(loop);
		else
			/*
			 * Only a claim not yet published: come back in a few
			 * microseconds, not after the next poll. A loop that
			 * keeps up with a foreign producer finds its claim
			 * in flight at almost every drain; looking again at
			 * once (the next poll returns at once) read the line
			 * the producer was writing and its claim word every
			 * few dozen messages, and took them from it. Waiting
			 * lets it run ahead and the loop take its messages in
			 * one pass: `actorconn-bench mailbox`, foreign ->
			 * loop, 43-45M messages/s looking again at once,
			 * 51-54M waiting 5 us, 53-56M waiting 20 us (three
			 * runs each). A producer preempted in its put no
			 * longer keeps the loop spinning through polls for
			 * as long as it is off the CPU, either.
			 */
			drain_after(loop, AC__CLAIM_WAIT_US);
	}
	/* Registry entries and tables this loop removed, once no reader can
	 * hold them (ck_epoch_poll frees what is due, and waits for none). */
	if (loop->ctx.ep.n_pending)
		ck_epoch_poll(&loop->ctx.ep);
}

/*
 * Owner loop: runs the drain cycle again after the next poll for I/O,
 * without the eventfd. A zero timeout fires only after that poll; making
 * the event active again would run it before any I/O, for ever if a
 * posted function kept posting to its own loop. The caller has set
 * wake_pending, so that producers skip the eventfd write meanwhile.
 */
void ac__loop_drain_soon(ac__loop_t *loop)
{
	arm_again(loop, 0); /* brings a later time set by drain_after forward */
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	ac__loop_t *loop = arg;
	uint64_t v;

	ac__loop_enter(loop);
	AC__STAT_ADD(loop, mailbox_wakeups, 1);
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		perror("actorconn: eventfd read");
	drain_cycle(loop);
	ac__loop_leave(loop);
}

/*
 * The drain cycle again, after the I/O that a full batch held back. The
 * eventfd is not read: the flag was left set, so no producer wrote it
 * since (one that did before is seen by epoll, and wake_cb reads it),
 * and the read would be a system call per batch for nothing.
 */
static void again_cb(evutil_socket_t fd, short what, void *arg)
{
	ac__loop_t *loop = arg;

	ac__loop_enter(loop);
	drain_cycle(loop);
	ac__loop_leave(loop);
}

static void ovf_cb(evutil_socket_t fd, short what, void *arg)
{
	ac__loop_t *loop = arg;

	ac__loop_enter(loop);
	ac__loop_leave(loop); /* leave retries the overflow lists */
	if (loop->ovf_count) {
		struct timeval tv = {0, AC__OVERFLOW_RETRY_US};
		evtimer_add(loop->ovf_ev, &tv);
	}
}

/* ---- stop ------------------------------------------------------------------- */

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	ac__loop_t *loop = arg;

	ac__loop_enter(loop);
	ac__loop_each_conn(loop, ac__conn_stop, 1);
	ac__loop_leave(loop);
}

/* Control operation: stop accepting, close everything within the grace. */
void ac__loop_begin_stop(ac__loop_t *loop, void *grace_ms)
{
	long ms = (long)(intptr_t)grace_ms;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	if (loop->stopping)
		return;
	/* Deliver what was accepted before the stop (up to one ring's worth
	 * per ring, so endless producers cannot hold the stop up): a send
	 * that returned 0 before ac_runtime_stop was called gets written. */
	drain(loop, loop->rt->mailbox_size);
	loop->stopping = 1;
	ac__accept_drop_all(loop);
	ac__pools_loop_stop(loop); /* waiters fail with AC_ESHUTDOWN */
	ac__loop_each_conn(loop, ac__conn_stop, 0);
	/* Without the grace timer (libevent could not grow its timer heap)
	 * flushing connections would wait out their own linger_ms: close
	 * them now instead. */
	if (loop->base && loop->nconns && evtimer_add(loop->grace_ev, &tv))
		ac__loop_each_conn(loop, ac__conn_stop, 1);
	/* The leave of the drain cycle running us breaks the loop once the
	 * last connection is gone. */
}

#define AC__SETTLE_WAIT_MS 1000 /* for claimed slots to be published */

/*
 * ac__loop_settle's foreign ring. A producer publishes the slot it claimed
 * a few instructions later, but one preempted in between leaves a gap that
 * every message claimed after it waits behind (take stops at the first
 * unpublished slot): up to a ring of other threads' messages that this
 * settle would leave to ac_runtime_free. So wait, yielding, until every
 * claim so far is published and taken. Once the state says STOPPED only
 * producers already past that check can still claim, one message each,
 * and the wait is bounded all the same.
 */
static void settle_foreign(ac__loop_t *loop)
{
	uint64_t start = 0;
	struct ac__msg m;

	for (;;) {
		while (ac__mpsc_take(loop->foreign, &m, 1))
			ac__settle(loop, &m);
		if (!ac__mpsc_depth(loop->foreign))
			return;
		if (!start)
			start = ac__mono_ms();
		else if (ac__mono_ms() - start > AC__SETTLE_WAIT_MS)
			return;
		sched_yield();
	}
}

/*
 * After the loop thread has exited (or never ran): run leftover control
 * operations and settle every message still queued for or by this loop.
 */
void ac__loop_settle(ac__loop_t *loop)
{
	struct ac__msg m;

	loop->stopping = 1;
	ac__loop_run_ctl(loop);
	ac__accept_drop_all(loop);
	for (int j = 0; j < loop->rt->nloops; j++) {
		struct ac__spsc *r = loop->in[j];
		struct ac__ovf *o = &loop->ovf[j];

		/* Loop j has exited (joined): what it staged is ours too. */
		if (r)
			ac__spsc_publish(r);
		while (r && ac__spsc_take(r, &m, 1))
			ac__settle(loop, &m);
		while (!ac__ovf_empty(o)) /* bound for loop j */
			ac__settle(loop->rt->loops[j],
				   &o->v[o->head++ & (o->cap - 1)]);
		ac__ovf_clear(o);
	}
	loop->ovf_count = 0;
	settle_foreign(loop);
}

/*
 * After each turn of the event loop, before the next poll for I/O: the
 * messages the loop sent itself during the turn's callbacks (a group's
 * publication to its members on this loop, say). Run here, they cost no
 * wake-up, and what all of the turn's callbacks sent is delivered
 * together, so that their writes to one connection go out in one system
 * call. (Running them at the end of each callback instead halved the
 * throughput of PUBLISH to a channel with one subscriber: a write per
 * publication.) Only what is there now: what these messages send the
 * loop in turn waits for the drain cycle after the next poll (mailbox.c,
 * self_wake), so a function that keeps posting itself cannot hold I/O up.
 * Then the output of the whole turn and of those messages goes out, in
 * the order it was queued (ac__loop_leave).
 */
static void after_turn(ac__loop_t *loop)
{
	struct ac__spsc *r = loop->out[loop->index];
	uint32_t n = r ? ac__spsc_ready(r) : 0;

	if (!n && STAILQ_EMPTY(&loop->flushing))
		return;
	ac__loop_enter(loop);
	if (n) {
		loop->turn_end = 1;
		AC__STAT_ADD(loop, mailbox_received, drain_spsc(loop, r, n));
	}
	ac__loop_leave(loop);
	loop->turn_end = 0;
}

/*
 * After a turn that wrote two or more publishes of a group together to
 * many members (ac_config_t.fanout_wait_us): wait as long as the turn
 * took from that fan-out on, up to fanout_wait_us, before polling again.
 * Writing to a member costs a system call however many publishes it
 * carries. When publishers are paced by their subscribers (a window of
 * messages in flight), a loop that turns as fast as it can reads only
 * what came during its last fan-out, and writes that to every member;
 * waiting lets the next turn carry more. `actorconn-bench fanout`, 1,000
 * subscribers, 64 publishes in flight: 35 publishes a write without the
 * wait, 63-66 with it (4 ms at most), and 0.159 against 0.100 us of
 * server CPU per delivery. The wait is as long as the fan-out, so a
 * small group waits little; publishes that come one at a time, slower
 * than the loop writes them, cost no wait; nor do publishes that fill
 * the stage (AC__FAN_MAX at once), which come faster than the loop can
 * write them, so that waiting would only leave it idle; and a loop that
 * is stopping does not wait.
 */
static void fanout_wait(ac__loop_t *loop)
{
	uint64_t took = ac__mono_us() - loop->fan_wait_from;
	uint64_t us = took < loop->rt->fanout_wait_us ? took
						      : loop->rt->fanout_wait_us;
	struct timespec ts = {(time_t)(us / 1000000u),
			      (long)(us % 1000000u) * 1000};

	loop->fan_wait_from = 0;
	if (loop->fan_full) {
		loop->fan_full = 0;
		return;
	}
	if (!us || loop->stopping || loop->quit)
		return;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	AC__STAT_ADD(loop, fanout_waits, 1);
	AC__STAT_ADD(loop, fanout_wait_us, us);
}

/* ---- thread ------------------------------------------------------------------ */

static void *loop_main(void *arg)
{
	ac__loop_t *loop = arg;
	char name[16];

	ac__tls_loop = loop;
	snprintf(name, sizeof(name), "ac-loop-%d", loop->index);
	pthread_setname_np(pthread_self(), name);
	if (loop->rt->pin_cpus) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET((int)(loop->index % (ncpu > 0 ? ncpu : 1)), &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	/* One turn at a time (EVLOOP_ONCE: every callback made active by one
	 * poll has run), so that after_turn runs between the turns. The
	 * flag, not event_base_got_break: a break asked for by after_turn's
	 * callbacks, between two turns, is cleared by the next one. A loop
	 * quits only with no connection left, so no output waits then. */
	while (!loop->quit) {
		int rc;

		loop->in_turn = 1;
		rc = event_base_loop(loop->base,
				     EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
		loop->in_turn = 0;
		if (rc != 0 || loop->quit)
			break;
		after_turn(loop);
		if (AC__UNLIKELY(loop->fan_wait_from))
			fanout_wait(loop);
	}
	/* Loop timers nobody cancelled stop with the loop (connection timers
	 * went with their connections); the output chunks it kept go. */
	ac__timers_free_loop(loop);
	ac__chunk_spares_free(loop);
	__atomic_store_n(&loop->exited, 1, __ATOMIC_RELEASE);
	ac__tls_loop = NULL;
	return NULL;
}

int ac__loop_start(ac__loop_t *loop)
{
	int e = pthread_create(&loop->thread, NULL, loop_main, loop);

	if (e)
		return -e;
	/* Release: read by workers posting completions (work.c). */
	__atomic_store_n(&loop->thread_started, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Zeroed memory on cache lines of its own: the per-loop arrays read on
 * every put (in, out) must not share a line with another loop's, which
 * that loop may be writing. */
static void *lines_new(size_t n)
{
	size_t len = (n + AC__CACHELINE - 1) & ~(size_t)(AC__CACHELINE - 1);
	void *p = ac__memalign(AC__K_OTHER, AC__CACHELINE, len);

	if (p)
		memset(p, 0, len);
	return p;
}

ac__loop_t *ac__loop_new(ac_runtime_t *rt, int index)
{
	struct event_config *ecfg = NULL;
	ac__loop_t *loop;
	int n = rt->nloops;

	if (!(loop = ac__memalign(AC__K_OTHER, AC__CACHELINE, sizeof(*loop))))
		return NULL;
	memset(loop, 0, sizeof(*loop));
	loop->rt = rt;
	loop->index = index;
	loop->wake_fd = -1;
	ck_stack_init(&loop->ctl);
	ac__htab_init(&loop->htab);
	LIST_INIT(&loop->pools);
	STAILQ_INIT(&loop->closing);
	STAILQ_INIT(&loop->flushing);
	SLIST_INIT(&loop->accepts);
	LIST_INIT(&loop->timers);

	if ((loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail;
	loop->pub_batch = rt->mailbox_size >= 8 ? rt->mailbox_size / 8 : 1;
	if (!(loop->foreign = ac__mpsc_new(rt->mailbox_size)) ||
	    !(loop->in = lines_new(n * sizeof(*loop->in))) ||
	    !(loop->out = lines_new(n * sizeof(*loop->out))) ||
	    !(loop->ovf = lines_new(n * sizeof(*loop->ovf))) ||
	    !(loop->wake_list = lines_new(n * sizeof(*loop->wake_list))) ||
	    !(loop->scratch = ac__malloc(AC__K_OTHER, AC__READ_CHUNK)))
		goto fail;

	/* One base per loop, owned by one thread: no libevent locking. The
	 * precise timer: the coarse clock ticks every 4 ms here, which would
	 * stretch the 500 us overflow retry eightfold. */
	if (!(ecfg = event_config_new()) ||
	    event_config_set_flag(ecfg, EVENT_BASE_FLAG_NOLOCK |
						EVENT_BASE_FLAG_PRECISE_TIMER) ||
	    !(loop->base = event_base_new_with_config(ecfg)))
		goto fail;
	event_config_free(ecfg);
	ecfg = NULL;
	if (!(loop->wake_ev = event_new(loop->base, loop->wake_fd,
					EV_READ | EV_PERSIST, wake_cb, loop)) ||
	    event_add(loop->wake_ev, NULL) ||
	    !(loop->ovf_ev = evtimer_new(loop->base, ovf_cb, loop)) ||
	    !(loop->again_ev = evtimer_new(loop->base, again_cb, loop)) ||
	    !(loop->grace_ev = evtimer_new(loop->base, grace_cb, loop)))
		goto fail;
	ac__tctx_init(rt, &loop->ctx);
	return loop;
fail:
	if (ecfg)
		event_config_free(ecfg);
	ac__loop_free(loop);
	return NULL;
}

/* Control thread, after the loop has exited and been settled. */
void ac__loop_free(ac__loop_t *loop)
{
	if (!loop)
		return;
	ac__event_free(&loop->wake_ev);
	ac__event_free(&loop->ovf_ev);
	ac__event_free(&loop->again_ev);
	ac__event_free(&loop->grace_ev);
	ac__event_free(&loop->drain_ev);
	if (loop->dns)
		evdns_base_free(loop->dns, 0); /* no request is left */
	if (loop->base)
		event_base_free(loop->base);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	if (loop->in)
		for (int j = 0; j < loop->rt->nloops; j++)
			ac__spsc_free(loop->in[j]);
	ac__mpsc_free(loop->foreign);
	ac__free(AC__K_OTHER, loop->in);
	for (int j = 0; loop->ovf && j < loop->rt->nloops; j++)
		ac__ovf_clear(&loop->ovf[j]);
	ac__free(AC__K_OTHER, loop->ovf);
	ac__free(AC__K_OTHER, loop->out);
	ac__free(AC__K_OTHER, loop->wake_list);
	ac__free(AC__K_OTHER, loop->scratch);
	ac__chunk_spares_free(loop);
	ac__htab_destroy(&loop->htab);
	ac__free(AC__K_OTHER, loop);
}

AC_EXPORT int ac_loop_index(void)
{
	return ac__tls_loop ? ac__tls_loop->index : -1;
}
