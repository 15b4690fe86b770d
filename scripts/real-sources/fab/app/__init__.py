import logging

from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.utils.legacy import get_sqla_class

logging.basicConfig(format="%(asctime)s:%(levelname)s:%(name)s:%(message)s")
logging.getLogger().setLevel(logging.WARNING)

app = Flask(__name__)
app.config.from_object("config")
db = get_sqla_class()()
appbuilder = AppBuilder()

# FAB 5 sets itself up inside an application context.
with app.app_context():
    db.init_app(app)
    appbuilder.init_app(app, db.session)
    from . import models, views  # noqa: E402,F401
