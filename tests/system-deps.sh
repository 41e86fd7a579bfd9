#!/bin/sh
# Programs the integration tests drive (they skip any that cannot be installed).
# On Debian-like machines where we are root, install the missing ones quietly.
missing=""
for prog in bc sqlite3; do
    command -v "$prog" >/dev/null 2>&1 || missing="$missing $prog"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing test programs:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) \
        >/dev/null 2>&1 || echo "could not install$missing; the tests that need them will skip"
else
    echo "missing test programs:$missing (install them to run every test); those tests will skip"
fi
exit 0
