#!/bin/sh
# Guests flood xenstore with requests in their homes, as fast as they can. A Linux guest
# (guest/init.sh, xslab=flood): for 8 s, 24 connections read a 1900-byte node back to back
# (xsprobe flood), then for 8 s 24 connections rewrite nodes. Then the raw test guest
# (`xsstub-test-guest=flood`), which Linux's one-request-per-open-file driver cannot match:
# it keeps 64 requests in its ring, for 6 s reads of a 1900-byte node, then for 6 s small
# writes. Attacker gets: served, but slowed. Its replies leave through a 1 KiB ring:
# when 20 wait unread its ring is no longer read (`limit outstanding hit`); its writes are
# held to 200 per second after a burst of 10 (XSA-206, `limit write-rate hit`). Checked:
# no attacker saw an error or wrote faster than the limit allows; the raw flood's domain
# gets both limit lines; dom0's read loop saw no error and no long gap and the good guest
# answered every ping throughout; memreport's totals are back once the guests are gone.
. /xslab/lib.sh
abuse_begin
PHASE_MS=8000
RAW_MS=6000
ag_create linux xslab-flood flood
good_guest
BAD=$(ag_ready linux xslab-flood flood) || exit 1
ag_create raw xslab-rawflood flood
RAW=$(ag_ready raw xslab-rawflood flood) || exit 1
log "good guest $GOOD, attackers $BAD (Linux) and $RAW (raw)"
measure_baseline "$GOOD" "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
measure_start "$GOOD"
check go xenstore-write "/local/domain/$BAD/data/go" "$PHASE_MS"
wait_until $((2 * PHASE_MS / 1000 + 240)) xenstore-exists "/local/domain/$BAD/data/flood-write" ||
    fail "the Linux attacker left no data/flood-write"
check go-raw xenstore-write "/local/domain/$RAW/data/go" "$RAW_MS"
wait_until $((2 * RAW_MS / 1000 + 120)) xenstore-exists "/local/domain/$RAW/data/flood-raw-write" ||
    fail "the raw attacker left no data/flood-raw-write"
runq xenstore-control memreport
log "memreport right after the floods: $(echo "$OUT" | grep -E "^(limits hit|domain ($BAD|$RAW)):")"
measure_stop "$ABUSE_MAX_GAP_MS" "$ABUSE_MAX_RTT_MS"
rd=$(xenstore-read "/local/domain/$BAD/data/flood-read")
wr=$(xenstore-read "/local/domain/$BAD/data/flood-write")
rr=$(xenstore-read "/local/domain/$RAW/data/flood-raw-read")
rw=$(xenstore-read "/local/domain/$RAW/data/flood-raw-write")
log "Linux attacker reading: $rd"
log "Linux attacker writing: $wr"
log "raw attacker reading: $rr"
log "raw attacker writing: $rw"
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# served: no error, something done; slowed: no faster than 200 writes/s after a burst of
# 10, plus the writes in flight when the time was up.
served() {
    [ "$(kv "$2" errors)" = 0 ] && [ "$(kv "$2" "$3")" -gt 0 ] ||
        fail "the $1 attacker was not served: $2"
    awk -v w="$(kv "$2" writes)" -v s="$(kv "$2" secs)" -v f="$4" \
        'BEGIN { exit !(w <= 200 * s + 10 + f) }' ||
        fail "the $1 attacker wrote faster than 200/s: $2"
}
served reading "$rd" reads 0
served writing "$wr" writes 24
served raw-reading "$rr" reads 0
served raw-writing "$rw" writes 64
for d in $BAD $RAW; do limit_lines "$d"; done >/tmp/abuse-limits
cat /tmp/abuse-limits
grep -q "^domain $RAW: limit outstanding hit: ring no longer read: 20 replies unread, quota 20" \
    /tmp/abuse-limits || fail "no 'domain $RAW: limit outstanding hit' line: $(stub_lines | tail -n 5)"
grep -q "^domain $RAW: limit write-rate hit: requests held back: more than 200 writes/s" \
    /tmp/abuse-limits || fail "no 'domain $RAW: limit write-rate hit' line: $(stub_lines | tail -n 5)"
hits() { sed -n "s/^domain $1: limit \([a-z-]*\) hit.*/\1/p" /tmp/abuse-limits | sort -u | tr '\n' '+'; }
lh=$(hits "$BAD") rh=$(hits "$RAW")
abuse_end xslab-flood xslab-rawflood xslab-good
pass "linux: reads/s=$(kv "$rd" reads_per_s) writes/s=$(kv "$wr" writes_per_s)" \
    "limits=${lh%+} raw: reads/s=$(kv "$rr" reads_per_s) writes/s=$(kv "$rw" writes_per_s)" \
    "limits=${rh%+} errors=0 $MEASURED $BASELINE retries=$RETRIES"
