/*
 * libevent-echo: a len32 echo server as a user would write it without
 * libactorconn: one thread, one libevent event_base, a bufferevent per
 * connection.
 *
 *   libevent-echo [--listen HOST:PORT]
 *
 * A baseline for `actorconn-bench echo`, built by `make bench` and never
 * installed. Frames move from the input to the output evbuffer without a
 * copy (evbuffer_remove_buffer); connections get TCP_NODELAY, as
 * libactorconn sets. Framing: a 4-byte big-endian length, then that many
 * bytes, at most 1 MiB (actorconn-echo's default max_frame); a longer frame
 * closes the connection. Prints "libevent-echo: listening on HOST:PORT (1
 * thread)" when ready; stops on SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "listen_addr.h"

#define NAME "libevent-echo"
#define MAX_FRAME ((uint32_t)1 << 20)

static void on_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	uint32_t n;

	for (;;) {
		size_t have = evbuffer_get_length(in);

		if (have < 4)
			return;
		evbuffer_copyout(in, &n, 4);
		n = ntohl(n);
		if (n > MAX_FRAME) {
			bufferevent_free(bev);
			return;
		}
		if (have - 4 < n)
			return;
		evbuffer_remove_buffer(in, out, 4 + (size_t)n);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct event_base *base = arg;
	struct bufferevent *bev;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!(bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE))) {
		evutil_closesocket(fd);
		return;
	}
	bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " NAME " [--listen HOST:PORT]\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}};
	struct addrinfo *ai;
	const char *addr = "127.0.0.1:7002";
	char host[256];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct evconnlistener *l;
	struct event_base *base;
	struct event *sint, *sterm;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': addr = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind != argc ||
	    (rc = listen_addr(NAME, addr, host, sizeof(host), &ai)) == 1) {
		usage(stderr);
		return 1;
	}
	if (rc)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	if (!(base = event_base_new())) {
		fprintf(stderr, NAME ": event_base_new failed\n");
		return 1;
	}
	l = evconnlistener_new_bind(base, on_accept, base,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
				    4096, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (!l) {
		perror(NAME ": listen");
		return 1;
	}
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss,
			&len)) {
		perror(NAME ": getsockname");
		return 1;
	}
	sint = evsignal_new(base, SIGINT, on_signal, base);
	sterm = evsignal_new(base, SIGTERM, on_signal, base);
	if (!sint || !sterm || event_add(sint, NULL) || event_add(sterm, NULL)) {
		fprintf(stderr, NAME ": cannot watch signals\n");
		return 1;
	}
	/* sin_port and sin6_port sit at the same offset. */
	printf(NAME ": listening on %s:%d (1 thread)\n", host,
	       ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	event_free(sint);
	event_free(sterm);
	evconnlistener_free(l);
	event_base_free(base);
	return 0;
}
