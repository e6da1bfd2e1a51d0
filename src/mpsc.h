/*
 * mpsc.h: the multi-producer, single-consumer ring that carries messages
 * from threads that are not loops to a loop (its `foreign` mailbox).
 *
 * Why not ck_ring's MPSC enqueue, which this replaces: a foreign post paid
 * a compare-and-swap to claim a slot, a copy of a message built on the
 * stack (a store-to-load forwarding stall), a wait for earlier claimants
 * to publish in ticket order, a load of the consumer's index, and then the
 * wake-up protocol's full fence (ac__wake) before reading the consumer's
 * flag: two serialising instructions per message, each of which also
 * waits for the slot's stores to leave the store buffer. Here a post is one
 * compare-and-swap and nothing else:
 *
 *  - The claim word holds the next position and the consumer's "asleep"
 *    bit together, so the CAS that claims a slot also learns, atomically,
 *    whether the consumer has gone to sleep on this ring (and clears the
 *    bit: that producer alone wakes it). A producer that sees the bit
 *    clear needs no fence: the consumer sets the bit only with a CAS that
 *    checks that every claim so far has been taken (ac__mpsc_sleep), so a
 *    claim the consumer has not taken keeps it from sleeping.
 *  - Each slot says itself whether it is published: the top bit of its
 *    kind is a lap tag, flipped every time the ring wraps, stored last
 *    with release. Producers publish in any order, nobody waits for an
 *    earlier claimant, and the consumer reads no producer index.
 *  - Producers share a copy of the consumer's index and re-read the real
 *    one only when the copy says full.
 *  - Messages are written in place, field by field.
 *
 * The figure that justifies it, `actorconn-bench mailbox --reps 3`,
 * foreign -> loop, three runs interleaved on the shared 2-core machine:
 * medians 28.7M messages/s through ck_ring, 42.4M/s through this ring.
 *
 * No streaming stores here, unlike spsc.h: the consumer finds the end of
 * what is published by reading the next slot's tag, so it holds the line
 * a producer writes next, and streaming stores to a line another core
 * holds cost more than they save (2.2M messages/s against 41M with
 * ordinary stores, with a fence after the tag as well as before it).
 *
 * Ordering, the whole of it:
 *  - A slot's tag store (release) pairs with the consumer's tag load
 *    (acquire): the slot's other fields are written.
 *  - The consumer's store of head (release) pairs with a producer's load
 *    of head (acquire): the slots below head have been read and may be
 *    overwritten. A producer that uses the shared copy instead loads it
 *    with acquire from a producer that stored it with release after its
 *    own acquire load of head, which carries the same guarantee.
 *  - The claim word is only ever changed by CAS (acquire-release), so
 *    claims and the consumer's "asleep" CAS are totally ordered: either
 *    the consumer's CAS comes first and the producer sees the bit (and
 *    wakes it), or the claim comes first and the consumer's CAS fails or
 *    sees a position it has not taken (and it does not sleep).
 */
#ifndef AC_MPSC_H
#define AC_MPSC_H

#include "common.h"
#include "mailbox.h"

#define AC__MPSC_ASLEEP (1ull << 32) /* in claim: wake me */
#define AC__MSG_LAP 0x80000000u      /* in a slot's kind: the lap tag */

struct ac__mpsc {
	/* The producers' line. */
	uint64_t claim AC__ALIGNED; /* low 32 bits: the next position to
				       claim; AC__MPSC_ASLEEP */
	uint32_t head_seen;         /* head, as a producer last read it */
	uint32_t pmask;
	struct ac__msg *pslots;
	/* The consumer's own line. */
	uint32_t cnext AC__ALIGNED; /* the next position to take */
	uint32_t cmask;
	struct ac__msg *cslots;
	/* Written by the consumer after each take; read by producers when
	 * their copy says full. */
	uint32_t head AC__ALIGNED;
};

/* A ring of capacity slots (a power of two), asleep; NULL without memory. */
struct ac__mpsc *ac__mpsc_new(unsigned capacity);
void ac__mpsc_free(struct ac__mpsc *r);

/* The tag a message at position pos carries when it is published: lap 0
 * has the bit set, so that the zeroed slots of a new ring read as empty. */
static inline uint32_t ac__mpsc_tag(uint32_t pos, uint32_t mask)
{
	return pos & (mask + 1) ? 0 : AC__MSG_LAP;
}

