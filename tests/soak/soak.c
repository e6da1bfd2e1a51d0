/*
 * soak: many long-lived connections with heartbeats, for a long time.
 *
 *   soak [--seconds N] [--conns N] [--interval S] [--warmup S]
 *        [--msg-rate F] [--reconnect-rate F]
 *
 * One process forks a server and client processes and watches them:
 *
 *   server   a libactorconn runtime (a loop on every core, at least two,
 *            so that messages cross loops; not the default) listening on
 *            127.0.0.1 with len32 framing, a 1 s heartbeat on every
 *            connection (the ping payload: a "PING" frame, written by the
 *            library) and a 10 s idle timeout, so a client that stopped
 *            answering would be closed (AC_ETIMEDOUT). It echoes every
 *            other frame.
 *   clients  processes of at most 9,500 connections each (a process may
 *            hold 20,000 descriptors), each from its own source address
 *            (127.0.0.2, .3, ...) so that reconnects never run short of
 *            ports. They answer each PING with a PONG, which is what the
 *            idle timeout needs, send a trickle of messages and check
 *            their echoes, and close and reopen a small fraction of their
 *            connections every second.
 *
 * Once every connection is open the clock starts. Every --interval
 * seconds (30) it prints the server's resident memory. After --warmup
 * (60 s: two samples) the memory must stay flat: no later sample more
 * than 2% above the one at the end of the warm-up. A run of 60 s or less
 * (a quick look) takes half its length as warm-up and samples six times,
 * unless --interval and --warmup say otherwise. At the end the
 * clients stop messaging and reconnecting for a quiet window, in which
 * the server's CPU time (from /proc/PID/stat) gives the cost of the
 * heartbeats alone: per second and per 1,000 connections, and per
 * heartbeat round trip (the server's PING, the client's PONG) answered in
 * that window. The run fails
 * (exit 1) if memory grew, any connection was closed by the server
 * (idle timeout, reset, ...), an echo came back wrong, a heartbeat went
 * missing for more than 5 s, or the server had live objects left after
 * ac_runtime_free.
 *
 * `make soak` runs it with SOAK_SECONDS (600) and SOAK_CONNS (19000).
 */
#define _GNU_SOURCE
#include <actorconn.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_CLIENTS 16
#define PER_CLIENT 9500      /* connections per client process */
#define HEARTBEAT_MS 1000
#define IDLE_MS 10000
#define LATE_MS 5000         /* a heartbeat this late is a failure */
#define QUIET_SETTLE_S 3     /* after the trickle stops, before measuring */
#define QUIET_S 10           /* heartbeats only, measured */

/* ---- what the processes share ------------------------------------------- */

struct client_stats {
	int64_t open;           /* connections open now */
	int64_t connects;       /* completed, ever */
	int64_t reconnects;     /* closed by us and reopened */
	int64_t pings, pongs;
	int64_t msgs, echoes;
	int64_t abandoned;      /* echoes owed on connections we closed */
	int64_t bad_echoes;     /* an echo that was not what we sent */
	int64_t server_closes;  /* closed by the server: never expected */
	int64_t connect_errors;
	int64_t max_gap_ms;     /* longest wait for a heartbeat */
	int64_t late;           /* waits over LATE_MS */
	int done;
};

struct shared {
	int port;
	int ready;              /* the server listens */
	int stop;               /* clients: close everything and exit */
	int srv_stop;           /* the server: stop and free the runtime */
	int quiet;              /* clients: answer heartbeats only */
	int64_t srv_open, srv_accepted, srv_rejected, srv_frames;
	int64_t srv_closed[AC_CR_COUNT];
	int64_t srv_heap;       /* tcmalloc's allocated bytes */
	int64_t srv_leaks;      /* live objects after ac_runtime_free */
	int srv_done;
	struct client_stats cl[MAX_CLIENTS];
};

static struct shared *sh;

