/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <string.h>
#include <raidtool/lock.h>
#include "cli.h"
#include "pool_common.h"

int pool_cli_open(const char *id, bool write, struct pool_cli *pc)
{
	int r;

	memset(pc, 0, sizeof(*pc));
	r = cli_lock_array(id, &pc->lock_fd);
	if (r < 0)
		return r;
	r = thin_array_open_pool(id, write, &pc->a, &pc->p);
	if (r < 0) {
		lock_release(pc->lock_fd);
		return cli_report(r, "'%s': cannot open the array", id);
	}
	return 0;
}

int pool_cli_close(struct pool_cli *pc, bool commit, int rc)
{
	const char *name = thin_array_name(pc->a);
	int r = commit ? thin_commit(pc->p) : 0;

	if (r < 0)
		rc = cli_fail(r, "'%s': cannot commit the pool's metadata", name);
	thin_close(pc->p);
	r = thin_array_close(pc->a);
	if (r < 0 && rc == EXIT_OK)
		rc = cli_fail(r, "cannot stop the engine");
	lock_release(pc->lock_fd);
	return rc;
}
