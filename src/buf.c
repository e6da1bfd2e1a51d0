/*
 * buf.c: immutable, reference-counted byte buffers, and writing them
 * without a copy. One allocation holds the count, the length and the
 * bytes. Any thread may take or drop a reference.
 */
#include "internal.h"

#include <errno.h>

#include <event2/buffer.h>

struct ac_buf_s {
	int refs; /* atomic */
	size_t len;
	unsigned char data[];
};

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

/* evbuffer calls this when the referenced bytes have been written or the
 * output buffer is freed. */
static void drop_ref(const void *data, size_t len, void *b)
{
	ac_buf_unref(b);
}

/*
 * Up to this size a shared buffer is copied into the output, not
 * referenced. A reference costs an evbuffer chain of its own (an
 * allocation and an iovec entry per message) plus two atomic operations
 * on a count every loop shares; copying 512 bytes is cheaper, and small
 * messages to the same connection then share one chain and one iovec.
 * Measured with actorconn-bench fanout (1,000 subscribers, 64-byte
 * messages): about 1.4x the deliveries per second of referencing.
 */
#define AC__BUF_COPY_MAX 512u

AC_EXPORT int ac_conn_write_buf(ac_conn_t *c, ac_buf_t *b)
{
	int err;

	if (!c || !b)
		return AC_EINVAL;
	if (b->len <= AC__BUF_COPY_MAX)
		return ac_conn_write(c, b->data, b->len);
	if ((err = ac__conn_out_reserve(c, b->len)) || !b->len)
		return err;
	ac_buf_ref(b);
	if (evbuffer_add_reference(c->out, b->data, b->len, drop_ref, b)) {
		ac_buf_unref(b);
		return AC_ENOMEM;
	}
	ac__conn_out_added(c);
	return 0;
}
