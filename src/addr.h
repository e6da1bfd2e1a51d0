/* addr.h: parsing "host:port", "[v6]:port" and "unix:/path", and printing
 * socket addresses (addr.c). */
#ifndef AC_ADDR_H
#define AC_ADDR_H

#include "common.h"

#include <sys/socket.h>

struct ac__addr {
	int family;
	socklen_t len;
	struct sockaddr_storage ss;
	char path[108];
};

/* Fills *out; a name is resolved now, blocking (AC_ENAME if it does not
 * resolve). AC_EADDR for a malformed address. */
int ac__addr_parse(const char *s, struct ac__addr *out);
/* Splits s without any lookup: a numeric or unix address fills *out
 * (out->family set); a name is left in host with its port. */
int ac__addr_split(const char *s, struct ac__addr *out, char *host,
		   size_t hostlen, int *port);
void ac__addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
		     size_t n);
/* The numeric host of an IPv4 or IPv6 address ("10.0.0.1", "::1"): 0, or
 * AC_EINVAL for a unix address (or a buffer too small). */
int ac__addr_host(const struct ac__addr *a, char *buf, size_t n);

#endif /* AC_ADDR_H */
