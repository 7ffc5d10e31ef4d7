#!/bin/sh
# Live-update downtime benchmark: XSLAB_BENCH_NODES nodes (default 1000), filled in
# directories of at most 1000 children by parallel clients; a client reading /tool back to
# back while `xenstore-control live-update` switches the stub domain from image A to B (or,
# with C xenstored in dom0, the daemon to a new process of the same binary: its own daemon
# live update; start it without -T, XSLAB_C_TRACE=0, for a fair figure). For the stub, its
# own timings (prepare, restore, first request after the jump) from its console. The store
# must be the same before and after (memreport's node count and bytes for the stub, and a
# checksum of `xenstore-ls -fp`, in part above 20000 nodes), and the reading client must see
# no error.
. /xslab/lib.sh
P=/xslab/xsprobe
N=${XSLAB_BENCH_NODES:-1000}
# Children per directory, and fill clients running at once (each one request at a time:
# Linux's xenbus device mixes up pipelined writes of one open file, not separate files).
CHUNK=1000
JOBS=8
# Above this many nodes the full `xenstore-ls -fp` (three requests per node) takes minutes
# under TCG; the check is then memreport's totals plus a listing of a few directories.
LS_MAX=20000
case "$N" in
'' | *[!0-9]*) fail "XSLAB_BENCH_NODES=$N: not a number" ;;
esac
[ "$N" -ge 1 ] || fail "XSLAB_BENCH_NODES=$N: at least 1"

# The figures, with `?` for what is not known (yet); a FAIL carries them before ` -- REASON`.
# The phases come from the new image's timeline line (TSC stamps of both images).
figures() {
    echo "nodes=$N state_bytes=${state_bytes:-?} prepare_us=${prepare_us:-?}" \
        "jump_copy_us=${copy_us:-?} boot_us=${boot_us:-?} restore_us=${restore_us:-?}" \
        "rings_us=${rings_us:-?} first_reply_us=${first_reply_us:-?}" \
        "downtime_us=${downtime_us:-?}" \
        "client_max_gap_us=${gap:-?} client_p99_gap_us=${p99:-?}" \
        "update_s=${update_s:-?} fill_s=${fill_s:-?}"
}
bad() { fail "$(figures) -- $*"; }

# `NODES BYTES` from memreport (or `none`); C xenstored's memreport is no such report: the
# node count from listing the store instead.
totals() {
    if [ "$XSLAB_STORE" = stub ]; then
        t=$(memreport_nodes)
        echo "${t:-none}"
    else
        c=$(timeout 600 xenstore-ls -f / 2>/dev/null | wc -l) || c=none
        echo "$((c + 1)) -"
    fi
}

# A checksum of what the store holds: the whole `xenstore-ls -fp` for a small store, else
# the listing of the first, middle and last directory and of everything outside /bench.
# Fails the scenario if a listing fails or takes too long.
store_sum() {
    : >/tmp/lb-ls
    if [ "$N" -le "$LS_MAX" ]; then
        timeout 900 xenstore-ls -fp / >>/tmp/lb-ls 2>&1 || bad "xenstore-ls -fp / failed ($1)"
    else
        last=$(((N - 1) / CHUNK))
        tops=$(timeout 10 xenstore-list /) || bad "xenstore-list / failed ($1)"
        for top in $tops; do
            [ "$top" = bench ] && continue
            timeout 60 xenstore-ls -fp "/$top" >>/tmp/lb-ls 2>&1 ||
                bad "xenstore-ls -fp /$top failed ($1)"
        done
        for k in 0 $((last / 2)) "$last"; do
            timeout 60 xenstore-ls -fp "/bench/c$k" >>/tmp/lb-ls 2>&1 ||
                bad "xenstore-ls -fp /bench/c$k failed ($1)"
        done
    fi
    SUM="$(wc -l </tmp/lb-ls) $(md5sum </tmp/lb-ls | cut -d' ' -f1)"
}

# Fill lane L: directories L, L + JOBS, ... (node i of directory k is /bench/c<k>/<i>).
lane() {
    k=$1
    while [ $((k * CHUNK)) -lt "$N" ]; do
        c=$((N - k * CHUNK))
        [ "$c" -gt "$CHUNK" ] && c=$CHUNK
        out=$(timeout 600 $P fill --prefix "/bench/c$k" --count "$c" --window 1 2>&1) ||
            { echo "/bench/c$k: $out" | head -n 3; return 1; }
        echo "$k $out"
        k=$((k + JOBS))
    done
}

if [ "$XSLAB_STORE" = stub ]; then
    runq xenstore-control version
    n=$(echo "$OUT" | sed -n 's/^live-updates \([0-9]*\)$/\1/p')
    [ -n "$n" ] || fail "version: $OUT"
    n=$((n + 1))
    echo "$OUT" | grep -q "+b build-id" && fail "image B already runs: $OUT"
    NEW=/xslab/xsstub-b
else
    # The daemon execs the binary it is given, keeping its command line.
    NEW=$XSLAB_XEN_BIN/xenstored
    [ -x "$NEW" ] || fail "no $NEW"
    pid0=$(cat /run/xenstored.pid 2>/dev/null)
fi

set -- $(totals)
nodes0=$1
[ "$nodes0" != none ] || fail "memreport has no nodes line"
f0=$(now)
pids=""
l=0
while [ "$l" -lt "$JOBS" ]; do
    lane "$l" >"/tmp/lb-fill$l" 2>&1 &
    pids="$pids $!"
    XSLAB_PIDS="$XSLAB_PIDS $!"
    l=$((l + 1))
