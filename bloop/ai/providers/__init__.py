"""Providers: the LLM port and its adapters (the text-to-speech port lives in `bloop.ai.audio`)."""
