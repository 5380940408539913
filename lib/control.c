/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The run directory and the control socket of running arrays.
 *
 * Wire format (raidtool-control(7)): the client sends one line
 * "COMMAND [ARGS]\n"; the engine answers with one line of JSON, either
 * {"result":"ok",...} or {"result":"error","errno":N,"message":"..."}, and
 * closes the connection. Only root (SO_PEERCRED uid 0) is served.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include <raidtool/json.h>
#include <raidtool/loopdev.h>
#include <raidtool/log.h>

#define CLIENT_TIMEOUT_MS 5000		/* a client that does not send its line */
#define STATUS_TIMEOUT_MS 10000
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
	       strerror(-r));
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

int control_array_of_file(const char *file, char *name, size_t namelen,
			  uint8_t uuid[RT_UUID_SIZE])
{
	const char *base, *mnt, *key;
	size_t len = strlen(file);
	char keybuf[37];

	/* ".../<UUID>/mnt/<NAME>": walk back over the three components. */
	base = memrchr(file, '/', len);
	if (!base || base == file)
		return -ENODEV;
	mnt = memrchr(file, '/', (size_t)(base - file));
	if (!mnt || (size_t)(base - mnt) != strlen("/" RT_CONTROL_MNT) ||
	    strncmp(mnt, "/" RT_CONTROL_MNT, strlen("/" RT_CONTROL_MNT)) != 0 || mnt == file)
		return -ENODEV;
	key = memrchr(file, '/', (size_t)(mnt - file));
	if (!key || (size_t)(mnt - key - 1) != sizeof(keybuf) - 1)
		return -ENODEV;
	memcpy(keybuf, key + 1, sizeof(keybuf) - 1);
	keybuf[sizeof(keybuf) - 1] = '\0';
	if (uuid_parse(keybuf, uuid) != 0 || sb_name_check(base + 1) < 0)
		return -ENODEV;
	if (strlen(base + 1) >= namelen)
		return -ENAMETOOLONG;
	memcpy(name, base + 1, strlen(base + 1) + 1);
	return 0;
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
		       strerror(-r));
		return r;
	}
	r = control_path(uuid, RT_CONTROL_PID, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		rt_log(RT_LOG_ERROR, "'%s': cannot open: %s", path, strerror(-r));
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

/* ---- JSON out: the shared writer (raidtool/json.h), one line per reply ---- */

static void status_to_json(struct json *b, const struct rt_control_status *st)
{
	json_str(b, "state", st->state);
	json_str(b, "name", st->name);
	json_uuid(b, "uuid", st->uuid);
	json_hash(b, "hashcode", st->hashcode);
	json_str(b, "level", sb_level_name(st->level));
	json_i64(b, "level_number", st->level);
	json_u64(b, "size", st->size);
	json_u64(b, "nblocks", st->nblocks);
	json_u64(b, "blocksize", st->blocksize);
	json_u64(b, "chunk_size", st->chunk_size);
	json_u64(b, "n_devices", st->n_devices);
	json_u64(b, "events", st->events);
	json_str(b, "array_state", sb_array_state_name(st->array_state));
	json_str(b, "device", st->device[0] ? st->device : NULL);
	json_str(b, "link", st->link[0] ? st->link : NULL);
	json_i64(b, "pid", st->pid);
	json_u64(b, "started", st->started);
	json_array_begin(b, "units");
	for (unsigned i = 0; i < st->n_units; i++) {
		const struct rt_control_unit *u = &st->units[i];

		json_object_begin(b, NULL);
		json_u64(b, "slot", u->slot);
		json_str(b, "device", u->device);
		json_uuid(b, "uuid", u->uuid);
		json_hash(b, "hashcode", u->hashcode);
		json_str(b, "state", u->state);
		json_u64(b, "reads", u->reads);
		json_u64(b, "writes", u->writes);
		json_u64(b, "read_bytes", u->read_bytes);
		json_u64(b, "write_bytes", u->write_bytes);
		json_u64(b, "errors", u->errors);
		json_u64(b, "retries", u->retries);
		json_bool(b, "no_space", u->no_space);
		json_object_end(b);
	}
	json_array_end(b);
	json_object_begin(b, "stats");
	json_u64(b, "reads", st->stats.reads);
	json_u64(b, "writes", st->stats.writes);
	json_u64(b, "flushes", st->stats.flushes);
	json_u64(b, "read_bytes", st->stats.read_bytes);
	json_u64(b, "write_bytes", st->stats.write_bytes);
	json_u64(b, "errors", st->stats.errors);
	json_u64(b, "stripe_full", st->stats.stripe_full);
	json_u64(b, "stripe_merged", st->stats.stripe_merged);
	json_u64(b, "stripe_rmw", st->stats.stripe_rmw);
	json_u64(b, "stripe_rcw", st->stats.stripe_rcw);
	json_u64(b, "discards", st->stats.discards);
	json_u64(b, "discard_bytes", st->stats.discard_bytes);
	json_object_end(b);
	json_str(b, "health", st->health);
	json_str(b, "walk", st->walk);
	json_bool(b, "walk_running", st->walk_running);
	json_i64(b, "walk_result", st->walk_result);
	json_u64(b, "walk_role", st->walk_role);
	json_u64(b, "walk_done", st->walk_done);
	json_u64(b, "walk_total", st->walk_total);
	json_u64(b, "walk_speed", st->walk_speed);
	json_u64(b, "walk_speed_max", st->walk_speed_max);
	json_u64(b, "mismatches", st->mismatches);
	json_u64(b, "repaired", st->repaired);
	json_u64(b, "regions", st->regions);
	json_u64(b, "regions_total", st->regions_total);
	json_bool(b, "unsynced", st->unsynced);
	json_u64(b, "unsynced_left", st->unsynced_left);
	json_u64(b, "unsynced_total", st->unsynced_total);
	json_u64(b, "ties", st->ties);
	json_u64(b, "kept_roles", st->kept_roles);
	json_u64(b, "nospace_mask", st->nospace_mask);
	json_u64(b, "retry_count", st->retry_count);
	json_u64(b, "retry_window_ms", st->retry_window_ms);
	json_str(b, "transport", st->transport);
	json_u64(b, "fuse_ring_requests", st->fuse_ring_requests);
	json_u64(b, "fuse_dev_requests", st->fuse_dev_requests);
	json_u64(b, "fuse_queues", st->fuse_queues);
	json_u64(b, "fuse_queue_depth", st->fuse_queue_depth);
}

/* ---- JSON in: a small DOM for our own replies --------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	char *key;			/* member name inside an object */
	char *str;			/* J_STR */
	uint64_t u;			/* J_NUM, when a non-negative integer */
	int64_t i;			/* J_NUM */
	bool b;
	struct jval *child, *next;
};

