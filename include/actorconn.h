/*
 * actorconn.h: the public interface of libactorconn.
 *
 * libactorconn runs one libevent loop per core. Each connection is an actor
 * owned by exactly one loop; only that loop touches it. Other threads reach
 * a connection through an ac_handle_t, a weak handle that can go stale but
 * never dangles.
 *
 * Thread rules, in one place (each function's comment repeats its own):
 *   "owner loop"  the call is valid only on the loop thread that owns the
 *                 connection, inside a callback or code posted to that loop.
 *   "a loop"      any loop thread of the runtime the call names.
 *   "any thread"  the call is safe from any thread, concurrently.
 *   "control"     any thread that is not a loop of this runtime; not
 *                 concurrently with ac_runtime_free.
 * Every "owner loop" and "a loop" call checks the calling thread (one
 * thread-local compare) and, from any other thread, returns AC_ETHREAD
 * without changing anything (from another loop it reads the object's
 * loop, which never changes; from any other thread not even that).
 *
 * Errors are negative AC_E* values or negative errno values; 0 is success.
 * ac_strerror() and ac_err_name() describe them. See actorconn(7).
 *
 * Structs: zero one, then set the fields you want; a zeroed field takes
 * its default. Each ends with a reserved array, where later versions add
 * fields without changing its size or layout; it must stay zero (input
 * structs with anything there are refused with AC_EINVAL). ac_version()
 * says which library a program runs with. See "GROWING STRUCTURES" in
 * actorconn(7).
 */
#ifndef ACTORCONN_H
#define ACTORCONN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AC_EXPORT __attribute__((visibility("default")))
#else
#define AC_EXPORT
#endif

/* The version this header belongs to: what a program was compiled
 * against. ac_version() says which library it runs with. */
#define AC_VERSION_MAJOR 0
#define AC_VERSION_MINOR 4
#define AC_VERSION_PATCH 0
#define AC_VERSION_HEX                                                        \
	((AC_VERSION_MAJOR << 16) | (AC_VERSION_MINOR << 8) | AC_VERSION_PATCH)

/* ---- errors and close reasons -------------------------------------------
 *
 * One convention, libuv's: 0 is success, an error is negative. Where POSIX
 * has the code, AC_E* is its negative errno (AC_EINVAL == -EINVAL), and a
 * failed system call is returned as its own -errno (-EADDRINUSE, -EMFILE,
 * ...), so any negative errno value may come back. The library's own codes
 * sit below AC__ERR_LIB (-4096), a range no errno reaches. ac_strerror()
 * and ac_err_name() describe every code, errno values included.
 *
 * The same codes are the close reasons passed to on_close and counted in
 * ac_stats (see enum ac_close_reason):
 *
 *   0               closed by this side (ac_conn_close, ac_close)
 *   AC_EEOF         the peer closed
 *   AC_ECONNRESET   the peer reset the connection (or vanished: EPIPE)
 *   AC_ETIMEDOUT    idle timeout: nothing received for idle_timeout_ms;
 *                   also the kernel giving up on a silent peer, and an
 *                   outbound connect that took connect_timeout_ms
 *   AC_EWTIMEDOUT   write timeout: output stuck for write_timeout_ms
 *   AC_EFRAME       malformed or oversized frame
 *   AC_ESLOW        slow consumer: output over its hard or soft limit
 *   AC_ELIMIT       over max_conns: an accepted connection is closed at
 *                   once, before on_open, so no callback sees it (counted
 *                   in ac_stats rejected and closed[AC_CR_LIMIT]); an
 *                   outbound attempt ends with on_close(AC_ELIMIT)
 *   AC_ESHUTDOWN    the runtime stopped
 *   AC_ENOMEM       the library could not allocate for this connection
 *   AC_ENAME        outbound: the host name could not be resolved
 *   AC_ETLS         TLS: the handshake failed, or a record was bad
 *   AC_ECERT        TLS: the peer's certificate was not verified (an
 *                   outbound connection's server, or a client under
 *                   mutual TLS); ac_conn_tls_info says why
 *   AC_EHANDSHAKE   TLS: the handshake did not finish within the
 *                   context's handshake_timeout_ms
 *   -errno          any other socket error, as the kernel reported it;
 *                   outbound attempts that fail say why this way
 *                   (-ECONNREFUSED, -ENETUNREACH, -EHOSTUNREACH, ...)
 */
#define AC__ERR_LIB (-4096)
/* XX(name, value, close-reason index (enum ac_close_reason, AC_CR_ prefix
 * left out), message): one table makes the codes, their names, their
 * messages and the statistics' close-reason index of each. */
#define AC_ERRNO_MAP(XX)                                                      \
	XX(EINVAL, -EINVAL, ERROR, "invalid argument")                        \
	XX(ENOMEM, -ENOMEM, ERROR, "out of memory")                           \
	XX(EAGAIN, -EAGAIN, ERROR,                                            \
	   "resource temporarily unavailable (a full mailbox or work pool)")  \
	XX(ESTALE, -ESTALE, ERROR, "stale handle: the connection is gone")    \
	XX(ESHUTDOWN, -ESHUTDOWN, SHUTDOWN, "runtime is stopping or stopped") \
	XX(ETIMEDOUT, -ETIMEDOUT, TIMEOUT, "timed out")                       \
	XX(ECONNRESET, -ECONNRESET, RESET, "connection reset by peer")        \
	XX(EEXIST, -EEXIST, ERROR, "already present")                         \
	XX(ENOENT, -ENOENT, ERROR, "no such entry, file or directory")        \
	XX(EALREADY, -EALREADY, ERROR,                                        \
	   "already done (it ran or was cancelled)")                          \
	XX(EBUSY, -EBUSY, ERROR,                                              \
	   "too late: the work has started")                                  \
	XX(ECANCELED, -ECANCELED, ERROR, "cancelled before it started")       \
	XX(ESTATE, AC__ERR_LIB - 1, ERROR,                                    \
	   "operation not valid in the current state")                        \
	XX(EADDR, AC__ERR_LIB - 2, ERROR, "malformed address")                \
	XX(EEOF, AC__ERR_LIB - 3, EOF, "peer closed the connection")          \
	XX(EFRAME, AC__ERR_LIB - 4, FRAME, "malformed or oversized frame")    \
	XX(ESLOW, AC__ERR_LIB - 5, SLOW,                                      \
	   "slow consumer: output limit exceeded")                            \
	XX(ELIMIT, AC__ERR_LIB - 6, LIMIT, "limit reached")                   \
	XX(ETHREAD, AC__ERR_LIB - 7, ERROR,                                   \
	   "called from a thread that may not make this call")                \
	XX(EWTIMEDOUT, AC__ERR_LIB - 8, WTIMEOUT,                             \
	   "pending output made no progress in time")                         \
	XX(ENAME, AC__ERR_LIB - 9, CONNECT, "host name could not be resolved") \
	XX(ENOTSUP, -ENOTSUP, ERROR,                                          \
	   "operation not supported (TLS: built without OpenSSL)")           \
	XX(ETLS, AC__ERR_LIB - 10, TLS, "TLS handshake or protocol failure")  \
	XX(ECERT, AC__ERR_LIB - 11, TLS,                                      \
	   "peer certificate not verified (see ac_conn_tls_info)")            \
	XX(EHANDSHAKE, AC__ERR_LIB - 12, TLS,                                 \
	   "TLS handshake did not finish in time")

enum ac_errno {
	AC_OK = 0,
#define AC__ERR_ENUM(name, val, cr, msg) AC_##name = (val),
	AC_ERRNO_MAP(AC__ERR_ENUM)
#undef AC__ERR_ENUM
};

/*
 * Functions that return a pointer or a handle rather than an int report a
 * wrong thread by returning NULL (AC_HANDLE_NONE) with errno set to EPERM,
 * the errno form of AC_ETHREAD; their other failures set errno to EINVAL
 * or ENOMEM as each says.
 */

/* Any thread. The version of the library the program runs with, as
   AC_VERSION_HEX encodes it ((major << 16) | (minor << 8) | patch). */
AC_EXPORT unsigned ac_version(void);
/* Any thread. The same as "MAJOR.MINOR.PATCH" (static storage). */
AC_EXPORT const char *ac_version_string(void);

/* Any thread. A static message for code (0 gives "success"); a negative
   errno value gets the system's message for it. */
AC_EXPORT const char *ac_strerror(int code);
/* Any thread. The symbolic name of code: "AC_ESTALE" for the library's
   codes, "EADDRINUSE" for another negative errno, "AC_E???" otherwise. */
AC_EXPORT const char *ac_err_name(int code);

/* ---- types --------------------------------------------------------------- */

typedef struct ac_runtime_s ac_runtime_t;
typedef struct ac_conn_s ac_conn_t;
typedef struct ac_listener_s ac_listener_t;

/*
 * A weak reference to a connection: owner loop, slot and generation packed
 * in 64 bits. Copy it freely, across threads. It never keeps a connection
 * alive; once the connection closes every call through it returns
 * AC_ESTALE. AC_HANDLE_NONE is never a valid handle.
 */
typedef uint64_t ac_handle_t;
#define AC_HANDLE_NONE ((ac_handle_t)0)

/*
 * Choosing a loop: wherever a loop is an argument or an option
 * (ac_loop_post, ac_watch, ac_work_submit, ac_conn_opts_t.loop), loop i
 * is named AC_LOOP(i), and AC_LOOP_DEFAULT (0, so a zeroed option means
 * it) lets the library choose: the calling loop when the caller is a loop
 * of the runtime, otherwise round robin (ac_loop_post, ac_connect) or
 * loop 0 (ac_watch). A raw index is refused with AC_EINVAL, so an index passed
 * by mistake never lands on the wrong loop. Where the library reports a
 * loop (ac_loop_index, AC_HANDLE_LOOP, ac_stats' per_loop[i],
 * ac_conn_info_t.loop) it gives the index i itself.
 */
#define AC_LOOP_DEFAULT 0
#define AC__LOOP_TAG 0x10000
#define AC_LOOP(i) (AC__LOOP_TAG | (int)(i))

/* Runtime configuration. A zeroed field takes its default. */
typedef struct ac_config {
	int loops;                 /* loop threads; 0: the CPUs this process
				      may use less one, at least 1 (max 256) */
	int pin_cpus;              /* nonzero: pin loop i to CPU i mod CPUs */
	unsigned mailbox_capacity; /* messages per mailbox ring, rounded up to
				      a power of two; 0: 4096; at most
				      AC_MAILBOX_MAX */
	unsigned max_conns;        /* open connections, all loops; 0: no limit */
	/* Diagnostics (accept back-off and the like). Called on the loop that
	   saw the condition; NULL: one line on stderr. */
	void (*log)(int level, const char *msg, void *arg);
	void *log_arg;
	/* Resolver configuration for ac_connect host names, in resolv.conf
	   form ("nameserver IP[:PORT]" lines); NULL: /etc/resolv.conf. Names
	   in /etc/hosts resolve without a query either way. */
	const char *resolv_conf;
	/* Worker pool for ac_work_submit: threads, started as work arrives
	   and joined by ac_runtime_stop; 0: 4; at most AC_WORK_THREADS_MAX. */
	int work_threads;
	/* Work items at once: queued, running, or whose done has not run
	   yet; a submit over it gets AC_EAGAIN. 0: 1024; at most
	   AC_WORK_MAX. */
	unsigned work_capacity;
	/* Write coalescing for large groups, off by default: a loop that
	   wrote two or more publishes of a group together (they came faster
	   than it wrote them) to at least AC_FANOUT_WAIT_MEMBERS of its
	   members waits, before it polls again, as long as that turn took
	   from then on, up to this many microseconds; what arrives meanwhile
	   goes to the members together. A turn that joined as many as the
	   loop joins at once (256) does not wait. Less CPU per delivery
	   under load, at the price of that wait in latency for everything on
	   the loop (see ac_runtime_new(3)). 0: no wait; at most
	   AC_FANOUT_WAIT_MAX. */
	unsigned fanout_wait_us;
	uint64_t reserved[7]; /* zero: room for later fields (see actorconn(7)) */
} ac_config_t;

