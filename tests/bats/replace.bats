#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Hot replace (raidtool replace ARRAY UNIT --with NEW): NEW is filled while
# UNIT stays in service and then takes its role. Under fio writes; with
# UNIT failing half way (the copy goes on from redundancy); interrupted by a
# stop or a kill -9 (it resumes from its checkpoint); and the refusals,
# which change nothing on any unit. Every test compares real bytes.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup fio jq blkdiscard
	faulty_setup
	BGPIDS=()
}

teardown() {
	reap_bgpids
	faulty_units_clear
	stop_arrays
	scratch_teardown
	faulty_units_stop
}

# new_array LEVEL COUNT SIZE: NAME on COUNT zeroed image files (no initial sync).
new_array() {
	local level=$1 count=$2 size=$3 i
	for ((i = 0; i < count; i++)); do
		UNITS+=("$(make_image "u$i.img" "$size")")
	done
	run raidtool create "$NAME" --level "$level" --chunk 64K --assume-clean "${UNITS[@]}"
	assert_success
}

start_array() {
	run --separate-stderr raidtool activate "$NAME"
	assert_success
	DEV=/dev/raidtool/$NAME
}

FIO_COMMON=(--name=data --direct=1 --ioengine=io_uring --iodepth=8 --rw=write --bs=64k
	--verify=crc32c --verify_state_save=0 --output-format=terse --terse-version=3)

# fio_bg OFFSET SIZE: fio writes (4 MiB/s) and then verifies [OFFSET, OFFSET + SIZE) of $DEV.
fio_bg() {
	fio --filename="$DEV" "${FIO_COMMON[@]}" --offset="$1" --size="$2" --rate=4m \
		--do_verify=1 --verify_fatal=1 >"$TESTDIR/fio.out" 2>&1 &
	BGPIDS+=("$!")
}

fio_done() {
	local rc=0
	wait "${BGPIDS[0]}" || rc=$?
	BGPIDS=()
	[ "$rc" = 0 ] || fail "fio failed ($rc): $(cat "$TESTDIR/fio.out")"
}

# data_area UNIT: UNIT's whole data area (offset and size from its own superblock).
data_area() {
	local js off size
	js=$(raidtool examine --json "$1" 2>/dev/null)
	off=$(jq -r .this_unit.data_offset <<<"$js")
	size=$(jq -r .this_unit.data_size <<<"$js")
	[ "$off" != null ] && [ "$size" != null ] || return 1
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$size" status=none
}

# The state of slot $2 in the role table of unit $1, as examine reads it.
examined_slot() {
	raidtool examine --json "$1" 2>/dev/null | jq -r ".roles[$2].state"
}

walk_field() {
	status_json | jq -r ".walk.$1"
}

# wait_walk_done BYTES: until the running replace has copied BYTES.
wait_walk_done() {
	local d=
	for _ in $(seq 300); do
		d=$(walk_field "done")
		[ "$d" -ge "$1" ] 2>/dev/null && return 0
		sleep 0.1
	done
	fail "the replace copied ${d:-nothing} of $1 bytes in 30 s"
}

# replaced_ok OLD NEW ROLE SLOT: NEW holds ROLE, OLD is in SLOT as replaced,
# in the running array's superblocks and in OLD's own.
replaced_ok() {
	[ "$(examined_slot "$2" "$3")" = active ] || fail "role $3: $(examined_slot "$2" "$3")"
	[ "$(examined_slot "${UNITS[0]}" "$4")" = replaced ] || fail "slot $4 not replaced"
	[ "$(raidtool examine --json "$1" | jq -r .this_unit.state)" = replaced ] ||
		fail "$1 does not say it was replaced: $(raidtool examine "$1")"
	[ "$(raidtool list --units "$NAME" --json |
	     jq -r --arg b "$1" '.[] | select(.backing_file == $b) | .state')" = replaced ] ||
		fail "list --units does not say $1 was replaced: $(raidtool list --units "$NAME")"
	run status_json
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "not clean: $output"
}

