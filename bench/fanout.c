/*
 * fanout.c: the `fanout` subcommand, RESP publish/subscribe delivery.
 *
 * S subscriber connections SUBSCRIBE to one channel; once every one of them
 * has its confirmation, N publisher connections PUBLISH to it. A message's
 * payload starts with the CLOCK_MONOTONIC time at which it was queued, in
 * 16 hex digits, so the subscriber that reads it knows its publish-to-
 * delivery latency. A delivery is one message read by one subscriber: a
 * message published while S are subscribed makes S deliveries.
 *
 * Flow control is end to end: the publishers together keep at most
 * W x N messages in flight, a message being in flight from its PUBLISH
 * until every subscriber has read it (counted in aggregate: published x S -
 * delivered < W x N x S). That measures what the server delivers, bounds
 * what it has to buffer the same way for every server, and keeps both
 * redis-server's and actorconn-broker's output limits out of reach.
 *
 * Subscribers and publishers are spread round-robin over T threads, each
 * with its own epoll set. A thread whose publishers wait for the window
 * says so in its `blocked` flag; any thread whose subscribers make
 * progress wakes it through its eventfd.
 *
 * The run: subscribe, warm up (publishing, nothing counted), the measured
 * window (deliveries read in it, over its length), then publishing stops and
 * the run waits, 10 s at most, for every published message to reach every
 * subscriber: a loss is an error.
 *
 * With --tls, every connection completes its handshake before the first
 * SUBSCRIBE (net_tls_handshake_all).
 *
 * With --sub-server2, every other subscriber connects to that address
 * instead, while the publishers stay on --server: two nodes of one service
 * that pass messages between them, such as two actorconn-broker --cluster
 * processes over one Redis. A node may confirm a SUBSCRIBE before it hears
 * the other's messages (the broker subscribes in Redis only once it has a
 * subscriber, one round trip later), and a message lost there would be
 * taken for a lost delivery; so between the subscribe phase and the
 * publishing, a probe phase publishes a message marked as a probe every
 * FO_PROBE_MS until one reaches a subscriber of the second address.
 * Subscribers count no probe.
 *
 * With --pid, the server's CPU time at the start and the end of the window,
 * over the deliveries read in it, gives its CPU per delivery; and its
 * VmRSS before the connections open and at the end of the window, over
 * the connections, its memory per connection under this load (output
 * buffers included; a server keeps memory it has used, so that figure is
 * meant for a fresh server and the first run).
 */
#include "netload.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FO_CHANNEL "actorconn-bench"
#define FO_IN_MIN (16u << 10)      /* a subscriber's first input buffer */
#define FO_OUT_MAX (256u << 10)    /* a publisher's unwritten bytes */
#define FO_SUBSCRIBE_S 30          /* bound on the subscribe phase */
#define FO_DRAIN_S 10              /* bound on the final drain */
#define FO_PROBE_S 10              /* bound on the probe phase */
#define FO_PROBE_MS 20             /* between two probes of a thread */
#define FO_PROBE "probe"           /* a probe's payload begins so; a
				      timestamp is hex and never does */

enum { PH_SUBSCRIBE, PH_PROBE, PH_PUBLISH, PH_EXIT };

struct fo_conn {
	struct net_conn nc;
	int is_pub;
	int on2;             /* a subscriber of --sub-server2 */
	char *in;
	size_t have, cap;
	char *out;           /* unwritten bytes at out + out_off */
	size_t out_len, out_off, out_cap;
};

/* counted: deliveries read in the measured window. */
struct fo_thread {
	struct net_thread nt;
	long long delivered; /* atomic: written by this thread only */
	int blocked;         /* atomic: publishers here wait for the window */
	int nsubscribed;     /* confirmations not yet added to the run's */
	uint64_t probe_at;   /* PH_PROBE: when this thread probes next */
} __attribute__((aligned(64)));

struct fo_run {
	struct net_run nr;     /* t_start, t_end: set before phase PUBLISH */
	long long subs;        /* S */
	long long window;      /* messages in flight, all publishers */
	size_t size;           /* payload bytes */
	long long published;   /* atomic: messages claimed by publishers */
	long long subscribed;  /* atomic: confirmations */
	int phase;             /* atomic: PH_* */
	struct net_addr addr2; /* --sub-server2, when given */
	int probed;            /* atomic: a probe reached a subscriber of
				  addr2 */
};

