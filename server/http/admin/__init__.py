"""Admin API (``/api/admin``) and dashboard routes; see ``server.http.admin.routes``."""

from server.http.admin.deps import AdminDeps
from server.http.admin.routes import admin_routes, dashboard_routes

__all__ = ["AdminDeps", "admin_routes", "dashboard_routes"]
