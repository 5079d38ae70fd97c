"""Who may do what, and how much: API keys, client tokens, rate limits, daily budgets, CORS,
the audit log. Below the services; above storage and delivery (keys are stored records, tokens
are signed like URLs)."""
