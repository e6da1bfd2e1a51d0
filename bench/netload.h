/*
 * netload.h: private to actorconn-bench. What the network load generators
 * (reqload.c, fanout.c, idle.c) share: addresses and connecting, a
 * latency histogram, a RESP reply scanner, and the per-run summary.
 */
#ifndef AC_BENCH_NETLOAD_H
#define AC_BENCH_NETLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench.h"

/* ---- addresses -------------------------------------------------------------- */

struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* "HOST:PORT" or "[V6]:PORT"; HOST may be a name. 0, or -1 with a message
 * on standard error. */
int net_addr_parse(const char *text, struct net_addr *a);

/*
 * A connected TCP socket to a, non-blocking, with TCP_NODELAY (requests go
 * out as soon as they are made, as a latency-minded client sends them).
 * The connect itself blocks: on loopback it completes at once, and a
 * refusal is then reported here rather than as a later read error.
 * Returns the descriptor or -errno.
 */
int net_connect(const struct net_addr *a);

/* ---- latency histogram --------------------------------------------------------
 * Log-linear: exact below 128 ns, then 128 linear steps per power of two,
 * so any recorded value is within 0.8% of its bucket's midpoint. One per
 * thread, merged at the end: recording takes no lock and no atomic.
 */
#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t n;
	uint64_t b[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *to, const struct hist *from);
double hist_quantile_us(const struct hist *h, double q); /* NAN if empty */

/* ---- RESP ---------------------------------------------------------------------- */

/*
 * The length of the one complete RESP2 reply at p[0..n): 0 while it is
 * incomplete, -1 if it is malformed. Arrays nest at most 8 deep.
 */
long resp_reply_len(const char *p, size_t n);

/* ---- results ------------------------------------------------------------------ */

struct net_result {
	double rate;            /* requests or deliveries per second */
	double p50, p99, p999;  /* microseconds */
	long long count;        /* requests or deliveries measured */
};

/* Fills the percentiles of r from h. */
void net_result_hist(struct net_result *r, const struct hist *h);

/*
 * Prints one row per run and, with more than one, a row of medians; returns
 * the medians (of each column on its own).
 */
struct net_result net_summarize(const char *rate_title,
				const struct net_result *runs, int n);

/* Writes the fields of r into the current JSON object. */
void net_json_result(struct json *j, const char *rate_key,
		     const struct net_result *r);

/* Writes the options every network subcommand shares. */
void net_json_common(struct json *j, const struct opts *o);

#endif
