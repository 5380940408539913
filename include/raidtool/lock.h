/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef RAIDTOOL_LOCK_H
#define RAIDTOOL_LOCK_H

/*
 * Admin locks: commands that change an array, or the set of names, take one
 * so that two of them run one after the other rather than interleaved.
 *
 *   <rundir>/lock/names        create, rename, rehash, add to a stopped
 *                              array, zero: the checks of names, hashcodes
 *                              and of what a unit belongs to, and the
 *                              superblock writes that follow them
 *   <rundir>/lock/<UUID>       one array: activate (incremental's too),
 *                              deactivate, add, fail, remove, check, tune,
 *                              rename, rehash
 *
 * A command that takes both takes the array's first, then the names'.
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

/* The same, waiting at most @limit_ms. */
int lock_take_within(const char *key, long limit_ms, int *fd);

/* The lock of the array with @uuid (waiting as lock_take, or at most @limit_ms). */
int lock_take_array(const uint8_t uuid[RT_UUID_SIZE], int *fd);
int lock_take_array_within(const uint8_t uuid[RT_UUID_SIZE], long limit_ms, int *fd);

/*
 * How long lock_take waits: $RAIDTOOL_LOCK_TIMEOUT seconds (default 60), in
 * ms; -EINVAL (logged) when that is not a number of seconds from 0 to 86400.
 */
long lock_wait_ms(void);

/* Let a lock go (-1: nothing to do). */
void lock_release(int fd);

#endif
