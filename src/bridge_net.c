/*
 * bridge_net.c: a bridge's work on its home loop: the links to Redis, the
 * commands written on them, the replies read back (hiredis's reader,
 * building the library's counted objects), publishing, subscribing, and
 * the slot map of a Redis Cluster. Everything here runs on the home loop
 * (or, once every loop has exited, on the thread settling the runtime).
 * bridge.c's opening comment says how the pieces fit.
 */
#include "common.h"

#ifdef AC_HAVE_HIREDIS /* the whole file */

#include "bridge_int.h"
#include "alloc.h"
#include "conn.h"
#include "group.h"
#include "loop.h"
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>

/* The envelope's first bytes (actorconn.h): NUL first, so that text and
 * JSON payloads published by other programs never start with it. */
static const char magic[4] = {'\0', 'A', 'C', '1'};

static void want_refresh(ac_bridge_t *br);
static int node_index(ac_bridge_t *br, struct bnode *n);
static void link_fail(struct link *l, int reason);
static void send_publish(ac_bridge_t *br, struct bnode *n, struct bsrc *src,
			 ac_buf_t *payload, bool asking);

/* ---- replies (hiredis's reader, with the library's objects) ----------------- */

/*
 * A reply. The reader makes one through these functions, so that what
 * it builds is counted as the library's, and so that a message's payload
 * becomes one shared buffer straight from the reader's input, envelope
 * removed (or marked own, and not copied at all).
 */
struct rv {
	int type;
	bool own;            /* a payload this node published */
	long long i;
	size_t len;          /* string; or elements */
	char *s;             /* string, not a payload */
	ac_buf_t *b;         /* a payload */
	struct rv **e;       /* array elements */
};

static bool rv_is(const struct rv *r, const char *s)
{
	size_t n = strlen(s);

	return r && r->s && r->len == n && !strncasecmp(r->s, s, n);
}

static void rv_free(void *p)
{
	struct rv *r = p;

	if (!r)
		return;
	if (r->e)
		for (size_t i = 0; i < r->len; i++)
			rv_free(r->e[i]);
	ac__br_free(r->e);
	ac__br_free(r->s);
	if (r->b)
		ac_buf_unref(r->b);
	ac__br_free(r);
}

static struct rv *rv_new(const redisReadTask *t)
{
	struct rv *r = ac__calloc(AC__K_BRIDGE, 1, sizeof(*r));

	if (r) {
		r->type = t->type;
		if (t->parent)
			((struct rv *)t->parent->obj)->e[t->idx] = r;
	}
	return r;
}

/* Out of memory while making r: the reader gives up on the reply and
 * frees what it holds, which includes r when it has a parent. */
static void *rv_fail(const redisReadTask *t, struct rv *r)
{
	if (!t->parent)
		rv_free(r);
	return NULL;
}

/* The last element of a message ("message", "pmessage", "smessage")? */
static bool is_payload(const redisReadTask *t)
{
	struct rv *p = t->parent ? t->parent->obj : NULL;

	if (!p || t->idx != (int)p->len - 1 || p->len < 3 || !p->e[0])
		return false;
	return rv_is(p->e[0], "message") || rv_is(p->e[0], "smessage") ||
	       (p->len == 4 && rv_is(p->e[0], "pmessage"));
}

static void *rv_string(const redisReadTask *t, char *s, size_t len)
{
	ac_bridge_t *br = t->privdata;
	bool payload = is_payload(t);
	struct rv *r = rv_new(t);

	if (!r)
		return NULL;
	if (payload) {
		uint64_t id;

		if (len >= ENVELOPE_LEN && !memcmp(s, magic, sizeof(magic))) {
			memcpy(&id, s + sizeof(magic), sizeof(id));
			if (id == br->id) {
				r->own = true;
				return r;
			}
			s += ENVELOPE_LEN;
			len -= ENVELOPE_LEN;
		}
		if (!(r->b = ac_buf_new(s, len)))
			return NULL; /* the parent frees r */
		return r;
	}
	if (!(r->s = ac__br_strndup(s, len)))
		return rv_fail(t, r);
	r->len = len;
	return r;
}

static void *rv_array(const redisReadTask *t, int n)
{
	struct rv *r = rv_new(t);

	if (r && n > 0) {
		if (!(r->e = ac__calloc(AC__K_BRIDGE, (size_t)n, sizeof(*r->e))))
			return rv_fail(t, r);
		r->len = (size_t)n;
	}
	return r;
}

static void *rv_integer(const redisReadTask *t, long long v)
{
	struct rv *r = rv_new(t);

	if (r)
		r->i = v;
	return r;
}

static void *rv_nil(const redisReadTask *t)
{
	return rv_new(t);
}

static redisReplyObjectFunctions rv_fns = {rv_string, rv_array, rv_integer,
					   rv_nil, rv_free};

