/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The image files to attach at boot: see bootunits.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <raidtool/bootunits.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/unit.h>

const char *bootunits_path(void)
{
	const char *p = getenv("RAIDTOOL_UNITS");

	return p && p[0] ? p : RT_BOOTUNITS_DEFAULT;
}

/* Strip a comment and surrounding blanks; "" for a line with no path. */
static char *line_path(char *line)
{
	char *hash = strchr(line, '#'), *end;

	if (hash)
		*hash = '\0';
	while (isspace((unsigned char)*line))
		line++;
	end = line + strlen(line);
	while (end > line && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return line;
}

int bootunits_attach_file(const char *path, char *dev, size_t devlen)
{
	struct stat st;
	int r;

	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		snprintf(dev, devlen, "%s", path);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return -ENOTBLK;
	if (loopdev_find_by_backing(path, dev, devlen) == 0)
		return 0;
	r = loopdev_attach(path, RT_LOOP_DIRECT_IO, 0, dev, devlen);
	if (r < 0)
		return r;
	rt_log(RT_LOG_INFO, "'%s': attached as %s", path, dev);
	return 1;
}

static int attach_one(const char *list, unsigned lineno, const char *path)
{
	char dev[64];
	int r = bootunits_attach_file(path, dev, sizeof(dev));

	if (r == -ENOTBLK)
		rt_log(RT_LOG_WARN, "'%s' line %u: '%s': not a regular file or block device",
		       list, lineno, path);
	else if (r == -ENOENT || r == -EACCES || r == -ENOTDIR)
		/* unit_log_open_error's wording, as a warning naming the line. */
		rt_log(RT_LOG_WARN, "'%s' line %u: '%s': cannot open: %s", list, lineno, path,
		       unit_open_error(r));
	else if (r < 0)
		rt_log(RT_LOG_WARN, "'%s' line %u: '%s': cannot attach: %s", list, lineno, path,
		       strerror(-r));
	return r;
}

int bootunits_attach(size_t *attached, size_t *failed)
{
	const char *list = bootunits_path();
	char line[4096];
	unsigned lineno = 0;
	size_t n_ok = 0, n_bad = 0;
	FILE *f;

	f = fopen(list, "re");
	if (!f) {
		if (errno == ENOENT)
			goto out;
		rt_log(RT_LOG_WARN, "'%s': cannot read: %s", list, strerror(errno));
		n_bad++;
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		char *path = line_path(line);
		int r;

		lineno++;
		if (!path[0])
			continue;
		r = attach_one(list, lineno, path);
		if (r > 0)
			n_ok++;
		else if (r < 0)
			n_bad++;
	}
	fclose(f);
out:
	if (attached)
		*attached = n_ok;
	if (failed)
		*failed = n_bad;
	return 0;
}
