/* test_mailbox.c: order, no loss, full mailboxes, overflow, posts. */
#include "testhelp.h"

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- two producer threads, one loop, 1,000,000 messages ---------------- */

#define PRODUCERS 2
#define PER_PRODUCER 500000

static int64_t got[PRODUCERS];       /* written by the loop only */
static int64_t out_of_order;         /* written by the loop only */
static int64_t total;                /* atomic */
static int64_t eagain_seen;          /* atomic */

static void consume(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	int p = (int)(v >> 32);
	int64_t seq = (int64_t)(v & 0xffffffffu);

	if (seq != got[p])
		out_of_order++;
	got[p] = seq + 1;
	__atomic_fetch_add(&total, 1, __ATOMIC_RELEASE);
}

struct producer {
	ac_runtime_t *rt;
	int id;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;

	for (uintptr_t seq = 0; seq < PER_PRODUCER;) {
		void *m = (void *)(((uintptr_t)pr->id << 32) | seq);
		int err = ac_loop_post(pr->rt, AC_LOOP(0), consume, m);

		if (err == AC_EAGAIN) {
			__atomic_fetch_add(&eagain_seen, 1, __ATOMIC_RELAXED);
			sched_yield();
			continue;
		}
		ck_assert_int_eq(err, 0);
		seq++;
	}
	return NULL;
}

START_TEST(two_producers_one_loop_million_messages_in_order_no_loss)
{
	ac_config_t cfg = {.loops = 1, .mailbox_capacity = 1024};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	struct producer pr[PRODUCERS];
	pthread_t t[PRODUCERS];

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){rt, i};
		pthread_create(&t[i], NULL, produce, &pr[i]);
	}
	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(t[i], NULL);
	ck_assert(th_wait_ge(&total, PRODUCERS * PER_PRODUCER, 60000));
	ac_runtime_stop(rt, 0);
	ck_assert_int_eq(total, PRODUCERS * PER_PRODUCER);
	ck_assert_int_eq(out_of_order, 0);
	for (int i = 0; i < PRODUCERS; i++)
		ck_assert_int_eq(got[i], PER_PRODUCER);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- full mailbox --------------------------------------------------------- */

static sem_t gate;          /* holds loop 0 inside a callback */
static sem_t gate_entered;
static int64_t from_loop1;  /* messages loop 0 got from loop 1 */
static int64_t loop1_order_errors;
static int64_t loop1_sent, loop1_errors;
static int64_t foreign_got;

static void block_loop(void *arg)
{
	sem_post(&gate_entered);
	sem_wait(&gate);
}

static void count_foreign(void *arg)
{
	__atomic_fetch_add(&foreign_got, 1, __ATOMIC_RELEASE);
}

static void count_from_loop1(void *arg)
{
	if ((int64_t)(uintptr_t)arg != from_loop1)
		loop1_order_errors++;
	__atomic_fetch_add(&from_loop1, 1, __ATOMIC_RELEASE);
}

#define LOOP1_MESSAGES 1000

static void send_from_loop1(void *arg)
{
	ac_runtime_t *rt = arg;

	for (uintptr_t i = 0; i < LOOP1_MESSAGES; i++) {
		/* The ring holds 16: the rest must overflow, not fail. */
		if (ac_loop_post(rt, AC_LOOP(0), count_from_loop1, (void *)i))
			loop1_errors++;
	}
	__atomic_store_n(&loop1_sent, 1, __ATOMIC_RELEASE);
}

