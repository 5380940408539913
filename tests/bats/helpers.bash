# shellcheck shell=bash
# Shared by every bats suite: the raidtool binary, root/loop requirements,
# per-test scratch space, and cleanup of everything a test creates (engines,
# mounts, loop devices, files), run from teardown so it happens on failure too.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
RAIDTOOL_BIN=${RAIDTOOL_BIN:-$TOP/build/raidtool}

raidtool() {
	"$RAIDTOOL_BIN" "$@"
}

# Skip with a reason, or fail when CI demands that nothing is skipped.
require() {
	local reason=$1
	if [ "${RAIDTOOL_TEST_REQUIRE_ROOT:-0}" = 1 ]; then
		fail "cannot run: $reason (and RAIDTOOL_TEST_REQUIRE_ROOT=1)"
	fi
	skip "$reason"
}

# FUSE over io_uring needs a kernel with the fuse module's enable_uring.
require_uring() {
	[ -e /sys/module/fuse/parameters/enable_uring ] ||
		require "needs FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)"
}

require_root() {
	[ "$(id -u)" = 0 ] || require "needs root"
	[ -e /dev/loop-control ] || require "needs loop devices (/dev/loop-control)"
}

require_fuse() {
	require_root
	[ -e /dev/fuse ] || require "needs FUSE (/dev/fuse)"
}

# require_cmds CMD...: every command is on PATH; else skip naming the first
# missing one and its Debian package (a failure under
# RAIDTOOL_TEST_REQUIRE_ROOT=1, see require).
require_cmds() {
	local c pkg
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 && continue
		case $c in
		blkdiscard | fstrim | losetup | wipefs | setpriv | script) pkg=util-linux ;;
		udevadm) pkg=udev ;;
		mkfs.ext4 | fsck.ext4) pkg=e2fsprogs ;;
		*) pkg=$c ;;
		esac
		require "needs $c (Debian package $pkg)"
	done
}

# fuse_setup [CMD...]: the setup of a suite that runs arrays: root, loop
# devices and FUSE, the commands CMD, then the scratch directory.
fuse_setup() {
	require_fuse
	require_cmds "$@"
	scratch_setup
}

# test_helper NAME: the path of the built test helper tests/helpers/NAME.c;
# the test fails when it was not built (make all builds them).
test_helper() {
	local path=$TOP/build/tests/$1
	[ -x "$path" ] || fail "build the test helpers first (make all): no $path"
	echo "$path"
}

# faulty_setup: for the disks that fail on demand (faulty_unit below):
# FAULTYFS, and empty FFPIDS, UNITS and BACKS.
faulty_setup() {
	FAULTYFS=$(test_helper rt-faultyfs)
	# shellcheck disable=SC2034  # faulty_unit appends to them
	FFPIDS=() UNITS=() BACKS=()
}

