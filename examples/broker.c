/*
 * actorconn-broker: a RESP2 and RESP3 publish/subscribe server that
 * redis-cli, redis-benchmark and Redis clients talk to unchanged. See
 * actorconn-broker(1).
 *
 * This file holds the connections (decoding, replies, a client's state),
 * the command line and main; the channels are in pubsub.c, the commands
 * in commands.c, --cluster in cluster.c (broker.h lists them).
 */
#include "broker.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

struct broker B;

/* ---- small helpers ---------------------------------------------------------- */

uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "actorconn-broker: out of memory\n");
		abort();
	}
	return p;
}

/* ---- replies ---------------------------------------------------------------- */

/* Everything a command answers goes through here: CLIENT REPLY OFF or
 * SKIP drops it, except pushes (sub_reply marks them). */
void out(ac_conn_t *c, const void *p, size_t n)
{
	struct client *cl = client_of(c);

	if (cl && (cl->reply_off || cl->skip) && !cl->pushing)
		return;
	ac_conn_write(c, p, n);
}

void outf(ac_conn_t *c, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out(c, buf, (size_t)(n < (int)sizeof(buf) ? n : (int)sizeof(buf) - 1));
}

void outs(ac_conn_t *c, const char *s)
{
	out(c, s, strlen(s));
}

void bulk(ac_conn_t *c, const char *p, size_t n)
{
	outf(c, "$%zu\r\n", n);
	out(c, p, n);
	out(c, "\r\n", 2);
}

void bulk_str(ac_conn_t *c, const char *s)
{
	bulk(c, s, strlen(s));
}

int client_resp(const struct client *cl)
{
	return cl && cl->resp == 3 ? 3 : 2;
}

int conn_resp(ac_conn_t *c)
{
	return client_resp(client_of(c));
}

void reply_null(ac_conn_t *c)
{
	if (conn_resp(c) == 3)
		out(c, "_\r\n", 3);
	else
		out(c, "$-1\r\n", 5);
}

void reply_map(ac_conn_t *c, size_t pairs)
{
	if (conn_resp(c) == 3)
		outf(c, "%%%zu\r\n", pairs);
	else
		outf(c, "*%zu\r\n", pairs * 2);
}

void reply_set(ac_conn_t *c, size_t n)
{
	outf(c, conn_resp(c) == 3 ? "~%zu\r\n" : "*%zu\r\n", n);
}

void reply_push(ac_conn_t *c, size_t n)
{
	outf(c, conn_resp(c) == 3 ? ">%zu\r\n" : "*%zu\r\n", n);
}

void reply_verbatim(ac_conn_t *c, const char *p, size_t n)
{
	if (conn_resp(c) != 3) {
		bulk(c, p, n);
		return;
	}
	outf(c, "=%zu\r\ntxt:", n + 4);
	out(c, p, n);
	out(c, "\r\n", 2);
}

/* ---- connection callbacks -------------------------------------------------- */

/* The limits a frame was cut with, for on_frame to parse it with the
 * same: CONFIG SET may change B's between the two calls, which follow
 * each other on this loop. */
static __thread struct resp_limits cut_with;

/*
 * The decoder: one frame per complete command. A malformed command becomes
 * a frame of everything received, so that on_frame can send Redis' error
 * before closing.
 *
 * Memory follows the bytes that arrived, never what a header announces:
 * for an incomplete bulk string, need asks for at most twice the input
 * so far, so that the library's buffer grows by doubling towards a big
 * bulk as it arrives instead of taking its announced size at once; an
 * array's count allocates nothing (on_frame's arrays grow with the
 * arguments a complete command has). The parser's note (resume) lets
 * each call go on from the last element checked, so that a command of a
 * million arguments costs one look at each, however it is cut into
 * reads. A command still incomplete past client-query-buffer-limit
 * closes the connection without a reply, as Redis closes a client whose
 * query buffer passes it (there the part not parsed yet counts; here the
 * whole command).
 */
