/*
 * reqload.c: closed-loop request/response load, the engine of the `ping`
 * (RESP PING) and `echo` (len32 frames) subcommands.
 *
 * C connections, spread round-robin over T client threads, each thread with
 * its own epoll set and non-blocking sockets. Every connection keeps exactly
 * P requests in flight: each reply that comes back is checked byte for byte
 * against the one reply it must be, and answered with a new request. A
 * request's latency runs from when the client queued it to when the read
 * that completed its reply returned.
 *
 * A run is a warm-up (connections open, load on, nothing counted), then the
 * measured window of --duration seconds: the rate is replies completed in
 * the window over its length, the percentiles those replies' latencies.
 *
 * Both protocols have a fixed request and a fixed reply, so a connection's
 * output is one request repeated: it is written straight out of a buffer of
 * P + 1 copies, and the only output state is how many bytes are owed and
 * where in the request the next one starts.
 */
#include "netload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* What one subcommand sends and expects. */
struct rr_spec {
	const char *what;   /* "ping", "echo" */
	char *req, *rep;    /* one request; the exact reply to it */
	size_t req_len, rep_len;
};

struct rr_conn {
	int fd;
	int out_armed;       /* EPOLLOUT is in the interest set */
	size_t owe;          /* bytes queued, not yet written */
	size_t off;          /* where in the request the next byte is */
	uint64_t *sent;      /* ring of P queue times, oldest at head */
	unsigned head, inflight;
	char *in;            /* at most P replies: all that can be owed */
	size_t have;
};

struct rr_run;

struct rr_thread {
	struct rr_run *run;
	pthread_t th;
	int ep;
	struct rr_conn *conns;
	int nconn;
	long long done;      /* replies completed in the window */
	struct hist hist;
	char err[256];
} __attribute__((aligned(64)));

struct rr_run {
	const struct rr_spec *spec;
	struct net_addr addr;
	unsigned depth;          /* P */
	const char *stream;      /* P + 1 copies of the request */
	pthread_barrier_t bar;   /* connected; go */
	uint64_t t_start, t_end; /* the measured window, written before "go" */
	int failed;              /* atomic: a thread gave up; all stop */
	struct rr_thread *threads;
	int nthreads;
};

