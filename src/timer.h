/* timer.h: loop timers and connection-owned timers (timer.c). */
#ifndef AC_TIMER_H
#define AC_TIMER_H

#include "common.h"

#include <sys/queue.h>
#include <sys/time.h>

struct ac_timer_s {
	ac__loop_t *loop;
	struct event *ev;
	void (*fn)(void *arg);
	void (*cfn)(ac_conn_t *c, void *arg);
	void *arg;
	ac_conn_t *conn;                 /* owner of a connection timer */
	LIST_ENTRY(ac_timer_s) on_loop;  /* loop->timers */
	LIST_ENTRY(ac_timer_s) on_conn;  /* conn->timers */
	struct timeval tv;               /* when no common timeout is left */
	uint8_t repeat, firing, cancelled;
};

/* Before on_close: the connection's timers go with it. */
void ac__timers_cancel_conn(ac_conn_t *c);
/* After the loop exited: free what nobody cancelled. */
void ac__timers_free_loop(ac__loop_t *loop);

#endif /* AC_TIMER_H */
