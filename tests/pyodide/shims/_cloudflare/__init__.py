"""The Pyodide harness's stand-in for workerd's internal ``_cloudflare`` package.

The Workers SDK's ``.pth`` hook loads its package patches only when ``_cloudflare`` exists,
that is, inside the Workers runtime. The harness provides the two modules those patches use,
so that packages behave as they do on Workers (for example ``anyio.to_thread`` running inline,
since an isolate has no threads).
"""
