/* testhelp.h: small blocking clients and waiting helpers for the suites.
 * The suites rely on Check running each test in its own fork (the default;
 * never CK_FORK=no): the recording server and counters are globals. */
#ifndef AC_TESTHELP_H
#define AC_TESTHELP_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Blocking client sockets with a receive timeout of 10 s. */
int th_connect_tcp(const char *host, int port);
int th_connect_unix(const char *path);
void th_write_all(int fd, const void *buf, size_t len);

/* The same without Check asserts, for a process forked from a test (a
 * failed assert there would report for the test): a connected blocking
 * socket without timeouts, TCP ones with TCP_NODELAY, or -errno. rcvbuf
 * > 0 sets SO_RCVBUF first (a client that cannot take much output). */
int th_dial_tcp(const char *host, int port, int rcvbuf);
int th_dial_unix(const char *path);
/* Sends all of buf; false if the peer is gone or the send failed. */
bool th_send_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes; returns false on EOF, error or timeout. */
bool th_read_full(int fd, void *buf, size_t len);
/* Reads until EOF or error; returns true if the peer closed within ms. */
bool th_wait_eof(int fd, int ms);

/* Polls pred(arg) every millisecond for up to ms; returns its last value. */
bool th_wait(bool (*pred)(void *), void *arg, int ms);
/* Waits until *p >= want (atomic loads), up to ms. */
bool th_wait_ge(const int64_t *p, int64_t want, int ms);

/* Asserts that every live-object count is zero. */
void th_assert_no_live_objects(void);

/* A per-suite Check runner: runs s, prints the summary, returns exit code. */
int th_run(Suite *s);

uint64_t th_now_ms(void);

/* Makes the TLS tests' certificates (tests/tls_certs.sh) in a new
 * directory, whose name goes to dir; false (with a message) on failure.
 * Then, at the end, removes them. */
bool th_tls_certs(char *dir, size_t len);
void th_tls_certs_remove(const char *dir);

#endif

/*
 * A recording server shared by the suites (tests are forked, so one global
 * instance is enough). Each connection's index is its ac_conn_data; by
 * default it echoes frames back in the listener's framing.
 */
#define TH_MAX_CONNS 4096
struct th_server {
	ac_runtime_t *rt;
	ac_listener_t *l;
	int port;
	int framing;
	int64_t opened, closed, frames; /* atomic */
	ac_handle_t handles[TH_MAX_CONNS]; /* by open order */
	int reasons[TH_MAX_CONNS];
	int64_t close_count[TH_MAX_CONNS];
	/* optional: replaces the echo */
	void (*on_frame)(ac_conn_t *c, const void *data, size_t len);
	void (*on_open)(ac_conn_t *c);
	void (*on_message)(ac_conn_t *c, int kind, void *payload);
	void (*on_drain)(ac_conn_t *c);
};
extern struct th_server th_srv;

/* Creates and starts a runtime with `loops` loops listening on addr. */
void th_server_start(int loops, const char *addr, const ac_conn_opts_t *opts);
/* The same with a runtime configuration of the caller's. */
void th_server_start_cfg(const ac_config_t *cfg, const char *addr,
			 const ac_conn_opts_t *opts);
/* The handle of the i-th connection opened, waiting up to 5 s for it to be
 * published (opened is counted before the handle is stored). */
ac_handle_t th_handle(int i);
/* th_wait predicates: at least (intptr_t)n connections opened / closed. */
bool th_opened_ge(void *n);
bool th_closed_ge(void *n);
/* Frees the recording server's runtime and asserts nothing is left. */
void th_finish(void);
/* Writes a frame in framing f on a client socket. */
void th_send_frame(int fd, int f, const void *data, size_t len);
/* Reads one frame in framing f (raw: exactly want bytes) into buf. */
size_t th_recv_frame(int fd, int f, void *buf, size_t cap, size_t want);
/* The echo the default server does, usable from a custom on_frame. */
void th_echo(ac_conn_t *c, const void *data, size_t len);
