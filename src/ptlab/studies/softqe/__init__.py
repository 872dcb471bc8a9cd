"""The SoftQE study: a query encoder distilled toward LLM-expanded queries."""
