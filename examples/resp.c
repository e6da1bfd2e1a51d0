/* resp.c: see resp.h. The rules and the error texts are those of Redis
 * 7.0, so that clients see what they would see from Redis; each place
 * where Redis does something unexpected says so. */
#include "resp.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int fail(struct resp_state *st, const char *msg)
{
	st->err = msg;
	return RESP_ERR;
}

static int more(struct resp_state *st, size_t need)
{
	st->need = need;
	return RESP_MORE;
}

/*
 * Where ch first occurs in p[0, n), or -1. Redis looks for line ends
 * with strchr on its NUL-terminated query buffer, so a NUL byte before
 * the end hides it: Redis then waits for more, up to its 64 KiB limit.
 * So does this.
 */
static long find(const char *p, size_t n, char ch)
{
	const char *e = memchr(p, ch, n);

	if (!e || memchr(p, 0, (size_t)(e - p)))
		return -1;
	return (long)(e - p);
}

/*
 * A decimal number as Redis's string2ll reads one: an optional "-", no
 * "+", no leading zero but in "0" itself, at most 20 characters, within
 * a long long. 0 if p[0, n) is not one.
 */
static int number(const char *p, size_t n, long long *out)
{
	unsigned long long v = 0;
	size_t i = 0;
	int neg = 0;

	if (n == 0 || n > 20)
		return 0;
	if (n == 1 && p[0] == '0') {
		*out = 0;
		return 1;
	}
	if (p[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n || p[i] < '1' || p[i] > '9')
		return 0;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > (unsigned long long)INT64_MAX + (unsigned)neg)
		return 0;
	*out = neg ? (long long)(0 - v) : (long long)v;
	return 1;
}

/* ---- inline commands -------------------------------------------------------- */

static int is_space(char c) /* isspace in the C locale */
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One argument being read: where it is in the line while it has no
 * quotes, in cmd->text from the first quote on. */
struct word {
	size_t start, tstart, tlen;
	int copied;
};

static void put(struct resp_cmd *cmd, struct word *w, char ch)
{
	if (cmd && w->tstart + w->tlen < cmd->textcap)
		cmd->text[w->tstart + w->tlen] = ch;
	w->tlen++;
}

/*
 * Splits line[0, n) into arguments as sdssplitargs does: spaces between
 * them; an unquoted argument ends at a space, tab, CR or LF (not at a
 * vertical tab or form feed, which only separate); quotes may start
 * anywhere in an argument. In double quotes \xHH is a byte and \n \r \t
 * \b \a are control characters, any other \c is c; in single quotes
 * only \' is special. A closing quote must be followed by a space or the
 * end. The line holds no NUL (find stops there).
 */
static int split(const char *line, size_t n, struct resp_cmd *cmd,
		 struct resp_state *st)
{
	size_t i = 0, argc = 0, used = 0;

