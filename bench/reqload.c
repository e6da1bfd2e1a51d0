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
 * With --pid, the main thread reads the server's CPU time as the window
 * opens and closes; over the replies completed in it, that is the server's
 * CPU per request.
 *
 * With --tls every connection completes its handshake before the first
 * request (net_tls_handshake_all), and the bytes and latencies are the
 * same requests and replies, over TLS.
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
#include <stdlib.h>
#include <string.h>

/* What one subcommand sends and expects. */
struct rr_spec {
	const char *what;   /* "ping", "echo" */
	char *req, *rep;    /* one request; the exact reply to it */
	size_t req_len, rep_len;
};

struct rr_conn {
	struct net_conn nc;
	size_t owe;          /* bytes queued, not yet written */
	size_t off;          /* where in the request the next byte is */
	uint64_t *sent;      /* ring of P queue times, oldest at head */
	unsigned head, inflight;
	char *in;            /* at most P replies: all that can be owed */
	size_t have;
};

/* The threads are plain net_threads: counted is replies completed in the
 * window. */
struct rr_run {
	struct net_run nr;
	const struct rr_spec *spec;
	unsigned depth;          /* P */
	const char *stream;      /* P + 1 copies of the request */
};

static struct rr_run *rr_run_of(const struct net_thread *t)
{
	return (struct rr_run *)t->run;
}

/* Queues k requests sent at time now. */
static void rr_queue(struct rr_run *r, struct rr_conn *c, unsigned k,
		     uint64_t now)
{
	for (unsigned i = 0; i < k; i++)
		c->sent[(c->head + c->inflight++) % r->depth] = now;
	c->owe += (size_t)k * r->spec->req_len;
}

/* Writes what c owes, as far as the socket takes it. */
static int rr_flush(struct net_thread *t, struct net_conn *nc)
{
	struct rr_conn *c = (struct rr_conn *)nc;
	struct rr_run *r = rr_run_of(t);
	/* off < req_len and owe <= P * req_len: the bytes are contiguous in
	 * the P + 1 copies. */
	ssize_t w = net_send(t, nc, r->stream + c->off, c->owe);

	if (w < 0)
		return -1;
	c->owe -= (size_t)w;
	c->off = (c->off + (size_t)w) % r->spec->req_len;
	return 0;
}

/* Reports the bytes at p, which are not the reply they should be. */
static int rr_mismatch(struct net_thread *t, const char *p, size_t n)
{
	char shown[41];
	size_t k;

	for (k = 0; k < n && k < 40; k++)
		shown[k] = p[k] >= 0x20 && p[k] < 0x7f ? p[k] : '.';
	shown[k] = '\0';
	net_fail(t, "unexpected reply \"%s\"", shown);
	return -1;
}

