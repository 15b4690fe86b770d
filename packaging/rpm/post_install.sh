# tenantd %post ($1 = 1 install, 2 upgrade): data dir and config ownership, then the service.
DATA=/var/lib/tenantd
mkdir -p "$DATA"
# A data dir kept from an earlier install may belong to an old uid: hand it to tenantd.
if [ "$(stat -c %U "$DATA")" != tenantd ]; then
    chown -R tenantd:tenantd "$DATA"
fi
chmod 0750 "$DATA"
chown root:tenantd /etc/tenantd/tenantd.toml 2>/dev/null || true
chmod 0640 /etc/tenantd/tenantd.toml 2>/dev/null || true
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    if [ "$1" -eq 1 ]; then
        # Fedora/RHEL convention: enablement follows the distribution's presets.
        systemctl preset tenantd.service >/dev/null 2>&1 || true
    fi
fi
exit 0
