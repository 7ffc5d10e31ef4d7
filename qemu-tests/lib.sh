#!/bin/sh
# Helpers for the lab's dom0 scripts (sourced by busybox sh): checks, waits and the verdict.
# A scenario calls check/expect_* (the first failure ends it) and finally `pass [DETAIL]`, or
# `skip REASON` when it does not apply to this boot (another store, start path or Xen version).

# Seconds a single command may take.
T=${T:-30}
XSLAB_PIDS=""

# Seconds since boot, with hundredths.
now() { cut -d' ' -f1 /proc/uptime; }

# Seconds since $1 (a `now` value).
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

log() { echo "[${XSLAB_SCENARIO:-init}] $*"; }

# Runs CMD... with the timeout T; sets OUT (stdout+stderr), RC and HOW ("exit N", or
# "timed out after T s").
runq() {
    OUT=$(timeout "$T" "$@" 2>&1)
    RC=$?
    if [ "$RC" -eq 143 ]; then
        HOW="timed out after $T s"
    else
        HOW="exit $RC"
    fi
}

# Ends the scenario with a failure: one line of reason.
fail() {
    printf 'FAIL %s' "$*" | tr '\n\r' '  ' | head -c 400 >/tmp/xslab-verdict
    exit 1
}

# Ends the scenario with success and optional detail.
pass() {
    printf 'PASS %s' "$*" | tr '\n\r' '  ' | head -c 400 >/tmp/xslab-verdict
    exit 0
}

# Ends the scenario without a verdict on what it is about: it does not apply here (one line
# of reason). The harness counts it apart, not as a failure.
skip() {
    printf 'SKIP %s' "$*" | tr '\n\r' '  ' | head -c 400 >/tmp/xslab-verdict
    exit 0
}

# The stub domain's id (empty with C xenstored), as init read it from /tool/xenstored/domid.
stub_domid() {
    cat /run/xslab-stub-domid 2>/dev/null
}

# check NAME CMD...: CMD must exit 0.
check() {
    name=$1
    shift
    runq "$@"
    [ "$RC" -eq 0 ] || fail "$name: '$*' $HOW: $OUT"
    log "ok $name"
}

# check_fails NAME CMD...: CMD must exit non-zero (and not time out).
check_fails() {
    name=$1
    shift
    runq "$@"
    [ "$RC" -ne 0 ] && [ "$RC" -ne 143 ] || fail "$name: '$*' $HOW (expected a failure): $OUT"
    log "ok $name"
}

# expect_eq NAME EXPECTED CMD...: CMD exits 0 and prints exactly EXPECTED.
expect_eq() {
    name=$1
    want=$2
    shift 2
    runq "$@"
    [ "$RC" -eq 0 ] && [ "$OUT" = "$want" ] ||
        fail "$name: '$*' printed '$OUT' ($HOW), expected '$want'"
    log "ok $name"
}

# expect_match NAME PATTERN CMD...: CMD exits 0 and its output has a line matching PATTERN
# (grep -E).
expect_match() {
    name=$1
    pattern=$2
    shift 2
    runq "$@"
    [ "$RC" -eq 0 ] && echo "$OUT" | grep -qE -- "$pattern" ||
        fail "$name: '$*' ($HOW) has no line matching '$pattern': $OUT"
    log "ok $name"
}

# wait_until SECS CMD...: retries CMD (quietly) until it succeeds; false after SECS.
wait_until() {
    limit=$1
    shift
    read -r t0 _ </proc/uptime
    pause=0.1
    while :; do
        timeout 10 "$@" >/dev/null 2>&1 && return 0
        read -r t _ </proc/uptime
        [ $((${t%.*} - ${t0%.*})) -ge "$limit" ] && return 1
        # Every try starts processes on the emulated machine's only CPU, which the guests
        # being waited for need to boot: look often at first, then once a second.
        sleep $pause
        case $pause in 0.1) pause=0.2 ;; 0.2) pause=0.5 ;; *) pause=1 ;; esac
    done
}

