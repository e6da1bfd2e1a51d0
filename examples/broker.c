/*
 * actorconn-broker: a RESP2 publish/subscribe server that redis-cli and
 * redis-benchmark can talk to unchanged. See actorconn-broker(1).
 *
 * Each channel (and each pattern) is an ac_group_t: its subscribers may
 * live on every loop, and a PUBLISH sends one mailbox message per loop
 * that has subscribers, which writes one shared buffer to each of them.
 * The channel tables are sharded maps under short mutexes; they are
 * touched by SUBSCRIBE, UNSUBSCRIBE and PUBLISH, never by delivery.
 */
#include <actorconn.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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

static struct {
	ac_runtime_t *rt;
	struct resp_limits lim;
	struct table chans[SHARDS];
	struct table pats; /* one table: every publish scans it anyway */
	uint64_t started_ms;
	int port;
	uint64_t commands, next_id; /* atomic */
	ac_pool_t *up;              /* --upstream: PUBLISH is forwarded */
	uint64_t fwd_ok, fwd_failed; /* atomic */
} B;

struct sub {
	char *name;
	size_t len;
};

struct client {
	uint64_t id;
	char *name;
	struct sub *chans, *pats;
	size_t nchans, npats, capchans, cappats;
};

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static int is(const char *arg, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "actorconn-broker: out of memory\n");
		abort();
	}
	return p;
}

/* ---- replies ---------------------------------------------------------------- */

static void out(ac_conn_t *c, const void *p, size_t n)
{
	ac_conn_write(c, p, n);
}

static void outf(ac_conn_t *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void outf(ac_conn_t *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out(c, buf, (size_t)(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1));
}

static void outs(ac_conn_t *c, const char *s)
{
	out(c, s, strlen(s));
}

static void bulk(ac_conn_t *c, const char *p, size_t n)
{
	outf(c, "$%zu\r\n", n);
	out(c, p, n);
	out(c, "\r\n", 2);
}

static void bulk_str(ac_conn_t *c, const char *s)
{
	bulk(c, s, strlen(s));
}

/* ---- topic tables ------------------------------------------------------------ */

static void table_init(struct table *t, size_t nbuckets)
{
	pthread_mutex_init(&t->lock, NULL);
	t->buckets = calloc(nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		abort();
	t->nbuckets = nbuckets;
}

static struct table *chan_table(const char *name, size_t len)
{
	return &B.chans[hash(name, len) % SHARDS];
}

static struct topic **find(struct table *t, const char *name, size_t len)
{
	struct topic **p = &t->buckets[(hash(name, len) / SHARDS) % t->nbuckets];

	for (; *p; p = &(*p)->next)
		if ((*p)->len == len && !memcmp((*p)->name, name, len))
			return p;
	return p;
}

/* Under t->lock: c joins name's group, made on first use. */
static void join(struct table *t, ac_conn_t *c, const char *name, size_t len)
{
	struct topic **p = find(t, name, len), *tp = *p;

	if (!tp) {
		tp = xmalloc(sizeof(*tp) + len);
		tp->next = NULL;
		tp->subs = 0;
		tp->len = len;
		memcpy(tp->name, name, len);
		if (!(tp->group = ac_group_new(B.rt)))
			abort();
		*p = tp;
		t->count++;
	}
	if (ac_group_join(tp->group, c) == 0)
		tp->subs++;
}

/* Under t->lock: c leaves name's group; the last one out frees it. */
static void leave(struct table *t, ac_conn_t *c, const char *name, size_t len)
{
	struct topic **p = find(t, name, len), *tp = *p;

	if (!tp || ac_group_leave(tp->group, c))
		return;
	if (--tp->subs == 0) {
		*p = tp->next;
		t->count--;
		ac_group_free(tp->group);
		free(tp);
	}
}

/* ---- subscriptions of one client ------------------------------------------ */

static struct sub *find_sub(struct sub *v, size_t n, const char *name,
			    size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].len == len && !memcmp(v[i].name, name, len))
			return &v[i];
	return NULL;
}

