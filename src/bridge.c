/*
 * bridge.c: groups and channels across machines, through Redis.
 *
 * A bridge is an actor on one loop, its home: every field below marked
 * "home" is touched only there (or, once every loop has exited, by the
 * thread settling the runtime). Other threads reach it three ways, none
 * of which can fail once the call that started them returned 0:
 *   - BRIDGE mailbox messages, one per publish (the channel and payload);
 *   - control operations embedded in the bridge and in each group's tie
 *     (start, free, attach, sync, gone);
 *   - ac_loop_post for ac_bridge_subscribe and ac_bridge_unsubscribe,
 *     which only say "look at this name again": the counts themselves
 *     live in `names`, under a mutex, so that those calls can answer
 *     AC_ENOENT and so that posts overtaking each other do no harm.
 *
 * The links to Redis are the library's own outbound connections (with
 * reconnect and back-off, TLS, bounded output) and hiredis parses the
 * replies. hiredis's own async client is not used: the version Debian
 * ships (0.14) does not know sharded pub/sub (SSUBSCRIBE's replies and
 * smessage are taken for replies to other commands), its output buffer
 * has no bound, and it resolves names with a blocking getaddrinfo().
 *
 * Each Redis node in use has two links: `pub` for PUBLISH or SPUBLISH
 * (and AUTH, CLUSTER SLOTS, ASKING), whose replies come back in order
 * and are matched against a queue of what was sent; and `sub`, in RESP2
 * subscribed mode, which carries messages, the confirmations of each
 * subscribe and unsubscribe, and the errors of refused ones.
 *
 * Whether a name is subscribed is recomputed from scratch by chan_sync:
 * wanted (some ac_bridge_subscribe count, or a bridged group with members
 * here) and where (the server, or the master of the name's slot). A lost
 * link, a new slot map, a MOVED reply or a slot migrated away all end in
 * chan_sync, so there is one place that decides.
 *
 * References on the bridge: the user's (until ac_bridge_free), one per
 * queued control operation of its own, one per link that still has a
 * handle, one per channel source (struct bsrc: each bridged group's, and
 * each ac_bridge_publish's until it is answered). The last one frees it.
 */
#include "bridge.h"
#include "alloc.h"
#include "conn.h"
#include "group.h"
#include "hash.h"
#include "loop.h"
#include "runtime.h"
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>

#ifdef AC_HAVE_HIREDIS

#include <hiredis/read.h>

#define NSLOTS 16384           /* Redis Cluster's hash slots */
#define ENVELOPE_LEN 12        /* "\0AC1" and the publisher's 64-bit id */
#define DEFAULT_MAX_QUEUED (8u << 20)
#define LINK_HEADROOM (1u << 20) /* subscribe commands beyond max_queued */
#define GROUP_EAGAIN_MS 1000   /* a foreign group publisher waits this long */

static const char magic[4] = {'\0', 'A', 'C', '1'};

enum { ROLE_PUB, ROLE_SUB };
enum { OP_AUTH, OP_SLOTS, OP_PUBLISH, OP_ASKING, OP_SUB, OP_UNSUB };

/* ---- names and sources ----------------------------------------------------- */

/*
 * A channel to publish on, as Redis names it (prefix included) with its
 * slot. Shared by every message that publishes on it; holds a reference
 * on the bridge, so a publish in flight keeps the bridge alive.
 */
struct bsrc {
	int refs; /* atomic */
	ac_bridge_t *br;
	uint16_t slot;
	size_t rlen;
	char rname[];
};

/* A name the node may subscribe to (home). */
struct bchan {
	struct bchan *next;         /* hash chain */
	int kind;                   /* AC_BRIDGE_CHANNEL or _PATTERN */
	uint16_t slot;
	bool want;                  /* some ac_bridge_subscribe count */
	bool gactive;               /* group has members here */
	ac_group_t *group;          /* bridged group (a reference), or NULL */
	struct bnode *at;           /* node subscribed at (or asked), or NULL */
	unsigned pins;              /* pending subscribe replies naming it */
	size_t ulen;                /* the user's name: the last ulen bytes */
	size_t rlen;
	char rname[];               /* as Redis knows it */
};

/* A name's counts, kept for the threads that call ac_bridge_subscribe
 * and ac_group_bridge (under names_lock). */
struct bname {
	struct bname *next;
	int kind;
	uint64_t want;   /* subscribe calls minus unsubscribe calls */
	bool claimed;    /* a group is bridged to it */
	size_t len;
	char name[];
};

/* A hash table of either kind (same first fields), chained. */
struct btab {
	void **b;
	size_t nb, n;
};

/* ---- links and nodes -------------------------------------------------------- */

/* A reply awaited on a link, in the order sent. */
struct pend {
	uint8_t op;
	struct bchan *ch;   /* OP_SUB, OP_UNSUB: pinned */
	struct bsrc *src;   /* OP_PUBLISH: a reference, to follow MOVED */
	ac_buf_t *payload;  /* OP_PUBLISH: a reference */
	size_t bytes;       /* OP_PUBLISH: counted in the link's inflight */
};

struct link {
	struct bnode *node;
	int role;
	ac_handle_t h;      /* 0: no connection (never made, or ended) */
	ac_conn_t *c;       /* while open */
	redisReader *rd;    /* while open */
	bool closing;       /* we closed it: ignore what is still read */
	struct pend *q;     /* circular, cap a power of two */
	uint32_t head, tail, cap;
	size_t inflight;    /* publish bytes written and not yet answered */
};

struct bnode {
	ac_bridge_t *br;
	bool master;        /* in use: the server, or a master of the map */
	struct link pub, sub;
	char addr[];        /* "host:port" for ac_connect */
};

/* ---- the bridge --------------------------------------------------------------- */

struct ac_bridge_stats_w {
	uint64_t mode, nodes, links_up, channels, patterns, published, received,
		own_skipped, dropped_down, dropped_full, connects,
		disconnects, redirects, refreshes, errors;
};