# wait_lines SECS FILE N: until FILE has at least N lines.
wait_lines() {
    wait_until "$1" sh -c "[ \$(wc -l < '$2') -ge $3 ]"
}

# bg CMD...: starts CMD in the background (killed when the scenario ends); pid in BG.
bg() {
    "$@" &
    BG=$!
    XSLAB_PIDS="$XSLAB_PIDS $BG"
}

cleanup_bg() {
    for p in $XSLAB_PIDS; do
        kill "$p" 2>/dev/null
    done
    # A scenario's own cleanup (XSLAB_ON_EXIT), run however it ends: a failed one must not
    # leave the store full for the next.
    [ -z "$XSLAB_ON_EXIT" ] || eval "$XSLAB_ON_EXIT"
}

# The number of nodes in the whole store (a leak check that works with both daemons).
node_count() {
    timeout "$T" xenstore-ls -f / | wc -l
}

# `nodes bytes` from our daemon's memreport (`nodes: N (B bytes)`); empty with C xenstored.
memreport_nodes() {
    timeout "$T" xenstore-control memreport 2>/dev/null |
        sed -n 's/^nodes: \([0-9]*\) (\([0-9]*\) bytes).*/\1 \2/p'
}

# Destroys every domain but dom0 and the xenstore domain.
destroy_guests() {
    for d in $(timeout 10 xl list 2>/dev/null |
        awk 'NR > 1 && $1 != "Domain-0" && $1 != "Xenstore" { print $1 }'); do
        timeout "$T" xl destroy "$d"
    done
}

# True if xenstore answers dom0 within 10 s.
xenstore_answers() {
    timeout 10 xenstore-read / >/dev/null 2>&1
}

