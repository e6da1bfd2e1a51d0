/*
 * conn.h: a connection's life on its owner loop (conn.c): protocols (what
 * a listener or ac_connect gives its connections), the connection object,
 * its reads and writes, its close.
 */
#ifndef AC_CONN_H
#define AC_CONN_H

#include "common.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <ck_sequence.h>

#include "loop.h"
#include "mailbox.h"
#include "outq.h"
#include "reclaim.h"

/* Defaults (documented in actorconn(7)). */
#define AC__DEFAULT_MAX_FRAME ((size_t)1 << 20)
#define AC__DEFAULT_LINGER_MS 5000u
#define AC__DEFAULT_OUT_LOW ((size_t)64 << 10)
#define AC__DEFAULT_OUT_HIGH ((size_t)256 << 10)
#define AC__DEFAULT_OUT_HARD ((size_t)8 << 20)
#define AC__DEFAULT_OUT_SOFT ((size_t)1 << 20)
#define AC__DEFAULT_OUT_SOFT_MS 10000u

/* What a listener, ac_connect or a pool gives each of its connections;
 * shared by them, reference-counted. */
struct ac__proto {
	ac_conn_cbs_t cbs;
	ac_conn_opts_t opts; /* defaults resolved */
	ac_decode_fn decode;
	void *ud;
	int refs;            /* atomic: listeners and connections */
	unsigned nconns;     /* atomic: open connections (max_conns) */
	void *ping;          /* heartbeat payload, owned */
	char *tls_name;      /* opts.tls_name, owned */
};

/* Resolves defaults and refuses options that cannot work (AC_EINVAL in
 * *err, with a log line through rt saying why). role: AC_TLS_SERVER for a
 * listener, AC_TLS_CLIENT for outbound connections; opts->tls must be
 * made for it. */
ac__proto_t *ac__proto_new(ac_runtime_t *rt, const ac_conn_cbs_t *cbs,
			   const ac_conn_opts_t *opts, void *ud, int role,
			   int *err);
void ac__proto_ref(ac__proto_t *p);
void ac__proto_unref(ac__proto_t *p);

enum ac__conn_state {
	AC__C_OPEN,
	AC__C_CLOSING,    /* flushing before close; no more reading */
	AC__C_DEAD,       /* finalized: only on_close and retirement remain */
	AC__C_CONNECTING, /* outbound: resolving or connecting */
	AC__C_WAITING,    /* outbound: back-off before the next attempt */
	AC__C_HANDSHAKE,  /* TLS: connected, handshaking; not yet open */
	AC__C_ADOPTING    /* adopted on its loop (sock.c): opens next turn */
};

/*
 * What other threads may read of a connection, through a pin
 * (ac_handle_info). The owner rewrites it when an outbound connection
 * reconnects, so it is written and read under a ck_sequence count: a
 * reader retries when the count was odd or moved. Every field is stored
 * and loaded with relaxed atomics, so a reader that races a rewrite reads
 * values it then throws away, never a data race. peer holds a
 * sockaddr_in6 or sockaddr_in, as words.
 */
struct ac__facts {
	ck_sequence_t seq;
	uint16_t family;   /* AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC */
	uint64_t opened_ms;
	uint64_t peer[4];
};

/* A consistent copy of a connection's facts. */
struct ac__facts_copy {
	int family;
	uint64_t opened_ms;
	struct sockaddr_storage peer;
	socklen_t peer_len; /* 0 unless AF_INET or AF_INET6 */
};

/* A connection's input tail, header and bytes in one allocation; only
 * while a frame is incomplete. */
struct ac__inbuf {
	size_t len, cap;
	size_t resume; /* the decoder's note on data[0, len) (ac_frame_t) */
	unsigned char data[];
};

/* The watches of a connection: their ids, grown by doubling. */
struct ac__watchlist {
	uint32_t n, cap;
	uint64_t id[];
};

struct ac__gentry {
	ac_group_t *g;
	uint32_t idx; /* c's place in g's member array on c's loop */
};

/* The groups a connection is a member of, grown by doubling. */
struct ac__grouplist {
	uint32_t n, cap;
	struct ac__gentry e[];
};

