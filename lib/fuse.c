/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The FUSE protocol for an array's one file, spoken to the kernel directly
 * (see include/raidtool/fuse.h; the ABI is lib/fuse-kernel.h).
 *
 * One request path (serve()) is fed by two transports. A request is first
 * copied into a struct fuse_reqctx: its fuse_in_header, its opcode's fixed
 * argument (op_in), and the rest (payload: LOOKUP's name, WRITE's data).
 * The reply's arguments are then written to reqctx.out, which may overlap
 * the request's buffer: every handler has read what it needs before it
 * writes there.
 *
 *  - /dev/fuse: the request is [in header][op_in][payload] in one read(2);
 *    the reply is written as [out header][arguments] from the same buffer.
 *  - io_uring: each entry has a 288-byte header buffer (in header, op_in,
 *    ring metadata) and a payload buffer; the reply's out header goes where
 *    the in header was (copied out first), its arguments to the payload
 *    buffer, and COMMIT_AND_FETCH hands both back and fetches the next
 *    request into the same entry.
 *
 * What the kernel requires of a ring (checked on these machines): SQE128;
 * one queue per possible CPU, qid = CPU number (the kernel uses the ring
 * only once every queue has an entry); REGISTER only after the INIT reply's
 * write() has returned (-EAGAIN before); payload buffers of at least
 * max(8192, max_write, max_pages * page size) (smaller: the kernel silently
 * keeps /dev/fuse); every fetched entry committed, errors too, or its slot
 * is lost; -ENOTCONN completes every entry at unmount.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/engine.h>
#include <raidtool/fuse.h>
#include <raidtool/log.h>
#include "fuse-kernel.h"

#define FILE_INO 2			/* the first file's node id */
#define MAX_FILES 512u			/* files one mount serves at once */
#define DEFAULT_THREADS 16u		/* the engine runs 16 requests at once */
#define MAX_THREADS 256u
#define MAX_WRITE (1u << 20)
#define MAX_BACKGROUND 128u		/* the kernel's default of 12 starves a loop device */
#define CONGESTION_THRESHOLD 96u
#define ATTR_TIMEOUT 86400u		/* a resize tells the kernel (rt_fuse_resize_file) */
/* queue_poll: empty polls in a row before a backoff, and its bounds (in waits). */
#define POLL_MISSES_MAX 4u
#define POLL_BACKOFF_MIN 16u
#define POLL_BACKOFF_MAX 4096u
#define DEV_BUF_SIZE (MAX_WRITE + 4096u)	/* a WRITE's data and its headers */
/*
 * A reader's buffer starts this far into its allocation, so that a reply's
 * arguments (after the 16-byte out header) are page aligned: READ data goes
 * from the units straight there (O_DIRECT), without a bounce buffer.
 */
#define DEV_BUF_SLACK (4096u - (unsigned)sizeof(struct fuse_out_header))
#define THREAD_STACK (256u * 1024u)	/* stacks are mlock'ed whole: keep them small */
/*
 * Entries bound the requests served at once on the rings (each holds a
 * max_write payload, locked): 4k random reads at QD32 over tmpfs units left
 * a third of 2 CPUs idle waiting for entries with 16 per queue; 32 per
 * queue served about a third more. See raidtool-control(7), MEMORY.
 */
#define RING_ENTRIES_TOTAL 64u		/* spread over the queues */
#define RING_DEPTH_MIN 2u
#define RING_DEPTH_MAX 32u
#define RING_SQ_ENTRIES 256u		/* FUSE commands and unit reads */
#define RING_CQ_ENTRIES 1024u
/*
 * Walk pieces a queue holds at once: the walk's depth (4), and one more
 * as a piece's entry is freed just after the walk has it back.
 */
#define WALK_ENTS 8u
#define ENABLE_URING_PARAM "/sys/module/fuse/parameters/enable_uring"

struct fuse_reqctx {
	struct fuse_in_header in;
	union {
		uint8_t raw[FUSE_URING_OP_IN_OUT_SZ];
		uint64_t align;
	} op;
	const uint8_t *payload;
	size_t payload_len;
	uint8_t *out;			/* the reply's arguments */
	size_t out_cap;
	bool noreply;			/* FORGET, INTERRUPT */
	/*
	 * A WRITE mapped before as @part_size bytes, of which holders of its
	 * stripes wrote the first @part_head and the last @part_tail
	 * (engine_aio.done_head, done_tail): only the rest is left to write.
	 */
	bool part;
	size_t part_size, part_head, part_tail;
};

/*
 * A file of the mount. Node ids: 2 + slot, the generation above bit 32 (so
 * that a file added in a slot another one left is not taken for it). A
 * request holds the file (users) while it serves it; removal waits for
 * them. The struct stays until the mount ends: a request may still look
 * at it after its slot was emptied.
 */
struct fuse_file {
	uint64_t nodeid;
	char name[256];
	uint64_t size;			/* read and written atomically: file_size */
	struct rt_engine *e;
	struct rt_fuse_backend be;	/* instead of @e when be.read is set */
	uint64_t entry_valid;		/* 0: the kernel looks the name up again each time */
	atomic_uint users;
	atomic_bool gone;
	struct fuse_file *older;	/* every file the mount had */
};

struct ring_queue;
struct ring_ent;

/* One unit I/O of an event-driven request: its CQE's user_data, tagged with bit 0. */
struct ring_uio {
	struct ring_ent *ent;
	uint32_t len;
	int res;			/* its result (a flush's fsyncs: engine_flush_done) */
};

struct ring_ent {
	struct ring_queue *q;
	struct fuse_uring_req_header *hdr;
	uint8_t *payload;
	struct iovec iov[2];
	uint64_t commit_id;
	uint32_t last_cmd;		/* enum fuse_uring_cmd */
	struct fuse_reqctx r;
	struct ring_ent *next;		/* on the worker pool's list */
	/* An event-driven READ, WRITE or flush in flight on the queue's ring. */
	struct engine_aio ar;
	struct ring_uio uio[ENGINE_AIO_MAX];
	unsigned pending;		/* unit I/Os not yet completed */
	bool aio_failed;
	bool aio_flush;			/* a flush (engine_flush_map): engine_flush_done ends it */
	bool aio_redo;			/* a WRITE whose round failed in part, still mapped */
	bool resumed;			/* queued on a stripe lock, now to be mapped again */
	bool timed;			/* a holder waiting, to map again at ar.wake_ns */
	bool pinned;			/* a backend's map holds @pin until the I/O ends */
	unsigned pin;
	struct rt_engine *aio_e;	/* the engine the request was mapped on */
	struct fuse_file *aio_file;	/* held while the event-driven request runs or is queued */
	uint64_t aio_off;		/* where it was mapped in aio_e */
	uint32_t aio_size;
	int res;			/* a worker's result, for the queue to commit */
	/* A background walk's piece (engine_set_loop_host), not a FUSE request. */
	struct engine_walk_piece *wp;
	bool walk_start;		/* on the done list: its first round */
};

struct ring_queue {
	struct rt_fuse *f;
	unsigned qid;
	struct io_uring ring;
	bool ring_ok, started;
	/*
	 * Created disabled (IORING_SETUP_R_DISABLED) with SINGLE_ISSUER and
	 * DEFER_TASKRUN: the queue's thread enables it, and is then its only
	 * submitter; completions run as its own task work when it asks for
	 * them, without waking it for each one.
	 */
	bool single_issuer;
	/* The entries' payload buffers are registered: unit I/O into them is READ_FIXED/WRITE_FIXED. */
	bool fixed_payload;
	/* /dev/fuse is the ring's registered file 0: commits skip the descriptor lookup. */
	bool fixed_fuse;
	/*
	 * Guards the SQ. Only the queue's thread submits on its ring (it
	 * waits for completions holding sq_mu): workers hand their replies
	 * back through done_head.
	 */
	pthread_mutex_t sq_mu;
	pthread_t thread;
	struct ring_ent *ents;
	/*
	 * Requests the workers have served: the queue's thread commits them, so
	 * that it alone submits on its ring (a completion's task work then runs
	 * on it, not on a worker asleep on the pool).
	 */
	pthread_mutex_t done_mu;
	struct ring_ent *done_head;
	int efd;			/* written when done_head becomes non-empty */
	struct ring_ent efd_ent;	/* the user_data of the eventfd's poll */
	/*
	 * Entries for the walk's pieces (walk_submit), free ones on
	 * @walk_free; @walk_busy taken; @closing: the queue ends, it takes
	 * none. Under done_mu.
	 */
	struct ring_ent *walk_ents, *walk_free;
	unsigned walk_busy;
	bool closing;
	bool broken;			/* the ring failed: nothing gets another round on it */
	/*
	 * Entries with unit I/O in flight on the ring, and requests queued on
	 * a stripe lock (the queue's thread's own).
	 */
	unsigned uio_ents, queued_ents;
	/* Of those, holders waiting for their stripes' parts until a time (timed). */
	unsigned timed_ents;
	/* queue_poll's state for waits on requests alone [0] and on unit I/O [1]. */
	struct queue_poller {
		unsigned misses;	/* empty polls in a row */
		unsigned skip;		/* waits left that sleep at once */
		unsigned backoff;	/* the next @skip (0: POLL_BACKOFF_MIN) */
	} poller[2];
};

struct dev_worker {
	struct rt_fuse *f;
	int fd;
	bool own_fd, started;
	uint8_t *buf;
	pthread_t thread;
};

struct rt_fuse {
	char name[256];			/* the first file's, the mount's source */
	char mnt[PATH_MAX];
	/* The files: slots read without a lock; added and removed under files_mu. */
	struct fuse_file *_Atomic file[MAX_FILES];
	struct fuse_file *files;	/* all of them, newest first */
	uint32_t files_gen;
	pthread_mutex_t files_mu;
	uint32_t blocksize;
	time_t started;
	unsigned threads;
	int fd;				/* /dev/fuse, the mount's connection */
	unsigned long conn_id;		/* /sys/fs/fuse/connections/<id> */
	bool have_conn;

	/* /dev/fuse readers */
	pthread_mutex_t dev_mu;
	struct dev_worker dev[MAX_THREADS];
	unsigned n_dev;

	/* io_uring */
	bool ring_on;			/* INIT asked for it */
	atomic_bool ring_failed;	/* a queue could not register */
	struct ring_queue *queues;
	unsigned n_queues, depth;
	size_t payload_size;

	/*
	 * The workers the queues hand engine requests to, and one more for
	 * the redos of failed rounds alone (pool_take): a redo's request
	 * holds stripe locks that every other worker may be waiting for.
	 */
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cond, redo_cond;
	struct ring_ent *pool_head, *pool_tail, *redo_head, *redo_tail;
	bool pool_stop;
	pthread_t *pool;
	unsigned n_pool;

	/* Threads serving the connection (readers and queues) still running. */
	pthread_mutex_t live_mu;
	pthread_cond_t live_cond;
	unsigned live;

	_Atomic uint64_t ring_requests, dev_requests;
	_Atomic uint64_t worker_requests;	/* of the ring's, handed to the pool */
	uint64_t poll_ns;		/* queue_poll's time; 0: queues sleep at once */
	_Atomic uint64_t polled;	/* waits queue_poll ended without sleeping */