/* ---- writing commands --------------------------------------------------------- */

/* Appends "$len\r\n" (or "*len\r\n") to p. */
static size_t resp_len(char *p, char c, size_t len)
{
	return (size_t)sprintf(p, "%c%zu\r\n", c, len);
}

/* Writes the command argv[0..n) on l; false if the link refused it
 * (closing: the close will be handled). */
static bool link_command(struct link *l, int n, const char *const *argv,
			 const size_t *argl)
{
	char heads[8][24];
	struct iovec iov[3 * 8];
	int k = 0;

	if (!l->c || l->closing || n > 8)
		return false;
	for (int i = 0; i < n; i++) {
		char *h = heads[i];
		size_t hl = 0;

		if (i == 0)
			hl = resp_len(h, '*', (size_t)n);
		hl += resp_len(h + hl, '$', argl[i]);
		iov[k++] = (struct iovec){h, hl};
		iov[k++] = (struct iovec){(void *)argv[i], argl[i]};
		iov[k++] = (struct iovec){"\r\n", 2};
	}
	return ac_conn_writev(l->c, iov, k) == 0;
}

/* Queues what l's next reply answers. False: no memory. */
static bool pend_push(struct link *l, struct pend p)
{
	if (l->tail - l->head == l->cap) {
		uint32_t cap = l->cap ? l->cap * 2 : 16;
		struct pend *q = ac__malloc(AC__K_BRIDGE, cap * sizeof(*q));

		if (!q)
			return false;
		for (uint32_t i = 0; i < l->cap; i++)
			q[i] = l->q[(l->head + i) & (l->cap - 1)];
		ac__br_free(l->q);
		l->q = q;
		l->tail = l->tail - l->head;
		l->head = 0;
		l->cap = cap;
	}
	l->q[l->tail++ & (l->cap - 1)] = p;
	return true;
}

static bool pend_pop(struct link *l, struct pend *out)
{
	if (l->head == l->tail)
		return false;
	*out = l->q[l->head++ & (l->cap - 1)];
	return true;
}

static struct pend *pend_peek(struct link *l)
{
	return l->head == l->tail ? NULL : &l->q[l->head & (l->cap - 1)];
}

/* Sends a command whose reply is p. False if it could not be sent (no
 * link, link closing, no memory: then the link is closed, since its
 * replies could no longer be matched). */
static bool link_request(struct link *l, struct pend p, int n,
			 const char *const *argv, const size_t *argl)
{
	if (!l->c || l->closing)
		return false;
	if (!pend_push(l, p)) {
		link_fail(l, AC_ENOMEM);
		return false;
	}
	if (!link_command(l, n, argv, argl)) {
		l->tail--; /* not sent: its reply will not come */
		return false;
	}
	return true;
}

/* Ends l's connection for a reason of its own (a bad reply, a refused
 * AUTH): it reconnects after a back-off, as after a network failure. */
static void link_fail(struct link *l, int reason)
{
	if (l->c && !l->closing) {
		l->closing = true;
		ac__conn_fail(l->c, reason);
	}
}

void ac__br_link_close(struct link *l)
{
	ac_bridge_t *br = l->node->br;

	if (l->c) {
		l->closing = true;
		ac_conn_close(l->c, AC_CLOSE_ABORT);
	} else if (l->h) {
		ac_close(br->rt, l->h, AC_CLOSE_ABORT);
	}
}

/* ---- publishing (home) -------------------------------------------------------- */

static struct bnode *node_of_slot(ac_bridge_t *br, uint16_t slot)
{
	if (br->mode == AC_BRIDGE_SINGLE)
		return br->server;
	if (br->mode == AC_BRIDGE_CLUSTER && br->slots && br->slots[slot])
		return br->nodes[br->slots[slot] - 1];
	return NULL;
}

/*
 * Writes PUBLISH (SPUBLISH in a cluster, after ASKING if asking) for
 * payload on n's pub link: the command head and envelope from the
 * stack, the payload by reference. Dropped and counted when n has no
 * open link or its max_queued would be passed.
 */
