/*
 * commands.c: actorconn-broker's commands. One table names each command,
 * its arity, whether a subscribed client may send it and whether it needs
 * the client's state; execute() checks a command against it, against
 * Redis' table of subcommands and against the client's user (session.c),
 * and runs it, or queues it inside MULTI (multi.c). Replies follow Redis
 * 7, error texts included, so that redis-cli and redis-benchmark work
 * unchanged; the connection commands are in session.c, COMMAND and INFO
 * in introspect.c.
 */
#include "broker.h"

#include <ctype.h>
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

#define ARGS CMD_ARGS

static void cmd_ping(ARGS)
{
	if (argc > 2) { /* Redis checks this itself: the arity is -1 */
		outs(c, "-ERR wrong number of arguments for 'ping' command\r\n");
		return;
	}
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
		subscribe(c, cl, CHANNEL, argv[i], argl[i]);
}

static void cmd_psubscribe(ARGS)
{
	for (size_t i = 1; i < argc; i++)
		subscribe(c, cl, PATTERN, argv[i], argl[i]);
}

/* On one node every shard channel is served here: Redis checks that the
 * channels of one SSUBSCRIBE hash to one slot only in cluster mode. */
static void cmd_ssubscribe(ARGS)
{
	/* As Redis 7.0: inside EXEC (a "deny blocking" context there),
	 * SSUBSCRIBE is refused where SUBSCRIBE is let through. */
	if (in_exec(cl)) {
		outs(c, "-ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING "
			"client\r\n");
		return;
	}
	for (size_t i = 1; i < argc; i++)
		subscribe(c, cl, SHARD, argv[i], argl[i]);
}

static void unsubscribe_cmd(ARGS, int kind)
{
	if (argc == 1)
		unsubscribe_all(c, cl, kind, 0);
	for (size_t i = 1; i < argc; i++)
		unsubscribe(c, cl, kind, argv[i], argl[i], 0);
}

static void cmd_unsubscribe(ARGS)
{
	unsubscribe_cmd(c, cl, argc, argv, argl, CHANNEL);
}

static void cmd_punsubscribe(ARGS)
{
	unsubscribe_cmd(c, cl, argc, argv, argl, PATTERN);
}

static void cmd_sunsubscribe(ARGS)
{
	unsubscribe_cmd(c, cl, argc, argv, argl, SHARD);
}

/* The reply counts this node's receivers, as a single Redis counts its
 * own: with --cluster the other nodes' are not known here. */
static void cmd_publish(ARGS)
{
	outf(c, ":%ld\r\n", publish(argv[1], argl[1], argv[2], argl[2]));
	if (B.br)
		cluster_publish(argv[1], argl[1], argv[2], argl[2]);
}

/* Not bridged with --cluster: shard channels stay on this node (see
 * pubsub.c's bridge_topic). */
static void cmd_spublish(ARGS)
{
	outf(c, ":%ld\r\n", spublish(argv[1], argl[1], argv[2], argl[2]));
}

/* PUBSUB CHANNELS and SHARDCHANNELS [pattern] */
static void pubsub_channels(ac_conn_t *c, int kind, size_t argc,
			    const char **argv, const size_t *argl)
{
	size_t n;
	struct sub *names = channels_matching(kind, argc == 3 ? argv[2] : NULL,
					      argc == 3 ? argl[2] : 0, &n);

	outf(c, "*%zu\r\n", n);
	for (size_t i = 0; i < n; i++) {
		bulk(c, names[i].name, names[i].len);
		free(names[i].name);
	}
	free(names);
}

/* PUBSUB NUMSUB and SHARDNUMSUB [channel ...] */
static void pubsub_numsub(ac_conn_t *c, int kind, size_t argc,
			  const char **argv, const size_t *argl)
{
	outf(c, "*%zu\r\n", (argc - 2) * 2);
	for (size_t i = 2; i < argc; i++) {
		size_t subs = channel_subscribers(kind, argv[i], argl[i]);

		bulk(c, argv[i], argl[i]);
		outf(c, ":%zu\r\n", subs);
	}
}

