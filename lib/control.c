/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The run directory and the control socket of running arrays.
 *
 * Wire format (raidtool-control(7)): the client sends one line
 * "[uuid=UUID ]VERB [ARGS]\n"; the engine answers with one line of JSON
 * (json-c), either {"result":"ok",...} or
 * {"result":"error","errno":N,"message":"..."}, and closes the connection.
 * Only root (SO_PEERCRED uid 0) is served. The verbs are one enum (verbs[]),
 * a status's members one table (status_fields[]), for server and client.
 */
#include <errno.h>
#include <json-c/json.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <raidtool/control.h>
#include <raidtool/loopdev.h>
#include <raidtool/log.h>
#include <raidtool/util.h>
#include "control-internal.h"

#define CLIENT_TIMEOUT_MS 5000		/* a client that does not send its line */
#define STATUS_TIMEOUT_MS 10000
#define STATUS_WAIT_TRIES 40		/* control_status_wait: a starting engine's socket */
#define STATUS_WAIT_MS 50
#define COMMAND_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS (10 * 60 * 1000)	/* flushing a big array can take a while */
#define REPLY_MAX (256 * 1024)

/* ---- run directory ------------------------------------------------------ */

const char *control_rundir(void)
{
	const char *d = getenv("RAIDTOOL_RUNDIR");

	return d && *d ? d : RT_RUNDIR_DEFAULT;
}

int control_path(const uint8_t uuid[RT_UUID_SIZE], const char *file, char *buf, size_t len)
{
	char key[37];
	int n;

	if (!uuid || uuid_is_null(uuid))
		return -EINVAL;
	uuid_unparse_lower(uuid, key);
	if (file)
		n = snprintf(buf, len, "%s/%s/%s", control_rundir(), key, file);
	else
		n = snprintf(buf, len, "%s/%s", control_rundir(), key);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Read a small file's first line, without the newline. */
static int read_line_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		r = -errno;
	else
		buf[n] = '\0';
	close(fd);
	if (r == 0)
		buf[strcspn(buf, "\n")] = '\0';
	return r;
}

int control_make_rundir(void)
{
	int r;

	if (mkdir(control_rundir(), 0755) == 0 || errno == EEXIST)
		return 0;
	r = -errno;
	rt_log(RT_LOG_ERROR, "'%s': cannot create the run directory: %s", control_rundir(),
	       rt_strerror(r));
	return r;
}

/* ---- the by-name links -------------------------------------------------- */

/* "<rundir>/<name>", the by-name link's path. */
static int name_link_path(const char *name, char *buf, size_t len)
{
	int n;

	if (!name || sb_name_check(name) < 0)
		return -EINVAL;
	n = snprintf(buf, len, "%s/%s", control_rundir(), name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int control_name_lookup(const char *name, uint8_t uuid[RT_UUID_SIZE])
{
	char path[PATH_MAX], target[64];
	ssize_t n;
	int r;

	r = name_link_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return errno == EINVAL ? -ENOENT : -errno;	/* EINVAL: not a link */
	target[n] = '\0';
	return uuid_parse(target, uuid) == 0 ? 0 : -ENOENT;
}

/*
 * The links change under an flock of the run directory itself: held for a
 * few system calls, so that two engines starting at once agree on which
 * one holds the name.
 */
static int lock_rundir(void)
{
	int fd = open(control_rundir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int r = -errno;

			close(fd);
			return r;
		}
	}
	return fd;
}

int control_name_claim(const char *name, const uint8_t uuid[RT_UUID_SIZE])
{
	char path[PATH_MAX], tmp[PATH_MAX + 32], key[37];
	uint8_t holder[RT_UUID_SIZE];
	struct rt_control_probe p;
	struct stat st;
	int fd, r;

	r = name_link_path(name, path, sizeof(path));
	if (r < 0)
		return r;
	fd = lock_rundir();
	if (fd < 0)
		return fd;
	r = control_name_lookup(name, holder);
	if (r == 0 && uuid_compare(holder, uuid) != 0 && control_probe(holder, &p) == 0 &&
	    p.state == RT_CONTROL_ACTIVE) {
		r = -EEXIST;	/* another running array holds the name */
		goto out;
	}
	if (r < 0 && lstat(path, &st) == 0 && !S_ISLNK(st.st_mode)) {
		r = -EEXIST;	/* not a link of ours (the lock directory, say) */
		goto out;
	}
	/* Free, ours already, or left by an engine that died: point it at us. */
	uuid_unparse_lower(uuid, key);
	snprintf(tmp, sizeof(tmp), "%s.%d.new", path, (int)getpid());
	unlink(tmp);
	r = symlink(key, tmp) < 0 || rename(tmp, path) < 0 ? -errno : 0;
	if (r < 0)
		unlink(tmp);
out:
	close(fd);
	return r;
}

void control_name_release(const char *name, const uint8_t uuid[RT_UUID_SIZE])
{
	char path[PATH_MAX];
	uint8_t holder[RT_UUID_SIZE];
	int fd;

	if (name_link_path(name, path, sizeof(path)) < 0)
		return;
	fd = lock_rundir();
	if (fd < 0)
		return;
	if (control_name_lookup(name, holder) == 0 && uuid_compare(holder, uuid) == 0)
		unlink(path);
	close(fd);
}

/*
 * The engine's loop device is attached to <rundir>/<UUID>/mnt/<NAME>, so its
 * backing file names the array even where RAIDTOOL_RUNDIR is not set (udev
 * runs programs with the device's properties only).
 */
int control_array_of_device(const char *dev, char *name, size_t namelen,
			    uint8_t uuid[RT_UUID_SIZE])
{
	char file[PATH_MAX];

	if (loopdev_backing_file(dev, file, sizeof(file)) < 0)
		return -ENODEV;
	return control_array_of_file(file, name, namelen, uuid);
}

/*
 * Is @file ".../<UUID>/mnt/<BASE>", a file of an engine's FUSE mount? 0 with
 * @uuid and *@base pointing at BASE (within @file), else -ENODEV. Pure.
 */
static int mount_file_parse(const char *file, uint8_t uuid[RT_UUID_SIZE], const char **base)
{
	const char *slash, *mnt, *key;
	size_t len = strlen(file);
	char keybuf[37];

	/* Walk back over the three components. */
	slash = memrchr(file, '/', len);
	if (!slash || slash == file)
		return -ENODEV;
	mnt = memrchr(file, '/', (size_t)(slash - file));
	if (!mnt || (size_t)(slash - mnt) != strlen("/" RT_CONTROL_MNT) ||
	    strncmp(mnt, "/" RT_CONTROL_MNT, strlen("/" RT_CONTROL_MNT)) != 0 || mnt == file)
		return -ENODEV;
	key = memrchr(file, '/', (size_t)(mnt - file));
	if (!key || (size_t)(mnt - key - 1) != sizeof(keybuf) - 1)
		return -ENODEV;
	memcpy(keybuf, key + 1, sizeof(keybuf) - 1);
	keybuf[sizeof(keybuf) - 1] = '\0';
	if (uuid_parse(keybuf, uuid) != 0)
		return -ENODEV;
	*base = slash + 1;
	return 0;
}

/* Copy @src to @dst of @len bytes, or -ENAMETOOLONG. */
static int name_copy(char *dst, size_t len, const char *src)
{
	if (strlen(src) >= len)
		return -ENAMETOOLONG;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

int control_array_of_file(const char *file, char *name, size_t namelen,
			  uint8_t uuid[RT_UUID_SIZE])
{
	const char *base;

	if (mount_file_parse(file, uuid, &base) < 0 || sb_name_check(base) < 0)
		return -ENODEV;
	return name_copy(name, namelen, base);
}

int control_volume_of_file(const char *file, uint8_t uuid[RT_UUID_SIZE], char *vol,
			   size_t vollen)
{
	const size_t plen = strlen(RT_CONTROL_VOL_PREFIX);
	const char *base;

	/* thin-run names the file from a checked volume name: just not empty. */
	if (mount_file_parse(file, uuid, &base) < 0 || strncmp(base, RT_CONTROL_VOL_PREFIX, plen) ||
	    !base[plen])
		return -ENODEV;
	return name_copy(vol, vollen, base + plen);
}

int control_probe(const uint8_t uuid[RT_UUID_SIZE], struct rt_control_probe *p)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[PATH_MAX], line[64];
	int fd, r;

	if (!p)
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	r = control_path(uuid, RT_CONTROL_PID, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;	/* inactive */
		return -errno;
	}
	/* F_OFD_GETLK asks without taking: a starting engine is never disturbed. */
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	close(fd);
	p->state = fl.l_type == F_UNLCK ? RT_CONTROL_STALE : RT_CONTROL_ACTIVE;
	if (read_line_file(path, line, sizeof(line)) == 0)
		p->pid = (pid_t)strtol(line, NULL, 10);
	if (control_path(uuid, RT_CONTROL_DEVICE, path, sizeof(path)) == 0 &&
	    read_line_file(path, line, sizeof(line)) == 0)
		snprintf(p->device, sizeof(p->device), "%s", line);
	if (control_path(uuid, RT_CONTROL_LINK, path, sizeof(path)) == 0 &&
	    read_line_file(path, line, sizeof(line)) == 0)
		snprintf(p->link, sizeof(p->link), "%s", line);
	if (p->state != RT_CONTROL_ACTIVE || !p->device[0])
		p->link[0] = '\0';
	return 0;
}

void control_log_not_running(const char *name, const char *detail)
{
	rt_log(RT_LOG_ERROR, "'%s': not running%s%s%s", name, detail ? " (" : "",
	       detail ? detail : "", detail ? ")" : "");
}

void control_log_no_answer(const char *name, pid_t pid, int err)
{
	if (pid > 0)
		rt_log(RT_LOG_ERROR, "'%s': the engine (pid %d) does not answer: %s", name,
		       (int)pid, rt_strerror(err));
	else
		rt_log(RT_LOG_ERROR, "'%s': the engine does not answer: %s", name,
		       rt_strerror(err));
}

int control_lock(const uint8_t uuid[RT_UUID_SIZE], int *out)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[PATH_MAX], line[32];
	int fd, r, n;

	*out = -1;
	r = control_make_rundir();
	if (r < 0)
		return r;
	r = control_path(uuid, NULL, path, sizeof(path));
	if (r < 0)
		return r;
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot create the run directory: %s", path,
		       rt_strerror(r));
		return r;
	}
	r = control_path(uuid, RT_CONTROL_PID, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot open: %s", path, rt_strerror(r));
		return r;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		r = errno == EAGAIN || errno == EACCES ? -EALREADY : -errno;
		close(fd);
		return r;
	}
	n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)n, 0) != n) {
		r = -errno;
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

/* ---- socket addresses --------------------------------------------------- */

/*
 * sun_path holds 107 bytes; a deep RAIDTOOL_RUNDIR does not fit. Then the
 * directory is opened and named through /proc/self/fd/N.
 */
static int sock_addr(const uint8_t uuid[RT_UUID_SIZE], struct sockaddr_un *sa, int *dirfd)
{
	char path[PATH_MAX];
	int r;

	*dirfd = -1;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	r = control_path(uuid, RT_CONTROL_SOCK, path, sizeof(path));
	if (r < 0)
		return r;
	if (strlen(path) < sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, path, strlen(path) + 1);
		return 0;
	}
	r = control_path(uuid, NULL, path, sizeof(path));
	if (r < 0)
		return r;
	*dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return -errno;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/" RT_CONTROL_SOCK, *dirfd);
	return 0;
}

