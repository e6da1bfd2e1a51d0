/*
 * alloc.c: the library's one allocation layer, and its live-object counts.
 *
 * Every object the library allocates is tagged with a kind and counted, so
 * that after ac_runtime_free a test (or ac_debug_counts) can show zero.
 * Each thread counts in a block of its own, with plain stores (one writer:
 * no read-modify-write, no line shared with another thread), and a reader
 * sums the blocks. A thread's block may go negative when it frees what
 * another made; the sum is what counts. A block is made on the thread's
 * first count and folded into the exited threads' sums when it exits.
 *
 * Fault injection (configure --enable-fault-injection, never in a release
 * build): every allocation attempt made here, and libevent's once
 * ac__fault_hook_libevent has routed them here, is numbered; the attempt
 * whose number was armed with ac__fault_fail_nth returns NULL, so a test
 * can fail each allocation of a scenario in turn.
 */
#include "alloc.h"
#include "loop.h"
#include "tls.h"

#include <pthread.h>
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

struct ac__counts {
	int64_t live[AC__K_COUNT];
	int64_t allocs;
	int64_t dropped;
	struct ac__counts *next; /* blocks, under counts_lock */
};

static pthread_mutex_t counts_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ac__counts *blocks;  /* live threads'; under counts_lock */
static struct ac__counts gone;     /* exited threads' sums; likewise */
/* When a block cannot be allocated: counted with atomic adds, shared. */
static struct ac__counts fallback;
static pthread_once_t counts_once = PTHREAD_ONCE_INIT;
static pthread_key_t counts_key;
static __thread struct ac__counts *tls_counts
	__attribute__((tls_model("initial-exec")));

/* Thread exit: fold the block into `gone`. (Another key's destructor may
 * count again after this; glibc then runs this one once more.) */
static void counts_exit(void *p)
{
	struct ac__counts *c = p, **pp;

	pthread_mutex_lock(&counts_lock);
	for (int k = 0; k < AC__K_COUNT; k++)
		gone.live[k] += c->live[k];
	gone.allocs += c->allocs;
	gone.dropped += c->dropped;
	for (pp = &blocks; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pthread_mutex_unlock(&counts_lock);
	tls_counts = NULL;
	free(c); /* libc's: the blocks are the counts' own, never counted */
}

static void counts_init(void)
{
	pthread_key_create(&counts_key, counts_exit);
}

static struct ac__counts *counts_new(void)
{
	struct ac__counts *c;

	pthread_once(&counts_once, counts_init);
	if (!(c = calloc(1, sizeof(*c))))
		return NULL;
	pthread_mutex_lock(&counts_lock);
	c->next = blocks;
	blocks = c;
	pthread_mutex_unlock(&counts_lock);
	pthread_setspecific(counts_key, c);
	tls_counts = c;
	return c;
}

/* Adds d to the calling thread's count at offset (a field of struct
 * ac__counts). */
static inline void count_at(size_t offset, int64_t d)
{
	struct ac__counts *c = tls_counts;
	int64_t *p;

	if (AC__UNLIKELY(!c) && !(c = counts_new())) {
		__atomic_fetch_add((int64_t *)((char *)&fallback + offset), d,
				   __ATOMIC_RELAXED);
		return;
	}
	p = (int64_t *)((char *)c + offset);
	/* Relaxed store, one writer: readers see whole values, and
	 * ac_runtime_free's joins order them before anyone checks for
	 * zero. */
	__atomic_store_n(p, *p + d, __ATOMIC_RELAXED);
}

void ac__count(enum ac__kind k, int delta)
{
	count_at(offsetof(struct ac__counts, live) + (size_t)k * sizeof(int64_t),
		 delta);
}

void ac__count_dropped(void)
{
	ac__loop_t *loop = ac__tls_loop;

	count_at(offsetof(struct ac__counts, dropped), 1);
	if (loop) {
		AC__STAT_ADD(loop, dropped, 1);
		/* The stop closed its connection, or is closing it. */
		if (loop->stopping)
			AC__STAT_ADD(loop, dropped_shutdown, 1);
	}
}

void ac__count_dropped_settled(ac__loop_t *loop)
{
	count_at(offsetof(struct ac__counts, dropped), 1);
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
		ac__count(k, 1);
		count_at(offsetof(struct ac__counts, allocs), 1);
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

static void add_counts(int64_t *sum, int64_t *allocs, int64_t *dropped,
		       const struct ac__counts *c)
{
	for (int k = 0; k < AC__K_COUNT; k++)
		sum[k] += __atomic_load_n(&c->live[k], __ATOMIC_RELAXED);
	*allocs += __atomic_load_n(&c->allocs, __ATOMIC_RELAXED);
	*dropped += __atomic_load_n(&c->dropped, __ATOMIC_RELAXED);
}

AC_EXPORT void ac_debug_counts(ac_debug_counts_t *out)
{
	int64_t sum[AC__K_COUNT] = {0};
	int64_t allocs = 0, dropped = 0;

	pthread_mutex_lock(&counts_lock);
	add_counts(sum, &allocs, &dropped, &gone);
	for (const struct ac__counts *c = blocks; c; c = c->next)
		add_counts(sum, &allocs, &dropped, c);
	pthread_mutex_unlock(&counts_lock);
	add_counts(sum, &allocs, &dropped, &fallback);
	memset(out, 0, sizeof(*out));
	out->tls = sum[AC__K_TLS];
	out->openssl = ac__tls_hooked() ? sum[AC__K_OPENSSL] : -1;
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
	out->work = sum[AC__K_WORK];
	out->bridges = sum[AC__K_BRIDGE];
}
