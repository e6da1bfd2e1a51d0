/*
 * bench.h: private to actorconn-bench. What its files share: bench.c
 * (options, subcommands, small helpers), report.c (table and JSON output),
 * the micro-benchmarks (mailbox.c, handle.c) and the network load
 * generators (netload.c, reqload.c, fanout.c, idle.c, handshake.c,
 * heartbeat.c; tls.c
 * is their TLS client). Nothing here is library API.
 */
#ifndef AC_BENCH_H
#define AC_BENCH_H

#include <actorconn.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROG "actorconn-bench"
#define MAX_REPS 1000 /* the medians use fixed arrays */
#define MB_CAPACITY 4096u /* the library's default ring; the baseline's too */
#define H_MAX_THREADS 2   /* handle: runs with 1 .. this many threads */

/* ---- small helpers (bench.c) --------------------------------------------- */

double now_s(void);
uint64_t now_ns(void); /* CLOCK_MONOTONIC: comparable across processes */
void sleep_ms(unsigned ms);
void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
double median(double *v, int n); /* v is left sorted */
/* A started runtime of `loops` loops with rings of MB_CAPACITY; dies if
 * it cannot make one. */
ac_runtime_t *bench_runtime(int loops);

/*
 * Another process, read from /proc: its CPU time, user + system of all its
 * threads (fields 14 and 15 of /proc/PID/stat), in ms; its VmRSS in KiB.
 * -1 if the process is gone. The CPU time moves in clock ticks
 * (sysconf(_SC_CLK_TCK), 10 ms at the usual 100 Hz): a figure over a
 * window holds that much error, so windows are made long enough that it
 * does not matter (see actorconn-bench(1), "Server CPU").
 */
double proc_cpu_ms(long long pid);
long long proc_rss_kib(long long pid);

/* ---- options ----------------------------------------------------------------
 * One table of options for every subcommand; a subcommand lists the ones it
 * accepts (O_* bits) and brings its own defaults.
 */
enum {
	O_MESSAGES = 1 << 0,
	O_ITERATIONS = 1 << 1,
	O_REPS = 1 << 2,
	O_JSON = 1 << 3,
	O_SERVER = 1 << 4,
	O_CONNECTIONS = 1 << 5,
	O_PIPELINE = 1 << 6,
	O_DURATION = 1 << 7,
	O_WARMUP = 1 << 8,
	O_THREADS = 1 << 9,
	O_SIZE = 1 << 10,
	O_SUBSCRIBERS = 1 << 11,
	O_PUBLISHERS = 1 << 12,
	O_PID = 1 << 13,
	O_PROBE = 1 << 14,
	O_PER_PROCESS = 1 << 15,
	O_LABEL = 1 << 16,
	O_TLS = 1 << 17,
	O_RESUME = 1 << 18,
	O_SUB_SERVER2 = 1 << 19,
	O_HEARTBEAT = 1 << 20,
};

/* How idle connections prove that the server accepted them. */
enum probe { PROBE_RESP, PROBE_MEMCACHE, PROBE_LEN32, PROBE_NONE };

struct opts {
	long long messages;
	long long iterations;
	int reps;
	const char *json;
	const char *server;   /* HOST:PORT */
	const char *label;    /* names the server in output; default: server */
	long long connections;
	long long pipeline;
	double duration;      /* seconds */
	double warmup;        /* seconds */
	int threads;
	long long size;       /* payload bytes */
	long long subscribers;
	long long publishers;
	long long pid;
	enum probe probe;
	long long per_process;
	const char *tls;      /* --tls CAFILE: speak TLS; NULL: plain TCP */
	int resume;           /* handshake --resume yes */
	const char *sub_server2; /* fanout: HOST:PORT that every other
				    subscriber connects to; NULL: none */
	long long heartbeat;  /* heartbeat: the server's period, in ms */
};

/* ---- table output (report.c) ------------------------------------------------- */

struct col {
	const char *title;
	int width; /* 0: last column, unpadded */
};

void table_row(const struct col *cols, int ncols, const char *const *cells);
void table_header(const struct col *cols, int ncols);
void fmt_rate(char *buf, size_t n, double v); /* "12.34M", "850.2k" */

/* ---- JSON output (report.c) -----------------------------------------------------
 * {"name": [{...}, {...}]}: an array of flat objects, one per line.
 */
struct json {
	FILE *f;
	const char *path;
	int nobj;   /* objects so far in the array */
	int nfield; /* fields so far in the current object */
};

int json_open(struct json *j, const char *path, const char *name);
void json_obj_begin(struct json *j);
void json_str(struct json *j, const char *k, const char *v);
void json_int(struct json *j, const char *k, long long v);
void json_num(struct json *j, const char *k, double v, int decimals);
void json_obj_end(struct json *j);
int json_close(struct json *j);

/* ---- the subcommands ------------------------------------------------------------ */

int cmd_mailbox(const struct opts *o); /* mailbox.c */
int cmd_handle(const struct opts *o);  /* handle.c */
int cmd_ping(const struct opts *o);    /* reqload.c */
int cmd_echo(const struct opts *o);    /* reqload.c */
int cmd_fanout(const struct opts *o);  /* fanout.c */
int cmd_idle(const struct opts *o);    /* idle.c */
int cmd_handshake(const struct opts *o); /* handshake.c (with OpenSSL) */
int cmd_work(const struct opts *o);    /* work.c */
int cmd_heartbeat(const struct opts *o); /* heartbeat.c */

#endif