START_TEST(full_mailbox_gives_eagain_to_foreign_and_loses_nothing_from_loop)
{
	ac_config_t cfg = {.loops = 2, .mailbox_capacity = 16};
	ac_runtime_t *rt = ac_runtime_new(&cfg);
	int64_t accepted = 0;
	int err = 0;

	sem_init(&gate, 0, 0);
	sem_init(&gate_entered, 0, 0);
	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), block_loop, NULL), 0);
	sem_wait(&gate_entered);

	/* Loop 0 is stuck: the foreign ring fills and then refuses. */
	for (int i = 0; i < 100 && err == 0; i++) {
		err = ac_loop_post(rt, AC_LOOP(0), count_foreign, NULL);
		if (err == 0)
			accepted++;
	}
	ck_assert_int_eq(err, AC_EAGAIN);
	ck_assert_int_eq(accepted, 16); /* a ring of 16 holds 16 */

	/* A loop producer never gets EAGAIN: its excess waits in overflow. */
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(1), send_from_loop1, rt), 0);
	ck_assert(th_wait_ge(&loop1_sent, 1, 10000));
	ck_assert_int_eq(loop1_errors, 0);

	sem_post(&gate);
	ck_assert(th_wait_ge(&foreign_got, accepted, 10000));
	ck_assert(th_wait_ge(&from_loop1, LOOP1_MESSAGES, 10000));
	ck_assert_int_eq(loop1_order_errors, 0);

	/* With room again, the foreign thread is accepted. */
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), count_foreign, NULL), 0);
	ck_assert(th_wait_ge(&foreign_got, accepted + 1, 10000));
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- posts and shutdown ----------------------------------------------------- */

static int64_t ran_on[4];
static int64_t ran_off_loop;

static int64_t ran_default, ran_default_on[4];

static void note_loop(void *arg)
{
	int idx = ac_loop_index();

	if ((intptr_t)arg == -1) { /* posted to AC_LOOP_DEFAULT */
		__atomic_fetch_add(&ran_default_on[idx], 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&ran_default, 1, __ATOMIC_RELEASE);
		return;
	}
	/* Count where it ran, under the loop it was posted to. */
	if (idx != (int)(intptr_t)arg)
		__atomic_fetch_add(&ran_off_loop, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&ran_on[idx], 1, __ATOMIC_RELAXED);
}

START_TEST(post_runs_on_the_named_loop)
{
	ac_config_t cfg = {.loops = 3};
	ac_runtime_t *rt = ac_runtime_new(&cfg);

	ck_assert_int_eq(ac_loop_index(), -1);
	ck_assert_int_eq(ac_runtime_loops(rt), 3);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(i), note_loop,
					      (void *)(intptr_t)i),
				 0);
	for (int i = 0; i < 3; i++)
		ck_assert(th_wait_ge(&ran_on[i], 1, 5000));
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(3), note_loop, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(-1), note_loop, NULL),
			 AC_EINVAL);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), NULL, NULL), AC_EINVAL);
	/* A raw index never lands on a loop: one convention, AC_LOOP(i). */
	ck_assert_int_eq(ac_loop_post(rt, 1, note_loop, NULL), AC_EINVAL);
	ck_assert_int_eq(ac_loop_post(rt, -1, note_loop, NULL), AC_EINVAL);
	/* The default from a thread that is not a loop: round robin, so
	 * three posts reach each loop once more. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP_DEFAULT, note_loop,
					      (void *)(intptr_t)-1),
				 0);
	ck_assert(th_wait_ge(&ran_default, 3, 5000));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(ran_default_on[i], 1);
	ac_runtime_free(rt);
	ck_assert_int_eq(ran_off_loop, 0);
	th_assert_no_live_objects();
}
END_TEST

static void free_arg(void *arg)
{
	free(arg);
	__atomic_fetch_add(&ran_off_loop, 1, __ATOMIC_RELAXED);
}

START_TEST(posts_before_start_run_once_even_if_never_started)
{
	ac_config_t cfg = {.loops = 2};
	ac_runtime_t *rt = ac_runtime_new(&cfg);

	/* Never started: each post still runs exactly once, at stop, so the
	 * argument it owns is not leaked (valgrind would see it). */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(i % 2), free_arg, malloc(8)), 0);
	ac_runtime_free(rt);
	ck_assert_int_eq(ran_off_loop, 10);
	th_assert_no_live_objects();
}
END_TEST

START_TEST(post_after_stop_is_eshutdown)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 1});

	ck_assert_int_eq(ac_runtime_start(rt), 0);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), note_loop, NULL), AC_ESHUTDOWN);
	ck_assert_int_eq(ac_runtime_stop(rt, 0), 0); /* twice is harmless */
	ck_assert_int_eq(ac_runtime_start(rt), AC_ESTATE);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- hot paths allocate nothing ----------------------------------------- */

static int64_t hot_count, hot_loop_done;

