"""The hall's side of its district centre: the shipper (`shipper.py`)."""
