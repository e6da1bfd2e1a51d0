/*
 * stats.c: counters, read without locks, and their Prometheus text form.
 *
 * Each loop writes only its own struct ac__lstats (relaxed atomic stores,
 * owner only), on its own cache lines; a reader sums relaxed loads. The
 * result is a snapshot, not an atomic cut across loops.
 */
#include "stats.h"
#include "outq.h"
#include "alloc.h"
#include "loop.h"
#include "runtime.h"
#include "work.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>


#ifdef AC_HAVE_TCMALLOC
#include <gperftools/malloc_extension_c.h>
#endif

#define LD(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

static void loop_snapshot(ac__loop_t *loop, ac_stats_t *o)
{
	const struct ac__lstats *s = &loop->st;

	memset(o, 0, sizeof(*o));
	o->conns_open = LD(s->conns_open);
	o->accepted = LD(s->accepted);
	o->connected = LD(s->connected);
	o->rejected = LD(s->rejected);
	o->accept_pauses = LD(s->accept_pauses);
	for (int i = 0; i < AC_CR_COUNT; i++)
		o->closed[i] = LD(s->closed[i]);
	o->bytes_in = LD(s->bytes_in);
	o->bytes_out = LD(s->bytes_out);
	o->frames_in = LD(s->frames_in);
	o->writes = LD(s->writes);
	o->mailbox_received = LD(s->mailbox_received);
	o->mailbox_full = LD(loop->mailbox_full);
	o->mailbox_overflowed = LD(s->mailbox_overflowed);
	o->mailbox_max_depth = LD(s->mailbox_max_depth);
	o->mailbox_wakeups = LD(s->mailbox_wakeups);
	o->group_publishes = LD(s->group_publishes);
	o->group_batches = LD(s->group_batches);
	o->fanout_waits = LD(s->fanout_waits);
	o->fanout_wait_us = LD(s->fanout_wait_us);
	o->dropped = LD(s->dropped);
	o->dropped_shutdown = LD(s->dropped_shutdown);
	o->handles_live = LD(s->handles_live);
	o->hp_pending = LD(s->hp_pending);
	o->timers_live = LD(s->timers_live);
	o->pool_idle = LD(s->pool_idle);
	o->pool_busy = LD(s->pool_busy);
	o->pool_waiting = LD(s->pool_waiting);
	o->pool_connects = LD(s->pool_connects);
	o->pool_failures = LD(s->pool_failures);
}

static void add(ac_stats_t *t, const ac_stats_t *s)
{
	uint64_t *d = (uint64_t *)t;
	const uint64_t *x = (const uint64_t *)s;

	/* Every field is a uint64_t; depth is a maximum, not a sum. */
	for (size_t i = 0; i < sizeof(*t) / sizeof(uint64_t); i++)
		d[i] += x[i];
	t->mailbox_max_depth -= s->mailbox_max_depth;
	if (s->mailbox_max_depth > t->mailbox_max_depth)
		t->mailbox_max_depth = s->mailbox_max_depth;
}

static uint64_t heap_bytes(void)
{
#ifdef AC_HAVE_TCMALLOC
	size_t v = 0;
	if (MallocExtension_GetNumericProperty(
		    "generic.current_allocated_bytes", &v))
		return v;
#endif
	return 0;
}

AC_EXPORT int ac_stats(ac_runtime_t *rt, ac_stats_t *total,
		       ac_stats_t *per_loop, int n)
{
	ac_stats_t one;

	if (!rt || !total)
		return AC_EINVAL;
	memset(total, 0, sizeof(*total));
	for (int i = 0; i < rt->nloops; i++) {
		loop_snapshot(rt->loops[i], &one);
		add(total, &one);
		if (per_loop && i < n)
			per_loop[i] = one;
	}
	total->heap_bytes = heap_bytes();
	ac__work_stats(rt, total);
	return rt->nloops;
}

/* ---- Prometheus text exposition format -----------------------------------
 *
 * One renderer, two sinks: a caller's buffer with snprintf's contract
 * (ac_stats_prometheus), or an output queue that grows as needed (the
 * HTTP responder, which so renders exactly once from one snapshot).
 */

struct out {
	char *buf;
	size_t len, used;     /* used may exceed len: the length needed */
	struct ac__outq *q;   /* instead of buf when set */
	int failed;           /* the queue could not grow */
};

static void put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	size_t room = o->used < o->len ? o->len - o->used : 0;
	int n;

	va_start(ap, fmt);
	if (o->q)
		n = ac__outq_vprintf(o->q, fmt, ap) ? -1 : 0;
	else
		n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->used += (size_t)n;
	else if (n < 0)
		o->failed = 1;
}

struct metric {
	const char *name, *type, *help;
	size_t off;     /* offset of the field in ac_stats_t */
	int runtime;    /* runtime-wide: one sample, no loop label */
};

#define M(name, type, field, help)                                           \
	{"actorconn_" name, type, help, offsetof(ac_stats_t, field), 0}
#define R(name, type, field, help)                                           \
	{"actorconn_" name, type, help, offsetof(ac_stats_t, field), 1}

