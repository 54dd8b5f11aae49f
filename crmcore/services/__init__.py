"""Services: every lifecycle operation as one unit of work."""

from crmcore.services.consent import ConsentService
from crmcore.services.contacts import (
    ContactService,
    CustomFieldService,
    ProductService,
)
from crmcore.services.customers import CustomerService
from crmcore.services.leads import InteractionService, LeadService, TouchpointService
from crmcore.services.sales import SalesService
from crmcore.services.segments import SegmentService
from crmcore.services.users import RoleService, UserService

__all__ = [
    "ConsentService",
    "ContactService",
    "CustomFieldService",
    "CustomerService",
    "InteractionService",
    "LeadService",
    "ProductService",
    "RoleService",
    "SalesService",
    "SegmentService",
    "TouchpointService",
    "UserService",
]
