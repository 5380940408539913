/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * rt-faultyfs BACKING MOUNTPOINT: a disk that can be made to fail on demand
 * (there is no dm-flakey without device-mapper). The mount holds two files:
 *
 *   disk  the backing file's bytes, read and written straight through
 *   ctl   write a command to change behaviour at run time:
 *           fail read|write|rw [START LEN [N]]  I/O overlapping the range: EIO
 *                                            (LEN 0: to the end; with N, only
 *                                            the next N such reads or writes
 *                                            fail; flushes fail only without N)
 *           drop [START LEN]                 writes there succeed, do nothing
 *                                            (punched holes count as writes)
 *           delay MS                         every read and write of the disk
 *                                            waits MS milliseconds first
 *           clear                            behave again (no faults, no delay)
 *         reading ctl shows the current rules and the fault counters.
 *
 * A loop device on MOUNTPOINT/disk is a unit that dies like a real disk.
 * Runs in the foreground; unmount (or SIGTERM) to stop.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RULES 16

enum fault_kind { FAULT_READ = 1, FAULT_WRITE = 2, FAULT_DROP = 4 };
#define FAULT_UNCOUNTED 8u	/* in @want: only rules without a count apply (fsync) */

struct fault_rule {
	unsigned kind;
	uint64_t start, len;	/* len 0: to the end */
	uint64_t count;		/* I/Os it still fails; 0: every one */
};

static struct {
	int fd;
	pthread_mutex_t lock;
	struct fault_rule rules[MAX_RULES];
	unsigned n_rules;
	uint64_t failed_reads, failed_writes, dropped_writes;
	unsigned delay_ms;
} fs = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

/*
 * Which of the fault kinds in @want apply to [off, off + len). A counted
 * rule that applies is used up by one: after N I/Os it is gone.
 */
static unsigned faults_at(uint64_t off, uint64_t len, unsigned want)
{
	unsigned kinds = 0, i = 0;

	pthread_mutex_lock(&fs.lock);
	while (i < fs.n_rules) {
		struct fault_rule *r = &fs.rules[i];
		uint64_t end = r->len ? r->start + r->len : UINT64_MAX;

		if (off < end && off + len > r->start && (r->kind & want) &&
		    !(r->count && (want & FAULT_UNCOUNTED))) {
			kinds |= r->kind & want;
			if (r->count && --r->count == 0) {
				fs.rules[i] = fs.rules[--fs.n_rules];
				continue;
			}
		}
		i++;
	}
	pthread_mutex_unlock(&fs.lock);
	return kinds;
}

static void io_delay(void)
{
	unsigned ms = __atomic_load_n(&fs.delay_ms, __ATOMIC_RELAXED);

	if (ms)
		usleep(ms * 1000u);
}

static int ctl_command(const char *buf, size_t size)
{
	char cmd[256], what[16] = "";
	unsigned long long start = 0, len = 0, count = 0;
	struct fault_rule rule = { 0 };
	unsigned ms;

	if (size >= sizeof(cmd))
		return -EINVAL;
	memcpy(cmd, buf, size);
	cmd[size] = '\0';
	if (!strncmp(cmd, "clear", 5)) {
		pthread_mutex_lock(&fs.lock);
		fs.n_rules = 0;
		pthread_mutex_unlock(&fs.lock);
		__atomic_store_n(&fs.delay_ms, 0, __ATOMIC_RELAXED);
		return 0;
	}
	if (sscanf(cmd, "delay %u", &ms) == 1) {
		__atomic_store_n(&fs.delay_ms, ms, __ATOMIC_RELAXED);
		return 0;
	}
	if (sscanf(cmd, "fail %15s %llu %llu %llu", what, &start, &len, &count) >= 1) {
		if (!strcmp(what, "read"))
			rule.kind = FAULT_READ;
		else if (!strcmp(what, "write"))
			rule.kind = FAULT_WRITE;
		else if (!strcmp(what, "rw"))
			rule.kind = FAULT_READ | FAULT_WRITE;
		else
			return -EINVAL;
	} else if (!strncmp(cmd, "drop", 4)) {
		/* The range is optional: absent, every write is dropped. */
		if (sscanf(cmd, "drop %llu %llu", &start, &len) < 0)
			start = len = 0;
		rule.kind = FAULT_DROP;
	} else {
		return -EINVAL;
	}
	rule.start = start;
	rule.len = len;
	rule.count = count;
	pthread_mutex_lock(&fs.lock);
	if (fs.n_rules == MAX_RULES) {
		pthread_mutex_unlock(&fs.lock);
		return -ENOSPC;
	}
	fs.rules[fs.n_rules++] = rule;
	pthread_mutex_unlock(&fs.lock);
	return 0;
}

