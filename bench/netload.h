/*
 * netload.h: private to actorconn-bench. What the network load generators
 * (reqload.c, fanout.c, idle.c, handshake.c) share: addresses and
 * connecting, a latency histogram, a RESP reply scanner, the client threads
 * with their epoll loops and measured window, the per-run summary, and
 * (tls.c) their TLS client.
 */
#ifndef AC_BENCH_NETLOAD_H
#define AC_BENCH_NETLOAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "bench.h"

/* ---- addresses -------------------------------------------------------------- */

struct net_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char host[256]; /* HOST as given: TLS checks the certificate for it */
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

unsigned hist_bucket(uint64_t ns); /* the index in b[] of a value */
void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *to, const struct hist *from);
double hist_quantile_us(const struct hist *h, double q); /* NAN if empty */

/* ---- RESP ---------------------------------------------------------------------- */

/*
 * The length of the one complete RESP2 reply at p[0..n): 0 while it is
 * incomplete, -1 if it is malformed. Arrays nest at most 8 deep.
 */
long resp_reply_len(const char *p, size_t n);

/* ---- client threads --------------------------------------------------------------
 * A load generator (reqload.c, fanout.c) spreads its connections
 * round-robin over T threads, each with its own epoll set and
 * non-blocking sockets. Its run, thread and connection structs begin with
 * a struct net_run, net_thread and net_conn. A thread that meets an error
 * records it (net_fail) and sets the run's failed flag, on which every
 * thread stops; the main thread reports the first error when it joins
 * them (net_run_join).
 */
struct ssl_st;
struct ssl_ctx_st;

struct net_conn {
	const struct net_addr *addr; /* where it connects; NULL: the run's
					--server (see net_conn_addr) */
	int fd;              /* -1 until connected */
	int out_armed;       /* EPOLLOUT is in the interest set */
	struct ssl_st *ssl;  /* --tls: the connection's SSL, else NULL */
	int tls_more;        /* net_recv filled the buffer and OpenSSL holds
				more: net_poll reads again */
};

struct net_run;

struct net_thread {
	struct net_run *run;
	pthread_t th;
	int ep, efd;       /* the epoll set; an eventfd for net_kick, or -1 */
	void *conns;       /* nconn structs of conn_size bytes, each starting
			      with a struct net_conn */
	size_t conn_size;
	int nconn;
	long long counted; /* replies or deliveries read in the window */
	struct hist hist;  /* their latencies */
	char err[256];     /* this thread's first error */
} __attribute__((aligned(64)));

struct net_run {
	struct net_addr addr;
	uint64_t t_start, t_end; /* the measured window (net_run_window) */
	long long pid;           /* the server's, or 0 (--pid) */
	double cpu0, cpu1;       /* its CPU ms at t_start, t_end (net_run_wait) */
	int failed;              /* atomic: a thread gave up; all stop */
	pthread_barrier_t bar;   /* the threads and the main thread */
	struct net_thread **threads;
	int nthreads;
	struct ssl_ctx_st *tls;  /* --tls: the client context, else NULL */
	char tls_desc[96];       /* the first handshake's protocol and cipher
				    (written by thread 0 only) */
};

/* Main thread, in this order. net_run_init parses o->server (exits if it
 * is bad) and makes min(o->threads, nconn) threads, of thread_size bytes
 * each (a struct starting with a struct net_thread), with their share of
 * nconn connections of conn_size bytes, zeroed but for fd = -1. */
void net_run_init(struct net_run *r, const struct opts *o, long long nconn,
		  size_t thread_size, size_t conn_size);
/* Runs fn(thread) on each thread; returns when every one has waited on
 * r->bar once, which fn does when it has connected (or failed to). */
void net_run_start(struct net_run *r, void *(*fn)(void *));
/* Sets the measured window: from o->warmup seconds on, for o->duration. */
void net_run_window(struct net_run *r, const struct opts *o);
/* Sleeps until the window has ended or a thread failed. With --pid it
 * reads the server's CPU time when the window starts and when it ends
 * (the threads count only what they read inside it, so both figures
 * cover the same interval); exits if the server is gone. */
