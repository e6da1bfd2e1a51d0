/*
 * htab.h: a loop's table of handle slots (handle.c).
 *
 * Handle bits: 63..56 owner loop, 55..32 slot, 31..0 generation (never 0).
 * Each loop owns its own table, so only the owner ever allocates or frees
 * a slot and no lock is needed; other threads only read (handle.h).
 */
#ifndef AC_HTAB_H
#define AC_HTAB_H

#include "common.h"

#include "segtab.h"

#define AC__SLOT_BITS 24
#define AC__MAX_SLOTS (1u << AC__SLOT_BITS)
#define AC__HTAB_SHIFT 10   /* segment s holds 1024 << s slots */
#define AC__HTAB_SEGMENTS 15 /* 1024 * (2^15 - 1) >= 2^24 */

struct ac__slot {
	ac_conn_t *conn;    /* published with release, read with acquire */
	uint32_t gen;       /* bumped when the slot is released */
	uint32_t next_free; /* owner only; index + 1, 0 ends the list */
};

struct ac__htab {
	struct ac__segtab tab; /* of struct ac__slot; read by other threads */
	uint32_t nslots;       /* slots ever handed out */
	uint32_t free_head;    /* index + 1 */
	uint32_t live;
};

static inline ac_handle_t ac__handle_make(int loop, uint32_t slot,
					  uint32_t gen)
{
	return ((uint64_t)loop << 56) | ((uint64_t)slot << 32) | gen;
}

static inline uint32_t ac__handle_slot(ac_handle_t h)
{
	return (uint32_t)(h >> 32) & (AC__MAX_SLOTS - 1);
}

static inline uint32_t ac__handle_gen(ac_handle_t h)
{
	return (uint32_t)h;
}

static inline struct ac__slot *ac__htab_slot(struct ac__htab *t, uint32_t idx)
{
	return ac__segtab_at(&t->tab, idx);
}

void ac__htab_init(struct ac__htab *t);
int ac__htab_alloc(struct ac__htab *t, uint32_t *idx, uint32_t *gen);
void ac__htab_release(struct ac__htab *t, uint32_t idx);
void ac__htab_destroy(struct ac__htab *t);

#endif /* AC_HTAB_H */
