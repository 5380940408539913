/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Incremental assembly (udev): the map of arrived units, the decision
 * whether an array is complete, starting it, and the waiter that starts a
 * degraded array once nothing more has come for a while.
 *
 * The map is text, one unit per line, rewritten whole under an flock on
 * <rundir>/map.lock, because udev handles the events of different devices
 * in parallel workers and the last of them must see all the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <raidtool/activate.h>
#include <raidtool/control.h>
#include <raidtool/incremental.h>
#include <raidtool/lock.h>
#include <raidtool/log.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>
#include <raidtool/util.h>
#include "control-internal.h"
#include "incmap.h"
#include "scan-internal.h"

#define WAITER_LOG "incremental.log"

const char *incremental_started_name(int started)
{
	switch (started) {
	case RT_INC_UNSAFE:
		return "unsafe";
	case RT_INC_YES:
		return "yes";
	case RT_INC_ALREADY:
		return "already";
	default:
		return "no";
	}
}

int incremental_verdict(const struct rt_scan_array *a, bool run)
{
	const struct rt_array_desc *d = &a->sb.array;
	unsigned missing = d->n_devices > a->n_active_roles ? d->n_devices - a->n_active_roles : 0;

	if (missing > sb_max_missing(d->level, d->n_devices))
		return RT_INC_NO;
	if (a->n_present_roles >= a->n_expected_roles || run)
		return RT_INC_YES;
	return RT_INC_UNSAFE;
}

/* ---- deciding ----------------------------------------------------------- */

static void result_from_sb(struct rt_incremental_result *res, const struct rt_sb *sb)
{
	snprintf(res->name, sizeof(res->name), "%s", sb->array.name);
	memcpy(res->uuid, sb->array.uuid, RT_UUID_SIZE);
	res->hashcode = sb->array.hashcode;
	res->n_devices = sb->array.n_devices;
}

/*
 * Read the map's units of array @uuid again (a device may have changed
 * since it was recorded), drop the entries that no longer hold their unit,
 * and decide. Called with the map locked; saves it.
 */
static int evaluate(struct incmap *m, const uint8_t uuid[RT_UUID_SIZE], bool run,
		    struct rt_incremental_result *res)
{
	const struct rt_scan_array *a = NULL;
	const char **devs = NULL;
	struct rt_scan *scan = NULL;
	size_t n = 0;
	int r;