static void add_sub(struct sub **v, size_t *n, size_t *cap, const char *name,
		    size_t len)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		*v = realloc(*v, *cap * sizeof(**v));
		if (!*v)
			abort();
	}
	(*v)[*n].name = xmalloc(len ? len : 1);
	memcpy((*v)[*n].name, name, len);
	(*v)[*n].len = len;
	(*n)++;
}

static void del_sub(struct sub *v, size_t *n, struct sub *s)
{
	free(s->name);
	*s = v[--*n];
}

static size_t nsubs(const struct client *cl)
{
	return cl ? cl->nchans + cl->npats : 0;
}

/* "*3 $9 subscribe $len name :count", and the other three kinds. */
static void sub_reply(ac_conn_t *c, const char *kind, const char *name,
		      size_t len, size_t count)
{
	outf(c, "*3\r\n");
	bulk_str(c, kind);
	if (name)
		bulk(c, name, len);
	else
		out(c, "$-1\r\n", 5);
	outf(c, ":%zu\r\n", count);
}

static void subscribe(ac_conn_t *c, struct client *cl, int pattern,
		       const char *name, size_t len)
{
	struct sub **v = pattern ? &cl->pats : &cl->chans;
	size_t *n = pattern ? &cl->npats : &cl->nchans;

	if (!find_sub(*v, *n, name, len)) {
		struct table *t = pattern ? &B.pats : chan_table(name, len);

		pthread_mutex_lock(&t->lock);
		join(t, c, name, len);
		pthread_mutex_unlock(&t->lock);
		add_sub(v, n, pattern ? &cl->cappats : &cl->capchans, name, len);
	}
	sub_reply(c, pattern ? "psubscribe" : "subscribe", name, len, nsubs(cl));
}

/* Leaves one subscription; replies when c is not NULL-reply (quiet). */
static void unsubscribe(ac_conn_t *c, struct client *cl, int pattern,
			const char *name, size_t len, int quiet)
{
	struct sub *v = pattern ? cl->pats : cl->chans;
	size_t *n = pattern ? &cl->npats : &cl->nchans;
	struct sub *s = find_sub(v, *n, name, len);

	if (s) {
		struct table *t = pattern ? &B.pats : chan_table(name, len);

		pthread_mutex_lock(&t->lock);
		leave(t, c, name, len);
		pthread_mutex_unlock(&t->lock);
	}
	if (!quiet)
		sub_reply(c, pattern ? "punsubscribe" : "unsubscribe", name,
			  len, nsubs(cl) - (s ? 1 : 0));
	if (s)
		del_sub(v, n, s);
}

static void unsubscribe_all(ac_conn_t *c, struct client *cl, int pattern,
			    int quiet)
{
	size_t *n = pattern ? &cl->npats : &cl->nchans;

	if (*n == 0 && !quiet) {
		sub_reply(c, pattern ? "punsubscribe" : "unsubscribe", NULL, 0,
			  nsubs(cl));
		return;
	}
	while (*n) {
		struct sub *v = pattern ? cl->pats : cl->chans;
		/* Copy: unsubscribe frees the entry. */
		size_t len = v[0].len;
		char *name = xmalloc(len ? len : 1);

		memcpy(name, v[0].name, len);
		unsubscribe(c, cl, pattern, name, len, quiet);
		free(name);
	}
}

/* ---- publishing -------------------------------------------------------------- */

/* "*3 $7 message $ch $msg" or "*4 $8 pmessage $pat $ch $msg" as one
 * shared buffer. */
static ac_buf_t *push(const char *pat, size_t plen, const char *ch,
		      size_t clen, const char *msg, size_t mlen)
{
	size_t cap = 64 + plen + clen + mlen;
	char *p = xmalloc(cap), *w = p;
	ac_buf_t *b;

	if (pat)
		w += sprintf(w, "*4\r\n$8\r\npmessage\r\n$%zu\r\n", plen);
	else
		w += sprintf(w, "*3\r\n$7\r\nmessage\r\n");
	if (pat) {
		memcpy(w, pat, plen);
		w += plen;
		w += sprintf(w, "\r\n");
	}
	w += sprintf(w, "$%zu\r\n", clen);
	memcpy(w, ch, clen);
	w += clen;
	w += sprintf(w, "\r\n$%zu\r\n", mlen);
	memcpy(w, msg, mlen);
	w += mlen;
	w += sprintf(w, "\r\n");
	b = ac_buf_new(p, (size_t)(w - p));
	free(p);
	if (!b)
		abort();
	return b;
}

