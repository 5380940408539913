/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <uuid/uuid.h>
#include <raidtool/admin.h>
#include <raidtool/array.h>
#include <raidtool/lock.h>
#include <raidtool/control.h>
#include <raidtool/log.h>
#include <raidtool/loopdev.h>
#include <raidtool/scan.h>
#include <raidtool/unit.h>
#include <raidtool/util.h>
#include "cli.h"
#include "describe.h"
#include "json-out.h"

int cli_verbose;
int cli_quiet;
int cli_batch_mode;

/* What cli_run found for a command with CLI_NEEDS_ARRAY; target.id NULL: nothing. */
static struct cli_target target;

const struct cli_target *cli_target(void)
{
	return target.id ? &target : NULL;
}

/* Set once the library has explained a failure, so cli_fail adds nothing. */
static bool lib_reported_error;

static void cli_log(int level, const char *msg, void *usrptr)
{
	(void)usrptr;
	if (level == RT_LOG_ERROR)
		lib_reported_error = true;
	if (level == RT_LOG_ERROR || (!cli_quiet && level == RT_LOG_WARN) ||
	    (cli_verbose && level == RT_LOG_INFO) ||
	    (cli_verbose && getenv("RAIDTOOL_DEBUG")))
		fprintf(stderr, "raidtool: %s\n", msg);
}

__attribute__((constructor)) static void cli_install_log(void)
{
	rt_set_log(cli_log, NULL);
}

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("raidtool: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "raidtool: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'raidtool %s --help' for more information.\n", cmd);
	return EXIT_USAGE;
}

int cli_exit_code(int err)
{
	switch (err) {
	case 0:
		return EXIT_OK;
	case -ENOENT:
	case -ENODATA:
	case -ENODEV:
	case -ENXIO:
	case -ESHUTDOWN:	/* the engine is stopping */
		return EXIT_NOTFOUND;
	case -EBUSY:
	case -EALREADY:
		return EXIT_BUSY;
	case -EEXIST:
	case -ENOTEMPTY:
		return EXIT_REFUSED;
	case -EINVAL:
	case -E2BIG:
	case -ENOTUNIQ:
	case -ENAMETOOLONG:
		return EXIT_USAGE;
	default:
		return EXIT_FAIL;
	}
}

static __attribute__((format(printf, 2, 0))) int vreport(int err, const char *fmt, va_list ap)
{
	if (!lib_reported_error) {
		fputs("raidtool: ", stderr);
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, ": %s\n", rt_strerror(err));
	}
	/* The next operation's failure must be explained on its own. */
	lib_reported_error = false;
	return err;
}

int cli_report(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(err, fmt, ap);
	va_end(ap);
	return err;
}

int cli_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(err, fmt, ap);
	va_end(ap);
	return cli_exit_code(err);
}

int cli_fail_engine(int err, const char *name, const uint8_t uuid[RT_UUID_SIZE])
{
	struct rt_control_probe p;

	if (lib_reported_error) {
		lib_reported_error = false;
		return cli_exit_code(err);
	}
	if (control_probe(uuid, &p) < 0 || p.state != RT_CONTROL_ACTIVE) {
		control_log_not_running(name, NULL);
		err = -ENXIO;
	} else {
		control_log_no_answer(name, p.pid, err);
	}
	lib_reported_error = false;
	return cli_exit_code(err);
}

/* The options every command takes after its name. */
static int want_help, want_usage;
static const struct poptOption common_opts[] = {
	{ "verbose", 'v', POPT_ARG_VAL, &cli_verbose, 1, "say more of what is done", NULL },
	{ "quiet", 'q', POPT_ARG_VAL, &cli_quiet, 1, "print only errors on stderr", NULL },
	{ "help", 'h', POPT_ARG_VAL, &want_help, 1, "show this help message", NULL },
	/* popt's own letter for help, as before the command table. */
	{ NULL, '?', POPT_ARG_VAL | POPT_ARGFLAG_DOC_HIDDEN, &want_help, 1, NULL, NULL },
	{ "usage", 0, POPT_ARG_VAL, &want_usage, 1, "show a brief usage message", NULL },
	POPT_TABLEEND
};

int cli_check_stdout(int rc)
{
	int err;

	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return rc;
	err = errno ? errno : EIO;
	cli_error("cannot write to standard output: %s", strerror(err));
	return rc == EXIT_OK ? EXIT_FAIL : rc;
}

