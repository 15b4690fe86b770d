# tenantd %postun ($1 = 0 erase, 1 upgrade). Upgrade: restart a running service on the new
# binary (it migrates the catalog on start). Erase: the tenantd user and /var/lib/tenantd are
# KEPT (Fedora's guideline: never remove users, so no file is left owned by a reusable uid; the
# tenant data is never deleted by the package). Delete them yourself: userdel tenantd;
# rm -rf /var/lib/tenantd.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    if [ "$1" -ge 1 ]; then
        systemctl try-restart tenantd.service >/dev/null 2>&1 || true
    fi
fi
if [ "$1" -eq 0 ] && [ -d /var/lib/tenantd ]; then
    echo "tenantd: removed; the tenantd user and tenant data in /var/lib/tenantd are kept (rm -rf /var/lib/tenantd to delete)"
fi
exit 0
