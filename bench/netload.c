/*
 * netload.c: what actorconn-bench's network load generators share. See
 * netload.h.
 */
#include "netload.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- addresses -------------------------------------------------------------- */

int net_addr_parse(const char *text, struct net_addr *a)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	char host[256];
	const char *port, *h = text;
	size_t hlen;
	int err;

	if (*h == '[') {
		const char *close = strchr(h, ']');
		if (!close || close[1] != ':')
			goto bad;
		h++;
		hlen = (size_t)(close - h);
		port = close + 2;
	} else {
		const char *colon = strrchr(h, ':');
		if (!colon)
			goto bad;
		hlen = (size_t)(colon - h);
		port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(host) || !*port)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(a->host, host, hlen + 1);
	if ((err = getaddrinfo(host, port, &hints, &res))) {
		fprintf(stderr, PROG ": %s: %s\n", text, gai_strerror(err));
		return -1;
	}
	memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	fprintf(stderr, PROG ": bad address '%s' (want HOST:PORT)\n", text);
	return -1;
}

int net_connect(const struct net_addr *a)
{
	int fd, one = 1, err;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/* ---- latency histogram -------------------------------------------------------- */

unsigned hist_bucket(uint64_t v)
{
	unsigned msb, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i, in the unit recorded (ns). */
static double hist_value(unsigned i)
{
	unsigned shift;
	double lo;

	if (i < HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	lo = ldexp((double)(HIST_SUB + i % HIST_SUB), (int)shift);
	return lo + ldexp(1, (int)shift) / 2;
}

void hist_add(struct hist *h, uint64_t ns)
{
	h->b[hist_bucket(ns)]++;
	h->n++;
}

void hist_merge(struct hist *to, const struct hist *from)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->b[i] += from->b[i];
	to->n += from->n;
}

double hist_quantile_us(const struct hist *h, double q)
{
	/* The smallest value with at least q of the samples at or below. */
	uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;

	if (h->n == 0)
		return NAN;
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return hist_value(i) / 1e3;
	}
	return NAN; /* not reached: the buckets add up to n */
}

/* ---- RESP ----------------------------------------------------------------------- */

/* The offset just past the "\r\n" that ends the line at p[0..n), or 0. */
static size_t line_len(const char *p, size_t n)
{
	const char *cr = memchr(p, '\r', n);

	if (!cr || (size_t)(cr - p) + 1 >= n)
		return 0;
	return cr[1] == '\n' ? (size_t)(cr - p) + 2 : (size_t)-1;
}

/* The integer of a "$N\r\n" or "*N\r\n" header of length hl; -2 if bad. */
static long long header_int(const char *p, size_t hl)
{
	long long v = 0;
	size_t i = 1;
	int neg = 0;

	if (hl < 4)
		return -2;
	if (p[i] == '-') {
		neg = 1;
		i++;
	}
	if (i >= hl - 2)
		return -2;
	for (; i < hl - 2; i++) {
		if (p[i] < '0' || p[i] > '9' || v > (1ll << 40))
			return -2;
		v = v * 10 + (p[i] - '0');
	}
	return neg ? (v == 1 ? -1 : -2) : v;
}

static long reply_len(const char *p, size_t n, int depth)
{
	size_t hl, off;
	long long v;

	if (n == 0)
		return 0;
	if (depth > 8)
		return -1;
	hl = line_len(p, n);
	if (hl == (size_t)-1)
		return -1;
	switch (p[0]) {
	case '+': case '-': case ':':
		return (long)hl;
	case '$':
		if (!hl)
			return 0;
		if ((v = header_int(p, hl)) < -1)
			return -1;
		if (v == -1)
			return (long)hl; /* null bulk */
		if (n < hl + (size_t)v + 2)
			return 0;
		if (p[hl + v] != '\r' || p[hl + v + 1] != '\n')
			return -1;
		return (long)(hl + (size_t)v + 2);
	case '*':
		if (!hl)
			return 0;
		if ((v = header_int(p, hl)) < -1)
			return -1;
		off = hl;
		for (long long i = 0; i < v; i++) {
			long r = reply_len(p + off, n - off, depth + 1);
			if (r <= 0)
				return r;
			off += (size_t)r;
		}
		return (long)off;
	default:
		return -1;
	}
}

long resp_reply_len(const char *p, size_t n)
{
	return reply_len(p, n, 0);
}

/* ---- client threads: the main thread's side ---------------------------------- */

void net_run_init(struct net_run *r, const struct opts *o, long long nconn,
		  size_t thread_size, size_t conn_size)
{
	/* aligned_alloc wants a multiple of the alignment. */
	size_t tsize = (thread_size + 63) & ~(size_t)63;

	if (net_addr_parse(o->server, &r->addr))
		exit(1);
	r->pid = o->pid;
	r->tls = net_tls_ctx_new(o);
	r->nthreads = o->threads < nconn ? o->threads : (int)nconn;
	if (!(r->threads = calloc((size_t)r->nthreads, sizeof(*r->threads))))
		die("out of memory");
	for (int k = 0; k < r->nthreads; k++) {
		struct net_thread *t = aligned_alloc(64, tsize);

		if (!t)
			die("out of memory");
		memset(t, 0, tsize);
		t->run = r;
		t->ep = t->efd = -1;
		t->conn_size = conn_size;
		t->nconn = (int)(nconn / r->nthreads + (k < nconn % r->nthreads));
		if (!(t->conns = calloc((size_t)t->nconn, conn_size)))
			die("out of memory");
		for (int i = 0; i < t->nconn; i++)
			net_conn_at(t, i)->fd = -1;
		r->threads[k] = t;
	}
}

void net_run_start(struct net_run *r, void *(*fn)(void *))
{
	int err;

	pthread_barrier_init(&r->bar, NULL, (unsigned)r->nthreads + 1);
	for (int k = 0; k < r->nthreads; k++)
		if ((err = pthread_create(&r->threads[k]->th, NULL, fn,
					  r->threads[k])))
			die("pthread_create: %s", strerror(err));
	pthread_barrier_wait(&r->bar);
}

void net_run_window(struct net_run *r, const struct opts *o)
{
	r->t_start = now_ns() + (uint64_t)(o->warmup * 1e9);
	r->t_end = r->t_start + (uint64_t)(o->duration * 1e9);
}

/* Sleeps until t, or until a thread failed. */
static void sleep_until(const struct net_run *r, uint64_t t)
{
	uint64_t now;

	while ((now = now_ns()) < t && !net_failed(r)) {
		uint64_t ms = (t - now) / 1000000;

		/* The last step to t is exact, within the sleep's slack. */
		if (ms >= 10) {
			sleep_ms(10);
		} else {
			struct timespec ts = {.tv_nsec = (long)(t - now)};

			nanosleep(&ts, NULL);
		}
	}
}

static double server_cpu(const struct net_run *r)
{
	double ms = proc_cpu_ms(r->pid);

	if (ms < 0)
		die("the server's process %lld is gone", r->pid);
	return ms;
}

void net_run_wait(struct net_run *r)
{
	sleep_until(r, r->t_start);
	if (r->pid)
		r->cpu0 = server_cpu(r);
	sleep_until(r, r->t_end);
	if (r->pid)
		r->cpu1 = server_cpu(r);
}

void net_run_join(struct net_run *r, const char *what, const struct opts *o)
{
	for (int k = 0; k < r->nthreads; k++)
		pthread_join(r->threads[k]->th, NULL);
	pthread_barrier_destroy(&r->bar);
	for (int k = 0; k < r->nthreads; k++)
		if (r->threads[k]->err[0])
			die("%s %s: %s", what, o->server, r->threads[k]->err);
}

struct net_result net_run_result(const struct net_run *r, const char *what,
				 const char *noun, const struct opts *o)
{
	struct net_result res = {0};
	struct hist *all = calloc(1, sizeof(*all));

	if (!all)
		die("out of memory");
	for (int k = 0; k < r->nthreads; k++) {
		hist_merge(all, &r->threads[k]->hist);
		res.count += r->threads[k]->counted;
	}
	if (res.count == 0)
		die("%s %s: no %s in the %.1f s measured", what, o->server,
		    noun, o->duration);
	res.rate = (double)res.count / o->duration;
	res.cpu_ms = res.cpu_us = NAN;
	if (r->pid) {
		res.cpu_ms = r->cpu1 - r->cpu0;
		res.cpu_us = res.cpu_ms * 1e3 / (double)res.count;
	}
	net_result_hist(&res, all);
	free(all);
	snprintf(res.tls, sizeof(res.tls), "%s", r->tls_desc);
	return res;
}

void net_run_free(struct net_run *r, void (*conn_free)(struct net_conn *c))
{
	for (int k = 0; k < r->nthreads; k++) {
		struct net_thread *t = r->threads[k];

		for (int i = 0; i < t->nconn; i++) {
			struct net_conn *c = net_conn_at(t, i);

			if (c->ssl)
				net_tls_free(c->ssl);
			if (c->fd >= 0)
				close(c->fd);
			if (conn_free)
				conn_free(c);
		}
		free(t->conns);
		if (t->ep >= 0)
			close(t->ep);
		if (t->efd >= 0)
			close(t->efd);
		free(t);
	}
	free(r->threads);
	net_tls_ctx_free(r->tls);
}

/* ---- client threads: their own side ------------------------------------------- */

void net_fail(struct net_thread *t, const char *fmt, ...)
{
	va_list ap;

	if (t->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	__atomic_store_n(&t->run->failed, 1, __ATOMIC_RELAXED);
}

int net_thread_open(struct net_thread *t, int with_efd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	if ((t->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		net_fail(t, "epoll_create1: %s", strerror(errno));
		return -1;
	}
	if (with_efd &&
	    ((t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
	     epoll_ctl(t->ep, EPOLL_CTL_ADD, t->efd, &ev) < 0)) {
		net_fail(t, "eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int net_conn_open(struct net_thread *t, struct net_conn *c)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
	int fd = net_connect(net_conn_addr(t, c));

	if (fd < 0) {
		net_fail(t, "connect: %s", strerror(-fd));
		return -1;
	}
	c->fd = fd;
	if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		net_fail(t, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	return t->run->tls ? net_tls_open(t, c) : 0;
}

int net_arm(struct net_thread *t, struct net_conn *c, int out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
				 .data.ptr = c};

	if (c->out_armed == out)
		return 0;
	c->out_armed = out;
	if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		net_fail(t, "epoll_ctl: %s", strerror(errno));
		return -1;
	}
	return 0;
}

ssize_t net_send(struct net_thread *t, struct net_conn *c, const char *p,
		 size_t n)
{
	size_t done = 0;

	if (c->ssl)
		return net_tls_send(t, c, p, n);
	while (done < n) {
		ssize_t w = write(c->fd, p + done, n - done);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return net_arm(t, c, 1) ? -1 : (ssize_t)done;
			net_fail(t, "write: %s", strerror(errno));
			return -1;
		}
		done += (size_t)w;
	}
	return net_arm(t, c, 0) ? -1 : (ssize_t)done;
}

ssize_t net_recv(struct net_thread *t, struct net_conn *c, char *buf,
		 size_t n, const char *what)
{
	ssize_t r;

	if (c->ssl)
		return net_tls_recv(t, c, buf, n, what);
	if ((r = read(c->fd, buf, n)) < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		net_fail(t, "read: %s", strerror(errno));
		return -1;
	}
	if (r == 0) {
		net_fail(t, "the server closed a %s", what);
		return -1;
	}
	return r;
}

int net_poll(struct net_thread *t, int timeout_ms, const struct net_ops *ops)
{
	struct epoll_event evs[256];
	int n = epoll_wait(t->ep, evs, 256, timeout_ms);

	if (n < 0 && errno != EINTR) {
		net_fail(t, "epoll_wait: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct net_conn *c = evs[i].data.ptr;
		uint64_t junk;

		if (!c) {
			/* net_kick: nothing to do but wake. */
			if (read(t->efd, &junk, sizeof(junk)) < 0 &&
			    errno != EAGAIN)
				net_fail(t, "eventfd read: %s", strerror(errno));
			continue;
		}
		if ((evs[i].events & EPOLLOUT) && ops->writable(t, c))
			return -1;
		if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
			continue;
		/* Over TLS, records that OpenSSL read ahead of a full buffer
		 * are in no socket for epoll to report: read them now. */
		do {
			c->tls_more = 0;
			if (ops->readable(t, c))
				return -1;
		} while (c->tls_more);
	}
	return 0;
}

void net_kick(struct net_thread *t)
{
	uint64_t one = 1;

	/* A full counter already means "wake up"; nothing to handle. */
	if (write(t->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		die("eventfd write: %s", strerror(errno));
}

/* ---- results -------------------------------------------------------------------- */

void net_result_hist(struct net_result *r, const struct hist *h)
{
	r->p50 = hist_quantile_us(h, 0.50);
	r->p99 = hist_quantile_us(h, 0.99);
	r->p999 = hist_quantile_us(h, 0.999);
}

void fmt_us(char *buf, size_t n, double v)
{
	if (isnan(v))
		snprintf(buf, n, "-");
	else if (v >= 100)
		snprintf(buf, n, "%.0f", v);
	else if (v >= 10)
		snprintf(buf, n, "%.1f", v);
	else if (v >= 1)
		snprintf(buf, n, "%.2f", v);
	else
		snprintf(buf, n, "%.3g", v);
}

/* The columns of net_summarize; the CPU one is left out without --pid. */
enum { RC_RUN, RC_RATE, RC_P50, RC_P99, RC_P999, RC_CPU, RC_COUNT, RC_N };

static void result_row(const struct col *cols, int ncols, const char *name,
		       const struct net_result *r)
{
	char b[RC_N][32];
	const char *cells[RC_N];
	int k = 0;

	fmt_rate(b[RC_RATE], sizeof(b[0]), r->rate);
	snprintf(b[RC_P50], sizeof(b[0]), "%.0f", r->p50);
	snprintf(b[RC_P99], sizeof(b[0]), "%.0f", r->p99);
	snprintf(b[RC_P999], sizeof(b[0]), "%.0f", r->p999);
	fmt_us(b[RC_CPU], sizeof(b[0]), r->cpu_us);
	snprintf(b[RC_COUNT], sizeof(b[0]), "%lld", r->count);
	cells[k++] = name;
	for (int c = RC_RATE; c < RC_N; c++)
		if (c != RC_CPU || ncols == RC_N)
			cells[k++] = b[c];
	table_row(cols, ncols, cells);
}

struct net_result net_summarize(const char *rate_title,
				const struct net_result *runs, int n)
{
	const struct col all[RC_N] = {
		[RC_RUN] = {"run", 8},         [RC_RATE] = {rate_title, 14},
		[RC_P50] = {"p50 us", 10},     [RC_P99] = {"p99 us", 10},
		[RC_P999] = {"p99.9 us", 11},  [RC_CPU] = {"srv CPU us/op", 15},
		[RC_COUNT] = {"measured", 0}};
	struct col cols[RC_N];
	double v[RC_N][MAX_REPS], ms[MAX_REPS];
	int with_cpu = !isnan(runs[0].cpu_us), ncols = 0;
	struct net_result m;
	char name[16];

	for (int c = 0; c < RC_N; c++)
		if (c != RC_CPU || with_cpu)
			cols[ncols++] = all[c];
	table_header(cols, ncols);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%d", i + 1);
		result_row(cols, ncols, name, &runs[i]);
		v[RC_RATE][i] = runs[i].rate;
		v[RC_P50][i] = runs[i].p50;
		v[RC_P99][i] = runs[i].p99;
		v[RC_P999][i] = runs[i].p999;
		v[RC_CPU][i] = runs[i].cpu_us;
		ms[i] = runs[i].cpu_ms;
		v[RC_COUNT][i] = (double)runs[i].count;
	}
	m.rate = median(v[RC_RATE], n);
	m.p50 = median(v[RC_P50], n);
	m.p99 = median(v[RC_P99], n);
	m.p999 = median(v[RC_P999], n);
	m.cpu_us = with_cpu ? median(v[RC_CPU], n) : NAN;
	m.cpu_ms = with_cpu ? median(ms, n) : NAN;
	m.count = (long long)median(v[RC_COUNT], n);
	memcpy(m.tls, runs[0].tls, sizeof(m.tls));
	if (n > 1)
		result_row(cols, ncols, "median", &m);
	return m;
}

void net_json_result(struct json *j, const char *rate_key,
		     const struct net_result *r)
{
	json_num(j, rate_key, r->rate, 1);
	json_num(j, "p50_us", r->p50, 1);
	json_num(j, "p99_us", r->p99, 1);
	json_num(j, "p999_us", r->p999, 1);
	json_int(j, "measured", r->count);
	if (r->tls[0])
		json_str(j, "tls", r->tls);
	if (!isnan(r->cpu_us)) {
		json_num(j, "server_cpu_ms", r->cpu_ms, 0);
		json_num(j, "server_cpu_us_per_op", r->cpu_us, 4);
	}
}

int net_check_pid(const struct opts *o, const char *what)
{
	if (o->pid && proc_cpu_ms(o->pid) < 0) {
		fprintf(stderr, PROG " %s: cannot read /proc/%lld/stat: %s\n",
			what, o->pid, strerror(errno));
		return -1;
	}
	return 0;
}

void net_cpu_note(const struct opts *o, const char *noun)
{
	if (o->pid)
		printf("srv CPU: user + system time of pid %lld in the window "
		       "(%ld ticks/s), us per %s measured\n",
		       o->pid, sysconf(_SC_CLK_TCK), noun);
}

void net_json_common(struct json *j, const struct opts *o)
{
	json_str(j, "server", o->server);
	json_str(j, "label", o->label);
	json_int(j, "threads", o->threads);
	json_num(j, "duration_s", o->duration, 3);
	json_num(j, "warmup_s", o->warmup, 3);
	json_int(j, "reps", o->reps);
	if (o->pid)
		json_int(j, "server_pid", o->pid);
	if (o->tls)
		json_str(j, "tls_ca", o->tls);
}

void net_tls_note(const struct opts *o, const struct net_result *m)
{
	if (o->tls)
		printf("TLS: %s; the server's certificate verified against "
		       "%s\n", m->tls[0] ? m->tls : "no handshake", o->tls);
}