/* ---- the wire format: one table of fields, one enum of verbs ------------- */

static const struct {
	const char *name;
	int timeout_ms;			/* the client's wait for the answer */
} verbs[RT_VERB_COUNT] = {
	[RT_VERB_PING] = { "ping", STATUS_TIMEOUT_MS },
	[RT_VERB_STATUS] = { "status", STATUS_TIMEOUT_MS },
	[RT_VERB_STOP] = { "stop", STOP_TIMEOUT_MS },
	[RT_VERB_FAIL] = { "fail", COMMAND_TIMEOUT_MS },
	[RT_VERB_REMOVE] = { "remove", COMMAND_TIMEOUT_MS },
	[RT_VERB_ADD] = { "add", COMMAND_TIMEOUT_MS },
	[RT_VERB_CHECK] = { "check", COMMAND_TIMEOUT_MS },
	[RT_VERB_REPAIR] = { "repair", COMMAND_TIMEOUT_MS },
	[RT_VERB_CANCEL] = { "cancel", COMMAND_TIMEOUT_MS },
	[RT_VERB_TUNE] = { "tune", COMMAND_TIMEOUT_MS },
	[RT_VERB_SPEED] = { "speed", COMMAND_TIMEOUT_MS },
	[RT_VERB_VOL] = { "vol", COMMAND_TIMEOUT_MS },
	[RT_VERB_REPLACE] = { "replace", COMMAND_TIMEOUT_MS },
	[RT_VERB_POOL] = { "pool", COMMAND_TIMEOUT_MS },
};

/* The driver's names for the same requests. */
static const struct {
	const char *name;
	enum rt_control_verb verb;
} verb_aliases[] = {
	{ "lookup.device", RT_VERB_STATUS },
	{ "list.device.units", RT_VERB_STATUS },
	{ "deactivate", RT_VERB_STOP },
};

const char *control_verb_name(enum rt_control_verb verb)
{
	return (unsigned)verb < RT_VERB_COUNT ? verbs[verb].name : "?";
}

/* The verb named @s, or -1. */
static int verb_parse(const char *s)
{
	for (int v = 0; v < RT_VERB_COUNT; v++)
		if (!strcmp(s, verbs[v].name))
			return v;
	for (size_t i = 0; i < sizeof(verb_aliases) / sizeof(verb_aliases[0]); i++)
		if (!strcmp(s, verb_aliases[i].name))
			return (int)verb_aliases[i].verb;
	return -1;
}

static bool verb_takes_force(enum rt_control_verb verb)
{
	return verb == RT_VERB_FAIL || verb == RT_VERB_ADD || verb == RT_VERB_REPLACE;
}

/* ---- the status's names (one table each, both ends) --------------------- */

static const char *const health_names[RT_HEALTH_COUNT] = {
	[RT_HEALTH_NONE] = "",
	[RT_HEALTH_OK] = "clean",
	[RT_HEALTH_DEGRADED] = "degraded",
	[RT_HEALTH_FAILED] = "failed",
};

