/* runtime.h: the runtime object and its state (runtime.c). */
#ifndef AC_RUNTIME_H
#define AC_RUNTIME_H

#include "common.h"

#include <pthread.h>
#include <sys/queue.h>

#include "loop.h"
#include "reclaim.h"
#include "work.h"

enum ac__rt_state {
	AC__RT_NEW,
	AC__RT_RUNNING,
	AC__RT_STOPPING,
	AC__RT_STOPPED
};

struct ac_runtime_s {
	int nloops;
	unsigned mailbox_size; /* ring slots, a power of two */
	int pin_cpus;
	unsigned fanout_wait_us; /* ac_config_t's; 0: off */
	int state;             /* enum ac__rt_state; atomic */
	uint64_t id;           /* unique per process, never reused */
	ac__loop_t **loops;
	struct ac__reclaim reclaim;
	pthread_mutex_t lock;  /* guards listeners, pools, reclaim.foreign,
				  state transitions; never on a hot path */
	LIST_HEAD(, ac_listener_s) listeners;
	LIST_HEAD(, ac_pool_s) pools; /* not yet freed */
	LIST_HEAD(, ac_bridge_s) bridges; /* not yet freed */
	unsigned rr;           /* round robin for foreign posts */
	unsigned max_conns;
	unsigned nconns;       /* atomic: open connections, all loops */
	void (*log)(int level, const char *msg, void *arg);
	void *log_arg;
	char *resolv_conf;     /* NULL: /etc/resolv.conf */
	struct ac__wtab *watches;
	struct ac__work work;  /* the worker pool; own lock */

	/* ac_runtime_drain (drain.c). */
	int draining;          /* atomic: 0, then 1 for good */
	int drain_left;        /* atomic: loops with connections left */
	int drain_fired;       /* atomic: done ran (or is running) */
	unsigned drain_ms;     /* deadline; 0: none */
	void (*drain_done)(void *arg);
	void *drain_arg;
	pthread_cond_t drained; /* under lock: drain_left reached 0 */
};

void ac__log(ac_runtime_t *rt, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int ac__rt_state(const ac_runtime_t *rt)
{
	return __atomic_load_n(&rt->state, __ATOMIC_ACQUIRE);
}

/*
 * A loop choice (AC_LOOP(i) or AC_LOOP_DEFAULT, actorconn.h): the index
 * i, -1 for the default, or AC_EINVAL for anything else (a raw index
 * among them).
 */
static inline int ac__loop_choice(const ac_runtime_t *rt, int loop)
{
	int i = loop & ~AC__LOOP_TAG;

	if (loop == AC_LOOP_DEFAULT)
		return -1;
	if ((loop & AC__LOOP_TAG) == 0 || i < 0 || i >= rt->nloops)
		return AC_EINVAL;
	return i;
}

/* The next loop in rt's round robin. */
static inline int ac__loop_next(ac_runtime_t *rt)
{
	return (int)(__atomic_fetch_add(&rt->rr, 1, __ATOMIC_RELAXED) %
		     (unsigned)rt->nloops);
}

#endif /* AC_RUNTIME_H */
