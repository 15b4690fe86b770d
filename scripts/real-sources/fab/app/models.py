"""A small CRM whose tenant is `company`.

company <- contact (company_id NOT NULL) <- deal (contact_id NULLABLE: one deal
belongs to no company), country is a shared lookup, tag belongs to a company,
deal_tag is a plain junction table, company_user maps FAB's ab_user rows to
companies (composite primary key, one user in two companies, one in none).
"""
import datetime

from flask_appbuilder import Model
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship


class Country(Model):
    __tablename__ = "country"
    id = Column(Integer, primary_key=True)
    code = Column(String(2), unique=True, nullable=False)
    name = Column(String(80), nullable=False)

    def __repr__(self):
        return self.name


class Company(Model):
    __tablename__ = "company"
    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False)
    slug = Column(String(50), unique=True, nullable=False)
    created_on = Column(DateTime, default=datetime.datetime.utcnow, nullable=False)

    def __repr__(self):
        return self.name


class CompanyUser(Model):
    __tablename__ = "company_user"
    company_id = Column(Integer, ForeignKey("company.id"), primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id"), primary_key=True)
    is_owner = Column(Boolean, nullable=False, default=False)
    company = relationship("Company")


class Contact(Model):
    __tablename__ = "contact"
    id = Column(Integer, primary_key=True)
    company_id = Column(Integer, ForeignKey("company.id"), nullable=False)
    company = relationship("Company")
    country_id = Column(Integer, ForeignKey("country.id"), nullable=True)
    country = relationship("Country")
    name = Column(String(120), nullable=False)
    email = Column(String(120))
    notes = Column(Text)

    def __repr__(self):
        return self.name


deal_tag = Table(
    "deal_tag",
    Model.metadata,
    Column("deal_id", Integer, ForeignKey("deal.id"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tag.id"), primary_key=True),
)


class Tag(Model):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("company_id", "name"),)
    id = Column(Integer, primary_key=True)
    company_id = Column(Integer, ForeignKey("company.id"), nullable=False)
    company = relationship("Company")
    name = Column(String(40), nullable=False)

    def __repr__(self):
        return self.name


class Deal(Model):
    __tablename__ = "deal"
    id = Column(Integer, primary_key=True)
    contact_id = Column(Integer, ForeignKey("contact.id"), nullable=True)
    contact = relationship("Contact")
    title = Column(String(200), nullable=False)
    amount = Column(Numeric(12, 2), nullable=False)
    stage = Column(
        Enum("lead", "proposal", "won", "lost", name="deal_stage", create_constraint=True),
        nullable=False,
        default="lead",
    )
    won = Column(Boolean, nullable=False, default=False)
    close_date = Column(Date)
    tags = relationship("Tag", secondary=deal_tag)

    def __repr__(self):
        return self.title
