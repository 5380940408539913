/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The map of incremental assembly (see incmap.h). */
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
#include <unistd.h>
#include <uuid/uuid.h>
#include <raidtool/control.h>
#include <raidtool/log.h>
#include "incmap.h"

#define MAP_FILE "map"
#define MAP_LOCK "map.lock"

int incmap_rundir_file(const char *file, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", control_rundir(), file);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int incmap_parse_line(const char *line, struct incmap_entry *e)
{
	char uu[40], au[40];

	memset(e, 0, sizeof(*e));
	if (sscanf(line, "%39s %8x %39s %8x %255s %" SCNu64 " %64s", uu, &e->unit_hashcode,
		   au, &e->hashcode, e->dev, &e->diskseq, e->name) != 7)
		return -EINVAL;
	if (uuid_parse(uu, e->unit_uuid) || uuid_parse(au, e->array_uuid) ||
	    sb_name_check(e->name) < 0)
		return -EINVAL;
	return 0;
}

static int incmap_append(struct incmap *m, const struct incmap_entry *e)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct incmap_entry *v = realloc(m->e, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->e = v;
		m->cap = cap;
	}
	m->e[m->n++] = *e;
	return 0;
}

void incmap_drop(struct incmap *m, size_t i)
{
	memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof(m->e[0]));
	m->n--;
}

void incmap_close(struct incmap *m)
{
	free(m->e);
	m->e = NULL;
	m->n = m->cap = 0;
	if (m->lock_fd >= 0)
		close(m->lock_fd);
	m->lock_fd = -1;
}

/* Take the map's lock and read it; a line that does not parse is dropped. */
int incmap_open(struct incmap *m)
{
	char path[PATH_MAX], line[512];
	struct incmap_entry e;
	FILE *f;
	int r;

	memset(m, 0, sizeof(*m));
	m->lock_fd = -1;
	r = control_make_rundir();
	if (r < 0)
		return r;
	r = incmap_rundir_file(MAP_LOCK, path, sizeof(path));
	if (r < 0)
		return r;
	m->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (m->lock_fd < 0)
		return -errno;
	while (flock(m->lock_fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			r = -errno;
			goto fail;
		}
	r = incmap_rundir_file(MAP_FILE, path, sizeof(path));
	if (r < 0)
		goto fail;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		goto fail;
	}
	while (fgets(line, sizeof(line), f)) {
		if (incmap_parse_line(line, &e) < 0) {
			rt_log(RT_LOG_DEBUG, "incremental: '%s': dropping a line that does not parse",
			       path);
			continue;
		}
		r = incmap_append(m, &e);
		if (r < 0) {
			fclose(f);
			goto fail;
		}
	}
	fclose(f);
	return 0;
fail:
	incmap_close(m);
	return r;
}

/* Write the map whole (readers see the old or the new one), keep the lock. */
int incmap_save(const struct incmap *m)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], uu[37], au[37];
	FILE *f;
	int r;

	r = incmap_rundir_file(MAP_FILE, path, sizeof(path));
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	for (size_t i = 0; i < m->n; i++) {
		uuid_unparse_lower(m->e[i].unit_uuid, uu);
		uuid_unparse_lower(m->e[i].array_uuid, au);
		fprintf(f, "%s %08x %s %08x %s %" PRIu64 " %s\n", uu, m->e[i].unit_hashcode, au,
			m->e[i].hashcode, m->e[i].dev, m->e[i].diskseq, m->e[i].name);
	}
	if (fclose(f) != 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

/*
 * The kernel numbers every "disk" it sets up (a loop device bound to a file,
 * a disk plugged in) with a new diskseq: the same device under the same
 * diskseq is the same appearance, seen again.
 */
uint64_t incmap_diskseq(dev_t devno)
{
	char path[96], buf[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/diskseq", major(devno), minor(devno));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? strtoull(buf, NULL, 10) : 0;
}

void incmap_entry_from_sb(struct incmap_entry *e, const char *dev, uint64_t diskseq,
			  const struct rt_sb *sb)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->unit_uuid, sb->unit.uuid, RT_UUID_SIZE);
	e->unit_hashcode = sb->unit.hashcode;
	memcpy(e->array_uuid, sb->array.uuid, RT_UUID_SIZE);
	e->hashcode = sb->array.hashcode;
	snprintf(e->dev, sizeof(e->dev), "%s", dev);
	e->diskseq = diskseq;
	snprintf(e->name, sizeof(e->name), "%s", sb->array.name);
}

/*
 * Put @e in the map, replacing what the map had for its device or its unit
 * (a unit seen again under a new name moves). Returns whether this is a new
 * appearance: not the same unit on the same device with the same diskseq.
 */
bool incmap_put(struct incmap *m, const struct incmap_entry *e, int *err)
{
	bool seen = false;

	for (size_t i = m->n; i-- > 0;) {
		const struct incmap_entry *o = &m->e[i];
		bool same_dev = !strcmp(o->dev, e->dev);
		bool same_unit = !memcmp(o->unit_uuid, e->unit_uuid, RT_UUID_SIZE);

		if (!same_dev && !same_unit)
			continue;
		seen |= same_dev && same_unit && o->diskseq && o->diskseq == e->diskseq;
		incmap_drop(m, i);
	}
	*err = incmap_append(m, e);
	return !seen;
}

int incmap_note(const char *dev, const struct rt_sb *sb)
{
	struct incmap_entry e;
	struct stat stt;
	struct incmap m;
	int r;

	if (!dev || !sb)
		return -EINVAL;
	if (stat(dev, &stt) < 0)
		return -errno;
	if (!S_ISBLK(stt.st_mode))
		return -ENOTBLK;
	incmap_entry_from_sb(&e, dev, incmap_diskseq(stt.st_rdev), sb);
	r = incmap_open(&m);
	if (r < 0)
		return r;
	incmap_put(&m, &e, &r);
	if (r == 0)
		r = incmap_save(&m);
	incmap_close(&m);
	return r;
}
