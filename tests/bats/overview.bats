#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Operating arrays: status without a name (every array, running or not),
# status --test's exit status, activate --readonly, activate --scan.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup jq
	UNITS=()
}

teardown() {
	# An engine a test stopped with SIGSTOP answers its stop again.
	[ -n "${STOPPED:-}" ] && kill -CONT "$STOPPED" 2>/dev/null
	stop_arrays "${NAME:-}" "${NAME2:-}"
	# A read-only test's file system.
	[ -n "${TESTDIR:-}" ] && mountpoint -q "$TESTDIR/mnt" && umount "$TESTDIR/mnt"
	scratch_teardown
}

# new_array NAME LEVEL COUNT SIZE: images NAME-I.img, created --assume-clean, not started.
new_array() {
	local name=$1 level=$2 count=$3 size=$4 i imgs=()
	for ((i = 0; i < count; i++)); do imgs+=("$(make_image "$name-$i.img" "$size")"); done
	run raidtool create "$name" --level "$level" --chunk 64K --assume-clean "${imgs[@]}"
	assert_success
	UNITS=("${imgs[@]}")
}

# Hide unit I of the stopped array NAME: its loop device detached.
hide_unit() {
	losetup -j "$TESTDIR/$1-$2.img" -nO NAME | xargs -r losetup -d
}

# This test's array NAME in the overview's JSON.
overview_of() {
	raidtool status --json | jq -c ".arrays[] | select(.name == \"$1\")"
}

@test "status without a name: running and stopped arrays, one block each, with [UU_] and health" {
	NAME2=${NAME}b
	new_array "$NAME" 5 3 32M
	new_array "$NAME2" 1 2 32M
	run raidtool activate "$NAME"
	assert_success
	run raidtool fail "$NAME" 2
	assert_success
	run --separate-stderr raidtool status
	assert_success
	assert_output --regexp "(^|
)$NAME : active raid5 \[3/2\] \[UU_\] degraded
"
	assert_output --regexp "(^|
)$NAME2 : inactive raid1 \[2/2\] \[UU\] clean
"
	assert_output --regexp "units: loop[0-9]+\[0\] loop[0-9]+\[1\] loop[0-9]+\[2\]\(faulty\)"
	assert_output --partial "/dev/raidtool/$NAME ("
	run overview_of "$NAME"
	assert_success
	[ "$(jq -r .state <<<"$output")" = active ]
	[ "$(jq -r .map <<<"$output")" = UU_ ]
	[ "$(jq -r .roles_up <<<"$output")" = 2 ]
	[ "$(jq -r .health <<<"$output")" = degraded ]
	[ "$(jq -r .device <<<"$output")" = "/dev/raidtool/$NAME" ]
	[ "$(jq -r '.units[2].state' <<<"$output")" = faulty ]
	run overview_of "$NAME2"
	[ "$(jq -r .state <<<"$output")" = inactive ]
	[ "$(jq -r .health <<<"$output")" = clean ]
	[ "$(jq -r .device <<<"$output")" = null ]
	# list shows the health too, from the role table alone.
	run --separate-stderr raidtool list
	assert_success
	assert_line --regexp "^$NAME +[0-9a-f]{8} +raid5 +2/3 .* active +degraded +/dev/raidtool/$NAME\$"
	assert_line --regexp "^$NAME2 +[0-9a-f]{8} +raid1 +2/2 .* clean +clean +-\$"
	[ "$(raidtool list --json | jq -r ".arrays[] | select(.name == \"$NAME\") | .health")" = degraded ]
	hide_unit "$NAME2" 1
	[ "$(raidtool list --json | jq -r ".arrays[] | select(.name == \"$NAME2\") | .health")" = degraded ]
}

@test "status without a name shows a running rebuild with progress, speed and time left" {
	new_array "$NAME" 1 2 64M
	run raidtool activate "$NAME"
	assert_success
	run raidtool fail "$NAME" 1
	assert_success
	run raidtool remove "$NAME" 1
	assert_success
	fresh=$(make_image fresh.img 64M)
	run raidtool add "$NAME" "$fresh" --speed-limit 4
	assert_success
	for _ in $(seq 50); do
		[ "$(overview_of "$NAME" | jq -r '.walk.kind')" = rebuilding ] && break
		sleep 0.1
	done
	run overview_of "$NAME"
	[ "$(jq -r .walk.kind <<<"$output")" = rebuilding ]
	[ "$(jq -r .walk.role <<<"$output")" = 1 ]
	[ "$(jq -r .walk.total <<<"$output")" -gt 0 ]
	[ "$(jq -r .map <<<"$output")" = U_ ]
	sleep 1.5
	run --separate-stderr raidtool status
	assert_output --regexp "rebuilding role 1: [0-9.]+% \([0-9]+ of [0-9]+ bytes\), [0-9.]+ [KMG]?i?B/s, [0-9]+ s left"
	run raidtool wait "$NAME"
	assert_success
	[ "$(overview_of "$NAME" | jq -r .map)" = UU ]
	[ "$(overview_of "$NAME" | jq -r .walk)" = null ]
}

@test "status NAME --test: 0 clean, 1 degraded, 2 failed or engine dead, 4 no such array" {
	new_array "$NAME" 5 3 32M
	run --separate-stderr raidtool status "$NAME" --test
	assert_success
	run raidtool activate "$NAME"
	assert_success
	run --separate-stderr raidtool status "$NAME" --test
	assert_success
	run raidtool fail "$NAME" 1
	assert_success
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 1
	# Still shown as usual.
	assert_output --partial "degraded"
	run raidtool deactivate "$NAME"
	assert_success
	# Stopped: what it would start as.
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 1
	hide_unit "$NAME" 2
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 2
	run --separate-stderr raidtool status "nosuch$NAME" --test
	assert_failure 4
	# Without --test, a missing array is exit status 3 as before.
	run --separate-stderr raidtool status "nosuch$NAME"
	assert_failure 3
	run --separate-stderr raidtool status --test
	assert_failure 2
}

@test "status --test: an array whose engine died is 2" {
	new_array "$NAME" 1 2 32M
	run raidtool activate "$NAME"
	assert_success
	sigkill_wait "$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")"
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 2
	[ "$(overview_of "$NAME" | jq -r .state)" = dead ]
	[ "$(overview_of "$NAME" | jq -r .health)" = failed ]
}

