/*
 * pubsub.c: actorconn-broker's channels, patterns and shard channels.
 *
 * Each channel (and each pattern, each shard channel) is an ac_group_t,
 * and a second one for its RESP3 subscribers once it has any: its
 * subscribers may live on every loop, and a PUBLISH sends one mailbox
 * message per loop that has subscribers, which writes one shared buffer,
 * in their protocol's form, to each of them.
 * The channel tables are sharded maps under short mutexes; they are
 * touched by SUBSCRIBE, UNSUBSCRIBE and PUBLISH, never by delivery.
 * Shard channels (SSUBSCRIBE, SPUBLISH) have tables of their own, the
 * same kind: a namespace apart, as in Redis, that PUBLISH never looks
 * at, so that they cost it nothing.
 * With --cluster, a channel or pattern topic holds a subscription of the
 * node in Redis for as long as it lives (cluster.c), and what other
 * nodes publish comes in through publish_remote.
 */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "hash.h"

/* ---- topic tables ------------------------------------------------------------ */

static void table_init(struct table *t, size_t nbuckets)
{
	pthread_mutex_init(&t->lock, NULL);
	t->buckets = calloc(nbuckets, sizeof(*t->buckets));
	if (!t->buckets)
		abort();
	t->nbuckets = nbuckets;
}

/* A seed per run: names sent from the network cannot be chosen to land in
 * one bucket (the library's registry seeds its table the same way). */
static uint64_t new_seed(void)
{
	uint64_t s;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
		s = ac__hash_mix(now_ms() ^ (uint64_t)getpid());
	return s;
}

void pubsub_init(void)
{
	B.seed = new_seed();
	for (int s = 0; s < SHARDS; s++) {
		table_init(&B.chans[s], BUCKETS);
		table_init(&B.schans[s], BUCKETS);
	}
	table_init(&B.pats, 64);
}

void pubsub_free(void)
{
	for (int s = 0; s < SHARDS; s++) {
		free(B.chans[s].buckets);
		free(B.schans[s].buckets);
	}
	free(B.pats.buckets);
}

static uint64_t hash(const char *name, size_t len)
{
	return ac__hash(name, len, B.seed);
}

/* The shard of B.chans that holds channel name. */
static struct table *chan_table(const char *name, size_t len)
{
	return &B.chans[hash(name, len) % SHARDS];
}

/* The table that holds a subscription of this kind to name. */
static struct table *table_of(int kind, const char *name, size_t len)
{
	if (kind == PATTERN)
		return &B.pats;
	return &(kind == SHARD ? B.schans : B.chans)[hash(name, len) % SHARDS];
}

/* Under t->lock: the link that points at name's topic, or the empty one
 * at the end of its bucket. */
static struct topic **find(struct table *t, const char *name, size_t len)
{
	struct topic **p = &t->buckets[(hash(name, len) / SHARDS) % t->nbuckets];

	for (; *p; p = &(*p)->next)
		if ((*p)->len == len && !memcmp((*p)->name, name, len))
			return p;
	return p;
}

/* Under t->lock: a channel or pattern topic asks the bridge for other
 * nodes' messages (cluster.c), at its making and, if the bridge refused
 * then, at each later join, so that a refusal (the home loop's mailbox
 * full) lasts only until the next subscriber. Shard channels stay on
 * this node: the bridge has one namespace of channels in Redis, which
 * the plain ones use, and shard channels there would meet them. The
 * bridge counts the calls per name and never blocks, so a topic freed
 * on one loop and made again on another at once costs at most a
 * needless unsubscribe and subscribe in Redis. */
static void bridge_topic(struct topic *tp, int kind)
{
	if (B.br && kind != SHARD && !tp->bridged)
		tp->bridged = cluster_subscribe(kind, tp->name, tp->len) == 0;
}

/* Under t->lock: c joins name's group for its protocol (resp3: the
 * RESP3 one), made on first use. */
