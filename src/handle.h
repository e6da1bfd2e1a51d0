/*
 * handle.h: weak handles across threads (handle.c). Slots never move or go
 * away while the runtime lives, so reading one needs no pin; dereferencing
 * the connection it holds does.
 */
#ifndef AC_HANDLE_H
#define AC_HANDLE_H

#include "common.h"

#include "htab.h"
#include "loop.h"
#include "runtime.h"

/* Any thread. The slot h names, or NULL when h cannot name a slot of rt. */
static inline struct ac__slot *ac__handle_slot_of(ac_runtime_t *rt,
						  ac_handle_t h)
{
	unsigned l = (unsigned)AC_HANDLE_LOOP(h);
	if (AC__UNLIKELY(l >= (unsigned)rt->nloops || ac__handle_gen(h) == 0))
		return NULL;
	return ac__htab_slot(&rt->loops[l]->htab, ac__handle_slot(h));
}

/* Any thread. Whether h still names an open connection (a snapshot). */
static inline bool ac__handle_live(ac_runtime_t *rt, ac_handle_t h)
{
	struct ac__slot *s = ac__handle_slot_of(rt, h);
	return s && __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) ==
			    ac__handle_gen(h) &&
	       __atomic_load_n(&s->conn, __ATOMIC_ACQUIRE) != NULL;
}

/* Any thread, lock-free, allocation-free: the live connection h names,
 * protected by rec's hazard pointer until ac__unpin; NULL when stale. */
ac_conn_t *ac__pin(ac_runtime_t *rt, ck_hp_record_t *rec, ac_handle_t h);

static inline void ac__unpin(ck_hp_record_t *rec)
{
	/* Release: our reads of the pinned object happen before a reclaimer
	 * can see the hazard cleared. */
	__atomic_store_n(&rec->pointers[0], NULL, __ATOMIC_RELEASE);
}

/* Owner loop only: the live connection h names, or NULL. */
ac_conn_t *ac__handle_local(ac__loop_t *loop, ac_handle_t h);

#endif /* AC_HANDLE_H */
