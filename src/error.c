/* error.c: names and messages for the AC_E* codes, from the one table in
 * actorconn.h, and for the negative errno values the library passes on. */
#define _GNU_SOURCE
#include "internal.h"

#include <string.h>

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
#define AC__ERR_MSG(name, val, msg)                                          \
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
#define AC__ERR_NAME(name, val, msg)                                         \
	case AC_##name:                                                      \
		return "AC_" #name;
		AC_ERRNO_MAP(AC__ERR_NAME)
#undef AC__ERR_NAME
	}
	if (is_errno(code) && (n = strerrorname_np(-code)))
		return n;
	return "AC_E???";
}
