#!/bin/sh
# The packaged start path: /init wrote /etc/default/xencommons (XENSTORETYPE=domain, our image)
# and ran the version's /etc/xen/scripts/launch-xenstore. The script must have started the
# stub domain through init-xenstore-domain without stalling, left the state a host sees (xl
# list, /tool/xenstored/domid, the pid file), refuse to start a second one, and guests work.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
[ "$XSLAB_START" = launch ] || skip "this boot started the stub domain directly (--start direct)"

check xencommons-type grep -qx "XENSTORETYPE=domain" /etc/default/xencommons
check xencommons-kernel grep -qx "XENSTORE_DOMAIN_KERNEL=/xslab/xsstub" /etc/default/xencommons
log "launch-xenstore printed: $(tr '\n' ' ' </var/log/xen/launch-xenstore.out)"
grep -q "Starting /xslab/xsstub" /var/log/xen/launch-xenstore.out ||
    fail "launch-xenstore did not start our image: $(cat /var/log/xen/launch-xenstore.out)"
secs=$(cat /run/xslab-start-secs)
# 4.20's init-xenstore-domain waits (up to 60 + 10 s) for xen-9pfsd and its backend.
awk -v s="$secs" 'BEGIN { exit !(s < 30) }' || fail "launch-xenstore took $secs s (a stall)"

stub=$(stub_domid)
[ -n "$stub" ] || fail "no /tool/xenstored/domid"
expect_match xl-list "^Xenstore +$stub " xl list
expect_eq tool-domid "$stub" xenstore-read /tool/xenstored/domid
expect_eq pid-file "domid:$stub" cat /var/run/xen/xenstored.pid
expect_eq stub-name Xenstore xenstore-read "/local/domain/$stub/name"
expect_eq stub-target "$((${XSLAB_STUB_MEMORY:-8} * 1024))" \
    xenstore-read "/local/domain/$stub/memory/target"
# The stub's PV console, as the tool set it up for xenconsoled.
check console-port xenstore-read "/local/domain/$stub/console/port"
nine=""
if [ "$XSLAB_XEN" != 4.17 ]; then
    # 4.19+ also gives the xenstore domain a 9pfs device served by xen-9pfsd in dom0 (for
    # C xenstored's logs); nothing waits for its frontend, but its backend must be up.
    be=/local/domain/0/backend/xen_9pfs/$stub/0
    expect_eq 9pfs-backend-state 2 xenstore-read "$be/state"
    expect_eq 9pfs-frontend-id "$stub" xenstore-read "$be/frontend-id"
    expect_eq 9pfs-daemon running xenstore-read /local/domain/0/libxl/xen-9pfs/state
    nine=" 9pfs-backend=InitWait"
fi

# A second start is a no-op (the pid file says xenstore runs), as on a host's reboot of the
# service: still one xenstore domain, still answering.
check relaunch /etc/xen/scripts/launch-xenstore
n=$(xl list | grep -c '^Xenstore ')
[ "$n" -eq 1 ] || fail "$n xenstore domains after a second launch-xenstore"
expect_eq still-domid "$stub" xenstore-read /tool/xenstored/domid

guest_start
log "guest $DOMID reported after $BOOT s"
guest_stop
pass "domid=$stub start=${secs}s$nine guest=$DOMID"