/* Once for the command: the array @id names, which must run when @running. 0, or -errno. */
static int find_target(const char *id, bool running)
{
	uint8_t uuid[RT_UUID_SIZE];
	int r;

	r = running ? cli_running_name(id, target.name, sizeof(target.name), uuid) :
		      cli_find_running_uuid(id, target.name, sizeof(target.name),
					    &target.running, uuid);
	if (r < 0)
		return r;
	memcpy(target.uuid, uuid, RT_UUID_SIZE);
	target.running = target.running || running;
	target.id = id;
	return 0;
}

/* @cmd as "raidtool @full" (the command's name, or "NAME SUB" of a subcommand). */
static int run_named(const struct cli_command *cmd, const char *full, int argc,
		     const char **argv)
{
	static const struct poptOption no_opts[] = { POPT_TABLEEND };
	const struct poptOption opts[] = {
		{ NULL, 0, POPT_ARG_INCLUDE_TABLE, (void *)(cmd->opts ? cmd->opts : no_opts), 0,
		  NULL, NULL },
		{ NULL, 0, POPT_ARG_INCLUDE_TABLE, (void *)common_opts, 0, "Common options:",
		  NULL },
		POPT_TABLEEND
	};
	char prog[64];
	const char **named_argv, **args;
	poptContext pc;
	int rc, n = 0;

	/* popt's usage line shows argv[0]: make it the whole command. */
	named_argv = calloc((size_t)argc + 1, sizeof(*named_argv));
	if (!named_argv) {
		cli_error("%s", strerror(ENOMEM));
		return EXIT_FAIL;
	}
	snprintf(prog, sizeof(prog), "raidtool %s", full);
	memcpy(named_argv, argv, (size_t)argc * sizeof(*argv));
	named_argv[0] = prog;
	pc = poptGetContext(prog, argc, named_argv, opts, 0);
	poptSetOtherOptionHelp(pc, cmd->args);
	while ((rc = poptGetNextOpt(pc)) > 0)
		;
	if (rc < -1) {
		fprintf(stderr, "raidtool: %s: %s: %s\n", full,
			poptBadOption(pc, POPT_BADOPTION_NOALIAS), poptStrerror(rc));
		fprintf(stderr, "Try 'raidtool %s --help' for more information.\n", full);
		rc = EXIT_USAGE;
		goto out;
	}
	if (want_help || want_usage) {
		if (want_help)
			poptPrintHelp(pc, stdout, 0);
		else {
			poptPrintUsage(pc, stdout, 0);
			putchar('\n');
		}
		rc = cli_check_stdout(EXIT_OK);
		goto out;
	}
	args = poptGetArgs(pc);
	while (args && args[n])
		n++;
	if (n < cmd->min_args || (cmd->max_args >= 0 && n > cmd->max_args)) {
		rc = cli_usage_error(full, n < cmd->min_args ?
				     "missing argument (usage: raidtool %s %s)" :
				     "too many arguments (usage: raidtool %s %s)",
				     full, cmd->args);
		goto out;
	}
	if (cmd->validate) {
		rc = cmd->validate();
		if (rc != EXIT_OK)
			goto out;
	}
	if (cmd->flags & (CLI_NEEDS_ARRAY | CLI_NEEDS_RUNNING)) {
		rc = cli_exit_code(find_target(args[0], cmd->flags & CLI_NEEDS_RUNNING));
		if (rc != EXIT_OK)
			goto out;
	}
	rc = cli_check_stdout(cmd->run(n, args));
out:
	poptFreeContext(pc);
	free(named_argv);
	return rc;
}

/* The subcommand argv[1] names; a list of them for --help, or when none fits. */
static int run_sub(const struct cli_command *cmd, int argc, const char **argv)
{
	const struct cli_command *sub;
	char full[64];
	FILE *f = stderr;
	int rc = EXIT_USAGE;

	if (argc < 2) {
		fprintf(stderr, "raidtool: %s: missing subcommand\n", cmd->name);
	} else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
		   !strcmp(argv[1], "--usage")) {
		f = stdout;
		rc = EXIT_OK;
	} else {
		for (sub = cmd->subs; sub->name; sub++)
			if (!strcmp(argv[1], sub->name)) {
				snprintf(full, sizeof(full), "%s %s", cmd->name, sub->name);
				return run_named(sub, full, argc - 1, argv + 1);
			}
		fprintf(stderr, "raidtool: %s: '%s' is not a subcommand\n", cmd->name, argv[1]);
	}
	fprintf(f, "Usage: raidtool %s SUBCOMMAND [OPTIONS] ARGS\n\nSubcommands:\n", cmd->name);
	for (sub = cmd->subs; sub->name; sub++)
		fprintf(f, "  %-10s %s\n", sub->name, sub->summary);
	fprintf(f, "\nRun 'raidtool %s SUBCOMMAND --help' for its options and arguments; see "
		"raidtool(8).\n", cmd->name);
	return f == stdout ? cli_check_stdout(rc) : rc;
}

