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

/* ---- the split-reads driver ------------------------------------------------
 * A stream is decoded as a connection reads it: each read is appended to
 * a buffer that holds the undecoded rest; after it, items are decoded
 * until the decoder wants more, and it is not called again until the
 * buffer reaches the length it said it needs (as conn.c and the broker
 * do). fuzz_split decodes the input whole, then cut into two reads at a
 * point the input picks; a harness checks that both give the same items
 * (fuzz_same), or what its format allows instead.
 */

/* What a stream decoded into. */
struct fuzz_run {
	unsigned char *bytes; /* the items' bytes, back to back */
	size_t nbytes;
	size_t *ends;         /* where in bytes each item ends */
	size_t nitems;
	const char *err;      /* what stopped the stream, or NULL */
	size_t left;          /* bytes left undecoded */
};

/* Appends n bytes to the item being decoded. */
static inline void fuzz_put(struct fuzz_run *run, const void *p, size_t n)
{
	run->bytes = realloc(run->bytes, run->nbytes + n + 1);
	FUZZ_CHECK(run->bytes != NULL);
	if (n)
		memcpy(run->bytes + run->nbytes, p, n);
	run->nbytes += n;
}

/* Ends the item being decoded. */
static inline void fuzz_end_item(struct fuzz_run *run)
{
	run->ends = realloc(run->ends, (run->nitems + 1) * sizeof(size_t));
	FUZZ_CHECK(run->ends != NULL);
	run->ends[run->nitems++] = run->nbytes;
}

/*
 * One decoder call on buf[0, have): 1 when it decoded an item (put into
 * run with fuzz_put and fuzz_end_item) that took *consumed bytes; 0 when
 * it needs more, *need being the length at which to try again (0: any);
 * -1 when it failed, run->err saying why.
 */
typedef int (*fuzz_decode_fn)(const unsigned char *buf, size_t have,
			      void *arg, struct fuzz_run *run,
			      size_t *consumed, size_t *need);

/* Feeds data as reads of the given sizes to decode. */
static inline void fuzz_stream(const unsigned char *data, const size_t *reads,
			       int nreads, fuzz_decode_fn decode, void *arg,
			       struct fuzz_run *run)
{
	unsigned char *buf = NULL;
	size_t have = 0, need = 0, at = 0;

	memset(run, 0, sizeof(*run));
	for (int r = 0; r < nreads && !run->err; r++) {
		buf = realloc(buf, have + reads[r] + 1);
		FUZZ_CHECK(buf != NULL);
		memcpy(buf + have, data + at, reads[r]);
		have += reads[r];
		at += reads[r];
		if (reads[r] == 0 || (need && have < need))
			continue;
		need = 0;
		while (have > 0) {
			size_t consumed = 0;
			int rc = decode(buf, have, arg, run, &consumed, &need);

			if (rc < 0) {
				FUZZ_CHECK(run->err != NULL);
				break;
			}
			if (rc == 0)
				break;
			FUZZ_CHECK(consumed >= 1 && consumed <= have);
			memmove(buf, buf + consumed, have - consumed);
			have -= consumed;
		}
	}
	run->left = have;
	free(buf);
}

/* Where byte b cuts n bytes of input: 0 .. n. */
static inline size_t fuzz_cut(uint8_t b, size_t n)
{
	return n ? (size_t)b * n / 255 : 0;
}

/* Decodes p[0, n) whole into *whole, and as two reads cut at cut into
 * *split. */
static inline void fuzz_split(const unsigned char *p, size_t n, size_t cut,
			      fuzz_decode_fn decode, void *arg,
			      struct fuzz_run *whole, struct fuzz_run *split)
{
	size_t reads[2] = {cut, n - cut};

	fuzz_stream(p, &n, 1, decode, arg, whole);
	fuzz_stream(p, reads, 2, decode, arg, split);
}

/* The same bytes, items, error and (without an error) bytes left. */
static inline void fuzz_same(const struct fuzz_run *a,
			     const struct fuzz_run *b)
{
	FUZZ_CHECK(a->nbytes == b->nbytes);
	FUZZ_CHECK(a->nbytes == 0 || memcmp(a->bytes, b->bytes, a->nbytes) == 0);
	FUZZ_CHECK(a->nitems == b->nitems);
	FUZZ_CHECK(a->nitems == 0 ||
		   memcmp(a->ends, b->ends, a->nitems * sizeof(size_t)) == 0);
	FUZZ_CHECK((a->err == NULL) == (b->err == NULL));
	FUZZ_CHECK(a->err == NULL || strcmp(a->err, b->err) == 0);
	FUZZ_CHECK(a->err || a->left == b->left);
}

static inline void fuzz_run_free(struct fuzz_run *run)
{
	free(run->bytes);
	free(run->ends);
}

#endif