# stop_arrays [NAME...]: in a teardown, deactivate the test's arrays
# (default $NAME) that still run, so that the loop device on each one's
# FUSE file is gone before scratch_teardown unmounts it.
stop_arrays() {
	local n
	[ -n "${TESTDIR:-}" ] || return 0
	[ $# -gt 0 ] || set -- "${NAME:-}"
	for n in "$@"; do
		if [ -n "$n" ] && [ -e "$RAIDTOOL_RUNDIR/$n/pid" ]; then
			raidtool deactivate "$n" >/dev/null 2>&1 || true
		fi
	done
	return 0
}

# Per-test scratch directory and run directory; names unique on this machine.
scratch_setup() {
	TESTDIR=$(mktemp -d /tmp/raidtool-bats.XXXXXX)
	export RAIDTOOL_RUNDIR=$TESTDIR/run
	mkdir -p "$RAIDTOOL_RUNDIR"
	# Arrays on this machine are all visible to scanning: keep our names unique.
	NAME="t$$n${BATS_TEST_NUMBER}"
}

# A sparse image file of SIZE (truncate syntax) in the scratch directory.
make_image() {
	local path=$TESTDIR/$1
	truncate -s "$2" "$path"
	echo "$path"
}

# Several images: make_images PREFIX COUNT SIZE -> paths on stdout.
make_images() {
	local i
	for ((i = 0; i < $2; i++)); do make_image "$1$i.img" "$3"; done
}

# Attach a file to a loop device ourselves (create attaches on its own).
attach() {
	losetup --find --show "$1"
}

# The loop device backing FILE, as raidtool attached it.
loop_of() {
	losetup -nO NAME -j "$1" | head -n 1
}

# Checksums of units (files or devices), to prove a refusal changed nothing.
checksums() {
	sha256sum "$@" | awk '{print $1}'
}

# Kill and reap the test's background helpers (pids in the BGPIDS array).
reap_bgpids() {
	stop_pids KILL "${BGPIDS[@]}"
}

# attach_strace PID ARGS...: strace attached to every thread of PID, in SPID
# (and added to SPIDS, for the teardown to KILL).
attach_strace() {
	local pid=$1 t traced
	shift
	strace -p "$pid" -f -qq "$@" 2>/dev/null &
	SPID=$!
	SPIDS+=("$SPID")
	# Attached once every thread of the engine has a tracer.
	for _ in $(seq 100); do
		traced=1
		for t in /proc/"$pid"/task/*/status; do
			grep -q '^TracerPid:[[:space:]]*0$' "$t" 2>/dev/null && traced=0
		done
		[ "$traced" = 1 ] && return 0
		sleep 0.05
	done
	fail "strace did not attach to $pid"
}

# detach_strace: stop strace (it detaches, or already left with the dead engine).
# A strace whose killed engine kept an io_uring worker thread for a while can
# sit in wait4 on the zombie and not act on TERM: KILL it after 5 s (the
# kernel detaches the tracees; a zombie is then reaped).
detach_strace() {
	kill -TERM "$SPID" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
}

# stop_pids SIGNAL PID...: signal the processes this test started, then
# reap them, so that none outlives the test.
stop_pids() {
	local sig=$1 p
	shift
	for p in "$@"; do
		kill -"$sig" "$p" 2>/dev/null || true
	done
	for p in "$@"; do
		wait "$p" 2>/dev/null || true
	done
	return 0
}

# sigkill_wait PID: SIGKILL a process (an engine: a crash) and wait until it
# is gone.
sigkill_wait() {
	kill -KILL "$1" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	fail "process $1 still alive 5 s after SIGKILL"
}

# start_zeroed LEVEL N SIZE [CREATE OPTION...]: N zeroed image units of
# SIZE, created --assume-clean (no initial sync: what a test counts is its
# own) and activated; sets UNITS and DEV. Extra environment for the engine
# goes in front of the call.
start_zeroed() {
	local level=$1 n=$2 size=$3 i
	shift 3
	UNITS=()
	for ((i = 0; i < n; i++)); do
		UNITS+=("$(make_image "u$i.img" "$size")")
	done
	run raidtool create "$NAME" --level "$level" --assume-clean "$@" "${UNITS[@]}"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
	[ -b "$DEV" ]
}

# Everything under the scratch directory, in reverse order of creation.
scratch_teardown() {
	[ -n "${TESTDIR:-}" ] && [ -d "$TESTDIR" ] || return 0
	local pidf pid mnt dev back fstype now
	local -A loops=()
	# Loop devices over our files, seen now: once a filesystem holding them
	# (a tmpfs under TESTDIR) is unmounted, their backing path no longer
	# starts with TESTDIR.
	while read -r dev back; do
		case "$back" in "$TESTDIR"/*) loops[$dev]=${back##*/} ;; esac
	done < <(losetup -nO NAME,BACK-FILE 2>/dev/null)
	# Filesystems mounted from our arrays or into our directory; the engines'
	# FUSE mounts stay until their loop devices are gone, so that those can
	# still be found by their backing file's path.
	while read -r dev mnt fstype _; do
		case "$fstype" in fuse*) continue ;; esac
		case "$mnt" in "$TESTDIR"/*) umount -l "$mnt" 2>/dev/null ;; esac
	done < /proc/mounts
	# Engines started by this test, by the pid files in our run directory.
	for pidf in "$RAIDTOOL_RUNDIR"/*/pid; do
		[ -f "$pidf" ] || continue
		pid=$(cat "$pidf")
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
	done
	for pidf in "$RAIDTOOL_RUNDIR"/*/pid; do
		[ -f "$pidf" ] || continue
		pid=$(cat "$pidf")
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.3
		done
		kill -KILL "$pid" 2>/dev/null
	done
	# Loop devices over our files (units, and the arrays' FUSE files); those
	# seen before still over a file of the same name (not reused meanwhile).
	while read -r dev back; do
		case "$back" in "$TESTDIR"/*) losetup -d "$dev" 2>/dev/null ;; esac
	done < <(losetup -nO NAME,BACK-FILE 2>/dev/null)
	for dev in "${!loops[@]}"; do
		now=$(losetup -nO BACK-FILE "$dev" 2>/dev/null) || continue
		[ "${now##*/}" = "${loops[$dev]}" ] && losetup -d "$dev" 2>/dev/null
	done
	# FUSE mounts left by a killed engine, and anything else still mounted.
	while read -r dev mnt _; do
		case "$mnt" in "$TESTDIR"/*) umount -l "$mnt" 2>/dev/null ;; esac
	done < /proc/mounts
	# Symlinks our arrays made, and their volumes' (/dev/raidtool/NAME/VOL:
	# an engine killed, here or by the test, leaves them to the next start).
	if [ -n "${NAME:-}" ]; then
		for l in /dev/raidtool/"$NAME"*; do
			if [ -L "$l" ]; then
				rm -f "$l"
			elif [ -d "$l" ]; then
				find "$l" -maxdepth 1 -type l -delete
				rmdir "$l" 2>/dev/null
			fi
		done
	fi
	rm -rf "$TESTDIR"
}

# bats-assert here has no assert_stderr.
stderr_has() {
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[[ "$stderr" == *"$1"* ]] || fail "stderr lacks '$1': $stderr"
}

# One raw request on the control socket, as uid $2 (default root). Call
# require_python first: a skip inside 'run' would not skip the test.
require_python() {
	[ -x /usr/bin/python3 ] || require "needs /usr/bin/python3 for raw socket tests"
}

control_raw() {
	local req=$1 uid=${2:-0}
	setpriv --reuid="$uid" --regid="$uid" --clear-groups /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
' "$RAIDTOOL_RUNDIR/$NAME/control.sock" "$req"
}

# fio_same_stripe_race [JOBS]: JOBS (default 4) jobs writing interleaved 4K
# blocks of $DEV ($DEVSIZE bytes): every stripe is written by all of them at
# once, the read-modify-write race the stripe locks exist for; each job then
# verifies its own blocks.
fio_same_stripe_race() {
	local jobs=${1:-4} stride usable
	stride=$((jobs * 4096))
	usable=$(( DEVSIZE / stride * stride - stride ))
	run fio --name=race --filename="$DEV" --direct=1 --ioengine=io_uring \
		--iodepth=8 --rw=write --bs=4k --numjobs="$jobs" --offset_increment=4k \
		--zonemode=strided --zonesize=4k --zoneskip=$((stride - 4096)) --size="$usable" \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 --group_reporting \
		--output-format=terse --terse-version=3
	assert_success
}

# Nothing of the stopped array is left. A negated command ('! grep') never
# fails a test under errexit, so every check fails explicitly.
# The run directory is the test's own: whatever is under it was ours (run
# files live in <rundir>/<UUID>/, <rundir>/<NAME> links to it).
no_leftovers() {
	local left
	[ ! -e "/dev/raidtool/$NAME" ] || fail "leftover link /dev/raidtool/$NAME"
	if grep -q " $RAIDTOOL_RUNDIR/" /proc/mounts; then
		fail "leftover FUSE mount: $(grep " $RAIDTOOL_RUNDIR/" /proc/mounts)"
	fi
	if losetup -nO BACK-FILE | grep -q "$RAIDTOOL_RUNDIR/"; then
		fail "leftover loop device on $(losetup -nO BACK-FILE | grep "$RAIDTOOL_RUNDIR/")"
	fi
	if [ -e "$RAIDTOOL_RUNDIR/$NAME" ] || [ -L "$RAIDTOOL_RUNDIR/$NAME" ]; then
		fail "leftover by-name link $RAIDTOOL_RUNDIR/$NAME"
	fi
	left=$(find "$RAIDTOOL_RUNDIR" -mindepth 2 \( -name pid -o -name control.sock \) 2>/dev/null)
	[ -z "$left" ] || fail "leftover run files: $left"
}

# The running array's status as JSON.
status_json() {
	raidtool status --json "$NAME" 2>/dev/null
}

# status_until_above JQ N: poll the status (every 0.05 s, 10 s at most)
# until the value JQ picks exceeds N; 1 when it never does.
status_until_above() {
	local v
	for _ in $(seq 200); do
		v=$(status_json | jq -r "$1")
		[ "${v:-0}" -gt "$2" ] 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# check_clean: a check over the whole array finds nothing to repair.
check_clean() {
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "check done: 0 mismatches"
}

# Disks that fail on demand (tests/helpers/rt-faultyfs). The suite calls
# faulty_setup in setup, and faulty_units_stop in teardown after
# scratch_teardown.

# faulty_unit I SIZE: a rt-faultyfs disk over $TESTDIR/back$I.img mounted at
# $TESTDIR/ffs$I, with a direct-I/O loop device on it; appends to UNITS.
faulty_unit() {
	local i=$1 size=$2 mnt back dev
	back=$(make_image "back$i.img" "$size")
	mnt=$TESTDIR/ffs$i
	mkdir -p "$mnt"
	"$FAULTYFS" "$back" "$mnt" 2>"$TESTDIR/ffs$i.log" &
	FFPIDS+=("$!")
	for _ in $(seq 50); do
		[ -e "$mnt/disk" ] && break
		sleep 0.1
	done
	[ -e "$mnt/disk" ] || fail "rt-faultyfs did not come up on $mnt"
	dev=$(losetup --direct-io=on --find --show "$mnt/disk")
	UNITS+=("$dev")
	BACKS+=("$back")
}

# The faulty disks answer again (before stopping an array on them).
faulty_units_clear() {
	local ctl
	for ctl in "${TESTDIR:-/nonexistent}"/ffs*/ctl; do
		[ -e "$ctl" ] && echo clear > "$ctl" 2>/dev/null
	done
	return 0
}

