#!/bin/sh
# What an administrator does to a running guest with the stock toolstack, each step checked
# through the guest's own xenbus connection (dom0 writes data/ping, the guest's watch copies
# it to data/pong):
# - xl pause / unpause: a ping written while it is paused is answered after;
# - xl save -c (a checkpoint): the guest suspends (control/shutdown, @releaseDomain for the
#   shutdown) and resumes in place (XS_RESUME), its connection intact;
# - xl save, then xl restore: the domain is gone with its home; the restored one has a new
#   domid, is introduced again, and its Linux reconnects and registers its watches again;
# - xl shutdown -w: the guest's xenbus sees control/shutdown and powers off; @releaseDomain
#   fires and xl's own daemon destroys the domain, whose home goes.
# Then the store is back to its node count (and, with our daemon, memreport) from before.
. /xslab/lib.sh

SAVE=/tmp/lifecycle.save
XSLAB_ON_EXIT="rm -f $SAVE"
nodes0=$(node_count)
mem0=$(memreport_nodes)

# state: the guest's state column in xl list (r, b, p, s, ...).
state() {
    timeout "$T" xl list "$DOMID" 2>/dev/null | awk 'NR == 2 { print $5 }'
}

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

old=$DOMID
T=300 check save xl save "$DOMID" "$SAVE"
wait_until 30 sh -c "! xl list $old" || fail "xl save: domain $old still there"
wait_until 30 sh -c "! xenstore-exists /local/domain/$old" ||
    fail "xl save: /local/domain/$old still there"
T=300 check restore xl restore "$SAVE"
rm -f "$SAVE"
DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid after xl restore: $DOMID"
[ "$DOMID" != "$old" ] || fail "xl restore kept domid $old"
expect_eq restored-name xslab-guest xenstore-read "/local/domain/$DOMID/name"
guest_ping restore
log "ok restored as domain $DOMID (was $old)"

r0=$(wc -l </tmp/lifecycle-release)
T=120 check shutdown xl shutdown -w "$DOMID"
wait_until 60 sh -c "! xl list $DOMID" ||
    fail "after xl shutdown -w, domain $DOMID still there: $(xl list "$DOMID" 2>&1 | tail -n 1)"
wait_until 30 sh -c "! xenstore-exists /local/domain/$DOMID" ||
    fail "after xl shutdown, /local/domain/$DOMID still there"
r1=$(wc -l </tmp/lifecycle-release)
[ "$r1" -gt "$r0" ] || fail "xl shutdown: @releaseDomain did not fire"
log "ok xl shutdown: the guest powered off, xl destroyed it ($((r1 - r0)) @releaseDomain events)"

nodes1=$(node_count)
mem1=$(memreport_nodes)
log "nodes in the store: $nodes0 before, $nodes1 after; memreport: '$mem0' -> '$mem1'"
# The first guest may leave parents such as /local/domain/0/backend behind: a little slack.
[ "$nodes1" -le $((nodes0 + 5)) ] || fail "store grew from $nodes0 to $nodes1 nodes"
pass "pause, save -c, save and restore (domain $old -> $DOMID), shutdown;" \
    "$PINGS pings answered; nodes $nodes0 -> $nodes1"