static int resp_decode(const void *buf, size_t len, size_t max_frame,
		       ac_frame_t *f)
{
	struct resp_state st = {.resume = f->resume};
	int r;

	/* SIZE_MAX: B.qbuf_limit is the bound. UNAUTH_FRAME: a client not
	 * logged in where a password is needed (set_auth_bounds), refused
	 * at the header of a request over Redis's bounds before AUTH. */
	cut_with.unauth = max_frame == UNAUTH_FRAME;
	cut_with.max_bulk = cut_with.unauth
				    ? UNAUTH_MAX_BULK
				    : __atomic_load_n(&B.lim.max_bulk,
						      __ATOMIC_RELAXED);
	cut_with.max_inline = B.lim.max_inline;
	cut_with.max_args = cut_with.unauth ? UNAUTH_MAX_ARGS : B.lim.max_args;
	r = resp_parse(buf, len, &cut_with, NULL, &st);
	if (r == RESP_MORE) {
		if (len > __atomic_load_n(&B.qbuf_limit, __ATOMIC_RELAXED))
			return AC_EFRAME;
		f->need = st.need > 2 * len ? 2 * len : st.need;
		f->resume = st.resume;
		return 0;
	}
	f->off = 0;
	f->len = f->consumed = r == RESP_OK ? st.consumed : len;
	return 1;
}

/* This loop's argument arrays and the room for unescaped inline
 * arguments: its own for an ordinary command, on the heap for a bigger
 * one, and given back after it, so that a loop holds nothing between
 * commands (and a thread leaves nothing behind when it ends). */
#define ARGS_OWN 64   /* arguments of the loop's own arrays */
#define TEXT_OWN 4096 /* bytes of inline text likewise */
static __thread const char *own_argv[ARGS_OWN];
static __thread size_t own_argl[ARGS_OWN];
static __thread char own_text[TEXT_OWN];
static __thread struct {
	const char **argv;
	size_t *argl, cap;
	char *text;
	size_t textcap;
} A;

/* Room for argc arguments and text bytes of inline text. */
static void args_room(size_t argc, size_t text)
{
	if (!A.argv) {
		A.argv = own_argv;
		A.argl = own_argl;
		A.cap = ARGS_OWN;
		A.text = own_text;
		A.textcap = TEXT_OWN;
	}
	if (argc > A.cap) {
		if (A.argv != own_argv) {
			free(A.argv);
			free(A.argl);
		}
		A.argv = xmalloc(argc * sizeof(*A.argv));
		A.argl = xmalloc(argc * sizeof(*A.argl));
		A.cap = argc;
	}
	if (text > A.textcap) {
		if (A.text != own_text)
			free(A.text);
		A.text = xmalloc(text);
		A.textcap = text;
	}
}

static void args_trim(void)
{
	if (A.argv != own_argv) {
		free(A.argv);
		free(A.argl);
		A.argv = own_argv;
		A.argl = own_argl;
		A.cap = ARGS_OWN;
	}
	if (A.text != own_text) {
		free(A.text);
		A.text = own_text;
		A.textcap = TEXT_OWN;
	}
}

static void on_frame(ac_conn_t *c, const void *data, size_t len)
{
	const char *p = data;
	struct resp_cmd cmd;
	struct resp_state st = {0};
	struct client *cl;
	int r;

	/* Unescaped inline arguments never take more than their line. */
	args_room(0, p[0] != '*' ? len : 0);
	for (;;) {
		cmd = (struct resp_cmd){0, A.argv, A.argl, A.cap, A.text,
					A.textcap};
		r = resp_parse(p, len, &cut_with, &cmd, &st);
		if (r != RESP_OK || cmd.argc <= A.cap)
			break;
		args_room(cmd.argc, 0); /* the arguments have all arrived */
	}
	if (r != RESP_OK) {
		outf(c, "-ERR %s\r\n", st.err ? st.err : "Protocol error");
		ac_conn_close(c, AC_CLOSE_FLUSH);
		args_trim();
		return;
	}
	if (cmd.argc) {
		execute(c, client_of(c), cmd.argc, A.argv, A.argl);
		if ((cl = client_of(c)))
			obuf_check(c, cl);
	}
	args_trim();
}

