#!/usr/bin/env bats
# raid5 writes gathered into whole stripes (issue 11, point 3): a stream of
# 1 MiB writes on a 4-unit, 512K-chunk raid5 (1.5 MiB stripes) is written as
# whole stripes with parity from the new data alone; acknowledged writes
# survive kill -9; many writers racing on the same stripes keep their data.

load helpers

setup() {
	fuse_setup fio
}

teardown() {
	reap_bgpids
	scratch_teardown
}

BGPIDS=()

# start_raid5: 4 units of 64M, chunk 512K, zeroed (no initial sync: the
# counters are the test's own writes). A long gathering window, so that a
# loaded machine cannot make a stripe's parts miss it: what is tested is
# that parts that meet are written whole.
start_raid5() {
	RAIDTOOL_STRIPE_WAIT_US=1000000 start_zeroed 5 4 64M --chunk 512K
}

# counters: "full merged rmw rcw engine_read_bytes unit_read_bytes"
counters() {
	raidtool status --json "$NAME" | jq -r '[.stats.stripes.full, .stats.stripes.merged,
		.stats.stripes.read_modify_write, .stats.stripes.reconstruct_write,
		.stats.read_bytes, ([.units[].stats.read_bytes] | add)] | @tsv'
}

# served: "writes worker_requests transport" (the array's writes; the FUSE
# requests of the rings that a worker served)
served() {
	raidtool status --json "$NAME" | jq -r '[.stats.writes, .fuse.worker_requests,
		.fuse.transport] | @tsv'
}

# stream_write OFFSET SIZE [fio options...]: 1 MiB sequential writes at QD16
# with verify headers (checked later with stream_verify).
stream_write() {
	local off=$1 size=$2
	shift 2
	fio --name=stream --filename="$DEV" --direct=1 --ioengine=io_uring --rw=write \
		--bs=1M --iodepth=16 --offset="$off" --size="$size" --verify=crc32c \
		--do_verify=0 --verify_state_save=0 --output-format=terse --terse-version=3 "$@"
}

stream_verify() {
	fio --name=stream --filename="$DEV" --direct=1 --ioengine=io_uring --rw=write \
		--bs=1M --iodepth=16 --offset="$1" --size="$2" --verify=crc32c --verify_only \
		--verify_fatal=1 --verify_state_save=0 --output-format=terse --terse-version=3
}

@test "raid5 stream of 1M writes at QD16: whole stripes from several requests, no unit reads" {
	start_raid5
	read -r full0 merged0 rmw0 rcw0 er0 ur0 <<<"$(counters)"
	read -r w0 k0 _ <<<"$(served)"
	# 48 MiB: 32 stripes of 1.5 MiB.
	run stream_write 0 48M
	assert_success
	read -r full1 merged1 rmw1 rcw1 er1 ur1 <<<"$(counters)"
	read -r w1 k1 transport <<<"$(served)"
	echo "full $full0->$full1 merged $merged0->$merged1 rmw $rmw0->$rmw1 rcw $rcw0->$rcw1" \
		"engine read bytes $er0->$er1 unit read bytes $ur0->$ur1" \
		"writes $((w1 - w0)), $((k1 - k0)) of them on workers ($transport)"
	[ $((full1 - full0)) -eq 32 ]
	# The loop device cuts a 1 MiB write into pieces: every stripe is made whole from several.
	[ $((merged1 - merged0)) -eq 32 ]
	[ $((rmw1 - rmw0)) -eq 0 ]
	[ $((rcw1 - rcw0)) -eq 0 ]
	# Over io_uring the holders hold their stripes on the queues' rings: a
	# request takes a worker only when its holder gave up or found the
	# holders' share of the engine's contexts taken (3-16 of 48-54 seen;
	# before, every 1 MiB write did).
	if [ "$transport" = io_uring ]; then
		[ $((3 * (k1 - k0))) -lt $((2 * (w1 - w0))) ]
	fi
	# The units were read no more than the array was (other commands scanning
	# block devices read its superblock area): the writes read nothing.
	[ $((ur1 - ur0)) -le $((er1 - er0)) ]
	run stream_verify 0 48M
	assert_success
	check_clean
	deactivate_settled "$NAME"
}