/* ac_config_t.fanout_wait_us: the members a fan-out needs on a loop to
   make it wait, and the longest wait. */
#define AC_FANOUT_WAIT_MEMBERS 64
#define AC_FANOUT_WAIT_MAX 100000u

/* The largest ac_config_t.mailbox_capacity: 32 MiB of ring per producer. */
#define AC_MAILBOX_MAX (1u << 20)
/* The largest ac_config_t.work_threads and work_capacity. */
#define AC_WORK_THREADS_MAX 256
#define AC_WORK_MAX (1u << 20)

enum ac_log_level { AC_LOG_ERROR = 0, AC_LOG_WARN = 1, AC_LOG_INFO = 2 };

/* Framing: how the byte stream is cut into on_frame calls. */
enum ac_framing {
	AC_FRAME_RAW = 0, /* each read is one frame */
	AC_FRAME_LINE,    /* lines ended by "\n" or "\r\n"; ending stripped */
	AC_FRAME_LEN32,   /* 4-byte big-endian length, then that many bytes */
	AC_FRAME_CUSTOM   /* ac_conn_opts_t.decode cuts the frames */
};

/*
 * One decoded frame, as a decoder reports it. The frame is
 * buf[off, off + len); consumed bytes (>= off + len) leave the input.
 * When no frame is complete, need is the input length at which trying
 * again can make progress (0 if unknown), and resume any note the
 * decoder wants back at its next call on the same input (how far it
 * got), so that it need not start over: the library passes it in
 * resume then, and 0 once input has been consumed or at any time it
 * cannot keep it. The other fields come in zeroed.
 */
typedef struct ac_frame {
	size_t off;
	size_t len;
	size_t consumed;
	size_t need;
	size_t resume;
} ac_frame_t;

/*
 * A frame decoder: a pure function of its input. Returns 1 and fills *out
 * when buf starts with a complete frame, 0 when more input is needed, or
 * AC_EFRAME when the input is malformed or the frame would exceed
 * max_frame bytes.
 */
typedef int (*ac_decode_fn)(const void *buf, size_t len, size_t max_frame,
			    ac_frame_t *out);

/* Any thread. The built-in decoders, exposed for tests and reuse. */
AC_EXPORT int ac_decode_raw(const void *buf, size_t len, size_t max_frame,
			    ac_frame_t *out);
AC_EXPORT int ac_decode_line(const void *buf, size_t len, size_t max_frame,
			     ac_frame_t *out);
AC_EXPORT int ac_decode_len32(const void *buf, size_t len, size_t max_frame,
			      ac_frame_t *out);

/* Per-connection options. A zeroed field takes its default. */
typedef struct ac_conn_opts {
	int framing;          /* enum ac_framing; default AC_FRAME_RAW */
	ac_decode_fn decode;  /* used with AC_FRAME_CUSTOM */
	size_t max_frame;     /* largest frame accepted; 0: 1 MiB */
	unsigned linger_ms;   /* longest wait for output to drain in an
				 AC_CLOSE_FLUSH close; 0: 5000 */

	/* Liveness; 0 disables each. */
	unsigned idle_timeout_ms;  /* nothing received this long: close with
				      AC_ETIMEDOUT */
	unsigned heartbeat_ms;     /* period of on_heartbeat, or of writing
				      ping when on_heartbeat is NULL (one of
				      the two is required); heartbeats fall
				      on a grid of a hundredth of it (1 to
				      100 ms), so that those due together
				      share a loop wake-up */
	const void *ping;          /* heartbeat payload (copied at listen) */
	size_t ping_len;
	unsigned write_timeout_ms; /* pending output that makes no progress
				      this long: close with AC_EWTIMEDOUT */

	/* Output bounds (bytes queued but not yet taken by the kernel).
	   They must keep out_low < out_high <= out_hard_limit and
	   out_soft_limit <= out_hard_limit; defaults of fields left 0 are
	   chosen to fit the ones that are set, and settings that cannot
	   work are refused with AC_EINVAL and a log line saying why. */
	size_t out_low;            /* on_drain below this; 0: 64 KiB, or
				      out_high / 4 if that is less */
	size_t out_high;           /* ac_conn_writable false above; 0: 256 KiB */
	size_t out_hard_limit;     /* over it: close with AC_ESLOW; 0: 8 MiB,
				      or out_high if that is more */
	size_t out_soft_limit;     /* over it for out_soft_ms: AC_ESLOW;
				      0: 1 MiB, raised to out_high and
				      capped at out_hard_limit */
	unsigned out_soft_ms;      /* 0: 10000 */

	/* Listeners only: open connections from this listener; 0: no limit. */
	unsigned max_conns;

	/* TLS on this listener or outbound connection (see ac_tls_new),
	   which holds its own reference; NULL: plain. */
	struct ac_tls_s *tls;
	/* Outbound only: the server name sent (SNI) and checked against the
	   certificate; NULL: the host part of addr. */
	const char *tls_name;

	/* Outbound only (ac_connect, pools). */
	int loop;                  /* owner loop, AC_LOOP(i); AC_LOOP_DEFAULT
				      (0): the calling loop, or round robin
				      off-loop */
	unsigned connect_timeout_ms; /* name lookup plus connect; 0: 10000 */
	unsigned reconnect_min_ms; /* first back-off; 0: never reconnect */
	unsigned reconnect_max_ms; /* largest back-off; 0: 30000 */
	unsigned reconnect_max_attempts; /* failed attempts in a row before
					    the final close; 0: no limit */

	/* Socket options, set on each connection as it is accepted,
	   connected or adopted; 0 keeps the default. The TCP ones
	   (nodelay, keepalive*, user_timeout_ms) apply to TCP only and
	   Unix-domain sockets skip them; sndbuf and rcvbuf apply to both.
	   Out-of-range values are refused with AC_EINVAL and a log line
	   saying why. See ac_listen(3). */
	int nodelay;               /* TCP_NODELAY: 0 or AC_ON: on (the
				      library already batches a callback's
				      writes into one send); AC_OFF: off */
	int keepalive;             /* SO_KEEPALIVE: 0: left as the system
				      has it (off); AC_ON; AC_OFF. Setting
				      one of the three below turns it on */
	unsigned keepalive_idle_s; /* TCP_KEEPIDLE, 1..32767 s of silence
				      before the first probe; 0: system's */
	unsigned keepalive_intvl_s; /* TCP_KEEPINTVL, 1..32767 s between
				       probes; 0: system's */
	unsigned keepalive_cnt;    /* TCP_KEEPCNT, 1..127 probes unanswered
				      before the kernel gives up; 0: system's */
	unsigned user_timeout_ms;  /* TCP_USER_TIMEOUT: sent data left
				      unacknowledged this long ends the
				      connection (AC_ETIMEDOUT), up to
				      INT_MAX; 0: the system's */
	int sndbuf;                /* SO_SNDBUF bytes, 0..INT_MAX/2 (the
				      kernel doubles it); 0: the system's */
	int rcvbuf;                /* SO_RCVBUF, likewise */
	/* Listeners only: the listen(2) backlog, capped by the kernel at
	   net.core.somaxconn; 0: 4096. */
	int backlog;
	uint64_t reserved[8]; /* zero: room for later fields */
} ac_conn_opts_t;


/* ac_conn_opts_t switches (nodelay, keepalive): 0 takes the default. */
enum ac_switch { AC_ON = 1, AC_OFF = 2 };

/*
 * Connection callbacks. All run on the owner loop. Every connection that
 * got on_open gets exactly one on_close. Closing the connection inside any
 * callback is allowed; its memory is released only after the callback
 * returns. No callback runs from inside the API call that caused it.
 */
typedef struct ac_conn_cbs {
	/* the connection is established and registered */
	void (*on_open)(ac_conn_t *c);
	/* one decoded frame; data is valid only during the call */
	void (*on_frame)(ac_conn_t *c, const void *data, size_t len);
	/* a message from ac_tell; the callee owns payload */
	void (*on_message)(ac_conn_t *c, int kind, void *payload);
	/* output fell below out_low after having gone above out_high */
	void (*on_drain)(ac_conn_t *c);
	/* every heartbeat_ms while open */
	void (*on_heartbeat)(ac_conn_t *c);
	/* the end: reason is 0 (closed by this side), an AC_E* code or
	   another -errno (see "errors and close reasons" above). Writes
	   are refused from here on; ac_conn_data still works. */
	void (*on_close)(ac_conn_t *c, int reason);
	/* the runtime is draining (ac_runtime_drain): say goodbye if the
	   protocol has a way, finish, and close; writes still work. NULL:
	   the drain closes c as ac_conn_close(c, AC_CLOSE_FLUSH) would */
	void (*on_goaway)(ac_conn_t *c);
	void (*reserved[4])(void); /* NULL: room for later callbacks */
} ac_conn_cbs_t;

/* ---- TLS -----------------------------------------------------------------------
 * A TLS context (OpenSSL 3 underneath): certificates, keys and settings,
 * shared read-only by every loop. Listeners and outbound connections take
 * one in ac_conn_opts_t.tls; a connection's owner loop does all of its TLS
 * work, and every bound (frames, output limits, timeouts) applies to the
 * plaintext as it does without TLS. Built --without-openssl, ac_tls_new
 * returns NULL with errno ENOTSUP and the rest return AC_ENOTSUP. */

typedef struct ac_tls_s ac_tls_t;

enum ac_tls_role {
	AC_TLS_SERVER = 0, /* for listeners */
	AC_TLS_CLIENT = 1  /* for ac_connect and pools */
};

enum ac_tls_version { AC_TLS_1_2 = 12, AC_TLS_1_3 = 13 };

enum ac_tls_verify {
	/* Server: no client certificate asked for. Client: the server's
	   certificate must chain to ca_file (or the system's CAs) and name
	   the server (tls_name, or the host of the address). */
	AC_TLS_VERIFY_DEFAULT = 0,
	/* Client only, for tests: any server certificate is accepted. */
	AC_TLS_VERIFY_NONE = 1,
	/* Server only, mutual TLS: a client certificate that chains to
	   ca_file is required. Without one the server closes the
	   connection with AC_ECERT before on_open (counted in
	   closed[AC_CR_TLS]); the client hears an alert: AC_ETLS for a
	   client of this library, which under TLS 1.3 may come after its
	   on_open, since a TLS 1.3 client finishes first. */
	AC_TLS_VERIFY_CLIENT = 2
};