static const char *const walk_names[] = {
	[RT_WALK_NONE] = "",
	[RT_WALK_RECOVER] = "rebuilding",
	[RT_WALK_RESYNC] = "resyncing",
	[RT_WALK_CHECK] = "checking",
	[RT_WALK_REPAIR] = "repairing",
	[RT_WALK_REPLACE] = "replacing",
};

static const char *const unit_state_names[RT_UNIT_STATE_COUNT] = {
	[RT_UNIT_STATE_NONE] = "",
	[RT_UNIT_STATE_EMPTY] = "empty",
	[RT_UNIT_STATE_ACTIVE] = "active",
	[RT_UNIT_STATE_SPARE] = "spare",
	[RT_UNIT_STATE_FAULTY] = "faulty",
	[RT_UNIT_STATE_MISSING] = "missing",
	[RT_UNIT_STATE_REBUILDING] = "rebuilding",
	[RT_UNIT_STATE_REPLACING] = "replacing",
	[RT_UNIT_STATE_REPLACED] = "replaced",
	[RT_UNIT_STATE_REMOVED] = "removed",
	[RT_UNIT_STATE_STALE] = "stale",
	[RT_UNIT_STATE_CONFLICT] = "conflict",
	[RT_UNIT_STATE_SUSPECT] = "suspect",
	[RT_UNIT_STATE_UNKNOWN] = "unknown",
};

/* The entries of a table. */
#define N_ENTRIES(t) (sizeof(t) / sizeof((t)[0]))

/* The index of @name in @names, or 0 (the "" entry) for NULL or an unknown name. */
static unsigned name_index(const char *const *names, size_t n, const char *name)
{
	for (unsigned i = 1; name && i < n; i++)
		if (names[i] && !strcmp(name, names[i]))
			return i;
	return 0;
}

const char *control_health_name(enum rt_health health)
{
	return (unsigned)health < N_ENTRIES(health_names) ? health_names[health] : "";
}

enum rt_health control_health_parse(const char *name)
{
	return (enum rt_health)name_index(health_names, N_ENTRIES(health_names), name);
}

const char *control_walk_name(enum rt_walk_kind walk)
{
	return (unsigned)walk < N_ENTRIES(walk_names) && walk_names[walk] ? walk_names[walk] : "";
}

enum rt_walk_kind control_walk_parse(const char *name)
{
	return (enum rt_walk_kind)name_index(walk_names, N_ENTRIES(walk_names), name);
}

const char *control_unit_state_name(enum rt_unit_state state)
{
	return (unsigned)state < N_ENTRIES(unit_state_names) ? unit_state_names[state] : "";
}

enum rt_unit_state control_unit_state_parse(const char *name)
{
	unsigned i = name_index(unit_state_names, N_ENTRIES(unit_state_names), name);

	return i || !name || !name[0] ? (enum rt_unit_state)i : RT_UNIT_STATE_UNKNOWN;
}

enum rt_unit_state control_unit_state_of_slot(uint32_t slot_state)
{
	switch (slot_state) {
	case RT_SLOT_EMPTY:
		return RT_UNIT_STATE_EMPTY;
	case RT_SLOT_ACTIVE:
		return RT_UNIT_STATE_ACTIVE;
	case RT_SLOT_SPARE:
		return RT_UNIT_STATE_SPARE;
	case RT_SLOT_FAULTY:
		return RT_UNIT_STATE_FAULTY;
	case RT_SLOT_MISSING:
		return RT_UNIT_STATE_MISSING;
	case RT_SLOT_REBUILDING:
		return RT_UNIT_STATE_REBUILDING;
	case RT_SLOT_REPLACING:
		return RT_UNIT_STATE_REPLACING;
	case RT_SLOT_REPLACED:
		return RT_UNIT_STATE_REPLACED;
	default:
		return RT_UNIT_STATE_UNKNOWN;
	}
}

/* ---- reading a status (the handles of control.h) ------------------------ */

struct rt_control_status *control_status_new(void)
{
	return calloc(1, sizeof(struct rt_control_status));
}

void control_status_free(struct rt_control_status *st)
{
	free(st);
}

struct rt_control_unit *control_unit_new(void)
{
	return calloc(1, sizeof(struct rt_control_unit));
}

void control_unit_free(struct rt_control_unit *u)
{
	free(u);
}

/* One getter per member read alone: control_status_<member>, control_unit_<member>. */
#define GETTER(type, object, member) \
	type control_##object##_##member(const struct rt_control_##object *x) \
	{ \
		return x->member; \
	}

GETTER(const char *, status, state)
GETTER(const char *, status, name)
GETTER(const uint8_t *, status, uuid)
GETTER(uint32_t, status, hashcode)
GETTER(int32_t, status, level)
GETTER(uint64_t, status, size)
GETTER(uint64_t, status, nblocks)
GETTER(uint32_t, status, blocksize)
GETTER(uint32_t, status, chunk_size)
GETTER(uint32_t, status, n_devices)
GETTER(uint64_t, status, events)
GETTER(uint32_t, status, array_state)
GETTER(enum rt_health, status, health)
GETTER(const char *, status, device)
GETTER(const char *, status, link)
GETTER(pid_t, status, pid)
GETTER(uint64_t, status, started)
GETTER(bool, status, unsynced)
GETTER(uint64_t, status, unsynced_left)
GETTER(uint64_t, status, unsynced_total)
GETTER(uint64_t, status, nospace_mask)
GETTER(uint32_t, status, retry_count)
GETTER(uint32_t, status, retry_window_ms)
GETTER(uint32_t, unit, slot)
GETTER(const char *, unit, device)
GETTER(const uint8_t *, unit, uuid)
GETTER(uint32_t, unit, hashcode)
GETTER(enum rt_unit_state, unit, state)

const struct rt_control_stats *control_status_stats(const struct rt_control_status *st)
{
	return &st->stats;
}

struct rt_control_walk control_status_walk(const struct rt_control_status *st)
{
	return (struct rt_control_walk){
		.kind = st->walk, .running = st->walk_running, .result = st->walk_result,
		.role = st->walk_role, .done = st->walk_done, .total = st->walk_total,
		.speed = st->walk_speed, .speed_max = st->walk_speed_max,
		.mismatches = st->mismatches, .repaired = st->repaired, .regions = st->regions,
		.regions_total = st->regions_total, .ties = st->ties, .kept_roles = st->kept_roles,
	};
}

struct rt_control_fuse control_status_fuse(const struct rt_control_status *st)
{
	struct rt_control_fuse f = {
		.ring_requests = st->fuse_ring_requests, .dev_requests = st->fuse_dev_requests,
		.queues = st->fuse_queues, .queue_depth = st->fuse_queue_depth,
		.worker_requests = st->fuse_worker_requests,
		.poll_us = st->fuse_poll_us, .polled = st->fuse_polled,
	};

	snprintf(f.transport, sizeof(f.transport), "%s", st->transport);
	return f;
}

unsigned control_status_unit_count(const struct rt_control_status *st)
{
	return st->n_units < RT_MAX_UNITS ? st->n_units : RT_MAX_UNITS;
}

const struct rt_control_unit *control_status_unit_at(const struct rt_control_status *st,
						     unsigned i)
{
	return i < control_status_unit_count(st) ? &st->units[i] : NULL;
}

struct rt_control_unit_io control_unit_io(const struct rt_control_unit *u)
{
	return (struct rt_control_unit_io){
		.reads = u->reads, .writes = u->writes, .read_bytes = u->read_bytes,
		.write_bytes = u->write_bytes, .errors = u->errors, .retries = u->retries,
		.no_space = u->no_space,
	};
}

