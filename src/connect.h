/* connect.h: outbound connections, with reconnect (connect.c). */
#ifndef AC_CONNECT_H
#define AC_CONNECT_H

#include "common.h"

#include <sys/queue.h>

#include <event2/util.h>

struct evdns_getaddrinfo_request;

/* Where to connect: a fixed address, or a name resolved on each attempt. */
struct ac__target {
	struct ac__addr *addr; /* numeric or unix; NULL when host is set */
	char *host;            /* a name for evdns */
	char port[8];
};

struct ac__outbound {
	const struct ac__target *t;  /* own, or the pool's */
	struct ac__target *own;
	struct evutil_addrinfo *ai, *ai_next; /* this attempt's addresses */
	struct evdns_getaddrinfo_request *dns;
	struct event *cto_ev;    /* connect timeout */
	struct event *retry_ev;  /* back-off */
	unsigned failures;       /* failed attempts in a row */
	int last_errno;          /* of the last address tried */
	uint8_t resolving;
	uint8_t fixed_left;      /* the fixed address is still to be tried */
	uint8_t stop;            /* closed by this side or shutdown: final */
	void *tls_session;       /* TLS: the last session, to resume (tls.c) */
	/* Pool bookkeeping (pool.c) when the connection belongs to a pool. */
	struct ac__subpool *sp;
	uint8_t pstate;
	uint8_t ping_due;         /* a heartbeat reply is on its way */
	uint64_t born_ms, idle_ms;
	TAILQ_ENTRY(ac_conn_s) idle; /* the sub-pool's idle list */
};

int ac__target_parse(const char *s, struct ac__target *t);
void ac__target_clear(struct ac__target *t);
/* Owner loop, inside a callback: a new outbound connection to t (which
 * must outlive it), not yet started. */
ac_conn_t *ac__connect_new(ac__loop_t *loop, ac__proto_t *proto,
			   const struct ac__target *t, int *err);
void ac__connect_attempt(ac_conn_t *c);
/* Finalize: true when c should wait and try again (then it is WAITING). */
bool ac__outbound_again(ac_conn_t *c);
void ac__outbound_end_attempt(ac_conn_t *c);
void ac__outbound_free(ac_conn_t *c);
void ac__outbound_close(ac_conn_t *c);
/* The wait after `failures` failed attempts: see connect.c. */
unsigned ac__backoff_ms(ac__loop_t *loop, unsigned min_ms, unsigned max_ms,
			unsigned failures);

#endif /* AC_CONNECT_H */