struct ac_bridge_s {
	ac_runtime_t *rt;
	int home;
	int refs;           /* atomic */
	int freed;          /* atomic: ac_bridge_free was called */
	uint64_t id;        /* in every envelope this node writes */
	int mode_opt;       /* as asked */
	size_t max_queued;
	unsigned connect_ms, retry_min, retry_max;
	ac_tls_t *tls;
	char *tls_name;
	ac_bridge_recv_fn on_message;
	void *arg;
	char *user, *pass;  /* AUTH; NULL: none */
	char **seeds;
	int nseeds;
	char *prefix, *eprefix; /* prefix, and glob-escaped for patterns */
	size_t plen, eplen;
	uint64_t seed;      /* hash seed */
	LIST_ENTRY(ac_bridge_s) link; /* rt->bridges, under rt->lock */

	pthread_mutex_t names_lock; /* never held with another lock */
	struct btab names;

	/* home */
	int mode;           /* AC_BRIDGE_AUTO until a seed answered */
	bool dead;          /* freed: close everything, send nothing */
	bool refreshing, refresh_again, refresh_wanted;
	bool warned_patterns;
	struct bnode **nodes;
	int nnodes, capnodes;
	struct bnode *server;  /* single mode */
	uint16_t *slots;       /* cluster: node index + 1 per slot; 0 none */
	struct btab chans;
	struct ac__ctl start_ctl, free_ctl;

	struct ac_bridge_stats_w st; /* home writes, relaxed; anyone reads */
};

/* A group's tie to a bridge (ac_group_bridge). References: the group's
 * (until its memory goes), one per queued control operation. */
struct ac__gbridge {
	int refs;           /* atomic */
	int queued;         /* atomic: sync_ctl is queued */
	ac_group_t *g;
	struct bsrc *src;   /* where its publishes go (a reference) */
	int kind;
	struct ac__ctl attach_ctl, sync_ctl, gone_ctl;
	/* home */
	bool attached, gone;
	struct bchan *ch;
	size_t len;
	char name[];        /* the channel, without the prefix */
};

#define ST_ADD(br, f, n)                                                     \
	__atomic_store_n(&(br)->st.f, (br)->st.f + (uint64_t)(n),            \
			 __ATOMIC_RELAXED)

static void bridge_unref(ac_bridge_t *br);
static void chan_sync(ac_bridge_t *br, struct bchan *ch);
static void want_refresh(ac_bridge_t *br);
static void link_fail(struct link *l, int reason);
static void send_publish(ac_bridge_t *br, struct bnode *n, struct bsrc *src,
			 ac_buf_t *payload, bool asking);

/* ---- small helpers ----------------------------------------------------------- */

/* Redis Cluster's key slot: CRC16 (XMODEM: polynomial 0x1021, initial
 * 0) of the name, or of the part between the first '{' and the next '}'
 * when that part is not empty. */
