/* upstream.c: see upstream.h. */
#define _GNU_SOURCE
#include "testhelp.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_on(int port, int backlog, int *bound)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
		      "bind %d: %s", port, strerror(errno));
	ck_assert_int_eq(listen(fd, backlog), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	*bound = ntohs(a.sin_port);
	return fd;
}

int up_free_port(void)
{
	int port, fd = listen_on(0, 1, &port);

	close(fd);
	return port;
}

static void drop(struct up *u, int i)
{
	close(u->fds[i]);
	u->fds[i] = u->fds[--u->nfds];
	__atomic_fetch_sub(&u->open, 1, __ATOMIC_RELAXED);
}

static void *up_main(void *arg)
{
	struct up *u = arg;
	struct pollfd p[UP_MAX_CONNS + 2];
	char buf[4096];

	for (;;) {
		int n = 0;

		p[n++] = (struct pollfd){.fd = u->wake[0], .events = POLLIN};
		p[n++] = (struct pollfd){.fd = u->backlog_only ? -1 : u->lfd,
					 .events = POLLIN};
		for (int i = 0; i < u->nfds; i++)
			p[n++] = (struct pollfd){.fd = u->fds[i], .events = POLLIN};
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		/* Connections first: p[] indexes match fds[] only until an
		 * accept or a drop changes the array. */
		for (int i = u->nfds - 1; i >= 0; i--) {
			ssize_t r;
			if (!p[2 + i].revents)
				continue;
			r = recv(u->fds[i], buf, sizeof(buf), 0);
			if (r <= 0) {
				drop(u, i);
				continue;
			}
			for (ssize_t k = 0; k < r; k++)
				if (buf[k] == '\n')
					__atomic_fetch_add(&u->lines, 1,
							   __ATOMIC_RELAXED);
			if (send(u->fds[i], buf, (size_t)r, MSG_NOSIGNAL) < 0)
				drop(u, i);
		}
		if (p[1].revents && u->nfds < UP_MAX_CONNS) {
			int fd = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				u->fds[u->nfds++] = fd;
				__atomic_fetch_add(&u->accepted, 1,
						   __ATOMIC_RELAXED);
				__atomic_fetch_add(&u->open, 1,
						   __ATOMIC_RELAXED);
			}
		}
	}
	return NULL;
}

void up_start(struct up *u, int port)
{
	ck_assert(!u->running);
	u->lfd = listen_on(port, u->backlog_only ? 0 : 128, &u->port);
	ck_assert_int_eq(pipe(u->wake), 0);
	u->nfds = 0;
	ck_assert_int_eq(pthread_create(&u->thread, NULL, up_main, u), 0);
	u->running = 1;
}

void up_stop(struct up *u)
{
	if (!u->running)
		return;
	ck_assert_int_eq(write(u->wake[1], "x", 1), 1);
	pthread_join(u->thread, NULL);
	close(u->wake[0]);
	close(u->wake[1]);
	while (u->nfds)
		drop(u, 0);
	close(u->lfd);
	u->running = 0;
}