@test "status --test: an engine that does not answer is 2 (failed), not 1 (degraded)" {
	new_array "$NAME" 1 2 32M
	run raidtool activate "$NAME"
	assert_success
	STOPPED=$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")
	kill -STOP "$STOPPED"
	run --separate-stderr raidtool status "$NAME" --test
	assert_failure 2
	stderr_has "does not answer"
	# Answering again: clean.
	kill -CONT "$STOPPED"
	STOPPED=
	run --separate-stderr raidtool status "$NAME" --test
	assert_success
}

# Every unit image's sha256, one line.
unit_sums() {
	sha256sum "${UNITS[@]}" | awk '{print $1}' | tr '\n' ' '
}

@test "activate --readonly: mount -o ro and reads change no byte of any unit; writes, walks and fail refused" {
	require_cmds mkfs.ext4
	new_array "$NAME" 5 3 64M
	run raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
	mkfs.ext4 -q -F "$DEV"
	mkdir -p "$TESTDIR/mnt"
	mount "$DEV" "$TESTDIR/mnt"
	head -c 8M /dev/urandom >"$TESTDIR/mnt/data"
	sha=$(sha256sum <"$TESTDIR/mnt/data")
	umount "$TESTDIR/mnt"
	deactivate_settled "$NAME"
	before=$(unit_sums)

	run --separate-stderr raidtool activate --readonly "$NAME"
	assert_success
	assert_output "$DEV"
	[ "$(raidtool status --json "$NAME" | jq -r .state)" = read-only ]
	[ "$(blockdev --getro "$DEV")" = 1 ]
	mount -o ro "$DEV" "$TESTDIR/mnt"
	[ "$(sha256sum <"$TESTDIR/mnt/data")" = "$sha" ]
	run dd if=/dev/zero of="$DEV" bs=4k count=1 oflag=direct status=none
	assert_failure
	# The FUSE file under the block device refuses writes too (EROFS).
	uuid=$(raidtool status --json "$NAME" | jq -r .uuid)
	run dd if=/dev/zero of="$RAIDTOOL_RUNDIR/$uuid/mnt/$NAME" bs=4k count=1 conv=notrunc \
		oflag=direct status=none
	assert_failure
	assert_output --partial "Read-only file system"
	run --separate-stderr raidtool check "$NAME"
	assert_failure
	stderr_has "read-only"
	run --separate-stderr raidtool fail "$NAME" 1
	assert_failure
	umount "$TESTDIR/mnt"
	deactivate_settled "$NAME"
	[ "$(unit_sums)" = "$before" ]
	# Started again as usual: it takes writes.
	run raidtool activate "$NAME"
	assert_success
	[ "$(raidtool status --json "$NAME" | jq -r .state)" = active ]
}