static struct fo_run *fo_run_of(const struct net_thread *t)
{
	return (struct fo_run *)t->run;
}

static struct fo_thread *fo_thread_at(const struct fo_run *r, int k)
{
	return (struct fo_thread *)r->nr.threads[k];
}

static struct fo_conn *fo_conn_at(const struct net_thread *t, int i)
{
	return (struct fo_conn *)net_conn_at(t, i);
}

static void kick_all(struct fo_run *r)
{
	for (int k = 0; k < r->nr.nthreads; k++)
		net_kick(r->nr.threads[k]);
}

static long long delivered_sum(const struct fo_run *r)
{
	long long d = 0;

	for (int k = 0; k < r->nr.nthreads; k++)
		d += __atomic_load_n(&fo_thread_at(r, k)->delivered,
				     __ATOMIC_SEQ_CST);
	return d;
}

/* ---- output -------------------------------------------------------------------- */

/* Makes room for n more unwritten bytes. */
static int fo_reserve(struct net_thread *t, struct fo_conn *c, size_t n)
{
	size_t cap = c->out_cap ? c->out_cap : 4096;
	char *q;

	if (c->out_off && c->out_len + n > c->out_cap) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n <= c->out_cap)
		return 0;
	while (cap < c->out_len + n)
		cap *= 2;
	if (!(q = realloc(c->out, cap))) {
		net_fail(t, "out of memory");
		return -1;
	}
	c->out = q;
	c->out_cap = cap;
	return 0;
}