	/* The engine whose walks run on the queues (engine_set_loop_host). */
	struct rt_engine *host_e;
	/* The engine our workers call, told how many they are (engine_add_callers). */
	struct rt_engine *callers_e;
	atomic_uint walk_rr;
};

/* ---- the files ------------------------------------------------------- */

/* Hold the file in slot @slot: NULL when there is none or it is going. */
static struct fuse_file *file_hold_slot(struct rt_fuse *f, uint64_t slot, uint64_t nodeid)
{
	struct fuse_file *x;

	if (slot >= MAX_FILES)
		return NULL;
	x = atomic_load(&f->file[slot]);
	if (!x || (nodeid && x->nodeid != nodeid))
		return NULL;
	atomic_fetch_add(&x->users, 1);
	/* After the count: a removal that set gone before waits for us, or we see it. */
	if (atomic_load(&x->gone)) {
		atomic_fetch_sub(&x->users, 1);
		return NULL;
	}
	return x;
}

static struct fuse_file *file_get(struct rt_fuse *f, uint64_t nodeid)
{
	if ((nodeid & 0xffffffffu) < FILE_INO)
		return NULL;
	return file_hold_slot(f, (nodeid & 0xffffffffu) - FILE_INO, nodeid);
}

static void file_put(struct fuse_file *x)
{
	if (x)
		atomic_fetch_sub(&x->users, 1);
}

/* rt_fuse_resize_file may change it while requests run. */
static uint64_t file_size(const struct fuse_file *x)
{
	return __atomic_load_n(&x->size, __ATOMIC_ACQUIRE);
}

static struct fuse_file *file_by_name(struct rt_fuse *f, const char *name)
{
	for (unsigned s = 0; s < MAX_FILES; s++) {
		struct fuse_file *x = file_hold_slot(f, s, 0);

		if (x && !strcmp(x->name, name))
			return x;
		file_put(x);
	}
	return NULL;
}

/* ---- the request path ------------------------------------------------ */

/* @x NULL: the root directory. */
static void file_attr(const struct rt_fuse *f, const struct fuse_file *x, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = x ? x->nodeid : FUSE_ROOT_ID;
	a->atime = a->mtime = a->ctime = (uint64_t)f->started;
	if (!x) {
		a->mode = S_IFDIR | 0700;
		a->nlink = 2;
		return;
	}
	a->mode = S_IFREG | 0600;
	a->nlink = 1;
	a->size = file_size(x);
	a->blocks = a->size / 512;
	a->blksize = f->blocksize;
}

/* Copy a fixed-size reply into the request's out area. */
static int reply_struct(struct fuse_reqctx *r, const void *p, size_t len)
{
	if (len > r->out_cap)
		return -EIO;
	memcpy(r->out, p, len);
	return (int)len;
}

static int serve_lookup(struct rt_fuse *f, struct fuse_reqctx *r)
{
	struct fuse_entry_out eo;
	struct fuse_file *x;
	size_t n = strnlen((const char *)r->payload, r->payload_len);

	if (r->in.nodeid != FUSE_ROOT_ID || n == r->payload_len)
		return -ENOENT;
	x = file_by_name(f, (const char *)r->payload);
	if (!x)
		return -ENOENT;
	memset(&eo, 0, sizeof(eo));
	eo.nodeid = x->nodeid;
	eo.generation = 1;
	eo.entry_valid = x->entry_valid;
	eo.attr_valid = ATTR_TIMEOUT;
	file_attr(f, x, &eo.attr);
	file_put(x);
	return reply_struct(r, &eo, sizeof(eo));
}

static int serve_getattr(struct rt_fuse *f, struct fuse_file *x, struct fuse_reqctx *r)
{
	struct fuse_attr_out ao;

	if (r->in.nodeid != FUSE_ROOT_ID && !x)
		return -ENOENT;
	memset(&ao, 0, sizeof(ao));
	ao.attr_valid = ATTR_TIMEOUT;
	file_attr(f, x, &ao.attr);
	return reply_struct(r, &ao, sizeof(ao));
}

static int serve_setattr(struct rt_fuse *f, struct fuse_file *x, struct fuse_reqctx *r)
{
	const uint32_t times = FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW |
			       FATTR_CTIME;
	/* FATTR_FH and FATTR_LOCKOWNER only qualify the others. */
	const uint32_t changes = FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_SIZE | times |
				 FATTR_KILL_SUIDGID;
	struct fuse_setattr_in sa;

	memcpy(&sa, r->op.raw, sizeof(sa));
	/* The size is the array's; only timestamp updates are accepted (and ignored). */
	if (sa.valid & changes & ~times)
		return -EPERM;
	return serve_getattr(f, x, r);
}

static int serve_open(struct rt_fuse *f, struct fuse_file *x, struct fuse_reqctx *r, bool dir)
{
	struct fuse_open_in oi;
	struct fuse_open_out oo;

	(void)f;
	memcpy(&oi, r->op.raw, sizeof(oi));
	memset(&oo, 0, sizeof(oo));
	if (dir) {
		if (r->in.nodeid != FUSE_ROOT_ID)
			return -ENOTDIR;
		return reply_struct(r, &oo, sizeof(oo));
	}
	if (r->in.nodeid == FUSE_ROOT_ID)
		return -EISDIR;
	if (!x)
		return -ENOENT;
	if (oi.flags & O_TRUNC)
		return -EPERM;
	/*
	 * No page cache between the loop device and the engine; and direct
	 * writes to the one file may run in parallel (without the flag the
	 * kernel serialises them on the inode lock).
	 */
	oo.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	return reply_struct(r, &oo, sizeof(oo));
}

static int serve_read(struct fuse_file *x, struct fuse_reqctx *r)
{
	struct fuse_read_in ri;
	uint64_t fsize;
	size_t size;
	int ret;

	memcpy(&ri, r->op.raw, sizeof(ri));
	if (!x)
		return -EINVAL;
	fsize = file_size(x);
	if (ri.offset >= fsize || ri.size == 0)
		return 0;
	size = ri.size;
	if (size > fsize - ri.offset)
		size = (size_t)(fsize - ri.offset);
	if (size > r->out_cap)
		return -EINVAL;
	ret = x->be.read ? x->be.read(x->be.ctx, r->out, size, ri.offset)
			 : engine_read(x->e, r->out, size, ri.offset);
	return ret < 0 ? ret : (int)size;
}

static int serve_write(struct fuse_file *x, struct fuse_reqctx *r)
{
	struct fuse_write_in wi;
	struct fuse_write_out wo;
	uint64_t fsize;
	size_t size;
	int ret;

	memcpy(&wi, r->op.raw, sizeof(wi));
	if (!x || wi.size > r->payload_len)
		return -EINVAL;
	fsize = file_size(x);
	if (wi.offset >= fsize)
		return wi.size ? -ENOSPC : 0;
	size = wi.size;
	if (size > fsize - wi.offset)
		size = (size_t)(fsize - wi.offset);
	if (r->part) {
		/* The rest of a write mapped before (the size it had then, whatever the file's now). */
		if (x->be.write || r->part_size > wi.size ||
		    r->part_head + r->part_tail > r->part_size)
			return -EINVAL;
		size = r->part_size;
		ret = engine_write(x->e, r->payload + r->part_head,
				   size - r->part_head - r->part_tail, wi.offset + r->part_head);
	} else {
		ret = x->be.write ? x->be.write(x->be.ctx, r->payload, size, wi.offset)
				  : engine_write(x->e, r->payload, size, wi.offset);
	}
	if (ret < 0)
		return ret;
	memset(&wo, 0, sizeof(wo));
	wo.size = (uint32_t)size;
	return reply_struct(r, &wo, sizeof(wo));
}

/*
 * The loop device turns discard into FALLOC_FL_PUNCH_HOLE | KEEP_SIZE and
 * write-zeroes into that or FALLOC_FL_ZERO_RANGE: both read back zeros after.
 * The file's size changes only by a resize of its backend, so anything else is refused.
 */
static int file_fallocate(struct fuse_file *x, uint32_t mode, uint64_t off, uint64_t len)
{
	if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) &&
	    (mode & ~(uint32_t)FALLOC_FL_KEEP_SIZE) != FALLOC_FL_ZERO_RANGE)
		return -EOPNOTSUPP;
	if (len == 0)
		return 0;
	return x->be.discard ? x->be.discard(x->be.ctx, off, len) : engine_discard(x->e, off, len);
}

static int serve_fallocate(struct fuse_file *x, struct fuse_reqctx *r)
{
	struct fuse_fallocate_in fa;
	uint64_t fsize;

	memcpy(&fa, r->op.raw, sizeof(fa));
	if (!x)
		return -EINVAL;
	fsize = file_size(x);
	if (fa.offset > fsize || fa.length > fsize - fa.offset)
		return -EINVAL;
	return file_fallocate(x, fa.mode, fa.offset, fa.length);
}

/* One directory entry; 0 when it does not fit in @room. */
static size_t add_dirent(uint8_t *buf, size_t room, uint64_t ino, uint64_t off,
			 uint32_t mode, const char *name)
{
	size_t namelen = strlen(name), reclen = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
	struct fuse_dirent d;

	if (reclen > room)
		return 0;
	memset(&d, 0, sizeof(d));
	d.ino = ino;
	d.off = off;
	d.namelen = (uint32_t)namelen;
	d.type = mode >> 12;		/* DT_DIR, DT_REG */
	memset(buf, 0, reclen);
	memcpy(buf, &d, FUSE_NAME_OFFSET);
	memcpy(buf + FUSE_NAME_OFFSET, name, namelen);
	return reclen;
}

/* Entry i: ".", "..", then the file in slot i - 2; the next offset is i + 1. */
static int serve_readdir(struct rt_fuse *f, struct fuse_reqctx *r)
{
	struct fuse_read_in ri;
	size_t used = 0, room;

	memcpy(&ri, r->op.raw, sizeof(ri));
	if (r->in.nodeid != FUSE_ROOT_ID)
		return -ENOTDIR;
	room = ri.size < r->out_cap ? ri.size : r->out_cap;
	for (uint64_t i = ri.offset; i < 2 + MAX_FILES; i++) {
		struct fuse_file *x = i < 2 ? NULL : file_hold_slot(f, i - 2, 0);
		size_t n;

		if (i >= 2 && !x)
			continue;
		n = add_dirent(r->out + used, room - used, x ? x->nodeid : FUSE_ROOT_ID, i + 1,
			       x ? S_IFREG : S_IFDIR, x ? x->name : i ? ".." : ".");
		file_put(x);
		if (!n)
			break;
		used += n;
	}
	return (int)used;
}

static int serve_statfs(struct rt_fuse *f, struct fuse_reqctx *r)
{
	struct fuse_statfs_out so;

	(void)f;
	memset(&so, 0, sizeof(so));
	so.st.bsize = so.st.frsize = 512;
	so.st.namelen = 255;
	return reply_struct(r, &so, sizeof(so));
}

/* Is this request one that waits on the units (served by a worker, not a ring's thread)? */
static bool needs_engine(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_READ:
	case FUSE_WRITE:
	case FUSE_FLUSH:
	case FUSE_FSYNC:
	case FUSE_FALLOCATE:
		return true;
	default:
		return false;
	}
}