@test "activate --readonly after an unclean stop: no resync, the superblocks stay dirty, no byte changes" {
	new_array "$NAME" 1 2 32M
	run raidtool activate "$NAME"
	assert_success
	dd if=/dev/urandom of="/dev/raidtool/$NAME" bs=1M count=4 oflag=direct status=none
	sigkill_wait "$(cat "$RAIDTOOL_RUNDIR/$NAME/pid")"
	run raidtool deactivate "$NAME"
	assert_success
	before=$(unit_sums)
	run --separate-stderr raidtool activate --readonly "$NAME"
	assert_success
	sleep 1.5
	run raidtool status --json "$NAME"
	[ "$(jq -r .walk <<<"$output")" = null ]
	[ "$(jq -r .superblock_state <<<"$output")" = dirty ]
	dd if="/dev/raidtool/$NAME" of=/dev/null bs=1M iflag=direct status=none
	deactivate_settled "$NAME"
	[ "$(unit_sums)" = "$before" ]
	[ "$(raidtool examine --json "${UNITS[0]}" 2>/dev/null | jq -r .state)" = dirty ]
}

@test "activate --scan: complete arrays start, degraded ones only with --run; listed image files are attached" {
	NAME2=${NAME}b
	new_array "$NAME" 1 2 32M
	new_array "$NAME2" 5 3 32M
	# NAME2 is missing a unit; NAME's units are detached, named in the list.
	hide_unit "$NAME2" 2
	hide_unit "$NAME" 0
	hide_unit "$NAME" 1
	printf '# boot units\n%s\n\n  %s  # second\n' "$TESTDIR/$NAME-0.img" \
		"$TESTDIR/$NAME-1.img" >"$TESTDIR/units"
	export RAIDTOOL_UNITS=$TESTDIR/units
	# The scan is kept to this test's units: other arrays on this machine are not ours.
	b=("$TESTDIR/$NAME2-0.img" "$TESTDIR/$NAME2-1.img")
	run --separate-stderr raidtool activate --scan "${b[@]}"
	assert_success
	assert_output ""
	stderr_has "'$NAME2' ($(raidtool status --json "$NAME2" | jq -r .hashcode)): not started: degraded"
	# The list's files were attached, so a scan finds them.
	a0=$(loop_of "$TESTDIR/$NAME-0.img")
	a1=$(loop_of "$TESTDIR/$NAME-1.img")
	[ -b "$a0" ] && [ -b "$a1" ]
	run --separate-stderr raidtool activate --scan "$a0" "$a1" "${b[@]}"
	assert_success
	assert_output "/dev/raidtool/$NAME"
	[ "$(raidtool status --json "$NAME" | jq -r .state)" = active ]
	[ "$(raidtool status --json "$NAME2" | jq -r .state)" = inactive ]
	# Running arrays are left alone; --run starts the degraded one.
	run --separate-stderr raidtool activate --scan --run "$a0" "$a1" "${b[@]}"
	assert_success
	assert_output "/dev/raidtool/$NAME2"
	[ "$(raidtool status --json "$NAME2" | jq -r .health)" = degraded ]
	# A list line naming nothing is reported and fails the run, the rest goes on.
	echo "$TESTDIR/nonexistent.img" >>"$TESTDIR/units"
	run --separate-stderr raidtool activate --scan "${b[@]}"
	assert_failure 1
	stderr_has "nonexistent.img': cannot open: No such file or directory"
	run --separate-stderr raidtool activate --run
	assert_failure 2
	run --separate-stderr raidtool activate --scan "$TESTDIR"
	assert_failure 2
}

@test "list -o COLUMNS, -n, --raw: lsblk-style columns" {
	new_array "$NAME" 1 2 32M
	hash=$(raidtool list --json | jq -r ".arrays[] | select(.name == \"$NAME\") | .hashcode")
	uuid=$(raidtool list --json | jq -r ".arrays[] | select(.name == \"$NAME\") | .uuid")
	run --separate-stderr raidtool list -o name,health,uuid
	assert_success
	[[ ${lines[0]} =~ ^NAME\ +HEALTH\ +UUID$ ]] || fail "header: ${lines[0]}"
	assert_line --regexp "^$NAME +clean +$uuid\$"
	run --separate-stderr raidtool list -n -o HASHCODE,NAME
	assert_success
	refute_line --partial HASHCODE
	assert_line --regexp "^$hash $NAME\$"
	# --raw: one space between fields, the blank inside SIZE escaped.
	run --separate-stderr raidtool list --raw -o NAME,SIZE,STATE
	assert_success
	assert_line "NAME SIZE STATE"
	assert_line --regexp "^$NAME [0-9.]+\\\\x20MiB clean\$"
	# The default is unchanged by the options' existence.
	run --separate-stderr raidtool list
	[[ ${lines[0]} =~ ^NAME\ +HASHCODE\ LEVEL\ +UNITS\ +SIZE\ +STATE\ +HEALTH\ +DEVICE$ ]]
	run --separate-stderr raidtool list -o name,bogus
	assert_failure 2
	stderr_has "unknown column 'bogus'"
	run --separate-stderr raidtool list -n --json
	assert_failure 2
	run --separate-stderr raidtool list --raw --units "$NAME"
	assert_failure 2
}
