/*
 * handle.c: weak handles. Each loop owns a table of slots; a handle names
 * (loop, slot, generation). Only the owner loop allocates and releases its
 * slots, so the table needs no lock. Other threads read slots, and pin a
 * connection with a hazard pointer before they dereference it.
 *
 * The table grows by segments that never move: segment s holds 1024 << s
 * slots, and a new one is published with a release store, so a reader that
 * sees a segment pointer also sees its zeroed slots.
 */
#include "internal.h"

#include <stdlib.h>

/* ---- the slot table ------------------------------------------------------ */

struct ac__slot *ac__htab_slot(struct ac__htab *t, uint32_t idx)
{
	unsigned s;
	uint32_t off;
	struct ac__slot *seg;

	ac__seg_locate(idx, AC__SEG_BASE_SHIFT, &s, &off);
	if (s >= AC__SEGMENTS)
		return NULL;
	/* Acquire pairs with the release in ac__htab_alloc. */
	seg = __atomic_load_n(&t->seg[s], __ATOMIC_ACQUIRE);
	return seg ? &seg[off] : NULL;
}

/* Owner loop. Takes a free slot; its generation names the new occupant. */
int ac__htab_alloc(struct ac__htab *t, uint32_t *idx, uint32_t *gen)
{
	struct ac__slot *sl;

	if (t->free_head) {
		*idx = t->free_head - 1;
		sl = ac__htab_slot(t, *idx);
		t->free_head = sl->next_free;
	} else {
		unsigned s;
		uint32_t off;

		if (t->nslots >= AC__MAX_SLOTS)
			return AC_ELIMIT;
		*idx = t->nslots;
		ac__seg_locate(*idx, AC__SEG_BASE_SHIFT, &s, &off);
		if (!t->seg[s]) {
			struct ac__slot *seg = ac__calloc(
				AC__K_OTHER, (size_t)1 << (AC__SEG_BASE_SHIFT + s),
				sizeof(*seg));
			if (!seg)
				return AC_ENOMEM;
			/* Generations start at 1: handle value 0 is never
			 * valid. Plain stores: not yet published. */
			for (size_t i = 0;
			     i < ((size_t)1 << (AC__SEG_BASE_SHIFT + s)); i++)
				seg[i].gen = 1;
			/* Release: the initialised slots are visible before
			 * the segment pointer. */
			__atomic_store_n(&t->seg[s], seg, __ATOMIC_RELEASE);
		}
		t->nslots++;
		sl = ac__htab_slot(t, *idx);
	}
	sl->next_free = 0;
	*gen = sl->gen;
	t->live++;
	ac__count(AC__K_HANDLE, 1);
	return 0;
}

/* Owner loop. Makes every handle to the slot stale, then frees the slot. */
void ac__htab_release(struct ac__htab *t, uint32_t idx)
{
	struct ac__slot *sl = ac__htab_slot(t, idx);
	uint32_t g = sl->gen + 1;

	if (g == 0) /* wrapped after 2^32 reuses: skip the invalid value */
		g = 1;
	/* Clear the pointer first, then bump the generation: a pinner that
	 * re-reads the slot after publishing its hazard sees NULL, or sees
	 * the old pointer and is protected by the hazard (the memory is
	 * retired only after this). Release orders both after the owner's
	 * last writes to the connection. */
	__atomic_store_n(&sl->conn, NULL, __ATOMIC_RELEASE);
	__atomic_store_n(&sl->gen, g, __ATOMIC_RELEASE);
	sl->next_free = t->free_head;
	t->free_head = idx + 1;
	t->live--;
	ac__count(AC__K_HANDLE, -1);
}

void ac__htab_destroy(struct ac__htab *t)
{
	ac__count(AC__K_HANDLE, -(int)t->live);
	t->live = 0;
	for (unsigned s = 0; s < AC__SEGMENTS; s++) {
		ac__free(AC__K_OTHER, t->seg[s]);
		t->seg[s] = NULL;
	}
}

