/* upstream.h: a plain-socket line echo server on its own thread, for the
 * outbound and pool suites: it can stop (closing every connection and the
 * listening socket) and start again on the same port, like a back end
 * being restarted. */
#ifndef AC_UPSTREAM_H
#define AC_UPSTREAM_H

#include <pthread.h>
#include <stdint.h>

#define UP_MAX_CONNS 256

struct up {
	int port;            /* chosen by the first up_start(u, 0) */
	int lfd;
	int wake[2];         /* a pipe: tells the thread to stop */
	pthread_t thread;
	int running;
	int backlog_only;    /* listen but never accept */
	int fds[UP_MAX_CONNS];
	int nfds;
	int64_t accepted;    /* atomic, over every start */
	int64_t open;        /* atomic: connections held now */
	int64_t lines;       /* atomic: lines echoed */
};

/* Listens on 127.0.0.1:port (0: any free port, remembered in u->port). */
void up_start(struct up *u, int port);
/* Closes every connection and the listening socket; joins the thread. */
void up_stop(struct up *u);
/* A port nothing listens on (bound once, then closed). */
int up_free_port(void);

#endif
