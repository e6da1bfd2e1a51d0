/* segtab.c: the slow paths of the segmented tables (segtab.h). */
#include "segtab.h"
#include "alloc.h"

void ac__segtab_init(struct ac__segtab *t, size_t elem, unsigned shift,
		     unsigned nseg, void (*init)(void *entries, size_t n))
{
	memset(t, 0, sizeof(*t));
	t->elem = elem;
	t->shift = shift;
	t->nseg = nseg < AC__SEGTAB_MAX ? nseg : AC__SEGTAB_MAX;
	t->init = init;
}

void *ac__segtab_make(struct ac__segtab *t, uint32_t idx)
{
	size_t off, n;
	unsigned s = ac__segtab_locate(t, idx, &off);
	char *seg;

	if (s >= t->nseg)
		return NULL;
	if ((seg = t->seg[s])) /* only the writer stores it: a plain read */
		return seg + off * t->elem;
	n = (size_t)1 << (t->shift + s);
	if (!(seg = ac__calloc(AC__K_OTHER, n, t->elem)))
		return NULL;
	if (t->init)
		t->init(seg, n); /* not yet published: plain stores */
	/* Release: the initialised entries are visible before the segment
	 * pointer that leads to them. */
	__atomic_store_n(&t->seg[s], seg, __ATOMIC_RELEASE);
	return seg + off * t->elem;
}

void ac__segtab_free(struct ac__segtab *t)
{
	for (unsigned s = 0; s < t->nseg; s++) {
		ac__free(AC__K_OTHER, t->seg[s]);
		t->seg[s] = NULL;
	}
}

uint64_t ac__segtab_capacity(const struct ac__segtab *t)
{
	return (((uint64_t)1 << t->nseg) - 1) << t->shift;
}
