/* buf.h: the shared buffer's layout (buf.c), for the write path. */
#ifndef AC_BUF_H
#define AC_BUF_H

#include "common.h"

/* One allocation: the count, the length and the bytes. */
struct ac_buf_s {
	int refs; /* atomic */
	size_t len;
	unsigned char data[];
};

ac_buf_t *ac__buf_concat(ac_buf_t *const *b, unsigned n, size_t len);

#endif /* AC_BUF_H */
