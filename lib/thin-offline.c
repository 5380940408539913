// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A stopped array opened for the thin pool commands: scan, assemble, and
 * an engine in this process whose reads, writes and flushes are the
 * pool's struct thin_io. The units are held O_EXCL meanwhile, so an
 * activate (or a second pool command) is refused until we are done.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/fs.h>
#include <unistd.h>
#include <raidtool/assemble.h>
#include <raidtool/control.h>
#include <raidtool/engine.h>
#include <raidtool/log.h>
#include <raidtool/scan.h>
#include <raidtool/thin.h>
#include "assemble-internal.h"
#include "scan-internal.h"

struct thin_array {
	struct rt_assembly *as;
	struct rt_engine *e;
	int dev_fd;			/* a running array: its read-only device, O_DIRECT */
	uint64_t dev_size;
	struct thin_io io;
	bool write, was_clean, marked;
	char name[RT_NAME_MAX + 1];
};

/* Reads of a running array's device: O_DIRECT (the engine's view, no page cache). */
static int dev_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct thin_array *a = ctx;
	uint64_t start = off / 4096 * 4096, end = (off + len + 4095) / 4096 * 4096;
	uint8_t *b;
	int r = 0;

	if (posix_memalign((void **)&b, 4096, end - start))
		return -ENOMEM;
	if (pread(a->dev_fd, b, end - start, (off_t)start) != (ssize_t)(end - start))
		r = errno ? -errno : -EIO;
	else
		memcpy(buf, b + (off - start), len);
	free(b);
	return r;
}

static int dev_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	return -EROFS;
}

static int dev_flush(void *ctx)
{
	return 0;
}

/*
 * A running array holding a pool: read its last commit through the
 * array's read-only device (/dev/raidtool/NAME.pool).
 */
static int open_running(struct thin_array *a, const char *link)
{
	a->dev_fd = open(link, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (a->dev_fd < 0)
		return -errno;
	if (ioctl(a->dev_fd, BLKGETSIZE64, &a->dev_size) < 0)
		return -errno;
	a->io = (struct thin_io){ .ctx = a, .read = dev_read, .write = dev_write,
				  .flush = dev_flush };
	return 0;
}

static int eng_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct thin_array *a = ctx;

	return a->e ? engine_read(a->e, buf, len, off) : -EIO;
}

static int engine_start(struct thin_array *a, bool with_log)
{
	struct rt_sb sb = a->as->sb;
	int r;

	/* Without its log area the engine writes nothing until asked to. */
	if (!with_log)
		sb.unit.log_size = 0;
	r = engine_create(&sb, a->as->units, a->as->n_roles, &a->e);
	if (r < 0) {
		a->e = NULL;
		rt_log(RT_LOG_ERROR, "'%s': cannot start the engine: %s", a->name, strerror(-r));
	}
	return r;
}

/*
 * Until the first write the engine runs without its dirty-region log (it
 * would rewrite the log's header at once): a command that writes nothing,
 * a refusal among them, changes nothing on the units. The first write
 * marks the array dirty and restarts the engine with its log, as
 * activate does, until thin_array_close has flushed.
 */
static int eng_write(void *ctx, const void *buf, size_t len, uint64_t off)
{
	struct thin_array *a = ctx;
	int r;

	if (!a->write)
		return -EROFS;
	if (!a->marked) {
		r = engine_flush(a->e);
		if (r < 0)
			return r;
		engine_destroy(a->e);
		a->e = NULL;
		a->marked = true;
		if (a->was_clean) {
			r = assemble_set_state(a->as, RT_ARRAY_DIRTY);
			if (r < 0)
				return r;
		}
		r = engine_start(a, true);
		if (r < 0)
			return r;
	}
	return engine_write(a->e, buf, len, off);
}

static int eng_flush(void *ctx)
{
	struct thin_array *a = ctx;

	return a->e ? engine_flush(a->e) : -EIO;
}

