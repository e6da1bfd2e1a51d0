/*
 * reclaim.h: reading shared memory without a lock, and freeing it only
 * when no reader is left (reclaim.c). Two ways, each from Concurrency
 * Kit: a hazard pointer pins one connection (ac__pin, handle.h), and an
 * epoch section covers a registry lookup (ck_hs, whose old tables and
 * removed entries are freed through ck_epoch). A thread needs a record of
 * each kind per runtime: a loop has its own; another thread borrows one
 * from the runtime on first use and gives it back when it exits.
 */
#ifndef AC_RECLAIM_H
#define AC_RECLAIM_H

#include "common.h"

#include <sys/queue.h>

#include <ck_epoch.h>
#include <ck_hp.h>

#define AC__HP_DEGREE 1     /* one pinned connection at a time */
#define AC__HP_THRESHOLD 64 /* retired objects per record before a scan */

/* Everything retired through ck_hp starts with this; destroy frees it,
 * so the hazard-pointer layer knows nothing of what it reclaims. */
struct ac__hpobj {
	ck_hp_hazard_t hazard;
	void (*destroy)(struct ac__hpobj *o);
};

/* Retires o (already unpublished): destroy(o) runs once no hazard
 * pointer holds it. */
void ac__hp_retire(ck_hp_record_t *rec, struct ac__hpobj *o,
		   void (*destroy)(struct ac__hpobj *o));

/* One thread's records for one runtime. */
struct ac__tctx {
	ck_hp_record_t hp;         /* cache-line aligned by Concurrency Kit */
	void *hp_ptrs[AC__HP_DEGREE];
	ck_epoch_record_t ep;      /* likewise */
	SLIST_ENTRY(ac__tctx) next; /* the runtime's foreign records */
	bool in_use;               /* a thread holds it; under rt->lock */
};
SLIST_HEAD(ac__tctx_list, ac__tctx);

/* The runtime's side: the hazard-pointer and epoch domains, and the
 * records lent to threads that are not loops. */
struct ac__reclaim {
	ck_hp_t hp;
	ck_epoch_t epoch;
	struct ac__tctx_list foreign; /* under the runtime's lock */
};

int ac__reclaim_init(ac_runtime_t *rt);
/* A loop's records (or a foreign one's), registered with rt's domains. */
void ac__tctx_init(ac_runtime_t *rt, struct ac__tctx *x);
/* Any thread: the calling thread's records for rt (a foreign thread's
 * first call allocates them: NULL when that fails). */
struct ac__tctx *ac__tctx(ac_runtime_t *rt);
/* ac_runtime_free: no thread hands a record back from here on. */
void ac__reclaim_runtime_gone(ac_runtime_t *rt);
/* ac_runtime_free, once no thread uses rt: reclaim everything retired,
 * then free the foreign records. */
void ac__reclaim_all(ac_runtime_t *rt);

static inline ck_hp_record_t *ac__hp_record(ac_runtime_t *rt)
{
	struct ac__tctx *x = ac__tctx(rt);
	return x ? &x->hp : NULL;
}

/* ThreadSanitizer annotations for orderings it cannot see because they
 * happen inside libck, which is not instrumented (see registry.c). */
#ifdef AC_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define AC__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define AC__TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define AC__TSAN_ACQUIRE(p) ((void)(p))
#define AC__TSAN_RELEASE(p) ((void)(p))
#endif

#endif /* AC_RECLAIM_H */
