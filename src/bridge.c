/*
 * bridge.c: groups and channels across machines, through Redis: the
 * bridge's life, the calls other threads make, the names they ask for,
 * bridged groups. Its work on the home loop is in bridge_net.c.
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

#include "bridge_int.h"

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

char *ac__br_strndup(const char *s, size_t n)
{
	char *p = ac__malloc(AC__K_BRIDGE, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void ac__br_free(void *p)
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
	ac__br_free(t->b);
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
	ac__br_free(b);
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

struct bchan *ac__br_chan_find(ac_bridge_t *br, int kind, const char *rname,
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
		ac__br_free(ch);
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
void ac__br_chan_maybe_free(ac_bridge_t *br, struct bchan *ch)
{
	struct bhdr **p;

	if (ch->want || ch->group || ch->at || ch->pins)
		return;
	p = tab_find(br, &br->chans, ch->kind, ch->rname, ch->rlen, chan_name);
	*p = (struct bhdr *)ch->next;
	br->chans.n--;
	ac__br_free(ch);
}

void ac__br_chans_foreach(ac_bridge_t *br,
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

void ac__br_src_ref(struct bsrc *s)
{
	__atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
}

void ac__br_src_unref(struct bsrc *s)
{
	ac_bridge_t *br;

	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	br = s->br;
	ac__br_free(s);
	ac__br_unref(br);
}

/* ---- control operations (home, or the settling thread) ------------------------ */

static void start_op(ac__loop_t *loop, void *arg)
{
	ac_bridge_t *br = arg;

	if (loop && ac__tls_loop == loop && !br->dead) {
		for (int i = 0; i < br->nseeds; i++) {
			struct bnode *n = ac__br_node_get(br, br->seeds[i]);

			if (!n)
				continue;
			if (br->mode == AC_BRIDGE_SINGLE) {
				ac__br_become_single(br, n);
				break;
			}
			ac__br_link_start(&n->pub); /* asks CLUSTER SLOTS */
		}
	}
	ac__br_unref(br);
}

static void free_op(ac__loop_t *loop, void *arg)
{
	ac_bridge_t *br = arg;

	(void)loop;
	br->dead = true;
	ac__br_drop_held(br);
	for (int i = 0; i < br->nnodes; i++) {
		br->nodes[i]->master = false;
		ac__br_link_close(&br->nodes[i]->pub);
		ac__br_link_close(&br->nodes[i]->sub);
	}
	ac__br_unref(br); /* the user's */
}

/* ---- publishing ---------------------------------------------------------------- */

/* Posts a publish of b on src to the home loop; waits up to ms for room
 * when the caller is foreign. */
static int post_publish(ac_bridge_t *br, struct bsrc *src, ac_buf_t *b,
			unsigned ms)
{
	struct ac__msg m = {.kind = AC__MSG_BRIDGE, .b = b};
	int err;

	m.a.p = src;
	ac__br_src_ref(src);
	ac_buf_ref(b);
	if ((err = ac__mailbox_put_wait(br->rt, br->home, &m, ms))) {
		ac_buf_unref(b);
		ac__br_src_unref(src);
	}
	return err;
}

/* ---- groups ------------------------------------------------------------------------ */

static void gb_unref(struct ac__gbridge *gb)
{
	if (__atomic_sub_fetch(&gb->refs, 1, __ATOMIC_ACQ_REL))
		return;
	ac__br_src_unref(gb->src);
	ac__br_free(gb);
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
		ac__br_chan_sync(br, ch);
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
		ac__br_chan_sync(gb->src->br, gb->ch);
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
		ac__br_chan_sync(br, ch);
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
			ac__br_free(e);
		}
	}
	ac__br_free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

static void bridge_destroy(ac_bridge_t *br)
{
	for (int i = 0; i < br->nnodes; i++) {
		ac__br_free(br->nodes[i]->pub.q);
		ac__br_free(br->nodes[i]->sub.q);
		ac__br_free(br->nodes[i]);
	}
	ac__br_free(br->nodes);
	ac__br_free(br->slots);
	ac__br_free(br->inflight);
	ac__br_free(br->route);
	tab_free(&br->chans);
	tab_free(&br->names);
	for (int i = 0; i < br->nseeds; i++)
		ac__br_free(br->seeds[i]);
	ac__br_free(br->seeds);
	ac__br_free(br->user);
	ac__br_free(br->pass);
	ac__br_free(br->prefix);
	ac__br_free(br->eprefix);
	ac__br_free(br->tls_name);
	if (br->tls)
		ac__tls_unref(br->tls);
	pthread_mutex_destroy(&br->names_lock);
	ac__br_free(br);
}

void ac__br_unref(ac_bridge_t *br)
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
				ac__br_free(out);
				return NULL;
			}
			hi = unhex((unsigned char)s[i + 1]);
			lo = unhex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				*bad = true;
				ac__br_free(out);
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
		ac__br_free(seed);
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
	if (!(br->prefix = ac__br_strndup(o.prefix ? o.prefix : "",
				    o.prefix ? strlen(o.prefix) : 0)))
		goto fail;
	br->plen = strlen(br->prefix);
	if (!(br->eprefix = glob_escape(br->prefix, br->plen, &br->eplen)))
		goto fail;
	br->held_tail = &br->held;
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
		ac__br_free(gb);
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
		ac__br_src_unref(gb->src);
		ac__br_free(gb);
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
		ch = ac__br_chan_find(br, r->kind, rname, rlen);
		ac__br_free(rname);
	}
	if (!ch && want && !br->dead)
		ch = chan_get(br, r->kind, r->name, r->len);
	if (ch) {
		ch->want = want;
		ac__br_chan_sync(br, ch);
	} else if (want) {
		ST_ADD(br, errors, 1);
	}
	ac__br_free(r);
	ac__br_unref(br);
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
			ac__br_free(r);
			return 0;
		}
	}
	pthread_mutex_unlock(&br->names_lock);
	if (err) {
		ac__br_free(r);
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
		ac__br_free(r);
		ac__br_unref(br);
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
	ac__br_src_unref(src);
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