static int rr_read(struct net_thread *t, struct net_conn *nc)
{
	struct rr_conn *c = (struct rr_conn *)nc;
	struct rr_run *r = rr_run_of(t);
	const struct rr_spec *s = r->spec;
	size_t cap = (size_t)r->depth * s->rep_len, nrep, i;
	ssize_t n;
	uint64_t now;

	if ((n = net_recv(t, nc, c->in + c->have, cap - c->have,
			  "connection")) <= 0)
		return (int)n;
	now = now_ns();
	c->have += (size_t)n;
	nrep = c->have / s->rep_len;
	for (i = 0; i < nrep; i++) {
		const char *p = c->in + i * s->rep_len;

		if (memcmp(p, s->rep, s->rep_len))
			return rr_mismatch(t, p, s->rep_len);
		if (net_in_window(&r->nr, now)) {
			hist_add(&t->hist, now - c->sent[c->head]);
			t->counted++;
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
	if (now < r->nr.t_end && nrep) {
		rr_queue(r, c, (unsigned)nrep, now);
		return rr_flush(t, nc);
	}
	return 0;
}

static int rr_setup(struct net_thread *t)
{
	struct rr_run *r = rr_run_of(t);
	size_t cap = (size_t)r->depth * r->spec->rep_len;

	if (net_thread_open(t, 0))
		return -1;
	for (int i = 0; i < t->nconn; i++) {
		struct rr_conn *c = (struct rr_conn *)net_conn_at(t, i);

		if (net_conn_open(t, &c->nc))
			return -1;
		if (!(c->sent = calloc(r->depth, sizeof(*c->sent))) ||
		    !(c->in = malloc(cap))) {
			net_fail(t, "out of memory");
			return -1;
		}
	}
	return net_tls_handshake_all(t);
}

static void *rr_main(void *arg)
{
	static const struct net_ops ops = {.writable = rr_flush,
					   .readable = rr_read};
	struct net_thread *t = arg;
	struct rr_run *r = rr_run_of(t);
	uint64_t now;

	rr_setup(t);
	pthread_barrier_wait(&r->nr.bar); /* connected (or failed) */
	pthread_barrier_wait(&r->nr.bar); /* go: the window is set */
	if (net_failed(&r->nr))
		return NULL;
	now = now_ns();
	for (int i = 0; i < t->nconn; i++) {
		struct rr_conn *c = (struct rr_conn *)net_conn_at(t, i);

		rr_queue(r, c, r->depth, now);
		if (rr_flush(t, &c->nc))
			return NULL;
	}
	while ((now = now_ns()) < r->nr.t_end && !net_failed(&r->nr)) {
		/* Wake at least every 100 ms to see the end or a failure. */
		uint64_t left_ms = (r->nr.t_end - now) / 1000000 + 1;

		if (net_poll(t, left_ms < 100 ? (int)left_ms : 100, &ops))
			break;
	}
	return NULL;
}

static void rr_conn_free(struct net_conn *nc)
{
	struct rr_conn *c = (struct rr_conn *)nc;

	free(c->sent);
	free(c->in);
}

/* One run: returns its result, or exits with the first thread's error. */
static struct net_result rr_once(const struct rr_spec *s,
				 const struct opts *o, const char *stream)
{
	struct rr_run r = {.spec = s, .depth = (unsigned)o->pipeline,
			   .stream = stream};
	struct net_result res;

	net_run_init(&r.nr, o, o->connections, sizeof(struct net_thread),
		     sizeof(struct rr_conn));
	net_run_start(&r.nr, rr_main);
	net_run_window(&r.nr, o);
	pthread_barrier_wait(&r.nr.bar); /* go */
	net_run_wait(&r.nr);
	net_run_join(&r.nr, s->what, o);
	res = net_run_result(&r.nr, s->what, "reply", o);
	net_run_free(&r.nr, rr_conn_free);
	return res;
}

static int rr_command(const struct rr_spec *s, const struct opts *o)
{
	struct net_result runs[MAX_REPS], m;
	struct net_addr check;
	struct json j;
	char *stream;

	/* A bad address should fail before anything is printed. */
	if (net_addr_parse(o->server, &check) || net_check_pid(o, s->what))
		return 1;
	if (o->json && json_open(&j, o->json, s->what))
		return 1;
	if (!(stream = malloc(s->req_len * (size_t)(o->pipeline + 1))))
		die("out of memory");
	for (long long i = 0; i <= o->pipeline; i++)
		memcpy(stream + (size_t)i * s->req_len, s->req, s->req_len);

	printf("%s %s (%s)%s: C=%lld P=%lld", s->what, o->server, o->label,
	       o->tls ? " over TLS" : "", o->connections, o->pipeline);
	if (!strcmp(s->what, "echo"))
		printf(" size=%lld", o->size);
	printf(" threads=%d, %.1f s after %.1f s warm-up, %d run%s\n",
	       o->threads, o->duration, o->warmup, o->reps,
	       o->reps > 1 ? "s" : "");
	fflush(stdout);
	for (int i = 0; i < o->reps; i++)
		runs[i] = rr_once(s, o, stream);
	m = net_summarize("requests/s", runs, o->reps);
	net_cpu_note(o, "reply");
	net_tls_note(o, &m);
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
