/*
 * buf.c: immutable, reference-counted byte buffers. One allocation holds
 * the count, the length and the bytes. Any thread may take or drop a
 * reference. Writing one to a connection is ac_conn_write_buf (conn.c).
 */
#include "buf.h"
#include "alloc.h"

#include <errno.h>

AC_EXPORT ac_buf_t *ac_buf_new(const void *data, size_t len)
{
	ac_buf_t *b;

	if (!data && len) {
		errno = EINVAL;
		return NULL;
	}
	if (!(b = ac__malloc(AC__K_BUF, sizeof(*b) + len))) {
		errno = ENOMEM;
		return NULL;
	}
	b->refs = 1;
	b->len = len;
	if (len)
		memcpy(b->data, data, len);
	return b;
}

AC_EXPORT ac_buf_t *ac_buf_ref(ac_buf_t *b)
{
	if (b)
		__atomic_fetch_add(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

AC_EXPORT void ac_buf_unref(ac_buf_t *b)
{
	/* Acq-rel: every holder's reads happen before the free. */
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		ac__free(AC__K_BUF, b);
}

AC_EXPORT const void *ac_buf_data(const ac_buf_t *b)
{
	return b ? b->data : NULL;
}

AC_EXPORT size_t ac_buf_len(const ac_buf_t *b)
{
	return b ? b->len : 0;
}

/* The n buffers of b[], `len` bytes in all, copied back to back into a
 * new one; NULL without memory. */
ac_buf_t *ac__buf_concat(ac_buf_t *const *b, unsigned n, size_t len)
{
	ac_buf_t *all = ac__malloc(AC__K_BUF, sizeof(*all) + len);
	unsigned char *w;

	if (!all)
		return NULL;
	all->refs = 1;
	all->len = len;
	w = all->data;
	for (unsigned i = 0; i < n; i++) {
		memcpy(w, b[i]->data, b[i]->len);
		w += b[i]->len;
	}
	return all;
}
