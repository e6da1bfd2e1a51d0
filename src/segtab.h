/*
 * segtab.h: a table that grows by segments and never moves, so that other
 * threads can read its entries without a lock while one writer adds to
 * it. Segment s holds (1 << shift) << s entries. The writer (one at a
 * time: the caller's rule) fills a new segment, then publishes its
 * pointer with a release store; readers load it with acquire, so a
 * reader that finds a segment sees its initialised entries. Segments stay
 * until the table is freed. The handle table (handle.c) and the watch
 * table (watch.c) are both one of these.
 */
#ifndef AC_SEGTAB_H
#define AC_SEGTAB_H

#include "common.h"

#define AC__SEGTAB_MAX 32

struct ac__segtab {
	void *seg[AC__SEGTAB_MAX]; /* published with release */
	size_t elem;               /* bytes per entry */
	unsigned shift;            /* segment 0 holds 1 << shift entries */
	unsigned nseg;             /* segments it may have */
	/* Fills a new segment's n entries before it is published. */
	void (*init)(void *entries, size_t n);
};

void ac__segtab_init(struct ac__segtab *t, size_t elem, unsigned shift,
		     unsigned nseg, void (*init)(void *entries, size_t n));

/* Which segment holds idx, and where in it. */
static inline unsigned ac__segtab_locate(const struct ac__segtab *t,
					 uint32_t idx, size_t *off)
{
	uint64_t v = (uint64_t)idx + (1ull << t->shift);
	unsigned top = 63u - (unsigned)__builtin_clzll(v);

	*off = (size_t)(v - (1ull << top));
	return top - t->shift;
}

/* Any thread, lock-free: entry idx, or NULL if its segment is not made. */
static inline void *ac__segtab_at(const struct ac__segtab *t, uint32_t idx)
{
	size_t off;
	unsigned s = ac__segtab_locate(t, idx, &off);
	char *seg;

	if (s >= t->nseg)
		return NULL;
	/* Acquire pairs with the release in ac__segtab_make. */
	seg = __atomic_load_n(&t->seg[s], __ATOMIC_ACQUIRE);
	return seg ? seg + off * t->elem : NULL;
}

/* The writer: entry idx, making its segment first if need be. NULL when
 * idx is beyond the table's last segment or memory ran out. */
void *ac__segtab_make(struct ac__segtab *t, uint32_t idx);
/* No reader left: frees every segment. */
void ac__segtab_free(struct ac__segtab *t);
/* Entries the table can hold. */
uint64_t ac__segtab_capacity(const struct ac__segtab *t);

#endif /* AC_SEGTAB_H */
