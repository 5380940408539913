#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031  # each @test is its own subshell on purpose
# Crafted superblocks (decide before writing, raidtool-format(5)): one field
# of unit 1's both copies is set to something that makes no sense, CRC
# recomputed (tests/helpers/rt-sbedit). activate either starts degraded on
# units 0 and 2, naming unit 1 as suspect with the field, or refuses naming
# unit 1 and the field; a refusal leaves units 0 and 2 byte for byte as they
# were. With unit 1's superblock put right, the array starts complete again
# (after a degraded start: unit 1 is added back and rebuilt), with its data.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	fuse_setup jq
	SBEDIT=$(test_helper rt-sbedit)
}

teardown() {
	stop_arrays "${A:-}"
	scratch_teardown
}

# check_data: the 4 MiB written at the start read back through the device.
check_data() {
	run cmp <(head -c 4M "/dev/raidtool/$A") "$TESTDIR/data"
	assert_success
}

health() {
	raidtool status --json "$A" 2>/dev/null | jq -r .health
}

# mutate FIELD=VALUE WANT: raid5 of three 16 MiB units with 4 MiB of data,
# stopped cleanly; unit 1's copies saved, then edited. WANT: the text the
# activate output must contain besides unit 1's device (the field's name).
mutate() {
	local edit=$1 want=$2 u1 sums after
	A="${NAME}"
	U=("$(make_image u0.img 16M)" "$(make_image u1.img 16M)" "$(make_image u2.img 16M)")
	run raidtool create "$A" --level 5 --chunk 64K "${U[@]}"
	assert_success
	head -c 4M /dev/urandom > "$TESTDIR/data"
	run raidtool activate "$A"
	assert_success
	dd if="$TESTDIR/data" of="/dev/raidtool/$A" bs=1M oflag=direct conv=fsync status=none
	deactivate_settled "$A"
	u1=$(loop_of "${U[1]}")
	# Both copies: copy 0 at 4 KiB, copy 1 in the unit's last 4 KiB.
	dd if="${U[1]}" of="$TESTDIR/sb0" bs=4096 skip=1 count=1 status=none
	dd if="${U[1]}" of="$TESTDIR/sb1" bs=4096 skip=4095 count=1 status=none
	run "$SBEDIT" "$u1" "$edit"
	assert_success
	sums=$(checksums "${U[0]}" "${U[2]}")
	run --separate-stderr raidtool activate "$A"
	# shellcheck disable=SC2154  # set by run --separate-stderr
	[[ "$stderr" == *"'$u1'"* ]] || fail "$edit: the output does not name '$u1': $stderr"
	[[ "$stderr" == *"$want"* ]] || fail "$edit: the output does not name '$want': $stderr"
	if [ "$status" -eq 0 ]; then
		[[ "$stderr" == *"suspect"* ]] || fail "$edit: started without calling '$u1' suspect"
		[ "$(health)" = degraded ] || fail "$edit: started, but not degraded: $(health)"
		check_data
		deactivate_settled "$A"
		restore
		# Left out of the degraded start, unit 1 is stale now: add rebuilds it.
		run raidtool add "$A" "${U[1]}"
		assert_success
		run raidtool activate "$A"
		assert_success
		run raidtool wait "$A"
		assert_success
	else
		after=$(checksums "${U[0]}" "${U[2]}")
		[ "$after" = "$sums" ] || fail "$edit: refused, but units 0 and 2 changed"
		[ ! -e "$RAIDTOOL_RUNDIR/$A/pid" ]
		restore
		run raidtool activate "$A"
		assert_success
	fi
	[ "$(health)" = clean ] || [ "$(health)" = ok ] || [ "$(health)" = optimal ] ||
		fail "$edit: after the repair the array is $(health)"
	check_data
	deactivate_settled "$A"
}

restore() {
	dd if="$TESTDIR/sb0" of="${U[1]}" bs=4096 seek=1 conv=notrunc,fsync status=none
	dd if="$TESTDIR/sb1" of="${U[1]}" bs=4096 seek=4095 conv=notrunc,fsync status=none
}

@test "corpus: unit length beyond the device" {
	mutate unit.length=1099511627776 "unit length"
}

@test "corpus: data offset beyond copy 1" {
	mutate unit.data_offset=15728640 "data offset"
}

@test "corpus: data size beyond copy 1" {
	mutate unit.data_size=33554432 "data"
}

@test "corpus: log area over copy 0" {
	mutate unit.log_offset=0 "log offset"
}

@test "corpus: log area overlapping the data" {
	mutate unit.log_size=4194304 "log size"
}

@test "corpus: events far ahead of the units its table lists" {
	mutate events=1000 "events"
}

@test "corpus: unit slot of another unit" {
	mutate unit.slot=2 "unit slot"
}

@test "corpus: unit slot out of range" {
	mutate unit.slot=77 "unit slot"
}

@test "corpus: n_devices" {
	mutate array.n_devices=4 "n_devices"
}

@test "corpus: a slot state contradicting the others" {
	mutate slot.0.state=faulty "slot 0"
}

@test "corpus: chunk size" {
	mutate array.chunk_size=131072 "chunks"
}

@test "corpus: level" {
	mutate array.level=7 "level"
}

@test "corpus: nblocks" {
	mutate array.nblocks=1099511627776 "nblocks"
}

@test "corpus: recovery offset beyond the data" {
	mutate slot.1.recovery_offset=1099511627776 "recovery offset"
}