/* What only some connections need, allocated the first time one does
 * and freed when it closes: a flushing close's linger timer, the write
 * timeout, the soft limit's timer, a TLS connection's state, the user's
 * label (which an outbound connection keeps across reconnects), and
 * output limits of its own. */
struct ac__conn_aux {
	struct event *linger_ev;
	struct event *wto_ev;
	struct event *soft_ev;
	struct ac__tls_conn *tls; /* tls.c */
	char *label;              /* ac_conn_set_label; owned */
	/* ac_conn_set_out_limits: c's own, in place of its protocol's */
	size_t out_hard, out_soft;
	unsigned out_soft_ms;
	bool own_limits;
	/* ac_conn_set_max_frame: c's own, in place of its protocol's; 0:
	 * the protocol's */
	size_t max_frame;
};

/*
 * A connection. It is kept small (256 bytes, one tcmalloc size class) for
 * idle memory: what only some connections need is allocated on demand
 * (aux, in, ob), and the retirement record overlays event pointers that
 * are all freed and NULL by the time the connection is retired.
 */
struct ac_conn_s {
	union {
		struct ac__hpobj hp; /* retirement through ck_hp (first) */
		struct {
			struct event *rev, *wev, *idle_ev, *hb_ev;
		};
	};
	struct ac__conn_aux *aux; /* NULL until needed */
	ac__loop_t *loop;
	ac__proto_t *proto;
	ac_handle_t handle;
	void *data;
	int fd;
	uint8_t state;
	/* One-bit flags share a byte: the bytes they took as uint8_t
	 * paid for the introspection counters below. */
	uint8_t close_queued : 1;
	uint8_t flush_queued : 1;
	uint8_t writing : 1;    /* write event armed */
	uint8_t above_high : 1; /* output went over out_high; on_drain pending */
	uint8_t counted : 1;    /* holds a place in the max_conns counters */
	uint8_t is_open : 1;    /* counted in loop->nopen */
	uint8_t tls : 1;        /* TLS: aux->tls holds its state (tls.c) */
	uint8_t paused : 1;     /* ac_conn_read_stop: not reading */
	uint8_t undelivered : 1; /* c->in may hold frames a pause held back */
	uint8_t wshut;      /* ac_conn_shutdown: AC__WSHUT_* */
	int reason;      /* close reason, fixed by the first close */
	uint32_t need;   /* input length worth decoding again (frames are
			    at most max_frame; past 4 GiB, 0: try again) */
	LIST_HEAD(, ac_timer_s) timers; /* conn-owned timers */
	struct ac__watchlist *watches; /* watchers to fire at close */
	struct ac__grouplist *groups;  /* groups c is a member of */
	struct ac__inbuf *in;    /* NULL unless a frame is incomplete */
	struct ac__outq out;     /* holds no memory while empty */
	struct ac__outbound *ob; /* outbound connections only (connect.c) */
	STAILQ_ENTRY(ac_conn_s) closing; /* loop->closing */
	STAILQ_ENTRY(ac_conn_s) flushing; /* loop->flushing */

	/* Read by other threads through a pin (ac_handle_info). The
	 * counters are written by the owner alone, with relaxed atomic
	 * stores of (value + n), so a reader sees no torn value. They count
	 * from the handle's birth, across an outbound connection's
	 * reconnects. last_read_ms: the loop's cached wall clock at the last
	 * read that brought bytes, or at the attempt's start (facts_set). */
	uint64_t bytes_in, bytes_out;
	uint64_t frames_in, frames_out; /* to on_frame; writes queued */
	uint64_t last_read_ms;
	struct ac__facts facts;
};

/* ac_conn_s.wshut: the write side, after ac_conn_shutdown. */
enum { AC__WSHUT_NO, AC__WSHUT_ASKED, AC__WSHUT_DONE };

/* The calling thread is c's owner loop. A foreign thread is refused
 * without reading c; a loop reads c->loop, which never changes. */
static inline bool ac__is_owner(const ac_conn_t *c)
{
	return ac__tls_loop && c->loop == ac__tls_loop;
}

