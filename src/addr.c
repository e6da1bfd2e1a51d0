/* addr.c: parsing "host:port", "[v6]:port" and "unix:/path", and printing
 * socket addresses. */
#define _GNU_SOURCE
#include "addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/un.h>

static int parse_port(const char *s, int *port)
{
	char *end;
	long v;

	if (!*s)
		return AC_EADDR;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v > 65535)
		return AC_EADDR;
	*port = (int)v;
	return 0;
}

/*
 * Splits s. A unix path or a numeric host fills *out (out->family set);
 * anything else is a name, left in host[hostlen] with its port in *port
 * (out->family 0). No lookup.
 */
int ac__addr_split(const char *s, struct ac__addr *out, char *host,
		   size_t hostlen, int *port)
{
	const char *colon;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (!s)
		return AC_EINVAL;
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
		size_t n = strlen(s + 5);

		if (n == 0 || n >= sizeof(un->sun_path))
			return AC_EADDR;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, s + 5, n + 1);
		memcpy(out->path, s + 5, n + 1);
		out->family = AF_UNIX;
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				       n + 1);
		return 0;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return AC_EADDR;
		hlen = (size_t)(rb - s - 1);
		if (hlen == 0 || hlen >= hostlen)
			return AC_EADDR;
		memcpy(host, s + 1, hlen);
		host[hlen] = 0;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return AC_EADDR;
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= hostlen || memchr(s, ':', hlen))
			return AC_EADDR;
		memcpy(host, s, hlen);
		host[hlen] = 0;
	}
	if (parse_port(colon + 1, port))
		return AC_EADDR;

	struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)*port);
		out->family = AF_INET;
		out->len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)*port);
		out->family = AF_INET6;
		out->len = sizeof(*in6);
	}
	return 0;
}

/*
 * Fills *out from s. Numeric hosts need no lookup; a name is resolved with
 * getaddrinfo (blocking), and the first address is used: AC_ENAME when it
 * does not resolve.
 */
int ac__addr_parse(const char *s, struct ac__addr *out)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[256];
	int port, err;

	if ((err = ac__addr_split(s, out, host, sizeof(host), &port)) ||
	    out->family)
		return err;
	if (getaddrinfo(host, NULL, &hints, &res) || !res)
		return AC_ENAME;
	if (res->ai_addrlen > sizeof(out->ss)) {
		freeaddrinfo(res);
		return AC_EADDR;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	out->family = res->ai_family;
	freeaddrinfo(res);
	if (out->family == AF_INET)
		in4->sin_port = htons((uint16_t)port);
	else if (out->family == AF_INET6)
		in6->sin6_port = htons((uint16_t)port);
	else
		return AC_EADDR;
	return 0;
}

void ac__addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
		     size_t n)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(buf, n, "%s:%u", ip, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6 &&
		   len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(buf, n, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		snprintf(buf, n, "unix");
	}
}

int ac__addr_host(const struct ac__addr *a, char *buf, size_t n)
{
	const void *ip;

	if (a->family == AF_INET)
		ip = &((const struct sockaddr_in *)&a->ss)->sin_addr;
	else if (a->family == AF_INET6)
		ip = &((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
	else
		return AC_EINVAL;
	return inet_ntop(a->family, ip, buf, (socklen_t)n) ? 0 : AC_EINVAL;
}
