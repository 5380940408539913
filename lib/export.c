/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The array as a block device: FUSE lowlevel session serving one file,
 * a loop device on it, and /dev/raidtool/NAME.
 *
 * Ordering matters both ways. Up: the session loop must already be serving
 * when the loop device is configured, because the kernel opens and reads
 * the file. Down: the loop device lets go of the file first; then the mount
 * is detached lazily, the kernel aborts the connection once the last
 * reference to the file system is gone, and the workers see ENODEV and end.
 */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <raidtool/engine.h>
#include <raidtool/export.h>
#include <raidtool/format.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>

#define FILE_INO 2
#define DEFAULT_THREADS 16u		/* the engine runs 16 requests at once */
#define MAX_THREADS 256u
#define MAX_WRITE (1u << 20)		/* libfuse's buffer holds 256 pages */
#define MAX_BACKGROUND 128u		/* the kernel's default of 12 starves a loop device */
#define CONGESTION_THRESHOLD 96u
#define ATTR_TIMEOUT 86400.0		/* the file never changes size */
#define THREAD_STACK "262144"		/* FUSE workers: stacks are mlock'ed */
#define UNBIND_WAIT_MS 10000
#define SCANNER_WAIT_MS 50
#define SCANNER_WAIT_TRIES 60		/* 3 s for another command's scan to pass */
#define LOOP_END_WAIT_MS 10000

struct thread_buf {
	size_t len;
	void *p;
};

struct rt_export {
	struct rt_engine *e;
	char name[RT_NAME_MAX + 1];
	char mnt[PATH_MAX];
	char file[PATH_MAX];
	char link[PATH_MAX];
	char dev[64];
	uint64_t size;
	uint32_t blocksize;
	time_t started;

	struct fuse_session *se;
	struct fuse_loop_config *cfg;
	pthread_t thread;
	bool thread_started, mounted, attached, linked;
	bool have_conn;
	unsigned long conn_id;		/* /sys/fs/fuse/connections/<id> */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool loop_done;
	int loop_ret;

	pthread_key_t bufkey;
	bool have_key;
};

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- FUSE operations ---------------------------------------------------- */

static void file_attr(const struct rt_export *x, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FILE_INO;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	st->st_size = (off_t)x->size;
	st->st_blksize = x->blocksize;
	st->st_blocks = (blkcnt_t)(x->size / 512);
	st->st_atime = st->st_mtime = st->st_ctime = x->started;
}

