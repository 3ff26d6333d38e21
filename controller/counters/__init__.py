"""The counters (窗口): calling, the window bars and pads, the staff keypads."""
