/*
 * frame.c: the built-in frame decoders. Pure functions of their input (no
 * state, no allocation), so they can be fuzzed on their own; see
 * ac_decode_fn in actorconn.h for the contract.
 */
#include <stdint.h>
#include <string.h>

#include "actorconn.h"

AC_EXPORT int ac_decode_raw(const void *buf, size_t len, size_t max_frame,
			    ac_frame_t *out)
{
	size_t n = len < max_frame ? len : max_frame;

	if (n == 0)
		return 0;
	out->off = 0;
	out->len = n;
	out->consumed = n;
	out->need = 0;
	return 1;
}

/* A line is at most max_frame bytes, plus its "\n" or "\r\n". */
AC_EXPORT int ac_decode_line(const void *buf, size_t len, size_t max_frame,
			     ac_frame_t *out)
{
	const unsigned char *p = buf;
	size_t scan = max_frame <= SIZE_MAX - 2 ? max_frame + 2 : SIZE_MAX;
	const unsigned char *nl = memchr(p, '\n', len < scan ? len : scan);
	size_t flen;

	out->need = 0;
	if (!nl)
		return len >= scan ? AC_EFRAME : 0;
	flen = (size_t)(nl - p);
	out->consumed = flen + 1;
	if (flen > 0 && p[flen - 1] == '\r')
		flen--;
	if (flen > max_frame)
		return AC_EFRAME;
	out->off = 0;
	out->len = flen;
	return 1;
}

AC_EXPORT int ac_decode_len32(const void *buf, size_t len, size_t max_frame,
			      ac_frame_t *out)
{
	const unsigned char *p = buf;
	size_t n;

	if (len < 4) {
		out->need = 4;
		return 0;
	}
	n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (n > max_frame)
		return AC_EFRAME;
	if (len - 4 < n) {
		out->need = 4 + n;
		return 0;
	}
	out->off = 4;
	out->len = n;
	out->consumed = 4 + n;
	out->need = 0;
	return 1;
}
