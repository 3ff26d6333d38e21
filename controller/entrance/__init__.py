"""The entrance (取号区): the kiosk that issues tickets, and appointments."""