static void root_attr(const struct rt_export *x, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | 0700;
	st->st_nlink = 2;
	st->st_atime = st->st_mtime = st->st_ctime = x->started;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = MAX_WRITE;
	conn->max_background = MAX_BACKGROUND;
	conn->congestion_threshold = CONGESTION_THRESHOLD;
	/* The loop device submits asynchronous direct I/O: let it stay parallel. */
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ |
				  FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct rt_export *x = fuse_req_userdata(req);
	struct fuse_entry_param ep;

	if (parent != FUSE_ROOT_ID || strcmp(name, x->name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&ep, 0, sizeof(ep));
	ep.ino = FILE_INO;
	ep.generation = 1;
	file_attr(x, &ep.attr);
	ep.attr_timeout = ATTR_TIMEOUT;
	ep.entry_timeout = ATTR_TIMEOUT;
	fuse_reply_entry(req, &ep);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rt_export *x = fuse_req_userdata(req);
	struct stat st;

	(void)fi;
	if (ino == FUSE_ROOT_ID)
		root_attr(x, &st);
	else if (ino == FILE_INO)
		file_attr(x, &st);
	else {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	const int times = FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			  FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME;

	(void)attr;
	/* The size is the array's; only timestamp updates are accepted (and ignored). */
	if (to_set & ~times) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op_getattr(req, ino, fi);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (fi->flags & O_TRUNC) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fi->direct_io = 1;	/* no page cache between the loop device and the engine */
	fi->keep_cache = 0;
#if FUSE_MAJOR_VERSION > 3 || (FUSE_MAJOR_VERSION == 3 && FUSE_MINOR_VERSION >= 15)
	fi->parallel_direct_writes = 1;
#endif
	fuse_reply_open(req, fi);
}

static void free_thread_buf(void *p)
{
	struct thread_buf *b = p;

	if (b) {
		free(b->p);
		free(b);
	}
}

/* A per-worker read buffer, grown to the largest request seen. */
static void *thread_buf(struct rt_export *x, size_t len)
{
	struct thread_buf *b = pthread_getspecific(x->bufkey);
	void *p;

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		if (pthread_setspecific(x->bufkey, b)) {
			free(b);
			return NULL;
		}
	}
	if (b->len < len) {
		if (posix_memalign(&p, 4096, len))
			return NULL;
		free(b->p);
		b->p = p;
		b->len = len;
	}
	return b->p;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct rt_export *x = fuse_req_userdata(req);
	void *buf;
	int r;

	(void)fi;
	if (ino != FILE_INO || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off >= x->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > x->size - (uint64_t)off)
		size = (size_t)(x->size - (uint64_t)off);
	buf = thread_buf(x, size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = engine_read(x->e, buf, size, (uint64_t)off);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct rt_export *x = fuse_req_userdata(req);
	int r;

	(void)fi;
	if (ino != FILE_INO || off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off >= x->size) {
		fuse_reply_err(req, size ? ENOSPC : 0);
		return;
	}
	if (size > x->size - (uint64_t)off)
		size = (size_t)(x->size - (uint64_t)off);
	r = engine_write(x->e, buf, size, (uint64_t)off);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rt_export *x = fuse_req_userdata(req);

	(void)ino;
	(void)fi;
	fuse_reply_err(req, -engine_flush(x->e));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync;
	op_flush(req, ino, fi);
}

/*
 * The loop device turns discard into FALLOC_FL_PUNCH_HOLE | KEEP_SIZE and
 * write-zeroes into that or FALLOC_FL_ZERO_RANGE: both read back zeros after.
 * The file's size never changes, so anything else is refused.
 */
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct rt_export *x = fuse_req_userdata(req);
	int zero = mode & ~FALLOC_FL_KEEP_SIZE;
	uint64_t end;

	(void)fi;
	if (ino != FILE_INO || off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) && zero != FALLOC_FL_ZERO_RANGE) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if ((uint64_t)off >= x->size) {
		fuse_reply_err(req, 0);
		return;
	}
	end = (uint64_t)len > x->size - (uint64_t)off ? x->size : (uint64_t)off + (uint64_t)len;
	fuse_reply_err(req, -engine_discard(x->e, (uint64_t)off, end - (uint64_t)off));
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct rt_export *x = fuse_req_userdata(req);
	const char *names[3] = { ".", "..", x->name };
	const fuse_ino_t inos[3] = { FUSE_ROOT_ID, FUSE_ROOT_ID, FILE_INO };
	char buf[512];
	size_t used = 0, room = size < sizeof(buf) ? size : sizeof(buf);
	struct stat st;

	(void)ino;
	(void)fi;
	for (off_t i = off < 0 ? 0 : off; i < 3; i++) {
		size_t n;

		memset(&st, 0, sizeof(st));
		st.st_ino = inos[i];
		st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
		n = fuse_add_direntry(req, buf + used, room - used, names[i], &st, i + 1);
		if (n > room - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops export_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
};

/* libfuse's own messages go to our log, not to stderr. */
static void fuse_log_to_rt(enum fuse_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void fuse_log_to_rt(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	rt_log(level <= FUSE_LOG_ERR ? RT_LOG_ERROR : level <= FUSE_LOG_WARNING ?
	       RT_LOG_WARN : RT_LOG_DEBUG, "%s%s", strncmp(msg, "fuse: ", 6) ? "fuse: " : "",
	       msg);
}

/* ---- the session thread ------------------------------------------------- */

static void *loop_main(void *arg)
{
	struct rt_export *x = arg;
	int r;

	r = fuse_session_loop_mt(x->se, x->cfg);
	pthread_mutex_lock(&x->lock);
	x->loop_done = true;
	x->loop_ret = r;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	return NULL;
}

static bool wait_loop_end(struct rt_export *x, long ms)
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
	pthread_mutex_lock(&x->lock);
	while (!x->loop_done)
		if (pthread_cond_timedwait(&x->cond, &x->lock, &deadline) == ETIMEDOUT)
			break;
	done = x->loop_done;
	pthread_mutex_unlock(&x->lock);
	return done;
}

/* Sever the connection through fusectl: every worker then sees ENODEV. */
static void abort_conn(struct rt_export *x)
{
	char path[96];
	int fd;

	if (!x->have_conn)
		return;
	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%lu/abort", x->conn_id);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT &&
	    mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) == 0)
		fd = open(path, O_WRONLY | O_CLOEXEC);	/* fusectl was not mounted */
	if (fd < 0) {
		rt_log(RT_LOG_WARN, "'%s': cannot abort the FUSE connection: %s: %s",
		       x->name, path, strerror(errno));
		return;
	}
	if (write(fd, "1", 1) < 0)
		rt_log(RT_LOG_WARN, "'%s': cannot abort the FUSE connection: %s",
		       x->name, strerror(errno));
	close(fd);
}

