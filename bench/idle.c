/*
 * idle.c: the `idle` subcommand, a server's resident memory per idle
 * connection.
 *
 * It reads the server's VmRSS (/proc/PID/status), opens N connections to
 * it from child processes (each holds at most --per-process of them: one
 * process may hold only so many descriptors), makes sure the server really
 * accepted each one, waits for the server's RSS to settle and reads it
 * again. The difference over N is the figure: the server's user-space
 * memory per idle connection. Socket buffers are kernel memory and are not
 * in it, for any server.
 *
 * "Really accepted": each connection sends one request and reads its reply
 * (--probe: RESP PING, memcached's version, a len32 frame) before the next
 * one opens, so the server has accepted it, read from it and answered; the
 * connections then stay idle. With --probe none the connection only opens,
 * and a server that has not yet called accept() is not measured fully.
 *
 * Connections close with SO_LINGER 0 (a reset): 10,000 sockets in
 * TIME_WAIT per run would use up the loopback's ephemeral ports over a
 * few runs.
 *
 * Two more figures come with it. The server's CPU time (/proc/PID/stat)
 * from before the first connection to when every one has been probed,
 * over N: its CPU per connection accepted and answered once. Then the
 * same while the RSS settles, the connections idle: what holding them
 * costs, per second and per 1,000 connections (a server that walks its
 * clients on a timer pays here). And each connection's first round trip,
 * from connect() to the probe's reply, in one histogram that the children
 * share: its p99 shows whether a server answers a new connection later
 * the more it holds.
 *
 * With --tls, each connection completes a TLS handshake before its probe,
 * which goes over TLS; then the child frees its SSL and keeps only the
 * socket, so the server holds a TLS connection that has done one round
 * trip and now idles (a server with SSL_MODE_RELEASE_BUFFERS gives its
 * record buffers back here), and its CPU per connection includes a full
 * handshake.
 */
#include "netload.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define IDLE_READY_S 300   /* bound on opening every connection */
#define IDLE_REPLY_S 10    /* bound on one probe's reply */
#define IDLE_SAMPLE_MS 250 /* RSS sampling period */
#define IDLE_STABLE_MS 2000 /* settled: this long within the tolerance */
#define IDLE_MIN_IDLE_MS 6000 /* and not before the connections idled this
				 long (see settle) */
#define IDLE_SETTLE_S 20   /* bound on settling */
#define IDLE_HOLD_S 600    /* a child exits by itself after this long */

/* ---- a child: open, probe, hold ----------------------------------------------- */

struct probe_def {
	const char *req;
	size_t req_len;
	const char *rep;  /* the reply, or its start when line is set */
	size_t rep_len;
	int line;         /* the reply is a line that starts with rep */
};

static const struct probe_def probes[] = {
	[PROBE_RESP] = {"*1\r\n$4\r\nPING\r\n", 14, "+PONG\r\n", 7, 0},
	[PROBE_MEMCACHE] = {"version\r\n", 9, "VERSION ", 8, 1},
	[PROBE_LEN32] = {"\0\0\0\4ping", 8, "\0\0\0\4ping", 8, 0},
	[PROBE_NONE] = {NULL, 0, NULL, 0, 0},
};

/* Sends the probe on fd, or over ssl if not NULL, and reads its reply; 0
 * or -1 with why in err. */
