#!/bin/sh
. /xslab/lib.sh
n=0; crash=0
while [ $n -lt ${PROBE_N:-20} ]; do
  n=$((n+1))
  xl create -q /xslab/guest.cfg
  d=$(xl domid xslab-guest)
  if wait_until 40 xenstore-read /local/domain/$d/data/result; then echo "probe $n ok"; else crash=$((crash+1)); echo "probe $n FAILED"; xl list; fi
  xl destroy xslab-guest 2>/dev/null
done
echo "crashes: $crash of $n"
pass "crashes=$crash"
