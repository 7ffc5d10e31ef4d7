#!/bin/sh
# Zero lost acknowledged writes under load: a dom0 client writes distinct nodes one at a
# time and logs each acknowledged write, a guest does the same under its home, a dom0
# watcher records events; two live updates happen during the load. Afterwards every
# acknowledged write reads back, no client saw an error or a dropped connection, and the
# watcher has an event for every write made after it registered.
. /xslab/lib.sh
[ "$XSLAB_STORE" = stub ] || skip "stub domain only"
P=/xslab/xsprobe
GUEST_CFG=/xslab/guest-load.cfg
sed 's/^cmdline = "\(.*\)"/cmdline = "\1 xslab=load"/' /xslab/guest.cfg > "$GUEST_CFG"
grep -q "xslab=load" "$GUEST_CFG" || fail "cannot make the load guest's config"

T=60 check xl-create xl create "$GUEST_CFG"
DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid: $DOMID"
G=/local/domain/$DOMID/data
# The guest writes node i at $G/load/<i / 100>/<i> (guest/init.sh's load mode).
wait_until 300 xenstore-exists "$G/load/0/0" || fail "the guest does not write (no $G/load/0/0)"
rm -f /tmp/ll-stop /tmp/ll-dom0.log /tmp/ll-w0 /tmp/ll-wg
bg $P watch --path /load --token l0 --count 100000000 --out /tmp/ll-w0 --timeout-s 900 \
    --until-file /tmp/ll-stop
W0=$BG
bg $P watch --path "$G/load" --token lg --count 100000000 --out /tmp/ll-wg --timeout-s 900 \
    --until-file /tmp/ll-stop
WG=$BG
wait_lines 20 /tmp/ll-w0 1 || fail "dom0 watch: no initial event"
wait_lines 20 /tmp/ll-wg 1 || fail "guest watch: no initial event"
# Writes made from here on must all be seen by the watchers.
gall=$(timeout 10 xenstore-ls -f "$G/load" | wc -l)
gdirs=$(timeout 10 xenstore-list "$G/load" | wc -l)
gfirst=$((gall - gdirs + 1))
bg $P write-loop --prefix /load/d --until-file /tmp/ll-stop --log /tmp/ll-dom0.log \
    >/tmp/ll-dom0.out 2>/tmp/ll-dom0.err
LOOP=$BG
sleep 3
for img in xsstub-b xsstub; do
    t0=$(now)
    T=120 check "update-$img" xenstore-control live-update "/xslab/$img"
    log "live update into $img took $(since "$t0") s under load"
    sleep 3
done
touch /tmp/ll-stop
check stop-guest xenstore-write "$G/stop" 1
wait "$LOOP"
lrc=$?
dom0=$(cat /tmp/ll-dom0.out)
log "dom0 writer (exit $lrc): $dom0 $(head -c 300 /tmp/ll-dom0.err)"
[ "$lrc" -eq 0 ] || fail "the dom0 writer saw errors: $dom0 $(head -c 200 /tmp/ll-dom0.err)"
wait_until 60 xenstore-exists "$G/load-result" || fail "the guest wrote no result"
gres=$(xenstore-read "$G/load-result")
log "guest writer: $gres"
echo "$gres" | grep -q " errors=0 " || fail "the guest writer saw errors: $gres"
dn=$(echo "$dom0" | sed -n 's/.*acked=\([0-9]*\).*/\1/p')
gn=$(echo "$gres" | sed -n 's/.*acked=\([0-9]*\).*/\1/p')
[ "$(wc -l < /tmp/ll-dom0.log)" -eq "$dn" ] || fail "the dom0 log has $(wc -l < /tmp/ll-dom0.log) lines, acked=$dn"
T=300 check verify-dom0 $P verify --prefix /load/d --count "$dn"
T=300 check verify-guest $P verify --prefix "$G/load" --count "$gn" --per-dir 100
wait "$W0"; wait "$WG"
# Every acknowledged write after the watch was registered has its event.
for i in $(seq 0 $((dn - 1))); do echo "/load/d/$i l0"; done | sort > /tmp/ll-want0
sort -u /tmp/ll-w0 > /tmp/ll-got0
missing0=$(comm -23 /tmp/ll-want0 /tmp/ll-got0 | wc -l)
for i in $(seq "$gfirst" $((gn - 1))); do echo "$G/load/$((i / 100))/$i lg"; done | sort > /tmp/ll-wantg
sort -u /tmp/ll-wg > /tmp/ll-gotg
missingg=$(comm -23 /tmp/ll-wantg /tmp/ll-gotg | wc -l)
[ "$missing0" -eq 0 ] || fail "$missing0 dom0 writes without an event: $(comm -23 /tmp/ll-want0 /tmp/ll-got0 | head -n 3)"
[ "$missingg" -eq 0 ] || fail "$missingg guest writes without an event: $(comm -23 /tmp/ll-wantg /tmp/ll-gotg | head -n 3)"
T=60 check xl-destroy xl destroy xslab-guest
check cleanup xenstore-rm /load
pass "updates=2 dom0_acked=$dn guest_acked=$gn lost=0 missing_events=0 errors=0"