struct jparse {
	const char *s;
	int depth;
};

static void jv_free(struct jval *v)
{
	while (v) {
		struct jval *next = v->next;

		jv_free(v->child);
		free(v->key);
		free(v->str);
		free(v);
		v = next;
	}
}

static void skip_ws(struct jparse *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char *parse_string(struct jparse *p)
{
	size_t cap = 32, n = 0;
	char *out;

	if (*p->s != '"')
		return NULL;
	p->s++;
	out = malloc(cap);
	if (!out)
		return NULL;
	while (*p->s && *p->s != '"') {
		char c = *p->s++;

		if (c == '\\') {
			c = *p->s++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				int v = 0;

				for (int k = 0; k < 4; k++) {
					int h = hexval(*p->s);

					if (h < 0)
						goto bad;
					v = v * 16 + h;
					p->s++;
				}
				c = v < 0x80 ? (char)v : '?';	/* we only send ASCII escapes */
				break;
			}
			case '"': case '\\': case '/':
				break;
			default:
				goto bad;
			}
		}
		if (n + 2 > cap) {
			char *q = realloc(out, cap *= 2);

			if (!q)
				goto bad;
			out = q;
		}
		out[n++] = c;
	}
	if (*p->s != '"')
		goto bad;
	p->s++;
	out[n] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static struct jval *parse_value(struct jparse *p);

static struct jval *parse_container(struct jparse *p, bool obj)
{
	struct jval *v = calloc(1, sizeof(*v)), **tail;

	if (!v)
		return NULL;
	v->type = obj ? J_OBJ : J_ARR;
	tail = &v->child;
	p->s++;
	skip_ws(p);
	if (*p->s == (obj ? '}' : ']')) {
		p->s++;
		return v;
	}
	for (;;) {
		char *key = NULL;
		struct jval *m;

		skip_ws(p);
		if (obj) {
			key = parse_string(p);
			if (!key)
				goto bad;
			skip_ws(p);
			if (*p->s != ':') {
				free(key);
				goto bad;
			}
			p->s++;
		}
		m = parse_value(p);
		if (!m) {
			free(key);
			goto bad;
		}
		m->key = key;
		*tail = m;
		tail = &m->next;
		skip_ws(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s == (obj ? '}' : ']')) {
			p->s++;
			return v;
		}
		goto bad;
	}
bad:
	jv_free(v);
	return NULL;
}

