#!/bin/sh
# A PVH Linux guest reads and writes its xenstore home with the stock clients through
# Linux's xenbus driver; destroying it fires @releaseDomain and removes its nodes. With the
# stub, the guest also reads a node of dom0's that only a DOMID_ANY entry (r32757, Xen
# 4.22's) opens to it; C xenstored before 4.22 ignores such an entry, so there the guest
# must be refused.
. /xslab/lib.sh

nodes0=$(node_count)
mem0=$(memreport_nodes)
check any-node xenstore-write /xslab-any for-every-domain
runq xenstore-chmod /xslab-any n0 r32757
chmod_rc=$RC
log "xenstore-chmod /xslab-any n0 r32757: $HOW $OUT"
guest_start
log "guest $DOMID reported after $BOOT s"
expect_match xl-list-guest '^xslab-guest +[0-9]+ ' xl list
expect_eq guest-name xslab-guest xenstore-read "/local/domain/$DOMID/name"
expect_eq guest-probe hello xenstore-read "/local/domain/$DOMID/data/probe"
any=$(xenstore-read "/local/domain/$DOMID/data/any") || fail "no data/any from the guest"
if [ "$XSLAB_STORE" = stub ]; then
    [ "$chmod_rc" = 0 ] || fail "xenstore-chmod with DOMID_ANY failed"
    expect_match any-perms-list 'xslab-any = "for-every-domain".*n0,r32757' xenstore-ls -p /
    [ "$any" = for-every-domain ] || fail "the guest could not read /xslab-any through r32757: $any"
    log "ok the guest read /xslab-any through DOMID_ANY"
else
    case $any in
    error:*) log "ok C xenstored refused the guest /xslab-any (no DOMID_ANY before 4.22): $any" ;;
    *) fail "C xenstored let the guest read /xslab-any: $any" ;;
    esac
fi
check any-rm xenstore-rm /xslab-any

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
