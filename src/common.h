/*
 * common.h: PRIVATE to libactorconn, like every header in src/ (nothing
 * here is installed or part of the ABI). What every library source needs
 * first: the build configuration, the public header and a few compiler
 * helpers. Each subsystem has its own header beside its .c file, in the
 * manner of libevent's *-internal.h; a source includes the ones it uses.
 */
#ifndef AC_COMMON_H
#define AC_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "actorconn.h"

#define AC__CACHELINE 64
#define AC__ALIGNED __attribute__((aligned(AC__CACHELINE)))
#define AC__LIKELY(x) __builtin_expect(!!(x), 1)
#define AC__UNLIKELY(x) __builtin_expect(!!(x), 0)

#define AC__MAX_LOOPS 256

/*
 * A public struct's reserved tail (actorconn.h, "growing structs" in
 * actorconn(7)) is all zero: a later version gives those bytes meaning,
 * with zero as the default, so a caller that left garbage there would
 * one day be misread. Input structs with anything else are refused.
 */
static inline bool ac__reserved_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

#define AC__RESERVED_MSG \
	"reserved fields are not zero: zero the whole struct, then set fields"

typedef struct ac__loop ac__loop_t;
typedef struct ac__proto ac__proto_t;

#endif /* AC_COMMON_H */
