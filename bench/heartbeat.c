/*
 * heartbeat.c: the `heartbeat` subcommand, a server's CPU per heartbeat
 * round trip.
 *
 * Here the server speaks first. Started with a heartbeat of MS ms
 * (actorconn-echo --framing len32 --heartbeat MS, or the raw epoll floor,
 * epoll-echo --heartbeat MS), it writes the len32 frame "PING" on each
 * connection every MS ms. This opens C connections to it, spread
 * round-robin over T client threads with their epoll sets (as reqload.c),
 * and answers every PING with the len32 frame "PONG". Both servers echo
 * that PONG, as they echo every frame, and the echoes are read and
 * dropped; any other frame is an error. Per round trip the server then
 * writes a PING, reads a PONG and writes its echo, and wakes up for them
 * and for its timers.
 *
 * The connections open evenly over one period (over 1 s if the period is
 * longer), so that the PINGs come evenly, C * 1000 / MS a second, as to a
 * server whose clients come and go, rather than in one burst a period.
 * The warm-up starts when the last one is open.
 *
 * A round trip counts when its PING is read in the measured window: the
 * rate is those over the window's length, and with --pid the server's CPU
 * time in the window over them is its CPU per round trip. A rate below
 * the expected C * 1000 / MS means heartbeats were late or missing; choose
 * a --duration that is a whole number of periods, so that every
 * connection gets as many PINGs in the window.
 *
 * Connections close with a reset (SO_LINGER 0), as idle's do: thousands
 * of sockets in TIME_WAIT a run would use up the loopback's ephemeral
 * ports over a few runs.
 */
#include "netload.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define HB_FRAME 8             /* "\0\0\0\4" and four letters */
#define HB_OWE_MAX 64          /* PONGs owed to one connection, at most */
#define HB_SPREAD_MAX_MS 1000  /* the connections open over this at most */
/* Below the 20,000 descriptors a process may hold here, with room for a
 * few of its own. */
#define HB_MAX_CONNS 19000

static const char ping[HB_FRAME] = {0, 0, 0, 4, 'P', 'I', 'N', 'G'};
static const char pong[HB_FRAME] = {0, 0, 0, 4, 'P', 'O', 'N', 'G'};

struct hb_conn {
	struct net_conn nc;
	size_t owe;           /* PONG bytes owed, not yet written */
	size_t off;           /* where in a PONG the next byte is */
	size_t have;          /* bytes in in[] */
	char in[16 * HB_FRAME];
};

/* The threads are plain net_threads: counted is PINGs read in the
 * window. */
struct hb_run {
	struct net_run nr;
	unsigned interval_ms;  /* the server's heartbeat period */
	const char *stream;    /* HB_OWE_MAX + 1 PONGs */
};

static struct hb_run *hb_run_of(const struct net_thread *t)
{
	return (struct hb_run *)t->run;
}

/* Writes what c owes, as far as the socket takes it. */
static int hb_flush(struct net_thread *t, struct net_conn *nc)
{
	struct hb_conn *c = (struct hb_conn *)nc;
	/* off < HB_FRAME and owe <= HB_OWE_MAX * HB_FRAME: the bytes are
	 * contiguous in the HB_OWE_MAX + 1 PONGs. */
	ssize_t w = net_send(t, nc, hb_run_of(t)->stream + c->off, c->owe);

	if (w < 0)
		return -1;
	c->owe -= (size_t)w;
	c->off = (c->off + (size_t)w) % HB_FRAME;
	return 0;
}

/* Reports the bytes at p, which are no frame that the server may send. */
static int hb_unexpected(struct net_thread *t, const char *p, size_t n)
{
	char shown[4 * HB_FRAME + 1];
	size_t k, m = 0;

	for (k = 0; k < n && k < HB_FRAME; k++) {
		unsigned char ch = (unsigned char)p[k];

		if (ch >= 0x20 && ch < 0x7f)
			shown[m++] = (char)ch;
		else
			m += (size_t)snprintf(shown + m, sizeof(shown) - m,
					      "\\%o", ch);
	}
	shown[m] = '\0';
	net_fail(t, "unexpected frame \"%s\" (not PING, nor PONG echoed)",
		 shown);
	return -1;
}

