/*
 * commands.c: actorconn-broker's commands. One table names each command,
 * its arity, whether a subscribed client may send it and whether it needs
 * the client's state; execute() checks a command against it and runs it.
 * Replies follow Redis 7 in RESP2, error texts included, so that redis-cli
 * and redis-benchmark work unchanged.
 */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

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
	if (argc > 2) { /* Redis checks this itself: the arity is -1 */
		outs(c, "-ERR wrong number of arguments for 'ping' command\r\n");
		return;
	}
	if (nsubs(cl)) { /* subscribed mode answers with a push */
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

static void cmd_reset(ARGS)
{
	unsubscribe_all(c, cl, 0, 1);
	unsubscribe_all(c, cl, 1, 1);
	ac_conn_set_label(c, NULL);
	out(c, "+RESET\r\n", 8);
}

/* The name is the connection's label: CLIENT LIST reads it on c's loop.
 * Redis' rule for the characters; the library's for the length. */
static int set_name(ac_conn_t *c, const char *p, size_t n)
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

static void cmd_hello(ARGS)
{
	size_t i = 2;

	if (argc > 1 && !(is(argv[1], argl[1], "2"))) {
		outs(c, is(argv[1], argl[1], "3")
				? "-NOPROTO sorry, this protocol version is not "
				  "supported.\r\n"
				: "-ERR Protocol version is not an integer or out "
				  "of range\r\n");
		return;
	}
	for (; i < argc; i++) {
		if (is(argv[i], argl[i], "SETNAME") && i + 1 < argc) {
			if (set_name(c, argv[i + 1], argl[i + 1]))
				return;
			i++;
		} else if (is(argv[i], argl[i], "AUTH") && i + 2 < argc) {
			i += 2; /* no users to check: accepted */
		} else {
			outf(c, "-ERR Syntax error in HELLO option '%.*s'\r\n",
			     (int)(argl[i] > 64 ? 64 : argl[i]), argv[i]);
			return;
		}
	}
	out(c, "*14\r\n", 5);
	bulk_str(c, "server");
	bulk_str(c, "redis");
	bulk_str(c, "version");
	bulk_str(c, VERSION);
	bulk_str(c, "proto");
	out(c, ":2\r\n", 4);
	bulk_str(c, "id");
	outf(c, ":%llu\r\n", (unsigned long long)client_id(ac_conn_handle(c)));
	bulk_str(c, "mode");
	bulk_str(c, "standalone");
	bulk_str(c, "role");
	bulk_str(c, "master");
	bulk_str(c, "modules");
	out(c, "*0\r\n", 4);
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
			out(c, "$-1\r\n", 5);
	} else if (is(argv[1], argl[1], "ID") && argc == 2) {
		outf(c, ":%llu\r\n",
		     (unsigned long long)client_id(ac_conn_handle(c)));
	} else if (is(argv[1], argl[1], "LIST")) {
		client_list(c, argc, argv, argl);
	} else if (is(argv[1], argl[1], "KILL")) {
		client_kill(c, argc, argv, argl);
	} else if (is(argv[1], argl[1], "INFO") && argc == 2) {
		client_info(c);
	} else {
		unknown_subcommand(c, "CLIENT", argv[1], argl[1]);
	}
}

static void cmd_command(ARGS);

