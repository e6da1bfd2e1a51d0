/*
 * registry.c: a weak-value map, key bytes -> handle (WeakValueDictionary).
 *
 * Readers are lock-free. The map is AC__REG_SHARDS shards; each has a
 * bucket table of singly linked, immutable nodes. A writer takes its
 * shard's mutex, and unlinks a node only after marking it dead, then
 * retires it through ck_hp. A reader protects the table and its current
 * and previous nodes with hazard pointers and re-validates each step: if
 * the previous node is still alive and still points at the current one,
 * the current node was reachable after its hazard was visible, so it cannot
 * be freed under the reader. A failed validation restarts the lookup.
 * Growing a shard copies its nodes into a table twice as large and retires
 * the old table and nodes the same way.
 *
 * Weak values: each entry watches its connection (ac_watch). The watch's
 * argument is the entry's key record, shared by the watch callback and the
 * table (two references): whichever ends the entry removes the node, and
 * the record goes with its last reference.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#define AC__REG_SHARDS 64
#define AC__REG_BUCKETS0 16 /* buckets per shard at first */
#define AC__REG_EAGAIN_MS 1000 /* a put waits this long for a full mailbox */

struct ac__regkey {
	ac_registry_t *reg;
	uint64_t hash;
	uint64_t watch; /* set before the entry is published */
	int fired;      /* under the shard lock: the connection is gone */
	int refs;       /* atomic: the table entry, and the watch callback */
};

struct ac__regnode {
	struct ac__hpobj hp; /* first: retired through ck_hp */
	struct ac__regnode *next; /* atomic */
	int dead;                 /* atomic; set before unlinking */
	uint64_t hash;
	ac_handle_t h;
	struct ac__regkey *rk;
	size_t len;
	unsigned char key[];
};

struct ac__regtable {
	struct ac__hpobj hp;
	size_t nbuckets; /* a power of two */
	struct ac__regnode *b[];
};

struct ac__regshard {
	pthread_mutex_t lock;       /* writers only, briefly */
	struct ac__regtable *table; /* atomic: replaced when growing */
	size_t count;               /* atomic */
} AC__ALIGNED;

struct ac_registry_s {
	ac_runtime_t *rt;
	struct ac__regshard shard[AC__REG_SHARDS];
};