#define LD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void die(const char *what)
{
	fprintf(stderr, "soak: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* ---- the server ------------------------------------------------------------ */

static const unsigned char ping_frame[8] = {0, 0, 0, 4, 'P', 'I', 'N', 'G'};

static void srv_frame(ac_conn_t *c, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)len);

	if (len == 4 && !memcmp(data, "PONG", 4))
		return; /* its arrival has restarted the idle clock */
	if (ac_conn_write(c, &n, 4) || ac_conn_write(c, data, len))
		ac_conn_close(c, AC_CLOSE_ABORT);
}

static void publish(ac_runtime_t *rt)
{
	ac_stats_t st;

	ac_stats(rt, &st, NULL, 0);
	ST(sh->srv_open, (int64_t)st.conns_open);
	ST(sh->srv_accepted, (int64_t)st.accepted);
	ST(sh->srv_rejected, (int64_t)st.rejected);
	ST(sh->srv_frames, (int64_t)st.frames_in);
	ST(sh->srv_heap, (int64_t)st.heap_bytes);
	for (int i = 0; i < AC_CR_COUNT; i++)
		ST(sh->srv_closed[i], (int64_t)st.closed[i]);
}

static int server(int max_conns)
{
	static const ac_conn_cbs_t cbs = {.on_frame = srv_frame};
	const ac_conn_opts_t opts = {.framing = AC_FRAME_LEN32,
				     .max_frame = 4096,
				     .heartbeat_ms = HEARTBEAT_MS,
				     .ping = ping_frame,
				     .ping_len = sizeof(ping_frame),
				     .idle_timeout_ms = IDLE_MS};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ac_config_t cfg = {.max_conns = (unsigned)max_conns,
			   .loops = ncpu > 2 ? (int)(ncpu < 256 ? ncpu : 256) : 2};
	ac_debug_counts_t d;
	ac_listener_t *l;
	ac_runtime_t *rt;
	int err;

	if (!(rt = ac_runtime_new(&cfg)))
		die("ac_runtime_new");
	if ((err = ac_listen(rt, "127.0.0.1:0", &cbs, &opts, NULL, &l)) ||
	    (err = ac_runtime_start(rt))) {
		fprintf(stderr, "soak: server: %s\n", ac_strerror(err));
		return 2;
	}
	ST(sh->port, ac_listener_port(l));
	ST(sh->ready, 1);
	while (!LD(sh->srv_stop)) {
		publish(rt);
		usleep(200000);
	}
	ac_runtime_stop(rt, 2000);
	publish(rt); /* the final counts, shutdown closes included */
	ac_runtime_free(rt);
	ac_debug_counts(&d);
	ST(sh->srv_leaks, d.conns + d.handles + d.messages + d.listeners +
				  d.timers + d.watches + d.registry + d.buffers +
				  d.groups + d.other);
	ST(sh->srv_done, 1);
	return 0;
}

/* ---- a client process ---------------------------------------------------------- */

enum { C_FREE, C_CONNECTING, C_OPEN };

struct cconn {
	int fd;
	uint8_t state;
	uint8_t inlen;
	uint16_t outstanding;  /* echoes owed to us */
	uint32_t seq_sent, seq_echoed;
	uint64_t since_ms;     /* open (or last heartbeat) since */
	bool late;             /* counted late in this wait */
	unsigned char in[64];
};

struct client {
	int id, want, epfd;
	struct sockaddr_in src, dst;
	struct cconn *c;
	struct client_stats *st;
	unsigned seed;
	int connecting;
	bool ramped; /* every connection has been open at once */
};