int cli_run(const struct cli_command *cmd, int argc, const char **argv)
{
	return cmd->subs ? run_sub(cmd, argc, argv) : run_named(cmd, cmd->name, argc, argv);
}

void cli_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	unsigned u = 0;

	while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.*f %s", v < 10.0 ? 2 : 1, v, units[u]);
}

void cli_format_uuid(const uint8_t uuid[RT_UUID_SIZE], char buf[37])
{
	uuid_unparse_lower(uuid, buf);
}

void cli_format_time(uint64_t secs, char *buf, size_t len)
{
	time_t t = (time_t)secs;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%" PRIu64, secs);
}

int cli_parse_size(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	int r = sb_size_parse(s, out);

	if (r < 0)
		cli_usage_error(cmd, "%s '%s': not a size (use a number with K, M or G)", opt, s);
	return r < 0 ? -EINVAL : 0;
}

int cli_lookup_array(const struct rt_scan *s, const char *id,
		     const struct rt_scan_array **out)
{
	int r = scan_find(s, id, out);

	lib_reported_error = false;	/* scan_find said why; the next failure says its own */
	return r;
}

int cli_read_unit(const char *path, struct rt_sb *sb, struct rt_sb_status *st,
		  bool quiet_missing, struct rt_unit **keep)
{
	struct rt_unit *u;
	int r;

	r = unit_open(path, RT_UNIT_ATTACH, &u);
	if (r < 0) {
		unit_log_open_error(path, r);
		return cli_report(r, "'%s'", path);
	}
	r = unit_read_sb(u, sb, st);
	if (r == 0 && keep) {
		*keep = u;
		return 0;
	}
	unit_close(u);
	if (r == -ENODATA) {
		if (!quiet_missing)
			cli_error("'%s': holds no raidtool superblock", path);
		return r;
	}
	if (r < 0) {
		cli_error("'%s': no valid raidtool superblock: %s", path, strerror(-r));
		/* A damaged superblock is a failure (exit 1), whatever its errno. */
		return cli_exit_code(r) == EXIT_FAIL ? r : -EIO;
	}
	return 0;
}

int cli_scan_lookup(const char *id, struct rt_scan **s, const struct rt_scan_array **a)
{
	int r = scan_devices_find(id, s, a);

	lib_reported_error = false;	/* the library said why; the next failure says its own */
	return r;
}

int cli_find_running_uuid(const char *id, char *name, size_t len, bool *running,
			  uint8_t uuid[RT_UUID_SIZE])
{
	const struct rt_scan_array *a;
	struct rt_control_probe p;
	struct rt_scan *s = NULL;
	int r;

	/* Found by cli_run for this command already: no second scan. */
	if (target.id && !strcmp(id, target.id)) {
		snprintf(name, len, "%s", target.name);
		memcpy(uuid, target.uuid, RT_UUID_SIZE);
		*running = control_probe(uuid, &p) == 0 && p.state == RT_CONTROL_ACTIVE;
		return 0;
	}
	/* By a scan, never by the run directory alone: a stopped array may share the name. */
	r = cli_scan_lookup(id, &s, &a);
	if (r == 0) {
		snprintf(name, len, "%s", scan_array_sb(a)->array.name);
		memcpy(uuid, scan_array_sb(a)->array.uuid, RT_UUID_SIZE);
		*running = control_probe(uuid, &p) == 0 && p.state == RT_CONTROL_ACTIVE;
	}
	scan_free(s);
	return r;
}

int cli_find_running(const char *id, char *name, size_t len, bool *running)
{
	uint8_t uuid[RT_UUID_SIZE];

	return cli_find_running_uuid(id, name, len, running, uuid);
}

