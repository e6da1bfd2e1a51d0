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
#include <stdlib.h>
#include <string.h>
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

static unsigned hist_index(uint64_t v)
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
	h->b[hist_index(ns)]++;
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

/* ---- results -------------------------------------------------------------------- */

void net_result_hist(struct net_result *r, const struct hist *h)
{
	r->p50 = hist_quantile_us(h, 0.50);
	r->p99 = hist_quantile_us(h, 0.99);
	r->p999 = hist_quantile_us(h, 0.999);
}

static void result_row(const struct col *cols, const char *name,
		       const struct net_result *r)
{
	char b[5][32];
	const char *cells[6] = {name, b[0], b[1], b[2], b[3], b[4]};

	fmt_rate(b[0], sizeof(b[0]), r->rate);
	snprintf(b[1], sizeof(b[1]), "%.0f", r->p50);
	snprintf(b[2], sizeof(b[2]), "%.0f", r->p99);
	snprintf(b[3], sizeof(b[3]), "%.0f", r->p999);
	snprintf(b[4], sizeof(b[4]), "%lld", r->count);
	table_row(cols, 6, cells);
}

struct net_result net_summarize(const char *rate_title,
				const struct net_result *runs, int n)
{
	const struct col cols[] = {{"run", 8},     {rate_title, 14},
				   {"p50 us", 10}, {"p99 us", 10},
				   {"p99.9 us", 11}, {"measured", 0}};
	double v[5][MAX_REPS];
	struct net_result m;
	char name[16];

	table_header(cols, 6);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%d", i + 1);
		result_row(cols, name, &runs[i]);
		v[0][i] = runs[i].rate;
		v[1][i] = runs[i].p50;
		v[2][i] = runs[i].p99;
		v[3][i] = runs[i].p999;
		v[4][i] = (double)runs[i].count;
	}
	m.rate = median(v[0], n);
	m.p50 = median(v[1], n);
	m.p99 = median(v[2], n);
	m.p999 = median(v[3], n);
	m.count = (long long)median(v[4], n);
	if (n > 1)
		result_row(cols, "median", &m);
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
}

void net_json_common(struct json *j, const struct opts *o)
{
	json_str(j, "server", o->server);
	json_str(j, "label", o->label);
	json_int(j, "threads", o->threads);
	json_num(j, "duration_s", o->duration, 3);
	json_num(j, "warmup_s", o->warmup, 3);
	json_int(j, "reps", o->reps);
}
