/*
 * loop.h: one loop thread, its drain cycle and its stop (loop.c).
 *
 *   ac_runtime_t ── loops[n] ── ac__loop_t: pthread + event_base (NOLOCK)
 *                                 ├─ in[n]     SPSC rings, one per producer
 *                                 │            loop, created by that producer
 *                                 ├─ foreign   MPSC ring for other threads
 *                                 ├─ ovf[n]    overflow lists (this loop as
 *                                 │            producer, one per consumer)
 *                                 ├─ ctl       control operations (a stack)
 *                                 ├─ htab      handle slots this loop owns
 *                                 └─ ctx       this loop's hazard pointer
 *                                              and epoch records
 */
#ifndef AC_LOOP_H
#define AC_LOOP_H

#include "common.h"

#include <pthread.h>
#include <sys/queue.h>

#include <ck_stack.h>
#include <event2/event.h>

#include "htab.h"
#include "mailbox.h"
#include "reclaim.h"

#define AC__READ_CHUNK 65536u /* one recv() per readiness event */
#define AC__FAN_MAX 256u      /* publishes staged per group (group.c) */

/*
 * A control operation: rare work (listen, unlisten, stop, pools) pushed to
 * a loop. The node belongs to whoever pushed it, so pushing cannot fail.
 * Runs on the loop, or on the stopping thread if the loop has exited.
 */
struct ac__ctl {
	ck_stack_entry_t entry; /* first: loop->ctl */
	void (*fn)(ac__loop_t *loop, void *arg);
	void *arg;
};

/*
 * Per-loop counters. Only the owner writes them, with relaxed atomic
 * stores of (value + n), so readers on other threads take no lock and see
 * no torn values; the block starts on its own cache line.
 */
struct ac__lstats {
	uint64_t accepted, connected, rejected, accept_pauses;
	uint64_t closed[AC_CR_COUNT];
	uint64_t bytes_in, bytes_out, frames_in, writes;
	uint64_t mailbox_received, mailbox_overflowed, mailbox_max_depth;
	uint64_t mailbox_wakeups;
	uint64_t group_publishes, group_batches;
	uint64_t fanout_waits, fanout_wait_us;
	uint64_t dropped, dropped_shutdown;
	uint64_t conns_open, handles_live, hp_pending, timers_live;
	uint64_t pool_idle, pool_busy, pool_waiting; /* over the loop's pools */
	uint64_t pool_connects, pool_failures;
};

#define AC__STAT_ADD(loop, field, n)                                         \
	__atomic_store_n(&(loop)->st.field, (loop)->st.field + (uint64_t)(n), \
			 __ATOMIC_RELAXED)
#define AC__STAT_SET(loop, field, v)                                         \
	__atomic_store_n(&(loop)->st.field, (uint64_t)(v), __ATOMIC_RELAXED)

struct ac__loop {
	/* Written by every producer (CAS 0 -> 1) and by the owner (-> 0): on
	 * its own cache line so producers do not bounce the fields below. */
	int wake_pending AC__ALIGNED;
	/* Foreign producers that found the mailbox full (atomic add). */
	uint64_t mailbox_full AC__ALIGNED;
	/* Control operations, pushed by any thread (lock-free), taken all
	 * at once by the loop. */
	ck_stack_t ctl AC__ALIGNED;

	struct ac__lstats st AC__ALIGNED;

	/* Set before the thread starts; read by producers. */
	ac_runtime_t *rt AC__ALIGNED;
	int index;
	int wake_fd;             /* eventfd */
	struct ac__mpsc *foreign; /* MPSC: threads that are not loops */
	struct ac__spsc **in;    /* [nloops]; in[j] created by loop j */
	struct ac__htab htab;    /* segments read by pinning threads */

