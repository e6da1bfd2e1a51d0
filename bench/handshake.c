/*
 * handshake.c: the `handshake` subcommand, new TLS connections per second,
 * each with a full handshake or a resumed one. Built with OpenSSL only.
 *
 * C connections, spread round-robin over T client threads (each with its
 * epoll set, as reqload.c), in a closed loop: a connection opens (a
 * blocking connect(), at once on loopback), completes its TLS handshake,
 * sends one RESP PING and reads the +PONG, then closes and a new one takes
 * its place at once. The PING makes sure that the server has finished its
 * side of the handshake (read the client's Finished) and serves the
 * connection; under TLS 1.3 the server's session tickets come before the
 * +PONG, so the client has them by then.
 *
 * A connection closes with a reset (SO_LINGER 0) and without close_notify,
 * as idle's do: tens of thousands of connections a run would otherwise
 * leave as many sockets in TIME_WAIT and use up the loopback's ephemeral
 * ports.
 *
 * --resume no: every handshake is a full one (no session offered).
 * --resume yes: each thread first makes one connection with a full
 * handshake, before the run, and keeps its SSL_SESSION, which holds the
 * last ticket the server issued on it; every connection of the run offers
 * that session, and one that the server does not resume is an error. The
 * same ticket goes out every time: servers with stateless tickets
 * (OpenSSL's default, which actorconn-broker and redis-server keep) take
 * it until it expires. Under TLS 1.3 a resumed handshake still makes a
 * fresh (EC)DHE exchange (psk_dhe_ke, OpenSSL's default) but sends and
 * verifies no certificate.
 *
 * The rate is connections completed (+PONG read) in the measured window
 * over its length; a latency runs from before connect() to the read that
 * completed the +PONG; with --pid, the server's CPU time in the window
 * over those connections is its CPU per connection accepted, handshaken,
 * answered once and closed.
 */
#include "netload.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#define HS_SEED_S 10 /* bound on a thread's first (seeding) connection */

static const char ping[] = "*1\r\n$4\r\nPING\r\n";
static const char pong[] = "+PONG\r\n";
#define PING_LEN (sizeof(ping) - 1)
#define PONG_LEN (sizeof(pong) - 1)

enum hs_state { HS_SHAKE, HS_PING, HS_PONG };

struct hs_conn {
	struct net_conn nc;
	enum hs_state state;
	uint64_t t0;    /* before connect() */
	size_t done;    /* HS_PING: bytes sent; HS_PONG: bytes read */
	char in[PONG_LEN];
};

/* counted: connections completed in the window. */
struct hs_thread {
	struct net_thread nt;
	SSL_SESSION *sess; /* --resume yes: the session offered */
} __attribute__((aligned(64)));

struct hs_run {
	struct net_run nr;
	int resume;
};

static struct hs_run *hs_run_of(const struct net_thread *t)
{
	return (struct hs_run *)t->run;
}

static void hs_close(struct hs_conn *c)
{
	/* SSL_free of a connection that sent no close_notify marks its
	 * session not resumable: the seeding connection's session, which
	 * the others share, among them. The reset that follows is as
	 * intended, so say that the shutdown was sent. */
	SSL_set_shutdown(c->nc.ssl, SSL_SENT_SHUTDOWN);
	net_tls_free(c->nc.ssl);
	close(c->nc.fd); /* which takes it out of the epoll set */
	c->nc.ssl = NULL;
	c->nc.fd = -1;
	c->nc.out_armed = 0;
	c->nc.tls_more = 0;
}

static int hs_step(struct net_thread *nt, struct net_conn *ncp);

