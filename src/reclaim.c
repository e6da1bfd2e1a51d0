/*
 * reclaim.c: hazard-pointer and epoch records, per thread and runtime
 * (reclaim.h).
 */
#include "reclaim.h"
#include "alloc.h"
#include "loop.h"
#include "runtime.h"

#include <pthread.h>

/*
 * Retires o: destroy(o) runs once no hazard pointer holds it. The caller
 * has already unpublished o (cleared the slot that led to it); the fence
 * orders that store before ck_hp's reads of the other threads' hazard
 * pointers, pairing with the full fence a pinner makes between publishing
 * its hazard and re-reading the slot (ck_hp_set_fence in ac__pin): either
 * the pinner sees the slot cleared, or this scan sees its hazard.
 * ck_hp_free does not fence by itself.
 */
void ac__hp_retire(ck_hp_record_t *rec, struct ac__hpobj *o,
		   void (*destroy)(struct ac__hpobj *o))
{
	o->destroy = destroy;
	ck_pr_fence_memory();
	ck_hp_free(rec, &o->hazard, o, o);
}

/* ck_hp's callback for everything retired through ac__hp_retire. */
static void hp_destroy_cb(void *o)
{
	((struct ac__hpobj *)o)->destroy(o);
}

/* ---- reclamation records for threads that are not loops ------------------
 *
 * A foreign thread borrows a record pair (struct ac__tctx) from the
 * runtime on first use, remembers it in a thread-local list, and gives it
 * back when it exits: what it retired is reclaimed first, then the pair
 * is marked free for the next thread (the records stay registered with
 * ck; an idle hazard record holds nothing, an idle epoch record is not in
 * a section). The memory belongs to the runtime. A thread may outlive a
 * runtime, so the exit hook first checks, under live_lock, that the
 * runtime (by its never-reused id) still exists.
 */
/* This thread's records, one entry per runtime it has used. */
struct ac__tls_ctx {
	SLIST_ENTRY(ac__tls_ctx) next;
	ac_runtime_t *rt;
	uint64_t rt_id;
	struct ac__tctx *ctx;
};
SLIST_HEAD(ac__tls_ctx_list, ac__tls_ctx);

/* The runtimes that exist, by id: a thread may outlive a runtime. */
struct ac__live_rt {
	SLIST_ENTRY(ac__live_rt) next;
	uint64_t id;
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static SLIST_HEAD(, ac__live_rt) live_rts; /* under live_lock */
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key;
static __thread struct ac__tls_ctx_list tls_ctxs;

static bool rt_alive_locked(uint64_t id)
{
	struct ac__live_rt *r;

	SLIST_FOREACH(r, &live_rts, next)
		if (r->id == id)
			return true;
	return false;
}

/* Reclaims what x retired; no thread may be using x. */
static void tctx_drain(struct ac__tctx *x)
{
	/* The record goes back to the pool: it must protect nothing. */
	for (int i = 0; i < AC__HP_DEGREE; i++)
		__atomic_store_n(&x->hp.pointers[i], NULL, __ATOMIC_RELEASE);
	/* Readers hold hazards and epoch sections only briefly, so both
	 * waits end soon. */
	ck_hp_purge(&x->hp);
	ck_epoch_barrier(&x->ep);
}

/* pthread key destructor: the thread is exiting. p is the first entry of
 * its list (the key holds it only to be called). */
static void tls_exit(void *p)
{
	struct ac__tls_ctx *e;

	pthread_mutex_lock(&live_lock);
	while ((e = SLIST_FIRST(&tls_ctxs))) {
		SLIST_REMOVE_HEAD(&tls_ctxs, next);
		if (rt_alive_locked(e->rt_id)) {
			tctx_drain(e->ctx);
			pthread_mutex_lock(&e->rt->lock);
			e->ctx->in_use = false;
			pthread_mutex_unlock(&e->rt->lock);
		}
		ac__free(AC__K_OTHER, e);
	}
	pthread_mutex_unlock(&live_lock);
}

static void tls_init(void)
{
	pthread_key_create(&tls_key, tls_exit);
}

int ac__reclaim_init(ac_runtime_t *rt)
{
	struct ac__live_rt *r = ac__malloc(AC__K_OTHER, sizeof(*r));

	ck_hp_init(&rt->reclaim.hp, AC__HP_DEGREE, AC__HP_THRESHOLD,
		   hp_destroy_cb);
	ck_epoch_init(&rt->reclaim.epoch);
	SLIST_INIT(&rt->reclaim.foreign);
	if (!r)
		return AC_ENOMEM;
	r->id = rt->id;
	pthread_mutex_lock(&live_lock);
	SLIST_INSERT_HEAD(&live_rts, r, next);
	pthread_mutex_unlock(&live_lock);
	return 0;
}

void ac__reclaim_runtime_gone(ac_runtime_t *rt)
{
	struct ac__live_rt *r;
	struct ac__tls_ctx *e, *next;

	pthread_mutex_lock(&live_lock);
	SLIST_FOREACH(r, &live_rts, next)
		if (r->id == rt->id) {
			SLIST_REMOVE(&live_rts, r, ac__live_rt, next);
			ac__free(AC__K_OTHER, r);
			break;
		}
	pthread_mutex_unlock(&live_lock);

	/* Forget this thread's entry now, so its memory is not held until
	 * the thread exits. Other threads' entries go at their exit. */
	for (e = SLIST_FIRST(&tls_ctxs); e; e = next) {
		next = SLIST_NEXT(e, next);
		if (e->rt_id == rt->id) {
			SLIST_REMOVE(&tls_ctxs, e, ac__tls_ctx, next);
			ac__free(AC__K_OTHER, e);
			/* The key exists (this thread made an entry): keep
			 * its value non-NULL exactly while there are some. */
			pthread_setspecific(tls_key, SLIST_FIRST(&tls_ctxs));
		}
	}
}

void ac__tctx_init(ac_runtime_t *rt, struct ac__tctx *x)
{
	ck_hp_register(&rt->reclaim.hp, &x->hp, x->hp_ptrs);
	ck_epoch_register(&rt->reclaim.epoch, &x->ep, NULL);
}

/* A free record pair of rt's, or a new one. */
static struct ac__tctx *tctx_take(ac_runtime_t *rt)
{
	struct ac__tctx *x;