/* ---- in use? ------------------------------------------------------------ */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/*
 * Look through /proc/self/mountinfo for a mount of device @devno (when
 * @devno is not 0) or on directory @dir (when not NULL). 1 when found.
 */
static int find_mount(dev_t devno, const char *dir, char *where, size_t len)
{
	char line[8192];
	FILE *f;
	int found = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char *save = NULL, *tok, *mp = NULL;
		int field = 0;

		for (tok = strtok_r(line, " ", &save); tok && field < 5;
		     tok = strtok_r(NULL, " ", &save), field++) {
			if (field == 2 && sscanf(tok, "%u:%u", &maj, &min) != 2)
				break;
			if (field == 4)
				mp = tok;
		}
		if (!mp)
			continue;
		unescape(mp);
		if ((devno && makedev(maj, min) == devno) || (dir && !strcmp(mp, dir))) {
			if (where)
				snprintf(where, len, "%s", mp);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/*
 * A process with a descriptor open on block device @devno (when not 0) or
 * on a file whose path starts with @prefix (when not NULL): its pid, or 0.
 */
static pid_t find_opener(dev_t devno, const char *prefix, char *comm, size_t commlen)
{
	pid_t self = getpid(), found = 0;
	struct dirent *de;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!found && (de = readdir(proc))) {
		char path[64], link[PATH_MAX];
		struct dirent *fe;
		struct stat st;
		DIR *fds;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while (!found && (fe = readdir(fds))) {
			ssize_t n;

			if (fe->d_name[0] == '.')
				continue;
			n = readlinkat(dirfd(fds), fe->d_name, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (prefix && !strncmp(link, prefix, strlen(prefix))) {
				found = (pid_t)pid;
				break;
			}
			/*
			 * Only nodes under /dev are stat'ed: stat on a file in a hung
			 * FUSE mount (even ours, if the engine died) could block.
			 */
			if (!devno || strncmp(link, "/dev/", 5) || stat(link, &st) < 0)
				continue;
			if (S_ISBLK(st.st_mode) && st.st_rdev == devno)
				found = (pid_t)pid;
		}
		closedir(fds);
	}
	closedir(proc);
	if (found && comm) {
		char path[64];
		FILE *f;

		snprintf(comm, commlen, "?");
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)found);
		f = fopen(path, "re");
		if (f) {
			if (fgets(comm, (int)commlen, f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
	}
	return found;
}

/* The first holder in /sys/dev/block/M:m/holders (device-mapper, md, ...). */
static bool find_holder(dev_t devno, char *name, size_t len)
{
	char path[96];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders", major(devno), minor(devno));
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(name, len, "%s", de->d_name);
		found = true;
	}
	closedir(d);
	return found;
}

int export_dev_busy(const char *dev, int *excl_fd, char *why, size_t whylen)
{
	char where[PATH_MAX], comm[64];
	struct stat st;
	pid_t pid;
	int fd, r;

	if (excl_fd)
		*excl_fd = -1;
	if (why && whylen)
		why[0] = '\0';
	if (stat(dev, &st) < 0)
		return -errno;
	if (!S_ISBLK(st.st_mode))
		return -ENOTBLK;
	r = find_mount(st.st_rdev, NULL, where, sizeof(where));
	if (r > 0) {
		snprintf(why, whylen, "mounted on %s", where);
		return -EBUSY;
	}
	if (find_holder(st.st_rdev, where, sizeof(where))) {
		snprintf(why, whylen, "held by %s", where);
		return -EBUSY;
	}
	fd = open(dev, O_RDONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -EBUSY)
			snprintf(why, whylen, "held exclusively (mounted in another namespace, "
				 "or opened with O_EXCL by a program)");
		return r;
	}
	/*
	 * Every raidtool command scans every block device, ours too: a
	 * `status` or `list` elsewhere holds it open for a moment. Such an
	 * opener is waited for (briefly), not taken for a user of the array.
	 */
	for (int tries = 0;; tries++) {
		pid = find_opener(st.st_rdev, NULL, comm, sizeof(comm));
		if (!pid || strcmp(comm, "raidtool") || tries >= SCANNER_WAIT_TRIES)
			break;
		sleep_ms(SCANNER_WAIT_MS);
	}
	if (pid) {
		close(fd);
		snprintf(why, whylen, "open in process %d (%s)", (int)pid, comm);
		return -EBUSY;
	}
	if (excl_fd)
		*excl_fd = fd;
	else
		close(fd);
	return 0;
}

int export_busy(const struct rt_export *x, int *excl_fd, char *why, size_t whylen)
{
	char prefix[PATH_MAX + 2], comm[64], reason[PATH_MAX];
	pid_t pid;
	int r;

	r = export_dev_busy(x->dev, excl_fd, reason, sizeof(reason));
	if (r == -EBUSY)
		snprintf(why, whylen, "%s (%s) is %s", x->link, x->dev, reason);
	if (r < 0)
		return r;
	/* Someone reading the FUSE file itself would lose it mid-way. */
	snprintf(prefix, sizeof(prefix), "%s/", x->mnt);
	pid = find_opener(0, prefix, comm, sizeof(comm));
	if (pid) {
		if (excl_fd && *excl_fd >= 0) {
			close(*excl_fd);
			*excl_fd = -1;
		}
		snprintf(why, whylen, "its FUSE file %s is open in process %d (%s)", x->file,
			 (int)pid, comm);
		return -EBUSY;
	}
	return 0;
}

/* ---- start / stop ------------------------------------------------------- */

/* Replace @link with a symlink to @target (atomically, through a temporary name). */
static int make_link(const char *target, const char *link)
{
	char tmp[PATH_MAX + 16];

	snprintf(tmp, sizeof(tmp), "%s.%d", link, (int)getpid());
	for (int tries = 0;; tries++) {
		if (mkdir(RT_DEV_DIR, 0755) < 0 && errno != EEXIST)
			return -errno;
		unlink(tmp);
		if (symlink(target, tmp) == 0)
			break;
		/* Another engine may remove the directory when its last link goes. */
		if (errno != ENOENT || tries == 3)
			return -errno;
	}
	if (rename(tmp, link) < 0) {
		int r = -errno;

		unlink(tmp);
		return r;
	}
	return 0;
}

/* Remove @link if it is a symlink to @target (or @target is NULL and it dangles). */
static bool remove_link(const char *link, const char *target)
{
	char cur[PATH_MAX];
	struct stat st;
	ssize_t n;

	n = readlink(link, cur, sizeof(cur) - 1);
	if (n < 0)
		return false;
	cur[n] = '\0';
	if (target ? strcmp(cur, target) != 0 : stat(link, &st) == 0)
		return false;
	if (unlink(link) < 0)
		return false;
	rmdir(RT_DEV_DIR);	/* only when empty */
	return true;
}

static bool wait_unbound(const char *dev, long ms)
{
	char back[PATH_MAX];

	for (long waited = 0;; waited += 20) {
		if (loopdev_backing_file(dev, back, sizeof(back)) == -ENOENT)
			return true;
		if (waited >= ms)
			return false;
		sleep_ms(20);
	}
}

static bool loop_dio_on(const char *dev)
{
	char path[128], v[8] = "";
	const char *base = strrchr(dev, '/');
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/loop/dio", base ? base + 1 : dev);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(v, sizeof(v), f))
		v[0] = '\0';
	fclose(f);
	return v[0] == '1';
}

int export_start(struct rt_engine *e, const struct rt_export_params *p, struct rt_export **out)
{
	char opts[RT_NAME_MAX + 128];
	const char *argv[] = { "raidtool", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, (char **)argv);
	pthread_attr_t attr;
	struct rt_export *x;
	unsigned threads;
	struct stat st;
	int r;

	if (!e || !p || !p->name || !p->link_name || !p->mountpoint || !out)
		return -EINVAL;
	*out = NULL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	x->e = e;
	x->size = engine_size(e);
	x->blocksize = p->blocksize;
	x->started = time(NULL);
	snprintf(x->name, sizeof(x->name), "%s", p->name);
	if ((size_t)snprintf(x->mnt, sizeof(x->mnt), "%s", p->mountpoint) >= sizeof(x->mnt) ||
	    (size_t)snprintf(x->file, sizeof(x->file), "%s/%s", p->mountpoint, p->name) >=
	    sizeof(x->file)) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(x->link, sizeof(x->link), RT_DEV_DIR "/%s", p->link_name);
	if (pthread_key_create(&x->bufkey, free_thread_buf)) {
		r = -EAGAIN;
		goto fail;
	}
	x->have_key = true;

	fuse_set_log_func(fuse_log_to_rt);
	snprintf(opts, sizeof(opts), "fsname=raidtool:%s,subtype=raidtool,allow_other,"
		 "default_permissions", p->name);
	x->se = fuse_session_new(&args, &export_ops, sizeof(export_ops), x);
	fuse_opt_free_args(&args);
	if (!x->se) {
		rt_log(RT_LOG_ERROR, "'%s': cannot start a FUSE session", p->name);
		r = -EIO;
		goto fail;
	}
	if (fuse_session_mount(x->se, x->mnt) != 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot mount FUSE on '%s' (is /dev/fuse there?)",
		       p->name, x->mnt);
		r = -EIO;
		goto fail;
	}
	x->mounted = true;

	threads = p->threads ? p->threads : DEFAULT_THREADS;
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	x->cfg = fuse_loop_cfg_create();
	if (!x->cfg) {
		r = -ENOMEM;
		goto fail;
	}
	fuse_loop_cfg_set_clone_fd(x->cfg, 1);
	fuse_loop_cfg_set_max_threads(x->cfg, threads);
	fuse_loop_cfg_set_idle_threads(x->cfg, threads);
	/* mlockall(MCL_FUTURE) locks every stack whole: keep the workers' small. */
	setenv("FUSE_THREAD_STACK", THREAD_STACK, 0);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = -pthread_create(&x->thread, &attr, loop_main, x);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot start the FUSE thread: %s", p->name, strerror(-r));
		goto fail;
	}
	x->thread_started = true;

	/* Answered by the workers: proves the session serves before the loop device opens it. */
	if (stat(x->mnt, &st) == 0) {
		x->have_conn = true;
		x->conn_id = major(st.st_dev) ? (unsigned long)major(st.st_dev) << 20 |
			     minor(st.st_dev) : minor(st.st_dev);
	}
	if (stat(x->file, &st) < 0) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': the FUSE file '%s' does not answer: %s", p->name,
		       x->file, strerror(-r));
		goto fail;
	}
	if ((uint64_t)st.st_size != x->size) {
		rt_log(RT_LOG_ERROR, "'%s': the FUSE file has %lld bytes, not %llu", p->name,
		       (long long)st.st_size, (unsigned long long)x->size);
		r = -EIO;
		goto fail;
	}

	r = loopdev_attach(x->file, RT_LOOP_DIRECT_IO, x->blocksize, x->dev, sizeof(x->dev));
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot attach a loop device to '%s': %s", p->name,
		       x->file, strerror(-r));
		goto fail;
	}
	x->attached = true;
	if (!loop_dio_on(x->dev))
		rt_log(RT_LOG_WARN, "'%s': %s runs without direct I/O (the kernel refused it)",
		       p->name, x->dev);

	r = make_link(x->dev, x->link);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot create '%s': %s", p->name, x->link,
		       strerror(-r));
		goto fail;
	}
	x->linked = true;
	rt_log(RT_LOG_DEBUG, "'%s': %s on %s (%llu bytes, block size %u)", p->name, x->link,
	       x->dev, (unsigned long long)x->size, x->blocksize);
	*out = x;
	return 0;