static uint16_t key_slot(const char *s, size_t n)
{
	uint16_t crc = 0;
	size_t i, j;

	for (i = 0; i < n && s[i] != '{'; i++)
		;
	if (i < n) {
		for (j = i + 1; j < n && s[j] != '}'; j++)
			;
		if (j < n && j > i + 1) {
			s += i + 1;
			n = j - i - 1;
		}
	}
	for (i = 0; i < n; i++) {
		crc ^= (uint16_t)((unsigned char)s[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021
						       : crc << 1);
	}
	return crc & (NSLOTS - 1);
}

static uint64_t random_id(void)
{
	uint64_t x;
	struct timespec ts;

	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) == (ssize_t)sizeof(x))
		return x;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ac__hash_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
			    (uint64_t)(uintptr_t)&x);
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = ac__malloc(AC__K_BRIDGE, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static void xfree(void *p)
{
	ac__free(AC__K_BRIDGE, p);
}

/* ---- hash tables ------------------------------------------------------------- */

/* Both entry kinds start with next and kind; their names differ. */
struct bhdr {
	struct bhdr *next;
	int kind;
};

static uint64_t name_hash(ac_bridge_t *br, int kind, const void *s, size_t n)
{
	return ac__hash(s, n, br->seed ^ (uint64_t)kind);
}

/* The link that points at (kind, s), or the empty one ending its chain;
 * name_of says where an entry keeps its name. */
static struct bhdr **tab_find(ac_bridge_t *br, struct btab *t, int kind,
			      const void *s, size_t n,
			      const char *(*name_of)(struct bhdr *, size_t *))
{
	struct bhdr **p;

	if (!t->nb)
		return NULL;
	p = (struct bhdr **)&t->b[name_hash(br, kind, s, n) & (t->nb - 1)];
	for (; *p; p = &(*p)->next) {
		size_t len;
		const char *name = name_of(*p, &len);

		if ((*p)->kind == kind && len == n && !memcmp(name, s, n))
			return p;
	}
	return p;
}

/* Doubles t when it is as full as it has buckets. False: no memory (the
 * table is unchanged, and still works). */
static bool tab_grow(ac_bridge_t *br, struct btab *t,
		     const char *(*name_of)(struct bhdr *, size_t *))
{
	size_t nb = t->nb ? t->nb * 2 : 64;
	void **b;

	if (t->n < t->nb)
		return true;
	if (!(b = ac__calloc(AC__K_BRIDGE, nb, sizeof(*b))))
		return t->nb != 0;
	for (size_t i = 0; i < t->nb; i++) {
		struct bhdr *e = t->b[i], *next;

		for (; e; e = next) {
			size_t len;
			const char *name = name_of(e, &len);
			size_t j = name_hash(br, e->kind, name, len) & (nb - 1);

			next = e->next;
			e->next = b[j];
			b[j] = e;
		}
	}
	xfree(t->b);
	t->b = b;
	t->nb = nb;
	return true;
}

static const char *chan_name(struct bhdr *e, size_t *len)
{
	struct bchan *ch = (struct bchan *)e;

	*len = ch->rlen;
	return ch->rname;
}

static const char *bname_name(struct bhdr *e, size_t *len)
{
	struct bname *b = (struct bname *)e;

	*len = b->len;
	return b->name;
}

/* ---- the names table (any thread, under names_lock) ------------------------ */

/* The entry for (kind, name), made if make is set; NULL if absent or out
 * of memory. */
static struct bname *bname_get(ac_bridge_t *br, int kind, const void *name,
			       size_t len, bool make)
{
	struct bhdr **p;
	struct bname *b;

	if (make && !tab_grow(br, &br->names, bname_name))
		return NULL;
	p = tab_find(br, &br->names, kind, name, len, bname_name);
	if (p && *p)
		return (struct bname *)*p;
	if (!make || !p || !(b = ac__malloc(AC__K_BRIDGE, sizeof(*b) + len)))
		return NULL;
	b->next = NULL;
	b->kind = kind;
	b->want = 0;
	b->claimed = false;
	b->len = len;
	memcpy(b->name, name, len);
	*p = (struct bhdr *)b;
	br->names.n++;
	return b;
}

/* Drops the entry for (kind, name) if nothing holds it any more. */
static void bname_maybe_drop(ac_bridge_t *br, int kind, const void *name,
			     size_t len)
{
	struct bhdr **p = tab_find(br, &br->names, kind, name, len, bname_name);
	struct bname *b;

	if (!p || !(b = (struct bname *)*p) || b->want || b->claimed)
		return;
	*p = (struct bhdr *)b->next;
	br->names.n--;
	xfree(b);
}

/* Home: whether ac_bridge_subscribe counts ask for (kind, user name). */
static bool names_want(ac_bridge_t *br, int kind, const char *name, size_t len)
{
	struct bname *b;
	bool want;

	pthread_mutex_lock(&br->names_lock);
	b = bname_get(br, kind, name, len, false);
	want = b && b->want;
	pthread_mutex_unlock(&br->names_lock);
	return want;
}

/* ---- channels (home) --------------------------------------------------------- */

/* The Redis name of a user's name: the prefix (glob-escaped for a
 * pattern, so that it matches only itself) and the name. */
static size_t redis_name(ac_bridge_t *br, int kind, const void *name,
			 size_t len, char *out)
{
	const char *pre = kind == AC_BRIDGE_PATTERN ? br->eprefix : br->prefix;
	size_t plen = kind == AC_BRIDGE_PATTERN ? br->eplen : br->plen;

	if (out) {
		memcpy(out, pre, plen);
		memcpy(out + plen, name, len);
	}
	return plen + len;
}

static struct bchan *chan_find(ac_bridge_t *br, int kind, const char *rname,
			       size_t rlen)
{
	struct bhdr **p = tab_find(br, &br->chans, kind, rname, rlen,
				   chan_name);

	return p ? (struct bchan *)*p : NULL;
}

/* The channel for a user's name, made if absent; NULL: no memory. */
static struct bchan *chan_get(ac_bridge_t *br, int kind, const char *name,
			      size_t len)
{
	size_t rlen = redis_name(br, kind, name, len, NULL);
	struct bchan *ch;
	struct bhdr **p;

	if (!tab_grow(br, &br->chans, chan_name))
		return NULL;
	if (!(ch = ac__calloc(AC__K_BRIDGE, 1, sizeof(*ch) + rlen)))
		return NULL;
	redis_name(br, kind, name, len, ch->rname);
	p = tab_find(br, &br->chans, kind, ch->rname, rlen, chan_name);
	if (*p) {
		xfree(ch);
		return (struct bchan *)*p;
	}
	ch->kind = kind;
	ch->rlen = rlen;
	ch->ulen = len;
	ch->slot = key_slot(ch->rname, rlen);
	*p = (struct bhdr *)ch;
	br->chans.n++;
	return ch;
}

/* Frees ch once nothing wants it, it is subscribed nowhere and no reply
 * names it. */
static void chan_maybe_free(ac_bridge_t *br, struct bchan *ch)
{
	struct bhdr **p;

	if (ch->want || ch->group || ch->at || ch->pins)
		return;
	p = tab_find(br, &br->chans, ch->kind, ch->rname, ch->rlen, chan_name);
	*p = (struct bhdr *)ch->next;
	br->chans.n--;
	xfree(ch);
}

static void chans_foreach(ac_bridge_t *br,
			  void (*fn)(ac_bridge_t *, struct bchan *, void *),
			  void *arg)
{
	for (size_t i = 0; i < br->chans.nb; i++) {
		struct bhdr *e = br->chans.b[i], *next;

		for (; e; e = next) {
			next = e->next; /* fn may free e */
			fn(br, (struct bchan *)e, arg);
		}
	}
}

/* ---- sources ------------------------------------------------------------------ */

static struct bsrc *src_new(ac_bridge_t *br, const void *chan, size_t len)
{
	size_t rlen = redis_name(br, AC_BRIDGE_CHANNEL, chan, len, NULL);
	struct bsrc *s = ac__malloc(AC__K_BRIDGE, sizeof(*s) + rlen);

	if (!s)
		return NULL;
	s->refs = 1;
	s->br = br;
	s->rlen = rlen;
	redis_name(br, AC_BRIDGE_CHANNEL, chan, len, s->rname);
	s->slot = key_slot(s->rname, rlen);
	__atomic_fetch_add(&br->refs, 1, __ATOMIC_RELAXED);
	return s;
}

static void src_ref(struct bsrc *s)
{
	__atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
}

static void src_unref(struct bsrc *s)
{
	ac_bridge_t *br;

	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	br = s->br;
	xfree(s);
	bridge_unref(br);
}

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
	xfree(r->e);
	xfree(r->s);
	if (r->b)
		ac_buf_unref(r->b);
	xfree(r);
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
	if (!(r->s = xstrndup(s, len)))
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
		xfree(l->q);
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

static void link_close(struct link *l)
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
	src_ref(src);
	ac_buf_ref(payload);
	l->inflight += bytes;
	ST_ADD(br, published, 1);
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
		send_publish(br, node_of_slot(br, src->slot), src, m->b, false);
	ac_buf_unref(m->b);
	src_unref(src);
}

