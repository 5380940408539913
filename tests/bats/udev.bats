#!/usr/bin/env bats
# shellcheck disable=SC2153  # NAME, TESTDIR: set by scratch_setup in helpers.bash
# Auto-assembly with a real systemd-udevd: the project's rule, installed into
# /run/udev/rules.d for the test, starts arrays as their units' loop devices
# appear, names their block devices, and fails a unit that goes away.
#
# Each test prepares its arrays with no udevd running (create, write data,
# deactivate, detach), then starts its own udevd (stopped by its pid in
# teardown) and attaches the units one by one. The test copy of the rule
# only looks at loop devices over this test's files, so other work on the
# machine is left alone, and points raidtool at this test's run directory.

load helpers

UDEVD=${UDEVD:-/lib/systemd/systemd-udevd}
RULE=/run/udev/rules.d/64-raidtool.rules
# An earlier rule file the tests use to set RAIDTOOL_START or RAIDTOOL_AUTO.
SYSTEMD_RULE=/run/udev/rules.d/63-raidtool-test-systemd.rules

setup() {
	require_fuse
	command -v udevadm >/dev/null || require "needs udevadm (Debian package udev)"
	[ -x "$UDEVD" ] || require "needs $UDEVD (Debian package udev)"
	if udevadm control --ping -t 1 >/dev/null 2>&1; then
		fail "a udevd is already running on this machine; this suite starts its own"
	fi
	if [ -e "$RULE" ] && ! grep -q '^# raidtool test copy' "$RULE"; then
		fail "$RULE exists and is not a test copy; not overwriting it"
	fi
	scratch_setup
}

teardown() {
	local pid f
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -f "$TESTDIR/udevd.log" ]; then
		echo "# udevd, about raidtool:" >&3
		grep -E 'raidtool' "$TESTDIR/udevd.log" | tail -n 40 | sed 's/^/# /' >&3
		[ -f "$RAIDTOOL_RUNDIR/incremental.log" ] &&
			sed 's/^/# waiter: /' "$RAIDTOOL_RUNDIR/incremental.log" >&3
	fi
	udevd_stop
	# Waiters that incremental left counting, by the pid in their lock files.
	for f in "$RAIDTOOL_RUNDIR"/wait-*; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	rm -f "$RULE" "$SYSTEMD_RULE"
	for l in /dev/disk/by-id/raidtool-name-"$NAME"*; do
		[ -L "$l" ] && rm -f "$l"
	done
	scratch_teardown
}

# The project's rule, for this test: raidtool from the build, this test's
# run directory, degraded start after TIMEOUT seconds (0: never).
install_rule() {
	local timeout=${1:-0}
	mkdir -p /run/udev/rules.d
	{
		echo "# raidtool test copy ($TESTDIR)"
		echo "SUBSYSTEM==\"block\", KERNEL!=\"loop*\", GOTO=\"raidtool_end\""
		echo "SUBSYSTEM==\"block\", ATTR{loop/backing_file}!=\"$TESTDIR/*\", GOTO=\"raidtool_end\""
		echo "ENV{RAIDTOOL_RUNDIR}=\"$RAIDTOOL_RUNDIR\", ENV{RAIDTOOL_INCREMENTAL_TIMEOUT}=\"$timeout\""
		sed "s|@SBINDIR@|$(dirname "$RAIDTOOL_BIN")|g" "$TOP/udev/64-raidtool.rules"
	} > "$RULE"
}

udevd_start() {
	install_rule "${1:-0}"
	"$UDEVD" --debug > "$TESTDIR/udevd.log" 2>&1 &
	echo $! > "$TESTDIR/udevd.pid"
	for _ in $(seq 50); do
		udevadm control --ping -t 1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "systemd-udevd did not start: $(tail -n 5 "$TESTDIR/udevd.log")"
}

udevd_stop() {
	local pid
	[ -f "$TESTDIR/udevd.pid" ] || return 0
	pid=$(cat "$TESTDIR/udevd.pid")
	udevadm settle -t 10 2>/dev/null
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	rm -f "$TESTDIR/udevd.pid"
}

