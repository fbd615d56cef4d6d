"""Runnable examples: mentorpay mounted in Flask and in FastAPI (see README)."""
