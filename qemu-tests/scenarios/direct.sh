#!/bin/sh
# The direct start path (cargo xtask lab --start direct): /init ran init-xenstore-domain by
# hand with no xencommons. The stub domain runs, the toolstack's state names it, guests work.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
[ "$XSLAB_START" = direct ] || skip "needs the direct start path (--start direct)"

[ -e /etc/default/xencommons ] && fail "/etc/default/xencommons exists on the direct path"
[ -e /var/log/xen/launch-xenstore.out ] && fail "launch-xenstore ran on the direct path"
stub=$(stub_domid)
[ -n "$stub" ] || fail "no /tool/xenstored/domid"
expect_match xl-list "^Xenstore +$stub " xl list
expect_eq pid-file "domid:$stub" cat /var/run/xen/xenstored.pid
expect_eq stub-name Xenstore xenstore-read "/local/domain/$stub/name"
expect_match tool-output "." cat /var/log/xen/init-xenstore-domain.out
guest_start
log "guest $DOMID reported after $BOOT s"
guest_stop
pass "domid=$stub start=$(cat /run/xslab-start-secs)s guest=$DOMID"