# An array on COUNT images of 64 MiB, with 24 MiB of random data written
# through its block device; its checksum in $TESTDIR/NAME.sha. The array is
# stopped and its loop devices detached afterwards: its units are files again.
prepare_array() {
	local name=$1 level=$2 count=$3 i imgs=()
	for ((i = 0; i < count; i++)); do imgs+=("$(make_image "$name-$i.img" 64M)"); done
	# Zeroed images: no initial sync still running when udev starts the array.
	run raidtool create "$name" --level "$level" --assume-clean "${imgs[@]}"
	assert_success
	run raidtool activate "$name"
	assert_success
	head -c 24M /dev/urandom > "$TESTDIR/$name.data"
	dd if="$TESTDIR/$name.data" of="/dev/raidtool/$name" bs=1M oflag=direct status=none
	sha256sum < "$TESTDIR/$name.data" | awk '{print $1}' > "$TESTDIR/$name.sha"
	rm -f "$TESTDIR/$name.data"
	run raidtool deactivate "$name"
	assert_success
	for img in "${imgs[@]}"; do
		losetup -j "$img" -nO NAME | xargs -r losetup -d
	done
}

# Attach image I of array NAME as a unit appearing; wait for udev.
plug() {
	local dev
	dev=$(losetup --find --show "$TESTDIR/$1-$2.img")
	udevadm settle -t 30
	echo "$dev"
}

prop() {
	udevadm info -q property "$1" | sed -n "s/^$2=//p"
}

state_of() {
	raidtool status "$1" --json | jq -r .state
}

health_of() {
	raidtool status "$1" --json | jq -r .health
}

# Until every waiter incremental armed has finished (started its array or
# given up): each removes its wait-UUID lock file when done.
waiters_done() {
	local f
	for _ in $(seq 100); do
		for f in "$RAIDTOOL_RUNDIR"/wait-*; do
			[ -e "$f" ] && break
		done
		[ -e "$f" ] || return 0
		sleep 0.1
	done
	fail "a waiter is still counting: $(ls "$RAIDTOOL_RUNDIR")"
}

# Until our udevd has no worker left (it kills idle ones after 3 s; on a busy
# machine its workers also serve the other loop devices' events, so allow 30 s).
workers_gone() {
	local udevd
	udevd=$(cat "$TESTDIR/udevd.pid")
	for _ in $(seq 300); do
		pgrep -P "$udevd" >/dev/null || return 0
		sleep 0.1
	done
	fail "udevd $udevd still has workers: $(pgrep -P "$udevd" | xargs)"
}

data_ok() {
	local want got
	want=$(cat "$TESTDIR/$1.sha")
	got=$(head -c 24M "/dev/raidtool/$1" | sha256sum | awk '{print $1}')
	[ "$want" = "$got" ] || fail "'$1': data read back differs from what was written"
}

@test "raid5: units appear one by one; started only when the last arrives; data and by-id link" {
	prepare_array "$NAME" 5 3
	udevd_start 600
	d0=$(plug "$NAME" 0)
	assert_equal "$(prop "$d0" RAIDTOOL_TYPE)" unit
	assert_equal "$(prop "$d0" RAIDTOOL_NAME)" "$NAME"
	assert_equal "$(prop "$d0" RAIDTOOL_STARTED)" no
	assert_equal "$(state_of "$NAME")" inactive
	d1=$(plug "$NAME" 1)
	# Enough to run degraded, but the third unit may still come: wait.
	assert_equal "$(prop "$d1" RAIDTOOL_STARTED)" unsafe
	assert_equal "$(state_of "$NAME")" inactive
	d2=$(plug "$NAME" 2)
	assert_equal "$(state_of "$NAME")" active
	# A later synthetic "change" (a close after write, a trigger) keeps what
	# incremental said when the unit appeared.
	udevadm trigger --action=change --settle "/sys/class/block/${d2#/dev/}"
	assert_equal "$(prop "$d2" RAIDTOOL_STARTED)" yes
	assert_equal "$(health_of "$NAME")" clean
	# The engine outlives the udev worker that started it (idle workers are
	# killed after 3 s) and is in a session of its own.
	pid=$(raidtool status "$NAME" --json | jq -r .pid)
	workers_gone
	kill -0 "$pid"
	assert_equal "$(ps -o sid= -p "$pid" | tr -d ' ')" "$pid"
	data_ok "$NAME"
	uuid=$(raidtool status "$NAME" --json | jq -r .uuid)
	dev=$(readlink -f "/dev/raidtool/$NAME")
	assert_equal "$(readlink -f "/dev/disk/by-id/raidtool-uuid-$uuid")" "$dev"
	assert_equal "$(readlink -f "/dev/disk/by-id/raidtool-name-$NAME")" "$dev"
	# The map under the run directory lists the three units.
	run grep -c " $NAME\$" "$RAIDTOOL_RUNDIR/map"
	assert_output 3
	# Stopping it closes its units; udev's "change" for that does not restart
	# it. The test sends that event itself, so it is surely handled by the
	# time settle returns (the close-after-write one comes whenever udevd
	# reads its inotify watch).
	run raidtool deactivate "$NAME"
	assert_success
	for d in "$d0" "$d1" "$d2"; do
		udevadm trigger --action=change --settle "/sys/class/block/${d#/dev/}"
	done
	udevadm settle -t 30
	waiters_done
	assert_equal "$(state_of "$NAME")" inactive
}

