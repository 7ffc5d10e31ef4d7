#!/bin/sh
# Fairness benchmark (`cargo xtask bench`, with the stub domain and with C xenstored): dom0
# reads a node back to back (xsprobe loop, one request at a time) for XSLAB_FAIR_MS (default
# 10000) with nothing else running, then again while a PVH Linux guest writes as fast as it
# can (two write loops, one request at a time each, in its home). The figures: dom0's p99
# and largest gap between replies, idle and under the flood, and what the guest wrote.
# Checked: no error in dom0's loops or the guest's, and both loops made requests (the ratio
# to reach, p99 under flood at most 1.5x idle, is the benchmark's, not a verdict). Also
# reported: the CPU seconds each domain ran during each loop (xl list), which show how the
# one CPU is shared (dom0, the xenstore domain when there is one, the guest).
# XSLAB_FAIR_SCHED=control first gives the control plane the scheduling a host would give it:
# dom0 and the xenstore domain (when there is one) weight 512 against the guest's default 256,
# and credit2 without its 1 ms rate limit (a waking vCPU may preempt at once); default: Xen's
# defaults. XSLAB_FAIR_SCHED=dedicated (QEMU with 2 CPUs, XSLAB_SMP=2) gives the control plane
# a CPU of its own, as hosts commonly do (dom0_vcpus_pin): dom0 and the xenstore domain pinned
# to CPU 0 (the xenstore domain weighted 512, rate limit 0), the guest to CPU 1, so that what
# remains is mostly how the store serves dom0 beside the flood.
# XSLAB_FAIR_LOAD=hog is the control: the guest's two loops only spin the CPU, with no
# xenstore request, which shows what the CPU the guest takes costs dom0 by itself.
. /xslab/lib.sh
MS=${XSLAB_FAIR_MS:-10000}
SCHED=${XSLAB_FAIR_SCHED:-default}
LOAD=${XSLAB_FAIR_LOAD:-writers}
case "$LOAD" in
writers | hog) ;;
*) fail "XSLAB_FAIR_LOAD=$LOAD: writers or hog" ;;
esac
case "$SCHED" in
default) ;;
control)
    check dom0-weight xl sched-credit2 -d Domain-0 -w 512
    if [ "$XSLAB_STORE" = stub ]; then
        check xenstore-weight xl sched-credit2 -d Xenstore -w 512
    fi
    check ratelimit xl sched-credit2 -s -r 0
    xl sched-credit2 2>&1 | while read -r l; do log "scheduler: $l"; done
    ;;
dedicated)
    ncpu=$(xl info | awk '$1 == "nr_cpus" { print $3 }')
    [ "${ncpu:-0}" -ge 2 ] || fail "XSLAB_FAIR_SCHED=dedicated needs 2 CPUs (XSLAB_SMP=2), Xen has ${ncpu:-?}"
    check dom0-pin xl vcpu-pin Domain-0 all 0
    if [ "$XSLAB_STORE" = stub ]; then
        check xenstore-pin xl vcpu-pin Xenstore all 0
        check xenstore-weight xl sched-credit2 -d Xenstore -w 512
        check ratelimit xl sched-credit2 -s -r 0
    fi
    xl vcpu-list 2>&1 | while read -r l; do log "vcpus: $l"; done
    ;;
*) fail "XSLAB_FAIR_SCHED=$SCHED: default, control or dedicated" ;;
esac
check probe-node xenstore-write /fair-probe x
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# cpu_times: NAME=SECONDS for every domain (xl list's Time(s) column).
cpu_times() { xl list | awk 'NR > 1 { printf "%s=%s ", $1, $6 }'; }
# cpu_delta BEFORE AFTER: the seconds each domain of AFTER ran since BEFORE, as
# dom0:S,xs:S,guest:S (xs: the xenstore domain).
cpu_delta() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], kv, "="); t[kv[1]] = kv[2] }
        m = split(b, y, " "); s = ""
        for (i = 1; i <= m; i++) {
            split(y[i], kv, "="); d = kv[2] - t[kv[1]]
            name = kv[1] == "Domain-0" ? "dom0" : kv[1] == "Xenstore" ? "xs" : "guest"
            s = s (s == "" ? "" : ",") name ":" sprintf("%.1f", d)
        }
        print s }'
}
# dom0_loop NAME: one measured loop; sets NAME_p99, NAME_max, NAME_req.
dom0_loop() {
    out=$(timeout $((MS / 1000 + 120)) /xslab/xsprobe loop --path /fair-probe --duration-ms "$MS" 2>&1) ||
        fail "dom0's $1 loop: $out"
    log "dom0 $1: $out"
    [ "$(kv "$out" errors)" = 0 ] || fail "dom0's $1 loop saw errors: $out"
    [ "$(kv "$out" requests)" -gt 0 ] || fail "dom0's $1 loop made no request: $out"
    eval "${1}_p99=$(kv "$out" p99_gap_us) ${1}_max=$(kv "$out" max_gap_us) ${1}_req=$(kv "$out" requests)"
}
# measured NAME: dom0_loop NAME, and NAME_cpu (see cpu_delta).
measured() {
    before=$(cpu_times)
    dom0_loop "$1"
    eval "${1}_cpu=$(cpu_delta "$before" "$(cpu_times)")"
    log "CPU seconds during the $1 loop: $(eval echo "\$${1}_cpu")"
}
measured idle
ag_create linux xslab-writers "$LOAD"
W=$(ag_ready linux xslab-writers "$LOAD") || exit 1
if [ "$SCHED" = dedicated ]; then
    check guest-pin xl vcpu-pin xslab-writers all 1
    xl vcpu-list 2>&1 | while read -r l; do log "vcpus: $l"; done
fi
# The guest's loops run for the measurement plus their ramp-up and some slack.
check go xenstore-write "/local/domain/$W/data/go" $((MS + 8000))
if [ "$LOAD" = writers ]; then
    wait_until 60 xenstore-exists "/local/domain/$W/data/w0/0" || fail "the guest does not write"
fi
sleep 2
measured flood
if [ "$LOAD" = writers ]; then
    wait_until 120 xenstore-exists "/local/domain/$W/data/writers-1" ||
        fail "the guest left no data/writers-1"
    a=$(xenstore-read "/local/domain/$W/data/writers-0") b=$(xenstore-read "/local/domain/$W/data/writers-1")
    log "guest writers: $a | $b"
    for r in "$a" "$b"; do
        [ "$(kv "$r" errors)" = 0 ] || fail "a guest writer saw errors: $r"
    done
    acked=$(($(kv "$a" acked) + $(kv "$b" acked)))
else
    # The control: the guest spun without a request, and the spinning outlasted the loop.
    wait_until 120 xenstore-exists "/local/domain/$W/data/hog-done" ||
        fail "the guest's spinning loops did not end"
    acked=0
fi
T=60 check xl-destroy xl destroy xslab-writers
ratio=$(awk -v a="$idle_p99" -v b="$flood_p99" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "?" }')
pass "store=$XSLAB_STORE sched=$SCHED load=$LOAD idle_p99_us=$idle_p99 flood_p99_us=$flood_p99 p99_ratio=$ratio" \
    "idle_max_us=$idle_max flood_max_us=$flood_max idle_reads=$idle_req flood_reads=$flood_req" \
    "guest_writes=$acked cpu_s_idle=$idle_cpu cpu_s_flood=$flood_cpu"
