/*
 * spsc.h: the single-producer, single-consumer ring that carries messages
 * from one loop to another.
 *
 * Why not ck_ring (nor mpsc.h, the foreign threads' ring, which needs a
 * compare-and-swap per message that a lone producer does not): ck_ring's
 * producer loads the consumer's index on every enqueue and stores its own
 * on every enqueue, and its consumer does the same, so both index cache
 * lines move between the two cores for every message. Here each side
 * keeps a private copy of the other side's index and re-reads the shared
 * one only when the ring looks full (producer) or empty (consumer), and
 * the producer stages messages and publishes a whole batch with one store
 * (ac__spsc_publish), at the end of its callback, as Seastar's cross-core
 * queues do. `actorconn-bench mailbox` shows the difference (README,
 * Performance: loop -> loop).
 *
 * Memory layout: four cache lines, one per writer and role, so that a
 * side's private fields never share a line with what the other side reads.
 * Indexes run free (mod 2^32); tail - head is the number of messages in
 * the ring, at most mask + 1. The producer's limit is head as it last
 * read it plus the capacity: it stages freely below that, so one compare
 * says "room" on the fast path, and the same field lets the mailbox send
 * every message through its slow path while an overflow list waits.
 *
 * Streaming stores: a slot's line was last read by the consumer's core,
 * so an ordinary store to it must first take the line back (a read for
 * ownership) and waits for it: perf put 62% of the loop -> loop
 * producer's samples on those stores, and they, not the ring's indexes,
 * held the ring to about 80M messages/s on the development machine (AMD
 * EPYC under KVM, whose two virtual CPUs the host may place in different
 * core complexes). On x86-64 the producer writes a slot with
 * non-temporal stores (MOVNTI) instead, which go out through a
 * write-combining buffer without taking the line; the consumer reads the
 * slot from the shared cache or memory, in ring order, which the hardware
 * prefetches. A two-thread harness with this protocol and the loops'
 * sleep protocol (32-byte slots) moved 62-125M messages/s with ordinary
 * stores and 467-486M with streaming ones, three runs each taking turns;
 * `actorconn-bench mailbox`, loop -> loop, batch 64, went from 79-82M to
 * 147-179M messages/s. A loop's ring to itself keeps ordinary stores: its
 * consumer is the same core, which has the line. ThreadSanitizer does not
 * instrument the streaming stores, so its builds use ordinary ones, whose
 * ordering it checks.
 *
 * Ordering, the whole of it: the producer's release store of tail pairs
 * with the consumer's acquire load of tail (the slots up to tail are
 * written); the consumer's release store of head pairs with the
 * producer's acquire load of head (the slots below head have been read,
 * so they may be overwritten). Streaming stores are not ordered with other
 * stores, so a producer that used them fences (SFENCE) before its release
 * store of tail; a store is never ordered before an earlier load on
 * x86-64, streaming or not, so the acquire load of head still keeps the
 * producer's next stores to a slot after the consumer's reads of it.
 */
#ifndef AC_SPSC_H
#define AC_SPSC_H

#include "common.h"
#include "mailbox.h"

#if defined(__SANITIZE_THREAD__)
#define AC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AC__TSAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(AC__TSAN)
#define AC__SPSC_STREAM 1 /* streaming stores to other loops' rings */
#include <emmintrin.h>
#endif

struct ac__spsc {
	/* The producer's own line. */
	uint32_t next AC__ALIGNED;  /* staged up to here (not all published) */
	uint32_t limit;             /* may stage up to here without reading
				       head: head as last read + capacity, or
				       held at next (ac__spsc_hold) */
	uint32_t ptail;             /* tail as last published */
	uint32_t pmask;
	struct ac__msg *pslots;
	int listed;                 /* the producer's mailbox: in its list of
				       consumers to wake (mailbox.c) */
	bool stream;                /* slots take streaming stores: the
				       consumer is another thread */
	/* Written by the producer when it publishes; read by the consumer
	 * when its copy runs out. */
	uint32_t tail AC__ALIGNED;
	/* The consumer's own line. */
	uint32_t cnext AC__ALIGNED; /* the next slot to take */
	uint32_t tail_seen;         /* tail, as the consumer last read it */
	uint32_t cmask;
	struct ac__msg *cslots;
	/* Written by the consumer after each take; read by the producer
	 * when its limit says full. */
	uint32_t head AC__ALIGNED;
};

/* A ring of capacity slots (a power of two); NULL without memory. */
struct ac__spsc *ac__spsc_new(unsigned capacity);
void ac__spsc_free(struct ac__spsc *r);

/*
 * The producer: the slot the next message goes in, to be written in
 * place and then staged with ac__spsc_stage; NULL when the producer's
 * limit says full, without reading the consumer's index (see
 * ac__spsc_refresh). No lock, no allocation, no shared line touched.
 * Writing the message into the slot, rather than copying a message built
 * elsewhere, lets the compiler store each field once: a 32-byte copy of a
 * message just built on the stack stalls on store-to-load forwarding
 * (16-byte loads over narrower stores), which perf showed as the hottest
 * instruction of the loop -> loop path; writing in place took
 * `actorconn-bench mailbox` loop -> loop, batch 64, from 26-28M to 43-47M
 * messages/s in the same runs.
 */
static inline struct ac__msg *ac__spsc_slot(struct ac__spsc *r)
{
	if (AC__UNLIKELY(r->next == r->limit))
		return NULL;
	return &r->pslots[r->next & r->pmask];
}