static struct jval *parse_value(struct jparse *p)
{
	struct jval *v;

	skip_ws(p);
	if (++p->depth > 16)
		return NULL;
	if (*p->s == '{' || *p->s == '[') {
		v = parse_container(p, *p->s == '{');
		p->depth--;
		return v;
	}
	p->depth--;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	if (*p->s == '"') {
		v->type = J_STR;
		v->str = parse_string(p);
		if (!v->str)
			goto bad;
	} else if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
		v->type = J_BOOL;
		v->b = p->s[0] == 't';
		p->s += v->b ? 4 : 5;
	} else if (!strncmp(p->s, "null", 4)) {
		v->type = J_NULL;
		p->s += 4;
	} else if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
		char *end;

		v->type = J_NUM;
		errno = 0;
		if (*p->s == '-') {
			v->i = strtoll(p->s, &end, 10);
		} else {
			v->u = strtoull(p->s, &end, 10);
			v->i = (int64_t)v->u;
		}
		if (end == p->s || errno)
			goto bad;
		p->s = end;
		/* Fractions and exponents are not part of our protocol: skip them. */
		while (*p->s == '.' || *p->s == 'e' || *p->s == 'E' || *p->s == '+' ||
		       *p->s == '-' || (*p->s >= '0' && *p->s <= '9'))
			p->s++;
	} else {
		goto bad;
	}
	return v;
bad:
	jv_free(v);
	return NULL;
}

static struct jval *json_parse(const char *s)
{
	struct jparse p = { .s = s };
	struct jval *v = parse_value(&p);

	if (!v)
		return NULL;
	skip_ws(&p);
	if (*p.s) {
		jv_free(v);
		return NULL;
	}
	return v;
}

static const struct jval *jget(const struct jval *obj, const char *key)
{
	if (!obj || obj->type != J_OBJ)
		return NULL;
	for (const struct jval *m = obj->child; m; m = m->next)
		if (m->key && !strcmp(m->key, key))
			return m;
	return NULL;
}

static uint64_t jget_u64(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key);

	return v && v->type == J_NUM ? v->u : 0;
}

static int64_t jget_i64(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key);

	return v && v->type == J_NUM ? v->i : 0;
}

static bool jget_bool(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key);

	return v && v->type == J_BOOL && v->b;
}

static void jget_str(const struct jval *obj, const char *key, char *buf, size_t len)
{
	const struct jval *v = jget(obj, key);

	snprintf(buf, len, "%s", v && v->type == J_STR ? v->str : "");
}

static void jget_uuid(const struct jval *obj, const char *key, uint8_t *uuid)
{
	char s[40];

	jget_str(obj, key, s, sizeof(s));
	if (uuid_parse(s, uuid) < 0)
		memset(uuid, 0, RT_UUID_SIZE);
}

static uint32_t jget_hash(const struct jval *obj, const char *key)
{
	char s[16];

	jget_str(obj, key, s, sizeof(s));
	return (uint32_t)strtoul(s, NULL, 16);
}

