"""One router per area; `app.py` mounts them under the configured prefix."""
