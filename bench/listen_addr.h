/*
 * listen_addr.h: private to the echo baselines (epoll-echo, libevent-echo):
 * reading their --listen HOST:PORT.
 */
#ifndef AC_BENCH_LISTEN_ADDR_H
#define AC_BENCH_LISTEN_ADDR_H

#include <stddef.h>
#include <netdb.h>

/*
 * Splits addr into host (kept for the "listening on" line) and port, and
 * resolves them for a listening socket (a numeric host). Returns 0 with
 * *ai to free with freeaddrinfo; 1 if addr is not HOST:PORT (the caller
 * prints its usage); 2 if it does not resolve ("PROG: bad address" on
 * standard error).
 */
int listen_addr(const char *prog, const char *addr, char *host,
		size_t hostlen, struct addrinfo **ai);

#endif
