#!/bin/sh
# Heap growth (stub domain only): started with `--memory M --maxmem X` (XSLAB_STUB_MEMORY,
# default 8, and XSLAB_STUB_MAXMEM), the stub domain grows its heap on demand. dom0 writes
# N nodes (XSLAB_GROW_NODES, default 30000) of 200-byte values in directories of 1000 with
# the probe client (one request in flight), far more than M MiB hold; every write must
# succeed, the stub's console (`xl dmesg`) must show `heap grew by` lines and no PANIC, and
# memreport's heap (used + free) must exceed M MiB. Then the nodes are removed: the node
# count is back and the heap in use falls back (one directory at a time, see below). Last,
# a live update to image B (when the lab has it): the new image must find the grown RAM
# populated and keep it in its heap.
#
# It needs the maximum set for the stub domain's own boot, so run it as its own lab boot:
#   XSLAB_STUB_MAXMEM=64 cargo xtask lab grow
# Without XSLAB_STUB_MAXMEM, or with C xenstored, it passes as skipped.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || { pass "skipped: stub domain only"; exit 0; }
[ -n "$XSLAB_STUB_MAXMEM" ] ||
    { pass "skipped: needs XSLAB_STUB_MAXMEM (XSLAB_STUB_MAXMEM=64 cargo xtask lab grow)"; exit 0; }
P=/xslab/xsprobe
[ -x "$P" ] || fail "no $P (cargo xtask build builds it)"
MEM=${XSLAB_STUB_MEMORY:-8}
N=${XSLAB_GROW_NODES:-30000}
CHUNK=1000
SIZE=200
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
k=0
while [ $((k * CHUNK)) -lt "$N" ]; do
    c=$((N - k * CHUNK))
    [ "$c" -gt "$CHUNK" ] && c=$CHUNK
    out=$(timeout 300 $P fill --prefix "/grow/c$k" --count "$c" --window 1 --value-size "$SIZE" 2>&1) ||
        fail "fill /grow/c$k (after $((k * CHUNK)) nodes): $(echo "$out" | head -n 3)"
    echo "$out" | grep -q "^created=$c " || fail "fill /grow/c$k: $out"
    k=$((k + 1))
done
fill_s=$(since "$f0")
log "filled $N nodes in $fill_s s"

# Spot checks of the values, first and last.
dots=$(printf "%$((SIZE - 2))s" "" | tr ' ' .)
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
# The values alone were 6 MB; the removal must give back at least half of what the fill took.
[ $((used1 - used2)) -gt $(((used1 - used0) / 2)) ] ||
    fail "heap in use went $used0 -> $used1 -> $used2 bytes: the removal gave back too little"
stub_log | grep -q "xsstub: PANIC" && fail "the stub panicked: $(stub_log | grep PANIC | head -n 2)"

# A live update keeps the grown RAM: the new image counts it as populated and takes it.
lu=""
if [ -e /xslab/xsstub-b ]; then
    T=120 check live-update xenstore-control live-update /xslab/xsstub-b
    expect_match lu-version '\+b build-id' xenstore-control version
    set -- $(heap_figures)
    [ $# -eq 2 ] || fail "memreport has no heap line after the live update"
    size3=$(($1 + $2))
    [ "$size3" -gt $((MEM * 1024 * 1024)) ] ||
        fail "after the live update the heap is $size3 bytes: the grown RAM was lost"
    # The new image takes the memory as the old one left it (grown RAM included).
    ram=$(stub_log | grep "RAM populated" | tail -n 1 | sed 's/.*RAM populated //')
    stub_log | grep "RAM populated" | tail -n 1 | grep -q "as the previous image left it" ||
        fail "the new image did not take the memory as the old one left it: $ram"
    check lu-write xenstore-write /grow-lu ok
    expect_eq lu-read ok xenstore-read /grow-lu
    check lu-rm xenstore-rm /grow-lu
    lu=" lu_heap_size=$size3 lu_ram='${ram%%,*}'"
fi
pass "nodes=$N fill_s=$fill_s rm_s=$rm_s grew=$grew heap_size=$size0->$size1->$size2" \
    "heap_used=$used0->$used1->$used2 last='$last_grow'$lu"