	pthread_mutex_lock(&rt->lock);
	SLIST_FOREACH(x, &rt->reclaim.foreign, next)
		if (!x->in_use)
			break;
	if (x)
		x->in_use = true;
	pthread_mutex_unlock(&rt->lock);
	if (x)
		return x;
	if (!(x = ac__memalign(AC__K_OTHER, AC__CACHELINE, sizeof(*x))))
		return NULL;
	memset(x, 0, sizeof(*x));
	ac__tctx_init(rt, x);
	x->in_use = true;
	pthread_mutex_lock(&rt->lock);
	SLIST_INSERT_HEAD(&rt->reclaim.foreign, x, next);
	pthread_mutex_unlock(&rt->lock);
	return x;
}

/* Slow path of ac__tctx: find or borrow this thread's records. */
static struct ac__tctx *foreign_tctx(ac_runtime_t *rt)
{
	struct ac__tls_ctx *e;

	SLIST_FOREACH(e, &tls_ctxs, next)
		if (e->rt == rt && e->rt_id == rt->id)
			return e->ctx;
	pthread_once(&tls_once, tls_init);
	if (!(e = ac__malloc(AC__K_OTHER, sizeof(*e))))
		return NULL;
	if (!(e->ctx = tctx_take(rt))) {
		ac__free(AC__K_OTHER, e);
		return NULL;
	}
	e->rt = rt;
	e->rt_id = rt->id;
	SLIST_INSERT_HEAD(&tls_ctxs, e, next);
	/* Any non-NULL value: the key exists for its destructor. */
	pthread_setspecific(tls_key, e);
	return e->ctx;
}

struct ac__tctx *ac__tctx(ac_runtime_t *rt)
{
	ac__loop_t *loop = ac__tls_loop;
	struct ac__tls_ctx *e;

	if (loop && loop->rt == rt)
		return &loop->ctx;
	e = SLIST_FIRST(&tls_ctxs);
	if (e && e->rt == rt && e->rt_id == rt->id)
		return e->ctx;
	return foreign_tctx(rt);
}

void ac__reclaim_all(ac_runtime_t *rt)
{
	struct ac__tctx *x;

	/* No thread reads any more: reclaim without waiting. Every record
	 * first, since a hazard scan reads them all; then the foreign
	 * records themselves. */
	for (int i = 0; rt->loops && i < rt->nloops; i++)
		if (rt->loops[i]) {
			ck_hp_purge(&rt->loops[i]->ctx.hp);
			ck_epoch_reclaim(&rt->loops[i]->ctx.ep);
		}
	SLIST_FOREACH(x, &rt->reclaim.foreign, next) {
		ck_hp_purge(&x->hp);
		ck_epoch_reclaim(&x->ep);
	}
	while ((x = SLIST_FIRST(&rt->reclaim.foreign))) {
		SLIST_REMOVE_HEAD(&rt->reclaim.foreign, next);
		ac__free(AC__K_OTHER, x);
	}
}