static void rr_fail(struct rr_thread *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void rr_fail(struct rr_thread *t, const char *fmt, ...)
{
	va_list ap;

	if (t->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	__atomic_store_n(&t->run->failed, 1, __ATOMIC_RELAXED);
}

/* Queues k requests sent at time now. */
static void rr_queue(struct rr_run *r, struct rr_conn *c, unsigned k,
		     uint64_t now)
{
	for (unsigned i = 0; i < k; i++)
		c->sent[(c->head + c->inflight++) % r->depth] = now;
	c->owe += (size_t)k * r->spec->req_len;
}

static int rr_arm(struct rr_thread *t, struct rr_conn *c, int out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
				 .data.ptr = c};

	if (c->out_armed == out)
		return 0;
	c->out_armed = out;
	if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		rr_fail(t, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Writes what c owes, as far as the socket takes it. */
static int rr_flush(struct rr_thread *t, struct rr_conn *c)
{
	size_t req_len = t->run->spec->req_len;

	while (c->owe) {
		/* off < req_len and owe <= P * req_len: the bytes are
		 * contiguous in the P + 1 copies. */
		ssize_t w = write(c->fd, t->run->stream + c->off, c->owe);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return rr_arm(t, c, 1);
			rr_fail(t, "write: %s", strerror(errno));
			return -1;
		}
		c->owe -= (size_t)w;
		c->off = (c->off + (size_t)w) % req_len;
	}
	return rr_arm(t, c, 0);
}

/* Reports the bytes at p, which are not the reply they should be. */
static int rr_mismatch(struct rr_thread *t, const char *p, size_t n)
{
	char shown[41];
	size_t k;

	for (k = 0; k < n && k < 40; k++)
		shown[k] = p[k] >= 0x20 && p[k] < 0x7f ? p[k] : '.';
	shown[k] = '\0';
	rr_fail(t, "unexpected reply \"%s\"", shown);
	return -1;
}

static int rr_read(struct rr_thread *t, struct rr_conn *c)
{
	struct rr_run *r = t->run;
	const struct rr_spec *s = r->spec;
	size_t cap = (size_t)r->depth * s->rep_len, nrep, i;
	ssize_t n;
	uint64_t now;

	n = read(c->fd, c->in + c->have, cap - c->have);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		rr_fail(t, "read: %s", strerror(errno));
		return -1;
	}
	if (n == 0) {
		rr_fail(t, "the server closed a connection");
		return -1;
	}
	now = now_ns();
	c->have += (size_t)n;
	nrep = c->have / s->rep_len;
	for (i = 0; i < nrep; i++) {
		const char *p = c->in + i * s->rep_len;

		if (memcmp(p, s->rep, s->rep_len))
			return rr_mismatch(t, p, s->rep_len);
		if (now >= r->t_start && now < r->t_end) {
			hist_add(&t->hist, now - c->sent[c->head]);
			t->done++;
		}
		c->head = (c->head + 1) % r->depth;
		c->inflight--;
	}
	c->have -= nrep * s->rep_len;
	memmove(c->in, c->in + nrep * s->rep_len, c->have);
	/* A reply that is only partly here must start right too: a server
	 * that answers something shorter (an error) would otherwise stall
	 * the connection unnoticed. */
	if (memcmp(c->in, s->rep, c->have))
		return rr_mismatch(t, c->in, c->have);
	if (now < r->t_end && nrep) {
		rr_queue(r, c, (unsigned)nrep, now);
		return rr_flush(t, c);
	}
	return 0;
}

static int rr_setup(struct rr_thread *t)
{
	struct rr_run *r = t->run;
	size_t cap = (size_t)r->depth * r->spec->rep_len;

	if ((t->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		rr_fail(t, "epoll_create1: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < t->nconn; i++) {
		struct rr_conn *c = &t->conns[i];
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		int fd = net_connect(&r->addr);

		if (fd < 0) {
			rr_fail(t, "connect: %s", strerror(-fd));
			return -1;
		}
		c->fd = fd;
		if (!(c->sent = calloc(r->depth, sizeof(*c->sent))) ||
		    !(c->in = malloc(cap))) {
			rr_fail(t, "out of memory");
			return -1;
		}
		if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			rr_fail(t, "epoll_ctl: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void *rr_main(void *arg)
{
	struct rr_thread *t = arg;
	struct rr_run *r = t->run;
	struct epoll_event evs[256];
	uint64_t now;

	rr_setup(t);
	pthread_barrier_wait(&r->bar); /* connected (or failed) */
	pthread_barrier_wait(&r->bar); /* go: the window is set */
	if (__atomic_load_n(&r->failed, __ATOMIC_RELAXED))
		return NULL;
	now = now_ns();
	for (int i = 0; i < t->nconn; i++) {
		rr_queue(r, &t->conns[i], r->depth, now);
		if (rr_flush(t, &t->conns[i]))
			return NULL;
	}
	while ((now = now_ns()) < r->t_end &&
	       !__atomic_load_n(&r->failed, __ATOMIC_RELAXED)) {
		/* Wake at least every 100 ms to see the end or a failure. */
		uint64_t left_ms = (r->t_end - now) / 1000000 + 1;
		int n = epoll_wait(t->ep, evs, 256,
				   left_ms < 100 ? (int)left_ms : 100);

		if (n < 0 && errno != EINTR) {
			rr_fail(t, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct rr_conn *c = evs[i].data.ptr;

			if ((evs[i].events & EPOLLOUT) && rr_flush(t, c))
				return NULL;
			if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
			    rr_read(t, c))
				return NULL;
		}
	}
	return NULL;
}

static void rr_free(struct rr_run *r)
{
	for (int k = 0; k < r->nthreads; k++) {
		struct rr_thread *t = &r->threads[k];

		for (int i = 0; i < t->nconn; i++) {
			if (t->conns[i].fd >= 0)
				close(t->conns[i].fd);
			free(t->conns[i].sent);
			free(t->conns[i].in);
		}
		free(t->conns);
		if (t->ep >= 0)
			close(t->ep);
	}
	free(r->threads);
}

/* One run: returns its result, or exits with the first thread's error. */
static struct net_result rr_once(const struct rr_spec *s,
				 const struct opts *o, const char *stream)
{
	struct rr_run r = {.spec = s, .depth = (unsigned)o->pipeline,
			   .stream = stream, .nthreads = o->threads};
	struct net_result res = {0};
	struct hist *all;
	long long done = 0;
	int err;

	if (net_addr_parse(o->server, &r.addr))
		exit(1);
	if (r.nthreads > o->connections)
		r.nthreads = (int)o->connections;
	if (!(r.threads = aligned_alloc(64, sizeof(*r.threads) *
					    (size_t)r.nthreads)) ||
	    !(all = calloc(1, sizeof(*all))))
		die("out of memory");
	memset(r.threads, 0, sizeof(*r.threads) * (size_t)r.nthreads);
	pthread_barrier_init(&r.bar, NULL, (unsigned)r.nthreads + 1);
	for (int k = 0; k < r.nthreads; k++) {
		struct rr_thread *t = &r.threads[k];

		t->run = &r;
		t->ep = -1;
		t->nconn = (int)(o->connections / r.nthreads +
				 (k < o->connections % r.nthreads));
		if (!(t->conns = calloc((size_t)t->nconn, sizeof(*t->conns))))
			die("out of memory");
		for (int i = 0; i < t->nconn; i++)
			t->conns[i].fd = -1;
		if ((err = pthread_create(&t->th, NULL, rr_main, t)))
			die("pthread_create: %s", strerror(err));
	}
	pthread_barrier_wait(&r.bar);
	r.t_start = now_ns() + (uint64_t)(o->warmup * 1e9);
	r.t_end = r.t_start + (uint64_t)(o->duration * 1e9);
	pthread_barrier_wait(&r.bar);
	for (int k = 0; k < r.nthreads; k++) {
		pthread_join(r.threads[k].th, NULL);
		if (r.threads[k].err[0])
			die("%s %s: %s", s->what, o->server,
			    r.threads[k].err);
		hist_merge(all, &r.threads[k].hist);
		done += r.threads[k].done;
	}
	pthread_barrier_destroy(&r.bar);
	rr_free(&r);
	if (done == 0)
		die("%s %s: no reply in the %.1f s measured", s->what,
		    o->server, o->duration);
	res.count = done;
	res.rate = (double)done / o->duration;
	net_result_hist(&res, all);
	free(all);
	return res;
}

static int rr_command(const struct rr_spec *s, const struct opts *o)
{
	struct net_result runs[MAX_REPS], m;
	struct net_addr check;
	struct json j;
	char *stream;

	/* A bad address should fail before anything is printed. */
	if (net_addr_parse(o->server, &check))
		return 1;
	if (o->json && json_open(&j, o->json, s->what))
		return 1;
	if (!(stream = malloc(s->req_len * (size_t)(o->pipeline + 1))))
		die("out of memory");
	for (long long i = 0; i <= o->pipeline; i++)
		memcpy(stream + (size_t)i * s->req_len, s->req, s->req_len);

	printf("%s %s (%s): C=%lld P=%lld", s->what, o->server, o->label,
	       o->connections, o->pipeline);
	if (!strcmp(s->what, "echo"))
		printf(" size=%lld", o->size);
	printf(" threads=%d, %.1f s after %.1f s warm-up, %d run%s\n",
	       o->threads, o->duration, o->warmup, o->reps,
	       o->reps > 1 ? "s" : "");
	fflush(stdout);
	for (int i = 0; i < o->reps; i++)
		runs[i] = rr_once(s, o, stream);
	m = net_summarize("requests/s", runs, o->reps);
	free(stream);
	if (o->json) {
		json_obj_begin(&j);
		net_json_common(&j, o);
		json_int(&j, "connections", o->connections);
		json_int(&j, "pipeline", o->pipeline);
		if (!strcmp(s->what, "echo"))
			json_int(&j, "size", o->size);
		net_json_result(&j, "requests_per_s", &m);
		json_obj_end(&j);
		if (json_close(&j))
			return 1;
	}
	return 0;
}

int cmd_ping(const struct opts *o)
{
	/* The multi-bulk form that redis-benchmark sends. */
	static char req[] = "*1\r\n$4\r\nPING\r\n", rep[] = "+PONG\r\n";
	const struct rr_spec s = {.what = "ping", .req = req, .rep = rep,
				  .req_len = sizeof(req) - 1,
				  .rep_len = sizeof(rep) - 1};

	return rr_command(&s, o);
}

int cmd_echo(const struct opts *o)
{
	struct rr_spec s = {.what = "echo"};
	uint32_t n = htonl((uint32_t)o->size);
	int rc;

	/* A frame echoes as itself; a varied payload catches a server that
	 * mixes up bytes. */
	s.req_len = s.rep_len = 4 + (size_t)o->size;
	if (!(s.req = malloc(s.req_len)))
		die("out of memory");
	memcpy(s.req, &n, 4);
	for (size_t i = 4; i < s.req_len; i++)
		s.req[i] = (char)('a' + i % 26);
	s.rep = s.req;
	rc = rr_command(&s, o);
	free(s.req);
	return rc;
}
