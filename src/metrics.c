/*
 * metrics.c: the statistics over HTTP, for a Prometheus scraper or curl.
 * A minimal HTTP/1.0 responder built on the library itself: request lines
 * arrive as line frames; the blank line that ends the headers gets the
 * answer, whatever the path, and the connection closes once it is sent.
 */
#include "conn.h"
#include "loop.h"
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>


/*
 * The blank line that ends a request: render once, from one snapshot,
 * straight into the connection's output queue, then put the header, with
 * the Content-Length the render came to, in front of it. Nothing is
 * rendered twice, so the length sent is the length of the body sent.
 */
static void metrics_frame(ac_conn_t *c, const void *data, size_t len)
{
	ac_runtime_t *rt = c->loop->rt;
	struct ac__outq head;
	size_t before = c->out.bytes, body;
	char hdr[128];
	int n;

	if (len > 0)
		return; /* request line or header: wait for the blank line */
	ac__outq_init(&head);
	if (ac__conn_out_reserve(c, 0) || before ||
	    ac__stats_render(rt, &c->out))
		goto fail; /* answered once per connection: nothing before */
	body = c->out.bytes;
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.0 200 OK\r\n"
		     "Content-Type: text/plain; version=0.0.4\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     body);
	if (ac__outq_write(&head, hdr, (size_t)n))
		goto fail;
	ac__outq_prepend(&c->out, &head);
	if (ac__conn_out_reserve(c, 0)) /* the hard limit applies as ever */
		return;
	ac__conn_out_added(c);
	ac__conn_close(c, AC_CLOSE_FLUSH);
	return;
fail:
	ac__outq_clear(&head);
	ac__conn_close(c, AC_CLOSE_ABORT);
}

AC_EXPORT int ac_metrics_listen(ac_runtime_t *rt, const char *addr,
				ac_listener_t **out)
{
	static const ac_conn_cbs_t cbs = {.on_frame = metrics_frame};
	/* Small requests, quick answers: tight bounds. */
	const ac_conn_opts_t opts = {.framing = AC_FRAME_LINE,
				     .max_frame = 8192,
				     .idle_timeout_ms = 10000,
				     .max_conns = 64};

	return ac_listen(rt, addr, &cbs, &opts, NULL, out);
}