# Everything worth seeing after a failure (every command bounded: xenstore may be stuck).
diagnostics() {
    echo "XSLAB-DIAG begin"
    if xenstore_answers; then
        echo "--- xenstore answers dom0"
    else
        echo "--- xenstore does NOT answer dom0 (a read of / timed out after 10 s)"
    fi
    echo "--- xl list"
    timeout 10 xl list 2>&1
    for f in /var/log/xen/launch-xenstore.out /var/log/xen/init-xenstore-domain.out; do
        [ -s "$f" ] || continue
        echo "--- $f (tail)"
        tail -n 20 "$f"
    done
    echo "--- xenstored output and trace (tail)"
    tail -n 20 /var/log/xen/xenstored.out 2>/dev/null
    tail -n 60 /var/log/xen/xenstored-trace.log 2>/dev/null
    if [ -s /run/xslab-stub-domid ]; then
        stub=$(cat /run/xslab-stub-domid)
        echo "--- xenctx of the xenstore domain $stub"
        timeout 10 xenctx "$stub" 2>&1 | head -n 30
        for i in 1 2 3 4 5; do
            timeout 10 xenctx "$stub" 2>&1 | sed -n 's/^rip: /xenctx sample rip: /p;s/^flags: /  flags: /p'
            sleep 0.3
        done
        echo "--- event channels (xl debug-keys e)"
        timeout 10 xl debug-keys e >/dev/null 2>&1
        timeout 10 xl dmesg 2>&1 | grep -A 40 "Event channel information for domain $stub" | head -n 40
    fi
    echo "--- syslog (tail)"
    tail -n 30 /var/log/messages 2>/dev/null
    for f in /var/log/xen/console/*.log; do
        [ -e "$f" ] || continue
        echo "--- $f (tail)"
        tail -n 30 "$f"
    done
    echo "--- xl dmesg (tail)"
    timeout 10 xl dmesg 2>&1 | tail -n 60
    echo "XSLAB-DIAG end"
}

# Runs /xslab/scenarios/NAME.sh with a time limit and prints its one verdict line.
run_scenario() {
    s=$1
    rm -f /tmp/xslab-verdict
    echo "XSLAB-BEGIN $s"
    t0=$(now)
    XSLAB_SCENARIO=$s timeout "${XSLAB_SCENARIO_TIMEOUT:-300}" sh /xslab/scenarios/"$s".sh
    rc=$?
    if [ -s /tmp/xslab-verdict ]; then
        verdict=$(cat /tmp/xslab-verdict)
    elif [ $rc -eq 143 ]; then
        verdict="FAIL timed out after ${XSLAB_SCENARIO_TIMEOUT:-300} s"
    else
        verdict="FAIL no verdict (exit $rc)"
    fi
    case "$verdict" in
    PASS* | SKIP*) ;;
    *) diagnostics ;;
    esac
    destroy_guests
    killall -q xenstore-watch 2>/dev/null
    echo "XSLAB-VERDICT $s $verdict ($(since "$t0") s)"
}

# Every scenario cleans up its background commands.
if [ -n "$XSLAB_SCENARIO" ]; then
    trap cleanup_bg EXIT
    trap 'cleanup_bg; exit 143' TERM
fi

# guest_wait SECS: until the guest DOMID has written data/result (0), its domain is gone
# (2: it crashed; on_crash and on_reboot are "destroy"), xenstore does not answer within 10 s
# (3) or SECS pass (1).
guest_wait() {
    w0=$(now)
    while :; do
        timeout 10 xenstore-read "/local/domain/$DOMID/data/result" >/dev/null 2>&1
        case $? in
        0) return 0 ;;
        143) return 3 ;;
        esac
        # Exit 1 is xl's "no such domain"; a timeout (143) is not.
        timeout 10 xl list "$DOMID" >/dev/null 2>&1
        [ $? -eq 1 ] && return 2
        awk -v s="$(since "$w0")" -v l="$1" 'BEGIN { exit !(s >= l) }' && return 1
        sleep 0.3
    done
}

# guest_start: creates the lab guest (GUEST_CFG, default /xslab/guest.cfg), waits until it reports through
# xenstore and checks what it saw; sets DOMID and BOOT (seconds to the report).
# A guest that dies before it reports is retried once: the Debian kernel very rarely triple
# faults in its early PIT calibration under nested emulation (QEMU TCG), before it ever
# touches xenstore. Each retry is announced and counted in RETRIES.
guest_start() {
    attempt=1
    while :; do
        g0=$(now)
        T=60 check xl-create xl create "${GUEST_CFG:-/xslab/guest.cfg}"
        DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid xslab-guest: $DOMID"
        # A Linux guest reports after 10-40 s on an idle machine; far later when other
        # QEMUs share its cores.
        guest_wait 300
        case $? in
        0) break ;;
        1) fail "guest $DOMID: no data/result after 300 s" ;;
        3) fail "guest $DOMID: xenstore did not answer a read of its data/result within 10 s" ;;
        esac
        echo "XSLAB-INFO guest $DOMID died before it reported (attempt $attempt):"
        timeout 10 xl dmesg 2>&1 | grep -E "d$DOMID|Dom$DOMID" | tail -n 5
        [ "$attempt" -ge 2 ] && fail "guest $DOMID died before it reported, twice"
        attempt=$((attempt + 1))
        RETRIES=$((${RETRIES:-0} + 1))
    done
    BOOT=$(since "$g0")
    expect_eq guest-result "name=xslab-guest probe=hello" \
        xenstore-read "/local/domain/$DOMID/data/result"
}

# guest_ping NAME [PATTERN]: dom0 writes a fresh value V to guest DOMID's data/ping; within
# 60 s the guest's watch must copy it to data/pong (guest/init.sh: a V that starts with
# `net-` comes back followed by the guest's network interfaces). With PATTERN, the pong
# must also match it (grep -E). Sets PONG; PINGS counts the pings.
PINGS=0
guest_ping() {
    PINGS=$((PINGS + 1))
    v="$1-$PINGS"
    check "ping-$1" xenstore-write "/local/domain/$DOMID/data/ping" "$v"
    wait_until 60 sh -c "xenstore-read /local/domain/$DOMID/data/pong | grep -q -e '^$v\$' -e '^$v '" ||
        fail "$1: guest $DOMID did not answer ping $v (pong: $(xenstore-read "/local/domain/$DOMID/data/pong" 2>&1))"
    PONG=$(xenstore-read "/local/domain/$DOMID/data/pong")
    [ -z "$2" ] || echo "$PONG" | grep -qE -- "$2" ||
        fail "$1: guest $DOMID answered '$PONG', which does not match '$2'"
    log "ok $1: guest $DOMID answered '$PONG'"
}

# guest_gone D: domain D and its xenstore home are gone (within 60 and 30 s).
guest_gone() {
    wait_until 60 sh -c "! xl list $1" || fail "domain $1 still there: $(xl list "$1" 2>&1 | tail -n 1)"
    wait_until 30 sh -c "! xenstore-exists /local/domain/$1" || fail "/local/domain/$1 still there"
}

# guest_save_restore FILE: xl save of the guest DOMID into FILE (the domain and its home go),
# then xl restore from it: DOMID becomes the new domain's (another domid, named xslab-guest).
# Sets OLD to the saved one.
guest_save_restore() {
    OLD=$DOMID
    T=300 check save xl save "$DOMID" "$1"
    guest_gone "$OLD"
    T=300 check restore xl restore "$1"
    rm -f "$1"
    DOMID=$(timeout "$T" xl domid xslab-guest) || fail "xl domid after xl restore: $DOMID"
    [ "$DOMID" != "$OLD" ] || fail "xl restore kept domid $OLD"
    expect_eq restored-name xslab-guest xenstore-read "/local/domain/$DOMID/name"
}

# guest_shutdown RELEASE: xl shutdown -w of the guest DOMID (it powers off; xl's daemon
# destroys it): the domain and its home go, and RELEASE (the output of a running
# `xenstore-watch @releaseDomain`) gains lines. Sets RELEASED to how many.
guest_shutdown() {
    r0=$(wc -l <"$1")
    T=120 check shutdown xl shutdown -w "$DOMID"
    guest_gone "$DOMID"
    RELEASED=$(($(wc -l <"$1") - r0))
    [ "$RELEASED" -gt 0 ] || fail "xl shutdown: @releaseDomain did not fire"
}

# live_update_there_and_back: with the stub (and image B there), a live update to image B
# and one back to the image it booted; sets UPDATED to 1 if they ran.
live_update_there_and_back() {
    UPDATED=""
    [ "$XSLAB_STORE" = stub ] && [ -e /xslab/xsstub-b ] || return 0
    T=120 check live-update-b xenstore-control live-update /xslab/xsstub-b
    T=120 check live-update-a xenstore-control live-update /xslab/xsstub
    UPDATED=1
}

# store_back NODES0: the store's node count is back to NODES0, give or take 5 (the first
# guest or device may leave parents such as /local/domain/0/backend/vif behind); sets NODES1.
store_back() {
    NODES1=$(node_count)
    log "nodes in the store: $1 before, $NODES1 after"
    [ "$NODES1" -le $(($1 + 5)) ] || fail "store grew from $1 to $NODES1 nodes"
}

# guest_stop: destroys the lab guest and waits until its xenstore home is gone.
guest_stop() {
    T=60 check xl-destroy xl destroy xslab-guest
    wait_until 30 sh -c "! xenstore-exists /local/domain/$DOMID" ||
        fail "/local/domain/$DOMID still there after xl destroy"
}


# ---- The hostile-guest scenarios (abuse-*) ----

# Bounds for dom0's longest gap between two replies of its read loop, and for the good
# guest's slowest ping, during an attack: they catch starvation (a stalled connection waits
# for ever, or for the probe's 60 s reply timeout, an error), not slowness. The lab runs on
# one emulated CPU shared by dom0, the stub domain and the guests (an attacker that burns
# its vCPU takes its share), under QEMU TCG on a host other work may share: gaps of seconds
# were seen with and without an attack on a loaded host. Each verdict has the figures
# measured without the attack (base_*) beside those during it.
ABUSE_MAX_GAP_MS=10000
ABUSE_MAX_RTT_MS=15000

# ag_create KIND NAME MODE: creates guest NAME: KIND `linux` is the lab guest whose /init
# runs `xslab=MODE` (guest/init.sh); KIND `raw` is the test guest (the stub image's
# fault-injection build, 16 MiB) in `xsstub-test-guest=MODE` (kernel/src/service/testguest).
ag_create() {
    case $1 in
    linux)
        sed -e "s/^name = .*/name = \"$2\"/" \
            -e "s/^cmdline = \"\(.*\)\"/cmdline = \"\1 xslab=$3\"/" /xslab/guest.cfg >"/tmp/$2.cfg"
        grep -q "xslab=$3" "/tmp/$2.cfg" || fail "cannot make the config of $2"
        ;;
    raw)
        [ -e /xslab/xsstub-fault ] || fail "no /xslab/xsstub-fault (cargo xtask lab builds it)"
        cat >"/tmp/$2.cfg" <<CFG