fail:
	export_stop(x, -1);
	return r;
}

const char *export_device(const struct rt_export *x)
{
	return x->dev;
}

const char *export_link(const struct rt_export *x)
{
	return x->link;
}

const char *export_file(const struct rt_export *x)
{
	return x->file;
}

int export_stop(struct rt_export *x, int excl_fd)
{
	int r = 0, q;

	if (!x) {
		if (excl_fd >= 0)
			close(excl_fd);
		return 0;
	}
	if (x->linked)
		remove_link(x->link, x->dev);
	if (x->attached) {
		if (excl_fd >= 0) {
			/*
			 * Through our exclusive descriptor: as the only opener, the
			 * device goes to rundown at once (no new opener can slip in)
			 * and our close is the last one, which detaches it.
			 * loopdev_detach would open it a second time and wait for a
			 * last close that only we can make.
			 */
			q = ioctl(excl_fd, LOOP_CLR_FD, 0) < 0 ? -errno : 0;
			close(excl_fd);
			excl_fd = -1;
		} else {
			q = loopdev_detach(x->dev);
		}
		if (q < 0 && q != -ENXIO) {
			rt_log(RT_LOG_ERROR, "'%s': cannot detach %s: %s", x->name, x->dev,
			       strerror(-q));
			r = r ? r : q;
		} else if (!wait_unbound(x->dev, UNBIND_WAIT_MS)) {
			rt_log(RT_LOG_ERROR, "'%s': %s is still open somewhere; the kernel "
			       "will detach it on its last close", x->name, x->dev);
			r = r ? r : -EBUSY;
		}
	}
	if (excl_fd >= 0)
		close(excl_fd);
	if (x->mounted && umount2(x->mnt, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL) {
		q = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot unmount '%s': %s", x->name, x->mnt,
		       strerror(-q));
		r = r ? r : q;
	}
	if (x->thread_started) {
		if (!wait_loop_end(x, x->mounted ? LOOP_END_WAIT_MS : 0)) {
			if (x->mounted)
				rt_log(RT_LOG_WARN, "'%s': the FUSE file is still referenced; "
				       "aborting the connection", x->name);
			abort_conn(x);
			if (!wait_loop_end(x, LOOP_END_WAIT_MS)) {
				/* Cannot free what the workers still use: leave it to exit(). */
				rt_log(RT_LOG_ERROR, "'%s': FUSE workers do not stop", x->name);
				return r ? r : -ETIMEDOUT;
			}
		}
		pthread_join(x->thread, NULL);
	}
	if (x->se) {
		if (x->mounted)
			fuse_session_unmount(x->se);	/* closes the device fd */
		fuse_session_destroy(x->se);
	}
	if (x->cfg)
		fuse_loop_cfg_destroy(x->cfg);
	if (x->have_key) {
		free_thread_buf(pthread_getspecific(x->bufkey));
		pthread_key_delete(x->bufkey);
	}
	pthread_cond_destroy(&x->cond);
	pthread_mutex_destroy(&x->lock);
	free(x);
	return r;
}

