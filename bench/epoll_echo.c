/*
 * epoll-echo: the practical limit of a len32 echo server on this machine.
 *
 *   epoll-echo [--listen HOST:PORT] [--threads N] [--heartbeat MS]
 *
 * A baseline for `actorconn-bench echo`, built by `make bench` and never
 * installed. No library: one thread per core (default: online CPUs), each
 * with its own SO_REUSEPORT listening socket and epoll set, non-blocking
 * sockets with TCP_NODELAY (as libactorconn sets), and an echo that writes
 * the complete frames back straight from the input buffer, since a len32
 * frame echoes as itself. Nothing is allocated per frame. It is what a
 * server that does nothing else can do, so a library's echo can only come
 * close to it.
 *
 * Framing: a 4-byte big-endian length, then that many bytes, at most 1 MiB
 * (actorconn-echo's default max_frame); a longer frame closes the
 * connection. Prints "epoll-echo: listening on HOST:PORT (N threads)" when
 * ready; stops on SIGINT or SIGTERM.
 *
 * With --heartbeat MS it is also the floor of `actorconn-bench heartbeat`:
 * every MS milliseconds each connection is written the len32 frame "PING",
 * as actorconn-echo --heartbeat MS --framing len32 does through the
 * library, and the client's PONG is echoed like any frame, as
 * actorconn-echo echoes it. A round trip then costs the system calls it
 * cannot do without, one write() of the PING, and a read() and a write()
 * of the PONG (echoed), plus the epoll_wait() wake-ups that a thread's
 * connections share. Nothing else: no timer descriptor and no timer per
 * connection. Heartbeats fall on the same grid as the library's, so a
 * wake-up serves every connection due in the same step. Every connection
 * has the same period, so a thread keeps its
 * connections in one list in the order they are due (a connection pinged
 * goes to the back), the epoll_wait() timeout is the time until the front
 * one is due, and the clock is read through the vDSO, which is no system
 * call.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "listen_addr.h"

#define NAME "epoll-echo"
#define MAX_FRAME ((size_t)1 << 20)
#define IN_MIN 65536u             /* first input buffer: one read's worth */
#define OUT_STOP ((size_t)4 << 20) /* stop reading above this much unsent */
#define HEARTBEAT_MAX_MS 3600000L /* as actorconn-echo: an hour */

struct conn {
	int fd;
	int reading;       /* EPOLLIN in the interest set */
	int writing;       /* EPOLLOUT in the interest set */
	char *in;
	size_t have, cap;
	char *out;         /* unsent echo, at out + out_off */
	size_t out_len, out_off, out_cap;
	uint64_t due;      /* --heartbeat: when the next PING goes, in ns */
	TAILQ_ENTRY(conn) hb; /* in its worker's hbq */
};

struct worker {
	pthread_t th;
	int lfd, ep;
	/* --heartbeat: every connection, the one due first at the front */
	TAILQ_HEAD(, conn) hbq;
};

/* The heartbeat period in ns, 0 without --heartbeat; set before the
 * workers start. */
static uint64_t hb_ns;

/* The PING frame: a 4-byte big-endian length, 4, and "PING". */
static const char ping[8] = {0, 0, 0, 4, 'P', 'I', 'N', 'G'};

