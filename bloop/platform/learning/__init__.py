"""Learning: the prerequisite graph, personal paths, mastery and spaced review."""
