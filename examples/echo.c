/*
 * actorconn-echo: echoes every frame back with the same framing.
 *
 *   actorconn-echo [--listen ADDR] [--threads N] [--framing raw|line|len32]
 *                  [--idle-timeout MS] [--heartbeat MS] [--metrics ADDR]
 *                  [--tls-cert FILE --tls-key FILE
 *                   [--tls-ca FILE [--tls-verify-client]]]
 *
 * The smallest complete libactorconn server: a listener, one callback, and
 * a clean stop on SIGINT/SIGTERM. With --metrics it also answers HTTP
 * requests on ADDR with the runtime's statistics in the Prometheus text
 * format (ac_metrics_listen); with --tls-cert its listener speaks TLS
 * (ac_tls_new). With --heartbeat the library writes a PING frame on every
 * connection at that period (heartbeat_ms and ping): the server side of
 * `actorconn-bench heartbeat`. Started by systemd socket activation
 * (LISTEN_FDS), it serves the sockets it was given instead of --listen
 * (ac_listen_fds, ac_listen_fd). See actorconn-echo(1).
 */
#include <actorconn.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest heartbeat period --heartbeat takes: an hour. */
#define HEARTBEAT_MAX_MS 3600000L

/* The heartbeat payload of each framing: one frame that reads "PING". */
static const char ping_len32[] = {0, 0, 0, 4, 'P', 'I', 'N', 'G'};
static const char ping_line[] = "PING\n";
static const char ping_raw[] = "PING";

