/*
 * broker.h: private to actorconn-broker. The broker's state and what its
 * files share:
 *
 *   broker.c    connections (decoding, replies, client state), options, main
 *   pubsub.c    the topic tables: subscribe, unsubscribe, publish
 *   commands.c  the command table, argument checks and each command
 *   multi.c     MULTI, EXEC, DISCARD, WATCH, UNWATCH: the queued commands
 *   clients.c   CLIENT LIST, KILL and INFO: every loop's clients
 *   config.c    CONFIG; the output limits of the client classes
 *   cluster.c   --cluster: channels and patterns bridged to other nodes
 *               through Redis (ac_bridge_new)
 *   acl.c       users: --requirepass, --aclfile, password and permission
 *               checks
 *   session.c   AUTH, HELLO, SELECT, RESET, CLIENT REPLY: a connection's
 *               user, protocol and reply mode
 *   introspect.c COMMAND and INFO, and what they say of each command
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

/* A channel, a pattern or a shard channel: a name and the groups of its
 * subscribers. */
struct topic {
	struct topic *next;
	ac_group_t *group;  /* RESP2 subscribers */
	ac_group_t *group3; /* RESP3 subscribers; NULL until the first */
	size_t subs;  /* both groups' members, under the table's lock */
	size_t subs3; /* group3's */
	int bridged;  /* holds a subscription of the node in Redis
			 (--cluster; pubsub.c's bridge_topic) */
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
	/* cluster.c: --cluster's bridge (NULL without), and the calls it
	 * refused (its home loop's mailbox full): subscriptions not made
	 * or not undone, publishes not sent */
	ac_bridge_t *br;
	uint64_t bridge_refused; /* atomic */
	/* pubsub.c: SSUBSCRIBE's channels, a namespace apart from chans */
	struct table schans[SHARDS];
	size_t max_queued; /* multi.c: --max-queued, bytes one MULTI holds */
	/* acl.c (counted), introspect.c (INFO's acl_access_denied_*) */
	uint64_t denied_auth, denied_cmd, denied_channel; /* atomic */
	uint64_t denied_key; /* atomic; acl.c: WATCH's keys */
	char run_id[41]; /* INFO's run_id: random, per run (broker.c) */
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
	/* session.c and acl.c: who the client is and how it is answered */
	const struct user *user; /* AUTH's or HELLO's; NULL: default */
	int authed;   /* AUTH or HELLO AUTH succeeded (acl_auth_required) */
	int resp;     /* 3 after HELLO 3; 0 or 2: RESP2 */
	int db;       /* SELECT's: shown by CLIENT LIST, nothing else */
	/* CLIENT REPLY: OFF silences replies until ON; SKIP the next
	 * command's. Pushes (subscribe confirmations and messages) are
	 * delivered regardless, as in Redis: pushing marks them. */
	unsigned reply_off : 1, skip : 1, skip_next : 1, pushing : 1;
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
/* The protocol's forms (broker.c): RESP3's after HELLO 3, else RESP2's
 * (a map as a flat array, a set or push as an array, null as $-1, a
 * verbatim string as a bulk one). */
int client_resp(const struct client *cl); /* 2 or 3; cl may be NULL */
int conn_resp(ac_conn_t *c);
void reply_null(ac_conn_t *c);
void reply_map(ac_conn_t *c, size_t pairs);
void reply_set(ac_conn_t *c, size_t n);
void reply_push(ac_conn_t *c, size_t n);
void reply_verbatim(ac_conn_t *c, const char *p, size_t n); /* "txt" */

/*
 * Redis's bounds on a request before AUTH, where a password is needed: at
 * most 10 arguments of at most 16 KiB, refused at the header. A client
 * not logged in has UNAUTH_FRAME as its max_frame (ac_conn_set_max_frame),
 * which the decoder reads as "these bounds"; set_auth_bounds gives c the
 * bound its login state calls for (cl may be NULL: not logged in).
 */
#define UNAUTH_MAX_ARGS 10
#define UNAUTH_MAX_BULK 16384
#define UNAUTH_FRAME ((size_t)UNAUTH_MAX_ARGS * (UNAUTH_MAX_BULK + 32) + 32)
void set_auth_bounds(ac_conn_t *c, const struct client *cl);

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
/* Sets cl's protocol to resp (2 or 3), moving its subscriptions of every
 * kind to the groups of that protocol: each group's messages are encoded
 * once. */
void pubsub_set_resp(ac_conn_t *c, struct client *cl, int resp);
/* Delivers msg to ch's subscribers and to the patterns that match ch;
 * returns the number of receivers. Takes each table's lock in turn. */
long publish(const char *ch, size_t clen, const char *msg, size_t mlen);
/* SPUBLISH: to ch's shard subscribers only, as "smessage"; patterns and
 * SUBSCRIBE's channels are another namespace. */
long spublish(const char *ch, size_t clen, const char *msg, size_t mlen);
/* A message another node published (cluster.c, on the bridge's home
 * loop): with pat NULL to channel ch's subscribers only, else to pattern
 * pat's only, as a pmessage; the other topics that match get their own
 * copy from Redis. Returns the number of receivers. */
long publish_remote(const char *pat, size_t plen, const char *ch,
		    size_t clen, const char *msg, size_t mlen);

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

/* ---- acl.c --------------------------------------------------------------------- */

struct user;
/* Before the runtime starts: the users, from the options; -1 after
 * printing why on stderr. acl_free after the runtime has stopped. */
int acl_init(const char *requirepass, const char *aclfile);
void acl_free(void);
const char *acl_user_name(const struct user *u); /* NULL: "default" */
const struct user *acl_user(const char *name, size_t len); /* or NULL */
/* 1 while cl (NULL: a client without state) must AUTH first: the
 * default user has a password or is off, and cl has not logged in. */
int acl_auth_required(const struct client *cl);
/* 1 when the default user has no password: AUTH with one argument is
 * then an error, as in Redis. */
int acl_default_nopass(void);
/* The user if name's password is pass, else NULL (and counted in
 * B.denied_auth). Constant time in where the passwords differ. */
const struct user *acl_check(const char *name, size_t nlen, const char *pass,
			     size_t plen);
/* Whether cl's user may run cmd (sub: its subcommand, lower case, or
 * NULL), and publish to or subscribe to a channel (pattern: a PSUBSCRIBE
 * pattern, allowed only if listed literally, as in Redis 7). */
int acl_all_allowed(const struct client *cl);
int acl_command_allowed(const struct client *cl, const char *cmd,
			const char *sub);
int acl_channel_allowed(const struct client *cl, const char *ch, size_t len,
			int pattern);
/* Whether cl's user may name key (WATCH's keys: ~ and %R~ patterns). */
int acl_key_allowed(const struct client *cl, const char *key, size_t len);

/* ---- session.c ----------------------------------------------------------------- */

/* Checks a command that execute() found, before it runs or is queued
 * inside MULTI: -NOAUTH, then -NOPERM (command, then its channels), as
 * Redis. sub is its subcommand (lower case) or NULL. Returns -1 with the
 * error in err ("NOAUTH ...", no '-' or CRLF), which the caller replies
 * (and which flags a transaction), else 0. */
int session_check(const struct client *cl, const char *name,
		  const char *sub, size_t argc, const char **argv,
		  const size_t *argl, char *err, size_t errlen);
/* EXEC checks each queued command's permissions again, as Redis 7 does:
 * an AUTH queued before it may have changed the user. Replies Redis'
 * -NOPERM and returns -1 if it may no longer run. */
int session_exec_check(ac_conn_t *c, const struct client *cl,
		       const char *name, const char *sub, size_t argc,
		       const char **argv, const size_t *argl);
/* CLIENT REPLY SKIP's bookkeeping, once each command is done
 * (execute); cl may be NULL. */
void session_after(struct client *cl);
void cmd_auth(ac_conn_t *c, struct client *cl, size_t argc,
	      const char **argv, const size_t *argl);
void cmd_hello(ac_conn_t *c, struct client *cl, size_t argc,
	       const char **argv, const size_t *argl);
void cmd_select(ac_conn_t *c, struct client *cl, size_t argc,
		const char **argv, const size_t *argl);
void cmd_reset(ac_conn_t *c, struct client *cl, size_t argc,
	       const char **argv, const size_t *argl);
/* CLIENT REPLY ON|OFF|SKIP (argv[1] is REPLY). */
void client_reply(ac_conn_t *c, struct client *cl, size_t argc,
		  const char **argv, const size_t *argl);

/* ---- introspect.c --------------------------------------------------------------- */

void cmd_command(ac_conn_t *c, struct client *cl, size_t argc,
		 const char **argv, const size_t *argl);
void cmd_info(ac_conn_t *c, struct client *cl, size_t argc,
	      const char **argv, const size_t *argl);
/* CONFIG RESETSTAT: INFO's counters from zero again. Any loop. */
void stats_reset(void);
/* Redis' ACL categories of cmd (or of its subcommand sub), "@pubsub
 * @fast"; NULL for a command it does not describe. */
const char *command_categories(const char *cmd, const char *sub);
/* 1 for a command whose first argument names a subcommand (CLIENT). */
int command_container(const char *cmd);
/* 1 for AUTH, HELLO, QUIT and RESET: Redis' no_auth commands, which run
 * before authentication and for every user. */
int command_noauth(const char *cmd);

/* ---- commands.c ----------------------------------------------------------- */

/* Runs one command; cl is NULL until a command has needed the state.
 * Inside MULTI, queues it instead (multi_queue) once it has passed the
 * checks that Redis makes before queueing. */
void execute(ac_conn_t *c, struct client *cl, size_t argc, const char **argv,
	     const size_t *argl);
/* The command table, for COMMAND: its i-th name (lower case) and arity;
 * NULL past the end. */
const char *command_at(size_t i, int *arity);
/* CLIENT SETNAME's rule and effect (HELLO SETNAME too); -1 after
 * replying the error. */
int set_name(ac_conn_t *c, const char *p, size_t n);

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

/* ---- cluster.c ------------------------------------------------------------ */

/* --cluster URL, given once or more: url with arg's seeds added after a
 * comma (url NULL: arg itself), in memory the caller frees; NULL after
 * printing why on stderr. Any thread. */
char *cluster_seeds(char *url, const char *arg);
/* After ac_runtime_new, before ac_runtime_start: B.br, the bridge to url
 * with prefix (NULL: none) before every name in Redis; -1 after printing
 * why on stderr. */
int cluster_start(const char *url, const char *prefix);
/* What the broker prints of url: its seeds without the credentials.
 * Writes at most n bytes, NUL included. Any thread. */
void cluster_print_url(char *buf, size_t n, const char *url);
/* After ac_runtime_stop: the bridge freed, B.br NULL. */
void cluster_free(void);
/* Any loop, under the topic table's lock (pubsub.c): the node's
 * subscription in Redis to a channel or pattern (kind CHANNEL or
 * PATTERN), from the topic's making to its end. cluster_subscribe
 * returns 0, or -1 when the bridge refused it (counted in
 * B.bridge_refused). */
int cluster_subscribe(int kind, const char *name, size_t len);
void cluster_unsubscribe(int kind, const char *name, size_t len);
/* Any loop, after the local delivery: PUBLISH ch msg for the other
 * nodes, through B.br. */
void cluster_publish(const char *ch, size_t clen, const char *msg,
		     size_t mlen);

#endif
