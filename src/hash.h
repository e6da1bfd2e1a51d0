/*
 * hash.h: PRIVATE to libactorconn. One keyed hash of byte strings for the
 * library's tables. Not cryptographic; a seed drawn per table makes it
 * costly to aim collisions at a table from the network.
 */
#ifndef AC_HASH_H
#define AC_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AC__HASH_K 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio */

static inline uint64_t ac__hash_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Eight bytes at a time, each word folded in with a multiply and a
 * rotate; the length and a final mix spread every input bit. */
static inline uint64_t ac__hash(const void *data, size_t n, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = seed ^ ((uint64_t)n * AC__HASH_K), w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ (w * AC__HASH_K)) * AC__HASH_K;
		h = (h << 31) | (h >> 33);
	}
	w = 0;
	if (n)
		memcpy(&w, p, n);
	h ^= w * AC__HASH_K;
	return ac__hash_mix(h);
}

#endif /* AC_HASH_H */
