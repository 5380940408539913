/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RAIDTOOL_CLI_H
#define RAIDTOOL_CLI_H

/*
 * Shared by the command files: option parsing, messages, exit codes and
 * output formatting. Commands only parse, call libraidtool and print.
 */
#include <limits.h>
#include <popt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <raidtool/format.h>

/* Exit codes, documented in raidtool(8). */
enum cli_exit {
	EXIT_OK = 0,
	EXIT_FAIL = 1,		/* the operation failed */
	EXIT_USAGE = 2,		/* bad command line */
	EXIT_NOTFOUND = 3,	/* no such array, unit or superblock */
	EXIT_BUSY = 4,		/* in use: mounted, open, held or running */
	EXIT_REFUSED = 5,	/* would destroy data; --force overrides */
};

/* What a command's first argument must name, checked by cli_run (struct cli_command.flags). */
enum cli_command_flags {
	/* An array a scan finds (NAME or HASHCODE); else "no such array", exit 3. */
	CLI_NEEDS_ARRAY = 1 << 0,
	/* ... that an engine runs; else "not active", exit 3. */
	CLI_NEEDS_RUNNING = 1 << 1,
};

/*
 * One entry of the command table (raidtool.c), defined by the command's
 * file as `const struct cli_command cmd_NAME`. cli_run parses the command
 * line with @opts (plus -v, -q, -h/--help and --usage, common to all),
 * checks that between @min_args and @max_args (-1: no limit) arguments
 * remain, then @validate, then what @flags ask of the first one, calls
 * @run with them, and checks that stdout was written.
 */
struct cli_command {
	const char *name;
	int (*run)(int n_args, const char **args);	/* returns the exit code */
	const struct poptOption *opts;	/* POPT_TABLEEND-terminated; NULL: none */
	const char *args;		/* the arguments, as --help shows them */
	int min_args, max_args;
	const char *summary;		/* one line for 'raidtool --help' */
	unsigned flags;			/* enum cli_command_flags */
	/*
	 * May be NULL: checks the options on their own, before @flags are,
	 * so that a bad command line is a usage error (exit 2) whatever the
	 * array; EXIT_OK, or the exit code (its message printed).
	 */
	int (*validate)(void);
	/*
	 * A command made of subcommands (pool, vol): its entries, ended by one
	 * without a name. cli_run runs the one the first argument names as
	 * "raidtool NAME SUB", with the sub's own @opts, @args and --help;
	 * @run, @opts and @args of the command itself are unused.
	 */
	const struct cli_command *subs;
};

/*
 * @rc, or EXIT_FAIL with a message when stdout could not be written (a
 * full disk or a closed pipe must not look like success).
 */
int cli_check_stdout(int rc);

/*
 * Run @cmd with @argv (argv[0] is the command's name; of a command with
 * subcommands, argv[1] the subcommand's): the exit code.
 */
int cli_run(const struct cli_command *cmd, int argc, const char **argv);

/*
 * The array the first argument of a command with CLI_NEEDS_ARRAY names, as
 * cli_run found it (NULL for other commands). cli_find_running_uuid and
 * what calls it take it from here rather than scanning again.
 */
struct cli_target {
	const char *id;			/* the argument */
	char name[RT_NAME_MAX + 1];
	uint8_t uuid[RT_UUID_SIZE];
	bool running;			/* when cli_run looked */
};
const struct cli_target *cli_target(void);

/* Set by -v/-q, before or after the command's name. */
extern int cli_verbose;
extern int cli_quiet;		/* only errors on stderr */

/* "raidtool: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a usage error and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Map a library error to an exit code (reasons were already logged). */
int cli_exit_code(int err);

/*
 * Report a failed library call: "raidtool: <what>: <strerror>" unless the
 * library already logged an error for it, then the mapped exit code.
 */
int cli_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The same, returning @err: for the helpers below, which return 0 or a
 * negative errno (their reason printed) as the library does; a command maps
 * it to its exit code with cli_exit_code once.
 */