/* A new connection takes the normal class's limits, unless they are
 * still the listener's. */
void set_auth_bounds(ac_conn_t *c, const struct client *cl)
{
	ac_conn_set_max_frame(c, acl_auth_required(cl) ? UNAUTH_FRAME : 0);
}

static void on_open(ac_conn_t *c)
{
	set_auth_bounds(c, NULL);
	if (__atomic_load_n(&B.normal_changed, __ATOMIC_RELAXED))
		obuf_apply(c, CLASS_NORMAL);
}

/* A client's state, made by the first command that needs it: a
 * connection that only publishes or pings costs the broker nothing beyond
 * the library's own bytes. */
struct client *client_new(ac_conn_t *c)
{
	struct client *cl = calloc(1, sizeof(*cl));

	if (!cl) {
		outs(c, "-ERR out of memory\r\n");
		ac_conn_close(c, AC_CLOSE_FLUSH);
		return NULL;
	}
	ac_conn_set_data(c, cl);
	return cl;
}

/* The broker's listeners are made with ud &B, which is therefore every
 * client's data until client_new replaces it. */
struct client *client_of(ac_conn_t *c)
{
	void *d = ac_conn_data(c);

	return d == &B ? NULL : d;
}

uint64_t client_id(ac_handle_t h)
{
	return (uint64_t)h << 8 | (uint64_t)h >> 56;
}

ac_handle_t id_handle(uint64_t id)
{
	return (ac_handle_t)(id >> 8 | id << 56);
}

static void on_heartbeat(ac_conn_t *c)
{
	/* Only subscribers are idle by design; they get the push Redis sends
	 * a subscribed PING, which every client understands there. */
	struct client *cl = client_of(c);

	/* Straight to the connection: not a reply, so CLIENT REPLY OFF
	 * does not stop it; a push in RESP3, where an array out of turn
	 * would be taken for a reply. */
	if (cl && nsubs(cl))
		ac_conn_write(c, client_resp(cl) == 3
					 ? ">2\r\n$4\r\npong\r\n$0\r\n\r\n"
					 : "*2\r\n$4\r\npong\r\n$0\r\n\r\n",
			      20);
}

static void on_close(ac_conn_t *c, int reason)
{
	struct client *cl = client_of(c);

	if (!cl)
		return;
	multi_discard(cl);
	unsubscribe_all(c, cl, CHANNEL, 1);
	unsubscribe_all(c, cl, PATTERN, 1);
	unsubscribe_all(c, cl, SHARD, 1);
	free(cl->chans);
	free(cl->pats);
	free(cl->schans);
	free(cl);
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: actorconn-broker [--listen ADDR|none] [--unix PATH] [--threads N]\n"
		"         [--idle-timeout MS] [--heartbeat MS] [--max-clients N]\n"
		"         [--fanout-wait US]\n"
		"         [--client-output-buffer-limit 'CLASS HARD SOFT SECONDS ...']\n"
		"         [--output-limit BYTES] [--proto-max-bulk-len BYTES]\n"
		"         [--client-query-buffer-limit BYTES] [--metrics ADDR]\n"
		"         [--cluster redis://HOST:PORT[,HOST:PORT...]]\n"
		"         [--cluster-prefix PREFIX] [--max-queued BYTES]\n"
		"         [--tls-port N | --tls-listen ADDR]\n"
		"         [--tls-cert-file FILE] [--tls-key-file FILE]\n"
		"         [--tls-ca-cert-file FILE] [--tls-auth-clients yes|no]\n"
		"         [--tls-ciphers LIST] [--tls-ciphersuites LIST]\n"
		"         [--requirepass PASSWORD | --aclfile FILE]\n");
}