void net_run_wait(struct net_run *r);
/* Joins the threads; exits with "WHAT SERVER: ERROR" if one failed. */
void net_run_join(struct net_run *r, const char *what, const struct opts *o);
/* The run's rate and latencies, from every thread's counted and hist,
 * and with --pid the server's CPU per NOUN; exits if nothing was measured
 * ("no NOUN in the S s measured"). */
struct net_result net_run_result(const struct net_run *r, const char *what,
				 const char *noun, const struct opts *o);
/* Closes every connection and epoll set and frees the threads;
 * conn_free (may be NULL) frees what a connection holds besides. */
void net_run_free(struct net_run *r, void (*conn_free)(struct net_conn *c));

static inline int net_failed(const struct net_run *r)
{
	return __atomic_load_n(&r->failed, __ATOMIC_RELAXED);
}

/* Whether a reply or delivery read at now counts. */
static inline int net_in_window(const struct net_run *r, uint64_t now)
{
	return now >= r->t_start && now < r->t_end;
}

/* The address c connects to: its own, or the run's. */
static inline const struct net_addr *net_conn_addr(const struct net_thread *t,
						   const struct net_conn *c)
{
	return c->addr ? c->addr : &t->run->addr;
}

static inline struct net_conn *net_conn_at(const struct net_thread *t, int i)
{
	return (struct net_conn *)(void *)((char *)t->conns +
					   (size_t)i * t->conn_size);
}

/* Client thread. Those that return int return 0, or -1 after net_fail
 * (the thread should then end). */
