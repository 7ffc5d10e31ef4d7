#!/bin/sh
# Heap growth (stub domain only): started with `--memory M --maxmem X` (XSLAB_STUB_MEMORY,
# default 8, and XSLAB_STUB_MAXMEM), the stub domain grows its heap on demand. dom0 writes
# N nodes (XSLAB_GROW_NODES, default 100000) of SIZE-byte values (XSLAB_GROW_VALUE, default
# 20) in directories of 1000 with parallel probe clients (one request in flight each), far
# more than M MiB hold; every write must succeed, the stub's console (`xl dmesg`) must show
# `heap grew by` lines and no PANIC, and memreport's heap (used + free) must exceed M MiB.
# Then a live update to image B with every node in place: the new image takes the grown RAM
# and the store is the same after (memreport's totals, and the listing of the first, middle
# and last directory and of everything outside /grow). Last, the nodes are removed: the
# node count is back and the heap in use falls back (one directory at a time, see below).
#
# It needs the maximum set for the stub domain's own boot, so run it as its own lab boot:
#   XSLAB_STUB_MAXMEM=64 cargo xtask lab grow
# Without XSLAB_STUB_MAXMEM, or with C xenstored, it is skipped (the suite boots it so).
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
[ -n "$XSLAB_STUB_MAXMEM" ] ||
    skip "needs XSLAB_STUB_MAXMEM (XSLAB_STUB_MAXMEM=64 cargo xtask lab grow)"
P=/xslab/xsprobe
[ -x "$P" ] || fail "no $P (cargo xtask build builds it)"
MEM=${XSLAB_STUB_MEMORY:-8}
N=${XSLAB_GROW_NODES:-100000}
CHUNK=1000
SIZE=${XSLAB_GROW_VALUE:-20}
JOBS=8
case "$N" in
'' | *[!0-9]*) fail "XSLAB_GROW_NODES=$N: not a number" ;;
esac
stub=$(cat /run/xslab-stub-domid 2>/dev/null)
[ -n "$stub" ] || fail "the stub domain's domid is unknown"

# `USED FREE` of the heap line of memreport.
heap_figures() {
    timeout "$T" xenstore-control memreport 2>/dev/null |
        sed -n 's/^heap: \([0-9]*\) bytes used, \([0-9]*\) bytes free.*/\1 \2/p'
}
# The stub's own lines in Xen's console.
stub_log() {
    timeout "$T" xl dmesg 2>/dev/null | grep "(d$stub) "
}

