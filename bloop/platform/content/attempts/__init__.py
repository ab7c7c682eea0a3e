"""Quiz attempts: a learner's answers to a published lesson's quiz, graded by the server."""
