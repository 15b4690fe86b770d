#!/usr/bin/env bash
# scripts/real-sources.sh OUT_DIR
#
# Makes application databases written by other, real software, for testing the
# migration tools of issue 19 on more than hand-written fixtures:
#
#   OUT_DIR/fab/app.db         Flask-AppBuilder app (SQLite): company is the tenant
#   OUT_DIR/django/db.sqlite3  Django project (SQLite): crm_account is the tenant
#   OUT_DIR/pg/url             the same Django project on a throwaway PostgreSQL
#                              server, LEFT RUNNING, plus a plain-SQL table of the
#                              types a converter must map; OUT_DIR/pg/stop.sh stops it
#   OUT_DIR/manifest.json      tables and row counts (counted afterwards), users with
#                              their plaintext passwords and hash formats, tenant keys
#
# Everything it needs it installs itself: pinned PyPI packages
# (scripts/real-sources/requirements.txt) into a venv, OUT_DIR/venv unless
# REAL_SOURCES_VENV names another (kept between runs; reinstalled when the pins
# change), and Debian's postgresql only when no initdb/pg_ctl/postgres is found.
# As root the server runs as the postgres user (or a new system user
# tenantd-pg). Rerunning into the same OUT_DIR stops the old server and remakes
# everything but the venv. PYTHON picks the interpreter (python3), PG_PORT the
# port (a free one on 127.0.0.1 otherwise).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$HERE/real-sources"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
START=$SECONDS

say() { printf '[real-sources %4ss] %s\n' "$((SECONDS - START))" "$*"; }
run() { say "\$ $*"; "$@"; }
die() { say "ERROR: $*" >&2; exit 1; }

FAB_ADMIN=admin
FAB_ADMIN_PASSWORD=admin-Pa55-fab
DJANGO_ADMIN=root
DJANGO_ADMIN_PASSWORD=root-Pa55-django
unset CRM_DATABASE_URL

# --- 0. what a previous run left ----------------------------------------------
if [ -x "$OUT/pg/stop.sh" ]; then
    say "stopping the PostgreSQL server a previous run left"
    "$OUT/pg/stop.sh" || true
fi
if [ -L "$OUT/pg/data" ]; then
    rm -rf "$(readlink -f "$OUT/pg/data")"
fi
rm -rf "$OUT/fab" "$OUT/django" "$OUT/pg" "$OUT/manifest.json"

# --- Python packages, pinned ------------------------------------------------------
PYTHON="${PYTHON:-python3}"
VENV="${REAL_SOURCES_VENV:-$OUT/venv}"
REQ="$SRC/requirements.txt"
stamp="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.real-sources-stamp" 2>/dev/null || true)" != "$stamp" ]; then
    if ! [ -x "$VENV/bin/python" ]; then
        if ! run "$PYTHON" -m venv "$VENV"; then
            # Debian's own python3 makes venvs only with python3-venv installed.
            [ "$(id -u)" = 0 ] || die "$PYTHON -m venv failed; install python3-venv"
            rm -rf "$VENV"
            run apt-get update -q
            run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
            run "$PYTHON" -m venv "$VENV"
        fi
    fi
    run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$stamp" >"$VENV/.real-sources-stamp"
else
    say "venv $VENV already has the pinned packages"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

# --- 1. Flask-AppBuilder -> fab/app.db ------------------------------------------
say "1/3 Flask-AppBuilder app in $OUT/fab (FAB's skeleton layout: config.py, app/)"
mkdir -p "$OUT/fab"
cp -r "$SRC/fab/." "$OUT/fab/"
(
    cd "$OUT/fab"
    export FLASK_APP=app
    run flask fab create-db
    run flask fab create-admin --username "$FAB_ADMIN" --firstname Ada --lastname Admin \
        --email admin@users.example --password "$FAB_ADMIN_PASSWORD"
    run python seed.py "$FAB_ADMIN" "$FAB_ADMIN_PASSWORD"
)
[ -s "$OUT/fab/app.db" ] || die "FAB wrote no $OUT/fab/app.db"

# --- 2. Django on SQLite -> django/db.sqlite3 --------------------------------------
say "2/3 Django project in $OUT/django (startproject crmsite, startapp crm)"
mkdir -p "$OUT/django"
(
    cd "$OUT/django"
    run django-admin startproject crmsite .
    run python manage.py startapp crm
    cp "$SRC/django/models.py" crm/models.py
    mkdir -p crm/management/commands
    touch crm/management/__init__.py crm/management/commands/__init__.py
    cp "$SRC/django/management/commands/seed_crm.py" crm/management/commands/
    cat "$SRC/django/settings_tail.py" >>crmsite/settings.py
    run python manage.py makemigrations crm
    run python manage.py migrate
    run env DJANGO_SUPERUSER_PASSWORD="$DJANGO_ADMIN_PASSWORD" python manage.py createsuperuser \
        --noinput --username "$DJANGO_ADMIN" --email root@users.example
    run python manage.py seed_crm --users-json "$OUT/django/users.json" \
        --admin "$DJANGO_ADMIN:$DJANGO_ADMIN_PASSWORD"
)
[ -s "$OUT/django/db.sqlite3" ] || die "Django wrote no $OUT/django/db.sqlite3"

# --- 3. PostgreSQL: a throwaway server, Django and plain SQL ------------------------
say "3/3 PostgreSQL server in $OUT/pg"
find_pg_bin() {
    local d cands=()
    if command -v pg_ctl >/dev/null 2>&1; then
        cands+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")")
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        cands+=("$d")
    done
    for d in "${cands[@]}"; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}