static void send_publish(ac_bridge_t *br, struct bnode *n, struct bsrc *src,
			 ac_buf_t *payload, bool asking)
{
	struct link *l = n ? &n->pub : NULL;
	bool cluster = br->mode == AC_BRIDGE_CLUSTER;
	size_t len = ac_buf_len(payload), bytes = len + src->rlen + 64;
	char head[64], mid[40], env[ENVELOPE_LEN];
	struct iovec iov[4];
	struct pend p = {.op = OP_PUBLISH, .bytes = bytes};

	if (!l || !l->c || l->closing) {
		ST_ADD(br, dropped_down, 1);
		return;
	}
	if (l->inflight + bytes > br->max_queued) {
		ST_ADD(br, dropped_full, 1);
		return;
	}
	if (asking) {
		const char *a[] = {"ASKING"};
		size_t al[] = {6};

		if (!link_request(l, (struct pend){.op = OP_ASKING}, 1, a, al)) {
			ST_ADD(br, dropped_down, 1);
			return;
		}
	}
	p.src = src;
	p.payload = payload;
	if (!pend_push(l, p)) {
		ST_ADD(br, dropped_full, 1);
		return;
	}
	memcpy(env, magic, sizeof(magic));
	memcpy(env + sizeof(magic), &br->id, sizeof(br->id));
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)sprintf(head, "*3\r\n$%d\r\n%s\r\n$%zu\r\n",
					 cluster ? 8 : 7,
					 cluster ? "SPUBLISH" : "PUBLISH",
					 src->rlen);
	iov[1] = (struct iovec){src->rname, src->rlen};
	iov[2].iov_base = mid;
	iov[2].iov_len = (size_t)sprintf(mid, "\r\n$%zu\r\n", len + ENVELOPE_LEN);
	iov[3] = (struct iovec){env, sizeof(env)};
	if (ac_conn_writev(l->c, iov, 4) || ac_conn_write_buf(l->c, payload) ||
	    ac_conn_write(l->c, "\r\n", 2)) {
		/* A partly written command cannot be taken back: the
		 * link starts over. */
		l->tail--;
		link_fail(l, AC_ENOMEM);
		ST_ADD(br, dropped_down, 1);
		return;
	}
	ac__br_src_ref(src);
	ac_buf_ref(payload);
	l->inflight += bytes;
	if (cluster && br->inflight) {
		br->inflight[src->slot]++;
		br->route[src->slot] = (uint16_t)(node_index(br, n) + 1);
	}
	ST_ADD(br, published, 1);
}

/*
 * Order across redirects. In a cluster, a slot's publishes in flight all
 * go to one node (route), even after the map says its slot moved, and a
 * publish that comes back MOVED or ASK waits (held) until every earlier
 * one of its slot is answered; then the slot's waiting publishes are
 * sent again in order. So one publisher's messages stay in order while
 * their slot moves: a later publish can never reach the new master
 * before an earlier one that went to the old master first.
 */
static void route_publish(ac_bridge_t *br, struct bsrc *src, ac_buf_t *b)
{
	uint16_t s = src->slot;
	struct bnode *n = node_of_slot(br, s);

	if (br->mode == AC_BRIDGE_CLUSTER && br->inflight && br->inflight[s])
		n = br->nodes[br->route[s] - 1];
	send_publish(br, n, src, b, false);
}

static void hold(ac_bridge_t *br, struct bsrc *src, ac_buf_t *b,
		 struct bnode *ask)
{
	struct held *h = ac__malloc(AC__K_BRIDGE, sizeof(*h));

	if (!h) {
		ST_ADD(br, dropped_full, 1);
		return;
	}
	ac__br_src_ref(src);
	h->src = src;
	h->payload = ac_buf_ref(b);
	h->ask = ask;
	h->next = NULL;
	*br->held_tail = h;
	br->held_tail = &h->next;
}

/* A publish of slot s was answered (or lost): once none is left in
 * flight, the slot's held publishes go again, in order. */
static void answered(ac_bridge_t *br, uint16_t s)
{
	struct held **pp = &br->held, *h;

	if (!br->inflight || --br->inflight[s])
		return;
	while ((h = *pp)) {
		if (h->src->slot != s) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		if (!*pp)
			br->held_tail = pp;
		if (br->dead)
			ST_ADD(br, dropped_down, 1);
		else if (h->ask)
			send_publish(br, h->ask, h->src, h->payload, true);
		else
			route_publish(br, h->src, h->payload);
		ac__br_src_unref(h->src);
		ac_buf_unref(h->payload);
		ac__br_free(h);
	}
}

void ac__br_drop_held(ac_bridge_t *br)
{
	struct held *h;

	while ((h = br->held)) {
		br->held = h->next;
		ST_ADD(br, dropped_down, 1);
		ac__br_src_unref(h->src);
		ac_buf_unref(h->payload);
		ac__br_free(h);
	}
	br->held_tail = &br->held;
}

/* BRIDGE message, on the home loop: publish b on a.p's channel. */
void ac__bridge_deliver(ac__loop_t *loop, struct ac__msg *m)
{
	struct bsrc *src = m->a.p;
	ac_bridge_t *br = src->br;

	(void)loop;
	if (br->dead)
		ST_ADD(br, dropped_down, 1);
	else
		route_publish(br, src, m->b);
	ac_buf_unref(m->b);
	ac__br_src_unref(src);
}

void ac__bridge_settle(ac__loop_t *loop, struct ac__msg *m)
{
	ac_buf_unref(m->b);
	ac__br_src_unref(m->a.p);
	ac__count_dropped_settled(loop);
}

