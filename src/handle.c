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
		if (!c)
			return NULL;
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

/* Retires o: it is destroyed once no hazard pointer holds it. */
void ac__hp_retire(ck_hp_record_t *rec, struct ac__hpobj *o, int kind)
{
	o->kind = kind;
	ck_hp_free(rec, &o->hazard, o, o);
}

/* ck_hp's destroy callback for everything retired through ac__hp_retire.
 * A connection is poisoned first, so that a use after free is loud even
 * without a sanitizer (the pin tests check the connection's handle field,
 * which poisoning makes wrong). */
void ac__hp_destroy_cb(void *p)
{
	switch (((struct ac__hpobj *)p)->kind) {
	case AC__HP_CONN:
		memset(p, 0xdd, sizeof(ac_conn_t));
		ac__free(AC__K_CONN, p);
		break;
	case AC__HP_REGNODE:
		ac__regnode_destroy(p);
		break;
	case AC__HP_REGTABLE:
		ac__regtable_destroy(p);
		break;
	}
}

/* ---- hazard records for threads that are not loops ---------------------- *
 *
 * A foreign thread gets a record from the runtime on first use, remembers it
 * in a thread-local list, and hands it back (ck_hp_unregister, so another
 * thread can recycle it) when it exits. The record's memory belongs to the
 * runtime. A thread may outlive a runtime, so the exit hook first checks,
 * under live_lock, that the runtime (by its never-reused id) still exists.
 */
struct ac__tls_hp {
	struct ac__tls_hp *next;
	ac_runtime_t *rt;
	uint64_t rt_id;
	ck_hp_record_t *rec;
};

struct ac__live_rt {
	struct ac__live_rt *next;
	uint64_t id;
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ac__live_rt *live_rts; /* under live_lock */
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key;
static __thread struct ac__tls_hp *tls_hp;

static bool rt_alive_locked(uint64_t id)
{
	for (struct ac__live_rt *r = live_rts; r; r = r->next)
		if (r->id == id)
			return true;
	return false;
}

static void tls_exit(void *p)
{
	struct ac__tls_hp *e = p, *next;

	pthread_mutex_lock(&live_lock);
	for (; e; e = next) {
		next = e->next;
		if (rt_alive_locked(e->rt_id)) {
			/* ck_hp_unregister forgets the record's pending list:
			 * reclaim what this thread retired first (readers hold
			 * hazards only briefly, so this ends soon). */
			ck_hp_purge(e->rec);
			ck_hp_unregister(e->rec);
		}
		ac__free(AC__K_OTHER, e);
	}
	pthread_mutex_unlock(&live_lock);
	tls_hp = NULL;
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
	for (struct ac__tls_hp **ep = &tls_hp, *e; (e = *ep);)
		if (e->rt_id == rt->id) {
			*ep = e->next;
			ac__free(AC__K_OTHER, e);
		} else {
			ep = &e->next;
		}
	pthread_setspecific(tls_key, tls_hp);
}

/* Slow path of ac__hp_record: find or make this thread's record. */
static ck_hp_record_t *foreign_record(ac_runtime_t *rt)
{
	struct ac__tls_hp *e, **ep;
	ck_hp_record_t *rec;

	for (ep = &tls_hp; (e = *ep); ep = &e->next) {
		if (e->rt == rt && e->rt_id == rt->id)
			return e->rec;
	}
	pthread_once(&tls_once, tls_init);
	e = ac__malloc(AC__K_OTHER, sizeof(*e));
	if (!e)
		return NULL;
	rec = ck_hp_recycle(&rt->hp);
	if (!rec) {
		struct ac__hprec *r;

		if (!(r = ac__memalign(AC__K_OTHER, AC__CACHELINE, sizeof(*r)))) {
			ac__free(AC__K_OTHER, e);
			return NULL;
		}
		memset(r, 0, sizeof(*r));
		pthread_mutex_lock(&rt->lock);
		r->next = rt->foreign_recs;
		rt->foreign_recs = r;
		pthread_mutex_unlock(&rt->lock);
		ck_hp_register(&rt->hp, &r->rec, r->ptrs);
		rec = &r->rec;
	}
	e->rt = rt;
	e->rt_id = rt->id;
	e->rec = rec;
	e->next = tls_hp;
	tls_hp = e;
	pthread_setspecific(tls_key, tls_hp);
	return rec;
}

/*
 * Any thread. The calling thread's hazard record for rt: a loop's own, or a
 * foreign thread's (made on first use: the only allocation on this path).
 */
ck_hp_record_t *ac__hp_record(ac_runtime_t *rt)
{
	ac__loop_t *loop = ac__tls_loop;

	if (loop && loop->rt == rt)
		return &loop->hp;
	if (tls_hp && tls_hp->rt == rt && tls_hp->rt_id == rt->id)
		return tls_hp->rec;
	return foreign_record(rt);
}

AC_EXPORT int ac_handle_info(ac_runtime_t *rt, ac_handle_t h,
			     ac_conn_info_t *out)
{
	ck_hp_record_t *rec;
	ac_conn_t *c;

	if (!rt || !out)
		return AC_EINVAL;
	if (!(rec = ac__hp_record(rt)))
		return AC_ENOMEM;
	if (!(c = ac__pin(rt, rec, h)))
		return AC_ESTALE;
	memset(out, 0, sizeof(*out));
	out->loop = AC_HANDLE_LOOP(h);
	out->family = c->family;
	out->opened_ms = c->opened_ms;
	out->bytes_in = __atomic_load_n(&c->bytes_in, __ATOMIC_RELAXED);
	out->bytes_out = __atomic_load_n(&c->bytes_out, __ATOMIC_RELAXED);
	if (c->family == AF_UNIX) {
		snprintf(out->peer_str, sizeof(out->peer_str), "unix");
	} else {
		out->peer_len = ac__conn_peer_len(c);
		memcpy(&out->peer, &c->peer, out->peer_len);
		ac__addr_format((const struct sockaddr *)&c->peer,
				out->peer_len, out->peer_str,
				sizeof(out->peer_str));
	}
	ac__unpin(rec);
	return 0;
}