# faulty_units_left: the disks that still hold a fault rule ("ffsN: rule ..."
# lines; nothing when every disk answers), after a faulty_units_clear whose
# writes are not checked (it also runs in teardowns).
faulty_units_left() {
	local ctl
	for ctl in "${TESTDIR:-/nonexistent}"/ffs*/ctl; do
		[ -e "$ctl" ] || continue
		grep '^rule ' "$ctl" 2>/dev/null | sed "s|^|$(basename "$(dirname "$ctl")"): |"
	done
	return 0
}

# faulty_units_counters: the faults each disk served so far, one line
# ("ffsN: reads R writes W dropped D" for the disks that served any).
faulty_units_counters() {
	local ctl
	for ctl in "${TESTDIR:-/nonexistent}"/ffs*/ctl; do
		[ -e "$ctl" ] || continue
		awk -v d="$(basename "$(dirname "$ctl")")" '
			/^failed_reads/ { r = $2 } /^failed_writes/ { w = $2 }
			/^dropped_writes/ { x = $2 }
			END { if (r + w + x) printf "%s: reads %d writes %d dropped %d; ", d, r, w, x }' \
			"$ctl" 2>/dev/null
	done
	return 0
}

# Stop the rt-faultyfs processes (their mounts are gone with scratch_teardown).
faulty_units_stop() {
	stop_pids TERM "${FFPIDS[@]}"
	# A lazily unmounted faultyfs mount point can outlive scratch_teardown's rm.
	[ -n "${TESTDIR:-}" ] && rm -rf "$TESTDIR"
	return 0
}

