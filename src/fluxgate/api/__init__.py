"""The HTTP layer: the FastAPI app, its routers, request and response bodies."""
