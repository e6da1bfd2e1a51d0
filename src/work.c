/*
 * work.c: the worker pool. Blocking work runs on worker threads; its
 * completion goes back to a loop as a WORK message in that loop's
 * mailbox, the workers being foreign producers (the MPSC ring).
 *
 * One mutex and one condition variable, as libuv's pool has: a submit, a
 * worker taking work and a completion each hold the lock for a few
 * stores. Submitting work is not the mailbox hot path, and the work
 * itself blocks by definition, so a lock-free queue would buy nothing
 * worth its proof.
 *
 * Every item is a slot of a table of work_capacity slots, made on the
 * first submit, so the bound on outstanding work is the table and a
 * submit allocates nothing. An item's id is (generation, index), and its
 * slot moves, under the lock, only forward through
 *
 *   FREE ──submit──► QUEUED ──a worker──► RUNNING ──work returned──┐
 *                      └─cancel, stop─► COMPLETING ◄───────────────┘
 *                                           │ the WORK message runs done
 *                                           ▼
 *                                         FREE, generation + 1
 *
 * so a stale id is recognised by its generation and done runs once: the
 * one move into COMPLETING posts the one message, and the slot is freed
 * by the one delivery (or settle) of that message.
 *
 * Completions are posted while the loops still run: ac_runtime_stop
 * stops the pool (ac__work_stop) before it tells the loops to stop. A
 * message a loop has not run by the time it exits is settled on the
 * stopping thread, like every other message (ac__loop_settle).
 */
#include "work.h"
#include "alloc.h"
#include "handle.h"
#include "loop.h"
#include "runtime.h"
#include "wait.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

enum { WK_FREE, WK_QUEUED, WK_RUNNING, WK_COMPLETING };

struct ac__witem {
	uint32_t gen;        /* names the current occupant; never 0 */
	uint8_t state;
	uint8_t ran;         /* work ran (status is its return) */
	int loop;            /* the completion loop */
	int status;          /* work's return, AC_ECANCELED or AC_ESHUTDOWN */
	uint32_t prev, next; /* queue, free or orphan list: index + 1 */
	ac_handle_t tie;
	ac_work_fn work;
	ac_work_done_fn done;
	void *arg;
};

/* The runtime whose work function this thread is running, if any. */
static __thread const ac_runtime_t *tls_worker;

bool ac__on_worker_of(const ac_runtime_t *rt)
{
	return tls_worker == rt;
}

static uint64_t item_id(const struct ac__work *p, const struct ac__witem *it)
{
	return (uint64_t)it->gen << 32 | (uint64_t)(it - p->items);
}

/* Under lock: the slot id names (of any generation), or NULL. */
static struct ac__witem *item_slot(struct ac__work *p, uint64_t id)
{
	uint32_t idx = (uint32_t)id;

	if (!p->items || idx >= p->cap || (uint32_t)(id >> 32) == 0)
		return NULL;
	return &p->items[idx];
}

#define SET(p, field, v) __atomic_store_n(&(p)->field, (uint64_t)(v), __ATOMIC_RELAXED)
#define BUMP(p, field, d) SET(p, field, (p)->field + (uint64_t)(d))

void ac__work_init(ac_runtime_t *rt, const ac_config_t *cfg)
{
	struct ac__work *p = &rt->work;

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	p->max_threads = cfg->work_threads ? cfg->work_threads
					   : AC__DEFAULT_WORK_THREADS;
	p->cap = cfg->work_capacity ? cfg->work_capacity
				    : AC__DEFAULT_WORK_CAPACITY;
}

/* Under lock, on the first submit: the table and the thread array. */
static int make_table(struct ac__work *p)
{
	p->items = ac__calloc(AC__K_WORK, p->cap, sizeof(*p->items));
	p->threads = ac__calloc(AC__K_WORK, (size_t)p->max_threads,
				sizeof(*p->threads));
	if (!p->items || !p->threads) {
		ac__free(AC__K_WORK, p->items);
		ac__free(AC__K_WORK, p->threads);
		p->items = NULL;
		p->threads = NULL;
		return AC_ENOMEM;
	}
	for (uint32_t i = 0; i < p->cap; i++) {
		p->items[i].gen = 1;
		p->items[i].next = i + 2 <= p->cap ? i + 2 : 0;
	}
	p->free_head = 1;
	return 0;
}

/* ---- the queue (under lock) ------------------------------------------------ */

static void q_push(struct ac__work *p, uint32_t idx)
{
	struct ac__witem *it = &p->items[idx];

	it->next = 0;
	it->prev = p->q_tail;
	if (p->q_tail)
		p->items[p->q_tail - 1].next = idx + 1;
	else
		p->q_head = idx + 1;
	p->q_tail = idx + 1;
	BUMP(p, queued, 1);
}

