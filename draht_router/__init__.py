"""draht_router: route LLM calls by the kind of work they do (placeholder, being built)."""
