"""The Workers SDK's ASGI bridge, imported the same way whichever SDK is present.

placeholder: finalised once the runtime's layout is confirmed.
"""

from workers import asgi

__all__ = ["asgi"]
