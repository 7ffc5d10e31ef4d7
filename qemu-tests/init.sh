#!/bin/sh
# dom0's /init in the Xen lab: mounts, loads the Xen drivers, starts xenstore as
# /xslab/config says (C xenstored in dom0, or the stub domain started by the packaged
# launch-xenstore or by init-xenstore-domain directly), runs the scenarios, powers off.
# /xslab/config names the Xen version (XSLAB_XEN, XSLAB_XEN_BIN) whose tools this dom0 has.
. /xslab/config
export PATH=$XSLAB_XEN_BIN:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for m in $(cat /etc/xslab-modules); do
    insmod "$m" || echo "XSLAB-WARN insmod $m failed"
done
mount -t xenfs xenfs /proc/xen
syslogd -O /var/log/messages
. /xslab/lib.sh

# The xenstore set-ups; each leaves a daemon answering and dom0 introduced.
setup_c() {
    # XSLAB_C_TRACE=0: no trace file (the live-update benchmark's fair figure).
    trace="-T /var/log/xen/xenstored-trace.log"
    [ "${XSLAB_C_TRACE:-1}" = 0 ] && trace=""
    xenstored $trace --pid-file /run/xenstored.pid \
        >/var/log/xen/xenstored.out 2>&1 || return 1
    wait_until 30 xenstore-read / || { SETUP_ERR="xenstored does not answer"; return 1; }
}

# The stub domain as a host with XENSTORETYPE=domain starts it: /etc/default/xencommons
# (Debian ships none: an administrator writes it), then the packaged launch-xenstore from the
# version's xen-utils-common (a bash script: /bin/bash is a shim to busybox sh).
start_launch() {
    {
        echo "# Written by the lab's /init as an administrator would (README: Xen hosts)."
        echo "XENSTORETYPE=domain"
        echo "XENSTORE_DOMAIN_KERNEL=/xslab/xsstub"
        echo "XENSTORE_DOMAIN_SIZE=${XSLAB_STUB_MEMORY:-8}"
        [ -z "$XSLAB_STUB_MAXMEM" ] || echo "XENSTORE_MAX_DOMAIN_SIZE=$XSLAB_STUB_MAXMEM"
        [ -z "$XSLAB_STUB_PARAM" ] || echo "XENSTORE_DOMAIN_ARGS=\"--param $XSLAB_STUB_PARAM\""
    } >/etc/default/xencommons
    # XENSTORED_TRACE would make 4.20's script pass -T, which init-xenstore-domain rejects.
    unset XENSTORED_TRACE
    timeout 120 /etc/xen/scripts/launch-xenstore >/var/log/xen/launch-xenstore.out 2>&1
    rc=$?
    sed 's/^/launch-xenstore: /' /var/log/xen/launch-xenstore.out | tail -n 40
    return $rc
}

# The direct path: init-xenstore-domain by hand.
start_direct() {
    timeout 120 init-xenstore-domain --kernel /xslab/xsstub --memory "${XSLAB_STUB_MEMORY:-8}" \
        ${XSLAB_STUB_MAXMEM:+--maxmem "$XSLAB_STUB_MAXMEM"} \
        ${XSLAB_STUB_PARAM:+--param "$XSLAB_STUB_PARAM"} -v \
        >/var/log/xen/init-xenstore-domain.out 2>&1
    rc=$?
    sed 's/^/init-xenstore-domain: /' /var/log/xen/init-xenstore-domain.out | tail -n 40
    return $rc
}

setup_stub() {
    [ -e /dev/xen/xenbus_backend ] || { SETUP_ERR="no /dev/xen/xenbus_backend"; return 1; }
    t0=$(now)
    "start_$XSLAB_START"
    rc=$?
    since "$t0" >/run/xslab-start-secs
    echo "XSLAB-INFO $XSLAB_START start of the stub domain: exit $rc after $(cat /run/xslab-start-secs) s"
    [ $rc -eq 0 ] || { SETUP_ERR="$XSLAB_START start exit $rc"; return 1; }
    wait_until 30 xenstore-read / || { SETUP_ERR="the stub domain does not answer"; return 1; }
    timeout 10 xenstore-read /tool/xenstored/domid >/run/xslab-stub-domid 2>/dev/null
}

setup() {
    SETUP_ERR="set-up failed"
    "setup_$XSLAB_STORE" || return 1
    timeout 60 xen-init-dom0 >/var/log/xen/xen-init-dom0.out 2>&1 ||
        { SETUP_ERR="xen-init-dom0 failed: $(tail -n 3 /var/log/xen/xen-init-dom0.out)"; return 1; }
    xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console ||
        { SETUP_ERR="xenconsoled failed"; return 1; }
}

# Linux guests get the TSC frequency Xen measured, so that they need not calibrate it: under
# TCG, Linux's calibration against the PIT fails its fast path and takes about 30 s of every
# guest boot.
guest_tsc() {
    khz=$(timeout 20 xl dmesg 2>/dev/null |
        sed -n 's/.*Detected \([0-9]*\)\.\([0-9][0-9][0-9]\) MHz processor.*/\1\2/p' | head -n 1)
    [ -n "$khz" ] || return 0
    sed -i "s/^cmdline = \"\(.*\)\"/cmdline = \"\1 tsc_early_khz=$khz\"/" /xslab/guest.cfg
    echo "XSLAB-INFO Linux guests boot with tsc_early_khz=$khz"
}

echo "XSLAB-BOOTED xen=$XSLAB_XEN store=$XSLAB_STORE start=$XSLAB_START scenarios=$XSLAB_SCENARIOS"
# A heartbeat on the console: a machine that stops printing even this has hung (the harness
# boots again), however busy QEMU is.
(while sleep 30; do echo "XSLAB-ALIVE"; done) &
echo "XSLAB-INFO $(uname -r), $(cat /sys/hypervisor/version/major 2>/dev/null).$(cat /sys/hypervisor/version/minor 2>/dev/null)$(cat /sys/hypervisor/version/extra 2>/dev/null)"
if setup; then
    guest_tsc
    echo "XSLAB-READY xen=$XSLAB_XEN store=$XSLAB_STORE"
    dead=""
    for s in $XSLAB_SCENARIOS; do
        if [ -n "$dead" ]; then
            echo "XSLAB-VERDICT $s FAIL not run: $dead"
            continue
        fi
        run_scenario "$s"
        xenstore_answers || dead="xenstore stopped answering dom0 (during $s)"
    done
else
    echo "XSLAB-INFO set-up failed: $SETUP_ERR"
    diagnostics
    for s in $XSLAB_SCENARIOS; do
        echo "XSLAB-VERDICT $s FAIL set-up: $SETUP_ERR" | tr -d '\r' | head -c 400
        echo
    done
fi
echo "XSLAB-END"
sync
poweroff -f
sleep 5
reboot -f
