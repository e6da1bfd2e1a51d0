/*
 * fuzz_resp.c: libFuzzer harness for the broker's RESP2 request parser,
 * resp_parse (examples/resp.c).
 *
 * Input: bytes 0-2 pick the limits (small ones often, so that every limit
 * is met), byte 3 a cut point; the rest is the stream. Each call gets an
 * exactly sized heap copy, so ASan catches a read past the input. Checked:
 *
 *   - the result is RESP_OK, RESP_MORE or RESP_ERR; an error is one of
 *     the Redis protocol messages;
 *   - a command lies inside the bytes it consumed (1 <= consumed <= len),
 *     has at most max_args arguments, none of them longer than the limit
 *     that applies; parsing with cmd == NULL gives the same answer;
 *   - "more" gives need == 0 or need > len;
 *   - the answer depends only on the bytes seen, so a prefix of the input
 *     never contradicts the whole: before a command's last byte it is
 *     "more", from there on the same command; an error stays the same
 *     error as bytes are added; a prefix shorter than a "need" it gave is
 *     still "more" with all the bytes;
 *   - the stream cut into two reads at the cut point, parsed as the
 *     broker does (keep the tail, honour need), gives the same commands,
 *     the same error and the same undecoded tail as the whole stream at
 *     once (fuzz.h's split-reads driver).
 */
#include "../../examples/resp.h"
#include "fuzz.h"

#define MAX_ARGS 64

static const char *const messages[] = {
	"Protocol error: too big inline request",
	"Protocol error: unbalanced quotes in request",
	"Protocol error: invalid multibulk length",
	"Protocol error: too big mbulk count string",
	"Protocol error: too big bulk count string",
	"Protocol error: expected '$'",
	"Protocol error: invalid bulk length",
};

struct parsed {
	int r;
	size_t consumed, need, argc;
	const char *err;
	size_t off[MAX_ARGS], len[MAX_ARGS]; /* argument i: buf[off, off+len) */
};

static bool known_message(const char *err)
{
	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++)
		if (err == messages[i] || strcmp(err, messages[i]) == 0)
			return true;
	return false;
}

/* One resp_parse call on an exactly sized copy of p[0, n), checked. */
static void parse(const char *p, size_t n, const struct resp_limits *lim,
		  struct parsed *out)
{
	char *copy = fuzz_copy(p, n);
	const char *argv[MAX_ARGS];
	size_t argl[MAX_ARGS];
	struct resp_cmd cmd = {0, argv, argl};
	size_t consumed2 = 0, need2 = 0;
	const char *err2 = NULL;
	int r2;

	memset(out, 0, sizeof(*out));
	out->r = resp_parse(copy, n, lim, &cmd, &out->consumed, &out->need,
			    &out->err);
	FUZZ_CHECK(out->r == RESP_OK || out->r == RESP_MORE ||
		   out->r == RESP_ERR);
	switch (out->r) {
	case RESP_OK:
		FUZZ_CHECK(out->consumed >= 1 && out->consumed <= n);
		FUZZ_CHECK(cmd.argc <= lim->max_args);
		out->argc = cmd.argc;
		for (size_t i = 0; i < cmd.argc; i++) {
			FUZZ_CHECK(argv[i] >= copy);
			out->off[i] = (size_t)(argv[i] - copy);
			out->len[i] = argl[i];
			FUZZ_CHECK(out->off[i] <= out->consumed &&
				   argl[i] <= out->consumed - out->off[i]);
			/* Inline arguments are bounded by the line, bulk
			 * ones by max_bulk. */
			FUZZ_CHECK(copy[0] == '*' ? argl[i] <= lim->max_bulk
						  : argl[i] <= lim->max_inline);
		}
		break;
	case RESP_MORE:
		FUZZ_CHECK(out->need == 0 || out->need > n);
		break;
	default:
		FUZZ_CHECK(out->err != NULL && known_message(out->err));
	}
	/* Validating only (cmd == NULL) agrees. */
	r2 = resp_parse(copy, n, lim, NULL, &consumed2, &need2, &err2);
	FUZZ_CHECK(r2 == out->r);
	if (r2 == RESP_OK)
		FUZZ_CHECK(consumed2 == out->consumed);
	if (r2 == RESP_MORE)
		FUZZ_CHECK(need2 == out->need);
	if (r2 == RESP_ERR)
		FUZZ_CHECK(strcmp(err2, out->err) == 0);
	free(copy);
}

static bool same_command(const struct parsed *a, const struct parsed *b)
{
	if (a->consumed != b->consumed || a->argc != b->argc)
		return false;
	for (size_t i = 0; i < a->argc; i++)
		if (a->off[i] != b->off[i] || a->len[i] != b->len[i])
			return false;
	return true;
}

/* A prefix of length k must not contradict the answer for all n bytes. */
static void check_prefix(const char *p, size_t n, size_t k,
			 const struct resp_limits *lim,
			 const struct parsed *whole)
{
	struct parsed pre;

	parse(p, k, lim, &pre);
	switch (whole->r) {
	case RESP_OK:
		if (k < whole->consumed)
			FUZZ_CHECK(pre.r == RESP_MORE);
		else
			FUZZ_CHECK(pre.r == RESP_OK && same_command(&pre, whole));
		break;
	case RESP_MORE:
		FUZZ_CHECK(pre.r == RESP_MORE);
		break;
	default:
		FUZZ_CHECK(pre.r != RESP_OK);
		if (pre.r == RESP_ERR)
			FUZZ_CHECK(strcmp(pre.err, whole->err) == 0);
	}
	/* need: nothing shorter than it can get further. */
	if (pre.r == RESP_MORE && pre.need > 0 && n < pre.need)
		FUZZ_CHECK(whole->r == RESP_MORE);
}

/* The driver's step: one checked parse; a command is an item, written
 * as its argc, then each argument's length and bytes. */
static int parse_step(const unsigned char *buf, size_t have, void *arg,
		      struct fuzz_run *run, size_t *consumed, size_t *need)
{
	struct parsed c;

	parse((const char *)buf, have, arg, &c);
	if (c.r == RESP_ERR) {
		run->err = c.err;
		return -1;
	}
	if (c.r == RESP_MORE) {
		*need = c.need;
		return 0;
	}
	fuzz_put(run, &c.argc, sizeof(c.argc));
	for (size_t i = 0; i < c.argc; i++) {
		fuzz_put(run, &c.len[i], sizeof(c.len[i]));
		fuzz_put(run, buf + c.off[i], c.len[i]);
	}
	fuzz_end_item(run);
	*consumed = c.consumed;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct resp_limits lim;
	struct parsed whole;
	struct fuzz_run a, b;
	const char *p;
	size_t n, cut;

	if (size < 4)
		return 0;
	/* 0: the broker's own limits; else small ones. */
	lim.max_inline = data[0] ? data[0] : (size_t)64 << 10;
	lim.max_args = data[1] ? 1 + data[1] % MAX_ARGS : MAX_ARGS;
	lim.max_bulk = data[2] != 255 ? data[2] : (size_t)512 << 20;
	p = (const char *)data + 4;
	n = size - 4;
	cut = fuzz_cut(data[3], n);

	parse(p, n, &lim, &whole);
	check_prefix(p, n, cut, &lim, &whole);
	if (whole.r == RESP_OK && whole.consumed > 0)
		check_prefix(p, n, whole.consumed - 1, &lim, &whole);

	fuzz_split(data + 4, n, cut, parse_step, &lim, &a, &b);
	fuzz_same(&a, &b);
	fuzz_run_free(&a);
	fuzz_run_free(&b);
	return 0;
}
