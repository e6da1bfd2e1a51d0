/* outq.c: a connection's output queue (outq.h). */
#include "outq.h"
#include "alloc.h"
#include "buf.h"
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

/* A chunk for small writes is one 4 KiB allocation, header included;
 * a larger write gets a chunk of its own size. */
#define AC__CHUNK_ALLOC 4096u
#define AC__CHUNK_ROOM (AC__CHUNK_ALLOC - sizeof(struct ac__chunk))

/*
 * Standard chunks (one 4 KiB allocation) are kept for reuse on the loop
 * that freed them, up to AC__CHUNK_SPARE: a loop that writes a burst to a
 * thousand connections and flushes them all would otherwise allocate and
 * free a thousand chunks per burst.
 */
#define AC__CHUNK_SPARE 64u

static struct ac__chunk *chunk_new(size_t cap)
{
	ac__loop_t *loop = ac__tls_loop;
	struct ac__chunk *ch;

	if (cap == AC__CHUNK_ROOM && loop && (ch = loop->spare_chunks)) {
		loop->spare_chunks = *(struct ac__chunk **)ch->bytes;
		loop->nspare_chunks--;
	} else if (cap > UINT32_MAX ||
		   !(ch = ac__malloc(AC__K_MSG, sizeof(*ch) + cap))) {
		return NULL;
	}
	ch->off = ch->len = 0;
	ch->cap = (uint32_t)cap;
	ch->buf = NULL;
	return ch;
}

struct ac__chunk *ac__chunk_copy(const void *data, size_t len)
{
	struct ac__chunk *ch = chunk_new(len);

	if (ch && len) {
		memcpy(ch->bytes, data, len);
		ch->len = (uint32_t)len;
	}
	return ch;
}

void ac__chunk_free(struct ac__chunk *ch)
{
	ac__loop_t *loop = ac__tls_loop;

	if (!ch)
		return;
	if (ch->buf)
		ac_buf_unref(ch->buf);
	if (ch->cap == AC__CHUNK_ROOM && loop && !loop->stopping &&
	    loop->nspare_chunks < AC__CHUNK_SPARE) {
		*(struct ac__chunk **)ch->bytes = loop->spare_chunks;
		loop->spare_chunks = ch;
		loop->nspare_chunks++;
		return;
	}
	ac__free(AC__K_MSG, ch);
}

void ac__chunk_spares_free(ac__loop_t *loop)
{
	struct ac__chunk *ch;

	while ((ch = loop->spare_chunks)) {
		loop->spare_chunks = *(struct ac__chunk **)ch->bytes;
		ac__free(AC__K_MSG, ch);
	}
	loop->nspare_chunks = 0;
}

static const unsigned char *chunk_data(const struct ac__chunk *ch)
{
	return ch->buf ? ch->buf->data : ch->bytes;
}

/*
 * The last chunk, or NULL. TAILQ_LAST finds it through the previous
 * chunk's link, two dependent loads on lines of other chunks; but the
 * head's tqh_last points at the last chunk's own link, which is the
 * chunk's first field. perf showed the TAILQ_LAST loads as the hottest
 * instructions of a fan-out (1,000 subscribers: each write to each of
 * them starts here).
 */
static inline struct ac__chunk *last_chunk(const struct ac__outq *o)
{
	_Static_assert(offsetof(struct ac__chunk, link.tqe_next) == 0,
		       "a chunk's link comes first");
	if (o->q.tqh_last == &o->q.tqh_first)
		return NULL;
	return (struct ac__chunk *)(void *)o->q.tqh_last;
}

/* Room left in the last chunk (0 when there is none, or it is a
 * reference). */
static size_t tail_room(const struct ac__outq *o)
{
	const struct ac__chunk *ch = last_chunk(o);

	return ch && !ch->buf ? ch->cap - ch->len : 0;
}

int ac__outq_write(struct ac__outq *o, const void *data, size_t len)
{
	size_t room = tail_room(o);
	struct ac__chunk *ch;

	if (len <= room) {
		ch = last_chunk(o);
		memcpy(ch->bytes + ch->len, data, len);
		ch->len += (uint32_t)len;
		o->bytes += len;
		return 0;
	}
	/* A new chunk for the rest, so that all or nothing is queued. */
	if (!(ch = chunk_new(len - room > AC__CHUNK_ROOM ? len - room
						       : AC__CHUNK_ROOM)))
		return AC_ENOMEM;
	if (room) {
		struct ac__chunk *last = last_chunk(o);

		memcpy(last->bytes + last->len, data, room);
		last->len += (uint32_t)room;
	}
	memcpy(ch->bytes, (const unsigned char *)data + room, len - room);
	ch->len = (uint32_t)(len - room);
	TAILQ_INSERT_TAIL(&o->q, ch, link);
	o->bytes += len;
	return 0;
}

/* Copies n bytes from the buffers of iov to dst, starting *i buffers and
 * *off bytes in, and moves that cursor past them. */