/* Opens c and starts its handshake (the ClientHello goes out). */
static int hs_open(struct hs_thread *t, struct hs_conn *c)
{
	static const struct linger lg = {.l_onoff = 1, .l_linger = 0};

	c->t0 = now_ns();
	c->state = HS_SHAKE;
	c->done = 0;
	if (net_conn_open(&t->nt, &c->nc))
		return -1;
	if (setsockopt(c->nc.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
		net_fail(&t->nt, "SO_LINGER: %s", strerror(errno));
		return -1;
	}
	if (t->sess && !SSL_set_session(c->nc.ssl, t->sess)) {
		net_fail(&t->nt, "SSL_set_session failed");
		return -1;
	}
	return hs_step(&t->nt, &c->nc);
}

/* The +PONG is in: the connection is done. */
static int hs_done(struct hs_thread *t, struct hs_conn *c, uint64_t now)
{
	struct hs_run *r = hs_run_of(&t->nt);

	if (r->resume && !t->sess) {
		/* The seeding connection: keep its session, count nothing. */
		t->sess = SSL_get1_session(c->nc.ssl);
		if (!t->sess || !SSL_SESSION_is_resumable(t->sess)) {
			net_fail(&t->nt, "the server issued no session ticket "
				 "to resume");
			return -1;
		}
		hs_close(c);
		return 0;
	}
	if (net_in_window(&r->nr, now)) {
		hist_add(&t->nt.hist, now - c->t0);
		t->nt.counted++;
	}
	hs_close(c);
	return now < r->nr.t_end ? hs_open(t, c) : 0;
}

/* Whatever c waits for may have come: go as far as it can. */
static int hs_step(struct net_thread *nt, struct net_conn *ncp)
{
	struct hs_thread *t = (struct hs_thread *)nt;
	struct hs_conn *c = (struct hs_conn *)ncp;
	ssize_t n;
	int s;

	if (c->nc.fd < 0) /* an event for a connection closed since */
		return 0;
	switch (c->state) {
	case HS_SHAKE:
		if ((s = net_tls_step(nt, ncp)) <= 0)
			return s;
		if (t->sess && !SSL_session_reused(c->nc.ssl)) {
			net_fail(nt, "the server did not resume the session: "
				 "a full handshake");
			return -1;
		}
		c->state = HS_PING;
		/* fall through */
	case HS_PING:
		if ((n = net_send(nt, ncp, ping + c->done,
				  PING_LEN - c->done)) < 0)
			return -1;
		if ((c->done += (size_t)n) < PING_LEN)
			return 0; /* EPOLLOUT is armed */
		c->state = HS_PONG;
		c->done = 0;
		return 0;
	case HS_PONG:
		if ((n = net_recv(nt, ncp, c->in + c->done, PONG_LEN - c->done,
				  "connection")) <= 0)
			return (int)n;
		c->done += (size_t)n;
		if (memcmp(c->in, pong, c->done)) {
			net_fail(nt, "unexpected reply \"%.*s\"", (int)c->done,
				 c->in);
			return -1;
		}
		return c->done < PONG_LEN ? 0 : hs_done(t, c, now_ns());
	}
	return 0;
}

static const struct net_ops hs_ops = {.writable = hs_step,
				      .readable = hs_step};

/* --resume yes: one connection with a full handshake, for its session. */
static int hs_seed(struct hs_thread *t)
{
	uint64_t deadline = now_ns() + HS_SEED_S * 1000000000ull;
	struct hs_conn *c = (struct hs_conn *)net_conn_at(&t->nt, 0);

	if (hs_open(t, c))
		return -1;
	while (!t->sess) {
		if (net_poll(&t->nt, 100, &hs_ops))
			return -1;
		if (now_ns() > deadline) {
			net_fail(&t->nt, "no session from a first connection "
				 "within %d s", HS_SEED_S);
			return -1;
		}
	}
	return 0;
}

static void *hs_main(void *arg)
{
	struct hs_thread *t = arg;
	struct hs_run *r = hs_run_of(&t->nt);
	uint64_t now;

	if (!net_thread_open(&t->nt, 0) && r->resume)
		hs_seed(t);
	pthread_barrier_wait(&r->nr.bar); /* ready (or failed) */
	pthread_barrier_wait(&r->nr.bar); /* go: the window is set */
	if (net_failed(&r->nr))
		return NULL;
	for (int i = 0; i < t->nt.nconn; i++)
		if (hs_open(t, (struct hs_conn *)net_conn_at(&t->nt, i)))
			return NULL;
	while ((now = now_ns()) < r->nr.t_end && !net_failed(&r->nr)) {
		uint64_t left_ms = (r->nr.t_end - now) / 1000000 + 1;

		if (net_poll(&t->nt, left_ms < 100 ? (int)left_ms : 100,
			     &hs_ops))
			break;
	}
	return NULL;
}

static struct net_result hs_once(const struct opts *o)
{
	struct hs_run r = {.resume = o->resume};
	struct net_result res;

	net_run_init(&r.nr, o, o->connections, sizeof(struct hs_thread),
		     sizeof(struct hs_conn));
	net_run_start(&r.nr, hs_main);
	net_run_window(&r.nr, o);
	pthread_barrier_wait(&r.nr.bar); /* go */
	net_run_wait(&r.nr);
	net_run_join(&r.nr, "handshake", o);
	res = net_run_result(&r.nr, "handshake", "connection", o);
	for (int k = 0; k < r.nr.nthreads; k++)
		SSL_SESSION_free(((struct hs_thread *)r.nr.threads[k])->sess);
	net_run_free(&r.nr, NULL);
	return res;
}

int cmd_handshake(const struct opts *o)
{
	struct net_result runs[MAX_REPS], m;
	struct net_addr check;
	struct json j;

	if (net_addr_parse(o->server, &check) || net_check_pid(o, "handshake"))
		return 1;
	if (o->json && json_open(&j, o->json, "handshake"))
		return 1;
	printf("handshake %s (%s): C=%lld %s handshakes, threads=%d, %.1f s "
	       "after %.1f s warm-up, %d run%s\n",
	       o->server, o->label, o->connections,
	       o->resume ? "resumed" : "full", o->threads, o->duration,
	       o->warmup, o->reps, o->reps > 1 ? "s" : "");
	fflush(stdout);
	for (int i = 0; i < o->reps; i++)
		runs[i] = hs_once(o);
	m = net_summarize("handshakes/s", runs, o->reps);
	printf("a handshake: connect(), TLS handshake (%s), PING, +PONG, "
	       "close with a reset; latency: connect() to +PONG\n",
	       o->resume ? "resuming one session" : "full");
	net_cpu_note(o, "connection");
	net_tls_note(o, &m);
	if (o->json) {
		json_obj_begin(&j);
		net_json_common(&j, o);
		json_int(&j, "connections", o->connections);
		json_str(&j, "resume", o->resume ? "yes" : "no");
		net_json_result(&j, "handshakes_per_s", &m);
		json_obj_end(&j);
		if (json_close(&j))
			return 1;
	}
	return 0;
}