static int fo_append(struct net_thread *t, struct fo_conn *c, const char *p,
		     size_t n)
{
	if (fo_reserve(t, c, n))
		return -1;
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

static int fo_flush(struct net_thread *t, struct net_conn *nc)
{
	struct fo_conn *c = (struct fo_conn *)nc;
	ssize_t w = net_send(t, nc, c->out + c->out_off,
			     c->out_len - c->out_off);

	if (w < 0)
		return -1;
	c->out_off += (size_t)w;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return 0;
}

/* ---- publishing ---------------------------------------------------------------- */

/* Appends one PUBLISH whose payload carries the time now, or the probe
 * mark. */
static int fo_publish(struct net_thread *t, struct fo_conn *c, uint64_t now,
		      int probe)
{
	size_t size = fo_run_of(t)->size;
	char hdr[64], *p;
	int hl;

	hl = snprintf(hdr, sizeof(hdr),
		      "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%zu\r\n",
		      sizeof(FO_CHANNEL) - 1, FO_CHANNEL, size);
	if (fo_append(t, c, hdr, (size_t)hl) || fo_reserve(t, c, size + 2))
		return -1;
	/* The payload, written in place: the time (size >= 16) or the
	 * probe mark, then filler. */
	p = c->out + c->out_len;
	if (probe) {
		memcpy(p, FO_PROBE, sizeof(FO_PROBE) - 1);
		memset(p + sizeof(FO_PROBE) - 1, '.',
		       size - (sizeof(FO_PROBE) - 1));
	} else {
		snprintf(p, 17, "%016llx", (unsigned long long)now);
		memset(p + 16, '.', size - 16);
	}
	memcpy(p + size, "\r\n", 2);
	c->out_len += size + 2;
	return 0;
}

/*
 * Publishes on this thread's publishers, one message each in turn, while
 * the window allows and the measured window lasts. Sets t->blocked when it
 * stops for the window, so that progress elsewhere wakes this thread.
 */
static int fo_pump(struct fo_thread *t, uint64_t now)
{
	struct fo_run *r = fo_run_of(&t->nt);
	int progress = 1, rc = 0;

	if (__atomic_load_n(&r->phase, __ATOMIC_RELAXED) != PH_PUBLISH ||
	    now >= r->nr.t_end)
		return 0;
	while (progress) {
		progress = 0;
		for (int i = 0; i < t->nt.nconn; i++) {
			struct fo_conn *c = fo_conn_at(&t->nt, i);
			long long pub, owed;

			if (!c->is_pub || c->out_len - c->out_off > FO_OUT_MAX)
				continue;
			pub = __atomic_load_n(&r->published, __ATOMIC_SEQ_CST);
			owed = pub * r->subs - delivered_sum(r);
			if (owed >= r->window * r->subs) {
				/* Say we wait, then look again: a thread
				 * that delivered in between either sees the
				 * flag or its count is in this sum. */
				__atomic_store_n(&t->blocked, 1,
						 __ATOMIC_SEQ_CST);
				pub = __atomic_load_n(&r->published,
						      __ATOMIC_SEQ_CST);
				owed = pub * r->subs - delivered_sum(r);
				if (owed >= r->window * r->subs)
					goto flush;
				__atomic_store_n(&t->blocked, 0,
						 __ATOMIC_RELAXED);
			}
			__atomic_fetch_add(&r->published, 1, __ATOMIC_SEQ_CST);
			if (fo_publish(&t->nt, c, now, 0))
				return -1;
			progress = 1;
		}
	}
flush:
	for (int i = 0; i < t->nt.nconn && !rc; i++) {
		struct fo_conn *c = fo_conn_at(&t->nt, i);

		if (c->is_pub && c->out_len)
			rc = fo_flush(&t->nt, &c->nc);
	}
	return rc;
}

/*
 * PH_PROBE: a probe on this thread's first publisher every FO_PROBE_MS, if
 * its output has room. Probes are not counted as published, and no
 * subscriber counts them.
 */
static int fo_probe(struct fo_thread *t, uint64_t now)
{
	if (now < t->probe_at)
		return 0;
	t->probe_at = now + FO_PROBE_MS * 1000000ull;
	for (int i = 0; i < t->nt.nconn; i++) {
		struct fo_conn *c = fo_conn_at(&t->nt, i);

		if (!c->is_pub)
			continue;
		if (c->out_len - c->out_off > FO_OUT_MAX)
			return 0;
		if (fo_publish(&t->nt, c, now, 1))
			return -1;
		return fo_flush(&t->nt, &c->nc);
	}
	return 0;
}

/* Wakes the threads whose publishers wait, now that deliveries moved. */
static void fo_wake_blocked(struct fo_thread *self)
{
	struct fo_run *r = fo_run_of(&self->nt);

	for (int k = 0; k < r->nr.nthreads; k++) {
		struct fo_thread *u = fo_thread_at(r, k);

		if (u != self && __atomic_load_n(&u->blocked, __ATOMIC_SEQ_CST) &&
		    __atomic_exchange_n(&u->blocked, 0, __ATOMIC_SEQ_CST))
			net_kick(&u->nt);
	}
}

/* ---- input ----------------------------------------------------------------------- */

/* Reads "$N\r\n" at *p (within end); returns N and moves *p past it. */
static long long bulk_hdr(const char **p, const char *end)
{
	const char *q = *p;
	long long v = 0;

	if (q >= end || *q++ != '$')
		return -1;
	while (q < end && *q >= '0' && *q <= '9')
		v = v * 10 + (*q++ - '0');
	if (end - q < 2 || q[0] != '\r' || q[1] != '\n')
		return -1;
	*p = q + 2;
	return v;
}

static uint64_t hex16(const char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		char ch = p[i];
		v = v << 4 | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
	}
	return v;
}

/* One complete push reply to subscriber c: a message or a confirmation. */
static int fo_push(struct fo_thread *t, const struct fo_conn *c,
		   const char *p, size_t n, uint64_t now)
{
	static const char msg[] = "*3\r\n$7\r\nmessage\r\n";
	static const char sub[] = "*3\r\n$9\r\nsubscribe\r\n";
	struct fo_run *r = fo_run_of(&t->nt);
	const char *q = p + sizeof(msg) - 1, *end = p + n;
	long long len;

	if (n > sizeof(msg) && !memcmp(p, msg, sizeof(msg) - 1)) {
		if ((len = bulk_hdr(&q, end)) < 0 || end - q < len + 2)
			goto bad;
		q += len + 2; /* the channel */
		if ((len = bulk_hdr(&q, end)) < 16)
			goto bad;
		if (!memcmp(q, FO_PROBE, sizeof(FO_PROBE) - 1)) {
			if (c->on2)
				__atomic_store_n(&r->probed, 1,
						 __ATOMIC_RELEASE);
			return 0;
		}
		t->delivered++;
		if (net_in_window(&r->nr, now)) {
			uint64_t ts = hex16(q);

			hist_add(&t->nt.hist, now > ts ? now - ts : 0);
			t->nt.counted++;
		}
		return 0;
	}
	if (n > sizeof(sub) && !memcmp(p, sub, sizeof(sub) - 1)) {
		t->nsubscribed++;
		return 0;
	}
bad:
	net_fail(&t->nt, "unexpected push to a subscriber: \"%.*s\"",
		 (int)(n < 40 ? n : 40), p);
	return -1;
}

