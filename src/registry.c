/*
 * registry.c: a weak-value map, key bytes -> handle (WeakValueDictionary).
 *
 * The map is AC__REG_SHARDS shards, each a Concurrency Kit hash set
 * (ck_hs) in single-writer, many-reader mode holding pointers to entries.
 * Writers take their shard's mutex, so each ck_hs has one writer at a time;
 * readers take no lock and run inside a ck_epoch section. What a reader
 * may still be looking at is freed only after a grace period: ck_hs hands
 * its old tables to our allocator with "defer" set when it grows, and a
 * removed entry's table reference is dropped through ck_epoch_call. So a
 * reader never touches freed memory, whatever a writer does meanwhile.
 *
 * Why ck_hs and not the hand-written lock-free chains this file had
 * before: those chains were copied when a shard grew, and a reader still
 * walking the old chains validated against them (they no longer changed),
 * so it read nodes that the grow had retired and freed. ck_hs is built
 * for exactly this workload, its probes detect concurrent moves, and
 * epoch reclamation covers the whole table rather than one node at a time.
 * The test registry_get_during_growth_reads_no_freed_memory drives 100,000
 * keys through growth under concurrent gets.
 *
 * Weak values: each entry watches its connection (ac_watch). An entry has
 * two references, the table's and the watch's. Whoever removes it from the
 * table (ac_registry_del, a replacing put, or the watch callback when the
 * connection closes) drops the table's after a grace period; the watch's
 * goes when the callback has run or the watch was cancelled. The last one
 * frees the entry.
 */
#include "alloc.h"
#include "clock.h"
#include "handle.h"
#include "hash.h"
#include "reclaim.h"
#include "runtime.h"
#include "wait.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include <ck_hs.h>

#define AC__REG_SHARDS 16     /* writers on different shards never meet */
#define AC__REG_CAP0 32       /* first table size per shard */
#define AC__REG_EAGAIN_MS 1000 /* a put waits this long for a full mailbox */
#define AC__REG_GC_MIN 64     /* removals before tombstones are collected */

struct ac__regent {
	ck_epoch_entry_t ep;      /* the table's reference, dropped late */
	ac_registry_t *reg;       /* for the watch callback */
	uint64_t hash;
	ac_handle_t h;
	uint64_t watch;           /* set before the entry is published */
	int refs;                 /* atomic: the table's and the watch's */
	bool in_table;            /* under the shard lock */
	bool died;                /* under the shard lock: the watch fired
				     before the entry was inserted */
	const unsigned char *key; /* bytes, or a lookup's caller's key */
	size_t len;
	unsigned char bytes[];
};

struct ac__regshard {
	pthread_mutex_t lock; /* the one writer of hs at a time */
	ck_hs_t hs;
	size_t count;         /* atomic: entries, for ac_registry_count */
	size_t removed;       /* under lock: removals since the last gc */
	bool ready;           /* hs initialised */
} AC__ALIGNED;

struct ac_registry_s {
	ac_runtime_t *rt;
	uint64_t seed;
	struct ac__regshard shard[AC__REG_SHARDS];
};

/* ---- ck_hs's allocator -----------------------------------------------------
 *
 * ck_hs frees an old table with defer set when it grows: readers may still
 * be probing it. The free then goes through the writer's epoch record,
 * which the writer names in tls_writer for the duration of its ck_hs call
 * (ck_malloc passes no context). Each block carries the epoch entry that
 * takes it through the grace period. */

struct hs_block {
	ck_epoch_entry_t ep;
} __attribute__((aligned(16)));

static __thread ck_epoch_record_t *tls_writer;

/* One address stands for "a grace period has passed" to ThreadSanitizer:
 * every reader releases it when its section ends, every deferred free
 * acquires it. (The real ordering is ck_epoch's, inside libck, which TSan
 * does not see.) */
static char grace_sync;

static void *hs_malloc(size_t n)
{
	struct hs_block *b = ac__malloc(AC__K_REG, sizeof(*b) + n);

	return b ? b + 1 : NULL;
}

static void hs_free_now(ck_epoch_entry_t *ep)
{
	AC__TSAN_ACQUIRE(&grace_sync);
	ac__free(AC__K_REG, ep);
}

static void hs_free(void *p, size_t n, bool defer)
{
	struct hs_block *b = (struct hs_block *)p - 1;

	if (!p)
		return;
	if (defer && tls_writer)
		ck_epoch_call(tls_writer, &b->ep, hs_free_now);
	else /* never published, or no reader can exist (registry freed) */
		ac__free(AC__K_REG, b);
}

static struct ck_malloc hs_allocator = {
	.malloc = hs_malloc,
	.free = hs_free,
};

