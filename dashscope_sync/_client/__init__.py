"""The `Client`: credentials and endpoints, the services that open sessions, and
temporary keys over HTTP."""
