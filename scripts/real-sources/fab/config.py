"""Flask-AppBuilder config, laid out as FAB's own skeleton lays it out."""
import os

basedir = os.path.abspath(os.path.dirname(__file__))

SECRET_KEY = "real-sources-not-a-secret-0123456789"
SQLALCHEMY_DATABASE_URI = "sqlite:///" + os.path.join(basedir, "app.db")
SQLALCHEMY_TRACK_MODIFICATIONS = False
WTF_CSRF_ENABLED = True

APP_NAME = "Tiny CRM (tenantd real source)"
from flask_appbuilder.const import AUTH_DB  # noqa: E402

AUTH_TYPE = AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = "Public"
# FAB 5 hashes with scrypt unless told otherwise; seed.py switches this to
# "pbkdf2:sha256" for one user, the format FAB 4 and older installs carry.
FAB_PASSWORD_HASH_METHOD = "scrypt"