static void cmd_info(ARGS)
{
	ac_stats_t st;
	char info[3072];
	size_t nchan, npat;
	int n;

	ac_stats(B.rt, &st, NULL, 0);
	nchan = channel_count();
	npat = pattern_count();
	n = snprintf(info, sizeof(info),
		     "# Server\r\nredis_version:%s\r\nactorconn_version:%d.%d.%d\r\n"
		     "redis_mode:standalone\r\nprocess_id:%d\r\ntcp_port:%d\r\n"
		     "uptime_in_seconds:%llu\r\nevent_loops:%d\r\n\r\n"
		     "# Clients\r\nconnected_clients:%llu\r\n\r\n"
		     "# Memory\r\nused_memory:%llu\r\n\r\n"
		     "# Stats\r\ntotal_connections_received:%llu\r\n"
		     "total_commands_processed:%llu\r\n"
		     "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
		     "rejected_connections:%llu\r\npubsub_channels:%zu\r\n"
		     "pubsub_patterns:%zu\r\nmailbox_messages:%llu\r\n"
		     "mailbox_overflowed:%llu\r\nmessages_dropped:%llu\r\n"
		     "slow_consumers_closed:%llu\r\nidle_clients_closed:%llu\r\n"
		     "\r\n# Upstream\r\nupstream_forwarded:%llu\r\n"
		     "upstream_failed:%llu\r\nupstream_pool_idle:%llu\r\n"
		     "upstream_pool_busy:%llu\r\nupstream_connects:%llu\r\n",
		     VERSION, AC_VERSION_MAJOR, AC_VERSION_MINOR, AC_VERSION_PATCH,
		     (int)getpid(), B.port,
		     (unsigned long long)((now_ms() - B.started_ms) / 1000),
		     ac_runtime_loops(B.rt), (unsigned long long)st.conns_open,
		     (unsigned long long)st.heap_bytes,
		     (unsigned long long)st.accepted,
		     (unsigned long long)__atomic_load_n(&B.commands,
							 __ATOMIC_RELAXED),
		     (unsigned long long)st.bytes_in,
		     (unsigned long long)st.bytes_out,
		     (unsigned long long)st.rejected, nchan, npat,
		     (unsigned long long)st.mailbox_received,
		     (unsigned long long)st.mailbox_overflowed,
		     (unsigned long long)st.dropped,
		     (unsigned long long)st.closed[AC_CR_SLOW],
		     (unsigned long long)st.closed[AC_CR_TIMEOUT],
		     (unsigned long long)__atomic_load_n(&B.fwd_ok,
							 __ATOMIC_RELAXED),
		     (unsigned long long)__atomic_load_n(&B.fwd_failed,
							 __ATOMIC_RELAXED),
		     (unsigned long long)st.pool_idle,
		     (unsigned long long)st.pool_busy,
		     (unsigned long long)st.pool_connects);
	bulk(c, info, (size_t)(n < (int)sizeof(info) ? n : (int)sizeof(info) - 1));
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
	{"client", -2, 0, cmd_client, 1},
	{"command", -1, 0, cmd_command, 0},
	{"config", -2, 0, cmd_config, 0},
	{"info", -1, 0, cmd_info, 0},
};
static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

/* A minimal valid COMMAND reply: the names and arities redis-cli reads. */
static void cmd_command(ARGS)
{
	if (argc == 1) {
		outf(c, "*%zu\r\n", ncommands);
		for (size_t i = 0; i < ncommands; i++) {
			/* name, arity, flags, first key, last key, step */
			out(c, "*6\r\n", 4);
			bulk_str(c, commands[i].name);
			outf(c, ":%d\r\n*0\r\n:0\r\n:0\r\n:0\r\n",
			     commands[i].arity);
		}
	} else if (is(argv[1], argl[1], "COUNT")) {
		outf(c, ":%zu\r\n", ncommands);
	} else if (is(argv[1], argl[1], "DOCS") || is(argv[1], argl[1], "INFO")) {
		out(c, "*0\r\n", 4); /* no docs: an empty map in RESP2 */
	} else {
		unknown_subcommand(c, "COMMAND", argv[1], argl[1]);
	}
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

void execute(ac_conn_t *c, struct client *cl, size_t argc, const char **argv,
	     const size_t *argl)
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
	if (nsubs(cl) && !cmd->subscribed) {
		outf(c, "-ERR Can't execute '%s': only (P|S)SUBSCRIBE / "
			"(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
			"this context\r\n",
		     cmd->name);
		return;
	}
	if (!cl && cmd->state && !(cl = client_new(c)))
		return; /* closing: out of memory */
	if (cl)
		note_command(cl, cmd, argc, argv, argl);
	cmd->fn(c, cl, argc, argv, argl);
}

