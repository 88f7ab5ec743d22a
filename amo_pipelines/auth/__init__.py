"""Credentials: long-lived tokens, OAuth 2.0 with refresh, and the token stores."""