/* ---- subscribing (home) -------------------------------------------------------- */

static const char *sub_cmd(ac_bridge_t *br, int kind, bool sub)
{
	if (kind == AC_BRIDGE_PATTERN)
		return sub ? "PSUBSCRIBE" : "PUNSUBSCRIBE";
	if (br->mode == AC_BRIDGE_CLUSTER)
		return sub ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
	return sub ? "SUBSCRIBE" : "UNSUBSCRIBE";
}

static void gauge(ac_bridge_t *br, struct bchan *ch, int d)
{
	if (ch->kind == AC_BRIDGE_PATTERN)
		ST_ADD(br, patterns, d);
	else
		ST_ADD(br, channels, d);
}

/* Sends ch's subscribe (sub) or unsubscribe on its node's sub link. */
static bool send_sub(ac_bridge_t *br, struct bnode *n, struct bchan *ch,
		     bool sub)
{
	const char *cmd = sub_cmd(br, ch->kind, sub);
	const char *argv[] = {cmd, ch->rname};
	size_t argl[] = {strlen(cmd), ch->rlen};
	struct pend p = {.op = sub ? OP_SUB : OP_UNSUB, .ch = ch};

	if (!link_request(&n->sub, p, 2, argv, argl))
		return false;
	ch->pins++;
	return true;
}

/*
 * Makes ch's subscription what it should be: subscribed at the node that
 * serves it while it is wanted, nowhere otherwise. Frees ch when nothing
 * holds it any more.
 */
void ac__br_chan_sync(ac_bridge_t *br, struct bchan *ch)
{
	bool wanted = !br->dead && (ch->want || (ch->group && ch->gactive));
	struct bnode *target = NULL;

	if (wanted && ch->kind == AC_BRIDGE_PATTERN &&
	    br->mode == AC_BRIDGE_CLUSTER) {
		if (!br->warned_patterns) {
			br->warned_patterns = true;
			ac__log(br->rt, AC_LOG_WARN,
				"bridge: a Redis Cluster has no sharded "
				"pattern subscription; patterns match this "
				"node's publishes only");
		}
		ST_ADD(br, errors, 1);
		wanted = false;
	}
	if (wanted)
		target = node_of_slot(br, ch->slot);
	if (ch->at && ch->at != target) {
		if (ch->at->sub.c)
			send_sub(br, ch->at, ch, false);
		gauge(br, ch, -1);
		ch->at = NULL;
	}
	if (target && !ch->at && target->sub.c && !target->sub.closing &&
	    send_sub(br, target, ch, true)) {
		ch->at = target;
		gauge(br, ch, 1);
	}
	ac__br_chan_maybe_free(br, ch);
}

static void chan_sync_each(ac_bridge_t *br, struct bchan *ch, void *arg)
{
	(void)arg;
	ac__br_chan_sync(br, ch);
}

/* ---- nodes and links (home) ------------------------------------------------------ */

static void link_on_open(ac_conn_t *c);
static void link_on_frame(ac_conn_t *c, const void *data, size_t len);
static void link_on_close(ac_conn_t *c, int reason);

static const ac_conn_cbs_t link_cbs = {
	.on_open = link_on_open,
	.on_frame = link_on_frame,
	.on_close = link_on_close,
};

/* Connects l (unless it has a connection already). */
void ac__br_link_start(struct link *l)
{
	ac_bridge_t *br = l->node->br;
	ac_conn_opts_t o = {0};
	int err;

	if (l->h || br->dead || ac__rt_state(br->rt) != AC__RT_RUNNING)
		return; /* a stopping runtime makes no connections */
	o.loop = AC_LOOP(br->home);
	o.framing = AC_FRAME_RAW;
	o.max_frame = 65536;
	o.connect_timeout_ms = br->connect_ms;
	o.reconnect_min_ms = br->retry_min;
	o.reconnect_max_ms = br->retry_max;
	o.out_hard_limit = br->max_queued + LINK_HEADROOM;
	o.out_soft_limit = o.out_hard_limit;
	o.tls = br->tls;
	o.tls_name = br->tls_name;
	o.keepalive = AC_ON;
	if ((err = ac_connect(br->rt, l->node->addr, &link_cbs, &o, l, &l->h))) {
		l->h = 0;
		if (err == AC_ESHUTDOWN)
			return; /* the runtime stopped meanwhile */
		ST_ADD(br, errors, 1);
		ac__log(br->rt, AC_LOG_ERROR, "bridge: cannot connect to %s: %s",
			l->node->addr, ac_strerror(err));
		return;
	}
	__atomic_fetch_add(&br->refs, 1, __ATOMIC_RELAXED);
}

struct bnode *ac__br_node_get(ac_bridge_t *br, const char *addr)
{
	struct bnode *n;
	size_t len = strlen(addr);