int cli_lock_array(const char *id, int *fd)
{
	const struct rt_scan_array *a;
	uint8_t uuid[RT_UUID_SIZE];
	struct rt_scan *s = NULL;
	int r;

	*fd = -1;
	/* Quietly: a missing or ambiguous array is the command's to explain. */
	r = scan_devices(&s);
	if (r == 0)
		r = scan_lookup(s, id, &a);
	if (r == 0)
		memcpy(uuid, scan_array_sb(a)->array.uuid, RT_UUID_SIZE);
	if (s)
		scan_free(s);
	/* No unit found: what a dead engine left under the name still takes the lock. */
	if (r == -ENOENT && sb_name_check(id) == 0)
		r = control_name_lookup(id, uuid);
	if (r < 0)
		return 0;
	r = lock_take_array(uuid, fd);
	return r < 0 ? cli_report(r, "'%s': cannot take the array's lock", id) : 0;
}

int cli_lock_array_and_names(const char *id, int *array_fd, int *names_fd)
{
	int r = cli_lock_array(id, array_fd);

	*names_fd = -1;
	if (r < 0)
		return r;
	r = lock_take(RT_LOCK_NAMES, names_fd);
	if (r < 0) {
		lock_release(*array_fd);
		*array_fd = -1;
		return cli_report(r, "'%s': cannot take the lock of the array names", id);
	}
	return 0;
}

int cli_running_name(const char *id, char *name, size_t len, uint8_t uuid[RT_UUID_SIZE])
{
	bool running;
	int r = cli_find_running_uuid(id, name, len, &running, uuid);

	if (r < 0 || running)
		return r;
	control_log_not_running(name, NULL);
	lib_reported_error = false;	/* said; the next failure says its own */
	return -ENXIO;
}

int cli_control_send(const char *id, const char *what, const struct rt_control_req *rq,
		     char *name, size_t namelen, char *msg, size_t msglen)
{
	uint8_t uuid[RT_UUID_SIZE];

	return cli_control_send_unit(id, what, rq, name, namelen, uuid, msg, msglen, NULL);
}

int cli_control_send_unit(const char *id, const char *what, const struct rt_control_req *rq,
			  char *name, size_t namelen, uint8_t uuid[RT_UUID_SIZE], char *msg,
			  size_t msglen, struct rt_control_unit *unit)
{
	const char *verb = control_verb_name(rq->verb);
	const char *arg = rq->arg ? rq->arg : "";
	int r;

	r = cli_running_name(id, name, namelen, uuid);
	if (r < 0)
		return r;
	if (strchr(arg, '\n')) {
		cli_usage_error(verb, "'%s': not a valid argument", arg);
		return -EINVAL;
	}
	/* "uuid=UUID VERB --force ARG\n" */
	if (strlen(RT_CONTROL_UUID_PREFIX) + 37 + strlen(verb) + 9 + strlen(arg) + 2 >
	    RT_CONTROL_LINE_MAX) {
		cli_usage_error(verb, "argument too long");
		return -EINVAL;
	}
	/* The engine refuses the request unless it runs exactly this array. */
	r = admin_engine_request(uuid, name, rq, msg, msglen, unit);
	return r < 0 ? cli_report(r, "'%s': %s", name, what) : 0;
}

int cli_speed_limit_arg(const char *cmd, int mib, char *arg, size_t len)
{
	if (mib < 0 || mib > 1048576) {
		cli_usage_error(cmd, "--speed-limit: '%d' is not a number of MiB/s from 0 "
				"to 1048576", mib);
		return -EINVAL;
	}
	snprintf(arg, len, "%llu", (unsigned long long)mib << 20);
	return 0;
}

int cli_send_speed_limit(const char *cmd, const char *id, int mib)
{
	struct rt_control_req rq = { .verb = RT_VERB_SPEED };
	char name[RT_NAME_MAX + 1], msg[256], arg[32];
	int r;

	if (mib == CLI_UNSET)
		return 0;
	r = cli_speed_limit_arg(cmd, mib, arg, sizeof(arg));
	if (r < 0)
		return r;
	rq.arg = arg;
	return cli_control_send(id, "cannot set the speed limit", &rq, name, sizeof(name), msg,
				sizeof(msg));
}

int cli_control_command(const char *id, const char *what, const struct rt_control_req *rq)
{
	char name[RT_NAME_MAX + 1], msg[1024];
	int r;

	r = cli_control_send(id, what, rq, name, sizeof(name), msg, sizeof(msg));
	if (r < 0)
		return cli_exit_code(r);
	if (msg[0])
		printf("'%s': %s\n", name, msg);
	return EXIT_OK;
}