static void copy_iov(unsigned char *dst, size_t n, const struct iovec *iov,
		     int *i, size_t *off)
{
	while (n) {
		size_t k = iov[*i].iov_len - *off;

		if (k > n)
			k = n;
		if (k) /* an empty buffer's base may be NULL */
			memcpy(dst, (const unsigned char *)iov[*i].iov_base + *off,
			       k);
		dst += k;
		n -= k;
		*off += k;
		if (*off == iov[*i].iov_len) {
			(*i)++;
			*off = 0;
		}
	}
}

int ac__outq_writev(struct ac__outq *o, const struct iovec *iov,
		    size_t total)
{
	struct ac__chunk *last = last_chunk(o), *ch = NULL;
	size_t room = tail_room(o), head = total < room ? total : room;
	size_t off = 0;
	int i = 0;

	/* The new chunk first: failing, nothing has been copied. */
	if (total > room &&
	    !(ch = chunk_new(total - room > AC__CHUNK_ROOM ? total - room
							  : AC__CHUNK_ROOM)))
		return AC_ENOMEM;
	if (head) {
		copy_iov(last->bytes + last->len, head, iov, &i, &off);
		last->len += (uint32_t)head;
	}
	if (ch) {
		copy_iov(ch->bytes, total - head, iov, &i, &off);
		ch->len = (uint32_t)(total - head);
		TAILQ_INSERT_TAIL(&o->q, ch, link);
	}
	o->bytes += total;
	return 0;
}

void ac__outq_append(struct ac__outq *o, struct ac__chunk *ch)
{
	TAILQ_INSERT_TAIL(&o->q, ch, link);
	o->bytes += ch->len - ch->off;
}

int ac__outq_ref(struct ac__outq *o, ac_buf_t *b)
{
	struct ac__chunk *ch;

	if (b->len > UINT32_MAX || !(ch = chunk_new(0)))
		return AC_ENOMEM;
	ch->buf = ac_buf_ref(b);
	ch->len = (uint32_t)b->len;
	ac__outq_append(o, ch);
	return 0;
}

int ac__outq_vprintf(struct ac__outq *o, const char *fmt, va_list ap)
{
	struct ac__chunk *ch = last_chunk(o);
	size_t room = tail_room(o);
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(room ? (char *)ch->bytes + ch->len : NULL, room, fmt, ap);
	if (n < 0) {
		va_end(again);
		return AC_EINVAL;
	}
	/* vsnprintf wants room for its NUL: n < room means it all fit. */
	if ((size_t)n >= room) {
		if (!(ch = chunk_new((size_t)n + 1 > AC__CHUNK_ROOM
					     ? (size_t)n + 1
					     : AC__CHUNK_ROOM))) {
			va_end(again);
			return AC_ENOMEM;
		}
		vsnprintf((char *)ch->bytes, (size_t)n + 1, fmt, again);
		TAILQ_INSERT_TAIL(&o->q, ch, link);
	}
	va_end(again);
	ch->len += (uint32_t)n;
	o->bytes += (size_t)n;
	return 0;
}

void ac__outq_prepend(struct ac__outq *o, struct ac__outq *from)
{
	TAILQ_CONCAT(&from->q, &o->q, link);
	TAILQ_CONCAT(&o->q, &from->q, link);
	o->bytes += from->bytes;
	from->bytes = 0;
}

int ac__outq_iov(const struct ac__outq *o, struct iovec *iov, int max,
		 size_t *total)
{
	const struct ac__chunk *ch;
	int n = 0;

	*total = 0;
	TAILQ_FOREACH(ch, &o->q, link) {
		if (n == max)
			break;
		if (ch->len == ch->off)
			continue;
		iov[n].iov_base = (void *)(chunk_data(ch) + ch->off);
		iov[n].iov_len = ch->len - ch->off;
		*total += iov[n].iov_len;
		n++;
	}
	return n;
}

void ac__outq_consume(struct ac__outq *o, size_t n)
{
	struct ac__chunk *ch;

	o->bytes -= n;
	/* Finished chunks go, and with them any empty one at the front. */
	while ((ch = TAILQ_FIRST(&o->q))) {
		size_t left = ch->len - ch->off;

		if (n < left) {
			ch->off += (uint32_t)n;
			return;
		}
		n -= left;
		TAILQ_REMOVE(&o->q, ch, link);
		ac__chunk_free(ch);
	}
}

void ac__outq_clear(struct ac__outq *o)
{
	struct ac__chunk *ch;

	while ((ch = TAILQ_FIRST(&o->q))) {
		TAILQ_REMOVE(&o->q, ch, link);
		ac__chunk_free(ch);
	}
	o->bytes = 0;
}

ssize_t ac__outq_send(struct ac__outq *o, int fd, bool *full)
{
	struct iovec iov[64];
	struct msghdr mh = {.msg_iov = iov};
	size_t want;
	ssize_t w;

	mh.msg_iovlen = (size_t)ac__outq_iov(o, iov, 64, &want);
	do
		w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return AC_EAGAIN;
		/* EPIPE: the peer is gone, like a reset. */
		return errno == EPIPE ? AC_ECONNRESET : -errno;
	}
	ac__outq_consume(o, (size_t)w);
	*full = (size_t)w < want;
	return w;
}