done
failed=""
for p in $pids; do
    wait "$p" || failed=yes
done
fill_s=$(since "$f0")
[ -z "$failed" ] || fail "fill: $(cat /tmp/lb-fill* | head -c 300)"
set -- $(totals)
dirs=$(((N + CHUNK - 1) / CHUNK))
[ "$1" -eq $((nodes0 + N + dirs + 1)) ] ||
    fail "fill: memreport counts $1 nodes, expected $nodes0 + $N + $dirs directories + /bench"
log "filled $N nodes in $fill_s s; memreport: $(xenstore-control memreport | tr '\n' ' ')"
log "fill ms per directory, in order: $(cat /tmp/lb-fill* | sort -n | sed -n 's/.* ms=//p' | tr '\n' ' ')"

s0=$(now)
store_sum before
before="$(totals) $SUM"
log "store before: $before (checked in $(since "$s0") s)"

rm -f /tmp/stop
bg $P loop --path /tool --until-file /tmp/stop --duration-ms 900000 \
    >/tmp/lb-loop 2>/tmp/lb-loop.err
LOOP=$BG
sleep 1
t0=$(now)
T=600 runq xenstore-control live-update "$NEW"
update_s=$(since "$t0")
urc=$RC
uout="$HOW: $(echo "$OUT" | tr '\n' ' ')"
log "live-update took $update_s s ($uout)"
sleep 1
touch /tmp/stop
answers=yes
xenstore_answers || answers=no

if [ "$XSLAB_STORE" = stub ]; then
    # The stub's lines for update n: what was restored, and the timeline.
    timeout 30 xl dmesg >/tmp/lb-dmesg 2>&1
    rest=$(grep "xsstub: live update $n restored:" /tmp/lb-dmesg | tail -n 1)
    tl="$(grep "xsstub: live update $n timeline (us) old image:" /tmp/lb-dmesg | tail -n 1) $(grep "xsstub: live update $n timeline (us) new image:" /tmp/lb-dmesg | tail -n 1)"
    log "console: $rest | $tl"
    phase() { echo "$tl" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
    state_bytes=$(echo "$rest" | sed -n 's/.* from a \([0-9]*\)-byte state.*/\1/p')
    prepare_us=$(phase prepare)
    copy_us=$(($(phase jump) + $(phase copy) + $(phase entry)))
    boot_us=$(($(phase early-boot)))
    restore_us=$(phase restore)
    rings_us=$(phase rings-and-ports)
    first_reply_us=$(phase first-reply)
    downtime_us=$(phase downtime)
fi

# The loop ends within a reply's time limit (60 s) once /tmp/stop exists.
lrc=143
[ "$answers" = yes ] && { wait "$LOOP"; lrc=$?; }
loop=$(cat /tmp/lb-loop)
log "loop (exit $lrc): $loop $(head -c 300 /tmp/lb-loop.err)"
gap=$(echo "$loop" | sed -n 's/.*max_gap_us=\([0-9]*\).*/\1/p')
p99=$(echo "$loop" | sed -n 's/.*p99_gap_us=\([0-9]*\).*/\1/p')
errors=$(echo "$loop" | sed -n 's/.* errors=\([0-9]*\).*/\1/p')

if [ "$XSLAB_STORE" = stub ]; then
    panic=$(grep -A 1 "xsstub: PANIC\|FATAL" /tmp/lb-dmesg | tr '\n' ' ' | head -c 200)
    [ -z "$panic" ] || bad "the stub domain panicked: $panic"
fi
[ "$urc" -eq 0 ] || bad "live-update $uout"
[ "$answers" = yes ] || bad "xenstore does not answer after the update (a read of / timed out)"
# What still lets the store be checked is collected in WHY.
WHY=""
why() { WHY="${WHY:+$WHY; }$*"; }
[ -n "$loop" ] || why "the read loop printed nothing (exit $lrc): $(head -c 100 /tmp/lb-loop.err)"
if [ -n "$loop" ] && { [ "$lrc" -ne 0 ] || [ "$errors" != 0 ]; }; then
    why "the read loop saw $errors errors: $(head -n 1 /tmp/lb-loop.err | head -c 100)"
fi
if [ "$XSLAB_STORE" = stub ]; then
    [ -n "$state_bytes" ] && [ -n "$prepare_us" ] && [ -n "$restore_us" ] &&
        [ -n "$downtime_us" ] || why "the stub's console lines for update $n are missing"
    runq xenstore-control version
    echo "$OUT" | grep -q "+b build-id" || bad "image B is not running: $OUT"
    echo "$OUT" | grep -q "live-updates $n" || bad "version after: $OUT"
    log "after: $(xenstore-control memreport | tr '\n' ' ')"
else
    # The daemon's live update keeps its process (it execs itself): same pid, new program.
    pid1=$(cat /run/xenstored.pid 2>/dev/null)
    log "xenstored pid $pid0 before, $pid1 after"
fi
s1=$(now)
store_sum after
after="$(totals) $SUM"
log "store after: $after (checked in $(since "$s1") s)"
[ "$before" = "$after" ] || why "the store differs: before $before, after $after"
[ -z "$WHY" ] || bad "$WHY"

# Removing many nodes is slow; a big store stays (the lab powers off after the benchmark).
if [ "$N" -le 10000 ]; then
    c0=$(now)
    T=120 check cleanup xenstore-rm /bench
    log "removed /bench in $(since "$c0") s"
else
    log "/bench left in place: removing $N nodes takes minutes"
fi
pass "store=$XSLAB_STORE $(figures)"