	for (;;) {
		struct word w = {0, used, 0, 0};
		char q = 0;

		while (i < n && is_space(line[i]))
			i++;
		if (i == n)
			break;
		w.start = i;
		for (;;) {
			char ch = i < n ? line[i] : 0;

			if (!q) {
				if (!ch || ch == ' ' || ch == '\t' ||
				    ch == '\r' || ch == '\n')
					break;
				if (ch == '"' || ch == '\'') {
					if (!w.copied) { /* to text from here */
						for (size_t k = w.start; k < i; k++)
							put(cmd, &w, line[k]);
						w.copied = 1;
					}
					q = ch;
				} else if (w.copied) {
					put(cmd, &w, ch);
				}
				i++;
				continue;
			}
			if (!ch)
				return fail(st, "Protocol error: unbalanced "
						"quotes in request");
			if (ch == q) { /* closing: a space or the end next */
				i++;
				if (i < n && !is_space(line[i]))
					return fail(st, "Protocol error: "
							"unbalanced quotes in "
							"request");
				break;
			}
			if (q == '\'') {
				if (ch == '\\' && i + 1 < n &&
				    line[i + 1] == '\'') {
					put(cmd, &w, '\'');
					i += 2;
				} else {
					put(cmd, &w, ch);
					i++;
				}
				continue;
			}
			if (ch == '\\' && i + 3 < n && line[i + 1] == 'x' &&
			    hex(line[i + 2]) >= 0 && hex(line[i + 3]) >= 0) {
				put(cmd, &w, (char)(hex(line[i + 2]) * 16 +
						    hex(line[i + 3])));
				i += 4;
			} else if (ch == '\\' && i + 1 < n) {
				char e = line[i + 1];

				put(cmd, &w, e == 'n'   ? '\n'
					     : e == 'r' ? '\r'
					     : e == 't' ? '\t'
					     : e == 'b' ? '\b'
					     : e == 'a' ? '\a'
							: e);
				i += 2;
			} else {
				put(cmd, &w, ch);
				i++;
			}
		}
		if (cmd && argc < cmd->cap) {
			if (w.copied) {
				cmd->argv[argc] = cmd->text + w.tstart;
				cmd->argl[argc] = w.tlen;
			} else {
				cmd->argv[argc] = line + w.start;
				cmd->argl[argc] = i - w.start;
			}
		}
		if (w.copied)
			used += w.tlen;
		argc++;
	}
	if (cmd)
		cmd->argc = argc;
	return RESP_OK;
}

/* A line up to "\n" ("\r\n" too), split into arguments. Redis has no
 * limit on their number; the line's length bounds it. */
static int parse_inline(const char *buf, size_t len,
			const struct resp_limits *lim, struct resp_cmd *cmd,
			struct resp_state *st)
{
	size_t scan = len < lim->max_inline + 1 ? len : lim->max_inline + 1;
	long nl = find(buf, scan, '\n');
	size_t end;

	if (nl < 0)
		return len > lim->max_inline
			       ? fail(st, "Protocol error: too big inline "
					  "request")
			       : more(st, 0);
	end = (size_t)nl;
	if (end > 0 && buf[end - 1] == '\r')
		end--;
	st->consumed = (size_t)nl + 1;
	return split(buf, end, cmd, st);
}

/* ---- arrays of bulk strings ------------------------------------------------- */

/*
 * The header line at buf[pos, len): Redis looks for its "\r" (stopping
 * at a NUL), then needs one more byte, which it skips unseen. 1 and *cr
 * (the offset of "\r" from pos) when both are there, RESP_MORE when not
 * yet, RESP_ERR with tobig when the line is already over max_inline.
 */
static int header(const char *buf, size_t len, size_t pos,
		  const struct resp_limits *lim, const char *tobig,
		  struct resp_state *st, size_t *cr)
{
	size_t rest = len - pos;
	long r = find(buf + pos, rest < lim->max_inline + 1
					 ? rest
					 : lim->max_inline + 1,
		      '\r');

	if (r < 0)
		return rest > lim->max_inline ? fail(st, tobig) : more(st, 0);
	if ((size_t)r + 2 > rest)
		return more(st, pos + (size_t)r + 2);
	*cr = (size_t)r;
	return 1;
}

/* The decoder's note: how far the elements have been checked, packed
 * as the position of the next one and its index. */
static size_t note(size_t pos, long long a)
{
	if (sizeof(size_t) < 8 || pos >> 32)
		return 0; /* no room: the next call starts over */
	return (size_t)a << 32 | pos;
}

static int parse_multibulk(const char *buf, size_t len,
			   const struct resp_limits *lim,
			   struct resp_cmd *cmd, struct resp_state *st)
{
	long long count, a = 0;
	size_t cr, pos;
	int r;