@test "create while udevd runs: the new array is not started behind the admin's back" {
	udevd_start 1
	imgs=()
	for i in 0 1 2; do imgs+=("$(make_image "$NAME-$i.img" 64M)"); done
	run raidtool create "$NAME" --level 5 "${imgs[@]}"
	assert_success
	udevadm settle -t 30
	# A waiter armed by these events would start the array after 1 s.
	waiters_done
	udevadm settle -t 30
	# create announced its units before writing them: recorded, not started
	run grep -c " $NAME\$" "$RAIDTOOL_RUNDIR/map"
	assert_output 3
	assert_equal "$(state_of "$NAME")" inactive
	for f in "${imgs[@]}"; do
		dev=$(losetup -j "$f" -nO NAME)
		assert_equal "$(prop "$dev" RAIDTOOL_TYPE)" unit
		[ "$(prop "$dev" RAIDTOOL_STARTED)" != yes ]
	done
	run raidtool activate "$NAME"
	assert_success
}

@test "raid1 with one unit missing starts degraded after the timeout, not before" {
	prepare_array "$NAME" 1 2
	udevd_start 3
	d0=$(plug "$NAME" 0)
	assert_equal "$(prop "$d0" RAIDTOOL_STARTED)" unsafe
	assert_equal "$(state_of "$NAME")" inactive
	for _ in $(seq 60); do
		[ "$(state_of "$NAME")" = active ] && break
		sleep 0.5
	done
	assert_equal "$(state_of "$NAME")" active
	assert_equal "$(health_of "$NAME")" degraded
	run grep -F "'$NAME': started after waiting 3 s" "$RAIDTOOL_RUNDIR/incremental.log"
	assert_success
	data_ok "$NAME"
}

@test "incremental --run starts a degraded array at once" {
	prepare_array "$NAME" 5 3
	udevd_start 0
	plug "$NAME" 0 >/dev/null
	d1=$(plug "$NAME" 1)
	assert_equal "$(prop "$d1" RAIDTOOL_STARTED)" unsafe
	run raidtool incremental --run "$d1"
	assert_success
	assert_output --partial "2 of 3 roles present: active on /dev/raidtool/$NAME"
	assert_equal "$(health_of "$NAME")" degraded
	data_ok "$NAME"
}