/* The request's opcode on file @x (NULL: the root, or no such file). */
static int serve_op(struct rt_fuse *f, struct fuse_file *x, struct fuse_reqctx *r)
{
	switch (r->in.opcode) {
	case FUSE_LOOKUP:
		return serve_lookup(f, r);
	case FUSE_GETATTR:
		return serve_getattr(f, x, r);
	case FUSE_SETATTR:
		return serve_setattr(f, x, r);
	case FUSE_OPEN:
		return serve_open(f, x, r, false);
	case FUSE_OPENDIR:
		return serve_open(f, x, r, true);
	case FUSE_READ:
		return serve_read(x, r);
	case FUSE_WRITE:
		return serve_write(x, r);
	case FUSE_FLUSH:
	case FUSE_FSYNC:
		if (!x)
			return r->in.nodeid == FUSE_ROOT_ID ? 0 : -EIO;
		return x->be.flush ? x->be.flush(x->be.ctx) : engine_flush(x->e);
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_DESTROY:
		return 0;
	case FUSE_READDIR:
		return serve_readdir(f, r);
	case FUSE_STATFS:
		return serve_statfs(f, r);
	case FUSE_FALLOCATE:
		return serve_fallocate(x, r);
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
		/* One file that never goes away: nothing to forget. */
	case FUSE_INTERRUPT:
		/* Engine requests are not abandoned half-way: the request finishes and replies. */
		r->noreply = true;
		return 0;
	case FUSE_INIT:
		return -EPROTO;		/* answered once, at start */
	default:
		return -ENOSYS;
	}
}

/* The request path: the reply's length in r->out, or -errno. */
static int serve(struct rt_fuse *f, struct fuse_reqctx *r)
{
	struct fuse_file *x = NULL;
	int res;

	switch (r->in.opcode) {
	case FUSE_GETATTR:
	case FUSE_SETATTR:
	case FUSE_OPEN:
	case FUSE_READ:
	case FUSE_WRITE:
	case FUSE_FLUSH:
	case FUSE_FSYNC:
	case FUSE_FALLOCATE:
		x = file_get(f, r->in.nodeid);
		break;
	default:
		break;
	}
	res = serve_op(f, x, r);
	file_put(x);
	return res;
}

/* The size of @opcode's fixed argument after the in header on /dev/fuse. */
static size_t op_in_size(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_FORGET:
		return sizeof(struct fuse_forget_in);
	case FUSE_BATCH_FORGET:
		return sizeof(struct fuse_batch_forget_in);
	case FUSE_GETATTR:
		return sizeof(struct fuse_getattr_in);
	case FUSE_SETATTR:
		return sizeof(struct fuse_setattr_in);
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		return sizeof(struct fuse_open_in);
	case FUSE_READ:
	case FUSE_READDIR:
		return sizeof(struct fuse_read_in);
	case FUSE_WRITE:
		return sizeof(struct fuse_write_in);
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
		return sizeof(struct fuse_release_in);
	case FUSE_FSYNC:
		return sizeof(struct fuse_fsync_in);
	case FUSE_FLUSH:
		return sizeof(struct fuse_flush_in);
	case FUSE_INTERRUPT:
		return sizeof(struct fuse_interrupt_in);
	case FUSE_FALLOCATE:
		return sizeof(struct fuse_fallocate_in);
	case FUSE_INIT:
		return sizeof(struct fuse_init_in);
	default:
		return 0;	/* LOOKUP (the name is the payload), STATFS, DESTROY */
	}
}

/* ---- threads --------------------------------------------------------- */

static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	r = -pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return r;
}

static void serving_ended(struct rt_fuse *f)
{
	pthread_mutex_lock(&f->live_mu);
	f->live--;
	pthread_cond_broadcast(&f->live_cond);
	pthread_mutex_unlock(&f->live_mu);
}

/* ---- transport: /dev/fuse ----------------------------------------------- */

/* Parse one request read from /dev/fuse; false when malformed. */
static bool dev_request(uint8_t *buf, size_t n, struct fuse_reqctx *r)
{
	size_t op_len;

	memset(r, 0, sizeof(*r));
	if (n < sizeof(r->in))
		return false;
	memcpy(&r->in, buf, sizeof(r->in));
	if (r->in.len != n)
		return false;
	op_len = op_in_size(r->in.opcode);
	if (op_len > n - sizeof(r->in))
		op_len = n - sizeof(r->in);	/* shorter in older protocols: the rest stays 0 */
	memcpy(r->op.raw, buf + sizeof(r->in), op_len);
	r->payload = buf + sizeof(r->in) + op_len;
	r->payload_len = n - sizeof(r->in) - op_len;
	r->out = buf + sizeof(struct fuse_out_header);
	r->out_cap = DEV_BUF_SIZE - sizeof(struct fuse_out_header);
	return true;
}

/* Write the reply whose arguments are at buf + out header; -errno from write(2). */
static int dev_reply(int fd, uint8_t *buf, uint64_t unique, int res)
{
	struct fuse_out_header oh = {
		.len = (uint32_t)sizeof(oh) + (uint32_t)(res > 0 ? res : 0),
		.error = res < 0 ? res : 0,
		.unique = unique,
	};

	memcpy(buf, &oh, sizeof(oh));
	return write(fd, buf, oh.len) < 0 ? -errno : 0;
}

static void *dev_main(void *arg)
{
	struct dev_worker *w = arg;
	struct rt_fuse *f = w->f;
	struct fuse_reqctx r;

	uint8_t *buf = w->buf + DEV_BUF_SLACK;

	for (;;) {
		ssize_t n = read(w->fd, buf, DEV_BUF_SIZE);
		int res;

		if (n < 0) {
			/* ENOENT: the request was interrupted before we read it. */
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			if (errno != ENODEV)	/* ENODEV: unmounted or aborted */
				rt_log(RT_LOG_WARN, "'%s': reading /dev/fuse: %s", f->name,
				       strerror(errno));
			break;
		}
		if (!dev_request(buf, (size_t)n, &r)) {
			rt_log(RT_LOG_WARN, "'%s': a malformed FUSE request (%zd bytes)", f->name, n);
			continue;
		}
		atomic_fetch_add_explicit(&f->dev_requests, 1, memory_order_relaxed);
		res = serve(f, &r);
		if (r.noreply)
			continue;
		res = dev_reply(w->fd, buf, r.in.unique, res);
		if (res == -ENODEV)
			break;
		/* -ENOENT: the request was interrupted meanwhile and is gone. */
		if (res < 0 && res != -ENOENT)
			rt_log(RT_LOG_DEBUG, "'%s': a FUSE reply: %s", f->name, strerror(-res));
	}
	serving_ended(f);
	return NULL;
}

/* Start /dev/fuse readers until there are @n (each on a clone of the connection). */
static int dev_spawn(struct rt_fuse *f, unsigned n)
{
	int r = 0;

	pthread_mutex_lock(&f->dev_mu);
	while (f->n_dev < n && f->n_dev < MAX_THREADS) {
		struct dev_worker *w = &f->dev[f->n_dev];
		uint32_t master = (uint32_t)f->fd;

		w->f = f;
		w->fd = f->fd;
		if (f->n_dev > 0) {
			int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

			/* Without a clone all readers share the one descriptor: slower, correct. */
			if (fd >= 0 && ioctl(fd, FUSE_DEV_IOC_CLONE, &master) == 0) {
				w->fd = fd;
				w->own_fd = true;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		/* dev[0] may have its buffer already: INIT was read into it. */
		if (!w->buf && posix_memalign((void **)&w->buf, 4096, DEV_BUF_SIZE + DEV_BUF_SLACK)) {
			w->buf = NULL;
			r = -ENOMEM;
			break;
		}
		pthread_mutex_lock(&f->live_mu);
		f->live++;
		pthread_mutex_unlock(&f->live_mu);
		r = spawn(&w->thread, dev_main, w);
		if (r < 0) {
			pthread_mutex_lock(&f->live_mu);
			f->live--;
			pthread_mutex_unlock(&f->live_mu);
			break;
		}
		w->started = true;
		f->n_dev++;
	}
	pthread_mutex_unlock(&f->dev_mu);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot start a FUSE thread: %s", f->name,
		       strerror(-r));
	return r;
}

/* ---- transport: io_uring --------------------------------------------- */

static void ring_prep(struct io_uring_sqe *sqe, struct ring_ent *ent, uint32_t cmd)
{
	struct fuse_uring_cmd_req *req = (struct fuse_uring_cmd_req *)sqe->cmd;

	memset(sqe, 0, 2 * sizeof(*sqe));	/* a 128-byte SQE */
	sqe->opcode = IORING_OP_URING_CMD;
	if (ent->q->fixed_fuse) {
		sqe->fd = 0;
		sqe->flags = IOSQE_FIXED_FILE;
	} else {
		sqe->fd = ent->q->f->fd;
	}
	sqe->cmd_op = cmd;
	io_uring_sqe_set_data(sqe, ent);
	if (cmd == FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)ent->iov;
		sqe->len = 2;
	}
	req->qid = (uint16_t)ent->q->qid;
	req->commit_id = cmd == FUSE_IO_URING_CMD_COMMIT_AND_FETCH ? ent->commit_id : 0;
	ent->last_cmd = cmd;
}

/*
 * The queue a thread runs: what it queues on its own ring is submitted once
 * per batch of completions (one io_uring_enter for all of them).
 */
static __thread struct ring_queue *thread_queue;

/* A free SQE of @q (the caller holds sq_mu); NULL only when the ring is broken. */
static struct io_uring_sqe *ring_sqe(struct ring_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

/* Queue @cmd for @ent and submit it; from the queue's thread or a worker. */
static void ring_submit(struct ring_ent *ent, uint32_t cmd)
{
	struct ring_queue *q = ent->q;
	struct io_uring_sqe *sqe;
	int r;

	pthread_mutex_lock(&q->sq_mu);
	sqe = ring_sqe(q);
	if (sqe) {
		ring_prep(sqe, ent, cmd);
		r = thread_queue == q ? 0 : io_uring_submit(&q->ring);
	} else {
		r = -EBUSY;
	}
	pthread_mutex_unlock(&q->sq_mu);
	if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': FUSE queue %u: cannot submit: %s", q->f->name,
		       q->qid, strerror(-r));
}

/* Reply to the entry's request (@res: length of the arguments in the payload, or -errno). */
static void ring_commit(struct ring_ent *ent, int res)
{
	struct fuse_out_header oh = {
		.len = (uint32_t)sizeof(oh) + (uint32_t)(res > 0 ? res : 0),
		.error = res < 0 ? res : 0,
		.unique = ent->r.in.unique,
	};

	memcpy(ent->hdr->in_out, &oh, sizeof(oh));
	ent->hdr->ring_ent_in_out.payload_sz = res > 0 ? (uint32_t)res : 0;
	ring_submit(ent, FUSE_IO_URING_CMD_COMMIT_AND_FETCH);
}

static void ring_serve(struct ring_ent *ent)
{
	int res = serve(ent->q->f, &ent->r);

	/* Every entry is committed, or the kernel loses its slot. */
	ring_commit(ent, ent->r.noreply ? 0 : res);
}

/* Put @ent on its queue's list for the queue's thread (ring_commit_done). */
static void ring_done_push(struct ring_ent *ent)
{
	struct ring_queue *q = ent->q;
	bool wake;

	pthread_mutex_lock(&q->done_mu);
	wake = !q->done_head;
	ent->next = q->done_head;
	q->done_head = ent;
	pthread_mutex_unlock(&q->done_mu);
	if (wake && eventfd_write(q->efd, 1) < 0)
		rt_log(RT_LOG_ERROR, "'%s': FUSE queue %u: cannot wake: %s", q->f->name, q->qid,
		       strerror(errno));
}