/* ---- after a crash ------------------------------------------------------ */

/* Is loop device @dev backed by a file of ours: under @mnt, or named "/NAME" (detached mount)? */
static bool loop_is_ours(const char *dev, const char *mnt, const char *name)
{
	char back[PATH_MAX], tail[RT_NAME_MAX + 2];
	size_t ml = strlen(mnt), bl;

	if (loopdev_backing_file(dev, back, sizeof(back)) < 0)
		return false;
	if (!strncmp(back, mnt, ml) && back[ml] == '/')
		return true;
	snprintf(tail, sizeof(tail), "/%s", name);
	bl = strlen(back);
	/* A detached or dead mount can show the path from its own root only. */
	return !strcmp(back, tail) || (bl > 10 && !strcmp(back + bl - 10, " (deleted)") &&
				       !strncmp(back, tail, strlen(tail)));
}

static bool find_our_loop(const char *mnt, const char *name, char *dev, size_t len)
{
	struct dirent *de;
	bool found = false;
	DIR *d;

	d = opendir("/sys/block");
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		char path[64];

		if (strncmp(de->d_name, "loop", 4) || !de->d_name[4] || strlen(de->d_name) > 32)
			continue;
		snprintf(path, sizeof(path), "/dev/%.32s", de->d_name);
		if (loop_is_ours(path, mnt, name)) {
			snprintf(dev, len, "%s", path);
			found = true;
		}
	}
	closedir(d);
	return found;
}

