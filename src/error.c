/* error.c: names and messages for the AC_E* codes, from the one table in
 * actorconn.h. */
#include "internal.h"

AC_EXPORT const char *ac_strerror(int code)
{
	switch (code) {
	case AC_OK:
		return "success";
#define AC__ERR_MSG(name, val, msg)                                          \
	case AC_##name:                                                      \
		return msg;
		AC_ERRNO_MAP(AC__ERR_MSG)
#undef AC__ERR_MSG
	}
	return "unknown error";
}

AC_EXPORT const char *ac_err_name(int code)
{
	switch (code) {
	case AC_OK:
		return "AC_OK";
#define AC__ERR_NAME(name, val, msg)                                         \
	case AC_##name:                                                      \
		return "AC_" #name;
		AC_ERRNO_MAP(AC__ERR_NAME)
#undef AC__ERR_NAME
	}
	return "AC_E???";
}