enum field_type {
	F_STR,			/* char[] */
	F_STR_OR_NULL,		/* char[], null when empty */
	F_U64, F_U32, F_I32, F_BOOL,
	F_PID,			/* pid_t, a signed number */
	F_UUID,			/* uint8_t[16], "xxxxxxxx-..." */
	F_HASH,			/* uint32_t, "0123abcd" */
	F_LEVEL_NAME,		/* int32_t level, its name; not read back (level_number is) */
	F_ARRAY_STATE,		/* uint32_t, "clean" or "dirty" */
	F_HEALTH,		/* enum rt_health, its name */
	F_WALK,			/* enum rt_walk_kind, its name */
	F_UNIT_STATE,		/* enum rt_unit_state, its name */
	F_UNITS,		/* the units[] of a status, n_units of them */
	F_STATS,		/* the stats object of a status */
};

struct field {
	const char *key;
	enum field_type type;
	size_t off, size;
};

#define FIELD(type_, st, member, key) \
	{ key, type_, offsetof(st, member), sizeof(((st *)0)->member) }
#define UNIT(type, member) FIELD(type, struct rt_control_unit, member, #member)
#define STATS(member) FIELD(F_U64, struct rt_control_stats, member, #member)
#define STATUS(type, member) FIELD(type, struct rt_control_status, member, #member)

static const struct field unit_fields[] = {
	UNIT(F_U32, slot), UNIT(F_STR, device), UNIT(F_UUID, uuid), UNIT(F_HASH, hashcode),
	UNIT(F_UNIT_STATE, state), UNIT(F_U64, reads), UNIT(F_U64, writes),
	UNIT(F_U64, read_bytes),
	UNIT(F_U64, write_bytes), UNIT(F_U64, errors), UNIT(F_U64, retries),
	UNIT(F_BOOL, no_space),
};

static const struct field stats_fields[] = {
	STATS(reads), STATS(writes), STATS(flushes), STATS(read_bytes), STATS(write_bytes),
	STATS(errors), STATS(stripe_full), STATS(stripe_merged), STATS(stripe_rmw),
	STATS(stripe_rcw), STATS(discards), STATS(discard_bytes), STATS(walk_loop_pieces),
	STATS(walk_own_pieces),
};

/* A status reply's members, in the order they are sent (raidtool-control(7)). */
static const struct field status_fields[] = {
	STATUS(F_STR, state), STATUS(F_STR, name), STATUS(F_UUID, uuid),
	STATUS(F_HASH, hashcode),
	FIELD(F_LEVEL_NAME, struct rt_control_status, level, "level"),
	FIELD(F_I32, struct rt_control_status, level, "level_number"),
	STATUS(F_U64, size), STATUS(F_U64, nblocks), STATUS(F_U32, blocksize),
	STATUS(F_U32, chunk_size), STATUS(F_U32, n_devices), STATUS(F_U64, events),
	STATUS(F_ARRAY_STATE, array_state), STATUS(F_STR_OR_NULL, device),
	STATUS(F_STR_OR_NULL, link), STATUS(F_PID, pid), STATUS(F_U64, started),
	STATUS(F_UNITS, units), STATUS(F_STATS, stats),
	STATUS(F_HEALTH, health), STATUS(F_WALK, walk), STATUS(F_BOOL, walk_running),
	STATUS(F_I32, walk_result), STATUS(F_U32, walk_role), STATUS(F_U64, walk_done),
	STATUS(F_U64, walk_total), STATUS(F_U64, walk_speed), STATUS(F_U64, walk_speed_max),
	STATUS(F_U64, mismatches), STATUS(F_U64, repaired), STATUS(F_U64, regions),
	STATUS(F_U64, regions_total), STATUS(F_BOOL, unsynced), STATUS(F_U64, unsynced_left),
	STATUS(F_U64, unsynced_total), STATUS(F_U64, ties), STATUS(F_U64, kept_roles),
	STATUS(F_U64, nospace_mask), STATUS(F_U32, retry_count),
	STATUS(F_U32, retry_window_ms), STATUS(F_STR, transport),
	STATUS(F_U64, fuse_ring_requests), STATUS(F_U64, fuse_dev_requests),
	STATUS(F_U32, fuse_queues), STATUS(F_U32, fuse_queue_depth),
	STATUS(F_U64, fuse_worker_requests), STATUS(F_U32, fuse_poll_us),
	STATUS(F_U64, fuse_polled), STATUS(F_BOOL, walk_active),
};

/* The size a member of @type has (0: any); a table entry of another size is a bug. */
static size_t field_type_size(enum field_type type)
{
	switch (type) {
	case F_U64:
		return sizeof(uint64_t);
	case F_U32:
	case F_HASH:
	case F_ARRAY_STATE:
		return sizeof(uint32_t);
	case F_I32:
	case F_LEVEL_NAME:
		return sizeof(int32_t);
	case F_PID:
		return sizeof(pid_t);
	case F_HEALTH:
		return sizeof(enum rt_health);
	case F_WALK:
		return sizeof(enum rt_walk_kind);
	case F_UNIT_STATE:
		return sizeof(enum rt_unit_state);
	case F_BOOL:
		return sizeof(bool);
	case F_UUID:
		return RT_UUID_SIZE;
	default:
		return 0;
	}
}

/* Checked when a server starts: any test that runs an array finds a wrong entry. */
static int fields_check(const struct field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t want = field_type_size(f[i].type);

		if (want && want != f[i].size) {
			rt_log(RT_LOG_ERROR, "control: status field '%s' has %zu bytes, its type "
			       "%zu", f[i].key, f[i].size, want);
			return -EINVAL;
		}
	}
	return 0;
}

static void fields_to_json(struct json_object *o, const struct field *f, size_t n,
			   const void *base);

static struct json_object *field_to_json(const struct field *f, const void *base)
{
	const void *p = (const char *)base + f->off;
	const struct rt_control_status *st = base;
	struct json_object *v;
	char buf[40];

	switch (f->type) {
	case F_STR:
		return json_object_new_string(p);
	case F_STR_OR_NULL:
		return *(const char *)p ? json_object_new_string(p) : NULL;
	case F_U64:
		return json_object_new_uint64(*(const uint64_t *)p);
	case F_U32:
		return json_object_new_uint64(*(const uint32_t *)p);
	case F_I32:
		return json_object_new_int64(*(const int32_t *)p);
	case F_PID:
		return json_object_new_int64(*(const pid_t *)p);
	case F_BOOL:
		return json_object_new_boolean(*(const bool *)p);
	case F_UUID:
		uuid_unparse_lower(p, buf);
		return json_object_new_string(buf);
	case F_HASH:
		snprintf(buf, sizeof(buf), "%08x", *(const uint32_t *)p);
		return json_object_new_string(buf);
	case F_LEVEL_NAME:
		return json_object_new_string(sb_level_name(*(const int32_t *)p));
	case F_ARRAY_STATE:
		return json_object_new_string(sb_array_state_name(*(const uint32_t *)p));
	case F_HEALTH:
		return json_object_new_string(control_health_name(*(const enum rt_health *)p));
	case F_WALK:
		return json_object_new_string(control_walk_name(*(const enum rt_walk_kind *)p));
	case F_UNIT_STATE:
		return json_object_new_string(
			control_unit_state_name(*(const enum rt_unit_state *)p));
	case F_UNITS:
		v = json_object_new_array();
		for (unsigned i = 0; v && i < st->n_units && i < RT_MAX_UNITS; i++) {
			struct json_object *u = json_object_new_object();

			fields_to_json(u, unit_fields, N_ENTRIES(unit_fields), &st->units[i]);
			json_object_array_add(v, u);
		}
		return v;
	case F_STATS:
		v = json_object_new_object();
		fields_to_json(v, stats_fields, N_ENTRIES(stats_fields), p);
		return v;
	}
	return NULL;
}