static void status_from_json(const struct jval *o, struct rt_control_status *st)
{
	const struct jval *units, *stats;
	char tmp[32];
	unsigned n = 0;

	memset(st, 0, sizeof(*st));
	jget_str(o, "state", st->state, sizeof(st->state));
	jget_str(o, "name", st->name, sizeof(st->name));
	jget_uuid(o, "uuid", st->uuid);
	st->hashcode = jget_hash(o, "hashcode");
	st->level = (int32_t)jget_i64(o, "level_number");
	st->size = jget_u64(o, "size");
	st->nblocks = jget_u64(o, "nblocks");
	st->blocksize = (uint32_t)jget_u64(o, "blocksize");
	st->chunk_size = (uint32_t)jget_u64(o, "chunk_size");
	st->n_devices = (uint32_t)jget_u64(o, "n_devices");
	st->events = jget_u64(o, "events");
	jget_str(o, "array_state", tmp, sizeof(tmp));
	st->array_state = strcmp(tmp, "dirty") ? RT_ARRAY_CLEAN : RT_ARRAY_DIRTY;
	jget_str(o, "device", st->device, sizeof(st->device));
	jget_str(o, "link", st->link, sizeof(st->link));
	st->pid = (pid_t)jget_i64(o, "pid");
	st->started = jget_u64(o, "started");
	units = jget(o, "units");
	if (units && units->type == J_ARR) {
		for (const struct jval *u = units->child; u && n < RT_MAX_UNITS; u = u->next, n++) {
			struct rt_control_unit *cu = &st->units[n];

			cu->slot = (uint32_t)jget_u64(u, "slot");
			jget_str(u, "device", cu->device, sizeof(cu->device));
			jget_uuid(u, "uuid", cu->uuid);
			cu->hashcode = jget_hash(u, "hashcode");
			jget_str(u, "state", cu->state, sizeof(cu->state));
			cu->reads = jget_u64(u, "reads");
			cu->writes = jget_u64(u, "writes");
			cu->read_bytes = jget_u64(u, "read_bytes");
			cu->write_bytes = jget_u64(u, "write_bytes");
			cu->errors = jget_u64(u, "errors");
			cu->retries = jget_u64(u, "retries");
			cu->no_space = jget_bool(u, "no_space");
		}
	}
	st->n_units = n;
	stats = jget(o, "stats");
	st->stats.reads = jget_u64(stats, "reads");
	st->stats.writes = jget_u64(stats, "writes");
	st->stats.flushes = jget_u64(stats, "flushes");
	st->stats.read_bytes = jget_u64(stats, "read_bytes");
	st->stats.write_bytes = jget_u64(stats, "write_bytes");
	st->stats.errors = jget_u64(stats, "errors");
	st->stats.stripe_full = jget_u64(stats, "stripe_full");
	st->stats.stripe_merged = jget_u64(stats, "stripe_merged");
	st->stats.stripe_rmw = jget_u64(stats, "stripe_rmw");
	st->stats.stripe_rcw = jget_u64(stats, "stripe_rcw");
	st->stats.discards = jget_u64(stats, "discards");
	st->stats.discard_bytes = jget_u64(stats, "discard_bytes");
	jget_str(o, "health", st->health, sizeof(st->health));
	jget_str(o, "walk", st->walk, sizeof(st->walk));
	st->walk_running = jget_bool(o, "walk_running");
	st->walk_result = (int32_t)jget_i64(o, "walk_result");
	st->walk_role = (uint32_t)jget_u64(o, "walk_role");
	st->walk_done = jget_u64(o, "walk_done");
	st->walk_total = jget_u64(o, "walk_total");
	st->walk_speed = jget_u64(o, "walk_speed");
	st->walk_speed_max = jget_u64(o, "walk_speed_max");
	st->mismatches = jget_u64(o, "mismatches");
	st->repaired = jget_u64(o, "repaired");
	st->regions = jget_u64(o, "regions");
	st->regions_total = jget_u64(o, "regions_total");
	{
		const struct jval *u = jget(o, "unsynced");

		st->unsynced = u && u->type == J_BOOL && u->b;
	}
	st->unsynced_left = jget_u64(o, "unsynced_left");
	st->unsynced_total = jget_u64(o, "unsynced_total");
	st->ties = jget_u64(o, "ties");
	st->kept_roles = jget_u64(o, "kept_roles");
	st->nospace_mask = jget_u64(o, "nospace_mask");
	st->retry_count = (uint32_t)jget_u64(o, "retry_count");
	st->retry_window_ms = (uint32_t)jget_u64(o, "retry_window_ms");
	jget_str(o, "transport", st->transport, sizeof(st->transport));
	st->fuse_ring_requests = jget_u64(o, "fuse_ring_requests");
	st->fuse_dev_requests = jget_u64(o, "fuse_dev_requests");
	st->fuse_queues = (uint32_t)jget_u64(o, "fuse_queues");
	st->fuse_queue_depth = (uint32_t)jget_u64(o, "fuse_queue_depth");
}

/* ---- the server --------------------------------------------------------- */

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
	int pending_fd;			/* the accepted `stop`, answered at finish */
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