static void did_append(char *did, size_t len, const char *what)
{
	size_t used = strlen(did);

	if (used < len)
		snprintf(did + used, len - used, "%s%s", used ? "; " : "", what);
}

/* fusermount3 -uz: the fallback when umount2 itself fails. */
static int run_fusermount(const char *mnt)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		if (nul >= 0) {
			dup2(nul, 1);
			dup2(nul, 2);
		}
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int export_recover(const char *name, const char *link, const char *mountpoint,
		   const char *dev_hint, char *did, size_t didlen)
{
	char mnt[PATH_MAX], dir[PATH_MAX], dev[64] = "", why[PATH_MAX + 64];
	char msg[PATH_MAX + 128];
	const char *slash;
	int excl = -1, r;

	if (!name || !link || !mountpoint || !did)
		return -EINVAL;
	did[0] = '\0';
	/* Canonical form for comparisons; the mount point itself may not answer. */
	slash = strrchr(mountpoint, '/');
	if (slash && slash != mountpoint) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - mountpoint), mountpoint);
		if (realpath(dir, mnt))
			snprintf(mnt + strlen(mnt), sizeof(mnt) - strlen(mnt), "%s", slash);
		else
			snprintf(mnt, sizeof(mnt), "%s", mountpoint);
	} else {
		snprintf(mnt, sizeof(mnt), "%s", mountpoint);
	}

	if (dev_hint && dev_hint[0] && loop_is_ours(dev_hint, mnt, name))
		snprintf(dev, sizeof(dev), "%s", dev_hint);
	else
		find_our_loop(mnt, name, dev, sizeof(dev));
	if (dev[0]) {
		r = export_dev_busy(dev, &excl, why, sizeof(why));
		if (r == -EBUSY) {
			rt_log(RT_LOG_ERROR, "'%s': the engine died, but %s is still in use (%s); "
			       "stop using it first", name, dev, why);
			return r;
		}
		remove_link(link, dev);
		r = loopdev_detach(dev);
		if (excl >= 0)
			close(excl);
		if (r < 0 && r != -ENXIO) {
			rt_log(RT_LOG_ERROR, "'%s': cannot detach %s: %s", name, dev, strerror(-r));
			return r;
		}
		if (!wait_unbound(dev, UNBIND_WAIT_MS)) {
			rt_log(RT_LOG_ERROR, "'%s': %s is still open somewhere", name, dev);
			return -EBUSY;
		}
		snprintf(msg, sizeof(msg), "detached %s", dev);
		did_append(did, didlen, msg);
	}
	if (remove_link(link, NULL)) {
		snprintf(msg, sizeof(msg), "removed %s", link);
		did_append(did, didlen, msg);
	}
	if (find_mount(0, mnt, NULL, 0) > 0) {
		if (umount2(mnt, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
			r = -errno;
			if (run_fusermount(mnt) < 0) {
				rt_log(RT_LOG_ERROR, "'%s': cannot unmount '%s': %s", name, mnt,
				       strerror(-r));
				return r;
			}
		}
		snprintf(msg, sizeof(msg), "unmounted %s", mnt);
		did_append(did, didlen, msg);
	}
	return 0;
}
