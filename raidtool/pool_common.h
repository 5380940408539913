/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_POOL_COMMON_H
#define RAIDTOOL_POOL_COMMON_H

/* What cmd_pool.c and cmd_vol.c share: a stopped array's pool, locked and open. */
#include <stdbool.h>
#include <raidtool/thin.h>

struct pool_cli {
	int lock_fd;
	struct thin_array *a;
	struct thin_pool *p;
};

/*
 * Take array @id's lock, start an engine on its units and open its pool
 * (@write: changes may be committed). 0 when open, else -errno (printed).
 */
int pool_cli_open(const char *id, bool write, struct pool_cli *pc);

/*
 * Commit (when @commit) and close everything. Returns @rc, or the exit
 * code of a failed commit or close.
 */
int pool_cli_close(struct pool_cli *pc, bool commit, int rc);

#endif