static void cmd_pubsub(ARGS)
{
	int chans = is(argv[1], argl[1], "CHANNELS");
	int schans = is(argv[1], argl[1], "SHARDCHANNELS");

	if ((chans || schans) && argc <= 3)
		pubsub_channels(c, chans ? CHANNEL : SHARD, argc, argv, argl);
	else if (chans || schans) /* Redis' words for this one */
		outf(c, "-ERR unknown subcommand or wrong number of arguments "
			"for '%.*s'. Try PUBSUB HELP.\r\n",
		     (int)argl[1], argv[1]);
	else if (is(argv[1], argl[1], "NUMSUB"))
		pubsub_numsub(c, CHANNEL, argc, argv, argl);
	else if (is(argv[1], argl[1], "SHARDNUMSUB"))
		pubsub_numsub(c, SHARD, argc, argv, argl);
	else if (is(argv[1], argl[1], "NUMPAT") && argc == 2)
		outf(c, ":%zu\r\n", pattern_count());
	else
		unknown_subcommand(c, "PUBSUB", argv[1], argl[1]);
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
	{"ssubscribe", -2, 1, cmd_ssubscribe, 1},
	{"sunsubscribe", -1, 1, cmd_sunsubscribe, 1},
	{"spublish", 3, 0, cmd_spublish, 0},
	{"multi", 1, 0, cmd_multi, 1},
	{"exec", 1, 0, cmd_exec, 0},
	{"discard", 1, 0, cmd_discard, 0},
	{"watch", -2, 0, cmd_watch, 0},
	{"unwatch", 1, 0, cmd_unwatch, 0},
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

/*
 * Redis 7.0's subcommands of the commands here that have them, with their
 * arities (from Redis' command table). Redis looks a subcommand up with
 * its command, so that an unknown one, or one with the wrong number of
 * arguments, is refused before it runs, and inside MULTI before it is
 * queued (and EXEC then aborts). A subcommand of Redis that the broker
 * lacks passes here and gets the command's own error when it runs.
 */
struct subcmd {
	const char *cmd, *sub;
	int arity;
};
static const struct subcmd subcommands[] = {
	{"acl", "cat", -2}, {"acl", "deluser", -3}, {"acl", "dryrun", -4},
	{"acl", "genpass", -2}, {"acl", "getuser", 3}, {"acl", "help", 2},
	{"acl", "list", 2}, {"acl", "load", 2}, {"acl", "log", -2},
	{"acl", "save", 2}, {"acl", "setuser", -3}, {"acl", "users", 2},
	{"acl", "whoami", 2},
	{"client", "caching", 3}, {"client", "getname", 2},
	{"client", "getredir", 2}, {"client", "help", 2}, {"client", "id", 2},
	{"client", "info", 2}, {"client", "kill", -3}, {"client", "list", -2},
	{"client", "no-evict", 3}, {"client", "pause", -3},
	{"client", "reply", 3}, {"client", "setname", 3},
	{"client", "tracking", -3}, {"client", "trackinginfo", 2},
	{"client", "unblock", -3}, {"client", "unpause", 2},
	{"command", "count", 2}, {"command", "docs", -2},
	{"command", "getkeys", -4}, {"command", "getkeysandflags", -4},
	{"command", "help", 2}, {"command", "info", -2},
	{"command", "list", -2},
	{"config", "get", -3}, {"config", "help", 2},
	{"config", "resetstat", 2}, {"config", "rewrite", 2},
	{"config", "set", -4},
	{"pubsub", "channels", -2}, {"pubsub", "help", 2},
	{"pubsub", "numpat", 2}, {"pubsub", "numsub", -2},
	{"pubsub", "shardchannels", -2}, {"pubsub", "shardnumsub", -2},
};
static const size_t nsubcommands = sizeof(subcommands) / sizeof(subcommands[0]);

/* Whether cmd is one of the commands of subcommands[]: a short list, so
 * that PUBLISH and the others pay a few byte compares, not a scan. */
static int has_subcommands(const struct cmd *cmd)
{
	static const char *const containers[] = {"acl", "client", "command",
						 "config", "pubsub"};

	for (size_t i = 0; i < sizeof(containers) / sizeof(containers[0]); i++)
		if (!strcmp(containers[i], cmd->name))
			return 1;
	return 0;
}

/* cmd's subcommand argv[1]; NULL if cmd has none, or argc is 1. */
static const struct subcmd *subcommand(const struct cmd *cmd, size_t argc,
				       const char **argv, const size_t *argl)
{
	for (size_t i = 0; argc > 1 && i < nsubcommands; i++)
		if (!strcmp(subcommands[i].cmd, cmd->name) &&
		    is(argv[1], argl[1], subcommands[i].sub))
			return &subcommands[i];
	return NULL;
}

/*
 * A command refused before it runs, with err ("ERR ...", no CRLF). As in
 * Redis, the refusal flags the transaction of a client inside MULTI, and a
 * refused EXEC discards it and says why in an EXECABORT error.
 */
static void reject(ac_conn_t *c, struct client *cl, const struct cmd *cmd,
		   const char *err)
{
	multi_flag(cl);
	if (cmd && cmd->fn == cmd_exec) {
		multi_discard(cl);
		outf(c, "-EXECABORT Transaction discarded because of: %s\r\n",
		     strncmp(err, "ERR ", 4) ? err : err + 4);
	} else {
		outf(c, "-%s\r\n", err);
	}
}

/* Commands that MULTI does not queue: they act on the transaction or the
 * connection at once, as in Redis. */
static int runs_at_once(const struct cmd *cmd)
{
	static const char *const names[] = {"exec",  "discard", "multi",
					    "watch", "quit",    "reset"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(cmd->name, names[i]))
			return 1;
	return 0;
}

void run_command(ac_conn_t *c, struct client *cl, const struct cmd *cmd,
		 size_t argc, const char **argv, const size_t *argl)
{
	/* Inside EXEC: the user may have changed since the command was
	 * queued (an AUTH or HELLO AUTH before it), so its permissions are
	 * checked again, as Redis does. */
	if (in_exec(cl)) {
		const struct subcmd *sub =
			has_subcommands(cmd) ? subcommand(cmd, argc, argv, argl)
					     : NULL;

		if (session_exec_check(c, cl, cmd->name, sub ? sub->sub : NULL,
				       argc, argv, argl))
			return;
	}
	cmd->fn(c, cl, argc, argv, argl);
}

static void run(ac_conn_t *c, struct client *cl, size_t argc,
		const char **argv, const size_t *argl)
{
	const struct cmd *cmd = NULL;
	const struct subcmd *sub = NULL;
	char err[320];

	__atomic_fetch_add(&B.commands, 1, __ATOMIC_RELAXED);
	for (size_t i = 0; i < ncommands && !cmd; i++)
		if (is(argv[0], argl[0], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		multi_flag(cl);
		unknown(c, argc, argv, argl);
		return;
	}
	if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
	    (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
		snprintf(err, sizeof(err),
			 "ERR wrong number of arguments for '%s' command",
			 cmd->name);
		reject(c, cl, cmd, err);
		return;
	}
	if (argc > 1 && has_subcommands(cmd)) {
		if (!(sub = subcommand(cmd, argc, argv, argl))) {
			char name[16];
			size_t k;

			for (k = 0; cmd->name[k] && k < sizeof(name) - 1; k++)
				name[k] = (char)toupper(cmd->name[k]);
			name[k] = 0;
			snprintf(err, sizeof(err),
				 "ERR unknown subcommand '%.*s'. Try %s HELP.",
				 (int)(argl[1] > 128 ? 128 : argl[1]), argv[1],
				 name);
			reject(c, cl, cmd, err);
			return;
		}
		if ((sub->arity > 0 && argc != (size_t)sub->arity) ||
		    (sub->arity < 0 && argc < (size_t)-sub->arity)) {
			snprintf(err, sizeof(err),
				 "ERR wrong number of arguments for '%s|%s' "
				 "command", cmd->name, sub->sub);
			reject(c, cl, cmd, err);
			return;
		}
	}
	if (session_check(cl, cmd->name, sub ? sub->sub : NULL, argc, argv,
			  argl, err, sizeof(err))) {
		reject(c, cl, cmd, err);
		return;
	}
	/* Subscribed mode is RESP2's: in RESP3 every command may run. */
	if (nsubs(cl) && client_resp(cl) == 2 && !cmd->subscribed) {
		snprintf(err, sizeof(err),
			 "ERR Can't execute '%s%s%s': only (P|S)SUBSCRIBE / "
			 "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
			 "this context",
			 cmd->name, sub ? "|" : "", sub ? sub->sub : "");
		reject(c, cl, cmd, err);
		return;
	}
	if (!cl && cmd->state && !(cl = client_new(c)))
		return; /* closing: out of memory */
	if (cl)
		note_command(cl, cmd, argc, argv, argl);
	if (in_multi(cl) && !runs_at_once(cmd))
		multi_queue(c, cl, cmd, argc, argv, argl);
	else
		run_command(c, cl, cmd, argc, argv, argl);
}

/* The command, then CLIENT REPLY SKIP's bookkeeping (session.c). */
void execute(ac_conn_t *c, struct client *cl, size_t argc, const char **argv,
	     const size_t *argl)
{
	run(c, cl, argc, argv, argl);
	session_after(client_of(c));
}
