"""The FastAPI routers, one per group of endpoints."""
