/*
 * fuzz_frame.c: libFuzzer harness for one built-in frame decoder, chosen
 * when it is built: -DFUZZ_FRAMING=AC_FRAME_RAW, AC_FRAME_LINE or
 * AC_FRAME_LEN32 (make fuzz builds one binary per decoder).
 *
 * Input: byte 0 picks max_frame, byte 1 where the stream is cut in two
 * reads; the rest is the stream. Beyond what ASan and UBSan check (every
 * call gets an exactly sized heap copy, so a read past the input is
 * caught), each call is checked against a model of the decoder's format:
 *
 *   - the result is 1 (a frame), 0 (need more) or AC_EFRAME;
 *   - a frame lies inside the input, off + len <= consumed <= input
 *     length, never longer than max_frame, and consumed >= 1 (a decoder
 *     that consumes nothing would stall its connection);
 *   - "need more" gives need == 0 or need > the input length;
 *   - every field equals what an independent reading of the format says.
 *
 * And the stream as a connection reads it: cut into two reads at the cut
 * point, honouring need between them as conn.c does, it yields the same
 * frames and the same error as the whole stream decoded at once (for raw
 * framing, where a read is a frame, the same bytes in the same order).
 * The reads are fed by fuzz.h's split-reads driver.
 */
#include <actorconn.h>

#include "fuzz.h"

#ifndef FUZZ_FRAMING
#error "build with -DFUZZ_FRAMING=AC_FRAME_RAW, AC_FRAME_LINE or AC_FRAME_LEN32"
#endif

static ac_decode_fn decoder(void)
{
	switch (FUZZ_FRAMING) {
	case AC_FRAME_RAW:
		return ac_decode_raw;
	case AC_FRAME_LINE:
		return ac_decode_line;
	default:
		return ac_decode_len32;
	}
}

/* 0: no limit; 255: the library default (1 MiB); else the byte itself,
 * so that small limits are met often. */
static size_t pick_max_frame(uint8_t b)
{
	if (b == 0)
		return SIZE_MAX;
	if (b == 255)
		return (size_t)1 << 20;
	return b;
}

/* The format, read independently of src/frame.c. */
static int model(const unsigned char *p, size_t n, size_t max,
		 ac_frame_t *f)
{
	memset(f, 0, sizeof(*f));
	switch (FUZZ_FRAMING) {
	case AC_FRAME_RAW:
		if (n == 0)
			return 0;
		f->len = f->consumed = n < max ? n : max;
		return 1;
	case AC_FRAME_LINE: {
		/* The first "\n"; the frame is what precedes it, without
		 * one "\r" just before it. A line that cannot end within
		 * max_frame bytes plus "\r\n" is an error as soon as that
		 * many bytes are in without a "\n". */
		size_t i = 0, flen;

		while (i < n && p[i] != '\n')
			i++;
		if (i == n)
			return max != SIZE_MAX && n >= max + 2 ? AC_EFRAME : 0;
		if (max != SIZE_MAX && i >= max + 2)
			return AC_EFRAME;
		flen = i > 0 && p[i - 1] == '\r' ? i - 1 : i;
		if (flen > max)
			return AC_EFRAME;
		f->len = flen;
		f->consumed = i + 1;
		return 1;
	}
	default: {
		uint64_t len;

		if (n < 4) {
			f->need = 4;
			return 0;
		}
		len = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
		      (uint64_t)p[2] << 8 | p[3];
		if (len > max)
			return AC_EFRAME;
		if (n - 4 < len) {
			f->need = 4 + (size_t)len;
			return 0;
		}
		f->off = 4;
		f->len = (size_t)len;
		f->consumed = 4 + (size_t)len;
		return 1;
	}
	}
}

/* One decoder call on an exactly sized copy, checked. */
static int decode(const unsigned char *p, size_t n, size_t max, ac_frame_t *f)
{
	char *copy = fuzz_copy(p, n);
	ac_frame_t want;
	int r, w;

	/* Poison the output: the decoder must set what it reports. */
	memset(f, 0xa5, sizeof(*f));
	r = decoder()(copy, n, max, f);
	free(copy);
	w = model(p, n, max, &want);
	FUZZ_CHECK(r == 1 || r == 0 || r == AC_EFRAME);
	FUZZ_CHECK(r == w);
	if (r == 1) {
		FUZZ_CHECK(f->off <= f->consumed && f->len <= f->consumed - f->off);
		FUZZ_CHECK(f->consumed <= n);
		FUZZ_CHECK(f->consumed >= 1);
		FUZZ_CHECK(f->len <= max);
		FUZZ_CHECK(f->off == want.off && f->len == want.len &&
			   f->consumed == want.consumed);
	} else if (r == 0) {
		FUZZ_CHECK(f->need == 0 || f->need > n);
		FUZZ_CHECK(f->need == want.need);
	}
	return r;
}

/* The driver's step: one checked decoder call; a frame is an item. */
static int decode_step(const unsigned char *buf, size_t have, void *arg,
		       struct fuzz_run *run, size_t *consumed, size_t *need)
{
	size_t max = *(const size_t *)arg;
	ac_frame_t f;
	int rc = decode(buf, have, max, &f);

	if (rc < 0) {
		run->err = "AC_EFRAME";
		return -1;
	}
	if (rc == 0) {
		*need = f.need;
		return 0;
	}
	fuzz_put(run, buf + f.off, f.len);
	fuzz_end_item(run);
	*consumed = f.consumed;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run whole, cut;
	size_t max, n;

	if (size < 2)
		return 0;
	max = pick_max_frame(data[0]);
	n = size - 2;
	fuzz_split(data + 2, n, fuzz_cut(data[1], n), decode_step, &max,
		   &whole, &cut);
	if (FUZZ_FRAMING == AC_FRAME_RAW) {
		/* Reads are frames: the same bytes in the same order, but
		 * the split may add one frame boundary. */
		FUZZ_CHECK(whole.nbytes == cut.nbytes);
		FUZZ_CHECK(whole.nbytes == 0 ||
			   memcmp(whole.bytes, cut.bytes, whole.nbytes) == 0);
		FUZZ_CHECK(cut.nitems >= whole.nitems);
		FUZZ_CHECK(!whole.err && !cut.err);
		FUZZ_CHECK(whole.left == 0 && cut.left == 0);
	} else {
		fuzz_same(&whole, &cut);
	}
	fuzz_run_free(&whole);
	fuzz_run_free(&cut);
	return 0;
}
