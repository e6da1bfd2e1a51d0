/*
 * work.h: the worker pool, blocking work off the loops (work.c). The pool
 * lives inside the runtime; its item table and threads are made when the
 * first work arrives.
 */
#ifndef AC_WORK_H
#define AC_WORK_H

#include "common.h"

#include <pthread.h>

#include "mailbox.h"

#define AC__DEFAULT_WORK_THREADS 4   /* libuv's default pool size too */
#define AC__DEFAULT_WORK_CAPACITY 1024u

struct ac__witem;

struct ac__work {
	/* Guards everything below. Taken by submit, cancel, the workers
	 * and the completion; never on a mailbox or I/O path. Nothing else
	 * is locked while it is held (ac__mailbox_put takes no lock). */
	pthread_mutex_t lock;
	pthread_cond_t more;       /* queued work, or the stop */
	int max_threads;
	unsigned cap;
	struct ac__witem *items;   /* [cap], made on the first submit */
	uint32_t free_head;        /* free items; index + 1 */
	uint32_t q_head, q_tail;   /* queued items, in submit order */
	uint32_t orphans;          /* completions no loop will run */
	pthread_t *threads;        /* [max_threads], made with items */
	int nthreads;              /* started */
	int idle;                  /* waiting on `more` */
	int stopping;
	/* For ac_stats: written under lock with relaxed atomic stores, read
	 * without it by relaxed loads. */
	uint64_t queued, running, done, failed, cancelled, full;
};

/* ac_runtime_new: takes the configuration; allocates nothing. */
void ac__work_init(ac_runtime_t *rt, const ac_config_t *cfg);
/* The stopping thread, before the loops are told to stop (they still
 * run the completions): refuses new work, completes queued work with
 * AC_ESHUTDOWN, waits for running work and joins the workers. */
void ac__work_stop(ac_runtime_t *rt);
/* The stopping thread, once the loops have exited: runs the completions
 * that could not be queued for a loop. */
void ac__work_settle(ac_runtime_t *rt);
/* ac_runtime_free, after the stop. */
void ac__work_free(ac_runtime_t *rt);
/* Adds the pool's figures to a total. Any thread. */
void ac__work_stats(ac_runtime_t *rt, ac_stats_t *total);
/* True when the calling thread is a worker of rt (running a work fn). */
bool ac__on_worker_of(const ac_runtime_t *rt);

/* WORK messages: a completion, item id in b. */
void ac__work_deliver(ac__loop_t *loop, struct ac__msg *m);
void ac__work_settle_msg(ac__loop_t *loop, struct ac__msg *m);

#endif /* AC_WORK_H */
