"""The back office: evaluation cases and callbacks, reports, roll-ups, the device check."""