name = "$2"
type = "pvh"
kernel = "/xslab/xsstub-fault"
cmdline = "xsstub-test-guest=$3"
memory = 16
vcpus = 1
on_crash = "destroy"
CFG
        ;;
    *) fail "ag_create: kind $1" ;;
    esac
    T=60 check "xl-create-$2" xl create "/tmp/$2.cfg"
}

# ag_ready KIND NAME MODE: waits until guest NAME (made by `ag_create KIND NAME MODE`) wrote
# data/ready and prints its domid; call as `ID=$(ag_ready ...) || exit 1`. A guest that
# dies before (the rare triple fault in early boot under TCG, see guest_start) is created
# again once, counted in /tmp/xslab-retries.
ag_ready() {
    attempt=1
    while :; do
        id=$(timeout 20 xl domid "$2" 2>/dev/null)
        if [ -n "$id" ]; then
            w0=$(now)
            while :; do
                timeout 10 xenstore-exists "/local/domain/$id/data/ready" && {
                    echo "$id"
                    return 0
                }
                timeout 10 xl list "$id" >/dev/null 2>&1 || break
                awk -v s="$(since "$w0")" 'BEGIN { exit !(s >= 240) }' &&
                    fail "guest $2 ($id): no data/ready after 240 s"
                sleep 0.5
            done
        fi
        echo "XSLAB-INFO guest $2 died before it was ready (attempt $attempt)" >&2
        [ "$attempt" -ge 2 ] && fail "guest $2 died before it was ready, twice"
        attempt=$((attempt + 1))
        echo x >>/tmp/xslab-retries
        ag_create "$@" >&2
    done
}

