/* stats.h: the statistics' Prometheus text, for the HTTP responder. */
#ifndef AC_STATS_H
#define AC_STATS_H

#include "common.h"

struct evbuffer;

/* The Prometheus text of one snapshot, appended to eb. 0 or AC_ENOMEM. */
int ac__stats_render(ac_runtime_t *rt, struct evbuffer *eb);

#endif /* AC_STATS_H */
