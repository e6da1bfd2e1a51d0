/*
 * handle.c: weak handles. Each loop owns a table of slots; a handle names
 * (loop, slot, generation). Only the owner loop allocates and releases its
 * slots, so the table needs no lock. Other threads read slots (the table
 * is a segtab: segments never move), and pin a connection with a hazard
 * pointer before they dereference it.
 */
#include "handle.h"
#include "addr.h"
#include "alloc.h"
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- the slot table ------------------------------------------------------ */

/* Generations start at 1: handle value 0 is never valid. */
static void slots_init(void *entries, size_t n)
{
	struct ac__slot *sl = entries;

	for (size_t i = 0; i < n; i++)
		sl[i].gen = 1;
}

void ac__htab_init(struct ac__htab *t)
{
	memset(t, 0, sizeof(*t));
	ac__segtab_init(&t->tab, sizeof(struct ac__slot), AC__HTAB_SHIFT,
			AC__HTAB_SEGMENTS, slots_init);
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
		if (t->nslots >= AC__MAX_SLOTS)
			return AC_ELIMIT;
		*idx = t->nslots;
		if (!(sl = ac__segtab_make(&t->tab, *idx)))
			return AC_ENOMEM;
		t->nslots++;
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
	ac__segtab_free(&t->tab);
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
	ac__info_shared(c, out); /* what a pin may read (intro.c) */
	ac__unpin(rec);
	return 0;
}