/*
 * A flush mapped on the ring ends: on the queue's thread when every fsync
 * succeeded (@judge false), else on a worker, which may wait while the
 * engine fails a unit and flushes the others.
 */
static const int *flush_results(const struct ring_ent *ent, int *res)
{
	unsigned i;

	for (i = 0; i < ent->ar.n; i++)
		res[i] = ent->uio[i].res;
	return res;
}

static int flush_end(struct ring_ent *ent, bool judge)
{
	int res[ENGINE_AIO_MAX], r;

	r = engine_flush_done(ent->aio_e, &ent->ar, judge ? flush_results(ent, res) : NULL);
	ent->aio_flush = false;
	file_put(ent->aio_file);
	ent->aio_file = NULL;
	return r;
}

static void aio_unpin(struct ring_ent *ent);

/*
 * A mapped WRITE whose round failed in part, on a worker: its failed unit
 * writes again, judged (engine_aio_redo), the mapping ended either way.
 * True when the write is done; else the synchronous path writes it again.
 */
static bool write_redo(struct ring_ent *ent)
{
	int res[ENGINE_AIO_MAX];
	unsigned i;
	bool done;

	for (i = 0; i < ent->ar.n; i++)
		res[i] = ent->uio[i].res;
	done = engine_aio_redo(ent->aio_e, &ent->ar, res) == 0;
	engine_aio_unmap(ent->aio_e, &ent->ar, done);
	ent->aio_redo = false;
	aio_unpin(ent);
	file_put(ent->aio_file);
	ent->aio_file = NULL;
	return done;
}

/* A worker served @ent: hand it back to its queue's thread to commit. */
static void ring_hand_back(struct ring_ent *ent)
{
	if (ent->aio_flush) {
		ent->res = flush_end(ent, true);
		ring_done_push(ent);
		return;
	}
	if (ent->aio_redo && write_redo(ent)) {
		struct fuse_write_out wo = { .size = ent->aio_size };

		ent->res = reply_struct(&ent->r, &wo, sizeof(wo));
		ring_done_push(ent);
		return;
	}
	ent->res = serve(ent->q->f, &ent->r);
	if (ent->r.noreply)
		ent->res = 0;
	ring_done_push(ent);
}

/*
 * The engine let go of the stripe lock a queued request waited for (from any
 * thread): its queue's thread maps it again (ring_commit_done).
 */
static void aio_resume(struct engine_aio *ar)
{
	struct ring_ent *ent = (struct ring_ent *)((char *)ar - offsetof(struct ring_ent, ar));

	ent->resumed = true;
	ring_done_push(ent);
}

/* Watch the queue's eventfd on its ring (a multishot poll, re-armed when it ends). */
static void ring_watch_done(struct ring_queue *q)
{
	struct io_uring_sqe *sqe;

	pthread_mutex_lock(&q->sq_mu);
	sqe = ring_sqe(q);
	if (sqe) {
		io_uring_prep_poll_multishot(sqe, q->efd, POLLIN);
		io_uring_sqe_set_data(sqe, &q->efd_ent);
	}
	pthread_mutex_unlock(&q->sq_mu);
}

static bool aio_start(struct ring_ent *ent);
static void pool_push(struct rt_fuse *f, struct ring_ent *ent);
static void walk_step(struct ring_ent *ent, bool ok);

/* The queue's done list, taken whole (@close: the queue takes no walk piece after). */
static struct ring_ent *done_take(struct ring_queue *q, bool close)
{
	struct ring_ent *ent;

	pthread_mutex_lock(&q->done_mu);
	q->closing = q->closing || close;
	ent = q->done_head;
	q->done_head = NULL;
	pthread_mutex_unlock(&q->done_mu);
	return ent;
}

/* The engine's clock for holders' times (engine_aio_expire), in ns. */
static uint64_t monotonic_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/*
 * A WRITE queued on a stripe lock is woken (the lock let go, an offer for
 * a holder, or its time): map it again. Leaving a failed ring, it is never
 * queued anew: its offer is withdrawn unless a holder writes it, a holder
 * gives up.
 */
static void aio_resume_run(struct ring_queue *q, struct ring_ent *ent)
{
	q->queued_ents--;
	if (ent->timed) {
		ent->timed = false;
		q->timed_ents--;
	}
	if (q->broken)
		ent->ar.queued = ENGINE_AIO_QUEUED_MAX;
	if (!aio_start(ent))
		pool_push(q->f, ent);
}

/*
 * Holders waiting on the ring whose time came (all of them on a failed
 * ring): map them again, unless an offer woke them first (engine_aio_expire;
 * then their resume is on the done list). Returns the earliest time to
 * come, CLOCK_MONOTONIC ns (0: none).
 */
static uint64_t queue_run_timers(struct ring_queue *q)
{
	uint64_t now, next = 0;
	unsigned i;

	if (!q->timed_ents)
		return 0;
	now = monotonic_ns();
	for (i = 0; i < q->f->depth; i++) {
		struct ring_ent *ent = &q->ents[i];

		if (!ent->timed)
			continue;
		if (ent->ar.wake_ns <= now || q->broken) {
			ent->timed = false;
			q->timed_ents--;
			if (engine_aio_expire(ent->aio_e, &ent->ar))
				aio_resume_run(q, ent);
		}
		if (ent->timed && (!next || ent->ar.wake_ns < next))
			next = ent->ar.wake_ns;
	}
	return next;
}

/*
 * On the queue's thread: commit what the workers have served, map again
 * the WRITEs a stripe lock let go of, start the walk pieces handed to it.
 * On a failed ring (queue_leave_early) nothing is committed nor submitted:
 * a piece ends, a WRITE settles its offer and goes to a worker (aio_start),
 * so that nothing of it stays on a bucket.
 */
static void queue_run_done(struct ring_queue *q)
{
	struct ring_ent *ent = done_take(q, q->broken);

	while (ent) {
		struct ring_ent *next = ent->next;

		if (ent->walk_start) {
			ent->walk_start = false;
			walk_step(ent, !q->broken);
		} else if (ent->resumed) {
			ent->resumed = false;
			aio_resume_run(q, ent);
		} else if (!q->broken) {
			ring_commit(ent, ent->res);
		}
		ent = next;
	}
}

static void ring_commit_done(struct ring_queue *q, unsigned flags)
{
	eventfd_t v;

	(void)eventfd_read(q->efd, &v);		/* non-blocking: reset before taking the list */
	queue_run_done(q);
	if (!(flags & IORING_CQE_F_MORE))
		ring_watch_done(q);
}

/* Pop the head of the list @head..@tail (NULL: empty). */
static struct ring_ent *ent_list_pop(struct ring_ent **head, struct ring_ent **tail)
{
	struct ring_ent *ent = *head;

	if (ent) {
		*head = ent->next;
		if (!*head)
			*tail = NULL;
	}
	return ent;
}

static void ent_list_push(struct ring_ent **head, struct ring_ent **tail, struct ring_ent *ent)
{
	ent->next = NULL;
	if (*tail)
		(*tail)->next = ent;
	else
		*head = ent;
	*tail = ent;
}

/*
 * The next entry for a worker, a redo first; the reserve worker takes
 * redos alone. NULL: the pool stops (what is queued left to the others).
 */
static struct ring_ent *pool_take(struct rt_fuse *f, bool reserve)
{
	struct ring_ent *ent;

	pthread_mutex_lock(&f->pool_mu);
	while (!f->redo_head && (reserve || !f->pool_head) && !f->pool_stop)
		pthread_cond_wait(reserve ? &f->redo_cond : &f->pool_cond, &f->pool_mu);
	ent = ent_list_pop(&f->redo_head, &f->redo_tail);
	if (!ent && !reserve)
		ent = ent_list_pop(&f->pool_head, &f->pool_tail);
	pthread_mutex_unlock(&f->pool_mu);
	return ent;
}

static void *pool_main(void *arg)
{
	struct rt_fuse *f = arg;
	struct ring_ent *ent;

	while ((ent = pool_take(f, false)))
		ring_hand_back(ent);
	return NULL;
}

static void *pool_reserve_main(void *arg)
{
	struct rt_fuse *f = arg;
	struct ring_ent *ent;

	while ((ent = pool_take(f, true)))
		ring_hand_back(ent);
	return NULL;
}

static void pool_push(struct rt_fuse *f, struct ring_ent *ent)
{
	atomic_fetch_add_explicit(&f->worker_requests, 1, memory_order_relaxed);
	pthread_mutex_lock(&f->pool_mu);
	if (ent->aio_redo) {
		ent_list_push(&f->redo_head, &f->redo_tail, ent);
		pthread_cond_signal(&f->redo_cond);
	} else {
		ent_list_push(&f->pool_head, &f->pool_tail, ent);
	}
	pthread_cond_signal(&f->pool_cond);
	pthread_mutex_unlock(&f->pool_mu);
}

static void aio_submit(struct ring_ent *ent);

/* The backend's hold on the request's range ends (its unit I/O is over). */
static void aio_unpin(struct ring_ent *ent)
{
	struct fuse_file *x = ent->aio_file;

	if (ent->pinned) {
		ent->pinned = false;
		x->be.unmap(x->be.ctx, ent->pin);
	}
}

/*
 * Every unit I/O of the event-driven request's round completed: the next
 * round, or reply, or serve it again synchronously.
 */
static void aio_finish(struct ring_ent *ent)
{
	struct rt_fuse *f = ent->q->f;
	bool ok = !ent->aio_failed;
	int next;

	if (ent->wp) {
		walk_step(ent, ok);
		return;
	}
	if (ent->aio_flush) {
		int res[ENGINE_AIO_MAX];

		engine_flush_unmap(ent->aio_e, &ent->ar, ok ? NULL : flush_results(ent, res));
		if (ok)
			ring_commit(ent, flush_end(ent, false));
		else
			pool_push(f, ent);	/* engine_flush_done judges the errors */
		return;
	}
	/*
	 * A round of writes failed in part: a worker runs the failed writes
	 * again and judges them, the stripes still locked (write_redo), as
	 * the synchronous path would; only if that fails is the request
	 * written again, its stripes owed a resync. On a failed ring too:
	 * with a role faulty, a stripe left half-written could not be mended
	 * from its data.
	 */
	if (!ok && ent->ar.write) {
		ent->aio_redo = true;
		pool_push(f, ent);
		return;
	}
	/*
	 * A failed ring runs no further round: the synchronous path does the
	 * request. The round that completed whole left its stripes
	 * consistent: nothing partial, none owed a resync (@ar->n 0).
	 */
	if (ok && ent->q->broken)
		ent->ar.n = 0;
	ok = ok && !ent->q->broken;
	next = ok ? engine_aio_next(ent->aio_e, &ent->ar) : 0;
	if (next > 0) {
		aio_submit(ent);
		return;
	}
	ok = ok && next == 0;
	engine_aio_unmap(ent->aio_e, &ent->ar, ok);
	aio_unpin(ent);
	file_put(ent->aio_file);	/* the synchronous path holds it again */
	ent->aio_file = NULL;
	if (ok && ent->ar.write) {
		struct fuse_write_out wo = { .size = ent->aio_size };

		ring_commit(ent, reply_struct(&ent->r, &wo, sizeof(wo)));
	} else if (ok) {
		ring_commit(ent, (int)ent->aio_size);
	} else {
		pool_push(f, ent);	/* engine_read/engine_write judge the error */
	}
}