int thin_array_open(const char *id, bool write, struct thin_array **out)
{
	const struct rt_scan_array *sa;
	struct rt_control_probe probe;
	struct rt_scan *s = NULL;
	struct thin_array *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->dev_fd = -1;
	a->write = write;
	r = scan_devices(&s);
	if (r == 0)
		r = scan_find(s, id, &sa);
	if (r < 0)
		goto fail;
	snprintf(a->name, sizeof(a->name), "%s", sa->sb.array.name);
	if (control_probe(sa->sb.array.uuid, &probe) == 0 && probe.state == RT_CONTROL_ACTIVE &&
	    !write && probe.link[0]) {
		r = open_running(a, probe.link);
		if (r < 0) {
			rt_log(RT_LOG_ERROR, "'%s': cannot read its running device '%s': %s",
			       a->name, probe.link, strerror(-r));
			goto fail;
		}
		scan_free(s);
		*out = a;
		return 0;
	}
	if (control_probe(sa->sb.array.uuid, &probe) == 0 && probe.state == RT_CONTROL_ACTIVE) {
		rt_log(RT_LOG_ERROR, "'%s': running (engine pid %d); this pool command works on a "
		       "stopped array: 'raidtool deactivate %s' first", a->name, (int)probe.pid,
		       a->name);
		r = -EBUSY;
		goto fail;
	}
	r = assemble_open(sa, false, &a->as);
	if (r < 0)
		goto fail;
	scan_free(s);
	s = NULL;
	a->was_clean = a->as->sb.state == RT_ARRAY_CLEAN;
	r = engine_start(a, false);
	if (r < 0)
		goto fail;
	a->io = (struct thin_io){ .ctx = a, .read = eng_read, .write = eng_write,
				  .flush = eng_flush };
	*out = a;
	return 0;
fail:
	scan_free(s);
	if (a->dev_fd >= 0)
		close(a->dev_fd);
	assemble_close(a->as);
	free(a);
	return r;
}

int thin_array_close(struct thin_array *a)
{
	int r = 0, r2;

	if (!a)
		return 0;
	if (a->dev_fd >= 0) {
		close(a->dev_fd);
		free(a);
		return 0;
	}
	if (!a->e) {
		r = -EIO;	/* the restart with the log failed: the array stays dirty */
	} else if (a->marked) {
		r = engine_flush(a->e);
		r2 = engine_dirtylog_clean(a->e);
		if (r == 0 && r2 < 0 && r2 != -EOPNOTSUPP)
			r = r2;
	}
	if (a->e)
		engine_destroy(a->e);
	if (a->marked && a->was_clean && r == 0)
		r = assemble_set_state(a->as, RT_ARRAY_CLEAN);
	assemble_close(a->as);
	free(a);
	return r;
}

const struct thin_io *thin_array_io(const struct thin_array *a)
{
	return &a->io;
}

uint64_t thin_array_bytes(const struct thin_array *a)
{
	return a->dev_fd >= 0 ? a->dev_size : a->e ? engine_size(a->e) : 0;
}

const char *thin_array_name(const struct thin_array *a)
{
	return a->name;
}

/* Copy [off, off + len) of the array into @fd at the same offset. */
static int copy_range(struct thin_array *a, int fd, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len);
	int r;

	if (!buf)
		return -ENOMEM;
	r = engine_read(a->e, buf, len, off);
	if (r == 0 && pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
		r = -errno;
	free(buf);
	return r;
}

/*
 * blkid probes a file: the array's first and last MiB (where signatures
 * live) in a sparse memory file of the array's size.
 */
#define PROBE_SPAN (1024u * 1024u)
int thin_array_signature(struct thin_array *a, char *type, size_t len)
{
	uint64_t size = engine_size(a->e);
	uint64_t head = size < PROBE_SPAN ? size : PROBE_SPAN;
	uint64_t tail = size - head < PROBE_SPAN ? size - head : PROBE_SPAN;
	int fd, r;

	fd = memfd_create("raidtool-probe", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	if (r == 0)
		r = copy_range(a, fd, 0, head);
	if (r == 0 && tail)
		r = copy_range(a, fd, size - tail, tail);
	if (r < 0)
		goto out;
	r = unit_probe_signature_fd(fd, type, len);
out:
	close(fd);
	return r;
}

int thin_array_open_pool(const char *id, bool write, struct thin_array **a,
			 struct thin_pool **p)
{
	int r = thin_array_open(id, write, a);

	if (r < 0)
		return r;
	r = thin_open(thin_array_io(*a), !write, p);
	if (r == -ENODATA)
		rt_log(RT_LOG_ERROR, "'%s': holds no thin pool (see 'raidtool pool create')",
		       (*a)->name);
	else if (r < 0)
		rt_log(RT_LOG_ERROR, "'%s': cannot open its thin pool: %s", (*a)->name,
		       strerror(-r));
	if (r < 0) {
		thin_array_close(*a);
		*a = NULL;
	}
	return r;
}
