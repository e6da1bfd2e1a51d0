/*
 * multi.c: MULTI, EXEC, DISCARD, WATCH and UNWATCH, as Redis 7.0 has them,
 * for a server whose commands touch no keys.
 *
 * Between MULTI and EXEC, execute() checks each command as if it were to
 * run (known, arity, subcommand, subscribed mode) and then hands it here:
 * a copy of its arguments is queued and the client gets +QUEUED. A
 * command refused instead flags the transaction, and EXEC then aborts it
 * with EXECABORT and runs nothing. EXEC writes "*N" and runs the queued
 * commands in order, each writing its reply as it would alone. So a
 * PUBLISH inside a transaction reaches no one before EXEC, and no one at
 * all if the transaction is discarded or aborted: redis-py's pipeline()
 * can be retried without duplicates.
 *
 * The queue is bounded: B.max_queued bytes (--max-queued, by default
 * 1 GiB, the largest request the broker reads), counting the arguments
 * and their pointers. Redis has no such bound of its own; here the
 * command that would go over it is refused with -OOM, which flags the
 * transaction, and the queue is freed at once.
 *
 * WATCH: the broker has no keys and no command writes one, so a watched
 * key is never touched and EXEC never fails for it. WATCH therefore
 * remembers nothing and replies +OK, as Redis does when nothing writes
 * the keys; UNWATCH replies +OK.
 */
#include "broker.h"

#include <stdlib.h>
#include <string.h>

/* One queued command: argv and argl point into the same allocation,
 * after the struct, followed by the arguments' bytes. */
struct queued {
	const struct cmd *cmd;
	size_t argc;
	size_t *argl;
	const char **argv;
};

struct multi {
	struct queued **q;
	size_t n, cap;
	size_t next;  /* EXEC: the next command to run */
	size_t bytes; /* held by the queue, against B.max_queued */
	int dirty;    /* a command was refused: EXEC aborts */
};

static void free_queue(struct multi *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->q[i]);
	free(m->q);
	m->q = NULL;
	m->n = m->cap = m->bytes = 0;
}

static void multi_free(struct multi *m)
{
	if (m) {
		free_queue(m);
		free(m);
	}
}

int in_multi(const struct client *cl)
{
	return cl && cl->multi;
}

int in_exec(const struct client *cl)
{
	return cl && cl->exec;
}

size_t multi_count(const struct client *cl)
{
	const struct multi *m = !cl ? NULL : cl->multi ? cl->multi : cl->exec;

	return m ? m->n : 0;
}

void multi_flag(struct client *cl)
{
	if (!in_multi(cl))
		return;
	/* Nothing queued will run: no use holding it (Redis stops queueing
	 * too once a transaction is flagged). */
	cl->multi->dirty = 1;
	free_queue(cl->multi);
}

void multi_discard(struct client *cl)
{
	if (!cl)
		return;
	multi_free(cl->multi);
	cl->multi = NULL;
	/* An EXEC waiting for a CLIENT LIST or KILL (RESET cannot come
	 * then: c reads nothing meanwhile; closing can). */
	multi_free(cl->exec);
	cl->exec = NULL;
}

/* What a command costs the queue: its arguments and their pointers. */
static size_t cost(size_t argc, const size_t *argl)
{
	size_t n = sizeof(struct queued) + argc * (sizeof(char *) +
						   sizeof(size_t));

	for (size_t i = 0; i < argc; i++)
		n += argl[i];
	return n;
}

void multi_queue(ac_conn_t *c, struct client *cl, const struct cmd *cmd,
		 size_t argc, const char **argv, const size_t *argl)
{
	struct multi *m = cl->multi;
	size_t need = cost(argc, argl);
	struct queued *q;
	char *data;

	if (m->dirty) { /* will abort anyway: keep nothing */
		outs(c, "+QUEUED\r\n");
		return;
	}
	if (need > B.max_queued - m->bytes) {
		outf(c, "-OOM command not allowed: the transaction would hold "
			"more than %zu bytes (--max-queued)\r\n",
		     B.max_queued);
		multi_flag(cl);
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 8;
		if (!(m->q = realloc(m->q, m->cap * sizeof(*m->q))))
			abort();
	}
	q = xmalloc(need);
	q->cmd = cmd;
	q->argc = argc;
	q->argl = (size_t *)(q + 1);
	q->argv = (const char **)(q->argl + argc);
	data = (char *)(q->argv + argc);
	for (size_t i = 0; i < argc; i++) {
		memcpy(data, argv[i], argl[i]);
		q->argv[i] = data;
		q->argl[i] = argl[i];
		data += argl[i];
	}
	m->q[m->n++] = q;
	m->bytes += need;
	outs(c, "+QUEUED\r\n");
}

/*
 * Runs cl->exec's commands from the next one on. A CLIENT LIST or KILL
 * is answered later, once every loop has been visited, and stops c
 * reading until then (clients.c): the rest waits, and exec_resume goes
 * on once the answer is written, so the replies keep their order. A
 * command may also have closed c (an output limit): then nothing more
 * runs, and on_close frees the rest.
 *
 * The commands of one EXEC run one after another, with nothing from
 * this client between them; other clients' commands, on other loops,
 * may run in between (see actorconn-broker(1), COMPATIBILITY).
 */
static void exec_run(ac_conn_t *c, struct client *cl)
{
	struct multi *m = cl->exec;

	while (m->next < m->n) {
		struct queued *q = m->q[m->next++];

		run_command(c, cl, q->cmd, q->argc, q->argv, q->argl);
		if (ac_conn_reading(c) != 1)
			return;
	}
	cl->exec = NULL;
	multi_free(m);
}

void exec_resume(ac_conn_t *c)
{
	struct client *cl = client_of(c);

	if (in_exec(cl) && ac_conn_reading(c) == 1)
		exec_run(c, cl);
}

void cmd_multi(CMD_ARGS)
{
	if (cl->multi) { /* not a refusal: the transaction goes on */
		outs(c, "-ERR MULTI calls can not be nested\r\n");
		return;
	}
	cl->multi = calloc(1, sizeof(*cl->multi));
	if (!cl->multi)
		abort();
	outs(c, "+OK\r\n");
}

void cmd_exec(CMD_ARGS)
{
	struct multi *m = cl ? cl->multi : NULL;

	if (!m) {
		outs(c, "-ERR EXEC without MULTI\r\n");
		return;
	}
	if (m->dirty) {
		multi_discard(cl);
		outs(c, "-EXECABORT Transaction discarded because of previous "
			"errors.\r\n");
		return;
	}
	cl->multi = NULL;
	cl->exec = m;
	outf(c, "*%zu\r\n", m->n);
	exec_run(c, cl);
}

void cmd_discard(CMD_ARGS)
{
	if (!in_multi(cl)) {
		outs(c, "-ERR DISCARD without MULTI\r\n");
		return;
	}
	multi_discard(cl);
	outs(c, "+OK\r\n");
}

void cmd_watch(CMD_ARGS)
{
	if (in_multi(cl)) { /* not a refusal: the transaction goes on */
		outs(c, "-ERR WATCH inside MULTI is not allowed\r\n");
		return;
	}
	outs(c, "+OK\r\n");
}

void cmd_unwatch(CMD_ARGS)
{
	outs(c, "+OK\r\n");
}
