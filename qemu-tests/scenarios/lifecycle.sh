#!/bin/sh
# What an administrator does to a running guest with the stock toolstack, each step checked
# through the guest's own xenbus connection (dom0 writes data/ping, the guest's watch copies
# it to data/pong):
# - xl pause / unpause: a ping written while it is paused is answered after;
# - xl save -c (a checkpoint): the guest suspends (control/shutdown, @releaseDomain for the
#   shutdown) and resumes in place (XS_RESUME), its connection intact;
# - xl save, then xl restore: the domain is gone with its home; the restored one has a new
#   domid, is introduced again, and its Linux reconnects and registers its watches again;
# - xl rename (the name node), xl mem-set (memory/target: the guest's balloon driver gives
#   the memory back, and takes it again);
# - xl migrate to this host (a new domid; the old domain and its home go);
# - xl reboot with on_reboot = "restart": xl's daemon creates the domain again, and the new
#   one reports as at boot;
# - xl shutdown -w: the guest's xenbus sees control/shutdown and powers off; @releaseDomain
#   fires and xl's own daemon destroys the domain, whose home goes.
# Then the store is back to its node count from before (memreport's is logged beside it).
. /xslab/lib.sh

SAVE=/tmp/lifecycle.save
XSLAB_ON_EXIT="rm -f $SAVE"
nodes0=$(node_count)
mem0=$(memreport_nodes)

# state: the guest's state column in xl list (r, b, p, s, ...).
state() {
    timeout "$T" xl list "$DOMID" 2>/dev/null | awk 'NR == 2 { print $5 }'
}

GUEST_CFG=/tmp/lifecycle.cfg
sed 's/^on_reboot = .*/on_reboot = "restart"/' /xslab/guest.cfg >"$GUEST_CFG"
grep -q '^on_reboot = "restart"' "$GUEST_CFG" || fail "cannot make $GUEST_CFG"
bg xenstore-watch @releaseDomain >/tmp/lifecycle-release 2>&1
wait_lines 20 /tmp/lifecycle-release 1 || fail "@releaseDomain: no initial event"
guest_start
guest_ping boot

check pause xl pause "$DOMID"
case $(state) in *p*) ;; *) fail "xl pause: state '$(state)', expected p" ;; esac
PINGS=$((PINGS + 1))
check ping-paused xenstore-write "/local/domain/$DOMID/data/ping" "paused-$PINGS"
sleep 2
[ "$(xenstore-read "/local/domain/$DOMID/data/pong")" != "paused-$PINGS" ] ||
    fail "a paused guest answered a ping"
check unpause xl unpause "$DOMID"
wait_until 60 sh -c "[ \"\$(xenstore-read /local/domain/$DOMID/data/pong)\" = 'paused-$PINGS' ]" ||
    fail "the unpaused guest did not answer the ping written while it was paused"
log "ok the ping written during the pause was answered after it"

r0=$(wc -l </tmp/lifecycle-release)
T=300 check save-checkpoint xl save -c "$DOMID" "$SAVE"
r1=$(wc -l </tmp/lifecycle-release)
[ "$r1" -gt "$r0" ] || fail "xl save -c: @releaseDomain did not fire for the suspend"
expect_match still-listed "^xslab-guest +$DOMID " xl list
guest_ping checkpoint
rm -f "$SAVE"

guest_save_restore "$SAVE"
guest_ping restore
log "ok restored as domain $DOMID (was $OLD)"
restored=$DOMID

check rename xl rename "$DOMID" xslab-renamed
expect_eq renamed xslab-renamed xenstore-read "/local/domain/$DOMID/name"
check rename-back xl rename "$DOMID" xslab-guest
expect_eq renamed-back xslab-guest xenstore-read "/local/domain/$DOMID/name"

# xl mem-set writes memory/target, which the guest's balloon driver watches.
check mem-set xl mem-set "$DOMID" 96m
expect_eq mem-target 98304 xenstore-read "/local/domain/$DOMID/memory/target"
wait_until 60 sh -c "[ \$(xl list $DOMID | awk 'NR == 2 { print \$3 }') -le 100 ]" ||
    fail "the guest did not balloon down to 96 MiB: $(xl list "$DOMID" | tail -n 1)"
log "ok the guest ballooned down: $(xl list "$DOMID" | tail -n 1)"
guest_ping ballooned
# Back to 128 MiB: a reboot keeps the new target, and 96 MiB is too little for this
# guest's boot (its initramfs holds the clients and their libraries).
check mem-set-back xl mem-set "$DOMID" 128m
expect_eq mem-target-back 131072 xenstore-read "/local/domain/$DOMID/memory/target"
wait_until 60 sh -c "[ \$(xl list $DOMID | awk 'NR == 2 { print \$3 }') -ge 124 ]" ||
    fail "the guest did not balloon back up to 128 MiB: $(xl list "$DOMID" | tail -n 1)"

# Local migration: an empty ssh command makes the host argument the receiving command.
old=$DOMID
T=300 check migrate xl migrate -s "" "$DOMID" "xl migrate-receive"
DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid after xl migrate: $DOMID"
[ "$DOMID" != "$old" ] || fail "xl migrate kept domid $old"
guest_gone "$old"
expect_eq migrated-name xslab-guest xenstore-read "/local/domain/$DOMID/name"
guest_ping migrate
migrated=$DOMID

# xl reboot (on_reboot = "restart"): the guest reboots through control/shutdown; xl's
# daemon destroys the domain and creates it again, and the new one reports as at boot.
old=$DOMID
check reboot xl reboot "$DOMID"
wait_until 120 sh -c "d=\$(xl domid xslab-guest) && [ \"\$d\" != $old ] &&
    xenstore-exists /local/domain/\$d/data/result" ||
    fail "no rebooted guest reported within 120 s: $(xl list 2>&1 | tail -n 2)"
DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid after xl reboot: $DOMID"
guest_gone "$old"
expect_eq rebooted-result "name=xslab-guest probe=hello" \
    xenstore-read "/local/domain/$DOMID/data/result"
guest_ping reboot

guest_shutdown /tmp/lifecycle-release
log "ok xl shutdown: the guest powered off, xl destroyed it ($RELEASED @releaseDomain events)"

mem1=$(memreport_nodes)
log "memreport: '$mem0' -> '$mem1'"
store_back "$nodes0"
pass "pause, save -c, save and restore (-> domain $restored), rename, mem-set," \
    "migrate (-> $migrated), reboot (-> $DOMID), shutdown;" \
    "$PINGS pings answered; nodes $nodes0 -> $NODES1"
