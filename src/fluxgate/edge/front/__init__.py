"""The Worker's front: its entry class, the envelope around every request, the fast paths,
the signed-file route, and the FastAPI app wired to ``env``."""