/* A zeroed field takes its default. Strings are copied. */
typedef struct ac_tls_opts {
	int role;              /* enum ac_tls_role */
	const char *cert_file; /* PEM certificate chain: a server's (required),
				  or a client's for mutual TLS */
	const char *key_file;  /* PEM private key of cert_file */
	const char *ca_file;   /* PEM CA certificates to verify the peer with;
				  NULL: a client uses the system's */
	int min_version;       /* AC_TLS_1_2 (default) or AC_TLS_1_3 */
	const char *ciphers;   /* TLS 1.2 cipher list (OpenSSL's syntax);
				  NULL: OpenSSL's default */
	const char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL's default */
	const char *alpn;      /* protocols, comma-separated ("h2,http/1.1"):
				  a client offers them, a server picks the
				  first of its own the client offers; NULL:
				  none */
	int verify;            /* enum ac_tls_verify */
	unsigned handshake_timeout_ms; /* a handshake not done in this time
				  closes with AC_EHANDSHAKE; 0: 5000 */
	uint64_t reserved[8]; /* zero: room for later fields */
} ac_tls_opts_t;

/*
 * Any thread. A TLS context from o, reading the files now. NULL on failure
 * with errno EINVAL (why, if not NULL, says what: a missing file, a key
 * that does not match its certificate, a bad cipher list ...), ENOMEM, or
 * ENOTSUP without OpenSSL. One reference, the caller's.
 */
AC_EXPORT ac_tls_t *ac_tls_new(const ac_tls_opts_t *o, char *why,
			       size_t whylen);

/*
 * Any thread. Reads the certificate, key and CA files again: handshakes
 * that start after the call use them, connections already open keep
 * theirs. Returns 0, or AC_ETLS and the reason in why when the files do
 * not make a working context: the old one stays in force. AC_EINVAL,
 * AC_ENOTSUP.
 */
AC_EXPORT int ac_tls_reload(ac_tls_t *t, char *why, size_t whylen);

/*
 * Any thread. Server name indication: a client that asks for name gets
 * ctx's certificate chain, key and ALPN list instead of server's; who is
 * verified, and against which CAs, stays server's. name is a host name or
 * "*.domain" (one label); the first match in the order added wins, and a
 * name no entry matches gets server's own. server keeps a reference to
 * ctx. One level only: ctx may not have SNI entries of its own, nor
 * server be another's entry. 0, AC_EINVAL (not both servers, one level
 * broken, or a bad name), AC_ENOMEM, AC_ENOTSUP.
 */
AC_EXPORT int ac_tls_sni(ac_tls_t *server, const char *name, ac_tls_t *ctx);

/* Any thread. Drops the caller's reference; listeners and connections
   that use t keep theirs. */
AC_EXPORT void ac_tls_free(ac_tls_t *t);

/* What a TLS connection negotiated, copied out by ac_conn_tls_info. */
typedef struct ac_tls_info {
	char version[16];      /* "TLSv1.3", ... ("" before the handshake) */
	char cipher[64];
	char alpn[32];         /* the protocol chosen, or "" */
	char server_name[256]; /* the SNI name: sent (client), asked for
				  (server), or "" */
	char peer_subject[256]; /* the peer certificate's subject, or "" */
	int resumed;           /* the session was resumed */
	int verify_result;     /* OpenSSL's X509_V_* code; 0: verified */
	char verify_error[128]; /* why a certificate was refused, or "" */
	uint64_t reserved[4]; /* zeroed: room for later fields */
} ac_tls_info_t;

/*
 * Owner loop. What c's TLS session negotiated; inside on_close after a
 * failed handshake, why it failed. 0, AC_EINVAL (c is not a TLS
 * connection), AC_ETHREAD, AC_ENOTSUP.
 */
AC_EXPORT int ac_conn_tls_info(const ac_conn_t *c, ac_tls_info_t *out);

/* ---- runtime ---------------------------------------------------------------- */

/*
 * Any thread. Creates a runtime; cfg may be NULL for defaults. The loops
 * do not run until ac_runtime_start. Returns NULL on failure with errno
 * set: EINVAL for a config that cannot work (it also says why through
 * cfg->log, or on stderr), ENOMEM, or the failing call's errno.
 */
AC_EXPORT ac_runtime_t *ac_runtime_new(const ac_config_t *cfg);

/* Control thread. Starts the loop threads. 0, AC_EINVAL (NULL rt),
   AC_ESTATE if already started, or the -errno of a failed pthread_create
   (the runtime is then stopped). */
AC_EXPORT int ac_runtime_start(ac_runtime_t *rt);

/*
 * Control thread (a loop of rt, a work function of rt, or a callback the
 * stop itself runs, gets AC_ETHREAD). First stops the worker pool: work
 * not yet started completes with AC_ESHUTDOWN, and running work
 * functions are waited for (see ac_work_submit). Then stops accepting,
 * lets pending
 * output drain for up to grace_ms, closes every connection (on_close with
 * AC_ESHUTDOWN), and joins the loops. Messages still queued are then
 * settled on the calling thread: posted functions run (ac_loop_index()
 * returns -1 there), ac_tell payloads are dropped through their drop
 * function, ac_send copies are freed and counted as dropped, and work
 * completions run. Calling it again, or before start, is harmless and
 * returns 0.
 */
AC_EXPORT int ac_runtime_stop(ac_runtime_t *rt, int grace_ms);

/*
 * Control thread. Stops the runtime if needed (grace 0) and frees it with
 * everything it still holds, listeners included. No other thread may use
 * rt, its handles' runtime or its listeners during or after this call.
 * Returns 0 (also for NULL), or AC_ETHREAD, leaving rt intact, when called
 * on a loop of rt, from a work function of rt, or from a callback that a
 * stop of rt is running.
 */
AC_EXPORT int ac_runtime_free(ac_runtime_t *rt);

/*
 * Graceful drain. Any thread. Starts ending rt's connections without
 * stopping it: every loop stops accepting (its listening sockets close,
 * so new connections are refused, and ac_listen returns AC_ESHUTDOWN),
 * pool waiters fail with AC_ESHUTDOWN and idle pooled connections
 * close, and every open connection hears on_goaway on its owner loop,
 * where it may still write (a "server going away" frame) and should
 * finish and close; without on_goaway it is closed as by
 * ac_conn_close(AC_CLOSE_FLUSH). Connections not yet open are closed
 * with AC_ESHUTDOWN; ones that open during the drain (ac_connect still
 * works) hear on_goaway right after on_open. After deadline_ms (0: no
 * deadline) what is left is closed with AC_ESHUTDOWN. A loop is drained
 * the first time it has no connection left; when every loop is,
 * done(arg) (may be NULL) runs once, on the last loop to drain, or on
 * the thread of an ac_runtime_stop that came first. The loops keep
 * running (timers, posts) until ac_runtime_stop, which still works at
 * any time. Returns 0, AC_EINVAL, AC_ESTATE (not started), AC_EALREADY
 * (a drain was already started) or AC_ESHUTDOWN (stopping or stopped).
 */
AC_EXPORT int ac_runtime_drain(ac_runtime_t *rt, unsigned deadline_ms,
			       void (*done)(void *arg), void *arg);

/*
 * Control thread (a loop of rt gets AC_ETHREAD). Waits until every loop
 * of a drain has drained, or the runtime stopped: up to timeout_ms (0:
 * just look; -1: no limit). Returns 0 when drained, AC_ETIMEDOUT,
 * AC_ESTATE (no drain was started), AC_EINVAL.
 */
AC_EXPORT int ac_runtime_drain_wait(ac_runtime_t *rt, int timeout_ms);

/* Any thread. The number of loops. */
AC_EXPORT int ac_runtime_loops(const ac_runtime_t *rt);

/*
 * Any thread. Runs fn(arg) once on loop `loop`: AC_LOOP(i) for loop i, or
 * AC_LOOP_DEFAULT for the calling loop (round robin from a thread that is
 * not a loop of rt). Posts from one thread to one loop run in the order
 * posted; a loop's post to itself runs when the callbacks of its current
 * turn have returned, before it polls again (one posted from such a run
 * waits for the next turn). Ownership of arg passes to fn.
 * Returns 0, AC_EINVAL (bad loop, a raw index included), AC_EAGAIN
 * (mailbox full, foreign thread only: a loop caller's message waits in an
 * overflow list instead), AC_ENOMEM, or AC_ESHUTDOWN (stopped). On error
 * fn never runs.
 */
AC_EXPORT int ac_loop_post(ac_runtime_t *rt, int loop, void (*fn)(void *),
			   void *arg);

/* Any thread. The index of the calling loop thread, or -1 off-loop. */
AC_EXPORT int ac_loop_index(void);

/* ---- servers ------------------------------------------------------------------ */

/*
 * Control thread or any loop. Listens on addr: "127.0.0.1:PORT",
 * "[::1]:PORT", "HOST:PORT" (resolved now, blocking) or "unix:/path". Port
 * 0 picks a free port (see ac_listener_port); a port another socket holds
 * is -EADDRINUSE, even one opened with SO_REUSEPORT. TCP listeners open
 * one SO_REUSEPORT socket per loop, so a connection belongs to the loop that
 * accepted it; a Unix listener accepts on loop 0 and hands connections out
 * round-robin. cbs and opts are copied; ud is each connection's initial
 * ac_conn_data. *out stays valid until ac_listener_close or
 * ac_runtime_free. Returns 0, AC_EINVAL (also for options that cannot
 * work), AC_EADDR (malformed addr), AC_ENAME (HOST does not resolve), the
 * -errno of a failed socket call (-EADDRINUSE, -EACCES, -EMFILE, ...),
 * AC_ENOMEM or AC_ESHUTDOWN.
 */
AC_EXPORT int ac_listen(ac_runtime_t *rt, const char *addr,
			const ac_conn_cbs_t *cbs, const ac_conn_opts_t *opts,
			void *ud, ac_listener_t **out);

/* Any thread. The bound TCP port (0 for Unix listeners). */
AC_EXPORT int ac_listener_port(const ac_listener_t *l);

/*
 * Any thread. Stops accepting and closes the listening sockets; open
 * connections stay open. l is invalid after the call.
 */
AC_EXPORT void ac_listener_close(ac_listener_t *l);

/* ---- outbound connections ------------------------------------------------------ */

/*
 * A loop (its own connections) or a control thread (any loop). Connects to
 * addr: "IP:PORT", "[v6]:PORT", "unix:/path", or "HOST:PORT", where HOST
 * is resolved on the owner loop without blocking it (libevent's evdns,
 * /etc/hosts first). The owner loop is opts->loop (AC_LOOP(i)); by default
 * the calling loop, or round robin from a control thread. A loop may only
 * connect on itself (AC_ETHREAD otherwise; post to the other loop). A
 * control thread waits until the owner loop has registered the
 * connection, not for the connect itself.
 *
 * *out is the handle; it names the logical connection and stays the same
 * across reconnects. on_open runs on each successful connect. Every
 * attempt ends with exactly one on_close: a failure before on_open has
 * the -errno of the last address tried (-ECONNREFUSED, -ENETUNREACH, ...),
 * AC_ETIMEDOUT after connect_timeout_ms, or AC_ENAME. With
 * reconnect_min_ms set, the
 * library then waits (exponential back-off with jitter, see
 * ac_connect(3)) and tries again; inside on_close ac_conn_reconnecting(c)
 * says whether it will. It gives up after reconnect_max_attempts failed
 * attempts in a row, when the connection is closed by this side
 * (ac_conn_close, ac_close; also while waiting, which ends with
 * on_close(c, 0)) and at shutdown; that on_close is the final one, and
 * the handle is already stale when it runs. Watchers fire and registry entries go at
 * the final close only; groups and connection timers end with each
 * attempt. Writes are refused (AC_ESTATE) while not open; ac_send and
 * ac_tell messages arriving then are dropped and counted.
 *
 * cbs and opts are copied; ud is the initial ac_conn_data. Returns 0,
 * AC_EINVAL, AC_EADDR (malformed addr), AC_ETHREAD, AC_ESTATE (runtime
 * not started), AC_ESHUTDOWN, AC_EAGAIN (the owner's mailbox is full) or
 * AC_ENOMEM. On error no callback runs.
 */