static int probe(int fd, struct ssl_st *ssl, const struct probe_def *p,
		 char *err, size_t errlen)
{
	char buf[256];
	size_t have = 0;

	if (!p->req)
		return 0;
	if (ssl) {
		if (net_tls_write_all(ssl, p->req, p->req_len, err, errlen))
			return -1;
	} else if (write(fd, p->req, p->req_len) != (ssize_t)p->req_len) {
		snprintf(err, errlen, "write: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t n;

		if (ssl) {
			n = net_tls_read_some(ssl, buf + have,
					      sizeof(buf) - 1 - have, err,
					      errlen);
			if (n < 0)
				return -1;
		} else {
			n = read(fd, buf + have, sizeof(buf) - 1 - have);
		}
		if (n <= 0) {
			snprintf(err, errlen, "reading the probe's reply: %s",
				 n == 0 ? "connection closed"
					: errno == EAGAIN ? "timed out"
							  : strerror(errno));
			return -1;
		}
		have += (size_t)n;
		if (have < p->rep_len)
			continue;
		if (memcmp(buf, p->rep, p->rep_len))
			break;
		if (!p->line)
			return have == p->rep_len ? 0 : -1;
		if (have >= 2 && buf[have - 2] == '\r' && buf[have - 1] == '\n')
			return 0;
		if (have == sizeof(buf) - 1)
			break;
	}
	buf[have < 40 ? have : 40] = '\0';
	snprintf(err, errlen, "unexpected probe reply \"%.40s\"", buf);
	return -1;
}

/* hist_add for a histogram that several processes share (MAP_SHARED):
 * each count is one atomic add. Relaxed: the parent reads the counts only
 * after every child has written its status line to a pipe, and a pipe's
 * write and read order them. */
static void hist_add_shared(struct hist *h, uint64_t ns)
{
	__atomic_fetch_add(&h->b[hist_bucket(ns)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->n, 1, __ATOMIC_RELAXED);
}

/*
 * Opens n connections and probes each, adding each one's first round trip
 * to lat, then tells the parent on status ("ok\n", or a message) and holds
 * them until ctl reaches end of file. With tls, each connection first
 * completes a handshake, and once its probe has its reply the SSL is
 * freed: the socket stays open and idle, and the child holds no TLS state.
 */
static void child(const struct net_addr *a, struct ssl_ctx_st *tls,
		  long long n, const struct probe_def *p, struct hist *lat,
		  int status, int ctl)
{
	const struct linger lg = {.l_onoff = 1, .l_linger = 0};
	const struct timeval tv = {.tv_sec = IDLE_REPLY_S};
	struct rlimit rl;
	struct ssl_st *ssl = NULL;
	char msg[400] = "ok\n", err[300], junk;
	int *fds;

	alarm(IDLE_HOLD_S);
	/* Room for n sockets and a few more. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < (rlim_t)n + 32) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (!(fds = malloc(sizeof(*fds) * (size_t)n))) {
		snprintf(msg, sizeof(msg), "out of memory\n");
		goto report;
	}
	for (long long i = 0; i < n; i++) {
		int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		uint64_t t0 = now_ns();

		if (fd < 0 || connect(fd, (const struct sockaddr *)&a->ss,
				      a->len) < 0) {
			snprintf(msg, sizeof(msg),
				 "connection %lld: %s%s\n", i, strerror(errno),
				 errno == EMFILE ? " (see --per-process)" : "");
			goto report;
		}
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (tls && (!(ssl = net_tls_new(tls, fd, a, err, sizeof(err))) ||
			    net_tls_connect_blocking(ssl, err, sizeof(err)))) {
			snprintf(msg, sizeof(msg), "connection %lld: %s\n", i,
				 err);
			goto report;
		}
		if (probe(fd, ssl, p, err, sizeof(err))) {
			snprintf(msg, sizeof(msg), "connection %lld: %s\n", i,
				 err);
			goto report;
		}
		if (ssl) {
			net_tls_free(ssl);
			ssl = NULL;
		}
		if (p->req)
			hist_add_shared(lat, now_ns() - t0);
		fds[i] = fd;
	}
report:
	if (write(status, msg, strlen(msg)) < 0)
		_exit(1);
	/* Hold until the parent has measured (or is gone). */
	while (read(ctl, &junk, 1) > 0)
		;
	_exit(0);
}

/* ---- the parent ------------------------------------------------------------------ */

struct kid {
	pid_t pid;
	int status, ctl; /* read end; write end */
	long long n;
};

static void stop_kids(struct kid *k, int nk)
{
	for (int i = 0; i < nk; i++) {
		if (k[i].ctl >= 0)
			close(k[i].ctl);
		if (k[i].status >= 0)
			close(k[i].status);
	}
	for (int i = 0; i < nk; i++)
		if (k[i].pid > 0)
			waitpid(k[i].pid, NULL, 0);
}

/* Waits for every child's status line; 0, or -1 after printing why. */
static int await_kids(struct kid *k, int nk, const char *server)
{
	double deadline = now_s() + IDLE_READY_S;

	for (int i = 0; i < nk; i++) {
		struct pollfd pf = {.fd = k[i].status, .events = POLLIN};
		char msg[400];
		ssize_t n;
		int left = (int)((deadline - now_s()) * 1000);

		if (left <= 0 || poll(&pf, 1, left) <= 0) {
			fprintf(stderr, PROG " idle %s: connections not open "
				"after %d s\n", server, IDLE_READY_S);
			return -1;
		}
		n = read(k[i].status, msg, sizeof(msg) - 1);
		msg[n > 0 ? n : 0] = '\0';
		if (strcmp(msg, "ok\n")) {
			fprintf(stderr, PROG " idle %s: process %d: %s", server,
				i, n > 0 ? msg : "died\n");
			return -1;
		}
	}
	return 0;
}

/*
 * Samples the RSS until the connections have idled for IDLE_MIN_IDLE_MS
 * and it has stayed within 1% of the growth (and at least 64 KiB) for
 * IDLE_STABLE_MS, or IDLE_SETTLE_S passed; returns the last sample and the
 * time it took.
 *
 * The minimum is for servers that trim idle clients on a timer: the RSS of
 * a redis-server 7 holding 10,000 fresh connections stays level for about
 * two seconds, then falls from 9.8 KB to about 2 KB per connection over
 * the next ten as its client cron shrinks the buffers of clients that
 * have gone idle. Idle means the steady state, so the figure is read after
 * that (the 1% tolerance then waits for the fall to end).
 */
static long long settle(long long pid, long long before, double *took)
{
	const int window = IDLE_STABLE_MS / IDLE_SAMPLE_MS + 1;
	long long s[IDLE_SETTLE_S * 1000 / IDLE_SAMPLE_MS + 1];
	int n = 0, max = (int)(sizeof(s) / sizeof(s[0]));
	double t0 = now_s();

	for (;;) {
		long long lo, hi, tol;

		if ((s[n++] = proc_rss_kib(pid)) < 0)
			die("idle: process %lld is gone", pid);
		*took = now_s() - t0;
		if (n == max)
			return s[n - 1];
		if (n >= window && *took * 1000 >= IDLE_MIN_IDLE_MS) {
			lo = hi = s[n - 1];
			for (int i = n - window; i < n; i++) {
				lo = s[i] < lo ? s[i] : lo;
				hi = s[i] > hi ? s[i] : hi;
			}
			tol = (s[n - 1] - before) / 100;
			if (hi - lo <= (tol > 64 ? tol : 64))
				return s[n - 1];
		}
		sleep_ms(IDLE_SAMPLE_MS);
	}
}

int cmd_idle(const struct opts *o)
{
	struct net_addr a;
	struct kid *k;
	struct hist *lat;
	struct net_result first = {0}; /* the first round trips */
	long long before, after = 0, per;
	double took = 0, bytes = 0, cpu[3] = {0}, cpu_us = NAN, idle_ms = NAN;
	int nk, failed = 0;
	struct ssl_ctx_st *tls;
	struct json j;

	if (net_addr_parse(o->server, &a))
		return 1;
	if ((before = proc_rss_kib(o->pid)) < 0 ||
	    (cpu[0] = proc_cpu_ms(o->pid)) < 0) {
		fprintf(stderr, PROG " idle: cannot read /proc/%lld: %s\n",
			o->pid, strerror(errno));
		return 1;
	}
	lat = mmap(NULL, sizeof(*lat), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (lat == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	if (o->json && json_open(&j, o->json, "idle"))
		return 1;
	/* Made before the children fork, which share it. */
	tls = net_tls_ctx_new(o);
	printf("idle %s (%s, pid %lld): %lld %sconnections", o->server,
	       o->label, o->pid, o->connections, tls ? "TLS " : "");
	fflush(stdout);

	nk = (int)((o->connections + o->per_process - 1) / o->per_process);
	per = o->connections / nk;
	if (!(k = calloc((size_t)nk, sizeof(*k))))
		die("out of memory");
	for (int i = 0; i < nk; i++) {
		int sp[2], cp[2];

		k[i].status = k[i].ctl = -1;
		k[i].n = per + (i < o->connections % nk);
		if (pipe(sp) || pipe(cp))
			die("pipe: %s", strerror(errno));
		if ((k[i].pid = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (k[i].pid == 0) {
			/* Only this child's own ends stay open in it, so
			 * each sees end of file when the parent closes. */
			for (int m = 0; m < i; m++) {
				close(k[m].status);
				close(k[m].ctl);
			}
			close(sp[0]);
			close(cp[1]);
			child(&a, tls, k[i].n, &probes[o->probe], lat, sp[1],
			      cp[0]);
		}
		close(sp[1]);
		close(cp[0]);
		k[i].status = sp[0];
		k[i].ctl = cp[1];
	}
	printf(" from %d process%s\n", nk, nk > 1 ? "es" : "");
	fflush(stdout);
	if (await_kids(k, nk, o->server)) {
		failed = 1;
	} else {
		cpu[1] = proc_cpu_ms(o->pid);
		after = settle(o->pid, before, &took);
		cpu[2] = proc_cpu_ms(o->pid);
		bytes = (double)(after - before) * 1024 / (double)o->connections;
		cpu_us = (cpu[1] - cpu[0]) * 1e3 / (double)o->connections;
		if (took > 0)
			idle_ms = (cpu[2] - cpu[1]) / took /
				  ((double)o->connections / 1000);
		net_result_hist(&first, lat);
	}
	stop_kids(k, nk);
	free(k);
	net_tls_ctx_free(tls);
	munmap(lat, sizeof(*lat));
	if (failed) {
		if (o->json)
			fclose(j.f);
		return 1;
	}

	{
		static const struct col cols[] = {
			{"server", 26}, {"connections", 13}, {"RSS before", 13},
			{"RSS after", 13}, {"bytes/conn", 12},
			{"srv CPU us/conn", 17}, {"first reply p99 us", 0}};
		char b[6][32];
		const char *cells[7] = {o->label, b[0], b[1], b[2], b[3], b[4],
					b[5]};

		snprintf(b[0], sizeof(b[0]), "%lld", o->connections);
		snprintf(b[1], sizeof(b[1]), "%lld KiB", before);
		snprintf(b[2], sizeof(b[2]), "%lld KiB", after);
		snprintf(b[3], sizeof(b[3]), "%.0f", bytes);
		fmt_us(b[4], sizeof(b[4]), cpu_us);
		fmt_us(b[5], sizeof(b[5]), first.p99);
		table_header(cols, 7);
		table_row(cols, 7, cells);
		printf("RSS: VmRSS of pid %lld, settled after %.1f s; "
		       "bytes/conn = (after - before) / connections\n",
		       o->pid, took);
		printf("srv CPU: user + system time of pid %lld (%ld ticks/s) "
		       "from the first connect to the last probe's reply, over "
		       "the connections; while they idled: %.2f ms per second "
		       "per 1,000 connections\n",
		       o->pid, sysconf(_SC_CLK_TCK), idle_ms);
		if (probes[o->probe].req)
			printf("first reply: connect() to the probe's reply%s, "
			       "p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n",
			       o->tls ? " (the TLS handshake in it)" : "",
			       first.p50, first.p99, first.p999);
	}
	if (o->json) {
		json_obj_begin(&j);
		json_str(&j, "server", o->server);
		json_str(&j, "label", o->label);
		json_int(&j, "pid", o->pid);
		json_int(&j, "connections", o->connections);
		json_int(&j, "processes", nk);
		if (o->tls)
			json_str(&j, "tls_ca", o->tls);
		json_int(&j, "rss_before_kib", before);
		json_int(&j, "rss_after_kib", after);
		json_num(&j, "settle_s", took, 2);
		json_num(&j, "bytes_per_conn", bytes, 1);
		json_num(&j, "server_cpu_ms", cpu[1] - cpu[0], 0);
		json_num(&j, "server_cpu_us_per_op", cpu_us, 4);
		json_num(&j, "idle_cpu_ms_per_s_per_1000", idle_ms, 3);
		json_num(&j, "p50_us", first.p50, 1);
		json_num(&j, "p99_us", first.p99, 1);
		json_num(&j, "p999_us", first.p999, 1);
		json_obj_end(&j);
		if (json_close(&j))
			return 1;
	}
	return 0;
}