/* FNV-1a, 64 bits: short keys, no seeding needed for a local map. */
static uint64_t hash_key(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct ac__regshard *shard_of(ac_registry_t *reg, uint64_t hash)
{
	return &reg->shard[hash % AC__REG_SHARDS];
}

static struct ac__regnode **bucket(struct ac__regtable *t, uint64_t hash)
{
	return &t->b[(hash / AC__REG_SHARDS) & (t->nbuckets - 1)];
}

static struct ac__regtable *table_new(size_t nbuckets)
{
	struct ac__regtable *t = ac__calloc(
		AC__K_REG, 1, sizeof(*t) + nbuckets * sizeof(t->b[0]));

	if (t)
		t->nbuckets = nbuckets;
	return t;
}

static struct ac__regnode *node_new(const void *key, size_t len,
				    uint64_t hash, ac_handle_t h,
				    struct ac__regkey *rk)
{
	struct ac__regnode *n = ac__malloc(AC__K_REG, sizeof(*n) + len);

	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->hash = hash;
	n->h = h;
	n->rk = rk;
	n->len = len;
	memcpy(n->key, key, len);
	return n;
}

void ac__regnode_destroy(void *p)
{
	ac__free(AC__K_REG, p);
}

void ac__regtable_destroy(void *p)
{
	ac__free(AC__K_REG, p);
}

static void regkey_unref(struct ac__regkey *rk, int n)
{
	if (__atomic_sub_fetch(&rk->refs, n, __ATOMIC_ACQ_REL) == 0)
		ac__free(AC__K_REG, rk);
}

static ck_hp_record_t *record(ac_registry_t *reg)
{
	return ac__hp_record(reg->rt);
}

/* ---- readers ----------------------------------------------------------------- */

static bool same_key(const struct ac__regnode *n, uint64_t hash,
		     const void *key, size_t len)
{
	return n->hash == hash && n->len == len && !memcmp(n->key, key, len);
}

AC_EXPORT int ac_registry_get(ac_registry_t *reg, const void *key,
			      size_t len, ac_handle_t *out)
{
	uint64_t hash;
	struct ac__regshard *sh;
	ck_hp_record_t *rec;
	int ret = AC_ESTALE;

	if (!reg || (!key && len) || !out)
		return AC_EINVAL;
	if (!(rec = record(reg)))
		return AC_ENOMEM;
	hash = hash_key(key, len);
	sh = shard_of(reg, hash);
retry:
	for (;;) {
		struct ac__regtable *t =
			__atomic_load_n(&sh->table, __ATOMIC_ACQUIRE);
		struct ac__regnode *prev = NULL, *cur, **head;

		/* Full fence after publishing each hazard (ck_hp_set_fence):
		 * the re-reads below happen after it is visible. */
		ck_hp_set_fence(rec, 0, t);
		if (__atomic_load_n(&sh->table, __ATOMIC_ACQUIRE) != t)
			continue;
		head = bucket(t, hash);
		cur = __atomic_load_n(head, __ATOMIC_ACQUIRE);
		for (;;) {
			if (!cur)
				goto done;
			ck_hp_set_fence(rec, 2, cur);
			if (prev ? __atomic_load_n(&prev->dead, __ATOMIC_ACQUIRE) ||
					   __atomic_load_n(&prev->next,
							   __ATOMIC_ACQUIRE) != cur
				 : __atomic_load_n(head, __ATOMIC_ACQUIRE) != cur)
				goto retry;
			if (same_key(cur, hash, key, len) &&
			    !__atomic_load_n(&cur->dead, __ATOMIC_ACQUIRE)) {
				*out = cur->h;
				ret = 0;
				goto done;
			}
			/* cur becomes prev: keep it protected in slot 1. */
			ck_hp_set(rec, 1, cur);
			prev = cur;
			cur = __atomic_load_n(&cur->next, __ATOMIC_ACQUIRE);
		}
	}
done:
	ck_hp_set(rec, 1, NULL);
	ck_hp_set(rec, 2, NULL);
	ac__unpin(rec); /* slot 0, with release */
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

/* ---- writers (under the shard lock) -------------------------------------- */

/* Finds the live node with key; *link is what points at it. */
static struct ac__regnode *find_locked(struct ac__regshard *sh,
				       uint64_t hash, const void *key,
				       size_t len,
				       struct ac__regnode ***link)
{
	struct ac__regnode **l = bucket(sh->table, hash);

	for (; *l; l = &(*l)->next)
		if (same_key(*l, hash, key, len)) {
			*link = l;
			return *l;
		}
	return NULL;
}

/* Marks n dead, then unlinks it (the order readers validate against). */
static void unlink_locked(struct ac__regshard *sh, struct ac__regnode **link,
			  struct ac__regnode *n)
{
	__atomic_store_n(&n->dead, 1, __ATOMIC_RELEASE);
	__atomic_store_n(link, n->next, __ATOMIC_RELEASE);
	__atomic_store_n(&sh->count, sh->count - 1, __ATOMIC_RELAXED);
}

/*
 * Doubles the shard's table when chains grow long, by copying: nodes never
 * move, so a reader on the old table finishes its walk undisturbed.
 * Returns the old table, to retire with retire_table() after unlocking,
 * or NULL when nothing changed.
 */
static struct ac__regtable *grow_locked(struct ac__regshard *sh)
{
	struct ac__regtable *old = sh->table, *t;

	if (sh->count <= old->nbuckets * 2 ||
	    !(t = table_new(old->nbuckets * 2)))
		return NULL;
	for (size_t i = 0; i < old->nbuckets; i++)
		for (struct ac__regnode *n = old->b[i]; n; n = n->next) {
			struct ac__regnode *c =
				node_new(n->key, n->len, n->hash, n->h, n->rk);
			struct ac__regnode **hd;

			if (!c) { /* out of memory: keep the old table */
				for (size_t k = 0; k < t->nbuckets; k++)
					while (t->b[k]) {
						struct ac__regnode *x = t->b[k];
						t->b[k] = x->next;
						ac__free(AC__K_REG, x);
					}
				ac__free(AC__K_REG, t);
				return NULL;
			}
			hd = bucket(t, c->hash);
			c->next = *hd;
			*hd = c;
		}
	/* Release: the copies are complete before readers can find them. */
	__atomic_store_n(&sh->table, t, __ATOMIC_RELEASE);
	return old;
}

/* Retires a replaced table and its nodes. Nobody writes to a replaced
 * table, so its chains can be walked without the lock; each next pointer
 * is read before its node is retired (retiring may free at once). */
static void retire_table(ac_registry_t *reg, struct ac__regtable *old)
{
	ck_hp_record_t *rec = record(reg);

	for (size_t i = 0; i < old->nbuckets; i++) {
		struct ac__regnode *n = old->b[i], *next;
		for (; n; n = next) {
			next = n->next;
			ac__hp_retire(rec, &n->hp, AC__HP_REGNODE);
		}
	}
	ac__hp_retire(rec, &old->hp, AC__HP_REGTABLE);
}

/* Ends an entry whose node was unlinked: its watch must not fire any more,
 * and its key record loses the table's reference. Never under a lock:
 * ac_unwatch may wait for a running callback that wants the lock. */
static void end_entry(ac_registry_t *reg, struct ac__regkey *rk)
{
	int refs = 1; /* the table's */

	if (ac_unwatch(reg->rt, rk->watch) == 0)
		refs++; /* the callback will never run: drop its reference */
	regkey_unref(rk, refs);
}

/* The watch callback: the connection closed. */
static void entry_died(ac_handle_t h, int reason, void *arg)
{
	struct ac__regkey *rk = arg;
	ac_registry_t *reg = rk->reg;
	ac_runtime_t *rt = reg->rt;
	struct ac__regshard *sh = shard_of(reg, rk->hash);
	struct ac__regnode **l, *gone = NULL;

	pthread_mutex_lock(&sh->lock);
	rk->fired = 1;
	for (l = bucket(sh->table, rk->hash); *l; l = &(*l)->next)
		if ((*l)->rk == rk) {
			gone = *l;
			unlink_locked(sh, l, gone);
			break;
		}
	/* Once the lock is released, reg may be gone: ac_registry_free waits
	 * only for the callbacks of entries it still finds, and this one is
	 * unlinked. From here on only rt (which outlives reg), the node and
	 * rk (ours by reference) are touched. */
	pthread_mutex_unlock(&sh->lock);
	if (gone) {
		ac__hp_retire(ac__hp_record(rt), &gone->hp, AC__HP_REGNODE);
		regkey_unref(rk, 1); /* the table's */
	}
	regkey_unref(rk, 1); /* ours */
}

AC_EXPORT int ac_registry_put(ac_registry_t *reg, const void *key,
			      size_t len, ac_handle_t h, int flags)
{
	struct ac__regnode *n, *old, **link;
	struct ac__regtable *replaced;
	struct ac__regshard *sh;
	struct ac__regkey *rk;
	uint64_t hash;
	int err;

	if (!reg || (!key && len) || (flags & ~AC_REG_EXCL))
		return AC_EINVAL;
	if (!ac__handle_live(reg->rt, h))
		return AC_ESTALE;
	hash = hash_key(key, len);
	sh = shard_of(reg, hash);
	if (!(rk = ac__calloc(AC__K_REG, 1, sizeof(*rk))))
		return AC_ENOMEM;
	rk->reg = reg;
	rk->hash = hash;
	rk->refs = 2;
	if (!(n = node_new(key, len, hash, h, rk))) {
		ac__free(AC__K_REG, rk);
		return AC_ENOMEM;
	}
	/* Watch first, on the connection's own loop, so that the watch id is
	 * known before anyone can find the entry. A full mailbox is waited
	 * out for a moment: a burst of puts from one thread is normal use. */
	for (uint64_t start = 0;;) {
		err = ac_watch(reg->rt, h, AC_HANDLE_LOOP(h), entry_died, rk,
			       &rk->watch);
		if (err != AC_EAGAIN)
			break;
		if (!start)
			start = ac__mono_ms();
		else if (ac__mono_ms() - start > AC__REG_EAGAIN_MS)
			break;
		sched_yield();
	}
	if (err) {
		ac__free(AC__K_REG, n);
		ac__free(AC__K_REG, rk);
		return err;
	}

	pthread_mutex_lock(&sh->lock);
	if (rk->fired) { /* closed before we got here */
		pthread_mutex_unlock(&sh->lock);
		ac__free(AC__K_REG, n);
		regkey_unref(rk, 1);
		return AC_ESTALE;
	}
	old = find_locked(sh, hash, key, len, &link);
	if (old && (flags & AC_REG_EXCL)) {
		pthread_mutex_unlock(&sh->lock);
		ac__free(AC__K_REG, n);
		end_entry(reg, rk);
		return AC_EEXIST;
	}
	if (old)
		unlink_locked(sh, link, old);
	n->next = *bucket(sh->table, hash);
	/* Release: the node's fields are visible before the node. */
	__atomic_store_n(bucket(sh->table, hash), n, __ATOMIC_RELEASE);
	__atomic_store_n(&sh->count, sh->count + 1, __ATOMIC_RELAXED);
	replaced = grow_locked(sh);
	pthread_mutex_unlock(&sh->lock);

	if (replaced)
		retire_table(reg, replaced);
	if (old) {
		struct ac__regkey *ork = old->rk;
		ac__hp_retire(record(reg), &old->hp, AC__HP_REGNODE);
		end_entry(reg, ork);
	}
	return 0;
}

AC_EXPORT int ac_registry_del(ac_registry_t *reg, const void *key,
			      size_t len)
{
	struct ac__regnode *n, **link;
	struct ac__regshard *sh;
	struct ac__regkey *rk;
	uint64_t hash;

	if (!reg || (!key && len))
		return AC_EINVAL;
	hash = hash_key(key, len);
	sh = shard_of(reg, hash);
	pthread_mutex_lock(&sh->lock);
	if (!(n = find_locked(sh, hash, key, len, &link))) {
		pthread_mutex_unlock(&sh->lock);
		return AC_ESTALE;
	}
	unlink_locked(sh, link, n);
	rk = n->rk;
	pthread_mutex_unlock(&sh->lock);
	ac__hp_retire(record(reg), &n->hp, AC__HP_REGNODE);
	end_entry(reg, rk);
	return 0;
}

/* ---- life ------------------------------------------------------------------- */

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
	for (int i = 0; i < AC__REG_SHARDS; i++) {
		pthread_mutex_init(&reg->shard[i].lock, NULL);
		if (!(reg->shard[i].table = table_new(AC__REG_BUCKETS0))) {
			ac_registry_free(reg);
			errno = ENOMEM;
			return NULL;
		}
	}
	return reg;
}

AC_EXPORT void ac_registry_free(ac_registry_t *reg)
{
	if (!reg)
		return;
	/* 1. Stop every watch. Entries whose connection is closing right now
	 * may still be removed by their callback meanwhile, so take the ids
	 * (values) under the lock, then unwatch without it. */
	for (int i = 0; i < AC__REG_SHARDS; i++) {
		struct ac__regshard *sh = &reg->shard[i];
		size_t n = 0, cap;
		uint64_t *ids;

		if (!sh->table)
			continue;
		pthread_mutex_lock(&sh->lock);
		cap = sh->count;
		ids = cap ? ac__malloc(AC__K_OTHER, cap * sizeof(*ids)) : NULL;
		for (size_t b = 0; ids && b < sh->table->nbuckets; b++)
			for (struct ac__regnode *x = sh->table->b[b]; x;
			     x = x->next)
				ids[n++] = x->rk->watch;
		pthread_mutex_unlock(&sh->lock);
		for (size_t k = 0; k < n; k++)
			ac_unwatch(reg->rt, ids[k]);
		ac__free(AC__K_OTHER, ids);
	}
	/* 2. Quiet now: nothing else may use the registry. */
	for (int i = 0; i < AC__REG_SHARDS; i++) {
		struct ac__regshard *sh = &reg->shard[i];
		struct ac__regtable *t = sh->table;

		for (size_t b = 0; t && b < t->nbuckets; b++)
			while (t->b[b]) {
				struct ac__regnode *x = t->b[b];
				t->b[b] = x->next;
				/* Still here, so its callback never ran (it
				 * would have unlinked the node) and its watch
				 * was cancelled above: both references go. */
				regkey_unref(x->rk, 2);
				ac__free(AC__K_REG, x);
			}
		ac__free(AC__K_REG, t);
		pthread_mutex_destroy(&sh->lock);
	}
	ac__free(AC__K_REG, reg);
}