/* Build one reply line in memory and send it; -ENOMEM when it could not be built. */
static int reply_send(int fd, void (*fill)(struct json *j, const void *arg), const void *arg)
{
	struct json j;
	size_t len = 0;
	char *p = NULL;
	FILE *f = open_memstream(&p, &len);

	if (!f)
		return -ENOMEM;
	json_init_compact(&j, f);
	json_object_begin(&j, NULL);
	fill(&j, arg);
	json_object_end(&j);
	json_finish(&j);
	if (ferror(f)) {
		fclose(f);
		free(p);
		return -ENOMEM;
	}
	fclose(f);
	send_all(fd, p, len);
	free(p);
	return 0;
}

struct reply_args {
	int err;
	const char *msg;
	const struct rt_control_status *st;
	pid_t pid;
};

static void fill_error(struct json *j, const void *varg)
{
	const struct reply_args *a = varg;
	int err = a->err < 0 ? -a->err : a->err;

	json_str(j, "result", "error");
	json_u64(j, "errno", (uint64_t)err);
	json_str(j, "message", a->msg && *a->msg ? a->msg : strerror(err));
}

static void fill_ok(struct json *j, const void *varg)
{
	const struct reply_args *a = varg;

	json_str(j, "result", "ok");
	if (a->msg)
		json_str(j, "message", a->msg);
	if (a->st)
		status_to_json(j, a->st);
	else if (a->pid)
		json_i64(j, "pid", a->pid);
}

static void reply_error(int fd, int err, const char *msg)
{
	struct reply_args a = { .err = err, .msg = msg };

	reply_send(fd, fill_error, &a);
}

static void reply_ok_msg(int fd, const struct rt_control_status *st, pid_t pid,
			 const char *msg)
{
	struct reply_args a = { .msg = msg, .st = st, .pid = pid };

	if (reply_send(fd, fill_ok, &a) < 0)
		reply_error(fd, -ENOMEM, NULL);
}

static void reply_ok(int fd, const struct rt_control_status *st, pid_t pid)
{
	reply_ok_msg(fd, st, pid, NULL);
}

