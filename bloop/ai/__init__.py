"""Bloop's AI services: LLM and text-to-speech providers, the text, audio and video generators,
and the job worker (`bloop worker ai`) that runs them."""
