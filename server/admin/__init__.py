"""Admin API (``/api/admin``) and dashboard routes; see ``server.admin.routes``."""

from server.admin.deps import AdminDeps
from server.admin.routes import admin_routes, dashboard_routes

__all__ = ["AdminDeps", "admin_routes", "dashboard_routes"]