AC_EXPORT int ac_connect(ac_runtime_t *rt, const char *addr,
			 const ac_conn_cbs_t *cbs, const ac_conn_opts_t *opts,
			 void *ud, ac_handle_t *out);

/* Owner loop. 1 when c will try to connect again (inside on_close: this
   close is not the final one), else 0; AC_EINVAL or AC_ETHREAD. */
AC_EXPORT int ac_conn_reconnecting(const ac_conn_t *c);

/* ---- sockets made elsewhere ----------------------------------------------------
 * Descriptors the program did not get from the library: inherited
 * listening sockets (systemd socket activation), connected sockets
 * accepted or passed by someone else. */

/*
 * A loop (onto itself) or a control thread (any loop), like ac_connect.
 * Adopts fd, a connected stream socket made elsewhere (TCP or Unix: a
 * socketpair end, a descriptor accepted or passed by another process), as
 * a connection owned by loop opts->loop (AC_LOOP(i); by default the
 * calling loop, or round robin from a control thread). The socket is made
 * non-blocking and close-on-exec, and gets opts' socket options. It is
 * served as an accepted connection is: on_open, frames, on_close; under
 * opts->tls it handshakes first, as a server or a client after the
 * context's role (a client checks the certificate against tls_name, if
 * set). opts' listener-only and outbound-only fields are ignored; the
 * runtime's max_conns applies. A control thread waits until the owner
 * loop has taken it; on_open never runs inside the call (one closed
 * before it opens gets no callback). *out is its handle. From a
 * successful call the library owns fd (it closes it at the connection's
 * end); on error the caller keeps fd, open and as it was. Returns 0,
 * -EBADF (not open), -ENOTSOCK (not a socket), AC_EINVAL (not a stream
 * socket, a listening socket, a family other than TCP or
 * Unix, or bad options), -ENOTCONN (not connected), AC_ETHREAD,
 * AC_ESTATE (runtime not started), AC_ESHUTDOWN, AC_ELIMIT (the runtime's
 * max_conns), AC_EAGAIN (the owner's mailbox is full), AC_ENOMEM, or the
 * -errno of a socket option that could not be set.
 */
AC_EXPORT int ac_conn_adopt(ac_runtime_t *rt, int fd, const ac_conn_cbs_t *cbs,
			    const ac_conn_opts_t *opts, void *ud,
			    ac_handle_t *out);

/*
 * Control thread or any loop. As ac_listen, on fd, a listening stream
 * socket made elsewhere (inherited, or from systemd socket activation:
 * see ac_listen_fds): TCP or Unix. The socket is accepted on loop 0,
 * which hands connections out to the loops round robin (as a Unix
 * listener does): one socket cannot be spread by the kernel the way
 * ac_listen's SO_REUSEPORT sockets are. It is made non-blocking and
 * close-on-exec; opts->backlog, if set, is applied with listen(2) again;
 * a Unix socket's file is never removed. From a successful call the
 * listener owns fd and ac_listener_close closes it; on error the caller
 * keeps it, open. Returns 0, AC_EINVAL (also: fd is not a stream socket,
 * not listening, or not TCP or Unix), -ENOTSOCK (not a socket), -EBADF
 * (not open), the -errno of a failed call, AC_ENOMEM or AC_ESHUTDOWN.
 */
AC_EXPORT int ac_listen_fd(ac_runtime_t *rt, int fd, const ac_conn_cbs_t *cbs,
			   const ac_conn_opts_t *opts, void *ud,
			   ac_listener_t **out);

/*
 * Any thread, but not concurrently with other use of the environment
 * (getenv, setenv): call it early in main. systemd socket activation,
 * with sd_listen_fds(3)'s rules and without libsystemd: when LISTEN_PID
 * is this process's id and LISTEN_FDS is n, the descriptors 3 .. 3 + n - 1
 * were passed to this process; they are made close-on-exec and n is
 * returned (give each to ac_listen_fd, or to ac_conn_adopt for a
 * connected socket of Accept=yes). 0 when the process was not activated
 * (the variables are absent, or name another process). With
 * unset_environment, LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are
 * removed, so that child processes do not take the descriptors for
 * theirs. names, if not NULL, receives LISTEN_FDNAMES as systemd sets it,
 * names separated by ':' in descriptor order ("" when unset). Returns n,
 * AC_EINVAL (a malformed variable), -EBADF (a descriptor is not open), or
 * -ERANGE when names does not fit in len bytes (then nothing changed: the
 * environment is as it was).
 */
AC_EXPORT int ac_listen_fds(int unset_environment, char *names, size_t len);

/* ---- connection pools -------------------------------------------------------------
 * Pools of outbound connections to one address, one sub-pool per loop:
 * acquiring on a loop takes no lock and only ever hands out that loop's
 * connections. */

typedef struct ac_pool_s ac_pool_t;

typedef struct ac_pool_opts {
	unsigned max_per_loop;       /* connections per loop; 0: 8 */
	unsigned min_idle_per_loop;  /* kept connected and idle; 0: none */
	unsigned acquire_timeout_ms; /* 0: 5000 */
	unsigned idle_ttl_ms;        /* idle longer: closed (above
					min_idle_per_loop); 0: never */
	unsigned max_lifetime_ms;    /* older: closed when idle or released;
					0: no limit */
	unsigned max_waiters;        /* waiting acquires per loop; 0: 1024 */
	/* Options of every connection. Heartbeats and idle_timeout_ms are
	   the health check of idle connections; reconnect_min_ms and
	   reconnect_max_ms pace refills after failed connects (defaults
	   100 ms and 5 s); opts.loop is ignored. */
	ac_conn_opts_t conn;
	/* Callbacks. on_frame and on_close run only for a borrowed
	   connection (idle ones close silently); on_message and on_drain
	   for any connection of the pool; on_open is not used. Without
	   on_heartbeat, conn.ping is written on idle connections only, and
	   one whose reply (the next frame, dropped) is due is not lent
	   until it arrives; with it, on_heartbeat runs for every
	   connection and the user owns the protocol. */
	ac_conn_cbs_t cbs;
	void *ud;                    /* each connection's ac_conn_data */
	uint64_t reserved[8]; /* zero: room for later fields */
} ac_pool_opts_t;

enum ac_pool_release_how {
	AC_POOL_REUSE = 0,  /* back to the pool, if still open and healthy */
	AC_POOL_DISCARD = 1 /* close it (pending output is flushed) */
};

/*
 * Runs exactly once per accepted acquire, on the loop that called
 * ac_pool_acquire: with a borrowed connection and err 0, or with c NULL
 * and err AC_ETIMEDOUT (acquire_timeout_ms passed), AC_ELIMIT (too many
 * waiters), AC_ESHUTDOWN (pool freed or runtime stopping), or the close
 * reason of a failed connect (-ECONNREFUSED, AC_ENAME, ...).
 */
typedef void (*ac_pool_cb)(ac_conn_t *c, int err, void *arg);

/*
 * Any thread. A pool of connections to addr (as for ac_connect); opts may
 * be NULL. Loops pre-connect min_idle_per_loop connections each as soon
 * as they run. NULL with errno EINVAL (bad argument, malformed addr, or
 * options that cannot work, which are also logged) or ENOMEM.
 */
AC_EXPORT ac_pool_t *ac_pool_new(ac_runtime_t *rt, const char *addr,
				 const ac_pool_opts_t *opts);

/*
 * A loop of p's runtime. Asks for a connection of this loop's sub-pool; cb
 * runs later, never inside this call, exactly once. Waiters are served
 * first in, first out. A failed connect fails every waiter of that loop
 * with its reason rather than leaving them to time out. Returns 0,
 * AC_EINVAL, AC_ETHREAD or AC_ENOMEM (the sub-pool could not be set up,
 * or no memory for the waiter); on error cb never runs.
 */
AC_EXPORT int ac_pool_acquire(ac_pool_t *p, ac_pool_cb cb, void *arg);

/*
 * Owner loop of c. Gives back a borrowed connection, before or inside its
 * on_close (never after: c is gone then). A connection that is closing,
 * past max_lifetime_ms, or released with AC_POOL_DISCARD is closed instead
 * of reused. Returns 0, AC_EINVAL (not borrowed from p), or AC_ETHREAD.
 * Releasing a connection that closed while borrowed returns 0.
 */
AC_EXPORT int ac_pool_release(ac_pool_t *p, ac_conn_t *c, int how);

typedef struct ac_pool_stats {
	uint64_t idle;       /* gauge: open, waiting to be borrowed */
	uint64_t busy;       /* gauge: borrowed */
	uint64_t connecting; /* gauge */
	uint64_t waiting;    /* gauge: acquires waiting for a connection */
	uint64_t connects;   /* connections established, ever */
	uint64_t failures;   /* connect attempts that failed, ever */
	uint64_t timeouts;   /* acquires that timed out, ever */
	uint64_t reserved[8]; /* zeroed: room for later fields */
} ac_pool_stats_t;

/* Any thread, no lock. Sums over the pool's loops (a snapshot). The same
   figures, summed over all pools, are in ac_stats and its Prometheus form.
   Returns 0 or AC_EINVAL. */
AC_EXPORT int ac_pool_stats(ac_pool_t *p, ac_pool_stats_t *out);

/*
 * Any thread, once; before ac_runtime_free (which frees pools left over).
 * Waiting acquires fail with AC_ESHUTDOWN, idle connections close, and the
 * pool's memory goes once every borrowed connection has been released or
 * has closed. After the call p may only be passed to ac_pool_release, for
 * connections still borrowed (they are closed, not reused).
 */
AC_EXPORT void ac_pool_free(ac_pool_t *p);

/* ---- on the owner loop ------------------------------------------------------ */

/*
 * Owner loop. Queues a copy of buf; output is flushed when the loop's
 * current turn ends, with the turn's other writes to c. Returns 0,
 * AC_EINVAL (NULL c, or NULL buf with len), AC_ETHREAD, AC_ESTATE (closing
 * or closed, or its output shut down by ac_conn_shutdown), AC_ENOMEM,
 * or AC_ESLOW when queued output would pass out_hard_limit (nothing is
 * queued and the connection is being closed with AC_ESLOW).
 */
AC_EXPORT int ac_conn_write(ac_conn_t *c, const void *buf, size_t len);

/*
 * Owner loop. A gathered write: queues one copy of the iovcnt buffers, in
 * order, all or nothing. Returns as ac_conn_write (AC_ESLOW when their
 * total would pass out_hard_limit: nothing is queued), and AC_EINVAL for
 * a negative iovcnt, NULL iov with iovcnt, a NULL base with a length, or
 * lengths whose sum overflows.
 */
AC_EXPORT int ac_conn_writev(ac_conn_t *c, const struct iovec *iov,
			     int iovcnt);

