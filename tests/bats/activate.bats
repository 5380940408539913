#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# The run path: activate, status, deactivate; the block device, refusals
# while in use, recovery after the engine is killed, the control socket.

load helpers

# Other arrays on this machine can make the scan warn on stderr: JSON and
# device paths are read from stdout alone.
bats_require_minimum_version 1.5.0

setup() {
	fuse_setup jq
	BGPIDS=()
}

teardown() {
	# Our own helpers first (holders of the device, foreground engines).
	reap_bgpids
	# Stop our array (or clean up after a killed engine) the proper way, so
	# that the loop device on its FUSE file is detached before the mount goes.
	if [ -n "${TESTDIR:-}" ] && grep -q " $TESTDIR/mnt " /proc/mounts; then
		umount -l "$TESTDIR/mnt"
	fi
	stop_arrays
	scratch_teardown
}

# new_array LEVEL COUNT SIZE [CREATE-OPTION...]: create NAME from COUNT images (no activation).
new_array() {
	local level=$1 count=$2 size=$3 i
	UNITS=()
	for ((i = 0; i < count; i++)); do
		UNITS+=("$(make_image "u$i.img" "$size")")
	done
	run raidtool create "$NAME" --level "$level" --chunk 64K "${@:4}" "${UNITS[@]}"
	assert_success
}

start_array() {
	new_array "$@"
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	assert_output "/dev/raidtool/$NAME"
	DEV=/dev/raidtool/$NAME
}

engine_pid() {
	cat "$RAIDTOOL_RUNDIR/$NAME/pid"
}

# The superblock state and events of the array, as lookup reads them.
sb_field() {
	raidtool lookup --json "$NAME" 2>/dev/null | jq -r ".$1"
}