@test "a unit of a running raid1 goes away: degraded; it comes back: re-added from the log" {
	prepare_array "$NAME" 1 2
	udevd_start 0
	plug "$NAME" 0 >/dev/null
	d1=$(plug "$NAME" 1)
	assert_equal "$(state_of "$NAME")" active
	assert_equal "$(health_of "$NAME")" clean
	hash1=$(prop "$d1" RAIDTOOL_UNIT_HASHCODE)
	[ -n "$hash1" ]
	# A pulled disk reaches udev as the kernel's "remove" event. An open loop
	# device cannot go away (LOOP_CLR_FD only detaches on its last close), so
	# the test detaches it, which waits for the engine to let go, and sends
	# the remove event the kernel would send for a disk.
	losetup -d "$d1"
	udevadm trigger --action=remove --settle "/sys/class/block/${d1#/dev/}"
	udevadm settle -t 30
	assert_equal "$(health_of "$NAME")" degraded
	run raidtool status "$NAME" --json
	assert_success
	# Its slot is missing now, with no device behind it.
	run jq -r --arg h "$hash1" '.units[] | select(.hashcode == $h) | "\(.state) \(.device)"' \
		<<< "$output"
	assert_output "missing null"
	run grep -c " $NAME\$" "$RAIDTOOL_RUNDIR/map"
	assert_output 1
	data_ok "$NAME"
	# The engine let go of the unit: the deferred detach happened.
	for _ in $(seq 20); do
		[ -z "$(losetup -j "$TESTDIR/$NAME-1.img" -nO NAME)" ] && break
		sleep 0.2
	done
	assert_equal "$(losetup -j "$TESTDIR/$NAME-1.img" -nO NAME)" ""

	# Written while it was away: 4 MiB at the start.
	head -c 4M /dev/urandom > "$TESTDIR/new"
	dd if="$TESTDIR/new" of="/dev/raidtool/$NAME" bs=1M oflag=direct conv=fsync status=none
	# It comes back: added again, rebuilt only where it missed writes.
	d1=$(plug "$NAME" 1)
	assert_equal "$(prop "$d1" RAIDTOOL_STARTED)" already
	assert_equal "$(prop "$d1" RAIDTOOL_READDED)" yes
	run raidtool wait "$NAME"
	assert_success
	assert_output --regexp "rebuild of role 1 done: [0-9]+ of [0-9]+ regions"
	assert_equal "$(health_of "$NAME")" clean
	run raidtool check "$NAME"
	run raidtool wait "$NAME"
	assert_output --partial "check done: 0 mismatches"
	cmp <(head -c 4M "/dev/raidtool/$NAME") "$TESTDIR/new"
	# Both mirrors hold the same bytes in the data area, unit 1 included.
	off=$(raidtool examine --json "$d1" | jq -r .this_unit.data_offset)
	cmp <(dd if="$(losetup -j "$TESTDIR/$NAME-0.img" -nO NAME)" bs=1M skip=$((off >> 20)) \
		count=24 iflag=direct status=none) \
	    <(dd if="$d1" bs=1M skip=$((off >> 20)) count=24 iflag=direct status=none)
}

@test "incremental --scan starts waiting arrays: complete ones, degraded ones with --run" {
	prepare_array "$NAME" 1 2
	udevd_start 0
	d0=$(plug "$NAME" 0)
	assert_equal "$(prop "$d0" RAIDTOOL_STARTED)" unsafe
	run raidtool incremental --scan
	assert_success
	assert_output --partial "'$NAME': 1 of 2 roles present: enough to run degraded"
	assert_equal "$(state_of "$NAME")" inactive
	run raidtool incremental --scan --run
	assert_success
	assert_output --partial "'$NAME': 1 of 2 roles present: active on /dev/raidtool/$NAME"
	assert_equal "$(health_of "$NAME")" degraded
	data_ok "$NAME"
}

@test "auto-assembly turned off (RAIDTOOL_AUTO=0): units keep their properties, nothing starts" {
	prepare_array "$NAME" 1 2
	echo 'ENV{RAIDTOOL_AUTO}="0"' > "$SYSTEMD_RULE"
	# (create announced its units in the map; plugging them must not add to it)
	before=$(cat "$RAIDTOOL_RUNDIR/map")
	udevd_start 1
	d0=$(plug "$NAME" 0)
	d1=$(plug "$NAME" 1)
	# A waiter, had one been armed, would start the array after 1 s.
	waiters_done
	assert_equal "$(prop "$d1" RAIDTOOL_TYPE)" unit
	assert_equal "$(prop "$d1" RAIDTOOL_NAME)" "$NAME"
	assert_equal "$(prop "$d0" RAIDTOOL_STARTED)" ""
	assert_equal "$(prop "$d1" RAIDTOOL_STARTED)" ""
	assert_equal "$(cat "$RAIDTOOL_RUNDIR/map")" "$before"
	assert_equal "$(state_of "$NAME")" inactive
}

