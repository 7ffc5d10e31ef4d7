#!/bin/sh
# PV devices, the traffic a real host's xenstore carries most: a guest with a network
# interface (vif) and a disk (vbd). libxl writes each device's backend
# (/local/domain/0/backend/KIND/D/N) and frontend (/local/domain/D/device/KIND/N)
# directories with their cross-domain permissions and runs the hotplug script; Linux's
# backends (netback, blkback in dom0) and frontends (netfront, blkfront in the guest) walk
# the XenbusState handshake through watches on each other's nodes. Checked: both ends of
# both devices reach Connected (4); the guest lists the interface and reads the disk's
# first bytes (dom0 wrote them); xl network-detach and block-detach remove both directories
# (and the interface); xl network-attach brings a new interface up; destroying the guest
# leaves the store as it was. With the stub, the detaches and the attach come after two
# live updates. The hotplug scripts are the lab's own: the vif's only reports it ready
# (there is no bridge), the disk's puts the image on a loop device.
. /xslab/lib.sh

cat >/tmp/vif-null <<'SCRIPT'
#!/bin/sh
# The lab's vif hotplug script: no bridge to join; the backend may connect.
case $1 in
online | add) xenstore-write "$XENBUS_PATH/hotplug-status" connected ;;
esac
SCRIPT
cat >/tmp/block-loop <<'SCRIPT'
#!/bin/sh
# The lab's disk hotplug script: the image (params) on a loop device, whose numbers
# blkback opens.
case $1 in
add)
    dev=$(losetup -f) && losetup "$dev" "$(xenstore-read "$XENBUS_PATH/params")" || exit 1
    xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c %t:%T "$dev")" \
        "$XENBUS_PATH/physical-device-path" "$dev" "$XENBUS_PATH/hotplug-status" connected
    ;;
remove)
    dev=$(xenstore-read "$XENBUS_PATH/physical-device-path") && losetup -d "$dev"
    ;;
esac
SCRIPT
chmod 755 /tmp/vif-null /tmp/block-loop
DISK=/tmp/devices-disk.img
XSLAB_ON_EXIT="rm -f $DISK"
dd if=/dev/zero of="$DISK" bs=1M count=8 2>/dev/null || fail "cannot make $DISK"
printf 'xslab-disk-4242' | dd of="$DISK" conv=notrunc 2>/dev/null || fail "cannot write $DISK"
GUEST_CFG=/tmp/devices.cfg
{
    cat /xslab/guest.cfg
    echo "vif = [ 'script=/tmp/vif-null,mac=00:16:3e:5a:00:01' ]"
    echo "disk = [ 'format=raw,vdev=xvda,access=rw,backendtype=phy,script=/tmp/block-loop,target=$DISK' ]"
} >"$GUEST_CFG"
nodes0=$(node_count)

# connected KIND N: both ends of device KIND/N of guest DOMID reach XenbusState Connected
# (4) within 60 s, each naming the other.
connected() {
    fe=/local/domain/$DOMID/device/$1/$2
    be=/local/domain/0/backend/$1/$DOMID/$2
    wait_until 60 sh -c "[ \"\$(xenstore-read $be/state)\" = 4 ] &&
        [ \"\$(xenstore-read $fe/state)\" = 4 ]" ||
        fail "$1 $2 of guest $DOMID: backend state '$(xenstore-read "$be/state" 2>&1)'," \
            "frontend state '$(xenstore-read "$fe/state" 2>&1)', expected 4 and 4"
    expect_eq "$1-$2-backend-of-frontend" "$be" xenstore-read "$fe/backend"
    expect_eq "$1-$2-frontend-of-backend" "$fe" xenstore-read "$be/frontend"
    log "ok $1 $2 of guest $DOMID: backend and frontend connected"
}

# gone KIND N: both directories of device KIND/N are removed within 30 s.
gone() {
    wait_until 30 sh -c "! xenstore-exists /local/domain/$DOMID/device/$1/$2 &&
        ! xenstore-exists /local/domain/0/backend/$1/$DOMID/$2" ||
        fail "$1 $2 of guest $DOMID: a directory is still there after the detach"
    log "ok $1 $2 of guest $DOMID: both directories removed"
}

guest_start
connected vif 0
expect_eq vif-0-mac 00:16:3e:5a:00:01 xenstore-read "/local/domain/$DOMID/device/vif/0/mac"
guest_ping net 'eth0'
# The disk: xvda is device 51712.
connected vbd 51712
guest_ping disk 'xslab-disk-4242'
DISK_PONG=$PONG
# With the stub, two live updates with both devices connected: the detaches below rely on
# the watches of netback, blkback and the guest's frontends surviving them.
live_update_there_and_back
if [ -n "$UPDATED" ]; then
    guest_ping disk-updated 'xslab-disk-4242'
    UPDATED=" (two live updates in between)"
fi
T=60 check block-detach xl block-detach "$DOMID" xvda
gone vbd 51712
wait_until 30 sh -c "[ -z \"\$(losetup -a)\" ]" || fail "a loop device left: $(losetup -a)"

T=60 check network-detach xl network-detach "$DOMID" 0
gone vif 0
guest_ping net-detached
echo "$PONG" | grep -q eth0 && fail "after the detach the guest still has eth0: $PONG"

T=60 check network-attach xl network-attach "$DOMID" script=/tmp/vif-null mac=00:16:3e:5a:00:02
# libxl numbers the new device after the highest one there (none now).
runq xenstore-list "/local/domain/$DOMID/device/vif"
[ "$RC" -eq 0 ] && [ "$(echo "$OUT" | wc -l)" -eq 1 ] ||
    fail "after the attach, device/vif of guest $DOMID lists '$OUT' ($HOW), expected one device"
connected vif "$OUT"
guest_ping net-attached 'eth[0-9]'
expect_match network-list '00:16:3e:5a:00:02' xl network-list "$DOMID"

guest_stop
wait_until 30 sh -c "! xenstore-exists /local/domain/0/backend/vif/$DOMID" ||
    fail "/local/domain/0/backend/vif/$DOMID still there after xl destroy"
store_back "$nodes0"
pass "vif and vbd handshakes, detach and attach$UPDATED through netback/netfront and" \
    "blkback/blkfront;" \
    "guest $DOMID answered '$DISK_PONG' and '$PONG'; nodes $nodes0 -> $NODES1"
