# tenantd %pre: the tenantd system user and group (before the files that name them land).
getent group tenantd >/dev/null || groupadd --system tenantd
getent passwd tenantd >/dev/null || useradd --system --gid tenantd --home-dir /var/lib/tenantd \
    --no-create-home --shell /sbin/nologin --comment "tenantd service" tenantd
exit 0
