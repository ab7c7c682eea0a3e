"""What every Bloop service shares: settings, the app factory, events, stores, errors."""
