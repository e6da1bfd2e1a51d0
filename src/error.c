/*
 * error.c: names, messages and close-reason indexes of the AC_E* codes,
 * from the one table in actorconn.h, and of the negative errno values the
 * library passes on. Needs nothing but the public header.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "actorconn.h"

/* Codes above this are negative errno values (Linux keeps errno below
 * 4096); the library's own codes are below AC__ERR_LIB. */
static bool is_errno(int code)
{
	return code < 0 && code > AC__ERR_LIB;
}

AC_EXPORT const char *ac_strerror(int code)
{
	const char *d;

	switch (code) {
	case AC_OK:
		return "success";
#define AC__ERR_MSG(name, val, cr, msg)                                      \
	case AC_##name:                                                      \
		return msg;
		AC_ERRNO_MAP(AC__ERR_MSG)
#undef AC__ERR_MSG
	}
	/* strerrordesc_np: the system's static text, no buffer to share
	 * between threads (strerror may use one for unknown values). */
	if (is_errno(code) && (d = strerrordesc_np(-code)))
		return d;
	return "unknown error";
}

AC_EXPORT const char *ac_err_name(int code)
{
	const char *n;

	switch (code) {
	case AC_OK:
		return "AC_OK";
#define AC__ERR_NAME(name, val, cr, msg)                                     \
	case AC_##name:                                                      \
		return "AC_" #name;
		AC_ERRNO_MAP(AC__ERR_NAME)
#undef AC__ERR_NAME
	}
	if (is_errno(code) && (n = strerrorname_np(-code)))
		return n;
	return "AC_E???";
}

/* ---- close reasons ------------------------------------------------------------ */

static const char *const reason_names[AC_CR_COUNT] = {
	[AC_CR_LOCAL] = "local",       [AC_CR_EOF] = "eof",
	[AC_CR_RESET] = "reset",       [AC_CR_TIMEOUT] = "timeout",
	[AC_CR_WTIMEOUT] = "write_timeout", [AC_CR_FRAME] = "frame",
	[AC_CR_SLOW] = "slow",         [AC_CR_LIMIT] = "limit",
	[AC_CR_SHUTDOWN] = "shutdown", [AC_CR_TLS] = "tls",
	[AC_CR_CONNECT] = "connect",
	[AC_CR_ERROR] = "error"};

AC_EXPORT int ac_close_reason_index(int reason)
{
	switch (reason) {
	case 0:
		return AC_CR_LOCAL;
#define AC__ERR_CR(name, val, cr, msg)                                       \
	case AC_##name:                                                      \
		return AC_CR_##cr;
		AC_ERRNO_MAP(AC__ERR_CR)
#undef AC__ERR_CR
	/* The errno values that are not the library's own codes but that
	 * only a peer gone (EPIPE) or a failed connect can produce. */
	case -EPIPE:
		return AC_CR_RESET;
	case -ECONNREFUSED:
	case -ENETUNREACH:
	case -EHOSTUNREACH:
	case -EADDRNOTAVAIL:
		return AC_CR_CONNECT;
	default:
		return AC_CR_ERROR;
	}
}

AC_EXPORT const char *ac_close_reason_name(int index)
{
	return index >= 0 && index < AC_CR_COUNT ? reason_names[index] : "?";
}