static const struct metric metrics[] = {
	M("conns_open", "gauge", conns_open, "Open connections."),
	M("conns_accepted_total", "counter", accepted,
	  "Connections accepted."),
	M("conns_connected_total", "counter", connected,
	  "Outbound connections established."),
	M("conns_rejected_total", "counter", rejected,
	  "Connections accepted over max_conns and closed at once."),
	M("accept_pauses_total", "counter", accept_pauses,
	  "Accept back-offs after EMFILE, ENFILE, ENOBUFS or ENOMEM."),
	M("bytes_in_total", "counter", bytes_in, "Bytes read."),
	M("bytes_out_total", "counter", bytes_out, "Bytes written."),
	M("frames_in_total", "counter", frames_in, "Frames decoded."),
	M("writes_total", "counter", writes, "Writes queued."),
	M("mailbox_received_total", "counter", mailbox_received,
	  "Mailbox messages dispatched."),
	M("mailbox_full_total", "counter", mailbox_full,
	  "Messages refused with AC_EAGAIN (mailbox full)."),
	M("mailbox_overflowed_total", "counter", mailbox_overflowed,
	  "Messages a loop kept in its overflow list."),
	M("mailbox_max_depth", "gauge", mailbox_max_depth,
	  "Deepest mailbox ring seen at a drain."),
	M("mailbox_wakeups_total", "counter", mailbox_wakeups,
	  "Wake-ups of the loop through its eventfd to drain its mailbox."),
	M("group_publishes_total", "counter", group_publishes,
	  "Group publishes written to the members on a loop."),
	M("group_batches_total", "counter", group_batches,
	  "Writes of consecutive group publishes to the members together."),
	M("fanout_waits_total", "counter", fanout_waits,
	  "Waits of a loop after a large fan-out (fanout_wait_us)."),
	M("fanout_wait_microseconds_total", "counter", fanout_wait_us,
	  "Microseconds loops spent in those waits."),
	M("messages_dropped_total", "counter", dropped,
	  "Accepted messages whose connection was gone on delivery."),
	M("messages_dropped_shutdown_total", "counter", dropped_shutdown,
	  "Of the dropped messages, those dropped by a stop of the runtime."),
	M("handles_live", "gauge", handles_live, "Handle slots in use."),
	M("hp_pending", "gauge", hp_pending,
	  "Objects retired but not yet reclaimed (hazard pointers)."),
	M("timers_live", "gauge", timers_live, "Live timers."),
	M("pool_idle", "gauge", pool_idle, "Pooled connections idle."),
	M("pool_busy", "gauge", pool_busy, "Pooled connections borrowed."),
	M("pool_waiting", "gauge", pool_waiting,
	  "Pool acquires waiting for a connection."),
	M("pool_connects_total", "counter", pool_connects,
	  "Pooled connections established."),
	M("pool_failures_total", "counter", pool_failures,
	  "Pooled connect attempts that failed."),
	R("work_queued", "gauge", work_queued,
	  "Work items waiting for a worker thread."),
	R("work_running", "gauge", work_running,
	  "Work functions running on worker threads."),
	R("work_done_total", "counter", work_done,
	  "Work functions that returned 0."),
	R("work_failed_total", "counter", work_failed,
	  "Work functions that returned an error."),
	R("work_cancelled_total", "counter", work_cancelled,
	  "Work items that never ran: cancelled, or the runtime stopped."),
	R("work_full_total", "counter", work_full,
	  "Work submits refused with AC_EAGAIN (work_capacity reached)."),
};

static uint64_t field(const ac_stats_t *s, size_t off)
{
	return *(const uint64_t *)((const char *)s + off);
}

/* Renders every metric from one snapshot into o. AC_ENOMEM or 0. */
static int render(ac_runtime_t *rt, struct out *o)
{
	ac_stats_t total, *per;
	int n;

	if (!(per = ac__malloc(AC__K_OTHER, sizeof(*per) * (size_t)rt->nloops)))
		return AC_ENOMEM;
	n = ac_stats(rt, &total, per, rt->nloops);
	for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
		const struct metric *mt = &metrics[m];

		put(o, "# HELP %s %s\n# TYPE %s %s\n", mt->name, mt->help,
		    mt->name, mt->type);
		if (mt->runtime) {
			put(o, "%s %llu\n", mt->name,
			    (unsigned long long)field(&total, mt->off));
			continue;
		}
		for (int i = 0; i < n; i++)
			put(o, "%s{loop=\"%d\"} %llu\n", mt->name, i,
			    (unsigned long long)field(&per[i], mt->off));
	}
	put(o, "# HELP actorconn_conns_closed_total Connections closed, by "
	       "reason.\n# TYPE actorconn_conns_closed_total counter\n");
	for (int i = 0; i < n; i++)
		for (int r = 0; r < AC_CR_COUNT; r++)
			put(o,
			    "actorconn_conns_closed_total{loop=\"%d\",reason=\"%s\"} "
			    "%llu\n",
			    i, ac_close_reason_name(r),
			    (unsigned long long)per[i].closed[r]);
	put(o, "# HELP actorconn_heap_bytes Bytes allocated in the process "
	       "(tcmalloc; 0 without it).\n# TYPE actorconn_heap_bytes gauge\n"
	       "actorconn_heap_bytes %llu\n",
	    (unsigned long long)total.heap_bytes);
	ac__free(AC__K_OTHER, per);
	return o->failed ? AC_ENOMEM : 0;
}

AC_EXPORT int ac_stats_prometheus(ac_runtime_t *rt, char *buf, size_t len)
{
	struct out o = {buf, len, 0, NULL, 0};
	int err;

	if (!rt || (!buf && len))
		return AC_EINVAL;
	if (len)
		buf[0] = 0;
	if ((err = render(rt, &o)))
		return err;
	return o.used > (size_t)INT32_MAX ? INT32_MAX : (int)o.used;
}

int ac__stats_render(ac_runtime_t *rt, struct ac__outq *q)
{
	struct out o = {NULL, 0, 0, q, 0};

	return render(rt, &o);
}
