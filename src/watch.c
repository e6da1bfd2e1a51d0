/*
 * watch.c: watchers, the C form of a weakref callback.
 *
 * A watch is a slot in a per-runtime table; its id is (generation, index),
 * so a stale id is recognised, never dereferenced. The slot's state word
 * (generation << 32 | state) moves by compare-and-swap:
 *
 *   ARMED ──fire (one thread wins)──► FIRING ──fn returned──► FREE, gen+1
 *     └────────ac_unwatch───────────────────────────────────► FREE, gen+1
 *
 * so fn runs at most once, and exactly once unless cancelled first. Only
 * the thread that won the move to FIRING writes the slot's firer (after
 * winning), and the release back to FREE clears it first: a stale fire
 * that loses the compare-and-swap never touches the slot, so ac_unwatch
 * can trust firer to say whether it is being called from inside fn. The
 * connection keeps only the ids of its watches; when it closes it posts a
 * FIRE message with each id to the loop that watch names. A cancelled
 * watch's id simply fails the compare-and-swap there.
 *
 * Slots never move or go away while the runtime lives (segments, like the
 * handle table). Allocating and freeing a slot takes the table's mutex: a
 * short critical section on a path that is not hot.
 */
#include "watch.h"
#include "alloc.h"
#include "conn.h"
#include "handle.h"
#include "loop.h"
#include "runtime.h"
#include "segtab.h"
#include "wait.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#define AC__WSEG_SHIFT 8 /* segment s holds 256 << s slots */
#define AC__WSEGMENTS 24 /* 2^32 watches */

enum { W_FREE = 0, W_ARMED = 1, W_FIRING = 2 };

struct ac__wslot {
	uint64_t word;     /* gen << 32 | state; atomic */
	ac_watch_fn fn;
	void *arg;
	ac_handle_t h;
	int loop;          /* where fn runs; atomic (see watch_loop) */
	uint32_t next_free; /* index + 1; under the table lock */
	uintptr_t firer;   /* thread running fn, while FIRING; 0 otherwise
			      or until the winner has stored it; atomic */
};

/* A token unique to the calling thread while it lives: the address of a
 * thread-local. */
static __thread char thread_token;

static uintptr_t self_token(void)
{
	return (uintptr_t)&thread_token;
}

struct ac__wtab {
	pthread_mutex_t lock; /* the writer: nslots, free_head, new segments */
	struct ac__segtab tab; /* of struct ac__wslot */
	uint32_t nslots;
	uint32_t free_head;
};

static uint32_t id_index(uint64_t id) { return (uint32_t)id; }
static uint32_t id_gen(uint64_t id) { return (uint32_t)(id >> 32); }
static uint64_t word(uint32_t gen, int state)
{
	return (uint64_t)gen << 32 | (uint64_t)state;
}

static struct ac__wslot *wslot(struct ac__wtab *t, uint32_t idx)
{
	return ac__segtab_at(&t->tab, idx);
}

/* Generations start at 1: an id is never 0. */
static void wslots_init(void *entries, size_t n)
{
	struct ac__wslot *sl = entries;

	for (size_t i = 0; i < n; i++)
		sl[i].word = word(1, W_FREE);
}

int ac__wtab_new(ac_runtime_t *rt)
{
	struct ac__wtab *t = ac__calloc(AC__K_OTHER, 1, sizeof(*t));

	if (!t)
		return AC_ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	ac__segtab_init(&t->tab, sizeof(struct ac__wslot), AC__WSEG_SHIFT,
			AC__WSEGMENTS, wslots_init);
	rt->watches = t;
	return 0;
}

void ac__wtab_free(ac_runtime_t *rt)
{
	struct ac__wtab *t = rt->watches;

	if (!t)
		return;
	/* Watches still armed here were never fired nor cancelled: their
	 * connections' loops were never started. Uncount them. */
	for (uint32_t i = 0; i < t->nslots; i++)
		if ((wslot(t, i)->word & 3) != W_FREE)
			ac__count(AC__K_WATCH, -1);
	ac__segtab_free(&t->tab);
	pthread_mutex_destroy(&t->lock);
	ac__free(AC__K_OTHER, t);
	rt->watches = NULL;
}

