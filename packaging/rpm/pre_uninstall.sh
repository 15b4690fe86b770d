# tenantd %preun ($1 = 0 erase, 1 upgrade): stop and disable only on erase.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now tenantd.service >/dev/null 2>&1 || true
fi
exit 0