if ! PGBIN="$(find_pg_bin)"; then
    [ "$(id -u)" = 0 ] || die "no PostgreSQL server binaries (initdb, pg_ctl, postgres) and not root to install them"
    say "no PostgreSQL server binaries: installing Debian's postgresql"
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    PGBIN="$(find_pg_bin)" || die "postgresql installed but no initdb/pg_ctl/postgres found"
fi
PSQL="$PGBIN/psql"
[ -x "$PSQL" ] || PSQL="$(command -v psql)" || die "no psql"
say "PostgreSQL binaries: $PGBIN ($("$PGBIN/postgres" --version))"

# initdb refuses to run as root: run the server as another user.
if [ "$(id -u)" = 0 ]; then
    PG_OS_USER=postgres
    if ! id -u postgres >/dev/null 2>&1; then
        PG_OS_USER=tenantd-pg
        id -u tenantd-pg >/dev/null 2>&1 ||
            run useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin tenantd-pg
    fi
    as_pg() { runuser -u "$PG_OS_USER" -- "$@"; }
else
    PG_OS_USER="$(id -un)"
    as_pg() { "$@"; }
fi

mkdir -p "$OUT/pg/data"
PGDATA="$OUT/pg/data"
if [ "$(id -u)" = 0 ]; then
    chown "$PG_OS_USER:" "$PGDATA"
    chmod 700 "$PGDATA"
    if ! as_pg test -w "$PGDATA"; then
        # OUT_DIR lies under a folder that user cannot enter (e.g. /root):
        # keep the cluster in /tmp and link it from OUT_DIR/pg/data.
        rmdir "$PGDATA"
        PGDATA="$(mktemp -d /tmp/tenantd-pg.XXXXXX)"
        chown "$PG_OS_USER:" "$PGDATA"
        ln -s "$PGDATA" "$OUT/pg/data"
        say "$PG_OS_USER cannot reach $OUT/pg: cluster in $PGDATA, linked from $OUT/pg/data"
    fi
fi

rand() { python -c 'import secrets; print(secrets.token_hex(12))'; }
PG_SUPER_PASSWORD="$(rand)"
CRM_PASSWORD="$(rand)"
PG_PORT="${PG_PORT:-$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

pwfile="$(mktemp)"
echo "$PG_SUPER_PASSWORD" >"$pwfile"
if [ "$(id -u)" = 0 ]; then chown "$PG_OS_USER:" "$pwfile"; fi
say "\$ initdb -D $PGDATA -U postgres --auth=scram-sha-256 -E UTF8 --no-locale --no-sync (as $PG_OS_USER; output in pg/initdb.log)"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --no-locale --no-sync >"$OUT/pg/initdb.log" 2>&1 ||
    { cat "$OUT/pg/initdb.log" >&2; rm -f "$pwfile"; die "initdb failed"; }
rm -f "$pwfile"
cat >>"$PGDATA/postgresql.conf" <<EOF

# scripts/real-sources.sh: a throwaway test server on loopback TCP only
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

cat >"$OUT/pg/stop.sh" <<EOF
#!/bin/sh
# Stops the PostgreSQL server scripts/real-sources.sh started on 127.0.0.1:$PG_PORT.
PGDATA='$PGDATA'
if [ ! -f "\$PGDATA/postmaster.pid" ]; then
    echo "PostgreSQL in \$PGDATA is not running"
    exit 0
fi
if [ "\$(id -u)" = 0 ] && [ '$PG_OS_USER' != root ]; then
    exec runuser -u '$PG_OS_USER' -- '$PGBIN/pg_ctl' -D "\$PGDATA" -m fast -w stop
fi
exec '$PGBIN/pg_ctl' -D "\$PGDATA" -m fast -w stop
EOF
chmod +x "$OUT/pg/stop.sh"

STARTED=0
on_exit() {
    local rc=$?
    if [ "$rc" != 0 ] && [ "$STARTED" = 1 ]; then
        say "failed (exit $rc): stopping the PostgreSQL server it started"
        "$OUT/pg/stop.sh" || true
    fi
}
trap on_exit EXIT
run as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 start
STARTED=1

SUPER_URL="postgresql://postgres:$PG_SUPER_PASSWORD@127.0.0.1:$PG_PORT/postgres"
URL="postgresql://crm:$CRM_PASSWORD@127.0.0.1:$PG_PORT/crm"
run "$PSQL" -X -q -v ON_ERROR_STOP=1 "$SUPER_URL" \
    -c "CREATE ROLE crm LOGIN PASSWORD '$CRM_PASSWORD'" -c "CREATE DATABASE crm OWNER crm"
echo "$URL" >"$OUT/pg/url"
(umask 077 && echo "$SUPER_URL" >"$OUT/pg/superuser-url")
(
    cd "$OUT/django"
    export CRM_DATABASE_URL="$URL"
    run python manage.py migrate
    run env DJANGO_SUPERUSER_PASSWORD="$DJANGO_ADMIN_PASSWORD" python manage.py createsuperuser \
        --noinput --username "$DJANGO_ADMIN" --email root@users.example
    run python manage.py seed_crm --users-json "$OUT/pg/users.json" \
        --admin "$DJANGO_ADMIN:$DJANGO_ADMIN_PASSWORD"
)
cp "$SRC/pg/ledger.sql" "$OUT/pg/ledger.sql"
run "$PSQL" -X -q -v ON_ERROR_STOP=1 "$URL" -f "$OUT/pg/ledger.sql"

# --- manifest ---------------------------------------------------------------------
run python "$SRC/manifest.py" "$OUT" "$URL"

say "done in $((SECONDS - START))s"
say "  $OUT/fab/app.db"
say "  $OUT/django/db.sqlite3"
say "  $URL  (server LEFT RUNNING as $PG_OS_USER; stop: $OUT/pg/stop.sh)"
say "  $OUT/manifest.json"
