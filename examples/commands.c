/*
 * commands.c: actorconn-broker's commands. One table names each command,
 * its arity, whether a subscribed client may send it and whether it needs
 * the client's state; execute() checks a command against it and against
 * the client's user (session.c) and runs it. Replies follow Redis 7, error
 * texts included, so that redis-cli and redis-benchmark work unchanged;
 * the connection commands are in session.c, COMMAND and INFO in
 * introspect.c.
 */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is(const char *arg, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(arg, word, len) == 0;
}

static void unknown_subcommand(ac_conn_t *c, const char *cmd,
			       const char *arg, size_t len)
{
	outf(c, "-ERR unknown subcommand '%.*s'. Try %s HELP.\r\n",
	     (int)(len > 128 ? 128 : len), arg, cmd);
}

struct cmd {
	const char *name;
	int arity;      /* > 0 exact, < 0 at least -arity */
	int subscribed; /* allowed in subscribed mode (RESP2) */
	void (*fn)(ac_conn_t *c, struct client *cl, size_t argc,
		   const char **argv, const size_t *argl);
	int state;      /* needs the client's state (else cl may be NULL) */
};

#define ARGS                                                                 \
	ac_conn_t *c, struct client *cl, size_t argc, const char **argv,     \
		const size_t *argl

static void cmd_ping(ARGS)
{
	if (nsubs(cl) && client_resp(cl) == 2) { /* subscribed: a push */
		out(c, "*2\r\n$4\r\npong\r\n", 14);
		bulk(c, argc > 1 ? argv[1] : "", argc > 1 ? argl[1] : 0);
	} else if (argc > 1) {
		bulk(c, argv[1], argl[1]);
	} else {
		out(c, "+PONG\r\n", 7);
	}
}

static void cmd_echo(ARGS) { bulk(c, argv[1], argl[1]); }

static void cmd_subscribe(ARGS)
{
	for (size_t i = 1; i < argc; i++)
		subscribe(c, cl, 0, argv[i], argl[i]);
}

static void cmd_psubscribe(ARGS)
{
	for (size_t i = 1; i < argc; i++)
		subscribe(c, cl, 1, argv[i], argl[i]);
}

static void cmd_unsubscribe(ARGS)
{
	if (argc == 1)
		unsubscribe_all(c, cl, 0, 0);
	for (size_t i = 1; i < argc; i++)
		unsubscribe(c, cl, 0, argv[i], argl[i], 0);
}

static void cmd_punsubscribe(ARGS)
{
	if (argc == 1)
		unsubscribe_all(c, cl, 1, 0);
	for (size_t i = 1; i < argc; i++)
		unsubscribe(c, cl, 1, argv[i], argl[i], 0);
}

static void cmd_publish(ARGS)
{
	outf(c, ":%ld\r\n", publish(argv[1], argl[1], argv[2], argl[2]));
	if (B.up)
		forward(argv[1], argl[1], argv[2], argl[2]);
}

static void cmd_pubsub(ARGS)
{
	if (is(argv[1], argl[1], "CHANNELS") && argc <= 3) {
		size_t n;
		struct sub *names =
			channels_matching(argc == 3 ? argv[2] : NULL,
					  argc == 3 ? argl[2] : 0, &n);

		outf(c, "*%zu\r\n", n);
		for (size_t i = 0; i < n; i++) {
			bulk(c, names[i].name, names[i].len);
			free(names[i].name);
		}
		free(names);
	} else if (is(argv[1], argl[1], "NUMSUB")) {
		outf(c, "*%zu\r\n", (argc - 2) * 2);
		for (size_t i = 2; i < argc; i++) {
			size_t subs = channel_subscribers(argv[i], argl[i]);

			bulk(c, argv[i], argl[i]);
			outf(c, ":%zu\r\n", subs);
		}
	} else if (is(argv[1], argl[1], "NUMPAT") && argc == 2) {
		outf(c, ":%zu\r\n", pattern_count());
	} else {
		unknown_subcommand(c, "PUBSUB", argv[1], argl[1]);
	}
}

static void cmd_quit(ARGS)
{
	out(c, "+OK\r\n", 5);
	ac_conn_close(c, AC_CLOSE_FLUSH);
}

/* The name is the connection's label: CLIENT LIST reads it on c's loop.
 * Redis' rule for the characters; the library's for the length. */
int set_name(ac_conn_t *c, const char *p, size_t n)
{
	char name[AC_LABEL_MAX + 1];

	for (size_t i = 0; i < n; i++)
		if (p[i] < '!' || p[i] > '~') {
			outf(c, "-ERR Client names cannot contain spaces, "
				"newlines or special characters.\r\n");
			return -1;
		}
	if (n > AC_LABEL_MAX) {
		outf(c, "-ERR Client names are limited to %d bytes in "
			"actorconn-broker\r\n", AC_LABEL_MAX);
		return -1;
	}
	memcpy(name, p, n);
	name[n] = 0;
	if (ac_conn_set_label(c, name)) {
		outs(c, "-ERR out of memory\r\n");
		return -1;
	}
	return 0;
}

static void cmd_client(ARGS)
{
	ac_conn_info_t i;

	if (is(argv[1], argl[1], "SETNAME") && argc == 3) {
		if (set_name(c, argv[2], argl[2]) == 0)
			out(c, "+OK\r\n", 5);
	} else if (is(argv[1], argl[1], "GETNAME") && argc == 2) {
		if (ac_conn_info(c, &i) == 0 && i.label[0])
			bulk_str(c, i.label);
		else
			reply_null(c);
	} else if (is(argv[1], argl[1], "ID") && argc == 2) {
		outf(c, ":%llu\r\n",
		     (unsigned long long)client_id(ac_conn_handle(c)));
	} else if (is(argv[1], argl[1], "LIST")) {
		client_list(c, argc, argv, argl);
	} else if (is(argv[1], argl[1], "KILL")) {
		client_kill(c, argc, argv, argl);
	} else if (is(argv[1], argl[1], "INFO") && argc == 2) {
		client_info(c);
	} else if (is(argv[1], argl[1], "REPLY") && argc == 3) {
		client_reply(c, cl, argc, argv, argl);
	} else {
		unknown_subcommand(c, "CLIENT", argv[1], argl[1]);
	}
}