static unsigned long long number(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s) {
		fprintf(stderr, "actorconn-broker: bad %s '%s'\n", opt, s);
		exit(1);
	}
	return v;
}

/* A memory size option, as CONFIG SET takes it ("512mb"), within
 * Redis's bounds for the buffer limits. */
static size_t size_option(const char *opt, const char *s)
{
	unsigned long long v;

	if (parse_memory(s, &v) || v < (1u << 20) || v > (unsigned long long)LONG_MAX) {
		fprintf(stderr, "actorconn-broker: bad %s '%s' (1mb or more)\n",
			opt, s);
		exit(1);
	}
	return v > SIZE_MAX ? SIZE_MAX : (size_t)v;
}

/* What CONFIG GET maxclients shows without --max-clients: the broker
 * takes connections until it runs out of descriptors. */
static unsigned open_files(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > UINT_MAX)
		return UINT_MAX;
	return (unsigned)rl.rlim_cur;
}

static const char *errtext(int err)
{
	return ac_strerror(err); /* system errors come back as -errno */
}

/* The TLS options, named as redis-server names them. */
struct tls_args {
	const char *port;   /* --tls-port */
	const char *listen; /* --tls-listen */
	const char *auth;   /* --tls-auth-clients; NULL: yes, as in Redis */
	ac_tls_opts_t o;
};

/*
 * The TLS listener's address: --tls-listen as given, or --tls-port on the
 * host of --listen (of its default when --listen is none), as Redis'
 * tls-port shares bind with port. NULL without TLS; exits on a bad
 * combination.
 */
static char *tls_addr(const struct tls_args *ta, const char *plain)
{
	const char *colon;
	char *a;

	if (ta->port && ta->listen) {
		fprintf(stderr, "actorconn-broker: give --tls-port or "
				"--tls-listen, not both\n");
		exit(1);
	}
	if (ta->listen)
		return strcpy(xmalloc(strlen(ta->listen) + 1), ta->listen);
	if (!ta->port)
		return NULL;
	if (ta->port[strspn(ta->port, "0123456789")] || !*ta->port ||
	    number("--tls-port", ta->port) > 65535) {
		fprintf(stderr, "actorconn-broker: bad --tls-port '%s'\n",
			ta->port);
		exit(1);
	}
	if (!strcmp(plain, "none"))
		plain = "127.0.0.1:6380";
	if (!(colon = strrchr(plain, ':'))) {
		fprintf(stderr, "actorconn-broker: --tls-port: no host in "
				"--listen '%s'\n", plain);
		exit(1);
	}
	a = xmalloc((size_t)(colon - plain) + strlen(ta->port) + 2);
	sprintf(a, "%.*s:%s", (int)(colon - plain), plain, ta->port);
	return a;
}

/*
 * The server context for the TLS listener, from the files now (so a bad
 * file stops the broker before it listens). Exits with the library's
 * reason on failure.
 */
static ac_tls_t *tls_context(struct tls_args *ta)
{
	char why[256];
	ac_tls_t *t;

	ta->o.role = AC_TLS_SERVER;
	if (!ta->auth || !strcmp(ta->auth, "yes")) {
		ta->o.verify = AC_TLS_VERIFY_CLIENT;
	} else if (!strcmp(ta->auth, "no")) {
		ta->o.verify = AC_TLS_VERIFY_DEFAULT;
	} else if (!strcmp(ta->auth, "optional")) {
		fprintf(stderr, "actorconn-broker: --tls-auth-clients optional "
				"is not supported: a client certificate is "
				"either required (yes) or not asked for (no)\n");
		exit(1);
	} else {
		fprintf(stderr, "actorconn-broker: bad --tls-auth-clients "
				"'%s' (yes or no)\n", ta->auth);
		exit(1);
	}
	if (!ta->o.cert_file || !ta->o.key_file) {
		fprintf(stderr, "actorconn-broker: TLS needs --tls-cert-file "
				"and --tls-key-file\n");
		exit(1);
	}
	if (ta->o.verify == AC_TLS_VERIFY_CLIENT && !ta->o.ca_file) {
		fprintf(stderr, "actorconn-broker: --tls-auth-clients yes (the "
				"default) needs --tls-ca-cert-file to verify "
				"client certificates with; or give "
				"--tls-auth-clients no\n");
		exit(1);
	}
	if (!(t = ac_tls_new(&ta->o, why, sizeof(why)))) {
		if (errno == ENOTSUP)
			fprintf(stderr, "actorconn-broker: TLS is not available: "
					"libactorconn was built without OpenSSL\n");
		else
			fprintf(stderr, "actorconn-broker: TLS: %s\n",
				*why ? why : strerror(errno));
		exit(1);
	}
	return t;
}