void ac__bridge_settle(ac__loop_t *loop, struct ac__msg *m)
{
	ac_buf_unref(m->b);
	src_unref(m->a.p);
	ac__count_dropped_settled(loop);
}

/* Posts a publish of b on src to the home loop; waits up to ms for room
 * when the caller is foreign. */
static int post_publish(ac_bridge_t *br, struct bsrc *src, ac_buf_t *b,
			unsigned ms)
{
	struct ac__msg m = {.kind = AC__MSG_BRIDGE, .b = b};
	int err;

	m.a.p = src;
	src_ref(src);
	ac_buf_ref(b);
	if ((err = ac__mailbox_put_wait(br->rt, br->home, &m, ms))) {
		ac_buf_unref(b);
		src_unref(src);
	}
	return err;
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
static void chan_sync(ac_bridge_t *br, struct bchan *ch)
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
	chan_maybe_free(br, ch);
}

static void chan_sync_each(ac_bridge_t *br, struct bchan *ch, void *arg)
{
	(void)arg;
	chan_sync(br, ch);
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
static void link_start(struct link *l)
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

static struct bnode *node_get(ac_bridge_t *br, const char *addr)
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
			link_start(&n->pub);
			link_start(&n->sub);
		} else {
			link_close(&n->pub);
			link_close(&n->sub);
		}
	}
	__atomic_store_n(&br->st.nodes, masters, __ATOMIC_RELAXED);
}

static void become_single(ac_bridge_t *br, struct bnode *server)
{
	br->mode = AC_BRIDGE_SINGLE;
	br->server = server;
	for (int i = 0; i < br->nnodes; i++)
		br->nodes[i]->master = br->nodes[i] == server;
	__atomic_store_n(&br->st.mode, AC_BRIDGE_SINGLE, __ATOMIC_RELAXED);
	nodes_settle(br);
	chans_foreach(br, chan_sync_each, NULL);
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
		if (lo < 0 || hi >= NSLOTS || lo > hi || !(n = node_get(br, addr)))
			continue;
		n->master = true;
		for (long long s = lo; s <= hi; s++)
			slots[s] = (uint16_t)(node_index(br, n) + 1);
	}
	br->mode = AC_BRIDGE_CLUSTER;
	__atomic_store_n(&br->st.mode, AC_BRIDGE_CLUSTER, __ATOMIC_RELAXED);
	ST_ADD(br, refreshes, 1);
	nodes_settle(br);
	chans_foreach(br, chan_sync_each, NULL);
}

/* Asks a ready node for the slot map, once at a time. */
static void want_refresh(ac_bridge_t *br)
{
	const char *argv[] = {"CLUSTER", "SLOTS"};
	size_t argl[] = {7, 5};

	if (br->dead || br->mode != AC_BRIDGE_CLUSTER)
		return;
	if (br->refreshing) {
		br->refresh_again = true;
		return;
	}
	for (int i = 0; i < br->nnodes; i++) {
		struct link *l = &br->nodes[i]->pub;

		if (br->nodes[i]->master &&
		    link_request(l, (struct pend){.op = OP_SLOTS}, 2, argv,
				 argl)) {
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
	return node_get(br, addr);
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
			become_single(br, l->node); /* cluster support off */
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
				link_start(&to->pub);
			}
			/* Sent again: the refused publish was not made. */
			send_publish(br, to, p->src, p->payload, ask);
		} else if (err) {
			log_error(br, l, "PUBLISH refused", r);
		}
		src_unref(p->src);
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
			chan_sync(br, ch);
			return;
		}
		log_error(br, l, "subscribe refused", r);
	}
	chan_maybe_free(br, ch);
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
		if ((ch = chan_find(br, kind, name->s, name->len)) &&
		    ch->at == l->node)
			deliver_message(br, ch, chan, payload);
		return;
	}
	if (r->len < 2 || !r->e[1] || !r->e[1]->s)
		return;
	if (rv_is(t, "psubscribe") || rv_is(t, "punsubscribe"))
		kind = AC_BRIDGE_PATTERN;
	ch = chan_find(br, kind, r->e[1]->s, r->e[1]->len);
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
		chan_sync(br, ch);
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
		const char *argv[] = {"AUTH", br->user, br->pass};
		size_t argl[] = {4, br->user ? strlen(br->user) : 0,
				 strlen(br->pass)};

		if (br->user)
			link_request(l, (struct pend){.op = OP_AUTH}, 3, argv,
				     argl);
		else
			link_request(l, (struct pend){.op = OP_AUTH}, 2,
				     (const char *const[]){"AUTH", br->pass},
				     (const size_t[]){4, argl[2]});
	}
	if (l->role == ROLE_PUB) {
		const char *argv[] = {"CLUSTER", "SLOTS"};
		size_t argl[] = {7, 5};

		if (br->mode == AC_BRIDGE_AUTO ||
		    (br->mode == AC_BRIDGE_CLUSTER && br->refresh_wanted &&
		     !br->refreshing)) {
			if (link_request(l, (struct pend){.op = OP_SLOTS}, 2,
					 argv, argl) &&
			    br->mode == AC_BRIDGE_CLUSTER) {
				br->refreshing = true;
				br->refresh_wanted = false;
			}
		}
	} else {
		chans_foreach(br, chan_sync_each, NULL);
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
			src_unref(p.src);
			ac_buf_unref(p.payload);
		} else if (p.ch) {
			p.ch->pins--;
			chan_maybe_free(br, p.ch);
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
		chans_foreach(br, forget_at, l->node);
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
		bridge_unref(br);
	}
}

/* ---- control operations (home, or the settling thread) ------------------------ */

