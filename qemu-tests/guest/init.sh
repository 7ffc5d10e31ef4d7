#!/bin/sh
# The lab guest's /init: a PVH Linux domU that talks to xenstore through Linux's xenbus
# driver with the stock clients and reports what it saw in data/result.
export PATH=/usr/bin:/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -e /dev/xen/xenbus ] || mount -t xenfs xenfs /proc/xen
for m in $(cat /etc/xslab-modules); do
    insmod "$m" || echo "xslab-guest: insmod $m failed"
done
echo "xslab-guest: up after $(cut -d' ' -f1 /proc/uptime) s"
# `xl shutdown` and `xl reboot` (control/shutdown) make Linux run /sbin/poweroff or
# /sbin/reboot; busybox's would signal init, and this script as init ignores the signal:
# act at once instead.
for c in poweroff reboot; do
    rm -f /sbin/$c
    printf '#!/bin/sh\nexec /bin/busybox %s -f\n' $c >/sbin/$c
    chmod 755 /sbin/$c
done
# Waits until NODE exists: one process asleep in a watch (xsprobe wait reads the node after
# setting the watch and after each event, so nothing is missed). Anything that starts
# processes periodically costs the emulated machine's only CPU: idle attackers that ran
# `xenstore-watch` every 10 s each took a fifth of it under TCG and starved the next guest's
# boot. If the connection breaks (a live update), it looks again after a second.
wait_node() {
    until /usr/bin/xsprobe wait --path "$1" --timeout-s 3600 >/dev/null 2>&1; do
        sleep 1
    done
}
# The memory attack (memattack): 2000-byte values until xenstore refuses; the summary goes
# to data/attack-result, created first (with a long placeholder, so that the summary can
# replace it even when the domain is at its quota).
if grep -q "xslab=memattack" /proc/cmdline; then
    timeout 30 xenstore-write data/attack-result "$(head -c 200 /dev/zero | tr '\0' p)"
    timeout 30 xenstore-write data/attack-ready 1
    wait_node data/go
    r=$(/usr/bin/xsprobe write-loop --prefix data/m --value-size 2000 --until-refused 2>&1)
    echo "xslab-guest: memattack: $r"
    timeout 30 xenstore-write data/attack-result "$r"
    while :; do sleep 3600; done
fi
# The load mode (lu-load): write distinct nodes one at a time (100 per directory, one every
# 100 ms: a domain's directory holds about 450 names under the node-size quota, and its
# quota is 1000 nodes) until dom0 writes data/stop, at most 800; then leave the summary in
# data/load-result.
if grep -q "xslab=load" /proc/cmdline; then
    /usr/bin/xsprobe write-loop --prefix data/load --per-dir 100 --interval-ms 100 \
        --count 800 --until-node data/stop --result-node data/load-result 2>&1 |
        sed 's/^/xslab-guest: /'
    while :; do sleep 3600; done
fi
# The hostile-guest scenarios (abuse-*): the attackers write data/ready, wait for data/go
# (its value parameterises the attack), attack, and leave a summary in data/<mode>-result.
abuse_go() {
    timeout 30 xenstore-write data/ready 1
    wait_node data/go
    until go=$(timeout 30 xenstore-read data/go 2>/dev/null); do sleep 1; done
    echo "xslab-guest: go $go"
}
case " $(cat /proc/cmdline) " in
*" xslab=flood "*)
    # go = MS: for MS, 24 connections reading a 1900-byte node back to back; then for MS,
    # 24 connections rewriting nodes back to back.
    abuse_go
    for phase in "read --readers 24 --writers 0" "write --readers 0 --writers 24"; do
        set -- $phase
        p=$1
        shift
        /usr/bin/xsprobe flood --path data/flood "$@" --duration-ms "$go" \
            --result-node "data/flood-$p" 2>&1 | sed "s/^/xslab-guest: $p: /"
    done
    while :; do sleep 3600; done
    ;;
*" xslab=writers "*)
    # go = MS: two loops rewrite 50 nodes each, one request at a time, as fast as they can,
    # for MS; summaries in data/writers-0 and -1 (fair-bench).
    abuse_go
    for k in 0 1; do
        /usr/bin/xsprobe write-loop --prefix "data/w$k" --wrap 50 --duration-ms "$go" \
            --result-node "data/writers-$k" >/tmp/writers-$k.out 2>&1 &
    done
    wait
    cat /tmp/writers-*.out | sed 's/^/xslab-guest: writers: /'
    while :; do sleep 3600; done
    ;;
