/*
 * alloc.c: the library's one allocation layer, and its live-object counts.
 *
 * Every object the library allocates is tagged with a kind and counted, so
 * that after ac_runtime_free a test (or ac_debug_counts) can show zero. The
 * counters are process-wide and sharded: each thread adds to one of
 * AC__SHARDS cache lines, so two loops allocating at once do not contend.
 * A live count is the sum over shards (a shard may go negative when an
 * object is freed on another thread than the one that made it).
 *
 * Fault injection (configure --enable-fault-injection, never in a release
 * build): every allocation attempt made here, and libevent's once
 * ac__fault_hook_libevent has routed them here, is numbered; the attempt
 * whose number was armed with ac__fault_fail_nth returns NULL, so a test
 * can fail each allocation of a scenario in turn.
 */
#include "alloc.h"
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>

/*
 * The library's own objects come from tcmalloc when the build has it, by
 * calling it directly: a program that links -lactorconn normally resolves
 * malloc to glibc's (libc comes first in the search order), so merely
 * depending on libtcmalloc would not make it the library's allocator.
 * Everything allocated here is freed here, so the two never mix.
 */
#ifdef AC_HAVE_TCMALLOC
#include <gperftools/tcmalloc.h>
#define SYS_MALLOC tc_malloc
#define SYS_CALLOC tc_calloc
#define SYS_REALLOC tc_realloc
#define SYS_MEMALIGN tc_posix_memalign
#define SYS_FREE tc_free
#else
#define SYS_MALLOC malloc
#define SYS_CALLOC calloc
#define SYS_REALLOC realloc
#define SYS_MEMALIGN posix_memalign
#define SYS_FREE free
#endif

#define AC__SHARDS 16

struct ac__shard {
	int64_t live[AC__K_COUNT];
	int64_t allocs;
	int64_t dropped;
} AC__ALIGNED;

static struct ac__shard shards[AC__SHARDS];
static unsigned next_shard;
static __thread int my_shard = -1;

static struct ac__shard *shard(void)
{
	if (AC__UNLIKELY(my_shard < 0))
		my_shard = (int)(__atomic_fetch_add(&next_shard, 1,
						    __ATOMIC_RELAXED) %
				 AC__SHARDS);
	return &shards[my_shard];
}

void ac__count(enum ac__kind k, int delta)
{
	/* Relaxed: counts are statistics; ac_runtime_free's joins order them
	 * before anyone checks for zero. */
	__atomic_fetch_add(&shard()->live[k], delta, __ATOMIC_RELAXED);
}

void ac__count_dropped(void)
{
	ac__loop_t *loop = ac__tls_loop;

	__atomic_fetch_add(&shard()->dropped, 1, __ATOMIC_RELAXED);
	if (loop) {
		AC__STAT_ADD(loop, dropped, 1);
		/* The stop closed its connection, or is closing it. */
		if (loop->stopping)
			AC__STAT_ADD(loop, dropped_shutdown, 1);
	}
}

void ac__count_dropped_settled(ac__loop_t *loop)
{
	__atomic_fetch_add(&shard()->dropped, 1, __ATOMIC_RELAXED);
	/* The loop has exited (or never ran): this thread is now the only
	 * writer of its counters. */
	AC__STAT_ADD(loop, dropped, 1);
	AC__STAT_ADD(loop, dropped_shutdown, 1);
}

/* ---- fault injection ------------------------------------------------------ */

#ifdef AC_FAULT_INJECTION
#include <event2/event.h>
#include <execinfo.h>

/* Process-wide, like the counts: attempts since the last arming, the one
 * to fail (0: none), whether every later one fails too, and how many
 * failed. Relaxed atomics: a sweep waits for the library to go quiet
 * before reading them. */
static uint64_t fault_seen, fault_nth, fault_failed;
static int fault_persist, fault_trace, fault_loop = -1;

void ac__fault_only_loop(int loop)
{
	__atomic_store_n(&fault_loop, loop, __ATOMIC_RELAXED);
}

void ac__fault_trace(int on)
{
	__atomic_store_n(&fault_trace, on, __ATOMIC_RELAXED);
}

void ac__fault_fail_nth(uint64_t n, int persist)
{
	__atomic_store_n(&fault_nth, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fault_seen, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fault_failed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fault_persist, persist, __ATOMIC_RELAXED);
	__atomic_store_n(&fault_nth, n, __ATOMIC_RELEASE);
}

uint64_t ac__fault_attempts(void)
{
	return __atomic_load_n(&fault_seen, __ATOMIC_RELAXED);
}

uint64_t ac__fault_failures(void)
{
	return __atomic_load_n(&fault_failed, __ATOMIC_RELAXED);
}