# replace_under_fio LEVEL COUNT: unit 1 replaced while fio writes and
# verifies where the copy has passed already (the writes that must reach
# both units); the array stays clean throughout; NEW's data area equals
# UNIT's byte for byte (fio ends before the copy does: nothing is written
# to the array after the swap); check 0; everything verifies.
replace_under_fio() {
	local level=$1 count=$2 new health u
	new_array "$level" "$count" 128M
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M seek=96 oflag=direct conv=fsync status=none
	# Data a discard behind the copy must remove from both units.
	dd if=/dev/urandom of="$DEV" bs=1M seek=24 count=8 oflag=direct conv=fsync status=none
	new=$(make_image new.img 128M)
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 8
	assert_success
	assert_output --partial "replacing '"
	[ "$(walk_field kind)" = replacing ]
	[ "$(walk_field role)" = 1 ]
	[ "$(status_json | jq -r '.units[] | select(.state == "replacing") | .slot')" = "$count" ]
	# Role bytes [0, 24M) are copied: fio's writes land behind the copy.
	wait_walk_done $((40 << 20))
	fio_bg 0 24M
	blkdiscard -o $((24 << 20)) -l $((8 << 20)) "$DEV"
	# Never degraded while the copy runs, however far it is.
	while [ "$(walk_field running)" = true ]; do
		health=$(status_json | jq -r .health)
		[ "$health" = clean ] || fail "the array is $health during the replace"
		[ -z "${BGPIDS[0]:-}" ] || kill -0 "${BGPIDS[0]}" 2>/dev/null || fio_done
		sleep 0.3
	done
	[ -z "${BGPIDS[0]:-}" ] || fail "fio outlived the replace: the byte comparison needs it done first"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "replace of role 1 done"
	replaced_ok "${UNITS[1]}" "$new" 1 "$count"
	check_clean
	run fio --filename="$DEV" "${FIO_COMMON[@]}" --offset=0 --size=24M --verify_only=1
	assert_success
	run cmp <(dd if="$DEV" bs=1M skip=96 count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	run cmp <(dd if="$DEV" bs=1M skip=24 count=8 iflag=direct status=none) <(head -c 8M /dev/zero)
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	cmp <(data_area "${UNITS[1]}") <(data_area "$new") ||
		fail "the data areas of ${UNITS[1]} and $new differ"
	# The replaced unit is not assembled again; NEW is.
	start_array
	run status_json
	[ "$(jq -c '[.units[] | select(.state == "active") | .hashcode] | sort' <<<"$output")" = \
	  "$(for u in "${UNITS[@]::1}" "$new" "${UNITS[@]:2}"; do
		raidtool examine --json "$u" | jq .this_unit.hashcode; done | jq -sc sort)" ] ||
		fail "not the expected units: $output"
	run cmp <(dd if="$DEV" bs=1M skip=96 count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	check_clean
}

@test "raid1: replace a unit under fio: never degraded, NEW equals UNIT byte for byte, check 0" {
	replace_under_fio 1 2
}

@test "raid5: replace a unit under fio: never degraded, NEW equals UNIT byte for byte, check 0" {
	replace_under_fio 5 3
}

@test "raid1: a bigger unit replaces the smallest: the array keeps its size, the old unit may join again, walks stay inside the array" {
	local a b c size
	a=$(make_image a.img 24M)
	b=$(make_image b.img 64M)
	run raidtool create "$NAME" --level 1 --chunk 64K --assume-clean "$a" "$b"
	assert_success
	start_array
	size=$(status_json | jq -r .size)
	head -c 8M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	# NEW's bytes beyond the array's share differ from the other mirror's:
	# a walk that went past the share would count them as mismatches.
	c=$(make_image c.img 64M)
	dd if=/dev/urandom of="$c" bs=1M seek=32 count=32 conv=notrunc status=none
	run raidtool replace "$NAME" "$a" --with "$c"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	# The unit the array was made on is not too small for it.
	run raidtool zero "$a"
	assert_success
	run raidtool add "$NAME" "$a"
	assert_success
	assert_output --partial "added as a spare"
	deactivate_settled "$NAME"
	start_array
	[ "$(status_json | jq -r .size)" = "$size" ]
	run raidtool check "$NAME"
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "0 mismatches"
	[ "$(status_json | jq -r .walk.total)" = "$size" ]
	cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
}

# ring_counts: the FUSE queues' requests served on the ring and by workers.
ring_counts() {
	status_json | jq -r '"\(.fuse.ring_requests) \(.fuse.worker_requests)"'
}

@test "raid5 over io_uring: writes during a replace go on the ring to the unit and its replacement; NEW equals UNIT byte for byte" {
	local new ring0 workers0 ring workers
	require_uring
	new_array 5 4 64M
	RAIDTOOL_FUSE_TRANSPORT=uring start_array
	[ "$(status_json | jq -r .fuse.transport)" = io_uring ]
	new=$(make_image new.img 64M)
	# Slow enough to outlast fio: every write lands during the replace,
	# behind the copy (reaching the replacement only through the write
	# path) or ahead of it.
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 1
	assert_success
	read -r ring0 workers0 < <(ring_counts)
	run fio --name=repl --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bsrange=4k-16k --size=16M --numjobs=2 --offset_increment=16M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
		--output-format=terse --terse-version=3
	assert_success
	read -r ring workers < <(ring_counts)
	ring=$((ring - ring0))
	workers=$((workers - workers0))
	echo "# ring requests $ring, to workers $workers" >&3
	[ "$(walk_field running)" = true ] || fail "the replace ended before fio did"
	[ "$ring" -gt 5000 ] || fail "only $ring requests on the ring"
	[ $((workers * 20)) -le "$ring" ] || fail "$workers of $ring requests went to workers"
	run raidtool tune "$NAME" --speed-limit 0
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "replace of role 1 done"
	check_clean
	run fio --name=repl --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=16 \
		--rw=randwrite --bsrange=4k-16k --size=16M --numjobs=2 --offset_increment=16M \
		--verify=crc32c --verify_only=1 --verify_state_save=0 \
		--output-format=terse --terse-version=3
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	cmp <(data_area "${UNITS[1]}") <(data_area "$new") ||
		fail "the data areas of ${UNITS[1]} and $new differ"
}

@test "the replacement failing under fio ends the replace: UNIT keeps its role, the array stays clean, data verifies" {
	local new
	local -a fio_rand
	new_array 5 3 64M
	start_array
	fio_rand=(fio --name=rand --filename="$DEV" --direct=1 --ioengine=io_uring --iodepth=8
		--rw=randwrite --bsrange=4k-16k --size=8M --verify=crc32c --verify_state_save=0
		--output-format=terse --terse-version=3)
	faulty_unit 9 64M
	new=${UNITS[3]}
	unset 'UNITS[3]'
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 1
	assert_success
	echo "fail write" > "$TESTDIR/ffs9/ctl"
	run "${fio_rand[@]}" --do_verify=1 --verify_fatal=1
	assert_success
	grep -q "the replace stops" "$RAIDTOOL_RUNDIR/$NAME/log" ||
		fail "the replacement's failure was not noticed: $(cat "$RAIDTOOL_RUNDIR/$NAME/log")"
	run raidtool wait "$NAME"
	assert_failure
	assert_output --partial "replacing failed: Input/output error"
	run status_json
	[ "$(jq -r .health <<<"$output")" = clean ] || fail "not clean: $output"
	[ "$(jq -r '.units[] | select(.slot == 1) | .device' <<<"$output")" = "$(loop_of "${UNITS[1]}")" ] ||
		fail "role 1 is not on its unit any more: $output"
	[ "$(examined_slot "${UNITS[0]}" 1)" = active ]
	check_clean
	run "${fio_rand[@]}" --verify_only=1
	assert_success
}

@test "a paused replace whose replacement fails a write: out of the role table before that write returns; no replace resumes after a restart; data verifies" {
	local new off
	new_array 1 2 64M
	start_array
	faulty_unit 9 64M
	new=${UNITS[2]}
	unset 'UNITS[2]'
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 8
	assert_success
	wait_walk_done $((24 << 20))
	# Paused: writes still reach NEW, the copy goes on at the next activate.
	run raidtool check --cancel "$NAME"
	assert_success
	off=$(raidtool examine --json "${UNITS[0]}" | jq -r '.roles[2].recovery_offset')
	[ "$off" -ge $((24 << 20)) ] || fail "no checkpoint past 24M: $off"
	# One write of NEW fails; the array's write below the checkpoint succeeds.
	# Past the retries (--io-retries, 3 by default), then it answers again.
	echo "fail write 0 0 8" >"$TESTDIR/ffs9/ctl"
	head -c 8M /dev/urandom >"$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	grep -q "the replace stops" "$RAIDTOOL_RUNDIR/$NAME/log" ||
		fail "the replacement's failure was not noticed: $(cat "$RAIDTOOL_RUNDIR/$NAME/log")"
	# The superblocks no longer hold NEW once the write returned.
	[ "$(examined_slot "${UNITS[0]}" 2)" != replacing ] ||
		fail "NEW is still replacing in the superblocks: $(raidtool examine "${UNITS[0]}")"
	# The engine lets go of it too (no walk runs to end the replace).
	for _ in $(seq 50); do
		[ -z "$(status_json | jq -r '.units[] | select(.state == "replacing") | .slot')" ] &&
			break
		sleep 0.1
	done
	[ -z "$(status_json | jq -r '.units[] | select(.state == "replacing") | .slot')" ] ||
		fail "NEW is still replacing: $(status_json)"
	faulty_units_clear
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[[ "$stderr" != *"resuming the replace"* ]] || fail "the replace resumed: $stderr"
	run raidtool wait "$NAME"
	assert_success
	# Role 1 alone serves reads: its unit must hold every acknowledged write.
	run raidtool fail "$NAME" 0
	assert_success
	run cmp <(dd if="$DEV" bs=1M count=8 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	[ "$(status_json | jq -r '.units[] | select(.slot == 1) | .device')" = \
	  "$(loop_of "${UNITS[1]}")" ] || fail "role 1 is not on its unit: $(status_json)"
}

# replace_unit_fails LEVEL COUNT: UNIT is failed part way; the copy goes on
# from the other units (raid1 the other mirror, raid5 parity) while fio
# writes where it has passed (writes that now reach NEW alone); the data
# written before (high in the array, copied after the failure) and fio's
# verify; check 0 with NEW in the role.
replace_unit_fails() {
	local level=$1 count=$2 new size
	new_array "$level" "$count" 128M
	start_array
	size=$(status_json | jq -r .size)
	head -c 32M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M seek=$(((size >> 20) - 40)) oflag=direct \
		conv=fsync status=none
	new=$(make_image new.img 128M)
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 8
	assert_success
	wait_walk_done $((40 << 20))
	run raidtool fail "$NAME" 1
	assert_success
	# What UNIT holds past the copy is no longer to be used: wipe it, so
	# that only a copy rebuilt from the other units passes the checks.
	dd if=/dev/zero of="${UNITS[1]}" bs=1M seek=48 count=70 conv=notrunc status=none
	fio_bg 0 24M
	[ "$(status_json | jq -r .health)" = degraded ]
	[ "$(walk_field kind)" = replacing ]
	[ "$(walk_field running)" = true ] || fail "the replace stopped with its unit: $(status_json)"
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "replace of role 1 done"
	fio_done
	replaced_ok "${UNITS[1]}" "$new" 1 "$count"
	check_clean
	run fio --filename="$DEV" "${FIO_COMMON[@]}" --offset=0 --size=24M --verify_only=1
	assert_success
	run cmp <(dd if="$DEV" bs=1M skip=$(((size >> 20) - 40)) count=32 iflag=direct \
		status=none) "$TESTDIR/data"
	assert_success
	# Again from the units alone, after a restart.
	run raidtool deactivate "$NAME"
	assert_success
	start_array
	run cmp <(dd if="$DEV" bs=1M skip=$(((size >> 20) - 40)) count=32 iflag=direct \
		status=none) "$TESTDIR/data"
	assert_success
	check_clean
}

@test "raid1: UNIT fails during the replace: it goes on from the other mirror, data verifies" {
	replace_unit_fails 1 2
}

@test "raid5: UNIT fails during the replace: it goes on from parity, data verifies" {
	replace_unit_fails 5 3
}

# interrupted HOW: a replace stopped by deactivate (clean) or kill -9
# (crash) resumes from its checkpoint at the next activate and completes.
interrupted() {
	local how=$1 new off role_bytes total
	new_array 1 2 256M
	start_array
	head -c 16M /dev/urandom > "$TESTDIR/data"
	dd if="$TESTDIR/data" of="$DEV" bs=1M oflag=direct conv=fsync status=none
	new=$(make_image new.img 256M)
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 32
	assert_success
	role_bytes=$(walk_field total)
	# Past half of the role (two of its four 64 MiB log regions), checkpointed.
	for _ in $(seq 300); do
		off=$(raidtool examine --json "$new" 2>/dev/null |
			jq -r '[.roles[] | select(.state == "replacing")][0].recovery_offset')
		[ "$off" -ge $((role_bytes / 2)) ] 2>/dev/null && break
		sleep 0.1
	done
	[ "$off" -ge $((role_bytes / 2)) ] || fail "no checkpoint past half: $off"
	if [ "$how" = kill ]; then
		kill_engine
		run raidtool deactivate "$NAME"
		assert_success
	else
		run raidtool deactivate "$NAME"
		assert_success
	fi
	[ "$(examined_slot "$new" 2)" = replacing ]
	off=$(raidtool examine --json "$new" | jq -r '.roles[2].recovery_offset')
	[ "$off" -gt 0 ] || fail "no checkpoint recorded: $off"
	start_array
	stderr_has "resuming the replace of role 1"
	stderr_has "at $off bytes"
	run status_json
	[ "$(jq -r .walk.kind <<<"$output")" = replacing ]
	total=$(jq -r .walk.total <<<"$output")
	if [ "$how" = kill ]; then
		# The rest, and what the crash may have left dirty below it: not all again.
		[ "$total" -lt "$role_bytes" ] || fail "copying all $total bytes again"
	else
		[ "$(jq -r .walk.done <<<"$output")" -ge "$off" ] || fail "restarted: $output"
	fi
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "replace of role 1 done"
	replaced_ok "${UNITS[1]}" "$new" 1 2
	# After a crash, the regions it left dirty are resynced once the replace
	# ended, in a walk of their own that a check meanwhile is refused by.
	for _ in $(seq 20); do
		run raidtool check "$NAME"
		[ "$status" = 4 ] || break
		raidtool wait "$NAME" >/dev/null 2>&1 || true
	done
	assert_success
	run raidtool wait "$NAME"
	assert_success
	assert_output --partial "check done: 0 mismatches"
	run cmp <(dd if="$DEV" bs=1M count=16 iflag=direct status=none) "$TESTDIR/data"
	assert_success
	run raidtool deactivate "$NAME"
	assert_success
	cmp <(data_area "${UNITS[1]}") <(data_area "$new") ||
		fail "the data areas of ${UNITS[1]} and $new differ"
}

@test "replace stopped by deactivate resumes from its checkpoint at the next activate" {
	interrupted stop
}

@test "replace interrupted by kill -9 of the engine resumes from its checkpoint" {
	interrupted kill
}

# refused ARGS... / MESSAGE: the command fails with MESSAGE on stderr.
refused() {
	local msg=${*: -1}
	run --separate-stderr raidtool replace "${@:1:$#-1}"
	assert_failure
	stderr_has "$msg"
}

@test "replace refuses bad input with a reason and changes nothing on any unit" {
	local small big other events before
	new_array 5 3 64M
	start_array
	head -c 8M /dev/urandom | dd of="$DEV" bs=1M oflag=direct conv=fsync status=none
	small=$(make_image small.img 16M)
	big=$(make_image big.img 64M)
	other=$(make_image o0.img 64M)
	run raidtool create "${NAME}x" --level 1 --assume-clean "$other" "$(make_image o1.img 64M)"
	assert_success
	before=$(checksums "$small" "$big" "$other")
	events=$(status_json | jq -r .events)

	run raidtool replace "$NAME" 1
	assert_failure 2
	refused "$NAME" 7 --with "$big" "'7': no such role (the array has roles 0 to 2)"
	refused "$NAME" /dev/null --with "$big" "'/dev/null': not a unit of this array"
	refused "$NAME" 1 --with "$small" "too small for array"
	refused "$NAME" 1 --with "$other" "is a unit of array '${NAME}x'"
	refused "$NAME" 1 --with "$TESTDIR/nonexistent" "nonexistent"
	# No superblock update happened, and no slot was taken.
	[ "$(status_json | jq -r .events)" = "$events" ] || fail "the superblocks changed"
	[ "$(examined_slot "${UNITS[0]}" 3)" = null ] || fail "a slot 3 appeared"
	# UNIT failed: nothing to copy from it (remove and add are the way).
	run raidtool fail "$NAME" 2
	assert_success
	events=$(status_json | jq -r .events)
	refused "$NAME" 2 --with "$big" "is faulty: there is nothing to copy from it"
	[ "$(status_json | jq -r .events)" = "$events" ] || fail "the superblocks changed"
	run raidtool deactivate "$NAME"
	assert_success
	refused "$NAME" 1 --with "$big" "'$NAME': not running"
	[ "$(checksums "$small" "$big" "$other")" = "$before" ] || fail "a NEW candidate changed"
}

@test "replace refuses a second replace, a spare and linear/raid0 arrays" {
	local new new2 u
	new_array 1 2 64M
	start_array
	new=$(make_image new.img 64M)
	new2=$(make_image new2.img 64M)
	run raidtool replace "$NAME" 1 --with "$new" --speed-limit 1
	assert_success
	refused "$NAME" 0 --with "$new2" "role 1 is being replaced already"
	refused "$NAME" "$new" --with "$new2" "is a spare: it holds no data"
	run raidtool remove "$NAME" "$new"
	assert_failure
	assert_output --partial "is being filled to replace role 1"
	run raidtool deactivate "$NAME"
	assert_success
	NAME=${NAME}z
	for u in z0 z1; do UNITS+=("$(make_image "$u.img" 64M)"); done
	run raidtool create "$NAME" --level 0 "${UNITS[@]: -2}"
	assert_success
	start_array
	u=$(checksums "$new2")
	refused "$NAME" 0 --with "$new2" "a raid0 array has no redundancy"
	[ "$(checksums "$new2")" = "$u" ] || fail "$new2 changed"
}
