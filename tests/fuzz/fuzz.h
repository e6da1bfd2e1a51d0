/* fuzz.h: shared by the libFuzzer harnesses in tests/fuzz (make fuzz). */
#ifndef AC_FUZZ_H
#define AC_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An invariant failed: say which, then abort so that libFuzzer saves the
 * input as a crash artifact. */
#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",    \
				__FILE__, __LINE__, #cond);                 \
			abort();                                            \
		}                                                           \
	} while (0)

/* A heap copy of exactly n bytes: AddressSanitizer then catches any read
 * past the n bytes a parser was given (its malloc(0) is not NULL either). */
static inline char *fuzz_copy(const void *p, size_t n)
{
	char *c = malloc(n);

	FUZZ_CHECK(c != NULL || n == 0);
	if (n)
		memcpy(c, p, n);
	return c;
}

#endif