set -- $(heap_figures)
[ $# -eq 2 ] || fail "memreport has no heap line"
used0=$1 size0=$(($1 + $2))
set -- $(memreport_nodes)
[ $# -eq 2 ] || fail "memreport has no nodes line"
nodes0=$1
log "before: heap ${used0} used of ${size0}, ${nodes0} nodes"

f0=$(now)
dirs=$(((N + CHUNK - 1) / CHUNK))
# Lane l fills directories l, l + JOBS, ...
lane() {
    d=$1
    while [ "$d" -lt "$dirs" ]; do
        c=$((N - d * CHUNK))
        [ "$c" -gt "$CHUNK" ] && c=$CHUNK
        out=$(timeout 600 $P fill --prefix "/grow/c$d" --count "$c" --window 1 \
            --value-size "$SIZE" 2>&1) || { echo "fill /grow/c$d: $out" | head -n 3; return 1; }
        echo "$out" | grep -q "^created=$c " || { echo "fill /grow/c$d: $out"; return 1; }
        d=$((d + JOBS))
    done
}
pids=""
l=0
while [ "$l" -lt "$JOBS" ]; do
    lane "$l" >"/tmp/grow-fill$l" 2>&1 &
    pids="$pids $!"
    XSLAB_PIDS="$XSLAB_PIDS $!"
    l=$((l + 1))
done
for p in $pids; do wait "$p" || fail "$(cat /tmp/grow-fill* | head -c 400)"; done
k=$dirs
fill_s=$(since "$f0")
log "filled $N nodes in $fill_s s"

# Spot checks of the values, first and last.
dots=""
[ "$SIZE" -gt 2 ] && dots=$(printf "%$((SIZE - 2))s" "" | tr ' ' .)
expect_eq first-value "v0$dots" xenstore-read /grow/c0/0
last=$(((N - 1) % CHUNK))
lastv=$(printf "v%d%s" "$last" "$dots" | cut -c1-"$SIZE")
expect_eq last-value "$lastv" xenstore-read "/grow/c$(((N - 1) / CHUNK))/$last"

set -- $(memreport_nodes)
nodes1=$1
# N nodes, their directories and /grow.
[ "$nodes1" -eq $((nodes0 + N + k + 1)) ] ||
    fail "memreport counts $nodes1 nodes, expected $((nodes0 + N + k + 1))"
set -- $(heap_figures)
[ $# -eq 2 ] || fail "memreport has no heap line after the fill"
used1=$1 size1=$(($1 + $2))
[ "$size1" -gt $((MEM * 1024 * 1024)) ] ||
    fail "heap is $size1 bytes after $N nodes, not above $MEM MiB"
grew=$(stub_log | grep -c "xsstub: heap grew by")
[ "$grew" -ge 1 ] || fail "no 'heap grew by' line on the stub's console"
last_grow=$(stub_log | grep "xsstub: heap grew by" | tail -n 1 | sed 's/.*xsstub: //')
log "grown $grew times; last: $last_grow"
stub_log | grep -q "xsstub: PANIC" && fail "the stub panicked: $(stub_log | grep PANIC | head -n 2)"

# A live update with every node in place keeps the store and the grown RAM: the new image
# takes the memory as the old one left it.
# `NODES BYTES` and a checksum of the listing of the first, middle and last directory and of
# everything outside /grow.
store_sum() {
    : >/tmp/grow-ls
    for top in $(timeout 10 xenstore-list /); do
        [ "$top" = grow ] && continue
        timeout 60 xenstore-ls -fp "/$top" >>/tmp/grow-ls 2>&1 || fail "xenstore-ls -fp /$top failed"
    done
    for d in 0 $(((k - 1) / 2)) $((k - 1)); do
        timeout 120 xenstore-ls -fp "/grow/c$d" >>/tmp/grow-ls 2>&1 ||
            fail "xenstore-ls -fp /grow/c$d failed"
    done
    echo "$(memreport_nodes) $(md5sum </tmp/grow-ls | cut -d' ' -f1)"
}
lu=""
if [ -e /xslab/xsstub-b ]; then
    before=$(store_sum)
    u0=$(now)
    T=300 check live-update xenstore-control live-update /xslab/xsstub-b
    lu_s=$(since "$u0")
    expect_match lu-version '\+b build-id' xenstore-control version
    after=$(store_sum)
    [ "$before" = "$after" ] || fail "the store differs after the live update: $before / $after"
    set -- $(heap_figures)
    [ $# -eq 2 ] || fail "memreport has no heap line after the live update"
    size3=$(($1 + $2))
    [ "$size3" -gt $((MEM * 1024 * 1024)) ] ||
        fail "after the live update the heap is $size3 bytes: the grown RAM was lost"
    ram=$(stub_log | grep "RAM populated" | tail -n 1 | sed 's/.*RAM populated //')
    stub_log | grep "RAM populated" | tail -n 1 | grep -q "as the previous image left it" ||
        fail "the new image did not take the memory as the old one left it: $ram"
    stub_log | grep -q "xsstub: PANIC" && fail "the stub panicked: $(stub_log | grep PANIC | head -n 2)"
    tl=$(stub_log | grep "timeline (us) new image" | tail -n 1 | sed 's/.*downtime=\([0-9]*\).*/\1/')
    lu=" lu_s=$lu_s lu_downtime_us=$tl lu_heap_size=$size3 store=identical"
fi

# One directory at a time: xenstore-rm works in a transaction, and the engine's transactions
# cost O(n^2) time and copy every node they remove (30,000 at once took minutes and 30 MiB).
r0=$(now)
i=0
while [ "$i" -lt "$k" ]; do
    T=120 check "rm-c$i" xenstore-rm "/grow/c$i"
    i=$((i + 1))
done
check rm xenstore-rm /grow
rm_s=$(since "$r0")
set -- $(memreport_nodes)
[ "$1" -eq "$nodes0" ] || fail "memreport counts $1 nodes after the removal, $nodes0 before"
set -- $(heap_figures)
used2=$1 size2=$(($1 + $2))
# The removal must give back at least half of what the fill took.
[ $((used1 - used2)) -gt $(((used1 - used0) / 2)) ] ||
    fail "heap in use went $used0 -> $used1 -> $used2 bytes: the removal gave back too little"
stub_log | grep -q "xsstub: PANIC" && fail "the stub panicked: $(stub_log | grep PANIC | head -n 2)"

pass "nodes=$N fill_s=$fill_s rm_s=$rm_s grew=$grew heap_size=$size0->$size1->$size2" \
    "heap_used=$used0->$used1->$used2 last='$last_grow'$lu"