static int fo_read(struct net_thread *nt, struct net_conn *nc)
{
	struct fo_thread *t = (struct fo_thread *)nt;
	struct fo_conn *c = (struct fo_conn *)nc;
	size_t off = 0;
	uint64_t now;
	ssize_t n;

	if (c->have == c->cap) {
		char *q = realloc(c->in, c->cap * 2);

		if (!q) {
			net_fail(nt, "out of memory");
			return -1;
		}
		c->in = q;
		c->cap *= 2;
	}
	if ((n = net_recv(nt, nc, c->in + c->have, c->cap - c->have,
			  c->is_pub ? "publisher connection"
				    : "subscriber connection")) <= 0)
		return (int)n;
	now = now_ns();
	c->have += (size_t)n;
	for (;;) {
		long len = resp_reply_len(c->in + off, c->have - off);

		if (len == 0)
			break;
		if (len < 0) {
			net_fail(nt, "malformed RESP from the server");
			return -1;
		}
		if (c->is_pub) {
			/* PUBLISH answers with the number of receivers. */
			if (c->in[off] != ':') {
				net_fail(nt, "PUBLISH failed: \"%.*s\"",
					 (int)(len < 40 ? len : 40),
					 c->in + off);
				return -1;
			}
		} else if (fo_push(t, c, c->in + off, (size_t)len, now)) {
			return -1;
		}
		off += (size_t)len;
	}
	c->have -= off;
	memmove(c->in, c->in + off, c->have);
	return 0;
}

/* ---- the threads ---------------------------------------------------------------- */

static int fo_setup(struct net_thread *t)
{
	/* FO_CHANNEL is 15 bytes long. */
	static const char subscribe[] = "*2\r\n$9\r\nSUBSCRIBE\r\n$15\r\n"
					FO_CHANNEL "\r\n";

	if (net_thread_open(t, 1))
		return -1;
	for (int i = 0; i < t->nconn; i++)
		if (net_conn_open(t, &fo_conn_at(t, i)->nc))
			return -1;
	if (net_tls_handshake_all(t))
		return -1;
	for (int i = 0; i < t->nconn; i++) {
		struct fo_conn *c = fo_conn_at(t, i);

		c->cap = c->is_pub ? 4096 : FO_IN_MIN;
		if (!(c->in = malloc(c->cap))) {
			net_fail(t, "out of memory");
			return -1;
		}
		if (!c->is_pub &&
		    (fo_append(t, c, subscribe, sizeof(subscribe) - 1) ||
		     fo_flush(t, &c->nc)))
			return -1;
	}
	return 0;
}

static void *fo_main(void *arg)
{
	static const struct net_ops ops = {.writable = fo_flush,
					   .readable = fo_read};
	struct fo_thread *t = arg;
	struct fo_run *r = fo_run_of(&t->nt);

	fo_setup(&t->nt);
	pthread_barrier_wait(&r->nr.bar);
	while (__atomic_load_n(&r->phase, __ATOMIC_ACQUIRE) != PH_EXIT &&
	       !net_failed(&r->nr)) {
		long long before = t->delivered;
		int probing = __atomic_load_n(&r->phase, __ATOMIC_ACQUIRE) ==
			      PH_PROBE;

		/* The main thread kicks the eventfd at each phase change;
		 * the timeout is a backstop, or paces the probes. */
		if (net_poll(&t->nt, probing ? FO_PROBE_MS : 100, &ops))
			break;
		if (t->nsubscribed) {
			__atomic_fetch_add(&r->subscribed, t->nsubscribed,
					   __ATOMIC_RELEASE);
			t->nsubscribed = 0;
		}
		if (t->delivered != before) {
			__atomic_store_n(&t->delivered, t->delivered,
					 __ATOMIC_SEQ_CST);
			fo_wake_blocked(t);
		}
		if (probing ? fo_probe(t, now_ns()) : fo_pump(t, now_ns()))
			break;
	}
	return NULL;
}

