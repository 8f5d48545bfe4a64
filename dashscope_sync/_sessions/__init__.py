"""The public sessions, the API only, over the session core."""