static long publish(const char *ch, size_t clen, const char *msg, size_t mlen)
{
	struct table *t = chan_table(ch, clen);
	struct topic *tp;
	long receivers = 0;

	pthread_mutex_lock(&t->lock);
	if ((tp = *find(t, ch, clen))) {
		ac_buf_t *b = push(NULL, 0, ch, clen, msg, mlen);
		int n = ac_group_publish(tp->group, b);
		receivers += n > 0 ? n : 0;
		ac_buf_unref(b);
	}
	pthread_mutex_unlock(&t->lock);

	pthread_mutex_lock(&B.pats.lock);
	for (size_t i = 0; B.pats.count && i < B.pats.nbuckets; i++)
		for (tp = B.pats.buckets[i]; tp; tp = tp->next)
			if (resp_glob(tp->name, tp->len, ch, clen)) {
				ac_buf_t *b = push(tp->name, tp->len, ch, clen,
						   msg, mlen);
				int n = ac_group_publish(tp->group, b);
				receivers += n > 0 ? n : 0;
				ac_buf_unref(b);
			}
	pthread_mutex_unlock(&B.pats.lock);
	return receivers;
}

/* ---- commands ---------------------------------------------------------------- */

struct cmd {
	const char *name;
	int arity;      /* > 0 exact, < 0 at least -arity */
	int subscribed; /* allowed in subscribed mode (RESP2) */
	void (*fn)(ac_conn_t *c, struct client *cl, size_t argc,
		   const char **argv, const size_t *argl);
	int state;      /* needs the client's state (else cl may be NULL) */
};

#define ARGS                                                                 \
	ac_conn_t *c, struct client *cl, size_t argc, const char **argv,     \
		const size_t *argl

static void cmd_ping(ARGS)
{
	if (nsubs(cl)) { /* subscribed mode answers with a push */
		out(c, "*2\r\n$4\r\npong\r\n", 14);
		bulk(c, argc > 1 ? argv[1] : "", argc > 1 ? argl[1] : 0);
	} else if (argc > 1) {
		bulk(c, argv[1], argl[1]);
	} else {
		out(c, "+PONG\r\n", 7);
	}
}

static void cmd_echo(ARGS) { bulk(c, argv[1], argl[1]); }

static void cmd_subscribe(ARGS)
{
	for (size_t i = 1; i < argc; i++)
		subscribe(c, cl, 0, argv[i], argl[i]);
}

static void cmd_psubscribe(ARGS)
{
	for (size_t i = 1; i < argc; i++)
		subscribe(c, cl, 1, argv[i], argl[i]);
}

static void cmd_unsubscribe(ARGS)
{
	if (argc == 1)
		unsubscribe_all(c, cl, 0, 0);
	for (size_t i = 1; i < argc; i++)
		unsubscribe(c, cl, 0, argv[i], argl[i], 0);
}

static void cmd_punsubscribe(ARGS)
{
	if (argc == 1)
		unsubscribe_all(c, cl, 1, 0);
	for (size_t i = 1; i < argc; i++)
		unsubscribe(c, cl, 1, argv[i], argl[i], 0);
}

/* ---- forwarding to an upstream broker (--upstream) ------------------------- *
 * Each PUBLISH a client sends is also sent upstream through a connection
 * pool: acquire a connection of this loop, write the command, release it
 * when the upstream's one-line reply arrives. The client's reply does not
 * wait for it: it counts local receivers, as without --upstream. */

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

static void forward(const char *ch, size_t clen, const char *msg, size_t mlen)
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

static ac_pool_t *upstream_pool(const char *addr)
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

static void cmd_publish(ARGS)
{
	outf(c, ":%ld\r\n", publish(argv[1], argl[1], argv[2], argl[2]));
	if (B.up)
		forward(argv[1], argl[1], argv[2], argl[2]);
}