	r = header(buf, len, 0, lim,
		   "Protocol error: too big mbulk count string", st, &cr);
	if (r != 1)
		return r;
	if (!number(buf + 1, cr - 1, &count) ||
	    (count > 0 && (unsigned long long)count > lim->max_args))
		return fail(st, lim->unauth ? "Protocol error: unauthenticated "
					      "multibulk length"
					    : "Protocol error: invalid "
					      "multibulk length");
	pos = cr + 2;
	if (count <= 0) { /* skipped, as Redis does */
		if (cmd)
			cmd->argc = 0;
		st->consumed = pos;
		return RESP_OK;
	}
	if (!cmd && st->resume) {
		size_t rpos = st->resume & 0xffffffffu;
		long long ra = (long long)(st->resume >> 32);

		if (rpos >= pos && rpos <= len && ra < count) {
			pos = rpos;
			a = ra;
		}
	}
	st->resume = 0;
	for (; a < count; a++) {
		long long blen;
		size_t data;

		r = header(buf, len, pos, lim,
			   "Protocol error: too big bulk count string", st,
			   &cr);
		if (r == RESP_MORE)
			st->resume = note(pos, a);
		if (r != 1)
			return r;
		if (buf[pos] != '$') {
			/* Redis formats the byte with %c, then turns CR and
			 * LF into spaces (a NUL cannot be here: find). */
			char ch = buf[pos] == '\r' || buf[pos] == '\n'
					  ? ' '
					  : buf[pos];

			snprintf(st->errbuf, sizeof(st->errbuf),
				 "Protocol error: expected '$', got '%c'", ch);
			return fail(st, st->errbuf);
		}
		if (!number(buf + pos + 1, cr - 1, &blen) || blen < 0 ||
		    (unsigned long long)blen > lim->max_bulk)
			return fail(st, lim->unauth ? "Protocol error: "
						      "unauthenticated bulk "
						      "length"
						    : "Protocol error: invalid "
						      "bulk length");
		data = pos + cr + 2;
		/* The two bytes after the data are skipped unseen, as
		 * Redis skips them: they need not be "\r\n". */
		if (len - data < (size_t)blen + 2) {
			st->resume = note(pos, a);
			return more(st, data + (size_t)blen + 2);
		}
		if (cmd && (size_t)a < cmd->cap) {
			cmd->argv[a] = buf + data;
			cmd->argl[a] = (size_t)blen;
		}
		pos = data + (size_t)blen + 2;
	}
	if (cmd)
		cmd->argc = (size_t)count;
	st->consumed = pos;
	return RESP_OK;
}

int resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
	       struct resp_cmd *cmd, struct resp_state *st)
{
	st->need = 0;
	st->consumed = 0;
	st->err = NULL;
	if (len == 0) {
		st->resume = 0;
		return RESP_MORE;
	}
	if (buf[0] != '*') {
		st->resume = 0;
		return parse_inline(buf, len, lim, cmd, st);
	}
	return parse_multibulk(buf, len, lim, cmd, st);
}

/* ---- glob matching ---------------------------------------------------------- */

/*
 * One pattern element at p[0, plen), not a star, against byte c: whether
 * it matches, and in *step how many pattern bytes it spans. These are
 * Redis's rules, read from stringmatchlen: in a set, "\c" is c, "]"
 * closes, "x-y" is a range wherever a "-" follows (so "a-]" ranges up to
 * "]" and leaves the set open), and a set left open takes the rest of
 * the pattern, matching one byte as a set would.
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
		for (;;) {
			if (plen - i >= 2 && p[i] == '\\') {
				match |= p[i + 1] == c;
				i += 2;
			} else if (i < plen && p[i] == ']') {
				i++;
				break;
			} else if (i >= plen) {
				break; /* open: the rest is the set's */
			} else if (plen - i >= 3 && p[i + 1] == '-') {
				/* signed chars, as Redis compares them */
				int lo = (signed char)p[i], hi = (signed char)p[i + 2];
				int x = (signed char)c;

				if (lo > hi) {
					int t = lo;
					lo = hi;
					hi = t;
				}
				match |= x >= lo && x <= hi;
				i += 3;
			} else {
				match |= p[i] == c;
				i++;
			}
		}
		*step = i;
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
 * ran for hours, a denial of service through PSUBSCRIBE.) Every element
 * but a star takes exactly one byte, which is what makes this right.
 */
int resp_glob(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star_p = 0, star_s = 0;
	int star = 0;

	/* Redis's loop runs only while both have bytes left: an empty
	 * string matches the empty pattern alone, not "*". */
	if (slen == 0)
		return plen == 0;
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