@test "a device that is not a unit is ignored" {
	udevd_start 1
	img=$(make_image other.img 32M)
	mkfs.ext4 -q -F "$img"
	head -c 1M /dev/urandom > "$TESTDIR/noise.img"
	truncate -s 32M "$TESTDIR/noise.img"
	for f in "$img" "$TESTDIR/noise.img"; do
		dev=$(losetup --find --show "$f")
		udevadm settle -t 30
		run udevadm info -q property "$dev"
		assert_success
		assert_output --partial "DEVNAME=$dev"
		refute_output --regexp 'RAIDTOOL_(TYPE|NAME|UUID|STARTED)='
	done
	# Nothing recorded, nothing started, no waiter.
	assert [ ! -s "$RAIDTOOL_RUNDIR/map" ]
	run find "$RAIDTOOL_RUNDIR" -mindepth 1 -not -name 'map*'
	assert_output ""
}

@test "two arrays whose units appear interleaved both come up" {
	a=${NAME}a b=${NAME}b
	prepare_array "$a" 1 2
	prepare_array "$b" 5 3
	udevd_start 600
	plug "$a" 0 >/dev/null
	plug "$b" 0 >/dev/null
	plug "$b" 1 >/dev/null
	assert_equal "$(state_of "$a")" inactive
	assert_equal "$(state_of "$b")" inactive
	plug "$a" 1 >/dev/null
	assert_equal "$(state_of "$a")" active
	assert_equal "$(state_of "$b")" inactive
	plug "$b" 2 >/dev/null
	assert_equal "$(state_of "$b")" active
	assert_equal "$(health_of "$a")" clean
	assert_equal "$(health_of "$b")" clean
	data_ok "$a"
	data_ok "$b"
}

@test "udevadm test: the rule imports examine and incremental; under systemd it wants raidtool@HASHCODE.service" {
	prepare_array "$NAME" 1 2
	install_rule 0
	d0=$(losetup --find --show "$TESTDIR/$NAME-0.img")
	run udevadm test --action=add "/sys/class/block/${d0#/dev/}"
	assert_success
	assert_output --partial "raidtool examine --export $d0'(out) 'RAIDTOOL_TYPE=unit'"
	assert_output --partial "raidtool examine --export $d0'(out) 'RAIDTOOL_NAME=$NAME'"
	assert_output --partial "raidtool incremental --export $d0'(out) 'RAIDTOOL_STARTED=unsafe'"
	refute_output --partial SYSTEMD_WANTS
	assert_equal "$(state_of "$NAME")" inactive

	# What the rule does where systemd runs (/run/systemd/system exists):
	# nothing is started from udev; the array is wanted from systemd.
	echo 'ENV{RAIDTOOL_START}="systemd"' > "$SYSTEMD_RULE"
	d1=$(losetup --find --show "$TESTDIR/$NAME-1.img")
	run udevadm test --action=add "/sys/class/block/${d1#/dev/}"
	assert_success
	assert_output --partial "raidtool incremental --export --no-start $d1'(out) 'RAIDTOOL_STARTED=yes'"
	hash=$(raidtool examine --json "$d1" 2>/dev/null | jq -r .array.hashcode)
	assert_output --partial "SYSTEMD_WANTS=raidtool@$hash.service"
	assert_equal "$(state_of "$NAME")" inactive
}

@test "examine --export names a running array's block device; incremental refuses what is not a unit" {
	prepare_array "$NAME" 1 2
	attach "$TESTDIR/$NAME-0.img"
	attach "$TESTDIR/$NAME-1.img"
	run raidtool activate "$NAME"
	assert_success
	dev=$(readlink -f "/dev/raidtool/$NAME")
	run raidtool examine --export "$dev"
	assert_success
	assert_line RAIDTOOL_TYPE=array
	assert_line "RAIDTOOL_NAME=$NAME"
	assert_line "RAIDTOOL_UUID=$(raidtool status "$NAME" --json | jq -r .uuid)"
	img=$(make_image plain.img 16M)
	dev=$(attach "$img")
	run raidtool incremental "$dev"
	assert_failure 3
	assert_output --partial "no raidtool superblock"
	run raidtool incremental --export "$dev"
	assert_success
	assert_output ""
	run raidtool incremental "$img"
	assert_failure
	assert_output --partial "not a block device"
	run raidtool incremental --remove /dev/nonexistent
	assert_failure 3
	run raidtool incremental --scan "$dev"
	assert_failure 2
}

