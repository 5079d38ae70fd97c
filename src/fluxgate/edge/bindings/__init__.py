"""Cloudflare bindings in the shape of the core's ports (KV, R2, AI, Images, Queues, Rate
Limiting, Analytics Engine) and the Durable Objects behind them. Pydantic-free."""
