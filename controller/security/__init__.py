"""Security and privacy: PINs, sealed identities, personal-data retention, request limits."""