/* Any thread: takes a slot and arms it. */
static int wslot_alloc(struct ac__wtab *t, ac_watch_fn fn, void *arg,
		       ac_handle_t h, int loop, uint64_t *id)
{
	struct ac__wslot *sl;
	uint32_t idx, gen;

	pthread_mutex_lock(&t->lock);
	if (t->free_head) {
		idx = t->free_head - 1;
		sl = wslot(t, idx);
		t->free_head = sl->next_free;
	} else {
		idx = t->nslots;
		if (idx >= ac__segtab_capacity(&t->tab)) {
			pthread_mutex_unlock(&t->lock);
			return AC_ELIMIT;
		}
		if (!(sl = ac__segtab_make(&t->tab, idx))) {
			pthread_mutex_unlock(&t->lock);
			return AC_ENOMEM;
		}
		t->nslots++;
	}
	pthread_mutex_unlock(&t->lock);

	/* Atomic, though the value cannot change: a FIRE message or an
	 * ac_unwatch holding a stale id of this slot may be failing its
	 * compare-and-swap on the word right now. */
	gen = (uint32_t)(__atomic_load_n(&sl->word, __ATOMIC_RELAXED) >> 32);
	sl->fn = fn;
	sl->arg = arg;
	sl->h = h;
	__atomic_store_n(&sl->loop, loop, __ATOMIC_RELAXED);
	/* Release: whoever sees ARMED sees fn, arg, h and loop. */
	__atomic_store_n(&sl->word, word(gen, W_ARMED), __ATOMIC_RELEASE);
	ac__count(AC__K_WATCH, 1);
	*id = (uint64_t)gen << 32 | idx;
	return 0;
}

/* Any thread, the state's owner: frees a slot taken out of ARMED/FIRING. */
static void wslot_release(struct ac__wtab *t, struct ac__wslot *sl,
			  uint32_t idx, uint32_t gen)
{
	uint32_t next = gen + 1 ? gen + 1 : 1;

	/* Cleared before the slot can be reused (the release below orders
	 * it): a later generation's firer starts at 0. */
	__atomic_store_n(&sl->firer, 0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&t->lock);
	__atomic_store_n(&sl->word, word(next, W_FREE), __ATOMIC_RELEASE);
	sl->next_free = t->free_head;
	t->free_head = idx + 1;
	pthread_mutex_unlock(&t->lock);
	ac__count(AC__K_WATCH, -1);
}

