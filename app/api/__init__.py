"""HTTP routers, one per resource: jobs, health and config schema, pages."""
