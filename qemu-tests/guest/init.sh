#!/bin/sh
# The lab guest's /init: a PVH Linux domU that talks to xenstore through Linux's xenbus
# driver with the stock clients and reports what it saw in data/result.
export PATH=/usr/bin:/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
[ -e /dev/xen/xenbus ] || mount -t xenfs xenfs /proc/xen
echo "xslab-guest: up after $(cut -d' ' -f1 /proc/uptime) s"
# The memory attack (memattack): 2000-byte values until xenstore refuses; the summary goes
# to data/attack-result, created first (with a long placeholder, so that the summary can
# replace it even when the domain is at its quota).
if grep -q "xslab=memattack" /proc/cmdline; then
    timeout 30 xenstore-write data/attack-result "$(head -c 200 /dev/zero | tr '\0' p)"
    timeout 30 xenstore-write data/attack-ready 1
    while ! timeout 30 xenstore-exists data/go 2>/dev/null; do sleep 0.5; done
    r=$(/usr/bin/xsprobe write-loop --prefix data/m --value-size 2000 --until-refused 2>&1)
    echo "xslab-guest: memattack: $r"
    timeout 30 xenstore-write data/attack-result "$r"
    while :; do sleep 3600; done
fi
# The load mode (lu-load): write distinct nodes one at a time until dom0 writes data/stop,
# then leave the summary in data/load-result.
if grep -q "xslab=load" /proc/cmdline; then
    /usr/bin/xsprobe write-loop --prefix data/load --until-node data/stop \
        --result-node data/load-result 2>&1 | sed 's/^/xslab-guest: /'
    while :; do sleep 3600; done
fi
name=$(timeout 30 xenstore-read name 2>&1) || name="error:$name"
probe=$(timeout 30 xenstore-write data/probe hello 2>&1 &&
    timeout 30 xenstore-read data/probe 2>&1) || probe="error:$probe"
timeout 30 xenstore-write data/result "name=$name probe=$probe"
echo "xslab-guest: wrote data/result: name=$name probe=$probe"
# Answer pings from dom0 through the same xenbus connection: every change of data/ping is
# copied to data/pong (the live-update scenario checks the guest's connection survives).
# One watch for the guest's life: its first event, at registration, also answers a ping that
# came before it (a slow guest may register after dom0's first ping).
while :; do
    timeout 3600 xenstore-watch data/ping 2>/dev/null | while read -r _; do
        v=$(timeout 30 xenstore-read data/ping 2>/dev/null) &&
            timeout 30 xenstore-write data/pong "$v"
    done
    sleep 1
done