ac_conn_t *ac__handle_local(ac__loop_t *loop, ac_handle_t h)
{
	struct ac__slot *sl;

	if (AC_HANDLE_LOOP(h) != loop->index || ac__handle_gen(h) == 0)
		return NULL;
	sl = ac__htab_slot(&loop->htab, ac__handle_slot(h));
	/* The owner is the only writer: plain reads are enough. */
	if (!sl || sl->gen != ac__handle_gen(h))
		return NULL;
	return sl->conn;
}

/* ---- pinning ---------------------------------------------------------------- */

/*
 * Any thread. Lock-free and allocation-free: publishes the connection in
 * the caller's hazard slot, then re-validates the slot. Returns the pinned
 * connection (release it with ac__unpin) or NULL for a stale handle.
 */
ac_conn_t *ac__pin(ac_runtime_t *rt, ck_hp_record_t *rec, ac_handle_t h)
{
	struct ac__slot *sl = ac__handle_slot_of(rt, h);
	ac_conn_t *c;

	if (!sl)
		return NULL;
	for (;;) {
		c = __atomic_load_n(&sl->conn, __ATOMIC_ACQUIRE);
		if (!c) {
			/* A retry may have published a hazard already: a
			 * stale one would hold a retired connection for as
			 * long as this thread lives. */
			ac__unpin(rec);
			return NULL;
		}
		/* Full fence after the store: the hazard is visible to a
		 * reclaimer before we re-read the slot (store-load order). */
		ck_hp_set_fence(rec, 0, c);
		if (__atomic_load_n(&sl->conn, __ATOMIC_ACQUIRE) == c)
			break;
	}
	/* The slot still held c after the hazard was visible, so c cannot be
	 * reclaimed until we unpin. The generation says whether c is the
	 * connection h names or a later occupant of a recycled slot. */
	if (__atomic_load_n(&sl->gen, __ATOMIC_ACQUIRE) != ac__handle_gen(h)) {
		ac__unpin(rec);
		return NULL;
	}
	return c;
}

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

void ac__hp_destroy_cb(void *o)
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
struct ac__tls_ctx {
	struct ac__tls_ctx *next;
	ac_runtime_t *rt;
	uint64_t rt_id;
	struct ac__tctx *ctx;
};

