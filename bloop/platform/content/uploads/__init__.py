"""Lessons imported from files an educator uploads: Markdown with YAML front matter, a zip of
Markdown and the images it shows, a PDF (its text as Markdown blocks, the file kept), and media
files alone. An import is all-or-nothing."""