static void c_close(struct client *k, int i)
{
	struct cconn *c = &k->c[i];

	k->st->abandoned += c->outstanding;
	if (c->state == C_OPEN)
		k->st->open--;
	if (c->state == C_CONNECTING)
		k->connecting--;
	close(c->fd);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void c_open(struct client *k, int i)
{
	struct cconn *c = &k->c[i];
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
				 .data.u32 = (uint32_t)i};
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	/* Our own source address; the port is picked at connect, for the
	 * whole 4-tuple. */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&k->src, sizeof(k->src)))
		die("bind");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&k->dst, sizeof(k->dst)) &&
	    errno != EINPROGRESS) {
		k->st->connect_errors++;
		close(fd);
		return;
	}
	c->fd = fd;
	c->state = C_CONNECTING;
	k->connecting++;
	if (epoll_ctl(k->epfd, EPOLL_CTL_ADD, fd, &ev))
		die("epoll_ctl");
}

/* Sends a whole (tiny) frame; false if the socket would not take it. */
static bool c_send(struct cconn *c, const void *p, size_t n)
{
	return send(c->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static void c_message(struct client *k, int i)
{
	struct cconn *c = &k->c[i];
	unsigned char f[4 + 24];
	int n = snprintf((char *)f + 4, sizeof(f) - 4, "m%d.%u", i,
			 c->seq_sent + 1);
	uint32_t be = htonl((uint32_t)n);

	memcpy(f, &be, 4);
	if (!c_send(c, f, 4 + (size_t)n)) {
		k->st->connect_errors++; /* a full socket: give it up */
		c_close(k, i);
		c_open(k, i);
		return;
	}
	c->seq_sent++;
	c->outstanding++;
	k->st->msgs++;
}

/* One complete frame from the server. */
static void c_frame(struct client *k, int i, const unsigned char *p,
		    size_t n, uint64_t t)
{
	struct cconn *c = &k->c[i];
	char want[24];

	if (n == 4 && !memcmp(p, "PING", 4)) {
		static const unsigned char pong[8] = {0, 0, 0, 4,
						      'P', 'O', 'N', 'G'};
		uint64_t gap = t - c->since_ms;

		if ((int64_t)gap > k->st->max_gap_ms)
			k->st->max_gap_ms = (int64_t)gap;
		c->since_ms = t;
		c->late = false;
		k->st->pings++;
		if (c_send(c, pong, sizeof(pong)))
			k->st->pongs++;
		return;
	}
	snprintf(want, sizeof(want), "m%d.%u", i, c->seq_echoed + 1);
	if (!c->outstanding || n != strlen(want) || memcmp(p, want, n)) {
		k->st->bad_echoes++;
		return;
	}
	c->outstanding--;
	c->seq_echoed++;
	k->st->echoes++;
}

static void c_readable(struct client *k, int i, uint64_t t)
{
	struct cconn *c = &k->c[i];

	for (;;) {
		ssize_t r = recv(c->fd, c->in + c->inlen,
				 sizeof(c->in) - c->inlen, 0);
		size_t off = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			/* We never ask the server to close: it did so on its
			 * own (idle timeout, reset, limit...). */
			if (!LD(sh->stop))
				k->st->server_closes++;
			c_close(k, i);
			c_open(k, i);
			return;
		}
		c->inlen += (uint8_t)r;
		while (c->inlen - off >= 4) {
			uint32_t be, n;

			memcpy(&be, c->in + off, 4);
			n = ntohl(be);
			if (n > sizeof(c->in) - 4) {
				k->st->bad_echoes++;
				c_close(k, i);
				c_open(k, i);
				return;
			}
			if (c->inlen - off < 4 + n)
				break;
			c_frame(k, i, c->in + off + 4, n, t);
			off += 4 + n;
		}
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= (uint8_t)off;
	}
}

static void c_event(struct client *k, int i, uint32_t events, uint64_t t)
{
	struct cconn *c = &k->c[i];

	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
					 .data.u32 = (uint32_t)i};

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (events & (EPOLLERR | EPOLLHUP))) {
			k->st->connect_errors++;
			c_close(k, i);
			return; /* the ramp opens it again */
		}
		if (!(events & EPOLLOUT))
			return;
		epoll_ctl(k->epfd, EPOLL_CTL_MOD, c->fd, &ev);
		c->state = C_OPEN;
		c->since_ms = t;
		k->connecting--;
		k->st->open++;
		k->st->connects++;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c_readable(k, i, t);
}

