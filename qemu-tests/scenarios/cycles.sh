#!/bin/sh
# Ten create/destroy cycles of the guest: every one must connect, and the store (node count
# and, with our daemon, memreport) must not grow between the first and the last.
. /xslab/lib.sh

CYCLES=${XSLAB_CYCLES:-10}
guest_start
guest_stop
nodes0=$(node_count)
mem0=$(memreport_nodes)
heap0=$(xenstore-control memreport 2>/dev/null | sed -n 's/^heap: \([0-9]*\) bytes used.*/\1/p')
runq xenstore-control memreport
log "memreport before (exit $RC): $OUT"
[ "$RC" -eq 0 ] || fail "xenstore-control memreport exit $RC: $OUT"
i=1
while [ $i -le "$CYCLES" ]; do
    guest_start
    guest_stop
    log "cycle $i: domid $DOMID, reported after $BOOT s"
    i=$((i + 1))
done
nodes1=$(node_count)
mem1=$(memreport_nodes)
heap1=$(xenstore-control memreport 2>/dev/null | sed -n 's/^heap: \([0-9]*\) bytes used.*/\1/p')
if [ -n "$heap0" ]; then
    # The stub domain's allocator: flat but for allocator slack (one guest's worth is ~3 KiB).
    [ "$heap1" -le $((heap0 + 8192)) ] || fail "heap use grew over $CYCLES cycles: $heap0 -> $heap1"
fi
runq xenstore-control memreport
log "memreport after (exit $RC): $OUT"
[ "$RC" -eq 0 ] || fail "xenstore-control memreport exit $RC: $OUT"
[ "$nodes1" -eq "$nodes0" ] || fail "store went from $nodes0 to $nodes1 nodes over $CYCLES cycles"
if [ -n "$mem0" ]; then
    set -- $mem0
    n0=$1 b0=$2
    set -- $mem1
    n1=$1 b1=$2
    [ "$n1" -le "$n0" ] || fail "memreport nodes grew: $mem0 -> $mem1"
    [ "$b1" -le $((b0 + 512)) ] || fail "memreport bytes grew: $mem0 -> $mem1"
fi
pass "cycles=$CYCLES nodes=$nodes0->$nodes1 memreport='$mem0'->'$mem1' heap=${heap0:-n/a}->${heap1:-n/a} retries=${RETRIES:-0}"