bool ac__fault_hit(void)
{
	uint64_t nth = __atomic_load_n(&fault_nth, __ATOMIC_ACQUIRE);
	int only = __atomic_load_n(&fault_loop, __ATOMIC_RELAXED);
	uint64_t k;

	if (only >= 0 && (!ac__tls_loop || ac__tls_loop->index != only))
		return false; /* not numbered: another thread's attempt */
	k = __atomic_add_fetch(&fault_seen, 1, __ATOMIC_RELAXED);

	if (!nth || k < nth ||
	    (k > nth && !__atomic_load_n(&fault_persist, __ATOMIC_RELAXED)))
		return false;
	__atomic_fetch_add(&fault_failed, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&fault_trace, __ATOMIC_RELAXED)) {
		void *pcs[24];
		int n = backtrace(pcs, 24);
		fprintf(stderr, "fault: allocation attempt %llu fails here:\n",
			(unsigned long long)k);
		backtrace_symbols_fd(pcs, n, 2);
	}
	return true;
}

/* libevent's live allocations: what a leak check of libevent's objects
 * (bases, events, buffers) needs, since they are not ours to count. */
static int64_t ev_live;

static void *ev_malloc(size_t n)
{
	void *p = ac__fault_hit() ? NULL : malloc(n);

	if (p)
		__atomic_fetch_add(&ev_live, 1, __ATOMIC_RELAXED);
	return p;
}

static void *ev_realloc(void *p, size_t n)
{
	void *q = ac__fault_hit() ? NULL : realloc(p, n);

	if (q && !p)
		__atomic_fetch_add(&ev_live, 1, __ATOMIC_RELAXED);
	return q;
}

static void ev_free(void *p)
{
	if (p) {
		__atomic_fetch_sub(&ev_live, 1, __ATOMIC_RELAXED);
		free(p);
	}
}

int64_t ac__fault_libevent_live(void)
{
	return __atomic_load_n(&ev_live, __ATOMIC_RELAXED);
}

/* libevent's own allocations (bases, events, evbuffer chains) join the
 * numbering. Process-wide and only valid before any other libevent call,
 * so a test calls it first thing; the library never does. */
void ac__fault_hook_libevent(void)
{
	event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
}

#define AC__FAULT() ac__fault_hit()
#else
#define AC__FAULT() false
#endif

static void *counted(enum ac__kind k, void *p)
{
	if (p) {
		struct ac__shard *s = shard();
		__atomic_fetch_add(&s->live[k], 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&s->allocs, 1, __ATOMIC_RELAXED);
	}
	return p;
}

void *ac__malloc(enum ac__kind k, size_t n)
{
	if (AC__FAULT())
		return NULL;
	return counted(k, SYS_MALLOC(n));
}

void *ac__calloc(enum ac__kind k, size_t nmemb, size_t n)
{
	if (AC__FAULT())
		return NULL;
	return counted(k, SYS_CALLOC(nmemb, n));
}

void *ac__memalign(enum ac__kind k, size_t align, size_t n)
{
	void *p;

	if (AC__FAULT() || SYS_MEMALIGN(&p, align, n))
		return NULL;
	return counted(k, p);
}

void *ac__realloc(enum ac__kind k, void *p, size_t n)
{
	void *q;

	if (AC__FAULT())
		return NULL;
	/* On failure p is untouched and still counted. */
	if ((q = SYS_REALLOC(p, n)) && !p)
		counted(k, q);
	return q;
}

void ac__free(enum ac__kind k, void *p)
{
	if (p) {
		SYS_FREE(p);
		ac__count(k, -1);
	}
}

char *ac__strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = ac__malloc(AC__K_OTHER, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

AC_EXPORT void ac_debug_counts(ac_debug_counts_t *out)
{
	int64_t sum[AC__K_COUNT] = {0};
	int64_t allocs = 0, dropped = 0;

	for (int i = 0; i < AC__SHARDS; i++) {
		for (int k = 0; k < AC__K_COUNT; k++)
			sum[k] += __atomic_load_n(&shards[i].live[k],
						  __ATOMIC_RELAXED);
		allocs += __atomic_load_n(&shards[i].allocs, __ATOMIC_RELAXED);
		dropped +=
			__atomic_load_n(&shards[i].dropped, __ATOMIC_RELAXED);
	}
	out->conns = sum[AC__K_CONN];
	out->handles = sum[AC__K_HANDLE];
	out->messages = sum[AC__K_MSG];
	out->listeners = sum[AC__K_LISTENER];
	out->timers = sum[AC__K_TIMER];
	out->watches = sum[AC__K_WATCH];
	out->registry = sum[AC__K_REG];
	out->buffers = sum[AC__K_BUF];
	out->groups = sum[AC__K_GROUP];
	out->pools = sum[AC__K_POOL];
	out->other = sum[AC__K_OTHER];
	out->allocs = allocs;
	out->dropped = dropped;
}