# Wait until process $1 holds $2 open (its fd table names it).
wait_holds_open() {
	local pid=$1 path fd
	path=$(readlink -f "$2")
	for _ in $(seq 100); do
		for fd in /proc/"$pid"/fd/*; do
			[ "$(readlink "$fd" 2>/dev/null)" = "$path" ] && return 0
		done
		sleep 0.05
	done
	fail "process $pid never opened $path"
}


@test "activate, deactivate, status: --help works" {
	for c in activate deactivate status; do
		run raidtool "$c" --help
		assert_success
		assert_output --partial "raidtool $c"
	done
}

@test "activate: /dev/raidtool/NAME is a block device of the array's size, loop with direct I/O" {
	start_array 5 3 64M
	[ -L "$DEV" ]
	[ -b "$DEV" ]
	size=$(blockdev --getsize64 "$DEV")
	want=$(raidtool lookup --json "$NAME" 2>/dev/null | jq '.nblocks * .blocksize')
	[ "$size" -eq "$want" ]
	[ "$(blockdev --getss "$DEV")" -eq 4096 ]
	loop=$(readlink "$DEV")
	[ "$(cat "/sys/block/${loop#/dev/}/loop/dio")" = 1 ]
	[ "$(cat "$RAIDTOOL_RUNDIR/$NAME/device")" = "$loop" ]
	kill -0 "$(engine_pid)"
	# Marked dirty while running.
	[ "$(sb_field state)" = dirty ]
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "stopped"
	no_leftovers
	[ "$(sb_field state)" = clean ]
}

@test "superblocks: activate and deactivate each bump events on every unit" {
	# Zeroed images: no initial sync, whose end would bump events too.
	new_array 1 2 32M --assume-clean
	e0=$(sb_field events)
	run raidtool activate "$NAME"
	assert_success
	[ "$(sb_field events)" -eq $((e0 + 1)) ]
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(sb_field events)" -eq $((e0 + 2)) ]
	run --separate-stderr raidtool list --units "$NAME" --json
	assert_success
	[ "$(echo "$output" | jq "[.[] | select(.events == $((e0 + 2)))] | length")" -eq 2 ]
}

@test "data: random data written with dd reads back, also after deactivate and activate" {
	start_array 0 3 48M
	head -c 40M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	cmp <(dd if="$DEV" bs=1M count=40 iflag=direct status=none) "$TESTDIR/pattern"
	# An unaligned write through the page cache, then a flush.
	dd if=/dev/urandom of="$TESTDIR/small" bs=1000 count=7 status=none
	dd if="$TESTDIR/small" of="$DEV" bs=1000 seek=12345 conv=notrunc,fsync status=none
	run raidtool deactivate "$NAME"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	cmp <(dd if="$DEV" bs=1000 skip=12345 count=7 status=none) "$TESTDIR/small"
	# Below the small write (at 12345000).
	cmp <(dd if="$DEV" bs=1M count=11 iflag=direct status=none) <(head -c 11M "$TESTDIR/pattern")
	run raidtool deactivate "$NAME"
	assert_success
}

@test "a unit whose device grew (copied to a bigger disk, image extended) still starts its array; zero wipes both its copies" {
	local loop sb1 size
	start_array 0 2 48M
	head -c 40M /dev/urandom >"$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	run raidtool deactivate "$NAME"
	assert_success
	sb1=$(raidtool examine --json "${UNITS[1]}" | jq -r .this_unit.sb_offset_1)
	# The device behind unit 1 grows by 16 MiB; its end holds no superblock.
	loop=$(loop_of "${UNITS[1]}")
	truncate -s +16M "${UNITS[1]}"
	losetup -c "$loop"
	size=$(blockdev --getsize64 "$loop")
	[ "$size" -eq $((64 << 20)) ] || fail "the loop device did not grow: $size"
	# Both copies found, copy 1 where copy 0 says it is; the array starts whole.
	run --separate-stderr raidtool examine --json "${UNITS[1]}"
	assert_success
	[ "$(jq -r '.copies[1].valid' <<<"$output")" = true ] || fail "copy 1: $output"
	[ "$(jq -r '.copies[1].offset' <<<"$output")" = "$sb1" ]
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	cmp <(dd if="$DEV" bs=1M count=40 iflag=direct status=none) "$TESTDIR/pattern"
	run raidtool deactivate "$NAME"
	assert_success
	# Updates keep writing copy 1 there, and both copies agree.
	run --separate-stderr raidtool examine --json "${UNITS[1]}"
	[ "$(jq -r '.copies[0].events' <<<"$output")" = "$(jq -r '.copies[1].events' <<<"$output")" ]
	# zero leaves no copy 1 behind at the old end either.
	run raidtool zero "${UNITS[1]}"
	assert_success
	[ "$(tail -c +$((sb1 + 1)) "${UNITS[1]}" | head -c 4096 | tr -d '\0' | wc -c)" -eq 0 ]
}

@test "a spare held open by another process is left out; the array starts without it" {
	local spare sloop
	start_array 1 2 48M
	run raidtool deactivate "$NAME"
	assert_success
	spare=$(make_image spare.img 48M)
	run raidtool add "$NAME" "$spare"
	assert_success
	[ "$(raidtool examine --json "$spare" | jq -r .this_unit.state)" = spare ] ||
		fail "not a spare: $(raidtool examine "$spare")"
	sloop=$(loop_of "$spare")
	hold_exclusive "$sloop"
	BGPIDS+=("$HOLD_PID")
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[[ "$stderr" == *"spare '$sloop' left out"* ]] || fail "stderr: $stderr"
	run --separate-stderr raidtool status --json "$NAME"
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "$output"
	[ "$(jq '[.units[] | select(.state == "active")] | length' <<<"$output")" = 2 ]
	[ "$(jq --arg d "$sloop" '[.units[] | select(.device == $d)] | length' <<<"$output")" = 0 ]
}

@test "status: text and --json of an active array, counters move" {
	start_array 5 3 64M
	run raidtool status "$NAME"
	assert_success
	assert_output --partial "state : active"
	assert_output --partial "$DEV -> $(readlink "$DEV")"
	assert_output --partial "raid5"
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	json=$output
	[ "$(jq -r .state <<<"$json")" = active ]
	[ "$(jq -r .level <<<"$json")" = raid5 ]
	[ "$(jq -r .device <<<"$json")" = "$DEV" ]
	[ "$(jq -r .loop_device <<<"$json")" = "$(readlink "$DEV")" ]
	[ "$(jq -r .pid <<<"$json")" = "$(engine_pid)" ]
	[ "$(jq -r .size <<<"$json")" -eq "$(blockdev --getsize64 "$DEV")" ]
	[ "$(jq -r .superblock_state <<<"$json")" = dirty ]
	[ "$(jq '.units | length' <<<"$json")" -eq 3 ]
	[ "$(jq -r '[.units[].role] | join(",")' <<<"$json")" = "0,1,2" ]
	[ "$(jq -r '[.units[].state] | unique | join(",")' <<<"$json")" = active ]
	w0=$(jq .stats.write_bytes <<<"$json")
	dd if=/dev/urandom of="$DEV" bs=1M count=4 oflag=direct status=none
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	[ "$(jq .stats.write_bytes <<<"$output")" -ge $((w0 + 4194304)) ]
	[ "$(jq '[.units[].stats.write_bytes] | add' <<<"$output")" -gt 0 ]
	# By hashcode too.
	hash=$(jq -r .hashcode <<<"$json")
	run --separate-stderr raidtool status --json "$hash"
	assert_success
	[ "$(jq -r .name <<<"$output")" = "$NAME" ]
	run raidtool deactivate "$NAME"
	assert_success
}

@test "list: shows which arrays are active and their block devices" {
	# Clean from the start: an initial sync still running would show as "resyncing".
	start_array 1 2 32M --assume-clean
	run --separate-stderr raidtool list --json
	assert_success
	entry=$(jq -c --arg n "$NAME" '.arrays[] | select(.name == $n)' <<<"$output")
	[ "$(jq -r .active <<<"$entry")" = true ]
	[ "$(jq -r .status <<<"$entry")" = active ]
	[ "$(jq -r .device <<<"$entry")" = "$DEV" ]
	[ "$(jq -r .loop_device <<<"$entry")" = "$(readlink "$DEV")" ]
	[ "$(jq -r .pid <<<"$entry")" = "$(engine_pid)" ]
	run --separate-stderr raidtool list
	assert_success
	assert_line --regexp "^$NAME +[0-9a-f]{8} +raid1 +2/2 .* active +clean +$DEV"
	run raidtool deactivate "$NAME"
	assert_success
	run --separate-stderr raidtool list --json
	entry=$(jq -c --arg n "$NAME" '.arrays[] | select(.name == $n)' <<<"$output")
	[ "$(jq -r .active <<<"$entry")" = false ]
	[ "$(jq -r .device <<<"$entry")" = null ]
	[ "$(jq -r .status <<<"$entry")" = clean ]
}

@test "status: an inactive array shows its units and no device" {
	new_array 1 2 32M
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	[ "$(jq -r .state <<<"$output")" = inactive ]
	[ "$(jq -r .device <<<"$output")" = null ]
	[ "$(jq -r .pid <<<"$output")" = null ]
	[ "$(jq '.units | length' <<<"$output")" -eq 2 ]
	run raidtool status "$NAME"
	assert_success
	assert_output --partial "state : inactive"
	run raidtool status "no-such-array-$NAME"
	assert_failure 3
}

@test "activate twice: refused as already active" {
	start_array 0 2 32M
	pid=$(engine_pid)
	run raidtool activate "$NAME"
	assert_failure 4
	assert_output --partial "already active"
	[ "$(engine_pid)" = "$pid" ]
	run raidtool deactivate "$NAME"
	assert_success
}

@test "deactivate: refused while mounted, nothing lost; works after umount" {
	start_array 5 3 64M
	run mkfs.ext4 -q -F "$DEV"
	assert_success
	mkdir "$TESTDIR/mnt"
	mount "$DEV" "$TESTDIR/mnt"
	head -c 3M /dev/urandom > "$TESTDIR/mnt/file"
	sum=$(sha256sum < "$TESTDIR/mnt/file")
	run raidtool deactivate "$NAME"
	assert_failure 4
	assert_output --partial "mounted on $TESTDIR/mnt"
	# Still running and usable.
	kill -0 "$(engine_pid)"
	[ -b "$DEV" ]
	[ "$(sha256sum < "$TESTDIR/mnt/file")" = "$sum" ]
	echo more > "$TESTDIR/mnt/more"
	umount "$TESTDIR/mnt"
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
	run raidtool activate "$NAME"
	assert_success
	run fsck.ext4 -fn "$DEV"
	assert_success
	mount "$DEV" "$TESTDIR/mnt"
	[ "$(sha256sum < "$TESTDIR/mnt/file")" = "$sum" ]
	[ "$(cat "$TESTDIR/mnt/more")" = more ]
	umount "$TESTDIR/mnt"
	run raidtool deactivate "$NAME"
	assert_success
}

@test "deactivate: refused while a process holds the device open" {
	start_array 0 2 32M
	(exec 4<"$DEV"; exec sleep 60) 3>&- &
	BGPIDS+=("$!")
	wait_holds_open "$!" "$DEV"
	run raidtool deactivate "$NAME"
	assert_failure 4
	assert_output --partial "open in process $!"
	kill "$!"
	wait "$!" 2>/dev/null || true
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

# in_ioctl_on PID DEV: is a thread of PID stopped in an ioctl on DEV
# (strace holds it at the entry)? /proc/PID/task/T/syscall: nr, then args.
in_ioctl_on() {
	local t nr fd
	for t in /proc/"$1"/task/*; do
		read -r nr fd _ < "$t/syscall" 2>/dev/null || continue
		[ "$nr" = 16 ] && [ "$(readlink "/proc/$1/fd/$((fd))" 2>/dev/null)" = "$2" ] &&
			return 0
	done
	return 1
}

@test "deactivate: a process that opens the device as the stop is decided: refused naming it, the device intact" {
	local loop pid dpid holder rc
	require_cmds strace
	start_array 1 2 32M
	head -c 1M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	loop=$(readlink -f "$DEV")
	pid=$(engine_pid)
	# strace holds the engine's first ioctl on its device, the stop's
	# detach, at its entry for 3 s: a process opens the device meanwhile.
	attach_strace "$pid" -o /dev/null -P "$loop" -e trace=ioctl \
		-e inject=ioctl:delay_enter=3s:when=1
	BGPIDS+=("$SPID")
	raidtool deactivate "$NAME" > "$TESTDIR/deactivate.out" 2>&1 &
	dpid=$!
	BGPIDS+=("$dpid")
	for _ in $(seq 200); do
		in_ioctl_on "$pid" "$loop" && break
		sleep 0.05
	done
	in_ioctl_on "$pid" "$loop" ||
		fail "the engine never came to detach $loop: $(cat "$TESTDIR/deactivate.out")"
	(exec 4<"$loop"; exec sleep 60) 3>&- &
	holder=$!
	BGPIDS+=("$holder")
	wait_holds_open "$holder" "$loop"
	in_ioctl_on "$pid" "$loop" || fail "the detach went on before the device was opened"
	rc=0
	wait "$dpid" || rc=$?
	[ "$rc" = 4 ] || fail "deactivate: exit $rc: $(cat "$TESTDIR/deactivate.out")"
	grep -q "open in process $holder" "$TESTDIR/deactivate.out" ||
		fail "the opener is not named: $(cat "$TESTDIR/deactivate.out")"
	detach_strace
	# Refused whole: not even a detach left for the holder's close.
	[ "$(cat "/sys/block/$(basename "$loop")/loop/autoclear")" = 0 ]
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	cmp <(dd if="$DEV" bs=1M count=1 iflag=direct status=none) "$TESTDIR/pattern"
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "deactivate after the array's loop device was detached by hand: it stops" {
	local loop
	start_array 0 2 32M
	loop=$(readlink -f "$DEV")
	losetup -d "$loop"
	for _ in $(seq 100); do
		[ -z "$(losetup -nO BACK-FILE "$loop" 2>/dev/null)" ] && break
		sleep 0.05
	done
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "deactivate: refused while a process reads the FUSE file itself" {
	start_array 0 2 32M
	(exec 4<"$RAIDTOOL_RUNDIR/$NAME/mnt/$NAME"; exec sleep 60) 3>&- &
	BGPIDS+=("$!")
	wait_holds_open "$!" "$RAIDTOOL_RUNDIR/$NAME/mnt/$NAME"
	run raidtool deactivate "$NAME"
	assert_failure 4
	assert_output --partial "FUSE file"
	assert_output --partial "open in process $!"
	kill "$!"
	wait "$!" 2>/dev/null || true
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "kill -9: deactivate cleans up, activate works again, synced data intact" {
	# Zeroed images: no initial sync whose closing superblock update the kill
	# could interrupt (that is issue 9's finding 2, not this test's subject).
	start_array 5 3 64M --assume-clean
	head -c 16M /dev/urandom > "$TESTDIR/pattern"
	dd if="$TESTDIR/pattern" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	pid=$(engine_pid)
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	[ "$(jq -r .state <<<"$output")" = inactive ]
	[ "$(jq -r .engine_died <<<"$output")" = true ]
	run raidtool deactivate "$NAME"
	assert_success
	assert_output --partial "had died"
	assert_output --partial "detached"
	no_leftovers
	# An unclean stop: the superblocks stay dirty.
	[ "$(sb_field state)" = dirty ]
	run raidtool deactivate "$NAME"
	assert_failure 3
	assert_output --partial "'$NAME': not running"
	run raidtool activate "$NAME"
	assert_success
	cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/pattern"
	# The start resyncs what the unclean stop left dirty; stopped before that
	# finished, the array would stay dirty.
	run raidtool wait "$NAME"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	[ "$(sb_field state)" = clean ]
}

@test "kill -9: activate alone also cleans up after the dead engine" {
	start_array 0 2 32M
	pid=$(engine_pid)
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	run raidtool activate "$NAME"
	assert_success
	assert_output --partial "earlier engine"
	[ -b "$DEV" ]
	[ "$(engine_pid)" != "$pid" ]
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "kill -9 while mounted: deactivate refuses until unmounted" {
	start_array 0 2 32M
	run mkfs.ext4 -q -F "$DEV"
	assert_success
	mkdir "$TESTDIR/mnt"
	mount "$DEV" "$TESTDIR/mnt"
	pid=$(engine_pid)
	kill -KILL "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	run raidtool deactivate "$NAME"
	assert_failure 4
	assert_output --partial "still in use"
	umount -l "$TESTDIR/mnt"
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}

@test "activate: an incomplete array names its missing roles and changes nothing" {
	new_array 5 4 32M
	losetup -d "$(loop_of "${UNITS[1]}")"
	losetup -d "$(loop_of "${UNITS[3]}")"
	before=$(checksums "${UNITS[@]}")
	run raidtool activate "$NAME"
	assert_failure
	assert_output --partial "roles 1, 3 missing (have 2 of 4 units)"
	[ "$(checksums "${UNITS[@]}")" = "$before" ]
	no_leftovers
	[ ! -e "$RAIDTOOL_RUNDIR/$NAME" ]
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	[ "$(jq -r '[.units[] | select(.state == "missing") | .role] | join(",")' <<<"$output")" = "1,3" ]
}

@test "activate --foreground: ready path printed, SIGTERM refused while mounted, then a clean stop" {
	new_array 1 2 32M
	# The binary itself, not the helper function: $! must be the engine.
	"$RAIDTOOL_BIN" activate --foreground "$NAME" > "$TESTDIR/fg.out" 2> "$TESTDIR/fg.err" 3>&- &
	fg=$!
	BGPIDS+=("$fg")
	for _ in $(seq 50); do [ -s "$TESTDIR/fg.out" ] && break; sleep 0.1; done
	[ "$(cat "$TESTDIR/fg.out")" = "/dev/raidtool/$NAME" ]
	DEV=/dev/raidtool/$NAME
	[ "$(engine_pid)" = "$fg" ]
	run mkfs.ext4 -q -F "$DEV"
	assert_success
	mkdir "$TESTDIR/mnt"
	mount "$DEV" "$TESTDIR/mnt"
	kill -TERM "$fg"
	for _ in $(seq 50); do grep -q "not stopping" "$TESTDIR/fg.err" && break; sleep 0.1; done
	grep -q "not stopping" "$TESTDIR/fg.err" || fail "SIGTERM not refused: $(cat "$TESTDIR/fg.err")"
	kill -0 "$fg"
	umount "$TESTDIR/mnt"
	kill -INT "$fg"
	wait "$fg"	# fails the test unless the engine exits 0
	no_leftovers
	[ "$(sb_field state)" = clean ]
}

@test "control socket: ping, unknown request, root only" {
	require_python
	start_array 0 2 32M
	[ "$(stat -c %a "$RAIDTOOL_RUNDIR/$NAME/control.sock")" = 600 ]
	run control_raw ping
	assert_success
	[ "$(jq -r .result <<<"$output")" = ok ]
	[ "$(jq -r .pid <<<"$output")" = "$(engine_pid)" ]
	run control_raw "frobnicate now"
	assert_success
	[ "$(jq -r .result <<<"$output")" = error ]
	[ "$(jq -r .errno <<<"$output")" = 22 ]
	run control_raw status
	assert_success
	[ "$(jq -r .link <<<"$output")" = "$DEV" ]
	# Opened up on purpose: the engine still checks the peer's uid.
	chmod 0755 "$RAIDTOOL_RUNDIR" "$RAIDTOOL_RUNDIR/$NAME" "$TESTDIR"
	chmod 0666 "$RAIDTOOL_RUNDIR/$NAME/control.sock"
	run control_raw status 65534
	assert_success
	[ "$(jq -r .result <<<"$output")" = error ]
	[ "$(jq -r .errno <<<"$output")" = 13 ]
	run raidtool deactivate "$NAME"
	assert_success
}

@test "deactivate: an array that is not active" {
	new_array 0 2 32M
	run raidtool deactivate "$NAME"
	assert_failure 3
	assert_output --partial "'$NAME': not running"
}

@test "run directory: a long RAIDTOOL_RUNDIR still gets a control socket" {
	long=$TESTDIR/run/$(printf 'd%.0s' $(seq 90))
	mkdir -p "$long"
	export RAIDTOOL_RUNDIR=$long
	start_array 0 2 32M
	[ -S "$RAIDTOOL_RUNDIR/$NAME/control.sock" ]
	run --separate-stderr raidtool status --json "$NAME"
	assert_success
	[ "$(jq -r .state <<<"$output")" = active ]
	run raidtool deactivate "$NAME"
	assert_success
	no_leftovers
}