static unsigned long hs_hash(const void *obj, unsigned long seed)
{
	return (unsigned long)((const struct ac__regent *)obj)->hash;
}

static bool hs_compare(const void *stored, const void *probe)
{
	const struct ac__regent *a = stored, *b = probe;

	/* Pairs with the writer's release before publishing a: TSan cannot
	 * see ck_hs's own publication inside libck. */
	AC__TSAN_ACQUIRE(a);
	return a->hash == b->hash && a->len == b->len &&
	       (a->len == 0 || memcmp(a->key, b->key, a->len) == 0);
}

/* ---- entries ---------------------------------------------------------------- */

static void entry_unref(struct ac__regent *e)
{
	/* Acq-rel: every holder's last use happens before the free. */
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0)
		ac__free(AC__K_REG, e);
}

static void table_ref_gone(ck_epoch_entry_t *ep)
{
	AC__TSAN_ACQUIRE(&grace_sync);
	entry_unref((struct ac__regent *)ep);
}

/*
 * Drops the table's reference of e, which was in a table until just now:
 * after a grace period, through x's epoch record, or (a watch callback on
 * a thread that could get no record) by waiting for one here.
 */
static void drop_table_ref(ac_runtime_t *rt, struct ac__tctx *x,
			   struct ac__regent *e)
{
	if (x) {
		ck_epoch_call(&x->ep, &e->ep, table_ref_gone);
		ck_epoch_poll(&x->ep); /* frees what is due by now */
		return;
	}
	ck_epoch_synchronize_wait(&rt->reclaim.epoch, NULL, NULL);
	AC__TSAN_ACQUIRE(&grace_sync);
	entry_unref(e);
}

/*
 * Ends e, just taken out of its table (inserted) or never put in it: its
 * watch must not fire any more, and both references go. Never under a
 * lock: ac_unwatch may wait for a running callback that wants the lock.
 */
static void end_entry(ac_registry_t *reg, struct ac__tctx *x,
		      struct ac__regent *e, bool inserted)
{
	/* 0: the callback will never run, so its reference is ours to drop;
	 * otherwise it ran (ac_unwatch waited for it) and dropped it. */
	if (ac_unwatch(reg->rt, e->watch) == 0)
		entry_unref(e);
	if (inserted)
		drop_table_ref(reg->rt, x, e);
	else
		entry_unref(e); /* no reader ever saw it */
}

static struct ac__regshard *shard_of(ac_registry_t *reg, uint64_t hash)
{
	return &reg->shard[hash % AC__REG_SHARDS];
}

/* A lookup key: an entry whose key points at the caller's bytes. */
static void probe_init(ac_registry_t *reg, struct ac__regent *p,
		       const void *key, size_t len)
{
	p->key = key;
	p->len = len;
	p->hash = ac__hash(key, len, reg->seed);
}

/* Under the shard lock: e left the table. Tombstones are collected once
 * removals outnumber the entries, which keeps probes short under churn. */
static void removed_locked(struct ac__regshard *sh)
{
	__atomic_store_n(&sh->count, sh->count - 1, __ATOMIC_RELAXED);
	if (++sh->removed > AC__REG_GC_MIN && sh->removed > sh->count) {
		sh->removed = 0;
		ck_hs_gc(&sh->hs, 0, 0);
	}
}

/* ---- readers ------------------------------------------------------------------ */

AC_EXPORT int ac_registry_get(ac_registry_t *reg, const void *key,
			      size_t len, ac_handle_t *out)
{
	struct ac__regent probe, *e;
	struct ac__regshard *sh;
	struct ac__tctx *x;
	int ret = AC_ENOENT;

	if (!reg || (!key && len) || !out)
		return AC_EINVAL;
	if (!(x = ac__tctx(reg->rt)))
		return AC_ENOMEM;
	probe_init(reg, &probe, key, len);
	sh = shard_of(reg, probe.hash);
	ck_epoch_begin(&x->ep, NULL);
	if ((e = ck_hs_get(&sh->hs, (unsigned long)probe.hash, &probe))) {
		*out = e->h;
		ret = 0;
	}
	AC__TSAN_RELEASE(&grace_sync);
	ck_epoch_end(&x->ep, NULL);
	return ret;
}

AC_EXPORT size_t ac_registry_count(ac_registry_t *reg)
{
	size_t n = 0;

	if (!reg)
		return 0;
	for (int i = 0; i < AC__REG_SHARDS; i++)
		n += __atomic_load_n(&reg->shard[i].count, __ATOMIC_RELAXED);
	return n;
}

/* ---- writers -------------------------------------------------------------- */

