"""CRUD views, registered so FAB writes its permission tables as a real app's are."""
from flask_appbuilder import ModelView
from flask_appbuilder.models.sqla.interface import SQLAInterface

from . import appbuilder
from .models import Company, Contact, Country, Deal, Tag


class CountryView(ModelView):
    datamodel = SQLAInterface(Country)


class CompanyView(ModelView):
    datamodel = SQLAInterface(Company)
    list_columns = ["name", "slug"]


class ContactView(ModelView):
    datamodel = SQLAInterface(Contact)
    list_columns = ["name", "email", "company", "country"]


class TagView(ModelView):
    datamodel = SQLAInterface(Tag)


class DealView(ModelView):
    datamodel = SQLAInterface(Deal)
    list_columns = ["title", "amount", "stage", "contact"]


appbuilder.add_view(CompanyView, "Companies", category="CRM")
appbuilder.add_view(ContactView, "Contacts", category="CRM")
appbuilder.add_view(DealView, "Deals", category="CRM")
appbuilder.add_view(TagView, "Tags", category="CRM")
appbuilder.add_view(CountryView, "Countries", category="Lookups")