static void cmd_pubsub(ARGS)
{
	if (is(argv[1], argl[1], "CHANNELS") && argc <= 3) {
		size_t n = 0, cap = 16;
		struct sub *names = xmalloc(cap * sizeof(*names));

		for (int s = 0; s < SHARDS; s++) {
			struct table *t = &B.chans[s];
			pthread_mutex_lock(&t->lock);
			for (size_t i = 0; i < t->nbuckets; i++)
				for (struct topic *tp = t->buckets[i]; tp;
				     tp = tp->next) {
					if (argc == 3 &&
					    !resp_glob(argv[2], argl[2], tp->name,
						       tp->len))
						continue;
					if (n == cap)
						names = realloc(names,
								(cap *= 2) *
									sizeof(*names));
					if (!names)
						abort();
					names[n].len = tp->len;
					names[n].name = xmalloc(tp->len + 1);
					memcpy(names[n].name, tp->name, tp->len);
					n++;
				}
			pthread_mutex_unlock(&t->lock);
		}
		outf(c, "*%zu\r\n", n);
		for (size_t i = 0; i < n; i++) {
			bulk(c, names[i].name, names[i].len);
			free(names[i].name);
		}
		free(names);
	} else if (is(argv[1], argl[1], "NUMSUB")) {
		outf(c, "*%zu\r\n", (argc - 2) * 2);
		for (size_t i = 2; i < argc; i++) {
			struct table *t = chan_table(argv[i], argl[i]);
			struct topic *tp;
			size_t subs;

			pthread_mutex_lock(&t->lock);
			tp = *find(t, argv[i], argl[i]);
			subs = tp ? tp->subs : 0;
			pthread_mutex_unlock(&t->lock);
			bulk(c, argv[i], argl[i]);
			outf(c, ":%zu\r\n", subs);
		}
	} else if (is(argv[1], argl[1], "NUMPAT") && argc == 2) {
		pthread_mutex_lock(&B.pats.lock);
		outf(c, ":%zu\r\n", B.pats.count);
		pthread_mutex_unlock(&B.pats.lock);
	} else {
		outf(c, "-ERR unknown subcommand '%.*s'. Try PUBSUB HELP.\r\n",
		     (int)(argl[1] > 128 ? 128 : argl[1]), argv[1]);
	}
}

static void cmd_quit(ARGS)
{
	out(c, "+OK\r\n", 5);
	ac_conn_close(c, AC_CLOSE_FLUSH);
}

static void cmd_reset(ARGS)
{
	unsubscribe_all(c, cl, 0, 1);
	unsubscribe_all(c, cl, 1, 1);
	free(cl->name);
	cl->name = NULL;
	out(c, "+RESET\r\n", 8);
}

static int set_name(ac_conn_t *c, struct client *cl, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '!' || p[i] > '~') {
			outf(c, "-ERR Client names cannot contain spaces, "
				"newlines or special characters.\r\n");
			return -1;
		}
	free(cl->name);
	cl->name = NULL;
	if (n) {
		cl->name = xmalloc(n + 1);
		memcpy(cl->name, p, n);
		cl->name[n] = 0;
	}
	return 0;
}

static void cmd_hello(ARGS)
{
	size_t i = 2;

	if (argc > 1 && !(is(argv[1], argl[1], "2"))) {
		outs(c, is(argv[1], argl[1], "3")
				? "-NOPROTO sorry, this protocol version is not "
				  "supported.\r\n"
				: "-ERR Protocol version is not an integer or out "
				  "of range\r\n");
		return;
	}
	for (; i < argc; i++) {
		if (is(argv[i], argl[i], "SETNAME") && i + 1 < argc) {
			if (set_name(c, cl, argv[i + 1], argl[i + 1]))
				return;
			i++;
		} else if (is(argv[i], argl[i], "AUTH") && i + 2 < argc) {
			i += 2; /* no users to check: accepted */
		} else {
			outf(c, "-ERR Syntax error in HELLO option '%.*s'\r\n",
			     (int)(argl[i] > 64 ? 64 : argl[i]), argv[i]);
			return;
		}
	}
	out(c, "*14\r\n", 5);
	bulk_str(c, "server");
	bulk_str(c, "redis");
	bulk_str(c, "version");
	bulk_str(c, VERSION);
	bulk_str(c, "proto");
	out(c, ":2\r\n", 4);
	bulk_str(c, "id");
	outf(c, ":%llu\r\n", (unsigned long long)cl->id);
	bulk_str(c, "mode");
	bulk_str(c, "standalone");
	bulk_str(c, "role");
	bulk_str(c, "master");
	bulk_str(c, "modules");
	out(c, "*0\r\n", 4);
}