static void aio_unit_done(struct ring_uio *u, int res)
{
	struct ring_ent *ent = u->ent;

	u->res = res;
	if (res < 0 || (uint32_t)res != u->len)
		ent->aio_failed = true;
	if (--ent->pending == 0) {
		ent->q->uio_ents--;
		aio_finish(ent);
	}
}

/*
 * A READ or WRITE that the engine maps (engine_read_map, engine_write_map),
 * served on the queue's own ring: the engine maps it to unit I/O straight
 * into (or from) the entry's payload buffer, and the reply is committed when
 * their completions arrive (aio_unit_done; a raid5 write has a second round,
 * engine_aio_next). False when the request needs the synchronous path (the
 * engine said so, or it is not a plain read or write of the file).
 */
static bool aio_start(struct ring_ent *ent)
{
	struct ring_queue *q = ent->q;
	struct rt_fuse *f = q->f;
	bool write = ent->r.in.opcode == FUSE_WRITE;
	struct fuse_file *x = ent->aio_file;
	struct fuse_write_in wi;
	struct fuse_read_in ri;
	uint64_t off, fsize;
	size_t size;
	int r = 0;

	if (x) {
		/*
		 * Resumed from a stripe lock: the file stayed held, and the range
		 * is the one mapped first, which its offers and done parts name
		 * (the file may have grown meanwhile).
		 */
		off = ent->aio_off;
		size = ent->aio_size;
		goto map;
	}
	if (write) {
		memcpy(&wi, ent->r.op.raw, sizeof(wi));
		off = wi.offset;
		size = wi.size;
		if (size > ent->r.payload_len)
			return false;
	} else {
		memcpy(&ri, ent->r.op.raw, sizeof(ri));
		off = ri.offset;
		size = ri.size;
	}
	if (off >= UINT64_MAX / 2 || size == 0 || size > f->payload_size)
		return false;
	x = file_get(f, ent->r.in.nodeid);
	fsize = x ? file_size(x) : 0;
	if (!x || off >= fsize || (x->be.read && !x->be.map)) {
		file_put(x);
		return false;
	}
	if (size > fsize - off)
		size = (size_t)(fsize - off);
	ent->aio_file = x;
	ent->aio_e = x->e;
	ent->aio_size = (uint32_t)size;
	if (x->be.map) {
		/* A backend's file: its range of the engine, or zeros. */
		r = x->be.map(x->be.ctx, write, off, size, &off, &ent->pin);
		if (r == 1 && !write) {
			memset(ent->payload, 0, size);
			r = 1;
		} else if (r == 0) {
			ent->pinned = true;
			ent->aio_e = x->be.engine;
		}
	}
	ent->aio_off = off;
	/*
	 * A backend's pin covers the request only while it is mapped: one
	 * queued on a stripe lock would let its block change hands (a
	 * snapshot, a discard) before a holder wrote its part there.
	 */
	ent->ar.resume = ent->pinned ? NULL : aio_resume;
map:
	if (r == 0)
		r = write ? engine_write_map(ent->aio_e, ent->payload, size, off, &ent->ar) :
			    engine_read_map(ent->aio_e, ent->payload, size, off, &ent->ar);
	/* Queued on a stripe lock: mapped again when resumed, the file held meanwhile. */
	if (r == -EINPROGRESS) {
		q->queued_ents++;
		if (ent->ar.wake_ns) {
			ent->timed = true;	/* a holder waiting for its stripes' parts */
			q->timed_ents++;
		}
		return true;
	}
	/* The ring failed (queue_leave_early): a worker does it. */
	if (r == 0 && q->broken) {
		ent->ar.n = 0;	/* none of it went out: no stripe is owed a resync for it */
		engine_aio_unmap(ent->aio_e, &ent->ar, false);
		r = -EAGAIN;
	}
	if (r != 0) {
		/* For the synchronous path: the part that holders of its stripes did not write. */
		if (write && ent->ar.done_head + ent->ar.done_tail) {
			ent->r.part = true;
			ent->r.part_size = size;
			ent->r.part_head = ent->ar.done_head;
			ent->r.part_tail = ent->ar.done_tail;
		}
		/* Served by read/write; zeros: replied. */
		aio_unpin(ent);
		file_put(x);
		ent->aio_file = NULL;
	}
	if (r == 1) {
		ring_commit(ent, (int)size);
		return true;
	}
	if (r < 0)
		return false;
	aio_submit(ent);
	return true;
}

/*
 * A FLUSH or FSYNC of an engine's file, served on the queue's ring: the
 * units' fsyncs (engine_flush_map), the reply when they completed. False
 * when the synchronous path must serve it (a backend's file, the engine
 * said so).
 */
static bool flush_start(struct ring_ent *ent)
{
	struct fuse_file *x = file_get(ent->q->f, ent->r.in.nodeid);

	if (!x || x->be.read || x->be.flush || engine_flush_map(x->e, &ent->ar) != 0) {
		file_put(x);
		return false;
	}
	ent->aio_file = x;
	ent->aio_e = x->e;
	ent->aio_flush = true;
	aio_submit(ent);
	return true;
}

/* Whether [@buf, @buf + @len) lies in @ent's payload buffer (registered buffer number ent - q->ents). */
static bool in_payload(const struct ring_ent *ent, const void *buf, size_t len)
{
	uintptr_t b = (uintptr_t)buf, p = (uintptr_t)ent->payload;

	return b >= p && len <= ent->q->f->payload_size && b - p <= ent->q->f->payload_size - len;
}

/* Queue the unit I/O of the entry's mapped round on the queue's ring. */
static void aio_submit(struct ring_ent *ent)
{
	struct ring_queue *q = ent->q;
	unsigned i, unsent;

	ent->aio_failed = false;
	ent->pending = ent->ar.n;
	/* Nothing to run (another request wrote it with its stripe): reply now. */
	if (ent->pending == 0) {
		aio_finish(ent);
		return;
	}
	/* On the queue's thread: submitted with the rest of the batch. */
	pthread_mutex_lock(&q->sq_mu);
	for (i = 0; i < ent->ar.n; i++) {
		const struct engine_unit_io *io = &ent->ar.io[i];
		struct io_uring_sqe *sqe = ring_sqe(q);

		if (!sqe)
			break;
		ent->uio[i] = (struct ring_uio){ ent, io->len, -ECANCELED };
		if (io->fsync) {
			io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
		} else if (q->fixed_payload && !ent->wp && in_payload(ent, io->buf, io->len)) {
			/* No page pinning per I/O: the buffer's pages are the ring's already. */
			if (io->write)
				io_uring_prep_write_fixed(sqe, io->fd, io->buf, io->len, io->off,
							  (int)(ent - q->ents));
			else
				io_uring_prep_read_fixed(sqe, io->fd, io->buf, io->len, io->off,
							 (int)(ent - q->ents));
		} else if (io->write) {
			io_uring_prep_write(sqe, io->fd, io->buf, io->len, io->off);
		} else {
			io_uring_prep_read(sqe, io->fd, io->buf, io->len, io->off);
		}
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&ent->uio[i] | 1);
	}
	pthread_mutex_unlock(&q->sq_mu);
	if (i > 0)
		q->uio_ents++;
	unsent = ent->ar.n - i;
	if (unsent) {
		/*
		 * No room on the ring for the rest: failed, as the round's
		 * (a write's unsent writes are redone with the failed ones).
		 */
		for (; i < ent->ar.n; i++)
			ent->uio[i].res = -ECANCELED;
		ent->aio_failed = true;
		ent->pending -= unsent;
		if (ent->pending == 0)
			aio_finish(ent);
	}
}

/*
 * The loop host of the engine's walks (engine_set_loop_host): a piece
 * goes to the queues in turn, on one of the queue's walk entries, and its
 * rounds run there as a mapped request's do (aio_submit, aio_finish).
 */
static bool walk_submit(void *arg, struct engine_walk_piece *wp)
{
	struct rt_fuse *f = arg;
	struct ring_queue *q = &f->queues[atomic_fetch_add(&f->walk_rr, 1) % f->n_queues];
	struct ring_ent *ent;

	pthread_mutex_lock(&q->done_mu);
	ent = q->closing ? NULL : q->walk_free;
	if (ent) {
		q->walk_free = ent->next;
		q->walk_busy++;
	}
	pthread_mutex_unlock(&q->done_mu);
	if (!ent)
		return false;
	ent->wp = wp;
	ent->walk_start = true;
	ring_done_push(ent);
	return true;
}

/* On the queue's thread: the piece's next round, or the piece goes back to the walk. */
static void walk_step(struct ring_ent *ent, bool ok)
{
	struct ring_queue *q = ent->q;
	int r = engine_walk_piece_step(ent->wp, ok, &ent->ar);

	while (r > 0 && q->broken)
		r = engine_walk_piece_step(ent->wp, false, &ent->ar);	/* the walk does it */
	if (r > 0) {
		aio_submit(ent);
		return;
	}
	ent->wp = NULL;
	pthread_mutex_lock(&q->done_mu);
	ent->next = q->walk_free;
	q->walk_free = ent;
	q->walk_busy--;
	pthread_mutex_unlock(&q->done_mu);
}

/*
 * The connection has ended (@live 0): may the queue's thread go? Not while
 * a walk piece it took runs; from now on it takes none.
 */
static bool queue_walks_over(struct ring_queue *q)
{
	bool over;

	pthread_mutex_lock(&q->done_mu);
	q->closing = true;
	over = q->walk_busy == 0;
	pthread_mutex_unlock(&q->done_mu);
	return over;
}

/*
 * The queue's thread leaves before its connection ended (its ring failed):
 * it takes no more walk pieces, gives back those it never started, and
 * reaps for a while the unit I/O still on its ring: the walk waits for
 * every piece it handed out, and a drain of the engine for every mapped
 * request (each ends on the synchronous path, aio_finish).
 */
static void queue_leave_early(struct ring_queue *q)
{
	const struct timespec tick = { .tv_sec = 0, .tv_nsec = 100000000 };
	struct timespec now;
	time_t until;

	q->broken = true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* Ten seconds: beyond any gather window (1 s at most) and the I/O of a piece. */
	for (until = now.tv_sec + 10; now.tv_sec < until; clock_gettime(CLOCK_MONOTONIC, &now)) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		struct io_uring_cqe *cqe;
		uint64_t ud;
		int res;

		queue_run_done(q);
		(void)queue_run_timers(q);
		if (queue_walks_over(q) && !q->uio_ents && !q->queued_ents)
			break;
		if (io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts) < 0) {
			nanosleep(&tick, NULL);	/* a dead ring fails at once */
			continue;
		}
		ud = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&q->ring, cqe);
		if (ud & 1)
			aio_unit_done((struct ring_uio *)(uintptr_t)(ud & ~(uint64_t)1), res);
	}
	if (!queue_walks_over(q) || q->uio_ents || q->queued_ents)
		rt_log(RT_LOG_ERROR, "'%s': FUSE queue %u: %u requests or walk pieces are left on "
		       "a failed ring, %u requests queued on stripe locks; the array cannot be "
		       "drained until they end", q->f->name, q->qid, q->uio_ents, q->queued_ents);
}