static int client(int id, int want, double msg_rate, double reconnect_rate)
{
	struct client k = {.id = id, .want = want, .st = &sh->cl[id]};
	struct epoll_event evs[1024];
	double msg_budget = 0, rc_budget = 0;
	uint64_t last = now_ms(), last_scan = last;

	k.seed = (unsigned)id * 2654435761u + 1;
	k.src = (struct sockaddr_in){.sin_family = AF_INET,
				     .sin_addr.s_addr =
					     htonl(INADDR_LOOPBACK + 1 + (uint32_t)id)};
	k.dst = (struct sockaddr_in){.sin_family = AF_INET,
				     .sin_port = htons((uint16_t)sh->port),
				     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (!(k.c = calloc((size_t)want, sizeof(*k.c))))
		die("calloc");
	for (int i = 0; i < want; i++)
		k.c[i].fd = -1;
	if ((k.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");

	while (!LD(sh->stop)) {
		int n = epoll_wait(k.epfd, evs, 1024, 20);
		uint64_t t = now_ms();
		double dt = (double)(t - last) / 1000.0;
		bool quiet = LD(sh->quiet);

		for (int e = 0; e < n; e++)
			if (k.c[evs[e].data.u32].state != C_FREE)
				c_event(&k, (int)evs[e].data.u32, evs[e].events, t);
		/* The ramp: keep every slot open, at most 1,000 connects in
		 * flight. */
		if (k.st->open + k.connecting < want)
			for (int i = 0; i < want && k.connecting < 1000; i++)
				if (k.c[i].state == C_FREE)
					c_open(&k, i);
		k.ramped |= k.st->open == want;
		last = t;
		if (!quiet && k.ramped) {
			msg_budget += msg_rate * want * dt;
			rc_budget += reconnect_rate * want * dt;
		}
		for (; msg_budget >= 1; msg_budget -= 1) {
			int i = (int)(rand_r(&k.seed) % (unsigned)want);
			if (k.c[i].state == C_OPEN && k.c[i].outstanding < 8)
				c_message(&k, i);
		}
		for (; rc_budget >= 1; rc_budget -= 1) {
			int i = (int)(rand_r(&k.seed) % (unsigned)want);
			if (k.c[i].state == C_OPEN) {
				c_close(&k, i);
				c_open(&k, i);
				k.st->reconnects++;
			}
		}
		if (t - last_scan >= 500) {
			/* Heartbeats that are late and still missing. */
			for (int i = 0; i < want; i++) {
				struct cconn *c = &k.c[i];
				if (c->state == C_OPEN && !c->late &&
				    t - c->since_ms > LATE_MS) {
					c->late = true;
					k.st->late++;
				}
			}
			last_scan = t;
		}
	}
	for (int i = 0; i < want; i++)
		if (k.c[i].state != C_FREE)
			c_close(&k, i);
	free(k.c);
	close(k.epfd);
	ST(k.st->done, 1);
	return 0;
}

/* ---- the driver --------------------------------------------------------------- */

static double rss_mib(pid_t pid)
{
	char path[64], line[256];
	double kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
			break;
	fclose(f);
	return kb / 1024.0;
}

/* The process's user + system CPU time, in ms. */
static double cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, stime;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* After the command name, which may hold spaces: field 3 on. */
	if (!(p = strrchr(buf, ')')) ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &stime) != 2)
		return -1;
	return (double)(ut + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static int64_t sum_cl(int nclients, size_t off)
{
	int64_t s = 0;

	for (int i = 0; i < nclients; i++)
		s += __atomic_load_n((int64_t *)((char *)&sh->cl[i] + off),
				     __ATOMIC_ACQUIRE);
	return s;
}
#define SUM(field) sum_cl(nclients, offsetof(struct client_stats, field))

static int64_t max_gap(int nclients)
{
	int64_t m = 0;

	for (int i = 0; i < nclients; i++)
		if (LD(sh->cl[i].max_gap_ms) > m)
			m = LD(sh->cl[i].max_gap_ms);
	return m;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* Children do not outlive the driver. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg));
	}
	return pid;
}

