#!/bin/sh
# A PVH Linux guest reads and writes its xenstore home with the stock clients through
# Linux's xenbus driver; destroying it fires @releaseDomain and removes its nodes.
. /xslab/lib.sh

nodes0=$(node_count)
mem0=$(memreport_nodes)
guest_start
log "guest $DOMID reported after $BOOT s"
expect_match xl-list-guest '^xslab-guest +[0-9]+ ' xl list
expect_eq guest-name xslab-guest xenstore-read "/local/domain/$DOMID/name"
expect_eq guest-probe hello xenstore-read "/local/domain/$DOMID/data/probe"

bg xenstore-watch -n 2 @releaseDomain >/tmp/guest-release 2>&1
wait_lines 20 /tmp/guest-release 1 || fail "@releaseDomain: no initial event"
guest_stop
wait_lines 30 /tmp/guest-release 2 ||
    fail "@releaseDomain did not fire on xl destroy: $(cat /tmp/guest-release)"
log "ok @releaseDomain fired"
check_fails guest-home-gone xenstore-exists "/local/domain/$DOMID"

mem1=$(memreport_nodes)
log "memreport: '$mem0' -> '$mem1'"
store_back "$nodes0"
if [ -n "$mem0" ]; then
    set -- $mem0
    n0=$1
    set -- $mem1
    [ "$1" -le $((n0 + 5)) ] || fail "memreport nodes grew: $mem0 -> $mem1"
fi
pass "domid=$DOMID boot=${BOOT}s nodes=$nodes0->$NODES1 retries=${RETRIES:-0}"