/*
 * Owner loop. Half-close: once the output queued now is sent (under TLS,
 * followed by a close_notify alert), shuts the write side of the socket
 * (shutdown(2) SHUT_WR): the peer reads the end of the stream and may
 * still send. c keeps reading; it closes when the peer closes (on_close
 * with AC_EEOF) or by ac_conn_close. Writes are refused from the call on
 * (AC_ESTATE). Returns 0 (also when already shut), AC_EINVAL, AC_ETHREAD
 * or AC_ESTATE (c is not open: closing, closed, connecting, or in its
 * TLS handshake).
 */
AC_EXPORT int ac_conn_shutdown(ac_conn_t *c);

/*
 * Owner loop. The socket under c, for getsockopt and setsockopt of
 * options the library has no field for; it stays the library's: do not
 * close, read, write, shut down or change its flags. >= 0, or AC_EINVAL,
 * AC_ETHREAD, or AC_ESTATE when c has no socket (an outbound connection
 * between attempts, and in on_close, where it is already closed).
 */
AC_EXPORT int ac_conn_fd(const ac_conn_t *c);

enum ac_close_how {
	AC_CLOSE_FLUSH = 0, /* stop reading, send pending output, then close */
	AC_CLOSE_ABORT = 1  /* close now and discard pending output */
};

/*
 * Owner loop. Closes c with reason 0. on_close runs after the current
 * callback returns, never inside this call. Closing twice is harmless.
 * Returns 0, AC_EINVAL (NULL c or a bad how) or AC_ETHREAD.
 */
AC_EXPORT int ac_conn_close(ac_conn_t *c, int how);

/* Owner loop. The handle naming c; it goes stale when c closes.
   AC_HANDLE_NONE (errno EINVAL or EPERM) for NULL c or another thread. */
AC_EXPORT ac_handle_t ac_conn_handle(const ac_conn_t *c);
/* Owner loop. The user pointer (initially the listener's ud); NULL with
   errno EINVAL (NULL c) or EPERM (another thread). */
AC_EXPORT void *ac_conn_data(const ac_conn_t *c);
/* Owner loop. Replaces the user pointer; the library never frees it.
   Returns 0, AC_EINVAL or AC_ETHREAD. */
AC_EXPORT int ac_conn_set_data(ac_conn_t *c, void *data);
/* Owner loop. The runtime that owns c; NULL (errno EINVAL or EPERM) for
   NULL c or another thread. */
AC_EXPORT ac_runtime_t *ac_conn_runtime(const ac_conn_t *c);
/* Owner loop. 0 from the moment queued output goes above out_high until
   it falls below out_low (when on_drain runs), and while closing: keep
   producing and the connection may be closed with AC_ESLOW. Else 1;
   AC_EINVAL or AC_ETHREAD. */
AC_EXPORT int ac_conn_writable(const ac_conn_t *c);
/* Owner loop. Bytes queued for c and not yet taken by the kernel;
   AC_EINVAL or AC_ETHREAD. */
AC_EXPORT ssize_t ac_conn_out_bytes(const ac_conn_t *c);
/*
 * Owner loop. Replaces c's out_hard_limit, out_soft_limit and out_soft_ms
 * (ac_conn_opts_t) with these, from now on: a server that gives some of
 * its connections more room than others, or changes the limits while
 * they are open. hard may be SIZE_MAX (no hard limit); soft at most hard
 * (equal: no soft limit); soft_ms may be 0 (over soft closes at the next
 * turn of the loop); the watermarks stay, so hard must be at least the
 * connection's out_high. Output already queued is judged at once: over
 * the new hard limit, c is closed with AC_ESLOW; over the new soft limit,
 * the soft clock starts unless it runs already. Returns 0, AC_EINVAL,
 * AC_ETHREAD, AC_ESTATE (c is closing), AC_ENOMEM or AC_ESLOW.
 */
AC_EXPORT int ac_conn_set_out_limits(ac_conn_t *c, size_t hard, size_t soft,
				     unsigned soft_ms);
/*
 * Owner loop. Replaces c's max_frame (ac_conn_opts_t), the bound its
 * decoder is given, from the next frame decoded on (input already held
 * included); 0 goes back to the listener's or connection's own. A server
 * gives a client it does not know yet a small bound (Redis limits a
 * request before AUTH) and lifts it once the client has logged in.
 * Returns 0, AC_EINVAL, AC_ETHREAD, AC_ESTATE (c is closing) or
 * AC_ENOMEM.
 */
AC_EXPORT int ac_conn_set_max_frame(ac_conn_t *c, size_t max_frame);

/*
 * Read-side flow control (libuv's uv_read_stop/uv_read_start, Twisted's
 * pauseProducing/resumeProducing). Owner loop.
 *
 * ac_conn_read_stop: c reads nothing more from its socket, so the kernel's
 * buffers fill and TCP flow control slows the peer; on_frame runs no more,
 * even for frames already read (inside on_frame, the frames after the
 * current one wait). Everything else goes on: writes, on_drain,
 * heartbeats, timers, messages. The idle timeout is suspended while
 * paused (silence the library imposed is not the peer's) and starts
 * again from zero on resume. An end of stream or reset that arrives
 * while paused is seen after resume (or by a failing write). Stopping
 * twice is harmless.
 *
 * ac_conn_read_start: reading resumes; frames held back are delivered
 * from the loop after the current callback, never inside this call.
 * Starting a connection that reads is harmless. Each attempt of an
 * outbound connection starts reading.
 *
 * Both return 0, AC_EINVAL (NULL c), AC_ETHREAD, AC_ESTATE (c is not
 * open: closing, closed, or inside on_close), or, for read_start,
 * AC_ENOMEM (then c is closed with AC_ENOMEM).
 */
AC_EXPORT int ac_conn_read_stop(ac_conn_t *c);
AC_EXPORT int ac_conn_read_start(ac_conn_t *c);
/* Owner loop. 1 when c is open and reading, 0 when paused or not open;
   AC_EINVAL or AC_ETHREAD. */
AC_EXPORT int ac_conn_reading(const ac_conn_t *c);

/* ---- shared buffers ----------------------------------------------------------
 * An immutable, reference-counted byte buffer: write the same bytes to many
 * connections without copying them. */

typedef struct ac_buf_s ac_buf_t;

/* Any thread. A buffer holding a copy of data; one reference, the
   caller's. NULL (errno ENOMEM) on failure. */
AC_EXPORT ac_buf_t *ac_buf_new(const void *data, size_t len);
/* Any thread. One more reference; returns b. */
AC_EXPORT ac_buf_t *ac_buf_ref(ac_buf_t *b);
/* Any thread. Drops a reference; the last one frees b. */
AC_EXPORT void ac_buf_unref(ac_buf_t *b);
/* Any thread. The bytes, valid while a reference is held. */
AC_EXPORT const void *ac_buf_data(const ac_buf_t *b);
AC_EXPORT size_t ac_buf_len(const ac_buf_t *b);

/*
 * Owner loop. Queues b without copying (the output buffer holds its own
 * reference until the bytes are written); the caller keeps its reference.
 * Buffers of 512 bytes or less are copied instead, which is cheaper than
 * a reference at that size. Returns as ac_conn_write.
 */
AC_EXPORT int ac_conn_write_buf(ac_conn_t *c, ac_buf_t *b);

/* ---- timers ---------------------------------------------------------------- */

typedef struct ac_timer_s ac_timer_t;

/*
 * A loop of rt. Runs fn(arg) on the calling loop after ms, then every ms
 * if repeat. Timers with the same ms share a libevent common timeout, so
 * thousands of them cost O(1) per operation. A one-shot timer is freed
 * right after fn returns; a repeating one when cancelled or when the
 * runtime stops. A repeating timer needs ms > 0. Returns NULL with errno
 * EINVAL, ENOMEM, or EPERM from any thread that is not a loop of rt.
 */
AC_EXPORT ac_timer_t *ac_timer_start(ac_runtime_t *rt, unsigned ms,
				     int repeat, void (*fn)(void *arg),
				     void *arg);

/*
 * The timer's loop. Cancels t; fn will not run again. t must not have
 * been freed (a one-shot timer is freed once its fn has returned;
 * cancelling it from inside its own fn is allowed and does nothing).
 * Returns 0, AC_EINVAL (NULL t) or AC_ETHREAD.
 */
AC_EXPORT int ac_timer_cancel(ac_timer_t *t);

/*
 * Owner loop. A timer owned by c: fn(c, arg) runs on c's loop after ms
 * (then every ms if repeat) and the timer is cancelled automatically when
 * c closes, before on_close, so it can never outlive c. A repeating timer
 * needs ms > 0. NULL on failure with errno EINVAL, ENOMEM, EPERM (not c's
 * owner loop) or EPIPE (c is closing).
 */
AC_EXPORT ac_timer_t *ac_conn_timer(ac_conn_t *c, unsigned ms, int repeat,
				    void (*fn)(ac_conn_t *c, void *arg),
				    void *arg);

/* ---- work off the loop ------------------------------------------------------
 * Blocking work (a file, a password hash, a library that blocks) runs on
 * the runtime's worker threads, never on a loop, and its completion comes
 * back to a loop through that loop's mailbox: Twisted's deferToThread,
 * libuv's uv_queue_work. The pool has ac_config_t.work_threads threads,
 * started as work arrives, and holds at most work_capacity items. Work
 * may be tied to a connection's handle, never to its pointer: done gets
 * the connection only if it is still open when done runs. */

/* On a worker thread: the blocking part. Returns 0, or a nonzero code of
   the caller's choosing (a negative errno, say) that done gets as its
   status. It may make "any thread" calls (ac_send, ac_loop_post, ...);
   it must not touch an ac_conn_t. */
typedef int (*ac_work_fn)(void *arg);

/*
 * On the completion loop (or the stopping thread: see ac_work_submit),
 * exactly once per accepted submit. c is the
 * connection the work is tied to, if it is still open (it may be
 * closing: writes then return AC_ESTATE), else NULL; always NULL for
 * untied work. status is:
 *   0, or work's nonzero return   work ran
 *   AC_ESTALE      work ran, but its tied connection has closed (work's
 *                  own return is not reported: keep it in arg if needed)
 *   AC_ECANCELED   ac_work_cancel took it before it started: never ran
 *   AC_ESHUTDOWN   the runtime stopped before it started: never ran
 */
typedef void (*ac_work_done_fn)(ac_conn_t *c, int status, void *arg);

/*
 * Any thread: a loop, a control thread, or a work function. Queues
 * work(arg) for a worker thread; then done(c, status, arg) runs exactly
 * once on the completion loop, later, never inside this call. The
 * completion loop is `loop` as AC_LOOP(i), or with 0 (AC_LOOP_DEFAULT):
 * tie's owner loop for tied work, else the calling loop, else (the
 * caller is not a loop of rt) round robin. Tied work (tie not
 * AC_HANDLE_NONE) always completes on tie's owner loop, where the
 * check that the connection is still open is exact. Work starts in
 * submit order; *id (may be NULL) names it for ac_work_cancel. The
 * library never touches arg.
 *
 * ac_runtime_stop stops the pool before the loops: work not yet started
 * completes with AC_ESHUTDOWN, and the stop waits for running work
 * functions to return, however long they take. A completion its loop
 * did not run before exiting runs on the stopping thread
 * (ac_loop_index() is -1 there) with c NULL: AC_ESTALE for tied work
 * that ran.
 *
 * Returns 0, AC_EINVAL (NULL rt, work or done; bad loop; a loop other
 * than tie's owner), AC_ESTALE (tie is closed already), AC_EAGAIN
 * (work_capacity items already: nothing was queued, try again once
 * some complete), AC_ESTATE (runtime not started), AC_ESHUTDOWN
 * (stopping or stopped) or AC_ENOMEM (no memory, or not even one worker
 * thread could start). On error done never runs and nothing is kept.
 */
