"""The demo tenant a newcomer sees on first start: its people, concepts and one course."""
