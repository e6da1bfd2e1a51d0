/*
 * broker.h: private to actorconn-broker. The broker's state and what its
 * files share:
 *
 *   broker.c    connections (decoding, replies, client state), options, main
 *   pubsub.c    the topic tables: subscribe, unsubscribe, publish
 *   commands.c  the command table, argument checks and each command
 *   multi.c     MULTI, EXEC, DISCARD, WATCH, UNWATCH: the queued commands
 *   clients.c   CLIENT LIST, KILL and INFO: every loop's clients
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

#define MAX_ARGS 4096
#define SHARDS 16
#define BUCKETS 4096 /* per shard */
#define VERSION "7.0.0"

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
	/* pubsub.c: SSUBSCRIBE's channels, a namespace apart from chans */
	struct table schans[SHARDS];
	size_t max_queued; /* multi.c: --max-queued, bytes one MULTI holds */
};
extern struct broker B;

/* What a subscription is to: a channel, a pattern or a shard channel
 * (SSUBSCRIBE). Each has its own table and its own list in a client. */
enum { CHANNEL, PATTERN, SHARD };

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
	/* pubsub.c: shard channels (SSUBSCRIBE) */
	struct sub *schans;
	size_t nschans, capschans;
	/* multi.c: between MULTI and EXEC or DISCARD, the queue; during an
	 * EXEC, the commands being run */
	struct multi *multi, *exec;
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
/* Subscriptions of every kind: nonzero puts a RESP2 client in
 * subscribed mode. cl may be NULL. */
size_t nsubs(const struct client *cl);
/* kind is CHANNEL, PATTERN or SHARD. Each replies as Redis does
 * ("subscribe", "punsubscribe", "ssubscribe", ...), with the count of
 * the client's channels and patterns, or of its shard channels for
 * SHARD, as Redis counts them. */
void subscribe(ac_conn_t *c, struct client *cl, int kind,
	       const char *name, size_t len);
/* quiet: no reply (the client is closing or resetting). */
void unsubscribe(ac_conn_t *c, struct client *cl, int kind,
		 const char *name, size_t len, int quiet);
void unsubscribe_all(ac_conn_t *c, struct client *cl, int kind, int quiet);
/* Delivers msg to ch's subscribers and to the patterns that match ch;
 * returns the number of receivers. Takes each table's lock in turn. */
long publish(const char *ch, size_t clen, const char *msg, size_t mlen);
/* SPUBLISH: to ch's shard subscribers only, as "smessage"; patterns and
 * SUBSCRIBE's channels are another namespace. */
long spublish(const char *ch, size_t clen, const char *msg, size_t mlen);

/* PUBSUB CHANNELS and SHARDCHANNELS [pat] (pat NULL: all), kind CHANNEL
 * or SHARD: a copy of the names, which the caller frees, each name and
 * then the array. */
struct sub *channels_matching(int kind, const char *pat, size_t plen,
			      size_t *count);
/* NUMSUB and SHARDNUMSUB */
size_t channel_subscribers(int kind, const char *name, size_t len);
size_t channel_count(void);
size_t shard_channel_count(void);
size_t pattern_count(void);

/* ---- commands.c ----------------------------------------------------------- */

/* Runs one command; cl is NULL until a command has needed the state.
 * Inside MULTI, queues it instead (multi_queue) once it has passed the
 * checks that Redis makes before queueing. */
void execute(ac_conn_t *c, struct client *cl, size_t argc, const char **argv,
	     const size_t *argl);

struct cmd; /* an entry of the command table */
/* Runs a command that has passed the checks, as EXEC does. */
void run_command(ac_conn_t *c, struct client *cl, const struct cmd *cmd,
		 size_t argc, const char **argv, const size_t *argl);

/* ---- multi.c -------------------------------------------------------------- */

#define CMD_ARGS                                                             \
	ac_conn_t *c, struct client *cl, size_t argc, const char **argv,     \
		const size_t *argl
void cmd_multi(CMD_ARGS);
void cmd_exec(CMD_ARGS);
void cmd_discard(CMD_ARGS);
void cmd_watch(CMD_ARGS);
void cmd_unwatch(CMD_ARGS);

/* Queues a copy of the command for EXEC and replies +QUEUED; over
 * B.max_queued, replies an -OOM error and flags the transaction. */
void multi_queue(ac_conn_t *c, struct client *cl, const struct cmd *cmd,
		 size_t argc, const char **argv, const size_t *argl);
/* A command refused while queueing: EXEC will abort with EXECABORT.
 * Does nothing outside MULTI; cl may be NULL. */
void multi_flag(struct client *cl);
/* Forgets the transaction, queued or running (RESET, close). */
void multi_discard(struct client *cl);
/* Whether cl is between MULTI and EXEC, and whether an EXEC is running
 * its commands; cl may be NULL. */
int in_multi(const struct client *cl);
int in_exec(const struct client *cl);
/* The commands queued, or being run by EXEC (CLIENT LIST's multi=). */
size_t multi_count(const struct client *cl);
/* Goes on with an EXEC that stopped on a command answered later (CLIENT
 * LIST and KILL, clients.c), once that answer is written and c reads
 * again. Does nothing when no EXEC is waiting. */
void exec_resume(ac_conn_t *c);

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

/* ---- forward.c ------------------------------------------------------------ */

/* Before ac_runtime_start: the pool to addr; NULL with errno if not. */
ac_pool_t *upstream_pool(const char *addr);
/* Sends PUBLISH ch msg to B.up; counts it in B.fwd_ok or B.fwd_failed. */
void forward(const char *ch, size_t clen, const char *msg, size_t mlen);

#endif