static int ctl_render(char *buf, size_t len)
{
	int n;

	pthread_mutex_lock(&fs.lock);
	n = snprintf(buf, len, "failed_reads %" PRIu64 "\nfailed_writes %" PRIu64
		     "\ndropped_writes %" PRIu64 "\ndelay_ms %u\n", fs.failed_reads,
		     fs.failed_writes, fs.dropped_writes, fs.delay_ms);
	for (unsigned i = 0; i < fs.n_rules && n > 0 && (size_t)n < len; i++)
		n += snprintf(buf + n, len - (size_t)n, "rule %s%s%s %" PRIu64 " %" PRIu64
			      " %" PRIu64 "\n",
			      fs.rules[i].kind & FAULT_READ ? "r" : "",
			      fs.rules[i].kind & FAULT_WRITE ? "w" : "",
			      fs.rules[i].kind & FAULT_DROP ? "drop" : "",
			      fs.rules[i].start, fs.rules[i].len, fs.rules[i].count);
	pthread_mutex_unlock(&fs.lock);
	return n;
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct stat bst;

	(void)fi;
	memset(st, 0, sizeof(*st));
	if (!strcmp(path, "/")) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (!strcmp(path, "/disk")) {
		if (fstat(fs.fd, &bst) < 0)
			return -errno;
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = bst.st_size;
	} else if (!strcmp(path, "/ctl")) {
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = 4096;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off; (void)fi; (void)flags;
	if (strcmp(path, "/"))
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "disk", NULL, 0, 0);
	fill(buf, "ctl", NULL, 0, 0);
	return 0;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/disk") && strcmp(path, "/ctl"))
		return -ENOENT;
	fi->direct_io = 1;	/* no page cache between the loop device and the faults */
	return 0;
}

static int ffs_read(const char *path, char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ssize_t n;

	(void)fi;
	if (!strcmp(path, "/ctl")) {
		char text[4096];
		int len = ctl_render(text, sizeof(text));

		if (off >= len)
			return 0;
		if (size > (size_t)(len - off))
			size = (size_t)(len - off);
		memcpy(buf, text + off, size);
		return (int)size;
	}
	io_delay();
	if (faults_at((uint64_t)off, size, FAULT_READ)) {
		__atomic_add_fetch(&fs.failed_reads, 1, __ATOMIC_RELAXED);
		return -EIO;
	}
	n = pread(fs.fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int ffs_write(const char *path, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	unsigned kinds;
	ssize_t n;

	(void)fi;
	if (!strcmp(path, "/ctl")) {
		int r = ctl_command(buf, size);

		return r < 0 ? r : (int)size;
	}
	io_delay();
	kinds = faults_at((uint64_t)off, size, FAULT_WRITE | FAULT_DROP);
	if (kinds & FAULT_WRITE) {
		__atomic_add_fetch(&fs.failed_writes, 1, __ATOMIC_RELAXED);
		return -EIO;
	}
	if (kinds & FAULT_DROP) {
		__atomic_add_fetch(&fs.dropped_writes, 1, __ATOMIC_RELAXED);
		return (int)size;
	}
	n = pwrite(fs.fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

/* A punched hole (a loop device's discard) is a write: the write rules apply. */
static int ffs_fallocate(const char *path, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	unsigned kinds;

	(void)fi;
	if (strcmp(path, "/disk") || mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	io_delay();
	kinds = faults_at((uint64_t)off, (uint64_t)len, FAULT_WRITE | FAULT_DROP);
	if (kinds & FAULT_WRITE) {
		__atomic_add_fetch(&fs.failed_writes, 1, __ATOMIC_RELAXED);
		return -EIO;
	}
	if (kinds & FAULT_DROP) {
		__atomic_add_fetch(&fs.dropped_writes, 1, __ATOMIC_RELAXED);
		return 0;
	}
	return fallocate(fs.fd, mode, off, len) < 0 ? -errno : 0;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path; (void)fi;
	/* A counted rule fails the next N writes, not flushes. */
	if (faults_at(0, UINT64_MAX, FAULT_WRITE | FAULT_UNCOUNTED))
		return -EIO;
	return (datasync ? fdatasync(fs.fd) : fsync(fs.fd)) < 0 ? -errno : 0;
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)path; (void)size; (void)fi;
	return 0;	/* "echo cmd > ctl" truncates first; the disk keeps its size */
}

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	conn->max_write = 1u << 20;
	conn->max_background = 64;
	cfg->direct_io = 1;
	return NULL;
}

static const struct fuse_operations ffs_ops = {
	.init = ffs_init,
	.getattr = ffs_getattr,
	.readdir = ffs_readdir,
	.open = ffs_open,
	.read = ffs_read,
	.write = ffs_write,
	.fsync = ffs_fsync,
	.truncate = ffs_truncate,
	.fallocate = ffs_fallocate,
};

int main(int argc, char **argv)
{
	char *fargv[] = { argv[0], "-f", "-o", "max_threads=16", NULL, NULL };

	if (argc != 3) {
		fprintf(stderr, "usage: rt-faultyfs BACKING MOUNTPOINT\n");
		return 2;
	}
	fs.fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fs.fd < 0) {
		perror(argv[1]);
		return 1;
	}
	fargv[4] = argv[2];
	return fuse_main(5, fargv, &ffs_ops, NULL);
}
