/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_INCMAP_H
#define RAIDTOOL_INCMAP_H

/*
 * The map of incremental assembly: the units udev reported, one line each
 * in <rundir>/map (format: raidtool-control(7)), rewritten whole under an
 * flock on <rundir>/map.lock, because udev handles the events of different
 * devices in parallel workers and the last of them must see all the others.
 * Separate from the verdict and the start (incremental.c), so that the
 * offline commands (array.c) can announce a unit without depending on the
 * run path.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <raidtool/format.h>

struct incmap_entry {
	uint8_t unit_uuid[RT_UUID_SIZE];
	uint32_t unit_hashcode;
	uint8_t array_uuid[RT_UUID_SIZE];
	uint32_t hashcode;
	char dev[256];
	uint64_t diskseq;		/* of dev when recorded; 0: unknown */
	char name[RT_NAME_MAX + 1];
};

struct incmap {
	int lock_fd;
	size_t n, cap;
	struct incmap_entry *e;
};

/*
 * Announce a unit before its superblock is written (create, add): the udev
 * event of the write then finds it already recorded.
 */
int incmap_note(const char *dev, const struct rt_sb *sb);

int incmap_open(struct incmap *m);
void incmap_close(struct incmap *m);
int incmap_save(const struct incmap *m);
void incmap_drop(struct incmap *m, size_t i);
bool incmap_put(struct incmap *m, const struct incmap_entry *e, int *err);
void incmap_entry_from_sb(struct incmap_entry *e, const char *dev, uint64_t diskseq,
			  const struct rt_sb *sb);
uint64_t incmap_diskseq(dev_t devno);
int incmap_rundir_file(const char *file, char *buf, size_t len);

#endif
