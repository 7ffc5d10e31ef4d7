#!/bin/sh
# The demo: what dom0 sees with the daemon in place, and a guest coming and going.
. /xslab/lib.sh

say() { echo "XSLAB-DEMO $*"; }
show() {
    say "\$ $*"
    timeout "$T" "$@" 2>&1 | head -n 40 | sed 's/^/XSLAB-DEMO   /'
}

show xl list
show xenstore-ls -f /local/domain/0
[ "$XSLAB_STORE" = stub ] && show xenstore-read /tool/xenstored/domid
say "starting a PVH Linux guest"
guest_start
say "the guest reported after $BOOT s"
show xl list
show xenstore-read "/local/domain/$DOMID/name"
show xenstore-read "/local/domain/$DOMID/data/result"
show xenstore-ls -f "/local/domain/$DOMID"
guest_stop
say "guest destroyed; its home is gone"
show xl list
show xenstore-control memreport
if [ "$XSLAB_STORE" = stub ]; then
    say "live update into image B, in memory, while serving"
    show xenstore-control version
    show xenstore-control live-update /xslab/xsstub-b
    show xenstore-control version
    show sh -c "xl dmesg | grep -a 'xsstub: \(live update\|first request\)' | tail -n 3"
    show xenstore-ls -f /local/domain/0
fi
pass
