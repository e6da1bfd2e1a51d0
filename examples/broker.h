/*
 * broker.h: private to actorconn-broker. The broker's state and what its
 * files share:
 *
 *   broker.c    connections (decoding, replies, client state), options, main
 *   pubsub.c    the topic tables: subscribe, unsubscribe, publish
 *   commands.c  the command table, argument checks and each command
 *   clients.c   CLIENT LIST, KILL and INFO: every loop's clients
 *   config.c    CONFIG; the output limits of the client classes
 *   forward.c   --upstream: PUBLISH forwarded through a connection pool
 *
 * Every function here runs on the loop that owns the connection it is
 * given, except where its comment says otherwise.
 */
#ifndef AC_BROKER_H
#define AC_BROKER_H

#include <actorconn.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "resp.h"

#define SHARDS 16
#define BUCKETS 4096 /* per shard */
#define VERSION "7.0.0"
/* The output watermark of the broker's connections (ac_conn_opts_t
 * out_high), which it does not otherwise use: low, because no output
 * limit can be below it (config.c). */
#define OUT_HIGH 1024

/* Redis's client classes for output limits, in its order (config.c). */
enum { CLASS_NORMAL, CLASS_REPLICA, CLASS_PUBSUB, NCLASSES };

/* One class's client-output-buffer-limit, as Redis has it: 0 is none. */
struct obuf_class {
	unsigned long long hard, soft;
	long long seconds;
};

/* A channel or a pattern: a name and the group of its subscribers. */
struct topic {
	struct topic *next;
	ac_group_t *group;
	size_t subs; /* under the table's lock */
	size_t len;
	char name[];
};

struct table {
	pthread_mutex_t lock; /* short: lookups and group joins/leaves */
	struct topic **buckets;
	size_t nbuckets, count;
};

/* The one broker of the process (broker.c). */
struct broker {
	ac_runtime_t *rt;
	struct resp_limits lim;
	struct table chans[SHARDS];
	struct table pats; /* one table: every publish scans it anyway */
	uint64_t seed;     /* of the topic hash (pubsub_init) */
	uint64_t started_ms;
	int port;
	uint64_t commands;          /* atomic */
	ac_pool_t *up;              /* --upstream: PUBLISH is forwarded */
	uint64_t fwd_ok, fwd_failed; /* atomic */
	/* The limits CONFIG SET changes while every loop reads them
	 * (relaxed atomics; each field stands alone), and what CONFIG GET
	 * shows: config.c, and the decoder in broker.c. B.lim.max_bulk is
	 * one of them. */
	struct obuf_class obuf[NCLASSES];
	size_t qbuf_limit;        /* client-query-buffer-limit */
	int normal_changed;       /* the normal class's limits are no longer
				     the listener's: on_open applies them */
	unsigned max_clients;     /* maxclients, as CONFIG GET shows it */
	unsigned idle_timeout_ms; /* timeout, likewise */
};
extern struct broker B;

/* One subscription of a client: the channel's or pattern's name. */
struct sub {
	char *name;
	size_t len;
};

/* A client's state: made by the first command that needs it. Its name
 * is the connection's label (ac_conn_set_label), where CLIENT LIST,
 * gathering on every loop, reads it. */
struct client {
	struct sub *chans, *pats;
	size_t nchans, npats, capchans, cappats;
	char cmd[32];   /* the last command, as CLIENT LIST shows it */
	int obuf_class; /* the output limits applied: CLASS_NORMAL or
			   CLASS_PUBSUB (config.c) */
};

/* ---- broker.c ------------------------------------------------------------- */

uint64_t now_ms(void);
/* malloc that aborts: the broker does not run on without memory. */
void *xmalloc(size_t n);