/* The front of every owner-loop call: AC_EINVAL for NULL c, AC_ETHREAD
 * off c's owner loop, else 0. */
static inline int ac__owner_check(const ac_conn_t *c)
{
	if (AC__UNLIKELY(!c))
		return AC_EINVAL;
	if (AC__UNLIKELY(!ac__is_owner(c)))
		return AC_ETHREAD;
	return 0;
}

int ac__conn_open(ac__loop_t *loop, int fd, ac__proto_t *proto);
ac_conn_t *ac__conn_new(ac__loop_t *loop, ac__proto_t *proto, int *err);
/* Owner loop, c->fd connected: reading starts and, for a TLS protocol,
 * the handshake state is made (name: the server name a client sends and
 * checks, or NULL). 0, or AC_ENOMEM / AC_ETLS with nothing armed. */
int ac__conn_ready(ac_conn_t *c, const char *name);
/* Then: a plain connection opens (on_open); a TLS one starts its
 * handshake and opens when it finishes. */
void ac__conn_start(ac_conn_t *c);
/* Owner loop: n bytes came off c's socket (tls.c reads them itself). */
void ac__conn_got_bytes(ac_conn_t *c, size_t n);
bool ac__conn_take_place(ac_conn_t *c);
void ac__conn_discard(ac_conn_t *c);
/* Owner loop: calls fn(c, arg) for every connection of the loop; fn may
 * close c (not free it: that happens at the outermost leave). */
void ac__loop_each_conn(ac__loop_t *loop, void (*fn)(ac_conn_t *c, int arg),
			int arg);
/* Owner loop: checks that len more bytes may be queued and makes the
 * output buffer; then, once they are queued, ac__conn_out_added. */
int ac__conn_out_reserve(ac_conn_t *c, size_t len);
void ac__conn_out_added(ac_conn_t *c);
void ac__conn_fail(ac_conn_t *c, int reason);
/* For ac__loop_each_conn: the drain reached c (drain.c). */
void ac__conn_goaway(ac_conn_t *c, int unused);
void ac__conn_close(ac_conn_t *c, int how);
/* The owner-loop calls without their thread check, for the library's
 * own callers, which are on the owner loop by construction. */
int ac__conn_write(ac_conn_t *c, const void *buf, size_t len);
int ac__conn_write_buf(ac_conn_t *c, ac_buf_t *b);
unsigned ac__conn_write_batch(ac_conn_t *c, ac_buf_t *all, ac_buf_t *const *b,
			      unsigned n);
void ac__conn_stop(ac_conn_t *c, int abort);
/* Owner: sets c's facts (peer may be NULL). Any thread holding a pin:
 * copies them. */
void ac__facts_set(ac_conn_t *c, int family, const struct sockaddr *peer,
		   socklen_t len, uint64_t opened_ms);
void ac__facts_get(const ac_conn_t *c, struct ac__facts_copy *out);
/* Any thread holding a pin, or the owner: fills the fields of *out that
 * other threads may read (intro.c); the rest are zero, or -1 for the
 * peer's credentials. */
void ac__info_shared(const ac_conn_t *c, ac_conn_info_t *out);
/* The outermost ac__loop_leave: finalize a closed c, flush c's output. */
void ac__conn_finalize(ac_conn_t *c);
void ac__conn_flush(ac_conn_t *c);

/* Messages addressed to a connection (mailbox.h, ac__msg_ops). */
void ac__conn_deliver_send(ac__loop_t *loop, struct ac__msg *m);
void ac__conn_settle_send(ac__loop_t *loop, struct ac__msg *m);
void ac__conn_deliver_sendbuf(ac__loop_t *loop, struct ac__msg *m);
void ac__conn_settle_sendbuf(ac__loop_t *loop, struct ac__msg *m);
void ac__conn_deliver_tell(ac__loop_t *loop, struct ac__msg *m);
void ac__conn_settle_tell(ac__loop_t *loop, struct ac__msg *m);
void ac__conn_deliver_close(ac__loop_t *loop, struct ac__msg *m);

#endif /* AC_CONN_H */