static void on_frame(ac_conn_t *c, const void *data, size_t len)
{
	int framing = (int)(intptr_t)ac_conn_data(c);

	if (framing == AC_FRAME_LEN32) {
		uint32_t n = htonl((uint32_t)len);
		ac_conn_write(c, &n, sizeof(n));
		ac_conn_write(c, data, len);
	} else if (framing == AC_FRAME_LINE) {
		ac_conn_write(c, data, len);
		ac_conn_write(c, "\n", 1);
	} else {
		ac_conn_write(c, data, len);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: actorconn-echo [--listen ADDR] [--threads N] "
		   "[--framing raw|line|len32]\n"
		   "                      [--idle-timeout MS] [--heartbeat MS] "
		   "[--metrics ADDR]\n"
		   "                      [--tls-cert FILE --tls-key FILE\n"
		   "                       [--tls-ca FILE [--tls-verify-client]]]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"threads", required_argument, NULL, 't'},
		{"framing", required_argument, NULL, 'f'},
		{"idle-timeout", required_argument, NULL, 'i'},
		{"heartbeat", required_argument, NULL, 'b'},
		{"metrics", required_argument, NULL, 'm'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"tls-ca", required_argument, NULL, 'A'},
		{"tls-verify-client", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	const char *addr = "127.0.0.1:7000", *fname = "raw", *maddr = NULL;
	ac_config_t cfg = {0};
	ac_conn_opts_t opts = {0};
	ac_conn_cbs_t cbs = {.on_frame = on_frame};
	ac_tls_opts_t to = {.role = AC_TLS_SERVER};
	char why[256];
	ac_listener_t *l;
	ac_runtime_t *rt;
	sigset_t sigs;
	int opt, err, sig, status = 1, nact;
	char *end;
	long hb;

	while ((opt = getopt_long(argc, argv, "l:t:f:i:m:h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'l':
			addr = optarg;
			break;
		case 't':
			cfg.loops = atoi(optarg);
			if (cfg.loops < 1) {
				fprintf(stderr, "actorconn-echo: bad --threads\n");
				return 1;
			}
			break;
		case 'f':
			fname = optarg;
			break;
		case 'i':
			opts.idle_timeout_ms = (unsigned)atoi(optarg);
			break;
		case 'b':
			errno = 0;
			hb = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || hb < 1 ||
			    hb > HEARTBEAT_MAX_MS) {
				fprintf(stderr, "actorconn-echo: bad --heartbeat "
						"(1 to %ld ms)\n",
					HEARTBEAT_MAX_MS);
				return 1;
			}
			opts.heartbeat_ms = (unsigned)hb;
			break;
		case 'm':
			maddr = optarg;
			break;
		case 'C':
			to.cert_file = optarg;
			break;
		case 'K':
			to.key_file = optarg;
			break;
		case 'A':
			to.ca_file = optarg;
			break;
		case 'V':
			to.verify = AC_TLS_VERIFY_CLIENT;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 1;
	}
	/* With a heartbeat, the ping is one frame of the chosen framing. */
	if (!strcmp(fname, "raw")) {
		opts.framing = AC_FRAME_RAW;
		opts.ping = ping_raw;
		opts.ping_len = sizeof(ping_raw) - 1;
	} else if (!strcmp(fname, "line")) {
		opts.framing = AC_FRAME_LINE;
		opts.ping = ping_line;
		opts.ping_len = sizeof(ping_line) - 1;
	} else if (!strcmp(fname, "len32")) {
		opts.framing = AC_FRAME_LEN32;
		opts.ping = ping_len32;
		opts.ping_len = sizeof(ping_len32);
	} else {
		fprintf(stderr, "actorconn-echo: unknown framing '%s'\n", fname);
		return 1;
	}
	/* The library copies the ping at listen and, every heartbeat_ms,
	 * writes it on each connection. The peer's answer is a frame like
	 * any other, and is echoed. */
	if (!opts.heartbeat_ms) {
		opts.ping = NULL;
		opts.ping_len = 0;
	}
	if (to.cert_file || to.key_file || to.ca_file || to.verify) {
		if (!to.cert_file || !to.key_file) {
			fprintf(stderr, "actorconn-echo: TLS needs both --tls-cert "
					"and --tls-key\n");
			return 1;
		}
		if (to.verify && !to.ca_file) {
			fprintf(stderr, "actorconn-echo: --tls-verify-client needs "
					"--tls-ca\n");
			return 1;
		}
		/* The files are read now: a bad one stops us before we
		 * listen. The listener takes its own reference. */
		if (!(opts.tls = ac_tls_new(&to, why, sizeof(why)))) {
			if (errno == ENOTSUP)
				fprintf(stderr, "actorconn-echo: TLS is not "
						"available: libactorconn was "
						"built without OpenSSL\n");
			else
				fprintf(stderr, "actorconn-echo: TLS: %s\n",
					*why ? why : strerror(errno));
			return 1;
		}
	}

	/* Socket activation: the descriptors systemd passed (3, 4, ...), and
	 * the variables unset so that no child takes them for its own. */
	if ((nact = ac_listen_fds(1, NULL, 0)) < 0) {
		fprintf(stderr, "actorconn-echo: LISTEN_FDS: %s\n",
			ac_strerror(nact));
		return 1;
	}

	/* Block the stop signals in every thread (the loops inherit the
	 * mask), and wait for them here. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (!(rt = ac_runtime_new(&cfg))) {
		perror("actorconn-echo: ac_runtime_new");
		goto fail;
	}
	for (int i = 0; i < nact; i++) {
		if ((err = ac_listen_fd(rt, 3 + i, &cbs, &opts,
					(void *)(intptr_t)opts.framing, &l))) {
			fprintf(stderr, "actorconn-echo: cannot listen on "
					"inherited descriptor %d: %s\n",
				3 + i, ac_strerror(err));
			goto fail;
		}
	}
	if (!nact && (err = ac_listen(rt, addr, &cbs, &opts,
				      (void *)(intptr_t)opts.framing, &l))) {
		fprintf(stderr, "actorconn-echo: cannot listen on %s: %s\n",
			addr, ac_strerror(err));
		goto fail;
	}
	if (maddr) {
		ac_listener_t *ml;

		if ((err = ac_metrics_listen(rt, maddr, &ml))) {
			fprintf(stderr, "actorconn-echo: cannot serve metrics on "
					"%s: %s\n",
				maddr,
				ac_strerror(err));
			goto fail;
		}
		size_t mlen = strlen(maddr);
		if (mlen > 2 && !strcmp(maddr + mlen - 2, ":0"))
			printf("actorconn-echo: metrics on http://%.*s:%d/metrics\n",
			       (int)(mlen - 2), maddr, ac_listener_port(ml));
		else
			printf("actorconn-echo: metrics on http://%s/metrics\n",
			       maddr);
	}
	if ((err = ac_runtime_start(rt))) {
		fprintf(stderr, "actorconn-echo: start: %s\n", ac_strerror(err));
		goto fail;
	}
	const char *tlsnote = !opts.tls ? ""
			      : to.verify ? ", TLS with client certificates"
					  : ", TLS";
	/* With port 0, say which port was picked. */
	size_t alen = strlen(addr);
	if (nact)
		printf("actorconn-echo: listening on %d inherited socket%s "
		       "(socket activation; %d loops, %s framing%s)\n",
		       nact, nact == 1 ? "" : "s", ac_runtime_loops(rt), fname,
		       tlsnote);
	else if (alen > 2 && !strcmp(addr + alen - 2, ":0"))
		printf("actorconn-echo: listening on %.*s:%d (%d loops, %s "
		       "framing%s)\n",
		       (int)(alen - 2), addr, ac_listener_port(l),
		       ac_runtime_loops(rt), fname, tlsnote);
	else
		printf("actorconn-echo: listening on %s (%d loops, %s "
		       "framing%s)\n",
		       addr, ac_runtime_loops(rt), fname, tlsnote);
	fflush(stdout);

	sigwait(&sigs, &sig);
	ac_runtime_stop(rt, 1000);
	status = 0;
fail:
	ac_runtime_free(rt);
	ac_tls_free(opts.tls); /* after the listener's reference went */
	return status;
}