# kill_engine: SIGKILL the array's engine and wait until it is gone.
kill_engine() {
	sigkill_wait "$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")"
}

# deactivate_settled NAME: deactivate, retried while the device is open for a
# moment: every raidtool command (other tests' too, on a shared machine)
# scans every block device, this array's included, and deactivate refuses
# while it is open. Any other failure fails the test.
# shellcheck disable=SC2154  # status and output: set by run
deactivate_settled() {
	local i
	for i in $(seq 20); do
		run raidtool deactivate "$1"
		[ "$status" -eq 0 ] && return 0
		[[ "$output" == *"is open in process"* ]] || break
		sleep 0.2
	done
	fail "deactivate '$1': status $status: $output"
}

# hashcode_of UNIT: the hashcode of the array UNIT belongs to.
hashcode_of() {
	raidtool examine --json "$1" 2>/dev/null | jq -r .array.hashcode
}

# two_of_one_name: two stopped raid1 arrays named $NAME, X on the units
# ${X[@]} (hashcode HX) and Y on ${Y[@]} (HY). X is created, then hidden
# (its loop devices detached) while Y takes the name, then attached again.
two_of_one_name() {
	local f
	mapfile -t X < <(make_images x 2 32M)
	mapfile -t Y < <(make_images y 2 32M)
	run raidtool create "$NAME" --level 1 --assume-clean "${X[@]}"
	assert_success
	HX=$(hashcode_of "${X[0]}")
	for f in "${X[@]}"; do losetup -d "$(loop_of "$f")"; done
	run raidtool create "$NAME" --level 1 --assume-clean "${Y[@]}"
	assert_success
	HY=$(hashcode_of "${Y[0]}")
	for f in "${X[@]}"; do attach "$f" >/dev/null; done
	if [ -z "$HX" ] || [ -z "$HY" ] || [ "$HX" = "$HY" ]; then
		fail "hashcodes '$HX' and '$HY'"
	fi
}

# Hold a block device open with O_EXCL from another process (HOLD_PID;
# the caller's teardown ends it).
hold_exclusive() {
	local ready=$TESTDIR/held
	perl -MFcntl -e 'sysopen(my $f, $ARGV[0], O_RDONLY | O_EXCL) or die "$ARGV[0]: $!\n";
		open(my $r, ">", $ARGV[1]) or die; close($r); sleep 600' "$1" "$ready" \
		>/dev/null 2>&1 3>&- &
	# shellcheck disable=SC2034  # the caller's
	HOLD_PID=$!
	for _ in $(seq 50); do
		[ -e "$ready" ] && return 0
		sleep 0.1
	done
	fail "could not hold $1 open"
}
