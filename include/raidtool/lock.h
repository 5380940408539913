/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_LOCK_H
#define RAIDTOOL_LOCK_H

/*
 * Admin locks: commands that change an array, or the set of names, take one
 * so that two of them run one after the other rather than interleaved.
 *
 *   <rundir>/lock/names        create and rename (the name-in-use check
 *                              and the superblock writes that follow it)
 *   <rundir>/lock/<UUID>       one array: activate, deactivate, add, fail,
 *                              remove, check
 *
 * flock(2) locks: released when the process exits, however it exits.
 * Readers (status, list, lookup, examine) take none.
 */
#include <stdint.h>
#include <raidtool/format.h>

#define RT_LOCK_NAMES "names"
#define RT_LOCK_WAIT_MS_DEFAULT 60000

/*
 * Take lock @key (RT_LOCK_NAMES or an array's UUID string), waiting up to
 * $RAIDTOOL_LOCK_TIMEOUT seconds (default 60) for another command to let
 * it go. 0 with *@fd holding it; -EBUSY after the wait (logged, naming the
 * holder's pid when known); -errno.
 */
int lock_take(const char *key, int *fd);

/* The lock of the array with @uuid. */
int lock_take_array(const uint8_t uuid[RT_UUID_SIZE], int *fd);

/* Let a lock go (-1: nothing to do). */
void lock_release(int fd);

#endif