@test "udevadm test: a running array's block device gets /dev/raidtool/NAME from the rule too" {
	prepare_array "$NAME" 1 2
	attach "$TESTDIR/$NAME-0.img"
	attach "$TESTDIR/$NAME-1.img"
	run raidtool activate "$NAME"
	assert_success
	install_rule 0
	dev=$(readlink -f "/dev/raidtool/$NAME")
	run raidtool examine --export "$dev"
	assert_success
	assert_line "RAIDTOOL_LINK=$NAME"
	run udevadm test --action=change "/sys/class/block/${dev#/dev/}"
	assert_success
	assert_output --regexp "(DEVLINKS|SYMLINK|link).*raidtool/$NAME"
	run raidtool deactivate "$NAME"
	assert_success
	# Its loop device is gone: nothing of raidtool's left for the rule.
	run raidtool examine --export "$dev"
	refute_output --partial RAIDTOOL_LINK
}

@test "udevadm test: a running pool's volume gets by-id links and /dev/raidtool/ARRAY/VOL" {
	local imgs uuid dev
	imgs=("$(make_image "$NAME-0.img" 64M)" "$(make_image "$NAME-1.img" 64M)")
	run raidtool create "$NAME" --level 1 --assume-clean "${imgs[@]}"
	assert_success
	run raidtool pool create "$NAME"
	assert_success
	run raidtool vol create "$NAME" vol0 --size 1G
	assert_success
	run raidtool activate "$NAME"
	assert_success
	uuid=$(raidtool status "$NAME" --json | jq -r .uuid)
	install_rule 0
	dev=$(readlink -f "/dev/raidtool/$NAME/vol0")
	run raidtool examine --export "$dev"
	assert_success
	assert_line RAIDTOOL_TYPE=volume
	assert_line "RAIDTOOL_NAME=$NAME"
	assert_line "RAIDTOOL_UUID=$uuid"
	assert_line RAIDTOOL_VOLUME=vol0
	assert_line "RAIDTOOL_LINK=$NAME/vol0"
	run udevadm test --action=change "/sys/class/block/${dev#/dev/}"
	assert_success
	assert_output --regexp "(DEVLINKS|SYMLINK|link).*disk/by-id/raidtool-vol-$NAME-vol0"
	assert_output --regexp "(DEVLINKS|SYMLINK|link).*disk/by-id/raidtool-vol-uuid-$uuid-vol0"
	assert_output --regexp "(DEVLINKS|SYMLINK|link).*raidtool/$NAME/vol0"
	run raidtool deactivate "$NAME"
	assert_success
	run raidtool examine --export "$dev"
	refute_output --partial RAIDTOOL_TYPE=volume
}

@test "systemd-analyze verify: the array and monitor services are valid; the array's is ordered before local mounts" {
	command -v systemd-analyze >/dev/null || require "needs systemd-analyze (Debian package systemd)"
	local d=$TESTDIR/units f
	mkdir -p "$d"
	for f in "$TOP"/udev/*.service "$TOP"/udev/*.timer; do
		sed "s|@SBINDIR@|$(dirname "$RAIDTOOL_BIN")|g" "$f" >"$d/${f##*/}"
	done
	cp "$d/raidtool@.service" "$d/raidtool@$NAME.service"
	cp "$d/raidtool-last-resort@.timer" "$d/raidtool-last-resort@$NAME.timer"
	run systemd-analyze verify --man=no "$d/raidtool@$NAME.service" \
		"$d/raidtool-monitor.service" "$d/raidtool-last-resort@$NAME.timer"
	assert_success
	assert_output ""
	# Shutdown stops units in the reverse order: mounts (after
	# local-fs-pre.target) go first, then the engine, which marks clean.
	run grep -E '^Before=.*local-fs-pre\.target' "$d/raidtool@.service"
	assert_success
	run grep -E '^ExecStart=.*raidtool monitor --scan --syslog' "$d/raidtool-monitor.service"
	assert_success
}