@test "raid5 kill -9 during a gathered stream: everything acknowledged by its flush survives" {
	start_raid5
	# Written whole, acknowledged and flushed (fio's closing fsync).
	run stream_write 0 24M --end_fsync=1
	assert_success
	read -r full merged rmw rcw _ <<<"$(counters)"
	echo "full $full merged $merged rmw $rmw rcw $rcw"
	[ "$full" -eq 16 ]
	[ "$merged" -eq 16 ]
	# A second stream, killed in the middle of its gathered stripes.
	fio --name=more --filename="$DEV" --direct=1 --ioengine=io_uring --rw=write --bs=1M \
		--iodepth=16 --offset=24M --size=36M --time_based --runtime=60 \
		--output-format=terse >/dev/null 2>&1 &
	BGPIDS+=("$!")
	for _ in $(seq 200); do
		read -r _ merged _ <<<"$(counters)"
		[ "$merged" -ge 24 ] && break
		sleep 0.05
	done
	[ "$merged" -ge 24 ]
	kill_engine
	reap_bgpids
	run raidtool deactivate "$NAME"
	assert_success
	run raidtool activate "$NAME"
	assert_success
	run stream_verify 0 24M
	assert_success
	# The unclean stop's resync makes the parity of the interrupted stripes agree.
	run raidtool wait "$NAME"
	assert_success
	check_clean
	deactivate_settled "$NAME"
}

@test "raid5 fio verify, jobs racing on the same stripes, gathered into whole ones" {
	start_raid5
	# Job j writes 256K at 64M + j * 256K + k * 1M: each 1.5 MiB stripe holds
	# parts of every job, in flight at once; a stripe is whole only once the
	# jobs' parts meet, so the waits keep the jobs in step. 4 x 2 requests in
	# flight: fewer than the engine's 16 FUSE workers, so a stripe's parts
	# are never kept out by writers waiting on each other (with more,
	# holders see it and write alone, see raid5_gather).
	run fio --filename="$DEV" --direct=1 --ioengine=io_uring --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --verify_state_save=0 --group_reporting --output-format=terse \
		--terse-version=3 \
		--name=stride --rw=write --bs=256k --iodepth=2 --numjobs=4 --offset=64M \
		--offset_increment=256k --zonemode=strided --zonesize=256k --zoneskip=768k --size=24M
	assert_success
	read -r full merged rmw rcw _ <<<"$(counters)"
	echo "full $full merged $merged rmw $rmw rcw $rcw"
	# The strides cover 63 stripes whole (and the first and the last in
	# part): most are gathered, not a few by luck.
	[ "$merged" -ge 32 ]
	check_clean
	deactivate_settled "$NAME"
}

@test "raid5 fio verify, more writers than FUSE workers on the same stripes, random writers beside" {
	start_raid5
	read -r w0 k0 _ <<<"$(served)"
	# The strides above at QD8 (32 in flight, twice the workers) and a random
	# writer of 4K-1M below 16M: holders find every worker waiting and write
	# their parts alone, or gather what is there; every byte verifies, and
	# the parity agrees.
	run fio --filename="$DEV" --direct=1 --ioengine=io_uring --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --verify_state_save=0 --group_reporting --output-format=terse \
		--terse-version=3 \
		--name=stride --rw=write --bs=256k --iodepth=8 --numjobs=4 --offset=64M \
		--offset_increment=256k --zonemode=strided --zonesize=256k --zoneskip=768k --size=24M \
		--name=random --rw=randwrite --bsrange=4k-1m --iodepth=8 --numjobs=1 --offset=0 \
		--size=16M
	assert_success
	read -r full merged rmw rcw _ <<<"$(counters)"
	read -r w1 k1 transport <<<"$(served)"
	echo "full $full merged $merged rmw $rmw rcw $rcw" \
		"writes $((w1 - w0)), $((k1 - k0)) of them on workers ($transport)"
	# Over io_uring a 256K write that finds its stripe held waits queued on
	# it, offering its part, and one that finds it free holds it on the
	# ring; one whose holding gave up without waiting is written in
	# rounds there. Only writes whose holders waited in vain, or that
	# found the holders' 12 buffers or the engine's 64 lock sets out, take
	# a worker: 17-26 of 448 here. Before session 13, 70-200 and, in runs
	# where the jobs drifted apart and gathering gave up, 429-447.
	if [ "$transport" = io_uring ]; then
		[ $((3 * (k1 - k0))) -lt $((2 * (w1 - w0))) ]
	fi
	check_clean
	deactivate_settled "$NAME"
}

@test "RAIDTOOL_STRIPE_WAIT_US that is not a number of microseconds: activate refuses, naming it" {
	local u
	for u in 0 1 2; do
		make_image "u$u.img" 32M >/dev/null
	done
	run raidtool create "$NAME" --level 5 --assume-clean "$TESTDIR"/u{0,1,2}.img
	assert_success
	RAIDTOOL_STRIPE_WAIT_US=soon run raidtool activate "$NAME"
	assert_failure
	assert_output --partial "RAIDTOOL_STRIPE_WAIT_US 'soon'"
	[ ! -e "/dev/raidtool/$NAME" ]
}
