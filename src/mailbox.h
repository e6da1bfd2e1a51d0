/*
 * mailbox.h: messages between threads and loops (mailbox.c). Each
 * consumer loop has one SPSC ring per producer loop (spsc.h) and one MPSC
 * ring for every other thread (mpsc.h); a message is a 32-byte value in a
 * ring slot.
 *
 * Every message kind has one row in ac__msg_ops (mailbox.c): how its
 * consumer loop delivers it, and how it is settled when it can no longer
 * be delivered (its loop has exited). Adding a kind means an enum value,
 * a row, and the two functions in the subsystem it belongs to.
 */
#ifndef AC_MAILBOX_H
#define AC_MAILBOX_H

#include "common.h"

#define AC__DEFAULT_MAILBOX 4096u /* messages per ring */
#define AC__OVERFLOW_RETRY_US 500 /* overflow retry period */

enum ac__msg_kind {
	AC__MSG_POST = 1, /* fn(arg): a.fn, b */
	AC__MSG_SEND,     /* queue chunk b (outq.h) on h */
	AC__MSG_TELL,     /* on_message(h, i, b), or a.fn(b) to drop it */
	AC__MSG_CLOSE,    /* close h, how = i */
	AC__MSG_ADOPT,    /* adopt fd i for listener b */
	AC__MSG_WATCH,    /* watch h, watch id in b */
	AC__MSG_FIRE,     /* run watch id b with reason i */
	AC__MSG_SENDBUF,  /* write shared buffer b to h */
	AC__MSG_PUBLISH,  /* write shared buffer b to group a.p's members */
	AC__MSG_DISSOLVE, /* group a.p's members on this loop leave it */
	AC__MSG_WORK,     /* run the completion of work item id b */
	AC__MSG_BRIDGE,   /* publish shared buffer b on bridge channel a.p */
	AC__MSG_KINDS
};

union ac__msg_a {
	void (*fn)(void *);
	void *p;
};

/* A message lives by value in a ring slot: 32 bytes, no allocation. */
struct ac__msg {
	uint32_t kind;
	int32_t i;
	ac_handle_t h;
	union ac__msg_a a;
	void *b;
};

struct ac__msg_ops {
	/* On the consumer loop, inside a library callback. */
	void (*deliver)(ac__loop_t *loop, struct ac__msg *m);
	/* The loop is gone (or never ran): on the thread stopping or
	 * freeing the runtime. A message that was accepted but not
	 * delivered is counted as dropped here. */
	void (*settle)(ac__loop_t *loop, struct ac__msg *m);
};

extern const struct ac__msg_ops ac__msg_ops[AC__MSG_KINDS];

/*
 * Messages a loop could not place because the destination's ring was
 * full, in order: a circular array that doubles when full, so that a
 * producer outrunning its consumer pays an allocation per doubling, not
 * per message. Messages to that destination queue behind it until it is
 * empty again (per-producer order).
 */
struct ac__ovf {
	struct ac__msg *v;
	uint32_t head, tail, cap; /* free-running; cap a power of two */
};

static inline bool ac__ovf_empty(const struct ac__ovf *o)
{
	return o->head == o->tail;
}

/* Frees the array of an empty list, or of any list at the end. */
void ac__ovf_clear(struct ac__ovf *o);

/* Any thread: place m in loop dest's mailbox. Lock-free; allocates only
 * when a loop producer overflows, or to make a ring on first use. */
int ac__mailbox_put(ac_runtime_t *rt, int dest, struct ac__msg *m);
/* As ac__mailbox_put, but a foreign caller that finds the ring full waits
 * up to ms for room before giving up with AC_EAGAIN. */
int ac__mailbox_put_wait(ac_runtime_t *rt, int dest, struct ac__msg *m,
			 unsigned ms);
/* Owner loop: retry the overflow lists; the number still waiting. */
unsigned ac__mailbox_retry(ac__loop_t *self);
/* Owner loop: send the wake-ups deferred to the end of the callback. */
void ac__mailbox_flush_wakes(ac__loop_t *self);
/* Any thread: tell loop that its mailbox has work. */
void ac__wake(ac__loop_t *loop);


/* Deliver on the consumer loop, or settle after it exited. A posted
 * function, the most common message, skips the table. */
static inline void ac__dispatch(ac__loop_t *loop, struct ac__msg *m)
{
	if (AC__LIKELY(m->kind == AC__MSG_POST))
		m->a.fn(m->b);
	else
		ac__msg_ops[m->kind].deliver(loop, m);
}

static inline void ac__settle(ac__loop_t *loop, struct ac__msg *m)
{
	ac__msg_ops[m->kind].settle(loop, m);
}

#endif /* AC_MAILBOX_H */
