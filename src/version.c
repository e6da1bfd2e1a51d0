/* version.c: the library's version at run time (actorconn.h). */
#include <actorconn.h>

#define AC__STR(x) #x
#define AC__XSTR(x) AC__STR(x)

AC_EXPORT unsigned ac_version(void)
{
	return AC_VERSION_HEX;
}

AC_EXPORT const char *ac_version_string(void)
{
	return AC__XSTR(AC_VERSION_MAJOR) "." AC__XSTR(AC_VERSION_MINOR) "."
		AC__XSTR(AC_VERSION_PATCH);
}
