"""The ECM database schema: versioned SQL migrations and the code that applies them."""