/* The watch callback: the connection closed (or was stale, or the runtime
 * stopped). Runs on the connection's loop, or on the stopping thread. */
static void entry_died(ac_handle_t h, int reason, void *arg)
{
	struct ac__regent *e = arg;
	ac_registry_t *reg = e->reg;
	ac_runtime_t *rt = reg->rt;
	struct ac__regshard *sh = shard_of(reg, e->hash);
	struct ac__tctx *x = ac__tctx(rt);
	bool removed = false;

	pthread_mutex_lock(&sh->lock);
	if (ck_hs_get(&sh->hs, (unsigned long)e->hash, e) == e) {
		ck_hs_remove(&sh->hs, (unsigned long)e->hash, e);
		e->in_table = false;
		removed_locked(sh);
		removed = true;
	} else {
		e->died = true; /* not in yet: ac_registry_put sees this */
	}
	/* Once the lock is released, reg may be gone: ac_registry_free waits
	 * only for the callbacks of entries it still finds, and this one is
	 * out. From here on only rt (which outlives reg) and e (ours by
	 * reference) are touched. */
	pthread_mutex_unlock(&sh->lock);
	if (removed)
		drop_table_ref(rt, x, e);
	entry_unref(e); /* the watch's */
}

/* Watches h for e, on h's own loop, so that the watch id is known before
 * anyone can find the entry. A full mailbox is waited out for a moment: a
 * burst of puts from one thread is normal use. */
static int watch_entry(ac_registry_t *reg, struct ac__regent *e)
{
	uint64_t start = 0;
	unsigned backoff = 0;
	int err;

	for (;;) {
		err = ac_watch(reg->rt, e->h, AC_LOOP(AC_HANDLE_LOOP(e->h)), entry_died,
			       e, &e->watch);
		if (err != AC_EAGAIN)
			return err;
		if (!start)
			start = ac__mono_ms();
		else if (ac__mono_ms() - start > AC__REG_EAGAIN_MS)
			return err;
		ac__backoff_wait(&backoff);
	}
}