static void fields_to_json(struct json_object *o, const struct field *f, size_t n,
			   const void *base)
{
	for (size_t i = 0; i < n; i++)
		json_object_object_add(o, f[i].key, field_to_json(&f[i], base));
}

static void fields_from_json(struct json_object *o, const struct field *f, size_t n,
			     void *base);

static void field_from_json(const struct field *f, struct json_object *v, void *base)
{
	void *p = (char *)base + f->off;
	struct rt_control_status *st = base;
	const char *s = json_object_get_string(v);

	switch (f->type) {
	case F_STR:
	case F_STR_OR_NULL:
		snprintf(p, f->size, "%s", v && s ? s : "");
		break;
	case F_U64:
		*(uint64_t *)p = json_object_get_uint64(v);
		break;
	case F_U32:
		*(uint32_t *)p = (uint32_t)json_object_get_uint64(v);
		break;
	case F_I32:
		*(int32_t *)p = (int32_t)json_object_get_int64(v);
		break;
	case F_PID:
		*(pid_t *)p = (pid_t)json_object_get_int64(v);
		break;
	case F_BOOL:
		*(bool *)p = json_object_is_type(v, json_type_boolean) &&
			     json_object_get_boolean(v);
		break;
	case F_UUID:
		if (!s || uuid_parse(s, p) != 0)
			memset(p, 0, RT_UUID_SIZE);
		break;
	case F_HASH:
		*(uint32_t *)p = s ? (uint32_t)strtoul(s, NULL, 16) : 0;
		break;
	case F_LEVEL_NAME:
		break;
	case F_ARRAY_STATE:
		*(uint32_t *)p = s && !strcmp(s, "dirty") ? RT_ARRAY_DIRTY : RT_ARRAY_CLEAN;
		break;
	case F_HEALTH:
		*(enum rt_health *)p = control_health_parse(s);
		break;
	case F_WALK:
		*(enum rt_walk_kind *)p = control_walk_parse(s);
		break;
	case F_UNIT_STATE:
		*(enum rt_unit_state *)p = control_unit_state_parse(s);
		break;
	case F_UNITS:
		st->n_units = 0;
		if (!json_object_is_type(v, json_type_array))
			break;
		for (size_t i = 0; i < json_object_array_length(v) && i < RT_MAX_UNITS; i++)
			fields_from_json(json_object_array_get_idx(v, i), unit_fields,
					 N_ENTRIES(unit_fields), &st->units[st->n_units++]);
		break;
	case F_STATS:
		fields_from_json(v, stats_fields, N_ENTRIES(stats_fields), p);
		break;
	}
}

/* Members missing from @o (an older engine) read as zero. */
static void fields_from_json(struct json_object *o, const struct field *f, size_t n,
			     void *base)
{
	struct json_object *v;

	for (size_t i = 0; i < n; i++)
		if (json_object_object_get_ex(o, f[i].key, &v))
			field_from_json(&f[i], v, base);
}

/* "[uuid=UUID ]VERB[ --force][ ARG]": the one request line of raidtool-control(7). */
static int request_encode(const uint8_t uuid[RT_UUID_SIZE], const struct rt_control_req *rq,
			  char *line, size_t len)
{
	char uu[40] = "";
	int n;

	if ((unsigned)rq->verb >= RT_VERB_COUNT || (rq->arg && strchr(rq->arg, '\n')))
		return -EINVAL;
	if (uuid)
		uuid_unparse_lower(uuid, uu);
	n = snprintf(line, len, "%s%s%s%s%s", uuid ? RT_CONTROL_UUID_PREFIX : "", uu,
		     uuid ? " " : "", verbs[rq->verb].name,
		     rq->force && verb_takes_force(rq->verb) ? " --force" : "");
	if (n < 0 || (size_t)n >= len)
		return -E2BIG;
	if (rq->arg && rq->arg[0] &&
	    snprintf(line + n, len - (size_t)n, " %s", rq->arg) >= (int)(len - (size_t)n))
		return -E2BIG;
	return 0;
}

/* One compact line of JSON, newline included (NULL: out of memory). */
static char *reply_line(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	char *line = NULL;

	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	return line;
}

/* ---- the server --------------------------------------------------------- */

#define CONTROL_QUEUE_MAX 16	/* commands waiting for the one before them */
#define CONTROL_STOP_WAIT_MS 10000	/* a stop waits this long for the commands before it */

/* A command handed to the command thread: its connection and its request. */
struct queued_command {
	int fd;
	struct rt_control_req rq;	/* rq.arg points into line */
	char line[RT_CONTROL_LINE_MAX];
};

struct control_server {
	char name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	char sock_path[PATH_MAX];
	struct control_ops ops;
	int listen_fd;
	int wake[2];			/* a byte here ends the thread */
	pthread_t thread;
	bool running;
	/*
	 * A `stop` was accepted: from then on the thread only answers "stopping"
	 * (it no longer calls @ops), until control_server_finish.
	 */
	atomic_bool stopping;
	/*
	 * Held across a `stop`'s claim: control_server_stop (a teardown that a
	 * signal began) must know whether that stop was accepted (the thread
	 * then touches nothing of the engine's) or not (it must be joined).
	 */
	pthread_mutex_t stop_mu;
	int pending_fd;			/* the accepted `stop`, answered at finish */
	/*
	 * Commands that act on the array (add, fail, the walks, vol, ...) run
	 * one at a time, in the order they came, on a thread of their own: one
	 * that waits on a device (add probing a disk that hangs its I/O) must
	 * not keep `status`, `ping` and `stop` from being answered.
	 */
	pthread_t cmd_thread;
	bool cmd_running;
	pthread_mutex_t cmd_mu;
	pthread_cond_t cmd_cond;
	struct queued_command *cmd_queue[CONTROL_QUEUE_MAX];
	unsigned cmd_head, cmd_count;
	bool cmd_busy;			/* one is running: cmd_verb */
	enum rt_control_verb cmd_verb;
	bool cmd_quit;			/* the server ends: answer what is left "stopping" */
};

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Send one reply object as a line and free it; -ENOMEM when it could not be built. */
static int reply_send(int fd, struct json_object *o)
{
	char *line = o ? reply_line(o) : NULL;

	json_object_put(o);
	if (!line)
		return -ENOMEM;
	send_all(fd, line, strlen(line));
	free(line);
	return 0;
}

static void reply_error(int fd, int err, const char *msg)
{
	struct json_object *o = json_object_new_object();

	if (err < 0)
		err = -err;
	json_object_object_add(o, "result", json_object_new_string("error"));
	json_object_object_add(o, "errno", json_object_new_uint64((uint64_t)err));
	json_object_object_add(o, "message", json_object_new_string(msg && *msg ? msg :
								      strerror(err)));
	reply_send(fd, o);
}

