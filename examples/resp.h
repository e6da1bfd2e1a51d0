/*
 * resp.h: an incremental RESP2 request parser, a pure function of its
 * input (no allocation, no state between calls: what it wants to carry
 * from one call to the next it hands back in resume), so that it can be
 * tested byte by byte and fuzzed. Used by actorconn-broker. It reads
 * requests as Redis 7.0 does (networking.c, processInlineBuffer and
 * processMultibulkBuffer; sds.c, sdssplitargs), quirks included, and
 * gives Redis's error texts.
 */
#ifndef AC_RESP_H
#define AC_RESP_H

#include <stddef.h>

enum { RESP_ERR = -1, RESP_MORE = 0, RESP_OK = 1 };

struct resp_limits {
	size_t max_bulk;   /* longest bulk string (proto-max-bulk-len:
			      512 MiB) */
	size_t max_inline; /* longest inline command or header line without
			      its end (PROTO_INLINE_MAX_SIZE: 64 KiB) */
	size_t max_args;   /* most elements in one array (Redis 7: INT_MAX) */
	int unauth;        /* before AUTH: max_args and max_bulk are Redis's
			      unauthenticated bounds, and errors say so */
};

/*
 * One command. argv[i] points into the parsed input, or, for an inline
 * argument written with quotes, into text, where it is unescaped. Not
 * NUL-terminated.
 */
struct resp_cmd {
	size_t argc;       /* may be more than cap: then only the first cap
			      arguments are filled in; parse again with
			      room for argc */
	const char **argv; /* caller's arrays of cap entries */
	size_t *argl;
	size_t cap;
	char *text;        /* inline only: room for the line's length */
	size_t textcap;
};

/* What a call says besides its result; resume goes in too. */
struct resp_state {
	size_t resume;   /* in: 0, or what a RESP_MORE left here for the
			    same input (longer by what has arrived since);
			    read only when cmd is NULL. Out with RESP_MORE */
	size_t consumed; /* RESP_OK: the command's bytes */
	size_t need;     /* RESP_MORE: the input length at which trying
			    again can get further, or 0 if unknown */
	const char *err; /* RESP_ERR: the message Redis sends, "Protocol
			    error: ...", maybe in errbuf */
	char errbuf[48];
};

/*
 * Parses the first command in buf[0, len).
 *   RESP_OK:   a command (argc may be 0: an empty line or "*0" or a
 *              negative count, which Redis skips); it took st->consumed
 *              bytes.
 *   RESP_MORE: incomplete; st->need and st->resume as above.
 *   RESP_ERR:  malformed; st->err.
 * cmd may be NULL to validate and measure only (the decoder's way, with
 * resume: each element is then looked at once however the command
 * arrives).
 */
int resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
	       struct resp_cmd *cmd, struct resp_state *st);

/*
 * Redis's glob matching (stringmatchlen), as PSUBSCRIBE and PUBSUB
 * CHANNELS use it: * ? [set] [^set] [a-z] and \ escapes, with its
 * quirks: nothing but the empty pattern matches the empty string; a set
 * with no closing "]" runs to the end of the pattern; in a set, "x-]"
 * is a range up to "]"; ranges compare bytes as signed chars.
 */
int resp_glob(const char *pat, size_t plen, const char *s, size_t slen);

#endif