/*
 * The producer: writes a message of these fields in the slot that
 * ac__spsc_slot gave, field by field (streaming stores where r->stream).
 * The layout the streaming path assumes is checked below.
 */
static inline __attribute__((always_inline)) void
ac__spsc_write(const struct ac__spsc *r, struct ac__msg *slot, uint32_t kind,
	       int32_t i, ac_handle_t h, union ac__msg_a a, void *b)
{
#ifdef AC__SPSC_STREAM
	if (AC__LIKELY(r->stream)) {
		long long *w = (long long *)(void *)slot;
		uint64_t av;

		memcpy(&av, &a, sizeof(av));
		_mm_stream_si64(w, (long long)(kind | (uint64_t)(uint32_t)i
							 << 32));
		_mm_stream_si64(w + 1, (long long)h);
		_mm_stream_si64(w + 2, (long long)av);
		_mm_stream_si64(w + 3, (long long)(uintptr_t)b);
		return;
	}
#endif
	slot->kind = kind;
	slot->i = i;
	slot->h = h;
	slot->a = a;
	slot->b = b;
}

#ifdef AC__SPSC_STREAM
_Static_assert(offsetof(struct ac__msg, kind) == 0 &&
		       offsetof(struct ac__msg, i) == 4 &&
		       offsetof(struct ac__msg, h) == 8 &&
		       offsetof(struct ac__msg, a) == 16 &&
		       offsetof(struct ac__msg, b) == 24 &&
		       sizeof(union ac__msg_a) == 8 &&
		       sizeof(struct ac__msg) == 32,
	       "ac__spsc_write's streaming path: the message layout");
#endif

/* The producer: stages the slot ac__spsc_slot gave; returns how many
 * messages are staged and not yet published. */
static inline uint32_t ac__spsc_stage(struct ac__spsc *r)
{
	return ++r->next - r->ptail;
}

/* The producer: re-reads the consumer's index; whether there is room. */
static inline bool ac__spsc_refresh(struct ac__spsc *r)
{
	/* Acquire: the consumer has read the slots below head, so they may
	 * be overwritten. */
	r->limit = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) + r->pmask + 1;
	return r->next != r->limit;
}

/* The producer: makes ac__spsc_slot fail until the next refresh (while
 * earlier messages wait elsewhere, later ones must queue behind them). */
static inline void ac__spsc_hold(struct ac__spsc *r)
{
	r->limit = r->next;
}

/* The producer: stages a copy of m. False when the ring is full (nothing
 * staged). For the slow paths; the hot one writes in place. */
static inline bool ac__spsc_put(struct ac__spsc *r, const struct ac__msg *m)
{
	struct ac__msg *slot = ac__spsc_slot(r);

	if (!slot) {
		if (!ac__spsc_refresh(r))
			return false;
		slot = ac__spsc_slot(r);
	}
	*slot = *m;
	ac__spsc_stage(r);
	return true;
}

/* The producer: whether staged messages wait for ac__spsc_publish. */
static inline bool ac__spsc_staged(const struct ac__spsc *r)
{
	return r->next != r->ptail;
}

/* The producer: makes every staged message visible to the consumer. */
static inline void ac__spsc_publish(struct ac__spsc *r)
{
	r->ptail = r->next;
#ifdef AC__SPSC_STREAM
	/* Streaming stores are ordered by nothing else. */
	if (r->stream)
		_mm_sfence();
#endif
	/* Release: the staged slots are written before tail moves. */
	__atomic_store_n(&r->tail, r->next, __ATOMIC_RELEASE);
}

/* The consumer: how many published messages wait at ac__spsc_at(r, 0)
 * onwards (re-reading the producer's tail only when its copy says none). */
static inline uint32_t ac__spsc_ready(struct ac__spsc *r)
{
	uint32_t c = r->cnext;

	if (c == r->tail_seen)
		/* Acquire: the slots below tail are written. */
		r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	return r->tail_seen - c;
}

/* The consumer: the i-th waiting message, read in place (i < ready). */
static inline struct ac__msg *ac__spsc_at(struct ac__spsc *r, uint32_t i)
{
	return &r->cslots[(r->cnext + i) & r->cmask];
}

/* The consumer: hands the first n waiting slots back, with one store. */
static inline void ac__spsc_release(struct ac__spsc *r, uint32_t n)
{
	r->cnext += n;
	/* Release: our reads of those slots complete before the producer
	 * can see them free. */
	__atomic_store_n(&r->head, r->cnext, __ATOMIC_RELEASE);
}

/* The consumer: copies up to max waiting messages out and releases them. */
static inline unsigned ac__spsc_take(struct ac__spsc *r, struct ac__msg *out,
				     unsigned max)
{
	uint32_t n = ac__spsc_ready(r);

	if (n > max)
		n = max;
	for (uint32_t i = 0; i < n; i++)
		out[i] = *ac__spsc_at(r, i);
	if (n)
		ac__spsc_release(r, n);
	return n;
}

/* Any thread, a snapshot: messages published and not yet taken. */
static inline uint32_t ac__spsc_depth(const struct ac__spsc *r)
{
	return __atomic_load_n(&r->tail, __ATOMIC_RELAXED) -
	       __atomic_load_n(&r->head, __ATOMIC_RELAXED);
}

#endif /* AC_SPSC_H */
