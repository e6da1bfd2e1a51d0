/* watch.h: watchers, the C form of a weakref callback (watch.c). */
#ifndef AC_WATCH_H
#define AC_WATCH_H

#include "common.h"

#include "mailbox.h"

int ac__wtab_new(ac_runtime_t *rt);
void ac__wtab_free(ac_runtime_t *rt);
/* Owner loop, finalize: post every watcher of c with c's reason. */
void ac__watch_conn_closed(ac_conn_t *c);

/* WATCH and FIRE messages. */
void ac__watch_deliver_watch(ac__loop_t *loop, struct ac__msg *m);
void ac__watch_settle_watch(ac__loop_t *loop, struct ac__msg *m);
void ac__watch_deliver_fire(ac__loop_t *loop, struct ac__msg *m);

#endif /* AC_WATCH_H */