static void reply_ok_msg(int fd, const struct rt_control_status *st, pid_t pid,
			 const char *msg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "result", json_object_new_string("ok"));
	if (msg)
		json_object_object_add(o, "message", json_object_new_string(msg));
	if (st)
		fields_to_json(o, status_fields, N_ENTRIES(status_fields), st);
	else if (pid)
		json_object_object_add(o, "pid", json_object_new_int64(pid));
	if (reply_send(fd, o) < 0)
		reply_error(fd, -ENOMEM, NULL);
}

static void reply_ok(int fd, const struct rt_control_status *st, pid_t pid)
{
	reply_ok_msg(fd, st, pid, NULL);
}

/* An admin request's reply: its message, and the unit it changed when there is one. */
static void reply_ok_unit(int fd, const char *msg, const struct rt_control_unit *unit)
{
	struct json_object *o = json_object_new_object(), *u;

	json_object_object_add(o, "result", json_object_new_string("ok"));
	json_object_object_add(o, "message", json_object_new_string(msg));
	if (unit->state != RT_UNIT_STATE_NONE) {
		u = json_object_new_object();
		fields_to_json(u, unit_fields, N_ENTRIES(unit_fields), unit);
		json_object_object_add(o, "unit", u);
	}
	if (reply_send(fd, o) < 0)
		reply_error(fd, -ENOMEM, NULL);
}

/* Read one line (up to the newline) with a deadline. */
static int read_request(int fd, char *buf, size_t len)
{
	size_t n = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;
		char *nl;

		if (poll(&pfd, 1, CLIENT_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		r = recv(fd, buf + n, len - 1 - n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ECONNRESET;
		n += (size_t)r;
		buf[n] = '\0';
		nl = strchr(buf, '\n');
		if (nl) {
			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			return 0;
		}
		if (n >= len - 1)
			return -E2BIG;
	}
}

/* A request meant for array @want: refused (ESTALE) unless we run it. */
static int check_uuid(struct control_server *s, const char *want, char *why, size_t len)
{
	uint8_t w[RT_UUID_SIZE];

	if (uuid_parse(want, w) != 0) {
		snprintf(why, len, "'%.40s': not a UUID", want);
		return -EINVAL;
	}
	if (uuid_compare(w, s->uuid) == 0)
		return 0;
	snprintf(why, len, "this engine does not run array %s (it runs array '%s')", want,
		 s->name);
	return -ESTALE;
}

/* "unknown request 'X' (known: ping, status, ...)" */
static void unknown_request(const char *word, char *why, size_t len)
{
	size_t n = (size_t)snprintf(why, len, "unknown request '%.64s' (known:", word);

	for (int v = 0; v < RT_VERB_COUNT && n < len; v++)
		n += (size_t)snprintf(why + n, len - n, "%s %s", v ? "," : "", verbs[v].name);
	if (n < len)
		snprintf(why + n, len - n, ")");
}

/* One command on the command thread; its answer goes to @fd. */
static void command_run(struct control_server *s, int fd, const struct rt_control_req *rq)
{
	struct rt_control_unit unit = { 0 };
	char why[512] = "";
	int r;

	r = s->ops.command(s->ops.ctx, rq, why, sizeof(why), &unit);
	if (r < 0)
		reply_error(fd, r, why);
	else
		reply_ok_unit(fd, why, &unit);
}

static void *command_main(void *arg)
{
	struct control_server *s = arg;
	struct queued_command *qc;
	bool quit;

	pthread_mutex_lock(&s->cmd_mu);
	for (;;) {
		while (!s->cmd_count && !s->cmd_quit)
			pthread_cond_wait(&s->cmd_cond, &s->cmd_mu);
		if (!s->cmd_count)
			break;
		qc = s->cmd_queue[s->cmd_head];
		s->cmd_head = (s->cmd_head + 1) % CONTROL_QUEUE_MAX;
		s->cmd_count--;
		s->cmd_busy = true;
		s->cmd_verb = qc->rq.verb;
		quit = s->cmd_quit;
		pthread_mutex_unlock(&s->cmd_mu);
		if (quit)
			reply_error(qc->fd, -ESHUTDOWN, "the array is stopping");
		else
			command_run(s, qc->fd, &qc->rq);
		close(qc->fd);
		free(qc);
		pthread_mutex_lock(&s->cmd_mu);
		s->cmd_busy = false;
		pthread_cond_broadcast(&s->cmd_cond);
	}
	pthread_mutex_unlock(&s->cmd_mu);
	return NULL;
}

/*
 * Hand @rq (parsed in place in @line) to the command thread, which answers
 * @fd and closes it. Returns true: @fd is no longer the caller's.
 */
static bool command_queue(struct control_server *s, int fd, const struct rt_control_req *rq,
			  const char *line)
{
	struct queued_command *qc = malloc(sizeof(*qc));

	if (!qc) {
		reply_error(fd, -ENOMEM, NULL);
		return false;
	}
	qc->fd = fd;
	qc->rq = *rq;
	memcpy(qc->line, line, sizeof(qc->line));
	if (rq->arg >= line && rq->arg < line + sizeof(qc->line))
		qc->rq.arg = qc->line + (rq->arg - line);
	pthread_mutex_lock(&s->cmd_mu);
	if (s->cmd_count == CONTROL_QUEUE_MAX) {
		pthread_mutex_unlock(&s->cmd_mu);
		free(qc);
		reply_error(fd, -EBUSY, "busy: too many commands wait for the one running; "
			    "try again");
		return false;
	}
	s->cmd_queue[(s->cmd_head + s->cmd_count) % CONTROL_QUEUE_MAX] = qc;
	s->cmd_count++;
	pthread_cond_broadcast(&s->cmd_cond);
	pthread_mutex_unlock(&s->cmd_mu);
	return true;
}

/*
 * Until no command runs or waits (only the server thread queues them), for
 * at most @timeout_ms: then -EBUSY with the one running named in @why. A
 * stop must not wait for ever behind a command that hangs on a device:
 * status and ping would wait behind it again.
 */
static int command_wait_idle(struct control_server *s, int timeout_ms, char *why, size_t len)
{
	struct timespec until;
	int r = 0;

	if (!s->cmd_running)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->cmd_mu);
	while ((s->cmd_count || s->cmd_busy) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&s->cmd_cond, &s->cmd_mu, &until);
	if (s->cmd_count || s->cmd_busy) {
		snprintf(why, len, "busy: '%s' is still running%s; stop again once it ended",
			 s->cmd_busy ? control_verb_name(s->cmd_verb) : "a command",
			 s->cmd_count ? " and more wait behind it" : "");
		r = -EBUSY;
	} else {
		r = 0;
	}
	pthread_mutex_unlock(&s->cmd_mu);
	return r;
}

/*
 * Serve one connection. true: @fd is kept, by the command thread (which
 * answers and closes it) or for the accepted `stop` (control_server_finish
 * answers it).
 */
static bool serve_one(struct control_server *s, int fd)
{
	char line[RT_CONTROL_LINE_MAX], why[512];
	struct rt_control_req rq = { 0 };
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	char *word, *arg, *save = NULL;
	int r, verb;

	/* The line is read first so that a refused client gets its answer, not EPIPE. */
	r = read_request(fd, line, sizeof(line));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != 0) {
		reply_error(fd, -EACCES, "permission denied: only root may control an array");
		return false;
	}
	if (r < 0) {
		if (r == -E2BIG)
			reply_error(fd, r, "request line too long");
		return false;
	}
	word = strtok_r(line, " \t", &save);
	if (word && !strncmp(word, RT_CONTROL_UUID_PREFIX, strlen(RT_CONTROL_UUID_PREFIX))) {
		r = check_uuid(s, word + strlen(RT_CONTROL_UUID_PREFIX), why, sizeof(why));
		if (r < 0) {
			reply_error(fd, r, why);
			return false;
		}
		word = strtok_r(NULL, " \t", &save);
	}
	if (!word) {
		reply_error(fd, -EINVAL, "empty request");
		return false;
	}
	verb = verb_parse(word);
	if (verb < 0 || (verb > RT_VERB_STOP && !s->ops.command)) {
		unknown_request(word, why, sizeof(why));
		reply_error(fd, -EINVAL, why);
		return false;
	}
	rq.verb = (enum rt_control_verb)verb;
	arg = strtok_r(NULL, "", &save);
	while (arg && (*arg == ' ' || *arg == '\t'))
		arg++;
	rq.arg = arg ? arg : "";
	if (verb_takes_force(rq.verb) && !strncmp(rq.arg, "--force ", 8)) {
		rq.force = true;
		rq.arg += 8;
	}
	why[0] = '\0';
	switch (rq.verb) {
	case RT_VERB_PING:
		reply_ok(fd, NULL, getpid());
		break;
	case RT_VERB_STATUS: {
		struct rt_control_status *st = calloc(1, sizeof(*st));

		r = st ? s->ops.status(s->ops.ctx, st) : -ENOMEM;
		if (r < 0)
			reply_error(fd, r, NULL);
		else
			reply_ok(fd, st, 0);
		free(st);
		break;
	}
	case RT_VERB_STOP:
		/* The commands before it end first: the teardown must not run under one. */
		r = command_wait_idle(s, CONTROL_STOP_WAIT_MS, why, sizeof(why));
		if (r < 0) {
			reply_error(fd, r, why);
			return false;
		}
		pthread_mutex_lock(&s->stop_mu);
		/* Set first: the engine's teardown may begin as soon as stop returns. */
		atomic_store(&s->stopping, true);
		r = s->ops.stop(s->ops.ctx, why, sizeof(why));
		if (r < 0)
			atomic_store(&s->stopping, false);
		pthread_mutex_unlock(&s->stop_mu);
		if (r < 0) {
			reply_error(fd, r, why);
			return false;
		}
		s->pending_fd = fd;
		return true;
	default:
		return command_queue(s, fd, &rq, line);
	}
	return false;
}

