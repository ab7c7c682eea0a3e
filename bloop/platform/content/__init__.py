"""content: courses, their lessons, and the concepts lessons teach. Publishes `content.events`."""