static void cmd_client(ARGS)
{
	if (is(argv[1], argl[1], "SETNAME") && argc == 3) {
		if (set_name(c, cl, argv[2], argl[2]) == 0)
			out(c, "+OK\r\n", 5);
	} else if (is(argv[1], argl[1], "GETNAME") && argc == 2) {
		if (cl->name)
			bulk_str(c, cl->name);
		else
			out(c, "$-1\r\n", 5);
	} else if (is(argv[1], argl[1], "ID") && argc == 2) {
		outf(c, ":%llu\r\n", (unsigned long long)cl->id);
	} else {
		outf(c, "-ERR unknown subcommand '%.*s'. Try CLIENT HELP.\r\n",
		     (int)(argl[1] > 128 ? 128 : argl[1]), argv[1]);
	}
}

static void cmd_command(ARGS);
static void cmd_config(ARGS)
{
	/* redis-benchmark asks for "save" and "appendonly": answer as a
	 * Redis without persistence would. Nothing else is configurable. */
	if (is(argv[1], argl[1], "GET") && argc == 3) {
		out(c, "*2\r\n", 4);
		bulk(c, argv[2], argl[2]);
		bulk_str(c, is(argv[2], argl[2], "appendonly") ? "no" : "");
	}
	else
		outs(c, "-ERR CONFIG is limited to GET in actorconn-broker\r\n");
}

static void cmd_info(ARGS)
{
	ac_stats_t st;
	char info[3072];
	size_t nchan = 0, npat;
	int n;

	ac_stats(B.rt, &st, NULL, 0);
	for (int s = 0; s < SHARDS; s++) {
		pthread_mutex_lock(&B.chans[s].lock);
		nchan += B.chans[s].count;
		pthread_mutex_unlock(&B.chans[s].lock);
	}
	pthread_mutex_lock(&B.pats.lock);
	npat = B.pats.count;
	pthread_mutex_unlock(&B.pats.lock);
	n = snprintf(info, sizeof(info),
		     "# Server\r\nredis_version:%s\r\nactorconn_version:%d.%d.%d\r\n"
		     "redis_mode:standalone\r\nprocess_id:%d\r\ntcp_port:%d\r\n"
		     "uptime_in_seconds:%llu\r\nevent_loops:%d\r\n\r\n"
		     "# Clients\r\nconnected_clients:%llu\r\n\r\n"
		     "# Memory\r\nused_memory:%llu\r\n\r\n"
		     "# Stats\r\ntotal_connections_received:%llu\r\n"
		     "total_commands_processed:%llu\r\n"
		     "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
		     "rejected_connections:%llu\r\npubsub_channels:%zu\r\n"
		     "pubsub_patterns:%zu\r\nmailbox_messages:%llu\r\n"
		     "mailbox_overflowed:%llu\r\nmessages_dropped:%llu\r\n"
		     "slow_consumers_closed:%llu\r\nidle_clients_closed:%llu\r\n"
		     "\r\n# Upstream\r\nupstream_forwarded:%llu\r\n"
		     "upstream_failed:%llu\r\nupstream_pool_idle:%llu\r\n"
		     "upstream_pool_busy:%llu\r\nupstream_connects:%llu\r\n",
		     VERSION, AC_VERSION_MAJOR, AC_VERSION_MINOR, AC_VERSION_PATCH,
		     (int)getpid(), B.port,
		     (unsigned long long)((now_ms() - B.started_ms) / 1000),
		     ac_runtime_loops(B.rt), (unsigned long long)st.conns_open,
		     (unsigned long long)st.heap_bytes,
		     (unsigned long long)st.accepted,
		     (unsigned long long)__atomic_load_n(&B.commands,
							 __ATOMIC_RELAXED),
		     (unsigned long long)st.bytes_in,
		     (unsigned long long)st.bytes_out,
		     (unsigned long long)st.rejected, nchan, npat,
		     (unsigned long long)st.mailbox_received,
		     (unsigned long long)st.mailbox_overflowed,
		     (unsigned long long)st.dropped,
		     (unsigned long long)st.closed[AC_CR_SLOW],
		     (unsigned long long)st.closed[AC_CR_TIMEOUT],
		     (unsigned long long)__atomic_load_n(&B.fwd_ok,
							 __ATOMIC_RELAXED),
		     (unsigned long long)__atomic_load_n(&B.fwd_failed,
							 __ATOMIC_RELAXED),
		     (unsigned long long)st.pool_idle,
		     (unsigned long long)st.pool_busy,
		     (unsigned long long)st.pool_connects);
	bulk(c, info, (size_t)(n < (int)sizeof(info) ? n : (int)sizeof(info) - 1));
}