AC_EXPORT int ac_work_submit(ac_runtime_t *rt, int loop, ac_handle_t tie,
			     ac_work_fn work, ac_work_done_fn done,
			     void *arg, uint64_t *id);

/*
 * Any thread; never waits for the work. Cancels work that has not
 * started: done then runs with AC_ECANCELED on its completion loop
 * (later, never inside this call). Returns 0 (cancelled), AC_EBUSY (too
 * late: work is running or has run, and done gets its result),
 * AC_EALREADY (done already ran, or the work was cancelled already, by
 * this call or by the stop), AC_EINVAL (NULL rt, or an id rt never
 * issued), or AC_EAGAIN / AC_ENOMEM (the completion could not be queued:
 * a foreign caller found the completion loop's mailbox full, or a loop
 * had no memory; nothing changed and the work is still queued).
 */
AC_EXPORT int ac_work_cancel(ac_runtime_t *rt, uint64_t id);

/* ---- from any thread, through a weak handle ----------------------------- */

/*
 * Any thread. Copies buf and queues it for the connection's owner loop,
 * which writes it. Returns 0 (accepted), AC_ESTALE (closed), AC_EAGAIN
 * (foreign thread, mailbox full), AC_ENOMEM, AC_EINVAL or AC_ESHUTDOWN. An
 * accepted message whose connection closes before it is written is
 * dropped and counted (ac_debug_counts: dropped).
 */
AC_EXPORT int ac_send(ac_runtime_t *rt, ac_handle_t h, const void *buf,
		      size_t len);

/*
 * Any thread. Delivers (kind, payload) to the connection's on_message on
 * its owner loop, which then owns payload. If the message cannot be
 * delivered after being accepted (the connection closed, no on_message,
 * shutdown), drop(payload) runs instead, exactly once (drop may be NULL).
 * On an error return nothing runs and the caller keeps payload. Errors as
 * for ac_send.
 */
AC_EXPORT int ac_tell(ac_runtime_t *rt, ac_handle_t h, int kind,
		      void *payload, void (*drop)(void *));

/*
 * Any thread. As ac_send, without copying: the message holds its own
 * reference to b until written or dropped; the caller keeps its own.
 */
AC_EXPORT int ac_send_buf(ac_runtime_t *rt, ac_handle_t h, ac_buf_t *b);

/* Any thread. Asks the owner loop to close the connection (reason 0), as
   ac_conn_close there. 0, AC_EINVAL (bad how or AC_HANDLE_NONE),
   AC_ESTALE, AC_EAGAIN (foreign thread, mailbox full), AC_ENOMEM or
   AC_ESHUTDOWN. */
AC_EXPORT int ac_close(ac_runtime_t *rt, ac_handle_t h, int how);

/* The longest label ac_conn_set_label takes, in bytes. */
#define AC_LABEL_MAX 64

/*
 * Facts about a connection. ac_conn_info (owner loop) fills every field;
 * ac_handle_info (any thread) fills those marked "any" and leaves the
 * rest zero ("", NULL), with -1 for fd and the peer's credentials.
 */
typedef struct ac_conn_info {
	int loop;                     /* owner loop's index i; any */
	int family;                   /* AF_INET, AF_INET6 or AF_UNIX; any */
	struct sockaddr_storage peer; /* peer address (TCP); any */
	socklen_t peer_len;
	char peer_str[64];            /* "1.2.3.4:5", "[::1]:5" or "unix";
					 any */
	uint64_t opened_ms;           /* wall clock, ms since the epoch, of
					 the connection (of an outbound one:
					 of its latest attempt); any */
	uint64_t bytes_in;            /* bytes read so far; any */
	uint64_t bytes_out;           /* bytes written so far; any */

	/* Counts run from the handle's birth, across an outbound
	   connection's reconnects. */
	ac_handle_t handle;           /* c's handle, also its id: unique in
					 the runtime while it lives; any */
	uint64_t age_ms;              /* now - opened_ms; any */
	uint64_t idle_ms;             /* since the last read that brought
					 bytes (or since opened_ms): the
					 peer's silence, as idle_timeout_ms
					 measures it, so writes do not
					 count; it grows while reading is
					 paused (ac_conn_read_stop), when
					 the timeout is suspended; any */
	uint64_t frames_in;           /* frames given to on_frame; any */
	uint64_t frames_out;          /* writes queued: ac_conn_write,
					 ac_conn_write_buf, ac_send,
					 ac_send_buf, group publishes and
					 heartbeat pings, one each (empty
					 ones are not queued); any */
	uint64_t out_queued;          /* bytes queued, not yet taken by the
					 kernel (ac_conn_out_bytes) */
	struct sockaddr_storage local; /* local address: TCP, or a named
					  unix socket's path */
	socklen_t local_len;          /* 0: not known (no socket) */
	char local_str[120];          /* "1.2.3.4:5", "[::1]:5",
					 "unix:/path" or "unix" */
	int fd;                       /* the socket, to show (never close
					 it); -1 without one */
	int64_t peer_pid;             /* a unix socket peer's credentials */
	int64_t peer_uid;             /* when it connected (SO_PEERCRED); */
	int64_t peer_gid;             /* -1 for TCP */
	void *ud;                     /* the ud given to the ac_listen,
					 ac_connect or ac_pool_new that made
					 c (ac_conn_data's first value): whose
					 connection it is */
	char label[AC_LABEL_MAX + 1]; /* ac_conn_set_label's; "" if none */
	uint64_t reserved[8];         /* zeroed: room for later fields */
} ac_conn_info_t;

/*
 * Any thread. Pins h with a hazard pointer and copies the connection's
 * facts marked "any" into *out (an outbound connection's peer and
 * opened_ms change when it reconnects; the copy is of one attempt, never
 * a mix). Returns 0, AC_ESTALE, AC_EINVAL, or AC_ENOMEM
 * (the calling thread's first call, which allocates its hazard record).
 * Lock-free and allocation-free after that first call.
 */
AC_EXPORT int ac_handle_info(ac_runtime_t *rt, ac_handle_t h,
			     ac_conn_info_t *out);

/* The loop that owns h (no check that h is live). */
#define AC_HANDLE_LOOP(h) ((int)((uint64_t)(h) >> 56))

/* ---- introspection ---------------------------------------------------------
 * What a server's CLIENT LIST or CLIENT KILL needs: every connection of a
 * loop, or of all loops, with its facts. */

/*
 * Owner loop. Copies every fact about c into *out, c's own addresses
 * included (no pin: the owner reads c directly). Returns 0, AC_EINVAL
 * (NULL c or out) or AC_ETHREAD.
 */
AC_EXPORT int ac_conn_info(const ac_conn_t *c, ac_conn_info_t *out);

/*
 * Owner loop. Names c with a copy of label (at most AC_LABEL_MAX bytes;
 * NULL or "" removes it), shown in ac_conn_info_t.label until c's
 * on_close has returned; an outbound connection keeps it across
 * reconnects. The library gives the bytes no meaning. Returns 0,
 * AC_EINVAL (NULL c, or label too long: the old label stays),
 * AC_ETHREAD or AC_ENOMEM.
 */
AC_EXPORT int ac_conn_set_label(ac_conn_t *c, const char *label);

/*
 * A loop of rt. Calls fn(c, arg) for every connection the calling loop
 * owns, now, before returning: open ones, closing ones whose on_close
 * has not run, outbound ones connecting or waiting to reconnect. fn may
 * close c or any other (on_close runs after the callback that called
 * this has returned, as ever); a connection that fn opens may or may not
 * be visited. Returns the number of calls, AC_EINVAL (NULL rt or fn) or
 * AC_ETHREAD.
 */
AC_EXPORT int ac_loop_conns(ac_runtime_t *rt,
			    void (*fn)(ac_conn_t *c, void *arg), void *arg);

/* ac_runtime_conns' loop for every loop of the runtime, in turn. */
#define AC_LOOP_ALL (-1)

/*
 * Any thread, asynchronous. Visits the connections of loop `loop`
 * (AC_LOOP(i); AC_LOOP_DEFAULT: the calling loop) or of every loop, one
 * after the other (AC_LOOP_ALL): on each, fn(c, arg) runs for each of
 * its connections as under ac_loop_conns. The visits never overlap, so
 * fn may gather into arg without a lock. Then done(0, arg) runs once, on
 * the calling loop (for a caller that is not a loop: on the last loop
 * visited), never inside this call. A loop caller is never blocked: it
 * learns the result in done, where a reply to a connection it serves is
 * written through that connection's handle (ac_handle_conn), since the
 * connection may have closed meanwhile. If the runtime stops first, done
 * runs with AC_ESHUTDOWN on the thread stopping or freeing it, where no
 * connection may be touched (the loops not yet visited are not). done
 * may be NULL. Returns 0; or, and then neither fn nor done ever runs,
 * AC_EINVAL (NULL rt or fn, a bad loop; AC_LOOP_DEFAULT off-loop),
 * AC_ENOMEM or AC_ESHUTDOWN.
 */
AC_EXPORT int ac_runtime_conns(ac_runtime_t *rt, int loop,
			       void (*fn)(ac_conn_t *c, void *arg),
			       void (*done)(int err, void *arg), void *arg);

/*
 * A loop of rt. The connection h names, when the calling loop owns it
 * and it is live (not closed for good: an outbound connection waiting to
 * reconnect is); NULL with errno EINVAL (NULL rt, AC_HANDLE_NONE), EPERM
 * (the calling thread is not h's owner loop) or ESTALE (closed). No pin,
 * no lock: the owner reads its own handle table. The pointer is good
 * until the current callback returns, as any ac_conn_t is: keep h.
 */
AC_EXPORT ac_conn_t *ac_handle_conn(ac_runtime_t *rt, ac_handle_t h);

/* ---- watchers ------------------------------------------------------------------ *
 * The C form of a weakref callback or an Erlang monitor. */

typedef void (*ac_watch_fn)(ac_handle_t h, int reason, void *arg);

/*
 * Any thread. fn(h, reason, arg) runs exactly once, on loop `loop`
 * (AC_LOOP(i); AC_LOOP_DEFAULT: the calling loop, or loop 0 from a thread
 * that is not a loop), when the
 * connection closes, with its close reason; if h is already stale it
 * still runs once, soon, with AC_ESTALE; if the runtime stops first, with
 * AC_ESHUTDOWN (possibly on the stopping thread); with AC_ENOMEM if the
 * owner loop could not record the watch. Watching never keeps a
 * connection alive. *id (may be NULL) names the watch for ac_unwatch.
 * Returns 0, AC_EINVAL, AC_ENOMEM, AC_EAGAIN (mailbox full), AC_ELIMIT
 * (2^32 watches at once) or AC_ESHUTDOWN; on error fn never runs.
 */
AC_EXPORT int ac_watch(ac_runtime_t *rt, ac_handle_t h, int loop,
		       ac_watch_fn fn, void *arg, uint64_t *id);