	/* Owner only from here on. */
	struct ac__tctx ctx AC__ALIGNED; /* this loop's reclamation records */
	pthread_t thread;
	int thread_started;      /* atomic: workers read it (work.c) */
	struct event_base *base;
	struct event *wake_ev;   /* eventfd readable: drain cycle */
	struct event *again_ev;  /* the drain cycle after a full batch, or
				    for messages to itself (mailbox.c) */
	struct event *ovf_ev;    /* overflow retry timer */
	struct event *grace_ev;  /* shutdown grace timer */
	struct ac__spsc **out;   /* [nloops]: this loop's ring to each loop
				    (out[k] is loops[k]->in[index]) */
	unsigned pub_batch;      /* messages staged before a ring is
				    published at once (mailbox.c) */
	struct ac__ovf *ovf;     /* [nloops]: messages this loop could not place */
	unsigned ovf_count;
	int *wake_list;          /* consumers to wake when the callback ends */
	int nwake;
	int depth;               /* library callback nesting */
	int quit;                /* the loop thread stops turning */
	int turn_end;            /* running the messages the loop sent
				    itself during a turn (loop.c,
				    after_turn) */
	int in_turn;             /* in libevent's turn: output waits for
				    the turn's end (ac__loop_leave) */
	unsigned nconns;         /* connections in htab, outbound ones
				    connecting or waiting included */
	unsigned nopen;          /* of which open (conns_open) */
	struct evdns_base *dns;  /* made on the first name lookup */
	LIST_HEAD(, ac__subpool) pools;  /* sub-pools served by this loop */
	uint64_t rng;            /* back-off jitter (xorshift) */
	STAILQ_HEAD(, ac_conn_s) closing; /* to finalize at callback end */
	STAILQ_HEAD(, ac_conn_s) flushing; /* to flush at the turn's end,
					      in the order queued */
	unsigned nflushing;               /* on that list */
	SLIST_HEAD(, ac__accept) accepts; /* listening sockets served here */
	LIST_HEAD(, ac_timer_s) timers;   /* every live timer of this loop */
	struct ac__ctimeout {
		unsigned ms;
		const struct timeval *tv;
	} common[16];            /* libevent common timeouts by duration */
	int ncommon;
	int stopping;
	int exited;
	int draining;            /* ac_runtime_drain reached this loop */
	int drained;             /* and it had no connection left */
	struct event *drain_ev;  /* the drain's deadline */
	struct ac__ctl drain_ctl; /* preallocated: draining cannot fail */
	unsigned char *scratch;  /* AC__READ_CHUNK bytes for reads */
	struct ac__chunk *spare_chunks; /* output chunks kept for reuse */
	unsigned nspare_chunks;
	struct ac__fan {          /* a drain's publishes to one group, to be
				     written together (group.c) */
		ac_group_t *g;
		unsigned n;
		size_t bytes;
		ac_buf_t *b[AC__FAN_MAX];
	} fan;
	uint64_t fan_wait_from;   /* ac__mono_us() when this turn's first
				     large fan-out began; 0: none (loop.c,
				     fanout_wait) */
	int fan_full;             /* this turn staged AC__FAN_MAX publishes
				     at once: no wait */

	struct ac__ctl stop_ctl; /* preallocated: stopping cannot fail */
};

/* The loop the calling thread runs, or NULL. Initial-exec: one load off
 * the thread pointer, no __tls_get_addr call, so the owner check every
 * "owner loop" call makes costs a compare. (The library is linked at
 * start-up, which is what initial-exec needs; dlopen works while glibc's
 * static TLS reserve lasts, and this is one pointer.) */
extern __thread ac__loop_t *ac__tls_loop __attribute__((tls_model("initial-exec")));

/* True on any loop thread of rt. */
static inline bool ac__on_loop_of(const ac_runtime_t *rt)
{
	return ac__tls_loop && ac__tls_loop->rt == rt;
}

/* Frees *ev if there is one, and forgets it. */
static inline void ac__event_free(struct event **ev)
{
	if (*ev) {
		event_free(*ev);
		*ev = NULL;
	}
}

ac__loop_t *ac__loop_new(ac_runtime_t *rt, int index);
void ac__loop_free(ac__loop_t *loop);
int ac__loop_start(ac__loop_t *loop);
/* Bracket every libevent callback the library registers; the outermost
 * leave does the deferred work (finalize, flush, retry, wake). */
void ac__loop_enter(ac__loop_t *loop);
void ac__loop_leave(ac__loop_t *loop);
/* Owner loop, wake_pending set: the drain cycle after the next poll for
 * I/O (a spent batch, messages the loop sent itself at a turn's end). */
void ac__loop_drain_soon(ac__loop_t *loop);
/* Any thread: queue a control operation the caller owns (fn set). */
void ac__loop_ctl_node(ac__loop_t *loop, struct ac__ctl *node);
void ac__loop_run_ctl(ac__loop_t *loop);
void ac__loop_settle(ac__loop_t *loop);
void ac__loop_begin_stop(ac__loop_t *loop, void *grace_ms);
/* The (common, when possible) timeval for ms on this loop. */
const struct timeval *ac__loop_timeout(ac__loop_t *loop, unsigned ms,
				       struct timeval *fallback);

#endif /* AC_LOOP_H */
