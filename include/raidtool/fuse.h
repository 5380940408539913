/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_FUSE_H
#define RAIDTOOL_FUSE_H

/*
 * The FUSE protocol for an array's files, spoken directly to the kernel
 * (no libfuse): mount(2) of a "fuse.raidtool" file system as root, INIT,
 * and the requests a loop device and the tools around it send (LOOKUP,
 * GETATTR, SETATTR, OPEN, READ, WRITE, FLUSH, FSYNC, RELEASE, OPENDIR,
 * READDIR, RELEASEDIR, STATFS, FORGET, INTERRUPT, DESTROY, FALLOCATE).
 *
 * Two transports feed one request path:
 *  - "io_uring": FUSE over io_uring (kernel 6.14+, the fuse module's
 *    enable_uring parameter Y): one queue per possible CPU, each with its
 *    own ring and thread; requests arrive as completions, replies leave as
 *    COMMIT_AND_FETCH commands. READ, WRITE, FLUSH and FSYNC run on a pool
 *    of worker threads so that no queue waits on one request.
 *  - "/dev/fuse": read(2)/write(2) on the device, one cloned descriptor
 *    per worker thread, each serving its request to the end.
 * With io_uring, one /dev/fuse reader stays for what the kernel still sends
 * there (FORGET, INTERRUPT, requests before the queues are registered).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rt_engine;
struct rt_fuse;

enum rt_fuse_transport {
	RT_FUSE_AUTO = 0,	/* io_uring when the kernel allows it, else /dev/fuse */
	RT_FUSE_DEV = 1,
	RT_FUSE_URING = 2,
};

/*
 * Another server of the file's bytes than an engine (a thin volume,
 * lib/thin-run.c): read, write, flush and discard are called from the
 * worker threads, synchronously. discard: the range reads back zeros.
 *
 * With map (optional), READ and WRITE take the event-driven path as the
 * engine's own file does: on the queue's thread, map translates [@off,
 * @off + @len) of the file into one range of @engine's bytes at
 * *@engine_off without waiting for anything (0), says that a read is of
 * zeros alone (1: no I/O), or -EAGAIN: serve it with read/write. A 0
 * holds *@pin until unmap(@pin), called once the engine's unit I/O for it
 * ended (or was never submitted); while pinned, the range stays the
 * file's (see lib/thin-run.c).
 */
struct rt_fuse_backend {
	void *ctx;
	uint64_t size;
	int (*read)(void *ctx, void *buf, size_t len, uint64_t off);
	int (*write)(void *ctx, const void *buf, size_t len, uint64_t off);
	int (*flush)(void *ctx);
	int (*discard)(void *ctx, uint64_t off, uint64_t len);
	struct rt_engine *engine;
	int (*map)(void *ctx, bool write, uint64_t off, size_t len, uint64_t *engine_off,
		   unsigned *pin);
	void (*unmap)(void *ctx, unsigned pin);
};

struct rt_fuse_params {
	struct rt_engine *engine;	/* serves the file's bytes */
	const struct rt_fuse_backend *backend;	/* or this, when not NULL */
	const char *name;		/* the file's name; the mount shows raidtool:NAME */
	const char *mountpoint;		/* an existing directory */
	uint32_t blocksize;		/* st_blksize of the file */
	unsigned threads;		/* worker threads; 0: the default (16) */
	enum rt_fuse_transport transport;
	/*
	 * io_uring queues: how long a queue's thread watches its ring for
	 * the next completion before it sleeps (see queue_poll); 0: never,
	 * at most RT_FUSE_POLL_US_MAX.
	 */
	unsigned poll_us;
};

#define RT_FUSE_POLL_US_DEFAULT 50u	/* RAIDTOOL_FUSE_POLL_US unset */
#define RT_FUSE_POLL_US_MAX 1000u

struct rt_fuse_stats {
	uint64_t ring_requests;		/* requests that arrived on an io_uring queue */
	uint64_t dev_requests;		/* requests read from /dev/fuse (INIT included) */
	/* Of the ring's, those a worker served (the synchronous path), a request served again counted again. */
	uint64_t worker_requests;
	unsigned queues, queue_depth;	/* io_uring queues and entries per queue (0: none) */
	unsigned poll_us;		/* the queues' poll time (0: none, or no queues) */
	uint64_t polled;		/* waits a poll ended without sleeping */
};

/*
 * Mount @p->mountpoint, answer INIT and serve until the connection ends.
 * RT_FUSE_URING fails (-EOPNOTSUPP) when the ring cannot be used; with
 * RT_FUSE_AUTO the same case falls back to /dev/fuse and says why.
 */
int rt_fuse_start(const struct rt_fuse_params *p, struct rt_fuse **out);

/* The transport in use: "io_uring" or "/dev/fuse". */
const char *rt_fuse_transport_name(const struct rt_fuse *f);

/* "dev", "uring" or "auto" (RAIDTOOL_FUSE_TRANSPORT); -EINVAL otherwise. */
int rt_fuse_transport_parse(const char *s, enum rt_fuse_transport *out);

void rt_fuse_get_stats(struct rt_fuse *f, struct rt_fuse_stats *st);

/*
 * More files in the mount, beside the first (@p->name): one served by @be
 * (engine and backend alike), named @name (-EEXIST when taken, at most 512
 * files). rt_fuse_remove_file: the name goes; returns once no request uses
 * the file any more (its backend may be freed then). Requests for it fail
 * from then on. The kernel looks such a file's name up on every path walk,
 * so a name that goes and comes back is the new file.
 */
int rt_fuse_add_file(struct rt_fuse *f, const char *name, const struct rt_fuse_backend *be);
int rt_fuse_remove_file(struct rt_fuse *f, const char *name);
/*
 * File @name's size becomes @size (its backend serves that many bytes
 * from now on: grow the backend first, shrink it after), and the kernel
 * is told to forget the size it holds: the next stat sees the new one.
 */
int rt_fuse_resize_file(struct rt_fuse *f, const char *name, uint64_t size);

/*
 * Have all serving threads ended (the connection is gone: unmounted and
 * released, or aborted)? Waits up to @ms for it.
 */
bool rt_fuse_wait_end(struct rt_fuse *f, long ms);

/* Sever the connection (fusectl abort): every thread then ends. */
void rt_fuse_abort(struct rt_fuse *f);

/*
 * Once rt_fuse_wait_end said true: join the threads, close the device,
 * free @f. The mount itself is the caller's to detach (umount2).
 */
void rt_fuse_destroy(struct rt_fuse *f);

#endif
