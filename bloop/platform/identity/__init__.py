"""identity: tenants and their users. Publishes `user.events`."""