static void start_op(ac__loop_t *loop, void *arg)
{
	ac_bridge_t *br = arg;

	if (loop && ac__tls_loop == loop && !br->dead) {
		for (int i = 0; i < br->nseeds; i++) {
			struct bnode *n = node_get(br, br->seeds[i]);

			if (!n)
				continue;
			if (br->mode == AC_BRIDGE_SINGLE) {
				become_single(br, n);
				break;
			}
			link_start(&n->pub); /* asks CLUSTER SLOTS */
		}
	}
	bridge_unref(br);
}

static void free_op(ac__loop_t *loop, void *arg)
{
	ac_bridge_t *br = arg;

	(void)loop;
	br->dead = true;
	for (int i = 0; i < br->nnodes; i++) {
		br->nodes[i]->master = false;
		link_close(&br->nodes[i]->pub);
		link_close(&br->nodes[i]->sub);
	}
	bridge_unref(br); /* the user's */
}

/* ---- groups ------------------------------------------------------------------------ */

static void gb_unref(struct ac__gbridge *gb)
{
	if (__atomic_sub_fetch(&gb->refs, 1, __ATOMIC_ACQ_REL))
		return;
	src_unref(gb->src);
	xfree(gb);
}

static void attach_op(ac__loop_t *loop, void *arg)
{
	struct ac__gbridge *gb = arg;
	ac_bridge_t *br = gb->src->br;
	struct bchan *ch;

	(void)loop;
	if (!gb->gone && (ch = chan_get(br, gb->kind, gb->name, gb->len))) {
		ch->group = gb->g;
		ch->gactive = ac__group_total(gb->g) > 0;
		gb->ch = ch;
		gb->attached = true;
		chan_sync(br, ch);
	} else if (!gb->gone) {
		ST_ADD(br, errors, 1);
		ac__log(br->rt, AC_LOG_ERROR,
			"bridge: no memory to bridge a group");
	}
	gb_unref(gb);
}

static void sync_op(ac__loop_t *loop, void *arg)
{
	struct ac__gbridge *gb = arg;

	(void)loop;
	/* Cleared before the count is read: a change after the read
	 * queues this again (seq_cst on both sides orders them). */
	__atomic_store_n(&gb->queued, 0, __ATOMIC_SEQ_CST);
	if (gb->attached) {
		gb->ch->gactive = ac__group_total(gb->g) > 0;
		chan_sync(gb->src->br, gb->ch);
	}
	gb_unref(gb);
}

static void gone_op(ac__loop_t *loop, void *arg)
{
	struct ac__gbridge *gb = arg;
	ac_bridge_t *br = gb->src->br;

	(void)loop;
	gb->gone = true;
	if (gb->attached) {
		struct bchan *ch = gb->ch;

		gb->attached = false;
		ch->group = NULL;
		ch->gactive = false;
		chan_sync(br, ch);
	}
	pthread_mutex_lock(&br->names_lock);
	{
		struct bname *b = bname_get(br, gb->kind, gb->name, gb->len,
					    false);
		if (b)
			b->claimed = false;
		bname_maybe_drop(br, gb->kind, gb->name, gb->len);
	}
	pthread_mutex_unlock(&br->names_lock);
	ac__group_unref(gb->g); /* the one ac_group_bridge took */
	gb_unref(gb);
}

void ac__bridge_group_changed(struct ac__gbridge *gb)
{
	ac_bridge_t *br = gb->src->br;

	if (__atomic_exchange_n(&gb->queued, 1, __ATOMIC_SEQ_CST))
		return; /* queued already; it will read the new count */
	__atomic_fetch_add(&gb->refs, 1, __ATOMIC_RELAXED);
	ac__loop_ctl_node(br->rt->loops[br->home], &gb->sync_ctl);
}

void ac__bridge_group_publish(struct ac__gbridge *gb, ac_buf_t *b)
{
	ac_bridge_t *br = gb->src->br;

	if (__atomic_load_n(&br->freed, __ATOMIC_RELAXED) ||
	    post_publish(br, gb->src, b, GROUP_EAGAIN_MS))
		ac__count_dropped();
}

void ac__bridge_group_free(struct ac__gbridge *gb)
{
	__atomic_fetch_add(&gb->refs, 1, __ATOMIC_RELAXED);
	ac__loop_ctl_node(gb->src->br->rt->loops[gb->src->br->home],
			  &gb->gone_ctl);
}

void ac__bridge_group_release(struct ac__gbridge *gb)
{
	gb_unref(gb);
}

/* ---- the bridge's life --------------------------------------------------------------- */

static void tab_free(struct btab *t)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct bhdr *e = t->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			xfree(e);
		}
	}
	xfree(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

static void bridge_destroy(ac_bridge_t *br)
{
	for (int i = 0; i < br->nnodes; i++) {
		xfree(br->nodes[i]->pub.q);
		xfree(br->nodes[i]->sub.q);
		xfree(br->nodes[i]);
	}
	xfree(br->nodes);
	xfree(br->slots);
	tab_free(&br->chans);
	tab_free(&br->names);
	for (int i = 0; i < br->nseeds; i++)
		xfree(br->seeds[i]);
	xfree(br->seeds);
	xfree(br->user);
	xfree(br->pass);
	xfree(br->prefix);
	xfree(br->eprefix);
	xfree(br->tls_name);
	if (br->tls)
		ac__tls_unref(br->tls);
	pthread_mutex_destroy(&br->names_lock);
	xfree(br);
}

static void bridge_unref(ac_bridge_t *br)
{
	if (!__atomic_sub_fetch(&br->refs, 1, __ATOMIC_ACQ_REL))
		bridge_destroy(br);
}

/* ---- the url ------------------------------------------------------------------------- */

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* s[0..n) with %XX decoded; NULL on a bad escape or no memory (*bad
 * tells which). */
static char *pct_decode(const char *s, size_t n, bool *bad)
{
	char *out = ac__malloc(AC__K_BRIDGE, n + 1), *w = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n) {
				*bad = true;
				xfree(out);
				return NULL;
			}
			hi = unhex((unsigned char)s[i + 1]);
			lo = unhex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				*bad = true;
				xfree(out);
				return NULL;
			}
			*w++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	return out;
}