struct client_arg {
	int id, want;
	double msg_rate, reconnect_rate;
};

static int run_server(void *arg)
{
	return server((int)(intptr_t)arg);
}

static int run_client(void *arg)
{
	struct client_arg *a = arg;

	return client(a->id, a->want, a->msg_rate, a->reconnect_rate);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: soak [--seconds N] [--conns N] [--interval S] "
		"[--warmup S]\n"
		"            [--msg-rate F] [--reconnect-rate F]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"seconds", required_argument, NULL, 's'},
		{"conns", required_argument, NULL, 'c'},
		{"interval", required_argument, NULL, 'i'},
		{"warmup", required_argument, NULL, 'w'},
		{"msg-rate", required_argument, NULL, 'm'},
		{"reconnect-rate", required_argument, NULL, 'r'},
		{NULL, 0, NULL, 0}};
	/* interval and warmup: -1 until given, then the defaults below. */
	int seconds = 600, conns = 19000, interval = -1, warmup = -1, opt;
	/* Per connection per second: a message on 1%, a reconnect of 0.2%. */
	double msg_rate = 0.01, reconnect_rate = 0.002;
	struct client_arg cargs[MAX_CLIENTS];
	pid_t srv, cli[MAX_CLIENTS];
	int nclients, failures = 0;
	double base_rss = -1, max_rss = 0, last_rss = 0, cpu0, cpu1, q0, q1;
	uint64_t t0, tq;
	int64_t pongs0, qpongs; /* heartbeat round trips in the quiet window */
	int64_t msgs_end, echoes_end;
	struct rlimit rl;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (getenv("SOAK_SECONDS"))
		seconds = atoi(getenv("SOAK_SECONDS"));
	if (getenv("SOAK_CONNS"))
		conns = atoi(getenv("SOAK_CONNS"));
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': seconds = atoi(optarg); break;
		case 'c': conns = atoi(optarg); break;
		case 'i': interval = atoi(optarg); break;
		case 'w': warmup = atoi(optarg); break;
		case 'm': msg_rate = atof(optarg); break;
		case 'r': reconnect_rate = atof(optarg); break;
		default: usage();
		}
	}
	/* 30 s and 60 s, but a short run still gets samples after its
	 * warm-up. */
	if (interval == -1)
		interval = seconds > 60 ? 30 : (seconds >= 6 ? seconds / 6 : 1);
	if (warmup == -1)
		warmup = seconds > 60 ? 60 : seconds / 2;
	if (seconds < 1 || conns < 1 || interval < 1 || warmup < 0 ||
	    warmup >= seconds)
		usage();
	nclients = (conns + PER_CLIENT - 1) / PER_CLIENT;
	if (nclients > MAX_CLIENTS)
		usage();

	/* Every process may use all the descriptors it is allowed. */
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit");
	if (rl.rlim_cur < (rlim_t)conns + 100) {
		fprintf(stderr, "soak: the server needs %d descriptors, the "
				"limit is %llu\n",
			conns + 100, (unsigned long long)rl.rlim_cur);
		return 2;
	}
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		die("mmap");
	memset(sh, 0, sizeof(*sh));
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("soak: %d connections from %d client processes, %d s, "
	       "heartbeat %d ms, messages %.2f%%/s, reconnects %.2f%%/s, "
	       "%ld CPUs\n",
	       conns, nclients, seconds, HEARTBEAT_MS, msg_rate * 100,
	       reconnect_rate * 100, ncpu);
	srv = spawn(run_server, (void *)(intptr_t)(rl.rlim_cur - 64));
	for (uint64_t end = now_ms() + 10000; !LD(sh->ready); usleep(10000))
		if (now_ms() > end) {
			fprintf(stderr, "soak: the server did not start\n");
			return 2;
		}
	for (int i = 0; i < nclients; i++) {
		cargs[i] = (struct client_arg){i, conns / nclients +
						      (i < conns % nclients),
					       msg_rate, reconnect_rate};
		cli[i] = spawn(run_client, &cargs[i]);
	}

	/* Ramp-up: the clock starts once every connection is open. */
	t0 = now_ms();
	while (SUM(open) < conns || LD(sh->srv_open) < conns) {
		if (now_ms() - t0 > 300000) {
			fprintf(stderr, "soak: only %lld of %d connections "
					"after 300 s\n",
				(long long)SUM(open), conns);
			ST(sh->stop, 1);
			ST(sh->srv_stop, 1);
			return 1;
		}
		usleep(100000);
	}
	printf("soak: %d connections open after %.1f s; server RSS %.1f MiB\n",
	       conns, (double)(now_ms() - t0) / 1000.0, rss_mib(srv));

	t0 = now_ms();
	cpu0 = cpu_ms(srv);
	for (int k = 1; k * interval <= seconds; k++) {
		double rss, cpu;
		uint64_t due = t0 + (uint64_t)k * (uint64_t)interval * 1000u;

		while (now_ms() < due) {
			int st;
			if (waitpid(-1, &st, WNOHANG) > 0) {
				fprintf(stderr, "soak: a child exited early\n");
				ST(sh->stop, 1);
				ST(sh->srv_stop, 1);
				return 1;
			}
			usleep(100000);
		}
		rss = rss_mib(srv);
		cpu = cpu_ms(srv);
		last_rss = rss;
		if (k * interval == warmup ||
		    (base_rss < 0 && k * interval > warmup))
			base_rss = rss;
		else if (base_rss >= 0 && rss > max_rss)
			max_rss = rss;
		printf("soak: t=%4ds  server RSS %7.1f MiB  heap %7.1f MiB  "
		       "open %lld  server CPU %4.1f%% (mean)  reconnects %lld  "
		       "messages %lld  heartbeats %lld  longest wait %.2f s%s\n",
		       k * interval, rss, (double)LD(sh->srv_heap) / 1048576.0,
		       (long long)LD(sh->srv_open),
		       (cpu - cpu0) / (k * interval * 10.0),
		       (long long)SUM(reconnects), (long long)SUM(msgs),
		       (long long)SUM(pings), (double)max_gap(nclients) / 1000.0,
		       k * interval <= warmup ? "  (warm-up)" : "");
	}
	cpu1 = cpu_ms(srv);

	/* Heartbeats only: the clients stop messaging and reconnecting. */
	ST(sh->quiet, 1);
	sleep(QUIET_SETTLE_S);
	q0 = cpu_ms(srv);
	pongs0 = SUM(pongs);
	tq = now_ms();
	sleep(QUIET_S);
	q1 = cpu_ms(srv);
	qpongs = SUM(pongs) - pongs0;
	tq = now_ms() - tq;

	/* The clients close everything, then the server stops. The echoes
	 * still owed are counted first (the quiet window let them come). */
	msgs_end = SUM(msgs);
	echoes_end = SUM(echoes) + SUM(abandoned);
	ST(sh->stop, 1);
	for (int i = 0; i < nclients; i++)
		waitpid(cli[i], NULL, 0);
	ST(sh->srv_stop, 1);
	{
		int st;
		waitpid(srv, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !LD(sh->srv_done)) {
			fprintf(stderr, "soak: the server did not stop cleanly\n");
			failures++;
		}
	}

	/* ---- the verdict ---- */
	if (max_rss <= 0)
		max_rss = base_rss;
	{
		double growth = base_rss > 0 ? (max_rss - base_rss) / base_rss * 100.0
					     : 0;
		printf("soak: server RSS at the end of the warm-up (%d s) %.1f "
		       "MiB, highest after it %.1f MiB (%+.2f%%), last %.1f "
		       "MiB: %s (limit +2%%)\n",
		       warmup, base_rss, max_rss, growth, last_rss,
		       growth < 2.0 ? "flat" : "GREW");
		if (base_rss > 0 && growth >= 2.0)
			failures++;
	}
	/* A round trip counts when the client has sent its PONG: the few on
	 * their way at either edge of the window are noise against the one a
	 * second per connection in it. */
	printf("soak: heartbeat CPU: %.2f ms per second per 1,000 connections, "
	       "%.2f us per heartbeat round trip (%d s of heartbeats only, %d "
	       "connections, %lld round trips)\n",
	       (q1 - q0) / ((double)tq / 1000.0) / (conns / 1000.0),
	       qpongs > 0 ? (q1 - q0) * 1000.0 / (double)qpongs : 0.0, QUIET_S,
	       conns, (long long)qpongs);
	printf("soak: server CPU over the run: %.2f ms per second per 1,000 "
	       "connections (heartbeats, messages and reconnects)\n",
	       (cpu1 - cpu0) / (double)seconds / (conns / 1000.0));
	printf("soak: %lld connects, %lld reconnects, %lld messages, %lld "
	       "echoes (%lld given up by reconnects), %lld heartbeats "
	       "answered; longest wait for a heartbeat %.2f s\n",
	       (long long)SUM(connects), (long long)SUM(reconnects),
	       (long long)msgs_end, (long long)SUM(echoes),
	       (long long)SUM(abandoned), (long long)SUM(pongs),
	       (double)max_gap(nclients) / 1000.0);
	printf("soak: server closes (the clients' own closes are eof or reset): "
	       "timeout %lld, reset %lld, eof %lld, slow %lld, error %lld, "
	       "shutdown %lld; accepted %lld, rejected %lld\n",
	       (long long)LD(sh->srv_closed[AC_CR_TIMEOUT]),
	       (long long)LD(sh->srv_closed[AC_CR_RESET]),
	       (long long)LD(sh->srv_closed[AC_CR_EOF]),
	       (long long)LD(sh->srv_closed[AC_CR_SLOW]),
	       (long long)LD(sh->srv_closed[AC_CR_ERROR]),
	       (long long)LD(sh->srv_closed[AC_CR_SHUTDOWN]),
	       (long long)LD(sh->srv_accepted), (long long)LD(sh->srv_rejected));
	if (SUM(server_closes) || LD(sh->srv_closed[AC_CR_TIMEOUT]) ||
	    LD(sh->srv_rejected)) {
		printf("soak: FAIL: %lld connections closed by the server\n",
		       (long long)SUM(server_closes));
		failures++;
	}
	if (msgs_end != echoes_end) {
		printf("soak: FAIL: %lld messages, but %lld echoes or given up "
		       "with their connection\n",
		       (long long)msgs_end, (long long)echoes_end);
		failures++;
	}
	if (SUM(bad_echoes)) {
		printf("soak: FAIL: %lld wrong echoes\n",
		       (long long)SUM(bad_echoes));
		failures++;
	}
	if (SUM(late)) {
		printf("soak: FAIL: %lld heartbeats over %d ms late\n",
		       (long long)SUM(late), LATE_MS);
		failures++;
	}
	if (SUM(connect_errors))
		printf("soak: note: %lld connects failed and were retried\n",
		       (long long)SUM(connect_errors));
	if (LD(sh->srv_leaks)) {
		printf("soak: FAIL: %lld live objects after ac_runtime_free\n",
		       (long long)LD(sh->srv_leaks));
		failures++;
	}
	printf("soak: %s\n", failures ? "FAIL" : "PASS");
	return failures ? 1 : 0;
}
