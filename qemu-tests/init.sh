#!/bin/sh
# dom0's /init in the Xen lab: mounts, loads the Xen drivers, starts xenstore as
# /xslab/config says (C xenstored in dom0, or the stub domain), runs the scenarios, powers off.
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
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
. /xslab/config
. /xslab/lib.sh

# The xenstore set-ups; each leaves a daemon answering and dom0 introduced.
setup_c() {
    xenstored -T /var/log/xen/xenstored-trace.log --pid-file /run/xenstored.pid \
        >/var/log/xen/xenstored.out 2>&1 || return 1
    wait_until 30 xenstore-read / || { SETUP_ERR="xenstored does not answer"; return 1; }
}

setup_stub() {
    [ -e /dev/xen/xenbus_backend ] || { SETUP_ERR="no /dev/xen/xenbus_backend"; return 1; }
    t0=$(now)
    timeout 60 init-xenstore-domain --kernel /xslab/xsstub --memory "${XSLAB_STUB_MEMORY:-8}" \
        ${XSLAB_STUB_MAXMEM:+--maxmem "$XSLAB_STUB_MAXMEM"} \
        ${XSLAB_STUB_PARAM:+--param "$XSLAB_STUB_PARAM"} -v \
        >/var/log/xen/init-xenstore-domain.out 2>&1
    rc=$?
    sed 's/^/init-xenstore-domain: /' /var/log/xen/init-xenstore-domain.out | tail -n 40
    echo "XSLAB-INFO init-xenstore-domain exit $rc after $(since "$t0") s"
    [ $rc -eq 0 ] || { SETUP_ERR="init-xenstore-domain exit $rc"; return 1; }
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

echo "XSLAB-BOOTED store=$XSLAB_STORE scenarios=$XSLAB_SCENARIOS"
if setup; then
    echo "XSLAB-READY store=$XSLAB_STORE"
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