static void join(struct table *t, int kind, ac_conn_t *c, const char *name,
		 size_t len, int resp3)
{
	struct topic **p = find(t, name, len), *tp = *p;

	if (!tp) {
		tp = xmalloc(sizeof(*tp) + len);
		tp->next = NULL;
		tp->group3 = NULL;
		tp->subs = tp->subs3 = 0;
		tp->bridged = 0;
		tp->len = len;
		memcpy(tp->name, name, len);
		if (!(tp->group = ac_group_new(B.rt)))
			abort();
		*p = tp;
		t->count++;
	}
	if (resp3 && !tp->group3 && !(tp->group3 = ac_group_new(B.rt)))
		abort();
	if (ac_group_join(resp3 ? tp->group3 : tp->group, c) == 0) {
		tp->subs++;
		tp->subs3 += resp3 ? 1 : 0;
		bridge_topic(tp, kind);
	}
}

/* Under t->lock: c leaves name's group; the last one out frees it, and
 * the node's subscription in Redis with it. */
static void leave(struct table *t, int kind, ac_conn_t *c, const char *name,
		  size_t len, int resp3)
{
	struct topic **p = find(t, name, len), *tp = *p;

	if (!tp || (resp3 && !tp->group3) ||
	    ac_group_leave(resp3 ? tp->group3 : tp->group, c))
		return;
	tp->subs3 -= resp3 ? 1 : 0;
	if (--tp->subs == 0) {
		*p = tp->next;
		t->count--;
		if (tp->bridged)
			cluster_unsubscribe(kind, tp->name, tp->len);
		ac_group_free(tp->group);
		if (tp->group3)
			ac_group_free(tp->group3);
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

size_t nsubs(const struct client *cl)
{
	return cl ? cl->nchans + cl->npats + cl->nschans : 0;
}

/* A client's list of subscriptions of one kind. */
struct subs {
	struct sub **v;
	size_t *n, *cap;
};

static struct subs subs_of(struct client *cl, int kind)
{
	if (kind == PATTERN)
		return (struct subs){&cl->pats, &cl->npats, &cl->cappats};
	if (kind == SHARD)
		return (struct subs){&cl->schans, &cl->nschans, &cl->capschans};
	return (struct subs){&cl->chans, &cl->nchans, &cl->capchans};
}

/* The count that Redis puts in (un)subscribe replies: shard channels
 * are counted apart from channels and patterns. */
static size_t count_of(const struct client *cl, int kind)
{
	return kind == SHARD ? cl->nschans : cl->nchans + cl->npats;
}

static const char *const sub_kinds[] = {"subscribe", "psubscribe",
					"ssubscribe"};
static const char *const unsub_kinds[] = {"unsubscribe", "punsubscribe",
					  "sunsubscribe"};

/* "*3 $9 subscribe $len name :count", and the other five kinds: a push
 * in RESP3, and in both protocols sent even under CLIENT REPLY OFF. */
static void sub_reply(ac_conn_t *c, struct client *cl, const char *kind,
		      const char *name, size_t len, size_t count)
{
	cl->pushing = 1;
	reply_push(c, 3);
	bulk_str(c, kind);
	if (name)
		bulk(c, name, len);
	else
		reply_null(c);
	outf(c, ":%zu\r\n", count);
	cl->pushing = 0;
}

void subscribe(ac_conn_t *c, struct client *cl, int kind,
	       const char *name, size_t len)
{
	struct subs l = subs_of(cl, kind);

	if (!find_sub(*l.v, *l.n, name, len)) {
		struct table *t = table_of(kind, name, len);

		pthread_mutex_lock(&t->lock);
		join(t, kind, c, name, len, client_resp(cl) == 3);
		pthread_mutex_unlock(&t->lock);
		add_sub(l.v, l.n, l.cap, name, len);
	}
	sub_reply(c, cl, sub_kinds[kind], name, len, count_of(cl, kind));
}

void unsubscribe(ac_conn_t *c, struct client *cl, int kind,
		 const char *name, size_t len, int quiet)
{
	struct subs l = subs_of(cl, kind);
	struct sub *s = find_sub(*l.v, *l.n, name, len);

	if (s) {
		struct table *t = table_of(kind, name, len);

		pthread_mutex_lock(&t->lock);
		leave(t, kind, c, name, len, client_resp(cl) == 3);
		pthread_mutex_unlock(&t->lock);
	}
	if (!quiet)
		sub_reply(c, cl, unsub_kinds[kind], name, len,
			  count_of(cl, kind) - (s ? 1 : 0));
	if (s)
		del_sub(*l.v, l.n, s);
}

void unsubscribe_all(ac_conn_t *c, struct client *cl, int kind, int quiet)
{
	struct subs l = subs_of(cl, kind);

	if (*l.n == 0 && !quiet) {
		sub_reply(c, cl, unsub_kinds[kind], NULL, 0,
			  count_of(cl, kind));
		return;
	}
	while (*l.n) {
		/* Copy: unsubscribe frees the entry. */
		size_t len = (*l.v)[0].len;
		char *name = xmalloc(len ? len : 1);

		memcpy(name, (*l.v)[0].name, len);
		unsubscribe(c, cl, kind, name, len, quiet);
		free(name);
	}
}

void pubsub_set_resp(ac_conn_t *c, struct client *cl, int resp)
{
	int from3 = client_resp(cl) == 3, to3 = resp == 3;

	/* Every kind: channels, patterns and shard channels alike. */
	for (int kind = CHANNEL; kind <= SHARD && from3 != to3; kind++) {
		struct subs l = subs_of(cl, kind);
		struct sub *v = *l.v;

		for (size_t i = 0; i < *l.n; i++) {
			struct table *t = table_of(kind, v[i].name, v[i].len);

			/* Joined before leaving: the topic stays. */
			pthread_mutex_lock(&t->lock);
			join(t, kind, c, v[i].name, v[i].len, to3);
			leave(t, kind, c, v[i].name, v[i].len, from3);
			pthread_mutex_unlock(&t->lock);
		}
	}
	cl->resp = resp;
}

/* ---- publishing -------------------------------------------------------------- */

/* "*3 $7 message $ch $msg", "*4 $8 pmessage $pat $ch $msg" or, with
 * shard set, "*3 $8 smessage $ch $msg", as one shared buffer; with
 * resp3 set, RESP3's push, which differs only in its first byte ('>'
 * for '*'). */
static ac_buf_t *push(int resp3, int shard, const char *pat, size_t plen,
		      const char *ch, size_t clen, const char *msg,
		      size_t mlen)
{
	size_t cap = 64 + plen + clen + mlen;
	char *p = xmalloc(cap), *w = p;
	ac_buf_t *b;

	if (pat)
		w += sprintf(w, "*4\r\n$8\r\npmessage\r\n$%zu\r\n", plen);
	else if (shard)
		w += sprintf(w, "*3\r\n$8\r\nsmessage\r\n");
	else
		w += sprintf(w, "*3\r\n$7\r\nmessage\r\n");
	if (resp3)
		p[0] = '>';
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

/* Publishes the push for (pat, ch, msg), in RESP3's form if resp3 is
 * set, to g; its receivers. */
static long publish_to(ac_group_t *g, int resp3, int shard, const char *pat,
		       size_t plen, const char *ch, size_t clen,
		       const char *msg, size_t mlen)
{
	ac_buf_t *b = push(resp3, shard, pat, plen, ch, clen, msg, mlen);
	int n = ac_group_publish(g, b);

	ac_buf_unref(b);
	return n > 0 ? n : 0;
}

/* Publishes the push for (pat, ch, msg) to tp's groups; its receivers.
 * Encoded once per protocol that has subscribers: a topic with RESP2
 * subscribers only (the usual case) costs one buffer, as before RESP3. */
static long deliver(struct topic *tp, int shard, const char *pat,
		    size_t plen, const char *ch, size_t clen, const char *msg,
		    size_t mlen)
{
	long n = 0;

	if (tp->subs > tp->subs3)
		n += publish_to(tp->group, 0, shard, pat, plen, ch, clen, msg,
				mlen);
	if (tp->subs3)
		n += publish_to(tp->group3, 1, shard, pat, plen, ch, clen, msg,
				mlen);
	return n;
}

long publish(const char *ch, size_t clen, const char *msg, size_t mlen)
{
	struct table *t = chan_table(ch, clen);
	struct topic *tp;
	long receivers = 0;

	pthread_mutex_lock(&t->lock);
	if ((tp = *find(t, ch, clen)))
		receivers += deliver(tp, 0, NULL, 0, ch, clen, msg, mlen);
	pthread_mutex_unlock(&t->lock);

	pthread_mutex_lock(&B.pats.lock);
	for (size_t i = 0; B.pats.count && i < B.pats.nbuckets; i++)
		for (tp = B.pats.buckets[i]; tp; tp = tp->next)
			if (resp_glob(tp->name, tp->len, ch, clen))
				receivers += deliver(tp, 0, tp->name, tp->len,
						     ch, clen, msg, mlen);
	pthread_mutex_unlock(&B.pats.lock);
	return receivers;
}

long spublish(const char *ch, size_t clen, const char *msg, size_t mlen)
{
	struct table *t = table_of(SHARD, ch, clen);
	struct topic *tp;
	long receivers = 0;

	pthread_mutex_lock(&t->lock);
	if ((tp = *find(t, ch, clen)))
		receivers = deliver(tp, 1, NULL, 0, ch, clen, msg, mlen);
	pthread_mutex_unlock(&t->lock);
	return receivers;
}

long publish_remote(const char *pat, size_t plen, const char *ch,
		    size_t clen, const char *msg, size_t mlen)
{
	struct table *t = pat ? &B.pats : chan_table(ch, clen);
	struct topic *tp;
	long receivers = 0;

	pthread_mutex_lock(&t->lock);
	if ((tp = *(pat ? find(t, pat, plen) : find(t, ch, clen))))
		receivers = deliver(tp, 0, pat, plen, ch, clen, msg, mlen);
	pthread_mutex_unlock(&t->lock);
	return receivers;
}

/* ---- what PUBSUB and INFO report -------------------------------------------- */

struct sub *channels_matching(int kind, const char *pat, size_t plen,
			      size_t *count)
{
	size_t n = 0, cap = 16;
	struct sub *names = xmalloc(cap * sizeof(*names));

	for (int s = 0; s < SHARDS; s++) {
		struct table *t = &(kind == SHARD ? B.schans : B.chans)[s];
		pthread_mutex_lock(&t->lock);
		for (size_t i = 0; i < t->nbuckets; i++)
			for (struct topic *tp = t->buckets[i]; tp;
			     tp = tp->next) {
				if (pat && !resp_glob(pat, plen, tp->name,
						      tp->len))
					continue;
				if (n == cap)
					names = realloc(names, (cap *= 2) *
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
	*count = n;
	return names;
}

size_t channel_subscribers(int kind, const char *name, size_t len)
{
	struct table *t = table_of(kind, name, len);
	struct topic *tp;
	size_t subs;

	pthread_mutex_lock(&t->lock);
	tp = *find(t, name, len);
	subs = tp ? tp->subs : 0;
	pthread_mutex_unlock(&t->lock);
	return subs;
}

static size_t count_tables(struct table *t)
{
	size_t n = 0;

	for (int s = 0; s < SHARDS; s++) {
		pthread_mutex_lock(&t[s].lock);
		n += t[s].count;
		pthread_mutex_unlock(&t[s].lock);
	}
	return n;
}

size_t channel_count(void)
{
	return count_tables(B.chans);
}

size_t shard_channel_count(void)
{
	return count_tables(B.schans);
}

size_t pattern_count(void)
{
	size_t n;

	pthread_mutex_lock(&B.pats.lock);
	n = B.pats.count;
	pthread_mutex_unlock(&B.pats.lock);
	return n;
}