/* Adds "host:port" (port 6379 if absent) to the seeds. */
static int add_seed(ac_bridge_t *br, const char *s, size_t n)
{
	const char *colon = NULL;
	char **v;
	char *seed;

	if (!n)
		return AC_EADDR;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return AC_EADDR;
		if ((size_t)(close - s) + 1 < n) {
			if (close[1] != ':')
				return AC_EADDR;
			colon = close + 1;
		}
	} else {
		colon = memchr(s, ':', n);
	}
	if (colon && (colon == s + n - 1 ||
		      strspn(colon + 1, "0123456789") < (size_t)(s + n - colon - 1)))
		return AC_EADDR;
	if (!(seed = ac__malloc(AC__K_BRIDGE, n + 6)))
		return AC_ENOMEM;
	memcpy(seed, s, n);
	if (colon)
		seed[n] = '\0';
	else
		memcpy(seed + n, ":6379", 6);
	if (!(v = ac__realloc(AC__K_BRIDGE, br->seeds,
			      (size_t)(br->nseeds + 1) * sizeof(*v)))) {
		xfree(seed);
		return AC_ENOMEM;
	}
	br->seeds = v;
	br->seeds[br->nseeds++] = seed;
	return 0;
}

/* redis[s]://[[user]:pass@]host[:port][,host[:port]...] */
static int parse_url(ac_bridge_t *br, const char *url, bool *tls)
{
	const char *p = url, *at, *end;
	bool bad = false;
	int err;

	if (!strncmp(p, "redis://", 8)) {
		p += 8;
		*tls = false;
	} else if (!strncmp(p, "rediss://", 9)) {
		p += 9;
		*tls = true;
	} else {
		return AC_EADDR;
	}
	end = p + strcspn(p, "/?#");
	if (*end && strcmp(end, "/") && strcmp(end, "/0"))
		return AC_EADDR; /* a database or options: nothing to use */
	at = memchr(p, '@', (size_t)(end - p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));

		if (colon) {
			if (colon > p &&
			    !(br->user = pct_decode(p, (size_t)(colon - p), &bad)))
				return bad ? AC_EADDR : AC_ENOMEM;
			if (!(br->pass = pct_decode(colon + 1,
						    (size_t)(at - colon - 1),
						    &bad)))
				return bad ? AC_EADDR : AC_ENOMEM;
		} else if (at > p) {
			/* "redis://secret@host": a password alone, as
			 * redis-cli -u takes it. */
			if (!(br->pass = pct_decode(p, (size_t)(at - p), &bad)))
				return bad ? AC_EADDR : AC_ENOMEM;
		}
		p = at + 1;
	}
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;

		if (!strncmp(p, "redis://", 8))
			p += 8; /* each seed may repeat the scheme */
		else if (!strncmp(p, "rediss://", 9))
			p += 9;
		if ((err = add_seed(br, p, (size_t)(stop - p))))
			return err;
		p = comma ? comma + 1 : end;
	}
	return br->nseeds ? 0 : AC_EADDR;
}

/* The prefix with Redis's glob characters escaped. */
static char *glob_escape(const char *s, size_t n, size_t *out_len)
{
	char *e = ac__malloc(AC__K_BRIDGE, 2 * n + 1), *w = e;

	if (!e)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strchr("*?[]\\", s[i]))
			*w++ = '\\';
		*w++ = s[i];
	}
	*w = '\0';
	*out_len = (size_t)(w - e);
	return e;
}

AC_EXPORT int ac_bridge_new(ac_runtime_t *rt, const char *url,
			    const ac_bridge_opts_t *opts, ac_bridge_t **out)
{
	ac_bridge_opts_t o = {0};
	ac_bridge_t *br;
	bool tls = false;
	int home, err, st;

	if (!rt || !url || !out)
		return AC_EINVAL;
	if (opts)
		o = *opts;
	if (!ac__reserved_zero(o.reserved, sizeof(o.reserved))) {
		ac__log(rt, AC_LOG_ERROR, "ac_bridge_opts_t: %s",
			AC__RESERVED_MSG);
		return AC_EINVAL;
	}
	if (o.mode < AC_BRIDGE_AUTO || o.mode > AC_BRIDGE_CLUSTER ||
	    (home = ac__loop_choice(rt, o.loop)) == AC_EINVAL) {
		ac__log(rt, AC_LOG_ERROR, "ac_bridge_new: bad %s",
			o.mode < 0 || o.mode > 2 ? "mode" : "loop");
		return AC_EINVAL;
	}
	if (home < 0)
		home = rt->nloops - 1;
	st = ac__rt_state(rt);
	if (st == AC__RT_STOPPING || st == AC__RT_STOPPED)
		return AC_ESHUTDOWN;
	if (!(br = ac__calloc(AC__K_BRIDGE, 1, sizeof(*br))))
		return AC_ENOMEM;
	pthread_mutex_init(&br->names_lock, NULL);
	br->rt = rt;
	br->home = home;
	br->refs = 1;
	br->id = random_id();
	br->seed = random_id();
	br->mode_opt = br->mode = o.mode;
	if (o.mode == AC_BRIDGE_CLUSTER)
		br->mode = AC_BRIDGE_AUTO; /* until the map is read */
	br->max_queued = o.max_queued ? o.max_queued : DEFAULT_MAX_QUEUED;
	br->connect_ms = o.connect_timeout_ms ? o.connect_timeout_ms : 5000;
	br->retry_min = o.retry_min_ms ? o.retry_min_ms : 100;
	br->retry_max = o.retry_max_ms ? o.retry_max_ms : 5000;
	if (br->retry_max < br->retry_min)
		br->retry_max = br->retry_min;
	br->on_message = o.on_message;
	br->arg = o.arg;
	if ((err = parse_url(br, url, &tls)))
		goto fail;
	if (tls && !o.tls) {
		ac__log(rt, AC_LOG_ERROR,
			"ac_bridge_new: rediss:// needs opts->tls");
		err = AC_EINVAL;
		goto fail;
	}
	if (o.tls) {
		ac__tls_ref(o.tls);
		br->tls = o.tls;
	}
	err = AC_ENOMEM;
	if (!(br->prefix = xstrndup(o.prefix ? o.prefix : "",
				    o.prefix ? strlen(o.prefix) : 0)))
		goto fail;
	br->plen = strlen(br->prefix);
	if (!(br->eprefix = glob_escape(br->prefix, br->plen, &br->eplen)))
		goto fail;
	br->start_ctl.fn = start_op;
	br->start_ctl.arg = br;
	br->free_ctl.fn = free_op;
	br->free_ctl.arg = br;
	pthread_mutex_lock(&rt->lock);
	LIST_INSERT_HEAD(&rt->bridges, br, link);
	pthread_mutex_unlock(&rt->lock);
	br->refs++; /* start_op's */
	ac__loop_ctl_node(rt->loops[home], &br->start_ctl);
	*out = br;
	return 0;
fail:
	bridge_destroy(br);
	return err;
}