AC_EXPORT int ac_registry_put(ac_registry_t *reg, const void *key,
			      size_t len, ac_handle_t h, int flags)
{
	struct ac__regent *e, *old;
	struct ac__regshard *sh;
	struct ac__tctx *x;
	void *prev = NULL;
	bool ok;
	int err;

	if (!reg || (!key && len) || (flags & ~AC_REG_EXCL))
		return AC_EINVAL;
	if (!ac__handle_live(reg->rt, h))
		return AC_ESTALE;
	if (!(x = ac__tctx(reg->rt)) ||
	    !(e = ac__malloc(AC__K_REG, sizeof(*e) + len)))
		return AC_ENOMEM;
	memset(e, 0, sizeof(*e));
	if (len)
		memcpy(e->bytes, key, len);
	probe_init(reg, e, e->bytes, len);
	e->reg = reg;
	e->h = h;
	e->refs = 2;
	if ((err = watch_entry(reg, e))) {
		ac__free(AC__K_REG, e);
		return err;
	}

	sh = shard_of(reg, e->hash);
	pthread_mutex_lock(&sh->lock);
	if (e->died) { /* the connection closed before we got here */
		pthread_mutex_unlock(&sh->lock);
		entry_unref(e); /* the table's: never inserted */
		return AC_ESTALE;
	}
	old = ck_hs_get(&sh->hs, (unsigned long)e->hash, e);
	if (old && (flags & AC_REG_EXCL)) {
		pthread_mutex_unlock(&sh->lock);
		end_entry(reg, x, e, false);
		return AC_EEXIST;
	}
	/* Release: e's fields are visible before e is (ck_hs publishes with
	 * its own store fence; this tells TSan, which cannot see it). */
	AC__TSAN_RELEASE(e);
	tls_writer = &x->ep; /* a grow defers freeing the old table */
	if (old)
		ok = ck_hs_set(&sh->hs, (unsigned long)e->hash, e, &prev);
	else
		ok = ck_hs_put(&sh->hs, (unsigned long)e->hash, e);
	tls_writer = NULL;
	if (!ok) { /* the table could not grow */
		pthread_mutex_unlock(&sh->lock);
		end_entry(reg, x, e, false);
		return AC_ENOMEM;
	}
	e->in_table = true;
	if (old) {
		old->in_table = false;
		sh->removed++;
	} else {
		__atomic_store_n(&sh->count, sh->count + 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&sh->lock);
	if (old)
		end_entry(reg, x, old, true);
	else
		ck_epoch_poll(&x->ep);
	return 0;
}

AC_EXPORT int ac_registry_del(ac_registry_t *reg, const void *key,
			      size_t len)
{
	struct ac__regent probe, *e;
	struct ac__regshard *sh;
	struct ac__tctx *x;

	if (!reg || (!key && len))
		return AC_EINVAL;
	if (!(x = ac__tctx(reg->rt)))
		return AC_ENOMEM;
	probe_init(reg, &probe, key, len);
	sh = shard_of(reg, probe.hash);
	pthread_mutex_lock(&sh->lock);
	if (!(e = ck_hs_get(&sh->hs, (unsigned long)probe.hash, &probe))) {
		pthread_mutex_unlock(&sh->lock);
		return AC_ENOENT;
	}
	ck_hs_remove(&sh->hs, (unsigned long)e->hash, e);
	e->in_table = false;
	removed_locked(sh);
	pthread_mutex_unlock(&sh->lock);
	end_entry(reg, x, e, true);
	return 0;
}

/* ---- life --------------------------------------------------------------------- */

static uint64_t new_seed(const ac_registry_t *reg)
{
	uint64_t s;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
		s = ac__hash_mix(ac__mono_ms() ^ (uint64_t)(uintptr_t)reg);
	return s;
}

AC_EXPORT ac_registry_t *ac_registry_new(ac_runtime_t *rt)
{
	ac_registry_t *reg;

	if (!rt) {
		errno = EINVAL;
		return NULL;
	}
	if (!(reg = ac__memalign(AC__K_REG, AC__CACHELINE, sizeof(*reg)))) {
		errno = ENOMEM;
		return NULL;
	}
	memset(reg, 0, sizeof(*reg));
	reg->rt = rt;
	reg->seed = new_seed(reg);
	for (int i = 0; i < AC__REG_SHARDS; i++) {
		struct ac__regshard *sh = &reg->shard[i];

		pthread_mutex_init(&sh->lock, NULL);
		if (!ck_hs_init(&sh->hs,
				CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT |
					CK_HS_MODE_DELETE,
				hs_hash, hs_compare, &hs_allocator,
				AC__REG_CAP0, (unsigned long)reg->seed)) {
			ac_registry_free(reg);
			errno = ENOMEM;
			return NULL;
		}
		sh->ready = true;
	}
	return reg;
}

#define AC__REG_FREE_BATCH 128 /* entries ended per lock hold in free */

/*
 * Ends every entry of sh. An entry whose connection is closing right now
 * may be removed by its callback meanwhile, so ids (values) are taken
 * under the lock, a batch at a time, and unwatched without it; an entry is
 * touched only if its callback will never run. Every entry seen leaves
 * the table (here or in its callback), so a pass that sees none is the
 * last; a second pass catches any that a callback's tombstone collection
 * moved behind the iterator.
 */
static void end_all(ac_registry_t *reg, struct ac__regshard *sh)
{
	struct ac__regent *ents[AC__REG_FREE_BATCH];
	uint64_t ids[AC__REG_FREE_BATCH];
	bool any;

	do {
		ck_hs_iterator_t it = CK_HS_ITERATOR_INITIALIZER;
		size_t n;
		void *obj;

		any = false;
		do {
			n = 0;
			pthread_mutex_lock(&sh->lock);
			while (n < AC__REG_FREE_BATCH &&
			       ck_hs_next(&sh->hs, &it, &obj)) {
				ents[n] = obj;
				ids[n] = ents[n]->watch;
				n++;
			}
			pthread_mutex_unlock(&sh->lock);
			any |= n > 0;
			for (size_t k = 0; k < n; k++) {
				if (ac_unwatch(reg->rt, ids[k]) != 0)
					continue; /* its callback removed it */
				/* Only its callback could have taken it out:
				 * still in, and nobody reads. */
				pthread_mutex_lock(&sh->lock);
				ck_hs_remove(&sh->hs,
					     (unsigned long)ents[k]->hash,
					     ents[k]);
				pthread_mutex_unlock(&sh->lock);
				ac__free(AC__K_REG, ents[k]);
			}
		} while (n);
	} while (any);
}

AC_EXPORT void ac_registry_free(ac_registry_t *reg)
{
	if (!reg)
		return;
	for (int i = 0; i < AC__REG_SHARDS; i++) {
		struct ac__regshard *sh = &reg->shard[i];

		if (sh->ready) {
			end_all(reg, sh);
			/* Quiet now. Entries a callback removed are on their
			 * way through a grace period and no longer point at
			 * reg. */
			ck_hs_destroy(&sh->hs);
		}
		pthread_mutex_destroy(&sh->lock);
	}
	ac__free(AC__K_REG, reg);
}