static void q_unlink(struct ac__work *p, uint32_t idx)
{
	struct ac__witem *it = &p->items[idx];

	if (it->prev)
		p->items[it->prev - 1].next = it->next;
	else
		p->q_head = it->next;
	if (it->next)
		p->items[it->next - 1].prev = it->prev;
	else
		p->q_tail = it->prev;
	it->prev = it->next = 0;
	BUMP(p, queued, -1);
}

/* Under lock: the completion has run; the slot's ids go stale. */
static void item_free(struct ac__work *p, struct ac__witem *it)
{
	uint32_t gen = it->gen + 1;

	it->gen = gen ? gen : 1; /* wrapped after 2^32 uses */
	it->state = WK_FREE;
	it->work = NULL;
	it->done = NULL;
	it->arg = NULL;
	it->next = p->free_head;
	p->free_head = (uint32_t)(it - p->items) + 1;
	ac__count(AC__K_WORK, -1);
}

/* ---- completions ---------------------------------------------------------- */

/* Whether loop's thread runs and will drain its mailbox. Loops exit only
 * once the pool has stopped, so this is false only for a loop whose
 * thread never started (a failed ac_runtime_start). */
static bool loop_drains(ac__loop_t *loop)
{
	return __atomic_load_n(&loop->thread_started, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&loop->exited, __ATOMIC_ACQUIRE);
}

/*
 * A worker or the stopping thread (foreign producers): queues the WORK
 * message for item id on its loop. A full ring is waited out: the loop
 * drains it, and the message must not be lost. If the loop will never
 * drain, the item becomes an orphan, run by ac__work_settle.
 */
static void post_completion(ac_runtime_t *rt, int loop, uint64_t id)
{
	struct ac__msg m = {.kind = AC__MSG_WORK, .b = (void *)(uintptr_t)id};
	struct ac__work *p = &rt->work;
	unsigned backoff = 0, yields = 0;

	while (ac__mailbox_put(rt, loop, &m)) {
		if (!loop_drains(rt->loops[loop])) {
			pthread_mutex_lock(&p->lock);
			p->items[(uint32_t)id].next = p->orphans;
			p->orphans = (uint32_t)id + 1;
			pthread_mutex_unlock(&p->lock);
			return;
		}
		if (backoff < (1u << 12)) {
			ac__backoff_wait(&backoff);
		} else if (yields < 64) {
			yields++;
			sched_yield();
		} else { /* a long wait: stop spinning */
			struct timespec ts = {0, 200000};
			nanosleep(&ts, NULL);
		}
	}
}

/* What done needs, copied out of its item. */
struct taken {
	ac_work_done_fn done;
	void *arg;
	ac_handle_t tie;
	int status;
	bool ran;
};

/* The item id names, in COMPLETING: takes what done needs and frees the
 * slot before done runs, so that done may submit again into the room it
 * leaves. False if id names no such item (never: one message each). */
