/*
 * actorconn-broker: a RESP2 publish/subscribe server that redis-cli and
 * redis-benchmark can talk to unchanged. See actorconn-broker(1).
 *
 * This file holds the connections (decoding, replies, a client's state),
 * the command line and main; the channels are in pubsub.c, the commands
 * in commands.c, --upstream in forward.c (broker.h lists them).
 */
#include "broker.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void out(ac_conn_t *c, const void *p, size_t n)
{
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

/* ---- connection callbacks -------------------------------------------------- */

/*
 * The decoder: one frame per complete command. A malformed command becomes
 * a frame of everything received, so that on_frame can send Redis' error
 * before closing; an incomplete one larger than max_frame is refused.
 */
static int resp_decode(const void *buf, size_t len, size_t max_frame,
		       ac_frame_t *f)
{
	size_t consumed, need;
	const char *err;
	int r = resp_parse(buf, len, &B.lim, NULL, &consumed, &need, &err);

	if (r == RESP_MORE) {
		if (len > max_frame || need > max_frame)
			return AC_EFRAME;
		f->need = need;
		return 0;
	}
	f->off = 0;
	f->len = f->consumed = r == RESP_OK ? consumed : len;
	return 1;
}

static void on_frame(ac_conn_t *c, const void *data, size_t len)
{
	static __thread const char *argv[MAX_ARGS];
	static __thread size_t argl[MAX_ARGS];
	struct resp_cmd cmd = {0, argv, argl};
	size_t consumed, need;
	const char *err;

	if (resp_parse(data, len, &B.lim, &cmd, &consumed, &need, &err) !=
	    RESP_OK) {
		outf(c, "-ERR %s\r\n", err);
		ac_conn_close(c, AC_CLOSE_FLUSH);
		return;
	}
	if (cmd.argc)
		execute(c, ac_conn_data(c), cmd.argc, argv, argl);
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
	cl->id = __atomic_add_fetch(&B.next_id, 1, __ATOMIC_RELAXED);
	ac_conn_set_data(c, cl);
	return cl;
}

static void on_heartbeat(ac_conn_t *c)
{
	/* Only subscribers are idle by design; they get the push Redis sends
	 * a subscribed PING, which every client understands there. */
	struct client *cl = ac_conn_data(c);

	if (cl && nsubs(cl))
		out(c, "*2\r\n$4\r\npong\r\n$0\r\n\r\n", 20);
}

static void on_close(ac_conn_t *c, int reason)
{
	struct client *cl = ac_conn_data(c);

	if (!cl)
		return;
	unsubscribe_all(c, cl, 0, 1);
	unsubscribe_all(c, cl, 1, 1);
	free(cl->chans);
	free(cl->pats);
	free(cl->name);
	free(cl);
}

/* ---- main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: actorconn-broker [--listen ADDR] [--unix PATH] [--threads N]\n"
		"         [--idle-timeout MS] [--heartbeat MS] [--max-clients N]\n"
		"         [--output-limit BYTES] [--max-bulk BYTES] [--metrics ADDR]\n"
		"         [--upstream ADDR]\n");
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

static const char *errtext(int err)
{
	return ac_strerror(err); /* system errors come back as -errno */
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"unix", required_argument, NULL, 'u'},
		{"threads", required_argument, NULL, 't'},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"heartbeat", required_argument, NULL, 'b'},
		{"max-clients", required_argument, NULL, 'c'},
		{"output-limit", required_argument, NULL, 'o'},
		{"max-bulk", required_argument, NULL, 'B'},
		{"metrics", required_argument, NULL, 'm'},
		{"upstream", required_argument, NULL, 'U'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:6380", *upath = NULL, *maddr = NULL;
	const char *upstream = NULL;
	ac_conn_cbs_t cbs = {.on_frame = on_frame,
			     .on_heartbeat = on_heartbeat,
			     .on_close = on_close};
	ac_conn_opts_t opts = {.framing = AC_FRAME_CUSTOM,
			       .decode = resp_decode,
			       .max_frame = (size_t)1 << 30};
	ac_config_t cfg = {0};
	ac_listener_t *l, *ul, *ml;
	sigset_t sigs;
	int opt, err, sig;

	B.lim.max_bulk = (size_t)512 << 20;
	B.lim.max_inline = 64 << 10;
	B.lim.max_args = MAX_ARGS;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': addr = optarg; break;
		case 'u': upath = optarg; break;
		case 't': cfg.loops = (int)number("--threads", optarg); break;
		case 'i': opts.idle_timeout_ms = (unsigned)number("--idle-timeout", optarg); break;
		case 'b': opts.heartbeat_ms = (unsigned)number("--heartbeat", optarg); break;
		case 'c': cfg.max_conns = (unsigned)number("--max-clients", optarg); break;
		case 'o':
			opts.out_hard_limit = number("--output-limit", optarg);
			/* The soft limit never above the hard one. */
			opts.out_soft_limit = opts.out_hard_limit < (1u << 20)
						      ? opts.out_hard_limit
						      : 1u << 20;
			if (opts.out_high > opts.out_hard_limit)
				opts.out_high = opts.out_hard_limit;
			break;
		case 'B': B.lim.max_bulk = number("--max-bulk", optarg); break;
		case 'm': maddr = optarg; break;
		case 'U': upstream = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc || cfg.loops > 256) {
		usage(stderr);
		return 1;
	}
	if (opts.out_hard_limit && opts.out_hard_limit < (256u << 10)) {
		opts.out_high = opts.out_hard_limit;
		opts.out_low = opts.out_hard_limit / 4;
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	B.started_ms = now_ms();
	pubsub_init();
	if (!(B.rt = ac_runtime_new(&cfg))) {
		perror("actorconn-broker: ac_runtime_new");
		return 1;
	}
	if ((err = ac_listen(B.rt, addr, &cbs, &opts, NULL, &l))) {
		fprintf(stderr, "actorconn-broker: cannot listen on %s: %s\n",
			addr, errtext(err));
		ac_runtime_free(B.rt);
		return 1;
	}
	B.port = ac_listener_port(l);
	if (upath) {
		char ua[128];
		snprintf(ua, sizeof(ua), "unix:%s", upath);
		if ((err = ac_listen(B.rt, ua, &cbs, &opts, NULL, &ul))) {
			fprintf(stderr, "actorconn-broker: cannot listen on %s: %s\n",
				ua, errtext(err));
			ac_runtime_free(B.rt);
			return 1;
		}
	}
	if (maddr && (err = ac_metrics_listen(B.rt, maddr, &ml))) {
		fprintf(stderr, "actorconn-broker: cannot serve metrics on %s: %s\n",
			maddr, errtext(err));
		ac_runtime_free(B.rt);
		return 1;
	}
	if (upstream && !(B.up = upstream_pool(upstream))) {
		fprintf(stderr, "actorconn-broker: bad --upstream '%s': %s\n",
			upstream, strerror(errno));
		ac_runtime_free(B.rt);
		return 1;
	}
	if ((err = ac_runtime_start(B.rt))) {
		fprintf(stderr, "actorconn-broker: start: %s\n", ac_strerror(err));
		ac_runtime_free(B.rt);
		return 1;
	}
	size_t alen = strlen(addr);
	if (alen > 2 && !strcmp(addr + alen - 2, ":0"))
		printf("actorconn-broker: listening on %.*s:%d", (int)(alen - 2),
		       addr, B.port);
	else
		printf("actorconn-broker: listening on %s", addr);
	if (upath)
		printf(" and unix:%s", upath);
	printf(" (%d loops)\n", ac_runtime_loops(B.rt));
	if (maddr)
		printf("actorconn-broker: metrics on http://%s/metrics\n", maddr);
	if (upstream)
		printf("actorconn-broker: forwarding PUBLISH to %s\n", upstream);
	fflush(stdout);

	sigwait(&sigs, &sig);
	ac_pool_free(B.up);
	ac_runtime_stop(B.rt, 1000);
	ac_runtime_free(B.rt);
	pubsub_free();
	return 0;
}