static const struct cmd commands[] = {
	{"ping", -1, 1, cmd_ping, 0},
	{"echo", 2, 0, cmd_echo, 0},
	{"subscribe", -2, 1, cmd_subscribe, 1},
	{"unsubscribe", -1, 1, cmd_unsubscribe, 1},
	{"psubscribe", -2, 1, cmd_psubscribe, 1},
	{"punsubscribe", -1, 1, cmd_punsubscribe, 1},
	{"publish", 3, 0, cmd_publish, 0},
	{"pubsub", -2, 0, cmd_pubsub, 0},
	{"quit", -1, 1, cmd_quit, 0},
	{"reset", 1, 1, cmd_reset, 1},
	{"hello", -1, 0, cmd_hello, 1},
	{"client", -2, 0, cmd_client, 1},
	{"command", -1, 0, cmd_command, 0},
	{"config", -2, 0, cmd_config, 0},
	{"info", -1, 0, cmd_info, 0},
};
static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

/* A minimal valid COMMAND reply: the names and arities redis-cli reads. */
static void cmd_command(ARGS)
{
	if (argc == 1) {
		outf(c, "*%zu\r\n", ncommands);
		for (size_t i = 0; i < ncommands; i++) {
			/* name, arity, flags, first key, last key, step */
			out(c, "*6\r\n", 4);
			bulk_str(c, commands[i].name);
			outf(c, ":%d\r\n*0\r\n:0\r\n:0\r\n:0\r\n",
			     commands[i].arity);
		}
	} else if (is(argv[1], argl[1], "COUNT")) {
		outf(c, ":%zu\r\n", ncommands);
	} else if (is(argv[1], argl[1], "DOCS") || is(argv[1], argl[1], "INFO")) {
		out(c, "*0\r\n", 4); /* no docs: an empty map in RESP2 */
	} else {
		outf(c, "-ERR unknown subcommand '%.*s'. Try COMMAND HELP.\r\n",
		     (int)(argl[1] > 128 ? 128 : argl[1]), argv[1]);
	}
}



static void unknown(ac_conn_t *c, size_t argc, const char **argv,
		    const size_t *argl)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "-ERR unknown command '%.*s', with args beginning with: ",
			 (int)(argl[0] > 128 ? 128 : argl[0]), argv[0]);

	for (size_t i = 1; i < argc && n < 400; i++)
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, "'%.*s' ",
			      (int)(argl[i] > 64 ? 64 : argl[i]), argv[i]);
	out(c, msg, (size_t)n);
	out(c, "\r\n", 2);
}

static struct client *client_new(ac_conn_t *c);

static void execute(ac_conn_t *c, struct client *cl, size_t argc,
		    const char **argv, const size_t *argl)
{
	const struct cmd *cmd = NULL;

	__atomic_fetch_add(&B.commands, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < ncommands && !cmd; i++)
		if (is(argv[0], argl[0], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		unknown(c, argc, argv, argl);
		return;
	}
	if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
		outf(c, "-ERR wrong number of arguments for '%s' command\r\n",
		     cmd->name);
		return;
	}
	if (nsubs(cl) && !cmd->subscribed) {
		outf(c, "-ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
			"(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
			"this context\r\n",
		     cmd->name);
		return;
	}
	if (!cl && cmd->state && !(cl = client_new(c)))
		return; /* closing: out of memory */
	cmd->fn(c, cl, argc, argv, argl);
}

/* ---- connection callbacks -------------------------------------------------- */