static bool take(struct ac__work *p, uint64_t id, struct taken *t)
{
	struct ac__witem *it;
	bool ok;

	pthread_mutex_lock(&p->lock);
	it = item_slot(p, id);
	ok = it && it->gen == (uint32_t)(id >> 32) &&
	     it->state == WK_COMPLETING;
	if (ok) {
		t->done = it->done;
		t->arg = it->arg;
		t->tie = it->tie;
		t->status = it->status;
		t->ran = it->ran;
		item_free(p, it);
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

/* WORK, on the completion loop: resolve the tie here, on its owner loop,
 * where it is exact, and run done. */
void ac__work_deliver(ac__loop_t *loop, struct ac__msg *m)
{
	struct taken t;
	ac_conn_t *c = NULL;

	if (!take(&loop->rt->work, (uint64_t)(uintptr_t)m->b, &t))
		return; /* cannot happen: one message per item */
	if (t.tie != AC_HANDLE_NONE) {
		/* The handle goes stale before on_close runs: a connection
		 * this finds has not been told it closed, and its memory
		 * stays until the current callback (done) returns. */
		c = ac__handle_local(loop, t.tie);
		if (!c && t.ran)
			t.status = AC_ESTALE;
	}
	t.done(c, t.status, t.arg);
}

/* WORK, after its loop exited: on the stopping thread, every connection
 * closed. */
static void run_settled(ac_runtime_t *rt, uint64_t id)
{
	struct taken t;

	if (!take(&rt->work, id, &t))
		return;
	if (t.tie != AC_HANDLE_NONE && t.ran)
		t.status = AC_ESTALE;
	t.done(NULL, t.status, t.arg);
}

void ac__work_settle_msg(ac__loop_t *loop, struct ac__msg *m)
{
	run_settled(loop->rt, (uint64_t)(uintptr_t)m->b);
}

void ac__work_settle(ac_runtime_t *rt)
{
	struct ac__work *p = &rt->work;
	uint32_t o;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		if ((o = p->orphans))
			p->orphans = p->items[o - 1].next;
		pthread_mutex_unlock(&p->lock);
		if (!o)
			break;
		run_settled(rt, item_id(p, &p->items[o - 1]));
	}
}

/* ---- workers -------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	ac_runtime_t *rt = arg;
	struct ac__work *p = &rt->work;

	char name[16];

	/* The spawner held the lock across pthread_create: our entry in
	 * threads[] is written by now. */
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		if (pthread_equal(p->threads[i], pthread_self())) {
			snprintf(name, sizeof(name), "ac-work-%u",
				 (unsigned)(uint8_t)i); /* < 256 */
			pthread_setname_np(pthread_self(), name);
		}
	for (;;) {
		struct ac__witem *it;
		ac_work_fn work;
		void *warg;
		uint64_t id;
		int loop, st;

		while (!p->q_head && !p->stopping) {
			p->idle++;
			pthread_cond_wait(&p->more, &p->lock);
			p->idle--;
		}
		if (!p->q_head)
			break; /* stopping, and the stop took the queue */
		it = &p->items[p->q_head - 1];
		q_unlink(p, (uint32_t)(it - p->items));
		it->state = WK_RUNNING;
		BUMP(p, running, 1);
		work = it->work;
		warg = it->arg;
		pthread_mutex_unlock(&p->lock);

		tls_worker = rt;
		st = work(warg);
		tls_worker = NULL;

		pthread_mutex_lock(&p->lock);
		it->status = st;
		it->ran = 1;
		it->state = WK_COMPLETING;
		BUMP(p, running, -1);
		if (st)
			BUMP(p, failed, 1);
		else
			BUMP(p, done, 1);
		id = item_id(p, it);
		loop = it->loop;
		pthread_mutex_unlock(&p->lock);
		/* From here the item may be delivered and freed at any
		 * moment: only the id and the loop are used. */
		post_completion(rt, loop, id);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Under lock: one more worker, when the queue holds more than the idle
 * workers can take and the pool is not full. 0, or AC_ENOMEM when no
 * worker runs at all (with some, the work waits for one of them). */
static int maybe_spawn(ac_runtime_t *rt)
{
	struct ac__work *p = &rt->work;
	int e;

	if (p->queued <= (uint64_t)p->idle || p->nthreads >= p->max_threads)
		return 0;
	e = pthread_create(&p->threads[p->nthreads], NULL, worker_main, rt);
	if (!e) {
		p->nthreads++;
		return 0;
	}
	ac__log(rt, AC_LOG_WARN, "could not start a worker thread: %s",
		ac_strerror(-e));
	return p->nthreads ? 0 : AC_ENOMEM;
}

/* ---- the public calls ------------------------------------------------------ */

AC_EXPORT int ac_work_submit(ac_runtime_t *rt, int loop, ac_handle_t tie,
			     ac_work_fn work, ac_work_done_fn done,
			     void *arg, uint64_t *id)
{
	struct ac__work *p;
	struct ac__witem *it;
	uint32_t idx;
	int dest, state, err;

	if (!rt || !work || !done ||
	    (dest = ac__loop_choice(rt, loop)) == AC_EINVAL)
		return AC_EINVAL;
	state = ac__rt_state(rt);
	if (state == AC__RT_NEW)
		return AC_ESTATE;
	if (state != AC__RT_RUNNING)
		return AC_ESHUTDOWN;
	p = &rt->work;
	if (tie != AC_HANDLE_NONE) {
		int owner = AC_HANDLE_LOOP(tie);

		if (owner >= rt->nloops || (dest >= 0 && dest != owner))
			return AC_EINVAL;
		if (!ac__handle_live(rt, tie))
			return AC_ESTALE;
		dest = owner;
	} else if (dest < 0) {
		dest = ac__on_loop_of(rt) ? ac__tls_loop->index
					  : ac__loop_next(rt);
	}

	pthread_mutex_lock(&p->lock);
	/* The pool's own flag, under its lock: a submit that read RUNNING
	 * just before the stop cannot queue behind the stop's sweep. */
	if (p->stopping) {
		err = AC_ESHUTDOWN;
		goto out;
	}
	if (!p->items && (err = make_table(p)))
		goto out;
	if (!p->free_head) {
		BUMP(p, full, 1);
		err = AC_EAGAIN;
		goto out;
	}
	idx = p->free_head - 1;
	it = &p->items[idx];
	p->free_head = it->next;
	it->state = WK_QUEUED;
	it->ran = 0;
	it->loop = dest;
	it->status = 0;
	it->tie = tie;
	it->work = work;
	it->done = done;
	it->arg = arg;
	q_push(p, idx);
	if ((err = maybe_spawn(rt))) {
		q_unlink(p, idx);
		it->next = p->free_head;
		p->free_head = idx + 1;
		it->state = WK_FREE;
		goto out;
	}
	ac__count(AC__K_WORK, 1);
	if (p->idle)
		pthread_cond_signal(&p->more);
	if (id)
		*id = item_id(p, it);
out:
	pthread_mutex_unlock(&p->lock);
	return err;
}

AC_EXPORT int ac_work_cancel(ac_runtime_t *rt, uint64_t id)
{
	struct ac__work *p;
	struct ac__witem *it;
	struct ac__msg m = {.kind = AC__MSG_WORK, .b = (void *)(uintptr_t)id};
	int32_t age;
	int err;

	if (!rt)
		return AC_EINVAL;
	p = &rt->work;
	pthread_mutex_lock(&p->lock);
	if (!(it = item_slot(p, id))) {
		err = AC_EINVAL;
		goto out;
	}
	/* Generations only grow (modulo 2^32): an older id completed; a
	 * newer one was never issued. */
	age = (int32_t)(it->gen - (uint32_t)(id >> 32));
	if (age != 0) {
		err = age > 0 ? AC_EALREADY : AC_EINVAL;
		goto out;
	}
	switch (it->state) {
	case WK_QUEUED:
		/* Post first, under the lock: if the mailbox refuses, the
		 * work stays queued where it was. The message cannot run
		 * before the state below is set: its delivery takes the
		 * lock. */
		if ((err = ac__mailbox_put(rt, it->loop, &m)))
			goto out;
		q_unlink(p, (uint32_t)id);
		it->state = WK_COMPLETING;
		it->status = AC_ECANCELED;
		BUMP(p, cancelled, 1);
		err = 0;
		break;
	case WK_RUNNING:
		err = AC_EBUSY;
		break;
	case WK_COMPLETING:
		err = it->ran ? AC_EBUSY : AC_EALREADY;
		break;
	default: /* FREE with this generation: never issued */
		err = AC_EINVAL;
	}
out:
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* ---- stop ------------------------------------------------------------------ */

void ac__work_stop(ac_runtime_t *rt)
{
	struct ac__work *p = &rt->work;
	uint32_t head, n;

	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	/* Queued work never starts: it completes with AC_ESHUTDOWN. */
	head = p->q_head;
	for (uint32_t i = head; i; i = p->items[i - 1].next) {
		struct ac__witem *it = &p->items[i - 1];

		it->state = WK_COMPLETING;
		it->status = AC_ESHUTDOWN;
		BUMP(p, cancelled, 1);
	}
	p->q_head = p->q_tail = 0;
	SET(p, queued, 0);
	pthread_cond_broadcast(&p->more);
	n = (uint32_t)p->nthreads;
	pthread_mutex_unlock(&p->lock);

	/* The swept items are ours until posted: nothing else moves an item
	 * out of COMPLETING but its message. Read each next first. */
	while (head) {
		struct ac__witem *it = &p->items[head - 1];
		uint64_t id = item_id(p, it);
		int loop = it->loop;

		head = it->next;
		post_completion(rt, loop, id);
	}
	/* Workers finish what they run, post it, find the queue empty and
	 * exit. The loops still run, so their posts go through. */
	for (uint32_t i = 0; i < n; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_lock(&p->lock);
	p->nthreads = 0;
	pthread_mutex_unlock(&p->lock);
}

void ac__work_free(ac_runtime_t *rt)
{
	struct ac__work *p = &rt->work;

	ac__free(AC__K_WORK, p->items);
	ac__free(AC__K_WORK, p->threads);
	p->items = NULL;
	p->threads = NULL;
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->lock);
}

/* ---- statistics ------------------------------------------------------------- */

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void ac__work_stats(ac_runtime_t *rt, ac_stats_t *total)
{
	struct ac__work *p = &rt->work;

	total->work_queued = LD(p->queued);
	total->work_running = LD(p->running);
	total->work_done = LD(p->done);
	total->work_failed = LD(p->failed);
	total->work_cancelled = LD(p->cancelled);
	total->work_full = LD(p->full);
}