/*
 * Any thread. Cancels a watch. Returns 0 if it was cancelled: fn will not
 * run. Returns AC_EALREADY if fn already ran or the watch was already
 * cancelled; if fn is running on another thread at that moment, waits for
 * it to return first. Either way, after ac_unwatch returns, fn does not
 * run, except when it is called from inside fn itself (AC_EALREADY at
 * once). AC_EINVAL for an id that was never issued by rt.
 */
AC_EXPORT int ac_unwatch(ac_runtime_t *rt, uint64_t id);

/* ---- broadcast groups ----------------------------------------------------------
 * A set of connections across loops. Each loop keeps its own members; a
 * publish sends one mailbox message per loop that has members, and that
 * loop writes the same shared buffer to each of its members. Membership is
 * weak: a member that closes leaves by itself. */

typedef struct ac_group_s ac_group_t;

/* Any thread. NULL (errno EINVAL or ENOMEM) on failure. */
AC_EXPORT ac_group_t *ac_group_new(ac_runtime_t *rt);
/* Owner loop of c. Adds c; 0, AC_EINVAL, AC_ETHREAD, AC_EEXIST if already
   a member, AC_ESTATE if c is closing, AC_ENOMEM. */
AC_EXPORT int ac_group_join(ac_group_t *g, ac_conn_t *c);
/* Owner loop of c. Removes c; 0, AC_EINVAL, AC_ETHREAD, or AC_ENOENT if
   it was not a member. */
AC_EXPORT int ac_group_leave(ac_group_t *g, ac_conn_t *c);
/* Any thread. Members now, over all loops (a snapshot). */
AC_EXPORT size_t ac_group_size(ac_group_t *g);
/*
 * Any thread. Queues b for every member: one message per loop with
 * members, in order with the caller's other messages. A member whose
 * output is over its hard limit is closed with AC_ESLOW; the rest still
 * get b. Returns the number of members it was queued for at the time of
 * the call (0 for an empty group), or AC_EAGAIN when a foreign caller
 * found every needed mailbox full for 1 s (loops that did take it still
 * deliver), AC_ENOMEM, AC_EINVAL or AC_ESHUTDOWN. The caller keeps its
 * reference to b.
 */
AC_EXPORT int ac_group_publish(ac_group_t *g, ac_buf_t *b);
/*
 * Any thread, once, with no other call on g at the same time. Dissolves
 * the group: members leave (their connections stay open), messages already
 * published are still delivered, and the memory goes once they are.
 */
AC_EXPORT void ac_group_free(ac_group_t *g);

/* ---- groups across machines: bridges through Redis -----------------------------
 * A bridge joins this process to other nodes through a Redis deployment
 * that the nodes share: one server (PUBLISH, SUBSCRIBE, PSUBSCRIBE) or a
 * Redis Cluster (sharded pub/sub: SPUBLISH and SSUBSCRIBE on the master
 * that owns the channel's slot, following MOVED and ASK). A bridged group
 * keeps its members on every node; a publish on any node reaches all of
 * them once. The bridge's links to Redis are ordinary outbound
 * connections of one loop (its home loop): they never block a loop, they
 * reconnect with back-off, and their output is bounded. See actorconn(7),
 * "SEVERAL NODES", for what is and is not guaranteed.
 *
 * On the wire each publish carries a 12-byte envelope ("\0AC1" and the
 * publishing bridge's 64-bit id) before the payload, so that a node skips
 * its own publishes when Redis echoes them back. A message without it
 * (published into Redis by another program) is delivered as it is.
 * Built --without-hiredis, ac_bridge_new returns AC_ENOTSUP. */

typedef struct ac_bridge_s ac_bridge_t;

enum ac_bridge_mode {
	AC_BRIDGE_AUTO = 0,    /* the first seed that answers says which
				  (CLUSTER SLOTS: an error means single) */
	AC_BRIDGE_SINGLE = 1,  /* one Redis server (or a proxy to one) */
	AC_BRIDGE_CLUSTER = 2  /* a Redis Cluster: sharded pub/sub */
};

/* What ac_bridge_subscribe asks for. Patterns are a single server's:
   a Redis Cluster has no sharded pattern subscription (see
   ac_bridge_subscribe). */
enum ac_bridge_kind { AC_BRIDGE_CHANNEL = 0, AC_BRIDGE_PATTERN = 1 };

/*
 * A message from another node, for a name subscribed with
 * ac_bridge_subscribe; runs on the bridge's home loop. kind says which
 * subscription matched: AC_BRIDGE_CHANNEL (pattern NULL, plen 0) or
 * AC_BRIDGE_PATTERN (the pattern as subscribed). chan is the channel it
 * was published on; both without the bridge's prefix, valid during the
 * call. payload is the message (envelope removed), a shared buffer the
 * callee may keep with ac_buf_ref.
 */
typedef void (*ac_bridge_recv_fn)(int kind, const void *pattern, size_t plen,
				  const void *chan, size_t clen,
				  ac_buf_t *payload, void *arg);

/* Bridge options. A zeroed field takes its default. */
typedef struct ac_bridge_opts {
	int mode;                    /* enum ac_bridge_mode; 0: AC_BRIDGE_AUTO */
	int loop;                    /* home loop, AC_LOOP(i), that owns the
					links; AC_LOOP_DEFAULT: the last */
	const char *prefix;          /* before every channel and pattern name
					in Redis (copied); NULL: none */
	size_t max_queued;           /* per Redis node: publish bytes written
					and not yet answered; a publish that
					would pass it is dropped and counted;
					0: 8 MiB */
	unsigned connect_timeout_ms; /* 0: 5000 */
	unsigned retry_min_ms;       /* first reconnect back-off; 0: 100 */
	unsigned retry_max_ms;       /* largest back-off; 0: 5000 */
	struct ac_tls_s *tls;        /* links over TLS (the bridge holds a
					reference); required by rediss:// */
	ac_bridge_recv_fn on_message; /* for ac_bridge_subscribe's names;
					 NULL: those are refused */
	void *arg;                   /* on_message's arg */
	uint64_t reserved[8]; /* zero: room for later fields */
} ac_bridge_opts_t;

/*
 * Any thread, after ac_runtime_new. Makes a bridge to the Redis
 * deployment url names: "redis://[[USER]:PASSWORD@]HOST[:PORT]" (port
 * 6379), with further seeds after commas ("redis://a:7000,b:7001,c:7002";
 * the credentials of the first apply to all), or "rediss://..." for TLS
 * (opts->tls is then required). USER and PASSWORD may use %XX escapes;
 * HOST is resolved on the home loop without blocking it. The bridge
 * connects once the runtime runs and keeps trying with back-off (never
 * giving up) while it lives. opts may be NULL. Returns 0 with *out set,
 * AC_EINVAL (bad argument; the reason is logged), AC_EADDR (malformed
 * url), AC_ENOMEM, AC_ESHUTDOWN (runtime stopping), or AC_ENOTSUP when
 * built --without-hiredis.
 */
AC_EXPORT int ac_bridge_new(ac_runtime_t *rt, const char *url,
			    const ac_bridge_opts_t *opts, ac_bridge_t **out);

/*
 * Any thread; once per group, for the group's life. Bridges g to Redis
 * channel chan (len bytes, any bytes; the bridge's prefix goes before
 * it). From then on ac_group_publish(g, b) also publishes b's bytes on
 * chan for the other nodes, and messages other nodes publish on chan are
 * delivered to g's members here, from one shared buffer. The node is
 * subscribed to chan in Redis only while g has at least one member on
 * this node. One group per channel per bridge: a node's own publishes are
 * not delivered back to it, so a second group on the same channel would
 * miss them. chan may be NULL when len is 0. Returns 0, AC_EINVAL (also:
 * g and br of different runtimes), AC_EEXIST (g already bridged, or chan
 * already taken by another group of br), AC_ENOMEM, AC_ESHUTDOWN (bridge
 * freed or runtime stopping) or AC_ENOTSUP. A publish whose remote half
 * the home loop cannot take (a foreign publisher found its mailbox full
 * for 1 s, or the bridge was freed) is counted in ac_debug_counts'
 * dropped.
 */
AC_EXPORT int ac_group_bridge(ac_group_t *g, ac_bridge_t *br,
			      const void *chan, size_t len);

/*
 * Any thread. Asks for messages other nodes publish on a channel
 * (AC_BRIDGE_CHANNEL) or on channels matching a pattern
 * (AC_BRIDGE_PATTERN, Redis's glob), delivered to opts->on_message. Calls
 * are counted per name: the node is subscribed in Redis from the first
 * ac_bridge_subscribe of a name until the matching number of
 * ac_bridge_unsubscribe calls; one Redis subscription per name however
 * many ask. With a Redis Cluster a pattern has no sharded form: it is
 * accepted but matches nothing from other nodes (counted in
 * ac_bridge_stats' errors and logged once). name may be NULL when len is
 * 0. on_message runs on the home loop until ac_bridge_free; keep its arg
 * valid until the runtime has stopped. Returns 0, AC_EINVAL (also:
 * no on_message), AC_ENOENT (unsubscribing a name not subscribed),
 * AC_EAGAIN (foreign caller, the home loop's mailbox full), AC_ENOMEM,
 * AC_ESHUTDOWN or AC_ENOTSUP.
 */
AC_EXPORT int ac_bridge_subscribe(ac_bridge_t *br, int kind, const void *name,
				  size_t len);
AC_EXPORT int ac_bridge_unsubscribe(ac_bridge_t *br, int kind,
				    const void *name, size_t len);

/*
 * Any thread. Publishes payload on channel chan for the other nodes only:
 * the caller delivers to its own node's receivers (ac_group_publish does
 * both). Publishes from one thread leave in the order made. While the
 * link to the channel's Redis node is down, or its max_queued is reached,
 * the publish is dropped and counted (ac_bridge_stats), never held; one
 * written and then lost with its link is counted in both published and
 * dropped_down, and one redirected (MOVED, ASK) in published each time
 * it is written. chan may be NULL when len is 0.
 * Returns 0 when the publish was handed to the home loop (its fate is
 * counted there), AC_EINVAL, AC_EAGAIN (foreign caller, the home loop's
 * mailbox full), AC_ENOMEM, AC_ESHUTDOWN or AC_ENOTSUP. The caller keeps
 * its reference to payload.
 */
AC_EXPORT int ac_bridge_publish(ac_bridge_t *br, const void *chan, size_t len,
				ac_buf_t *payload);

typedef struct ac_bridge_stats {
	uint64_t mode;         /* enum ac_bridge_mode: AUTO until known */
	uint64_t nodes;        /* gauge: Redis nodes in use (masters) */
	uint64_t links_up;     /* gauge: links open and ready */
	uint64_t channels;     /* gauge: channels subscribed in Redis now */
	uint64_t patterns;     /* gauge: patterns subscribed in Redis now */
	uint64_t published;    /* publishes written to Redis */
	uint64_t received;     /* messages from other nodes delivered */
	uint64_t own_skipped;  /* this node's publishes echoed back, skipped */
	uint64_t dropped_down; /* publishes dropped: no link to their node */
	uint64_t dropped_full; /* publishes dropped: max_queued reached */
	uint64_t connects;     /* links established, ever */
	uint64_t disconnects;  /* links lost, ever */
	uint64_t redirects;    /* MOVED and ASK replies followed */
	uint64_t refreshes;    /* cluster slot maps read */
	uint64_t errors;       /* error replies and unusable requests */
	uint64_t reserved[8];  /* zeroed: room for later fields */
} ac_bridge_stats_t;