/* Replies: queued on c in order (ac_conn_write). */
void out(ac_conn_t *c, const void *p, size_t n);
void outf(ac_conn_t *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void outs(ac_conn_t *c, const char *s);
void bulk(ac_conn_t *c, const char *p, size_t n);
void bulk_str(ac_conn_t *c, const char *s);

/* c's client state, made now; NULL (c closing) if out of memory. */
struct client *client_new(ac_conn_t *c);
/* c's client state, or NULL if no command has needed it yet. */
struct client *client_of(ac_conn_t *c);
/* The Redis client id of a connection, and back: its handle with the
 * loop's byte moved to the bottom, so ids stay positive (Redis parses
 * them as signed 64-bit) for up to 2^23 connections per loop. */
uint64_t client_id(ac_handle_t h);
ac_handle_t id_handle(uint64_t id);

/* ---- pubsub.c ------------------------------------------------------------- */

/* Before the runtime starts: empty tables and a fresh hash seed; and
 * after it has stopped, their memory freed. */
void pubsub_init(void);
void pubsub_free(void);
size_t nsubs(const struct client *cl); /* cl may be NULL */
/* Each replies as Redis does ("subscribe", "punsubscribe", ...). */
void subscribe(ac_conn_t *c, struct client *cl, int pattern,
	       const char *name, size_t len);
/* quiet: no reply (the client is closing or resetting). */
void unsubscribe(ac_conn_t *c, struct client *cl, int pattern,
		 const char *name, size_t len, int quiet);
void unsubscribe_all(ac_conn_t *c, struct client *cl, int pattern, int quiet);
/* Delivers msg to ch's subscribers and to the patterns that match ch;
 * returns the number of receivers. Takes each table's lock in turn. */
long publish(const char *ch, size_t clen, const char *msg, size_t mlen);

/* PUBSUB CHANNELS [pat] (pat NULL: all): a copy of the names, which the
 * caller frees, each name and then the array. */
struct sub *channels_matching(const char *pat, size_t plen, size_t *count);
size_t channel_subscribers(const char *name, size_t len); /* NUMSUB */
size_t channel_count(void);
size_t pattern_count(void);

/* ---- commands.c ----------------------------------------------------------- */

/* Runs one command; cl is NULL until a command has needed the state. */
void execute(ac_conn_t *c, struct client *cl, size_t argc, const char **argv,
	     const size_t *argl);

/* ---- clients.c ------------------------------------------------------------ */

/* CLIENT LIST [TYPE t] [ID id ...] and CLIENT KILL (both forms): they
 * gather from every loop and answer from done; until then the asking
 * connection reads nothing more (ac_conn_read_stop), so that the
 * replies to the commands after it keep their order. */
void client_list(ac_conn_t *c, size_t argc, const char **argv,
		 const size_t *argl);
void client_kill(ac_conn_t *c, size_t argc, const char **argv,
		 const size_t *argl);
/* CLIENT INFO: c's own line, at once. */
void client_info(ac_conn_t *c);

/* ---- config.c ------------------------------------------------------------- */

/* CONFIG GET, SET, HELP, REWRITE. */
void cmd_config(ac_conn_t *c, struct client *cl, size_t argc,
		const char **argv, const size_t *argl);
/* A memory value as Redis reads one (memtoull): digits and a unit, b k
 * kb m mb g gb in any case; 0, or -1 if s is not one. Any thread. */
int parse_memory(const char *s, unsigned long long *out);
/* client-output-buffer-limit's value, "class hard soft seconds ...",
 * into cls[k] for each class given (has[k] set); NULL, or Redis's reason
 * to refuse it. Any thread. */
const char *obuf_parse(const char *v, size_t n, struct obuf_class *cls,
		       int *has);
/* The library's limits for class cls, as B.obuf has it now. */
void obuf_limits(int cls, size_t *hard, size_t *soft, unsigned *soft_ms);
/* Gives c the output limits of class cls. */
void obuf_apply(ac_conn_t *c, int cls);
/* After each command: a client that subscribed first or unsubscribed
 * last moves to the pubsub or normal class's limits. */
void obuf_check(ac_conn_t *c, struct client *cl);

/* ---- forward.c ------------------------------------------------------------ */

/* Before ac_runtime_start: the pool to addr; NULL with errno if not. */
ac_pool_t *upstream_pool(const char *addr);
/* Sends PUBLISH ch msg to B.up; counts it in B.fwd_ok or B.fwd_failed. */
void forward(const char *ch, size_t clen, const char *msg, size_t mlen);

#endif