const char *cli_unit_arg(const char *arg, char *buf, size_t len)
{
	char path[PATH_MAX];
	struct stat st;
	uint32_t hash;

	/* What the engine reads as a role number or a hashcode stays one. */
	if ((strlen(arg) <= 2 && arg[0] >= '0' && arg[0] <= '9') ||
	    sb_hashcode_parse(arg, &hash) == 0 || stat(arg, &st) < 0 || !realpath(arg, path))
		return arg;
	if (S_ISREG(st.st_mode) && loopdev_find_by_backing(path, buf, len) == 0)
		return buf;
	snprintf(buf, len, "%s", path);
	return buf;
}

int cli_unit_command(const char *id, const char *what, const struct rt_control_req *rq,
		     bool as_json)
{
	char name[RT_NAME_MAX + 1], msg[1024];
	struct rt_control_status *st;
	struct rt_control_unit *unit = NULL;
	uint8_t uuid[RT_UUID_SIZE];
	struct json j;
	bool have_st;
	int r;

	if (as_json && !(unit = control_unit_new()))
		return cli_fail(-ENOMEM, "%s", control_verb_name(rq->verb));
	r = cli_control_send_unit(id, what, rq, name, sizeof(name), uuid, msg, sizeof(msg),
				  unit);
	if (r < 0) {
		control_unit_free(unit);
		return cli_exit_code(r);
	}
	if (!as_json) {
		if (msg[0])
			printf("'%s': %s\n", name, msg);
		return EXIT_OK;
	}
	/* The array as the change left it; done is done even if it stopped since. */
	st = control_status_new();
	have_st = st && control_status(uuid, name, st) == 0;
	lib_reported_error = false;
	json_init(&j, stdout);
	json_object_begin(&j, NULL);
	json_str(&j, "name", name);
	json_uuid(&j, "uuid", uuid);
	if (have_st)
		json_hash(&j, "hashcode", control_status_hashcode(st));
	else
		json_str(&j, "hashcode", NULL);
	json_str(&j, "operation", control_verb_name(rq->verb));
	describe_unit_change_json(&j, "unit", have_st ? control_status_n_devices(st) : RT_MAX_UNITS,
				  unit);
	json_str(&j, "health", have_st && control_status_health(st) != RT_HEALTH_NONE ?
		 control_health_name(control_status_health(st)) : NULL);
	json_str(&j, "message", msg);
	json_object_end(&j);
	json_finish(&j);
	control_status_free(st);
	control_unit_free(unit);
	return EXIT_OK;
}

int cli_confirm(const char *const *lines, size_t n_lines)
{
	char *answer = NULL;
	size_t cap = 0;
	ssize_t n;
	bool yes;

	if (cli_batch_mode || !isatty(STDIN_FILENO) || !n_lines)
		return 0;
	fflush(stdout);
	fprintf(stderr, "WARNING: this destroys data:\n");
	for (size_t i = 0; i < n_lines; i++)
		fprintf(stderr, "  %s\n", lines[i]);
	fprintf(stderr, "Are you sure? (Type 'YES' in capital letters): ");
	fflush(stderr);
	n = getline(&answer, &cap, stdin);
	yes = n > 0 && !strcmp(answer, n == 4 ? "YES\n" : "YES");
	free(answer);
	if (yes)
		return 0;
	if (n <= 0)
		fputc('\n', stderr);
	cli_error("aborted: nothing was changed (the answer was not YES)");
	return EXIT_REFUSED;
}

int cli_confirm_units(const char *const *paths, size_t n, bool any, const char *consequence)
{
	char (*what)[RT_NAME_MAX + PATH_MAX + 256] = NULL;
	const char **lines = NULL;
	size_t n_lines = 0;
	int r = 0;

	if (cli_batch_mode || !isatty(STDIN_FILENO))
		return 0;
	what = calloc(n, sizeof(*what));
	lines = calloc(n, sizeof(*lines));
	if (!what || !lines) {
		r = cli_fail(-ENOMEM, "cannot ask for confirmation");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char desc[RT_NAME_MAX + 128];
		int kind = array_unit_contents(paths[i], desc, sizeof(desc));

		if (kind <= RT_CONTENTS_NONE || (!any && kind != RT_CONTENTS_RAIDTOOL))
			continue;
		snprintf(what[n_lines], sizeof(what[n_lines]), "'%s' %s: %s", paths[i], desc,
			 consequence);
		lines[n_lines] = what[n_lines];
		n_lines++;
	}
	lib_reported_error = false;
	r = cli_confirm(lines, n_lines);
out:
	free(lines);
	free(what);
	return r;
}
