/* listener.h: accepting connections (listener.c). */
#ifndef AC_LISTENER_H
#define AC_LISTENER_H

#include "common.h"

#include <sys/queue.h>

#include "loop.h"
#include "mailbox.h"

/* One listening socket served by one loop. */
struct ac__accept {
	SLIST_ENTRY(ac__accept) next; /* loop->accepts */
	ac_listener_t *l;
	int fd;
	int idx;                  /* fd is l->fds[idx] */
	struct event *ev;
	struct event *backoff_ev; /* resumes accepting after EMFILE & co */
	unsigned backoff_ms;      /* 0 while accepting normally */
};

struct ac__accept_op {
	struct ac__ctl ctl;
	struct ac__accept entry;
};

struct ac_listener_s {
	ac_runtime_t *rt;
	ac__proto_t *proto;
	int refs;          /* atomic: the user, plus one per accept entry */
	int port;
	int is_unix;
	int hand_out;      /* one socket, accepted on loop 0, connections
			      handed out round robin (Unix, inherited) */
	char *path;        /* unix socket path, unlinked when freed */
	unsigned rr;       /* hand-out round robin; loop 0 only */
	int user_closed;   /* atomic: the user's reference is gone */
	int nfds;
	int *fds;
	struct ac__accept_op *ops; /* [nfds]: hand each socket to its loop */
	struct ac__ctl *close_ops; /* [nfds]: take it back */
	LIST_ENTRY(ac_listener_s) link; /* rt->listeners, under rt->lock */
	int linked;        /* on that list (not before ac_listen succeeds) */
};

void ac__listener_unref(ac_listener_t *l);
void ac__listener_release_user(ac_listener_t *l);
void ac__accept_drop_all(ac__loop_t *loop);
void ac__accept_close_all(ac__loop_t *loop);

/* ADOPT messages (a unix listener hands a descriptor to a loop). */
void ac__listener_deliver_adopt(ac__loop_t *loop, struct ac__msg *m);
void ac__listener_settle_adopt(ac__loop_t *loop, struct ac__msg *m);

#endif /* AC_LISTENER_H */