/* A request arrived in @ent: copy it out of the shared buffers, then serve it. */
static void ring_request(struct ring_ent *ent)
{
	struct fuse_reqctx *r = &ent->r;
	struct rt_fuse *f = ent->q->f;
	uint32_t len = ent->hdr->ring_ent_in_out.payload_sz;

	memset(r, 0, sizeof(*r));
	memcpy(&r->in, ent->hdr->in_out, sizeof(r->in));
	memcpy(r->op.raw, ent->hdr->op_in, sizeof(r->op.raw));
	ent->commit_id = ent->hdr->ring_ent_in_out.commit_id;
	r->payload = ent->payload;
	r->payload_len = len < f->payload_size ? len : f->payload_size;
	r->out = ent->payload;
	r->out_cap = f->payload_size;
	atomic_fetch_add_explicit(&f->ring_requests, 1, memory_order_relaxed);
	ent->ar.done_head = ent->ar.done_tail = 0;
	ent->ar.queued = 0;
	ent->ar.wake_ns = 0;
	if ((r->in.opcode == FUSE_READ || r->in.opcode == FUSE_WRITE) && aio_start(ent))
		return;		/* replied when its unit I/O completes */
	if ((r->in.opcode == FUSE_FLUSH || r->in.opcode == FUSE_FSYNC) && flush_start(ent))
		return;
	if (needs_engine(r->in.opcode))
		pool_push(f, ent);	/* the queue goes on serving meanwhile */
	else
		ring_serve(ent);
}

static void ring_register_failed(struct ring_queue *q, int err)
{
	struct rt_fuse *f = q->f;

	if (atomic_exchange(&f->ring_failed, true))
		return;
	/*
	 * Once INIT said io_uring, the kernel holds every request until all
	 * queues are registered: end the connection rather than hang.
	 */
	rt_log(RT_LOG_ERROR, "'%s': FUSE over io_uring: queue %u cannot register: %s "
	       "(RAIDTOOL_FUSE_TRANSPORT=dev serves through /dev/fuse)", f->name, q->qid,
	       strerror(-err));
	rt_fuse_abort(f);
}

/* From now to @until (CLOCK_MONOTONIC ns), at least 1 µs. */
static struct __kernel_timespec ns_until(uint64_t until)
{
	uint64_t now = monotonic_ns(), d;

	d = until > now + 1000 ? until - now : 1000;
	return (struct __kernel_timespec){ .tv_sec = (long long)(d / 1000000000ull),
					   .tv_nsec = (long long)(d % 1000000000ull) };
}

/* A spin-wait's pause: the sibling hyperthread gets the core's time. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Poll before sleeping. Sending the batch and sleeping in one
 * io_uring_enter costs a wake-up per completion, and on a virtual machine
 * waking an idle vCPU (its HLT exit, the IPI) is the largest part of a
 * request's time: at QD1 a request waits on the queue's thread twice (for
 * the request itself, then for its unit I/O), and with both waits asleep
 * raidtool's 4k read latency over tmpfs units was twice the raw loop
 * device's, with both polled the same as it. So send the batch, then watch
 * the rings (a CQE, or task work flagged by IORING_SQ_TASKRUN) for up to
 * f->poll_ns before sleeping.
 *
 * A poll keeps the CPU from others: from fio and the loop workers that
 * make the next requests and complete the unit I/O. So only a queue with
 * at most one request's (or walk piece's) unit I/O in flight and nothing
 * queued on a stripe lock polls: with more, a completion comes soon
 * anyway and the CPU is better spent elsewhere (4k QD32 on 2 CPUs lost
 * about a tenth when every wait polled). And polls that find nothing
 * cost a CPU for nothing: units on a disk take longer than a poll, an
 * idle array's next request may be hours away. So each kind of wait (for
 * unit I/O; for requests alone) backs off on its own: POLL_MISSES_MAX
 * empty polls in a row and the next @backoff waits of that kind sleep at
 * once, the backoff doubling each time up to
 * POLL_BACKOFF_MAX; a poll that finds something resets it. Returns true
 * when something arrived: a CQE, or task work that may make one (the
 * caller runs it, and sleeps after all when it made none: the kernel sets
 * IORING_SQ_TASKRUN after queueing the work, so a run that took the work
 * first leaves the flag set with nothing behind it).
 */
static bool queue_poll(struct ring_queue *q)
{
	struct queue_poller *p = &q->poller[q->uio_ents ? 1 : 0];
	uint64_t end;

	/* uio_ents counts walk pieces' rounds in flight too (aio_submit). */
	if (!q->f->poll_ns || q->uio_ents > 1 || q->queued_ents)
		return false;
	if (p->skip) {
		p->skip--;
		return false;
	}
	if (io_uring_submit(&q->ring) < 0)
		return false;
	end = monotonic_ns() + q->f->poll_ns;
	do {
		for (int i = 0; i < 32; i++) {
			if (io_uring_cq_ready(&q->ring) ||
			    (IO_URING_READ_ONCE(*q->ring.sq.kflags) & IORING_SQ_TASKRUN)) {
				p->misses = 0;
				p->backoff = 0;
				return true;
			}
			cpu_relax();
		}
	} while (monotonic_ns() < end);
	if (++p->misses >= POLL_MISSES_MAX) {
		p->misses = 0;
		p->skip = p->backoff ? p->backoff : POLL_BACKOFF_MIN;
		p->backoff = p->skip < POLL_BACKOFF_MAX / 2 ? 2 * p->skip : POLL_BACKOFF_MAX;
	}
	return false;
}

static void *queue_main(void *arg)
{
	struct ring_queue *q = arg;
	struct rt_fuse *f = q->f;
	unsigned live = f->depth;
	bool wait = true, reg_ring, polled;

	thread_queue = q;
	if (q->single_issuer) {
		/* liburing 2.3 declares io_uring_enable_rings but does not export it. */
		int er = (int)syscall(__NR_io_uring_register, q->ring.ring_fd,
				      IORING_REGISTER_ENABLE_RINGS, NULL, 0);

		if (er < 0) {
			ring_register_failed(q, -errno);
			queue_leave_early(q);
			serving_ended(f);
			return NULL;
		}
	}
	/* io_uring_enter then skips the descriptor lookup (per thread: this one's). */
	reg_ring = io_uring_register_ring_fd(&q->ring) == 1;
	ring_watch_done(q);
	for (unsigned i = 0; i < f->depth; i++)
		ring_submit(&q->ents[i], FUSE_IO_URING_CMD_REGISTER);
	while (live > 0 || !queue_walks_over(q)) {
		struct io_uring_cqe *cqe;
		struct ring_ent *ent;
		uint64_t ud, next;
		unsigned flags;
		int res, r;

		next = queue_run_timers(q);
		if (wait) {
			/*
			 * What this batch queued (replies, unit reads) goes out,
			 * and the next completion is waited for, in one system
			 * call; while holders wait, no longer than the first's
			 * time. Only this thread takes sq_mu.
			 */
			pthread_mutex_lock(&q->sq_mu);
			/* Polled into task work that made no CQE: sleep after all. */
			polled = queue_poll(q) && io_uring_submit_and_get_events(&q->ring) >= 0 &&
				 io_uring_cq_ready(&q->ring);
			if (polled) {
				atomic_fetch_add_explicit(&f->polled, 1, memory_order_relaxed);
				r = 0;
			} else if (next) {
				struct __kernel_timespec ts = ns_until(next);

				r = io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);
			} else {
				r = io_uring_submit_and_wait(&q->ring, 1);
			}
			pthread_mutex_unlock(&q->sq_mu);
			if (r >= 0)
				r = io_uring_peek_cqe(&q->ring, &cqe);
			if (r == -EAGAIN || r == -ETIME)
				continue;	/* woken without a completion, or a holder's time */
		} else {
			r = io_uring_peek_cqe(&q->ring, &cqe);
			if (r == -EAGAIN) {
				wait = true;
				continue;
			}
		}
		if (r == -EINTR)
			continue;
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': FUSE queue %u: %s", f->name, q->qid,
			       strerror(-r));
			queue_leave_early(q);
			break;
		}
		wait = false;
		ud = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		flags = cqe->flags;
		io_uring_cqe_seen(&q->ring, cqe);
		if (ud == (uint64_t)(uintptr_t)&q->efd_ent) {
			ring_commit_done(q, res < 0 ? 0 : flags);
			continue;
		}
		if (ud & 1) {
			aio_unit_done((struct ring_uio *)(uintptr_t)(ud & ~(uint64_t)1), res);
			continue;
		}
		ent = (struct ring_ent *)(uintptr_t)ud;
		if (res == 0) {
			ring_request(ent);
			continue;
		}
		if (res == -EAGAIN || res == -EINTR) {
			ring_submit(ent, ent->last_cmd);
			continue;
		}
		/* -ENOTCONN: the connection ended (unmount or abort); the entry is released. */
		if (res != -ENOTCONN && ent->last_cmd == FUSE_IO_URING_CMD_REGISTER)
			ring_register_failed(q, res);
		else if (res != -ENOTCONN)
			rt_log(RT_LOG_DEBUG, "'%s': FUSE queue %u: a commit: %s", f->name, q->qid,
			       strerror(-res));
		live--;
	}
	if (reg_ring)
		io_uring_unregister_ring_fd(&q->ring);
	serving_ended(f);
	return NULL;
}

/* The number of possible CPUs: the kernel makes one queue per possible CPU. */
static unsigned possible_cpus(void)
{
	char buf[256];
	unsigned last = 0;
	FILE *fp;
	int n = get_nprocs_conf();

	fp = fopen("/sys/devices/system/cpu/possible", "re");
	if (fp) {
		if (fgets(buf, sizeof(buf), fp)) {
			/* "0-3" or "0,2-5": the highest number + 1 */
			for (char *s = buf; *s;) {
				char *end;
				unsigned long v;

				if (*s < '0' || *s > '9') {	/* not strtoul's: "-1" is a number to it */
					s++;
					continue;
				}
				v = strtoul(s, &end, 10);
				if (v > last && v < 65536)
					last = (unsigned)v;
				s = end;
			}
			n = (int)last + 1;
		}
		fclose(fp);
	}
	return n > 0 ? (unsigned)n : 1;
}

/*
 * The queue's ring. Completions (FUSE requests, unit I/O) reach the queue's
 * thread as task work. Best: DEFER_TASKRUN (run when the thread waits for
 * completions anyway, a wake-up only when one is due; needs SINGLE_ISSUER,
 * and R_DISABLED so that the queue's thread, not this one, becomes the
 * submitter). Else COOP_TASKRUN: cooperatively, when it next enters the
 * kernel, rather than by an interrupt while it runs. TASKRUN_FLAG lets
 * liburing's peek see that some is pending.
 */
static int ring_create(struct ring_queue *q)
{
	static const unsigned modes[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	struct io_uring_params params;
	int r = -EINVAL;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]) && r == -EINVAL; i++) {
		memset(&params, 0, sizeof(params));
		params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE | modes[i];
		params.cq_entries = RING_CQ_ENTRIES;
		r = io_uring_queue_init_params(RING_SQ_ENTRIES, &q->ring, &params);
		q->single_issuer = r == 0 && (modes[i] & IORING_SETUP_SINGLE_ISSUER);
	}
	return r;
}