/* Reads once: every PING is answered and counted, every PONG (an echo
 * of ours) dropped. */
static int hb_read(struct net_thread *t, struct net_conn *nc)
{
	struct hb_conn *c = (struct hb_conn *)nc;
	struct hb_run *r = hb_run_of(t);
	size_t nframes, pings = 0, i;
	ssize_t n;
	uint64_t now;

	if ((n = net_recv(t, nc, c->in + c->have, sizeof(c->in) - c->have,
			  "connection")) <= 0)
		return (int)n;
	now = now_ns();
	c->have += (size_t)n;
	nframes = c->have / HB_FRAME;
	for (i = 0; i < nframes; i++) {
		const char *p = c->in + i * HB_FRAME;

		if (!memcmp(p, ping, HB_FRAME))
			pings++;
		else if (memcmp(p, pong, HB_FRAME))
			return hb_unexpected(t, p, HB_FRAME);
	}
	c->have -= nframes * HB_FRAME;
	memmove(c->in, c->in + nframes * HB_FRAME, c->have);
	/* A frame that is only partly here must start as PING and PONG
	 * both do: a server that sends something else would otherwise
	 * stall the connection unnoticed. */
	if (memcmp(c->in, ping, c->have < 5 ? c->have : 5))
		return hb_unexpected(t, c->in, c->have);
	if (!pings)
		return 0;
	if (net_in_window(&r->nr, now))
		t->counted += (long long)pings;
	if (c->owe + pings * HB_FRAME > HB_OWE_MAX * HB_FRAME) {
		net_fail(t, "over %d PONGs the server does not take", HB_OWE_MAX);
		return -1;
	}
	c->owe += pings * HB_FRAME;
	return hb_flush(t, nc);
}