static void fatal(const char *what)
{
	fprintf(stderr, NAME ": %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void conn_close(struct worker *w, struct conn *c)
{
	if (hb_ns)
		TAILQ_REMOVE(&w->hbq, c, hb);
	close(c->fd); /* also leaves the epoll set */
	free(c->in);
	free(c->out);
	free(c);
}

static int conn_arm(int ep, struct conn *c, int reading, int writing)
{
	struct epoll_event ev = {
		.events = (reading ? EPOLLIN : 0) | (writing ? EPOLLOUT : 0),
		.data.ptr = c};

	if (c->reading == reading && c->writing == writing)
		return 0;
	c->reading = reading;
	c->writing = writing;
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Queues n bytes that the socket did not take. */
static int queue_out(struct conn *c, const char *p, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : IN_MIN;
		char *q;

		if (c->out_off) {
			memmove(c->out, c->out + c->out_off,
				c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		while (cap < c->out_len + n)
			cap *= 2;
		if (!(q = realloc(c->out, cap)))
			return -1;
		c->out = q;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Writes p[0..n) now if nothing is queued, and queues what is left. */
static int send_echo(struct conn *c, const char *p, size_t n)
{
	if (c->out_off == c->out_len) {
		ssize_t w = write(c->fd, p, n);

		if (w < 0 && errno != EAGAIN)
			return -1;
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
	return n ? queue_out(c, p, n) : 0;
}

static int flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = write(c->fd, c->out + c->out_off,
				  c->out_len - c->out_off);

		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out_off += (size_t)w;
	}
	return 0;
}

/* Reads once, echoes every complete frame. -1: close the connection. */
static int on_readable(struct conn *c)
{
	size_t off = 0, need = 0;
	ssize_t n;

	n = read(c->fd, c->in + c->have, c->cap - c->have);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (n < 0)
		return 0;
	c->have += (size_t)n;
	/* The complete frames at the front echo as they are, in one go. */
	while (c->have - off >= 4) {
		const unsigned char *h = (const unsigned char *)c->in + off;
		size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 |
			     (size_t)h[2] << 8 | h[3];

		if (len > MAX_FRAME)
			return -1;
		if (c->have - off - 4 < len) {
			need = 4 + len;
			break;
		}
		off += 4 + len;
	}
	if (off && send_echo(c, c->in, off))
		return -1;
	c->have -= off;
	memmove(c->in, c->in + off, c->have);
	if (need > c->cap) {
		/* A frame larger than the buffer: room for all of it. */
		size_t cap = c->cap;
		char *q;

		while (cap < need)
			cap *= 2;
		if (!(q = realloc(c->in, cap)))
			return -1;
		c->in = q;
		c->cap = cap;
	}
	return 0;
}

static void accept_all(struct worker *w)
{
	for (;;) {
		int fd = accept4(w->lfd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev = {.events = EPOLLIN};
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				perror(NAME ": accept4");
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!(c = calloc(1, sizeof(*c))) ||
		    !(c->in = malloc(IN_MIN))) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->cap = IN_MIN;
		c->reading = 1;
		ev.data.ptr = c;
		/* The last to open is the last due: the list stays in
		 * order. The first PING falls on the grid the library
		 * uses (src/conn.c, hb_grid_us: a hundredth of the period,
		 * 1 to 100 ms), so that connections opened at different
		 * moments share wake-ups here as they do there. */
		if (hb_ns) {
			uint64_t g = hb_ns / 100;

			g = g < 1000000 ? 1000000 : g > 100000000 ? 100000000 : g;
			g -= g % 1000000; /* whole milliseconds, as there */
			c->due = (now_ns() + hb_ns + g - 1) / g * g;
			TAILQ_INSERT_TAIL(&w->hbq, c, hb);
		}
		if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(w, c);
	}
}

/*
 * Writes the PING on every connection that is due at now, with one
 * write() (queued behind any unsent echo instead, which holds whole frames
 * only), and moves it to the back of the list, due one period after it
 * was due: the cadence holds however late this pass runs, as the
 * library's does (it re-arms at the grid point nearest a period on),
 * unless a whole period was missed. The back of the list may then be due
 * a little later than the one moved behind it (one accepted while this
 * pass waited): that PING goes out as late as this pass was, less than a
 * wake-up.
 */
static void heartbeat(struct worker *w, uint64_t now)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&w->hbq)) && c->due <= now) {
		TAILQ_REMOVE(&w->hbq, c, hb);
		c->due += hb_ns;
		if (c->due <= now)
			c->due = now + hb_ns;
		TAILQ_INSERT_TAIL(&w->hbq, c, hb);
		if (send_echo(c, ping, sizeof(ping)) ||
		    conn_arm(w->ep, c, c->reading, c->out_len > c->out_off))
			conn_close(w, c);
	}
}

/* The epoll_wait() timeout: until the first connection is due, rounded up
 * to the millisecond so that the wait never ends before it; -1 (none)
 * without a heartbeat or a connection. */
static int heartbeat_timeout(const struct worker *w)
{
	const struct conn *c = TAILQ_FIRST(&w->hbq);
	uint64_t now;

	if (!hb_ns || !c)
		return -1;
	if (c->due <= (now = now_ns()))
		return 0;
	return (int)((c->due - now + 999999) / 1000000);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct epoll_event evs[256];

	for (;;) {
		int n = epoll_wait(w->ep, evs, 256, heartbeat_timeout(w));

		if (n < 0 && errno != EINTR)
			fatal("epoll_wait");
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int bad = 0;

			if (!c) {
				accept_all(w);
				continue;
			}
			if (evs[i].events & EPOLLOUT)
				bad = flush_out(c);
			if (!bad && (evs[i].events & (EPOLLIN | EPOLLERR |
						      EPOLLHUP)))
				bad = on_readable(c);
			/* Stop reading while much is unsent; write while
			 * anything is. */
			if (!bad)
				bad = conn_arm(w->ep, c,
					       c->out_len - c->out_off <
						       OUT_STOP,
					       c->out_len > c->out_off);
			if (bad)
				conn_close(w, c);
		}
		/* After the events: a connection it closes is in none of
		 * evs[] still to be handled. */
		if (hb_ns)
			heartbeat(w, now_ns());
	}
	return NULL;
}

