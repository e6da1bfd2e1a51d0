/*
 * forward.c: actorconn-broker's --upstream. Each PUBLISH a client sends is
 * also sent upstream through a connection pool: acquire a connection of
 * this loop, write the command, release it when the upstream's one-line
 * reply arrives. The client's reply does not wait for it: it counts local
 * receivers, as without --upstream.
 */
#include "broker.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fwd {
	size_t len;
	char cmd[]; /* the PUBLISH command, RESP encoded */
};

static void fwd_acquired(ac_conn_t *c, int err, void *arg)
{
	struct fwd *f = arg;

	if (err || ac_conn_write(c, f->cmd, f->len)) {
		__atomic_fetch_add(&B.fwd_failed, 1, __ATOMIC_RELAXED);
		if (!err)
			ac_pool_release(B.up, c, AC_POOL_DISCARD);
	}
	free(f);
}

/* The upstream's reply (":N" or "-ERR ...") on a borrowed connection. */
static void fwd_reply(ac_conn_t *c, const void *data, size_t len)
{
	bool ok = len > 0 && ((const char *)data)[0] == ':';

	__atomic_fetch_add(ok ? &B.fwd_ok : &B.fwd_failed, 1,
			   __ATOMIC_RELAXED);
	ac_pool_release(B.up, c, ok ? AC_POOL_REUSE : AC_POOL_DISCARD);
}

/* A borrowed connection closed before its reply came. */
static void fwd_lost(ac_conn_t *c, int reason)
{
	__atomic_fetch_add(&B.fwd_failed, 1, __ATOMIC_RELAXED);
}

void forward(const char *ch, size_t clen, const char *msg, size_t mlen)
{
	struct fwd *f = malloc(sizeof(*f) + clen + mlen + 64);
	char *w;

	if (!f) {
		__atomic_fetch_add(&B.fwd_failed, 1, __ATOMIC_RELAXED);
		return;
	}
	w = f->cmd + sprintf(f->cmd, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n", clen);
	memcpy(w, ch, clen);
	w += clen;
	w += sprintf(w, "\r\n$%zu\r\n", mlen);
	memcpy(w, msg, mlen);
	w += mlen;
	memcpy(w, "\r\n", 2);
	f->len = (size_t)(w + 2 - f->cmd);
	/* Errors come through fwd_acquired, exactly once. */
	if (ac_pool_acquire(B.up, fwd_acquired, f)) {
		__atomic_fetch_add(&B.fwd_failed, 1, __ATOMIC_RELAXED);
		free(f);
	}
}

ac_pool_t *upstream_pool(const char *addr)
{
	static const char ping[] = "PING\r\n";
	ac_pool_opts_t o = {.max_per_loop = 8,
			    .min_idle_per_loop = 1,
			    .acquire_timeout_ms = 2000,
			    .idle_ttl_ms = 60000,
			    .cbs = {.on_frame = fwd_reply, .on_close = fwd_lost}};

	/* Replies are single lines. Idle connections send PING every 5 s
	 * and close after 15 s without a PONG: the health check. */
	o.conn.framing = AC_FRAME_LINE;
	o.conn.connect_timeout_ms = 2000;
	o.conn.heartbeat_ms = 5000;
	o.conn.idle_timeout_ms = 15000;
	o.conn.ping = ping;
	o.conn.ping_len = sizeof(ping) - 1;
	return ac_pool_new(B.rt, addr, &o);
}