static bool is_command(const char *cmd)
{
	static const char *const known[] = { "fail", "remove", "add", "check", "repair",
					     "cancel", "tune", "speed", "vol" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(cmd, known[i]))
			return true;
	return false;
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

/* Serve one connection. true: a `stop` was accepted, the thread ends. */
static bool serve_one(struct control_server *s, int fd)
{
	char line[RT_CONTROL_LINE_MAX], why[512];
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	char *cmd, *save = NULL;
	int r;

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
	cmd = strtok_r(line, " \t", &save);
	if (cmd && !strncmp(cmd, RT_CONTROL_UUID_PREFIX, strlen(RT_CONTROL_UUID_PREFIX))) {
		r = check_uuid(s, cmd + strlen(RT_CONTROL_UUID_PREFIX), why, sizeof(why));
		if (r < 0) {
			reply_error(fd, r, why);
			return false;
		}
		cmd = strtok_r(NULL, " \t", &save);
	}
	if (!cmd) {
		reply_error(fd, -EINVAL, "empty request");
	} else if (!strcmp(cmd, "ping")) {
		reply_ok(fd, NULL, getpid());
	} else if (!strcmp(cmd, "status") || !strcmp(cmd, "lookup.device") ||
		   !strcmp(cmd, "list.device.units")) {
		struct rt_control_status *st = calloc(1, sizeof(*st));

		r = st ? s->ops.status(s->ops.ctx, st) : -ENOMEM;
		if (r < 0)
			reply_error(fd, r, NULL);
		else
			reply_ok(fd, st, 0);
		free(st);
	} else if (!strcmp(cmd, "stop") || !strcmp(cmd, "deactivate")) {
		why[0] = '\0';
		/* Set first: the engine's teardown may begin as soon as stop returns. */
		atomic_store(&s->stopping, true);
		r = s->ops.stop(s->ops.ctx, why, sizeof(why));
		if (r < 0) {
			atomic_store(&s->stopping, false);
			reply_error(fd, r, why);
			return false;
		}
		s->pending_fd = fd;
		return true;
	} else if (s->ops.command && is_command(cmd)) {
		char *arg = strtok_r(NULL, "", &save);

		while (arg && (*arg == ' ' || *arg == '\t'))
			arg++;
		why[0] = '\0';
		r = s->ops.command(s->ops.ctx, cmd, arg ? arg : "", why, sizeof(why));
		if (r < 0)
			reply_error(fd, r, why);
		else
			reply_ok_msg(fd, NULL, 0, why);
	} else {
		snprintf(why, sizeof(why), "unknown request '%.64s' (known: ping, status, stop, "
			 "fail, remove, add, check, repair, cancel)", cmd);
		reply_error(fd, -EINVAL, why);
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
			continue;	/* keep @fd (finish answers it); tell others we stop */
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
	pthread_attr_t attr;
	mode_t old;
	int dirfd = -1, r;

	if (!ops || !ops->status || !ops->stop || !out)
		return -EINVAL;
	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->listen_fd = -1;
	s->wake[0] = s->wake[1] = -1;
	s->pending_fd = -1;
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
	r = -pthread_create(&s->thread, &attr, server_main, s);
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

/* End the thread (it answers nobody after this). */
static void server_join(struct control_server *s)
{
	if (!s || !s->running)
		return;
	if (write(s->wake[1], "x", 1) < 0)
		rt_log(RT_LOG_DEBUG, "'%s': control wakeup: %s", s->name, strerror(errno));
	pthread_join(s->thread, NULL);
	s->running = false;
}

/*
 * Once a `stop` was accepted the thread goes on answering "stopping" (it
 * touches nothing of the engine's) until control_server_finish.
 */
void control_server_stop(struct control_server *s)
{
	if (s && !atomic_load(&s->stopping))
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
			reply_ok(s->pending_fd, NULL, 0);
		close(s->pending_fd);
	}
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
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
 * Send @request and parse the reply. An error reply is logged ("'NAME':
 * message") and returned as its negative errno; *@out gets the object of an
 * ok reply (the caller frees it with jv_free).
 */
static int call(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *request,
		int timeout_ms, struct jval **out)
{
	char *reply;
	struct jval *v;
	char result[16], msg[512];
	int r;

	*out = NULL;
	reply = malloc(REPLY_MAX);
	if (!reply)
		return -ENOMEM;
	r = control_request(uuid, request, reply, REPLY_MAX, timeout_ms);
	if (r == -ECONNRESET || r == -EPIPE || r == -EPROTO) {
		/* Its socket closed under us: the engine stopped (or died) meanwhile. */
		rt_log(RT_LOG_ERROR, "'%s': the engine stopped while answering; the request "
		       "may not have been carried out", name);
		r = -ESHUTDOWN;
	}
	if (r < 0)
		goto out;
	v = json_parse(reply);
	if (!v || v->type != J_OBJ) {
		jv_free(v);
		rt_log(RT_LOG_ERROR, "'%s': the engine sent a malformed reply", name);
		r = -EPROTO;
		goto out;
	}
	jget_str(v, "result", result, sizeof(result));
	if (strcmp(result, "ok")) {
		int64_t e = jget_i64(v, "errno");

		jget_str(v, "message", msg, sizeof(msg));
		rt_log(RT_LOG_ERROR, "'%s': %s", name, msg[0] ? msg : "the engine refused");
		r = e > 0 && e < 4096 ? -(int)e : -EIO;
		jv_free(v);
		goto out;
	}
	*out = v;
out:
	free(reply);
	return r;
}

int control_ping(const uint8_t uuid[RT_UUID_SIZE], const char *name, pid_t *pid)
{
	struct jval *v;
	int r;

	r = call(uuid, name, "ping", STATUS_TIMEOUT_MS, &v);
	if (r < 0)
		return r;
	if (pid)
		*pid = (pid_t)jget_i64(v, "pid");
	jv_free(v);
	return 0;
}

int control_status(const uint8_t uuid[RT_UUID_SIZE], const char *name,
		   struct rt_control_status *st)
{
	struct jval *v;
	int r;

	if (!st)
		return -EINVAL;
	r = call(uuid, name, "status", STATUS_TIMEOUT_MS, &v);
	if (r < 0)
		return r;
	status_from_json(v, st);
	jv_free(v);
	return 0;
}

int control_stop(const uint8_t uuid[RT_UUID_SIZE], const char *name)
{
	struct jval *v;
	int r;

	r = call(uuid, name, "stop", STOP_TIMEOUT_MS, &v);
	if (r < 0)
		return r;
	jv_free(v);
	return 0;
}

int control_command(const uint8_t uuid[RT_UUID_SIZE], const char *name, const char *request,
		    char *msg, size_t len)
{
	struct jval *v;
	int r;

	r = call(uuid, name, request, COMMAND_TIMEOUT_MS, &v);
	if (r < 0)
		return r;
	if (msg && len)
		jget_str(v, "message", msg, len);
	jv_free(v);
	return 0;
}
