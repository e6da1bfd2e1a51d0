/*
 * alloc.h: the library's one allocation layer and its live-object counts
 * (alloc.c). Every allocation goes through here, tagged with a kind, so
 * that live objects are counted in one place (ac_debug_counts) and a test
 * build can make any allocation fail (fault injection).
 */
#ifndef AC_ALLOC_H
#define AC_ALLOC_H

#include "common.h"

enum ac__kind {
	AC__K_CONN,
	AC__K_HANDLE, /* counted, not allocated: a slot in use */
	AC__K_MSG,
	AC__K_LISTENER,
	AC__K_TIMER,
	AC__K_WATCH,  /* counted, not allocated: a watch slot in use */
	AC__K_REG,    /* registry entries and tables */
	AC__K_BUF,    /* shared buffers */
	AC__K_GROUP,  /* groups and their member arrays */
	AC__K_POOL,   /* pools, sub-pools, waiting acquires */
	AC__K_OTHER,
	AC__K_TLS,     /* TLS contexts and connections' TLS state */
	AC__K_OPENSSL, /* OpenSSL's own blocks, once routed here (tls.c) */
	AC__K_WORK,    /* work items outstanding (counted, not allocated),
			  and the worker pools' tables */
	AC__K_BRIDGE,  /* bridges and everything they hold */
	AC__K_COUNT
};

void *ac__malloc(enum ac__kind k, size_t n);
void *ac__calloc(enum ac__kind k, size_t nmemb, size_t n);
void *ac__memalign(enum ac__kind k, size_t align, size_t n);
/* Grows p (counted under k when p is NULL); on failure p is untouched. */
void *ac__realloc(enum ac__kind k, void *p, size_t n);
void ac__free(enum ac__kind k, void *p);
void ac__count(enum ac__kind k, int delta);
char *ac__strdup(const char *s);

/* An accepted message was dropped: counted process-wide (ac_debug_counts)
 * and in the statistics of the loop that dropped it... */
void ac__count_dropped(void);
/* ...or, settled after loop exited, in that loop's statistics. */
void ac__count_dropped_settled(ac__loop_t *loop);

#ifdef AC_FAULT_INJECTION
/* Test-only (configure --enable-fault-injection; absent otherwise, and
 * never exported). Numbers allocation attempts from 1 again and makes
 * attempt n fail (0: none), and with persist every attempt after it. */
void ac__fault_fail_nth(uint64_t n, int persist);
uint64_t ac__fault_attempts(void); /* attempts since the last arming */
uint64_t ac__fault_failures(void); /* attempts failed since then */
bool ac__fault_hit(void);          /* counts one attempt: fail it? */
void ac__fault_hook_libevent(void); /* before any other libevent call */
int64_t ac__fault_libevent_live(void); /* libevent's allocations not freed */
void ac__fault_trace(int on);      /* print each failure's stack */
void ac__fault_only_loop(int loop); /* number only loop's attempts; -1: all */
#endif

#endif /* AC_ALLOC_H */