void net_fail(struct net_thread *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Makes t's epoll set and, with_efd, an eventfd in it (data.ptr NULL). */
int net_thread_open(struct net_thread *t, int with_efd);
/* Connects c to its address (net_conn_addr) and adds it to t's set
 * (EPOLLIN); with --tls, gives it an SSL whose handshake has not begun
 * (see net_tls_handshake_all). */
int net_conn_open(struct net_thread *t, struct net_conn *c);
/* Puts EPOLLOUT in c's interest set (out) or takes it out. */
int net_arm(struct net_thread *t, struct net_conn *c, int out);
/* Writes p[0, n) as far as the socket takes it and arms EPOLLOUT for the
 * rest, or disarms it when all is written; the bytes written, or -1.
 * Over TLS the bytes are plaintext, and a write that OpenSSL could not
 * finish must be retried with the same bytes first (they may move). */
ssize_t net_send(struct net_thread *t, struct net_conn *c, const char *p,
		 size_t n);
/* Reads into buf: the bytes read, 0 if there are none yet, -1 on an error
 * or end of file ("the server closed a WHAT"). */
ssize_t net_recv(struct net_thread *t, struct net_conn *c, char *buf,
		 size_t n, const char *what);

/* What a thread does with the events of its connections. */
struct net_ops {
	int (*writable)(struct net_thread *t, struct net_conn *c);
	int (*readable)(struct net_thread *t, struct net_conn *c);
};

/* Waits up to timeout_ms for events and hands each to ops (a wake-up
 * through the eventfd is drained); 0, or -1 if a handler or the wait
 * failed: the thread should end. Over TLS, readable is called again while
 * it filled its buffer and OpenSSL holds more that epoll cannot see. */
int net_poll(struct net_thread *t, int timeout_ms, const struct net_ops *ops);
/* Any thread: wakes t out of net_poll (t must have an eventfd). */
void net_kick(struct net_thread *t);

/* ---- results ------------------------------------------------------------------ */

struct net_result {
	double rate;            /* requests or deliveries per second */
	double p50, p99, p999;  /* microseconds */
	long long count;        /* requests or deliveries measured */
	double cpu_ms;          /* the server's CPU time in the window, or NAN
				   (no --pid) */
	double cpu_us;          /* the same per request or delivery, or NAN */
	char tls[96];           /* --tls: the protocol and cipher of the
				   first handshake, else "" */
};

/* Fills the percentiles of r from h. */
void net_result_hist(struct net_result *r, const struct hist *h);

/* "12.3", "1.234", "0.0123": a few significant digits of a microsecond
 * figure such as CPU per operation, "-" for NAN. */
void fmt_us(char *buf, size_t n, double v);

/*
 * Prints one row per run and, with more than one, a row of medians; returns
 * the medians (of each column on its own). The server CPU column is there
 * when the runs measured it (--pid).
 */
struct net_result net_summarize(const char *rate_title,
				const struct net_result *runs, int n);

/* Writes the fields of r into the current JSON object; the server's CPU
 * (server_cpu_ms, server_cpu_us_per_op) only if measured, tls only over
 * TLS. */
void net_json_result(struct json *j, const char *rate_key,
		     const struct net_result *r);

/* With --pid: 0 if the server's /proc/PID/stat can be read, else -1 with
 * a message. Without: 0. */
int net_check_pid(const struct opts *o, const char *what);

/* With --pid, prints what the server CPU column means, with NOUN the
 * operation ("request", "delivery"). */
void net_cpu_note(const struct opts *o, const char *noun);

/* Writes the options every network subcommand shares. */
void net_json_common(struct json *j, const struct opts *o);

/* With --tls, prints the protocol and cipher that m's run negotiated. */
void net_tls_note(const struct opts *o, const struct net_result *m);

/* ---- TLS (tls.c) -----------------------------------------------------------------
 * With --tls CAFILE the load generators speak TLS over the same sockets:
 * OpenSSL's client, TLS 1.2 or 1.3 as the server prefers, the server's
 * certificate verified against CAFILE and checked for the HOST of
 * --server. Built without OpenSSL, --tls is not an option, and these
 * functions exist only so that their callers link: they are never called.
 */

/* The client context for o->tls, or NULL without --tls; exits if it
 * cannot be made (a CA file that does not load). */
struct ssl_ctx_st *net_tls_ctx_new(const struct opts *o);
void net_tls_ctx_free(struct ssl_ctx_st *ctx);
/* A client SSL on fd (which it does not own) for a->host: SNI when that is
 * a name, and the certificate must match it (name or address); NULL with
 * why in err. */
struct ssl_st *net_tls_new(struct ssl_ctx_st *ctx, int fd,
			   const struct net_addr *a, char *err, size_t errlen);
/* SSL_free, which sends nothing; the descriptor stays open. */
void net_tls_free(struct ssl_st *ssl);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf. */
void net_tls_describe(struct ssl_st *ssl, char *buf, size_t n);

/* Blocking sockets (idle's children): the handshake, and I/O of a whole
 * buffer or what one read returns. 0 / bytes, or -1 with why in err. */
int net_tls_connect_blocking(struct ssl_st *ssl, char *err, size_t errlen);
int net_tls_write_all(struct ssl_st *ssl, const void *p, size_t n, char *err,
		      size_t errlen);
ssize_t net_tls_read_some(struct ssl_st *ssl, void *p, size_t n, char *err,
			  size_t errlen);

/* The non-blocking side of net_conn_open, net_send, net_recv (a client
 * thread): c's SSL; the handshakes of every connection of t, driven
 * together, before any request (0, or -1 after net_fail: 10 s at most);
 * one handshake's next step; a write and a read. */
int net_tls_open(struct net_thread *t, struct net_conn *c);
int net_tls_handshake_all(struct net_thread *t);
/* One step of c's handshake: 1 when it is done (EPOLLOUT disarmed), 0
 * while it waits (EPOLLOUT armed if it waits to write), -1 after
 * net_fail. */
int net_tls_step(struct net_thread *t, struct net_conn *c);
ssize_t net_tls_send(struct net_thread *t, struct net_conn *c, const char *p,
		     size_t n);
ssize_t net_tls_recv(struct net_thread *t, struct net_conn *c, char *buf,
		     size_t n, const char *what);

#endif