static void hot_consume(void *arg) { __atomic_fetch_add(&hot_count, 1, __ATOMIC_RELEASE); }

static void hot_from_loop(void *arg)
{
	ac_runtime_t *rt = arg;

	/* Loop to loop, under the ring's capacity: no overflow node. */
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(0), hot_consume, NULL), 0);
	__atomic_fetch_add(&hot_loop_done, 1, __ATOMIC_RELEASE);
}

static void hot_pin_open(ac_conn_t *c) { (void)c; }

START_TEST(post_and_pin_allocate_nothing)
{
	ac_runtime_t *rt = ac_runtime_new(&(ac_config_t){.loops = 2});
	ac_conn_cbs_t cbs = {.on_open = hot_pin_open};
	ac_debug_counts_t before, after;
	ac_listener_t *l;
	ck_hp_record_t *rec;
	ac_handle_t h = AC_HANDLE_NONE;
	int fd;

	ck_assert_int_eq(ac_listen(rt, "127.0.0.1:0", &cbs, NULL, NULL, &l), 0);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	fd = th_connect_tcp("127.0.0.1", ac_listener_port(l));
	for (int i = 0; i < 5000 && h == AC_HANDLE_NONE; i++) {
		for (int lp = 0; lp < 2; lp++)
			if (ac__handle_live(rt, ac__handle_make(lp, 0, 1)))
				h = ac__handle_make(lp, 0, 1);
		usleep(1000);
	}
	ck_assert_uint_ne(h, AC_HANDLE_NONE);
	/* Warm up: this thread's hazard record, loop 1's ring to loop 0. */
	rec = ac__hp_record(rt);
	ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(1), hot_from_loop, rt), 0);
	ck_assert(th_wait_ge(&hot_loop_done, 1, 5000));
	ck_assert(th_wait_ge(&hot_count, 1000, 5000));

	ac_debug_counts(&before);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(1), hot_from_loop, rt), 0);
		for (int k = 0; k < 1000; k++) {
			ac_conn_t *c = ac__pin(rt, rec, h);
			ck_assert_ptr_nonnull(c);
			ac__unpin(rec);
		}
		ck_assert(th_wait_ge(&hot_loop_done, i + 2, 5000));
	}
	ck_assert(th_wait_ge(&hot_count, 101000, 5000));
	ac_debug_counts(&after);
	/* 100,100 posts (foreign and loop to loop) and 100,000 pins. */
	ck_assert_int_eq(after.allocs, before.allocs);
	close(fd);
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

/*
 * ac_send to an idle connection costs one allocation (the chunk holding
 * the copy, made on the sending thread) and one copy: the owner loop links
 * the chunk into the connection's output queue as it is and frees it once
 * the kernel has the bytes. The counting itself takes no shared atomic
 * (per-thread blocks), which this cannot show, but the allocation count
 * it can: exactly one per send, whatever the loop does with it.
 */
static bool no_messages(void *arg)
{
	ac_debug_counts_t d;

	ac_debug_counts(&d);
	return d.messages == 0;
}

