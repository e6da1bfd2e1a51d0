/* stats.h: the statistics' Prometheus text, for the HTTP responder. */
#ifndef AC_STATS_H
#define AC_STATS_H

#include "common.h"

struct ac__outq;

/* The Prometheus text of one snapshot, appended to q. 0 or AC_ENOMEM. */
int ac__stats_render(ac_runtime_t *rt, struct ac__outq *q);

#endif /* AC_STATS_H */
