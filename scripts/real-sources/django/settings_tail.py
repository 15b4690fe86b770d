
# --- appended by scripts/real-sources.sh -------------------------------------
# The app this tool adds, and DATABASES switched by one environment variable:
# CRM_DATABASE_URL=postgresql://user:pass@host:port/name selects PostgreSQL,
# otherwise Django's own default SQLite file (BASE_DIR / "db.sqlite3") stays.
import os as _os
from urllib.parse import unquote as _unquote, urlsplit as _urlsplit

INSTALLED_APPS += ["crm"]
TIME_ZONE = "UTC"
USE_TZ = True

_url = _os.environ.get("CRM_DATABASE_URL")
if _url:
    _u = _urlsplit(_url)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _u.path.lstrip("/"),
            "USER": _unquote(_u.username or ""),
            "PASSWORD": _unquote(_u.password or ""),
            "HOST": _u.hostname or "",
            "PORT": str(_u.port or ""),
        }
    }