/* Any thread, no lock. A snapshot of br's figures. Returns 0, AC_EINVAL,
   or AC_ENOTSUP when built --without-hiredis. */
AC_EXPORT int ac_bridge_stats(ac_bridge_t *br, ac_bridge_stats_t *out);

/*
 * Any thread, once; before ac_runtime_free (which frees bridges left
 * over). Closes the links (Redis drops the node's subscriptions with
 * them); bridged groups go on locally, their publishes no longer leave
 * the node. The memory goes when the home loop has closed the links and
 * the last bridged group is freed. A drain (ac_runtime_drain) closes the
 * links for good too: a draining node leaves the other nodes.
 */
AC_EXPORT void ac_bridge_free(ac_bridge_t *br);

/* ---- weak-value registry -------------------------------------------------- *
 * The C form of a WeakValueDictionary: key bytes -> handle. An entry
 * disappears by itself when its connection closes. Readers are lock-free
 * (Concurrency Kit's ck_hs in single-writer mode, read inside a ck_epoch
 * section); writers take a short per-shard mutex. A key is any byte
 * string, the empty one (NULL, 0) included. */

typedef struct ac_registry_s ac_registry_t;

enum ac_registry_flags {
	AC_REG_REPLACE = 0, /* put replaces an existing entry */
	AC_REG_EXCL = 1     /* put fails with AC_EEXIST if present */
};

/* Any thread. NULL with errno EINVAL (no rt) or ENOMEM. */
AC_EXPORT ac_registry_t *ac_registry_new(ac_runtime_t *rt);
/* Any thread. Maps key to h. Returns 0, AC_ESTALE (h is not live),
   AC_EEXIST (AC_REG_EXCL and present), AC_EINVAL, AC_ENOMEM, or the
   errors of ac_watch (AC_EAGAIN after waiting up to 1 s for room in a
   full mailbox, AC_ESHUTDOWN). The key is copied. */
AC_EXPORT int ac_registry_put(ac_registry_t *reg, const void *key,
			      size_t len, ac_handle_t h, int flags);
/* Any thread, lock-free. 0 and *out, AC_ENOENT when absent, AC_EINVAL,
   or AC_ENOMEM (first call on a thread: its reclamation records). *out
   may be stale by the time it is used: that is what AC_ESTALE is for. */
AC_EXPORT int ac_registry_get(ac_registry_t *reg, const void *key,
			      size_t len, ac_handle_t *out);
/* Any thread. 0, AC_EINVAL, AC_ENOENT when absent, or AC_ENOMEM (first
   call on a thread: its reclamation records). */
AC_EXPORT int ac_registry_del(ac_registry_t *reg, const void *key,
			      size_t len);
/* Any thread. Entries now (closing connections leave soon after). */
AC_EXPORT size_t ac_registry_count(ac_registry_t *reg);
/* Any thread, with no other use of reg concurrent; before
   ac_runtime_free. */
AC_EXPORT void ac_registry_free(ac_registry_t *reg);

/* ---- statistics ---------------------------------------------------------- */

/* Close reasons as counted in ac_stats_t.closed[]. */
enum ac_close_reason {
	AC_CR_LOCAL,    /* 0 */
	AC_CR_EOF,      /* AC_EEOF */
	AC_CR_RESET,    /* AC_ECONNRESET, -EPIPE */
	AC_CR_TIMEOUT,  /* AC_ETIMEDOUT: idle timeout, or the kernel's */
	AC_CR_WTIMEOUT, /* AC_EWTIMEDOUT */
	AC_CR_FRAME,    /* AC_EFRAME */
	AC_CR_SLOW,     /* AC_ESLOW */
	AC_CR_LIMIT,    /* AC_ELIMIT */
	AC_CR_SHUTDOWN, /* AC_ESHUTDOWN */
	AC_CR_TLS,      /* AC_ETLS, AC_ECERT, AC_EHANDSHAKE: a TLS handshake
			   or record failed (listeners count here the
			   handshakes they never finished) */
	AC_CR_CONNECT,  /* AC_ENAME, -ECONNREFUSED, -ENETUNREACH,
			   -EHOSTUNREACH, -EADDRNOTAVAIL; the runtime also
			   counts here every outbound attempt that failed
			   before on_open (a connect timeout included), except
			   one closed by this side, by the stop, or over
			   max_conns, and one whose TLS handshake failed
			   (AC_CR_TLS) */
	AC_CR_ERROR,    /* AC_ENOMEM and anything else */
	AC_CR_COUNT
};

/* Any thread. The ac_close_reason index of an on_close reason code. */
AC_EXPORT int ac_close_reason_index(int reason);
/* Any thread. A short name for a reason index ("eof", "timeout", ...), or
   "?" for an index out of range. */
AC_EXPORT const char *ac_close_reason_name(int index);

typedef struct ac_stats {
	uint64_t conns_open;        /* gauge */
	uint64_t accepted;
	uint64_t connected;         /* outbound connections established */
	uint64_t rejected;          /* accepted over max_conns and closed */
	uint64_t accept_pauses;     /* accept back-offs (EMFILE and kin) */
	uint64_t closed[AC_CR_COUNT];
	uint64_t bytes_in, bytes_out;
	uint64_t frames_in;
	uint64_t writes;            /* ac_conn_write calls accepted */
	uint64_t mailbox_received;  /* messages dispatched on this loop */
	uint64_t mailbox_full;      /* AC_EAGAIN returned for this loop */
	uint64_t mailbox_overflowed;/* messages this loop put in overflow */
	uint64_t mailbox_max_depth; /* deepest ring seen at a drain (the
				       foreign ring: most messages one
				       drain found published) */
	uint64_t dropped;           /* accepted messages never delivered */
	uint64_t dropped_shutdown;  /* of which dropped while the runtime
				       was stopping, or left queued when its
				       loops exited */
	uint64_t handles_live;      /* gauge */
	uint64_t hp_pending;        /* gauge: retired, not yet reclaimed */
	uint64_t timers_live;       /* gauge */
	uint64_t pool_idle;         /* gauge: pooled connections idle */
	uint64_t pool_busy;         /* gauge: pooled connections borrowed */
	uint64_t pool_waiting;      /* gauge: acquires waiting */
	uint64_t pool_connects;     /* pooled connections established */
	uint64_t pool_failures;     /* pooled connect attempts that failed */
	uint64_t heap_bytes;        /* tcmalloc allocated bytes, process-wide
				       (totals only; 0 without tcmalloc) */
	/* The worker pool (ac_work_submit): runtime-wide, so in totals
	   only (0 per loop). */
	uint64_t work_queued;       /* gauge: waiting for a worker */
	uint64_t work_running;      /* gauge: running on a worker */
	uint64_t work_done;         /* work functions that returned 0 */
	uint64_t work_failed;       /* work functions that returned nonzero */
	uint64_t work_cancelled;    /* never ran: cancelled, or the stop */
	uint64_t work_full;         /* submits refused with AC_EAGAIN */
	uint64_t mailbox_wakeups;   /* times this loop was woken through its
				       eventfd to drain its mailbox (messages
				       and control operations) */
	uint64_t group_publishes;   /* ac_group_publish buffers this loop
				       wrote to the group's members here */
	uint64_t group_batches;     /* the times it wrote them: consecutive
				       publishes to one group go to each
				       member together */
	uint64_t fanout_waits;      /* waits after a large fan-out
				       (ac_config_t.fanout_wait_us) */
	uint64_t fanout_wait_us;    /* the microseconds they lasted */
	uint64_t reserved[11]; /* zeroed: room for later fields */
} ac_stats_t;

/*
 * Any thread, no lock. Fills *total with the sums over all loops and,
 * when per_loop is not NULL, per_loop[i] for i < min(n, loops). Counters
 * are per-loop, each on its own cache lines, read with relaxed loads: a
 * snapshot, not an atomic cut. In *total every field is the sum over
 * loops except mailbox_max_depth, the largest, and the runtime-wide
 * heap_bytes and work_* fields. Returns the number of loops, or
 * AC_EINVAL.
 */
AC_EXPORT int ac_stats(ac_runtime_t *rt, ac_stats_t *total,
		       ac_stats_t *per_loop, int n);

/*
 * Any thread. Renders the statistics in the Prometheus text exposition
 * format (HELP and TYPE lines, per-loop samples labelled loop="i") into
 * buf, from one snapshot. Returns the length written (without the NUL),
 * or, like snprintf, the length needed if len was too small (buf is then
 * truncated and NUL-terminated; buf may be NULL when len is 0); AC_EINVAL
 * or AC_ENOMEM. Counters move between calls, so a second call with the
 * length the first one asked for may need a few bytes more: leave room,
 * or call again while the result is >= len.
 */
AC_EXPORT int ac_stats_prometheus(ac_runtime_t *rt, char *buf, size_t len);

/*
 * Control thread or a loop. Serves ac_stats_prometheus over HTTP/1.0 on
 * addr (any path; "curl http://ADDR/metrics"), from the runtime's own
 * loops: a listener like any other (close it with ac_listener_close), at
 * most 64 connections, each closed after 10 s idle or once answered. Each
 * answer is one render of one snapshot, written straight into the
 * connection's output with its exact Content-Length.
 * Returns as ac_listen.
 */
AC_EXPORT int ac_metrics_listen(ac_runtime_t *rt, const char *addr,
				ac_listener_t **out);

/* ---- debugging --------------------------------------------------------------- */

/*
 * Live objects allocated by the library, process-wide, over all runtimes.
 * After every runtime is freed each live count is zero.
 */
typedef struct ac_debug_counts {
	int64_t conns;      /* connection objects, including retired ones
			       a hazard pointer still protects */
	int64_t handles;    /* handle slots in use */
	int64_t messages;   /* ac_send payloads, output chunks (a loop
			       keeps up to 64 for reuse while it runs) and
			       mailbox overflow arrays */
	int64_t listeners;  /* listener objects */
	int64_t timers;     /* timers */
	int64_t watches;    /* watches not yet fired or cancelled */
	int64_t registry;   /* registry entries and tables */
	int64_t buffers;    /* shared buffers */
	int64_t groups;     /* groups and their per-loop member arrays */
	int64_t pools;      /* pools, sub-pools and waiting acquires */
	int64_t other;      /* runtimes, loops, rings, tables, buffers */
	int64_t allocs;     /* allocations made, ever (not a live count) */
	int64_t dropped;    /* accepted messages dropped, ever */
	int64_t tls;        /* TLS contexts and connections' TLS state */
	int64_t openssl;    /* OpenSSL's own live allocations: the first
			       ac_tls_new routes them through the library's
			       allocator, unless the process had used
			       OpenSSL before (then -1). Not 0 at the end:
			       OpenSSL keeps tables for the process; it
			       returns to the same figure when connections
			       and contexts are gone */
	int64_t work;       /* work items whose done has not run yet, and
			       the worker pools' tables */
	int64_t bridges;    /* bridges, their nodes, links, channels and
			       publishes on their way to the home loop
			       (hiredis's reader buffers are its own) */
	int64_t reserved[7]; /* zeroed: room for later fields */
} ac_debug_counts_t;

/* Any thread. Fills *out. */
AC_EXPORT void ac_debug_counts(ac_debug_counts_t *out);

#ifdef __cplusplus
}
#endif

#endif /* ACTORCONN_H */
