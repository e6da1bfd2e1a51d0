/*
 * alloc.c: the library's one allocation layer, and its live-object counts.
 *
 * Every object the library allocates is tagged with a kind and counted, so
 * that after ac_runtime_free a test (or ac_debug_counts) can show zero. The
 * counters are process-wide and sharded: each thread adds to one of
 * AC__SHARDS cache lines, so two loops allocating at once do not contend.
 * A live count is the sum over shards (a shard may go negative when an
 * object is freed on another thread than the one that made it).
 */
#include "internal.h"

#include <stdlib.h>
#include <time.h>

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
	if (loop)
		AC__STAT_ADD(loop, dropped, 1);
}

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
	return counted(k, malloc(n));
}

void *ac__calloc(enum ac__kind k, size_t nmemb, size_t n)
{
	return counted(k, calloc(nmemb, n));
}

void *ac__memalign(enum ac__kind k, size_t align, size_t n)
{
	void *p;

	if (posix_memalign(&p, align, n))
		return NULL;
	return counted(k, p);
}

void *ac__realloc(enum ac__kind k, void *p, size_t n)
{
	void *q;

	/* On failure p is untouched and still counted. */
	if ((q = realloc(p, n)) && !p)
		counted(k, q);
	return q;
}

void *ac__realloc_bytes(void *p, size_t n)
{
	return ac__realloc(AC__K_OTHER, p, n);
}

void ac__free(enum ac__kind k, void *p)
{
	if (p) {
		free(p);
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

uint64_t ac__mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ac__wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