/* ---- one run ---------------------------------------------------------------------- */

static void fo_conn_free(struct net_conn *nc)
{
	struct fo_conn *c = (struct fo_conn *)nc;

	free(c->in);
	free(c->out);
}

/* What a run measures besides a net_result. */
struct fo_extra {
	long long published;  /* messages */
	long long rss0, rss1; /* the server's VmRSS in KiB (--pid), or -1 */
};

static struct net_result fo_once(const struct opts *o, struct fo_extra *x)
{
	struct fo_run r = {.subs = o->subscribers,
			   .window = o->pipeline * o->publishers,
			   .size = (size_t)o->size};
	long long nconn = o->subscribers + o->publishers, want;
	struct net_result res;
	struct net_thread *t0;
	double deadline;
	int n;

	x->rss0 = x->rss1 = -1;
	if (o->pid)
		x->rss0 = proc_rss_kib(o->pid);
	net_run_init(&r.nr, o, nconn, sizeof(struct fo_thread),
		     sizeof(struct fo_conn));
	if (o->sub_server2 && net_addr_parse(o->sub_server2, &r.addr2))
		exit(1);
	/* Connection i goes to thread i % T; the publishers are the last
	 * ones, so they spread over the threads too. With --sub-server2,
	 * every other subscriber of each thread goes there. */
	n = r.nr.nthreads;
	for (long long i = 0; i < nconn; i++) {
		struct fo_conn *c = fo_conn_at(r.nr.threads[i % n],
					       (int)(i / n));

		c->is_pub = i >= o->subscribers;
		c->on2 = o->sub_server2 && !c->is_pub && (i / n) % 2 == 1;
		if (c->on2)
			c->nc.addr = &r.addr2;
	}
	net_run_start(&r.nr, fo_main);

	deadline = now_s() + FO_SUBSCRIBE_S;
	while (__atomic_load_n(&r.subscribed, __ATOMIC_ACQUIRE) < r.subs &&
	       !net_failed(&r.nr) && now_s() < deadline)
		sleep_ms(1);
	if (__atomic_load_n(&r.subscribed, __ATOMIC_ACQUIRE) < r.subs &&
	    !net_failed(&r.nr)) {
		__atomic_store_n(&r.nr.failed, 1, __ATOMIC_RELAXED);
		t0 = r.nr.threads[0];
		snprintf(t0->err, sizeof(t0->err),
			 "only %lld of %lld subscribers confirmed within %d s",
			 __atomic_load_n(&r.subscribed, __ATOMIC_RELAXED),
			 r.subs, FO_SUBSCRIBE_S);
	}

	if (o->sub_server2 && !net_failed(&r.nr)) {
		__atomic_store_n(&r.phase, PH_PROBE, __ATOMIC_RELEASE);
		kick_all(&r);
		deadline = now_s() + FO_PROBE_S;
		while (!__atomic_load_n(&r.probed, __ATOMIC_ACQUIRE) &&
		       !net_failed(&r.nr) && now_s() < deadline)
			sleep_ms(1);
		if (!__atomic_load_n(&r.probed, __ATOMIC_ACQUIRE) &&
		    !net_failed(&r.nr)) {
			__atomic_store_n(&r.nr.failed, 1, __ATOMIC_RELAXED);
			t0 = r.nr.threads[0];
			snprintf(t0->err, sizeof(t0->err),
				 "nothing published on %s reached a subscriber "
				 "on %s within %d s: do the two pass messages "
				 "to each other?",
				 o->server, o->sub_server2, FO_PROBE_S);
		}
	}

	net_run_window(&r.nr, o);
	__atomic_store_n(&r.phase, PH_PUBLISH, __ATOMIC_RELEASE);
	kick_all(&r);
	net_run_wait(&r.nr);
	if (o->pid)
		x->rss1 = proc_rss_kib(o->pid);

