"""Text generators: a lesson's summary and key points, a simpler re-explanation at a chosen level,
quiz questions with answer keys and feedback, and flashcards. Two implementations of one port:
the LLM's (structured output, validated, retried when invalid) and the offline one (extractive,
built from the lesson's own sentences, and saying so)."""
