/*
 * outq.h: a connection's output queue (outq.c): bytes written and not
 * yet taken by the kernel, as a list of chunks that one sendmsg takes
 * together. A chunk holds copied bytes (the owner loop's writes fill the
 * last chunk while it has room), or the payload of an ac_send, which
 * arrives as the chunk the sender allocated and is linked in as it is, or
 * a reference to a shared buffer. An empty queue holds no memory.
 *
 * Why not libevent's evbuffer, which this replaced: queueing an ac_send
 * payload there meant a second copy (or a reference chain: a second
 * allocation), and an idle connection's buffer had to be allocated again
 * for every burst. Here an ac_send costs one allocation and one copy,
 * both on the sending thread, and a write of the owner loop costs a copy.
 */
#ifndef AC_OUTQ_H
#define AC_OUTQ_H

#include "common.h"

#include <stdarg.h>
#include <sys/queue.h>
#include <sys/uio.h>

struct ac__chunk {
	TAILQ_ENTRY(ac__chunk) link;
	uint32_t off;        /* bytes already sent */
	uint32_t len;        /* bytes held (in bytes[], or of buf) */
	uint32_t cap;        /* room in bytes[]; 0 for a reference */
	ac_buf_t *buf;       /* the referenced shared buffer, or NULL */
	unsigned char bytes[];
};
TAILQ_HEAD(ac__chunkq, ac__chunk);

struct ac__outq {
	struct ac__chunkq q;
	size_t bytes; /* queued and not sent */
};

/* Any thread: a chunk holding a copy of len bytes of data (ac_send's
 * payload); NULL without memory. ac__chunk_free frees one that was never
 * queued. */
struct ac__chunk *ac__chunk_copy(const void *data, size_t len);
void ac__chunk_free(struct ac__chunk *ch);
/* The chunks a loop keeps for reuse, freed (at its exit). */
void ac__chunk_spares_free(ac__loop_t *loop);

static inline void ac__outq_init(struct ac__outq *o)
{
	TAILQ_INIT(&o->q);
	o->bytes = 0;
}

/* The owner loop, from here on. */

/* Copies len bytes in: into the last chunk's room, then a new chunk.
 * 0 or AC_ENOMEM (nothing queued then). */
int ac__outq_write(struct ac__outq *o, const void *data, size_t len);
/* Copies the buffers of iov in, total bytes (their sum), the same way:
 * one new chunk at most, so all or nothing is queued. 0 or AC_ENOMEM. */
int ac__outq_writev(struct ac__outq *o, const struct iovec *iov,
		    size_t total);
/* Queues ch as it is (the queue owns it from here). */
void ac__outq_append(struct ac__outq *o, struct ac__chunk *ch);
/* Queues a reference to b (the queue holds one on b until it is sent).
 * 0 or AC_ENOMEM. */
int ac__outq_ref(struct ac__outq *o, ac_buf_t *b);
/* Formats into the queue, as vsnprintf would. 0 or AC_ENOMEM. */
int ac__outq_vprintf(struct ac__outq *o, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Moves every chunk of from in front of o's (the queue that is built
 * after what goes before it: a header made once the body's length is
 * known). */
void ac__outq_prepend(struct ac__outq *o, struct ac__outq *from);
/* The first chunks' unsent bytes as up to max iovecs; their total in
 * *total. Returns the number of iovecs. */
int ac__outq_iov(const struct ac__outq *o, struct iovec *iov, int max,
		 size_t *total);
/* n bytes were sent: finished chunks go. */
void ac__outq_consume(struct ac__outq *o, size_t n);
/* One sendmsg of o's first chunks (up to 64) to the socket fd, and what
 * went is consumed. Returns the bytes sent, AC_EAGAIN when the socket
 * took none, or a close reason (EPIPE: AC_ECONNRESET). *full: the socket
 * took less than it was offered. */
ssize_t ac__outq_send(struct ac__outq *o, int fd, bool *full);
/* Frees everything queued. */
void ac__outq_clear(struct ac__outq *o);

#endif /* AC_OUTQ_H */