/*
 * Register what every request uses: /dev/fuse (commits) and the entries'
 * payload buffers (unit I/O into them). Either is an optimisation only: a
 * failure (RLIMIT_MEMLOCK without CAP_IPC_LOCK, say) leaves the plain way.
 */
static void ring_register(struct ring_queue *q)
{
	struct rt_fuse *f = q->f;
	struct iovec *iov = calloc(f->depth, sizeof(*iov));

	q->fixed_fuse = io_uring_register_files(&q->ring, &f->fd, 1) == 0;
	if (!iov)
		return;
	for (unsigned i = 0; i < f->depth; i++)
		iov[i] = q->ents[i].iov[1];
	q->fixed_payload = io_uring_register_buffers(&q->ring, iov, f->depth) == 0;
	free(iov);
}

/* Rings and buffers for every queue, before INIT is answered (so a failure can fall back). */
static int ring_setup(struct rt_fuse *f)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t pages = page > 0 ? (size_t)page * (MAX_WRITE / 4096u) : MAX_WRITE;
	int r;

	f->n_queues = possible_cpus();
	f->depth = RING_ENTRIES_TOTAL / f->n_queues;
	f->depth = f->depth < RING_DEPTH_MIN ? RING_DEPTH_MIN :
		   f->depth > RING_DEPTH_MAX ? RING_DEPTH_MAX : f->depth;
	f->payload_size = MAX_WRITE > 8192 ? MAX_WRITE : 8192;
	if (pages > f->payload_size)
		f->payload_size = pages;
	f->queues = calloc(f->n_queues, sizeof(*f->queues));
	if (!f->queues)
		return -ENOMEM;
	for (unsigned qi = 0; qi < f->n_queues; qi++) {
		struct ring_queue *q = &f->queues[qi];

		q->f = f;
		q->qid = qi;
		pthread_mutex_init(&q->sq_mu, NULL);
		pthread_mutex_init(&q->done_mu, NULL);
		q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->efd < 0)
			return -errno;
		q->ents = calloc(f->depth, sizeof(*q->ents));
		if (!q->ents)
			return -ENOMEM;
		r = ring_create(q);
		if (r < 0)
			return r;
		q->ring_ok = true;
		for (unsigned i = 0; i < f->depth; i++) {
			struct ring_ent *ent = &q->ents[i];

			ent->q = q;
			if (posix_memalign((void **)&ent->hdr, 64, sizeof(*ent->hdr)) ||
			    posix_memalign((void **)&ent->payload, 4096, f->payload_size)) {
				ent->hdr = NULL;
				return -ENOMEM;
			}
			memset(ent->hdr, 0, sizeof(*ent->hdr));
			ent->iov[0] = (struct iovec){ ent->hdr, sizeof(*ent->hdr) };
			ent->iov[1] = (struct iovec){ ent->payload, f->payload_size };
		}
		q->walk_ents = calloc(WALK_ENTS, sizeof(*q->walk_ents));
		if (!q->walk_ents)
			return -ENOMEM;
		for (unsigned i = 0; i < WALK_ENTS; i++) {
			q->walk_ents[i].q = q;
			q->walk_ents[i].next = q->walk_free;
			q->walk_free = &q->walk_ents[i];
		}
		ring_register(q);
	}
	return 0;
}

static void ring_free(struct rt_fuse *f)
{
	if (!f->queues)
		return;
	for (unsigned qi = 0; qi < f->n_queues; qi++) {
		struct ring_queue *q = &f->queues[qi];

		if (q->ring_ok)
			io_uring_queue_exit(&q->ring);
		for (unsigned i = 0; q->ents && i < f->depth; i++) {
			free(q->ents[i].hdr);
			free(q->ents[i].payload);
		}
		free(q->ents);
		free(q->walk_ents);
		if (q->efd > 0)
			close(q->efd);
		pthread_mutex_destroy(&q->done_mu);
		pthread_mutex_destroy(&q->sq_mu);
	}
	free(f->queues);
	f->queues = NULL;
}

static int ring_start(struct rt_fuse *f)
{
	int r;

	f->pool = calloc(f->threads + 1, sizeof(*f->pool));
	if (!f->pool)
		return -ENOMEM;
	for (; f->n_pool <= f->threads; f->n_pool++) {
		r = spawn(&f->pool[f->n_pool], f->n_pool < f->threads ? pool_main
								      : pool_reserve_main, f);
		if (r < 0)
			return r;
	}
	for (unsigned qi = 0; qi < f->n_queues; qi++) {
		struct ring_queue *q = &f->queues[qi];

		pthread_mutex_lock(&f->live_mu);
		f->live++;
		pthread_mutex_unlock(&f->live_mu);
		r = spawn(&q->thread, queue_main, q);
		if (r < 0) {
			serving_ended(f);
			return r;
		}
		q->started = true;
	}
	return 0;
}

/*
 * FUSE over io_uring needs the fuse module's enable_uring parameter: set it
 * when we may (root), and say so. -EOPNOTSUPP when the kernel has none.
 */
