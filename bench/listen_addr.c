/* listen_addr.c: see listen_addr.h. */
#include "listen_addr.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int listen_addr(const char *prog, const char *addr, char *host,
		size_t hostlen, struct addrinfo **ai)
{
	const struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				       .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
	const char *colon = strrchr(addr, ':');
	char port[16];

	if (!colon || colon == addr || (size_t)(colon - addr) >= hostlen ||
	    strlen(colon + 1) >= sizeof(port))
		return 1;
	snprintf(host, hostlen, "%.*s", (int)(colon - addr), addr);
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (getaddrinfo(host, port, &hints, ai)) {
		fprintf(stderr, "%s: bad address '%s'\n", prog, addr);
		return 2;
	}
	return 0;
}
