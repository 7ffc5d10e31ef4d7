#!/bin/sh
# A PV guest (type = "pv"; the other scenarios boot PVH): its ring page and event channel
# come to it in its start info rather than as HVM parameters, and xl save / xl restore of a
# PV guest hands xenstore a new ring page. Checked: it boots and reports through its xenbus,
# answers a ping (with the stub, also after two live updates), answers again after a save
# and restore (a new domid), powers off on xl shutdown -w (@releaseDomain fires, its home
# goes), and the store is as before.
. /xslab/lib.sh

SAVE=/tmp/guest-pv.save
XSLAB_ON_EXIT="rm -f $SAVE"
GUEST_CFG=/tmp/guest-pv.cfg
sed 's/^type = .*/type = "pv"/' /xslab/guest.cfg >"$GUEST_CFG"
grep -q '^type = "pv"' "$GUEST_CFG" || fail "cannot make $GUEST_CFG"
nodes0=$(node_count)
bg xenstore-watch @releaseDomain >/tmp/guest-pv-release 2>&1
wait_lines 20 /tmp/guest-pv-release 1 || fail "@releaseDomain: no initial event"

guest_start
expect_match pv-type '"type": "pv"' xl list -l "$DOMID"
guest_ping boot
first=$DOMID
live_update_there_and_back
if [ -n "$UPDATED" ]; then
    # The PV guest's connection was carried over.
    guest_ping updated
    UPDATED=" answered after two live updates;"
fi
guest_save_restore "$SAVE"
guest_ping restore
guest_shutdown /tmp/guest-pv-release
store_back "$nodes0"
pass "PV guest $first: booted, answered;$UPDATED saved and restored as $DOMID, answered;" \
    "shut down; nodes $nodes0 -> $NODES1"