	res->started = RT_INC_NO;
	devs = calloc(m->n ? m->n : 1, sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		if (!memcmp(m->e[i].array_uuid, uuid, RT_UUID_SIZE))
			devs[n++] = m->e[i].dev;
	r = scan_devices_list(devs, n, &scan);
	if (r < 0)
		goto out;
	for (size_t i = m->n; i-- > 0;) {
		const struct rt_scan_unit *su;

		if (memcmp(m->e[i].array_uuid, uuid, RT_UUID_SIZE))
			continue;
		su = scan_find_unit(scan, m->e[i].dev);
		if (!su || memcmp(su->sb.unit.uuid, m->e[i].unit_uuid, RT_UUID_SIZE) ||
		    memcmp(su->sb.array.uuid, uuid, RT_UUID_SIZE)) {
			rt_log(RT_LOG_DEBUG, "incremental: '%s' no longer holds unit %08x; forgotten",
			       m->e[i].dev, m->e[i].unit_hashcode);
			incmap_drop(m, i);
		}
	}
	for (size_t i = 0; i < scan->n_arrays && !a; i++)
		if (!memcmp(scan->arrays[i].sb.array.uuid, uuid, RT_UUID_SIZE))
			a = &scan->arrays[i];
	if (a) {
		result_from_sb(res, &a->sb);
		res->n_expected = a->n_expected_roles;
		res->n_present = a->n_present_roles;
		res->started = incremental_verdict(a, run);
	}
	r = incmap_save(m);
out:
	scan_free(scan);
	free(devs);
	return r;
}

/* Does an engine run this array? ALREADY (with its link) when it does. */
static bool check_running(struct rt_incremental_result *res)
{
	struct rt_control_probe p;

	if (control_probe(res->uuid, &p) < 0 || p.state != RT_CONTROL_ACTIVE)
		return false;
	res->started = RT_INC_ALREADY;
	snprintf(res->link, sizeof(res->link), "%s", p.link);
	return true;
}

static void on_ready(const char *name, const char *link, const char *dev, void *arg)
{
	struct rt_incremental_result *res = arg;

	(void)name;
	(void)dev;
	snprintf(res->link, sizeof(res->link), "%s", link);
}

/* udev waits for incremental: the array's lock is waited for this long at most. */
#define START_LOCK_WAIT_MS 5000

static int start_array(struct rt_incremental_result *res)
{
	struct rt_activate_opts ao = { 0 };
	long wait = lock_wait_ms();
	char id[16];
	int r, lock_fd;

	if (wait < 0) {
		res->started = RT_INC_NO;
		return (int)wait;
	}
	if (wait > START_LOCK_WAIT_MS)
		wait = START_LOCK_WAIT_MS;
	/*
	 * The array's admin lock, as `raidtool activate` takes it: not while a
	 * deactivate, add, ... of it is under way (busy: not started). The
	 * engine's process does not inherit it (it closes what it inherits).
	 */
	r = lock_take_array_within(res->uuid, wait, &lock_fd);
	if (r < 0) {
		res->started = RT_INC_NO;
		return r;
	}
	/* By hashcode: two arrays may share a name, the map knows which one is meant. */
	snprintf(id, sizeof(id), "%08x", res->hashcode);
	ao.id = id;
	ao.ready = on_ready;
	ao.arg = res;
	r = activate_array(&ao);
	lock_release(lock_fd);
	if (r == -EALREADY) {
		check_running(res);
		return 0;
	}
	if (r < 0) {
		res->started = RT_INC_NO;
		return r;
	}
	res->started = RT_INC_YES;
	return 0;
}

/* ---- the waiter --------------------------------------------------------- */

static int start_one(const uint8_t uuid[RT_UUID_SIZE], const struct rt_incremental_opts *o,
		     struct rt_incremental_result *res);

/*
 * The waiter: a daemon of its own (new session, stdio away from udev's
 * pipes, no inherited descriptors), so that udev, which waits for its
 * program's output to close and may kill what it started, lets it be.
 * Its messages go to <rundir>/incremental.log.
 */
static void waiter_main(int lock_fd, const char *lock_path,
			const struct rt_incremental_result *waiting, unsigned timeout)
{
	struct rt_incremental_opts o = { .run = true };
	struct rt_incremental_result res = *waiting;
	char log[PATH_MAX], pid[32];
	int fd, n;

	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (incmap_rundir_file(WAITER_LOG, log, sizeof(log)) < 0 ||
		    (fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
			fd = STDOUT_FILENO;
		dup2(fd, STDERR_FILENO);
	}
	for (int i = 3; i < 1024; i++)
		if (i != lock_fd)
			close(i);
	/* The lock file names the waiter, for `kill` (and the tests' clean-up). */
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(lock_fd, 0) < 0 || pwrite(lock_fd, pid, (size_t)n, 0) != n)
		rt_log(RT_LOG_DEBUG, "incremental: cannot write the waiter's pid: %s",
		       strerror(errno));
	/* Once the array runs (complete, or started by hand) the wait is over for good. */
	for (unsigned t = 0; t < timeout; t++) {
		rt_sleep_ms(1000);
		if (check_running(&res))
			goto out;
	}
	if (start_one(waiting->uuid, &o, &res) == 0 && res.started == RT_INC_YES)
		rt_log(RT_LOG_WARN, "'%s': started after waiting %u s for the rest of its units: "
		       "%u of %u roles present", res.name, timeout, res.n_present, res.n_devices);
out:
	unlink(lock_path);
}

/* Start a waiter for @res's array unless one is counting already. */
static int arm_waiter(struct rt_incremental_result *res, unsigned timeout)
{
	char path[PATH_MAX], uu[37], file[64];
	int fd, r;
	pid_t pid;

	uuid_unparse_lower(res->uuid, uu);
	snprintf(file, sizeof(file), "wait-%s", uu);
	r = incmap_rundir_file(file, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? 0 : -errno;
		close(fd);
		res->waiter = r == 0;
		return r;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (pid == 0) {
		setsid();
		if (fork() == 0) {
			waiter_main(fd, path, res, timeout);
			_exit(0);
		}
		_exit(0);
	}
	close(fd);	/* the waiter holds the lock through its own descriptor */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	res->waiter = true;
	return 0;
}

/* ---- the operations ----------------------------------------------------- */

/*
 * A unit of the running array that went away and came back: its role is
 * missing in the running array's table, under this very unit's UUID. Add it
 * again; the engine rebuilds only what it missed (from the dirty-region log)
 * when it can, else all of it.
 */
static int readd_to_running(const char *dev, const struct rt_sb *sb,
			    struct rt_incremental_result *res)
{
	struct rt_control_status *st;
	const struct rt_control_unit *u = NULL;
	int r;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	r = control_status(res->uuid, res->name, st);
	if (r < 0)
		goto out;
	for (unsigned i = 0; i < st->n_units && !u; i++)
		if (st->units[i].slot == sb->unit.slot &&
		    !memcmp(st->units[i].uuid, sb->unit.uuid, RT_UUID_SIZE) &&
		    st->units[i].state == RT_UNIT_STATE_MISSING)
			u = &st->units[i];
	if (!u)
		goto out;
	r = control_add(res->uuid, res->name, dev, false, res->msg, sizeof(res->msg));
	res->readded = r == 0;
	if (r < 0) {
		/* The engine said why; the unit stays out, the array runs on as it was. */
		rt_log(RT_LOG_WARN, "'%s': unit %08x ('%s') is back but was not added again: %s",
		       res->name, sb->unit.hashcode, dev, strerror(-r));
		r = 0;
	}
out:
	free(st);
	return r;
}

/*
 * After the map says what is there, for an array that is not running:
 * start it, schedule its degraded start, or leave it to the caller.
 */
static int start_or_wait(const struct rt_incremental_opts *o, struct rt_incremental_result *res)
{
	if (o->no_start)
		return 0;
	if (res->started == RT_INC_YES)
		return start_array(res);
	if (res->started == RT_INC_UNSAFE && o->timeout)
		return arm_waiter(res, o->timeout);
	return 0;
}

static int start_one(const uint8_t uuid[RT_UUID_SIZE], const struct rt_incremental_opts *o,
		     struct rt_incremental_result *res)
{
	struct incmap m;
	int r;

	memset(res, 0, sizeof(*res));
	r = incmap_open(&m);
	if (r < 0)
		return r;
	r = evaluate(&m, uuid, o->run, res);
	incmap_close(&m);
	if (r < 0 || !res->name[0] || check_running(res))
		return r;
	return start_or_wait(o, res);
}

int incremental_add(const char *dev, const struct rt_incremental_opts *o,
		    struct rt_incremental_result *res)
{
	struct incmap_entry e;
	struct rt_sb_status st;
	struct rt_unit *u = NULL;
	struct rt_sb sb;
	struct stat stt;
	struct incmap m;
	bool arrival;
	int r;

	if (!dev || !o || !res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	if (stat(dev, &stt) < 0) {
		r = -errno;
		unit_log_open_error(dev, r);
		return r;
	}
	if (!S_ISBLK(stt.st_mode))
		return -ENOTBLK;
	r = unit_open(dev, 0, &u);
	if (r < 0) {
		unit_log_open_error(dev, r);
		return r;
	}
	r = unit_read_sb_quiet(u, &sb, &st);
	unit_close(u);
	if (r < 0)
		return r;
	result_from_sb(res, &sb);
	res->unit_hashcode = sb.unit.hashcode;
	incmap_entry_from_sb(&e, dev, incmap_diskseq(stt.st_rdev), &sb);

	r = incmap_open(&m);
	if (r < 0)
		return r;
	arrival = incmap_put(&m, &e, &r);
	if (r == 0)
		r = evaluate(&m, sb.array.uuid, o->run, res);
	incmap_close(&m);
	if (r < 0)
		return r;
	res->unit_hashcode = sb.unit.hashcode;
	/*
	 * Seen before: an event about a unit already counted (a probe, a
	 * second event for one attach, a unit `create` announced). Whether its
	 * array runs was decided when it appeared; a stopped array stays so.
	 */
	if (!arrival && !o->run) {
		if (!check_running(res) && res->started == RT_INC_YES)
			res->started = RT_INC_NO;
		return 0;
	}
	if (check_running(res))
		return res->started == RT_INC_ALREADY ? readd_to_running(dev, &sb, res) : 0;
	return start_or_wait(o, res);
}

/*
 * Tell a running engine its unit is gone: fail it (unless it already is),
 * remove it. Forced: a device that went away is lost whether or not the
 * level survives it.
 */
static int remove_from_engine(const struct incmap_entry *e, struct rt_incremental_result *res)
{
	char unit[16];
	int r;

	snprintf(unit, sizeof(unit), "%08x", e->unit_hashcode);
	r = control_fail(e->array_uuid, e->name, unit, true, res->msg, sizeof(res->msg));
	if (r < 0)
		rt_log(RT_LOG_DEBUG, "incremental: '%s': fail %08x: %s", e->name,
		       e->unit_hashcode, strerror(-r));
	return control_remove(e->array_uuid, e->name, unit, res->msg, sizeof(res->msg));
}

int incremental_remove(const char *dev, struct rt_incremental_result *res)
{
	struct incmap_entry e;
	struct incmap m;
	bool found = false;
	int r;

	if (!dev || !res)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	r = incmap_open(&m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m.n && !found; i++)
		if (!strcmp(m.e[i].dev, dev)) {
			e = m.e[i];
			incmap_drop(&m, i);
			found = true;
		}
	r = found ? incmap_save(&m) : -ENOENT;
	incmap_close(&m);
	if (r < 0)
		return r;
	snprintf(res->name, sizeof(res->name), "%s", e.name);
	memcpy(res->uuid, e.array_uuid, RT_UUID_SIZE);
	res->hashcode = e.hashcode;
	res->unit_hashcode = e.unit_hashcode;
	if (!check_running(res) || res->started != RT_INC_ALREADY)
		return 0;
	return remove_from_engine(&e, res);
}

int incremental_start_waiting(const struct rt_incremental_opts *o,
			      void (*cb)(const struct rt_incremental_result *res, int err, void *arg),
			      void *arg)
{
	struct rt_incremental_result res;
	uint8_t (*uuids)[RT_UUID_SIZE] = NULL;
	size_t n = 0;
	struct incmap m;
	int r, first = 0;

	r = incmap_open(&m);
	if (r < 0)
		return r;
	uuids = calloc(m.n ? m.n : 1, sizeof(*uuids));
	if (!uuids) {
		incmap_close(&m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m.n; i++) {
		bool seen = false;

		for (size_t j = 0; j < n && !seen; j++)
			seen = !memcmp(uuids[j], m.e[i].array_uuid, RT_UUID_SIZE);
		if (!seen)
			memcpy(uuids[n++], m.e[i].array_uuid, RT_UUID_SIZE);
	}
	incmap_close(&m);
	for (size_t j = 0; j < n; j++) {
		r = start_one(uuids[j], o, &res);
		if (r < 0 && !first)
			first = r;
		if (cb)
			cb(&res, r, arg);
	}
	free(uuids);
	return first;
}