/*
 * A connection while the array stops: its request is read (a refused client
 * gets its answer, not a reset) and answered with ESHUTDOWN.
 */
static void serve_stopping(struct control_server *s, int fd)
{
	char line[RT_CONTROL_LINE_MAX];

	(void)read_request(fd, line, sizeof(line));
	reply_error(fd, -ESHUTDOWN, "the array is stopping");
}

static void *server_main(void *arg)
{
	struct control_server *s = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = s->listen_fd, .events = POLLIN },
			{ .fd = s->wake[0], .events = POLLIN },
		};
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rt_log(RT_LOG_ERROR, "'%s': control socket: %s", s->name, strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (s->pending_fd >= 0) {
			serve_stopping(s, fd);
		} else if (serve_one(s, fd)) {
			/* @fd kept: the command thread answers it, or finish (a stop) does. */
			continue;
		}
		close(fd);
	}
	return NULL;
}

int control_server_start(const uint8_t uuid[RT_UUID_SIZE], const char *name,
			 const struct control_ops *ops, struct control_server **out)
{
	struct control_server *s;
	struct sockaddr_un sa;
	pthread_condattr_t ca;
	pthread_attr_t attr;
	mode_t old;
	int dirfd = -1, r;

	if (!ops || !ops->status || !ops->stop || !out)
		return -EINVAL;
	r = fields_check(status_fields, N_ENTRIES(status_fields));
	if (r == 0)
		r = fields_check(unit_fields, N_ENTRIES(unit_fields));
	if (r == 0)
		r = fields_check(stats_fields, N_ENTRIES(stats_fields));
	if (r < 0)
		return r;
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->listen_fd = -1;
	s->wake[0] = s->wake[1] = -1;
	s->pending_fd = -1;
	pthread_mutex_init(&s->stop_mu, NULL);
	pthread_mutex_init(&s->cmd_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cmd_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->ops = *ops;
	snprintf(s->name, sizeof(s->name), "%s", name);
	memcpy(s->uuid, uuid, RT_UUID_SIZE);
	r = control_path(uuid, RT_CONTROL_SOCK, s->sock_path, sizeof(s->sock_path));
	if (r < 0)
		goto fail;
	r = sock_addr(uuid, &sa, &dirfd);
	if (r < 0)
		goto fail;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		r = -errno;
		goto fail;
	}
	unlink(s->sock_path);
	old = umask(0077);
	r = bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0) {
		rt_log(RT_LOG_ERROR, "'%s': cannot bind '%s': %s", name, s->sock_path, strerror(-r));
		goto fail;
	}
	if (chmod(s->sock_path, 0600) < 0 || listen(s->listen_fd, 16) < 0) {
		r = -errno;
		goto fail;
	}
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	r = -pthread_create(&s->cmd_thread, &attr, command_main, s);
	if (r == 0) {
		s->cmd_running = true;
		r = -pthread_create(&s->thread, &attr, server_main, s);
	}
	pthread_attr_destroy(&attr);
	if (r < 0)
		goto fail;
	s->running = true;
	if (dirfd >= 0)
		close(dirfd);
	*out = s;
	return 0;
fail:
	if (dirfd >= 0)
		close(dirfd);
	control_server_finish(s, 0, NULL);
	return r;
}

/*
 * End the threads (they answer nobody after this): the server's, then the
 * command thread's once the command it runs ends (those still waiting are
 * answered "stopping").
 */
static void server_join(struct control_server *s)
{
	if (!s)
		return;
	if (s->running) {
		if (write(s->wake[1], "x", 1) < 0)
			rt_log(RT_LOG_DEBUG, "'%s': control wakeup: %s", s->name,
			       strerror(errno));
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	if (s->cmd_running) {
		pthread_mutex_lock(&s->cmd_mu);
		s->cmd_quit = true;
		pthread_cond_broadcast(&s->cmd_cond);
		pthread_mutex_unlock(&s->cmd_mu);
		pthread_join(s->cmd_thread, NULL);
		s->cmd_running = false;
	}
}

/*
 * Once a `stop` was accepted the thread goes on answering "stopping" (it
 * touches nothing of the engine's) until control_server_finish.
 */
void control_server_stop(struct control_server *s)
{
	bool accepted;

	if (!s)
		return;
	/* Not while a stop is being claimed: it may yet be refused (say, the array stops already). */
	pthread_mutex_lock(&s->stop_mu);
	accepted = atomic_load(&s->stopping);
	pthread_mutex_unlock(&s->stop_mu);
	if (!accepted)
		server_join(s);
}

void control_server_finish(struct control_server *s, int err, const char *msg)
{
	if (!s)
		return;
	server_join(s);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink(s->sock_path);
	}
	if (s->pending_fd >= 0) {
		if (err < 0)
			reply_error(s->pending_fd, err, msg);
		else
			reply_ok_msg(s->pending_fd, NULL, 0, msg && *msg ? msg : NULL);
		close(s->pending_fd);
	}
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	pthread_cond_destroy(&s->cmd_cond);
	pthread_mutex_destroy(&s->cmd_mu);
	pthread_mutex_destroy(&s->stop_mu);
	free(s);
}