static int uring_param_enable(const char *name)
{
	char v[8] = "";
	int fd;
	ssize_t n;

	fd = open(ENABLE_URING_PARAM, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -EOPNOTSUPP : -errno;
	n = read(fd, v, sizeof(v) - 1);
	close(fd);
	if (n > 0 && v[0] == 'Y')
		return 0;
	fd = open(ENABLE_URING_PARAM, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, "Y", 1);
	if (n < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	close(fd);
	rt_log(RT_LOG_INFO, "'%s': enabled FUSE over io_uring (wrote Y to %s)", name,
	       ENABLE_URING_PARAM);
	return 0;
}

/* ---- INIT, mount, lifecycle ---------------------------------------------- */

/* A file served by @e, or by @be when not NULL, in the first free slot. */
static int file_add(struct rt_fuse *f, const char *name, struct rt_engine *e,
		    const struct rt_fuse_backend *be, uint64_t entry_valid)
{
	struct fuse_file *x, *old;
	unsigned slot = MAX_FILES;
	int r = 0;

	if (!name || !*name || strchr(name, '/') || (!e && (!be || !be->read)))
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	if ((size_t)snprintf(x->name, sizeof(x->name), "%s", name) >= sizeof(x->name)) {
		free(x);
		return -ENAMETOOLONG;
	}
	x->e = e;
	if (be)
		x->be = *be;
	x->size = be ? be->size : engine_size(e);
	x->entry_valid = entry_valid;
	pthread_mutex_lock(&f->files_mu);
	old = file_by_name(f, name);
	if (old) {
		file_put(old);
		r = -EEXIST;
	}
	for (unsigned s = 0; r == 0 && s < MAX_FILES; s++) {
		if (!atomic_load(&f->file[s])) {
			slot = s;
			break;
		}
	}
	if (r == 0 && slot == MAX_FILES)
		r = -ENFILE;
	if (r < 0) {
		pthread_mutex_unlock(&f->files_mu);
		free(x);
		return r;
	}
	x->nodeid = FILE_INO + slot + ((uint64_t)f->files_gen++ << 32);
	x->older = f->files;
	f->files = x;
	atomic_store(&f->file[slot], x);
	pthread_mutex_unlock(&f->files_mu);
	return 0;
}

int rt_fuse_add_file(struct rt_fuse *f, const char *name, const struct rt_fuse_backend *be)
{
	if (!f || !be)
		return -EINVAL;
	/* Looked up again on every path walk: a name may go and come back as another file. */
	return file_add(f, name, NULL, be, 0);
}

/*
 * The kernel keeps a file's attributes (ATTR_TIMEOUT): FUSE_NOTIFY_INVAL_INODE
 * with a negative offset drops them (the page cache stays: direct I/O has
 * none), so the next stat or lookup asks GETATTR for the new size.
 */
static int notify_inval_attr(struct rt_fuse *f, uint64_t nodeid)
{
	struct fuse_out_header oh = {
		.len = (uint32_t)(sizeof(oh) + sizeof(struct fuse_notify_inval_inode_out)),
		.error = FUSE_NOTIFY_INVAL_INODE,
	};
	struct fuse_notify_inval_inode_out io = { .ino = nodeid, .off = -1 };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { &io, sizeof(io) } };

	if (writev(f->fd, iov, 2) < 0)
		return errno == ENOENT ? 0 : -errno;	/* ENOENT: the kernel holds no inode */
	return 0;
}

int rt_fuse_resize_file(struct rt_fuse *f, const char *name, uint64_t size)
{
	struct fuse_file *x;
	int r;

	x = file_by_name(f, name);
	if (!x)
		return -ENOENT;
	__atomic_store_n(&x->size, size, __ATOMIC_RELEASE);
	r = notify_inval_attr(f, x->nodeid);
	file_put(x);
	return r;
}

int rt_fuse_remove_file(struct rt_fuse *f, const char *name)
{
	const struct timespec tick = { .tv_nsec = 1000000L };
	struct fuse_file *x = NULL;

	pthread_mutex_lock(&f->files_mu);
	for (unsigned s = 0; s < MAX_FILES && !x; s++) {
		x = atomic_load(&f->file[s]);
		if (x && !strcmp(x->name, name)) {
			atomic_store(&x->gone, true);
			atomic_store(&f->file[s], NULL);
		} else {
			x = NULL;
		}
	}
	pthread_mutex_unlock(&f->files_mu);
	if (!x)
		return -ENOENT;
	/* The requests that hold it end (its backend may be freed after). */
	while (atomic_load(&x->users))
		nanosleep(&tick, NULL);
	return 0;
}

/* Read INIT from the new connection, choose the transport, answer it. */
static int answer_init(struct rt_fuse *f, enum rt_fuse_transport want, bool param_ok)
{
	uint8_t *buf = f->dev[0].buf + DEV_BUF_SLACK;
	struct fuse_reqctx r;
	struct fuse_init_in ii;
	struct fuse_init_out io;
	uint64_t kflags, flags;
	ssize_t n;
	int ret;

	do
		n = read(f->fd, buf, DEV_BUF_SIZE);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (!dev_request(buf, (size_t)n, &r) || r.in.opcode != FUSE_INIT)
		return -EPROTO;
	atomic_fetch_add_explicit(&f->dev_requests, 1, memory_order_relaxed);
	memcpy(&ii, r.op.raw, sizeof(ii));
	if (ii.major != FUSE_KERNEL_VERSION || ii.minor < 28) {
		rt_log(RT_LOG_ERROR, "'%s': the kernel speaks FUSE %u.%u; 7.28 or later is needed",
		       f->name, ii.major, ii.minor);
		dev_reply(f->fd, buf, r.in.unique, -EPROTO);
		return -EPROTO;
	}
	kflags = ii.flags | ((ii.flags & FUSE_INIT_EXT) ? (uint64_t)ii.flags2 << 32 : 0);
	flags = kflags & (FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_MAX_PAGES |
			  FUSE_PARALLEL_DIROPS | FUSE_INIT_EXT);
	if (want != RT_FUSE_DEV && param_ok) {
		if (!(kflags & FUSE_OVER_IO_URING)) {
			ret = -EOPNOTSUPP;
			rt_log(want == RT_FUSE_URING ? RT_LOG_ERROR : RT_LOG_INFO,
			       "'%s': the kernel does not offer FUSE over io_uring (FUSE %u.%u)%s",
			       f->name, ii.major, ii.minor,
			       want == RT_FUSE_URING ? "" : "; serving through /dev/fuse");
		} else {
			ret = ring_setup(f);
			if (ret < 0)
				rt_log(want == RT_FUSE_URING ? RT_LOG_ERROR : RT_LOG_INFO,
				       "'%s': cannot set up FUSE over io_uring: %s%s", f->name,
				       strerror(-ret), want == RT_FUSE_URING ? "" :
				       "; serving through /dev/fuse");
		}
		if (ret < 0) {
			ring_free(f);
			if (want == RT_FUSE_URING) {
				dev_reply(f->fd, buf, r.in.unique, -EPROTO);
				return -EOPNOTSUPP;
			}
		} else {
			f->ring_on = true;
			flags |= FUSE_OVER_IO_URING;
		}
	}
	memset(&io, 0, sizeof(io));
	io.major = FUSE_KERNEL_VERSION;
	io.minor = RT_FUSE_KERNEL_MINOR;
	io.max_readahead = ii.max_readahead;
	io.flags = (uint32_t)flags;
	io.flags2 = (uint32_t)(flags >> 32);
	io.max_background = MAX_BACKGROUND;
	io.congestion_threshold = CONGESTION_THRESHOLD;
	io.max_write = MAX_WRITE;
	io.time_gran = 1;
	io.max_pages = (uint16_t)(MAX_WRITE / 4096u);
	if (sysconf(_SC_PAGESIZE) > 0)
		io.max_pages = (uint16_t)(MAX_WRITE / (size_t)sysconf(_SC_PAGESIZE));
	memcpy(r.out, &io, sizeof(io));
	/* The queues register only once this write has returned (-EAGAIN before). */
	return dev_reply(f->fd, buf, r.in.unique, (int)sizeof(io));
}

static int do_mount(struct rt_fuse *f)
{
	char opts[128], source[300];

	snprintf(opts, sizeof(opts), "fd=%d,rootmode=%o,user_id=%u,group_id=%u,allow_other,"
		 "default_permissions", f->fd, S_IFDIR, (unsigned)getuid(), (unsigned)getgid());
	snprintf(source, sizeof(source), "raidtool:%s", f->name);
	if (mount(source, f->mnt, "fuse.raidtool", MS_NOSUID | MS_NODEV, opts) < 0)
		return -errno;
	return 0;
}

/*
 * The connection's id for fusectl is the mount's anonymous device number.
 * A plain stat(2) would ask us for the root's attributes (and wait for
 * INIT's answer, or for the ring to be ready): AT_STATX_DONT_SYNC takes
 * what the kernel has.
 */
static void find_conn_id(struct rt_fuse *f)
{
	struct statx stx;

	if (statx(AT_FDCWD, f->mnt, AT_STATX_DONT_SYNC, STATX_TYPE, &stx) == 0) {
		f->conn_id = (unsigned long)stx.stx_dev_major << 20 | stx.stx_dev_minor;
		f->have_conn = true;
	}
}

int rt_fuse_start(const struct rt_fuse_params *p, struct rt_fuse **out)
{
	enum rt_fuse_transport want;
	bool mounted = false, param_ok = false;
	struct rt_fuse *f;
	int r;

	if (!p || (!p->engine && !p->backend) || !p->name || !p->mountpoint || !out)
		return -EINVAL;
	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = -1;
	pthread_mutex_init(&f->dev_mu, NULL);
	pthread_mutex_init(&f->pool_mu, NULL);
	pthread_cond_init(&f->pool_cond, NULL);
	pthread_cond_init(&f->redo_cond, NULL);
	pthread_mutex_init(&f->live_mu, NULL);
	pthread_cond_init(&f->live_cond, NULL);
	pthread_mutex_init(&f->files_mu, NULL);
	f->blocksize = p->blocksize;
	f->started = time(NULL);
	f->poll_ns = (uint64_t)(p->poll_us < RT_FUSE_POLL_US_MAX ? p->poll_us :
				RT_FUSE_POLL_US_MAX) * 1000u;
	f->threads = p->threads ? p->threads : DEFAULT_THREADS;
	if (f->threads > MAX_THREADS)
		f->threads = MAX_THREADS;
	want = p->transport;
	if ((size_t)snprintf(f->name, sizeof(f->name), "%s", p->name) >= sizeof(f->name) ||
	    (size_t)snprintf(f->mnt, sizeof(f->mnt), "%s", p->mountpoint) >= sizeof(f->mnt)) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	r = file_add(f, p->name, p->engine, p->backend, ATTR_TIMEOUT);
	if (r < 0)
		goto fail;

	if (want != RT_FUSE_DEV) {
		r = uring_param_enable(f->name);
		param_ok = r == 0;
		if (r < 0)
			rt_log(want == RT_FUSE_URING ? RT_LOG_ERROR : RT_LOG_INFO,
			       "'%s': FUSE over io_uring is not available (%s: %s)%s", f->name,
			       ENABLE_URING_PARAM, r == -EOPNOTSUPP ?
			       "the kernel has no such parameter" : strerror(-r),
			       want == RT_FUSE_URING ? "" : "; serving through /dev/fuse");
		if (r < 0 && want == RT_FUSE_URING) {
			r = -EOPNOTSUPP;
			goto fail;
		}
	}

	f->fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (f->fd < 0) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot open /dev/fuse: %s", f->name, strerror(-r));
		goto fail;
	}
	if (posix_memalign((void **)&f->dev[0].buf, 4096, DEV_BUF_SIZE + DEV_BUF_SLACK)) {
		f->dev[0].buf = NULL;
		r = -ENOMEM;
		goto fail;
	}
	r = do_mount(f);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot mount FUSE on '%s': %s", f->name, f->mnt,
		       strerror(-r));
		goto fail;
	}
	mounted = true;
	find_conn_id(f);
	r = answer_init(f, want, param_ok);
	if (r < 0) {
		if (r != -EOPNOTSUPP)
			rt_log(RT_LOG_ERROR, "'%s': FUSE INIT on '%s' failed: %s", f->name, f->mnt,
			       strerror(-r));
		goto fail;
	}
	r = dev_spawn(f, 1);
	if (r == 0)
		r = f->ring_on ? ring_start(f) : dev_spawn(f, f->threads);
	if (r < 0)
		goto fail;
	f->callers_e = p->engine ? p->engine : p->backend ? p->backend->engine : NULL;
	engine_add_callers(f->callers_e, (int)f->threads, f->ring_on);
	if (f->ring_on && p->engine) {
		/* The walks' pieces run on the queues too. */
		f->host_e = p->engine;
		engine_set_loop_host(f->host_e, &(struct engine_loop_host){ walk_submit, f });
	}
	rt_log(RT_LOG_DEBUG, "'%s': FUSE on '%s' through %s", f->name, f->mnt,
	       rt_fuse_transport_name(f));
	*out = f;
	return 0;
fail:
	if (mounted) {
		umount2(f->mnt, MNT_DETACH | UMOUNT_NOFOLLOW);
		rt_fuse_abort(f);
		if (!rt_fuse_wait_end(f, 10000))
			return r;	/* threads still use @f: leave it to exit() */
	}
	rt_fuse_destroy(f);
	return r;
}

const char *rt_fuse_transport_name(const struct rt_fuse *f)
{
	return f && f->ring_on && !atomic_load(&f->ring_failed) ? "io_uring" : "/dev/fuse";
}

int rt_fuse_transport_parse(const char *s, enum rt_fuse_transport *out)
{
	if (!s || !*s || !strcmp(s, "auto"))
		*out = RT_FUSE_AUTO;
	else if (!strcmp(s, "dev"))
		*out = RT_FUSE_DEV;
	else if (!strcmp(s, "uring"))
		*out = RT_FUSE_URING;
	else
		return -EINVAL;
	return 0;
}

void rt_fuse_get_stats(struct rt_fuse *f, struct rt_fuse_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!f)
		return;
	st->ring_requests = atomic_load_explicit(&f->ring_requests, memory_order_relaxed);
	st->dev_requests = atomic_load_explicit(&f->dev_requests, memory_order_relaxed);
	st->worker_requests = atomic_load_explicit(&f->worker_requests, memory_order_relaxed);
	st->polled = atomic_load_explicit(&f->polled, memory_order_relaxed);
	if (f->ring_on && !atomic_load(&f->ring_failed)) {
		st->queues = f->n_queues;
		st->queue_depth = f->depth;
		st->poll_us = (unsigned)(f->poll_ns / 1000u);
	}
}

bool rt_fuse_wait_end(struct rt_fuse *f, long ms)
{
	struct timespec deadline;
	bool done;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->live_mu);
	while (f->live)
		if (pthread_cond_timedwait(&f->live_cond, &f->live_mu, &deadline) == ETIMEDOUT)
			break;
	done = f->live == 0;
	pthread_mutex_unlock(&f->live_mu);
	return done;
}

void rt_fuse_abort(struct rt_fuse *f)
{
	char path[96];
	int fd;

	if (!f || !f->have_conn)
		return;
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%lu/abort", f->conn_id);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT &&
	    mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) == 0)
		fd = open(path, O_WRONLY | O_CLOEXEC);	/* fusectl was not mounted */
	if (fd < 0) {
		rt_log(RT_LOG_WARN, "'%s': cannot abort the FUSE connection: %s: %s",
		       f->name, path, strerror(errno));
		return;
	}
	if (write(fd, "1", 1) < 0)
		rt_log(RT_LOG_WARN, "'%s': cannot abort the FUSE connection: %s",
		       f->name, strerror(errno));
	close(fd);
}

void rt_fuse_destroy(struct rt_fuse *f)
{
	if (!f)
		return;
	/* No piece is handed to us any more; the queues finish those they have. */
	if (f->host_e)
		engine_set_loop_host(f->host_e, NULL);
	for (unsigned i = 0; i < f->n_dev; i++)
		if (f->dev[i].started)
			pthread_join(f->dev[i].thread, NULL);
	for (unsigned qi = 0; f->queues && qi < f->n_queues; qi++)
		if (f->queues[qi].started)
			pthread_join(f->queues[qi].thread, NULL);
	pthread_mutex_lock(&f->pool_mu);
	f->pool_stop = true;
	pthread_cond_broadcast(&f->pool_cond);
	pthread_cond_broadcast(&f->redo_cond);
	pthread_mutex_unlock(&f->pool_mu);
	for (unsigned i = 0; i < f->n_pool; i++)
		pthread_join(f->pool[i], NULL);
	engine_add_callers(f->callers_e, -(int)f->threads, f->ring_on);
	free(f->pool);
	ring_free(f);
	for (unsigned i = 0; i < MAX_THREADS; i++) {
		if (f->dev[i].own_fd)
			close(f->dev[i].fd);
		free(f->dev[i].buf);
	}
	if (f->fd >= 0)
		close(f->fd);
	while (f->files) {
		struct fuse_file *x = f->files;

		f->files = x->older;
		free(x);
	}
	pthread_mutex_destroy(&f->files_mu);
	pthread_cond_destroy(&f->live_cond);
	pthread_mutex_destroy(&f->live_mu);
	pthread_cond_destroy(&f->pool_cond);
	pthread_cond_destroy(&f->redo_cond);
	pthread_mutex_destroy(&f->pool_mu);
	pthread_mutex_destroy(&f->dev_mu);
	free(f);
}