# good_guest: starts the well-behaved guest of an attack (the test guest in its `echo`
# mode: it copies every new data/ping to data/pong through its one connection) and sets
# GOOD to its domid.
good_guest() {
    ag_create raw xslab-good echo
    GOOD=$(ag_ready raw xslab-good echo) || exit 1
}

# The figures of our daemon's memreport as `nodes bytes heap watches transactions queued
# store` (store: the heap bytes the store holds, its tables' capacity included; empty with C
# xenstored).
memtotals() {
    timeout "$T" xenstore-control memreport 2>/dev/null | awk '
        /^nodes: / { n = $2; b = substr($3, 2) }
        /^store: / { st = $2 }
        /^heap: / { h = $2 }
        /^watches: / { w = $2 }
        /^transactions: / { t = $2 }
        /^queued output: / { q = $3 }
        END { if (n != "") print n, b, h, w, t, q, st }'
}

# memtotals_back NAME BEFORE AFTER HEAP_SLACK: the totals are back to BEFORE (`memtotals`
# lines): nodes, node bytes, watches, transactions and queued output exactly; the heap in use
# within HEAP_SLACK bytes (partly used slabs) plus what the store's tables grew by (its node
# arena and name index keep their largest size: a peak of nodes leaves them bigger).
memtotals_back() {
    set -- "$1" $2 $3 "$4"
    [ $# -eq 16 ] || fail "$1: memreport figures missing: '$2 $3 $4 $5 $6 $7 $8' -> '$9 ...'"
    [ "$9" -eq "$2" ] || fail "$1: nodes $2 -> $9"
    [ "${10}" -eq "$3" ] || fail "$1: node bytes $3 -> ${10}"
    [ "${12}" -eq "$5" ] || fail "$1: watches $5 -> ${12}"
    [ "${13}" -eq "$6" ] || fail "$1: transactions $6 -> ${13}"
    [ "${14}" -eq "$7" ] || fail "$1: queued output $7 -> ${14}"
    grown=$((${15} - $8))
    [ "$grown" -ge 0 ] || grown=0
    [ "${11}" -le $(($4 + grown + ${16})) ] ||
        fail "$1: heap in use $4 -> ${11} (the store's tables grew by $grown, slack ${16})"
    log "ok $1: memreport back: nodes $2 bytes $3 heap $4->${11} (store tables +$grown) watches $5 transactions $6 queued $7"
}

# The xenstore stub domain's lines on Xen's console since the scenario began (`abuse_begin`
# cleared the console ring, which holds only the latest few KiB).
stub_lines() {
    timeout "$T" xl dmesg 2>/dev/null | grep -a "(d$(cat /run/xslab-stub-domid)) " | tr -d '\r'
}

# abuse_begin: for the stub domain only (else skip); clears Xen's console ring, checks the
# probe client is there, notes the starting memreport totals in MEM0.
abuse_begin() {
    [ "$XSLAB_STORE" = stub ] || skip "stub domain only (memreport figures, the stub's log)"
    [ -x /xslab/xsprobe ] || fail "no /xslab/xsprobe (cargo xtask build builds it)"
    timeout "$T" xl dmesg -c >/dev/null 2>&1
    rm -f /tmp/xslab-retries
    # (An earlier scenario that failed may have left the probe's node.)
    timeout "$T" xenstore-rm /abuse-probe >/dev/null 2>&1
    # xl leaves /vm and /libxl (the parents of /vm/UUID and /libxl/DOMID) behind after the
    # first guest of a boot: made now, as it makes them, they compare.
    for p in /vm /libxl; do
        timeout "$T" xenstore-exists "$p" || check "parent-$p" xenstore-write "$p" ""
    done
    timeout "$T" xenstore-ls -f / 2>/dev/null | sed 's/ = .*//' | sort >/tmp/abuse-paths0
    MEM0=$(memtotals)
    [ -n "$MEM0" ] || fail "no memreport figures"
    log "memreport before: $MEM0"
}

# measure_start GOOD: dom0 reads /abuse-probe back to back (xsprobe loop) and pings guest
# GOOD's echo (`good_guest`) every 200 ms, until measure_stop.
measure_start() {
    check probe-node xenstore-write /abuse-probe x
    timeout "$T" xenstore-rm "/local/domain/$1/data/pong" >/dev/null 2>&1
    rm -f /tmp/abuse-stop
    bg /xslab/xsprobe loop --path /abuse-probe --duration-ms 600000 \
        --until-file /tmp/abuse-stop >/tmp/abuse-loop.out 2>/tmp/abuse-loop.err
    LOOP_PID=$BG
    bg /xslab/xsprobe ping --ping "/local/domain/$1/data/ping" \
        --pong "/local/domain/$1/data/pong" --until-file /tmp/abuse-stop \
        >/tmp/abuse-ping.out 2>/tmp/abuse-ping.err
    PING_PID=$BG
    # Going: the first ping answered (the loop started with it).
    wait_until 60 xenstore-exists "/local/domain/$1/data/pong" ||
        fail "the good guest did not answer the first ping within 60 s"
}

# measure_stop MAX_GAP_MS MAX_RTT_MS: stops the measurements; dom0's loop must have had no
# error and no gap over MAX_GAP_MS, the good guest must have answered every ping within
# MAX_RTT_MS. Sets MEASURED (for the verdict).
measure_stop() {
    touch /tmp/abuse-stop
    wait "$LOOP_PID"
    wait "$PING_PID"
    l=$(cat /tmp/abuse-loop.out)
    p=$(cat /tmp/abuse-ping.out)
    log "dom0 loop: $l $(head -c 300 /tmp/abuse-loop.err)"
    log "good guest pings: $p $(head -c 300 /tmp/abuse-ping.err)"
    kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
    req=$(kv "$l" requests) err=$(kv "$l" errors) gap=$(kv "$l" max_gap_us) p99=$(kv "$l" p99_gap_us)
    pings=$(kv "$p" pings) ans=$(kv "$p" answered) rtt=$(kv "$p" max_rtt_us)
    [ -n "$req" ] && [ -n "$err" ] && [ -n "$gap" ] || fail "dom0 loop printed '$l'"
    [ -n "$pings" ] && [ -n "$ans" ] && [ -n "$rtt" ] || fail "pings printed '$p'"
    [ "$err" -eq 0 ] || fail "dom0's read loop saw $err errors: $(head -c 200 /tmp/abuse-loop.err)"
    [ "$req" -gt 0 ] || fail "dom0's read loop made no request"
    [ "$gap" -le $(($1 * 1000)) ] || fail "dom0's read loop waited $gap us (bound $1 ms)"
    [ "$ans" -gt 0 ] && [ "$ans" -eq "$pings" ] || fail "the good guest answered $ans of $pings pings"
    [ "$rtt" -le $(($2 * 1000)) ] || fail "the good guest answered a ping after $rtt us (bound $2 ms)"
    MEASURED="dom0_reads=$req dom0_errors=$err dom0_max_gap_us=$gap dom0_p99_gap_us=$p99 good_pings=$ans/$pings good_max_rtt_us=$rtt"
}

# measure_baseline GOOD MAX_GAP_MS MAX_RTT_MS: the same measurements for 4 s without an
# attack, for comparison (the lab's figures depend on the host's load); sets BASELINE.
measure_baseline() {
    measure_start "$1"
    sleep 4
    measure_stop "$2" "$3"
    BASELINE="base_max_gap_us=$gap base_p99_gap_us=$p99 base_max_rtt_us=$rtt"
}

# abuse_end NAME...: destroys the guests named, waits until their homes are gone, checks the
# stub did not panic and memreport's totals are back to MEM0 (HEAP_SLACK, default 16 KiB).
abuse_end() {
    ids=""
    for g in "$@"; do
        id=$(timeout 20 xl domid "$g" 2>/dev/null) && ids="$ids $id"
        timeout 60 xl destroy "$g" >/dev/null 2>&1
    done
    for id in $ids; do
        wait_until 30 sh -c "! xenstore-exists /local/domain/$id" ||
            fail "/local/domain/$id still there after xl destroy"
    done
    check rm-probe xenstore-rm /abuse-probe
    stub_lines | grep -q "PANIC" && fail "the stub panicked: $(stub_lines | grep PANIC | head -n 2)"
    MEM1=$(memtotals)
    log "memreport after: $MEM1"
    timeout "$T" xenstore-ls -f / 2>/dev/null | sed 's/ = .*//' | sort >/tmp/abuse-paths1
    if ! cmp -s /tmp/abuse-paths0 /tmp/abuse-paths1; then
        fail "the store's paths changed: $(diff /tmp/abuse-paths0 /tmp/abuse-paths1 | grep '^[<>]' | head -n 8)"
    fi
    memtotals_back memreport "$MEM0" "$MEM1" "${HEAP_SLACK:-16384}"
    RETRIES=$(cat /tmp/xslab-retries 2>/dev/null | wc -l)
}

# The stub's `domain ID: limit NAME hit: ...` lines for domain ID, one per line.
limit_lines() {
    stub_lines | sed -n "s/.*xsstub: \(domain $1: limit .*\)/\1/p"
}