*" xslab=hog "*)
    # go = MS: two loops that only spin the CPU for MS, with no xenstore request: the
    # fairness benchmark's control, what the CPU the guest takes costs dom0 by itself;
    # then data/hog-done (fair-bench).
    abuse_go
    for k in 0 1; do
        timeout $(((go + 999) / 1000)) sh -c 'while :; do :; done' &
    done
    wait
    timeout 30 xenstore-write data/hog-done 1
    while :; do sleep 3600; done
    ;;
*" xslab=txn "*)
    abuse_go
    /usr/bin/xsprobe txn-limits --path data/txn --result-node data/txn-result 2>&1 |
        sed 's/^/xslab-guest: /'
    while :; do sleep 3600; done
    ;;
*" xslab=churn "*)
    # dom0 writes every node used here before it starts, with values of the final length
    # (00000 = not yet), so the guest's node memory stays constant. data/go = ROUNDS short-
    # lived clients that exit holding 5 watches and 3 transactions (the driver cleans up
    # after each), summary in data/churn-a; then, once data/go2 is 1, ROUNDS more that end
    # with RESET_WATCHES (in a transaction, then outside), summary in data/churn-result.
    timeout 30 xenstore-write data/ready 1
    until go=$(timeout 30 xenstore-read data/go 2>/dev/null) && [ "$go" != 00000 ]; do
        sleep 0.5
    done
    go=$((1$go - 100000))
    churn() {
        i=0 failed=0
        while [ "$i" -lt "$go" ]; do
            /usr/bin/xsprobe churn --path data/churn --watches 5 --transactions 3 "$@" \
                >/tmp/churn.out 2>&1 || {
                failed=$((failed + 1))
                sed 's/^/xslab-guest: /' /tmp/churn.out
            }
            i=$((i + 1))
        done
        echo "xslab-guest: churn $* rounds=$i failed=$failed"
    }
    churn
    timeout 30 xenstore-write data/churn-a "$(printf 'rounds=%05d failed=%05d' "$i" "$failed")"
    until [ "$(timeout 30 xenstore-read data/go2 2>/dev/null)" = 1 ]; do sleep 0.5; done
    churn --reset
    timeout 30 xenstore-write data/churn-result \
        "$(printf 'rounds=%05d failed=%05d' "$i" "$failed")"
    while :; do sleep 3600; done
    ;;
esac
# /xslab-any (the guest scenario's, when it exists) is dom0's with `r32757`: DOMID_ANY's
# entry lets every domain read it (Xen 4.22's feature 8); what this guest got goes to data/any.
any=$(timeout 30 xenstore-read /xslab-any 2>&1) || any="error:$any"
timeout 30 xenstore-write data/any "$any"
name=$(timeout 30 xenstore-read name 2>&1) || name="error:$name"
probe=$(timeout 30 xenstore-write data/probe hello 2>&1 &&
    timeout 30 xenstore-read data/probe 2>&1) || probe="error:$probe"
timeout 30 xenstore-write data/result "name=$name probe=$probe"
echo "xslab-guest: wrote data/result: name=$name probe=$probe"
# Answer pings from dom0 through the same xenbus connection: every change of data/ping is
# copied to data/pong (followed by the network interfaces when it starts with net-, by the
# first bytes of the disk xvda when it starts with disk-; the live-update scenario checks
# the guest's connection survives).
# One watch for the guest's life: its first event, at registration, also answers a ping that
# came before it (a slow guest may register after dom0's first ping).
while :; do
    timeout 3600 xenstore-watch data/ping 2>/dev/null | while read -r _; do
        v=$(timeout 30 xenstore-read data/ping 2>/dev/null) || continue
        case $v in
        net-*) v="$v $(ls /sys/class/net | tr '\n' ' ')" ;;
        disk-*) v="$v $(head -c 32 /dev/xvda 2>&1 | tr -c 'a-z0-9/ :-' ' ')" ;;
        esac
        timeout 30 xenstore-write data/pong "$v"
    done
    sleep 1
done