int cli_report(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A request to the engine of array @name (@uuid) failed with @err: unless
 * the library explained it (the engine's refusal, "not running"), "'NAME':
 * not running" when no engine runs it any more, else "'NAME': the engine
 * (pid N) does not answer: REASON". The exit code.
 */
int cli_fail_engine(int err, const char *name, const uint8_t uuid[RT_UUID_SIZE]);

struct rt_scan;
struct rt_scan_array;
struct rt_sb_status;

/* Find an array by NAME or HASHCODE in a scan, explaining a failure: 0 or -errno. */
int cli_lookup_array(const struct rt_scan *s, const char *id,
		     const struct rt_scan_array **out);

/* Scan and find array @id: 0 when found (free *s with scan_free), or -errno. */
int cli_scan_lookup(const char *id, struct rt_scan **s, const struct rt_scan_array **a);

/*
 * The name of array @id (NAME or HASHCODE) and whether an engine runs it.
 * 0 when the array exists, else -errno (the reason was printed).
 */
int cli_find_running(const char *id, char *name, size_t len, bool *running);

/* As cli_find_running, with the array's UUID (it picks the engine to talk to). */
int cli_find_running_uuid(const char *id, char *name, size_t len, bool *running,
			  uint8_t uuid[RT_UUID_SIZE]);

/*
 * Take the admin lock of array @id (lib/lock.c): 0 with *@fd holding it
 * (release with lock_release; *@fd is -1 when no such array was found,
 * which the command itself explains), else -errno (busy: -EBUSY).
 */
int cli_lock_array(const char *id, int *fd);

/*
 * cli_lock_array, then the names lock (RT_LOCK_NAMES; lib/lock.h's order):
 * for the offline commands that write an array's superblocks. 0 with both
 * held (release both), else -errno (busy: -EBUSY).
 */
int cli_lock_array_and_names(const char *id, int *array_fd, int *names_fd);

/* As cli_find_running_uuid, and an array that is not running is an error (-ENXIO). */
int cli_running_name(const char *id, char *name, size_t len, uint8_t uuid[RT_UUID_SIZE]);

struct rt_control_req;

/*
 * Send request @rq to the engine of array @id (under the array's lock) and
 * print its answer; @what names the operation in a failure message.
 * Returns the exit code.
 */
int cli_control_command(const char *id, const char *what, const struct rt_control_req *rq);

/* The same without printing: 0 with the array's @name and the engine's @msg, else -errno. */
int cli_control_send(const char *id, const char *what, const struct rt_control_req *rq,
		     char *name, size_t namelen, char *msg, size_t msglen);

struct rt_control_unit;

/* cli_control_send, and the array's @uuid and the unit a fail, remove or add changed (@unit). */
int cli_control_send_unit(const char *id, const char *what, const struct rt_control_req *rq,
			  char *name, size_t namelen, uint8_t uuid[RT_UUID_SIZE], char *msg,
			  size_t msglen, struct rt_control_unit *unit);

/*
 * The unit argument of fail, remove and replace for the engine (whose
 * working directory is /): a role number or hashcode as given; a path to a
 * block device made absolute; an image file as the loop device it is
 * attached to. @buf holds what is returned when it is not @arg.
 */
const char *cli_unit_arg(const char *arg, char *buf, size_t len);

/*
 * fail and remove: send @rq about one unit and print what was done, as the
 * engine words it or (@as_json) as the JSON object of raidtool(8) OUTPUT.
 * Returns the exit code.
 */
int cli_unit_command(const char *id, const char *what, const struct rt_control_req *rq,
		     bool as_json);

/*
 * An integer option that was not given. Not -1: "--speed-limit -1" must be
 * refused as the bad value it is, not taken for no option. (Typed in full,
 * -2147483648 reads as no option: no option takes a value that low.)
 */
#define CLI_UNSET INT_MIN

/* --speed-limit MIB (MiB/s of each unit's data area; 0: none), as the walk commands take it. */
#define CLI_SPEED_LIMIT_OPT(var) \
	{ "speed-limit", 0, POPT_ARG_INT, &(var), 0, \
	  "limit background walks (rebuild, check, repair, resync) to MIB MiB/s per unit " \
	  "(0: no limit)", "MIB" }

/* The "speed" request's argument (bytes/s) for @mib: 0, else -EINVAL (a usage error). */
int cli_speed_limit_arg(const char *cmd, int mib, char *arg, size_t len);

/*
 * Give the running array @id's engine the walk speed limit @mib (MiB/s;
 * CLI_UNSET: not given, nothing sent), quietly. 0 when done, else -errno.
 */
int cli_send_speed_limit(const char *cmd, const char *id, int mib);

struct rt_unit;

/*
 * Read a unit's superblock (a regular file is attached to a loop device
 * for the read and detached again). 0 when read, else -errno (-ENODATA:
 * no superblock);
 * @quiet_missing: no message for a device without a superblock; @keep
 * (may be NULL): the unit stays open for more reads, the caller closes it.
 */
int cli_read_unit(const char *path, struct rt_sb *sb, struct rt_sb_status *st,
		  bool quiet_missing, struct rt_unit **keep);

/* --batch-mode: destroy data without asking (see cli_confirm). */
extern int cli_batch_mode;
#define CLI_BATCH_MODE_OPT \
	{ "batch-mode", 0, POPT_ARG_VAL, &cli_batch_mode, 1, \
	  "do not ask before destroying data (as when stdin is not a terminal)", NULL }

/*
 * Before destroying data, as cryptsetup asks: on a terminal (stdin) and
 * without --batch-mode, show @n_lines lines of what will be destroyed and
 * ask for "YES" typed in capitals. 0 to go on; else nothing may be changed
 * and the exit code is EXIT_REFUSED (anything but YES, or end of input).
 */
int cli_confirm(const char *const *lines, size_t n_lines);

/*
 * cli_confirm for the @n units @paths: those holding a valid raidtool
 * superblock (@any: or anything else, a filesystem, a signature, a damaged
 * superblock) are named, each with @consequence. 0 to go on, else the exit
 * code. A unit that cannot be read is for the command itself to explain.
 */
int cli_confirm_units(const char *const *paths, size_t n, bool any, const char *consequence);

/* Formatting helpers. */
void cli_format_size(uint64_t bytes, char *buf, size_t len);	/* "1.5 GiB" */
void cli_format_uuid(const uint8_t uuid[RT_UUID_SIZE], char buf[37]);
void cli_format_time(uint64_t secs, char *buf, size_t len);	/* ISO 8601 UTC */

/* Parse a size option ("512K") into bytes: 0, or -EINVAL after a usage error. */
int cli_parse_size(const char *cmd, const char *opt, const char *s, uint64_t *out);

#endif