START_TEST(send_to_an_idle_connection_allocates_once)
{
	enum { N = 2000, LEN = 100 };
	static char back[N * LEN];
	char payload[LEN];
	ac_debug_counts_t before, after;
	ac_handle_t h;
	int fd;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	h = th_handle(0);
	memset(payload, 'p', sizeof(payload));
	/* Warm up: this thread's counts, the ring, the socket. */
	ck_assert_int_eq(ac_send(th_srv.rt, h, payload, LEN), 0);
	ck_assert(th_read_full(fd, back, LEN));
	ac_debug_counts(&before);
	for (int i = 0; i < N; i++) {
		payload[0] = (char)('a' + i % 26);
		while (ac_send(th_srv.rt, h, payload, LEN) == AC_EAGAIN)
			usleep(100);
	}
	ck_assert(th_read_full(fd, back, sizeof(back)));
	/* The peer can read the last bytes before the loop, back from
	 * sendmsg, frees their chunk: every chunk is freed soon after. */
	ck_assert(th_wait(no_messages, NULL, 2000));
	ac_debug_counts(&after);
	ck_assert_int_eq(after.allocs - before.allocs, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(back[i * LEN], 'a' + i % 26);
	close(fd);
	th_finish();
}
END_TEST

/*
 * The same from a loop: a broker's loop sending to a connection that
 * another loop owns. The sender's chunk comes from the allocator, not
 * from its loop's spare chunks (those are the size of a full chunk, and a
 * send's chunk is the size of its payload), so each send is again exactly
 * one allocation; the message itself goes through the loop-to-loop ring.
 */
enum { LOOP_SENDS = 2000, LOOP_LEN = 100 };

struct loop_sender {
	ac_runtime_t *rt;
	ac_handle_t h;
	int n;         /* sends to make */
	int64_t errors; /* sends refused; atomic */
	int64_t done;   /* posts finished; atomic */
};

static void send_from_loop(void *arg)
{
	struct loop_sender *s = arg;
	char payload[LOOP_LEN];

	memset(payload, 'q', sizeof(payload));
	for (int i = 0; i < s->n; i++) {
		payload[0] = (char)('a' + i % 26);
		/* 2,000 messages fit in the 4,096-slot ring: no overflow
		 * list, whose array would be an allocation of its own. */
		if (ac_send(s->rt, s->h, payload, LOOP_LEN))
			__atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&s->done, 1, __ATOMIC_RELEASE);
}

START_TEST(send_from_a_loop_to_an_idle_connection_allocates_once)
{
	static char back[LOOP_SENDS * LOOP_LEN];
	struct loop_sender s = {0};
	ac_debug_counts_t before, after;
	int fd, sender;

	th_server_start(2, "127.0.0.1:0", NULL);
	fd = th_connect_tcp("127.0.0.1", th_srv.port);
	s.rt = th_srv.rt;
	s.h = th_handle(0);
	/* The other loop sends: the cross-loop path. */
	sender = 1 - AC_HANDLE_LOOP(s.h);
	/* Warm up: the sender's ring to the owner, its counts, the socket. */
	s.n = 1;
	ck_assert_int_eq(ac_loop_post(s.rt, AC_LOOP(sender), send_from_loop,
				      &s), 0);
	ck_assert(th_wait_ge(&s.done, 1, 5000));
	ck_assert(th_read_full(fd, back, LOOP_LEN));
	ck_assert(th_wait(no_messages, NULL, 2000));

	ac_debug_counts(&before);
	s.n = LOOP_SENDS;
	ck_assert_int_eq(ac_loop_post(s.rt, AC_LOOP(sender), send_from_loop,
				      &s), 0);
	ck_assert(th_wait_ge(&s.done, 2, 5000));
	ck_assert_int_eq(__atomic_load_n(&s.errors, __ATOMIC_RELAXED), 0);
	ck_assert(th_read_full(fd, back, sizeof(back)));
	ck_assert(th_wait(no_messages, NULL, 2000));
	ac_debug_counts(&after);
	ck_assert_int_eq(after.allocs - before.allocs, LOOP_SENDS);
	for (int i = 0; i < LOOP_SENDS; i++)
		ck_assert_int_eq(back[i * LOOP_LEN], 'a' + i % 26);
	close(fd);
	th_finish();
}
END_TEST

/* ---- messages a loop sends itself --------------------------------------------- */

#define SELF_POSTS 50

static ac_runtime_t *g_rt;
static int64_t foreign_ran, self_ran, timer_fired;
static uint64_t wakeups_first, wakeups_last;
static ac_timer_t *g_timer;

static uint64_t loop0_wakeups(void)
{
	ac_stats_t all, loop0;

	ck_assert_int_eq(ac_stats(g_rt, &all, &loop0, 1), 1);
	return loop0.mailbox_wakeups;
}

static void foreign_post_ran(void *arg)
{
	__atomic_fetch_add(&foreign_ran, 1, __ATOMIC_RELAXED);
}

static void self_post_ran(void *arg)
{
	if (self_ran + 1 == SELF_POSTS)
		wakeups_last = loop0_wakeups();
	/* Release: the test reads the figures above once it sees this. */
	__atomic_store_n(&self_ran, self_ran + 1, __ATOMIC_RELEASE);
}

/* Every millisecond on loop 0, from a timer callback (not a drain cycle):
 * one post to the calling loop, SELF_POSTS times. */
static void tick_posts_self(void *arg)
{
	if (timer_fired == 0)
		wakeups_first = loop0_wakeups();
	timer_fired++;
	ck_assert_int_eq(ac_loop_post(g_rt, AC_LOOP_DEFAULT, self_post_ran,
				      NULL),
			 0);
	if (timer_fired == SELF_POSTS)
		ck_assert_int_eq(ac_timer_cancel(g_timer), 0);
}

static void start_ticks(void *arg)
{
	g_timer = ac_timer_start(g_rt, 1, 1, tick_posts_self, NULL);
	ck_assert_ptr_nonnull(g_timer);
}

/*
 * A message from another thread wakes the loop through its eventfd, and
 * the statistics count it; a message a loop sends itself from a callback
 * runs when that turn's callbacks are done, with no wake-up (the eventfd
 * would be a write and a read for a message that never left the thread).
 */
START_TEST(posts_a_loop_sends_itself_run_without_a_wakeup)
{
	ac_config_t cfg = {.loops = 1};

	g_rt = ac_runtime_new(&cfg);
	ck_assert_ptr_nonnull(g_rt);
	ck_assert_int_eq(ac_runtime_start(g_rt), 0);
	ck_assert_int_eq(ac_loop_post(g_rt, AC_LOOP(0), foreign_post_ran, NULL),
			 0);
	ck_assert(th_wait_ge(&foreign_ran, 1, 5000));
	ck_assert_uint_ge(loop0_wakeups(), 1);

	ck_assert_int_eq(ac_loop_post(g_rt, AC_LOOP(0), start_ticks, NULL), 0);
	ck_assert(th_wait_ge(&self_ran, SELF_POSTS, 10000));
	ck_assert_int_eq(timer_fired, SELF_POSTS);
	/* Nothing else posts to loop 0 meanwhile: each post to itself would
	 * have been one wake-up. */
	ck_assert_uint_eq(wakeups_last - wakeups_first, 0);
	ac_runtime_free(g_rt);
	th_assert_no_live_objects();
}
END_TEST

static int64_t chain_runs, chain_stop, chain_stopped_at;

static void chain(void *arg)
{
	chain_runs++;
	if (chain_stop) {
		__atomic_store_n(&chain_stopped_at, chain_runs, __ATOMIC_RELAXED);
		return;
	}
	ck_assert_int_eq(ac_loop_post(g_rt, AC_LOOP_DEFAULT, chain, NULL), 0);
}

static void stop_chain(void *arg)
{
	chain_stop = 1;
	__atomic_store_n(&timer_fired, 1, __ATOMIC_RELAXED);
}

static void start_chain(void *arg)
{
	ck_assert_ptr_nonnull(ac_timer_start(g_rt, 20, 0, stop_chain, NULL));
	ck_assert_int_eq(ac_loop_post(g_rt, AC_LOOP_DEFAULT, chain, NULL), 0);
}

/* A function that posts itself again and again keeps its loop polling:
 * a timer on that loop still fires (and ends the chain). */
START_TEST(a_function_that_keeps_posting_itself_lets_its_loop_poll)
{
	ac_config_t cfg = {.loops = 1};

	g_rt = ac_runtime_new(&cfg);
	ck_assert_ptr_nonnull(g_rt);
	ck_assert_int_eq(ac_runtime_start(g_rt), 0);
	ck_assert_int_eq(ac_loop_post(g_rt, AC_LOOP(0), start_chain, NULL), 0);
	ck_assert(th_wait_ge(&timer_fired, 1, 10000));
	ck_assert(th_wait_ge(&chain_stopped_at, 1, 5000));
	ck_assert_int_gt(__atomic_load_n(&chain_stopped_at, __ATOMIC_RELAXED), 1);
	ac_runtime_free(g_rt);
	th_assert_no_live_objects();
}
END_TEST

/* ---- two loops, each sending the other a stream of posts -------------- */

#define STREAM_MESSAGES 200000 /* per direction */
#define STREAM_BATCH 64        /* posts per producer callback */

struct stream {
	ac_runtime_t *rt;
	int from, to;
	uintptr_t sent;      /* the producing loop's own */
	uintptr_t expect;    /* the consuming loop's own: the next seq */
	int64_t received;    /* atomic */
	int64_t disorder;    /* atomic: a message out of order or altered */
	int64_t post_errors; /* atomic */
};

static struct stream streams[2];

/* On the consuming loop: arg carries the direction and the sequence. */
static void stream_take(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	struct stream *st = &streams[v >> 32];

	if ((v & 0xffffffffu) != st->expect || ac_loop_index() != st->to)
		__atomic_fetch_add(&st->disorder, 1, __ATOMIC_RELAXED);
	st->expect = (v & 0xffffffffu) + 1;
	__atomic_fetch_add(&st->received, 1, __ATOMIC_RELEASE);
}

/* On the producing loop: a batch to the other loop, then itself again, so
 * that the loop returns to its drain cycle between batches. */
static void stream_give(void *arg)
{
	struct stream *st = arg;
	uintptr_t dir = (uintptr_t)(st - streams);

	for (int i = 0; i < STREAM_BATCH && st->sent < STREAM_MESSAGES; i++)
		if (ac_loop_post(st->rt, AC_LOOP(st->to), stream_take,
				 (void *)(dir << 32 | st->sent++)))
			__atomic_fetch_add(&st->post_errors, 1,
					   __ATOMIC_RELAXED);
	if (st->sent < STREAM_MESSAGES &&
	    ac_loop_post(st->rt, AC_LOOP(st->from), stream_give, st))
		__atomic_fetch_add(&st->post_errors, 1, __ATOMIC_RELAXED);
}

/*
 * Both directions at once, each producer outrunning its consumer in turns:
 * every message arrives once, unaltered and in order. Loop producers write
 * another loop's ring with streaming stores (spsc.h); a missing fence or
 * a wrong field there shows here as disorder, a crash, or a count short.
 */
START_TEST(two_loops_stream_posts_to_each_other_in_order_no_loss)
{
	ac_config_t cfg = {.loops = 2};
	ac_runtime_t *rt = ac_runtime_new(&cfg);

	ck_assert_ptr_nonnull(rt);
	ck_assert_int_eq(ac_runtime_start(rt), 0);
	for (int d = 0; d < 2; d++)
		streams[d] = (struct stream){.rt = rt, .from = d, .to = 1 - d};
	for (int d = 0; d < 2; d++)
		ck_assert_int_eq(ac_loop_post(rt, AC_LOOP(d), stream_give,
					      &streams[d]),
				 0);
	for (int d = 0; d < 2; d++)
		ck_assert(th_wait_ge(&streams[d].received, STREAM_MESSAGES,
				     60000));
	ac_runtime_stop(rt, 0);
	for (int d = 0; d < 2; d++) {
		ck_assert_int_eq(streams[d].received, STREAM_MESSAGES);
		ck_assert_int_eq(streams[d].disorder, 0);
		ck_assert_int_eq(streams[d].post_errors, 0);
	}
	ac_runtime_free(rt);
	th_assert_no_live_objects();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mailbox");
	TCase *tc = tcase_create("mailbox");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, two_producers_one_loop_million_messages_in_order_no_loss);
	tcase_add_test(tc, full_mailbox_gives_eagain_to_foreign_and_loses_nothing_from_loop);
	tcase_add_test(tc, two_loops_stream_posts_to_each_other_in_order_no_loss);
	tcase_add_test(tc, post_runs_on_the_named_loop);
	tcase_add_test(tc, posts_before_start_run_once_even_if_never_started);
	tcase_add_test(tc, post_after_stop_is_eshutdown);
	tcase_add_test(tc, post_and_pin_allocate_nothing);
	tcase_add_test(tc, send_to_an_idle_connection_allocates_once);
	tcase_add_test(tc, send_from_a_loop_to_an_idle_connection_allocates_once);
	tcase_add_test(tc, posts_a_loop_sends_itself_run_without_a_wakeup);
	tcase_add_test(tc, a_function_that_keeps_posting_itself_lets_its_loop_poll);
	suite_add_tcase(s, tc);
	return th_run(s);
}