static int listen_on(const struct addrinfo *ai)
{
	int fd, one = 1;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4096))
		fatal("listen");
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " NAME " [--listen HOST:PORT] [--threads N] "
		   "[--heartbeat MS]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"threads", required_argument, NULL, 't'},
		{"heartbeat", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct addrinfo *ai;
	const char *addr = "127.0.0.1:7001";
	char host[256];
	long nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	struct worker *w;
	sigset_t sigs;
	int opt, sig, rc = 0;
	char *end;
	long hb;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': addr = optarg; break;
		case 't': nthreads = atol(optarg); break;
		case 'b':
			errno = 0;
			hb = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || hb < 1 ||
			    hb > HEARTBEAT_MAX_MS) {
				fprintf(stderr, NAME ": bad --heartbeat "
					"(1 to %ld ms)\n", HEARTBEAT_MAX_MS);
				return 1;
			}
			hb_ns = (uint64_t)hb * 1000000;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc || nthreads < 1 || nthreads > 256 ||
	    (rc = listen_addr(NAME, addr, host, sizeof(host), &ai)) == 1) {
		usage(stderr);
		return 1;
	}
	if (rc)
		return 1;

	/* The workers inherit the blocked stop signals; main waits. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!(w = calloc((size_t)nthreads, sizeof(*w))))
		fatal("calloc");
	for (long i = 0; i < nthreads; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

		TAILQ_INIT(&w[i].hbq);
		w[i].lfd = listen_on(ai);
		if (i == 0) {
			/* Port 0: the rest bind the port the first got. */
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);

			if (getsockname(w[0].lfd, (struct sockaddr *)&ss, &len))
				fatal("getsockname");
			memcpy(ai->ai_addr, &ss, ai->ai_addrlen);
		}
		if ((w[i].ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    epoll_ctl(w[i].ep, EPOLL_CTL_ADD, w[i].lfd, &ev))
			fatal("epoll");
	}
	for (long i = 0; i < nthreads; i++)
		if ((errno = pthread_create(&w[i].th, NULL, worker_main, &w[i])))
			fatal("pthread_create");
	printf(NAME ": listening on %s:%d (%ld threads)\n", host,
	       ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port), nthreads);
	fflush(stdout);
	freeaddrinfo(ai);
	sigwait(&sigs, &sig);
	return 0;
}
