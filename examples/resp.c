/* resp.c: see resp.h. The error texts are Redis 7's, so that clients see
 * what they would see from Redis. */
#include "resp.h"

#include <string.h>

/* Finds "\r\n" (or a lone "\n", as Redis accepts for inline commands)
 * within the first `limit` bytes. Returns the line length or -1. */
static long line_end(const char *p, size_t n, size_t limit)
{
	const char *nl = memchr(p, '\n', n < limit ? n : limit);
	return nl ? (long)(nl - p) : -1;
}

/* Parses a decimal integer in p[0, n): optional '-', digits only. */
static int parse_ll(const char *p, size_t n, long long *out)
{
	long long v = 0;
	size_t i = 0;
	int neg = 0;

	if (n == 0)
		return -1;
	if (p[0] == '-') {
		neg = 1;
		i = 1;
		if (n == 1)
			return -1;
	}
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || v > (1LL << 53))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

static int fail(const char **err, const char *msg)
{
	*err = msg;
	return RESP_ERR;
}

static int parse_inline(const char *buf, size_t len,
			const struct resp_limits *lim, struct resp_cmd *cmd,
			size_t *consumed, size_t *need, const char **err)
{
	long n = line_end(buf, len, lim->max_inline + 1);
	size_t end, i = 0, argc = 0;

	if (n < 0) {
		if (len > lim->max_inline)
			return fail(err, "Protocol error: too big inline request");
		*need = 0;
		return RESP_MORE;
	}
	*consumed = (size_t)n + 1;
	end = (size_t)n;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	while (i < end) {
		size_t start;
		char q = 0;

		while (i < end && (buf[i] == ' ' || buf[i] == '\t'))
			i++;
		if (i == end)
			break;
		if (buf[i] == '"' || buf[i] == '\'') {
			q = buf[i++];
			start = i;
			while (i < end && buf[i] != q)
				i++;
			if (i == end)
				return fail(err, "Protocol error: unbalanced "
						 "quotes in request");
		} else {
			start = i;
			while (i < end && buf[i] != ' ' && buf[i] != '\t')
				i++;
		}
		if (argc == lim->max_args)
			return fail(err, "Protocol error: invalid multibulk length");
		if (cmd) {
			cmd->argv[argc] = buf + start;
			cmd->argl[argc] = i - start;
		}
		argc++;
		if (q)
			i++; /* the closing quote */
	}
	if (cmd)
		cmd->argc = argc;
	return RESP_OK;
}

int resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
	       struct resp_cmd *cmd, size_t *consumed, size_t *need,
	       const char **err)
{
	long long count;
	size_t pos;
	long n;

	*need = 0;
	if (len == 0)
		return RESP_MORE;
	if (buf[0] != '*')
		return parse_inline(buf, len, lim, cmd, consumed, need, err);

	n = line_end(buf, len, lim->max_inline + 1);
	if (n < 0)
		return len > lim->max_inline
			       ? fail(err, "Protocol error: too big mbulk "
					   "count string")
			       : RESP_MORE;
	if (n < 2 || buf[n - 1] != '\r' ||
	    parse_ll(buf + 1, (size_t)n - 2, &count) ||
	    count > (long long)lim->max_args)
		return fail(err, "Protocol error: invalid multibulk length");
	pos = (size_t)n + 1;
	if (count <= 0) { /* Redis skips empty multibulk requests */
		if (cmd)
			cmd->argc = 0;
		*consumed = pos;
		return RESP_OK;
	}
	for (long long a = 0; a < count; a++) {
		long long blen;

		if (pos >= len)
			return RESP_MORE;
		/* The first byte settles "expected '$'" before the length
		 * limit is looked at, so that the error never depends on how
		 * much of the line has arrived. */
		if (buf[pos] != '$')
			return fail(err, "Protocol error: expected '$'");
		n = line_end(buf + pos, len - pos, lim->max_inline + 1);
		if (n < 0) {
			if (len - pos > lim->max_inline)
				return fail(err, "Protocol error: too big bulk "
						 "count string");
			return RESP_MORE;
		}
		if (n < 2 || buf[pos + (size_t)n - 1] != '\r' ||
		    parse_ll(buf + pos + 1, (size_t)n - 2, &blen) || blen < 0 ||
		    (unsigned long long)blen > lim->max_bulk)
			return fail(err, "Protocol error: invalid bulk length");
		pos += (size_t)n + 1;
		if (len - pos < (size_t)blen + 2) {
			*need = pos + (size_t)blen + 2;
			return RESP_MORE;
		}
		if (buf[pos + (size_t)blen] != '\r' ||
		    buf[pos + (size_t)blen + 1] != '\n')
			return fail(err, "Protocol error: invalid bulk length");
		if (cmd) {
			cmd->argv[a] = buf + pos;
			cmd->argl[a] = (size_t)blen;
		}
		pos += (size_t)blen + 2;
	}
	if (cmd)
		cmd->argc = (size_t)count;
	*consumed = pos;
	return RESP_OK;
}

/*
 * One pattern element at p[0, plen) that is not a star, against byte c:
 * whether it matches, and in *step how many pattern bytes it spans. A set
 * with no closing "]" spans the rest and matches nothing.
 */
static int glob_one(const char *p, size_t plen, char c, size_t *step)
{
	switch (*p) {
	case '?':
		*step = 1;
		return 1;
	case '[': {
		size_t i = 1;
		int neg = 0, match = 0;

		if (i < plen && p[i] == '^') {
			neg = 1;
			i++;
		}
		while (i < plen && p[i] != ']') {
			if (p[i] == '\\' && plen - i >= 2) {
				match |= p[i + 1] == c;
				i += 2;
			} else if (plen - i >= 3 && p[i + 1] == '-' &&
				   p[i + 2] != ']') {
				char lo = p[i], hi = p[i + 2];
				if (lo > hi) {
					char t = lo;
					lo = hi;
					hi = t;
				}
				match |= c >= lo && c <= hi;
				i += 3;
			} else {
				match |= p[i] == c;
				i++;
			}
		}
		if (i >= plen) { /* unterminated [set]: no match */
			*step = plen;
			return 0;
		}
		*step = i + 1;
		return match != neg;
	}
	case '\\':
		if (plen >= 2) {
			*step = 2;
			return p[1] == c;
		}
		/* a lone trailing backslash is itself */
		/* fall through */
	default:
		*step = 1;
		return *p == c;
	}
}

/*
 * Iterative, with one backtracking point: the last star seen. When the
 * rest fails, that star takes one more byte and the rest is tried again;
 * an earlier star never needs to be revisited, because whatever it could
 * take, the later star can take too. So a match costs at most
 * O(plen x slen) steps. (The recursive form tried every split for every
 * star: a pattern like "*a*a*a*a*a*a*a*a*a*a*a*a*b" against sixty "a"s
 * ran for hours, a denial of service through PSUBSCRIBE.)
 */
int resp_glob(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star_p = 0, star_s = 0;
	int star = 0;

	while (si < slen) {
		size_t step;

		if (pi < plen && p[pi] == '*') {
			while (pi < plen && p[pi] == '*')
				pi++;
			if (pi == plen)
				return 1; /* a trailing star takes the rest */
			star = 1;
			star_p = pi;
			star_s = si;
			continue;
		}
		if (pi < plen && glob_one(p + pi, plen - pi, s[si], &step)) {
			pi += step;
			si++;
			continue;
		}
		if (!star)
			return 0;
		pi = star_p;
		si = ++star_s;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}
