/*
 * ctlreq.h: a control thread asks a loop to make a connection and waits
 * for the answer (ctlreq.c); used by ac_connect and ac_conn_adopt, whose
 * connections only their owner loop may make.
 *
 * The request is posted to the loop; its run function runs exactly once,
 * on the loop, or on the stopping thread (ac__tls_loop NULL) when the
 * runtime's mailboxes are settled after a stop. The caller waits for the
 * answer, looking at the runtime's state every AC__CTLREQ_POLL_MS: once
 * the runtime is STOPPED (every loop exited) the request may never be
 * answered before the next settle, so the caller abandons it, and the run
 * function, which then runs off-loop and makes nothing, frees it.
 */
#ifndef AC_CTLREQ_H
#define AC_CTLREQ_H

#include "common.h"

#include <pthread.h>

#define AC__CTLREQ_POLL_MS 20

struct ac__ctlreq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	ac_handle_t h;
	int err;
	bool done;      /* answered; the caller frees the request */
	bool abandoned; /* the caller left; the run function frees it */
};

/* The front of a call that makes a connection (ac_connect, ac_conn_adopt):
 * rt running, and the owner loop that loop (AC_LOOP(i) or the default)
 * names in *target. A loop may make connections on itself only. Returns
 * 0, AC_ETHREAD, AC_ESTATE (not started), AC_ESHUTDOWN or AC_EINVAL. */
int ac__ctlreq_target(ac_runtime_t *rt, int loop, int *target);

void ac__ctlreq_init(struct ac__ctlreq *r);
void ac__ctlreq_destroy(struct ac__ctlreq *r);
/* The run function: answers (err, h). False when the caller abandoned
 * the request: then the run function frees it. */
bool ac__ctlreq_answer(struct ac__ctlreq *r, int err, ac_handle_t h);
/* The caller, after posting: the answer's error, with *out its handle;
 * or AC_ESHUTDOWN with *abandoned set, when the runtime stopped first
 * (the request is no longer the caller's). */
int ac__ctlreq_wait(ac_runtime_t *rt, struct ac__ctlreq *r,
		    ac_handle_t *out, bool *abandoned);

#endif /* AC_CTLREQ_H */