/* Opens t's connections evenly over the spread (see the top). */
static int hb_setup(struct net_thread *t)
{
	const struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct hb_run *r = hb_run_of(t);
	unsigned spread_ms = r->interval_ms < HB_SPREAD_MAX_MS
				     ? r->interval_ms
				     : HB_SPREAD_MAX_MS;
	uint64_t t0 = now_ns(), step;

	if (net_thread_open(t, 0))
		return -1;
	step = (uint64_t)spread_ms * 1000000 / (uint64_t)t->nconn;
	for (int i = 0; i < t->nconn; i++) {
		struct hb_conn *c = (struct hb_conn *)net_conn_at(t, i);
		uint64_t at = t0 + (uint64_t)i * step, now = now_ns();

		if (at > now) {
			struct timespec ts = {
				.tv_sec = (time_t)((at - now) / 1000000000),
				.tv_nsec = (long)((at - now) % 1000000000)};

			nanosleep(&ts, NULL);
		}
		if (net_conn_open(t, &c->nc))
			return -1;
		if (setsockopt(c->nc.fd, SOL_SOCKET, SO_LINGER, &lg,
			       sizeof(lg)) < 0) {
			net_fail(t, "SO_LINGER: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void *hb_main(void *arg)
{
	static const struct net_ops ops = {.writable = hb_flush,
					   .readable = hb_read};
	struct net_thread *t = arg;
	struct hb_run *r = hb_run_of(t);
	uint64_t now;

	hb_setup(t);
	pthread_barrier_wait(&r->nr.bar); /* connected (or failed) */
	pthread_barrier_wait(&r->nr.bar); /* the window is set */
	while ((now = now_ns()) < r->nr.t_end && !net_failed(&r->nr)) {
		/* Wake at least every 100 ms to see the end or a failure. */
		uint64_t left_ms = (r->nr.t_end - now) / 1000000 + 1;

		if (net_poll(t, left_ms < 100 ? (int)left_ms : 100, &ops))
			break;
	}
	return NULL;
}

/* One run: returns its result, or exits with the first thread's error. */
static struct net_result hb_once(const struct opts *o, const char *stream)
{
	struct hb_run r = {.interval_ms = (unsigned)o->heartbeat,
			   .stream = stream};
	struct net_result res;

	net_run_init(&r.nr, o, o->connections, sizeof(struct net_thread),
		     sizeof(struct hb_conn));
	net_run_start(&r.nr, hb_main);
	net_run_window(&r.nr, o);
	pthread_barrier_wait(&r.nr.bar); /* go */
	net_run_wait(&r.nr);
	net_run_join(&r.nr, "heartbeat", o);
	res = net_run_result(&r.nr, "heartbeat", "round trip", o);
	net_run_free(&r.nr, NULL);
	return res;
}

/* One row of the table: a run's figures, or their medians. */
static void hb_row(const struct col *cols, const char *name,
		   const struct net_result *r, double expected)
{
	char b[4][32];
	const char *cells[5] = {name, b[0], b[1], b[2], b[3]};

	snprintf(b[0], sizeof(b[0]), "%.1f", r->rate);
	snprintf(b[1], sizeof(b[1]), "%.1f", expected);
	fmt_us(b[2], sizeof(b[2]), r->cpu_us);
	snprintf(b[3], sizeof(b[3]), "%lld", r->count);
	table_row(cols, 5, cells);
}

/* Room for C connections and a few descriptors more, if the hard limit
 * allows; if not, the connect that runs out says so. */
static void hb_rlimit(long long nconn)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)nconn + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int cmd_heartbeat(const struct opts *o)
{
	static const struct col cols[5] = {
		{"run", 8}, {"round trips/s", 15}, {"expected/s", 12},
		{"srv CPU us/rt", 15}, {"measured", 0}};
	struct net_result runs[MAX_REPS], m;
	double v[4][MAX_REPS], expected;
	char stream[(HB_OWE_MAX + 1) * HB_FRAME], name[16];
	struct net_addr check;
	struct json j;

	/* A bad address should fail before anything is printed. */
	if (net_addr_parse(o->server, &check) || net_check_pid(o, "heartbeat"))
		return 1;
	if (o->connections > HB_MAX_CONNS) {
		fprintf(stderr, PROG " heartbeat: at most %d connections (one "
				"process holds them all)\n",
			HB_MAX_CONNS);
		return 1;
	}
	hb_rlimit(o->connections);
	if (o->json && json_open(&j, o->json, "heartbeat"))
		return 1;
	for (int i = 0; i <= HB_OWE_MAX; i++)
		memcpy(stream + i * HB_FRAME, pong, HB_FRAME);
	expected = (double)o->connections * 1000 / (double)o->heartbeat;

	printf("heartbeat %s (%s): C=%lld every %lld ms (%.1f round trips/s "
	       "expected) threads=%d, %.1f s after %.1f s warm-up, %d run%s\n",
	       o->server, o->label, o->connections, o->heartbeat, expected,
	       o->threads, o->duration, o->warmup, o->reps,
	       o->reps > 1 ? "s" : "");
	fflush(stdout);
	table_header(cols, 5);
	for (int i = 0; i < o->reps; i++) {
		runs[i] = hb_once(o, stream);
		snprintf(name, sizeof(name), "%d", i + 1);
		hb_row(cols, name, &runs[i], expected);
		fflush(stdout);
		v[0][i] = runs[i].rate;
		v[1][i] = runs[i].cpu_us;
		v[2][i] = runs[i].cpu_ms;
		v[3][i] = (double)runs[i].count;
	}
	m = runs[0];
	m.rate = median(v[0], o->reps);
	if (o->pid) {
		m.cpu_us = median(v[1], o->reps);
		m.cpu_ms = median(v[2], o->reps);
	}
	m.count = (long long)median(v[3], o->reps);
	if (o->reps > 1)
		hb_row(cols, "median", &m, expected);
	printf("a round trip: the server's PING read here in the window, "
	       "answered with a PONG that the server echoes\n");
	net_cpu_note(o, "round trip");
	if (o->json) {
		json_obj_begin(&j);
		net_json_common(&j, o);
		json_int(&j, "connections", o->connections);
		json_int(&j, "interval_ms", o->heartbeat);
		json_num(&j, "expected_per_s", expected, 1);
		json_num(&j, "round_trips_per_s", m.rate, 1);
		json_int(&j, "measured", m.count);
		if (o->pid) {
			json_num(&j, "server_cpu_ms", m.cpu_ms, 0);
			json_num(&j, "server_cpu_us_per_op", m.cpu_us, 4);
		}
		json_obj_end(&j);
		if (json_close(&j))
			return 1;
	}
	return 0;
}