/* ---- the client --------------------------------------------------------- */

int control_request(const uint8_t uuid[RT_UUID_SIZE], const char *request, char *reply,
		    size_t len, int timeout_ms)
{
	struct sockaddr_un sa;
	size_t n = 0;
	int fd = -1, dirfd = -1, r;

	if (!request || !reply || len < 2 || strchr(request, '\n') ||
	    strlen(request) + 2 > RT_CONTROL_LINE_MAX)
		return -EINVAL;
	r = sock_addr(uuid, &sa, &dirfd);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	r = send_all(fd, request, strlen(request));
	if (r == 0)
		r = send_all(fd, "\n", 1);
	if (r < 0)
		goto out;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t got;

		r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			r = r < 0 ? -errno : -ETIMEDOUT;
			goto out;
		}
		got = recv(fd, reply + n, len - 1 - n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
		reply[n] = '\0';
		if (strchr(reply, '\n'))
			break;
		if (n >= len - 1) {
			r = -E2BIG;
			goto out;
		}
	}
	reply[n] = '\0';
	if (!n || !strchr(reply, '\n')) {
		r = -EPROTO;	/* the engine went away mid-reply */
		goto out;
	}
	reply[strcspn(reply, "\n")] = '\0';
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	return r;
}

/*
 * Send @rq to the engine of @uuid and parse the reply. An error reply is
 * logged ("'NAME': message") and returned as its negative errno; *@out
 * gets the object of an ok reply (the caller puts it).
 */
static int call(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		const struct rt_control_req *rq, struct json_object **out)
{
	char line[RT_CONTROL_LINE_MAX], *reply;
	struct json_object *v = NULL, *m;
	const char *result, *msg;
	int r;

	*out = NULL;
	r = request_encode(uuid, rq, line, sizeof(line));
	if (r < 0)
		return r;
	reply = malloc(REPLY_MAX);
	if (!reply)
		return -ENOMEM;
	r = control_request(uuid, line, reply, REPLY_MAX, verbs[rq->verb].timeout_ms);
	if (r == -ECONNRESET || r == -EPIPE || r == -EPROTO) {
		/* Its socket closed under us: the engine stopped (or died) meanwhile. */
		rt_log(RT_LOG_ERROR, "'%s': the engine stopped while answering; the request "
		       "may not have been carried out", name);
		r = -ESHUTDOWN;
	}
	if (r < 0)
		goto out;
	v = json_tokener_parse(reply);
	if (!json_object_is_type(v, json_type_object)) {
		rt_log(RT_LOG_ERROR, "'%s': the engine sent a malformed reply", name);
		r = -EPROTO;
		goto out;
	}
	result = json_object_object_get_ex(v, "result", &m) ? json_object_get_string(m) : NULL;
	if (!result || strcmp(result, "ok")) {
		int64_t e = json_object_object_get_ex(v, "errno", &m) ? json_object_get_int64(m) : 0;

		msg = json_object_object_get_ex(v, "message", &m) ? json_object_get_string(m) : NULL;
		rt_log(RT_LOG_ERROR, "'%s': %s", name, msg && *msg ? msg : "the engine refused");
		r = e > 0 && e < 4096 ? -(int)e : -EIO;
		goto out;
	}
	*out = v;
	v = NULL;
out:
	json_object_put(v);
	free(reply);
	return r;
}

int control_ping(const uint8_t uuid[RT_UUID_SIZE], const char *name, pid_t *pid)
{
	const struct rt_control_req rq = { .verb = RT_VERB_PING };
	struct json_object *v, *p;
	int r;

	r = call(uuid, name, &rq, &v);
	if (r < 0)
		return r;
	if (pid)
		*pid = json_object_object_get_ex(v, "pid", &p) ? (pid_t)json_object_get_int64(p) : 0;
	json_object_put(v);
	return 0;
}

int control_status(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		   struct rt_control_status *st)
{
	const struct rt_control_req rq = { .verb = RT_VERB_STATUS };
	struct json_object *v;
	int r;

	if (!st)
		return -EINVAL;
	r = call(uuid, name, &rq, &v);
	if (r < 0)
		return r;
	memset(st, 0, sizeof(*st));
	fields_from_json(v, status_fields, N_ENTRIES(status_fields), st);
	json_object_put(v);
	return 0;
}

int control_status_wait(const uint8_t uuid[RT_UUID_SIZE], const char *name,
			struct rt_control_status *st, struct rt_control_probe *p)
{
	int r;

	for (int tries = 0;; tries++) {
		r = control_status(uuid, name, st);
		if ((r != -ENOENT && r != -ECONNREFUSED) || tries == STATUS_WAIT_TRIES)
			return r;
		if (control_probe(uuid, p) < 0 || p->state != RT_CONTROL_ACTIVE) {
			control_log_not_running(name, NULL);
			return -ESHUTDOWN;
		}
		rt_sleep_ms(STATUS_WAIT_MS);
	}
}

int control_stop(const uint8_t uuid[RT_UUID_SIZE], const char *name, char *msg, size_t len)
{
	const struct rt_control_req rq = { .verb = RT_VERB_STOP };
	struct json_object *v, *m;
	int r;

	if (msg && len)
		msg[0] = '\0';
	r = call(uuid, name, &rq, &v);
	if (r == 0 && msg && len && json_object_object_get_ex(v, "message", &m))
		snprintf(msg, len, "%s", json_object_get_string(m));
	json_object_put(v);
	return r < 0 ? r : 0;
}

int control_call_unit(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		      const struct rt_control_req *rq, char *msg, size_t len,
		      struct rt_control_unit *unit)
{
	struct json_object *v, *m;
	int r;

	if (!rq)
		return -EINVAL;
	if (unit)
		memset(unit, 0, sizeof(*unit));
	r = call(uuid, name, rq, &v);
	if (r < 0)
		return r;
	if (msg && len)
		snprintf(msg, len, "%s", json_object_object_get_ex(v, "message", &m) ?
			 json_object_get_string(m) : "");
	if (unit && json_object_object_get_ex(v, "unit", &m) &&
	    json_object_is_type(m, json_type_object))
		fields_from_json(m, unit_fields, N_ENTRIES(unit_fields), unit);
	json_object_put(v);
	return 0;
}

int control_call(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		 const struct rt_control_req *rq, char *msg, size_t len)
{
	return control_call_unit(uuid, name, rq, msg, len, NULL);
}

int control_add(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *path,
		bool force, char *msg, size_t len)
{
	const struct rt_control_req rq = { .verb = RT_VERB_ADD, .force = force, .arg = path };

	return control_call(uuid, name, &rq, msg, len);
}

int control_fail(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *member,
		 bool force, char *msg, size_t len)
{
	const struct rt_control_req rq = { .verb = RT_VERB_FAIL, .force = force, .arg = member };

	return control_call(uuid, name, &rq, msg, len);
}

int control_remove(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *member,
		   char *msg, size_t len)
{
	const struct rt_control_req rq = { .verb = RT_VERB_REMOVE, .arg = member };

	return control_call(uuid, name, &rq, msg, len);
}