AC_EXPORT void ac_bridge_free(ac_bridge_t *br)
{
	ac_runtime_t *rt;

	if (!br || __atomic_exchange_n(&br->freed, 1, __ATOMIC_ACQ_REL))
		return;
	rt = br->rt;
	pthread_mutex_lock(&rt->lock);
	LIST_REMOVE(br, link);
	pthread_mutex_unlock(&rt->lock);
	ac__loop_ctl_node(rt->loops[br->home], &br->free_ctl);
}

void ac__bridges_runtime_free(ac_runtime_t *rt)
{
	ac_bridge_t *br;

	for (;;) {
		pthread_mutex_lock(&rt->lock);
		br = LIST_FIRST(&rt->bridges);
		pthread_mutex_unlock(&rt->lock);
		if (!br)
			break;
		ac_bridge_free(br);
	}
}

static bool usable(ac_bridge_t *br)
{
	int st = ac__rt_state(br->rt);

	return !__atomic_load_n(&br->freed, __ATOMIC_ACQUIRE) &&
	       st != AC__RT_STOPPING && st != AC__RT_STOPPED;
}

AC_EXPORT int ac_group_bridge(ac_group_t *g, ac_bridge_t *br,
			      const void *chan, size_t len)
{
	struct ac__gbridge *gb;
	struct bname *b;
	int err;

	if (!g || !br || (!chan && len) || ac__group_runtime(g) != br->rt)
		return AC_EINVAL;
	if (!usable(br))
		return AC_ESHUTDOWN;
	if (!(gb = ac__calloc(AC__K_BRIDGE, 1, sizeof(*gb) + len)))
		return AC_ENOMEM;
	if (!(gb->src = src_new(br, chan, len))) {
		xfree(gb);
		return AC_ENOMEM;
	}
	gb->g = g;
	gb->kind = AC_BRIDGE_CHANNEL;
	gb->len = len;
	memcpy(gb->name, chan, len);
	gb->refs = 2; /* the group's, attach_op's */
	gb->attach_ctl = (struct ac__ctl){.fn = attach_op, .arg = gb};
	gb->sync_ctl = (struct ac__ctl){.fn = sync_op, .arg = gb};
	gb->gone_ctl = (struct ac__ctl){.fn = gone_op, .arg = gb};
	pthread_mutex_lock(&br->names_lock);
	b = bname_get(br, AC_BRIDGE_CHANNEL, chan, len, true);
	err = !b ? AC_ENOMEM : b->claimed ? AC_EEXIST : 0;
	if (!err && (err = ac__group_set_bridge(g, gb)) == 0)
		b->claimed = true;
	else if (b)
		bname_maybe_drop(br, AC_BRIDGE_CHANNEL, chan, len);
	pthread_mutex_unlock(&br->names_lock);
	if (err) {
		src_unref(gb->src);
		xfree(gb);
		return err;
	}
	ac__group_ref(g); /* the home loop's, until gone_op */
	ac__loop_ctl_node(br->rt->loops[br->home], &gb->attach_ctl);
	return 0;
}

/* ac_bridge_subscribe's post: the home loop looks at the name again. */
struct renew {
	ac_bridge_t *br;
	int kind;
	size_t len;
	char name[];
};

static void renew_fn(void *arg)
{
	struct renew *r = arg;
	ac_bridge_t *br = r->br;
	bool want = names_want(br, r->kind, r->name, r->len);
	size_t rlen = redis_name(br, r->kind, r->name, r->len, NULL);
	char *rname = ac__malloc(AC__K_BRIDGE, rlen ? rlen : 1);
	struct bchan *ch = NULL;

	if (rname) {
		redis_name(br, r->kind, r->name, r->len, rname);
		ch = chan_find(br, r->kind, rname, rlen);
		xfree(rname);
	}
	if (!ch && want && !br->dead)
		ch = chan_get(br, r->kind, r->name, r->len);
	if (ch) {
		ch->want = want;
		chan_sync(br, ch);
	} else if (want) {
		ST_ADD(br, errors, 1);
	}
	xfree(r);
	bridge_unref(br);
}