struct ac__live_rt {
	struct ac__live_rt *next;
	uint64_t id;
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ac__live_rt *live_rts; /* under live_lock */
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key;
static __thread struct ac__tls_ctx *tls_ctx;

static bool rt_alive_locked(uint64_t id)
{
	for (struct ac__live_rt *r = live_rts; r; r = r->next)
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

static void tls_exit(void *p)
{
	struct ac__tls_ctx *e = p, *next;

	pthread_mutex_lock(&live_lock);
	for (; e; e = next) {
		next = e->next;
		if (rt_alive_locked(e->rt_id)) {
			tctx_drain(e->ctx);
			pthread_mutex_lock(&e->rt->lock);
			e->ctx->in_use = false;
			pthread_mutex_unlock(&e->rt->lock);
		}
		ac__free(AC__K_OTHER, e);
	}
	pthread_mutex_unlock(&live_lock);
	tls_ctx = NULL;
}

static void tls_init(void)
{
	pthread_key_create(&tls_key, tls_exit);
}

int ac__hp_runtime_born(ac_runtime_t *rt)
{
	struct ac__live_rt *r = ac__malloc(AC__K_OTHER, sizeof(*r));

	if (!r)
		return AC_ENOMEM;
	r->id = rt->id;
	pthread_mutex_lock(&live_lock);
	r->next = live_rts;
	live_rts = r;
	pthread_mutex_unlock(&live_lock);
	return 0;
}

void ac__hp_runtime_gone(ac_runtime_t *rt)
{
	struct ac__live_rt **pp, *r;

	pthread_mutex_lock(&live_lock);
	for (pp = &live_rts; (r = *pp); pp = &r->next)
		if (r->id == rt->id) {
			*pp = r->next;
			ac__free(AC__K_OTHER, r);
			break;
		}
	pthread_mutex_unlock(&live_lock);

	/* Forget this thread's entry now, so its memory is not held until
	 * the thread exits. Other threads' entries go at their exit. */
	for (struct ac__tls_ctx **ep = &tls_ctx, *e; (e = *ep);)
		if (e->rt_id == rt->id) {
			*ep = e->next;
			ac__free(AC__K_OTHER, e);
		} else {
			ep = &e->next;
		}
	pthread_setspecific(tls_key, tls_ctx);
}

void ac__tctx_init(ac_runtime_t *rt, struct ac__tctx *x)
{
	ck_hp_register(&rt->hp, &x->hp, x->hp_ptrs);
	ck_epoch_register(&rt->epoch, &x->ep, NULL);
}

/* A free record pair of rt's, or a new one. */
static struct ac__tctx *tctx_take(ac_runtime_t *rt)
{
	struct ac__tctx *x;

	pthread_mutex_lock(&rt->lock);
	for (x = rt->tctxs; x && x->in_use; x = x->next)
		;
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
	x->next = rt->tctxs;
	rt->tctxs = x;
	pthread_mutex_unlock(&rt->lock);
	return x;
}

/* Slow path of ac__tctx: find or borrow this thread's records. */
static struct ac__tctx *foreign_tctx(ac_runtime_t *rt)
{
	struct ac__tls_ctx *e;

	for (e = tls_ctx; e; e = e->next)
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
	e->next = tls_ctx;
	tls_ctx = e;
	pthread_setspecific(tls_key, tls_ctx);
	return e->ctx;
}

struct ac__tctx *ac__tctx(ac_runtime_t *rt)
{
	ac__loop_t *loop = ac__tls_loop;

	if (loop && loop->rt == rt)
		return &loop->ctx;
	if (tls_ctx && tls_ctx->rt == rt && tls_ctx->rt_id == rt->id)
		return tls_ctx->ctx;
	return foreign_tctx(rt);
}

void ac__tctx_reclaim_all(ac_runtime_t *rt)
{
	/* No thread reads any more: reclaim without waiting. Every record
	 * first, since a hazard scan reads them all. */
	for (int i = 0; rt->loops && i < rt->nloops; i++)
		if (rt->loops[i]) {
			ck_hp_purge(&rt->loops[i]->ctx.hp);
			ck_epoch_reclaim(&rt->loops[i]->ctx.ep);
		}
	for (struct ac__tctx *x = rt->tctxs; x; x = x->next) {
		ck_hp_purge(&x->hp);
		ck_epoch_reclaim(&x->ep);
	}
}

AC_EXPORT int ac_handle_info(ac_runtime_t *rt, ac_handle_t h,
			     ac_conn_info_t *out)
{
	struct ac__facts_copy f;
	ck_hp_record_t *rec;
	ac_conn_t *c;

	if (!rt || !out)
		return AC_EINVAL;
	if (!(rec = ac__hp_record(rt)))
		return AC_ENOMEM;
	if (!(c = ac__pin(rt, rec, h)))
		return AC_ESTALE;
	ac__facts_get(c, &f);
	memset(out, 0, sizeof(*out));
	out->loop = AC_HANDLE_LOOP(h);
	out->family = f.family;
	out->opened_ms = f.opened_ms;
	out->bytes_in = __atomic_load_n(&c->bytes_in, __ATOMIC_RELAXED);
	out->bytes_out = __atomic_load_n(&c->bytes_out, __ATOMIC_RELAXED);
	ac__unpin(rec);
	if (f.family == AF_UNIX) {
		snprintf(out->peer_str, sizeof(out->peer_str), "unix");
	} else if (f.peer_len) {
		out->peer_len = f.peer_len;
		memcpy(&out->peer, &f.peer, f.peer_len);
		ac__addr_format((const struct sockaddr *)&f.peer, f.peer_len,
				out->peer_str, sizeof(out->peer_str));
	}
	return 0;
}