/* 40 random hex digits, as Redis' run_id. */
static void new_run_id(char id[41])
{
	unsigned char r[20];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(now_ms() * 2654435761u >> (i % 24));
	for (size_t i = 0; i < sizeof(r); i++)
		sprintf(id + 2 * i, "%02x", r[i]);
}

/* Prints addr, with the port l got if addr asked for port 0. */
static void print_addr(const char *prefix, const char *addr, ac_listener_t *l)
{
	size_t alen = strlen(addr);

	if (alen > 2 && !strcmp(addr + alen - 2, ":0"))
		printf("%s%.*s:%d", prefix, (int)(alen - 2), addr,
		       ac_listener_port(l));
	else
		printf("%s%s", prefix, addr);
}

int main(int argc, char **argv)
{
	enum {
		OPT_TLS_PORT = 256,
		OPT_TLS_LISTEN,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_TLS_CA,
		OPT_TLS_AUTH,
		OPT_TLS_CIPHERS,
		OPT_TLS_SUITES,
		OPT_OBUF,
		OPT_QBUF,
		OPT_MAX_QUEUED,
		OPT_REQUIREPASS,
		OPT_ACLFILE,
		OPT_CLUSTER,
		OPT_CLUSTER_PREFIX,
		OPT_FANOUT_WAIT
	};
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"unix", required_argument, NULL, 'u'},
		{"threads", required_argument, NULL, 't'},
		{"fanout-wait", required_argument, NULL, OPT_FANOUT_WAIT},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"heartbeat", required_argument, NULL, 'b'},
		{"max-clients", required_argument, NULL, 'c'},
		{"output-limit", required_argument, NULL, 'o'},
		{"max-bulk", required_argument, NULL, 'B'},
		{"proto-max-bulk-len", required_argument, NULL, 'B'},
		{"client-output-buffer-limit", required_argument, NULL, OPT_OBUF},
		{"client-query-buffer-limit", required_argument, NULL, OPT_QBUF},
		{"metrics", required_argument, NULL, 'm'},
		{"cluster", required_argument, NULL, OPT_CLUSTER},
		{"cluster-prefix", required_argument, NULL, OPT_CLUSTER_PREFIX},
		{"max-queued", required_argument, NULL, OPT_MAX_QUEUED},
		{"tls-port", required_argument, NULL, OPT_TLS_PORT},
		{"tls-listen", required_argument, NULL, OPT_TLS_LISTEN},
		{"tls-cert-file", required_argument, NULL, OPT_TLS_CERT},
		{"tls-key-file", required_argument, NULL, OPT_TLS_KEY},
		{"tls-ca-cert-file", required_argument, NULL, OPT_TLS_CA},
		{"tls-auth-clients", required_argument, NULL, OPT_TLS_AUTH},
		{"tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS},
		{"tls-ciphersuites", required_argument, NULL, OPT_TLS_SUITES},
		{"requirepass", required_argument, NULL, OPT_REQUIREPASS},
		{"aclfile", required_argument, NULL, OPT_ACLFILE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:6380", *upath = NULL, *maddr = NULL;
	const char *requirepass = NULL, *aclfile = NULL, *cprefix = NULL;
	char *cluster = NULL; /* --cluster's seeds, joined */
	struct tls_args ta = {0};
	char *taddr = NULL;
	ac_tls_t *tls = NULL;
	ac_conn_cbs_t cbs = {.on_open = on_open,
			     .on_frame = on_frame,
			     .on_heartbeat = on_heartbeat,
			     .on_close = on_close};
	/* No frame limit of the library's: the decoder applies
	 * client-query-buffer-limit, which CONFIG SET may change. */
	ac_conn_opts_t opts = {.framing = AC_FRAME_CUSTOM,
			       .decode = resp_decode,
			       .max_frame = SIZE_MAX,
			       .out_high = OUT_HIGH,
			       .out_low = OUT_HIGH / 4};
	/* Redis's defaults: normal clients unbounded, subscribers 32 MiB
	 * at once or 8 MiB for 60 s. */
	static const struct obuf_class obuf_defaults[NCLASSES] = {
		[CLASS_NORMAL] = {0, 0, 0},
		[CLASS_REPLICA] = {256ull << 20, 64ull << 20, 60},
		[CLASS_PUBSUB] = {32ull << 20, 8ull << 20, 60}};
	const char *bad;
	int has[NCLASSES];
	/* A loop that wrote a channel's messages to 64 subscribers or more
	 * waits up to as long again, at most 4 ms, so that its next write to
	 * each carries more messages (ac_config_t.fanout_wait_us). */
	ac_config_t cfg = {.fanout_wait_us = 4000};
	ac_listener_t *l = NULL, *tl = NULL, *ul, *ml;
	bool plain;
	sigset_t sigs;
	int opt, err, sig, status = 1, nact;

	B.lim.max_bulk = (size_t)512 << 20;
	B.lim.max_inline = 64 << 10;
	B.lim.max_args = INT_MAX; /* Redis 7's limit; each takes 6 bytes */
	B.qbuf_limit = (size_t)1 << 30;
	memcpy(B.obuf, obuf_defaults, sizeof(B.obuf));
	/* A transaction may hold as much as the default largest request
	 * (client-query-buffer-limit): Redis has no bound of its own for
	 * it. 0 (--max-queued 0) too. */
	B.max_queued = (size_t)1 << 30;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': addr = optarg; break;
		case 'u': upath = optarg; break;
		case 't': cfg.loops = (int)number("--threads", optarg); break;
		case 'i': opts.idle_timeout_ms = (unsigned)number("--idle-timeout", optarg); break;
		case 'b': opts.heartbeat_ms = (unsigned)number("--heartbeat", optarg); break;
		case 'c': cfg.max_conns = (unsigned)number("--max-clients", optarg); break;
		case OPT_FANOUT_WAIT:
			if ((cfg.fanout_wait_us = (unsigned)number("--fanout-wait", optarg)) >
			    AC_FANOUT_WAIT_MAX) {
				fprintf(stderr, "actorconn-broker: --fanout-wait is at "
						"most %u us\n", AC_FANOUT_WAIT_MAX);
				return 1;
			}
			break;
		case 'o':
			/* The older spelling: the subscribers' hard limit,
			 * their soft limit no higher. */
			B.obuf[CLASS_PUBSUB].hard = number("--output-limit", optarg);
			if (B.obuf[CLASS_PUBSUB].soft > B.obuf[CLASS_PUBSUB].hard)
				B.obuf[CLASS_PUBSUB].soft = B.obuf[CLASS_PUBSUB].hard;
			break;
		case OPT_OBUF:
			if ((bad = obuf_parse(optarg, strlen(optarg), B.obuf, has))) {
				fprintf(stderr, "actorconn-broker: bad "
						"--client-output-buffer-limit "
						"'%s': %s\n", optarg, bad);
				return 1;
			}
			break;
		case 'B': B.lim.max_bulk = size_option("--proto-max-bulk-len", optarg); break;
		case OPT_QBUF: B.qbuf_limit = size_option("--client-query-buffer-limit", optarg); break;
		case 'm': maddr = optarg; break;
		case OPT_CLUSTER:
			if (!(cluster = cluster_seeds(cluster, optarg)))
				return 1;
			break;
		case OPT_CLUSTER_PREFIX: cprefix = optarg; break;
		case OPT_TLS_PORT: ta.port = optarg; break;
		case OPT_TLS_LISTEN: ta.listen = optarg; break;
		case OPT_TLS_CERT: ta.o.cert_file = optarg; break;
		case OPT_TLS_KEY: ta.o.key_file = optarg; break;
		case OPT_TLS_CA: ta.o.ca_file = optarg; break;
		case OPT_TLS_AUTH: ta.auth = optarg; break;
		case OPT_TLS_CIPHERS: ta.o.ciphers = optarg; break;
		case OPT_TLS_SUITES: ta.o.ciphersuites = optarg; break;
		case OPT_MAX_QUEUED: B.max_queued = number("--max-queued", optarg); break;
		case OPT_REQUIREPASS: requirepass = optarg; break;
		case OPT_ACLFILE: aclfile = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (B.max_queued == 0)
		B.max_queued = (size_t)1 << 30;
	if (cprefix && !cluster) {
		fprintf(stderr, "actorconn-broker: --cluster-prefix needs "
				"--cluster\n");
		return 1;
	}
	if (optind != argc || cfg.loops > 256) {
		usage(stderr);
		return 1;
	}
	/* Every connection starts in the normal class. */
	obuf_limits(CLASS_NORMAL, &opts.out_hard_limit, &opts.out_soft_limit,
		    &opts.out_soft_ms);
	if (!opts.out_soft_ms)
		opts.out_soft_ms = 1; /* 0 is the library's default */
	B.idle_timeout_ms = opts.idle_timeout_ms;
	B.max_clients = cfg.max_conns ? cfg.max_conns : open_files();
	/* Socket activation: the descriptors systemd passed (3, 4, ...)
	 * take the place of --listen; the variables are unset so that no
	 * child takes them for its own. */
	if ((nact = ac_listen_fds(1, NULL, 0)) < 0) {
		fprintf(stderr, "actorconn-broker: LISTEN_FDS: %s\n",
			errtext(nact));
		return 1;
	}
	plain = !nact && strcmp(addr, "none") != 0;
	taddr = tls_addr(&ta, addr);
	if (!taddr && (ta.o.cert_file || ta.o.key_file || ta.o.ca_file ||
		       ta.auth || ta.o.ciphers || ta.o.ciphersuites)) {
		fprintf(stderr, "actorconn-broker: the --tls-* options need "
				"--tls-port or --tls-listen\n");
		return 1;
	}
	if (!plain && !nact && !taddr && !upath) {
		fprintf(stderr, "actorconn-broker: --listen none leaves nothing "
				"to listen on: give --tls-port, --tls-listen or "
				"--unix\n");
		return 1;
	}
	if (taddr)
		tls = tls_context(&ta);
	if (acl_init(requirepass, aclfile))
		return 1;
	new_run_id(B.run_id);

	/* Block the stop signals, and SIGHUP when there are certificates
	 * to reload, in every thread (the loops inherit the mask); this
	 * thread waits for them. Without TLS, SIGHUP keeps its default. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (tls)
		sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	B.started_ms = now_ms();
	pubsub_init();
	if (!(B.rt = ac_runtime_new(&cfg))) {
		perror("actorconn-broker: ac_runtime_new");
		goto fail;
	}
	if (plain && (err = ac_listen(B.rt, addr, &cbs, &opts, &B, &l))) {
		fprintf(stderr, "actorconn-broker: cannot listen on %s: %s\n",
			addr, errtext(err));
		goto fail;
	}
	for (int i = 0; i < nact; i++) {
		ac_listener_t *al;

		if ((err = ac_listen_fd(B.rt, 3 + i, &cbs, &opts, &B, &al))) {
			fprintf(stderr, "actorconn-broker: cannot listen on "
					"inherited descriptor %d: %s\n",
				3 + i, errtext(err));
			goto fail;
		}
		if (!l && ac_listener_port(al))
			l = al; /* INFO's tcp_port: the first TCP one's */
	}
	B.port = l ? ac_listener_port(l) : 0;
	if (tls) {
		/* The same connections as the plain listener's; the library
		 * handshakes before the first frame. */
		ac_conn_opts_t topts = opts;

		topts.tls = tls;
		if ((err = ac_listen(B.rt, taddr, &cbs, &topts, &B, &tl))) {
			fprintf(stderr, "actorconn-broker: cannot listen on %s: "
					"%s\n", taddr, errtext(err));
			goto fail;
		}
	}
	if (upath) {
		char ua[128];
		snprintf(ua, sizeof(ua), "unix:%s", upath);
		if ((err = ac_listen(B.rt, ua, &cbs, &opts, &B, &ul))) {
			fprintf(stderr, "actorconn-broker: cannot listen on %s: %s\n",
				ua, errtext(err));
			goto fail;
		}
	}
	if (maddr && (err = ac_metrics_listen(B.rt, maddr, &ml))) {
		fprintf(stderr, "actorconn-broker: cannot serve metrics on %s: %s\n",
			maddr, errtext(err));
		goto fail;
	}
	if (cluster && cluster_start(cluster, cprefix))
		goto fail;
	if ((err = ac_runtime_start(B.rt))) {
		fprintf(stderr, "actorconn-broker: start: %s\n", ac_strerror(err));
		goto fail;
	}
	/* "listening on ADDR and tls:ADDR and unix:PATH (N loops)" */
	const char *sep = "actorconn-broker: listening on ";
	if (nact) {
		printf("%s%d inherited socket%s (socket activation)", sep, nact,
		       nact == 1 ? "" : "s");
		sep = " and ";
	}
	if (plain) {
		print_addr(sep, addr, l);
		sep = " and ";
	}
	if (tls) {
		printf("%stls:", sep);
		print_addr("", taddr, tl);
		sep = " and ";
	}
	if (upath)
		printf("%sunix:%s", sep, upath);
	printf(" (%d loops)\n", ac_runtime_loops(B.rt));
	if (tls)
		printf("actorconn-broker: TLS client certificates %s\n",
		       ta.o.verify == AC_TLS_VERIFY_CLIENT ? "required"
							   : "not asked for");
	if (maddr)
		printf("actorconn-broker: metrics on http://%s/metrics\n", maddr);
	if (cluster) {
		char shown[256];

		cluster_print_url(shown, sizeof(shown), cluster);
		printf("actorconn-broker: channels bridged through %s", shown);
		if (cprefix)
			printf(" with prefix '%s'", cprefix);
		printf("\n");
	}
	fflush(stdout);

	while (!sigwait(&sigs, &sig) && sig == SIGHUP) {
		/* New certificates for the handshakes from now on; the
		 * connections open keep theirs. A failed reload changes
		 * nothing. */
		char why[256];

		if ((err = ac_tls_reload(tls, why, sizeof(why))))
			fprintf(stderr, "actorconn-broker: TLS reload failed, "
					"keeping the old certificates: %s\n",
				*why ? why : ac_strerror(err));
		else
			printf("actorconn-broker: TLS certificates reloaded\n");
		fflush(stdout);
	}
	status = 0;
fail:
	if (B.rt)
		ac_runtime_stop(B.rt, 1000);
	/* After the loops: no command calls the bridge any more. */
	cluster_free();
	ac_runtime_free(B.rt);
	/* After the runtime: its listeners and connections held their own
	 * references, and have dropped them now. */
	ac_tls_free(tls);
	free(taddr);
	free(cluster);
	pubsub_free();
	acl_free();
	return status;
}
