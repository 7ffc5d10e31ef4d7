#!/bin/sh
# A guest sets watches up to and past the quota (128: the 129th gets E2BIG) on a path dom0
# then writes to in a loop, and never reads its ring again (XSA-326). A Linux guest always
# drains its ring in the kernel, so the attacker is the raw test guest
# (`xsstub-test-guest=watch-flood`, the fault-injection build). Attacker gets: E2BIG for
# watch 129; its events queue up to its 128 KiB limit and the rest are dropped (memreport's
# dropped count grows, `limit event-queue hit` names its domain); nothing else. Checked: the
# queued output stays bounded, dom0's read loop and the good guest are unaffected, and
# memreport's totals are back once the guests are gone.
. /xslab/lib.sh
abuse_begin
DUR=15000
LIMIT=131072
good_guest
ag_create raw xslab-wflood watch-flood
BAD=$(timeout 20 xl domid xslab-wflood) || fail "xl domid xslab-wflood: $BAD"
tg() { timeout "$T" xl dmesg | grep -a "(d$BAD) XSSTUB-TESTGUEST" | tr -d '\r'; }
wait_until 90 sh -c "xl dmesg | grep -aq '(d$BAD) XSSTUB-TESTGUEST not reading'" ||
    fail "the watch-flood guest did not get going: $(tg)"
tg
tg | grep -q "XSSTUB-TESTGUEST watches set 128, watch 129: ERROR E2BIG$" ||
    fail "watch 129 was not refused with E2BIG: $(tg)"
log "good guest $GOOD, attacker $BAD"
dropped() {
    timeout "$T" xenstore-control memreport | sed -n 's/^dropped watch events: //p'
}
queued() {
    timeout "$T" xenstore-control memreport | sed -n 's/^queued output: \([0-9]*\) bytes/\1/p'
}
d0=$(dropped)
measure_baseline "$GOOD" "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
measure_start "$GOOD"
# dom0 rewrites 64 nodes under the watched path for DUR ms, one write at a time; every
# write fires 128 events (64 x 128 distinct ones: more than the queue holds).
bg /xslab/xsprobe write-loop --prefix "/local/domain/$BAD/data/flood" --wrap 64 --duration-ms "$DUR" \
    >/tmp/abuse-wl.out 2>/tmp/abuse-wl.err
WL=$BG
qmax=0
while kill -0 "$WL" 2>/dev/null; do
    q=$(queued)
    [ -n "$q" ] && [ "$q" -gt "$qmax" ] && qmax=$q
    sleep 1
done
wait "$WL" || fail "dom0's writer saw errors: $(cat /tmp/abuse-wl.out) $(head -c 200 /tmp/abuse-wl.err)"
wrote=$(sed -n 's/.*acked=\([0-9]*\).*/\1/p' /tmp/abuse-wl.out)
d1=$(dropped)
q=$(queued)
measure_stop "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
log "dom0 wrote $wrote times under the watch; dropped events $d0 -> $d1; queued output max $qmax, now $q"
runq xenstore-control memreport
log "memreport: $(echo "$OUT" | grep -E "^(limits hit|domain $BAD):")"
[ "$wrote" -ge 100 ] || fail "dom0 wrote only $wrote times"
# The attacker's queue stays within its limit; the rest (the good guest's and dom0's
# replies in flight) is a few hundred bytes at most.
[ "$qmax" -le $((LIMIT + 4096)) ] || fail "queued output reached $qmax bytes (limit $LIMIT)"
# Every write fired 128 events; at most LIMIT bytes of them (32 bytes and more each) can be
# queued, the ring holds 1 KiB: the rest were dropped.
[ $((d1 - d0)) -ge $((wrote * 128 - LIMIT / 32 - 1024 / 32 - 1)) ] ||
    fail "only $((d1 - d0)) events dropped for $wrote writes"
limit_lines "$BAD" >/tmp/abuse-limits
cat /tmp/abuse-limits
grep -q "^domain $BAD: limit watches hit: WATCH refused with E2BIG: 128 watches set, quota 128" \
    /tmp/abuse-limits || fail "no 'domain $BAD: limit watches hit' line"
grep -q "^domain $BAD: limit event-queue hit: watch event dropped: .* bytes queued unread, limit $LIMIT" \
    /tmp/abuse-limits || fail "no 'domain $BAD: limit event-queue hit' line"
abuse_end xslab-wflood xslab-good
pass "attacker=E2BIG@129 dropped=$((d1 - d0)) of $((wrote * 128)) events queued_max=$qmax" \
    "$MEASURED $BASELINE retries=$RETRIES"