static int subscription(ac_bridge_t *br, int kind, const void *name,
			size_t len, int d)
{
	struct renew *r;
	struct bname *b;
	bool edge;
	int err = 0;

	if (!br || (!name && len) ||
	    (kind != AC_BRIDGE_CHANNEL && kind != AC_BRIDGE_PATTERN) ||
	    !br->on_message)
		return AC_EINVAL;
	if (!usable(br))
		return AC_ESHUTDOWN;
	if (!(r = ac__malloc(AC__K_BRIDGE, sizeof(*r) + len)))
		return AC_ENOMEM;
	r->br = br;
	r->kind = kind;
	r->len = len;
	memcpy(r->name, name, len);
	pthread_mutex_lock(&br->names_lock);
	b = bname_get(br, kind, name, len, d > 0);
	if (!b)
		err = d > 0 ? AC_ENOMEM : AC_ENOENT;
	else if (d < 0 && !b->want)
		err = AC_ENOENT;
	if (!err) {
		b->want += (uint64_t)(int64_t)d;
		edge = d > 0 ? b->want == 1 : b->want == 0;
		if (!edge) {
			pthread_mutex_unlock(&br->names_lock);
			xfree(r);
			return 0;
		}
	}
	pthread_mutex_unlock(&br->names_lock);
	if (err) {
		xfree(r);
		return err;
	}
	/* The count changed edge: the home loop reads it again. If the
	 * post fails, take the change back, so that the caller's error
	 * means nothing happened. */
	__atomic_fetch_add(&br->refs, 1, __ATOMIC_RELAXED);
	if ((err = ac_loop_post(br->rt, AC_LOOP(br->home), renew_fn, r))) {
		pthread_mutex_lock(&br->names_lock);
		if ((b = bname_get(br, kind, name, len, false))) {
			b->want -= (uint64_t)(int64_t)d;
			bname_maybe_drop(br, kind, name, len);
		}
		pthread_mutex_unlock(&br->names_lock);
		xfree(r);
		bridge_unref(br);
		return err;
	}
	if (d < 0) {
		pthread_mutex_lock(&br->names_lock);
		bname_maybe_drop(br, kind, name, len);
		pthread_mutex_unlock(&br->names_lock);
	}
	return 0;
}

AC_EXPORT int ac_bridge_subscribe(ac_bridge_t *br, int kind, const void *name,
				  size_t len)
{
	return subscription(br, kind, name, len, 1);
}

AC_EXPORT int ac_bridge_unsubscribe(ac_bridge_t *br, int kind,
				    const void *name, size_t len)
{
	return subscription(br, kind, name, len, -1);
}

AC_EXPORT int ac_bridge_publish(ac_bridge_t *br, const void *chan, size_t len,
				ac_buf_t *payload)
{
	struct bsrc *src;
	int err;

	if (!br || !payload || (!chan && len))
		return AC_EINVAL;
	if (!usable(br))
		return AC_ESHUTDOWN;
	if (!(src = src_new(br, chan, len)))
		return AC_ENOMEM;
	err = post_publish(br, src, payload, 0);
	src_unref(src);
	return err;
}

AC_EXPORT int ac_bridge_stats(ac_bridge_t *br, ac_bridge_stats_t *out)
{
	const struct ac_bridge_stats_w *s;

	if (!br || !out)
		return AC_EINVAL;
	s = &br->st;
	memset(out, 0, sizeof(*out));
#define LD(f) out->f = __atomic_load_n(&s->f, __ATOMIC_RELAXED)
	LD(mode);
	LD(nodes);
	LD(links_up);
	LD(channels);
	LD(patterns);
	LD(published);
	LD(received);
	LD(own_skipped);
	LD(dropped_down);
	LD(dropped_full);
	LD(connects);
	LD(disconnects);
	LD(redirects);
	LD(refreshes);
	LD(errors);
#undef LD
	return 0;
}

#else /* !AC_HAVE_HIREDIS: bridging is not built */

AC_EXPORT int ac_bridge_new(ac_runtime_t *rt, const char *url,
			    const ac_bridge_opts_t *opts, ac_bridge_t **out)
{
	(void)rt;
	(void)url;
	(void)opts;
	if (out)
		*out = NULL;
	return AC_ENOTSUP;
}

AC_EXPORT int ac_group_bridge(ac_group_t *g, ac_bridge_t *br,
			      const void *chan, size_t len)
{
	(void)g;
	(void)br;
	(void)chan;
	(void)len;
	return AC_ENOTSUP;
}

AC_EXPORT int ac_bridge_subscribe(ac_bridge_t *br, int kind, const void *name,
				  size_t len)
{
	(void)br;
	(void)kind;
	(void)name;
	(void)len;
	return AC_ENOTSUP;
}

AC_EXPORT int ac_bridge_unsubscribe(ac_bridge_t *br, int kind,
				    const void *name, size_t len)
{
	return ac_bridge_subscribe(br, kind, name, len);
}

AC_EXPORT int ac_bridge_publish(ac_bridge_t *br, const void *chan, size_t len,
				ac_buf_t *payload)
{
	(void)br;
	(void)chan;
	(void)len;
	(void)payload;
	return AC_ENOTSUP;
}

AC_EXPORT int ac_bridge_stats(ac_bridge_t *br, ac_bridge_stats_t *out)
{
	(void)br;
	(void)out;
	return AC_ENOTSUP;
}

AC_EXPORT void ac_bridge_free(ac_bridge_t *br)
{
	(void)br;
}

/* Never called: no group is ever bridged. */
void ac__bridge_group_changed(struct ac__gbridge *gb)
{
	(void)gb;
}

void ac__bridge_group_publish(struct ac__gbridge *gb, ac_buf_t *b)
{
	(void)gb;
	(void)b;
}

void ac__bridge_group_free(struct ac__gbridge *gb)
{
	(void)gb;
}

void ac__bridge_group_release(struct ac__gbridge *gb)
{
	(void)gb;
}

void ac__bridge_deliver(ac__loop_t *loop, struct ac__msg *m)
{
	(void)loop;
	(void)m;
}

void ac__bridge_settle(ac__loop_t *loop, struct ac__msg *m)
{
	(void)loop;
	(void)m;
}

void ac__bridges_runtime_free(ac_runtime_t *rt)
{
	(void)rt;
}

#endif /* AC_HAVE_HIREDIS */