/*
 * Any thread that is not the consumer: places the message. Returns 1 when
 * it was placed and the consumer must be woken (it was asleep; the caller
 * wakes it, after this returns), 0 when it was placed, AC_EAGAIN when the
 * ring is full. Lock-free, no allocation.
 */
static inline int ac__mpsc_put(struct ac__mpsc *r, uint32_t kind, int32_t i,
			       ac_handle_t h, union ac__msg_a a, void *b)
{
	uint64_t w = __atomic_load_n(&r->claim, __ATOMIC_RELAXED);
	struct ac__msg *slot;
	uint32_t pos;

	for (;;) {
		pos = (uint32_t)w;
		if (AC__UNLIKELY(pos - __atomic_load_n(&r->head_seen,
						       __ATOMIC_ACQUIRE) >
				 r->pmask)) {
			uint32_t head = __atomic_load_n(&r->head,
							__ATOMIC_ACQUIRE);

			__atomic_store_n(&r->head_seen, head,
					 __ATOMIC_RELEASE);
			if (pos - head > r->pmask)
				return AC_EAGAIN;
		}
		/* Claims pos and clears the asleep bit. On failure w is
		 * the current word: try again from it. */
		if (__atomic_compare_exchange_n(&r->claim, &w,
						(uint64_t)(pos + 1), true,
						__ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			break;
	}
	slot = &r->pslots[pos & r->pmask];
	slot->i = i;
	slot->h = h;
	slot->a = a;
	slot->b = b;
	/* Release: the fields above are written before the tag says so. */
	__atomic_store_n(&slot->kind, kind | ac__mpsc_tag(pos, r->pmask),
			 __ATOMIC_RELEASE);
	return (w & AC__MPSC_ASLEEP) != 0;
}

/* The consumer: the message at cnext + k if it is published, else NULL
 * (its kind still carries the lap tag: ac__mpsc_kind). */
static inline struct ac__msg *ac__mpsc_at(struct ac__mpsc *r, uint32_t k)
{
	uint32_t pos = r->cnext + k;
	struct ac__msg *m = &r->cslots[pos & r->cmask];
	/* Acquire: pairs with the producer's release of the tag. */
	uint32_t kind = __atomic_load_n(&m->kind, __ATOMIC_ACQUIRE);

	if ((kind ^ ac__mpsc_tag(pos, r->cmask)) & AC__MSG_LAP)
		return NULL;
	return m;
}

/* The consumer: copies up to max published messages out, in order, and
 * hands their slots back with one store. */
static inline unsigned ac__mpsc_take(struct ac__mpsc *r, struct ac__msg *out,
				     unsigned max)
{
	unsigned n = 0;
	struct ac__msg *m;

	while (n < max && (m = ac__mpsc_at(r, n))) {
		out[n].kind = m->kind & ~AC__MSG_LAP;
		out[n].i = m->i;
		out[n].h = m->h;
		out[n].a = m->a;
		out[n].b = m->b;
		n++;
	}
	if (n) {
		r->cnext += n;
		/* Release: our reads of those slots complete before a
		 * producer can see them free. */
		__atomic_store_n(&r->head, r->cnext, __ATOMIC_RELEASE);
	}
	return n;
}

/*
 * The consumer, having taken everything published: marks the ring asleep,
 * so that the next producer wakes it. False when it must not sleep on this
 * ring: a producer claimed a slot and has not published it yet (it saw the
 * consumer awake and will not wake it: the caller comes back soon), or a
 * claim raced with this call (the caller takes again).
 */
static inline bool ac__mpsc_sleep(struct ac__mpsc *r)
{
	uint64_t w = __atomic_load_n(&r->claim, __ATOMIC_RELAXED);

	if (w & AC__MPSC_ASLEEP)
		return true;
	if ((uint32_t)w != r->cnext)
		return false;
	return __atomic_compare_exchange_n(&r->claim, &w,
					   w | AC__MPSC_ASLEEP, false,
					   __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}

/* Any thread, a snapshot: messages claimed and not yet taken. */
static inline uint32_t ac__mpsc_depth(const struct ac__mpsc *r)
{
	return (uint32_t)__atomic_load_n(&r->claim, __ATOMIC_RELAXED) -
	       __atomic_load_n(&r->head, __ATOMIC_RELAXED);
}

#endif /* AC_MPSC_H */
