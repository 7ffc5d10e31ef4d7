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
UPDATED=""
if [ "$XSLAB_STORE" = stub ] && [ -e /xslab/xsstub-b ]; then
    # A live update (to image B and back) carries the PV guest's connection.
    T=120 check live-update-b xenstore-control live-update /xslab/xsstub-b
    T=120 check live-update-a xenstore-control live-update /xslab/xsstub
    guest_ping updated
    UPDATED=" answered after two live updates;"
fi

T=300 check save xl save "$DOMID" "$SAVE"
wait_until 30 sh -c "! xenstore-exists /local/domain/$first" ||
    fail "xl save: /local/domain/$first still there"
T=300 check restore xl restore "$SAVE"
rm -f "$SAVE"
DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid after xl restore: $DOMID"
[ "$DOMID" != "$first" ] || fail "xl restore kept domid $first"
guest_ping restore

r0=$(wc -l </tmp/guest-pv-release)
T=120 check shutdown xl shutdown -w "$DOMID"
wait_until 60 sh -c "! xl list $DOMID" || fail "after xl shutdown -w, domain $DOMID still there"
wait_until 30 sh -c "! xenstore-exists /local/domain/$DOMID" ||
    fail "after xl shutdown, /local/domain/$DOMID still there"
r1=$(wc -l </tmp/guest-pv-release)
[ "$r1" -gt "$r0" ] || fail "xl shutdown: @releaseDomain did not fire"
nodes1=$(node_count)
[ "$nodes1" -le $((nodes0 + 5)) ] || fail "store grew from $nodes0 to $nodes1 nodes"
pass "PV guest $first: booted, answered;$UPDATED saved and restored as $DOMID, answered;" \
    "shut down; nodes $nodes0 -> $nodes1"
