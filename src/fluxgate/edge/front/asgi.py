"""The Workers SDK's ASGI bridge, from whichever SDK the Worker runs with.

The vendored SDK (``workers-runtime-sdk`` in ``worker/requirements.lock``, ahead of the
runtime's own on ``sys.path``) has ``workers.asgi``, also importable as ``asgi``. The copy
built into workerd, used when a Worker vendors no SDK under an older compatibility date,
has only the top-level ``asgi`` module. Both offer ``fetch(app, request, env, ctx)``.
"""

try:
    from workers import asgi
except ImportError:  # the runtime's built-in SDK
    import asgi  # type: ignore[no-redef,unused-ignore]

__all__ = ["asgi"]