/*
 * The decoder: one frame per complete command. A malformed command becomes
 * a frame of everything received, so that on_frame can send Redis' error
 * before closing; an incomplete one larger than max_frame is refused.
 */
static int resp_decode(const void *buf, size_t len, size_t max_frame,
		       ac_frame_t *f)
{
	size_t consumed, need;
	const char *err;
	int r = resp_parse(buf, len, &B.lim, NULL, &consumed, &need, &err);

	if (r == RESP_MORE) {
		if (len > max_frame || need > max_frame)
			return AC_EFRAME;
		f->need = need;
		return 0;
	}
	f->off = 0;
	f->len = f->consumed = r == RESP_OK ? consumed : len;
	return 1;
}

static void on_frame(ac_conn_t *c, const void *data, size_t len)
{
	static __thread const char *argv[MAX_ARGS];
	static __thread size_t argl[MAX_ARGS];
	struct resp_cmd cmd = {0, argv, argl};
	size_t consumed, need;
	const char *err;

	if (resp_parse(data, len, &B.lim, &cmd, &consumed, &need, &err) !=
	    RESP_OK) {
		outf(c, "-ERR %s\r\n", err);
		ac_conn_close(c, AC_CLOSE_FLUSH);
		return;
	}
	if (cmd.argc)
		execute(c, ac_conn_data(c), cmd.argc, argv, argl);
}

/* A client's state, made by the first command that needs it: a
 * connection that only publishes or pings costs the broker nothing beyond
 * the library's own bytes. */
static struct client *client_new(ac_conn_t *c)
{
	struct client *cl = calloc(1, sizeof(*cl));

	if (!cl) {
		outs(c, "-ERR out of memory\r\n");
		ac_conn_close(c, AC_CLOSE_FLUSH);
		return NULL;
	}
	cl->id = __atomic_add_fetch(&B.next_id, 1, __ATOMIC_RELAXED);
	ac_conn_set_data(c, cl);
	return cl;
}

static void on_heartbeat(ac_conn_t *c)
{
	/* Only subscribers are idle by design; they get the push Redis sends
	 * a subscribed PING, which every client understands there. */
	struct client *cl = ac_conn_data(c);

	if (cl && nsubs(cl))
		out(c, "*2\r\n$4\r\npong\r\n$0\r\n\r\n", 20);
}

static void on_close(ac_conn_t *c, int reason)
{
	struct client *cl = ac_conn_data(c);

	if (!cl)
		return;
	unsubscribe_all(c, cl, 0, 1);
	unsubscribe_all(c, cl, 1, 1);
	free(cl->chans);
	free(cl->pats);
	free(cl->name);
	free(cl);
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: actorconn-broker [--listen ADDR] [--unix PATH] [--threads N]\n"
		"         [--idle-timeout MS] [--heartbeat MS] [--max-clients N]\n"
		"         [--output-limit BYTES] [--max-bulk BYTES] [--metrics ADDR]\n"
		"         [--upstream ADDR]\n");
}

static unsigned long long number(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s) {
		fprintf(stderr, "actorconn-broker: bad %s '%s'\n", opt, s);
		exit(1);
	}
	return v;
}