	/* Every claimed message was queued on a publisher; wait until each
	 * subscriber has read it. */
	deadline = now_s() + FO_DRAIN_S;
	while (!net_failed(&r.nr) &&
	       delivered_sum(&r) <
		       __atomic_load_n(&r.published, __ATOMIC_SEQ_CST) * r.subs &&
	       now_s() < deadline)
		sleep_ms(1);
	__atomic_store_n(&r.phase, PH_EXIT, __ATOMIC_RELEASE);
	kick_all(&r);
	net_run_join(&r.nr, "fanout", o);
	want = r.published * r.subs;
	if (delivered_sum(&r) != want)
		die("fanout %s: %lld of %lld deliveries (%lld messages x %lld "
		    "subscribers) arrived within %d s of the end",
		    o->server, delivered_sum(&r), want, r.published, r.subs,
		    FO_DRAIN_S);
	x->published = r.published;
	res = net_run_result(&r.nr, "fanout", "delivery", o);
	net_run_free(&r.nr, fo_conn_free);
	return res;
}

int cmd_fanout(const struct opts *o)
{
	struct net_result runs[MAX_REPS], m;
	double pub[MAX_REPS], mem[MAX_REPS], rss0[MAX_REPS], rss1[MAX_REPS];
	long long nconn = o->subscribers + o->publishers;
	struct fo_extra x;
	struct net_addr check;
	struct json j;

	if (o->size < 16) {
		fprintf(stderr, PROG " fanout: --size must be at least 16 "
				"(the timestamp)\n");
		return 2;
	}
	if (net_addr_parse(o->server, &check) ||
	    (o->sub_server2 && net_addr_parse(o->sub_server2, &check)) ||
	    net_check_pid(o, "fanout"))
		return 1;
	if (o->json && json_open(&j, o->json, "fanout"))
		return 1;
	printf("fanout %s (%s)%s: S=%lld publishers=%lld W=%lld size=%lld "
	       "threads=%d, %.1f s after %.1f s warm-up, %d run%s\n",
	       o->server, o->label, o->tls ? " over TLS" : "", o->subscribers, o->publishers, o->pipeline,
	       o->size, o->threads, o->duration, o->warmup, o->reps,
	       o->reps > 1 ? "s" : "");
	if (o->sub_server2)
		printf("subscribers: every other one on %s; publishers on %s\n",
		       o->sub_server2, o->server);
	fflush(stdout);
	for (int i = 0; i < o->reps; i++) {
		runs[i] = fo_once(o, &x);
		pub[i] = (double)x.published;
		rss0[i] = (double)x.rss0;
		rss1[i] = (double)x.rss1;
		mem[i] = x.rss0 < 0 || x.rss1 < 0
				 ? NAN
				 : (double)(x.rss1 - x.rss0) * 1024 /
					   (double)nconn;
	}
	m = net_summarize("deliveries/s", runs, o->reps);
	printf("latency: publish to delivery; measured: deliveries read in "
	       "the window; published: %.0f messages%s\n",
	       median(pub, o->reps), o->reps > 1 ? " (median)" : "");
	net_cpu_note(o, "delivery");
	net_tls_note(o, &m);
	if (o->pid)
		printf("server memory: VmRSS %.0f KiB before connecting, %.0f "
		       "KiB at the end of the window: %.0f bytes per connection "
		       "(%lld)%s\n",
		       median(rss0, o->reps), median(rss1, o->reps),
		       median(mem, o->reps), nconn,
		       o->reps > 1 ? " (medians)" : "");
	if (o->json) {
		json_obj_begin(&j);
		net_json_common(&j, o);
		json_int(&j, "subscribers", o->subscribers);
		if (o->sub_server2)
			json_str(&j, "sub_server2", o->sub_server2);
		json_int(&j, "publishers", o->publishers);
		json_int(&j, "window", o->pipeline);
		json_int(&j, "size", o->size);
		net_json_result(&j, "deliveries_per_s", &m);
		json_num(&j, "published", median(pub, o->reps), 0);
		if (o->pid) {
			json_num(&j, "rss_before_kib", median(rss0, o->reps), 0);
			json_num(&j, "rss_end_kib", median(rss1, o->reps), 0);
			json_num(&j, "bytes_per_conn", median(mem, o->reps), 1);
		}
		json_obj_end(&j);
		if (json_close(&j))
			return 1;
	}
	return 0;
}