static void cmd_config(ARGS)
{
	/* redis-benchmark asks for "save" and "appendonly": answer as a
	 * Redis without persistence would. Nothing else is configurable. */
	if (is(argv[1], argl[1], "GET") && argc == 3) {
		reply_map(c, 1);
		bulk(c, argv[2], argl[2]);
		bulk_str(c, is(argv[2], argl[2], "appendonly") ? "no" : "");
	}
	else
		outs(c, "-ERR CONFIG is limited to GET in actorconn-broker\r\n");
}

static const struct cmd commands[] = {
	{"ping", -1, 1, cmd_ping, 0},
	{"echo", 2, 0, cmd_echo, 0},
	{"subscribe", -2, 1, cmd_subscribe, 1},
	{"unsubscribe", -1, 1, cmd_unsubscribe, 1},
	{"psubscribe", -2, 1, cmd_psubscribe, 1},
	{"punsubscribe", -1, 1, cmd_punsubscribe, 1},
	{"publish", 3, 0, cmd_publish, 0},
	{"pubsub", -2, 0, cmd_pubsub, 0},
	{"quit", -1, 1, cmd_quit, 0},
	{"reset", 1, 1, cmd_reset, 1},
	{"hello", -1, 0, cmd_hello, 1},
	{"auth", -2, 0, cmd_auth, 1},
	{"select", 2, 0, cmd_select, 1},
	{"client", -2, 0, cmd_client, 1},
	{"command", -1, 0, cmd_command, 0},
	{"config", -2, 0, cmd_config, 0},
	{"info", -1, 0, cmd_info, 0},
};
static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

const char *command_at(size_t i, int *arity)
{
	if (i >= ncommands)
		return NULL;
	*arity = commands[i].arity;
	return commands[i].name;
}

/* "publish", or "client|list" for a command with subcommands, as Redis
 * names the last command in CLIENT LIST. */
static void note_command(struct client *cl, const struct cmd *cmd,
			 size_t argc, const char **argv, const size_t *argl)
{
	int sub = argc > 1 && (!strcmp(cmd->name, "client") ||
			       !strcmp(cmd->name, "pubsub") ||
			       !strcmp(cmd->name, "command") ||
			       !strcmp(cmd->name, "config"));
	int n = snprintf(cl->cmd, sizeof(cl->cmd), "%s%s%.*s", cmd->name,
			 sub ? "|" : "", sub ? (int)argl[1] : 0,
			 sub ? argv[1] : "");

	for (int i = 0; i < n && i < (int)sizeof(cl->cmd); i++)
		if (cl->cmd[i] >= 'A' && cl->cmd[i] <= 'Z')
			cl->cmd[i] = (char)(cl->cmd[i] - 'A' + 'a');
		else if (cl->cmd[i] < '!' || cl->cmd[i] > '~')
			cl->cmd[i] = '?'; /* one token in the line */
}

static void unknown(ac_conn_t *c, size_t argc, const char **argv,
		    const size_t *argl)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
			 "-ERR unknown command '%.*s', with args beginning with: ",
			 (int)(argl[0] > 128 ? 128 : argl[0]), argv[0]);

	for (size_t i = 1; i < argc && n < 400; i++)
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, "'%.*s' ",
			      (int)(argl[i] > 64 ? 64 : argl[i]), argv[i]);
	out(c, msg, (size_t)n);
	out(c, "\r\n", 2);
}

static void run(ac_conn_t *c, struct client *cl, size_t argc,
		const char **argv, const size_t *argl)
{
	const struct cmd *cmd = NULL;

	__atomic_fetch_add(&B.commands, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < ncommands && !cmd; i++)
		if (is(argv[0], argl[0], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		unknown(c, argc, argv, argl);
		return;
	}
	if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
		outf(c, "-ERR wrong number of arguments for '%s' command\r\n",
		     cmd->name);
		return;
	}
	if (session_check(c, cl, cmd->name, argc, argv, argl))
		return;
	if (nsubs(cl) && client_resp(cl) == 2 && !cmd->subscribed) {
		/* Redis names a subcommand in full: 'client|info'. */
		char sub[33] = "";

		if (argc > 1 && command_container(cmd->name) &&
		    argl[1] < sizeof(sub))
			for (size_t i = 0; i < argl[1]; i++)
				sub[i] = (char)((argv[1][i] >= 'A' &&
						 argv[1][i] <= 'Z')
							? argv[1][i] - 'A' + 'a'
							: argv[1][i]);
		outf(c, "-ERR Can't execute '%s%s%s': only (P|S)SUBSCRIBE / "
			"(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
			"this context\r\n",
		     cmd->name, *sub ? "|" : "", sub);
		return;
	}
	if (!cl && cmd->state && !(cl = client_new(c)))
		return; /* closing: out of memory */
	if (cl)
		note_command(cl, cmd, argc, argv, argl);
	cmd->fn(c, cl, argc, argv, argl);
}

/* The command, then CLIENT REPLY SKIP's bookkeeping (session.c). */
void execute(ac_conn_t *c, struct client *cl, size_t argc, const char **argv,
	     const size_t *argl)
{
	run(c, cl, argc, argv, argl);
	session_after(client_of(c));
}