/* Any thread: runs watch id's fn with reason, once. */
static void watch_fire(ac_runtime_t *rt, uint64_t id, int reason)
{
	struct ac__wtab *t = rt->watches;
	struct ac__wslot *sl = wslot(t, id_index(id));
	uint64_t expect = word(id_gen(id), W_ARMED);

	if (!sl)
		return;
	/* Acquire: we read fn/arg after winning. A loser (cancelled, or
	 * already fired) leaves the slot alone. */
	if (!__atomic_compare_exchange_n(&sl->word, &expect,
					 word(id_gen(id), W_FIRING), false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	/* Release pairs with ac_unwatch's acquire load of firer. Until this
	 * store a waiter sees 0, which is never its own token: it waits. */
	__atomic_store_n(&sl->firer, self_token(), __ATOMIC_RELEASE);
	sl->fn(sl->h, reason, sl->arg);
	wslot_release(t, sl, id_index(id), id_gen(id));
}

/* Posts FIRE(id, reason) to the watch's loop; fires here if that fails. */
static void post_fire(ac_runtime_t *rt, uint64_t id, int loop, int reason)
{
	struct ac__msg m = {.kind = AC__MSG_FIRE, .i = reason,
			    .b = (void *)(uintptr_t)id};

	if (ac__mailbox_put(rt, loop, &m))
		watch_fire(rt, id, reason); /* out of memory: run now */
}

AC_EXPORT int ac_watch(ac_runtime_t *rt, ac_handle_t h, int loop,
		       ac_watch_fn fn, void *arg, uint64_t *id)
{
	struct ac__msg m = {.h = h};
	uint64_t wid;
	int err;

	if (!rt || !fn || h == AC_HANDLE_NONE ||
	    (loop = ac__loop_choice(rt, loop)) == AC_EINVAL)
		return AC_EINVAL;
	if (ac__rt_state(rt) == AC__RT_STOPPED)
		return AC_ESHUTDOWN;
	if (loop < 0)
		loop = ac__on_loop_of(rt) ? ac__tls_loop->index : 0;
	if ((err = wslot_alloc(rt->watches, fn, arg, h, loop, &wid)))
		return err;
	m.b = (void *)(uintptr_t)wid;
	if (ac__handle_live(rt, h)) {
		/* The owner loop decides: watch, or fire at once if the
		 * connection closed meanwhile. */
		m.kind = AC__MSG_WATCH;
		err = ac__mailbox_put(rt, AC_HANDLE_LOOP(h), &m);
	} else {
		m.kind = AC__MSG_FIRE;
		m.i = AC_ESTALE;
		err = ac__mailbox_put(rt, loop, &m);
	}
	if (err) {
		struct ac__wslot *sl = wslot(rt->watches, id_index(wid));
		wslot_release(rt->watches, sl, id_index(wid), id_gen(wid));
		return err;
	}
	if (id)
		*id = wid;
	return 0;
}

AC_EXPORT int ac_unwatch(ac_runtime_t *rt, uint64_t id)
{
	struct ac__wslot *sl;
	unsigned backoff = 0;

	if (!rt || !(sl = wslot(rt->watches, id_index(id))) ||
	    id_gen(id) == 0)
		return AC_EINVAL;
	for (;;) {
		uint64_t w = __atomic_load_n(&sl->word, __ATOMIC_ACQUIRE);

		/* Generations only grow (modulo 2^32): an older one ran or
		 * was cancelled; a newer one was never issued. */
		int32_t age = (int32_t)((uint32_t)(w >> 32) - id_gen(id));

		if (age > 0)
			return AC_EALREADY;
		if (age < 0)
			return AC_EINVAL;
		switch ((int)(w & 3)) {
		case W_ARMED:
			if (__atomic_compare_exchange_n(&sl->word, &w,
							word(id_gen(id), W_FIRING),
							false, __ATOMIC_ACQ_REL,
							__ATOMIC_ACQUIRE)) {
				wslot_release(rt->watches, sl, id_index(id),
					      id_gen(id));
				return 0;
			}
			break;
		case W_FIRING:
			/* fn is running. From inside fn itself, waiting would
			 * deadlock; anywhere else, wait for it to return. */
			if (__atomic_load_n(&sl->firer, __ATOMIC_ACQUIRE) ==
			    self_token())
				return AC_EALREADY;
			ac__backoff_wait(&backoff);
			break;
		default: /* FREE with our generation: never issued */
			return AC_EINVAL;
		}
	}
}

/* ---- the owner loop's side ------------------------------------------------ */

/*
 * Where the watch in sl runs. An owner loop asks with an id that may have
 * been cancelled meanwhile, its slot freed and armed again by another
 * thread: then it reads the new watch's loop, and the FIRE it posts there
 * with the old id just fails its compare-and-swap. So any value will do,
 * but the read must be atomic, as the write is.
 */
static int watch_loop(const struct ac__wslot *sl)
{
	return __atomic_load_n(&sl->loop, __ATOMIC_RELAXED);
}

static bool id_live(struct ac__wtab *t, uint64_t id)
{
	struct ac__wslot *sl = wslot(t, id_index(id));

	return sl && (uint32_t)(__atomic_load_n(&sl->word, __ATOMIC_ACQUIRE) >>
				32) == id_gen(id);
}

/* WATCH, on the owner loop: record the watch, or fire it at once if the
 * connection is already gone. */
void ac__watch_deliver_watch(ac__loop_t *loop, struct ac__msg *m)
{
	ac_runtime_t *rt = loop->rt;
	ac_conn_t *c = ac__handle_local(loop, m->h);
	uint64_t id = (uint64_t)(uintptr_t)m->b;
	struct ac__wslot *sl = wslot(rt->watches, id_index(id));
	struct ac__watchlist *w;
	uint32_t n = 0;

	if (!c || c->state == AC__C_DEAD) {
		post_fire(rt, id, watch_loop(sl), AC_ESTALE);
		return;
	}
	/* Drop ids that were cancelled since: a connection watched and
	 * unwatched over and over does not grow its list. */
	if ((w = c->watches)) {
		for (uint32_t i = 0; i < w->n; i++)
			if (id_live(rt->watches, w->id[i]))
				w->id[n++] = w->id[i];
		w->n = n;
	}
	if (!w || n == w->cap) {
		uint32_t cap = w && w->cap ? w->cap * 2 : 2;

		if (!(w = ac__realloc(AC__K_OTHER, w,
				      sizeof(*w) + cap * sizeof(w->id[0])))) {
			post_fire(rt, id, watch_loop(sl), AC_ENOMEM);
			return;
		}
		w->cap = cap;
		c->watches = w;
	}
	w->id[n++] = id;
	w->n = n;
}

void ac__watch_settle_watch(ac__loop_t *loop, struct ac__msg *m)
{
	watch_fire(loop->rt, (uint64_t)(uintptr_t)m->b, AC_ESHUTDOWN);
}

/* FIRE: on the watch's loop, or on the stopping thread. */
void ac__watch_deliver_fire(ac__loop_t *loop, struct ac__msg *m)
{
	watch_fire(loop->rt, (uint64_t)(uintptr_t)m->b, m->i);
}

void ac__watch_conn_closed(ac_conn_t *c)
{
	ac_runtime_t *rt = c->loop->rt;

	for (uint32_t i = 0; c->watches && i < c->watches->n; i++) {
		uint64_t id = c->watches->id[i];
		struct ac__wslot *sl = wslot(rt->watches, id_index(id));

		if (id_live(rt->watches, id))
			post_fire(rt, id, watch_loop(sl), c->reason);
	}
	ac__free(AC__K_OTHER, c->watches);
	c->watches = NULL;
}