static const char *errtext(int err)
{
	return ac_strerror(err); /* system errors come back as -errno */
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"unix", required_argument, NULL, 'u'},
		{"threads", required_argument, NULL, 't'},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"heartbeat", required_argument, NULL, 'b'},
		{"max-clients", required_argument, NULL, 'c'},
		{"output-limit", required_argument, NULL, 'o'},
		{"max-bulk", required_argument, NULL, 'B'},
		{"metrics", required_argument, NULL, 'm'},
		{"upstream", required_argument, NULL, 'U'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:6380", *upath = NULL, *maddr = NULL;
	const char *upstream = NULL;
	ac_conn_cbs_t cbs = {.on_frame = on_frame,
			     .on_heartbeat = on_heartbeat,
			     .on_close = on_close};
	ac_conn_opts_t opts = {.framing = AC_FRAME_CUSTOM,
			       .decode = resp_decode,
			       .max_frame = (size_t)1 << 30};
	ac_config_t cfg = {0};
	ac_listener_t *l, *ul, *ml;
	sigset_t sigs;
	int opt, err, sig;

	B.lim.max_bulk = (size_t)512 << 20;
	B.lim.max_inline = 64 << 10;
	B.lim.max_args = MAX_ARGS;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': addr = optarg; break;
		case 'u': upath = optarg; break;
		case 't': cfg.loops = (int)number("--threads", optarg); break;
		case 'i': opts.idle_timeout_ms = (unsigned)number("--idle-timeout", optarg); break;
		case 'b': opts.heartbeat_ms = (unsigned)number("--heartbeat", optarg); break;
		case 'c': cfg.max_conns = (unsigned)number("--max-clients", optarg); break;
		case 'o':
			opts.out_hard_limit = number("--output-limit", optarg);
			/* The soft limit never above the hard one. */
			opts.out_soft_limit = opts.out_hard_limit < (1u << 20)
						      ? opts.out_hard_limit
						      : 1u << 20;
			if (opts.out_high > opts.out_hard_limit)
				opts.out_high = opts.out_hard_limit;
			break;
		case 'B': B.lim.max_bulk = number("--max-bulk", optarg); break;
		case 'm': maddr = optarg; break;
		case 'U': upstream = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc || cfg.loops > 256) {
		usage(stderr);
		return 1;
	}
	if (opts.out_hard_limit && opts.out_hard_limit < (256u << 10)) {
		opts.out_high = opts.out_hard_limit;
		opts.out_low = opts.out_hard_limit / 4;
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	for (int s = 0; s < SHARDS; s++)
		table_init(&B.chans[s], BUCKETS);
	table_init(&B.pats, 64);
	B.started_ms = now_ms();
	if (!(B.rt = ac_runtime_new(&cfg))) {
		perror("actorconn-broker: ac_runtime_new");
		return 1;
	}
	if ((err = ac_listen(B.rt, addr, &cbs, &opts, NULL, &l))) {
		fprintf(stderr, "actorconn-broker: cannot listen on %s: %s\n",
			addr, errtext(err));
		ac_runtime_free(B.rt);
		return 1;
	}
	B.port = ac_listener_port(l);
	if (upath) {
		char ua[128];
		snprintf(ua, sizeof(ua), "unix:%s", upath);
		if ((err = ac_listen(B.rt, ua, &cbs, &opts, NULL, &ul))) {
			fprintf(stderr, "actorconn-broker: cannot listen on %s: %s\n",
				ua, errtext(err));
			ac_runtime_free(B.rt);
			return 1;
		}
	}
	if (maddr && (err = ac_metrics_listen(B.rt, maddr, &ml))) {
		fprintf(stderr, "actorconn-broker: cannot serve metrics on %s: %s\n",
			maddr, errtext(err));
		ac_runtime_free(B.rt);
		return 1;
	}
	if (upstream && !(B.up = upstream_pool(upstream))) {
		fprintf(stderr, "actorconn-broker: bad --upstream '%s': %s\n",
			upstream, strerror(errno));
		ac_runtime_free(B.rt);
		return 1;
	}
	if ((err = ac_runtime_start(B.rt))) {
		fprintf(stderr, "actorconn-broker: start: %s\n", ac_strerror(err));
		ac_runtime_free(B.rt);
		return 1;
	}
	size_t alen = strlen(addr);
	if (alen > 2 && !strcmp(addr + alen - 2, ":0"))
		printf("actorconn-broker: listening on %.*s:%d", (int)(alen - 2),
		       addr, B.port);
	else
		printf("actorconn-broker: listening on %s", addr);
	if (upath)
		printf(" and unix:%s", upath);
	printf(" (%d loops)\n", ac_runtime_loops(B.rt));
	if (maddr)
		printf("actorconn-broker: metrics on http://%s/metrics\n", maddr);
	if (upstream)
		printf("actorconn-broker: forwarding PUBLISH to %s\n", upstream);
	fflush(stdout);

	sigwait(&sigs, &sig);
	ac_pool_free(B.up);
	ac_runtime_stop(B.rt, 1000);
	ac_runtime_free(B.rt);
	for (int s = 0; s < SHARDS; s++)
		free(B.chans[s].buckets);
	free(B.pats.buckets);
	return 0;
}