	for (int i = 0; i < br->nnodes; i++)
		if (!strcmp(br->nodes[i]->addr, addr))
			return br->nodes[i];
	if (br->nnodes == br->capnodes) {
		int cap = br->capnodes ? br->capnodes * 2 : 4;
		struct bnode **v = ac__realloc(AC__K_BRIDGE, br->nodes,
					       (size_t)cap * sizeof(*v));
		if (!v)
			return NULL;
		br->nodes = v;
		br->capnodes = cap;
	}
	if (!(n = ac__calloc(AC__K_BRIDGE, 1, sizeof(*n) + len + 1)))
		return NULL;
	n->br = br;
	n->pub = (struct link){.node = n, .role = ROLE_PUB};
	n->sub = (struct link){.node = n, .role = ROLE_SUB};
	memcpy(n->addr, addr, len + 1);
	br->nodes[br->nnodes++] = n;
	return n;
}

static int node_index(ac_bridge_t *br, struct bnode *n)
{
	for (int i = 0; i < br->nnodes; i++)
		if (br->nodes[i] == n)
			return i;
	return -1;
}

/* The nodes in use have both links; the others have none. */
static void nodes_settle(ac_bridge_t *br)
{
	uint64_t masters = 0;

	for (int i = 0; i < br->nnodes; i++) {
		struct bnode *n = br->nodes[i];

		if (n->master) {
			masters++;
			ac__br_link_start(&n->pub);
			ac__br_link_start(&n->sub);
		} else {
			ac__br_link_close(&n->pub);
			ac__br_link_close(&n->sub);
		}
	}
	__atomic_store_n(&br->st.nodes, masters, __ATOMIC_RELAXED);
}

void ac__br_become_single(ac_bridge_t *br, struct bnode *server)
{
	br->mode = AC_BRIDGE_SINGLE;
	br->server = server;
	for (int i = 0; i < br->nnodes; i++)
		br->nodes[i]->master = br->nodes[i] == server;
	__atomic_store_n(&br->st.mode, AC_BRIDGE_SINGLE, __ATOMIC_RELAXED);
	nodes_settle(br);
	ac__br_chans_foreach(br, chan_sync_each, NULL);
}

/* "host:port" of a CLUSTER SLOTS node entry; an empty host is the one
 * that answered (Redis says so when it does not know its own address). */
static bool entry_addr(struct rv *e, struct bnode *asked, char *out,
		       size_t cap)
{
	const char *host;
	size_t hlen;

	if (!e || e->type != REDIS_REPLY_ARRAY || e->len < 2 || !e->e[0] ||
	    !e->e[0]->s || !e->e[1] || e->e[1]->type != REDIS_REPLY_INTEGER)
		return false;
	host = e->e[0]->s;
	hlen = e->e[0]->len;
	if (hlen == 0 || !strcmp(host, "?")) {
		const char *colon = strrchr(asked->addr, ':');

		host = asked->addr;
		hlen = colon ? (size_t)(colon - asked->addr) : 0;
	}
	if (hlen + 12 > cap)
		return false;
	if (memchr(host, ':', hlen) && host[0] != '[')
		snprintf(out, cap, "[%.*s]:%lld", (int)hlen, host, e->e[1]->i);
	else
		snprintf(out, cap, "%.*s:%lld", (int)hlen, host, e->e[1]->i);
	return true;
}

/* A CLUSTER SLOTS reply from n: the new map. */
static void apply_slots(ac_bridge_t *br, struct bnode *asked, struct rv *r)
{
	uint16_t *slots = br->slots;
	char addr[300];

	if (!slots && !(slots = ac__calloc(AC__K_BRIDGE, NSLOTS,
					   sizeof(*slots)))) {
		ST_ADD(br, errors, 1);
		return;
	}
	br->slots = slots;
	if (!br->inflight &&
	    (!(br->inflight = ac__calloc(AC__K_BRIDGE, NSLOTS,
					 sizeof(*br->inflight))) ||
	     !(br->route = ac__calloc(AC__K_BRIDGE, NSLOTS,
				      sizeof(*br->route))))) {
		ac__br_free(br->inflight);
		br->inflight = NULL;
		ST_ADD(br, errors, 1);
		return;
	}
	memset(slots, 0, NSLOTS * sizeof(*slots));
	for (int i = 0; i < br->nnodes; i++)
		br->nodes[i]->master = false;
	for (size_t i = 0; i < r->len; i++) {
		struct rv *e = r->e[i];
		struct bnode *n;
		long long lo, hi;

		if (!e || e->type != REDIS_REPLY_ARRAY || e->len < 3 ||
		    !e->e[0] || !e->e[1] || !entry_addr(e->e[2], asked, addr,
							sizeof(addr)))
			continue;
		lo = e->e[0]->i;
		hi = e->e[1]->i;
		if (lo < 0 || hi >= NSLOTS || lo > hi || !(n = ac__br_node_get(br, addr)))
			continue;
		n->master = true;
		for (long long s = lo; s <= hi; s++)
			slots[s] = (uint16_t)(node_index(br, n) + 1);
	}
	br->mode = AC_BRIDGE_CLUSTER;
	__atomic_store_n(&br->st.mode, AC_BRIDGE_CLUSTER, __ATOMIC_RELAXED);
	ST_ADD(br, refreshes, 1);
	nodes_settle(br);
	ac__br_chans_foreach(br, chan_sync_each, NULL);
}

/* Sends CLUSTER SLOTS on pub link l; false if it could not go. */
static bool ask_slots(struct link *l)
{
	static const char *const argv[] = {"CLUSTER", "SLOTS"};
	static const size_t argl[] = {7, 5};

	return link_request(l, (struct pend){.op = OP_SLOTS}, 2, argv, argl);
}

/* Asks a ready node for the slot map, once at a time. */
static void want_refresh(ac_bridge_t *br)
{
	if (br->dead || br->mode != AC_BRIDGE_CLUSTER)
		return;
	if (br->refreshing) {
		br->refresh_again = true;
		return;
	}
	for (int i = 0; i < br->nnodes; i++) {
		struct link *l = &br->nodes[i]->pub;

		if (br->nodes[i]->master && ask_slots(l)) {
			br->refreshing = true;
			br->refresh_wanted = false;
			return;
		}
	}
	br->refresh_wanted = true; /* asked again when a link opens */
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the node, made if new. */
static struct bnode *redirect_node(ac_bridge_t *br, struct rv *r, bool *ask,
				   long *slot)
{
	char word[8], addr[300];

	if (!r->s || sscanf(r->s, "%7s %ld %299s", word, slot, addr) != 3 ||
	    *slot < 0 || *slot >= NSLOTS)
		return NULL;
	if (!strcmp(word, "MOVED"))
		*ask = false;
	else if (!strcmp(word, "ASK"))
		*ask = true;
	else
		return NULL;
	return ac__br_node_get(br, addr);
}

static void log_error(ac_bridge_t *br, struct link *l, const char *what,
		      struct rv *r)
{
	ST_ADD(br, errors, 1);
	ac__log(br->rt, AC_LOG_WARN, "bridge: %s on %s: %.*s", what,
		l->node->addr, r->s ? (int)(r->len > 200 ? 200 : r->len) : 0,
		r->s ? r->s : "");
}

/* An error that says nothing of the server's kind: not logged in yet,
 * or still loading. (Any other refusal of CLUSTER SLOTS, such as cluster
 * support being off or an ACL without it, means a single server.) */
static bool transient(struct rv *r)
{
	return r->s && (!strncmp(r->s, "NOAUTH", 6) ||
			!strncmp(r->s, "WRONGPASS", 9) ||
			!strncmp(r->s, "LOADING", 7));
}

/* A reply on a pub link, answering p. */
static void pub_reply(ac_bridge_t *br, struct link *l, struct pend *p,
		      struct rv *r)
{
	bool err = r->type == REDIS_REPLY_ERROR, ask;
	struct bnode *to;
	long slot;

	switch (p->op) {
	case OP_AUTH:
		if (err) {
			log_error(br, l, "AUTH refused", r);
			link_fail(l, -EACCES);
		}
		break;
	case OP_SLOTS:
		br->refreshing = false;
		if (!err && r->type == REDIS_REPLY_ARRAY)
			apply_slots(br, l->node, r);
		else if (transient(r))
			log_error(br, l, "CLUSTER SLOTS failed", r);
		else if (br->mode == AC_BRIDGE_AUTO &&
			 br->mode_opt == AC_BRIDGE_AUTO)
			ac__br_become_single(br, l->node); /* cluster support off */
		else if (br->mode != AC_BRIDGE_SINGLE)
			log_error(br, l, "CLUSTER SLOTS failed", r);
		if (br->refresh_again) {
			br->refresh_again = false;
			want_refresh(br);
		}
		break;
	case OP_PUBLISH:
		l->inflight -= p->bytes;
		if (err && br->mode == AC_BRIDGE_CLUSTER &&
		    (to = redirect_node(br, r, &ask, &slot))) {
			ST_ADD(br, redirects, 1);
			if (!ask) {
				br->slots[slot] =
					(uint16_t)(node_index(br, to) + 1);
				if (!to->master) {
					to->master = true;
					nodes_settle(br);
				}
				want_refresh(br);
			} else {
				ac__br_link_start(&to->pub);
			}
			/* Sent again (the refused publish was not made), after
			 * its slot's earlier publishes are answered. */
			hold(br, p->src, p->payload, ask ? to : NULL);
		} else if (err) {
			log_error(br, l, "PUBLISH refused", r);
		}
		answered(br, p->src->slot);
		ac__br_src_unref(p->src);
		ac_buf_unref(p->payload);
		break;
	default:
		break; /* ASKING's +OK */
	}
}

/* A subscribe or unsubscribe confirmation, or a refusal, for p. */
static void sub_answered(ac_bridge_t *br, struct link *l, struct pend *p,
			 struct rv *r)
{
	struct bchan *ch = p->ch;
	bool ask;
	long slot;
	struct bnode *to;

	ch->pins--;
	if (r->type == REDIS_REPLY_ERROR && p->op == OP_SUB &&
	    ch->at == l->node) {
		gauge(br, ch, -1);
		ch->at = NULL;
		if (br->mode == AC_BRIDGE_CLUSTER &&
		    (to = redirect_node(br, r, &ask, &slot)) && !ask) {
			ST_ADD(br, redirects, 1);
			br->slots[slot] = (uint16_t)(node_index(br, to) + 1);
			if (!to->master) {
				to->master = true;
				nodes_settle(br);
			}
			want_refresh(br);
			ac__br_chan_sync(br, ch);
			return;
		}
		log_error(br, l, "subscribe refused", r);
	}
	ac__br_chan_maybe_free(br, ch);
}

/* Delivers a message from Redis to the node's receivers of ch. */
static void deliver_message(ac_bridge_t *br, struct bchan *ch,
			    struct rv *chan, struct rv *payload)
{
	const char *cname = chan->s + br->plen;
	size_t clen = chan->len - br->plen;

	if (chan->len < br->plen)
		return; /* not one of ours: cannot happen with our names */
	if (ch->group && ch->gactive)
		ac__group_publish_local(ch->group, payload->b);
	if (ch->want && br->on_message) {
		const char *pat = NULL;
		size_t plen = 0;

		if (ch->kind == AC_BRIDGE_PATTERN) {
			pat = ch->rname + ch->rlen - ch->ulen;
			plen = ch->ulen;
		}
		br->on_message(ch->kind, pat, plen, cname, clen, payload->b,
			       br->arg);
	}
	ST_ADD(br, received, 1);
}

/* A reply on a sub link: a message, a confirmation, or an error. */
static void sub_reply(ac_bridge_t *br, struct link *l, struct rv *r)
{
	struct pend *head = pend_peek(l), p = {0};
	struct rv *t = r->type == REDIS_REPLY_ARRAY && r->len ? r->e[0] : NULL;
	bool pmsg = rv_is(t, "pmessage");
	int kind = AC_BRIDGE_CHANNEL;
	struct bchan *ch;

	if (r->type == REDIS_REPLY_ERROR) {
		if (!pend_pop(l, &p)) {
			log_error(br, l, "error", r);
		} else if (p.op == OP_AUTH) {
			log_error(br, l, "AUTH refused", r);
			link_fail(l, -EACCES);
		} else {
			sub_answered(br, l, &p, r);
		}
		return;
	}
	if (!t) {
		/* AUTH's +OK: the only plain reply a sub link gets. */
		if (head && head->op == OP_AUTH)
			pend_pop(l, &p);
		return;
	}
	if (rv_is(t, "message") || rv_is(t, "smessage") || pmsg) {
		struct rv *name = r->e[1], *chan = r->e[pmsg ? 2 : 1];
		struct rv *payload = r->e[r->len - 1];

		if (!name || !name->s || !chan || !chan->s || !payload)
			return;
		if (payload->own) {
			ST_ADD(br, own_skipped, 1);
			return;
		}
		if (pmsg)
			kind = AC_BRIDGE_PATTERN;
		if ((ch = ac__br_chan_find(br, kind, name->s, name->len)) &&
		    ch->at == l->node)
			deliver_message(br, ch, chan, payload);
		return;
	}
	if (r->len < 2 || !r->e[1] || !r->e[1]->s)
		return;
	if (rv_is(t, "psubscribe") || rv_is(t, "punsubscribe"))
		kind = AC_BRIDGE_PATTERN;
	ch = ac__br_chan_find(br, kind, r->e[1]->s, r->e[1]->len);
	if (head && head->ch == ch && ch &&
	    (head->op == OP_UNSUB) == (memmem(t->s, t->len, "unsub", 5) != NULL)) {
		pend_pop(l, &p);
		sub_answered(br, l, &p, r);
		return;
	}
	/* An unsubscribe nobody asked for: the slot moved away (Redis
	 * unsubscribes a shard channel's subscribers then). */
	if (ch && ch->at == l->node &&
	    (rv_is(t, "sunsubscribe") || rv_is(t, "unsubscribe"))) {
		gauge(br, ch, -1);
		ch->at = NULL;
		want_refresh(br);
		ac__br_chan_sync(br, ch);
	}
}

static void link_on_open(ac_conn_t *c)
{
	struct link *l = ac_conn_data(c);
	ac_bridge_t *br = l->node->br;

	l->c = c;
	l->closing = false;
	if (br->dead || !(l->rd = redisReaderCreateWithFunctions(&rv_fns))) {
		l->closing = true;
		ac_conn_close(c, AC_CLOSE_ABORT);
		return;
	}
	l->rd->privdata = br;
	ST_ADD(br, links_up, 1);
	ST_ADD(br, connects, 1);
	if (br->pass) {
		/* AUTH [user] password */
		const char *argv[3] = {"AUTH"};
		size_t argl[3] = {4};
		int n = 1;

		if (br->user) {
			argv[n] = br->user;
			argl[n++] = strlen(br->user);
		}
		argv[n] = br->pass;
		argl[n++] = strlen(br->pass);
		link_request(l, (struct pend){.op = OP_AUTH}, n, argv, argl);
	}
	if (l->role == ROLE_PUB) {
		if ((br->mode == AC_BRIDGE_AUTO ||
		     (br->mode == AC_BRIDGE_CLUSTER && br->refresh_wanted &&
		      !br->refreshing)) &&
		    ask_slots(l) && br->mode == AC_BRIDGE_CLUSTER) {
			br->refreshing = true;
			br->refresh_wanted = false;
		}
	} else {
		ac__br_chans_foreach(br, chan_sync_each, NULL);
	}
}

static void link_on_frame(ac_conn_t *c, const void *data, size_t len)
{
	struct link *l = ac_conn_data(c);
	ac_bridge_t *br = l->node->br;
	void *obj;

	if (l->closing || !l->rd)
		return;
	if (redisReaderFeed(l->rd, data, len) != REDIS_OK)
		goto fail;
	for (;;) {
		struct pend p;

		if (redisReaderGetReply(l->rd, &obj) != REDIS_OK)
			goto fail;
		if (!obj)
			return;
		if (l->role == ROLE_SUB)
			sub_reply(br, l, obj);
		else if (pend_pop(l, &p))
			pub_reply(br, l, &p, obj);
		rv_free(obj);
		if (l->closing)
			return;
	}
fail:
	ST_ADD(br, errors, 1);
	ac__log(br->rt, AC_LOG_ERROR, "bridge: bad reply from %s: %s",
		l->node->addr, l->rd->errstr[0] ? l->rd->errstr : "no memory");
	link_fail(l, AC_EFRAME);
}

/* Drops whatever l was waiting for: publishes lost with the link are
 * counted as dropped (they may or may not have been made; never sent
 * again, so never twice). */
static void link_reset(ac_bridge_t *br, struct link *l)
{
	struct pend p;

	while (pend_pop(l, &p)) {
		if (p.op == OP_PUBLISH) {
			ST_ADD(br, dropped_down, 1);
			if (br->mode == AC_BRIDGE_CLUSTER)
				answered(br, p.src->slot);
			ac__br_src_unref(p.src);
			ac_buf_unref(p.payload);
		} else if (p.ch) {
			p.ch->pins--;
			ac__br_chan_maybe_free(br, p.ch);
		} else if (p.op == OP_SLOTS) {
			br->refreshing = false;
		}
	}
	l->inflight = 0;
	if (l->rd) {
		redisReaderFree(l->rd);
		l->rd = NULL;
	}
}

/* The subscriptions made on node arg's sub link went with it. */
static void forget_at(ac_bridge_t *br, struct bchan *ch, void *arg)
{
	if (ch->at == arg) {
		gauge(br, ch, -1);
		ch->at = NULL;
	}
}

static void link_on_close(ac_conn_t *c, int reason)
{
	struct link *l = ac_conn_data(c);
	ac_bridge_t *br = l->node->br;
	bool was_open = l->c != NULL;

	l->c = NULL;
	l->closing = false;
	link_reset(br, l);
	if (was_open) {
		ST_ADD(br, links_up, -1);
		ST_ADD(br, disconnects, 1);
		if (!br->dead && reason && reason != AC_ESHUTDOWN)
			ac__log(br->rt, AC_LOG_WARN,
				"bridge: link to %s lost: %s", l->node->addr,
				ac_strerror(reason));
	}
	if (l->role == ROLE_SUB)
		ac__br_chans_foreach(br, forget_at, l->node);
	/* Perhaps a failover: ask for the map again at each loss and at
	 * each failed attempt after it (paced by the link's back-off), so
	 * that a replica promoted later is found without any publish. */
	if (!br->dead && br->mode == AC_BRIDGE_CLUSTER && l->node->master)
		want_refresh(br);
	if (ac_conn_reconnecting(c) != 1) {
		/* The final close: we closed it (the node is no longer in
		 * use, or the bridge is freed), or the runtime stops. The
		 * bridge may go with this reference. */
		l->h = 0;
		ac__br_unref(br);
	}
}

#endif /* AC_HAVE_HIREDIS */
